"""`symgrad derive` of a graph network names its values as the handout does (issue 13, an
instructor's trial): a generated name (s18, z13, xhat10, Wq1 — the graph's node count in it) is
written by its role (r⁽¹⁾, z⁽⁴⁾, x̂⁽²⁾, W_q⁽¹⁾) in the maths and in the words, in text and LaTeX;
layer norm's standard deviation is std(h), never σ (the sigmoid in these notes); its VJP is maths,
not SymPy's str; the sequence convention is set out once."""
import re
import runpy
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import symgrad as sg
from symgrad.cli import cli
from symgrad.graph.symbols import says_itself, symbols_of
from symgrad.handouts.pdf import compile_pdf
from symgrad.handouts.render import ARTICLE_PREAMBLE
from symgrad.printing.names import Notation, portable_math, with_symbols
from symgrad.printing.text import _name

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "handouts"


def derive(name, *args):
    r = CliRunner().invoke(cli, ["derive", str(EXAMPLES / f"{name}.py"), *args],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.output


def net_of(name):
    return runpy.run_path(str(EXAMPLES / f"{name}.py"))["net"]


def renamed(net) -> list:
    """The generated names that do not say their symbol (s18 is r⁽¹⁾; mlp's W1 says W⁽¹⁾)."""
    table, _ = symbols_of(net)
    return sorted(n for n in net.generated if n in table and not says_itself(n, table[n]))


def bare(name: str) -> re.Pattern:
    """``name`` as a word of its own (s18, not the 18 of a shape or the s of "scores")."""
    return re.compile(r"(?<![A-Za-z0-9_])%s(?![A-Za-z0-9])" % re.escape(name))


@pytest.fixture(scope="module")
def attention():
    return {fmt: derive("attention", "--format", fmt) for fmt in ("text", "latex")}


@pytest.mark.parametrize("example", ["attention", "gated", "cnn"])
def test_no_generated_name_in_text(example, attention):
    net = net_of(example)
    gen = renamed(net)
    assert len(gen) >= {"attention": 40, "gated": 5, "cnn": 2}[example]  # (what is checked)
    out = attention["text"] if example == "attention" else derive(example)
    for n in gen:
        assert not bare(n).search(out), n          # z12 in "a sum passes g to z12"
        shown = _name(n)                            # as text wrote it before: s₁₈, xhat₁₀
        assert shown == n or shown not in out, shown
    assert "*" not in out and ".T" not in out      # SymPy's str: 1*1.T/d, xhat*xhat.T
    assert "σ" not in out.replace("σ′", "") or example != "attention"


@pytest.mark.parametrize("example", ["attention", "gated", "cnn"])
def test_no_generated_name_in_latex(example, attention):
    net = net_of(example)
    out = attention["latex"] if example == "attention" else derive(example, "--format", "latex")
    plain = Notation("slides")  # how a name is written when it is written by its name
    roles = with_symbols(plain, *symbols_of(net))
    taken = {roles.vector(n).tex() for n in symbols_of(net)[0]}  # (beta2 as a name is β⁽²⁾,
    for n in renamed(net):                                        # as beta10 is by its role)
        assert not bare(n).search(out), n
        tex = plain.vector(n).tex()
        assert tex in taken or tex not in out, (n, tex)
    assert r"\sigma(" not in out and "1.T" not in out


def test_layer_norm_line_text_golden(attention):
    assert ("   g_r⁽¹⁾ᵀ = g_r⁽²⁾ᵀ + ((I − x̂⁽²⁾x̂⁽²⁾ᵀ/4 − 𝟏 𝟏ᵀ/4)g_x̂⁽²⁾/std(r⁽¹⁾))ᵀ    [a sum passes g "
            "to r⁽¹⁾ unchanged; g ← (g − mean g − x̂⁽²⁾ mean(x̂⁽²⁾ ⊙ g))/std(r⁽¹⁾): the Jacobian is "
            "symmetric, applied without forming it]") in attention["text"].splitlines()


LN_TEX = (r"\frac{1}{\operatorname{std}(\mathbf{r}^{(1)})} \left(\mathbf{I} - \frac{1}{4} "
          r"\mathbf{1} \mathbf{1}^{\top} - \frac{1}{4} \hat{\mathbf{x}}^{(2)} "
          r"\hat{\mathbf{x}}^{(2)\top}\right) \mathbf{g}_{\hat{\mathbf{x}}^{(2)}}")


def test_layer_norm_line_latex_golden_and_as_the_handout_writes_it(attention):
    assert r"\mathbf{g}_{\mathbf{r}^{(1)}}^{\top} &= \left(\mathbf{g}_{\mathbf{r}^{(2)}} + " \
        + LN_TEX + r"\right)^{\top}" in attention["latex"]
    md = sg.handout(net_of("attention"), fmt="markdown")
    assert LN_TEX in md and r"\sigma(" not in md  # one symbol for the std, derive and handout


def test_gated_layer_norm_jacobian_golden():
    assert ("           ∂x̂/∂c = (I − x̂x̂ᵀ/4 − 𝟏 𝟏ᵀ/4)/std(c)    [4×4; x̂ = (c − mean c)/std(c): the "
            "mean and std(c) move with every entry, so ∂x̂/∂c = (I − 𝟏𝟏ᵀ/d − x̂ x̂ᵀ/d)/std(c), "
            "d = 4]") in derive("gated").splitlines()


def test_role_names_as_the_handout_and_in_the_words(attention):
    text = attention["text"]
    assert "[a sum passes g to z⁽³⁾ unchanged]" in text
    assert "the part of the stack o⁽²⁾ fills" in text and "entry τ is v⁽²⁾_τ · g_t" in text
    assert "G_a⁽²⁾ = G_o⁽²⁾ V⁽²⁾ᵀ" in text
    assert "The gradient of the loss with respect to W_q⁽¹⁾, at one position" in text
    # the equals signs stand in one column: x̂ is two code points, one column
    rows = [ln for ln in text.split("\n\n")[0].splitlines()[2:] if " = " in ln]
    assert len({ln.index(" = ") - sum(map(_combining, ln[:ln.index(" = ")])) for ln in rows}) == 1
    assert r"\text{a sum passes $\mathbf{g}$ to $\mathbf{z}^{(3)}$ unchanged}" in attention["latex"]


def _combining(c):
    import unicodedata
    return bool(unicodedata.combining(c))


def test_ascii_role_names():
    out = derive("attention", "--ascii")
    assert out.isascii()
    assert "g_r^(1)' = g_r^(2)' + ((I - xhat^(2)xhat^(2)'/4 - 1 1'/4)g_xhat^(2)/std(r^(1)))'" in out
    assert "[a sum passes g to z^(3) unchanged]" in out


def test_convention_set_out_once(attention):
    for fmt, out in attention.items():
        assert out.count("a sequence value is") == 1, fmt
    assert "t = one of the T = 4 positions    [a value at position t as set out for E above]" \
        in attention["text"]


@pytest.mark.slow  # 6.5 s alone, nearly all node starting KaTeX and MathJax (one string: 6.3 s)
def test_derive_latex_renders(renderers, attention):
    blocks = attention["latex"].strip().split("\n\n")
    assert len(blocks) == len(net_of("attention").parameters)
    # E's block holds every role and both layer norms' VJPs; the others differ from it in their
    # parameter's names (all 25 took 9.5 s of node; test_derive_latex_compiles has 3)
    assert not (f := renderers.failures([(portable_math(blocks[0]), True)], "derive")), f


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_derive_latex_compiles(attention, tmp_path):
    """The LaTeX as derive prints it, through pdflatex (an error names TeX's message)."""
    body = "\n\n".join(r"\[%s\]" % b for b in attention["latex"].strip().split("\n\n")[:3])
    compile_pdf(ARTICLE_PREAMBLE + "\\begin{document}\n" + body + "\n\\end{document}\n",
                tmp_path / "d.pdf", engine="pdflatex", keep_failed=False)


def test_json_keeps_sympy_strings():
    out = derive("attention", "--format", "json")  # as the README says: exact names, SymPy's str
    assert '"lhs": "∂ℓ/∂vec[E1]"' in out and "xhat10" in out and "r⁽¹⁾" not in out


# -- issue 13 (handouts handed out unedited): student-facing words, not code words ----------------
CODE_WORDS = ("nodes)", "feeds 2 nodes", "torch", "reshape", "index-add", "one-hot product",
              "sympy.diff")


@pytest.mark.parametrize("fmt", ["text", "latex"])
def test_attention_words_are_the_notes_not_code(fmt, attention):
    out = attention[fmt]
    assert [w for w in CODE_WORDS if w in out] == []
    assert "attention's scores, weights and outputs of each head" in out


def test_a_fork_says_what_it_feeds(attention):
    """e feeds the first layer norm and the residual sum: named as the handout writes them."""
    assert "g_e ≐ ∇ ℓ at e, which feeds x̂⁽¹⁾ and r⁽¹⁾: the sum" in attention["text"]


def test_esl_check_line_in_the_notes_words():
    r = CliRunner().invoke(cli, ["derive", "2-2-1", "--level", "index", "--notation", "esl"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "sympy" not in r.output
    assert "checked at every index of 2-2-1 and 3-2-2 against the derivative taken entry by " \
        "entry" in r.output


def test_attention_notes_use_the_formulas_letters(attention):
    """The formula is the gradient at the value (key) of the current position t:
    G_Oᵀ A e_t = Σ_τ a_τt g_τ (row t of G_V = Aᵀ G_O), so the note sums over τ for position t;
    and a head's matrices carry its number (A⁽²⁾, not A)."""
    lines = attention["text"].splitlines()

    def note(lhs):
        [line] = [ln for ln in lines if ln.strip().startswith(lhs)]
        return line
    for h in "⁽¹⁾", "⁽²⁾":
        v = note(f"g_v{h}ᵀ = (g_o{h}[1:T]ᵀ a{h}[1:T] e_t)ᵀ")
        assert f"G_v{h} = A{h}ᵀ G_o{h}: the value at position t collects a{h}_τt g_τ from " \
            "every position τ]" in v
        k = note(f"g_k{h}ᵀ = ((1/√2)·q{h}[1:T]ᵀ g_s{h}[1:T] e_t)ᵀ")
        assert f"G_k{h} = G_s{h}ᵀ Q{h}/√2: the key at position t collects g_τt q{h}_τ/√2 from " \
            "every position τ" in k
        s = note(f"g_s{h}ᵀ")
        assert f"G_s{h} = A{h} ⊙ (G_a{h} − rowsum(G_a{h} ⊙ A{h}))" in s
        assert f"G_q{h} = G_s{h} K{h}/√2" in note(f"g_q{h}ᵀ")
        assert f"G_a{h} = G_o{h} V{h}ᵀ" in note(f"g_a{h}ᵀ")

