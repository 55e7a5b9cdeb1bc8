"""Issue 13: XOR's loss curve went to 3.1e-33 and its log axis spent 20 of 33 decades on a fit
exact to a millionth and a flat line of one float. Both pictures (symgrad train --plot, the
handout's Training section) stop at 1e-12 of the first loss and say where the curve left."""
from __future__ import annotations

import math
import re

import pytest

from symgrad.core import losscurve
from symgrad.handouts.diagram import history_block, history_section

# falls by 0.8 an epoch from 0.5, then stays one float (as XOR's 3.08e-33 from epoch 749)
PLATEAU = 3.08e-33
RUN = [max(0.5 * 0.8 ** (e - 1), PLATEAU) for e in range(1, 401)]
# worked out apart from the code: 0.5·0.8^(e−1) < 0.5e-12 first when e − 1 > 12/log10(1.25)
BELOW = math.floor(12 / math.log10(1.25)) + 2
FLAT = next(e for e in range(1, 401) if 0.5 * 0.8 ** (e - 1) <= PLATEAU)


def test_floor_of_a_run():
    f = losscurve.floor(RUN)
    assert (f.below_at, f.flat_from, f.last) == (BELOW, FLAT, PLATEAU)
    assert RUN[BELOW - 1] < 0.5e-12 <= RUN[BELOW - 2]
    assert f.value == 1e-13 and f.threshold == pytest.approx(0.5e-12)
    assert losscurve.floor([0.5 * 0.9 ** e for e in range(60)]) is None  # never that low
    assert losscurve.floor([0.3, 0.0, 0.1]) is None  # (no log axis)
    steady = [0.5 * 0.5 ** e for e in range(60)]  # below it, still falling: no flat tail
    assert losscurve.floor(steady).flat_from is None


def test_handout_curve_stops_at_the_floor_and_says_where():
    b = history_block(RUN)
    ticks = [int(t) for t in re.findall(r"\{\$10\^\{(-?\d+)\}\$\}", b["article"])]
    assert min(ticks) == -13 and "10^{-33}" not in b["article"]  # was an axis to 10^{-33}
    assert r"\clip (0,0) rectangle" in b["article"] and "dashed" in b["article"]
    assert f"At epoch {BELOW}" in b["markdown"] and f"from epoch {FLAT} on" in b["markdown"]
    [sec] = history_section(RUN)
    text = sec.blocks[0][1]
    assert f"crossed that line at epoch {BELOW}" in text and f"from epoch {FLAT} on" in text
    assert r"$5 \times 10^{-13}$ (dashed)" in text and "3.08e-33" not in text
    # a run that never gets there keeps its axis to its smallest loss, without a note
    b = history_block([0.5 * 0.9 ** e for e in range(60)])
    assert r"\clip" not in b["article"] and "epoch" not in b["markdown"].split("epochs")[-1]


def test_plot_stops_at_the_floor_and_says_where():
    pytest.importorskip("matplotlib")
    from symgrad.run.plot import history_figure
    ax = history_figure(RUN, "xor").axes[0]
    assert ax.get_yscale() == "log" and ax.get_ylim()[0] == pytest.approx(1e-13)
    notes = " ".join(t.get_text() for t in ax.texts).replace("\n", " ")
    assert f"At epoch {BELOW}" in notes and f"from epoch {FLAT} on" in notes and "3.1e-33" in notes
    ax = history_figure([0.5 * 0.9 ** e for e in range(60)]).axes[0]
    assert not ax.texts and ax.get_ylim()[0] < 0.5 * 0.9 ** 59


def test_the_notes_are_plain_sentences():
    """An instructor's trial: "(1e-12 of the first epoch's)" read as a fragment."""
    pytest.importorskip("matplotlib")
    from symgrad.run.plot import history_figure
    f = losscurve.floor(RUN)
    assert losscurve.note(f) == (f"at epoch {BELOW} the loss fell below 5e-13, which is 1e-12 "
                                 f"times the first epoch's loss, and it ended at 3.1e-33, the "
                                 f"same floating-point number from epoch {FLAT} on")
    png = " ".join(t.get_text() for t in history_figure(RUN).axes[0].texts).replace("\n", " ")
    [sec] = history_section(RUN)
    for text in (png, history_block(RUN)["markdown"], sec.blocks[0][1]):
        assert "of the first epoch's" not in text and "times the first epoch's loss" in text
    assert png.startswith(f"At epoch {BELOW} ") and png.endswith(f"from epoch {FLAT} on.")
    assert f"in 400 epochs. At epoch {BELOW} the loss" in history_block(RUN)["markdown"]
    assert r"which is $10^{-12}$ times the first epoch's loss. The loss crossed" in \
        sec.blocks[0][1]
