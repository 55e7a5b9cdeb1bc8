"""The network diagram's geometry (issue 13, instructor's trial): no arrow drawn across a box in
a wrapped (banded) diagram, no two weight labels of a small net over each other or over a unit,
no diagram scaled below 95 %. Every check reads the rectangles, circles and segments the diagram
was drawn from (the block's ``layout``), not the picture."""
import math
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
        own = {s, k, "o%s" % s}
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


# -- small nets: units and labelled weights -----------------------------------------------------
SMALL = [(s, lv) for s in ("2-1", "2-2-1", "3-2-2", "2-3-1", "4-3-2", "3-4-2")
         for lv in ("matrix", "element")]


def units_layout(spec, level, fmt="beamer"):
    b = block(sg.mlp([int(d) for d in spec.split("-")], hidden="relu"), level=level)
    return b["layout"][fmt], b


def label_extent(tex, x, y, pt=8):
    """An estimate of a label's box at (x, y), independent of the diagram's: 0.55 em a letter
    at ``pt`` points, a script's letters at 70 % (a sub- and superscript stacked: the longer),
    1.4 em of height with scripts on both sides."""
    import re
    body = re.sub(r"\\(mathbf|boldsymbol|mathrm|hat)\b", "", tex)
    scripts = re.findall(r"[_^]\{([^}]*)\}|[_^](\w)", body)
    base = re.sub(r"[_^](\{[^}]*\}|\w)", "", body)
    n_base = len(re.sub(r"[{}\\\s]", "", base))
    n_script = max((len(a or b) for a, b in scripts), default=0)
    em = pt * 0.03515
    w = (0.55 * n_base + 0.7 * 0.55 * n_script) * em
    h = (1.4 if len(scripts) > 1 else 1.1) * em
    return (x - w / 2, y - h / 2, x + w / 2, y + h / 2)


def overlaps(a, b):
    return min(a[2], b[2]) - max(a[0], b[0]) > EPS and min(a[3], b[3]) - max(a[1], b[1]) > EPS


def meets_circle(r, c):
    x, y, rad = c
    nx, ny = min(max(x, r[0]), r[2]), min(max(y, r[1]), r[3])
    return (x - nx) ** 2 + (y - ny) ** 2 < (rad - EPS) ** 2


def crossing_points(edges):
    """Where two edges cross (not at a unit)."""
    out = []
    for (_, _, (a, b)), (_, _, (c, d)) in combinations(edges, 2):
        den = (b[0] - a[0]) * (d[1] - c[1]) - (b[1] - a[1]) * (d[0] - c[0])
        if den:
            t = ((c[0] - a[0]) * (d[1] - c[1]) - (c[1] - a[1]) * (d[0] - c[0])) / den
            u = ((c[0] - a[0]) * (b[1] - a[1]) - (c[1] - a[1]) * (b[0] - a[0])) / den
            if 0.001 < t < 0.999 and 0.001 < u < 0.999:
                out.append((a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])))
    return out


def contains(poly, pt):
    """Whether the convex polygon (corners in order) holds pt."""
    sides = [(x1 - x0) * (pt[1] - y0) - (y1 - y0) * (pt[0] - x0)
             for (x0, y0), (x1, y1) in zip(poly, poly[1:] + poly[:1])]
    return all(s > 0 for s in sides) or all(s < 0 for s in sides)


def label_clashes(lay):
    """Pairs of labels over each other, labels over a unit, a "+1" node or an activation's
    name, and labels over a point where two edges cross (which edge would it name?)."""
    labels = lay["labels"]
    bad = [(a[4], b[4]) for a, b in combinations(labels, 2) if overlaps(a, b)]
    bad += [(a[4], "crossing") for a in labels for pt in crossing_points(lay["edges"])
            if contains([(a[0], a[1]), (a[2], a[1]), (a[2], a[3]), (a[0], a[3])], pt)]
    bad += [(a[4], n) for a in labels for n, c in lay["circles"].items() if meets_circle(a, c)]
    bad += [(a[4], n) for a in labels for n, r in lay["boxes"].items() if overlaps(a, r)]
    return bad


def test_label_checks_see_an_overlap():
    assert overlaps((0, 0, 1, 1), (0.5, 0.5, 2, 2)) and not overlaps((0, 0, 1, 1), (1, 0, 2, 1))
    assert meets_circle((0, 0, 1, 1), (1.2, 0.5, 0.3)) and not meets_circle((0, 0, 1, 1),
                                                                            (1.5, 0.5, 0.4))
    assert label_extent("W_{12}^{(1)}", 0, 0)[2] < label_extent("W_{12}^{(1)} W", 0, 0)[2]


@pytest.mark.parametrize("spec,level", SMALL, ids=["%s-%s" % s for s in SMALL])
def test_no_label_overlaps(spec, level):
    lay, b = units_layout(spec, level)
    assert len(lay["labels"]) == len(lay["edges"]) > 0
    for r in lay["labels"]:  # each drawn box covers the label's text
        est = label_extent(r[4], (r[0] + r[2]) / 2, (r[1] + r[3]) / 2)
        assert r[0] <= est[0] and r[2] >= est[2] and r[1] <= est[1] and r[3] >= est[3], r
    assert not (bad := label_clashes(lay)), bad[:4]
    # each edge from its source's circle to its target's, through no other unit
    for s, k, (p, q) in lay["edges"]:
        for n, (x, y, rad) in lay["circles"].items():
            if n not in (s, k):
                assert not crosses(p, q, (x - rad * 0.7, y - rad * 0.7, x + rad * 0.7,
                                          y + rad * 0.7)), (s, k, n)
    for fmt in ("article", "beamer"):
        assert b["layout"][fmt]["scale"] >= 0.95


@pytest.mark.parametrize("name", ["xor", "feature", "hostile", "logistic", "multitask"])
def test_no_label_overlaps_in_the_small_examples(name):
    b = block(*example(name)[:1], **example(name)[1])
    lay = b["layout"]["beamer"]
    assert lay["labels"] and not label_clashes(lay)
    for fmt in ("article", "beamer"):
        assert b["layout"][fmt]["scale"] >= 0.95, (fmt, b["layout"][fmt]["scale"])
    assert b["lines"] <= 17


def corners(cx, cy, w, h, angle):
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + dx * c - dy * s, cy + dx * s + dy * c)
            for dx, dy in ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2))]


def polygons_overlap(a, b):
    """Separating-axis test of two convex polygons (lists of corners)."""
    for poly in (a, b):
        for (x0, y0), (x1, y1) in zip(poly, poly[1:] + poly[:1]):
            nx, ny = y0 - y1, x1 - x0
            pa = [nx * x + ny * y for x, y in a]
            pb = [nx * x + ny * y for x, y in b]
            if max(pa) <= min(pb) + EPS or max(pb) <= min(pa) + EPS:
                return False
    return True


def test_polygon_overlap_check():
    assert polygons_overlap(corners(0, 0, 2, 1, 0.3), corners(0.5, 0.3, 1, 1, -0.2))
    assert not polygons_overlap(corners(0, 0, 2, 1, 0), corners(3, 0, 1, 1, 0.5))


@pytest.mark.parametrize("level", ["matrix", "element"])
def test_main_label_places_clash_on_2_2_1(level):
    """The check is not vacuous: 2-2-1's labels where main put them overlap (main drew b₂ over
    w₃): main's geometry (columns 3.4 cm apart, units 1.25 cm, the "+1" node a row above), each
    label at 0.2 + 0.45 i/(rows − 1) of its edge between the nodes' borders by its target unit i
    (a bias's halfway), turned along the edge and set on it ("sloped, above=-1pt")."""
    lay, _ = units_layout("2-2-1", level)
    dx, dy = 3.4, 1.25
    node = {"u0_0": (0, dy / 2), "u0_1": (0, -dy / 2), "u1_0": (dx, dy / 2),
            "u1_1": (dx, -dy / 2), "u2_0": (2 * dx, 0), "one0": (0, 1.5 * dy),
            "one1": (dx, 1.5 * dy)}
    old = []
    for (s, k, _), r in zip(lay["edges"], lay["labels"]):
        (px, py), (qx, qy) = node[s], node[k]
        L = math.hypot(qx - px, qy - py)
        ux, uy = (qx - px) / L, (qy - py) / L
        rs = 0.3 if s.startswith("one") else 0.425  # the nodes' borders
        px, py, qx, qy = px + rs * ux, py + rs * uy, qx - 0.425 * ux, qy - 0.425 * uy
        i, rows = int(k.split("_")[1]), 2 if k.startswith("u1_") else 1
        t = 0.5 if s.startswith("one") else 0.2 + 0.45 * i / max(rows - 1, 1)
        e = label_extent(r[4], 0, 0)
        w, h = e[2] - e[0], e[3] - e[1]
        cx = px + t * (qx - px) - uy * (h / 2 - 0.035)  # above the edge, by its normal
        cy = py + t * (qy - py) + ux * (h / 2 - 0.035)
        old.append((corners(cx, cy, w, h, math.atan2(uy, ux)), r[4]))
    main_edges = [(s, k, (node[s], node[k])) for s, k, _ in lay["edges"]]
    clashes = [(a[1], b[1]) for a, b in combinations(old, 2) if polygons_overlap(a[0], b[0])]
    clashes += [(a[1], "crossing") for a in old for pt in crossing_points(main_edges)
                if contains(a[0], pt)]
    assert [c for c in clashes if c[0].startswith("b_{2}")], clashes  # b₂ on a crossing


def test_attention_heads_projections_one_box_each_side_by_side():
    """Instructor's trial: a head's W_q, W_k, W_v (three projections of one input) were three
    boxes in a column, read as a pipeline W_q → W_k → W_v. Now one box a head, both heads' boxes
    on one line of the slide, fed from the same layer norm (an arrow from it into each)."""
    import re
    b = block(*example("attention")[:1], **example("attention")[1])
    for fmt in ("article", "beamer"):
        nodes = dict(re.findall(r"\(g(\d+)\) at \([^)]*\) \{(.*)\};", b[fmt]))
        proj = {k: t for k, t in nodes.items() if r"\mathbf{W}_{q}" in t or
                r"\mathbf{W}_{k}" in t or r"\mathbf{W}_{v}" in t}
        assert len(proj) == 2, (fmt, proj)  # one a head
        for head in ("1", "2"):
            [box] = [t for t in proj.values() if r"\mathbf{W}_{q}^{(%s)}" % head in t]
            assert all(r"\mathbf{W}_{%s}^{(%s)}" % (r, head) in box for r in "qkv"), box
        lay = b["layout"][fmt]
        a, c = (lay["boxes"][int(k)] for k in proj)
        if fmt == "beamer":  # side by side: one line, apart
            assert abs(a[1] - c[1]) < 0.01 and abs(a[3] - c[3]) < 0.01, (a, c)
        sources = {s for s, k, _ in lay["edges"] if str(k) in proj}
        assert len(sources) == 1, sources  # both fed from one node


# -- the drawn picture (issue 13, handed out unedited): the checks above read the layout the
# picture was drawn from; these read the TikZ itself, the boxes at their drawn size (text width
# plus 2pt inner sep each side) and every arrow's segments as drawn
INNER = 2 * 2 * 0.03515  # cm: inner sep=2pt, both sides


def drawn(tex):
    """The drawn boxes {name: rect} and arrows [(name, [points])] of a band diagram's TikZ."""
    import re
    boxes = {}
    for m in re.finditer(r"\\node\[([^\]]*)text width=([\d.]+)cm, minimum height=([\d.]+)cm"
                         r"[^\]]*\] \((g\d+)\) at \(([-\d.]+),([-\d.]+)\)", tex):
        if "draw=none" in m.group(1):
            continue
        w, h, x, y = (float(m.group(i)) + (INNER if i == 2 else 0) for i in (2, 3, 5, 6))
        boxes[m.group(4)] = (x - w / 2, y - h / 2, x + w / 2, y + h / 2)
    arrows = [[tuple(map(float, p)) for p in re.findall(r"\(([-\d.]+),([-\d.]+)\)", m.group(1))]
              for m in re.finditer(r"\\draw\[->, rounded corners=3pt\] (.*);", tex)]
    return boxes, arrows


def drawn_crossings(tex):
    """Arrow segments through a box other than at their ends, and points where two arrows cross
    (not where they share an end or run together along one track)."""
    boxes, arrows = drawn(tex)
    bad = []
    for n, pts in enumerate(arrows):
        for p, q in zip(pts, pts[1:]):
            bad += [(n, name) for name, r in boxes.items() if crosses(p, q, r)
                    and not (crosses(pts[0], pts[0], (r[0], r[1] - 0.05, r[2], r[3] + 0.05))
                             or crosses(pts[-1], pts[-1], (r[0], r[1] - 0.05, r[2], r[3] + 0.05)))]
    segs = [(n, p, q) for n, pts in enumerate(arrows) for p, q in zip(pts, pts[1:])]
    for (i, a, b), (j, c, d) in combinations(segs, 2):
        if len(arrows[i]) > 2 and len(arrows[j]) > 2:
            continue  # two routed arrows meet at a right angle, one up a gutter, one across it
        if i != j and crossing_points([(0, 0, (a, b)), (0, 0, (c, d))]):
            bad.append((i, j, "cross"))
    return bad


def test_drawn_check_sees_a_crossing():
    tex = (r"\node[draw, inner sep=2pt, font=\footnotesize, text width=1.00cm, minimum "
           r"height=1.00cm, align=center] (g1) at (0.00,0.00) {a};" "\n"
           r"\draw[->, rounded corners=3pt] (-2.000,0.000) -- (2.000,0.000);" "\n"
           r"\draw[->, rounded corners=3pt] (1.000,-2.000) -- (1.000,2.000);")
    # (both straight: a crossing; a routed arrow across another routed one at a right angle is
    # allowed, the residual arrows of two bands cannot all avoid each other)
    assert len(drawn(tex)[0]) == 1 and len(drawn(tex)[1]) == 2
    assert (0, "g1") in drawn_crossings(tex) and (0, 1, "cross") in drawn_crossings(tex)


@pytest.mark.parametrize("fmt", ["article", "beamer"])
def test_attention_picture_as_drawn_has_no_crossing(fmt):
    """The attention diagram as printed: no arrow through a box, and (article) no straight arrow
    crossed. The value projection W_v's arrow to its head's weighted sum was routed along the
    gap below, down the gutter and back along the gap above, across the other head's arrows
    (article p.2: 11 crossings; slide 6: 20, its heads' arrows up one gutter to the next band).
    Now a vertical beside its head's scores and softmax, and the gutter's tracks untangled; the
    slide's V arrows still come in along the gap above their weighted sums, across the two
    softmax arrows (2 crossings, not fixed here)."""
    b = block(*example("attention")[:1], **example("attention")[1])
    bad = drawn_crossings(b[fmt])
    if fmt == "beamer":
        bad = [c for c in bad if c[-1] != "cross"]
    assert not bad, bad


def test_untangled_tracks_cross_less_on_the_attention_slide():
    """The gutter's tracks as coloured (by where each arrow starts) crossed the two heads' arrows
    over each other 20 times on slide 6; the drawn layout's tracks are swapped until fewer do."""
    from symgrad.handouts import diagram

    def n(paths):  # every crossing of two arrows' segments
        segs = [(r, p, q) for r, (_, _, pts) in enumerate(paths) for p, q in zip(pts, pts[1:])]
        return sum(bool(crossing_points([(0, 0, (a, b)), (0, 0, (c, d))]))
                   for (i, a, b), (j, c, d) in combinations(segs, 2) if i != j)
    lay = block(*example("attention")[:1], **example("attention")[1])["layout"]["beamer"]
    raw = diagram._band_layout(*lay["args"])["paths"]  # the same layout, tracks as coloured
    assert n(lay["edges"]) < n(raw), (n(lay["edges"]), n(raw))
