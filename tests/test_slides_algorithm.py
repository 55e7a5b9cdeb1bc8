"""Issue 13 (an instructor's trial of the attention handout's slides): the final algorithm's
~100 rows went into one box on one frame, which shrink=1 scaled until unreadable. On slides the
box splits across frames of at most BEAMER_ALGORITHM_ROWS rows each, numbered on."""
from __future__ import annotations

import re
from pathlib import Path

from symgrad.handouts.build import handout_file
from symgrad.handouts.render import BEAMER_ALGORITHM_ROWS

ATTENTION = str(Path(__file__).parent.parent / "examples" / "handouts" / "attention.py")


def _boxes(tex):
    """Each algorithm box of the slides: its tabular's rows, a line each (a row's vector has
    \\\\ of its own inside)."""
    return [body.strip().splitlines() for body in re.findall(
        r"\\begin\{tabular\}\{@\{\}r@\{\\hspace\{0\.6em\}\}l@\{\}\}(.*?)\\end\{tabular\}", tex,
        re.S)]


def test_attention_slides_algorithm_splits_across_frames():
    tex = handout_file(ATTENTION, fmt="beamer")
    frames = re.findall(r"\\begin\{frame\}.*?\\end\{frame\}", tex, re.S)
    algo = [f for f in frames if r"\textbf{Algorithm 6.4}" in f]
    boxes = _boxes(tex)
    assert len(algo) > 1 and len(boxes) == len(algo)  # one box a frame
    assert all(len(rows) <= BEAMER_ALGORITHM_ROWS for rows in boxes), [len(r) for r in boxes]
    assert not any(r"\resizebox" in f or re.search(r"\\scalebox\{0\.[0-8]", f) for f in algo)
    # numbered on from frame to frame: 1, 2, …, n with none repeated or skipped
    numbers = [int(n) for n in re.findall(r"\{\\footnotesize (\d+):\}", "".join(algo))]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) > 60
    # a box ends on no heading (a heading goes on with the lines under it)
    assert not any(rows[-1].strip().startswith(r"& \textbf") for rows in boxes)


def test_concatenation_split_printed_as_mathematics():
    """The backward split of a concatenation was Python's g_c[2 :, :] and [: 2, :]: now the
    rows as the notes write ranges, 1-based and inclusive."""
    tex = handout_file(ATTENTION, fmt="beamer")
    assert r"\left[\mathbf{g}_{\mathbf{c}}\right]_{3:4}" in tex
    assert r"\left[\mathbf{g}_{\mathbf{c}}\right]_{1:2}" in tex
    assert not re.search(r"\\left\[\s*:?\s*\d*\s*:\s*\d*\s*,\s*:\s*\\right\]", tex)


def test_matrix_slice_latex():
    import sympy as sp
    from symgrad.printing.latex import NotesLatexPrinter
    W = sp.MatrixSymbol("W", 4, 3)
    p = NotesLatexPrinter()
    assert p.doprint(W[2:, :]) == r"\left[\mathbf{W}\right]_{3:4}"
    assert p.doprint(W[1:2, :]) == r"\left[\mathbf{W}\right]_{2}"
    assert p.doprint(W[1:3, 0:2]) == r"\left[\mathbf{W}\right]_{2:3,\,1:2}"


def test_matrix_slice_text():
    """The text format the same way, as its entries g_z1[1] are 1-based."""
    import sympy as sp
    from symgrad.printing.text import TextPrinter
    W = sp.MatrixSymbol("W", 4, 3)
    assert TextPrinter().doprint(W[2:, :]) == "W[3:4]"
    assert TextPrinter().doprint(W[1:3, 0:2]) == "W[2:3, 1:2]"
    assert TextPrinter().doprint(W[::2, :]) == "W[::2, :]"  # a step the notes never write


def test_attention_scale_one_form():
    """1/√d_k was \\frac{\\sqrt{2}}{2} in the forward pass and a division by \\sqrt{2} in the
    scores' Jacobians: now \\frac{1}{\\sqrt{2}} in front, everywhere."""
    import sympy as sp
    from symgrad.printing.latex import NotesLatexPrinter
    tex = handout_file(ATTENTION, fmt="beamer")
    assert r"\frac{\sqrt{2}}{2}" not in tex and r"\frac{1}{\sqrt{2}} \, \left[" in tex
    p = NotesLatexPrinter()
    assert p.doprint(1 / sp.sqrt(2)) == r"\frac{1}{\sqrt{2}}"
    assert p.doprint(sp.sqrt(2)) == r"\sqrt{2}"  # other numbers their own form
    assert p.doprint(sp.sqrt(2) / 4) != r"\frac{1}{\sqrt{2}}"
    assert "sqrt" not in p.doprint(sp.Float(0.5) ** 0.5)


def test_attention_jacobians_scale_in_front():
    from symgrad.graph import attention
    from symgrad.handouts.build import load_network_file
    net, _ = load_network_file(ATTENTION, None, None)
    node = next(n for n in net.nodes.values() if n.op == "scores")
    for wrt in dict.fromkeys(node.inputs):
        jac, _ = attention._scores_jacobian(net, node, wrt)
        latex = str(jac.args[1])
        assert r"/\sqrt" not in latex and latex.startswith(r"\frac{1}{\sqrt{2}} \, "), latex


def test_attention_scale_text():
    """The text format's scale as its justifications write it (Q/√2), not √2/2; parenthesized
    before the product it scales."""
    import sympy as sp
    from symgrad.printing.text import TextPrinter
    assert TextPrinter().doprint(1 / sp.sqrt(2)) == "1/√2"
    assert TextPrinter().doprint(sp.sqrt(2)) == "√2"
    from symgrad.core.sequence import SeqProduct
    q, k = sp.MatrixSymbol("q", 2, 1), sp.MatrixSymbol("k", 2, 1)
    text = TextPrinter().doprint(SeqProduct(q, k, 4, ty=True, scale=1 / sp.sqrt(2)))
    assert text.startswith("(1/√2)·") and "√2/2" not in text, text
