"""Issue 13, an instructor's trial: the slides put a \\pause before every derivation step, so a frame
came as pages that differ by one row (four "17/23" pages in a row in the XOR slides), and there was
no way to print them without the clicks. Now a click uncovers a third of a frame or more
(``render._clicks``), and ``reveal=False`` (``--no-reveal``, ``handout_options = {"reveal":
False}``) has none: one page per frame, to hand out on paper."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

import symgrad as sg
from symgrad.handouts.build import OPTIONS, handout
from symgrad.handouts.pdf import compile_pdf

needs_tex = pytest.mark.skipif(shutil.which("pdflatex") is None or shutil.which("pdftotext") is None,
                               reason="pdflatex and pdftotext not installed")

XOR = dict(level="both")  # the README's `symgrad handout 2-2-1 --level both -o xor.pdf`
MNIST = dict(output="softmax", loss="cross_entropy")


def _pages(tex: str) -> int:
    """A beamer deck's pages from its source: one per frame, one more per \\pause in it."""
    return tex.count(r"\begin{frame}") + tex.count(r"\pause")


def _frames(tex: str) -> list[str]:
    return re.findall(r"\\begin\{frame\}(.*?)\\end\{frame\}", tex, re.S)


@pytest.mark.parametrize("args", [
    ("2-2-1", {}), ("2-2-1", XOR), ("2-2-1", dict(verbosity="full", level="both")),
    ("784-256-128-10", MNIST),
    ([sg.derive_jacobian("2*x1 + x2, pi*x2, -x1/x2", "x1 x2")], {})],
    ids=["2-2-1", "xor", "xor-full", "mnist", "jacobian"])
def test_no_reveal_is_the_same_slides_without_a_click(args):
    spec, opts = args
    tex = handout(spec, fmt="beamer", **opts)
    flat = handout(spec, fmt="beamer", reveal=False, **opts)
    assert r"\pause" in tex and r"\pause" not in flat
    # the same frames, each as its last page showed it
    assert flat == tex.replace(r"\pause ", "")
    assert _pages(flat) == len(_frames(flat))


def test_reveal_is_an_option_of_files_and_checked():
    assert "reveal" in OPTIONS
    with pytest.raises(ValueError, match=r"^reveal must be True or False, not 'no'$"):
        handout("2-2-1", fmt="beamer", reveal="no")  # (a truthy "no" would reveal)
    # an article or Markdown has no clicks either way: a file's option does not stop them
    assert handout("2-2-1", reveal=False) == handout("2-2-1")


@pytest.mark.parametrize("spec,opts,most", [
    # pages: (measured now; on main, one click per step)
    ("2-2-1", XOR, 28),                                            # 27; 30
    ("2-2-1", {}, 20),                                             # 19; 22
    ("2-2-1", dict(hidden="sigmoid", output="sigmoid", loss="bce"), 22),  # 21; 24
    ("784-256-128-10", MNIST, 27),                                 # 25; 32
    ("2-2-1", dict(level="element", verbosity="normal"), 46),      # 43; 73
])
def test_default_slides_reveal_in_larger_steps(spec, opts, most):
    tex = handout(spec, fmt="beamer", **opts)
    assert _pages(tex) <= most, _pages(tex)
    # no frame of 3 or 4 pages, a row more on each (XOR's shared backward pass, MNIST's)
    assert max(f.count(r"\pause") for f in _frames(tex)) <= 1
    assert r"\pause" in tex  # a chain and its result still come a click apart


def _pdf_pages(pdf) -> list[tuple[int, list, float, float]]:
    """Each page's (frame number, body words (yMin, yMax, text), top of the body, top of the
    footer "k / N") from pdftotext -bbox: a word hidden behind a \\pause is not in the text."""
    html = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    out = []
    for page in re.findall(r"<page (.*?)</page>", html, re.S):
        H = float(re.search(r'height="([\d.]+)"', page).group(1))
        words = [(float(a), float(b), w) for a, b, w in re.findall(
            r'yMin="([\d.]+)" xMax="[\d.]+" yMax="([\d.]+)">(.*?)</word>', page)]
        foot = [w for w in words if w[0] > 0.9 * H]
        k = int(re.search(r"(\d+)\s*/\s*\d+", " ".join(w[2] for w in foot)).group(1))
        body = [w for w in words if w[0] <= 0.9 * H]
        top = min(w[0] for w in body)
        title = max(w[1] for w in body if w[0] < top + 5)  # (the frame's title ends here)
        out.append((k, body, title, min(w[0] for w in foot)))
    return out


@pytest.fixture(scope="module")
def slides(tmp_path_factory):
    """The 2-2-1 slides (the CLI's defaults, --format beamer): their source and their PDF's
    pages, compiled once for the tests below."""
    tex = handout("2-2-1", fmt="beamer")
    return tex, _pdf_pages(compile_pdf(tex, tmp_path_factory.mktemp("slides") / "s.pdf",
                                       engine="pdflatex", keep_failed=False))


@needs_tex
def test_each_click_uncovers_a_good_part_of_its_frame(slides):
    """Measured in the PDF: the words a click uncovers span at least a quarter of the frame's
    body (28 % at the least now; 11 % on main: the shared backward pass's g_h, one row)."""
    tex, pages = slides
    assert len(pages) == _pages(tex)
    spans = []
    for (k, before, _, _), (k2, after, title, foot) in zip(pages, pages[1:]):
        if k == k2:
            old = {(round(a), w) for a, _, w in before}
            new = [(a, b) for a, b, w in after if (round(a), w) not in old]
            spans.append((max(b for _, b in new) - min(a for a, _ in new)) / (foot - title))
    assert spans and min(spans) >= 0.25, sorted(spans)


@needs_tex
def test_no_reveal_pdf_is_a_page_per_frame_as_its_last_click_showed_it(slides, tmp_path):
    """--no-reveal's PDF: as many pages as frames, numbered 1 … N, each the text the slides'
    last page of that frame shows (the words, as pdftotext reads them)."""
    tex, pages = slides
    shown = {k: sorted(w for *_, w in body) for k, body, *_ in pages}  # (the last page wins)
    flat = handout("2-2-1", fmt="beamer", reveal=False)
    flat_pages = _pdf_pages(compile_pdf(flat, tmp_path / "p.pdf", engine="pdflatex",
                                        keep_failed=False))
    assert [k for k, *_ in flat_pages] == list(range(1, len(_frames(flat)) + 1))
    assert {k: sorted(w for *_, w in body) for k, body, *_ in flat_pages} == shown

def test_cli_no_reveal_and_the_files_option(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from symgrad.cli import cli
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.py").write_text("import symgrad as sg\nnet = sg.mlp([2, 2, 1])\n"
                                     "handout_options = {'reveal': False}\n")
    for argv, clicks in [(["2-2-1", "--format", "beamer", "--no-reveal"], False),
                         (["2-2-1", "--format", "beamer"], True),
                         (["net.py", "--format", "beamer"], False),
                         (["net.py", "--format", "beamer", "--reveal"], True),  # the CLI wins
                         (["net.py"], False)]:  # (an article: the file's option stays quiet)
        r = CliRunner().invoke(cli, ["handout", *argv])
        assert r.exit_code == 0, (argv, r.output)
        assert (r"\pause" in r.output) is clicks, argv
