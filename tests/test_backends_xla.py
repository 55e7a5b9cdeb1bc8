"""The array backends (symgrad.compile.jax_backend, torch_backend, cupy_backend) print the same
typed program as numpy: every available one agrees with numpy on every activation × loss, on
random architectures and at logits of ±1000, keeps its framework's arrays (device and dtype), and
refuses what it cannot print while compiling. ``sg.to_torch`` is an nn.Module whose backward is
the derived one: gradcheck, and a mixed torch + symgrad model trained with Adam equals the
all-torch one. Each framework's tests are skipped, saying so, where it is not installed (`.ci/run`
installs JAX CPU and torch CPU); the GPU paths run only where a GPU exists."""
import math
import subprocess
import sys

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.core.primitives import PRIMITIVES, RULES, FUNCTIONS, Primitive

HIDDEN = ["identity", "relu", "leaky_relu", "sigmoid", "tanh", "softplus"]
HEADS = [("identity", "mse"), ("sigmoid", "bce"), ("softmax", "cross_entropy")]
TOL = {"float64": 1e-12, "float32": 1e-5}


def _framework(name):
    """The framework module, 64-bit JAX switched on (the float64 tests need it)."""
    if name == "jax":
        jax = pytest.importorskip("jax", reason="JAX not installed: pip install 'symgrad[jax]'")
        jax.config.update("jax_enable_x64", True)
        return jax
    return pytest.importorskip("torch", reason="torch not installed: pip install torch==2.13.0 "
                                              "(a CPU build; .ci/run does)")


@pytest.fixture(params=["jax", "torch"])
def backend(request):
    _framework(request.param)
    return request.param


def _host(a):
    """A backend's array as numpy, for the comparison only."""
    if hasattr(a, "detach"):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def _data(net, n=17, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, net.nodes[net.inputs[0]].dim)) * scale
    k = net.nodes[net.output_node].dim
    if net.loss.name == "cross_entropy":
        Y = rng.integers(0, k, n)
    elif net.loss.name == "bce":
        Y = rng.integers(0, 2, (n, k)).astype(float)
    else:
        Y = rng.normal(size=(n, k))
    return X, Y


def _rel(a, b):
    a, b = _host(a).astype(np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def _agree(net, backend, dtype="float64", params=None, X=None, Y=None, tol=None):
    if X is None:
        X, Y = _data(net)
    params = params or net.init_params(seed=1)
    ref_loss, ref = net.compile(backend="numpy", scalar=False)(
        {k: v.astype(np.float64) for k, v in params.items()}, X, Y)
    loss, grads = net.compile(backend=backend)({k: v.astype(dtype) for k, v in params.items()},
                                               X.astype(dtype), Y)
    tol = tol or TOL[dtype]
    assert np.isfinite(_host(loss)) and all(np.isfinite(_host(g)).all() for g in grads.values())
    assert _rel(loss, ref_loss) < tol, (float(_host(loss)), ref_loss)
    for p in net.parameters:
        assert _rel(grads[p], ref[p]) < tol, p
        assert tuple(grads[p].shape) == ref[p].shape
    return loss, grads


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("head", HEADS, ids=[h[1] for h in HEADS])
@pytest.mark.parametrize("hidden", HIDDEN)
def test_every_activation_and_loss_agrees_with_numpy(backend, hidden, head, dtype):
    net = sg.mlp([4, 5, 3 if head[1] != "bce" else 1], hidden=hidden, output=head[0],
                 loss=head[1])
    loss, grads = _agree(net, backend, dtype)
    # the parameters' dtype is the kernel's, and the results are the framework's arrays
    assert str(loss.dtype).endswith(dtype) and all(str(g.dtype).endswith(dtype)
                                                   for g in grads.values())


@pytest.mark.parametrize("seed", range(6))
def test_random_architectures_agree_with_numpy(backend, seed):
    rng = np.random.default_rng(seed)
    acts = ["relu", "tanh", "sigmoid", "softplus", "leaky_relu", "x*sigmoid(x)",
            "x*(1 + erf(x/sqrt(2)))/2", "x/(1 + abs(x))", "log(1 + exp(x)) - max(x, 0)"]
    head = HEADS[seed % 3]
    sizes = [int(rng.integers(1, 7))] + [int(rng.integers(1, 8)) for _ in range(rng.integers(1, 4))]
    sizes.append(int(rng.integers(2, 5)) if head[1] == "cross_entropy" else int(rng.integers(1, 4)))
    net = sg.mlp(sizes, hidden=str(rng.choice(acts)), output=head[0], loss=head[1],
                 penalty=[0, sp.Rational(1, 100)][seed % 2])
    X, Y = _data(net, n=int(rng.integers(1, 40)), seed=seed)
    _agree(net, backend, X=X, Y=Y)
    _agree(net, backend, "float32", X=X, Y=Y)


def test_a_graph_with_residual_concat_and_layer_norm_agrees(backend):
    net = sg.Network()
    x = net.input("x", 4)
    h = net.act(net.dense(x, 6), "tanh")
    r = net.add(h, net.dense(h, 6))
    c = net.concat(r, net.act(net.dense(x, 3), "relu"))
    z = net.dense(net.layer_norm(c), 3)
    net.set_loss(net.act(z, "softmax") if False else net.apply("softmax", z), "cross_entropy")
    _agree(net, backend)


@pytest.mark.parametrize("head", HEADS, ids=[h[1] for h in HEADS])
def test_logits_of_a_thousand_stay_finite(backend, head):
    """σ, softplus, softmax and log-sum-exp in their stable forms: logits of ±1000 give the
    numpy kernel's finite loss and gradients."""
    net = sg.mlp([2, 3, 2 if head[1] != "bce" else 1], hidden="tanh", output=head[0],
                 loss=head[1])
    params = net.init_params(seed=0)
    params["W2"] = np.sign(params["W2"]) * 400.0  # |tanh| ≤ 1, three of them: logits near ±1000
    params["b2"] = np.full_like(params["b2"], -100.0)
    X, Y = _data(net, n=9, scale=50.0)
    _agree(net, backend, params=params, X=X, Y=Y)
    loss, _ = _agree(net, backend, "float32", params=params, X=X, Y=Y, tol=1e-5)
    assert float(_host(loss)) > 10  # really saturated


def test_torch_keeps_tensors_on_their_device_and_dtype():
    torch = _framework("torch")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    net = sg.mlp([3, 4, 2], hidden="relu", output="softmax", loss="cross_entropy")
    k = net.compile(backend="torch")
    X, Y = _data(net)
    for dev in devices:
        for dt in (torch.float32, torch.float64):
            ps = {p: torch.as_tensor(v, dtype=dt, device=dev) for p, v in net.init_params().items()}
            loss, grads = k(ps, torch.as_tensor(X, device=dev), torch.as_tensor(Y, device=dev))
            assert isinstance(loss, torch.Tensor) and loss.dim() == 0
            assert {(g.device.type, g.dtype) for g in grads.values()} == {(dev, dt)}
            assert loss.device.type == dev and loss.dtype == dt
            out = k.predict(ps, torch.as_tensor(X, dtype=torch.float64, device=dev))
            assert out.shape == (len(X), 2) and out.dtype == dt and out.device.type == dev
    assert ".numpy()" not in k.source and ".cpu()" not in k.source and ".item()" not in k.source
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU here: the torch GPU path ran on the CPU only")


def test_jax_gives_jax_arrays_from_one_pure_jitted_function():
    jax = _framework("jax")
    net = sg.mlp([3, 4, 1], hidden="softplus", output="sigmoid", loss="bce")
    k = net.compile(backend="jax")
    X, Y = _data(net)
    for dt in ("float32", "float64"):
        ps = {p: jax.numpy.asarray(v.astype(dt)) for p, v in net.init_params().items()}
        loss, grads = k(ps, jax.numpy.asarray(X), Y)
        assert isinstance(loss, jax.Array) and all(isinstance(g, jax.Array) for g in grads.values())
        assert loss.dtype == dt and {str(g.dtype) for g in grads.values()} == {dt}
        assert isinstance(k.predict(ps, X), jax.Array)
    src = k.source
    assert not any(s in src for s in ("+=", "-=", "*=", "/=", "out=", " np.")), src
    # the whole step is one XLA computation: it traces, and jax.grad of the loss agrees
    ps = {p: jax.numpy.asarray(v) for p, v in net.init_params().items()}
    Xj, Yj = jax.numpy.asarray(X), jax.numpy.asarray(Y)

    def f(ps):
        return k(ps, Xj, Yj)[0]
    auto = jax.grad(f)
    derived = jax.jit(lambda ps: k(ps, Xj, Yj)[1])(ps)
    for p in net.parameters:
        assert _rel(derived[p], _host(auto(ps)[p])) < 1e-12


def test_jax_refuses_float64_without_x64():
    jax = _framework("jax")
    net = sg.mlp([2, 2, 1])
    k = net.compile(backend="jax")
    jax.config.update("jax_enable_x64", False)
    try:
        with pytest.raises(ValueError, match=r"^backend 'jax': float64 needs 64-bit JAX"):
            k(net.init_params(), np.zeros((3, 2)), np.zeros((3, 1)))
        loss, _ = k(net.init_params(dtype="float32"), np.zeros((3, 2)), np.zeros((3, 1)))
        assert loss.dtype == np.float32
    finally:
        jax.config.update("jax_enable_x64", True)


@pytest.mark.parametrize("bad, message", [
    (lambda p, X, Y: ({k: v for k, v in p.items() if k != "W1"}, X, Y),
     r"^params: missing 'W1' \(expected W1, b1, W2, b2\)$"),
    (lambda p, X, Y: ({**p, "W9": p["W1"]}, X, Y), r"^params: unexpected 'W9'"),
    (lambda p, X, Y: ({**p, "W1": p["W1"][:, :2]}, X, Y),
     r"^params\['W1'\] has shape \(4, 2\); expected \(4, 3\)$"),
    (lambda p, X, Y: ({**p, "b1": p["b1"].astype("float32")}, X, Y),
     r"^params\['b1'\] is float32 but params\['W1'\] is float64"),
    (lambda p, X, Y: (p, X[:, :2], Y), r"^X has shape \(17, 2\); expected \(n, 3\), one example"),
    (lambda p, X, Y: (p, X[:0], Y[:0]), r"^X has no examples"),
    (lambda p, X, Y: (p, X, Y[:5]), r"^Y has shape \(5,\); expected \(17, 2\) or \(17,\) integer"),
    (lambda p, X, Y: (p, X, Y.astype(float)), r"^Y: class labels must be integers, got float"),
    (lambda p, X, Y: (p, X, None), r"^Y: the kernel needs the targets"),
    (lambda p, X, Y: (p, X.astype(str), Y), r"^X must be numeric"),
])
def test_bad_arguments_are_one_line_errors(backend, bad, message):
    net = sg.mlp([3, 4, 2], hidden="tanh", output="softmax", loss="cross_entropy")
    X, Y = _data(net)
    with pytest.raises(ValueError, match=message) as err:
        net.compile(backend=backend)(*bad(net.init_params(), X, Y))
    assert "\n" not in str(err.value)


def test_labels_out_of_range_are_numpys_one_line_error_on_every_path(backend):
    """JAX returned a finite, wrong loss for label 5 or −1 of a 2-class net (one_hot made the row
    zero); torch raised scatter_'s RuntimeError. Now numpy's words, on the first (checked) call
    and on a known signature's fast path, which reads the labels' values too."""
    fw = _framework(backend)
    arr = (lambda a: fw.numpy.asarray(a)) if backend == "jax" else (lambda a: fw.as_tensor(a))
    net = sg.mlp([4, 3, 2], hidden="tanh", output="softmax", loss="cross_entropy")
    k = net.compile(backend=backend)
    rng = np.random.default_rng(0)
    X, p = rng.normal(size=(5, 4)), net.init_params(seed=0)
    ps, good = {q: arr(v) for q, v in p.items()}, np.array([0, 1, 1, 0, 1])
    for labels, bad in (([0, 1, 5, 0, 1], 5), ([0, 1, -1, 0, 1], -1), ([2, 1, 7, -3, 0], -3)):
        with pytest.raises(ValueError, match=rf"^Y: labels must lie in 0\.\.1, got {bad}$"):
            k(ps, arr(X), arr(np.array(labels)))  # a fresh signature: the checked path
        assert _rel(k(ps, arr(X), arr(good))[0], net.compile()(p, X, good)[0]) < 1e-12
        with pytest.raises(ValueError, match=rf"^Y: labels must lie in 0\.\.1, got {bad}$"):
            k(ps, arr(X), arr(np.array(labels)))  # the signature is known now: the fast path
    if backend == "jax":
        # under the caller's own jit the values are abstract: nothing can be raised, so the
        # loss and every gradient are nan, never a finite wrong number
        value, grads = fw.jit(k)(ps, arr(X), arr(np.array([0, 1, 5, 0, 1])))
        assert np.isnan(float(value)) and all(np.isnan(_host(g)).all() for g in grads.values())
        value, grads = fw.jit(k)(ps, arr(X), arr(good))
        want, wg = net.compile()(p, X, good)
        assert _rel(value, want) < 1e-12 and all(_rel(grads[q], wg[q]) < 1e-12 for q in wg)
        fw.config.update("jax_enable_x64", False)  # the path without x64 (no trace-time checks)
        try:
            p32 = {q: arr(v.astype("float32")) for q, v in p.items()}
            for _ in range(2):
                with pytest.raises(ValueError, match=r"^Y: labels must lie in 0\.\.1, got 5$"):
                    k(p32, arr(X.astype("float32")), arr(np.array([0, 1, 5, 0, 1], "int32")))
                k(p32, arr(X.astype("float32")), arr(good.astype("int32")))
        finally:
            fw.config.update("jax_enable_x64", True)


def test_negative_target_entries_are_numpys_one_line_error_on_every_path(backend):
    """A cross_entropy row [0, 1.5, −0.5] sums to 1 but is no distribution: numpy refuses it
    naming row, entry and column, while torch and JAX returned its loss (2.50 on this net). Now
    numpy's words on the checked path (numpy Y, converted), on a known signature's fast path, on
    JAX's trace-time path and without x64; under the caller's own jit, nan."""
    fw = _framework(backend)
    arr = (lambda a: fw.numpy.asarray(a)) if backend == "jax" else (lambda a: fw.as_tensor(a))
    net = sg.mlp([4, 3, 3], hidden="tanh", output="softmax", loss="cross_entropy")
    k, ref = net.compile(backend=backend), net.compile()
    rng = np.random.default_rng(0)
    X, p = rng.normal(size=(5, 4)), net.init_params(seed=0)
    ps = {q: arr(v) for q, v in p.items()}
    good = np.eye(3)[[0, 1, 2, 0, 1]]
    bad = good.copy()
    bad[3] = [0.25, 1.0, -0.25]  # sums to 1
    with pytest.raises(ValueError) as want:
        ref(p, X, bad)
    message = str(want.value)
    assert message.startswith("Y: row 3 has the negative entry -0.25 (column 2)")
    for Y in (bad, arr(bad), arr(bad)):  # numpy (converted), then a fresh and a known signature
        with pytest.raises(ValueError) as got:
            k(ps, arr(X), Y)
        assert str(got.value) == message
        assert _rel(k(ps, arr(X), arr(good))[0], ref(p, X, good)[0]) < 1e-12
    # a soft target without a negative entry is still a target
    soft = np.full((5, 3), 1 / 3)
    assert _rel(k(ps, arr(X), arr(soft))[0], ref(p, X, soft)[0]) < 1e-12
    if backend == "jax":
        value, grads = fw.jit(k)(ps, arr(X), arr(bad))
        assert np.isnan(float(value)) and all(np.isnan(_host(g)).all() for g in grads.values())
        value, grads = fw.jit(k)(ps, arr(X), arr(good))
        assert _rel(value, ref(p, X, good)[0]) < 1e-12
        fw.config.update("jax_enable_x64", False)  # the path without x64 (no trace-time checks)
        try:
            p32 = {q: arr(v.astype("float32")) for q, v in p.items()}
            for _ in range(2):
                with pytest.raises(ValueError, match=r"^Y: row 3 has the negative entry -0\.25 "
                                                     r"\(column 2\)"):
                    k(p32, arr(X.astype("float32")), arr(bad.astype("float32")))
                k(p32, arr(X.astype("float32")), arr(good.astype("float32")))
        finally:
            fw.config.update("jax_enable_x64", True)


class cubic3(Primitive):
    """x³ with numpy and python code only: no jax or torch entry."""


def test_a_primitive_without_code_for_a_backend_fails_at_compile(backend):
    sg.register_primitive(cubic3, name="cubic3", deriv=lambda ans, x: 3 * x**2, prime="cubic3'",
                          latex=r"\operatorname{cubic3}", prime_latex=r"\operatorname{cubic3}'",
                          says="cubic3'(z) = 3 z²", kinked=False, init="glorot",
                          parse=("cubic3",), code={"numpy": "({0})**3", "python": "({0})**3"})
    try:
        net = sg.mlp([2, 3, 1], hidden="cubic3")
        net.compile()  # numpy prints it
        message = (rf"^compile: no {backend} code for the primitive 'cubic3'; register it with "
                   r"symgrad.register_primitive$")
        with pytest.raises(sg.MissingCodeError, match=message):
            net.compile(backend=backend)  # at compile time, before any call
        with pytest.raises(sg.MissingCodeError, match=message):
            sg.compile_function("cubic3(x) + x", "x", backend=backend)
        # an entry in the registration under the backend's name is enough
        sg.register_primitive(cubic3, **{**{k: getattr(RULES[cubic3], k) for k in (
            "name", "deriv", "prime", "latex", "prime_latex", "says", "kinked", "init",
            "parse")}, "code": {**RULES[cubic3].code, backend: "({0})**3"}})
        _agree(sg.mlp([2, 3, 1], hidden="cubic3"), backend)
    finally:
        PRIMITIVES.pop("cubic3", None)
        RULES.pop(cubic3, None)
        FUNCTIONS.pop("cubic3", None)


def test_an_operation_the_backend_has_no_rule_for_is_refused_at_compile(backend):
    net = sg.Network()
    x = net.input("x", shape=(1, 6, 6))
    net.set_loss(net.dense(net.flatten(net.conv2d(x, 2, 3)), 2))
    with pytest.raises((ValueError, sg.MissingCodeError), match=rf"backend '{backend}'|{backend} code"):
        net.compile(backend=backend)


@pytest.mark.parametrize("f, wrt", [
    ("log(1 + exp(-(w1*a + w2*b))) + sigmoid(w1)*relu(w2) + softplus(w1 - w2)", "w1 w2 a b"),
    ("x1**2*sin(x2), 3, tanh(x1)/(1 + x2**2), leaky_relu(x1 - x2)", "x1 x2"),
    ("log(exp(x) + exp(y)) - log(sigmoid(x))", "x y"),
])
def test_compile_function_on_a_backend_agrees_with_numpy(backend, f, wrt):
    ref = sg.compile_function(f, wrt)
    fn = sg.compile_function(f, wrt, backend=backend)
    P = np.random.default_rng(0).normal(size=(7, len(wrt.split()))) * 3
    P[0, :2] = [1000.0, -1000.0]
    for got, want in ((fn(P), ref(P)), (fn.jacobian(P), ref.jacobian(P))):
        assert got.shape == want.shape and np.isfinite(_host(got)).all()
        assert _rel(got, want) < 1e-12
        # entry by entry a little looser: 1 − tanh² near tanh = 1 cancels, and XLA's tanh is
        # not numpy's to the last bit (1.5e-11 relative seen at one entry)
        np.testing.assert_allclose(_host(got), want, rtol=1e-9, atol=1e-300)
    if fn.kind == "scalar":
        np.testing.assert_allclose(_host(fn.gradient(P)), ref.gradient(P), rtol=1e-12,
                                   atol=1e-300)  # (numpy's σ stops at 1e-308, 0 here)


def test_import_symgrad_imports_no_framework():
    code = ("import sys, symgrad as sg; sg.mlp([2, 2, 1]).compile(); "
            "print(sorted(m for m in ('jax', 'torch', 'cupy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cupy_runs_where_a_gpu_is():
    cupy = pytest.importorskip("cupy", reason="CuPy not installed (needs a CUDA GPU): the cupy "
                                              "backend is tested only where one exists")
    try:
        cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # pragma: no cover
        pytest.skip(f"no CUDA GPU here ({e}): the cupy backend is tested only where one exists")
    for hidden in HIDDEN:
        for head in HEADS:
            net = sg.mlp([4, 5, 3 if head[1] != "bce" else 1], hidden=hidden, output=head[0],
                         loss=head[1])
            X, Y = _data(net)
            ref_loss, ref = net.compile()(net.init_params(), X, Y)
            loss, grads = net.compile(backend="cupy")(net.init_params(), X, Y)
            assert isinstance(loss, cupy.ndarray)
            assert _rel(cupy.asnumpy(loss), ref_loss) < 1e-12


def test_cupy_without_a_gpu_is_one_line_at_compile():
    try:
        import cupy  # noqa: F401
        pytest.skip("CuPy is installed here")
    except ImportError:
        pass
    with pytest.raises(ImportError, match=r"^backend 'cupy' needs CuPy and a CUDA GPU"):
        sg.mlp([2, 2, 1]).compile(backend="cupy")


# -- sg.to_torch ----------------------------------------------------------------------------------
@pytest.mark.parametrize("hidden, head", [("tanh", HEADS[0]), ("relu", HEADS[2]),
                                          ("softplus", HEADS[1]), ("leaky_relu", HEADS[2])])
def test_to_torch_passes_gradcheck(hidden, head):
    torch = _framework("torch")
    net = sg.mlp([3, 4, 2], hidden=hidden, output=head[0], loss=head[1])
    m = sg.to_torch(net, dtype=torch.float64)
    assert [n for n, _ in m.named_parameters()] == net.parameters
    assert all(isinstance(p, torch.nn.Parameter) for p in m.parameters())
    X = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda X, *ps: m(X), (X, *m.parameters()))
    # the forward is the network's output, as the numpy kernel predicts it
    params = {p: v.detach().numpy() for p, v in m.named_parameters()}
    np.testing.assert_allclose(m(X).detach().numpy(), net.predict(params, X.detach().numpy()),
                               rtol=1e-13)


def test_to_torch_block_inside_a_torch_model_trains_as_the_all_torch_model():
    torch = _framework("torch")
    nn = torch.nn
    torch.manual_seed(0)
    first = nn.Linear(5, 3).double()
    net = sg.mlp([3, 4, 2], hidden="tanh")
    block = sg.to_torch(net, dtype=torch.float64)
    mixed = nn.Sequential(first, nn.ReLU(), block)
    ref = nn.Sequential(nn.Linear(5, 3), nn.ReLU(), nn.Linear(3, 4), nn.Tanh(),
                        nn.Linear(4, 2)).double()
    with torch.no_grad():  # the same init
        ref[0].weight.copy_(first.weight), ref[0].bias.copy_(first.bias)
        ref[2].weight.copy_(block.W1), ref[2].bias.copy_(block.b1)
        ref[4].weight.copy_(block.W2), ref[4].bias.copy_(block.b2)
    X, Y = torch.randn(32, 5, dtype=torch.float64), torch.randn(32, 2, dtype=torch.float64)
    opts = [torch.optim.Adam(m.parameters(), lr=0.01) for m in (mixed, ref)]
    for _ in range(5):
        for m, opt in zip((mixed, ref), opts):
            opt.zero_grad()
            ((m(X) - Y) ** 2).mean().backward()
            opt.step()
    pairs = [(first.weight, ref[0].weight), (first.bias, ref[0].bias), (block.W1, ref[2].weight),
             (block.b1, ref[2].bias), (block.W2, ref[4].weight), (block.b2, ref[4].bias)]
    for a, b in pairs:
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-13)
    assert not torch.equal(first.weight, nn.Linear(5, 3).double().weight)  # (it trained)


def test_to_torch_refuses_a_second_derivative_instead_of_silently_dropping_it():
    """grad(m(X).sum(), X, create_graph=True) gave a gradient with requires_grad=False: second
    derivatives were silently missing. Now the first derivative is unchanged (and carries a graph)
    and differentiating it again raises, in one line."""
    torch = _framework("torch")
    m = sg.to_torch(sg.mlp([3, 4, 2], hidden="tanh", output="identity", loss="mse"),
                    dtype=torch.float64)
    X = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    g, = torch.autograd.grad(m(X).sum(), X, create_graph=True)
    g0, = torch.autograd.grad(m(X).sum(), X)
    torch.testing.assert_close(g, g0, rtol=0, atol=0)
    assert g.requires_grad and not g0.requires_grad
    with pytest.raises(RuntimeError, match=r"^to_torch: a symgrad block is differentiable once") \
            as err:
        torch.autograd.grad(g.sum(), X)
    assert "\n" not in str(err.value)
    ps = list(m.parameters())  # a parameter's gradient too (a gradient penalty on the weights)
    gw, = torch.autograd.grad(m(X).sum(), ps[0], create_graph=True)
    with pytest.raises(RuntimeError, match=r"differentiable once"):
        torch.autograd.grad(gw.sum(), ps[0])


def test_to_torch_input_errors_name_what_is_wrong():
    """A numpy X said "X has shape (2, 4); expected (n, 4) tensor"; it is the type that is wrong.
    Another floating dtype is cast to the parameters', as net.compile(backend="torch") does."""
    torch = _framework("torch")
    net = sg.mlp([4, 3, 2], hidden="tanh", output="softmax", loss="cross_entropy")
    m = sg.to_torch(net, dtype=torch.float32)
    with pytest.raises(TypeError, match=r"^X must be a torch tensor, got numpy\.ndarray"):
        m(np.zeros((2, 4), dtype=np.float32))
    with pytest.raises(ValueError, match=r"^X has shape \(2, 5\); expected \(n, 4\), one example"):
        m(torch.zeros(2, 5))
    X = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    out = m(X)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, m(X.detach().float()), rtol=0, atol=0)
    p = {k: v.detach().numpy() for k, v in m.named_parameters()}
    kernel_loss = net.compile(backend="torch")({k: torch.as_tensor(v) for k, v in p.items()},
                                               X.detach(), torch.tensor([0, 1, 1]))[0]
    assert kernel_loss.dtype == torch.float32  # the kernel casts X to the parameters' dtype too
    out.sum().backward()
    assert X.grad.dtype == torch.float64  # the gradient flows back through the cast


def test_a_known_signature_skips_the_python_checks_and_a_new_one_is_checked(backend, monkeypatch):
    """The fast path (issue 14): once a (shapes, dtypes, devices) signature has passed the checks,
    later calls of it run no Python check (JAX: they ran once, on the tracers inside jax.jit;
    torch: the signature is looked up); every other signature is still checked, in one line."""
    from symgrad.compile import arrays
    fw = _framework(backend)
    arr = (lambda a: fw.numpy.asarray(a)) if backend == "jax" else (lambda a: fw.as_tensor(a))
    net = sg.mlp([3, 4, 2], hidden="tanh", output="softmax", loss="cross_entropy")
    k = net.compile(backend=backend)
    X, Y = _data(net)
    ps = {p: arr(v) for p, v in net.init_params().items()}
    calls = []
    real = arrays.ArgCheck.params
    monkeypatch.setattr(arrays.ArgCheck, "params", lambda self, p: calls.append(1) or real(self, p))
    loss0, g0 = k(ps, arr(X), arr(Y))
    assert calls  # the first call of a signature is checked
    calls.clear()
    X2 = X[::-1].copy()
    loss1, g1 = k(ps, arr(X2), arr(Y))  # same signature, new values: no check, a fresh result
    assert not calls
    want, wg = net.compile()(net.init_params(), X2, Y)
    assert _rel(loss1, want) < 1e-12 and all(_rel(g1[p], wg[p]) < 1e-12 for p in net.parameters)
    assert list(g1) == net.parameters
    assert not calls and k.predict(ps, arr(X)).shape == (17, 2) and calls
    calls.clear()
    k.predict(ps, arr(X))
    assert not calls
    # a new signature is checked: another shape, dtype, a missing or an extra parameter
    for bad, message in [
            ((ps, arr(X[:, :2]), arr(Y)), r"^X has shape \(17, 2\); expected \(n, 3\)"),
            (({**ps, "b1": arr(net.init_params()["b1"].astype("float32"))}, arr(X), arr(Y)),
             r"^params\['b1'\] is float32 but params\['W1'\] is float64"),
            (({p: v for p, v in ps.items() if p != "W2"}, arr(X), arr(Y)), r"^params: missing 'W2'"),
            (({**ps, "W9": ps["W1"]}, arr(X), arr(Y)), r"^params: unexpected 'W9'"),
            ((ps, arr(X), arr(Y[:5])), r"^Y has shape \(5,\); expected \(17, 2\)"),
            ((ps, arr(X), arr(Y.astype(float))), r"^Y: class labels must be integers"),
            ((ps, [list(r) for r in X], arr(Y)), None)]:
        if message is None:  # a list is converted on the checked path, and agrees
            assert _rel(k(*bad)[0], loss0) < 1e-12
            continue
        with pytest.raises(ValueError, match=message) as err:
            k(*bad)
        assert "\n" not in str(err.value)
    if backend == "jax":  # x64 switched off after a float64 call: refused, as on a first call
        fw.config.update("jax_enable_x64", False)
        try:
            with pytest.raises(ValueError, match=r"^backend 'jax': float64 needs 64-bit JAX"):
                k(ps, arr(X), arr(Y))
        finally:
            fw.config.update("jax_enable_x64", True)


def test_a_network_of_two_inputs_agrees_with_numpy_and_checks_the_dict(backend):
    """Several vector inputs (issue 14's lifted restriction): X a dict by input name, as numpy's
    kernels take it, with numpy's one-line errors."""
    net = sg.Network()
    a, b = net.input("a", 3), net.input("b", 2)
    h = net.concat(net.act(net.dense(a, 4), "tanh"), net.act(net.dense(b, 3), "relu"))
    net.set_loss(net.apply("softmax", net.dense(h, 3)), "cross_entropy")
    rng = np.random.default_rng(3)
    X = {"a": rng.normal(size=(11, 3)), "b": rng.normal(size=(11, 2))}
    Y = rng.integers(0, 3, 11)
    params = net.init_params(seed=2)
    ref_loss, ref = net.compile(backend="numpy", scalar=False)(params, X, Y)
    k = net.compile(backend=backend)
    for dtype, tol in (("float64", 1e-12), ("float32", 1e-5)):
        ps = {p: v.astype(dtype) for p, v in params.items()}
        for _ in range(2):  # the second call of a signature takes the fast path
            loss, grads = k(ps, X, Y)
            assert _rel(loss, ref_loss) < tol
            assert all(_rel(grads[p], ref[p]) < tol for p in net.parameters)
    assert _rel(k.predict(params, X), net.predict(params, X)) < 1e-12
    for bad, message in [
            (X["a"], r"^X: this network has 2 inputs; give a dict \{'a': \(n, 3\) array, 'b'"),
            ({"a": X["a"]}, r"^X: missing 'b' \(the network's inputs are 'a', 'b'\)$"),
            ({**X, "c": X["b"]}, r"^X: unexpected 'c'"),
            ({**X, "b": X["b"][:5]}, r"^X\['b'\] has 5 rows but X\['a'\] has 11"),
            ({**X, "b": X["a"]}, r"^X\['b'\] has shape \(11, 3\); expected \(n, 2\)")]:
        with pytest.raises(ValueError, match=message) as err:
            k(params, bad, Y)
        assert "\n" not in str(err.value)
