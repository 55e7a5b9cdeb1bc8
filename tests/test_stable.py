"""compile_function in stable forms (symgrad.compile.forms), and torch's x**y conventions at x = 0.

Printed as written, log(sigmoid(x)) gave −709 at x = −1000 (exact −1000) and log(eˣ + eʸ) inf at
x = 1000; the value and every partial derivative must now be the exact one, to rounding, wherever
that is finite: at ±1000, ±1e6, 0 and at random moderate points. "Exact" is the expression as the
user wrote it, in mpmath with digits enough for its cancellations (930 at |x| = 1000: e^−2000 at
worst) — and at ±1e6, where that would need 900 000 digits, a hand-written form of each case that
has no cancellation (mpmath's exponent range is unbounded, so e^±1e6 is no overflow), itself
checked against the brute-force one at the smaller points.
"""
import functools
import math
import warnings

import mpmath
import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings, strategies as st

import symgrad as sg
from symgrad.core.primitives import sigmoid, softplus
from symgrad.derive import calculus


def sig(u):
    return 1 / (1 + mpmath.exp(-u))


def sp_(u):  # softplus
    return mpmath.log1p(mpmath.exp(u))


def lse(*v):
    m = max(v)
    return m + mpmath.log(sum(mpmath.exp(t - m) for t in v))


# text → its value and partial derivatives (in the variables' name order), without cancellation
CASES = {
    "log(sigmoid(x))": lambda x: (-sp_(-x), sig(-x)),
    "log(1 - sigmoid(x))": lambda x: (-sp_(x), -sig(x)),
    "log(sigmoid(-x))": lambda x: (-sp_(x), -sig(x)),
    "log(1 + exp(x))": lambda x: (sp_(x), sig(x)),
    "log(1 + exp(-x))": lambda x: (sp_(-x), -sig(-x)),
    "exp(x)/(1 + exp(x))": lambda x: (sig(x), sig(x) * sig(-x)),
    "1/(1 + exp(x))": lambda x: (sig(-x), -sig(x) * sig(-x)),
    "log(2*sigmoid(x))": lambda x: (mpmath.log(2) - sp_(-x), sig(-x)),
    "x*log(sigmoid(x))": lambda x: (-x * sp_(-x), -sp_(-x) + x * sig(-x)),
    "log(1 - exp(x))": lambda x: (mpmath.log(-mpmath.expm1(x)), -1 / mpmath.expm1(-x)),
    "log(exp(2*x)/(1 + exp(x))**2)": lambda x: (-2 * sp_(-x), 2 * sig(-x)),  # 2 log σ(x)
    "softplus(x) - x": lambda x: (sp_(-x), -sig(-x)),
    "log(exp(x) + exp(y))": lambda x, y: (lse(x, y), sig(x - y), sig(y - x)),
    "exp(x)/(exp(x) + exp(y))": lambda x, y: (sig(x - y), sig(x - y) * sig(y - x),
                                              -sig(x - y) * sig(y - x)),
    # binary cross-entropy on a logit x, target y (∂/∂y = softplus(x) − softplus(−x) = x)
    "y*log(sigmoid(x)) + (1 - y)*log(1 - sigmoid(x))":
        lambda x, y: (-y * sp_(-x) - (1 - y) * sp_(x), y * sig(-x) - (1 - y) * sig(x), x),
    "log(exp(x) + exp(y) + exp(z))":
        lambda x, y, z: (lse(x, y, z),) + tuple(mpmath.exp(t - lse(x, y, z)) for t in (x, y, z)),
    # log softmax, written out
    "log(exp(x)/(exp(x) + exp(y) + exp(z)))":
        lambda x, y, z: (x - lse(x, y, z), mpmath.exp(lse(y, z) - lse(x, y, z)),
                         -mpmath.exp(y - lse(x, y, z)), -mpmath.exp(z - lse(x, y, z))),
}
EXTREME = (-1e6, -1000.0, -40.0, 0.0, 40.0, 1000.0, 1e6)
# where the value is a finite real, and its derivative too (−1/x near 0: finite in floats)
DOMAIN = {"log(1 - exp(x))": lambda x: x < -1e-300}


def _inside(text, p):
    return DOMAIN.get(text, lambda *p: True)(*p)


def _points(k):
    """Each variable at each extreme with the others at 0.5, and the corners (±1000, ±1e6)."""
    pts = [tuple(v if i == j else 0.5 for i in range(k)) for j in range(k) for v in EXTREME]
    if k > 1:
        pts += [(a, -a) + (0.5,) * (k - 2) for a in (1000.0, -1000.0, 1e6)]
        pts += [(a,) * k for a in (1000.0, -1e6)]
    return pts


@functools.lru_cache(maxsize=None)
def _written(text):
    """The variables, and the value and partials of text as written, in mpmath (σ and softplus
    spelt out: their numpy _imp_ would take mpmath numbers to floats)."""
    e = calculus.parse(text).replace(sigmoid, lambda u: 1 / (1 + sp.exp(-u))) \
        .replace(softplus, lambda u: sp.log(1 + sp.exp(u)))
    syms = sorted(e.free_symbols, key=str)
    return syms, sp.lambdify(syms, [e] + [sp.diff(e, s) for s in syms], "mpmath")


def exact(text, point):
    """The value and partials of text at point, by brute force (None where not a finite real),
    in enough digits for the worst cancellation here: 1 − e^(±2x), and 1 − eˣ for x near 0."""
    _, f = _written(text)
    big = max(map(abs, point))
    tiny = min([abs(v) for v in point if v] or [1.0])
    with mpmath.workdps(60 + math.ceil(2 * big / math.log(10) - min(0.0, math.log10(tiny)))):
        vals = f(*map(mpmath.mpf, point))
    return [_float(v) for v in vals]


def _float(v):
    """v as a float, or None where it is not a real a float holds."""
    if not (isinstance(v, mpmath.mpf) and mpmath.isfinite(v)) or abs(v) > np.finfo(float).max:
        return None
    return float(v)


def by_hand(text, point):
    with mpmath.workdps(40):
        vals = CASES[text](*map(mpmath.mpf, point))
    return [_float(v) for v in vals]


@functools.lru_cache(maxsize=None)
def compiled(text):
    return sg.compile_function(text, [str(s) for s in _written(text)[0]])


def computed(text, P):
    """Value and partials of the compiled function at the points P, one row per point."""
    f = compiled(text)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow, 0·inf or log 0 on the way either
        return np.column_stack([f(P), f.gradient(P).reshape(len(P), -1)])


def close(got, want, scale):
    """Equal to rounding (relative 1e-12), or both within 1e-300 of 0 (σ is clamped at 1e-308,
    where the exact σ(−1000) is 5e-435)."""
    tol = 1e-12 * abs(want) + 1e-300 + (1e-12 * scale if scale else 0)
    return np.isfinite(got) and abs(got - want) <= tol


def check(text, points, reference, scale=0.0):
    got = computed(text, np.array(points, dtype=float))
    bad = []
    for p, row in zip(points, got):
        for what, g, w in zip(["value"] + [f"d/d{s}" for s in _written(text)[0]], row,
                              reference(text, p)):
            if w is not None and not close(g, w, scale * max(1.0, *map(abs, p))):
                bad.append(f"{what} at {p}: {g!r}, exact {w!r}")
    assert not bad, f"{text}:\n" + "\n".join(bad)


@pytest.mark.parametrize("text", CASES)
def test_exact_at_extreme_arguments(text):
    pts = [p for p in _points(len(_written(text)[0])) if _inside(text, p)]
    check(text, pts, by_hand)
    smaller = [p for p in pts if max(map(abs, p)) <= 1000]
    check(text, smaller, exact)
    for p in smaller:  # the hand-written forms are the function as written
        for h, e in zip(by_hand(text, p), exact(text, p)):
            assert (h is None) == (e is None) and (h is None or close(h, e, 0)), (text, p)


@pytest.mark.parametrize("text", CASES)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_exact_at_moderate_points(text, data):
    k = len(_written(text)[0])
    p = data.draw(st.tuples(*[st.floats(-30, 30)] * k).filter(lambda p: _inside(text, p)))
    # ∂ of a softmax weight p near 1 is p(1 − p), computed from log p: its error is the rounding
    # of log p (|x| ulp), relative to 1 − p; so 1e-12 absolute besides the relative 1e-12
    check(text, [p], exact, scale=1.0)


def test_log_sigmoid_is_the_issues_case():
    f = sg.compile_function("log(sigmoid(x))", "x")
    assert f(-1000.0) == -1000.0  # was -709: log of σ clamped at 1e-308
    assert f.gradient(40.0) == pytest.approx(math.exp(-40), rel=1e-14)  # σ(−x); 1 − σ(x) was 0
    g = sg.compile_function("log(1 - exp(x))", "x")  # 1 − eˣ as −expm1(x): was log 0 = −inf
    assert g(-1e-20) == pytest.approx(math.log(1e-20), rel=1e-15)
    f32 = f(np.array([-100.0, 100.0], np.float32))  # the forms keep float32, and stay exact
    assert f32.dtype == np.float32 and f32.tolist() == [-100.0, pytest.approx(-3.7e-44, rel=0.1)]


def test_a_derivation_compiles_to_the_same_stable_code():
    """derive_gradient's result for eˣ/(1 + eˣ) is simplified to eˣ/(1 + 2eˣ + e²ˣ): nan at
    x = 1000 as written; the compiled gradient is the derivative of σ(x) instead."""
    d = sg.derive_gradient("exp(x)/(1 + exp(x))", "x")
    g = sg.compile_function(d).jacobian(np.array([-1000.0, 0.0, 1000.0])).ravel()
    assert np.all(np.isfinite(g)) and g[1] == 0.25 and abs(g[0]) < 1e-300 and abs(g[2]) < 1e-300
    lse = sg.compile_function(sg.derive_gradient("log(exp(a) + exp(b))", "a b"))
    assert lse.gradient(np.array([[1000.0, 0.0]])).tolist() == [[1.0, 0.0]]


def test_the_table_writes_each_form():
    from symgrad.compile.forms import stable_forms
    from symgrad.core.primitives import log1mexp, logsumexp
    x, y, z = sp.symbols("x y z", real=True)
    assert stable_forms(sp.log(sigmoid(x))) == -softplus(-x)
    assert stable_forms(sp.log(1 - sigmoid(x))) == -softplus(x)
    assert stable_forms(sp.log(1 + sp.exp(x))) == softplus(x)
    assert stable_forms(sp.log(sp.exp(x) + sp.exp(y))) == logsumexp(x, y)
    assert stable_forms(sp.exp(x) / (1 + sp.exp(x))) == sigmoid(x)
    assert stable_forms(1 / (1 + sp.exp(x))) == sigmoid(-x)
    assert stable_forms(sp.exp(x) / (sp.exp(x) + sp.exp(y))) == sigmoid(x - y)
    assert stable_forms(sp.log(sp.exp(x) / (sp.exp(x) + sp.exp(y) + sp.exp(z)))) == \
        -logsumexp(0, y - x, z - x)  # differences first: exact where x = y = z = −1e6
    assert stable_forms(1 - sigmoid(x)) == sigmoid(-x)
    assert str(stable_forms(sp.exp(x) - 1)) == "expm1(x)"
    assert stable_forms(sp.log(1 - sp.exp(x))) == log1mexp(x)
    assert stable_forms(sp.log(2 * sigmoid(x))) == sp.log(2) - softplus(-x)
    assert stable_forms(x**2 + sp.sin(x)) == x**2 + sp.sin(x)  # nothing to rewrite


# -- x**y at x = 0: torch's conventions ------------------------------------------------------------
@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")  # the reference, where installed


def _torch_grads(torch, x, y):
    X = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    Y = torch.tensor(y, dtype=torch.float64, requires_grad=True)
    return [g.item() for g in torch.autograd.grad(X**Y, (X, Y))]


POW_POINTS = [(0.0, y) for y in (-1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0)] + \
             [(2.0, 0.0), (0.5, -1.5), (3.0, 2.5), (-2.0, 2.0), (-2.0, 0.5)]


def test_pow_derivatives_at_zero_are_torchs(torch):
    """d/dy x**y = x**y·log x is 0·(−inf) = nan at x = 0 in numpy; torch's pow backward (and HIPS
    autograd) give 0 there for y ≥ 0, and −inf for y < 0. d/dx = y·x**(y−1) is 0·inf = nan at
    x = 0, y = 0; torch gives 0. Elsewhere at x = 0 they agree already: d/dx is inf for y = 0.5
    (and −inf for y < 0), 1 for y = 1, 0 for y = 2; at x < 0 a non-integer y is nan in both."""
    f = sg.compile_function("x**y", "x y")
    P = np.array(POW_POINTS)
    with np.errstate(divide="ignore", invalid="ignore"):  # the infs and nans torch has too
        ours = f.gradient(P)
    want = np.array([_torch_grads(torch, x, y) for x, y in POW_POINTS])
    np.testing.assert_allclose(ours, want, rtol=1e-14)  # equal_nan, and infs by sign
    assert ours[2].tolist() == [0.0, 0.0] and ours[5].tolist() == [0.0, 0.0]  # (0, 0), (0, 2)
    # np.where runs the branch it does not take too, at a harmless point: no 0·inf warning
    with np.errstate(divide="raise", invalid="raise", over="raise"):
        g = f.gradient(np.array([[0.0, 0.0], [0.0, 2.0], [0.0, 1.0], [2.0, 0.0]]))
    assert g.tolist() == [[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [0.0, math.log(2)]]


@settings(max_examples=30, deadline=None)
@given(x=st.sampled_from([0.0, 1.0, 0.25]) | st.floats(0, 10),
       y=st.sampled_from([0.0, 1.0, 2.0]) | st.floats(-3, 3))
def test_pow_in_a_composition_agrees_with_torch(torch, x, y):
    f = sg.compile_function("x**y*sin(y) + x*(x + 1)**y", "x y")
    with np.errstate(all="ignore"):  # the infs and nans torch has too
        ours = f.gradient(np.array([x, y]))
    X = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    Y = torch.tensor(y, dtype=torch.float64, requires_grad=True)
    want = [g.item() for g in torch.autograd.grad(X**Y * torch.sin(Y) + X * (X + 1)**Y, (X, Y))]
    np.testing.assert_allclose(ours, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("c", [0, 0.5, 1, 2])
def test_d_dx_of_a_constant_power_at_zero_is_torchs(torch, c):
    """x**c for c = 0, 1/2, 1, 2 at x = 0: SymPy writes 0, 1/(2√x) (inf), 1 and 2x, whose values
    at 0 (0, inf, 1, 0) are torch's for torch.pow(x, c); no convention is needed there."""
    f = sg.compile_function(f"x**{c}", "x")
    with np.errstate(divide="ignore"):
        ours = f.gradient(np.array([0.0]))[0]
    X = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
    want = torch.autograd.grad(X**c, X)[0].item()
    assert ours == want  # inf == inf


@pytest.mark.parametrize("backend", ["numpy", "python"])
def test_an_activation_in_a_network_kernel_takes_the_same_stable_forms(backend):
    """hidden = log σ(x) printed as written was −709 at x = −1000, and the kernel's loss and
    gradients inf; now the value is exact (−1000), and loss and gradients are what the exact
    function gives, written out here by hand with log σ(u) = −softplus(−u), ∂/∂u = σ(−u)."""
    net = sg.mlp([1, 1, 1], hidden=sg.activation("log(sigmoid(x))"), output="identity",
                 loss="mse")
    kernel = net.compile(backend=backend)
    p = {"W1": np.array([[1.5]]), "b1": np.array([0.25]), "W2": np.array([[-0.5]]),
         "b2": np.array([0.1])}
    X, Y = np.array([[-1000.0], [-50.0], [3.0], [1000.0]]), np.array([[1.0], [0.0], [2.0], [0.0]])
    z = 1.5 * X + 0.25
    h = -np.logaddexp(0, -z)
    r = (-0.5 * h + 0.1) - Y  # ŷ − y
    loss, grads = kernel(p, X, Y)
    assert np.isfinite(loss) and all(np.isfinite(g).all() for g in grads.values())
    assert net.predict(p, X)[0, 0] == pytest.approx(-0.5 * -1499.75 + 0.1, rel=1e-12)
    assert loss == pytest.approx((r ** 2).sum() / 8, rel=1e-12)
    gz = r * -0.5 * np.exp(-np.logaddexp(0, z))  # ∂ log σ(z)/∂z = σ(−z) = e^(−softplus(z))
    assert grads["W2"][0, 0] == pytest.approx((r * h).sum() / 4, rel=1e-12)
    assert grads["W1"][0, 0] == pytest.approx((gz * X).sum() / 4, rel=1e-12)
    assert grads["b1"][0] == pytest.approx(gz.sum() / 4, rel=1e-12)
