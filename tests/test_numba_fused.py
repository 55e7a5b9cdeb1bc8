"""The fused path (symgrad/compile/fused.py, issue 15 item 3): a numpy kernel's entrywise work
between GEMMs as numba loops. Each fused kernel is checked against the numpy kernel of the same
net (``fused=False``), which shares none of the loop printer: 1e-12 in float64, the same errors,
the same stability. numba compiles each new loop in about a second (cached on disk after, under a
the user's cache directory), so the sweep over every activation × loss is marked slow."""
import numpy as np
import pytest

import symgrad as sg
from symgrad.core.primitives import MissingCodeError

numba = pytest.importorskip("numba")
from symgrad.compile import fused as fz  # noqa: E402
from symgrad.compile.kernel import FUSED_WORK  # noqa: E402


OUTPUT = {"mse": "identity", "bce": "sigmoid", "cross_entropy": "softmax"}


def data(sizes, loss, n, seed=0, dtype="float64", labels=True):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, sizes[0])).astype(dtype)
    if loss == "cross_entropy":
        Y = rng.integers(0, sizes[-1], n)
        return X, (Y if labels else np.eye(sizes[-1], dtype=dtype)[Y])
    if loss == "bce":
        return X, (rng.random((n, sizes[-1])) < 0.5).astype(dtype)
    return X, rng.standard_normal((n, sizes[-1])).astype(dtype)


def same(net, X, Y, params=None, tol=1e-12, **kw):
    """The fused kernel against the numpy one: loss and every gradient to tol (relative to the
    largest entry); returns the fused kernel."""
    fast, ref = net.compile(fused=True, scalar=False, **kw), net.compile(fused=False, scalar=False, **kw)
    assert fast.fused and "_fz0(" in fast.source and "def _fz0(" in fast.source
    p = params or {k: v + 0.3 * np.random.default_rng(1).standard_normal(v.shape).astype(v.dtype)
                   for k, v in net.init_params(0, dtype=X.dtype).items()}
    (l0, g0), (l1, g1) = fast(p, X, Y), ref(p, X, Y)
    assert np.isfinite(l0) and abs(l0 - l1) <= tol * max(1.0, abs(l1))
    assert type(l0) is type(l1)
    for q in g1:
        assert g0[q].dtype == g1[q].dtype and g0[q].shape == g1[q].shape
        assert np.abs(g0[q] - g1[q]).max() <= tol * max(1e-300, np.abs(g1[q]).max()), q
    return fast


@pytest.mark.parametrize("labels", [True, False])
@pytest.mark.parametrize("n", [1, 7, 100])
def test_mlp_softmax_cross_entropy_matches_numpy(n, labels):
    net = sg.mlp([64, 32, 10], hidden="relu", output="softmax", loss="cross_entropy")
    k = same(net, *data([64, 32, 10], "cross_entropy", n, labels=labels))
    # the loops are what runs: relu and its derivative, the softmax head in one loop over examples
    assert "math.exp(" in k.source and "lse_0 = math.log(" in k.source


def test_float32_matches_numpy_to_its_precision():
    net = sg.mlp([6, 5, 3], hidden="tanh", output="softmax", loss="cross_entropy")
    same(net, *data([6, 5, 3], "cross_entropy", 9, dtype="float32"), tol=1e-5)


def test_logits_of_a_thousand_give_a_finite_loss_and_gradient():
    net = sg.mlp([3, 4, 5], hidden="relu", output="softmax", loss="cross_entropy")
    p = net.init_params(0)
    p["b2"] = np.array([1000.0, -1000.0, 999.0, 0.0, -1000.0])
    X, Y = data([3, 4, 5], "cross_entropy", 6)
    k = same(net, X, Y, params=p)
    loss, g = k(p, X, Y)
    assert np.isfinite(loss) and all(np.isfinite(v).all() for v in g.values())


def test_relu_grad_at_zero_reaches_the_loops():
    net = sg.mlp([2, 3, 1], hidden="relu", output="identity", loss="mse")
    p = {k: np.ones_like(v) for k, v in net.init_params(0).items()}
    p["b1"] = np.zeros(3)
    X, Y = np.zeros((5, 2)), np.zeros((5, 1))  # every hidden pre-activation exactly 0
    for at0 in (0, 1):
        same(net, X, Y, params=p, relu_grad_at_zero=at0)
    one = net.compile(fused=True, scalar=False, relu_grad_at_zero=1)(p, X, Y)[1]["b1"]
    zero = net.compile(fused=True, scalar=False, relu_grad_at_zero=0)(p, X, Y)[1]["b1"]
    assert not np.array_equal(one, zero)


def test_errors_are_the_numpy_kernels_one_line_errors():
    net = sg.mlp([4, 3, 2], hidden="relu", output="softmax", loss="cross_entropy")
    fast, ref = net.compile(fused=True, scalar=False), net.compile(fused=False, scalar=False)
    p = net.init_params(0)
    X, Y = data([4, 3, 2], "cross_entropy", 5)
    Xnan = X.copy()
    Xnan[2, 1] = np.nan
    for args in [(p, X[:, :3], Y), (p, X, np.array([0, 1, 2, 0, 1])), (p, Xnan, Y),
                 (p, X, np.full((5, 2), 0.3)), ({**p, "b1": np.full(3, np.inf)}, X, Y)]:
        msgs = []
        for k in (fast, ref):
            with pytest.raises(ValueError) as e:
                k(*args)
            msgs.append(str(e.value))
        assert msgs[0] == msgs[1] and "\n" not in msgs[0], msgs


def test_large_batches_run_the_numpy_kernel():
    net = sg.mlp([8, 16, 3], hidden="relu", output="softmax", loss="cross_entropy")
    k = net.compile(fused=True, scalar=False)
    assert k.fused_rows == max(1, FUSED_WORK // k.fused_width) and k.fused_rows < 1000
    assert f"if n > {k.fused_rows}:" in k.source and "# _unfused: the numpy kernel" in k.source
    same(net, *data([8, 16, 3], "cross_entropy", 1000))  # above fused_rows: numpy's, same result


def test_default_follows_numba_and_the_environment(monkeypatch):
    net = sg.mlp([3, 4, 2], hidden="relu", output="identity", loss="mse")
    monkeypatch.setenv("SYMGRAD_FUSED", "0")
    assert not getattr(net.compile(scalar=False), "fused", False)
    monkeypatch.setenv("SYMGRAD_FUSED", "1")
    assert net.compile(scalar=False).fused
    with pytest.raises(ValueError, match="only the numpy backend"):
        net.compile(backend="python", fused=True)
    with pytest.raises(ValueError, match="fused: expected True, False or None"):
        net.compile(fused="yes")


def test_a_loop_numba_cannot_compile_names_the_primitive_or_falls_back(monkeypatch, tmp_path):
    # softplus's "python" code calls _softplus; made uncompilable by numba (a Python object),
    # the loop fails while compiling: fused=True names softplus, the default falls back to numpy
    # and says so in kernel.source
    def bad(x):
        return object() if x > 1e300 else x
    monkeypatch.setitem(fz.NUMBA_HELPERS, "_softplus", bad)
    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("SYMGRAD_FUSED", "1")
    net = sg.mlp([3, 7, 2], hidden="softplus", output="identity", loss="mse")
    with pytest.raises(MissingCodeError, match="cannot compile the loop for 'softplus'"):
        net.compile(fused=True, scalar=False)
    k = net.compile(scalar=False)
    assert k.source.startswith("# fused path off, numpy throughout: compile: the fused (numba) "
                               "path cannot compile the loop for 'softplus'")
    X, Y = data([3, 7, 2], "mse", 4)
    p = net.init_params(0)
    ref = net.compile(fused=False, scalar=False)(p, X, Y)
    assert k(p, X, Y)[0] == ref[0]


def test_generated_loops_hold_no_user_names():
    net = sg.Network()
    x = net.input("évil'input", 3)
    h = net.act(net.dense(x, 4, name="__import__('os')"), "tanh", name="h\"idden")
    z = net.dense(h, 2, name="out;put")
    net.set_loss(z, "mse")
    X, Y = data([3, 4, 2], "mse", 5)
    k = same(net, X, Y)
    loops = k.source[k.source.index("# the fused loops"):]
    for name in ("évil", "__import__", "idden", "put"):
        assert name not in loops


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["mse", "bce", "cross_entropy"])
def test_every_activation_and_loss_matches_numpy(loss):
    # (about 1 s of numba compiling per activation the first time; cached on disk after)
    from symgrad.graph.activations import ACTIVATIONS
    for hidden in ACTIVATIONS:
        sizes = [5, 6, 4, 3]
        net = sg.mlp(sizes, hidden=hidden, output=OUTPUT[loss], loss=loss)
        for labels in ([True, False] if loss == "cross_entropy" else [True]):
            same(net, *data(sizes, loss, 11, labels=labels))


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_random_architectures_match_numpy(seed):
    from symgrad.graph.activations import ACTIVATIONS
    rng = np.random.default_rng(seed)
    sizes = [int(d) for d in rng.integers(1, 9, int(rng.integers(3, 6)))]
    loss = ["mse", "bce", "cross_entropy"][seed % 3]
    if loss == "cross_entropy":
        sizes[-1] = max(2, sizes[-1])
    hidden = sorted(ACTIVATIONS)[int(rng.integers(len(ACTIVATIONS)))]
    net = sg.mlp(sizes, hidden=hidden, output=OUTPUT[loss], loss=loss)
    same(net, *data(sizes, loss, int(rng.integers(1, 40)), seed=seed))


@pytest.mark.slow
def test_every_primitive_an_activation_can_use_matches_numpy():
    # every registered primitive the activation parser takes (the rest are reached as
    # derivatives: step of relu, sign of abs, Heaviside of max), at an argument in its domain
    from symgrad.core.primitives import PRIMITIVES
    done = []
    for name, spec in PRIMITIVES.items():
        arg = "sigmoid(x)/4 + 1/2"  # in (1/2, 3/4): inside every domain (log, asin, acos)
        expr = f"{name}({arg}, x)" if spec.nargs[0] == 2 else f"{name}({arg})"
        try:
            net = sg.mlp([4, 5, 3], hidden=expr, output="identity", loss="mse")
        except sg.ParseError:
            continue
        same(net, *data([4, 5, 3], "mse", 6))
        done.append(name)
    assert len(done) >= 15, done


def _loops(kernel):
    """The numba dispatchers a fused kernel calls, by their names in its source."""
    return {k: v for k, v in kernel.__globals__.items() if k.startswith("_fz")}


def test_loops_compile_at_their_first_call_for_its_dtype_only(monkeypatch):
    # a first net.compile() compiled every loop for float64 and float32 (a 64-layer net: 46 s on
    # a cold cache); now nothing is compiled until a call, and only for the dtype it has
    # (the user's disk cache, as the other tests here: a signature loaded from it is as lazy)
    monkeypatch.setattr(fz, "_LOOPS", {})  # (loops made afresh, none shared with other tests)
    sizes = [5, 11, 11, 3]
    net = sg.mlp(sizes, hidden="tanh", output="softmax", loss="cross_entropy")
    k = net.compile(fused=True, scalar=False)
    loops = _loops(k)
    assert loops and all(not f.signatures for f in loops.values())
    X, Y = data(sizes, "cross_entropy", 6)
    p = net.init_params(0)
    same(net, X, Y, params=p)
    onehot = {name for name in loops if name + "l" in loops}  # the one-hot Y variant's loop
    assert onehot and {name for name, f in loops.items() if not f.signatures} == onehot
    same(net, X, np.eye(3)[Y], params=p)
    assert {len(f.signatures) for f in loops.values()} == {1}
    assert all(f.signatures[0][0].dtype == numba.float64 for f in loops.values())
    X32 = X.astype("float32")
    p32 = {q: v.astype("float32") for q, v in p.items()}
    l32, g32 = k(p32, X32, Y)
    k(p32, X32, np.eye(3, dtype="float32")[Y])
    assert {len(f.signatures) for f in loops.values()} == {2}
    l64, g64 = net.compile(fused=False, scalar=False)(p, X, Y)
    assert type(l32) is np.float32 and abs(l32 - l64) < 1e-5 * abs(l64)


def test_layers_alike_but_for_names_share_one_loop(monkeypatch, tmp_path):
    # the layers of a deep net print the same loop but for its name and its Σ entry²
    # accumulator's: one compiled function serves them all (784-128×63-10: 130 loops, 5 distinct)
    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(fz, "_LOOPS", {})
    sizes = [4] + [6] * 7 + [2]
    net = sg.mlp(sizes, hidden="relu", output="identity", loss="mse")
    k = net.compile(fused=True, scalar=False)  # (not called: nothing compiled, the files written)
    loops = _loops(k)
    assert len(loops) >= 14 and len({id(f) for f in loops.values()}) <= 5  # (15 loops: 5)
    assert len(list(tmp_path.glob("fz_*.py"))) == len({id(f) for f in loops.values()})
    assert "def _fz0(" in k.source and "def _fz5(" in k.source  # its own names, shown


def test_a_loop_that_fails_only_at_its_first_call_says_so_in_one_line(monkeypatch, tmp_path):
    # symgrad's own primitives are not type-checked at compile (numba's ~1 s set-up); should
    # numba fail one, the first call raises the one-line error naming it
    def bad(x):
        return object() if x > 1e300 else x
    monkeypatch.setitem(fz.NUMBA_HELPERS, "_softplus", bad)
    monkeypatch.setattr(fz, "_own", lambda src, members: True)
    monkeypatch.setattr(fz, "_LOOPS", {})
    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(tmp_path))
    net = sg.mlp([3, 7, 7, 2], hidden="softplus", output="identity", loss="mse")
    k = net.compile(fused=True, scalar=False)
    with pytest.raises(MissingCodeError, match="cannot compile the loop for 'softplus'"):
        k(net.init_params(0), *data([3, 7, 7, 2], "mse", 4))


def test_a_sequence_net_above_the_fused_limit_runs_the_numpy_kernel():
    # the fused kernel handed its numpy kernel X already reshaped to (n·T, d) above fused_rows
    # (bench.py's block rows: "X has shape (2048, 128); expected (n, 64, 128)")
    net = sg.Network()
    h = net.input("x", shape=(4, 8))
    a = net.self_attention(net.layer_norm(h, name="ln"), 2, name="att")
    net.set_loss(net.add(h, a, name="out"), "mse")
    k = net.compile(fused=True, scalar=False)
    rng = np.random.default_rng(0)
    n = k.fused_rows + 1
    X, Y = rng.standard_normal((n, 4, 8)), rng.standard_normal((n, 4, 8))
    p = net.init_params(0)
    l0, g0 = k(p, X, Y)
    l1, g1 = net.compile(fused=False, scalar=False)(p, X, Y)
    assert abs(l0 - l1) <= 1e-12 * abs(l1) and all(np.allclose(g0[q], g1[q]) for q in g1)


@pytest.mark.slow  # (a cold cache, so that the compiles overlap: 9 s)
def test_first_calls_from_several_threads_compile_once(monkeypatch, tmp_path):
    # each thread's first call switches numba's compiling on and off: under its compiler lock,
    # none finds it switched off under it ("compilation disabled")
    import threading
    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(fz, "_LOOPS", {})
    sizes = [3, 9, 4]
    net = sg.mlp(sizes, hidden="sigmoid", output="identity", loss="mse")
    k = net.compile(fused=True, scalar=False)
    X, Y = data(sizes, "mse", 5)
    p = net.init_params(0)
    ref = net.compile(fused=False, scalar=False)(p, X, Y)[0]
    got, errors = [], []

    def call():
        try:
            got.append(k(p, X, Y)[0])
        except Exception as err:  # (collected: a thread's exception would pass silently)
            errors.append(err)
    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(got) == 4 and all(abs(g - ref) <= 1e-12 * abs(ref) for g in got)
    assert {len(f.signatures) for f in _loops(k).values()} == {1}


def test_a_net_whose_loops_would_run_at_batch_1_to_3_stays_numpy_without_importing_numba(tmp_path):
    """A deep, wide net's fused loops run only at batch 1–3 (784-256×7-10: FUSED_WORK over its
    5406 fused entries a row, 3), where they measured no gain, yet compile() imported numba for
    them (0.2–0.4 s) and a first small call compiled them. By default such a net (here 8-2000-3,
    2 rows, quicker to build) now gets the numpy kernel, saying why, and numba is not imported; a
    net whose loops run at larger batches keeps them, and fused=True builds them anyway. (A fresh
    process: this one has numba imported.)"""
    import os
    import subprocess
    import sys
    from symgrad.compile.kernel import FUSED_MIN_ROWS
    code = (
        "import sys, symgrad as sg\n"
        "deep = sg.mlp([8, 2000, 3], output='softmax', loss='cross_entropy')\n"
        "k = deep.compile()\n"
        "print(k.fused, 'numba' in sys.modules, k.source.splitlines()[0])\n"
        "k = sg.mlp([64, 32, 10], output='softmax', loss='cross_entropy').compile()\n"
        "print(k.fused, 'numba' in sys.modules, k.fused_rows)\n"
        "k = deep.compile(fused=True)\n"
        "print(k.fused, k.fused_rows)\n")
    env = {**os.environ, "SYMGRAD_CACHE_DIR": str(tmp_path)}
    env.pop("SYMGRAD_FUSED", None)  # (the suite's conftest sets 0: here, the user's default)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    deep, small, forced = done.stdout.splitlines()
    assert deep == ("False False # fused path off, numpy throughout: its loops would run only for "
                    f"batches of up to 2 rows, too few to pay (FUSED_MIN_ROWS = {FUSED_MIN_ROWS}; "
                    "fused=True builds them)")
    assert small == "True True 130" and forced == "True 2"
