"""The ESL preset and the index level (issue 13, item 3): the back-propagation equations of
Elements of Statistical Learning §11.4 (seed 004 of the notes) in their own notation, general
indices checked against finite differences of R, the sum and mean costs, the command line, and
KaTeX/MathJax rendering of every block."""
from __future__ import annotations

import json
import random
import re

import numpy as np
import pytest
import sympy as sp
from click.testing import CliRunner

import symgrad as sg
from symgrad.cli import cli
from symgrad.derive import indexed
from symgrad.derive.indexed import B, SIZES, IndexCheckError
from symgrad.printing.latex import notebook_latex

# ESL's regression net: σ hidden units, K outputs g_k, squared error without the ½
ESL_LOSS = "(y - yhat)^2"


def esl_net(sizes=(3, 4, 2), output="sigmoid"):
    return sg.mlp(list(sizes), hidden="sigmoid", output=output, loss=ESL_LOSS)


@pytest.fixture(scope="module")
def esl_blocks():
    net = esl_net()
    return {p: net.derive(p, level="index", notation="esl") for p in ("W1", "b1", "W2", "b2")}


# -- golden LaTeX: the lecture's equations in its own notation ---------------------------------------
GOLDEN = {
    "W1": [r"R &= \sum_{i=1}^{N} R_{i}",
           r"R_{i} &= \sum_{k=1}^{K} \left(y_{ik} - f_{k}(x_{i})\right)^{2}",
           r"z_{mi} &= \sigma\left(\alpha_{0m} + \alpha_{m}^{\top} x_{i}\right)",
           r"T_{ki} &= \beta_{0k} + \beta_{k}^{\top} z_{i}",
           r"f_{k}(x_{i}) &= g_{k}\left(T_{ki}\right)",
           r"\delta_{ki} &= - 2 \left(y_{ik} - f_{k}(x_{i})\right) "
           r"g_{k}'\left(\beta_{0k} + \beta_{k}^{\top} z_{i}\right)",
           r"s_{mi} &= \sigma'\left(\alpha_{0m} + \alpha_{m}^{\top} x_{i}\right) "
           r"\sum_{k=1}^{K} \beta_{km} \delta_{ki}",
           r"\frac{\partial R_{i}}{\partial \alpha_{ml}} &= s_{mi} x_{il}",
           r"\frac{\partial R}{\partial \alpha_{ml}} &= \sum_{i=1}^{N} s_{mi} x_{il}"],
    "W2": [r"\frac{\partial R_{i}}{\partial \beta_{km}} &= \delta_{ki} z_{mi}",
           r"\frac{\partial R}{\partial \beta_{km}} &= \sum_{i=1}^{N} \delta_{ki} z_{mi}",
           # the lecture's "= 0 whenever k ≠ k'", as an Iverson bracket (δ is ESL's error)
           r"[k = k']"],
    "b1": [r"\frac{\partial R_{i}}{\partial \alpha_{0m}} &= s_{mi}"],
    "b2": [r"\frac{\partial R_{i}}{\partial \beta_{0k}} &= \delta_{ki}"],
}


@pytest.mark.parametrize("p", sorted(GOLDEN))
def test_golden_latex_in_esl_notation(esl_blocks, p):
    tex = esl_blocks[p].to_latex(notation="esl")
    for line in GOLDEN[p]:
        assert line in tex, (line, tex)


def test_identity_output_is_the_lecture_regression():
    """g_k the identity (the lecture's f(x_i) = β_k x_i + β_0): δ_ki = −2(y_ik − f_k(x_i))."""
    d = esl_net((2, 2, 1), output="identity").derive("W2", level="index", notation="esl")
    assert r"\delta_{ki} &= - 2 \left(y_{ik} - f_{k}(x_{i})\right) &&" in d.to_latex(
        notation="esl")


def test_feature_notes_general_index():
    """The feature notes' ∂π/∂ẇ_ij = ẅ_j a′(π̇_j) x_i, for any i, j (ẇ_ij joins input i to
    unit j: symgrad's W1 row j, column i)."""
    net = sg.mlp([2, 2, 1], hidden="relu", output="identity", loss="mse")
    for wrt in ("wdot_ij", "W1_ji"):
        d = net.derive(wrt, level="index", notation="feature", of="output")
        tex = d.to_latex(notation="feature")
        assert r"\frac{\partial o^{(n)}_{k}}{\partial \dot{w}_{ij}}" in tex
        assert r"&= \ddot{w}_{jk} a'\left(\dot{\pi}^{(n)}_{j}\right) x^{(n)}_{i}" in tex


def test_user_letters_and_a_clashing_example_index():
    """W1_ij: hidden unit i, input j; the example index moves off i."""
    d = esl_net().derive("W1_ij", level="index", notation="esl")
    i, j, n = (sp.Symbol(c, integer=True) for c in "ijn")
    assert d.result == sp.Sum(B["s"][i, n] * B["x"][n, j], (n, 1, SIZES["N"]))
    assert r"\frac{\partial R}{\partial \alpha_{ij}} &= \sum_{n=1}^{N} s_{in} x_{nj}" in \
        d.to_latex(notation="esl")


# -- numbers: the general formulas against finite differences of R ----------------------------------------
def _forward(P, X, Y, sig, out):
    Z = sig(X @ P["W1"].T + P["b1"])          # z_mi, one example a row
    F = out(Z @ P["W2"].T + P["b2"])          # f_k(x_i)
    return Z, F


def _R(P, X, Y, cost, sig, out):
    _, F = _forward(P, X, Y, sig, out)
    total = ((Y - F) ** 2).sum()
    return total if cost == "sum" else total / len(X)


def _instantiate(expr, idx: dict, P, X, Y, sizes):
    """The general result at concrete indices and sizes, every Indexed a number."""
    p, M, K = sizes
    N = len(X)
    e = expr.xreplace({SIZES["N"]: N, SIZES["K"]: K, SIZES["M"]: M, SIZES["p"]: p})
    e = e.xreplace(idx).doit()
    arrays = {"W1": P["W1"], "b1": P["b1"], "W2": P["W2"], "b2": P["b2"], "x": X, "y": Y}

    def value(ix):
        a = arrays[ix.base.label.name]
        return sp.Float(a[tuple(int(i) - 1 for i in ix.indices)])

    e = e.replace(lambda t: isinstance(t, sp.Indexed), value)
    return float(e)


@pytest.mark.slow  # 5-15 s in CI's default run (11.5 min with it); -m slow runs it
@pytest.mark.parametrize("cost", ["sum", "mean"])
@pytest.mark.parametrize("output", ["sigmoid", "identity"])
def test_general_formulas_match_finite_differences(cost, output):
    sizes, N = (3, 4, 2), 5
    net = esl_net(sizes, output)
    rng = np.random.default_rng(7)
    P = {"W1": rng.normal(size=(4, 3)), "b1": rng.normal(size=4),
         "W2": rng.normal(size=(2, 4)), "b2": rng.normal(size=2)}
    X, Y = rng.normal(size=(N, 3)), rng.normal(size=(N, 2))
    sig = lambda t: 1 / (1 + np.exp(-t))  # noqa: E731
    out = sig if output == "sigmoid" else (lambda t: t)
    pick = random.Random(3)
    for p in ("W1", "b1", "W2", "b2"):
        d = net.derive(p, level="index", notation="esl", cost=cost)
        own = {"W1": ("m", "l"), "b1": ("m",), "W2": ("k", "m"), "b2": ("k",)}[p]
        for _ in range(3):
            at = tuple(pick.randrange(s) for s in P[p].shape)
            idx = {sp.Symbol(c, integer=True): a + 1 for c, a in zip(own, at)}
            got = _instantiate(d.meta["explicit"], idx, P, X, Y, sizes)
            h = 1e-6
            Q = {k: v.copy() for k, v in P.items()}
            Q[p][at] += h
            up = _R(Q, X, Y, cost, sig, out)
            Q[p][at] -= 2 * h
            down = _R(Q, X, Y, cost, sig, out)
            fd = (up - down) / (2 * h)
            assert abs(got - fd) <= 1e-6 * (1 + abs(fd)), (p, at, got, fd)


def test_sum_and_mean_differ_by_exactly_N():
    net = esl_net()
    N = SIZES["N"]
    for p in ("W1", "b1", "W2", "b2"):
        s = net.derive(p, level="index", notation="esl", cost="sum").result
        m = net.derive(p, level="index", notation="esl", cost="mean").result
        assert s == N * m and s != m


def test_default_cost_follows_the_notation():
    net = esl_net((2, 2, 1))
    assert net.derive("b2", level="index", notation="esl").meta["cost"] == "sum"
    assert net.derive("b2", level="index", notation="slides").meta["cost"] == "mean"


def test_cost_on_the_matrix_and_element_levels():
    """Every level takes cost: the matrix level's G at the loss loses its 1/n under the sum,
    the element level's batch step adds instead of averaging; mean stays the default."""
    net = sg.mlp([2, 2, 1])
    mean, total = net.derive("W1"), net.derive("W1", cost="sum")
    n = sp.Symbol("n", integer=True, positive=True)
    assert mean.meta["cost"] == "mean" and total.meta["cost"] == "sum"
    g_mean, g_sum = dict(mean.meta["where"][1]), dict(total.meta["where"][1])
    (k,) = [k for k in g_mean if k.name == "G_yhat"]
    assert g_mean[k].has(1 / n) and not g_sum[k].has(1 / n)
    assert str(g_mean[k]) == "1/n*(Yhat - Y)" and str(g_sum[k]) == "Yhat - Y"
    e_mean = net.derive("w1", level="element").steps[-1].rhs
    e_sum = net.derive("w1", level="element", cost="sum").steps[-1].rhs
    assert e_mean == e_sum / n
    with pytest.raises(ValueError, match="cost must be"):
        net.derive("W1", cost="median")


# -- the self-check refuses a wrong formula ---------------------------------------------------------------
def test_a_wrong_general_formula_raises(monkeypatch):
    good = indexed._Record._s

    def bad(self, layer=1):
        good(self, layer)
        key = B["s"][self.ix.m, self.ix.i]
        self.definitions[key] = 2 * self.definitions[key]

    monkeypatch.setattr(indexed._Record, "_s", bad)
    with pytest.raises(IndexCheckError, match="disagrees with sympy.diff"):
        esl_net((2, 2, 1)).derive("W1", level="index")


def test_checked_at_both_small_nets(esl_blocks):
    for d in esl_blocks.values():
        assert {(2, 2, 1), (3, 2, 2)} <= set(d.meta["checked"])


def test_not_a_dense_activation_stack():
    net = sg.Network()  # two dense layers with no activation between them
    x = net.input("x", 2)
    net.add_loss(net.dense(net.dense(x, 3), 1), "mse")
    with pytest.raises(ValueError, match="this one is input → dense → dense"):
        net.derive("W1", level="index")
    with pytest.raises(ValueError, match="softmax"):
        sg.mlp([2, 3, 2], output="softmax", loss="cross_entropy").derive("W1", level="index")


# -- the command line ---------------------------------------------------------------------------------------
def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_cli_index_level_esl():
    r = run("derive", "2-2-1", "--hidden", "sigmoid", "--loss", ESL_LOSS, "--level", "index",
            "--notation", "esl", "--format", "latex")
    assert r.exit_code == 0, r.output
    for line in (r"s_{mi} &= \sigma'\left(\alpha_{0m} + \alpha_{m}^{\top} x_{i}\right)",
                 r"\frac{\partial R_{i}}{\partial \beta_{km}} &= \delta_{ki} z_{mi}",
                 r"\frac{\partial R_{i}}{\partial \alpha_{ml}} &= s_{mi} x_{il}"):
        assert line in r.output
    assert r.output.count(r"\begin{aligned}") == 4  # every parameter


def test_cli_cost_and_formats():
    r = run("derive", "2-2-1", "--level", "index", "--wrt", "W1_ij", "--cost", "mean")
    assert r.exit_code == 0 and "∂R/∂W⁽¹⁾ᵢⱼ = (1/N) Σₙ sᵢₙ xⱼₙ" in r.output, r.output
    r = run("derive", "2-2-1", "--level", "index", "--wrt", "b2", "--format", "json")
    assert r.exit_code == 0 and '"rhs": "Sum(delta[k, i], (i, 1, N))"' in r.output, r.output
    r = run("derive", "2-2-1", "--wrt", "W1", "--cost", "sum")
    assert r.exit_code == 0 and "the sum over the n examples" in r.output, r.output


@pytest.mark.parametrize("args, fragment", [
    (["--level", "index", "--wrt", "W9_ij"], "unknown parameter 'W9_ij'"),
    (["--level", "index", "--wrt", "W1_12"], "one concrete entry"),
    (["--level", "index", "--wrt", "W1_ii"], "different letters"),
    (["--level", "index", "--cost", "median"], "median"),
    (["--level", "index", "--naming", "position"], "--naming"),
])
def test_cli_bad_input_is_one_line_exit_2(args, fragment):
    r = run("derive", "2-2-1", *args)
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("symgrad: error:"), r.output
    assert fragment in lines[0]


# -- rendering ----------------------------------------------------------------------------------------------
def test_index_level_renders_in_katex_and_mathjax(renderers, esl_blocks):
    blocks = []
    for d in esl_blocks.values():
        for nota in ("esl", "slides", "feature"):
            blocks.append((d.to_latex(notation=nota), True))
        blocks.append((notebook_latex(d, notation="esl")[1:-1], False))
    net = sg.mlp([2, 2, 1])
    for nota in ("slides", "feature"):
        d = net.derive("W1_ij", level="index", notation=nota, cost="sum")
        blocks.append((d.to_latex(notation=nota), True))
    blocks.append((net.derive("W2", cost="sum").to_latex(notation="esl"), True))
    blocks.append((net.derive("w5", level="element").to_latex(notation="esl"), True))
    assert not (f := renderers.failures(blocks, "esl")), f


def test_cli_feature_output_and_an_esl_handout_render(renderers):
    r = run("derive", "2-2-1", "--level", "index", "--wrt", "wdot_ij", "--of", "output",
            "--notation", "feature", "--format", "latex")
    assert r.exit_code == 0, r.output
    assert r"&= \ddot{w}_{jk} a'\left(\dot{\pi}^{(n)}_{j}\right) x^{(n)}_{i}" in r.output
    from test_renderers import markdown_math
    md = sg.handout(esl_net((2, 2, 1)), fmt="markdown", notation="esl")
    blocks = [(r.output, True)] + markdown_math(md)
    assert "\\alpha" in md
    assert not (f := renderers.failures(blocks, "esl handout")), f


def test_element_level_takes_index_letters_beside_concrete_indices():
    """--level element --wrt W1_ij is the general entry (the index level); W1_12 stays the
    concrete one, written out weight by weight."""
    net = sg.mlp([2, 2, 1])
    general = net.derive("W1_ij", level="element", notation="esl", cost="mean")
    assert general.meta["level"] == "index" and general.result == net.derive(
        "W1_ij", level="index", cost="mean").result
    assert net.derive("W1_12", level="element", naming="position").meta.get("level") != "index"
    r = run("derive", "2-2-1", "--level", "element", "--wrt", "W1_ij")
    assert r.exit_code == 0 and "∂R/∂W⁽¹⁾ᵢⱼ = Σₙ sᵢₙ xⱼₙ" in r.output, r.output
    r = run("derive", "2-2-1", "--level", "element", "--wrt", "W1_12")
    assert r.exit_code == 0 and "W₁,₁₂" in r.output  # (the text format's W1_12)


@pytest.mark.parametrize("hidden, output, loss, p", [
    ("tanh", "sigmoid", "bce", "b2"), ("sigmoid", "identity", "abs(y - yhat)", "W2"),
    ("leaky_relu", "identity", "mse", "b1")])
def test_other_activations_and_losses_pass_their_check(hidden, output, loss, p):
    """The loss's derivative L′ and the activations' come from their registrations (an abs loss
    once failed: its derivative taken by complex dummies stayed unevaluated)."""
    net = sg.mlp([2, 3, 2] if loss != "bce" else [2, 3, 1], hidden=hidden, output=output,
                 loss=loss)
    d = net.derive(p, level="index", notation="slides")
    assert d.meta["checked"] and d.meta["cost"] == "mean"


# -- the text format (issue 13): readable Unicode, the unit's index before the example's ------------
GOLDEN_TEXT_W1 = [  # symgrad derive 2-3-2 --level index --wrt W1: each line without its words
    "∂R/∂W⁽¹⁾ₘₗ in general indices",  # the title in the body's names (issue 13), not ∂R/∂W₁
    "R = Σᵢ Rᵢ",
    "Rᵢ = Σₖ ½(ŷₖᵢ − yₖᵢ)²",
    "h⁽¹⁾ₘᵢ = relu(b⁽¹⁾ₘ + Σₗ′ W⁽¹⁾ₘₗ′ xₗ′ᵢ)",
    "z⁽²⁾ₖᵢ = b⁽²⁾ₖ + Σₘ″ W⁽²⁾ₖₘ″ h⁽¹⁾ₘ″ᵢ",
    "ŷₖᵢ = z⁽²⁾ₖᵢ",
    "∂Rᵢ/∂ŷₖᵢ = −(yₖᵢ − ŷₖᵢ)",
    "δₖᵢ = −(yₖᵢ − ŷₖᵢ)",
    "∂Rᵢ/∂W⁽¹⁾ₘₗ = Σₖ ∂Rᵢ/∂z⁽²⁾ₖᵢ Σₘ′ ∂z⁽²⁾ₖᵢ/∂h⁽¹⁾ₘ′ᵢ ∂h⁽¹⁾ₘ′ᵢ/∂W⁽¹⁾ₘₗ",
    "= Σₖ δₖᵢ Σₘ′ [m = m′] W⁽²⁾ₖₘ′ relu′(b⁽¹⁾ₘ′ + Σₗ′ W⁽¹⁾ₘ′ₗ′ xₗ′ᵢ) xₗᵢ",
    "= Σₖ W⁽²⁾ₖₘ δₖᵢ relu′(b⁽¹⁾ₘ + Σₗ′ W⁽¹⁾ₘₗ′ xₗ′ᵢ) xₗᵢ",
    "sₘᵢ = relu′(b⁽¹⁾ₘ + Σₗ′ W⁽¹⁾ₘₗ′ xₗ′ᵢ) Σₖ W⁽²⁾ₖₘ δₖᵢ",
    "∂Rᵢ/∂W⁽¹⁾ₘₗ = sₘᵢ xₗᵢ",
    "∂R/∂W⁽¹⁾ₘₗ = Σᵢ sₘᵢ xₗᵢ",
    "checked at every index of 2-2-1 and 3-2-2 against the derivative taken entry by entry"]


def _expressions(text: str) -> list:
    return [line.split("    [")[0].strip() for line in text.splitlines() if line.strip()]


def test_golden_text_2_3_2():
    r = run("derive", "2-3-2", "--level", "index", "--wrt", "W1")
    assert r.exit_code == 0, r.output
    assert _expressions(r.output) == GOLDEN_TEXT_W1


def test_golden_text_esl_names():
    """--notation esl: the lecture's α, β, z, T, f_k(x_i), g_k, and its x_il, y_ik."""
    r = run("derive", "2-3-2", "--level", "index", "--hidden", "sigmoid", "--output", "sigmoid",
            "--notation", "esl", "--cost", "mean")
    assert r.exit_code == 0, r.output
    for line in ("R = (1/N) Σᵢ Rᵢ", "Rᵢ = Σₖ ½(fₖ(xᵢ) − yᵢₖ)²", "zₘᵢ = σ(α₀ₘ + αₘᵀxᵢ)",
                 "Tₖᵢ = β₀ₖ + βₖᵀzᵢ", "fₖ(xᵢ) = gₖ(Tₖᵢ)", "δₖᵢ = −(yᵢₖ − fₖ(xᵢ)) g′ₖ(β₀ₖ + βₖᵀzᵢ)",
                 "sₘᵢ = σ′(α₀ₘ + αₘᵀxᵢ) Σₖ βₖₘ δₖᵢ", "∂R/∂αₘₗ = (1/N) Σᵢ sₘᵢ xᵢₗ",
                 "∂R/∂βₖₘ = (1/N) Σᵢ δₖᵢ zₘᵢ", "∂R/∂α₀ₘ = (1/N) Σᵢ sₘᵢ", "∂R/∂β₀ₖ = (1/N) Σᵢ δₖᵢ",
                 "= Σₖ′ ∂Rᵢ/∂fₖ′(xᵢ) [k = k′] g′ₖ′(β₀ₖ′ + βₖ′ᵀzᵢ) zₘᵢ"):
        assert line in _expressions(r.output), (line, r.output)


@pytest.mark.parametrize("extra", [
    ["--wrt", "W1"],
    pytest.param(["--hidden", "sigmoid", "--output", "sigmoid", "--loss", "bce"],
                 marks=pytest.mark.slow),
    pytest.param(["--notation", "esl"], marks=pytest.mark.slow),
    pytest.param(["--notation", "slides", "--wrt", "W1_ij"], marks=pytest.mark.slow)])
def test_text_has_no_sympy_syntax_and_ascii_is_ascii(extra):
    """2-3-2 in the text format: no *, ** or SymPy's x[i, l] (y[i, k] beside yhat[k, i] was one
    of them); with --ascii not one non-ASCII character, words included."""
    out = run("derive", "2-3-2", "--level", "index", *extra).output
    assert "*" not in out and "[i, k]" not in out and "yhat" not in out, out
    assert " - " not in out and "Σ_{" not in out, out
    asc = run("derive", "2-3-2", "--level", "index", *extra, "--ascii").output
    assert asc.isascii(), [c for c in asc if not c.isascii()]
    assert "*" not in asc, asc
    assert "sum_{k=1}^{K}" in asc and "dR" in asc, asc


def test_json_keeps_sympy_syntax():
    r = run("derive", "2-3-2", "--level", "index", "--wrt", "W1", "--format", "json")
    steps = json.loads(r.output)[0]["steps"]
    assert steps[1]["rhs"] == "Sum((-y[i, k] + yhat[k, i])**2/2, (k, 1, K))"
    assert steps[-2]["rhs"] == "Sum(s[m, i]*x[i, l], (i, 1, N))"


# -- any depth (issue 13): the hidden error of layer ℓ from layer ℓ + 1's ---------------------------
DEEP_TEXT = {  # symgrad derive 2-2-2-1 --level index --hidden sigmoid
    "W1": ["s⁽²⁾ₘᵢ = σ′(b⁽²⁾ₘ + Σₗ′ W⁽²⁾ₘₗ′ h⁽¹⁾ₗ′ᵢ) Σₖ W⁽³⁾ₖₘ δₖᵢ",
           "s⁽¹⁾ₘᵢ = σ′(b⁽¹⁾ₘ + Σₗ′ W⁽¹⁾ₘₗ′ xₗ′ᵢ) Σₖ W⁽²⁾ₖₘ s⁽²⁾ₖᵢ",
           "∂Rᵢ/∂W⁽¹⁾ₘₗ = Σₖ ∂Rᵢ/∂z⁽²⁾ₖᵢ Σₘ′ ∂z⁽²⁾ₖᵢ/∂h⁽¹⁾ₘ′ᵢ ∂h⁽¹⁾ₘ′ᵢ/∂W⁽¹⁾ₘₗ",
           "∂R/∂W⁽¹⁾ₘₗ = Σᵢ s⁽¹⁾ₘᵢ xₗᵢ",
           "checked at every index of 2-2-2-1 and 3-2-2-2 against the derivative taken entry by "
           "entry"],
    "W2": ["∂R/∂W⁽²⁾ₘₗ = Σᵢ s⁽²⁾ₘᵢ h⁽¹⁾ₗᵢ"],
    "b2": ["∂R/∂b⁽²⁾ₘ = Σᵢ s⁽²⁾ₘᵢ"],
    "W3": ["∂R/∂W⁽³⁾ₖₘ = Σᵢ δₖᵢ h⁽²⁾ₘᵢ"],
    "b3": ["∂R/∂b⁽³⁾ₖ = Σᵢ δₖᵢ"],
}


def test_deep_nets_text_and_check():
    """Every parameter of a two-hidden-layer net, each checked against sympy.diff at every index
    of 2-2-2-1 and 3-2-2-2 (sympy.diff of the cost written out weight by weight)."""
    r = run("derive", "2-2-2-1", "--level", "index", "--hidden", "sigmoid")
    assert r.exit_code == 0, r.output
    blocks = {b.splitlines()[0].split("∂")[2].split()[0]: _expressions(b)
              for b in r.output.strip().split("\n\n")}
    names = {"W⁽¹⁾ₘₗ": "W1", "b⁽¹⁾ₘ": "b1", "W⁽²⁾ₘₗ": "W2", "b⁽²⁾ₘ": "b2", "W⁽³⁾ₖₘ": "W3",
             "b⁽³⁾ₖ": "b3"}  # the titles in the body's names
    assert sorted(names[k] for k in blocks) == ["W1", "W2", "W3", "b1", "b2", "b3"]
    for p, lines in DEEP_TEXT.items():
        got = blocks[next(k for k, v in names.items() if v == p)]
        for line in lines:
            assert line in got, (p, line, got)


@pytest.mark.parametrize("sizes, hidden, output, loss, p", [
    ([3, 2, 2, 2], "tanh", "sigmoid", "bce", "W1"),
    ([2, 3, 2, 2, 1], "relu", "identity", "mse", "b1"),
    ([2, 2, 3, 1], "softplus", "sigmoid", "(y - yhat)^2", "W2"),
])
def test_deep_nets_pass_their_check(sizes, hidden, output, loss, p):
    d = sg.mlp(sizes, hidden=hidden, output=output, loss=loss).derive(p, level="index")
    L = len(sizes) - 1
    assert d.meta["checked"][:2] == [(2,) + (2,) * (L - 1) + (1,), (3,) + (2,) * (L - 1) + (2,)]
    assert d.result.has(B["x"] if p.endswith("1") else B[f"h{int(p[1]) - 1}"]) or p[0] == "b"


@pytest.mark.slow
def test_deep_general_formula_matches_finite_differences():
    """An independent route: ∂R/∂W⁽¹⁾ of 3-4-3-2 (tanh, sigmoid outputs) instantiated at random
    entries against central differences of R computed with numpy."""
    sizes, N = (3, 4, 3, 2), 4
    net = sg.mlp(list(sizes), hidden="tanh", output="sigmoid", loss=ESL_LOSS)
    rng = np.random.default_rng(5)
    P = {f"W{n}": rng.normal(size=(sizes[n], sizes[n - 1])) for n in (1, 2, 3)}
    P.update({f"b{n}": rng.normal(size=sizes[n]) for n in (1, 2, 3)})
    X, Y = rng.normal(size=(N, 3)), rng.normal(size=(N, 2))

    def R(Q):
        h = X
        for n in (1, 2):
            h = np.tanh(h @ Q[f"W{n}"].T + Q[f"b{n}"])
        F = 1 / (1 + np.exp(-(h @ Q["W3"].T + Q["b3"])))
        return ((Y - F) ** 2).sum()

    sub = {SIZES["N"]: N, SIZES["p"]: 3, sp.Symbol("M1", integer=True, positive=True): 4,
           sp.Symbol("M2", integer=True, positive=True): 3, SIZES["K"]: 2}
    arrays = {**P, "x": X, "y": Y}
    for p in ("W1", "b2"):
        d = net.derive(p, level="index", cost="sum")
        own = ("m", "l") if p[0] == "W" else ("m",)
        for at in [tuple(rng.integers(s) for s in P[p].shape) for _ in range(3)]:
            e = indexed._written_sums(d.meta["explicit"].xreplace(sub)).xreplace(
                {sp.Symbol(c, integer=True): int(a) + 1 for c, a in zip(own, at)})
            got = float(e.replace(lambda t: isinstance(t, sp.Indexed), lambda t: sp.Float(
                arrays[t.base.label.name][tuple(int(i) - 1 for i in t.indices)])))
            h, Q = 1e-6, {k: v.copy() for k, v in P.items()}
            Q[p][at] += h
            up = R(Q)
            Q[p][at] -= 2 * h
            fd = (up - R(Q)) / (2 * h)
            assert abs(got - fd) <= 1e-6 * (1 + abs(fd)), (p, at, got, fd)


def test_a_wrong_deep_formula_raises(monkeypatch):
    """The check covers the deeper layers: layer 2's error doubled in a 2-2-2-1 net is caught."""
    good = indexed._Record._s

    def bad(self, layer=1):
        good(self, layer)
        if layer == 2:
            key = B["s2"][self.ix.m, self.ix.i]
            self.definitions[key] = 2 * self.definitions[key]

    monkeypatch.setattr(indexed._Record, "_s", bad)
    with pytest.raises(IndexCheckError, match="disagrees with sympy.diff at index .* of a 2-2-2-1"):
        sg.mlp([2, 2, 2, 1]).derive("W1", level="index")
    sg.mlp([2, 2, 2, 1]).derive("W3", level="index")  # no layer-2 error in ∂R/∂W⁽³⁾: passes


def test_deep_latex_in_the_slides_layers():
    d = sg.mlp([2, 2, 2, 1], hidden="sigmoid").derive("W1", level="index", notation="esl")
    tex = d.to_latex(notation="slides")
    assert r"\delta^{(1)(i)}_{m} &= \sigma'\left(z^{(1)(i)}_{m}\right) \sum_{k=1}^{d_{2}} " \
        r"W^{(2)}_{km} \delta^{(2)(i)}_{k}" in tex, tex
    assert r"\alpha" not in tex


def test_deep_esl_latex_agrees_with_text_and_says_so():
    """Issue 13: a 2-3-3-2 under esl printed f, ℓ⁽ⁱ⁾, h^{(1)(i)} in LaTeX but R, W⁽¹⁾ in text,
    silently. Both now write R, R_i, δ_ki, s⁽ˡ⁾_mi, W⁽ˡ⁾_ml, and the CLI warns on stderr."""
    d = sg.mlp([2, 3, 3, 2]).derive("W1", level="index", notation="esl")
    tex, text = d.to_latex(notation="esl"), d.to_text(notation="esl")
    for t, x in ((r"R &= \sum_{i=1}^{N} R_{i}", "R = Σᵢ Rᵢ"),
                 (r"h^{(1)}_{mi} &= ", "h⁽¹⁾ₘᵢ = "),
                 (r"s^{(1)}_{mi} &= ", "s⁽¹⁾ₘᵢ = "),
                 (r"\delta_{ki} &= ", "δₖᵢ = "),
                 (r"\frac{\partial R}{\partial W^{(1)}_{ml}} &= \sum_{i=1}^{N} x_{li} s^{(1)}_{mi}",
                  "∂R/∂W⁽¹⁾ₘₗ = Σᵢ s⁽¹⁾ₘᵢ xₗᵢ")):
        assert t in tex and x in text, (t, x)
    assert r"\ell" not in tex.split("&&")[0] and "f &=" not in tex and "^{(1)(i)}" not in tex
    assert r"\alpha" not in tex  # α, β name one hidden layer: not reused for three
    r = CliRunner().invoke(cli, ["derive", "2-3-3-2", "--level", "index",
                                                 "--notation", "esl", "--format", "latex",
                                                 "--wrt", "b1"])
    assert r.exit_code == 0 and r"\partial b^{(1)}_{m}" in r.stdout
    assert r.stderr.count("\n") == 1 and "esl's α, β name one hidden layer" in r.stderr
    r = CliRunner().invoke(cli, ["derive", "2-2-1", "--level", "index",
                                                 "--notation", "esl", "--wrt", "b1"])
    assert r.exit_code == 0 and r.stderr == ""


def test_deep_output_derivative_is_refused_in_one_line():
    r = run("derive", "2-2-2-1", "--level", "index", "--of", "output")
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
    assert "one-hidden-layer" in r.output and "2 hidden layers" in r.output


# -- issue 13: the ESL handout and the index level, as a new user read them ------------------------------
def test_esl_handout_cost_is_r_and_a_sum():
    """ESL's f is the output f_k(x) and its cost R(θ) = Σ_i R_i is a sum: the handout must not say
    "the cost R is their mean" above f_MSE = (1/n) Σ ℓ."""
    tex = sg.handout(sg.mlp([2, 2, 1]), notation="esl")
    assert "the cost $R$ is their sum" in tex and "their mean" not in tex
    assert r"{R} &\sgfit{0.6\linewidth}{{}= \sum_{i=1}^{n} \ell^{(i)}}" in tex
    assert r"\text{MSE}" not in tex and r"\frac{1}{n}" not in tex and r"\tfrac{1}{n}" not in tex
    assert "The gradient of $R$ is the sum" in tex and "Update: the sum over" in tex
    slides = sg.handout(sg.mlp([2, 2, 1]))  # the slides keep their mean f_MSE
    assert r"f_{\text{MSE}}" in slides and "the cost $f$ is their mean" in slides


def test_esl_handout_sums_in_every_section_at_full_verbosity():
    """At --verbosity full the sections' batch steps, the exercise and the minibatch program came
    from the engine's mean: "which carries the 1/n" and G_f ← (1/n)(F − Y) under "the cost R is
    their sum"; and the bias words said z = … + b, ESL's z being the hidden layer."""
    tex = sg.handout(sg.mlp([2, 2, 1]), notation="esl", verbosity="full")
    assert "the mean" not in tex and "carries the 1" not in tex
    assert r"\frac{1}{n}" not in tex and r"\tfrac{1}{n}" not in tex
    assert "carries no 1" in tex and r"{G_{f}} &\sgfit{0.6\linewidth}{{}\leftarrow F - Y}" in tex
    assert "the sum of the losses over a minibatch" in tex
    assert r"a bias enters $v = \ldots + \alpha_{0}$" in tex
    slides = sg.handout(sg.mlp([2, 2, 1]), verbosity="full")  # the slides keep their mean
    assert "carries the 1" in slides and r"\frac{1}{n}" in slides
    assert "the mean of the losses over a minibatch" in slides


def test_esl_handout_pre_activation_is_not_z():
    """ESL's z_m = σ(α_0m + α_mᵀx) is the activation: the pre-activation needs another letter."""
    tex = sg.handout(sg.mlp([2, 2, 1]), notation="esl")
    assert "z^{(1)}" not in tex
    assert r"{v} &\sgfit{0.6\linewidth}{{}= \alpha x + \alpha_{0}}" in tex
    assert r"{z} &\sgfit{0.6\linewidth}{{}= \operatorname{relu}(v)}" in tex


def test_handout_help_lists_esl():
    r = run("handout", "--help")
    assert r.exit_code == 0 and "slides, feature, esl," in " ".join(r.output.split())
    r = run("derive", "--help")
    assert r.exit_code == 0 and "feature, esl," in " ".join(r.output.split())


def test_index_titles_and_words_through_the_notation():
    """Issue 13: titles kept ∂R/∂W₁ above bodies in α, β; the words kept R_i, m', δ_ki raw."""
    r = run("derive", "2-2-1", "--level", "index", "--notation", "esl")
    assert r.exit_code == 0, r.output
    titles = [line for line in r.output.splitlines() if line.endswith("in general indices")]
    assert titles == ["∂R/∂αₘₗ in general indices", "∂R/∂α₀ₘ in general indices",
                      "∂R/∂βₖₘ in general indices", "∂R/∂β₀ₖ in general indices"]
    words = " ".join(line.split("    [", 1)[1] for line in r.output.splitlines() if "    [" in line)
    for raw in ("R_i", "m'", "k'", "δ_ki", "s_mi", "z_0i", "x_i0"):
        assert raw not in words, raw
    for shown in ("Rᵢ", "m′ = m", "ESL's δₖᵢ", "ESL's z₀ᵢ = 1", "ESL's xᵢ₀ = 1"):
        assert shown in words, shown
    assert "ESL's" in words and "examples'" in words  # apostrophes are not primes


def test_index_latex_check_is_a_sentence_and_bias_input_one_subscript():
    r = run("derive", "2-2-1", "--level", "index", "--notation", "esl", "--format", "latex",
            "--wrt", "b2")
    assert r.exit_code == 0, r.output
    assert r"&= \text{checked" not in r.output
    assert r" &\quad \text{checked at every index of 2-2-1 and 3-2-2 against the derivative taken " \
        r"entry by entry}" in r.output
    assert r"$z_{0i} = 1$" in r.output and r"z_{0} i" not in r.output

def test_deep_net_defines_every_pre_activation_it_names():
    """Issue 13: 2-3-3-2's ∂Rᵢ/∂z⁽²⁾ₖᵢ named a z⁽²⁾ no line defined. Every z⁽ˡ⁾ the steps name is
    now defined before its unit (and the derivation still passes its sympy.diff check)."""
    d = sg.mlp([2, 3, 3, 2]).derive("W1", level="index", notation="esl")
    assert d.meta["checked"]
    text = d.to_text(notation="esl")
    defined = {line.split(" = ")[0].strip() for line in text.splitlines()[1:] if " = " in line}
    used = set(re.findall(r"z⁽[¹²³]⁾", text))
    assert used == {"z⁽¹⁾", "z⁽²⁾", "z⁽³⁾"}, used
    for z in used:
        assert any(x.startswith(z) for x in defined), (z, defined)
    assert "h⁽²⁾ₘᵢ = relu(z⁽²⁾ₘᵢ)" in text


# -- issue 13: the esl preset's multi-task loss and weight penalty follow its notes ------------------
def _loss_section(tex):
    return tex[tex.index(r"\section{The loss}"):tex.index(r"\section{", tex.index(r"\section{The loss}") + 5)]


def _multitask(penalty=0):
    net = sg.Network()
    h = net.act(net.dense(net.input("x", 2), 3), "relu", name="h1")
    net.add_loss(net.dense(h, 1, name="reg"), "mse")
    net.add_loss(net.act(net.dense(h, 2), "softmax", name="cls"), "cross_entropy", weight=0.5)
    net.penalty = penalty
    return net


def test_esl_multitask_cost_is_r_and_a_sum():
    """Issue 13: the multi-task handout under esl kept f = (1/n) Σ ℓ^(i) and "its mean"."""
    sec = _loss_section(sg.handout(_multitask(), notation="esl"))
    assert r"\sgfit{0.25\linewidth}{R} &\sgfit{0.6\linewidth}{{}= \sum_{i=1}^{n} \ell^{(i)}}" in sec
    assert r"\frac{1}{n}" not in sec and "mean" not in sec and "{f}" not in sec
    assert "the cost $R$ is its sum, the weighted sum of each term's sum" in sec
    assert "The gradient of $R$ is the sum of the gradients" in sec
    slides = _loss_section(sg.handout(_multitask()))  # the slides keep f, the mean
    assert r"{f} &\sgfit{0.6\linewidth}{{}= \frac{1}{n} \sum_{i=1}^{n} \ell^{(i)}}" in slides
    assert "the cost $f$ is its mean" in slides and "The gradient of $f$ is the mean" in slides


@pytest.mark.parametrize("net", [sg.mlp([2, 2, 1], penalty=0.01), _multitask(0.01)],
                         ids=["2-2-1", "multitask"])
def test_esl_penalty_is_weight_decay_on_the_sum(net):
    """Issue 13: a penalty under esl printed the mean's (1/n) Σ J^(i) = f_MSE + λΩ. ESL's weight
    decay adds λΩ once to the sum R, as the index level's ∂R/∂α = λα + Σ_i s x and the update do."""
    tex = sg.handout(net, notation="esl")
    sec = _loss_section(tex)
    assert r"\sgfit{0.25\linewidth}{J} &\sgfit{0.6\linewidth}{{}= R + \lambda \, \Omega(\theta)," in sec
    assert "added once to the sum" in sec
    assert r"f_{\text" not in sec and "J^{(i)}" not in sec and r"\frac{1}{n}" not in sec
    # the backward pass's summary: the sum of the examples' ∇ℓ plus λα, once
    assert (r"{\nabla_{\alpha} J} &\sgfit{0.6\linewidth}{{}= \sum_{i=1}^{n} \nabla_{\alpha} "
            r"\ell^{(i)} + \frac{1}{100} \alpha}") in tex
    assert r"\nabla \left(R + \lambda" not in tex
    slides = _loss_section(sg.handout(net))  # the slides: J per example, its mean f + λΩ
    assert r"{J} &\sgfit{0.6\linewidth}{{}= \ell" in slides
    assert r"{\frac{1}{n} \sum_{i=1}^{n} J^{(i)}} &\sgfit{0.6\linewidth}{{}= f" in slides


def test_esl_penalty_matches_the_index_level_gradient():
    """The handout's J = R + λΩ is the objective the index level derives: its ∂R/∂αₘₗ carries
    λαₘₗ once beside Σ_i (checked against finite differences of Σ_i ℓ_i + λ/2 Σ w²)."""
    net = sg.mlp([2, 2, 1], penalty=0.01)
    d = net.derive("W1", level="index", notation="esl", cost="sum")
    r = d.result
    assert isinstance(r, sp.Add) and any(isinstance(a, sp.Sum) for a in r.args)
    assert sum(1 for a in r.args if not isinstance(a, sp.Sum)) == 1  # λ w, once, outside Σ_i


# -- issue 13, the last trial: the multi-task net's second head in ESL's letters ---------------------
@pytest.fixture(scope="module")
def esl_multitask_md():
    return sg.handout(_multitask(), fmt="markdown", notation="esl", level="both",
                      verbosity="full")


def test_esl_multitask_heads_are_betas_numbered_by_output(esl_multitask_md):
    """The second head printed W⁽³⁾, b⁽³⁾ and z⁽³⁾ beside ESL's α and β, and z is ESL's hidden
    layer: each head is ESL's β, β₀ and T (T_k = β_0k + β_kᵀz), the output's number above, in
    the maths, the words, the diagram, the algorithm and the batch program."""
    md = esl_multitask_md
    for leak in ("W^{(", "b^{(", "z^{(", "z_{1}^{(", "W_{", "b_{5}", "w_{1", "w_{7}",
                 "W⁽", "z⁽", "w₁"):
        assert leak not in md, leak
    assert r"\beta^{(1)} \in \mathbb{R}^{1 \times 3}" in md
    assert r"\beta_{0}^{(2)} \in \mathbb{R}^{2}" in md
    assert r"T^{(2)} &= \beta^{(2)} z + \beta_{0}^{(2)}" in md  # maths
    assert (r"$\beta^{(1)}$, $\beta_{0}^{(1)}$ for $\mathrm{reg}$; $\beta^{(2)}$, "
            r"$\beta_{0}^{(2)}$, $T^{(2)}$ for $\mathrm{cls}$") in md  # words
    assert "z₁ ── β₁₁⁽²⁾ ──┐" in md and "+1 ── β₀₂⁽²⁾ ──┘" in md  # the diagram (as text)
    assert r"\nabla_{\beta^{(2)}} \ell \leftarrow g_{T^{(2)}} z^{\top}" in md  # the algorithm
    assert r"g_{z} \leftarrow \beta^{(2)\top} g_{T^{(2)}} + \beta^{(1)\top} g_{\mathrm{reg}}" in md
    assert r"\mathrm{d}\beta^{(2)} &\leftarrow G_{T^{(2)}}^{\top} Z" in md  # the batch program
    assert r"T_{2}^{(2)} &= \beta_{21}^{(2)} z_{1} + \beta_{22}^{(2)} z_{2}" in md  # unit by unit


def test_esl_multitask_diagram_labels_weights_as_esl():
    """The unit picture labelled the weights w1 … w15 where the 2-2-1 ESL picture has α₁₁: the
    element level under esl names each weight by its place, as the notes' α_ml and β_km."""
    tex = sg.handout(_multitask(), notation="esl", level="both")
    labels = re.findall(r"\\node\[font=\\scriptsize, fill=white, inner sep=1pt\] at "
                        r"\([^)]*\) \{\$(.*?)\$\};", tex)
    assert len(labels) == 21  # every weight and bias, once
    assert {"\\alpha_{11}", "\\alpha_{03}", "\\beta_{13}^{(1)}", "\\beta_{01}^{(1)}",
            "\\beta_{23}^{(2)}", "\\beta_{02}^{(2)}"} <= set(labels)
    assert not any(re.match(r"[wb]_\{\d+\}", t) for t in labels)
    # the 2-2-1 picture at the element level, the same letters as at the matrix level
    both = sg.handout(sg.mlp([2, 2, 1]), notation="esl", level="both")
    assert r"{$\alpha_{11}$}" in both and r"{$\beta_{01}$}" in both and "{$w_{1}$}" not in both


def test_one_head_keeps_esl_s_beta_and_the_slides_keep_w():
    """A single output is ESL's β with no number; the slides' heads stay W⁽ᵏ⁾ and w1 … w15."""
    tex = sg.handout(sg.mlp([2, 2, 1]), notation="esl")
    assert r"\beta \in \mathbb{R}^{1 \times 2}" in tex and r"\beta^{(" not in tex
    slides = sg.handout(_multitask(), level="both")
    assert r"\mathbf{W}^{(3)} \in \mathbb{R}^{2 \times 3}" in slides and "{$w_{15}$}" in slides
    assert r"\beta" not in slides
