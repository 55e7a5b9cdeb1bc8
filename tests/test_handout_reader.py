"""Issue 13 (handed out unedited): the exercise names its parameter for what it is, the text
presumes no other notes, the shared g is said once and defined before a box reads it."""
from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

import symgrad as sg
from symgrad.handouts.build import _exercise_param, _role, handout

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def attention():
    return runpy.run_path(str(ROOT / "examples/handouts/attention.py"))["net"]


def test_the_exercise_is_a_layers_bias_named_as_such(attention):
    p = _exercise_param(attention)
    assert p != "E1" and _role(attention, p) == "bias"  # E is the embedding table
    assert _role(attention, "E1") == "embedding parameter"
    assert _role(attention, "gamma2") == "layer norm parameter"
    assert _exercise_param(sg.mlp([2, 2, 1])) == "b1"  # an MLP's exercise as before


def test_the_attention_exercise_solution_uses_no_undefined_onehot(attention):
    tex = handout(attention)
    solutions = tex[tex.index(r"\section*{Solutions}"):]
    assert "bias $\\mathbf{E}$" not in tex and "onehot" not in solutions


@pytest.mark.parametrize("level", ["matrix", "both"])
def test_no_text_presumes_the_notes(level):
    for net in (sg.mlp([2, 2, 1]),):
        tex = handout(net, level=level)
        assert not re.search(r"\bthe notes\b|notes'", tex, re.I), level
    feat = handout(sg.mlp([2, 3, 1], hidden="sigmoid", output="sigmoid"), level="both",
                   notation="feature")
    assert not re.search(r"\bthe notes\b|notes'", feat, re.I)


def test_the_weights_are_numbered_in_the_text():
    tex = handout(sg.mlp([2, 2, 1]), level="both")
    assert r"numbered $w_{1}, \ldots, w_{6}$ in order" in tex
    md = handout(sg.mlp([2, 2, 1]), level="both", fmt="markdown")  # (math, not TeX in the text)
    assert r"numbered $w_{1}, \ldots, w_{6}$ in order" in md


def test_the_shared_g_is_said_once(attention):
    tex = handout(attention)
    assert tex.count("shared backward pass's, computed once") == 1
    assert tex.count(r"$\mathbf{g}$ as above") >= 5


def test_g_is_defined_before_the_first_box_on_the_slides():
    tex = handout(sg.mlp([2, 2, 1]), fmt="beamer")
    box = tex.index(r"\boxed{\nabla_{\mathbf{W}^{(1)}} \ell = \mathbf{g}_{\mathbf{z}^{(1)}}")
    assert r"\mathbf{g}_{\mathbf{z}^{(1)}} \doteq \nabla_{\mathbf{z}^{(1)}} \ell" in tex[:box]



@pytest.mark.parametrize("example", ["attention.py", "cnn.py"])
def test_derivation_words_presume_no_other_notes(example):
    """The engines' words for the sequence and image conventions said 'like every vector of the
    notes' and 'as in the notes' (and torch's layouts) in derive's text and the handouts."""
    from symgrad.graph.files import run_network_file
    net = run_network_file(str(Path(__file__).resolve().parents[1] / "examples" / "handouts"
                                / example))[0]
    text = "\n".join(d.to_text() for d in net.derive_all()[:1])
    assert "the notes" not in text and "torch" not in text


def test_kronecker_block_words_define_their_entry():
    """'block i of the row is g_i xᵀ': g_i was nowhere defined (the 2-2-1 article's p.3)."""
    text = sg.mlp([2, 2, 1]).derive("W1").to_text()
    assert "block i of the row is entry i of g times xᵀ" in text and " g_i " not in text
