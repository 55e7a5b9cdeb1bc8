"""Networks: the seeds' worked results, and matrix level == element-wise sympy.diff for every
activation × loss (the reference loss is written out here, independently of the engine)."""
import random

import pytest
import sympy as sp

import symgrad as sg
from symgrad.core.matexpr import Cotangent, Target
from symgrad.core.program import Kind
from symgrad.derive.backprop import algorithm, evaluate, explicit
from symgrad.derive.calculus import same
from symgrad.core.derivation import Derivation
from symgrad.printing.latex import to_latex
from symgrad.network import ACTIVATIONS, activation

R = lambda *names: sp.symbols(names, real=True)  # noqa: E731


# -- the XOR slides --------------------------------------------------------------------------------
def test_xor_dyhat_dw1_is_the_slides_cases():
    w1, w2, w5, b1, x1, x2 = R("w1", "w2", "w5", "b1", "x1", "x2")
    d = sg.mlp([2, 2, 1], hidden="relu").derive("w1", level="element", of="output")
    z = w1 * x1 + w2 * x2 + b1
    assert d.result == sp.Piecewise((0, z <= 0), (w5 * x1, True))
    chain = next(s for s in d.steps if s.rule == "chain_rule")
    assert "separate" in chain.why and "chain rule applies" in chain.why
    assert any(s.why == "only this term depends on w1" for s in d.steps)


def test_xor_exercise_dyhat_db2():
    w3, w4, w6, b2, x1, x2 = R("w3", "w4", "w6", "b2", "x1", "x2")
    d = sg.mlp([2, 2, 1], hidden="relu").derive("b2", level="element", of="output")
    assert d.result == sp.Piecewise((0, w3 * x1 + w4 * x2 + b2 <= 0), (w6, True))


def test_xor_parameter_names_follow_the_notes():
    from symgrad.derive.element import scalarize
    S = scalarize(sg.mlp([2, 2, 1]))
    assert [str(s) for s in S.params["W1"]] == ["w1", "w2", "w3", "w4"]
    assert [str(s) for s in S.params["W2"]] == ["w5", "w6"]
    assert [str(s) for s in S.params["b1"]] + [str(s) for s in S.params["b2"]] == ["b1", "b2", "b3"]
    P = scalarize(sg.mlp([2, 2, 1]), naming="position")
    assert str(P.params["W1"][0, 1]) == "W1_12"


def test_sigma_prime_is_sigma_times_one_minus_sigma_and_tanh():
    d = sg.mlp([1, 1, 1], hidden="sigmoid").derive("w1", level="element", of="output")
    z1 = sp.Symbol("z1", real=True)
    factors = next(s for s in d.steps if s.rule == "jacobian").rhs.args
    assert sg.sigmoid(z1) * (1 - sg.sigmoid(z1)) in factors
    d = sg.mlp([1, 1, 1], hidden="tanh").derive("w1", level="element", of="output")
    assert 1 - sp.tanh(z1) ** 2 in next(s for s in d.steps if s.rule == "jacobian").rhs.args


# -- Algorithm 6.4 ----------------------------------------------------------------------------------
def test_algorithm_6_4_for_relu_softmax_cross_entropy():
    net = sg.mlp([4, 3, 2], hidden="relu", output="softmax", loss="cross_entropy")
    d = algorithm(net)
    per = {str(s.lhs): s.rhs for s in d.steps if s.rule in ("backward", "gradient")}
    yh, y = sp.MatrixSymbol("yhat", 2, 1), Target("y", 2, 1)
    g2 = Cotangent("g_z2", 2, 1)
    h1, x = sp.MatrixSymbol("h1", 3, 1), sp.MatrixSymbol("x", 4, 1)
    assert per["g_z2"] == yh - y                          # softmax + CE collapse to ŷ − y
    assert per["∇_W2 ℓ"] == g2 * h1.T                # ∇W2 = (ŷ − y) h1ᵀ
    assert per["∇_b2 ℓ"] == g2                       # ∇b2 = ŷ − y
    g1 = Cotangent("g_z1", 3, 1)
    assert per["∇_W1 ℓ"] == g1 * x.T and per["∇_b1 ℓ"] == g1
    gh = per["g_h1"]
    assert gh == sp.MatrixSymbol("W2", 2, 3).T * g2       # g ← W2ᵀ g
    assert str(per["g_z1"]) == "HadamardProduct(g_h1, relu'(z1))"  # g ⊙ relu'(z1)
    # g is defined once and shared: each G appears once in the compiled program
    prog = d.meta["program"]
    names = [e.out.sym.name for e in prog.eqns]
    shown = [str(e.out.label) for e in prog.of_kind(Kind.BACKWARD)]
    assert len(names) == len(set(names)) and shown.count("G_z1") == 1


def test_matrix_derivation_writes_the_jacobian_chain_with_shapes():
    net = sg.mlp([3, 4, 2], hidden="relu")
    d = net.derive("W1")
    chain = next(s for s in d.steps if s.rule == "chain_rule")
    assert chain.shapes == ((1, 2), (2, 4), (4, 4), (4, 12))
    diag = next(s for s in d.steps if "diagonal" in s.why)
    assert isinstance(diag.rhs, sp.DiagMatrix)
    unvec = next(s for s in d.steps if s.rule == "unvectorize")
    assert unvec.rhs == Cotangent("g_z1", 4, 1) * sp.MatrixSymbol("x", 3, 1).T
    assert d.steps[-1].rule == "batch"


# -- the feature-discovery notes and CS 181 ---------------------------------------------------------
def test_feature_discovery_dL_dw_ij():
    """∂L/∂ẇ_ij = ∂L/∂o · ∂o/∂π̈ · ẅ_j a'(π̇_j) x_i (no biases, relu features, logistic output)."""
    net = sg.Network()
    x = net.input("x", 3)
    pi1 = net.dense(x, 2, b=False, name="pi1")
    h = net.act(pi1, "relu", name="xdot")
    pi2 = net.dense(h, 1, b=False, name="pi2")
    o = net.act(pi2, "sigmoid", name="yhat")
    net.set_loss(o, "mse")
    d = net.derive("W1_21", level="element", naming="position")  # ẇ from input 1 to feature 2
    x1, w2, yh, y, z = R("x1", "W2_12", "yhat", "y", "pi1_2")
    pi2s = sp.Symbol("pi2", real=True)
    chain = [s for s in d.steps if s.rule == "jacobian"][0].rhs
    dL_do, do_dpi, dpi_dx, dx_dpi, dpi_dw = chain.args
    assert dL_do == yh - y
    assert dpi_dx == w2 and dpi_dw == x1
    assert dx_dpi == sg.step(z)
    assert same(do_dpi, sg.sigmoid(pi2s) * (1 - sg.sigmoid(pi2s)))


def test_logistic_regression_gradient_is_sum_of_sigma_minus_y_times_x():
    net = sg.mlp([2, 1], output="sigmoid", loss="bce")
    n = 3
    X = sp.Matrix(n, 2, lambda i, j: sp.Symbol(f"x{i}{j}", real=True))
    Y = sp.Matrix(n, 1, lambda i, _: sp.Symbol(f"y{i}", real=True))
    w = sp.Matrix([R("w1", "w2")])
    w0 = sp.Symbol("w0", real=True)
    g = explicit(net, net.gradients()["W1"], n, {"X": X, "Y": Y, "W1": w, "b1": [[w0]]})
    h = [w[0] * X[i, 0] + w[1] * X[i, 1] + w0 for i in range(n)]
    expected = sum(((sg.sigmoid(h[i]) - Y[i]) * X[i, :] for i in range(n)), sp.zeros(1, 2)) / n
    assert same(g, expected)


# -- matrix level == element-wise sympy.diff --------------------------------------------------------
def _reference_loss(net, env, n):
    """The mean loss written out entry by entry, independently of the engine's derivations, and
    every node's value (for choosing points on both sides of each kink)."""
    vals = {net.inputs[0]: sp.Matrix(env["X"])}
    for name, node in net.nodes.items():
        if node.op == "dense":
            W = sp.Matrix(env[node.params[0]])
            V = vals[node.inputs[0]] * W.T
            if len(node.params) > 1:
                V += sp.ones(n, 1) * sp.Matrix(env[node.params[1]]).T
            vals[name] = V
        elif node.op == "act":
            vals[name] = vals[node.inputs[0]].applyfunc(
                lambda t: node.act.f(t).rewrite(sp.Piecewise) if node.act.name != "sigmoid"
                else 1 / (1 + sp.exp(-t)))
        elif node.op == "softmax":
            Z = vals[node.inputs[0]]
            vals[name] = sp.Matrix(n, Z.cols, lambda i, j: sp.exp(Z[i, j]) /
                                   sum(sp.exp(Z[i, k]) for k in range(Z.cols)))
        elif node.op == "add":
            vals[name] = vals[node.inputs[0]] + vals[node.inputs[1]]
    P, Y = vals[net.output_node], sp.Matrix(env["Y"])
    kind = net.loss.name
    if kind == "mse":
        total = sum((P[i, k] - Y[i, k]) ** 2 for i in range(n) for k in range(P.cols)) / 2
    elif kind == "bce":
        total = -sum(Y[i, k] * sp.log(P[i, k]) + (1 - Y[i, k]) * sp.log(1 - P[i, k])
                     for i in range(n) for k in range(P.cols))
    elif kind == "cross_entropy":
        total = -sum(Y[i, k] * sp.log(P[i, k]) for i in range(n) for k in range(P.cols))
    else:
        total = sum(net.loss.L(P[i, k], Y[i, k]) for i in range(n) for k in range(P.cols))
    reg = sum((sum(w ** 2 for w in sp.Matrix(env[p])) for p in net.parameters
               if p.startswith("W")), 0)
    return total / n + net.penalty / 2 * reg, vals


def _env(net, n):
    env = {"X": sp.Matrix(n, net.nodes["x"].dim, lambda i, j: sp.Symbol(f"x{i}{j}", real=True))}
    out = net.nodes[net.output_node].dim
    env["Y"] = sp.Matrix(n, out, lambda i, j: sp.Symbol(f"y{i}{j}", real=True))
    if net.loss.name == "cross_entropy":  # targets are distributions (one-hot): Σ_k y_ik = 1,
        for i in range(n):                # which is what makes softmax + CE collapse to ŷ − y
            env["Y"][i, out - 1] = 1 - sum(env["Y"][i, :out - 1])
    for p, (r, c) in net.shapes.items():
        env[p] = sp.Matrix(r, c, lambda i, j: sp.Symbol(f"{p}_{i}{j}", real=True))
    return env


KINKED = ("relu", "leaky_relu", "a")  # a: the user activation x/(1 + abs(x))


def _points(net, env, vals, count=3):
    """Random points (seeded) chosen so that every pre-activation entry of every kinked unit is
    negative at one point and positive at another: both branches of relu'(z) are checked."""
    syms = sorted(set().union(*(sp.Matrix(m).free_symbols for m in env.values())), key=str)
    kinks = [e for name, node in net.nodes.items() if node.op == "act" and node.act.name in KINKED
             for e in vals[node.inputs[0]]]
    rng, pts, seen = random.Random(0), [], [set() for _ in kinks]
    for _ in range(400):
        pt = {s: sp.Float(rng.uniform(-2, 2), 30) for s in syms}
        signs = [bool(e.xreplace(pt) > 0) for e in kinks]
        if len(pts) < count or any(s not in seen[i] for i, s in enumerate(signs)):
            pts.append(pt)
            for i, s in enumerate(signs):
                seen[i].add(s)
        if len(pts) >= count and all(len(s) == 2 for s in seen):
            return pts
    raise AssertionError("no points found on both sides of every kink")


def _check_against_diff(net, n=1):
    env = _env(net, n)
    ref, vals = _reference_loss(net, env, n)
    ours_all = evaluate(net, n, env)  # the batch program, run on explicit symbolic matrices
    pts = _points(net, env, vals)
    for p in net.parameters:
        ours = ours_all["d" + p]
        P = sp.Matrix(env[p])
        theirs = sp.Matrix(P.rows, P.cols, lambda i, j: sp.diff(ref, P[i, j]))
        assert ours.shape == theirs.shape == net.shapes[p], p
        for pt in pts:
            a, b = (sp.Matrix(m).xreplace(pt).evalf(30) for m in (ours, theirs))
            assert all(abs(u - v) < 1e-20 * (1 + abs(u)) for u, v in zip(a, b)), \
                f"∇{p} differs from sympy.diff at a point"


HIDDEN = ["identity", "relu", "leaky_relu", "sigmoid", "tanh", "softplus", "x/(1 + abs(x))"]
HEADS = [("identity", "mse"), ("sigmoid", "bce"), ("softmax", "cross_entropy"), ("softmax", "mse"),
         ("identity", "sqrt(1 + (yhat - y)^2) - 1")]  # a user loss: pseudo-Huber


@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("output,loss", HEADS)
def test_matrix_level_equals_elementwise_sympy_diff(hidden, output, loss):
    _check_against_diff(sg.mlp([2, 2, 2], hidden=activation(hidden), output=output, loss=loss))


def test_deeper_net_with_penalty_equals_sympy_diff():
    _check_against_diff(sg.mlp([2, 2, 2, 1], hidden="tanh", penalty=sp.Rational(1, 10)), n=2)


def test_skip_connection_and_shared_weights_equal_sympy_diff():
    net = sg.Network()
    x = net.input("x", 2)
    z1 = net.dense(x, 2)
    h1 = net.act(z1, "tanh")
    s = net.add(h1, x, name="s")                       # a skip connection
    z2 = net.dense(s, 2, W="W1", b="b2", name="z2")    # W1 shared by two layers
    h2 = net.act(z2, "sigmoid", name="h2")
    out = net.dense(h2, 1, W="W3", b="b3", name="yhat")
    net.set_loss(out, "mse")
    assert net.parameters == ["W1", "b1", "b2", "W3", "b3"]
    _check_against_diff(net)
    d = net.derive("W1")
    assert any("shared by 2 layers" in s.why for s in d.steps)


def test_shared_weights_with_default_names_keep_their_own_bias():
    net = sg.Network()
    z1 = net.dense(net.input("x", 2), 2)
    h1 = net.act(z1, "relu")
    z2 = net.dense(h1, W="W1")                         # W1 shared, default names: no clash
    h2 = net.act(z2, "tanh")
    net.set_loss(net.dense(h2, 1), "mse")
    assert net.parameters == ["W1", "b1", "b2", "W3", "b3"]
    assert net.nodes[z2].params == ("W1", "b2")       # sharing W does not share b
    net2 = sg.Network()
    z = net2.dense(net2.input("x", 2), 2)
    assert net2.nodes[net2.dense(net2.act(z, "tanh"), 2, W="W1", b="b1")].params == ("W1", "b1")
    _check_against_diff(net)


def test_fused_losses_are_derived_as_algebra_not_asserted():
    d = sg.mlp([2, 3], output="softmax", loss="cross_entropy").derive("W1")
    fused = [s for s in d.steps if s.lhs is None and s.rule == "simplify"]
    assert "Σ_k y_k = 1" in fused[-1].why
    yh, y = sp.MatrixSymbol("yhat", 3, 1), Target("y", 3, 1)
    assert fused[-1].rhs == (yh - y).T
    # the step before it is −yᵀ + (yᵀ1)ŷᵀ: equal to (ŷ − y)ᵀ exactly when Σ_k y_k = 1
    before = fused[-2].rhs.subs({y: sp.Matrix([1, 0, 0])}).as_explicit()
    assert before == (sp.Matrix(yh) - sp.Matrix([1, 0, 0])).T
    d = sg.mlp([2, 1], output="sigmoid", loss="bce").derive("b1")
    assert any("(ŷ_k − y_k)/(ŷ_k(1 − ŷ_k)) · ŷ_k(1 − ŷ_k)" in s.why for s in d.steps)
    assert not any(type(s.rhs).__name__ == "Note" for s in d.steps)


def test_backprop_includes_the_penalty_and_long_block_rows_are_elided():
    net = sg.mlp([3, 6, 1], penalty=sp.Rational(1, 10))
    steps = {str(s.lhs): s.rhs for s in net.backprop().steps}
    W1 = sp.MatrixSymbol("W1", 6, 3)
    assert steps["∇_W1 J"] == steps["∇_W1 ℓ"] + sp.Rational(1, 10) * W1
    assert "∇_b1 J" not in steps                         # Ω covers the weights only
    block = next(s for s in net.derive("W1").steps if "block diagonal" in s.why)
    assert "…" in [str(b) for b in block.rhs.blocks] and "4 to 5 of 6" in block.why
    tex = to_latex(Derivation("", [block]))
    assert r"\cdots" in tex and "..." not in tex and r"\textbf" not in tex
    assert "g_z₁[6] xᵀ]]" in Derivation("", [block]).to_text()  # the last block, 1-based as in TeX


def test_the_shared_backward_pass_is_rebuilt_when_the_network_changes():
    net = sg.mlp([2, 2, 1], hidden="tanh")
    before = net.gradients()["W2"]
    assert net.backprop() is net.backprop()              # one pass shared by every parameter
    net.penalty = sp.Rational(1, 2)                       # even a change made directly
    after = net.gradients()["W2"]
    assert after == sp.MatAdd(before, sp.Rational(1, 2) * sp.MatrixSymbol("W2", 1, 2))
    assert net.is_weight("W2") and not net.is_weight("b2") and net.weights == ["W1", "W2"]


def test_element_level_deep_net_checks_itself_against_diff():
    net = sg.mlp([2, 2, 2, 2], hidden="sigmoid", output="softmax", loss="cross_entropy")
    d = net.derive("w3", level="element")
    assert same(d.result, d.meta["direct"])
    assert any(s.rule == "backward" and "δ_" in s.why for s in d.steps)


# -- scale and errors -------------------------------------------------------------------------------
def test_large_and_deep_networks_derive_without_expanding():
    big = sg.mlp([784, 256, 128, 10], output="softmax", loss="cross_entropy")
    g = big.gradients()
    assert g["W1"].shape == (256, 784) and g["b3"].shape == (10, 1)
    deep = sg.mlp([8] * 17)
    assert len(deep.gradients()) == 32


@pytest.mark.parametrize("call,fragment", [
    (lambda: sg.mlp([2, 2, 1]).derive("W9"), "unknown parameter 'W9'"),
    (lambda: sg.mlp([2, 2, 1]).derive("w99", level="element"), "unknown weight 'w99'"),
    (lambda: sg.mlp([2, 2, 1]).derive("W1", level="bogus"), "level must be"),
    (lambda: sg.mlp([2]), "at least"),
    (lambda: sg.mlp([2, 0, 1]), "positive integer"),
    (lambda: sg.mlp([True, 2, 1]), "x: a layer size must be a positive integer, got True"),
    (lambda: sg.mlp([2, 2.0, 1]), "W1: a layer size must be a positive integer, got 2.0"),
    (lambda: sg.mlp([2, 1], output="identity", loss="bce"), "bce needs sigmoid"),
    (lambda: sg.mlp([2, 2], loss="cross_entropy"), "cross_entropy needs softmax"),
    (lambda: sg.mlp([2, 2, 1], hidden="frobnicate(x)"), "unknown function"),
    (lambda: sg.mlp([2, 2, 1], hidden="x + y"), "expression in x alone"),
    (lambda: sg.network.parse_spec("2-x-1"), "bad network spec"),
])
def test_bad_networks_fail_with_a_clear_message(call, fragment):
    with pytest.raises(ValueError, match=fragment):
        call()


def test_sizes_may_be_numpy_integers():
    """sg.mlp([np.int64(2), 2, 1]) said "a layer size must be a positive integer, got
    np.int64(2)" (sizes read from an array's shape or a config are numpy integers)."""
    import numpy as np
    net = sg.mlp([np.int64(2), np.int32(3), np.uint8(1)])
    assert [n.dim for n in net.nodes.values()][:2] == [2, 3]
    assert all(type(n.dim) is int for n in net.nodes.values())
    assert net.shapes["W1"] == (3, 2) and type(net.shapes["W1"][0]) is int
    g = sg.Network()
    x = g.input("x", np.int64(4))
    g.set_loss(g.dense(x, np.int16(2)), "mse")
    assert g.shapes["W1"] == (2, 4)
    assert sg.derive_matrix_gradient(np.int64(2), np.int64(3)).result.shape == (2, 3)
    with pytest.raises(ValueError, match="n and m must be positive integers"):
        sg.derive_matrix_gradient(True, 2)


def test_a_softmax_over_one_unit_is_refused_whatever_the_loss():
    """mlp([2, 1], output="softmax") with mse was accepted and trained: ŷ = 1 for every input,
    every gradient 0 (issue 13)."""
    for loss in ("mse", "cross_entropy", "(yhat - y)^2"):
        with pytest.raises(ValueError, match=r"^softmax 'yhat' over 1 unit is always 1"):
            sg.mlp([2, 1], output="softmax", loss=loss)
    net = sg.Network()
    z = net.dense(net.input("x", 3), 1)
    with pytest.raises(ValueError, match=r"^softmax 'mine' over 1 unit"):
        net.act(z, "softmax", name="mine")  # a hidden one too, and by apply
    with pytest.raises(ValueError, match=r"over 1 unit is always 1"):
        net.apply("softmax", z)
    seq = sg.Network()
    with pytest.raises(ValueError, match=r"over 1 unit is always 1"):
        seq.act(seq.dense(seq.input("x", shape=(4, 3)), 1), "softmax")
    assert "yhat" in sg.mlp([2, 2], output="softmax").nodes  # two units are a softmax


def test_set_loss_refuses_cross_entropy_over_one_output_and_keeps_the_old_loss():
    net = sg.mlp([2, 1], output="sigmoid")
    with pytest.raises(ValueError, match="^cross_entropy needs at least 2 outputs: a softmax over 1 "
                                         "output is always 1"):
        net.set_loss("yhat", "cross_entropy")
    assert net.loss.name == "mse"
    from symgrad.network import LOSSES, Loss, Activation  # still importable where they were
    assert Loss.make("bce").fused and Activation is type(ACTIVATIONS["relu"]) and "bce" in LOSSES


def test_builtin_activation_table_covers_the_issue():
    assert {"identity", "relu", "leaky_relu", "sigmoid", "tanh", "softplus"} <= set(ACTIVATIONS)


def test_bce_needs_the_sigmoid_itself_not_an_activation_named_sigmoid():
    fake = sg.activation("tanh(x)", name="sigmoid")  # σ(z) − y would be a wrong gradient for it
    with pytest.raises(ValueError, match="bce needs sigmoid"):
        sg.mlp([2, 2, 1], hidden="relu", output=fake, loss="bce")
    assert sg.mlp([2, 2, 1], output=sg.activation("sigmoid"), loss="bce").loss.fused


def test_mlp_of_a_spec_text_says_what_it_takes():
    """sg.mlp("2-2-1") read each character as a size and said "got '2'"."""
    with pytest.raises(ValueError, match=r"mlp: sizes is a list such as \[2, 2, 1\], not the "
                                         r"text '2-2-1' \(sg.load_network reads a spec"):
        sg.mlp("2-2-1")
    assert sg.load_network("2-2-1").parameters == ["W1", "b1", "W2", "b2"]


def test_every_activation_and_loss_pair_compiles_after_unpickling_in_a_new_process(tmp_path):
    """A net pickled here and unpickled in a fresh interpreter (what a Dask process cluster does)
    compiles and gives this process's loss. check_output compared the activation's Lambda, whose
    bound Dummy differs in a new process: sigmoid+bce raised "bce needs sigmoid outputs"."""
    import pickle
    import subprocess
    import sys
    from pathlib import Path

    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.normal(size=(5, 3))
    cases = []
    # the built-in activations (others registered by other tests are unknown to a new process)
    builtin = ["identity", "relu", "sigmoid", "softplus", "leaky_relu", "tanh"]
    assert set(builtin) <= set(ACTIVATIONS)
    for hidden in builtin:
        for output in [*builtin, "softmax"]:
            for loss in ("mse", "bce", "cross_entropy"):
                try:
                    net = sg.mlp([3, 2, 2], hidden=hidden, output=output, loss=loss)
                except ValueError:  # bce needs sigmoid outputs, cross_entropy softmax ones
                    continue
                Y = np.array([0, 1, 1, 0, 1]) if loss == "cross_entropy" else rng.random((5, 2))
                p = net.init_params(seed=1)
                cases.append(((hidden, output, loss), pickle.dumps(net), p, Y,
                              float(net.compile()(p, X, Y)[0])))
    assert {c[0][1:] for c in cases} >= {("sigmoid", "bce"), ("softmax", "cross_entropy"),
                                         ("tanh", "mse")}
    (tmp_path / "cases.pkl").write_bytes(pickle.dumps((X, cases)))
    child = ("import pickle, sys\n"
             "X, cases = pickle.load(open(sys.argv[1], 'rb'))\n"
             "for key, blob, p, Y, _ in cases:\n"
             "    print(*key, repr(float(pickle.loads(blob).compile()(p, X, Y)[0])))\n")
    r = subprocess.run([sys.executable, "-c", child, str(tmp_path / "cases.pkl")],
                       capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert r.returncode == 0, r.stderr[-2000:]
    got = [line.split() for line in r.stdout.splitlines()]
    assert [tuple(g[:3]) for g in got] == [c[0] for c in cases]
    for g, c in zip(got, cases):
        assert float(g[3]) == pytest.approx(c[4], rel=1e-12), g
