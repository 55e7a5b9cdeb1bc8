"""Issue 13: XOR's --level both slides were 57 pages (27 frames, 30 clicks) with a frame 39 %
full in the middle of a section. The element level is brief on brief slides: each gradient's
matrix of entries (not every entry again on a row of its own) and no click per step."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from symgrad.handouts.build import handout
from symgrad.handouts.pdf import compile_pdf

needs_tex = pytest.mark.skipif(shutil.which("pdflatex") is None or shutil.which("pdftotext") is None,
                               reason="pdflatex and pdftotext not installed")


def _pages(tex: str) -> int:
    """A beamer deck's pages from its source: one per frame, one more per \\pause in it."""
    return tex.count(r"\begin{frame}") + tex.count(r"\pause")


def test_xor_both_slides_are_brief():
    tex = handout("2-2-1", level="both", fmt="beamer")
    assert _pages(tex) <= 30, _pages(tex)  # was 27 frames + 30 clicks = 57
    sec = tex.split(r"\section{Every partial derivative")[1].split(r"\section{")[0]
    assert r"\pause" not in sec  # the entries laid out, not derived a click at a time
    # each entry once, in its gradient's matrix: ∂ℓ/∂w1 no longer a row of its own
    assert not re.search(r"\\sgfit\{[^}]*\}\{\\frac\{\\partial \\ell\}\{\\partial w_\{1\}\}\} &=", sec)
    for entry in (r"w_{5} x_{1} \left(\hat{y} - y\right) \operatorname{relu}'(z_{1}^{(1)})",
                  r"h_{2}^{(1)} \left(\hat{y} - y\right)"):
        assert entry in sec, entry
    # (the matrix level's clicks now come only where both sides fill a third of a frame, so a
    # short section has none: tests/test_slides_reveal.py); "normal" slides and the article keep
    # every entry's row
    for full in (handout("2-2-1", level="both", fmt="beamer", verbosity="normal"),
                 handout("2-2-1", level="both")):
        sec = full.split(r"\section{Every partial derivative")[1].split(r"\section{")[0]
        assert r"{\frac{\partial \ell}{\partial w_{1}}} &" in sec


def test_element_level_slides_without_clicks():
    tex = handout("2-2-1", level="element", fmt="beamer")
    assert _pages(tex) <= 30, _pages(tex)  # was 56 pages
    units = tex.split(r"\section{The gradient with respect to")[1:] + \
        tex.split(r"\section{Every partial derivative")[1:]
    assert all(r"\pause" not in u.split(r"\section{")[0] for u in units)
    solution = tex.split(r"{Solution to exercise 1}")[1]  # (the element level's only one)
    assert "relu" in solution and r"\pause" not in solution
    # "normal" keeps its clicks: 14, each uncovering a third of a frame or more (44 when every
    # step was a click: test_slides_reveal)
    normal = handout("2-2-1", level="element", fmt="beamer", verbosity="normal")
    assert normal.count(r"\pause") >= 10


def _fills(pdf) -> dict:
    """{frame number: how far down its body its text reaches at its last click}, from the words'
    boxes (pdftotext -bbox): 0 just below the title, 1 at the footer "k / N"."""
    html = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    last = {}
    for page in re.findall(r"<page (.*?)</page>", html, re.S):
        H = float(re.search(r'height="([\d.]+)"', page).group(1))
        words = [tuple(map(float, w[:4])) + (w[4],) for w in re.findall(
            r'xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">(.*?)</word>', page)]
        foot = [w for w in words if w[1] > 0.9 * H]
        m = re.search(r"(\d+)\s*/\s*\d+", " ".join(w[4] for w in foot))
        if m:
            last[int(m.group(1))] = ([w for w in words if w[1] <= 0.9 * H],
                                     min(w[1] for w in foot))  # a later click replaces it
    fills = {}
    for k, (body, foot) in last.items():
        top = min(w[1] for w in body)
        title = max(w[3] for w in body if w[1] < top + 5)
        rest = [w[3] for w in body if w[1] > title]
        fills[k] = (max(rest) - title) / (foot - title) if rest else 0.0
    return fills


@needs_tex
@pytest.mark.xfail(strict=True, reason="W⁽²⁾'s chain alone fills 39 % of its frame since its "
                   "box gained the definition of g (the packer moves box and definition to a "
                   "'(cont.)' frame); issue 13, open")
def test_xor_both_slides_have_no_near_empty_frame(tmp_path):
    """Every frame at least 40 % full but a section's last (and the title page): measured in the
    PDF. Before: 57 pages, frame 15 (W⁽²⁾'s two entries alone, between two matrices) 39 %."""
    tex = handout("2-2-1", level="both", fmt="beamer")
    pdf = compile_pdf(tex, tmp_path / "xor.pdf", engine="pdflatex", keep_failed=False,
                      keep_log=True)
    log = pdf.with_suffix(".log").read_text(errors="replace")
    assert int(re.search(r"Output written on .*?\((\d+) pages?", log).group(1)) <= 30
    # a frame ends its section where the next is not its "(cont.)" (frame 1: the title page)
    frames = ["title"] + re.findall(r"\\begin\{frame\}\[shrink=1\]\{(.*)\}$", tex, re.M)
    ends = {j for j, title in enumerate(frames, 1)
            if j == len(frames) or frames[j] != title.split(" (cont.)")[0] + " (cont.)"}
    fills = _fills(pdf)
    assert len(fills) == len(frames)
    low = {j: round(f, 2) for j, f in fills.items() if f < 0.4 and j != 1 and j not in ends}
    assert not low, (low, sorted(ends))
