"""Matrix calculus as a new user tried it (issue 12): printing, messages and generated code."""
import numpy as np
import pytest
from click.testing import CliRunner

import symgrad as sg
from symgrad.cli import cli
from symgrad.printing.text import TextPrinter

RNG = np.random.default_rng(12)


def _run(*args):
    return CliRunner().invoke(cli, list(args))


def _module(src):
    ns: dict = {}
    exec(compile(src, "<generated>", "exec"), ns)
    return ns


# -- A: --format python takes the user's names, by keyword ----------------------------------------
def test_python_module_is_called_by_keyword():
    r = _run("hessian", "sum(log(1+exp(-y.*(X*w))))", "--wrt", "w", "--vector", "w,y",
             "--matrix", "X", "--format", "python")
    assert r.exit_code == 0, r.output
    assert "def f_and_hessian(X, w, y):" in r.output  # sorted by name
    ns = _module(r.output)
    X, w, y = RNG.normal(size=(6, 3)), RNG.normal(size=3), np.sign(RNG.normal(size=6))
    got = ns["f_and_hessian"](X=X, w=w, y=y)
    want = sg.hessian("sum(log(1+exp(-y.*(X*w))))", "w", vectors="w y",
                      matrices="X").compile()(X=X, w=w, y=y)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b)
    assert ns["f_and_derivative"] is ns["f_and_hessian"]


@pytest.mark.parametrize("cmd, fname", [("grad", "f_and_gradient"),
                                        ("derivative", "f_and_jacobian")])
def test_python_function_named_per_command(cmd, fname):
    f = "x'*A*x" if cmd == "grad" else "A*x"
    r = _run(cmd, f, "--wrt", "x", "--vector", "x", "--matrix", "A", "--format", "python")
    assert r.exit_code == 0, r.output
    assert f"def {fname}(A, x):" in r.output


def test_python_module_names_that_are_not_plain_stay_data():
    # a builtin, numpy's alias and a name like a generated temporary
    d = sg.grad("sum(t0) + list'*np*list", "list", vectors="list t0", matrices="np")
    src = d.to_python()
    assert "def f_and_gradient(_a0, _a1, t0):" in src
    assert "_a0 = 'list'" in src and "_a1 = 'np'" in src
    ns = _module(src)
    A, x, t = RNG.normal(size=(3, 3)), RNG.normal(size=3), RNG.normal(size=2)
    v, g = ns["f_and_gradient"](x, A, t0=t)
    np.testing.assert_allclose(g, (A + A.T) @ x)
    fn = d.compile()
    np.testing.assert_allclose(fn(list=x, np=A, t0=t)[1], g)


# -- B: division by zero, log of 0 -----------------------------------------------------------------
@pytest.mark.parametrize("f, message", [
    ("x'*x/0", "(x'*x)/0: division by zero (the / at column 5)"),
    ("x'*x./(1-1)", "(x'*x)./(1-1): division by zero (the ./ at column 5)"),
    ("log(0)*x'*x", "log(0): the log of 0 is −∞ (column 1)"),
    ("0^-1*x'*x", "0^-1: a power of 0 with a negative exponent"),
])
def test_division_by_zero_is_one_line(f, message):
    r = _run("grad", f, "--wrt", "x", "--vector", "x")
    assert r.exit_code == 2
    assert message in r.output and "Scalar wraps" not in r.output
    assert len(r.output.strip().splitlines()) == 1


@pytest.mark.parametrize("f, message", [
    ("sqrt(-1)*x'*x", "sqrt(-1) is the complex number I (column 1)"),
    ("x'*x*(-1)^(1/2)", "(-1)^(1/2) is the complex number I (column 10)"),
    ("log(-1)*x'*x", "log(-1) is the complex number I*pi (column 1)"),
    ("(-4).^0.5*x'*x", "(-4).^0.5 is the complex number 2*I (column 5)"),
])
def test_a_complex_constant_is_one_line(f, message):
    """sqrt(-1) was taken in, and the check then failed late: "could not find a point where
    … are defined"; now the parser names it, where it is."""
    r = _run("grad", f, "--wrt", "x", "--vector", "x")
    assert r.exit_code == 2, r.output
    assert message in r.output and "complex or imaginary constant is not supported" in r.output
    assert "could not find a point" not in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert _run("grad", "sqrt(4)*x'*x", "--wrt", "x", "--vector", "x").exit_code == 0


# -- C, J: --steps -----------------------------------------------------------------------------------
def test_grad_help_does_not_offer_steps_full():
    for cmd in ("grad", "derivative"):
        out = " ".join(_run(cmd, "--help").output.split())
        assert "[full]" not in out and "there is no --steps full" in out
    assert "a function of scalars only" in " ".join(_run("hessian", "--help").output.split())


def test_steps_full_on_matrix_language_says_why():
    r = _run("grad", "x'*A*x", "--wrt", "x", "--vector", "x", "--matrix", "A", "--steps", "full")
    assert r.exit_code == 2 and "--steps alone prints them" in r.output


def test_steps_with_python_format_is_an_error():
    r = _run("grad", "x'*A*x", "--wrt", "x", "--vector", "x", "--matrix", "A", "--steps",
             "--format", "python")
    assert r.exit_code == 2 and "--format python prints the function alone" in r.output


def test_steps_end_with_one_result_line():
    d = sg.grad("norm2(X*w - y)^2", "w", vectors="w y", matrices="X")
    text = d.to_text().splitlines()
    assert text[-1].startswith("∇_w f = 2Xᵀ(Xw − y)") and "checked entry by entry" in text[-1]
    assert not text[-2].startswith("∇_w f")
    h = sg.hessian("x'*A*x", "x", vectors="x", matrices="A").to_text().splitlines()
    assert h[-1].lstrip().startswith("H = A + Aᵀ") and not h[-2].lstrip().startswith("H =")


def test_worksheet_line_takes_steps(tmp_path):
    from symgrad.handouts.worksheet import problem
    d = problem("grad \"x'*A*x\" --wrt x --vector x --matrix A --steps")
    assert TextPrinter().doprint(d.result) == "(A + Aᵀ)x"
    with pytest.raises(ValueError, match="--steps full is not for a worksheet"):
        problem("grad \"x'*A*x\" --wrt x --vector x --matrix A --steps full")


def test_names_as_a_list():
    d = sg.grad("x'*A*x", "x", vectors=["x"], matrices=("A",))
    assert TextPrinter().doprint(d.result) == "(A + Aᵀ)x"
    with pytest.raises(ValueError, match="must be text"):
        sg.grad("x'*A*x", "x", vectors=[1])


# -- D, E: messages ----------------------------------------------------------------------------------
def test_grad_takes_one_variable():
    r = _run("grad", "x'*A*x", "--wrt", "x,A", "--vector", "x", "--matrix", "A")
    assert r.exit_code == 2 and "grad takes one variable" in r.output
    assert "one variable" in " ".join(_run("hessian", "--help").output.split())


def test_hessian_errors_say_hessian():
    r = _run("hessian", "A*x", "--wrt", "x", "--vector", "x", "--matrix", "A")
    assert r.exit_code == 2 and "error: hessian: 'A*x'" in r.output


def test_train_messages_name_what_was_asked():
    X, y = RNG.normal(size=(5, 2)), np.sign(RNG.normal(size=5))
    f = "sum(log(1+exp(-y.*(X*w))))"
    g = sg.grad(f, "w", vectors="w y", matrices="X")
    with pytest.raises(ValueError, match="not 'adam'"):
        sg.train(g, {"X": X, "y": y}, None, optimizer="adam")
    h = sg.hessian(f, "w", vectors="w y", matrices="X")
    with pytest.raises(ValueError) as exc:
        sg.train(h, {"y": y}, None, optimizer="newton", quiet=True)
    assert "missing 'X'" in str(exc.value) and "the data are y, X" in str(exc.value)


# -- F: shape errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize("f, sizes, message", [
    ("x'*A*x", ["A=3x2"], "(x'*A)*x: 1×2 times 3×1 (the * at column 5)"),
    ("sum(A*x)", ["A=3x2", "x=3"], "A*x: 3×2 times 3×1 (the * at column 6)"),
])
def test_shape_errors_name_operator_and_operands(f, sizes, message):
    args = ["grad", f, "--wrt", "x", "--vector", "x", "--matrix", "A"]
    for s in sizes:
        args += ["--size", s]
    r = _run(*args)
    assert r.exit_code == 2 and message in r.output, r.output


# -- K: forgotten --vector ---------------------------------------------------------------------------
def test_hint_when_transposing_scalars():
    r = CliRunner().invoke(cli, ["grad", "x'*A*x", "--wrt", "x"])
    assert r.exit_code == 0
    assert r.stderr.strip() == ("symgrad: note: x and A are scalars here; declare vectors with "
                                "--vector, matrices with --matrix")
    r = CliRunner().invoke(cli, ["grad", "x'*A*x", "--wrt", "x", "--vector", "x"])
    assert r.stderr == ""


# -- G: simplification and display -------------------------------------------------------------------
def test_commutation_of_a_vector_is_the_identity():
    from symgrad.core.matexpr import Commutation
    from symgrad.derive.mcalc import SIMPLIFICATIONS, tidy
    import sympy as sp
    for r, c in ((4, 1), (1, 4), (1, 1)):  # the rule, checked at explicit sizes
        K = Commutation(r, c)
        assert sp.ImmutableMatrix(K.as_explicit()) == sp.eye(r * c)
        assert tidy(K) == sp.Identity(r * c)
    assert Commutation in SIMPLIFICATIONS and tidy(Commutation(3, 2)) == Commutation(3, 2)
    d = sg.derivative("x'*A", "x", vectors="x", matrices="A")
    assert TextPrinter().doprint(d.result) == "Aᵀ"


def test_scalar_coefficients_print_flat():
    d = sg.grad("x'*A*x", "x", vectors="x")  # A undeclared: a scalar
    assert TextPrinter().doprint(d.result) == "2A x"
    fn = d.compile()
    np.testing.assert_allclose(fn(x=np.array([1.0, 2.0]), A=3.0)[1], [6.0, 12.0])


# -- H: norms, minus signs, Hadamard powers, 1 − σ ---------------------------------------------------
def test_norm_heading_and_first_step_as_written():
    d = sg.grad("norm2(X*w - y)^2", "w", vectors="w y", matrices="X")
    assert d.title == "Gradient of f = ‖X w − y‖₂² with respect to w"
    assert TextPrinter().doprint(d.steps[0].rhs) == "‖Xw − y‖₂²"
    assert "each norm written out" in d.steps[1].why
    assert TextPrinter().doprint(d.result) == "2Xᵀ(Xw − y)"


def test_norm_gradient_is_x_over_its_norm():
    import sympy as sp
    from symgrad.printing.text import MatrixSympifyPrinter
    from symgrad.printing.latex import latex
    d = sg.grad("norm2(x)", "x", vectors="x")
    assert TextPrinter().doprint(d.result) == "x/‖x‖₂"
    assert latex(d.result) == r"\frac{\mathbf{x}}{\left\| \mathbf{x} \right\|_{2}}"
    back = sp.sympify(MatrixSympifyPrinter().doprint(d.result), locals=sg.SYMPIFY_LOCALS)
    assert TextPrinter().doprint(back) == "x/‖x‖₂"
    v, g = d.compile()(x=np.array([3.0, 4.0]))
    assert v == 5.0 and np.allclose(g, [0.6, 0.8])
    h = sg.hessian("norm2(x)", "x", vectors="x")
    assert TextPrinter().doprint(h.result) == "I/‖x‖₂ − xxᵀ/‖x‖₂³"
    x = RNG.normal(size=3)
    n = np.linalg.norm(x)
    np.testing.assert_allclose(h.compile()(x=x)[2], np.eye(3) / n - np.outer(x, x) / n**3)


@pytest.mark.slow  # 5-15 s in CI's default run (11.5 min with it); -m slow runs it
def test_heading_has_a_minus_sign():
    d = sg.hessian("-sum(Y .* log(softmax(X*W))) + 0.5*tr(W'*W)", "W", matrices="X W Y")
    assert d.title.startswith("Hessian of f = −1ᵀ")


def test_logistic_hessian_prints_one_minus_sigma_and_a_hadamard_power():
    d = sg.hessian("sum(log(1+exp(-y.*(X*w))))", "w", vectors="w y", matrices="X")
    text = TextPrinter().doprint(d.result)
    assert "(𝟏 − σ(" in text and "y^∘2" in text and "+ 1)" not in text and "⊙2" not in text


# -- I: the rules in LaTeX, one math span each -------------------------------------------------------
def test_latex_rules_are_one_math_span():
    r = _run("grad", "x'*A*x", "--wrt", "x", "--vector", "x", "--matrix", "A", "--format",
             "latex", "--steps")
    assert r.exit_code == 0, r.output
    assert (r"$\mathrm{d}(\mathbf{A}\mathbf{B}) = \mathrm{d}\mathbf{A}\,\mathbf{B} + "
            r"\mathbf{A}\,\mathrm{d}\mathbf{B}$") in r.output
    assert (r"$\langle \mathbf{G}, \mathrm{d}\mathbf{X} \rangle = "
            r"\operatorname{tr}(\mathbf{G}^{\top}\,\mathrm{d}\mathbf{X})$") in r.output
    assert "$d$(AB)" not in r.output and r"$\langle \mathbf{G}$, dX" not in r.output


def test_every_rule_has_a_latex_form():
    from symgrad.derive.mcalc import DIFFERENTIALS, RULE_LATEX, _FUNCTION_RULE
    texts = {t for t, _ in DIFFERENTIALS.values() if t} | {_FUNCTION_RULE[0]}
    assert texts <= set(RULE_LATEX)
    for lx in RULE_LATEX.values():
        assert lx.count("$") % 2 == 0 and lx.startswith("$")


def test_det_is_parenthesized_in_latex():
    from symgrad.printing.latex import latex
    d = sg.grad("det(X)", "X", matrices="X")
    assert latex(d.result) == r"\det(\mathbf{X}) \mathbf{X}^{-\top}"


def test_repeated_sigma_is_named():
    d = sg.hessian("sum(log(1+exp(-y.*(X*w))))", "w", vectors="w y", matrices="X")
    last = d.steps[-1]
    assert last.why == "where s = sigmoid(-((X*w) ⊙ y))"
    assert TextPrinter().doprint(last.rhs) == "Xᵀ diag((𝟏 − s) ⊙ s ⊙ y^∘2)X"
    assert "σ(" in TextPrinter().doprint(d.result)  # the result itself is unchanged
    lines = d.to_text().splitlines()
    assert lines[-2].rstrip().split("    [")[0].endswith("y^∘2)X") and lines[-2] != lines[-3]
    assert "(-sigmoid(" not in d.to_text() and "⊙2" not in d.to_text()


def test_norm_step_is_written_out():
    d = sg.grad("norm2(x)", "x", vectors="x")
    assert TextPrinter().doprint(d.steps[1].rhs) == "√(xᵀx)"


@pytest.mark.slow  # 5-15 s in CI's default run (11.5 min with it); -m slow runs it
def test_softmax_jacobian_prints_a_transpose_sign():
    d = sg.hessian("-sum(Y .* log(softmax(X*W))) + 0.5*tr(W'*W)", "W", matrices="X W Y")
    text = TextPrinter().doprint(d.result)
    assert "sᵢsᵢᵀ" in text and ".T" not in text


def test_hessian_of_matrix_text_without_declarations_says_so():
    r = _run("hessian", "x'*A*x", "--wrt", "x")
    assert r.exit_code == 2 and "declare vectors with --vector" in r.output
    assert len(r.output.strip().splitlines()) == 1
