"""The network diagram's geometry (issue 13, instructor's trial): no arrow drawn across a box in
a wrapped (banded) diagram, no two weight labels of a small net over each other or over a unit,
no diagram scaled below 95 %. Every check reads the rectangles, circles and segments the diagram
was drawn from (the block's ``layout``), not the picture."""
import runpy
from itertools import combinations
from pathlib import Path

import pytest

import symgrad as sg
from symgrad.handouts.build import build

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p.stem for p in (ROOT / "examples" / "handouts").glob("*.py"))
EPS = 0.01  # cm: a segment touching a box's edge is not through it


def example(name):
    ns = runpy.run_path(str(ROOT / "examples" / "handouts" / f"{name}.py"))
    return ns["net"], ns.get("handout_options", {})


def block(net, **opts):
    doc = build(net, **opts)
    [b] = [b for kind, b in doc.sections[0].blocks if kind == "picture"]
    return b


def deep(layers, width=16, n_in=20):
    return sg.mlp([n_in] + [width] * layers + [3], hidden="relu")


def crosses(p, q, rect, eps=EPS):
    """Whether the segment p–q passes through the inside of rect (x0, y0, x1, y1): Liang–Barsky
    clipping against the rectangle shrunk by eps."""
    x0, y0, x1, y1 = rect[0] + eps, rect[1] + eps, rect[2] - eps, rect[3] - eps
    (px, py), (qx, qy) = p, q
    dx, dy = qx - px, qy - py
    lo, hi = 0.0, 1.0
    for d, a, b in ((-dx, px - x0, None), (dx, x1 - px, None), (-dy, py - y0, None),
                    (dy, y1 - py, None)):
        if d == 0:
            if a < 0:
                return False
            continue
        t = a / d
        if d < 0:
            lo = max(lo, t)
        else:
            hi = min(hi, t)
    return lo < hi


def test_crossing_check_sees_a_crossing_and_a_miss():
    box = (0, 0, 2, 1)
    assert crosses((-1, 0.5), (3, 0.5), box) and crosses((1, -1), (1, 2), box)
    assert crosses((0.5, 0.5), (5, 5), box)  # from inside
    assert not crosses((-1, 1.5), (3, 1.5), box) and not crosses((-1, -1), (-0.5, 3), box)
    assert not crosses((0, 1), (2, 1), box)  # along its edge
    assert not crosses((-1, 0), (0, 1.5), box)


def edge_box_crossings(layout):
    """(edge, box) pairs where a segment of an edge's path passes through a box that is neither
    its source nor its target (nor the source's output name)."""
    bad = []
    for s, k, pts in layout["edges"]:
        own = {s, k, "o%d" % s}
        for p, q in zip(pts, pts[1:]):
            bad += [((s, k), name, p, q) for name, r in layout["boxes"].items()
                    if name not in own and crosses(p, q, r)]
    return bad


BOXED = [("example", n) for n in EXAMPLES] + [
    ("spec", "784-256-128-10"), ("deep", 63), ("deep", 24), ("deep", 9)]


def boxed_block(kind, arg):
    if kind == "example":
        return block(*example(arg)[:1], **example(arg)[1])
    if kind == "spec":
        return block(sg.mlp([int(d) for d in arg.split("-")], hidden="relu"))
    return block(deep(arg))


@pytest.mark.parametrize("kind,arg", BOXED, ids=["%s-%s" % b for b in BOXED])
def test_no_arrow_crosses_a_box(kind, arg):
    b = boxed_block(kind, arg)
    if "boxes" not in b.get("layout", {}).get("article", {}):
        pytest.skip("drawn as units (test_no_label_overlaps)")
    for fmt in ("article", "beamer"):
        lay = b["layout"][fmt]
        assert lay["boxes"] and lay["edges"]
        assert not (bad := edge_box_crossings(lay)), (fmt, bad[:3])
        # and no two boxes over each other
        rs = list(lay["boxes"].items())
        assert not [(a, c) for (a, r), (c, q) in combinations(rs, 2)
                    if min(r[2], q[2]) - max(r[0], q[0]) > EPS
                    and min(r[3], q[3]) - max(r[1], q[1]) > EPS]


def test_crossing_check_fails_on_a_straight_arrow_through_a_band():
    """The check is not vacuous: the attention block's paths replaced by straight arrows from
    box to box (as main drew them within a band) cross boxes."""
    lay = block(*example("attention")[:1], **example("attention")[1])["layout"]["beamer"]
    centre = {k: ((r[0] + r[2]) / 2, (r[1] + r[3]) / 2) for k, r in lay["boxes"].items()}
    straight = {"boxes": lay["boxes"], "edges": [(s, k, [centre[s], centre[k]])
                                                 for s, k, _ in lay["edges"]]}
    assert edge_box_crossings(straight)


@pytest.mark.parametrize("kind,arg", BOXED, ids=["%s-%s" % b for b in BOXED])
def test_no_diagram_below_95_percent(kind, arg):
    """The attention block's slide diagram was scaled to 61 % (issue 13): more bands, boxes as
    wide as their labels, a frame of its own, and a run of like layers as one box."""
    b = boxed_block(kind, arg)
    for fmt in ("article", "beamer"):
        assert b["layout"][fmt]["scale"] >= 0.95, (fmt, b["layout"][fmt]["scale"])
    assert b["lines"] <= 17  # (a frame's height: render.FRAME_HEIGHT)


def test_a_64_layer_net_draws_its_like_layers_as_one_box():
    lay = block(deep(63))["layout"]["beamer"]
    assert list(lay["runs"].values()) == [62]  # W2 … W63, 16×16, relu
    assert len(lay["boxes"]) == 4 + 1  # x, W1, the run, W64, ŷ's name
