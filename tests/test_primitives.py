"""Primitives are one registration each (symgrad.core.primitives). A named activation added by one
call — swish, and exact GELU through erf (itself one registered primitive) — works in
mlp(hidden=...): the matrix level equals sympy.diff of the loss written out entry by entry (with
the activation written out independently of the registry), the element level derives and checks
itself, LaTeX and handouts name it, and both kernel paths equal torch autograd. A registration with
a piece missing fails naming the primitive and the piece; a primitive with no code for a backend
fails while compiling, naming it and the backend, never when the kernel is called."""
import math
import random
import shutil
import sys

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.compile.numpy_printer import KernelPrinter
from symgrad.compile.scalar import ScalarPrinter
from symgrad.core.primitives import (FUNCTIONS, PRIMITIVES, Primitive, _np_erf, derivative,
                                     second_derivative)
from symgrad.derive.backprop import evaluate
from symgrad.derive.element import KINKS

# the two activations, each one call; and each written out by hand for the reference below
ACTS = {"swish": "x*sigmoid(x)", "gelu": "x*(1 + erf(x/sqrt(2)))/2"}
BY_HAND = {"swish": lambda t: t / (1 + sp.exp(-t)),
           "gelu": lambda t: t * (1 + sp.erf(t / sp.sqrt(2))) / 2}


@pytest.fixture(scope="module", autouse=True)
def registered():
    for name, text in ACTS.items():
        sg.register_activation(name, text, init="he")


# -- matrix level == element-wise sympy.diff -------------------------------------------------------
def _reference_loss(net, env, n):
    """The mean mse loss written out entry by entry: dense layers as sums, the activation by hand."""
    vals = {"x": sp.Matrix(env["X"])}
    for name, node in net.nodes.items():
        if node.op == "dense":
            V = vals[node.inputs[0]] * sp.Matrix(env[node.params[0]]).T
            vals[name] = V + sp.ones(n, 1) * sp.Matrix(env[node.params[1]]).T
        elif node.op == "act":
            vals[name] = vals[node.inputs[0]].applyfunc(BY_HAND[node.act.name])
    P, Y = vals[net.output_node], sp.Matrix(env["Y"])
    return sum((P[i, k] - Y[i, k]) ** 2 for i in range(n) for k in range(P.cols)) / (2 * n)


@pytest.mark.parametrize("name", ACTS)
def test_matrix_level_equals_elementwise_sympy_diff(name):
    net, n = sg.mlp([2, 2, 2], hidden=name), 2
    env = {"X": sp.Matrix(n, 2, lambda i, j: sp.Symbol(f"x{i}{j}", real=True)),
           "Y": sp.Matrix(n, 2, lambda i, j: sp.Symbol(f"y{i}{j}", real=True))}
    for p, (r, c) in net.shapes.items():
        env[p] = sp.Matrix(r, c, lambda i, j: sp.Symbol(f"{p}_{i}{j}", real=True))
    ref, ours = _reference_loss(net, env, n), evaluate(net, n, env)
    syms = sorted(set().union(*(sp.Matrix(m).free_symbols for m in env.values())), key=str)
    rng = random.Random(0)
    pts = [{s: sp.Float(rng.uniform(-2, 2), 30) for s in syms} for _ in range(3)]
    for p in net.parameters:
        P = sp.Matrix(env[p])
        theirs = sp.Matrix(P.rows, P.cols, lambda i, j: sp.diff(ref, P[i, j]))
        assert ours["d" + p].shape == theirs.shape == net.shapes[p]
        for pt in pts:
            a, b = (sp.Matrix(m).xreplace(pt).evalf(30) for m in (ours["d" + p], theirs))
            assert all(abs(u - v) < 1e-20 * (1 + abs(u)) for u, v in zip(a, b)), p


# -- element level, LaTeX, handouts ----------------------------------------------------------------
@pytest.mark.parametrize("name", ACTS)
@pytest.mark.parametrize("of", ["loss", "output"])
def test_element_level_derives_and_checks_itself(name, of):
    net = sg.mlp([2, 2, 1], hidden=name)
    d = net.derive("w1", level="element", of=of)
    assert d.meta["checked"] in ("exact", "numeric at 3 points")
    explicit, direct = d.meta["explicit"], d.meta["direct"]  # and once more here, at a point
    rng = random.Random(1)
    pt = {s: sp.Float(rng.uniform(-2, 2), 30) for s in explicit.free_symbols | direct.free_symbols}
    a, b = (complex(e.xreplace(pt).evalf(30)) for e in (explicit, direct))
    assert abs(b) > 1e-6 and abs(a - b) < 1e-20 * (1 + abs(b))


@pytest.mark.parametrize("name", ACTS)
def test_latex_and_handout_name_the_activation(name, tmp_path):
    net = sg.mlp([2, 2, 1], hidden=name)
    tex = sg.to_latex(net.derive("W1"))
    assert r"\operatorname{diag}(\operatorname{%s}'(\mathbf{z}^{(1)}))" % name in tex
    assert r"\mathbf{g} \odot \operatorname{%s} '" % name in tex  # the justification's words
    doc = sg.handout(net, level="both")  # the element level writes erf out for gelu
    assert r"\operatorname{%s}(" % name in doc and r"\operatorname{%s}'(" % name in doc
    assert (r"\operatorname{erf}" in doc) == (name == "gelu")
    if shutil.which("pdflatex"):  # and it is valid LaTeX that fits the page
        from symgrad.handouts.pdf import compile_pdf
        pdf = compile_pdf(doc, tmp_path / f"{name}.pdf", engine="pdflatex", keep_log=True)
        assert "Overfull" not in pdf.with_suffix(".log").read_text(errors="replace")


def test_erf_prints_as_operatorname_erf_and_is_a_math_word():
    x = sp.Symbol("x", real=True)
    from symgrad.printing.latex import latex, words_latex
    assert latex(sp.erf(x)).startswith(r"\operatorname{erf}")
    assert r"\operatorname{erf}" in words_latex("erf'(z) = (2/√π) exp(−z²)")
    assert r"\operatorname{swish}" in words_latex("g ← g ⊙ swish'(z1)")


# -- both kernel paths == torch autograd ----------------------------------------------------------
@pytest.mark.parametrize("name", ACTS)
@pytest.mark.parametrize("scalar", [True, False])
def test_both_kernel_paths_equal_torch_autograd(name, scalar):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    act = {"swish": F.silu, "gelu": lambda z: F.gelu(z, approximate="none")}[name]
    net = sg.mlp([3, 5, 2], hidden=name)
    rng = np.random.default_rng(7)
    params = {k: v + rng.normal(size=v.shape) * 0.3 for k, v in net.init_params(seed=1).items()}
    X, Y = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    kernel = net.compile(scalar=scalar)
    loss, grads = kernel(params, X, Y)
    if scalar:
        assert "kernel_n6" in kernel.scalar_source(6)
    ps = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    z = F.linear(act(F.linear(torch.tensor(X), ps["W1"], ps["b1"])), ps["W2"], ps["b2"])
    ref = 0.5 * ((z - torch.tensor(Y)) ** 2).sum() / len(X)
    tg = dict(zip(ps, torch.autograd.grad(ref, list(ps.values()))))
    assert abs(loss - ref.item()) <= 1e-10 * abs(ref.item())
    for p in net.parameters:
        g = tg[p].numpy()
        assert np.linalg.norm(grads[p] - g) <= 1e-10 * np.linalg.norm(g), p


@pytest.mark.parametrize("scalar", [True, False])
def test_gelu_keeps_a_float32_kernel_float32(scalar):
    """√2 and √π print as Python floats: np.sqrt(2), a float64 scalar, made ∇W2 float64."""
    net = sg.mlp([3, 5, 2], hidden="gelu")
    params = net.init_params(seed=0, dtype="float32")
    X = np.random.default_rng(0).normal(size=(6, 3))
    loss, grads = net.compile(scalar=scalar)(params, X, np.zeros((6, 2)))
    assert loss.dtype == np.float32 and {g.dtype for g in grads.values()} == {np.dtype("float32")}
    ref_loss, ref = net.compile(scalar=scalar)({k: v.astype(float) for k, v in params.items()},
                                               X, np.zeros((6, 2)))
    for p in net.parameters:
        np.testing.assert_allclose(grads[p], ref[p], rtol=1e-4, atol=1e-6)


def test_init_reads_the_activation_hint():
    he = sg.mlp([3, 4, 1], hidden="swish").init_params(seed=0)["W1"]
    sg.register_activation("softsign", "x/(1 + abs(x))")  # glorot by default
    glorot = sg.mlp([3, 4, 1], hidden="softsign").init_params(seed=0)["W1"]
    draw = np.random.default_rng(0).standard_normal((4, 3))
    assert np.allclose(he, draw * math.sqrt(2 / 3))
    assert np.allclose(glorot, draw * math.sqrt(2 / 7))


# -- missing pieces fail loudly -------------------------------------------------------------------
class cube(Primitive):
    """x³, a toy primitive for the registration errors."""


class quart(Primitive):
    """x⁴, with numpy code but none for the python backend."""


CUBE = dict(name="cube", deriv=lambda ans, x: 3 * x**2, prime="cube'",
            latex=r"\operatorname{cube}", prime_latex=r"\operatorname{cube}'",
            says="cube'(z) = 3 z²", kinked=False, init="glorot", parse=("cube",))


@pytest.mark.parametrize("piece", ["deriv", "prime_latex", "says", "code", "kinked"])
def test_a_registration_with_a_piece_missing_names_it(piece):
    pieces = {**CUBE, "code": {"python": "({0})**3"}}
    del pieces[piece]
    with pytest.raises(TypeError, match=rf"^register_primitive: the primitive 'cube' lacks {piece}$"):
        sg.register_primitive(cube, **pieces)
    with pytest.raises(TypeError, match="the primitive 'cube' has no piece numpy_code"):
        sg.register_primitive(cube, **{**CUBE, "code": {}, "numpy_code": "x"})
    with pytest.raises(TypeError, match=r"the primitive 'cube': code\['numpy'\] must be a format "
                                        "string over at most 1 arguments"):
        sg.register_primitive(cube, **{**CUBE, "code": {"numpy": "f({0}, {1})"}})
    assert "cube" not in PRIMITIVES or "numpy" not in PRIMITIVES["cube"].code


def test_a_primitive_without_numpy_code_fails_at_compile_naming_it_and_the_backend():
    sg.register_primitive(cube, **CUBE, code={"python": "({0})**3"})
    x = sp.Symbol("x", real=True)
    assert FUNCTIONS["cube"][0] is cube and sp.diff(cube(x), x) == 3 * x**2
    net = sg.mlp([2, 2, 1], hidden="cube")  # a named activation by its init hint
    message = (r"^compile: no numpy code for the primitive 'cube'; register it with "
               r"symgrad.register_primitive$")
    for scalar in (None, True, False):
        with pytest.raises(sg.MissingCodeError, match=message):
            net.compile(scalar=scalar)  # at compile time, before any call
    with pytest.raises(sg.MissingCodeError, match=message):
        sg.compile_function("cube(x) + 1", "x")
    sg.register_activation("cubic", "x + cube(x)")
    with pytest.raises(sg.MissingCodeError, match=message):
        sg.mlp([2, 2, 1], hidden="cubic").compile()
    sg.register_primitive(quart, **{**CUBE, "name": "quart", "parse": ("quart",),
                                    "deriv": lambda ans, x: 4 * x**3},
                          code={"numpy": "({0})**4"})
    with pytest.raises(sg.MissingCodeError, match="no python code for the primitive 'quart'"):
        sg.mlp([2, 2, 1], hidden="quart").compile(scalar=False)
    f = sg.compile_function("quart(x)", "x")  # a function needs numpy alone
    assert f(np.array([[2.0]]))[0] == 16.0 and f.jacobian(np.array([[2.0]]))[0, 0, 0] == 32.0


def test_sympy_functions_nobody_registered_fail_while_printing_not_when_called():
    """NumPyPrinter writes math.gamma for gamma (a NameError in a numpy kernel, where no math is
    imported); both printers' unsupported cases become the one error."""
    x = sp.Symbol("x", real=True)
    with pytest.raises(sg.MissingCodeError, match="no numpy code for the primitive 'gamma'"):
        sg.compile_function(sp.gamma(x), "x")
    with pytest.raises(sg.MissingCodeError, match="no numpy code for the primitive 'erfc'"):
        KernelPrinter().doprint(sp.erfc(x))
    with pytest.raises(sg.MissingCodeError, match="no python code for the primitive 'f'"):
        ScalarPrinter().doprint(sp.Function("f")(x))
    assert ScalarPrinter().doprint(sp.gamma(x)) == "math.gamma(x)"  # math is the python path's


def test_defderiv_is_a_thin_wrapper():
    class wobble(Primitive):
        pass
    sg.defderiv(wobble, lambda ans, x: sp.cos(x))
    x = sp.Symbol("x", real=True)
    assert sp.diff(wobble(x**2), x) == 2 * x * sp.cos(x**2)
    assert PRIMITIVES["wobble"].says == "wobble'(z) = cos(z)"
    with pytest.raises(sg.MissingCodeError, match="no numpy code for the primitive 'wobble'"):
        sg.compile_function(wobble(x), "x")


# -- the registry itself --------------------------------------------------------------------------
def test_every_builtin_primitive_is_complete():
    builtin = ["step", "relu", "sigmoid", "softplus", "leaky_relu", "tanh", "exp", "log", "sin",
               "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "erf", "abs", "sign",
               "Heaviside", "max", "min", "logsumexp", "log1mexp"]
    for name in builtin:
        spec = PRIMITIVES[name]
        assert {"numpy", "python"} <= set(spec.code), name
        assert spec.says and spec.latex and spec.prime_latex, name
    assert {n for n in FUNCTIONS if n != "sqrt"} == {p for s in PRIMITIVES.values()
                                                     for p in s.parse}
    assert {sg.relu, sg.leaky_relu, sg.step, sp.Abs, sp.Max} <= set(KINKS)
    assert sp.erf not in set(KINKS) and cube not in set(KINKS)


@pytest.mark.parametrize("name", [n for n, s in PRIMITIVES.items() if s.deriv2 and not s.kinked])
def test_second_derivatives_agree_with_differentiating_the_first(name):
    cls, x = PRIMITIVES[name].cls, sp.Symbol("x", real=True)
    d2 = second_derivative(cls, x)
    by_diff = sp.diff(derivative(cls, x), x)
    for v in (0.3, -0.45):
        assert abs(complex(d2.subs(x, v).evalf()) - complex(by_diff.subs(x, v).evalf())) < 1e-12


def test_erf_numpy_code_without_scipy(monkeypatch):
    x = np.linspace(-3, 3, 7, dtype=np.float32)
    with_scipy = _np_erf(x)
    monkeypatch.setitem(sys.modules, "scipy.special", None)  # import fails: math.erf per entry
    without = _np_erf(x)
    assert without.dtype == np.float32 and with_scipy.dtype == np.float32
    assert np.allclose(without, [math.erf(v) for v in x.tolist()], rtol=1e-6)
    assert np.allclose(with_scipy, without, rtol=1e-6)


def test_a_named_activation_follows_a_rule_replaced_later():
    """After defderiv replaced softplus' rule, hidden="softplus" kept the old one (dW1 0.960) while
    "softplus(x)" used the new (1.920)."""
    from dataclasses import fields

    from symgrad.core.primitives import RULES
    old = RULES[sg.softplus]
    X, Y = np.ones((3, 1)), np.zeros((3, 1))

    def dW1(hidden):
        net = sg.mlp([1, 1, 1], hidden=hidden)
        return net.compile()(net.init_params(seed=0), X, Y)[1]["W1"][0, 0]

    before = dW1("softplus")
    try:
        sg.defderiv(sg.softplus, lambda ans, x: 2 * sg.sigmoid(x))
        assert dW1("softplus") == pytest.approx(dW1("softplus(x)"), rel=1e-12)
        assert dW1("softplus") != pytest.approx(before)
    finally:
        sg.register_primitive(sg.softplus, **{f.name: getattr(old, f.name) for f in fields(old)
                                               if f.name != "cls"})
    assert dW1("softplus") == pytest.approx(before, rel=1e-12)


def test_logsumexp_and_log1mexp_print_on_both_backends():
    """What compile_function writes log(eˣ + eʸ) and log(1 − eˣ) as (symgrad.compile.forms):
    np.logaddexp, and Mächler's two forms of log1mexp either side of −log 2."""
    import mpmath

    from symgrad.core.primitives import _log1mexp, _logaddexp, log1mexp, logsumexp
    x, y, z = sp.symbols("x y z", real=True)
    assert KernelPrinter().doprint(logsumexp(x, y, z)) == "np.logaddexp(np.logaddexp(x, y), z)"
    assert ScalarPrinter().doprint(logsumexp(x, y)) == "_logaddexp(x, y)"
    inf = math.inf
    for a, b in [(1000.0, 0.0), (-1e6, 3.7), (0.0, 0.0), (-inf, -inf), (inf, 1.0), (-inf, 2.0)]:
        assert _logaddexp(a, b) == np.logaddexp(a, b) == _logaddexp(b, a)
    assert sp.diff(logsumexp(x, y), y) == sp.exp(y - logsumexp(x, y))
    assert ScalarPrinter().doprint(log1mexp(x)) == "_log1mexp(x)"
    us = [-1e6, -1000.0, -40.0, -0.7, -0.69, -1e-20]  # on both sides of the switch at −log 2
    with mpmath.workdps(60):
        want = [float(mpmath.log(-mpmath.expm1(u))) for u in us]
    f = sg.compile_function(log1mexp(x), "x")
    with np.errstate(divide="raise", invalid="raise", over="raise"):  # np.where: both forms run
        got = f(np.array(us))
    for u, g, w in zip(us, got, want):
        assert _log1mexp(u) == pytest.approx(w, rel=1e-15, abs=1e-300)
        assert g == pytest.approx(w, rel=1e-15, abs=1e-300)
    assert _log1mexp(0.0) == -inf and math.isnan(_log1mexp(1.0))


def test_python_cosh_and_sinh_overflow_to_inf_not_an_exception():
    """math.cosh and math.sinh raise OverflowError past |x| ≈ 710, where numpy gives ±inf; the
    python code's helpers give ±inf too (a logistic Hessian's 1/cosh²(u/2) is then 0.0)."""
    from symgrad.core.primitives import HELPERS
    x = sp.Symbol("x", real=True)
    assert ScalarPrinter().doprint(sp.cosh(x)) == "_cosh(x)"
    assert ScalarPrinter().doprint(sp.sinh(x)) == "_sinh(x)"
    assert HELPERS["_cosh"](1000.0) == math.inf and HELPERS["_cosh"](-1000.0) == math.inf
    assert HELPERS["_sinh"](1000.0) == math.inf and HELPERS["_sinh"](-1000.0) == -math.inf
    assert HELPERS["_cosh"](0.5) == math.cosh(0.5) and HELPERS["_sinh"](-0.5) == math.sinh(-0.5)
