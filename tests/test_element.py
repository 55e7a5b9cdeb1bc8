"""The element level: ∂ℓ/∂p from the unit-by-unit engine, for every scalar parameter, equals the
matrix level's gradient entry and sympy.diff of the loss written out here (independently of both
engines), for every activation × output/loss pair. Smooth pairs are compared exactly (the
difference is shown to be 0 symbolically); pairs with kinks at points chosen on both sides of every
kink. Then the cases, the step text, the batch step, the penalty and the size limit."""
import random

import pytest
import sympy as sp

import symgrad as sg
from symgrad.derive.backprop import explicit
from symgrad.derive.element import SIZE_LIMIT, scalarize
from symgrad.core.primitives import MAX_CASES, set_relu_grad_at_zero, unfold_steps
from symgrad.network import activation

HUBER = "min(abs(yhat - y), 1)*(abs(yhat - y) - min(abs(yhat - y), 1)/2)"
HIDDEN = ["identity", "relu", "leaky_relu", "sigmoid", "tanh", "softplus", "x/(1 + abs(x))"]
HEADS = [("identity", "mse"), ("sigmoid", "bce"), ("softmax", "cross_entropy"), ("softmax", "mse"),
         ("identity", HUBER), ("identity", "sqrt(1 + (yhat - y)^2) - 1")]
KINKED = {"relu", "leaky_relu", "x/(1 + abs(x))"}


# -- the independent reference: the net written out here, then sympy.diff ----------------------------
def _reference(net, S):
    """The per-example loss in S's symbols, written out without the engines; relu and leaky_relu
    as cases, σ and softplus through exp, so sympy.diff meets none of symgrad's rules."""
    t = sp.Dummy("t", real=True)
    own = {"relu": sp.Piecewise((0, t <= 0), (t, True)),
           "leaky_relu": sp.Piecewise((t / 100, t <= 0), (t, True)),
           "sigmoid": 1 / (1 + sp.exp(-t)), "softplus": sp.log(1 + sp.exp(t))}
    vals = {"x": S.inputs["x"]}
    for name, node in net.nodes.items():
        if node.op == "dense":
            vals[name] = S.params[node.params[0]] * vals[node.inputs[0]] + S.params[node.params[1]]
        elif node.op == "act":
            f = own.get(node.act.name, node.act.f(t))
            vals[name] = vals[node.inputs[0]].applyfunc(lambda a: f.xreplace({t: a}))
        elif node.op == "softmax":
            e = vals[node.inputs[0]].applyfunc(sp.exp)
            vals[name] = e / sum(e)
    out, y = vals[net.output_node], S.target
    kind = net.loss.name
    if kind == "mse":
        return sum((a - b) ** 2 for a, b in zip(out, y)) / 2, vals
    if kind == "bce":
        return -sum(b * sp.log(a) + (1 - b) * sp.log(1 - a) for a, b in zip(out, y)), vals
    if kind == "cross_entropy":
        return -sum(b * sp.log(a) for a, b in zip(out, y)), vals
    return sum(net.loss.L(a, b) for a, b in zip(out, y)), vals


# -- exact: every function call becomes a symbol, then the difference is a rational function ----------
def _is_zero(d) -> bool:
    """Whether d = 0 as a rational function of its atoms: σ and softplus written with exp, each
    exp(c·a) as E_a^c (so exp(−a) = 1/E_a and exp(2a) = E_a²), every other call one symbol."""
    d = d.replace(lambda f: isinstance(f, sg.sigmoid), lambda f: 1 / (1 + sp.exp(-f.args[0])))
    d = d.replace(lambda f: isinstance(f, sg.softplus), lambda f: sp.log(1 + sp.exp(f.args[0])))
    atoms = {}
    while True:
        calls = [f for f in d.atoms(sp.Function) if not any(a.has(sp.Function) for a in f.args)]
        if not calls:
            break
        sub = {}
        for f in calls:
            if isinstance(f, sp.exp):
                c, a = f.args[0].as_content_primitive()
                if a.could_extract_minus_sign():
                    c, a = -c, -a
                sub[f] = atoms.setdefault((sp.exp, a), sp.Dummy("E", positive=True)) ** c
            else:
                sub[f] = atoms.setdefault((f.func, f.args), sp.Dummy("F", real=True))
        d = d.xreplace(sub)
    num, _ = sp.fraction(sp.together(d))
    return sp.expand(num) == 0


# -- points on both sides of every kink ------------------------------------------------------------
def _points(net, S, vals, huber):
    """Points (30 digits) where the first-layer pre-activations take every pattern of signs, and
    with a Huber loss each residual ŷ_k − y_k lies inside |r| ≤ 1 at some points, outside at others."""
    rng = random.Random(0)
    W, b, x = S.params["W1"], S.params["b1"], S.inputs["x"]
    signs = [[(p >> j) & 1 for j in range(W.rows)] for p in range(2 ** W.rows)]
    pts = []
    for k, pattern in enumerate(signs):
        # in name order: a set's order follows the process's hash seed, which made the points (and,
        # once in about 15 runs, the Huber case's agreement at 1e-20) differ from run to run
        pt = {s: sp.Float(rng.uniform(-2, 2), 30) for s in sorted(
              set().union(*[M.free_symbols for M in S.params.values()], x.free_symbols), key=str)}
        for j, up in enumerate(pattern):  # z1_j = W1_j · x + b1_j = ±(0.3 … 1.5)
            z = (W[j, :] * x)[0].xreplace(pt)
            pt[b[j]] = (1 if up else -1) * sp.Float(rng.uniform(0.3, 1.5), 30) - z
        yhat = [v.xreplace(pt) for v in vals[net.output_node]]
        for i, s in enumerate(S.target):  # with Huber: |ŷ_i − y_i| = 0.5 for some i, 2.5 for others
            r = (2.5 if (i + k) % 2 else 0.5) * rng.choice([-1, 1])
            pt[s] = yhat[i] - r if huber else sp.Float(rng.uniform(0, 1), 30)
        pts.append(pt)
    return pts


def _agree_at(a, b, pts) -> bool:
    for pt in pts:
        va, vb = (complex(sp.N(e.xreplace(pt), 50)) for e in (a, b))  # digits to spare at 1e-20
        if abs(va - vb) > 1e-20 * (1 + abs(va)):
            return False
    return True


@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("output,loss", HEADS)
def test_element_equals_matrix_level_and_sympy_diff(hidden, output, loss):
    net = sg.mlp([2, 2, 2], hidden=activation(hidden), output=output, loss=loss)
    S = scalarize(net)
    ref, vals = _reference(net, S)
    env = {"X": S.inputs["x"].T, "Y": S.target.T, **S.params}
    grads = net.gradients()
    # softmax + cross-entropy at the matrix level assumes Σ_k y_k = 1 (one-hot targets)
    onehot = {S.target[-1]: 1 - sum(S.target[:-1])} if loss == "cross_entropy" else {}
    kinked = hidden in KINKED or loss == HUBER
    pts = _points(net, S, vals, loss == HUBER)
    for p, M in S.params.items():
        matrix = explicit(net, grads[p], 1, env)
        assert matrix.shape == M.shape
        for k, w in enumerate(M):
            d = net.derive(w.name, level="element")
            ours = d.meta["explicit"]
            assert not (ours.free_symbols - ref.free_symbols), w  # only x, y, parameters
            theirs, mat = sp.diff(ref, w), matrix[k]
            if kinked:
                assert _agree_at(ours, theirs, pts), f"∂ℓ/∂{w} ≠ sympy.diff"
                assert _agree_at(ours.xreplace(onehot), mat.xreplace(onehot), pts), \
                    f"∂ℓ/∂{w} ≠ the matrix level's entry"
            else:  # one point first: a wrong result fails fast instead of expanding for long
                assert _agree_at(ours, theirs, pts[:1]) and _is_zero(ours - theirs), \
                    f"∂ℓ/∂{w} ≠ sympy.diff"
                assert _is_zero((ours - mat).xreplace(onehot)), f"∂ℓ/∂{w} ≠ the matrix level"


# -- cases ------------------------------------------------------------------------------------------
R = lambda *names: sp.symbols(names, real=True)  # noqa: E731


def test_xor_loss_has_two_cases_in_the_forward_values():
    w1, w2, w5, b1, x1, x2, yhat, y = R("w1", "w2", "w5", "b1", "x1", "x2", "yhat", "y")
    d = sg.mlp([2, 2, 1], hidden="relu").derive("w1", level="element")
    assert d.result == sp.Piecewise((0, w1 * x1 + w2 * x2 + b1 <= 0), (w5 * x1 * (yhat - y), True))


def test_softmax_cross_entropy_w5_has_no_cases_and_no_relu_prime():
    d = sg.mlp([2, 2, 2], hidden="relu", output="softmax",
               loss="cross_entropy").derive("w5", level="element")
    assert not d.result.has(sp.Piecewise) and not any(s.rule == "cases" for s in d.steps)
    assert not any("relu'" in s.why for s in d.steps)
    assert any("yhat_1 − y_1, as at the matrix level" in s.why for s in d.steps)


def test_cases_are_exclusive_merged_and_capped():
    a, b, c, x, w, y = R("a", "b", "c", "x", "w", "y")
    step = sg.step
    assert unfold_steps(w * x * step(a) * step(b), 0) == \
        sp.Piecewise((0, (a <= 0) | (b <= 0)), (w * x, True))  # one zero case, not four
    two = unfold_steps(x * step(a) * (w * step(b) + y * step(c)), 0)
    assert len(two.args) == MAX_CASES
    for pt in ({a: 1, b: 1, c: -1}, {a: 1, b: -1, c: 1}, {a: -1, b: 1, c: 1}, {a: 1, b: 1, c: 1}):
        want = (x * step(a) * (w * step(b) + y * step(c))).xreplace(pt)
        assert two.xreplace(pt) == want
    many = unfold_steps(x * step(a) * (w * step(b) + y * step(c) + c * step(x)), 0)
    assert len(many.args) == 2 and many.args[1][0].has(step)  # the rest stays as step(z)
    assert unfold_steps(sg.relu(a) * step(b), 0) == sp.Piecewise((0, b <= 0), (sg.relu(a), True))


def test_relu_prime_at_zero_is_configurable():
    w1, w2, w5, b1, x1, x2 = R("w1", "w2", "w5", "b1", "x1", "x2")
    z = w1 * x1 + w2 * x2 + b1
    net = sg.mlp([2, 2, 1], hidden="relu")
    net.relu_grad_at_zero = 1  # a setting of the network, not of the process
    d = net.derive("w1", level="element", of="output")
    assert d.result == sp.Piecewise((0, z < 0), (w5 * x1, True))
    net.relu_grad_at_zero = sp.Rational(1, 2)
    d = net.derive("w1", level="element", of="output")
    assert d.result.subs({x1: 1, x2: 0, b1: 0, w1: 0}) == w5 / 2
    try:  # the package default seeds new networks only
        set_relu_grad_at_zero(1)
        d = sg.mlp([2, 2, 1], hidden="relu").derive("w1", level="element", of="output")
        assert d.result == sp.Piecewise((0, z < 0), (w5 * x1, True))
        assert net.derive("w1", level="element", of="output").result.subs(
            {x1: 1, x2: 0, b1: 0, w1: 0}) == w5 / 2
    finally:
        set_relu_grad_at_zero(0)


def test_deeper_relu_nets_stay_small_and_exact():
    net = sg.mlp([3, 3, 3, 1], hidden="relu")
    S = scalarize(net)
    for w in [s for M in S.params.values() for s in M]:
        d = net.derive(w.name, level="element")
        pw = d.result.atoms(sp.Piecewise)
        assert all(len(p.args) <= MAX_CASES for p in pw), w
        assert d.meta["checked"]  # the engine compared it with sympy.diff


def test_too_large_for_the_element_level_is_refused_at_once():
    with pytest.raises(ValueError, match=r'too large for the element level.*level="matrix"'):
        sg.mlp([784, 256, 10]).derive("w1", level="element")
    with pytest.raises(ValueError, match=f"the limit is {SIZE_LIMIT}"):
        sg.mlp([4, 4, 4, 4, 4, 1]).derive("w1", level="element")


def test_huber_loss_on_a_tanh_net():
    net = sg.mlp([2, 2, 1], hidden="tanh", loss=HUBER)
    d = net.derive("w1", level="element")
    assert d.meta["checked"].startswith("numeric")
    assert d.result.has(sp.Symbol("yhat", real=True))  # kinked ∂ℓ/∂ŷ: read in ŷ


# -- the steps read like the notes -------------------------------------------------------------------
XOR = [f"w{i}" for i in range(1, 7)] + ["b1", "b2", "b3"]


@pytest.mark.parametrize("of", ["output", "loss"])
def test_every_xor_step_is_true_and_said_once(of):
    net = sg.mlp([2, 2, 1], hidden="relu")
    for w in XOR:
        d = net.derive(w, level="element", of=of)
        text = d.to_text()
        for s in d.steps:
            if s.rule == "chain_rule":  # "A separates B from w": three different names
                a, rest = s.why.split(" separates ")
                b, c = rest.split(" from ")
                c = c.split(",")[0]
                assert len({a, b, c}) == 3 and c == w, s.why
        rhs = [str(s.rhs) for s in d.steps]
        assert all(x != y for x, y in zip(rhs, rhs[1:])), text  # no line said twice
        assert rhs.count(str(d.result)) == 1, text  # the result is said once (∂ŷ/∂b3 = 1)
        assert "yhat separates yhat" not in text


def test_chain_factors_follow_the_notes():
    d = sg.mlp([2, 2, 1], hidden="relu").derive("w1", level="element", of="output")
    chains = [s for s in d.steps if s.rule == "chain_rule"]
    assert [c.why for c in chains] == [
        "h1_1 separates yhat from w1, so the chain rule applies",
        "z1_1 separates h1_1 from w1, so the chain rule applies"]
    d = sg.mlp([2, 2, 1], hidden="relu").derive("b3", level="element", of="output")
    assert d.result == 1 and not any(s.rule == "chain_rule" for s in d.steps)


def test_shared_weight_sums_over_its_uses():
    net = sg.Network()
    x = net.input("x", 1)
    z1 = net.dense(x, 1, W="W1", b=False, name="z1")
    h = net.act(z1, "tanh", name="h")
    z2 = net.dense(h, 1, W="W1", b=False, name="yhat")  # the same weight twice
    net.set_loss(z2, "mse")
    d = net.derive("w1", level="element")
    assert any(s.rule == "sum" and "is used by" in s.why for s in d.steps)
    w, xs = R("w1", "x")
    assert sp.simplify(d.meta["explicit"] - sp.diff((w * sp.tanh(w * xs) - sp.Symbol("y", real=True))
                                                    ** 2 / 2, w)) == 0


# -- the batch step and the penalty ------------------------------------------------------------------
def test_batch_step_is_a_real_expression_with_the_penalty():
    lam = sp.Rational(1, 2)
    net = sg.mlp([2, 2, 1], hidden="relu", penalty=lam)
    i, n = (sp.Symbol(s, integer=True, positive=True) for s in "in")
    ell = sp.IndexedBase(sp.Symbol("ℓ"))
    for name, extra in (("w1", lam * sp.Symbol("w1", real=True)), ("b1", 0)):
        d = net.derive(name, level="element")
        batch = d.steps[-1]
        assert batch.rule == "batch" and isinstance(batch.rhs, sp.Expr)
        w = sp.Symbol(name, real=True)
        assert batch.rhs == sp.Sum(sp.Derivative(ell[i], w, evaluate=False), (i, 1, n)) / n + extra
        assert "Sum" not in d.to_latex() and r"\sum" in d.to_latex()
    # n = 1: the matrix level's gradient of f (with λΩ) is ∂ℓ/∂w1 + λ w1
    S = scalarize(net)
    env = {"X": S.inputs["x"].T, "Y": S.target.T, **S.params}
    g = explicit(net, net.gradients()["W1"], 1, env)[0, 0]
    per = net.derive("w1", level="element").meta["explicit"]
    pt = {s: sp.Rational(k + 3, 7) for k, s in enumerate(sorted(g.free_symbols, key=str))}
    assert (g - per - lam * sp.Symbol("w1", real=True)).xreplace(pt) == 0


def test_batch_step_prints_as_the_mean_over_examples():
    d = sg.mlp([2, 2, 1], hidden="relu", output="identity", loss="mse").derive("w1", level="element")
    assert d.to_text().splitlines()[-1].startswith("∂f/∂w₁ = (1/n) Σ_{i=1}^{n} ∂ℓᵢ/∂w₁    [")
    assert (r"\frac{\partial f}{\partial w_{1}} &= \frac{1}{n} \sum_{i=1}^{n} "
            r"\frac{\partial \ell^{(i)}}{\partial w_{1}} &&") in d.to_latex()


def test_position_names_are_unambiguous_past_nine():
    """W1 of a 12-11-1 net is 11×12: row 1 column 11 and row 11 column 1 were both W1_111, one
    symbol, so its gradient was the sum of two. Each entry's gradient must be the kernel's."""
    import numpy as np
    net = sg.mlp([12, 11, 1], hidden="tanh")
    S = scalarize(net)
    names = [s.name for M in S.params.values() for s in M]
    assert len(set(names)) == len(names) == 11 * 12 + 11 + 11 + 1
    assert "W1_1,11" in names and "W1_11,1" in names and "W1_111" not in names
    rng = np.random.default_rng(0)
    p = net.init_params(seed=3)
    X, Y = rng.normal(size=(1, 12)), rng.normal(size=(1, 1))
    _, g = net.compile(scalar=False)(p, X, Y)
    env = {s: p[k][np.unravel_index(i, p[k].shape)] if p[k].ndim == 2 else p[k][i]
           for k, M in S.params.items() for i, s in enumerate(M)}
    env.update({s: X[0, i] for i, s in enumerate(S.inputs["x"])})
    env.update({S.target[0]: Y[0, 0]})
    for name, (r, c) in [("W1_1,11", (0, 10)), ("W1_11,1", (10, 0)), ("W1_11,12", (10, 11))]:
        e = net.derive(name, level="element").meta["explicit"]
        assert float(e.xreplace(env)) == pytest.approx(g["W1"][r, c], rel=1e-10), name
    tex = sg.to_latex(net.derive("W1_11,1", level="element"))
    assert r"W_{11,1}^{(1)}" in tex and "W1" not in tex
