"""Issue 13, item 1: wrong or leaking notation in typeset output (LaTeX, handouts, Markdown,
_repr_latex_): no internal name (W1, yhat, h1_2), no SymPy str (a literal *), no double
superscript, each label naming what it is taken by."""
import re

import pytest
from click.testing import CliRunner

import symgrad as sg
from symgrad.cli import cli
from symgrad.handouts.build import build, handout
from symgrad.printing.names import notation


def _math(tex: str) -> list[str]:
    """The inline math of a LaTeX text ($…$)."""
    return re.findall(r"(?<!\\)\$([^$]+)\$", tex)


def _leaks(tex: str) -> list[str]:
    """Internal names in math: W1, yhat, h1_2, a unit's name with a literal * in SymPy's str."""
    found = []
    for m in _math(tex) + [tex]:
        found += re.findall(r"\\nabla_\{(?:[A-Za-z]+\d|yhat)[^}]*\}", m)
    for m in _math(tex):
        found += re.findall(r"(?<![\\A-Za-z{])(?:W\d+|yhat|[a-z]\d+_\d+)\b|\S\s*\*\s*\S", m)
    found += re.findall(r"\}\^\{\(\d+\)\}\^|\^\{\(\d+\)\}\^", tex)
    return found


# -- 1. internal names: ∇_{W1} ℓ, ∇_{yhat}, "w5 enters ŷ = b3 + h1_1*w5 + …" --------------------
@pytest.mark.parametrize("notation", ["slides", "feature"])
def test_the_backward_pass_names_each_gradient_in_the_notation(notation):
    net = sg.mlp([2, 2, 1])
    tex = handout(net, level="both", notation=notation, exercises=False)
    assert r"\nabla_{W1}" not in tex and r"\nabla_{yhat}" not in tex and r"\nabla_{b1}" not in tex
    assert not _leaks(tex), _leaks(tex)
    if notation == "slides":
        assert r"$\nabla_{\mathbf{W}^{(1)}} \ell = \mathbf{g} \mathbf{x}^{\top}$" in tex
        assert r"so $\nabla_{\hat{\mathbf{y}}} \ell = \hat{\mathbf{y}} - \mathbf{y}$" in tex
    else:
        assert r"$\nabla_{\dot{W}^{\top}} \ell = g x^{(n)\top}$" in tex


@pytest.mark.parametrize("naming, wrt, golden", [
    ("notes", "w5", r"\text{$w_{5}$ enters $\hat{y} = w_{5} h_{1}^{(1)} + w_{6} h_{2}^{(1)} + "
                    r"b_{3}$ directly}"),
    ("position", "W2_11", r"\text{$W_{11}^{(2)}$ enters $\hat{y} = W_{11}^{(2)} h_{1}^{(1)} + "
                          r"W_{12}^{(2)} h_{2}^{(1)} + b_{1}^{(2)}$ directly}")])
def test_a_weight_entering_the_output_directly_is_written_in_the_notation(naming, wrt, golden):
    net = sg.mlp([2, 2, 1])
    d = net.derive(wrt, level="element", of="output", naming=naming)
    tex = sg.to_latex(d)
    assert golden in tex
    assert "h1\\_2" not in tex and "*" not in tex
    assert "directly" in d.to_text() and "*" not in d.steps[-2].why


def test_the_element_handout_has_no_sympy_str():
    tex = handout(sg.mlp([2, 2, 1]), level="element", exercises=False)
    assert "enters $" in tex and not _leaks(tex), _leaks(tex)


# -- 2. the penalty's entrywise square: no double superscript ---------------------------------
def test_the_penalty_square_is_one_superscript():
    tex = sg.to_latex(sg.mlp([2, 2, 1], penalty=0.01).backprop())
    assert r"^{(1)}^" not in tex and r"\right)^{\circ {2}}" in tex
    assert r"\left(\mathbf{W}^{(1)}\right)^{\circ {2}}" in tex
    assert not re.search(r"\^\{[^{}]*\}\^", tex)


# -- 3. the Jacobian's label names what it is taken by ---------------------------------------
def test_a_jacobian_is_labelled_by_its_own_variables():
    assert r"\frac{\partial f}{\partial \mathbf{w}}" in \
        sg.derive_jacobian("w1**2 + w2", "w1 w2").to_latex()
    # the notes' two perspectives of 2ax + b/y
    assert r"\frac{\partial f}{\partial \mathbf{x}} &=" in \
        sg.derive_jacobian("2*a*x + b/y", "x y").to_latex()
    tex = sg.derive_jacobian("2*a*x + b/y", "a b").to_latex()
    assert r"\frac{\partial f}{\partial \mathbf{w}} &=" in tex
    assert r"\partial \mathbf{x}" not in tex
    # one variable: the derivative by that variable, a scalar
    tex = sg.derive_gradient("2*a*x + b/y", "a").to_latex()
    assert r"\nabla_{a} f" in tex and r"\mathbf{" not in tex


def test_the_cli_labels_follow_wrt():
    r = CliRunner().invoke(cli, ["jacobian", "w1**2 + w2, w1*w2", "--wrt", "w1,w2",
                                 "--format", "latex", "--steps"])
    assert r.exit_code == 0, r.output
    assert r"\partial \mathbf{w}}" in r.output and r"\mathbf{x}" not in r.output
    r = CliRunner().invoke(cli, ["chain", "--fn", "u1 + u2", "--wrt", "u1,u2", "--fn",
                                 "w1*w2, w1 + w2", "--wrt", "w1,w2", "--format", "latex",
                                 "--steps"])
    assert r.exit_code == 0, r.output
    assert r"\partial \mathbf{w}}" in r.output and r"\mathbf{x}" not in r.output


# -- 4. plain-function titles --------------------------------------------------------------------
def test_plain_function_titles():
    tex = handout([sg.derive_jacobian("2*a*x + b/y", "a b"), sg.derive_gradient("2*a*x + b/y", "x"),
                   sg.derive_matrix_gradient(2, 3), sg.derive_jacobian("2*a*x + b/y", "x y")])
    titles = re.findall(r"\\section\{(.*)\}", tex)
    assert titles == [r"Jacobian of $f$ with respect to $( a , b )$",
                      r"Gradient of $f$ with respect to $( x )$",
                      r"$\nabla_{\mathbf{W}} J$ for $\mathbf{z} = \mathbf{W} \mathbf{x}$, "
                      r"$\mathbf{W} \in \mathbb{R}^{2 \times 3}$",
                      r"Jacobian of $f$ with respect to $( x , y )$"]


# -- 5. user names: Greek letters, names with an underscore, δ's -----------------------------------
def _greek_net(deep=False):
    net = sg.Network()
    x = net.input("x", 2)
    z = net.dense(x, 2, W="alpha", b="beta", name="betaz")
    h = net.act(z, "sigmoid", name="f_1")
    if deep:
        h = net.act(net.dense(h, 2, W="W2", b="b2"), "relu")
    y = net.dense(h, 1, W="W3" if deep else "W2", b="b3" if deep else "b2", name="out")
    net.set_loss(y, "mse")
    return net


def test_greek_user_names_are_greek_in_equations_and_words():
    net = _greek_net()
    d = net.derive("alpha_12", level="element", naming="position")
    tex = sg.to_latex(d)
    assert r"\frac{\partial \ell}{\partial \alpha_{12}}" in tex
    assert r"from $\alpha_{12}$" in tex and "alpha_{12}$" not in tex.replace(r"\alpha_{12}", "")
    tex = handout(net, level="both", exercises=False)
    assert r"\mathrm{alpha}" not in tex and r"\mathrm{beta}}" not in tex
    assert r"$\boldsymbol{\alpha} \in \mathbb{R}^{2 \times 2}$" in tex
    assert r"\nabla_{\boldsymbol{\alpha}} \ell" in tex
    assert r"\textbf{alpha}" not in tex and "**alpha**" not in handout(net, fmt="markdown")
    assert notation("slides").vector("alpha0").tex() == r"\boldsymbol{\alpha}^{(0)}"
    # a name that only starts like a Greek letter is the user's word
    assert r"\mathrm{betaz}" in tex


def test_a_name_with_an_underscore_is_one_name_in_equations_and_words():
    tex = handout(_greek_net(deep=True), level="both", exercises=False)
    assert r"\delta_{f_{1,1}}" in tex and r"\delta_{f\_1}" not in tex
    assert r"{\delta_{f}}" not in tex and r"f\_1" not in tex and r"\text{\textbf{f" not in tex
    assert r"\mathbf{f}_{1}" in tex and r"$f_{1,i}$ depends only on" in tex
    assert r"substitute the $\delta$'s" in tex and r"\delta'" not in tex


# -- 6. the feature notation: n is the example's index, N the batch size; y is per example too ----
def test_the_feature_notation_has_one_n():
    net = sg.mlp([2, 2, 1])
    tex = handout(net, level="both", notation="feature")
    assert "x^{(n)}" in tex and r"\frac{1}{N} \sum_{i=1}^{N}" in tex
    assert not re.search(r"\{n\}|\$n\$|/ n\b", tex), re.findall(r".{40}(?:\{n\}|\$n\$).{20}", tex)
    assert "minibatch of N examples" in tex or "minibatch of $N$ examples" in tex
    d = net.derive("w1", level="element")
    el = sg.to_latex(d, notation="feature")
    assert r"y^{(n)}" in el and r"\frac{1}{N}" in el and not re.search(r"[^\\a-z]y\b(?!\^)", el)
    assert r"the mean over the $N$ examples" in sg.to_latex(net.derive("W1"), notation="feature")
    # the slides keep their n
    assert r"\frac{1}{n} \sum_{i=1}^{n}" in handout(net, level="both")


# -- 7. a custom loss: its derivative, not a name ------------------------------------------------
def test_a_custom_loss_shows_its_derivative_at_the_matrix_level():
    net = sg.mlp([2, 2, 1], loss="(yhat-y)**4")
    tex = sg.to_latex(net.backprop())
    assert r"\mathbf{g}_{\hat{\mathbf{y}}} &= \left[4 \left(\hat{y}_{k} - y_{k}\right)^{3}" \
        r"\right]_{k}" in tex
    assert r"\partial_{\hat{y}} L" not in tex
    h = handout(net, level="matrix")
    assert r"\partial_{\hat{y}} L" not in h and r"4 \left(\hat{y}_{k} - y_{k}\right)^{3}" in h
    text = net.derive("W2").to_text()
    assert "∂L/∂ŷ]" not in text and "[4(ŷ − y)³]ᵀ" in text  # issue 13: TextPrinter, not str


# -- 8. bce after σ at the element level: ŷ − y, as at the matrix level ------------------------
def test_bce_after_sigmoid_collapses_at_the_element_level():
    net = sg.mlp([2, 2, 1], "relu", "sigmoid", "bce")
    d = net.derive("w5", level="element")
    tex = sg.to_latex(d)
    assert r" &= \left(\hat{y} - y\right) \cdot h_{1}^{(1)} && " in tex
    assert r"\frac{\partial \ell}{\partial w_{5}} &= \left(\hat{y} - y\right) \operatorname{relu}(" \
        in tex
    assert "checked equal" in tex
    # mse after an identity output: nothing to collapse, no such step
    assert "checked equal" not in sg.to_latex(sg.mlp([2, 2, 1]).derive("w5", level="element"))


# -- 9. Markdown: real quotes, and math KaTeX takes ---------------------------------------------
@pytest.mark.parametrize("notation", ["slides", "feature"])
def test_markdown_has_no_tex_quotes(notation):
    md = handout(sg.mlp([2, 2, 1]), level="both", fmt="markdown", notation=notation)
    assert "``" not in md and "''" not in md.replace(r"\prime", "")
    # (the handouts' one quoted phrase, the notes' "where do these come from?", is gone: they no
    # longer presume the notes; TeX's quotes in text still reach Markdown as plain ones)
    from symgrad.handouts.render import _md_text
    assert _md_text("the ``where'' of $x$") == 'the "where" of $x$'
    md = handout(sg.chain(("x1 - 2*x2 + x3/4", "x1 x2 x3", "f"),
                          ("x1 + 2*x2, x2, -x1 + 3", "x1 x2", "g")), fmt="markdown")
    assert "@{" not in md and r"\begin{array}{cc}" in md


# -- 10. the exercise asks a true question ------------------------------------------------------
@pytest.mark.parametrize("hidden, question", [
    ("relu", "when is it zero?"),
    ("sigmoid", r"for which input of the unit is $\sigma'$ largest, and how large is it there?"),
    ("tanh", r"for which input of the unit is $\tanh'$ largest, and how large is it there?"),
    ("softplus", "can it be zero?"), ("leaky_relu", "can it be zero?")])
def test_the_element_exercise_asks_a_true_question(hidden, question):
    tex = handout(sg.mlp([2, 2, 1], hidden), level="both")
    asked = re.findall(r"\\item Find .*separate the output from it, and (.*)", tex)
    assert asked == [question]


# -- everything above renders: KaTeX and MathJax take every block of these handouts -------------
def test_the_new_notation_renders(renderers):
    from test_renderers import markdown_math, report
    blocks = []
    for net, opts in [(sg.mlp([2, 2, 1], loss="(yhat-y)**4"), {}),
                      (sg.mlp([2, 2, 1], "sigmoid", "sigmoid", "bce"), {}),
                      (sg.mlp([2, 2, 1]), {"notation": "feature"}),
                      (_greek_net(deep=True), {})]:
        blocks += markdown_math(handout(net, level="both", fmt="markdown", **opts))
    blocks += markdown_math(handout([sg.derive_jacobian("2*a*x + b/y", "a b"),
                                     sg.derive_matrix_gradient(2, 3)], fmt="markdown"))
    assert not (f := renderers.failures(blocks, "leaks")), report(f)
