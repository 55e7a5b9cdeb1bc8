"""An instructor's trial of the attention handout (issue 13): ``normalize`` was an undefined word,
layer norm's standard deviation was written σ(r) (read as the sigmoid), and A, V, Q, K, e_t were
used without definition in mixed fonts (Q italic beside a bold 𝐆, q_t⁽¹⁾ italic where the
equations have 𝐪⁽¹⁾, "A ⊙" as text). Each is defined in the forward pass's section, before any
later section uses it, and written one way everywhere."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from symgrad.core.matexpr import STD_TEX
from symgrad.handouts.build import handout, handout_file

ATTENTION = str(Path(__file__).parent.parent / "examples" / "handouts" / "attention.py")


@pytest.fixture(scope="module")
def texs():
    return {fmt: handout_file(ATTENTION, fmt=fmt) for fmt in ("article", "beamer")}


def _first_section(tex):
    return tex.split(r"\section{The loss}")[0]


def _math(tex):
    """Every inline $…$ of the text (the justifications and paragraphs)."""
    return re.findall(r"(?<!\\)\$([^$]+)\$", tex)


@pytest.mark.parametrize("fmt", ["article", "beamer"])
def test_normalize_and_its_standard_deviation_defined_where_first_used(texs, fmt):
    tex = texs[fmt]
    first = _first_section(tex)
    # defined in the section whose equations first use it, after them
    assert r"\operatorname{normalize}\left(" in first
    assert r"$\operatorname{normalize}(\mathbf{h}) = (\mathbf{h} - \operatorname{mean} " \
           r"\mathbf{h}) / %s \mathbf{h}$" % STD_TEX in first
    assert r"%s \mathbf{h} = \sqrt{\operatorname{var} \mathbf{h} + \varepsilon}" % STD_TEX \
        in first and r"$\varepsilon$ = $10^{-5}$" in first
    # the standard deviation one symbol, the defined one, in the backward pass's equations too;
    # never σ(·), the sigmoid's form
    assert r"\frac{1}{%s(\mathbf{r}^{(1)})}" % STD_TEX in tex
    assert r"\sigma(" not in tex


@pytest.mark.parametrize("fmt", ["article", "beamer"])
def test_attention_matrices_defined_before_use_and_bold_everywhere(texs, fmt):
    tex = texs[fmt]
    first, rest = _first_section(tex), tex[len(_first_section(tex)):]
    for defined in (r"$\mathbf{Q} = [\mathbf{q}]_{1:T}$", r"$\mathbf{K} = [\mathbf{k}]_{1:T}$",
                    r"$\mathbf{V} = [\mathbf{v}]_{1:T}$", r"row $t$ is $\mathbf{a}_{t}^{\top}$",
                    r"entry $a_{t\tau}$", r"$e_{t}$ is column $t$ of", r"$m_{t}$ is the causal",
                    r"$\mathbf{G}_{\mathbf{x}}$ stacks"):
        assert defined in first, defined
    # used later, and there written as defined: Q, K, V, A bold as G is, in every note
    for letter in "QKVA":
        assert r"\mathbf{%s}" % letter in rest, letter
    bare = [m for m in _math(rest) if re.search(r"(?<![\\\w{])[QKVA](?![\w}])", m)]
    assert not bare, bare[:5]
    assert not re.search(r"\bA \$\\odot", rest)  # (A as a word of text before ⊙)
    # a value at position t bold with t below (𝐪ₜ⁽¹⁾, 𝐠ₜ), never an italic entry q_t⁽¹⁾
    assert r"\mathbf{q}_{t}^{(1)}" in rest and r"\mathbf{g}_{t}" in rest
    assert r"\mathbf{a}_{t}^{(1)}" in rest
    italic = re.findall(r"(?<![\w\\{])[qkvago]_\{t\}", rest)
    assert not italic, italic
    # e_t, the unit vector, italic everywhere (the embedding is 𝐞)
    assert r"\mathbf{e}_{t}" not in tex and "e_t" in rest


def test_an_mlp_handout_defines_none_of_it():
    tex = handout("2-2-1", fmt="beamer")
    assert r"\operatorname{normalize}" not in tex and r"\mathbf{Q}" not in tex
    assert "Attention reads every position" not in tex


@pytest.mark.parametrize("fmt", ["article", "beamer"])
def test_definitions_come_before_the_forward_pass_uses_them(texs, fmt):
    """Instructor's trial: the forward pass (article p.1) used [k]_{1:T}, m_t and normalize,
    defined only after its equations (p.2)."""
    first = _first_section(texs[fmt])
    for used, defined in ((r"\right]_{1:T}", r"$[\mathbf{k}]_{1:T}$ stacks"),
                          (r"+ m_{t}", r"$m_{t}$ is the causal"),
                          (r"\operatorname{normalize}\left(", r"$\operatorname{normalize}(")):
        assert first.index(defined) < first.index(used), (used, defined)


def test_on_slides_the_definitions_are_a_list(texs):
    """Slide 5 was the glossary as one paragraph (9 dense lines): on slides each definition is
    an item of a list, in the article a paragraph, in Markdown a bullet."""
    first = _first_section(texs["beamer"])
    lists = re.findall(r"\\begin\{itemize\}(.*?)\\end\{itemize\}", first, re.S)
    assert len(lists) == 1, len(lists)
    items = lists[0].split(r"\item ")[1:]
    for defined in (r"$\operatorname{normalize}(", r"$[\mathbf{k}]_{1:T}$ stacks",
                    r"$\mathbf{Q} = [\mathbf{q}]_{1:T}$", r"$m_{t}$ is the causal",
                    r"$e_{t}$ is column $t$ of"):
        assert sum(defined in it for it in items) == 1, defined
    assert len(items) >= 6
    assert r"\begin{itemize}" not in _first_section(texs["article"])
    md = handout_file(ATTENTION, fmt="markdown")
    assert re.search(r"^- \$m_\{t\}\$ is the causal", md, re.M), md[:300]
