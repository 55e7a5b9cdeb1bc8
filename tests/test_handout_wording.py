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


def _answer_and_body(net, verbosity, fmt="markdown"):
    """The exercise's last answer (the minibatch gradient), as TeX, and the handout before
    its exercises."""
    from symgrad.handouts.render import render
    from symgrad.printing.latex import latex
    doc = build(net, verbosity=verbosity)
    statement, blocks = doc.exercises[0]
    answer = latex(blocks[-1][1].steps[-1].rhs, doc.notation)
    return answer, render(doc, fmt).split("Exercises")[0]


@pytest.mark.parametrize("verbosity", ["brief", "normal", "full"])
def test_the_exercise_is_not_answered_in_the_body(verbosity):
    """At "full" the final algorithm printed the minibatch program, d𝐛⁽¹⁾ ← 𝐆ᵀ𝟏 with it: the
    exercise's answer, pages before it was asked."""
    answer, body = _answer_and_body(sg.mlp([2, 2, 1]), verbosity)
    assert r"\mathbf{G}_{\mathbf{z}^{(1)}}^{\top} \mathbf{1}" == answer
    assert answer not in body
    if verbosity == "full":  # the rest of the program is still there, and says what is missing
        assert r"\boldsymbol{\mathrm{dW}}^{(1)} &\leftarrow" in body
        assert r"The line for $\boldsymbol{\mathrm{db}}^{(1)}$ is left out" in body
