"""Pictures in a handout (issue 13 item 6): the network as a TikZ diagram in the first section
(units and labelled weights for a small net, layer boxes with shapes for a large one, both heads of
a multi-task DAG), user names escaped in it, and the training loss per epoch after training."""
import re
import runpy
import shutil
from pathlib import Path

import pytest

import symgrad as sg
from symgrad.handouts.build import build, handout
from symgrad.handouts.diagram import history_block, log_axis
from symgrad.handouts.pdf import compile_pdf

ROOT = Path(__file__).resolve().parents[1]


def example(name):
    ns = runpy.run_path(str(ROOT / "examples" / "handouts" / f"{name}.py"))
    return ns["net"], ns.get("handout_options", {})


def picture(net, **opts):
    """The article's TikZ picture of the network (the first section's picture block)."""
    doc = build(net, **opts)
    blocks = [b for kind, b in doc.sections[0].blocks if kind == "picture"]
    assert len(blocks) == 1
    return blocks[0]["article"]


def test_xor_diagram_names_six_weights_three_biases_and_five_units():
    net, opts = example("xor")
    tex = picture(net, **opts)
    for k in range(1, 7):
        assert "{$w_{%d}$}" % k in tex, k
    for k in range(1, 4):
        assert "{$b_{%d}$}" % k in tex, k
    units = re.findall(r"\\node\[circle[^\]]*\] \(\w+\) at [^{]*\{\$([^$]*)\$\}", tex)
    assert len(units) == 5, units
    assert "x_{1}" in units and "x_{2}" in units and r"\hat{y}" in units
    assert tex.count("$+1$") == 2  # a bias node before each layer of weights
    assert tex.count(r"\draw[->]") == 6 and "relu" in tex


def test_xor_diagram_at_the_matrix_level_names_entries():
    """The matrix level writes no w5 (test_handout): the edges are the entries W^{(l)}_{ij}."""
    tex = picture(sg.mlp([2, 2, 1], hidden="relu"), level="matrix")
    assert "{$W_{12}^{(1)}$}" in tex and "{$W_{12}^{(2)}$}" in tex and "{$b_{1}^{(2)}$}" in tex
    assert "w_{" not in tex and tex.count("circle, draw") == 5


def test_large_net_gets_layer_boxes_with_shapes():
    net, opts = example("mnist")
    tex = picture(net, **opts)
    assert r"\circle" not in tex and "circle, draw" not in tex
    assert r"256{\times}784" in tex and r"128{\times}256" in tex and r"10{\times}128" in tex
    assert r"\mathbb{R}^{784}" in tex and r"\mathbb{R}^{10}" in tex
    assert "relu" in tex and "softmax" in tex
    assert tex.count(r"\draw[->") == 4  # x → 3 layers → ŷ


def test_non_mlp_ops_are_boxes_named_by_their_op():
    """Each box says its op in the words registered with it (OPS[op].label), never the op's
    internal name: the trial's attention diagram said "scale shift" and "attn softmax"."""
    from symgrad.graph.ops import OPS
    for name, ops in [("cnn", ["conv2d", "max_pool2d", "flatten"]),
                      ("attention", ["embedding", "normalize", "scale_shift", "scores",
                                     "attn_softmax", "attend", "concat", "add"])]:
        net, opts = example(name)
        tex = picture(net, **opts)
        for op in ops:
            assert r"\textsf{%s}" % OPS[op].box in tex, (name, op)
        words = re.findall(r"\\textsf\{([^}]*)\}", tex)
        assert not any("_" in w or w in ops and w != OPS[w].box for w in words), words
    net, _ = example("attention")
    assert r"\lbrace 0, \ldots, 5 \rbrace^{4}" in picture(net)  # tok: 4 ids below 6, not ℝ^{4×1}


def test_multitask_diagram_has_both_heads():
    net, opts = example("multitask")
    tex = picture(net, **opts)
    assert r"{$\mathrm{reg}$}" in tex and r"{$\mathrm{cls}_{1}$}" in tex \
        and r"{$\mathrm{cls}_{2}$}" in tex  # the two heads, each name upright (issue 13)
    assert tex.count("circle, draw") == 2 + 3 + 1 + 2
    big = sg.Network()  # the same DAG too large for units: boxes that branch
    h = big.act(big.dense(big.input("x", 100), 64), "relu", name="h1")
    big.add_loss(big.dense(h, 1, name="reg"), "mse")
    big.add_loss(big.act(big.dense(h, 5), "softmax", name="cls"), "cross_entropy")
    tex = picture(big)
    assert r"\mathrm{reg}" in tex and r"\mathrm{cls}" in tex
    box = re.search(r"\(g(\d+)\) at [^{]*\{\$\\mathbf\{W\}\^\{\(1\)\}", tex).group(1)
    edges = _block(big)["layout"]["article"]["edges"]
    assert len([s for s, _, _ in edges if s == int(box)]) == 2  # the trunk branches


def _block(net, **opts):
    doc = build(net, **opts)
    [b] = [b for kind, b in doc.sections[0].blocks if kind == "picture"]
    return b


def _scale(tex):
    m = re.search(r"\\begin\{tikzpicture\}\[scale=([\d.]+)", tex)
    return float(m.group(1)) if m else 1.0


def test_deep_graph_is_wrapped_into_bands_not_shrunk():
    """The attention block's 17 depths in one column were drawn at 89 % of an article's size and
    38 % of a slide's: wrapped into bands (and its six projections onto two lines) the article
    draws it whole and the slide at more than half; every box is drawn once and read by an
    arrow, one of them from the foot of the first band into the next."""
    net, opts = example("attention")
    b = _block(net, **opts)
    assert _scale(b["article"]) >= 0.9 and _scale(b["beamer"]) >= 0.55, (
        _scale(b["article"]), _scale(b["beamer"]))
    assert b["bands"]["article"] >= 2 and b["bands"]["beamer"] >= 2
    for fmt in ("article", "beamer"):
        tex, lay = b[fmt], b["layout"][fmt]
        boxes = re.findall(r"\\node\[[^\]]*\] \((g\d+)\) at \((-?[\d.]+),(-?[\d.]+)\)", tex)
        assert len({g for g, _, _ in boxes}) == len(boxes) > 17
        assert len({round(float(x) / 3) for _, x, _ in boxes}) >= 2  # side by side
        read = {"g%d" % k for _, k, _ in lay["edges"]}
        assert {g for g, _, _ in boxes} - read == {"g0"}  # all but the input are read
        assert tex.count(r"\draw[->") == len(lay["edges"]) + 1  # (and one to the output)
        r = lay["boxes"]  # an arrow from one band into the next: wholly right of its source
        assert any(r[k][0] > r[s][2] for s, k, _ in lay["edges"])
    # a graph that fits in one column keeps it
    net, opts = example("mnist")
    small = _block(net, **opts)
    assert small["bands"] == {"article": 1, "beamer": 1}
    assert _scale(small["article"]) == 1.0


def test_hostile_names_are_escaped_in_the_diagram():
    net, opts = example("hostile")
    for tex in (picture(net, **opts), picture(net, level="matrix")):
        assert r"\input{" not in tex and r"\end{document}" not in tex
        assert "soft\\textbackslash{}sign\\}" in tex  # the activation's name, as text
    big = sg.Network()
    x = big.input("x}\\input{/etc/passwd}", 50)
    big.set_loss(big.act(big.dense(x, 20, W="W#\\def", name="z}{%"), "relu", name="h}\\x"),
                 "mse")
    tex = picture(big)
    assert r"\input{" not in tex and "W#" not in tex.replace(r"\#", "")
    assert r"\def" not in tex.replace(r"\textbackslash{}def", "")


def fenced(md):
    """The fenced code blocks of a Markdown document."""
    return [m.group(2) for m in re.finditer(r"^(~{3,})text\n(.*?)^\1$", md, re.M | re.S)]


def test_markdown_draws_the_units_and_weights_as_text():
    """Issue 13: the Markdown said the diagram "is in the PDF version"; it now draws the
    network in a code block from the same graph: each unit with the weights into it."""
    md = handout(sg.mlp([2, 2, 1], hidden="relu"), fmt="markdown", level="element")
    assert "PDF version" not in md and "tikz" not in md
    [text] = fenced(md)
    lines = text.splitlines()
    assert lines[0] == "Layer 1 (relu): x₁, x₂ → h₁⁽¹⁾, h₂⁽¹⁾"
    assert "Layer 2 (no activation): h₁⁽¹⁾, h₂⁽¹⁾ → ŷ" in lines
    arrows = [ln.split("──▶ ")[1] for ln in lines if "──▶" in ln]
    assert arrows == ["h₁⁽¹⁾", "h₂⁽¹⁾", "ŷ"]  # each unit past the inputs, once
    for k, (src_, w) in enumerate([("x₁", "w₁"), ("x₂", "w₂"), ("+1", "b₁"), ("x₁", "w₃"),
                                   ("x₂", "w₄"), ("+1", "b₂")]):
        assert re.match(r"  %s ── %s ──" % (re.escape(src_), w), lines[1 + k]), lines[1 + k]
    # each weight of the unit-by-unit equations, where the picture puts it
    for w in ("w₅", "w₆", "b₃"):
        assert sum(w in ln for ln in lines) == 1
    # the matrix level names the entries as its picture does
    [text] = fenced(handout(sg.mlp([2, 2, 1], hidden="relu"), fmt="markdown"))
    assert "x₂ ── W₁₂⁽¹⁾ ──┼──▶ h₁⁽¹⁾" in text and "+1 ── b₂⁽¹⁾  ──┘" in text


def test_markdown_draws_large_nets_as_boxes_with_shapes():
    net, opts = example("mnist")
    [text] = fenced(handout(net, fmt="markdown", **opts))
    for box in ("[1] x ∈ ℝ⁷⁸⁴", "[2] W⁽¹⁾ 256×784, relu", "[3] W⁽²⁾ 128×256, relu",
                "[4] W⁽³⁾ 10×128, softmax"):
        assert "│ %s " % box in text, box
    assert text.count("▼") == 4 and text.rstrip().endswith("▼ ŷ ∈ ℝ¹⁰")
    # a DAG: a box names the boxes it reads other than the one above it
    net, opts = example("attention")
    [text] = fenced(handout(net, fmt="markdown", **opts))
    # (a head's W_q, W_k, W_v one box: [5] and [6], the heads' projections, each read by its
    # head's scores and by its weighted sum beside the softmax's weights)
    assert "[5] W_q⁽¹⁾, Wₖ⁽¹⁾, Wᵥ⁽¹⁾ 2×4" in text and "[8] scores  ← [6]" in text
    assert "[11] weighted sum  ← [9], [5]" in text and "[15] sum  ← [2]" in text
    assert "[1] tok ∈ {0, … , 5}⁴ " in text and text.rstrip().endswith("ŷ ∈ ℝ⁴ˣ⁶")
    # a 64-layer net: its like layers one box, as its slide draws them
    [text] = fenced(handout(sg.mlp([20] + [16] * 63 + [3], hidden="relu"), fmt="markdown"))
    assert "[3] W⁽²⁾ … W⁽⁶³⁾ 16×16, relu, 62 layers" in text


def test_markdown_diagram_keeps_hostile_names_as_data():
    net, opts = example("hostile")
    md = handout(net, fmt="markdown", **opts)
    [text] = fenced(md)
    assert "x_&%#" in text and r"h_\end{document}" in text  # as typed, in a code block
    big = sg.Network()  # a name with a fence in it cannot end the block
    x = big.input("x~~~y", 50)
    big.set_loss(big.act(big.dense(x, 20), "relu"), "mse")
    md = handout(big, fmt="markdown")
    [text] = fenced(md)
    assert "x~~~y" in text and "\n~~~~text\n" in md


def test_history_plot_has_a_point_per_epoch_and_a_log_axis_when_it_falls_100x():
    falling = [0.5 * 0.9 ** e for e in range(60)]  # 0.5 to 0.0009: over 100x
    b = history_block(falling)
    assert b["points"] == 60 and b["log"] and log_axis(falling)
    assert b["article"].count(" -- (") == 59 + 5  # the curve's segments (and the grid's rules)
    assert "10^{" in b["article"] and "log scale" in b["article"]
    flat = [0.30, 0.28, 0.27, 0.265]
    b = history_block(flat)
    assert b["points"] == 4 and not b["log"] and "log scale" not in b["article"]
    assert b["article"].count(r"\fill") == 4  # a dot per epoch when there are few


def test_handout_after_training_has_a_training_section():
    net, opts = example("xor")
    hist = [0.25 * 0.5 ** e for e in range(30)]
    doc = build(net, history=hist, **opts)
    assert doc.sections[-1].title == "Training"
    tex = handout(net, history=hist, **opts)
    assert r"\section{Training}" in tex and "30 epochs" in tex
    assert "Training" in handout(net, fmt="markdown", history=hist)
    with pytest.raises(ValueError, match="history"):
        build(net, history="loss.png")
    with pytest.raises(ValueError, match="history"):
        build(net, history=[])


needs_tex = pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")


@needs_tex
@pytest.mark.parametrize("fmt", ["article", "beamer"])
def test_trained_handout_compiles_without_overfull_boxes(tmp_path, fmt):
    net = sg.mlp([2, 2, 1], hidden="relu")
    hist = [0.25 * 0.7 ** e for e in range(200)]
    pdf = compile_pdf(handout(net, fmt=fmt, history=hist, exercises=False), tmp_path / "h.pdf",
                      engine="pdflatex", keep_failed=False, keep_log=True)
    log = pdf.with_suffix(".log").read_text(encoding="utf-8", errors="replace")
    over = [float(w) for w in re.findall(r"Overfull \\[hv]box \(([\d.]+)pt", log)]
    assert [w for w in over if w > 2.0] == []


def test_cli_history_option(tmp_path):
    import json

    import numpy as np
    from click.testing import CliRunner

    from symgrad.cli import cli
    (tmp_path / "h.json").write_text(json.dumps({"history": [0.3, 0.2, 0.01, 0.001]}))
    np.savez(tmp_path / "h.npz", history=np.array([0.3, 0.2, 0.1]))
    for f, n in (("h.json", 4), ("h.npz", 3)):
        r = CliRunner().invoke(cli, ["handout", "2-2-1", "--history", str(tmp_path / f)])
        assert r.exit_code == 0, r.output
        assert r"\section{Training}" in r.output and f"for {n} epochs" in r.output
    (tmp_path / "bad.json").write_text("{}")
    r = CliRunner().invoke(cli, ["handout", "2-2-1", "--history", str(tmp_path / "bad.json")])
    assert r.exit_code == 2 and "--history" in r.output and "Traceback" not in r.output


def test_train_saves_the_history_a_handout_draws(tmp_path):
    import json

    from click.testing import CliRunner

    from symgrad.cli import cli
    h = tmp_path / "h.json"
    r = CliRunner().invoke(cli, ["train", "2-2-1", "--data", "xor", "--epochs", "30",
                                 "--starts", "1", "--quiet", "--history", str(h)])
    assert r.exit_code == 0, r.output
    assert len(json.loads(h.read_text())["history"]) == 30
    r = CliRunner().invoke(cli, ["handout", "2-2-1", "--history", str(h)])
    assert r.exit_code == 0 and "for 30 epochs" in r.output
    r = CliRunner().invoke(cli, ["train", "2-2-1", "--data", "xor", "--history",
                                 str(tmp_path / "no" / "h.json")])
    assert r.exit_code == 2


def test_text_of_a_label_round_trips_user_text():
    """The Markdown diagram's text of a name is the name: every ASCII character through
    text_escape and back (a name is data, shown as typed in the code block)."""
    from symgrad.handouts.diagram import _tex_text
    from symgrad.printing.names import text_escape
    for s in [r"x}\input{/etc/passwd}", "b$^~{", "W#2 & 50%", "a_b[c](d) <e>|f", 'q"`r`',
              "".join(chr(c) for c in range(33, 127))]:
        assert _tex_text(r"\mathrm{%s}" % text_escape(s)) == s, s
    assert _tex_text(r"\mathbf{W}^{(1)}_{12}") == "W⁽¹⁾₁₂"
    assert _tex_text(r"\hat{\mathbf{y}} \in \mathbb{R}^{4\times 6}") == "ŷ ∈ ℝ⁴ˣ⁶"
    assert _tex_text(r"\boldsymbol{\gamma}^{(10)}") == "γ⁽¹⁰⁾"
