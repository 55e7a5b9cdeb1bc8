"""Matrix calculus from text (issue 12): the Matrix Cookbook's and matrixcalculus.org's examples,
each derived in matrix form, checked by the engine against sympy.diff (``verify``) and here again
against central finite differences of the compiled function."""
import json
import re

import numpy as np
import pytest
import sympy as sp
from click.testing import CliRunner
from sympy.matrices.expressions.matexpr import MatrixElement

import symgrad as sg
from symgrad.cli import cli
from symgrad.core.parse import ParseError
from symgrad.printing.text import TextPrinter

RNG = np.random.default_rng(7)


def _spd(n):
    A = RNG.normal(size=(n, n))
    return A @ A.T + n * np.eye(n)


def _fd_grad(fn, args, wrt, h=1e-6):
    """Central differences of fn's value with respect to every entry of args[wrt]."""
    x = np.array(args[wrt], dtype=float)
    g = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        up, dn = x.copy(), x.copy()
        up[idx] += h
        dn[idx] -= h
        g[idx] = (fn(**{**args, wrt: up})[0] - fn(**{**args, wrt: dn})[0]) / (2 * h)
    return g


# name, f, wrt, declarations, arguments, the result printed in matrix form
COOKBOOK = [
    ("xAx", "x'*A*x", "x", dict(vectors="x", matrices="A"),
     lambda: dict(x=RNG.normal(size=4), A=RNG.normal(size=(4, 4))), "(A + Aᵀ)x"),
    ("aXb", "a'*X*b", "X", dict(vectors="a b", matrices="X"),
     lambda: dict(a=RNG.normal(size=3), X=RNG.normal(size=(3, 4)), b=RNG.normal(size=4)),
     "abᵀ"),
    ("trAXB", "tr(A*X*B)", "X", dict(matrices="A X B"),
     lambda: dict(A=RNG.normal(size=(2, 3)), X=RNG.normal(size=(3, 4)),
                  B=RNG.normal(size=(4, 2))), "AᵀBᵀ"),
    ("trXAX", "tr(X'*A*X)", "X", dict(matrices="A X"),
     lambda: dict(A=RNG.normal(size=(3, 3)), X=RNG.normal(size=(3, 2))), "(A + Aᵀ)X"),
    ("trinvXA", "tr(inv(X)*A)", "X", dict(matrices="X A"),
     lambda: dict(X=_spd(3), A=RNG.normal(size=(3, 3))), "−X⁻ᵀAᵀX⁻ᵀ"),
    ("det", "det(X)", "X", dict(matrices="X"), lambda: dict(X=_spd(3)), "det(X)X⁻ᵀ"),
    ("logdet", "logdet(X)", "X", dict(matrices="X"), lambda: dict(X=_spd(3)), "X⁻ᵀ"),
    ("lsq", "norm2(X*w - y)^2", "w", dict(vectors="w y", matrices="X"),
     lambda: dict(X=RNG.normal(size=(6, 3)), w=RNG.normal(size=3), y=RNG.normal(size=6)),
     "2Xᵀ(Xw − y)"),
    ("logistic", "sum(log(1 + exp(-y .* (X*w))))", "w", dict(vectors="w y", matrices="X"),
     lambda: dict(X=RNG.normal(size=(6, 3)), w=RNG.normal(size=3),
                  y=np.sign(RNG.normal(size=6))), None),
    ("frobenius2", "tr(A'*A) + tr(B'*B)", "A", dict(matrices="A B"),
     lambda: dict(A=RNG.normal(size=(3, 2)), B=RNG.normal(size=(2, 2))), "2A"),
    ("norm2", "norm2(x)", "x", dict(vectors="x"), lambda: dict(x=RNG.normal(size=4)), None),
    ("logsumexp", "logsumexp(x)", "x", dict(vectors="x"), lambda: dict(x=RNG.normal(size=5)),
     "softmax(x)"),
    ("symmetric", "x'*S*x", "x", dict(vectors="x", symmetric="S"),
     lambda: dict(x=RNG.normal(size=3), S=_spd(3)), "2Sx"),
    ("softmax-ce", "-y'*log(softmax(W*x))", "W", dict(vectors="x y", matrices="W"),
     lambda: dict(x=RNG.normal(size=3), W=RNG.normal(size=(4, 3)),
                  y=np.eye(4)[1]), None),
]


@pytest.mark.parametrize("case", COOKBOOK, ids=[c[0] for c in COOKBOOK])
def test_cookbook_gradients(case):
    _, f, wrt, decl, make, shown = case
    d = sg.grad(f, wrt, **decl)
    assert d.meta["checked_at"] is not None  # verified against sympy.diff by the engine
    if shown is not None:
        assert TextPrinter().doprint(d.result) == shown
    assert not any(isinstance(a, MatrixElement) for a in sp.preorder_traversal(d.result))
    fn = d.compile()
    args = make()
    value, g = fn(**args)
    fd = _fd_grad(fn, args, wrt)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-7)


HESSIANS = [
    ("xAx", "x'*A*x", "x", dict(vectors="x", matrices="A"),
     lambda: dict(x=RNG.normal(size=4), A=RNG.normal(size=(4, 4))), "A + Aᵀ"),
    ("lsq", "norm2(X*w - y)^2", "w", dict(vectors="w y", matrices="X"),
     lambda: dict(X=RNG.normal(size=(6, 3)), w=RNG.normal(size=3), y=RNG.normal(size=6)),
     "2XᵀX"),
    ("logistic", "sum(log(1 + exp(-y .* (X*w))))", "w", dict(vectors="w y", matrices="X"),
     lambda: dict(X=RNG.normal(size=(6, 3)), w=RNG.normal(size=3),
                  y=np.sign(RNG.normal(size=6))), None),
]


@pytest.mark.parametrize("case", HESSIANS, ids=[c[0] for c in HESSIANS])
def test_hessians(case):
    _, f, wrt, decl, make, shown = case
    d = sg.hessian(f, wrt, **decl)
    if shown is not None:
        assert TextPrinter().doprint(d.result) == shown
    fn = d.compile()
    args = make()
    value, g, H = fn(**args)
    np.testing.assert_allclose(H, H.T, atol=1e-12)
    # each column of H: central differences of the compiled gradient
    x, h = np.array(args[wrt], float), 1e-6
    for j in range(x.size):
        e = np.zeros_like(x)
        e[j] = h
        col = (fn(**{**args, wrt: x + e})[1] - fn(**{**args, wrt: x - e})[1]) / (2 * h)
        np.testing.assert_allclose(H[:, j], col, rtol=1e-6, atol=1e-7)


def test_logistic_hessian_is_xt_diag_x():
    d = sg.hessian("sum(log(1 + exp(-y .* (X*w))))", "w", vectors="w y", matrices="X")
    R = d.result
    assert isinstance(R, sp.MatMul)
    assert any(isinstance(a, sp.DiagMatrix) for a in R.args)  # Xᵀ diag(…) X, no per-row passes


JACOBIANS = [
    ("Ax", "A*x", "x", dict(vectors="x", matrices="A"),
     lambda: dict(A=RNG.normal(size=(3, 4)), x=RNG.normal(size=4)), "A"),
    ("hadamard", "x .* y", "x", dict(vectors="x y"),
     lambda: dict(x=RNG.normal(size=4), y=RNG.normal(size=4)), "diag(y)"),
    ("softmax", "softmax(x)", "x", dict(vectors="x"), lambda: dict(x=RNG.normal(size=4)), None),
]


@pytest.mark.parametrize("case", JACOBIANS, ids=[c[0] for c in JACOBIANS])
def test_jacobians(case):
    _, f, wrt, decl, make, shown = case
    d = sg.derivative(f, wrt, **decl)
    if shown is not None:
        assert TextPrinter().doprint(d.result) == shown
    fn = d.compile()
    args = make()
    F, J = fn(**args)
    x, h = np.array(args[wrt], float), 1e-6
    for j in range(x.size):
        e = np.zeros_like(x)
        e[j] = h
        col = (fn(**{**args, wrt: x + e})[0] - fn(**{**args, wrt: x - e})[0]) / (2 * h)
        np.testing.assert_allclose(J[:, j], col, rtol=1e-6, atol=1e-8)


def test_softmax_jacobian_form():
    d = sg.derivative("softmax(x)", "x", vectors="x")
    assert TextPrinter().doprint(d.result) == "diag(softmax(x)) − softmax(x)(softmax(x))ᵀ"


def test_steps_are_the_differential_derivation():
    d = sg.grad("x'*A*x", "x", vectors="x", matrices="A")
    text = d.to_text()
    assert "df = dxᵀAx + xᵀA dx" in text
    assert "trace trick" in text and "identify the gradient" in text
    assert "checked entry by entry against the derivative of the written-out function" in text
    tex = d.to_latex()
    assert r"\mathrm{d}\mathbf{x}^{\top}" in tex and "?" not in tex


def test_stable_at_large_margins():
    fn = sg.grad("sum(log(1 + exp(-y .* (X*w))))", "w", vectors="w y", matrices="X").compile()
    X = np.array([[1000.0, 0.0], [-1000.0, 1.0]])
    v, g = fn(X=X, w=np.array([1.0, 1.0]), y=np.array([-1.0, -1.0]))
    assert np.isfinite(v) and np.all(np.isfinite(g))
    assert v == pytest.approx(1000.0 + np.logaddexp(0, -999.0))


def test_sympy_bugs_are_not_ours():
    # sympy 1.14: d log det X / dX is 0 (sympy#28618), d/dA[tr(AᵀA) + tr(BᵀB)] is 0 (sympy#27406)
    assert TextPrinter().doprint(sg.grad("logdet(X)", "X", matrices="X").result) == "X⁻ᵀ"
    assert TextPrinter().doprint(sg.grad("tr(A'*A) + tr(B'*B)", "A",
                                         matrices="A B").result) == "2A"


@pytest.mark.parametrize("f, decl, wrt, message", [
    ("A*x", dict(vectors="x", matrices="A", sizes={"A": (3, 3), "x": 2}), "x",
     "A*x: 3×3 times 2×1"),
    ("det(A)", dict(matrices="A", sizes={"A": (2, 3)}), "A", "det needs a square matrix"),
    ("x'*A*x", dict(vectors="x", matrices="A"), "y", "'y' does not appear"),
    ("x*y", dict(vectors="x y"), "x", "x*y: n×1 times m×1"),
    ("x'*x", dict(vectors="x", matrices="x"), "x", "declared twice"),
    ("x'*A*x", dict(vectors="x", matrices="A", sizes={"B": 3}), "x", "not a declared"),
    ("x'*A*x)", dict(vectors="x", matrices="A"), "x", "unexpected ')'"),
    ("sum(ones)", dict(), "x", "cannot tell the size of ones"),
    ("x^2", dict(vectors="x"), "x", "a power of n"),
    ("x / y", dict(vectors="x y"), "x", "cannot divide by"),
    ("foo(x)", dict(vectors="x"), "x", "unknown function 'foo'"),
])
def test_bad_input_is_one_line(f, decl, wrt, message):
    with pytest.raises(ValueError) as exc:
        sg.grad(f, wrt, **decl)
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_user_names_are_data():
    # names that are Python or numpy words stay data: the generated code uses _a0 for np
    d = sg.grad("np'*os*np", "np", vectors="np", matrices="os")
    src = d.compile().source
    assert "def f_and_gradient(_a0, os)" in src and "_a0 = 'np'" in src
    fn = d.compile()
    A = RNG.normal(size=(3, 3))
    x = RNG.normal(size=3)
    np.testing.assert_allclose(fn(np=x, os=A)[1], (A + A.T) @ x)


def test_compiled_argument_errors():
    fn = sg.grad("norm2(X*w - y)^2", "w", vectors="w y", matrices="X").compile()
    X, w, y = RNG.normal(size=(5, 3)), RNG.normal(size=3), RNG.normal(size=5)
    for bad, msg in [(dict(X=X, w=w), "missing argument 'y'"),
                     (dict(X=X, w=w, y=y[:4]), "y: size 4"),
                     (dict(X=X, w=w, y=y, z=1), "unexpected argument 'z'"),
                     (dict(X=X[0], w=w, y=y), "X: a matrix"),
                     (dict(X=X, w=w * np.nan, y=y), "w: contains nan")]:
        with pytest.raises(ValueError, match=msg):
            fn(**bad)


def test_python_format_is_self_contained(tmp_path):
    r = CliRunner().invoke(cli, ["grad", "logsumexp(x)", "--wrt", "x", "--vector", "x",
                                 "--format", "python"])
    assert r.exit_code == 0, r.output
    ns: dict = {}
    exec(compile(r.output, "generated", "exec"), ns)
    z = np.array([[1.0], [2.0], [1000.0]])
    v, g = ns["f_and_derivative"](z)
    assert np.isfinite(v) and np.allclose(g.ravel(), np.exp(z - v).ravel())


def test_cli_json_reads_back():
    r = CliRunner().invoke(cli, ["grad", "norm2(X*w - y)^2", "--wrt", "w", "--vector", "w,y",
                                 "--matrix", "X", "--format", "json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    back = sp.sympify(out["result"], locals=sg.SYMPIFY_LOCALS)
    n, m = sp.symbols("n m")
    X, w, y = sp.MatrixSymbol("X", n, m), sp.MatrixSymbol("w", m, 1), sp.MatrixSymbol("y", n, 1)
    want = 2 * X.T * (X * w - y)
    assert sp.expand(back.subs({n: 2, m: 3}).as_explicit()
                     - want.subs({n: 2, m: 3}).as_explicit()) == sp.zeros(3, 1)
    assert out["shape"] == ["m", 1] and "latex" in out


@pytest.mark.parametrize("args, msg", [
    (["grad", "A*x", "--wrt", "x", "--vector", "x", "--matrix", "A", "--size", "A=3x3",
      "--size", "x=2"], "A*x: 3×3 times 2×1"),
    (["grad", "x'*x", "--wrt", "z", "--vector", "x"], "'z' does not appear"),
    (["grad", "x'*x", "--wrt", "x", "--vector", "x", "--size", "x"], "expected NAME=SIZE"),
    (["derivative", "diag(X)", "--wrt", "X", "--matrix", "X"], "not a sum of products L dX R"),
])
def test_cli_errors(args, msg):
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 2
    assert msg in r.output and "Traceback" not in r.output


GOLDEN = [  # the result in the notes' LaTeX: bold vectors and matrices, ⊙, X^{-⊤}, σ
    ("grad", "x'*A*x", "x", dict(vectors="x", matrices="A"),
     r"\left(\mathbf{A} + \mathbf{A}^{\top}\right) \mathbf{x}"),
    ("grad", "norm2(X*w - y)^2", "w", dict(vectors="w y", matrices="X"),
     r"2 \mathbf{X}^{\top} \left(\mathbf{X} \mathbf{w} - \mathbf{y}\right)"),
    ("grad", "logdet(X)", "X", dict(matrices="X"), r"\mathbf{X}^{-\top}"),
    ("grad", "tr(inv(X)*A)", "X", dict(matrices="X A"),
     r"-\mathbf{X}^{-\top} \mathbf{A}^{\top} \mathbf{X}^{-\top}"),
    ("grad", "det(X)", "X", dict(matrices="X"), r"\det(\mathbf{X}) \mathbf{X}^{-\top}"),
    ("grad", "sum(log(1 + exp(-y .* (X*w))))", "w", dict(vectors="w y", matrices="X"),
     r"-\mathbf{X}^{\top} \left(\sigma(-\left(\left(\mathbf{X} \mathbf{w}\right) \odot "
     r"\mathbf{y}\right)) \odot \mathbf{y}\right)"),
    ("hessian", "norm2(X*w - y)^2", "w", dict(vectors="w y", matrices="X"),
     r"2 \mathbf{X}^{\top} \mathbf{X}"),
    ("derivative", "softmax(x)", "x", dict(vectors="x"),
     r"\operatorname{diag}(\operatorname{softmax}\left(\mathbf{x}\right)) - "
     r"\operatorname{softmax}\left(\mathbf{x}\right) \left(\operatorname{softmax}\left("
     r"\mathbf{x}\right)\right)^{\top}"),
]


@pytest.mark.parametrize("kind, f, wrt, decl, tex", GOLDEN, ids=[g[1] for g in GOLDEN])
def test_golden_latex(kind, f, wrt, decl, tex):
    from symgrad.printing.latex import latex
    assert latex(getattr(sg, kind)(f, wrt, **decl).result) == tex


@pytest.mark.skipif(__import__("shutil").which("pdflatex") is None, reason="no pdflatex here")
def test_worksheet_compiles_to_pdf(tmp_path):
    """A matrix-calculus worksheet: sg.handout of several derivations, through real pdflatex."""
    import subprocess
    ds = [sg.grad("x'*A*x", "x", vectors="x", matrices="A"),
          sg.grad("logdet(X) + tr(inv(X)*A)", "X", matrices="X A"),
          sg.hessian("sum(log(1 + exp(-y .* (X*w))))", "w", vectors="w y", matrices="X"),
          sg.derivative("softmax(x)", "x", vectors="x")]
    tex = sg.handout(ds)
    assert r"\mathrm{d}\mathbf{x}^{\top}" in tex and "?" not in tex.split(r"\begin{document}")[1]
    (tmp_path / "w.tex").write_text(tex)
    r = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "w.tex"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:]
    assert "Overfull" not in r.stdout


def test_worksheet_from_a_file_of_problems(tmp_path):
    """symgrad handout problems.txt: one problem a line, written as the commands are."""
    (tmp_path / "p.txt").write_text(
        "# two problems\n"
        "grad \"norm2(X*w - y)^2\" --wrt w --vector w,y --matrix X\n\n"
        "hessian \"x'*A*x\" --wrt x --vector x --matrix A\n")
    r = CliRunner().invoke(cli, ["handout", str(tmp_path / "p.txt"), "-o",
                                 str(tmp_path / "w.tex")])
    assert r.exit_code == 0, r.output
    tex = (tmp_path / "w.tex").read_text()
    assert r"\title{Matrix calculus, step by step}" in tex and tex.count(r"\section{") == 2
    (tmp_path / "bad.txt").write_text("grad \"x'*A*x\" --wrt x --vector x --matrix A\n"
                                      "grad \"x*y\" --wrt x --vector x,y\n")
    r = CliRunner().invoke(cli, ["handout", str(tmp_path / "bad.txt")])
    assert r.exit_code == 2 and "bad.txt, line 2: x*y: n×1 times m×1" in r.output
    (tmp_path / "bad2.txt").write_text("grad \"x'*x\" --vector x\n")
    r = CliRunner().invoke(cli, ["handout", str(tmp_path / "bad2.txt")])
    assert r.exit_code == 2 and "line 1: --wrt is missing" in r.output


def test_train_newton_on_a_derived_hessian():
    """sg.train(…, optimizer="newton") minimises a matrix-calculus model: ridge regression's
    optimum (XᵀX + λI)⁻¹Xᵀy in one step, logistic regression's gradient to zero in a few."""
    X, y = RNG.normal(size=(40, 5)), RNG.normal(size=40)
    ridge = sg.hessian("norm2(X*w - y)^2 + lam*w'*w", "w", vectors="w y", matrices="X")
    params, hist = sg.train(ridge, {"X": X, "y": y, "lam": 0.5}, None, optimizer="newton",
                            epochs=3, quiet=True)
    np.testing.assert_allclose(params["w"], np.linalg.solve(X.T @ X + 0.5 * np.eye(5), X.T @ y),
                               rtol=1e-10)
    logistic = sg.hessian("sum(log(1 + exp(-y .* (X*w)))) + 0.5*w'*w", "w", vectors="w y",
                          matrices="X")
    s = np.sign(X @ RNG.normal(size=5) + RNG.normal(size=40))
    params, hist = sg.train(logistic, {"X": X, "y": s}, None, optimizer="newton", epochs=10,
                            quiet=True)
    _, g, _ = logistic.compile()(X=X, y=s, w=params["w"])
    assert np.linalg.norm(g) < 1e-9 and all(a >= b for a, b in zip(hist, hist[1:]))


@pytest.mark.parametrize("call, msg", [
    (lambda d, data: sg.train(d, data, None, optimizer="adam"), "trains with optimizer='newton'"),
    (lambda d, data: sg.train(sg.mlp([2, 1]), np.zeros((2, 2)), np.zeros((2, 1)),
                              optimizer="newton"), "needs a derived Hessian"),
    (lambda d, data: sg.train(d, {**data, "w": np.zeros(3)}, None, optimizer="newton"),
     "'w' is what Newton's method solves for"),
    (lambda d, data: sg.train(d, data, None, optimizer="newton", params={"v": 1}),
     "params: a dict {'w': start}"),
])
def test_train_newton_errors(call, msg):
    d = sg.hessian("norm2(X*w - y)^2", "w", vectors="w y", matrices="X")
    with pytest.raises(ValueError, match=re.escape(msg)):
        call(d, {"X": RNG.normal(size=(4, 3)), "y": RNG.normal(size=4)})


def _random_expression(rng, depth=3):
    """A random scalar matrix-language expression in x, y (vectors), A, B (matrices), t."""
    def vec(d):
        if d == 0:
            return rng.choice(["x", "y", "A*x", "B'*y", "x .* y"])
        a, b = vec(d - 1), vec(d - 1)
        return rng.choice([f"({a}) + ({b})", f"({a}) .* ({b})", f"A*({a})", f"B'*({a})",
                           f"tanh({a})", f"sigmoid({a})", f"t*({a})", f"({a}) - 2*({b})",
                           f"softmax({a})", f"exp(({a})/4)", f"({a}) ./ (2 + ({b}).^2)"])
    def mat(d):
        if d == 0:
            return rng.choice(["A", "B", "A'", "x*y'"])
        a, b = mat(d - 1), mat(d - 1)
        return rng.choice([f"({a})*({b})", f"({a}) + ({b})", f"({a}) .* ({b})", f"t*({a})"])
    u, v = vec(depth - 1), vec(depth - 2)
    return rng.choice([f"({u})'*({v})", f"sum({u})", f"norm2({u})^2", f"logsumexp({u})",
                       f"tr({mat(depth - 1)})", f"x'*({mat(depth - 2)})*y",
                       f"sum(log(1 + exp({u})))"])


@pytest.mark.parametrize("seed", range(12))
def test_random_expressions_against_finite_differences(seed):
    """Random compositions: each gradient is checked by the engine against sympy.diff, and here
    its compiled value against central differences, for every variable."""
    import random
    rng = random.Random(seed)
    f = _random_expression(rng)
    args = dict(x=RNG.normal(size=3), y=RNG.normal(size=3), A=RNG.normal(size=(3, 3)) / 2,
                B=RNG.normal(size=(3, 3)) / 2, t=0.7)
    names = set(re.findall(r"[A-Za-z]+", f)) & set(args)
    for wrt in sorted(names):
        fn = sg.grad(f, wrt, vectors="x y", matrices="A B").compile()
        present = {k: v for k, v in args.items() if k in fn.names}
        value, g = fn(**present)
        if wrt == "t":
            h = 1e-6
            fd = (fn(**{**present, "t": 0.7 + h})[0] - fn(**{**present, "t": 0.7 - h})[0]) / 2 / h
        else:
            fd = _fd_grad(fn, present, wrt)
        np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-6, err_msg=f"{f} by {wrt}")


@pytest.mark.parametrize("f, wrt", [
    ("x'*(x*y')*y", "x"), ("x'*((t*(x*y'))*(B*A'))*y", "y"),
    ("x'*((x*y' + A) + (x*y')*B)*y", "y"), ("tr(((x*y')*(x*y'))*(A*A')*(t*(B .* A')))", "x"),
])
def test_hessians_found_by_fuzzing(f, wrt):
    """Hessians whose Jacobian step once failed (a 1×1 factor on the right, a sum inside a
    product): derived, checked by the engine, symmetric and equal to differences here."""
    d = sg.hessian(f, wrt, vectors="x y", matrices="A B")
    args = dict(x=RNG.normal(size=3), y=RNG.normal(size=3), A=RNG.normal(size=(3, 3)),
                B=RNG.normal(size=(3, 3)), t=0.7)
    fn = d.compile()
    present = {k: v for k, v in args.items() if k in fn.names}
    _, g, H = fn(**present)
    x, h = present[wrt], 1e-6
    for j in range(3):
        e = np.zeros(3)
        e[j] = h
        col = (fn(**{**present, wrt: x + e})[1] - fn(**{**present, wrt: x - e})[1]) / (2 * h)
        np.testing.assert_allclose(H[:, j], col, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("f, wrt, decl, shown, shapes", [
    ("W*x", "W", dict(vectors="x", matrices="W"), "I ⊗ xᵀ", dict(W=(3, 4), x=4)),
    ("A*X*B", "X", dict(matrices="A X B"), "A ⊗ Bᵀ", dict(A=(2, 3), X=(3, 4), B=(4, 2))),
    ("inv(X)", "X", dict(matrices="X"), "−(X⁻¹ ⊗ X⁻ᵀ)", dict(X=(3, 3))),
    ("x*y'", "x", dict(vectors="x y"), "I ⊗ y", dict(x=3, y=2)),
    ("sigmoid(W*x)", "W", dict(vectors="x", matrices="W"), None, dict(W=(3, 4), x=4)),
])
def test_jacobians_through_vec(f, wrt, decl, shown, shapes):
    """∂vec[F]/∂vec[X], vec row by row as in the notes (∂z/∂vec[W] = I ⊗ xᵀ), against
    differences of the compiled function's value."""
    d = sg.derivative(f, wrt, **decl)
    if shown:
        assert TextPrinter().doprint(d.result) == shown
    args = {k: (_spd(v[0]) if k == "X" and f == "inv(X)" else RNG.normal(size=v))
            for k, v in shapes.items()}
    fn = d.compile()
    F, J = fn(**args)
    x, h = args[wrt], 1e-6
    for idx in np.ndindex(*x.shape):
        e = np.zeros_like(x)
        e[idx] = h
        col = (np.ravel(fn(**{**args, wrt: x + e})[0]) -
               np.ravel(fn(**{**args, wrt: x - e})[0])) / (2 * h)
        np.testing.assert_allclose(J[:, np.ravel_multi_index(idx, x.shape)], col,
                                   rtol=1e-6, atol=1e-8)


def test_hessian_with_respect_to_a_matrix():
    """∂vec[∇f]/∂vec[X]: tr(XᵀAX) gives (A + Aᵀ) ⊗ I, against differences of the gradient."""
    d = sg.hessian("tr(X'*A*X)", "X", matrices="X A")
    assert TextPrinter().doprint(d.result) == "(A + Aᵀ) ⊗ I"
    fn = d.compile()
    A, X = RNG.normal(size=(3, 3)), RNG.normal(size=(3, 2))
    _, g, H = fn(X=X, A=A)
    assert H.shape == (6, 6)
    for idx in np.ndindex(3, 2):
        e = np.zeros((3, 2))
        e[idx] = 1e-6
        col = (fn(X=X + e, A=A)[1] - fn(X=X - e, A=A)[1]).ravel() / 2e-6
        np.testing.assert_allclose(H[:, np.ravel_multi_index(idx, (3, 2))], col, atol=1e-7)


def test_hessian_in_both_languages():
    """sg.hessian and symgrad hessian: the scalar language without declarations, the matrix
    language with them."""
    scalar = sg.hessian("x**2*y", "x y")
    assert scalar.result == sp.Matrix([[2 * sp.Symbol("y", real=True), 2 * sp.Symbol("x", real=True)],
                                       [2 * sp.Symbol("x", real=True), 0]])
    matrix = sg.hessian("x'*A*x", "x", vectors="x", matrices="A")
    assert isinstance(matrix, sg.MatrixDerivation)
    assert TextPrinter().doprint(matrix.result) == "A + Aᵀ"
    r = CliRunner().invoke(cli, ["hessian", "x'*A*x", "--wrt", "x", "--vector", "x",
                                 "--matrix", "A"])
    assert r.exit_code == 0 and r.output.strip() == "A + Aᵀ"
    r = CliRunner().invoke(cli, ["hessian", "x**2*y", "--wrt", "x,y"])
    assert r.exit_code == 0 and "2y" in r.output


# -- found by a new user's trial -------------------------------------------------------------------
def test_determinant_of_a_scaled_matrix():
    """det(2X) = 2ⁿ det X: checked with n at its test size (a random n once reported a bug)."""
    for f, c in (("det(2*X)", 2.0), ("det(-X)", -1.0)):
        fn = sg.grad(f, "X", matrices="X").compile()
        X = _spd(3)
        v, g = fn(X=X)
        assert v == pytest.approx(np.linalg.det(c * X))
        np.testing.assert_allclose(g, _fd_grad(fn, dict(X=X), "X"), rtol=1e-6)


@pytest.mark.slow  # 5-15 s in CI's default run (11.5 min with it); -m slow runs it
def test_slow_and_singular_checks():
    """logdet(XᵀX) is checked at sizes where XᵀX is invertible; tr(inv(A + XᵀBX)C) in seconds."""
    d = sg.grad("logdet(X'*X)", "X", matrices="X")
    assert TextPrinter().doprint(d.result) == "2X(XᵀX)⁻¹"
    assert d.meta["checked_at"] == {"n": 3, "m": 2}
    fn = sg.grad("tr(inv(A + X'*B*X)*C)", "X", matrices="A X B C").compile()
    args = dict(A=_spd(2), X=RNG.normal(size=(3, 2)), B=_spd(3), C=RNG.normal(size=(2, 2)))
    np.testing.assert_allclose(fn(**args)[1], _fd_grad(fn, args, "X"), rtol=1e-6, atol=1e-8)


def test_json_steps_and_read_back_of_every_node():
    for args in (["grad", "x'*A*x", "--wrt", "x", "--vector", "x", "--matrix", "A", "--steps"],
                 ["hessian", "sum(log(1 + exp(-y .* (X*w))))", "--wrt", "w", "--vector", "w,y",
                  "--matrix", "X"],
                 ["grad", "3*x'*x + c*sum(x)", "--wrt", "x", "--vector", "x"],
                 ["grad", "sum(relu(W*x))", "--wrt", "W", "--vector", "x", "--matrix", "W"],
                 ["derivative", "softmax(x)", "--wrt", "x", "--vector", "x"],
                 ["derivative", "W*x", "--wrt", "W", "--vector", "x", "--matrix", "W",
                  "--size", "W=3x4"]):
        r = CliRunner().invoke(cli, args + ["--format", "json"])
        assert r.exit_code == 0, r.output
        out = json.loads(r.output)
        back = sp.sympify(out["result"], locals=sg.SYMPIFY_LOCALS)
        assert isinstance(back, sp.MatrixExpr) and [str(d) for d in back.shape] == \
            [str(d) for d in out["shape"]]
    assert out["shape"] == [3, 12]


def test_python_module_takes_1d_vectors():
    r = CliRunner().invoke(cli, ["derivative", "softmax(x)", "--wrt", "x", "--vector", "x",
                                 "--format", "python"])
    ns: dict = {}
    exec(compile(r.output, "generated", "exec"), ns)
    s, J = ns["f_and_derivative"](np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(J, np.diag(s) - np.outer(s, s))
    assert "def f_and_jacobian(x):" in r.output and "x (a vector of n)" in r.output


def test_log_of_sigmoid_and_softmax_are_stable():
    fn = sg.grad("sum(log(sigmoid(x)))", "x", vectors="x").compile()
    v, g = fn(x=np.array([1000.0, -1000.0]))
    assert v == pytest.approx(-1000.0) and np.allclose(g, [0.0, 1.0])
    d = sg.grad("-y'*log(softmax(x))", "x", vectors="x y")
    assert TextPrinter().doprint(d.result) == "(yᵀ𝟏) softmax(x) − y"
    v, g = d.compile()(x=np.array([1000.0, -1000.0, 0.0]), y=np.array([0.0, 1.0, 0.0]))
    assert v == pytest.approx(2000.0) and np.allclose(g, [1.0, -1.0, 0.0])


def test_trace_and_determinant_of_a_scalar():
    for f, shown in (("tr(x'*x)", "2x"), ("det(x'*x)", "2x"), ("logdet(x'*x)", "2x/(xᵀx)")):
        assert TextPrinter().doprint(sg.grad(f, "x", vectors="x").result) == shown


def test_titles_keep_powers_and_worksheets_with_powers_compile(tmp_path):
    assert sg.grad("x^2*y", "x").title == "Gradient of f = x² y with respect to x"
    assert sg.grad("tr(X^3)", "X", matrices="X").title == "Gradient of f = tr(X³) with respect to X"
    (tmp_path / "p.txt").write_text('hessian "x^2*y" --wrt x,y\njacobian "x*y, x + y" --wrt x,y\n'
                                    'grad "tr(X^3)" --wrt X --matrix X\n'
                                    'grad "x\'*inv(A)*x" --wrt A --vector x --matrix A\n')
    out = tmp_path / ("w.pdf" if __import__("shutil").which("pdflatex") else "w.tex")
    r = CliRunner().invoke(cli, ["handout", str(tmp_path / "p.txt"), "-o", str(out)])
    assert r.exit_code == 0, r.output


def test_hessian_of_a_matrix_with_dx_first_and_newton_on_a_singular_hessian():
    d = sg.hessian("tr(X'*X)", "X", matrices="X")
    assert TextPrinter().doprint(d.result) == "2I"
    h = sg.hessian("sum(log(1 + exp(-y .* (X*w))))", "w", vectors="w y", matrices="X")
    X = np.array([[1.0, 0.0], [2.0, 0.0], [-1.0, 0.0], [-2.0, 0.0]])
    with pytest.raises(sg.TrainingDiverged, match="the Hessian is singular"):
        sg.train(h, {"X": X, "y": np.array([1.0, 1.0, -1.0, -1.0])}, None, optimizer="newton",
                 quiet=True)


# -- softmax regression: logsumexp and softmax of a matrix, row by row -----------------------------
SOFTMAX_CE = "-sum(Y .* log(softmax(X*W))) + 0.5*lam*tr(W'*W)"


def _softmax_data(n=9, m=4, k=3, seed=1):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, m)), rng.normal(size=(m, k)),
            np.eye(k)[rng.integers(0, k, n)])


def test_rowwise_softmax_and_logsumexp_shapes():
    """Of a matrix they work row by row (one example per row, as X*W's logits); of a scalar they
    are refused in one line."""
    from symgrad.core.mlang import parse_matrix
    p = parse_matrix("logsumexp(X*W)", matrices="X W", sizes={"X": (5, 3), "W": (3, 4)})
    assert p.expr.shape == (5, 1)
    p = parse_matrix("softmax(X*W)", matrices="X W", sizes={"X": (5, 3), "W": (3, 4)})
    assert p.expr.shape == (5, 4)
    with pytest.raises(ValueError, match="softmax takes a vector or a matrix, got a scalar"):
        parse_matrix("softmax(a)")


def test_softmax_regression_gradient_is_xt_s_minus_y():
    d = sg.grad("sum(logsumexp(X*W)) - tr(Y'*X*W)", "W", matrices="X W Y")
    assert isinstance(d.result, sp.MatMul) and d.result.args[0] == sp.MatrixSymbol(
        "X", *d.result.args[0].shape[::-1]).T  # Xᵀ(softmax(XW) − Y), one product
    assert TextPrinter().doprint(d.result.args[1]).replace(" ", "") in (
        "softmax(XW)−Y",)
    # the cross-entropy form keeps the row sums of Y: correct for any Y, not only one-hot
    ce = sg.grad("-sum(Y .* log(softmax(X*W)))", "W", matrices="X W Y")
    assert "diag(" in TextPrinter().doprint(ce.result)
    Xv, Wv, Yv = _softmax_data()
    for deriv in (d, ce):
        f, g = deriv.compile()(X=Xv, W=Wv, Y=Yv)
        eps, num = 1e-6, np.zeros_like(Wv)
        for idx in np.ndindex(*Wv.shape):
            E = np.zeros_like(Wv)
            E[idx] = eps
            num[idx] = (deriv.compile()(X=Xv, W=Wv + E, Y=Yv)[0]
                        - deriv.compile()(X=Xv, W=Wv - E, Y=Yv)[0]) / (2 * eps)
        np.testing.assert_allclose(g, num, atol=1e-7)


@pytest.mark.slow  # 5-15 s in CI's default run (11.5 min with it); -m slow runs it
def test_softmax_regression_hessian_is_block_diagonal_sandwich():
    """H = (Xᵀ diag(Y𝟏) ⊗ I) blkdiag_i(diag(sᵢ) − sᵢsᵢᵀ) (X ⊗ I) + λI: verified against
    sympy.diff before it is returned, here against finite differences of the compiled gradient
    and against torch.func.hessian where torch is installed."""
    from symgrad.core.matexpr import SoftmaxJacobian
    h = sg.hessian(SOFTMAX_CE, "W", matrices="X W Y")
    assert h.result.has(SoftmaxJacobian) and h.result.has(sp.KroneckerProduct)
    assert "blkdiag" in sg.to_latex(h)
    Xv, Wv, Yv = _softmax_data()
    fn = h.compile()
    f, g, H = fn(X=Xv, W=Wv, Y=Yv, lam=0.3)
    assert H.shape == (12, 12) and np.allclose(H, H.T)
    grad = sg.grad(SOFTMAX_CE, "W", matrices="X W Y").compile()
    eps, num = 1e-6, np.zeros((12, 12))
    for j in range(12):
        E = np.zeros(12)
        E[j] = eps
        gp = grad(X=Xv, W=Wv + E.reshape(4, 3), Y=Yv, lam=0.3)[1]
        gm = grad(X=Xv, W=Wv - E.reshape(4, 3), Y=Yv, lam=0.3)[1]
        num[:, j] = ((gp - gm) / (2 * eps)).ravel()  # vec row by row: numpy's C order
    np.testing.assert_allclose(H, num, atol=1e-7)
    torch = pytest.importorskip("torch")
    Xt, Yt = torch.tensor(Xv), torch.tensor(Yv)
    loss = lambda V: -(Yt * torch.log_softmax(Xt @ V, dim=1)).sum() + 0.15 * (V * V).sum()
    Ht = torch.func.hessian(loss)(torch.tensor(Wv)).reshape(12, 12).numpy()
    np.testing.assert_allclose(H, Ht, atol=1e-12)


@pytest.mark.slow  # 5-15 s in CI's default run (11.5 min with it); -m slow runs it
def test_softmax_regression_compiles_without_forming_the_blocks():
    """The n·k × n·k middle is applied block by block and (Xᵀ…) ⊗ I as a reshape: the
    generated code forms neither (at the digits' size the middle would be 2.6 GB)."""
    src = sg.hessian(SOFTMAX_CE, "W", matrices="X W Y").to_python()
    assert "_m_softmax_sandwich(" in src and "np.kron(" not in src
    ns = {}
    exec(compile(src, "<generated>", "exec"), ns)  # the module is self-contained
    Xv, Wv, Yv = _softmax_data()
    ours = sg.hessian(SOFTMAX_CE, "W", matrices="X W Y").compile()(X=Xv, W=Wv, Y=Yv, lam=0.3)
    names = sg.hessian(SOFTMAX_CE, "W", matrices="X W Y").compile().names
    theirs = ns["f_and_derivative"](*[dict(X=Xv, W=Wv, Y=Yv, lam=0.3)[k] for k in names])
    np.testing.assert_allclose(theirs[2], ours[2], atol=1e-12)


def test_rowwise_softmax_is_stable_at_large_logits():
    h = sg.hessian(SOFTMAX_CE, "W", matrices="X W Y").compile()
    Xv, Wv, Yv = _softmax_data()
    f, g, H = h(X=Xv * 1000, W=Wv, Y=Yv, lam=0.3)
    assert np.isfinite(f) and np.isfinite(g).all() and np.isfinite(H).all()


@pytest.mark.slow  # 5-15 s in CI's default run (11.5 min with it); -m slow runs it
def test_train_newton_softmax_regression():
    """sg.train(…, optimizer="newton") with a matrix of weights: the gradient to zero, f never
    increasing, W shaped like the data fixes it."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 4))
    Y = np.eye(3)[np.argmax(X @ rng.normal(size=(4, 3)) + rng.normal(size=(60, 3)), axis=1)]
    h = sg.hessian(SOFTMAX_CE, "W", matrices="X W Y")
    params, hist = sg.train(h, {"X": X, "Y": Y, "lam": 1.0}, None, optimizer="newton",
                            epochs=15, quiet=True)
    assert params["W"].shape == (4, 3)
    _, g, _ = h.compile()(X=X, Y=Y, W=params["W"], lam=1.0)
    assert np.linalg.norm(g) < 1e-9 and all(a >= b for a, b in zip(hist, hist[1:]))


def test_softmax_operators_equal_the_formed_matrices():
    """The compiled operators against the matrices they stand for, formed densely: Λ =
    blkdiag_i(diag(sᵢ) − sᵢsᵢᵀ) applied block by block, (A ⊗ I) as a reshape, and the
    sandwich (A ⊗ I) Λ (X ⊗ I) in two GEMMs."""
    from symgrad.compile.mfunction import _m_kron_eye, _m_softmax_jacobian, _m_softmax_sandwich
    rng = np.random.default_rng(5)
    n, m, p, k = 6, 4, 3, 5
    S = rng.random((n, k))
    S /= S.sum(axis=1, keepdims=True)
    X, A, M = rng.normal(size=(n, m)), rng.normal(size=(p, n)), rng.normal(size=(n * k, 7))
    blocks = np.zeros((n * k, n * k))
    for i in range(n):
        blocks[i * k:(i + 1) * k, i * k:(i + 1) * k] = np.diag(S[i]) - np.outer(S[i], S[i])
    np.testing.assert_allclose(_m_softmax_jacobian(S, M), blocks @ M, atol=1e-14)
    np.testing.assert_allclose(_m_kron_eye(A, k, M), np.kron(A, np.eye(k)) @ M, atol=1e-13)
    dense = np.kron(A, np.eye(k)) @ blocks @ np.kron(X, np.eye(k))
    np.testing.assert_allclose(_m_softmax_sandwich(A, S, X), dense, atol=1e-13)


BY_A_MATRIX = [  # transposed and entrywise dX: the commutation matrix K and diag(vec[S])
    ("hessian", "tr(X*X)", dict(matrices="X"), "2*K(n, n)"),
    ("hessian", "logdet(X)", dict(matrices="X"), "-(KroneckerProduct(X.T**(-1), X**(-1)))*K(n, n)"),
    ("hessian", "tr(X*A*X)", dict(matrices="X A"), None),
    ("hessian", "sum(exp(X))", dict(matrices="X"), "diag(vec(exp(X)))"),
    ("derivative", "X'", dict(matrices="X"), "K(n, n)"),
    ("derivative", "X .* X", dict(matrices="X"), "2*diag(vec(X))"),
]


@pytest.mark.parametrize("kind, f, decl, text", BY_A_MATRIX, ids=[c[1] for c in BY_A_MATRIX])
def test_derivatives_by_a_matrix_with_transposed_and_entrywise_dx(kind, f, decl, text):
    """vec[dXᵀ] = K vec[dX] and vec[S ⊙ dX] = diag(vec[S]) vec[dX] (vec row by row): each
    result verified against sympy.diff when derived, here against finite differences of the
    compiled gradient (Hessians) or function (Jacobians) at a 3×3 X."""
    rng = np.random.default_rng(11)
    decl = {**decl, "sizes": {"X": (3, 3)}}
    d = getattr(sg, kind)(f, "X", **decl)
    if text is not None:
        assert str(d.result) == text.replace("(n, n)", "(3, 3)")
    extra = {"A": rng.normal(size=(3, 3))} if "A" in decl["matrices"] else {}
    X = rng.normal(size=(3, 3)) + 3 * np.eye(3)
    out = d.compile()(X=X, **extra)
    inner = sg.grad(f, "X", **decl).compile() if kind == "hessian" else d.compile()
    pick = (lambda r: r[1]) if kind == "hessian" else (lambda r: r[0])
    num, eps = np.zeros((9, 9)), 1e-6
    for j in range(9):
        E = np.zeros(9)
        E[j] = eps
        E = E.reshape(3, 3)
        num[:, j] = ((np.asarray(pick(inner(X=X + E, **extra)))
                      - np.asarray(pick(inner(X=X - E, **extra)))) / (2 * eps)).ravel()
    np.testing.assert_allclose(out[-1], num, atol=1e-6)


def test_commutation_latex():
    from symgrad.printing.latex import latex
    assert latex(sg.hessian("logdet(X)", "X", matrices="X").result) == (
        r"-\left(\mathbf{X}^{-\top} \otimes \mathbf{X}^{-1}\right) \mathbf{K}_{n,n}")


def test_first_step_shows_the_function_as_written():
    """A stable rewrite (log softmax → Z − logsumexp(Z)𝟏ᵀ) is a step of its own: the title and
    the first step show what the user wrote, the next the rewritten form with its reason."""
    d = sg.grad("-sum(Y .* log(softmax(X*W)))", "W", matrices="X W Y")
    assert "log(softmax(X W))" in d.title
    first, second = d.steps[0], d.steps[1]
    assert first.rhs.has(sp.log) and not second.rhs.has(sp.log)
    assert "row by row" in second.why and "finite" in second.why
    plain = sg.grad("x'*A*x", "x", vectors="x", matrices="A")
    assert "finite" not in plain.steps[1].why
