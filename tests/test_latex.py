"""The notes' LaTeX printer: golden strings for the seed examples, notation presets, justifications
as text with inline math, line breaking, and names that must not inject TeX."""
import re

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import symgrad as sg
from symgrad.core.matexpr import Cotangent
from symgrad.core.derivation import Derivation, Note, Partial
from symgrad.handouts.build import gradient_summary
from symgrad.printing.latex import NotesLatexPrinter, latex, to_latex, words_latex
from symgrad.printing.names import portable_math

SEED = "2*x1 + x2, pi*x2, -x1/x2"
F = ("x1 - 2*x2 + x3/4", "x1 x2 x3", "f")
G = ("x1 + 2*x2, x2, -x1 + 3", "x1 x2", "g")


def rows(tex):
    return [r.rstrip(" \\") for r in tex.splitlines()[1:-1]]


# -- golden strings for the seed examples --------------------------------------------------------
def test_jacobian_3x2_golden():
    d = sg.derive_jacobian(SEED, "x1 x2")
    assert latex(d.result) == (r"\left[\begin{matrix}2 & 1\\0 & \pi\\- \frac{1}{x_{2}} & "
                               r"\frac{x_{1}}{x_{2}^{2}}\end{matrix}\right]")
    assert rows(to_latex(d))[-1] == (
        r"\frac{\partial f}{\partial \mathbf{x}} &= \left[\begin{matrix}2 & 1\\0 & \pi\\- "
        r"\frac{1}{x_{2}} & \frac{x_{1}}{x_{2}^{2}}\end{matrix}\right] && {\scriptstyle 3 \times "
        r"2}\quad \text{rows are the outputs of $f$, columns its inputs}")
    assert rows(to_latex(d))[1] == r"\frac{\partial f_{1}}{\partial x_{1}} &= 2"


def test_chain_rule_two_methods_side_by_side_golden():
    tex = to_latex(sg.chain(F, G))
    assert tex.startswith("\\begin{gathered}\n\\begin{aligned}\nf &= ")
    assert (r"\begin{array}{cc}" "\n"
            r"\text{Method 1: substitute, then differentiate} \quad & \text{Method 2: the chain "
            r"rule} "
            r"\\[4pt]" "\n" r"\begin{aligned}[t]" "\n"
            r"f \circ g &= \left[\begin{matrix}\frac{3 - x_{1}}{4} + \left(x_{1} + 2 x_{2}\right) - "
            r"2 x_{2}\end{matrix}\right] \\" "\n"
            r"& \qquad {\scriptstyle \text{substitute the inner function(s) into the outer}}") in tex
    assert (r"& \qquad {\scriptstyle 1 \times 2}\quad {\scriptstyle \text{multiply: $1 \times 3 "
            r"\cdot 3 \times 2 \to 1 \times 2$}}" "\n" r"\end{aligned}" "\n" r"\end{array}") in tex
    assert "\n&\n" + r"\begin{aligned}[t]" + "\n" + r"\frac{\partial f}{\partial g} &= " in tex
    assert tex.endswith(r"\text{both methods agree: }\frac{\partial \left(f \circ g\right)}{"
                        r"\partial \mathbf{x}} = \left[\begin{matrix}\frac{3}{4} & 0\end{matrix}"
                        r"\right]" "\n" r"\end{gathered}")


def test_chain_rule_both_ways_golden():  # the same steps as one chain
    assert rows(to_latex(sg.chain(F, G), two_methods=False)) == [
        r"f &= \left[\begin{matrix}x_{1} - 2 x_{2} + \frac{x_{3}}{4}\end{matrix}\right] && \text{$f$: "
        r"$\mathbb{R}^{3} \to \mathbb{R}^{1}$}",
        r"g &= \left[\begin{matrix}x_{1} + 2 x_{2}\\x_{2}\\3 - x_{1}\end{matrix}\right] && \text{$g$: "
        r"$\mathbb{R}^{2} \to \mathbb{R}^{3}$}",
        r"f \circ g &= \left[\begin{matrix}\frac{3 - x_{1}}{4} + \left(x_{1} + 2 x_{2}\right) - 2 "
        r"x_{2}\end{matrix}\right] && \text{method 1: substitute the inner function(s) into the outer}",
        r" &= \left[\begin{matrix}\frac{3 \left(x_{1} + 1\right)}{4}\end{matrix}\right]",
        r"\frac{\partial \left(f \circ g\right)}{\partial \mathbf{x}} &= \left[\begin{matrix}"
        r"\frac{3}{4} & 0\end{matrix}\right] && {\scriptstyle 1 \times 2}\quad \text{differentiate "
        r"the composition}",
        r"\frac{\partial f}{\partial g} &= \left[\begin{matrix}1 & -2 & \frac{1}{4}\end{matrix}"
        r"\right] && {\scriptstyle 1 \times 3}\quad \text{method 2: the Jacobian of $f$, one column "
        r"per output of $g$}",
        r"\frac{\partial g}{\partial \mathbf{x}} &= \left[\begin{matrix}1 & 2\\0 & 1\\-1 & 0"
        r"\end{matrix}\right] && {\scriptstyle 3 \times 2}\quad \text{the Jacobian of $g$}",
        r"\frac{\partial \left(f \circ g\right)}{\partial \mathbf{x}} &= \underbrace{\frac{"
        r"\partial f}{\partial g}}_{1 \times 3} \, \underbrace{\frac{\partial g}{\partial "
        r"\mathbf{x}}}_{3 \times 2} && \text{the chain rule of multivariate calculus}",
        r" &= \underbrace{\left[\begin{matrix}1 & -2 & \frac{1}{4}\end{matrix}\right]}_{1 \times 3} "
        r"\, \underbrace{\left[\begin{matrix}1 & 2\\0 & 1\\-1 & 0\end{matrix}\right]}_{3 \times 2}",
        r" &= \left[\begin{matrix}\frac{3}{4} & 0\end{matrix}\right] && {\scriptstyle 1 \times 2}"
        r"\quad \text{multiply: $1 \times 3 \cdot 3 \times 2 \to 1 \times 2$}",
        r" &= \text{both methods agree}"]


def test_vec_example_golden():
    W = sp.Matrix(2, 2, sp.symbols("w1:5", real=True))
    d = sg.derive_vec_jacobian("w1*x1 + w2*x2, w3*x1 + w4*x2", W)
    assert rows(to_latex(d))[1] == (
        r"\frac{\partial f}{\partial \operatorname{vec}[\mathbf{W}]} &= \left[\begin{matrix}x_{1}"
        r" & x_{2} & 0 & 0\\0 & 0 & x_{1} & x_{2}\end{matrix}\right] && {\scriptstyle 2 \times 4}"
        r"\quad \text{rows are the outputs, columns the entries of $\operatorname{vec}"
        r"[\mathbf{W}]$}")


def test_matrix_gradient_is_p_x_transpose():
    r = rows(to_latex(sg.derive_matrix_gradient(2, 3)))
    assert r[-1] == (r" &= \mathbf{p} \mathbf{x}^{\top} && {\scriptstyle 2 \times 3}\quad "
                     r"\text{an outer product}")
    assert r"\mathbf{0}^{\top}" in r[4] and r"\mathbf{x}^{\top}" in r[4]


def test_cross_entropy_gradient_golden():
    net = sg.mlp([4, 3, 2], "relu", "softmax", "cross_entropy")
    summary, where = gradient_summary(net)
    assert summary[2] == (r"\nabla_{\mathbf{W}^{(2)}} \ell &= \left(\hat{\mathbf{y}} - "
                          r"\mathbf{y}\right) \mathbf{h}^{(1)\top}")
    assert summary[3] == r"\nabla_{\mathbf{b}^{(2)}} \ell &= \hat{\mathbf{y}} - \mathbf{y}"
    assert summary[0] == (r"\nabla_{\mathbf{W}^{(1)}} \ell &= \mathbf{g}_{\mathbf{z}^{(1)}} "
                          r"\mathbf{x}^{\top}")
    assert summary[4] == (r"\nabla f_{\text{CE}} &= \frac{1}{n} \sum_{i=1}^{n} \nabla "
                          r"\ell^{(i)}")  # per example ℓ, the mean f (as the loss section defines)
    assert where == [r"\mathbf{g}_{\mathbf{z}^{(1)}} &= \left(\mathbf{W}^{(2)\top} \left("
                     r"\hat{\mathbf{y}} - \mathbf{y}\right)\right) \odot \operatorname{relu}'"
                     r"(\mathbf{z}^{(1)})"]


def test_matrix_level_chain_has_shapes_under_each_factor():
    net = sg.mlp([2, 2, 1], "relu", "identity", "mse")
    r = rows(to_latex(net.derive("W1"), max_width=200))
    assert r[0] == (
        r"\frac{\partial \ell}{\partial \operatorname{vec}[\mathbf{W}^{(1)}]} &= \underbrace{"
        r"\frac{\partial \ell}{\partial \hat{\mathbf{y}}}}_{1 \times 1} \, \underbrace{\frac{\partial "
        r"\hat{\mathbf{y}}}{\partial \mathbf{h}^{(1)}}}_{1 \times 2} \, \underbrace{\frac{\partial "
        r"\mathbf{h}^{(1)}}{\partial \mathbf{z}^{(1)}}}_{2 \times 2} \, \underbrace{\frac{\partial "
        r"\mathbf{z}^{(1)}}{\partial \operatorname{vec}[\mathbf{W}^{(1)}]}}_{2 \times 4} && \text{"
        r"$\hat{\mathbf{y}}$, $\mathbf{h}^{(1)}$, $\mathbf{z}^{(1)}$ each separate $\ell$ from "
        r"$\mathbf{W}^{(1)}$, so the chain rule applies}")
    tex = "\n".join(r)
    assert r"\operatorname{diag}(\operatorname{relu}'(\mathbf{z}^{(1)}))" in tex
    assert r"\mathbf{g}_{\mathbf{z}^{(1)}}^{\top} &= \mathbf{g}_{\mathbf{h}^{(1)}}^{\top} \odot" in tex
    assert r"\nabla_{\mathbf{W}^{(1)}} \ell &= \mathbf{g}_{\mathbf{z}^{(1)}} \mathbf{x}^{\top}" in tex


def test_xor_element_level_as_cases():
    net = sg.mlp([2, 2, 1], "relu", "identity", "mse")
    d = net.derive("w1", level="element", of="output")
    # the notes' order: weights times inputs, then the bias
    assert latex(d.result) == (r"\begin{cases} 0 & \text{if } w_{1} x_{1} + w_{2} x_{2} + b_{1} "
                               r"\leq 0 \\ w_{5} x_{1} & \text{if } w_{1} x_{1} + w_{2} x_{2} + "
                               r"b_{1} > 0 \end{cases}")
    r = rows(to_latex(d, why_position="none"))  # the words belong to the element engine
    assert r == [
        r"\hat{y} &= w_{5} \operatorname{relu}(w_{1} x_{1} + w_{2} x_{2} + b_{1}) + w_{6} "
        r"\operatorname{relu}(w_{3} x_{1} + w_{4} x_{2} + b_{2}) + b_{3}",
        r"\frac{\partial \hat{y}}{\partial w_{1}} &= \frac{\partial}{\partial w_{1}}\left[w_{5} "
        r"\operatorname{relu}(w_{1} x_{1} + w_{2} x_{2} + b_{1}) + w_{6} \operatorname{relu}(w_{3} "
        r"x_{1} + w_{4} x_{2} + b_{2}) + b_{3}\right]",
        r" &= \frac{\partial}{\partial w_{1}}\left[w_{5} \operatorname{relu}(w_{1} x_{1} + w_{2} "
        r"x_{2} + b_{1})\right]",
        r"\frac{\partial \hat{y}}{\partial w_{1}} &= \frac{\partial \hat{y}}{\partial h_{1}^{(1)}}"
        r" \cdot \frac{\partial h_{1}^{(1)}}{\partial w_{1}}",
        r" &= \frac{\partial \hat{y}}{\partial h_{1}^{(1)}} \cdot \frac{\partial h_{1}^{(1)}}"
        r"{\partial z_{1}^{(1)}} \cdot \frac{\partial z_{1}^{(1)}}{\partial w_{1}}",
        r" &= w_{5} \cdot \operatorname{relu}'(z_{1}^{(1)}) \cdot x_{1}",
        r"\frac{\partial \hat{y}}{\partial w_{1}} &= w_{5} x_{1} \operatorname{relu}'(w_{1} x_{1} + "
        r"w_{2} x_{2} + b_{1})",
        r" &= " + latex(d.result)]


def test_piecewise_otherwise_and_several_conditions():
    x, y = sp.symbols("x y", real=True)
    pw = sp.Piecewise((0, x < 0), (x, y > 0), (1, True))
    assert latex(pw) == (r"\begin{cases} 0 & \text{if } x < 0 \\ x & \text{if } y > 0 \\ 1 & "
                         r"\text{otherwise} \end{cases}")


# -- notation presets -----------------------------------------------------------------------------
@pytest.mark.parametrize("name, slides, feature", [
    # the feature notes write row vectors (π̇ = xẆ): symgrad's W1 (z1 = W1 x) is their Ẇᵀ, and
    # each value of example n carries the superscript (n)
    ("W1", r"\mathbf{W}^{(1)}", r"\dot{W}^{\top}"), ("W2", r"\mathbf{W}^{(2)}", r"\ddot{W}^{\top}"),
    ("z1", r"\mathbf{z}^{(1)}", r"\dot{\pi}^{(n)}"), ("z2", r"\mathbf{z}^{(2)}", r"\ddot{\pi}^{(n)}"),
    ("h1", r"\mathbf{h}^{(1)}", r"\dot{x}^{(n)}"), ("yhat", r"\hat{\mathbf{y}}", "o^{(n)}"),
    ("x", r"\mathbf{x}", "x^{(n)}"),
    ("g_z1", r"\mathbf{g}_{\mathbf{z}^{(1)}}", r"g_{\dot{\pi}^{(n)}}"),
    ("W7", r"\mathbf{W}^{(7)}", r"W^{(7)\top}"),
])
def test_notation_presets_for_vectors(name, slides, feature):
    # a gradient is known by its type (Cotangent), as the engines make it, not by its name
    M = (Cotangent if name.startswith("g_") else sp.MatrixSymbol)(name, 2, 2)
    assert latex(M) == slides
    assert latex(M, "feature") == feature


def test_notation_presets_for_entries_and_transposes():
    # symgrad's W1_12 joins input 2 to unit 1: the notes' ẇ_21 (input i to feature j)
    assert latex(sp.Symbol("W1_12"), "feature") == r"\dot{w}_{21}"
    assert latex(sp.MatrixSymbol("W1", 3, 3).T, "feature") == r"\dot{W}"
    assert latex(sp.Symbol("x2"), "feature") == r"x_{2}^{(n)}"
    assert latex(sp.Symbol("z1_2")) == r"z_{2}^{(1)}"
    assert latex(sp.Symbol("z2_1"), "feature") == r"\ddot{\pi}_{1}^{(n)}"
    assert latex(sp.MatrixSymbol("h1", 2, 1).T) == r"\mathbf{h}^{(1)\top}"
    assert latex(Cotangent("g_z1", 2, 1).T) == r"\mathbf{g}_{\mathbf{z}^{(1)}}^{\top}"
    assert latex(sp.Symbol("yhat")) == r"\hat{y}"
    assert latex(Cotangent("g_z1", 3, 1)[1, 0]) == r"{g_{\mathbf{z}^{(1)}}}_{2}"  # a scalar
    assert latex(sp.MatrixSymbol("W1", 3, 2)[0, 1]) == r"W_{12}^{(1)}"


def test_feature_notation_derivation():
    net = sg.Network()
    x = net.input("x", 3)
    h = net.act(net.dense(x, 3, b=False), "relu")
    net.set_loss(net.act(net.dense(h, 1, b=False), "sigmoid", name="yhat"), "bce")
    tex = to_latex(net.derive("W1"), "feature")
    assert (r"\frac{\partial \dot{x}^{(n)}}{\partial \dot{\pi}^{(n)}} &= \operatorname{diag}("
            r"a'(\dot{\pi}^{(n)}))") in tex
    # the notes' Ẇ is W1ᵀ: the gradient of its transpose is g xᵀ
    assert r"\nabla_{\dot{W}^{\top}} \ell &= g_{\dot{\pi}^{(n)}} x^{(n)\top}" in tex


# -- justifications -------------------------------------------------------------------------------
@pytest.mark.parametrize("text, tex", [
    ("g ← W2ᵀ g", r"$\mathbf{g} \leftarrow \mathbf{W}^{(2)\top} \mathbf{g}$"),
    ("ℓ = ½‖ŷ − y‖²", r"$\ell = \tfrac{1}{2} \| \hat{\mathbf{y}} - \mathbf{y} \| ^{2}$"),
    ("h1_i depends only on z1_i", r"$h_{i}^{(1)}$ depends only on $z_{i}^{(1)}$"),
    ("f: R^2 → R^3", r"$f$: $\mathbb{R}^{2} \to \mathbb{R}^{3}$"),
    ("σ + binary cross-entropy: the", r"$\sigma$ + binary cross-entropy: the"),
    ("(one per row of X)", r"(one per row of $\mathbf{X}$)"),
    ("∇W1 = g xᵀ", r"$\nabla_{\mathbf{W}^{(1)}} = \mathbf{g} \mathbf{x}^{\top}$"),
    ("100% of x_&#{}", r"100\% of $\mathbf{x}$\_\&\#\{\}"),
])
def test_justifications_become_text_with_inline_math(text, tex):
    vectors = ["W2", "y", "yhat", "X", "W1", "x", "h1", "z1"]
    assert words_latex(text, vectors=vectors, scalars=["f"]) == tex


def test_long_sums_break_over_rows():
    xs = sp.symbols("x1:13", real=True)
    d = Derivation("", [])
    d.add(sp.Symbol("s"), sp.Add(*[sp.sin(x) * x for x in xs]), "a long sum", "definition")
    r = rows(to_latex(d, max_width=40))
    assert len(r) > 2 and all(row.startswith(r"&\quad + ") for row in r[1:])
    assert r[0].endswith(r"\text{a long sum}")


def test_overlays_pause_before_each_step():
    tex = to_latex(sg.derive_jacobian(SEED, "x1 x2"), overlays=True)
    assert tex.count(r"\pause") == 7


def test_display_nodes_dispatch_to_the_printer():
    """SymPy prefers an object's _latex; the printer's own methods must win."""
    x = sp.MatrixSymbol("x", 2, 1)
    assert latex(Partial(sp.Symbol("f"), x)) == r"\frac{\partial f}{\partial \mathbf{x}}"
    assert latex(Note("a & b")) == r"\text{a \& $b$}"  # "a" is a word, b a symbol
    assert NotesLatexPrinter({"notation": "feature"}).doprint(sp.MatrixSymbol("z1", 1, 1)) \
        == r"\dot{\pi}^{(n)}"


# -- hostile names --------------------------------------------------------------------------------
_DANGER = re.compile(r"\\(input|include|write|def|catcode|csname|immediate|openout|read|end\{"
                     r"document)")


def _safe(tex: str) -> bool:
    unescaped = re.sub(r"\\[\\&%$#_{}]|\\text[a-z]+\{\}", "", tex)
    depth = 0
    for c in unescaped:
        depth += {"{": 1, "}": -1}.get(c, 0)
        if depth < 0:
            return False
    return (depth == 0 and not _DANGER.search(tex) and "%" not in unescaped
            and "#" not in unescaped and unescaped.count("$") % 2 == 0
            and "^^" not in unescaped)


@pytest.mark.parametrize("name", ["x_&%#", r"\input{/etc/passwd}", "b$^~{", "h_\\end{document}",
                                  "a}{", "^^M", "50%", "\n\n", "café"])
def test_hostile_names_are_escaped(name):
    for e in (sp.Symbol(name), sp.MatrixSymbol(name, 2, 1), sp.MatrixSymbol(name, 2, 1).T,
              sp.Symbol(name + "_1")):
        assert _safe(latex(e)), latex(e)
    assert _safe(words_latex(f"{name} separates ℓ from {name}", vectors=[name]))


def test_derivation_to_latex_and_notebook_use_the_notes_printer():
    """Derivation.to_latex/_repr_latex_ are symgrad.latex.to_latex: notation, escaping, words."""
    net = sg.Network()
    x = net.input(r"\input{/etc/passwd}", 2)
    net.set_loss(net.dense(x, 1, W="W1", name="ℓout"), "mse")
    d = net.derive("W1")
    tex = d.to_latex()
    # the notebook's copy has its text groups made portable for MathJax (test_renderers.py)
    assert tex == to_latex(d) and d._repr_latex_() == "$\\displaystyle " + portable_math(tex) + "$"
    assert _safe(d._repr_latex_()) and r"{\backslash}\textbf{input}" in d._repr_latex_()
    assert r"\mathbf{W}^{(1)}" in tex and "?" not in tex and _safe(tex)
    assert r"\mathbf{\input" not in tex and "ℓ" not in tex  # no raw Unicode for pdflatex
    assert d.to_latex(notation="feature") == to_latex(d, "feature")


@settings(max_examples=150, deadline=None)
@given(st.text(min_size=1, max_size=12))
def test_any_name_is_escaped(name):
    for e in (sp.Symbol(name), sp.MatrixSymbol(name, 2, 1).T):
        assert _safe(latex(e)), (name, latex(e))
        assert _safe(portable_math(latex(e))), (name, portable_math(latex(e)))
    assert _safe(words_latex(name, vectors=[name], scalars=[name]))
    # as the notebook shows it: still escaped, and no text group holds a macro any more
    tex = portable_math(r"\text{%s}" % words_latex(name, vectors=[name], scalars=[name]))
    assert _safe(tex), (name, tex)
    assert not re.search(r"\\text(it|bf)?\{[^{}$]*\\", tex), (name, tex)


def test_identity_before_kron_is_the_matrix_not_the_word():
    from symgrad.printing.names import notation
    from symgrad.printing.words import words
    nota = notation("slides")
    assert words("I ⊗ xᵀ is block diagonal", nota, vectors=["x"]) == \
        r"$\mathbf{I} \otimes \mathbf{x}^{\top}$ is block diagonal"
    assert words("I think so", nota) == "I think so"


def test_handout_rows_are_broken_to_their_column_not_shrunk():
    """In an article handout every derivation cell's estimated width fits the budget of its
    column's cap (the XOR output written out in the weights, a row of gᵢxᵀ blocks, a long
    note): rows break at +, between factors or between blocks, and a justification longer
    than two lines of its column goes on a row of its own (\\sgnotebelow)."""
    import re
    from symgrad.handouts.build import handout
    from symgrad.handouts.render import ARTICLE_LINE
    from symgrad.printing.width import tex_width
    for net in (sg.mlp([2, 2, 1]), sg.mlp([784, 256, 128, 10])):
        tex = handout(net, level="both" if net.shapes["W1"] == (2, 2) else "matrix")
        cells = re.findall(r"\\sgfit\{([0-9.]+)\\linewidth\}\{(.*?)\}(?: &| \\\\|$| &&)", tex, re.M)
        assert cells
        over = [(c, float(f)) for f, c in cells
                if float(f) < 0.9 and tex_width(c) > float(f) * ARTICLE_LINE + 0.5]
        assert over == [], over[:3]
        assert r"\sgnotebelow" in tex


def test_split_terms_and_factors_keep_groups_whole():
    from symgrad.printing.width import break_terms, split_factors, split_terms
    assert split_terms(r"{}= \left(a - b\right) + c_{k-1} - \frac{1}{2}") == [
        r"{}= \left(a - b\right)", "+ c_{k-1}", r"- \frac{1}{2}"]
    assert split_terms(r"g \leftarrow -a + b") == [r"g \leftarrow -a", "+ b"]
    assert split_factors(r"{}= \left(a + b\right) \odot c \left[d\right]") == [
        r"{}= \left(a + b\right)", r"\odot c", r"\left[d\right]"]
    assert break_terms("a + b", 50) == ["a + b"]
    assert all(len(r) < 12 for r in break_terms(" + ".join("abcdefgh"), 8))


def test_a_long_factor_is_broken_inside_its_parentheses():
    """Issue 13: a row that is one pair of parentheses (the gated net's layer-norm g) or a name
    times a parenthesized sum was shrunk (to 91 %); it is broken inside the parentheses, each
    row's \\left/\\right balanced, an index glued to its name kept on it."""
    from symgrad.printing.width import break_terms, split_factors, tex_width
    g = (r"{}= \left(\frac{1}{\sigma(\mathbf{c})}\left(I - \frac{\mathbf{1}\mathbf{1}^{\top}}{d}"
         r" - \frac{\mathbf{x}^{(3)} \mathbf{x}^{(3)\top}}{d}\right) \mathbf{g}_{\mathbf{ln}}"
         r" \odot \boldsymbol{\gamma}^{(3)}\left[:2, :\right] \odot \mathbf{a}\right)")
    rows = break_terms(g, 36)
    assert len(rows) > 1 and all(tex_width(r) <= 36 for r in rows), rows
    assert rows[0].startswith(r"{}= \left(") and rows[0].endswith(r"\right.")
    assert rows[-1].startswith(r"\left.") and rows[-1].endswith(r"\right)")
    for r in rows:
        assert r.count(r"\left") == r.count(r"\right") and r.count("{") == r.count("}"), r
    assert any(r"\boldsymbol{\gamma}^{(3)}\left[:2, :\right]" in r for r in rows)
    # a fraction's numerator, a matrix's cells: not broken into (no unbalanced braces or rows)
    frac = r"\frac{\left(a + b + c + d + e + f\right)}{2}"
    assert break_terms(frac, 6) == [frac]
    mat = r"\left[\begin{matrix}a + b + c & d + e + f\end{matrix}\right]"
    assert break_terms(mat, 6) == [mat]
    # a chain of Jacobians written side by side breaks between them; not after a sign, nor
    # after a plain coefficient
    da = r"\frac{\partial \ell}{\partial \mathbf{a}}"
    db = r"\frac{\partial \mathbf{a}}{\partial \mathbf{b}}"
    assert split_factors(r"{}= %s %s" % (da, db)) == [r"{}= " + da, db]
    assert split_factors(r"{}= \frac{1}{2} %s" % db) == [r"{}= \frac{1}{2} " + db]
    assert split_factors(r"- \frac{a}{b}") == [r"- \frac{a}{b}"]


def test_wide_glyphs_are_estimated_wide():
    """\\& \\% \\# (a user's name) and \\cdots (an elided row of blocks) measured in TeX at 1.7,
    1.75 and 2.6 letters: counted as one, a row of them was estimated 10 % short and shrunk."""
    from symgrad.printing.width import tex_width
    assert tex_width(r"\text{\textit{\&\%\#}}") >= 4.0  # (2.55 before)
    assert tex_width(r"a \cdots b") >= 4.0  # (3.0 before)


def test_handout_row_with_a_long_left_side_sets_it_above():
    from symgrad.handouts.render import ARTICLE_LINE, _fitted
    name = r"\text{\textbf{\textbackslash{}input\{/etc/passwd\}}}"
    row = (r"\frac{\partial \ell}{\partial %s} &= \frac{\partial \ell}{\partial z}"
           r" \frac{\partial z}{\partial %s}" % (name, name))
    [rows] = _fitted([row], r"0.25\linewidth", r"0.6\linewidth", ARTICLE_LINE)
    assert rows[0].startswith(r"\sglhs{\frac{\partial \ell}") and rows[1].startswith("&")
    assert r"0.75\linewidth" in rows[1]  # no note: the right side has both columns' width
    assert _fitted([r"x &= y"], r"0.25\linewidth", r"0.6\linewidth", ARTICLE_LINE) == [
        [r"\sgfit{0.25\linewidth}{x} &\sgfit{0.6\linewidth}{{}= y}"]]


def test_multi_letter_upright_names_in_a_product_are_kept_apart():
    # TeX drops the space between control sequences: \mathrm{cls} \mathrm{cls}^{\top} read
    # "clscls⊤" and 2 \mathrm{cls}_{1} "2cls₁" in the multi-task handout (issue 13)
    cls, W, h = (sp.MatrixSymbol(n, *s) for n, s in (("cls", (2, 1)), ("W", (2, 2)), ("h", (2, 1))))
    c1, c2, y = sp.symbols("cls_1 cls_2 y")
    assert latex(cls * cls.T) == r"\boldsymbol{\mathrm{cls}} \, \boldsymbol{\mathrm{cls}}^{\top}"
    assert latex(2 * c1) == r"2 \, \mathrm{cls}_{1}"
    assert latex(c1 * c2) == r"\mathrm{cls}_{1} \, \mathrm{cls}_{2}"
    assert latex(y / (2 * c1)) == r"\frac{y}{2 \, \mathrm{cls}_{1}}"
    # single letters are italic and read apart already: unchanged
    assert latex(h * h.T) == r"\mathbf{h} \mathbf{h}^{\top}"
    assert latex(2 * sp.Symbol("x")) == "2 x"

