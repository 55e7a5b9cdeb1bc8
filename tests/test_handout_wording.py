"""Issue 13, an instructor's last trial: handout sentences a reader takes as they stand (no
"of the notes" they may not have, a six-digit count grouped by threes) and an exercise the
handout does not answer at any verbosity."""
from __future__ import annotations

import re

import pytest

import symgrad as sg
from symgrad.handouts.build import build, handout


def _text(doc, title):
    [sec] = [s for s in doc.sections if s.title == title]
    return " ".join(b[1] for b in sec.blocks if b[0] == "text")


def test_the_algorithm_says_what_it_is_without_the_notes():
    doc = build(sg.mlp([2, 2, 1]))
    text = _text(doc, "The final algorithm")
    assert "of the notes" not in text
    assert text.startswith("Back-propagation (Algorithm 6.4 in Goodfellow, Bengio and "
                           "Courville, Deep Learning, 2016)")


def test_a_large_parameter_count_is_grouped_by_threes():
    net = sg.mlp([784, 256, 128, 10], output="softmax", loss="cross_entropy")
    total = 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10  # 235146, as the notes count
    tex = handout(net)
    assert r"$235\,146$ numbers in all" in tex and str(total) not in tex
    md = handout(net, fmt="markdown")
    assert r"$235\,146$ numbers in all" in md
    assert ": 9 numbers in all" in handout(sg.mlp([2, 2, 1]))  # a small count as it is
