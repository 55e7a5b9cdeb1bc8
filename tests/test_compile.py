"""Compiled kernels (symgrad.compile): gradients against central differences over random
architectures, both code paths, dtypes, stability at huge logits, validation, plain functions."""
import itertools

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.compile import compile_network, param_shapes
from symgrad.compile.scalar import ScalarPrinter

HIDDEN = ["identity", "relu", "leaky_relu", "sigmoid", "tanh", "softplus", "x/(1 + abs(x))"]
HUBER = "min(abs(yhat - y), 1)*(abs(yhat - y) - min(abs(yhat - y), 1)/2)"
HEADS = [("identity", "mse"), ("sigmoid", "bce"), ("softmax", "cross_entropy"),
         ("softmax", "mse"), ("identity", "log(cosh(yhat - y))"), ("identity", HUBER)]
CASES = list(itertools.product(range(len(HIDDEN)), range(len(HEADS))))


def random_net(i, j):
    """Depth 1–4 by case number, small random widths."""
    rng = np.random.default_rng(100 * i + j)
    depth = 1 + (i + j) % 4
    sizes = [int(d) for d in rng.integers(2, 5, depth + 1)]
    hidden = HIDDEN[i] if "x" not in HIDDEN[i] else sg.activation(HIDDEN[i], name="softsign")
    output, loss = HEADS[j]
    return sg.mlp(sizes, hidden=hidden, output=output, loss=loss, penalty=0.05 * (i % 2))


def data(net, n, rng, dtype=np.float64):
    d0, dL = net.nodes[net.inputs[0]].dim, net.nodes[net.output_node].dim
    X = rng.standard_normal((n, d0)).astype(dtype)
    if net.loss.name == "cross_entropy":
        return X, rng.integers(0, dL, n)
    if net.loss.name == "bce":
        return X, rng.integers(0, 2, (n, dL)).astype(dtype)
    return X, rng.standard_normal((n, dL)).astype(dtype)


def numeric_grads(kernel, params, X, Y, h=1e-6):
    out = {}
    for p, v in params.items():
        g = np.zeros_like(v)
        for ix in np.ndindex(v.shape):
            old = v[ix]
            v[ix] = old + h
            up = kernel(params, X, Y)[0]
            v[ix] = old - h
            down = kernel(params, X, Y)[0]
            v[ix] = old
            g[ix] = (up - down) / (2 * h)
        out[p] = g
    return out


def rel_err(a, b):
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-7)


@pytest.mark.parametrize("i,j", CASES)
def test_kernel_matches_central_differences(i, j):
    net = random_net(i, j)
    rng = np.random.default_rng(i + 7 * j)
    params = {k: v + 0.2 * rng.standard_normal(v.shape) for k, v in net.init_params(seed=i).items()}
    X, Y = data(net, 3, rng)
    vector, scalar = net.compile(scalar=False), net.compile(scalar=True)
    loss, grads = vector(params, X, Y)
    loss_s, grads_s = scalar(params, X, Y)
    assert np.isfinite(loss) and abs(loss - loss_s) < 1e-12 * max(1, abs(loss))
    fd = numeric_grads(vector, params, X, Y)
    for p in params:
        assert grads[p].shape == params[p].shape and grads_s[p].shape == params[p].shape
        assert rel_err(grads[p], fd[p]) < 1e-6, (p, grads[p], fd[p])
        assert rel_err(grads_s[p], grads[p]) < 1e-10, p


def skip_net():
    net = sg.Network()
    x = net.input("x", 3)
    h1 = net.act(net.dense(x, 3), "tanh")
    s = net.add(net.dense(h1, 3, name="z2"), x)   # a residual connection
    h2 = net.act(s, "relu", name="h2")
    return net.set_loss(net.act(net.dense(h2, 2, name="z3"), "softmax"), "cross_entropy")


def shared_net():
    net = sg.Network()
    x = net.input("x", 3)
    h1 = net.act(net.dense(x, 3), "sigmoid")
    h2 = net.act(net.dense(h1, W="W1", b="b1", name="z2"), "softplus", name="h2")  # W1, b1 again
    return net.set_loss(net.dense(h2, 2, name="yhat"), "mse", penalty=0.1)


@pytest.mark.parametrize("make", [skip_net, shared_net])
def test_graph_nets(make):
    net = make()
    rng = np.random.default_rng(3)
    params = {k: v + 0.2 * rng.standard_normal(v.shape) for k, v in net.init_params().items()}
    X, Y = data(net, 4, rng)
    for scalar in (False, True):
        kernel = net.compile(scalar=scalar)
        _, grads = kernel(params, X, Y)
        fd = numeric_grads(kernel, params, X, Y)
        assert all(rel_err(grads[p], fd[p]) < 1e-6 for p in params)
    assert sg.gradcheck(net) < 1e-6


@pytest.mark.parametrize("scalar", [False, True])
@pytest.mark.parametrize("output,loss", [("softmax", "cross_entropy"), ("sigmoid", "bce"),
                                         ("identity", "mse")])
def test_float32_kept(output, loss, scalar):
    net = sg.mlp([3, 4, 2], hidden="sigmoid", output=output, loss=loss)
    params = net.init_params(seed=1, dtype="float32")
    X, Y = data(net, 5, np.random.default_rng(0), np.float32)
    kernel = net.compile(scalar=scalar)
    loss32, grads = kernel(params, X, Y)
    assert loss32.dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads.values())
    loss64, g64 = kernel({k: v.astype(np.float64) for k, v in params.items()}, X, Y)
    assert abs(loss32 - loss64) < 1e-5 and all(rel_err(grads[p], g64[p]) < 1e-4 for p in grads)
    assert net.predict(params, X).dtype == np.float32
    _, gx = kernel(params, X.astype(np.float64), Y)  # the parameters fix the dtype
    assert gx["W1"].dtype == np.float32


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("scalar", [False, True])
def test_huge_logits_stay_finite_and_right(dtype, scalar):
    # one layer, W = I: the logits are the inputs themselves
    ce = sg.mlp([2, 2], output="softmax", loss="cross_entropy")
    p = {"W1": np.eye(2, dtype=dtype), "b1": np.zeros(2, dtype)}
    X = np.array([[1000, -1000], [1000, -1000], [-1000, 1000]], dtype)
    loss, g = ce.compile(scalar=scalar)(p, X, np.array([0, 1, 1]))
    assert loss == pytest.approx(2000 / 3, rel=1e-6)
    assert all(np.isfinite(v).all() for v in g.values())
    assert g["b1"] == pytest.approx([1 / 3, -1 / 3], abs=1e-6)
    bce = sg.mlp([1, 1], output="sigmoid", loss="bce")
    p = {"W1": np.ones((1, 1), dtype), "b1": np.zeros(1, dtype)}
    loss, g = bce.compile(scalar=scalar)(p, np.array([[1000], [-1000]], dtype), np.array([0., 1.]))
    assert loss == pytest.approx(1000, rel=1e-6) and g["b1"] == pytest.approx([0], abs=1e-6)
    soft = sg.mlp([2, 2], output="softmax", loss="mse")
    loss, g = soft.compile(scalar=scalar)({"W1": np.eye(2, dtype=dtype), "b1": np.zeros(2, dtype)},
                                          X, np.eye(2, dtype=dtype)[[0, 1, 1]])
    assert np.isfinite(loss) and all(np.isfinite(v).all() for v in g.values())
    hidden = sg.mlp([2, 2, 1], hidden="sigmoid", loss="mse")  # σ and σ' at ±1000
    p = hidden.init_params(dtype=dtype)
    loss, g = hidden.compile(scalar=scalar)(p, X, np.ones((3, 1), dtype))
    assert np.isfinite(loss) and all(np.isfinite(v).all() for v in g.values())


def test_scalar_path_chosen_for_tiny_nets_only():
    net = sg.mlp([2, 2, 1], hidden="relu", output="sigmoid", loss="bce")
    kernel = net.compile()
    p = net.init_params()
    X, Y = data(net, 4, np.random.default_rng(0))
    assert "kernel_n4" in kernel.scalar_source(4) and "tolist" in kernel.scalar_source(4)
    assert "kernel.scalar_source(n)" in kernel.source.split("def kernel")[0]  # says what runs
    assert "n ≤ 33 " in kernel.source  # 33 × 6 weight entries ≤ 200
    a, b = kernel(p, X, Y), net.compile(scalar=False)(p, X, Y)
    assert a[0] == pytest.approx(b[0], rel=1e-12)
    assert all(np.allclose(a[1][k], b[1][k], rtol=1e-12, atol=1e-15) for k in p)
    big = sg.mlp([64, 32, 10], output="softmax", loss="cross_entropy").compile()
    assert "_scalar(n)" not in big.source and "# A tiny net" not in big.source


def test_source_is_vectorized_numpy():
    net = sg.mlp([4, 8, 8, 3], hidden="relu", output="softmax", loss="cross_entropy")
    src = net.compile().source
    code = "\n".join(line for line in src.splitlines() if not line.lstrip().startswith("#"))
    assert src.count(" @ ") >= 8 and "for " not in code and "np.exp(" in src
    g = next(k for k, (_, label) in net.compile().legend.items() if label == "G_z3")
    assert f"_add_at({g}, flat, Y, " in src  # integer labels are indexed, not one-hot
    mse = sg.mlp([3, 2], loss="mse").compile(scalar=False).source
    assert mse.count("- Y") + mse.count("-= Y") == 1  # ŷ − y computed once for loss and gradient


def test_labels_and_one_hot_agree():
    net = sg.mlp([3, 4, 3], hidden="tanh", output="softmax", loss="cross_entropy")
    kernel, p = net.compile(scalar=False), net.init_params(seed=2)
    X, y = data(net, 6, np.random.default_rng(1))
    a, b = kernel(p, X, y), kernel(p, X, np.eye(3)[y])
    assert a[0] == pytest.approx(b[0], rel=1e-13)
    assert all(np.allclose(a[1][k], b[1][k], rtol=1e-12, atol=1e-16) for k in p)


def test_validation_errors_are_one_line_and_precise():
    net = sg.mlp([3, 2, 2], output="softmax", loss="cross_entropy")
    kernel, p = net.compile(), net.init_params()
    X, y = np.zeros((5, 3)), np.array([0, 1, 1, 0, 1])
    cases = [({k: v for k, v in p.items() if k != "b2"}, X, y, "missing 'b2'"),
             ({**p, "W1": np.zeros((3, 2))}, X, y, "params['W1'] has shape (3, 2); expected (2, 3)"),
             ({**p, "b1": np.zeros((2, 1))}, X, y, "params['b1'] has shape (2, 1); expected (2,)"),
             ({**p, "W2": p["W2"].astype(np.float32)}, X, y, "params['W2'] is float32"),
             (p, np.zeros((5, 4)), y, "X has shape (5, 4); expected (n, 3)"),
             (p, X, np.array([0, 1, 2, 0, 1]), "labels must lie in 0..1"),
             (p, X, np.array([0, 1, -1, 0, 1]), "labels must lie in 0..1"),
             (p, X, y[:4], "Y has shape (4,); expected (5, 2)"),
             (p, X, np.array([0., 1, 1, 0, 1]), "integers")]
    for params, XX, YY, msg in cases:
        with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(")", r"\)")
                           .replace("[", r"\[").replace("]", r"\]")) as e:
            kernel(params, XX, YY)
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="backend"):
        net.compile(backend="tpu")
    loss, _ = kernel(p, [[0, 0, 0]] * 5, [0, 1, 1, 0, 1])  # lists and ints are converted
    assert loss == pytest.approx(np.log(2))


def test_init_params_and_predict():
    net = sg.mlp([50, 40, 3], hidden="relu", output="softmax", loss="cross_entropy")
    p = net.init_params(seed=5)
    assert {k: v.shape for k, v in p.items()} == param_shapes(net) == {
        "W1": (40, 50), "b1": (40,), "W2": (3, 40), "b2": (3,)}
    assert not p["b1"].any() and p["W1"].std() == pytest.approx(np.sqrt(2 / 50), rel=0.1)
    assert p["W2"].std() == pytest.approx(np.sqrt(2 / 43), rel=0.25)  # Glorot before softmax
    assert all(np.array_equal(p[k], net.init_params(seed=5)[k]) for k in p)
    assert net.init_params(dtype="float32")["W1"].dtype == np.float32
    P = net.predict(p, np.random.default_rng(0).standard_normal((7, 50)))
    assert P.shape == (7, 3) and np.allclose(P.sum(axis=1), 1)
    with pytest.raises(ValueError, match="dtype"):
        net.init_params(dtype="int32")


def test_compile_function_vectorized():
    f = sg.compile_function("x1**2*sin(x2) + sigmoid(x1)*relu(x2), x1/x2, softplus(x1 - x2)",
                            "x1 x2")
    P = np.random.default_rng(0).standard_normal((50, 2))
    J = f.jacobian(P)
    assert f(P).shape == (50, 3) and J.shape == (50, 3, 2)
    Jsym = sg.jacobian("x1**2*sin(x2) + sigmoid(x1)*relu(x2), x1/x2, softplus(x1 - x2)", "x1 x2")
    x1, x2 = sorted(Jsym.free_symbols, key=str)
    for k in (0, 17, 49):
        ref = np.array(Jsym.subs({x1: P[k, 0], x2: P[k, 1]}).evalf(), dtype=float)
        assert np.allclose(J[k], ref, rtol=1e-12)
    assert f.jacobian(P[0]).shape == (3, 2)  # a single point
    assert sg.gradcheck(f) < 1e-6
    one = sg.compile_function("x**3", "x")  # ∇ is shaped as the points are
    assert one.gradient(np.arange(3.0)).tolist() == [0, 3, 12]
    assert one.gradient(np.arange(3.0)[:, None]).shape == (3, 1) and one.gradient(2.0) == 12
    g = sg.compile_function(sg.derive_gradient("a*b**2 + log(1 + exp(a))", "a b"))
    assert g.kind == "scalar" and g.gradient(P).shape == (50, 2)
    big = g.gradient(np.array([[1000.0, 1.0], [-1000.0, 2.0]]))
    assert np.allclose(big, [[2, 2000], [4, -4000]])  # σ(±1000) without overflow
    M = sg.compile_function(sp.Matrix([[sp.Symbol("t"), 1], [0, sp.Symbol("t") ** 2]]), "t")
    assert M(np.arange(4.0)).shape == (4, 2, 2)
    with pytest.raises(ValueError, match="a not among"):
        sg.compile_function("a*x", "x")
    with pytest.raises(ValueError, match="points have shape"):
        f(np.zeros((3, 3)))


def test_compile_function_keeps_float32():
    f = sg.compile_function("tanh(x)*y", "x y")
    assert f(np.ones((2, 2), np.float32)).dtype == np.float32
    assert f.jacobian(np.ones((2, 2), np.float32)).dtype == np.float32


def test_identity_activations_never_update_inputs_in_place():
    net = sg.Network()
    x = net.input("x", 3)
    h = net.act(x, "identity", name="h0")          # h0 is X itself
    z1 = net.dense(x, 3, name="z1")
    s = net.add(h, z1)                             # z1 is used again: h0 is the dead operand
    h2 = net.add(net.act(s, "tanh", name="h2"), z1, name="s2")
    net.set_loss(net.dense(h2, 2, name="yhat"), "mse")
    p, X = net.init_params(), np.random.default_rng(0).standard_normal((70, 3))
    X0 = X.copy()
    kernel = net.compile(scalar=False)
    kernel(p, X, np.zeros((70, 2)))
    assert np.array_equal(X, X0)
    assert sg.gradcheck(net) < 1e-6


def test_scalar_path_falls_back_on_float_overflow():
    net = sg.mlp([1, 1], loss="mse")
    p = {"W1": np.array([[1e200]]), "b1": np.zeros(1)}
    with np.errstate(over="ignore"):
        loss, g = net.compile()(p, np.array([[1e200]]), np.zeros((1, 1)))
    assert loss == np.inf


def test_kernel_is_cached_per_structure():
    net = sg.mlp([2, 3, 1])
    assert net.compile() is compile_network(net)
    assert net.compile(scalar=False) is not net.compile()


def test_buffers_never_leak_between_calls_or_threads():
    import threading
    net = sg.mlp([6, 5, 4], hidden="relu", output="softmax", loss="cross_entropy")
    kernel, p = net.compile(scalar=False), net.init_params(seed=3)
    rng = np.random.default_rng(0)
    batches = [(rng.standard_normal((40, 6)), rng.integers(0, 4, 40)) for _ in range(6)]
    expected = [kernel(p, X, y) for X, y in batches]
    first = net.predict(p, batches[0][0])
    net.predict(p, batches[1][0])
    assert np.array_equal(first, net.predict(p, batches[0][0]))  # predictions are copies
    results = [None] * 6

    def work(i):
        for _ in range(50):
            results[i] = kernel(p, *batches[i])
    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (loss, g), (loss0, g0) in zip(results, expected):
        assert loss == loss0 and all(np.array_equal(g[k], g0[k]) for k in g)


def two_input_net():
    net = sg.Network()
    a, b = net.input("a", 2), net.input("b", 3)
    s = net.add(net.dense(a, 3, name="za"), net.dense(b, 3, name="zb"))
    h = net.act(s, "tanh", name="h")
    return net.set_loss(net.act(net.dense(h, 2, name="z3"), "softmax"), "cross_entropy")


def test_several_inputs_take_a_dict_of_arrays():
    net = two_input_net()
    rng = np.random.default_rng(4)
    p = {k: v + 0.2 * rng.standard_normal(v.shape) for k, v in net.init_params(seed=1).items()}
    X, y = {"a": rng.standard_normal((5, 2)), "b": rng.standard_normal((5, 3))}, rng.integers(0, 2, 5)
    vector, scalar = net.compile(scalar=False), net.compile(scalar=True)
    (loss, g), (loss_s, g_s) = vector(p, X, y), scalar(p, X, y)
    fd = numeric_grads(vector, p, X, y)
    assert loss == pytest.approx(loss_s, rel=1e-13)
    assert all(rel_err(g[k], fd[k]) < 1e-6 and rel_err(g_s[k], g[k]) < 1e-10 for k in p)
    assert sg.gradcheck(net) < 1e-6 and sg.gradcheck(net, p, X, y) < 1e-6
    P = net.predict(p, X)
    assert P.shape == (5, 2) and np.allclose(P.sum(axis=1), 1)
    cases = [(X["a"], "X: this network has 2 inputs; give a dict {'a': (n, 2) array, 'b': (n, 3) array}"),
             ({"a": X["a"]}, "X: missing 'b' (the network's inputs are 'a', 'b')"),
             ({**X, "c": X["a"]}, "X: unexpected 'c'"),
             ({"a": X["a"], "b": X["b"][:4]}, "X['b'] has 4 rows but X['a'] has 5"),
             ({"a": X["a"], "b": X["b"][:, :2]}, "X['b'] has shape (5, 2); expected (n, 3)")]
    for kernel in (vector, scalar):
        for XX, msg in cases:
            with pytest.raises(ValueError) as e:
                kernel(p, XX, y)
            assert str(e.value).startswith(msg) and "\n" not in str(e.value)
    params, history = sg.train(net, X, y, epochs=30, lr=0.05, batch_size=2, quiet=True)
    assert history[-1] < history[0]


@pytest.mark.parametrize("scalar", [False, True])
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_edge_cases_raise_clear_errors(scalar):
    net = sg.mlp([2, 2, 1], hidden="relu", output="sigmoid", loss="bce")
    kernel, p = net.compile(scalar=scalar), net.init_params()
    X, Y = np.ones((4, 2)), np.array([[0.], [1], [1], [0]])
    with pytest.raises(ValueError, match=r"^X has no examples \(shape \(0, 2\)\)$"):
        kernel(p, X[:0], Y[:0])
    with pytest.raises(ValueError, match=r"^params: unexpected 'W3', 'c' \(expected W1, b1, W2, b2\)$"):
        kernel({**p, "W3": p["W1"], "c": 1}, X, Y)
    bad = X.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"^X holds nan \(at \[2, 1\]\)$"):
        kernel(p, bad, Y)
    with pytest.raises(ValueError, match=r"^params\['b2'\] holds inf \(at \[0\]\)$"):
        kernel({**p, "b2": np.array([np.inf])}, X, Y)
    with pytest.raises(ValueError, match=r"^Y holds nan"):
        kernel(p, X, np.where(Y == 1, np.nan, Y))
    with pytest.raises(ValueError, match="softmax 'yhat' over 1 unit is always 1"):
        sg.mlp([2, 1], output="softmax", loss="cross_entropy")
    late = sg.mlp([2, 1], output="sigmoid")  # one output: cross_entropy is refused before its head
    with pytest.raises(ValueError, match="cross_entropy needs at least 2 outputs"):
        late.loss = sg.network.Loss.make("cross_entropy")  # set directly: refused as set_loss does
    late.__dict__["loss"] = sg.network.Loss.make("cross_entropy")  # past every check: compile still refuses
    with pytest.raises(ValueError, match="cross_entropy needs at least 2 outputs"):
        late.compile()


@pytest.mark.parametrize("scalar", [False, True])
def test_dtype_follows_the_parameters(scalar):
    net = sg.mlp([3, 4, 1], hidden="tanh")
    kernel = net.compile(scalar=scalar)
    X, Y = np.random.default_rng(0).standard_normal((4, 3)), np.ones((4, 1))
    for pdt, xdt in [("float64", np.float32), ("float32", np.float64), ("float64", np.int64)]:
        loss, g = kernel(net.init_params(dtype=pdt), X.astype(xdt), Y)
        assert loss.dtype == pdt and all(v.dtype == pdt for v in g.values())
        assert net.predict(net.init_params(dtype=pdt), X.astype(xdt)).dtype == pdt


def test_sigmoid_clamps_far_below_zero():
    f = sg.compile_function("sigmoid(x)", "x")
    v = f(np.array([-1000.0, -700.0, 0.0, 1000.0]))
    assert v[0] <= 1.3e-308 and v[1] == pytest.approx(np.exp(-700), rel=1e-14)
    assert v[2] == 0.5 and v[3] == 1.0


def test_relu_grad_at_zero_setting_reaches_every_route():
    """At z = 0 exactly, the matrix level (on explicit SymPy matrices) and the compiled kernel give
    relu'(0) as the network sets it; step(0) itself stays undecided (no global decides it)."""
    import sympy as sp

    from symgrad.derive.backprop import evaluate
    from symgrad.core.primitives import step
    net = sg.mlp([2, 2, 1], hidden="relu", output="identity", loss="mse")
    params = {"W1": np.array([[1.0, -1.0], [2.0, 1.0]]), "b1": np.array([0.0, -3.0]),
              "W2": np.array([[1.0, 2.0]]), "b2": np.array([0.5])}
    X, Y = np.array([[1.0, 1.0], [0.0, 0.0]]), np.array([[1.0], [-1.0]])  # z1_1 = 0 on both rows
    env = {"X": sp.Matrix(X), "Y": sp.Matrix(Y), **{k: sp.Matrix(v.reshape(v.shape[0], -1))
                                                    for k, v in params.items()}}
    env["b1"], env["b2"] = sp.Matrix(params["b1"]), sp.Matrix(params["b2"])
    seen = {}
    for value in (sp.Rational(1, 2), 1, 0):
        net.relu_grad_at_zero = value
        assert isinstance(step(0), step)
        exact = np.array(sp.Matrix(evaluate(net, 2, env)["dW1"]), dtype=float)
        kernel = net.compile()
        assert kernel.relu_grad_at_zero == value
        for scalar in (True, False):  # both code paths
            _, grads = net.compile(scalar=scalar)(params, X, Y)
            np.testing.assert_allclose(grads["W1"], exact, rtol=1e-12, atol=1e-15)
        seen[value] = exact[0].tolist()
    assert len({tuple(v) for v in seen.values()}) == 3  # the setting really changed the answer


def _relu_kernel_at_zero(kernel, n):
    """relu'(0) as the kernel computes it, read off ∂f/∂b1 with every pre-activation exactly 0."""
    params = {"W1": np.zeros((1, 1)), "b1": np.zeros(1), "W2": np.ones((1, 1)), "b2": np.zeros(1)}
    X, Y = np.zeros((n, 1)), -np.ones((n, 1))  # ŷ − y = 1 on every row: ∂f/∂b1 = relu'(0)
    return float(kernel(params, X, Y)[1]["b1"][0])


def test_a_built_kernel_keeps_the_relu_grad_it_reports_at_every_batch_size():
    """Before, relu'(0) was a process global: a kernel built before a change gave 0 at batch sizes
    4 and 40 but 1 at 8 (its unrolled code cache was not keyed by it)."""
    before = sg.mlp([1, 1, 1]).compile()
    kernels = [before]
    try:
        sg.set_relu_grad_at_zero(1)
        after = sg.mlp([1, 1, 1]).compile()
        half = sg.mlp([1, 1, 1]).compile(relu_grad_at_zero=0.5)
        kernels += [after, half]
        sg.set_relu_grad_at_zero(0)
        for k in kernels:
            for n in (1, 4, 8, 40, 400):
                assert _relu_kernel_at_zero(k, n) == pytest.approx(float(k.relu_grad_at_zero),
                                                                  rel=1e-12, abs=1e-12), n
        assert [float(k.relu_grad_at_zero) for k in kernels] == [0, 1, 0.5]
    finally:
        sg.set_relu_grad_at_zero(0)


def test_compiled_functions_fix_their_relu_grad_when_made():
    f = sg.compile_function("relu(x)", "x")
    g = sg.compile_function("relu(x)", "x", relu_grad_at_zero=1)
    try:
        sg.set_relu_grad_at_zero(0.5)
        h = sg.compile_function("relu(x)", "x")
        assert [fn.gradient(np.array([0.0]))[0] for fn in (f, g, h)] == [0.0, 1.0, 0.5]
        assert [float(fn.relu_grad_at_zero) for fn in (f, g, h)] == [0, 1, 0.5]
    finally:
        sg.set_relu_grad_at_zero(0)


@pytest.mark.parametrize("n", [2, 64])  # the scalar path (tiny batch) and the numpy path
def test_cross_entropy_targets_must_sum_to_one(n):
    """ŷ − y, the fused gradient, holds only when each target row sums to 1: a distribution is
    right (checked against central differences), a row that is not is refused, never mis-derived."""
    net = sg.mlp([3, 4, 3], hidden="tanh", output="softmax", loss="cross_entropy")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, 3))
    soft = rng.uniform(0.1, 1, (n, 3))
    soft /= soft.sum(axis=1, keepdims=True)
    assert sg.gradcheck(net, net.init_params(seed=1), X, soft) < 1e-6
    with pytest.raises(ValueError, match=r"Y: row 0 sums to 2; cross_entropy targets"):
        net.compile()(net.init_params(seed=1), X, 2 * soft)
    # a row that sums to 1 with a negative entry is no distribution either (a user's trial:
    # [0, 1.5, -0.5] gave a loss of 1.68 without a word)
    bad = soft.copy()
    bad[1] = [1.5, -0.5, 0.0]
    with pytest.raises(ValueError, match=r"^Y: row 1 has the negative entry -0.5 \(column 1\); "
                                         r"cross_entropy targets are rows of non-negative"):
        net.compile()(net.init_params(seed=1), X, bad)


def test_kernel_is_reused_until_the_network_or_relu_setting_changes():
    net = sg.mlp([2, 3, 1])
    k = net.compile()
    assert net.compile() is k
    sg.set_relu_grad_at_zero(1)
    try:
        assert net.compile() is k  # the package default is not the network's setting
    finally:
        sg.set_relu_grad_at_zero(0)
    net.relu_grad_at_zero = 1
    assert net.compile() is not k and net.compile().relu_grad_at_zero == 1
    net.relu_grad_at_zero = 0  # a change to the network: a fresh cache, as for any change
    k = net.compile()
    assert net.compile() is k and k.relu_grad_at_zero == 0
    net.penalty = 0.5
    assert net.compile() is not k


@pytest.mark.parametrize("backend", ["numpy", "python"])
def test_a_kernel_called_without_targets_says_so(backend):
    """kernel(params, X, None) said "not enough values to unpack"."""
    net = sg.mlp([2, 2, 3], output="softmax", loss="cross_entropy")
    k = net.compile(backend=backend)
    with pytest.raises(ValueError, match=r"Y: the kernel needs the targets, \(n, 3\) one row per "
                                         r"example or \(n,\) integer labels; got None"):
        k(net.init_params(), np.zeros((4, 2)), None)


def test_the_scalar_path_divides_by_a_square():
    """The python path printed ŷ² as ŷ*ŷ, unparenthesized after '/': ∂(1/ŷ)/∂ŷ = −1/ŷ² ran as
    −1/ŷ*ŷ = −1, and the gradients of a loss with 1/ŷ in it were off by up to 2·10⁴ from the
    numpy path's."""
    net = sg.mlp([2, 2, 1], hidden="tanh", loss="(yhat - y)**2 + 1/yhat")
    p = net.init_params()
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((4, 2)), rng.standard_normal((4, 1))
    kernel = net.compile()
    assert "kernel_n4" in kernel.scalar_source(4)  # the scalar path is the one that runs
    got, want = kernel(p, X, Y), net.compile(scalar=False)(p, X, Y)
    assert got[0] == pytest.approx(want[0], rel=1e-12)
    assert all(np.allclose(got[1][k], want[1][k], rtol=1e-9, atol=1e-12) for k in p)
    a, x = sp.symbols("a x")
    assert ScalarPrinter().doprint(a / x**2) == "a/(x*x)"


def _counting_checks(kernel, monkeypatch):
    """The kernel's slow path (Spec.check: conversions, a scan of every array), counted."""
    spec, calls = kernel.__globals__["_spec"], []
    real = spec.check
    monkeypatch.setattr(spec, "check", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_every_legal_target_form_takes_the_fast_path(dtype, monkeypatch):
    """Integer labels and one-hot rows of the kernel's dtype are both checked in the kernel's own
    code (issue 15: one-hot rows went through Spec.check, a third of a 64-32-10 step), and give
    the same loss and gradients."""
    net = sg.mlp([5, 4, 3], hidden="relu", output="softmax", loss="cross_entropy")
    kernel, p = net.compile(), net.init_params(seed=2, dtype=dtype)
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((64, 5)).astype(dtype), rng.integers(0, 3, 64)
    calls = _counting_checks(kernel, monkeypatch)
    l1, g1 = kernel(p, X, y)
    l2, g2 = kernel(p, X, np.eye(3, dtype=dtype)[y])
    l3, g3 = kernel(p, X, np.asfortranarray(np.eye(3, dtype=dtype)[y]))
    assert calls == []
    tol = 1e-12 if dtype == "float64" else 1e-5
    for loss, grads in ((l2, g2), (l3, g3)):
        assert abs(loss - l1) <= tol * abs(l1) and loss.dtype == np.dtype(dtype)
        for q in g1:
            assert np.abs(grads[q] - g1[q]).max() <= tol * np.abs(g1[q]).max()
    kernel(p, X, np.eye(3)[y])  # float64 rows for float32 parameters: converted by Spec.check
    assert len(calls) == (1 if dtype == "float32" else 0)


def test_one_hot_rows_are_checked_on_the_fast_path(monkeypatch):
    """The fast path's row check bounds Σ_i (s_i − 1)², so a single row off raises with Spec's
    message, and many rows each just inside the tolerance (the bound exceeded, no row off) are
    accepted, as Spec.rows accepts them; nan and inf in Y are named as before."""
    from symgrad.compile.spec import Spec
    net = sg.mlp([3, 4, 3], hidden="tanh", output="softmax", loss="cross_entropy")
    kernel, p = net.compile(), net.init_params(seed=1)
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((64, 3)), np.eye(3)[rng.integers(0, 3, 64)]
    calls = _counting_checks(kernel, monkeypatch)
    off = Y.copy()
    off[5] *= 2
    with pytest.raises(ValueError, match=r"^Y: row 5 sums to 2; cross_entropy targets"):
        kernel(p, X, off)
    tol = Spec.row_tolerance(np.dtype("float64"), 3)
    close = Y * (1 + 0.5 * tol)  # 64 · (tol/2)² > tol²: past the bound, every row within tol
    assert abs(kernel(p, X, close)[0] - kernel(p, X, Y)[0]) < 1e-9
    nan = Y.copy()
    nan[7, 1] = np.nan
    with pytest.raises(ValueError, match=r"^Y holds nan \(at \[7, 1\]\)$"):
        kernel(p, X, nan)
    inf = Y.copy()
    inf[3, 0] = np.inf
    with pytest.raises(ValueError, match=r"^Y: row 3 sums to inf; cross_entropy targets"):
        kernel(p, X, inf)
    assert calls == [1]  # (the nan: the loss came out nan, and Spec said why)


@pytest.mark.parametrize("targets", ["labels", "onehot", "mse"])
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_an_inf_that_a_unit_hides_is_still_named(targets):
    """−inf in b1 under relu, or in b2 at a class no label names, gave a finite loss and
    gradients; −inf in X at a feature every unit weighs positively gave a finite loss and nan in
    dW1. The kernel checks its float arguments after the fact (Σ‖a‖², one dot each)."""
    loss, out = ("mse", "identity") if targets == "mse" else ("cross_entropy", "softmax")
    net = sg.mlp([4, 3, 3], hidden="relu", output=out, loss=loss)
    kernel, p = net.compile(scalar=False), net.init_params(seed=0)
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((64, 4)), np.zeros(64, int)
    Y = {"labels": y, "onehot": np.eye(3)[y], "mse": rng.standard_normal((64, 3))}[targets]
    assert np.isfinite(kernel(p, X, Y)[0])
    cases = [({**p, "b1": np.array([-np.inf, 0, 0])}, X, r"^params\['b1'\] holds inf \(at \[0\]\)$")]
    if targets != "mse":
        cases.append(({**p, "b2": np.array([0, 0, -np.inf])}, X,
                      r"^params\['b2'\] holds inf \(at \[2\]\)$"))
    bad = X.copy()
    bad[5, 1] = -np.inf
    cases.append(({**p, "W1": np.abs(p["W1"])}, bad, r"^X holds inf \(at \[5, 1\]\)$"))
    for q, XX, msg in cases:
        with pytest.raises(ValueError, match=msg):
            kernel(q, XX, Y)


def test_dict_inputs_and_sequences_take_the_fast_path(monkeypatch):
    """A dict of inputs and (n, T, k) one-hot or (n, T) labels of a sequence network are checked
    in the kernel's own code too, with the loss Spec.check's converted arguments give."""
    seq = sg.Network()  # dense → tanh → dense → softmax at each of 6 positions
    x = seq.input("tokens", shape=(6, 3))
    seq.set_loss(seq.act(seq.dense(seq.act(seq.dense(x, 5), "tanh"), 4), "softmax"),
                 "cross_entropy")
    rng = np.random.default_rng(3)
    X2, y2 = {"a": rng.standard_normal((40, 2)), "b": rng.standard_normal((40, 3))}, \
        rng.integers(0, 2, 40)
    X3, y3 = rng.standard_normal((8, 6, 3)), rng.integers(0, 4, (8, 6))
    for net, X, y, k in ((two_input_net(), X2, y2, 2), (seq, X3, y3, 4)):
        kernel, p = net.compile(scalar=False), net.init_params(seed=1)
        for Y in (y, np.eye(k)[y]):
            want = kernel(p, X, Y.tolist())  # (a list: converted by Spec.check)
            calls = _counting_checks(kernel, monkeypatch)
            got = kernel(p, X, Y)
            assert calls == [] and got[0] == pytest.approx(want[0], rel=1e-13)
            assert all(np.allclose(got[1][q], want[1][q], rtol=1e-12, atol=0) for q in p)
            monkeypatch.undo()
