"""The text format (issue 13, item 5): Unicode math a student reads in a terminal.

`symgrad derive`, `chain`, `grad`, `jacobian`, `hessian` print text by default, as does
``Derivation.to_text()``: ŷ and x₁ for yhat and x1, cases as cases, σ(1 − σ), no ``*``, ``**``,
``Piecewise(`` or ASCII minus. JSON keeps SymPy's exact strings. ``unicode=False`` is readable ASCII.
"""
from __future__ import annotations

import json
import re

import pytest
import sympy as sp
from click.testing import CliRunner

import symgrad as sg
from symgrad.cli import cli
from symgrad.core.derivation import Derivation, Note
from symgrad.printing.names import function_text, text_name
from symgrad.printing.text import TextPrinter, to_text


def run(*args) -> str:
    r = CliRunner().invoke(cli, list(args))
    assert r.exit_code == 0, r.output
    return r.output


def lines_of(out: str) -> dict:
    """Each printed line's left-hand side → the rest (the last line of that lhs wins)."""
    return {l.split(" = ", 1)[0].strip(): l for l in out.splitlines() if " = " in l}


R = lambda *names: [sp.Symbol(n, real=True) for n in names]  # noqa: E731


# -- the matrix level: 2-2-1, sigmoid output, binary cross-entropy -----------------------------------
@pytest.fixture(scope="module")
def bce_w1() -> str:
    return run("derive", "2-2-1", "--output", "sigmoid", "--loss", "bce", "--wrt", "W1")


def test_bce_names_are_hatted_and_subscripted(bce_w1):
    assert "yhat" not in bce_w1 and "W1" not in bce_w1
    assert bce_w1.startswith("The gradient of the loss with respect to W₁\n")
    assert "∂ℓ/∂ŷ = [(ŷ − y)/(ŷ(1 − ŷ))]ᵀ" in bce_w1
    assert "∂ŷ/∂z₂ = diag(σ′(z₂))    [1×1; ŷᵢ depends only on z₂,ᵢ" in bce_w1
    assert "∇_W₁ ℓ = g_z₁xᵀ" in bce_w1


def test_bce_sigma_prime_and_minus(bce_w1):
    assert "· diag(ŷ ⊙ (𝟏 − ŷ))    [" in bce_w1  # was diag(yhat ⊙ (-yhat + 1)); 𝟏 the ones
    assert "             = ŷᵀ − yᵀ    [1×1; entry k" in bce_w1  # was yhatᵀ - yᵀ
    assert "g_z₂ᵀ = ŷᵀ − yᵀ" in bce_w1


def test_bce_products_side_by_side(bce_w1):
    assert "g_h₁ᵀ = g_z₂ᵀW₂    [g ← W₂ᵀ g]" in bce_w1  # was g_z2ᵀ*W2
    assert "g_z₁ᵀ = g_h₁ᵀ ⊙ relu′(z₁)ᵀ    [g ← g ⊙ relu′(z₁)" in bce_w1  # was relu'(z1ᵀ)
    assert "∂ℓ/∂vec[W₁] = [[g_z₁[1] xᵀ, g_z₁[2] xᵀ]]" in bce_w1  # was [[g_z1[1]*xᵀ, …]]
    assert "∇_W₁ f = G_z₁ᵀX    [2×2" in bce_w1  # was G_z1ᵀ*X


def test_json_keeps_exact_sympy_strings():
    out = json.loads(run("derive", "2-2-1", "--output", "sigmoid", "--loss", "bce", "--wrt", "W1",
                         "--format", "json"))[0]
    assert out["result"] == "G_z1.T*X"
    assert any(s["lhs"] == "∂ℓ/∂yhat" for s in out["steps"])
    el = json.loads(run("derive", "2-2-1", "--level", "element", "--wrt", "w1", "--format", "json"))
    assert any("Piecewise((0, b1 + w1*x1 + w2*x2 <= 0)" in s["rhs"] for s in el[0]["steps"])
    assert json.loads(run("jacobian", "x**2", "--wrt", "x", "--format", "json"))["jacobian"] == \
        [["2*x"]]


# -- the element level -----------------------------------------------------------------------------
def test_element_level_cases_as_cases_and_powers_raised():
    out = run("derive", "2-2-1", "--level", "element", "--wrt", "w1")
    assert "     ℓ = (ŷ − y)²/2    [the loss of one example]" in out
    assert "= { 0 if w₁x₁ + w₂x₂ + b₁ ≤ 0; w₅x₁(ŷ − y) otherwise }    [relu′(z) = step(z)" in out
    assert "∂ℓ/∂w₁ = w₅x₁ step(w₁x₁ + w₂x₂ + b₁)(ŷ − y)" in out


def test_element_level_derivative_of_a_sum_is_bracketed():
    out = run("derive", "2-2-1", "--level", "element", "--of", "output", "--wrt", "w1")
    assert out.startswith("∂ŷ/∂w₁, unit by unit\n")
    assert ("∂ŷ/∂w₁ = ∂(w₅ relu(w₁x₁ + w₂x₂ + b₁) + w₆ relu(w₃x₁ + w₄x₂ + b₂) + b₃)/∂w₁"
            in out)
    assert "= ∂(w₅ relu(w₁x₁ + w₂x₂ + b₁))/∂w₁    [only this term depends on w₁]" in out


def test_sigmoid_hidden_units_print_sigma_one_minus_sigma():
    out = run("derive", "2-2-1", "--hidden", "sigmoid", "--level", "element", "--wrt", "w1",
              "--steps", "full")
    assert "= σ(z₁,₁)(1 − σ(z₁,₁))    [σ′(z) = σ(z)(1 − σ(z))]" in out


def test_sigmoid_derivative_is_recognised_in_its_cosh_form():
    assert run("jacobian", "1/(1+exp(-h))", "--wrt", "h").strip() == "[[σ(h)(1 − σ(h))]]"
    h, a = R("h", "a")
    e = a**2 / (4 * sp.cosh(h / 2)**2)
    assert TextPrinter().doprint(e) == "a² σ(h)(1 − σ(h))"
    # only where it is equal: cosh to another power is left alone
    assert TextPrinter().doprint(1 / sp.cosh(h)**3) == "1/cosh(h)³"


def test_exponentials_are_combined():
    w0, w1, w2, x1, x2 = R("w0", "w1", "w2", "x1", "x2")
    e = sp.Mul(x1, sp.exp(w0), sp.exp(w1 * x1), sp.exp(w2 * x2), evaluate=False)
    assert TextPrinter().doprint(e) == "x₁ exp(w₀ + w₁x₁ + w₂x₂)"
    out = run("jacobian", "exp(w0 + w1*x1 + w2*x2)", "--wrt", "w1", "--steps", "full")
    assert "= x₁ exp(w₀ + w₁x₁ + w₂x₂)    [substitute u = w₀ + w₁ x₁ + w₂ x₂ back]" in out


def test_a_note_is_no_equation():
    out = run("chain", "--fn", "x1 - 2*x2 + x3/4", "--wrt", "x1,x2,x3",
              "--fn", "x1 + 2*x2, x2, -x1 + 3", "--wrt", "x1,x2", "--steps")
    assert "= both methods agree" not in out
    assert out.splitlines()[-1] == " " * 12 + "both methods agree"
    assert "∂f/∂g = [[1, −2, 1/4]]" in out and "g = [[x₁ + 2x₂], [x₂], [3 − x₁]]" in out
    d = Derivation("", [])
    d.add("f", sp.Integer(1))
    d.add(None, Note("a remark"))
    assert to_text(d) == "f = 1\n    a remark"


# -- pieces ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, shown", [
    ("yhat", "ŷ"), ("Yhat", "Ŷ"), ("x1", "x₁"), ("W1", "W₁"), ("w10", "w₁₀"), ("z1_2", "z₁,₂"),
    ("W1_12", "W₁,₁₂"), ("W1_1,11", "W₁,₁,₁₁"), ("yhat_2", "ŷ₂"), ("g_z2", "g_z₂"),
    ("lambda", "λ"), ("x", "x"), ("tok", "tok"), ("__import__('os')", "__import__('os')")])
def test_names(name, shown):
    assert text_name(name) == shown
    assert text_name(name, unicode=False) == name


def test_function_names():
    assert function_text("sigmoid") == "σ" and function_text("sigmoid'") == "σ′"
    assert function_text("relu'") == "relu′" and function_text("relu'", unicode=False) == "relu'"


@pytest.mark.parametrize("expr, shown", [
    ("x**2*sin(x)", "x² sin(x)"), ("-y + yhat", "ŷ − y"), ("x1/x2**2", "x₁/x₂²"),
    ("(x + 1)**(1/2)", "√(x + 1)"), ("x**n", "x^n"), ("2*x1*x2", "2x₁x₂"),
    ("-2*w1", "−2w₁"), ("a*(b + c)", "a (b + c)"), ("x1*(b + c)", "x₁(b + c)"),
    ("-1/x2", "−1/x₂"), ("pi*x", "π x"), ("(1 - y)/(1 - yhat)", "(1 − y)/(1 − ŷ)"),
    # a number before a function's word keeps a space (2sin(x) read as a name), not before σ
    ("2*sin(x)", "2 sin(x)"), ("-3*cos(x)", "−3 cos(x)"), ("2*sigmoid(x)", "2σ(x)"),
])
def test_expressions(expr, shown):
    assert TextPrinter().doprint(sg.parse(expr)) == shown


def test_a_number_times_a_function_on_the_command_line():
    out = run("jacobian", "sin(x)**2", "--wrt", "x", "--steps", "full")
    assert "2 cos(x) sin(x)" in out and "2cos" not in out


def test_relations_and_cases():
    x, y = R("x", "y")
    e = sp.Piecewise((0, x <= 0), (x * y, sp.And(x > 1, y >= 1)), (1, True))
    assert TextPrinter().doprint(e) == "{ 0 if x ≤ 0; x y if y ≥ 1 and x > 1; 1 otherwise }"


def test_ascii_fallback():
    d = sg.derive_jacobian("x1**2*sigmoid(x2) - yhat", "x1 x2")
    text = to_text(d, unicode=False)
    assert "df/dx1 = 2x1 sigmoid(x2)" in text and "f = [[x1^2 sigmoid(x2) - yhat]]" in text
    uni = to_text(d)
    assert "∂f/∂x₁ = 2x₁ σ(x₂)" in uni and "f = [[x₁² σ(x₂) − ŷ]]" in uni
    x, y = R("x", "y")
    assert TextPrinter({"unicode": False}).doprint(sp.Piecewise((0, x <= 0), (y, True))) == \
        "{ 0 if x <= 0; y otherwise }"


def test_str_of_a_derivation_is_the_text_format():
    d = sg.derive_jacobian("x1*yhat", "x1")
    assert str(d) == d.to_text() and "∂f/∂x₁ = ŷ" in str(d)


# -- a property of every standard derivation's text ------------------------------------------------
def _standard_texts():
    for hidden in ("relu", "sigmoid", "tanh"):
        for output, loss, sizes in (("identity", "mse", [2, 2, 1]), ("sigmoid", "bce", [2, 2, 1]),
                                    ("softmax", "cross_entropy", [2, 2, 2])):
            net = sg.mlp(sizes, hidden=hidden, output=output, loss=loss)
            yield f"{hidden}/{loss} matrix", "\n".join(d.to_text() for d in net.derive_all()) \
                if hasattr(net, "derive_all") else net.derive("W1").to_text()
            yield f"{hidden}/{loss} b2", net.derive("b2").to_text()
            if output != "softmax":
                yield f"{hidden}/{loss} element", net.derive("w1", level="element").to_text()
                yield f"{hidden}/{loss} element full", net.derive(
                    "w1", level="element", steps="full").to_text()
    yield "chain", sg.chain(("x1 - 2*x2 + x3/4", "x1 x2 x3", "f"),
                            ("x1 + 2*x2, x2, -x1 + 3", "x1 x2", "g")).to_text()
    yield "chain exp", sg.chain(("exp(u)", "u", "f"), ("w0 + w1*x1 + w2*x2", "w0 w1 w2", "g")
                                ).to_text()
    yield "grad lsq", sg.grad("norm2(X*w - y)^2", "w", vectors="w y", matrices="X").to_text()
    yield "grad xAx", sg.grad("x'*A*x", "x", vectors="x", matrices="A").to_text()
    yield "hessian logistic", sg.hessian("log(1 + exp(-(w1*a1 + w2*b1)))", "w1 w2").to_text()
    yield "jacobian", sg.derive_jacobian("x**2*sin(x), (x**2 + 1)/(x - 1)", "x",
                                         steps="full").to_text()


@pytest.mark.parametrize("label, text", list(_standard_texts()), ids=lambda v: v[:30])
def test_no_sympy_syntax_in_text(label, text):
    assert "**" not in text, label
    assert "Piecewise(" not in text, label
    assert "yhat" not in text, label
    assert " - " not in text, label
    assert not re.search(r"\w\*|\)\*|\*\w|\*\(", text), (label, re.findall(r".{20}\*.{20}", text))


# -- the matrix language's ones vector and softmax Jacobian; --ascii ---------------------------------
SOFTMAX_CE = "-sum(Y .* log(softmax(X*W))) + 0.5*lam*tr(W'*W)"


def test_ones_vector_and_softmax_jacobian_read_as_the_notes():
    """𝟏 (not the digit 1) beside Y, and the softmax Jacobian with − and side-by-side products,
    in the softmax regression Hessian's form; JSON keeps SymPy's own strings (OneMatrix,
    SoftmaxJacobian)."""
    from symgrad.core.matexpr import Softmax, SoftmaxJacobian
    from symgrad.printing.text import MatrixSympifyPrinter
    n, k, m = sp.symbols("n k m", integer=True, positive=True)
    X, W, Y = sp.MatrixSymbol("X", n, k), sp.MatrixSymbol("W", k, m), sp.MatrixSymbol("Y", n, m)
    H = sp.MatMul(sp.KroneckerProduct(X.T * sp.DiagMatrix(Y * sp.OneMatrix(m, 1)), sp.Identity(m)),
                  SoftmaxJacobian(Softmax(X * W, 1)), sp.KroneckerProduct(X, sp.Identity(m)))
    out = TextPrinter().doprint(H)
    assert "diag(Y𝟏)" in out and "blkdiag_i(diag(sᵢ) − sᵢsᵢᵀ | S = softmax(XW))" in out, out
    assert "*" not in out and " - " not in out, out
    ascii_out = TextPrinter({"unicode": False}).doprint(H)
    assert "diag(Y 1)" in ascii_out and "blkdiag_i(diag(s_i) - s_i s_i'" in ascii_out, ascii_out
    js = MatrixSympifyPrinter().doprint(H)
    assert "OneMatrix(m, 1)" in js and "SoftmaxJacobian(Softmax(" in js, js


@pytest.mark.slow
def test_ones_vector_on_the_command_line():
    out = run("hessian", SOFTMAX_CE, "--wrt", "W", "--matrix", "X,W,Y")
    assert "diag(Y𝟏)" in out and "sᵢsᵢᵀ" in out, out
    js = json.loads(run("hessian", SOFTMAX_CE, "--wrt", "W", "--matrix", "X,W,Y", "--format",
                        "json"))["result"]
    assert "OneMatrix(m, 1)" in js and "SoftmaxJacobian(Softmax(" in js, js


def test_softmax_vjp_text():
    from symgrad.core.matexpr import SoftmaxVJP
    y, g = sp.MatrixSymbol("yhat", 3, 1), sp.MatrixSymbol("g", 3, 1)
    assert TextPrinter().doprint(SoftmaxVJP(y, g)) == "(diag(ŷ) − ŷ ŷᵀ)g"
    assert TextPrinter({"unicode": False}).doprint(SoftmaxVJP(y, g)) == "(diag(yhat) - yhat yhat')g"
    assert TextPrinter().doprint(sp.OneMatrix(1, 3) * y) == "𝟏ᵀŷ"


@pytest.mark.parametrize("args, uni, asc", [
    (["jacobian", "x1*yhat - x2", "--wrt", "x1,yhat"], "[[ŷ, x₁]]", "[[yhat, x1]]"),
    (["hessian", "x1**3*x2", "--wrt", "x1,x2"], "3x₁²", "3x1^2"),
    (["grad", "norm2(X*w - y)^2", "--wrt", "w", "--vector", "w,y", "--matrix", "X"], "Xw − y",
     "Xw - y"),
    (["derivative", "sigmoid(w'*x)", "--wrt", "w", "--vector", "w,x"], "σ", "sigmoid"),
    (["chain", "--fn", "u1*u2", "--wrt", "u1,u2", "--fn", "x1 + x2, x1 - x2", "--wrt", "x1,x2"],
     "2x₁", "2x1"),
    (["derive", "2-2-1", "--wrt", "b2"], "ŷ − y", "yhat - y"),
])
def test_ascii_flag(args, uni, asc):
    """--ascii selects the text format's ASCII mode on every command that prints text."""
    out, ascii_out = run(*args), run(*args, "--ascii")
    assert uni in out and asc in ascii_out, (out, ascii_out)
    assert uni not in ascii_out


# issue 13: --ascii is ASCII throughout, at every level and in every command's text (∂, ℓ, ᵀ, ⊗, ·
# and the layers' ⁽¹⁾ were left in the matrix and element levels)
ASCII_SWEEP = [
    ["derive", "2-2-1", "--hidden", "sigmoid", "--wrt", "W1"],
    ["derive", "2-2-1", "--hidden", "sigmoid"],
    ["derive", "2-2-1", "--loss", "(yhat-y)^4", "--wrt", "W1"],
    ["derive", "2-3-2", "--output", "softmax", "--loss", "cross_entropy", "--wrt", "W1"],
    ["derive", "2-2-1", "--level", "element"],
    ["derive", "2-2-1", "--level", "element", "--steps", "full", "--wrt", "w1"],
    ["derive", "2-2-1", "--level", "index"],
    ["jacobian", "sigmoid(x1*x2) - x1^2, lambda*x2", "--wrt", "x1,x2", "--steps"],
    ["hessian", "exp(x*y) - x^3", "--wrt", "x,y", "--steps"],
    ["chain", "--fn", "x1 - 2*x2 + x3/4", "--wrt", "x1,x2,x3",
     "--fn", "x1 + 2*x2, x2, -x1 + 3", "--wrt", "x1,x2", "--steps"],
    ["grad", "norm2(X*w - y)^2", "--wrt", "w", "--vector", "w,y", "--matrix", "X"],
    ["derivative", "softmax(x)", "--wrt", "x", "--vector", "x", "--steps"],
]


@pytest.mark.parametrize("args", ASCII_SWEEP, ids=lambda a: " ".join(a[:4]))
def test_ascii_option_writes_only_ascii(args):
    out = run(*args, "--ascii")
    bad = sorted({c for c in out if not c.isascii()})
    assert not bad, f"non-ASCII {bad} in: {out}"
    assert run(*args) != out  # the Unicode text did have glyphs to replace


def test_ascii_reads_kron_and_derivatives():
    out = run("derive", "2-2-1", "--hidden", "sigmoid", "--wrt", "W1", "--ascii")
    assert "dl/dvec[W1] = dl/dyhat * dyhat/dh1 * dh1/dz1 * dz1/dvec[W1]" in out
    assert "dz1/dvec[W1] = I kron x'" in out and "  kron" not in out


def test_custom_loss_derivative_is_text_not_sympy_str():
    """issue 13: a user loss's ∂L/∂ŷ printed its label, SymPy's str: [4*(-y + ŷ)**3]ᵀ."""
    for level in ("matrix", "element"):
        out = run("derive", "2-2-1", "--loss", "(yhat-y)^4", "--level", level)
        assert "*" not in out and "-y" not in out, out
    out = run("derive", "2-2-1", "--loss", "(yhat-y)^4", "--wrt", "W1")
    assert "∂ℓ/∂ŷ = [4(ŷ − y)³]ᵀ" in out and "g_ŷᵀ = [4(ŷ − y)³]ᵀ" in out
    ascii_out = run("derive", "2-2-1", "--loss", "(yhat-y)^4", "--wrt", "W1", "--ascii")
    assert "dl/dyhat = [4(yhat - y)^3]'" in ascii_out, ascii_out
    # the engines' own formula labels stay as written
    out = run("derive", "2-2-1", "--output", "sigmoid", "--loss", "bce", "--wrt", "W1")
    assert "∂ℓ/∂ŷ = [(ŷ − y)/(ŷ(1 − ŷ))]ᵀ" in out


F_NET = """import symgrad as sg
net = sg.Network()
x = net.input("x", 2)
z = net.dense(x, 2, W="W1", b="b1", name="zeta_1")
h = net.act(z, "sigmoid", name="t_1")
net.set_loss(net.dense(h, 1, W="W2", b="b2", name={out!r}), "mse")
"""


def test_cost_letter_does_not_collide_with_a_users_name(tmp_path):
    """issue 13: an output named f read "f = (1/n) Σ_i ℓ_i is the mean loss" beside its own f − y."""
    from symgrad.derive.cost import cost_name
    path = tmp_path / "fnet.py"
    path.write_text(F_NET.format(out="f"))
    out = run("derive", str(path), "--level", "element", "--wrt", "w1")
    assert "J = (1/n) Σᵢ ℓᵢ is the mean loss" in out and "f = (1/n)" not in out, out
    assert "∂J/∂w₁ = (1/n) Σ" in out
    out = run("derive", str(path), "--level", "element")
    assert "W⁽¹⁾ ← W⁽¹⁾ − ε ∇_W⁽¹⁾ J" in out and "∂f/∂" not in out and "∇_W⁽¹⁾ f" not in out
    assert "∇_W₁ J = " in run("derive", str(path), "--wrt", "W1")
    assert "J = Σᵢ ℓᵢ is the summed loss" in run("derive", str(path), "--level", "element",
                                                   "--wrt", "w1", "--cost", "sum")
    # no user f: the slides' f; f and J both taken: the next letter
    assert "∇_W₁ f = " in run("derive", "2-2-1", "--wrt", "W1")
    net = sg.Network()
    x = net.input("J", 2)
    net.set_loss(net.dense(x, 1, W="W1", b="b1", name="f"), "mse")
    assert cost_name(net) == "R"


def test_underscored_names_print_as_subscripts(tmp_path):
    """issue 13: h₁_i and a net file's zeta_1, t_1 kept their underscores; now ζ₁, t₁, and an
    entry of one as z₁,₂ is: ζ₁,₁, h₁,ᵢ."""
    path = tmp_path / "greek.py"
    path.write_text(F_NET.format(out="yhat"))
    out = run("derive", str(path), "--wrt", "W1")
    assert "∂ℓ/∂vec[W₁] = ∂ℓ/∂ŷ · ∂ŷ/∂t₁ · ∂t₁/∂ζ₁ · ∂ζ₁/∂vec[W₁]" in out, out
    assert "t₁,ᵢ depends only on ζ₁,ᵢ" in out and "g_ζ₁ᵀ" in out
    element = run("derive", str(path), "--level", "element", "--wrt", "w1")
    assert "σ(ζ₁,₁)(1 − σ(ζ₁,₁))" in element and "∂t₁,₁/∂ζ₁,₁" in element
    for text in (out, element):
        assert "zeta" not in text and "t_1" not in text and "_1" not in text
    assert "h₁,ᵢ depends only on z₁,ᵢ" in run("derive", "2-2-1", "--wrt", "W1")
    assert "zeta_1" in run("derive", str(path), "--wrt", "W1", "--ascii")  # ASCII: as named


def test_element_level_writes_parameters_by_layer_and_defines_steps_units():
    """issue 13: the bias vector b₁ collided with the unit bias b₁ (∂ℓ/∂b₁ and ∂ℓ/∂b₂ made up
    "∇ … with respect to b₁", b₁ ← … both a scalar and a vector); step(z₁,₁) was undefined."""
    out = run("derive", "2-2-1", "--level", "element")
    assert "∇ of ℓ with respect to b⁽¹⁾, entry by entry" in out
    assert "b⁽¹⁾ ← b⁽¹⁾ − ε ∇_b⁽¹⁾ f" in out and "b₁ ← b₁ − ε ∂f/∂b₁" in out
    assert "W⁽¹⁾ ← W⁽¹⁾ − ε ∇_W⁽¹⁾ f" in out and "= g_z⁽¹⁾xᵀ" in out
    updated = [ln.split(" ← ")[0].strip() for ln in out.splitlines() if " ← " in ln]
    assert len(updated) == len(set(updated)) == 13  # 9 scalars and 4 parameters, no name twice
    assert "z₁,₁ = w₁x₁ + w₂x₂ + b₁    [where" in out and "step(z₁,₁)" in out
    records = json.loads(run("derive", "2-2-1", "--level", "element", "--format", "json"))
    assert records[-1]["result"][:2] == ["w1", "w2"]  # the descent's list of weights (was a crash)
    ascii_out = run("derive", "2-2-1", "--level", "element", "--ascii")
    assert "b^(1) <- b^(1) - epsilon grad_b^(1) f" in ascii_out or "b^(1) <-" in ascii_out


# issue 13: the words wrote ŷ_k, y_k, Σ_k, ℓ_i, δ_ij beside maths (and words) in Unicode subscripts
# (h₁,ᵢ, z₂,ᵢ, ŷ₁): "ŷ_i depends only on z₂,ᵢ". An entry is written as the maths write it.
SUBSCRIPT_SWEEP = [
    ["derive", "2-2-2", "--output", "sigmoid", "--loss", "bce", "--wrt", "W2"],
    ["derive", "2-3-2", "--output", "softmax", "--loss", "cross_entropy", "--wrt", "W1"],
    ["derive", "2-2-2", "--output", "softmax", "--loss", "cross_entropy", "--level", "element",
     "--wrt", "w1"],
    ["derive", "2-2-1", "--level", "element", "--wrt", "w1"],
    ["derive", "examples/handouts/multitask.py", "--wrt", "W1"],
    ["derivative", "softmax(x)", "--wrt", "x", "--vector", "x", "--steps"],
    ["jacobian", "sigmoid(x1*x2) - x1^2, lambda*x2", "--wrt", "x1,x2", "--steps"],
]
# a letter with an underscore and an index Unicode writes as a subscript (not g_z₁, the g of a
# node, nor a target y_reg: 'g' has no subscript letter)
UNDERSCORED_ENTRY = re.compile(r"(?<![\w′'])([A-FH-Za-fh-zα-ωΑ-Ωŷℓ∑])_([aehijklmnoprstuvx0-9]{1,3})"
                               r"(?![\w′'])")


@pytest.mark.parametrize("args", SUBSCRIPT_SWEEP, ids=lambda a: " ".join(a[:4]))
def test_words_write_entries_as_the_maths_do(args):
    out = run(*args)
    assert out and "Error" not in out and "error:" not in out, out
    mixed = {m.group(0) for line in out.splitlines() for m in UNDERSCORED_ENTRY.finditer(line)}
    assert not mixed, (mixed, out)
    ascii_out = run(*args, "--ascii")  # ASCII keeps its underscores, and is ASCII throughout
    assert ascii_out.isascii(), sorted({c for c in ascii_out if not c.isascii()})


def test_entries_in_words_beside_the_maths():
    out = run("derive", "2-2-2", "--output", "sigmoid", "--loss", "bce", "--wrt", "W2")
    assert "ŷᵢ depends only on z₂,ᵢ" in out and "ŷ_i" not in out  # was "ŷ_i depends on z₂,ᵢ"
    assert "so ∂ℓ/∂ŷₖ = −yₖ/ŷₖ + (1 − yₖ)/(1 − ŷₖ)" in out and "ℓ = −Σₖ [yₖ log ŷₖ" in out
    softmax = run("derive", "2-3-2", "--output", "softmax", "--loss", "cross_entropy", "--wrt",
                  "W1")
    assert "∂ŷᵢ/∂zⱼ = ŷᵢ(δᵢⱼ − ŷⱼ)" in softmax, softmax
    element = run("derive", "2-2-1", "--level", "element", "--wrt", "w1")
    assert "Σ_{i=1}^{n} ∂ℓᵢ/∂w₁    [f = (1/n) Σᵢ ℓᵢ is the mean loss" in element, element
    assert "sum_{i=1}^{n} dl_i/dw1    [f = (1/n) sum_i l_i" in run(
        "derive", "2-2-1", "--level", "element", "--wrt", "w1", "--ascii")
    multitask = run("derive", "examples/handouts/multitask.py", "--wrt", "W1")
    assert "of its target y_reg" in multitask or "against its target y_reg" in multitask
    assert "only ℓ₁ reads reg" in multitask and "g_" in multitask  # a node's g as the maths


def test_an_index_unicode_cannot_subscript_leaves_its_sentence_as_written():
    """τ has no subscript: "row τ = x_τ" stayed, not xτ, and so did the sentence's m_t, e_t."""
    from symgrad.printing.text import _entry_word
    assert _entry_word("x", "τ") is None and _entry_word("δ", "ij") == "δᵢⱼ"
    assert _entry_word("y", "reg") is None and _entry_word("ℓ", "1") == "ℓ₁"
    x, y = sp.symbols("x y", real=True)
    d = Derivation()
    d.add(y, 2 * x, "entry τ is k_τ · q_t, as ŷ_k is")  # τ: the sentence keeps its underscores
    d.add(y, 2 * x, "q_t and ŷ_k, δ_ij")
    first, second = to_text(d).splitlines()
    assert first.endswith("[entry τ is k_τ · q_t, as ŷ_k is]"), first
    assert second.endswith("[qₜ and ŷₖ, δᵢⱼ]"), second


def test_entrywise_reciprocal_reads_as_its_words():
    """The softmax step printed diag((ŷ)^⊙-1) beside its own words "−yᵀ diag(1/ŷ)"."""
    text = sg.mlp([2, 3], output="softmax", loss="cross_entropy").derive("W1").to_text()
    assert "= −yᵀ diag(1/ŷ)(diag(ŷ) − ŷ ŷᵀ)" in text and "^⊙-1" not in text


def test_an_engine_formula_on_a_named_head_is_written_in_its_names():
    # the multi-task classifier cls (target y_cls) printed ∂ℓ₂/∂cls = [−y/ŷ]ᵀ: ŷ and y undefined
    # there (issue 13); a net's own ŷ and y keep the engine's text
    from symgrad.graph.losses import Loss
    cls, y_cls = sp.MatrixSymbol("cls", 2, 1), sp.MatrixSymbol("y_cls", 2, 1)
    yhat, y = sp.MatrixSymbol("yhat", 2, 1), sp.MatrixSymbol("y", 2, 1)
    P = TextPrinter({})
    assert P.doprint(Loss("cross_entropy").row(cls, y_cls)[0]) == "[−y_cls/cls]ᵀ"
    assert P.doprint(Loss("bce").row(cls, y_cls)[0]) == "[(cls − y_cls)/(cls (1 − cls))]ᵀ"
    assert P.doprint(Loss("cross_entropy").row(yhat, y)[0]) == "[−y/ŷ]ᵀ"
    assert P.doprint(Loss("bce").row(yhat, y)[0]) == "[(ŷ − y)/(ŷ(1 − ŷ))]ᵀ"
    net = sg.Network()
    h = net.act(net.dense(net.input("x", 2), 3), "relu")
    net.add_loss(net.dense(h, 1, name="reg"), "mse")
    net.add_loss(net.act(net.dense(h, 2), "softmax", name="cls"), "cross_entropy", weight=0.5)
    out = net.derive("W1").to_text()
    assert "[−y_cls/cls]ᵀ" in out and "ŷ]ᵀ" not in out
