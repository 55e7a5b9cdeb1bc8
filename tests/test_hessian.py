"""Hessians of scalar functions (issue 12): against sympy.hessian, symmetric, against central
differences of the gradient, the steps, the CLI in every format, and bad input in one line.

Timings are bench/hessian_scalar.py's business; here the large logistic losses only
have to finish, under a generous alarm, so a regression fails instead of hanging the suite."""
import json
import math

import numpy as np
import pytest
import sympy as sp
from click.testing import CliRunner

import symgrad as sg
from symgrad.cli import cli
from symgrad.core.derivation import Hess, Partial2, StepKind
from symgrad.core.evaluate import evaluate
from symgrad.core.parse import ParseError, parse
from symgrad.derive.calculus import same
from symgrad.derive.hessian import derive_hessian
from symgrad.printing.latex import latex

from test_bounded import alarm, logistic

CASES = {  # name → (f, wrt)
    "quadratic": ("3*x**2 + 2*x*y - y**2 + 5*x - 7", "x y"),
    "cubic in three": ("x**3*y + y**2*z - x*y*z + z**4", "x y z"),
    "rational": ("x/(1 + y**2) + y/(x**2 + 1)", "x y"),
    "exp log sin": ("exp(x*y) + log(1 + x**2 + y**2) + sin(x - 2*y)", "x y"),
    "tanh sqrt": ("tanh(x*y) + sqrt(1 + x**2)*y", "x y"),
    "sigmoid": ("sigmoid(w1*a + w2*b)", "w1 w2"),
    "softplus": ("softplus(w1*a + w2*b) - y*(w1*a + w2*b)", "w1 w2"),
    "logistic, issue": ("log(1+exp(-(w1*x11+w2*x12)))+log(1+exp(-(w1*x21+w2*x22)))", "w1 w2"),
    "logistic with labels": ("log(1 + exp(-y1*(w1*a1 + w2*b1))) + log(1 + exp(-y2*(w1*a2 + w2*b2)))"
                             " + lam*(w1**2 + w2**2)/2", "w1 w2"),
    "bce of sigmoid": ("-y*log(sigmoid(w1*a + w2*b)) - (1 - y)*log(1 - sigmoid(w1*a + w2*b))",
                       "w1 w2"),
    "logsumexp": ("log(exp(x) + exp(y) + exp(z))", "x y z"),
    "one variable": ("x**5 - 3*x", "x"),
}


def symbols_of(d):
    return d.meta["wrt"]


@pytest.mark.parametrize("name", CASES)
def test_equals_sympy_hessian_and_is_symmetric(name):
    f, wrt = CASES[name]
    d = derive_hessian(f, wrt)
    H, xs = d.result, symbols_of(d)
    assert H.shape == (len(xs), len(xs))
    assert H == H.T  # exactly: the lower triangle is the upper one mirrored
    assert same(H, sp.hessian(d.meta["scalar"], xs)) is True


def _at(e, point):
    return evaluate(e, point).real


@pytest.mark.parametrize("name", CASES)
def test_central_differences_of_the_gradient(name):
    """Column j of H is ∂∇f/∂x_j: central differences of the gradient at random points, the other
    symbols (data, labels) at random values too."""
    f, wrt = CASES[name]
    d = derive_hessian(f, wrt)
    H, xs, g = d.result, symbols_of(d), d.meta["gradient"]
    rng = np.random.default_rng(12)
    syms = sorted(H.free_symbols | g.free_symbols, key=str)
    for _ in range(3):
        point = {s: float(v) for s, v in zip(syms, rng.uniform(-1.5, 1.5, len(syms)))}
        if name == "bce of sigmoid":
            point[sp.Symbol("y", real=True)] = 1.0
        for j, x in enumerate(xs):
            h = 1e-5 * max(1.0, abs(point.get(x, 0.0)))
            up, down = dict(point), dict(point)
            up[x], down[x] = point.get(x, 0.0) + h, point.get(x, 0.0) - h
            for i in range(len(xs)):
                fd = (_at(g[i], up) - _at(g[i], down)) / (2 * h)
                assert fd == pytest.approx(_at(H[i, j], point), rel=1e-6, abs=1e-7), (i, j)


def test_the_steps_gradient_first_then_rows_of_the_upper_triangle():
    d = derive_hessian("x**3*y + sin(x*y) + z**2*x", "x y z")
    rules = [s.rule for s in d.steps]
    # the gradient's steps first, as derive_gradient writes them, ending in ∇f
    assert rules[:6] == [StepKind.DEFINITION] + [StepKind.PARTIAL] * 3 + [StepKind.JACOBIAN,
                                                                         StepKind.TRANSPOSE]
    assert d.steps[5].rhs == d.meta["gradient"]
    hess = d.steps[6]
    assert hess.rule is StepKind.DEFINITION and isinstance(hess.lhs, Hess)
    assert "Jacobian of the gradient" in hess.why and hess.shapes == ((3, 3),)
    sym = d.steps[7]
    assert "second partials commute (Schwarz), so the Hessian is symmetric and only the upper " \
           "triangle is derived: 6 of 9 entries" in sym.why
    entries = [s for s in d.steps[8:] if s.rule is StepKind.PARTIAL]
    assert len(entries) == 6 and all(isinstance(s.lhs, Partial2) for s in entries)
    x, y, z = d.meta["wrt"]
    assert [s.lhs.args[1:] for s in entries] == [(x, x), (x, y), (x, z), (y, y), (y, z), (z, z)]
    rows = [s for s in d.steps[8:] if s.rule is StepKind.JACOBIAN and s.shapes == ((1, 3),)]
    assert [s.rhs for s in rows] == [d.result.row(i) for i in range(3)]
    assert "mirrored" in rows[2].why and "mirrored" not in rows[0].why
    last = d.steps[-1]
    assert isinstance(last.lhs, Hess) and last.rhs == d.result and last.shapes == ((3, 3),)
    assert d.title == "Hessian of f with respect to (x, y, z)"
    text = d.to_text()
    assert "∂²f/∂x²" in text and "∂²f/∂x∂y" in text and "∇²_x f" in text
    tex = d.to_latex()
    assert r"\frac{\partial^{2} f}{\partial x^{2}}" in tex and r"\nabla^{2}" in tex


def test_only_the_upper_triangle_is_differentiated(monkeypatch):
    """m(m + 1)/2 derivatives for m variables, not m²: counted at the one place they are taken."""
    from symgrad.derive import calculus
    calls = []
    real = calculus.differentiate

    def counting(e, x):
        calls.append(x)
        return real(e, x)
    monkeypatch.setattr(calculus, "differentiate", counting)
    f = parse("exp(a*b*c*d) + a**2*b**2*c**2*d**2")  # every variable in every term
    derive_hessian(f, "a b c d")
    # the gradient's 4 first derivatives, then 4 + 3 + 2 + 1 second ones (a term holding no x
    # is skipped without a call, and here none is)
    assert len(calls) == 4 + 10


def test_names_of_f_and_of_the_vector_are_data():
    d = derive_hessian("u**2*v", "u v", name="loss", var="θ")
    assert "∇²_θ loss" in d.to_text() and d.title.startswith("Hessian of loss")
    assert any("∂loss/∂θ_i" in s.why for s in d.steps)


def test_large_steps_are_written_as_the_matrix_alone():
    names = " ".join(f"x{i}" for i in range(14))
    f = " + ".join(f"x{i}*x{(i + 1) % 14}**2" for i in range(14))
    d = derive_hessian(f, names)
    assert not [s for s in d.steps[17:] if s.rule is StepKind.PARTIAL]  # 105 entries: none
    assert [s.rule for s in d.steps].count(StepKind.JACOBIAN) == 2  # ∂f/∂x and ∇²f only
    assert d.result.shape == (14, 14) and d.result == d.result.T


def test_the_facade_takes_text_or_sympy_and_returns_the_derivation():
    d = sg.hessian("x**2*y", "x,y")
    assert isinstance(d, sg.Derivation)
    x, y = sp.symbols("x y", real=True)
    assert d.result == sp.Matrix([[2 * y, 2 * x], [2 * x, 0]])
    # a SymPy expression's own symbols (no real assumption) are differentiated by name
    a, b = sp.symbols("a b")
    d = sg.hessian(sp.exp(a * b), "a b", name="g")
    assert d.meta["wrt"] == [a, b] and d.title.startswith("Hessian of g")
    assert same(d.result, sp.hessian(sp.exp(a * b), (a, b))) is True
    assert sg.hessian(sp.exp(a * b), [a, b]).result == d.result
    with pytest.raises(TypeError):
        sg.hessian("x*y", "x y", "g")  # name is keyword-only


def test_a_hessian_derivation_is_not_compiled_as_a_jacobian():
    """compile_function reads a Derivation's function and result as f and its Jacobian; a
    Hessian's result is not f's Jacobian, so it is refused rather than misread."""
    with pytest.raises(ValueError, match="records no function"):
        sg.compile_function(sg.hessian("x**2*y", "x y"))


ERRORS = [  # f, wrt, exception, fragment of its one line
    ("x, y", "x y", ValueError, "the Hessian needs a scalar function, got 2 outputs"),
    ("x**2", "x y", ValueError, "'y' does not occur in f"),
    ("x**2", "y z", ValueError, "'y', 'z' do not occur in f"),
    ("x*y", "x x", ParseError, "duplicate symbol 'x'"),
    ("x*y", "x,", ParseError, "expected a symbol name"),
    ("tanh(x", "x", ParseError, "is never closed"),
    ("x*y", "sin", ParseError, "'sin' is a function, not a symbol name"),
    ("x*y", [], ValueError, "no variables"),
    (sp.Matrix([[1, 2], [3, 4]]), "x", ValueError, "expected a vector, got a 2×2 matrix"),
    (42, "x", TypeError, "expected text, a SymPy expression"),
]


@pytest.mark.parametrize("f,wrt,exc,fragment", ERRORS, ids=[str(e[0])[:20] for e in ERRORS])
def test_bad_input_is_one_line(f, wrt, exc, fragment):
    with pytest.raises(exc) as e:
        derive_hessian(f, wrt)
    msg = str(e.value)
    assert fragment in msg and "\n" not in msg


def test_too_many_variables_is_refused_before_any_work():
    names = [f"x{i}" for i in range(600)]
    with alarm(5), pytest.raises(ValueError, match=r"the Hessian would have 600×600 = 360000 "
                                                   r"entries; symgrad derives up to 250000"):
        derive_hessian(" + ".join(f"{n}**2" for n in names), " ".join(names))


@pytest.mark.parametrize("n,m", [(2, 2), (6, 1), (5, 2), (10, 5)])
def test_logistic_losses_finish(n, m):
    """The issue's form and the sizes that once took 26 s (5 × 2) to over 40 s (6 × 1); the
    10-example, 5-weight loss too. bench/hessian_scalar.py has their times."""
    f = parse(logistic(n, m))
    ws = " ".join(f"w{j}" for j in range(1, m + 1))
    with alarm(30):
        d = derive_hessian(f, ws)
    H = d.result
    assert H.shape == (m, m) and H == H.T
    assert same(H, sp.hessian(f, d.meta["wrt"]), points=2) is True  # 2 of 4: 2.7 s at 10 × 5
    # one fraction per example in each entry: x_ij x_ik eᵘ/(1 + eᵘ)²
    assert all(len(sp.Add.make_args(e)) == n for e in H)


# -- the command line ------------------------------------------------------------------------
def run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _readback(s):
    """sympify a string from our own JSON (never user text) and restore symgrad's real symbols."""
    e = sp.sympify(s, locals=dict(sg.SYMPIFY_LOCALS))
    return e.xreplace({v: sp.Symbol(v.name, real=True) for v in e.free_symbols})


F = "x**3*y + sin(x*y) + sigmoid(x - y)"


def test_cli_text_is_the_matrix_and_steps_are_the_derivation():
    from symgrad.printing.text import TextPrinter
    d = derive_hessian(F, "x y")
    r = run("hessian", F, "--wrt", "x,y")
    assert r.exit_code == 0 and r.output.strip() == TextPrinter().doprint(d.result)
    r = run("hessian", F, "--wrt", "x y", "--steps")
    assert r.exit_code == 0 and r.output.strip() == d.to_text().strip()
    assert "second partials commute (Schwarz)" in r.output


def test_cli_latex():
    d = derive_hessian(F, "x y")
    r = run("hessian", F, "--wrt", "x,y", "--format", "latex")
    assert r.exit_code == 0 and r.output.strip() == latex(d.result)
    r = run("hessian", F, "--wrt", "x,y", "--format", "latex", "--steps")
    assert r.output.strip() == d.to_latex().strip() and r"\nabla^{2}" in r.output


@pytest.mark.parametrize("steps", [False, True])
def test_cli_json_reads_back_exactly(steps):
    d = derive_hessian(F, "x y")
    r = run("hessian", F, "--wrt", "x,y", "--format", "json", *(["--steps"] if steps else []))
    out = json.loads(r.output)
    assert out["shape"] == [2, 2]
    assert sp.Matrix([[_readback(e) for e in row] for row in out["hessian"]]) == d.result
    assert _readback(out["result"]) == d.result  # the whole matrix in one string
    assert ("steps" in out) == steps
    if steps:
        assert [s["rule"] for s in out["steps"]] == [s.rule.value for s in d.steps]
        assert any("Schwarz" in s["why"] for s in out["steps"])


def test_cli_json_reads_back_names_sympy_knows():
    r = run("hessian", "lambda**2*beta + step*E1", "--wrt", "lambda,beta,step", "--format", "json")
    out = json.loads(r.output)
    H = _readback(out["result"])
    lam, beta = sp.Symbol("lambda", real=True), sp.Symbol("beta", real=True)
    assert H == sp.Matrix([[2 * beta, 2 * lam, 0], [2 * lam, 0, 0], [0, 0, 0]])


def _python(f, wrt):
    r = run("hessian", f, "--wrt", wrt, "--format", "python")
    assert r.exit_code == 0, r.output
    ns = {}
    exec(compile(r.output, "<hessian>", "exec"), ns)  # our own generated code, in a bare namespace
    return r.output, ns["hessian"]


@pytest.mark.parametrize("f,wrt", [(F, "x,y"), (CASES["logistic, issue"][0], "w1,w2"),
                                   (CASES["bce of sigmoid"][0], "w1,w2"),
                                   ("log(1 - exp(-x**2 - 1)) + softplus(x*y) + x/y", "x,y")])
def test_cli_python_is_a_self_contained_function(f, wrt):
    src, fn = _python(f, wrt)
    assert "symgrad" not in src and "import math" in src
    d = derive_hessian(f, wrt)
    xs = d.meta["wrt"]
    params = list(xs) + sorted(d.result.free_symbols - set(xs), key=lambda s: s.name)
    assert f"def hessian({', '.join(p.name for p in params)}):" in src
    rng = np.random.default_rng(3)
    for _ in range(4):
        vals = [float(v) for v in rng.uniform(0.2, 1.5, len(params))]
        got = fn(*vals)
        want = d.result.applyfunc(lambda e: _at(e, dict(zip(params, vals))))
        assert len(got) == len(got[0]) == len(xs)
        for i in range(len(xs)):
            for j in range(len(xs)):
                assert isinstance(got[i][j], float)
                assert got[i][j] == pytest.approx(float(want[i, j]), rel=1e-10, abs=1e-12)


def test_cli_python_stays_finite_where_exp_overflows():
    """Where exp or cosh overflows the function still returns a float: a²/(4 cosh²(u/2)) at
    u = w·a = ±1000 is 0.0 (math.cosh raised OverflowError), and near u = 0 it is a²/4."""
    src, fn = _python("log(1 + exp(-w*a))", "w")  # a²/(4 cosh²(u/2)), cosh past 710 is inf
    assert fn(1000.0, 1.0) == [[0.0]] and fn(-1000.0, 1.0) == [[0.0]]
    assert fn(1e-9, 3.0)[0][0] == pytest.approx(9 / 4, rel=1e-8)
    assert fn(20.0, 2.0)[0][0] == pytest.approx(4 * math.exp(-40) / (1 + math.exp(-40)) ** 2,
                                                rel=1e-12)
    # two examples: x²eᵘ/(1 + eᵘ)² each, inf/inf = nan at u = 1000 as written, stable forms after
    src, fn = _python(CASES["logistic, issue"][0], "w1,w2")
    assert "_softplus" in src
    big = fn(1000.0, 1000.0, 1.0, 1.0, -1.0, -1.0)
    assert big == [[0.0, 0.0], [0.0, 0.0]]


def test_cli_python_names_are_data():
    """A variable named as a keyword, a builtin or the module the code imports is a positional
    parameter _a<i>, named in the comment; the function still computes the Hessian."""
    src, fn = _python("lambda**2*pow + math*sum**3 + print*lambda", "lambda,pow,math,sum,print")
    assert "def hessian(_a0, _a1, _a2, _a3, _a4):" in src
    assert "_a0 is 'lambda'" in src and "_a2 is 'math'" in src and "_a1 is 'pow'" in src
    H = fn(1.0, 2.0, 3.0, 4.0, 5.0)
    # f = λ²·pow + math·sum³ + print·λ at λ=1, pow=2, math=3, sum=4, print=5
    assert H[0][0] == 4.0 and H[0][1] == H[1][0] == 2.0 and H[0][4] == 1.0
    assert H[2][3] == 3 * 16.0 and H[3][3] == 6 * 3.0 * 4.0
    # names that are plain identifiers stay the parameters' names
    src, _ = _python("alpha*x_1**2", "x_1")
    assert "def hessian(x_1, alpha):" in src


CLI_ERRORS = [
    (["hessian", "x, y", "--wrt", "x,y"], "the Hessian needs a scalar function, got 2 outputs"),
    (["hessian", "x**2", "--wrt", "x,y"], "'y' does not occur in f"),
    (["hessian", "x*y", "--wrt", "x,x"], "duplicate symbol 'x'"),
    (["hessian", "tanh(", "--wrt", "x"], "is never closed"),
    (["hessian", "x*y", "--wrt", "x", "--format", "python", "--steps"], "--steps is for the text"),
    (["hessian", "x*y", "--wrt", "x", "--format", "pdf"], "--format"),
    (["hessian", "x*y"], "--wrt"),
    (["hessian", "__import__('os')", "--wrt", "x"], "underscore"),
]


@pytest.mark.parametrize("argv,fragment", CLI_ERRORS, ids=[" ".join(a)[:40] for a, _ in CLI_ERRORS])
def test_cli_errors_are_one_line_and_exit_2(argv, fragment):
    r = CliRunner().invoke(cli, argv)
    err = r.stderr if hasattr(r, "stderr") and r.stderr else r.output
    assert r.exit_code == 2, (argv, r.output, r.exception)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("symgrad: error: "), lines
    assert fragment in lines[0] and "Traceback" not in r.output


def test_an_expression_may_start_with_a_minus():
    r = run("hessian", "-x**2*y", "--wrt", "x,y")
    assert r.exit_code == 0 and r.output.strip() == "[[−2y, −2x], [−2x, 0]]"
