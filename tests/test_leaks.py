"""Issue 13, item 1: wrong or leaking notation in typeset output (LaTeX, handouts, Markdown,
_repr_latex_): no internal name (W1, yhat, h1_2), no SymPy str (a literal *), no double
superscript, each label naming what it is taken by."""
import re

import pytest
from click.testing import CliRunner

import symgrad as sg
from symgrad.cli import cli
from symgrad.handouts.build import build, handout


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
