"""Pictures in a handout: a TikZ diagram of the network, and the training loss per epoch.

Where it sits: derive → print → handout (**diagram**). :func:`network_block` draws the network for
the first section: a small net (every layer ≤ 12 units, ≤ 40 weights, only dense layers and
activations) as units in columns with each edge labelled by its weight and "+1" bias nodes, as
the XOR slide does; any other as boxes in the order of the graph's edges (a DAG: a multi-task net's
heads branch), each named by its op with its weight's shape ([𝐖⁽¹⁾ 256×784, relu]); a deep graph's
boxes wrapped into bands side by side, so that it is drawn near full size rather than shrunk.
:func:`history_section` draws a training run's loss per epoch in plain TikZ (no pgfplots), on a
log axis when the loss spans a decade or more.

Every name comes from the notation printer (``P.tex``) or through ``text_escape``: user names are
data, never TeX. A block is ("picture", {"article": tex, "beamer": tex, "lines": height in lines of
a frame, "markdown": text, "layout": {format: geometry}}). KaTeX cannot draw TikZ, so the Markdown
draws the same graph as Unicode text in a code block. The layout is what the picture was drawn
from, in cm before scaling (boxes and labels as rectangles, units as circles, each edge's path as
points, the scale): the tests check it for arrows through boxes and labels over each other.
"""
from __future__ import annotations

import itertools
import json
import math
import re

import numpy as np

from symgrad.core import losscurve
from symgrad.handouts.model import Section, value_space
from symgrad.derive import element
from symgrad.graph.ops import OPS
from symgrad.printing.names import _group, notation, text_escape

UNIT_OPS = {"input", "dense", "act", "softmax"}
MAX_UNITS, MAX_WEIGHTS = 12, 40
# the space a picture may take (cm): an article's text block, a 16:9 frame below its title
ARTICLE_BOX, BEAMER_BOX = (15.5, 9.0), (13.0, 5.6)
LINE_CM = 0.42  # a line of \small in a frame


# -- the network --------------------------------------------------------------------------------
def _consumers(net) -> dict:
    out = {n: [] for n in net.nodes}
    for node in net.nodes.values():
        for i in node.inputs:
            out[i].append(node.name)
    return out


def _groups(net) -> list[list[str]]:
    """The nodes drawn as one: a dense (or conv) layer with the activation that alone reads it."""
    cons, groups, taken = _consumers(net), [], set()
    for name, node in net.nodes.items():
        if name in taken:
            continue
        members = [name]
        nxt = cons[name]
        if node.params and len(nxt) == 1 and name not in net.outputs and \
                net.nodes[nxt[0]].op in ("act", "softmax"):
            members.append(nxt[0])
        taken.update(members)
        groups.append(members)
    return groups


def _descendants(net) -> dict:
    """Each node's set of the nodes computed from it."""
    cons, out = _consumers(net), {}
    for name in reversed(list(net.nodes)):  # (topological order: consumers first, reversed)
        out[name] = set(cons[name]).union(*(out[c] for c in cons[name]))
    return out


def _projections(net, groups) -> tuple[list, set]:
    """Groups with the parallel projections of one input into one computation made one box:
    dense layers alone in their group (no activation), of one input and one weight shape, whose
    consumers read each other's results (a consumer reads two of them, or one beside a value
    computed from another). Attention's W_q, W_k, W_v of a head (its scores read q and k, its
    weighted sum v beside the weights from q and k) were three boxes in a column that read as
    a pipeline W_q → W_k → W_v; another head's, read by other consumers, are a box of their
    own. Returns the groups and the indices of the merged ones."""
    cons, below = _consumers(net), None
    by_key = {}
    for k, g in enumerate(groups):
        node = net.nodes[g[0]]
        if len(g) == 1 and node.op == "dense" and len(node.inputs) == 1 and node.params and \
                g[0] not in net.outputs:
            by_key.setdefault((node.inputs[0], net.shapes[node.params[0]]), []).append(k)
    parent = {}

    def find(k):
        while parent.get(k, k) != k:
            k = parent[k]
        return k
    for ks in by_key.values():
        if len(ks) < 2:
            continue
        below = below or _descendants(net)
        name = {k: groups[k][0] for k in ks}
        for a in ks:
            for c in cons[name[a]]:
                others = [i for i in net.nodes[c].inputs if i != name[a]]
                for b in ks:
                    if b != a and any(i == name[b] or i in below[name[b]] for i in others):
                        parent[find(a)] = find(b)
    if not parent:
        return groups, set()
    clusters = {}
    for k in range(len(groups)):
        clusters.setdefault(find(k), []).append(k)
    out, merged, placed = [], set(), set()
    for k in range(len(groups)):  # each cluster where its first member was (inputs before it)
        root = find(k)
        if root in placed:
            continue
        placed.add(root)
        members = clusters[root]
        if len(members) > 1:
            merged.add(len(out))
        out.append([m for j in members for m in groups[j]])
    return out, merged


def _depths(net, groups) -> dict:
    """Each group's column: one past the deepest group it reads (inputs are 0)."""
    owner = {m: k for k, g in enumerate(groups) for m in g}
    depth = {}
    for k, g in enumerate(groups):  # the nodes are in topological order
        ins = [owner[i] for m in g for i in net.nodes[m].inputs if owner[i] != k]
        depth[k] = 1 + max((depth[i] for i in ins), default=-1)
    return depth


def small(net, scalar) -> bool:
    if scalar is None or any(n.op not in UNIT_OPS for n in net.nodes.values()):
        return False
    if any(n.dim > MAX_UNITS for n in net.nodes.values()):
        return False
    return sum(r * c for p, (r, c) in net.shapes.items() if net.is_weight(p)) <= MAX_WEIGHTS


def network_block(P, net, scalar):
    """The block of the network's picture (units when small, else boxes); None if it has none."""
    numbered = scalar is not None  # the notes' w1 … w6; at the matrix level the entries W_ij
    try:
        if scalar is None and all(n.op in UNIT_OPS for n in net.nodes.values()) and \
                sum(r * c for r, c in net.shapes.values()) <= MAX_WEIGHTS + 12 * 4:
            scalar = _scalarize(net)
        pic = _units(P, net, scalar, numbered) if small(net, scalar) else _boxes(P, net)
    except Exception:  # a picture is an aid: a graph it cannot draw leaves it out, never fails
        return None
    return pic


def _scalarize(net):
    try:
        return element.scalarize(net)
    except Exception:
        return None


def _scaled(body: str, size, tall=False, note="", box=None) -> dict:
    """The picture for each format, scaled down to fit its box (a slide's: ``box``) when
    larger."""
    w, h = size
    out = {"markdown": "*(A diagram of the network is in the PDF version of this handout.)*"
           + note}
    for fmt, (bw, bh) in (("article", ARTICLE_BOX), ("beamer", BEAMER_BOX)):
        bh = 13.0 if tall and fmt == "article" else bh  # a deep net's boxes: most of a page
        bw, bh = box if box and fmt == "beamer" else (bw, bh)
        s = min(1.0, bw / max(w, 1e-9), bh / max(h, 1e-9))
        opts = "" if s >= 1 else "scale=%.3f, every node/.append style={scale=%.3f}, " % (s, s)
        pic = "\\begin{tikzpicture}[%s>=stealth]\n%s\n\\end{tikzpicture}" % (opts, body)
        out[fmt] = ("\\begin{center}\n%s\n\\end{center}" % pic if fmt == "article" else
                    "\\begin{center}\n%s\n\\end{center}" % pic)
        if fmt == "beamer":
            out["lines"] = h * s / LINE_CM + 1.5
    return out


def _entry(P, p, i, j=None) -> str:
    """The entry of parameter p as the notation writes it: W^{(1)}_{12}, b^{(1)}_{2}."""
    index = str(i + 1) if j is None else ("%d%d" % (i + 1, j + 1) if i < 9 and j < 9
                                          else "%d,%d" % (i + 1, j + 1))
    return notation(P.notation).entry(p, index).tex()


R_UNIT = 0.425     # cm: a unit's circle (minimum size=8.5mm)
LABEL_PT = 8       # \scriptsize on a slide (7 pt in the article)


def _label_box(tex: str, x: float, y: float) -> tuple:
    """The rectangle a weight's label takes centred at (x, y): its estimated text and 1pt of
    inner sep round it; a sub- and a superscript make it taller."""
    w = _text_width(tex, LABEL_PT) + 0.08
    h = 0.3 + (0.12 if "^" in tex else 0.0) + 0.07
    return (x - w / 2, y - h / 2, x + w / 2, y + h / 2)


def _apart(a, b, gap=0.03) -> bool:
    return a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1]


def _off_circle(rect, c, gap=0.03) -> bool:
    """Whether ``rect`` keeps clear of the circle c = (x, y, r)."""
    x, y, r = c
    nx, ny = min(max(x, rect[0]), rect[2]), min(max(y, rect[1]), rect[3])
    return math.hypot(x - nx, y - ny) >= r + gap


def _meet(a, b, c, d):
    """Where the segments a–b and c–d cross (not at an end), or None."""
    den = (b[0] - a[0]) * (d[1] - c[1]) - (b[1] - a[1]) * (d[0] - c[0])
    if abs(den) < 1e-12:
        return None
    t = ((c[0] - a[0]) * (d[1] - c[1]) - (c[1] - a[1]) * (d[0] - c[0])) / den
    u = ((c[0] - a[0]) * (b[1] - a[1]) - (c[1] - a[1]) * (b[0] - a[0])) / den
    if 1e-6 < t < 1 - 1e-6 and 1e-6 < u < 1 - 1e-6:
        return (a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]))
    return None


def _place_labels(circles, boxes, edges) -> list | None:
    """A place on each edge for its label (edges: (p, q, tex, preferred fraction)): clear of
    every unit, "+1" node, activation name and label placed before, and of every point where
    two edges cross (a label there names either: main's b₂ sat on the crossing of its edge and
    x₁'s into h₂, w₃ on x₁–h₂'s with x₂–h₁), covering as few other edges as it can, then nearest
    its preferred fraction along the edge; None when an edge has no such place."""
    placed = []
    segs = [(p, q) for p, q, _, _ in edges]
    meets = [m for i, j in itertools.combinations(range(len(segs)), 2)
             for m in [_meet(*segs[i], *segs[j])] if m is not None]
    for n, (p, q, tex, pref) in enumerate(edges):
        best = None
        for m in range(4, 37):
            t = m / 40
            rect = _label_box(tex, p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1]))
            if not all(_off_circle(rect, c) for c in circles) or \
                    not all(_apart(rect, b) for b in boxes) or \
                    not all(_apart(rect, o[:4]) for o in placed) or \
                    any(rect[0] - 0.03 < x < rect[2] + 0.03 and rect[1] - 0.03 < y < rect[3] + 0.03
                        for x, y in meets):
                continue
            covered = sum(_crosses(a, b, rect, 0.0) for j, (a, b) in enumerate(segs) if j != n)
            key = (covered, abs(t - pref))
            if best is None or key < best[0]:
                best = (key, rect)
        if best is None:
            return None
        placed.append(best[1] + (tex,))
    return placed


def _units(P, net, scalar, numbered=True) -> dict:
    """Units in columns, each edge with its weight's label placed clear of the units and of
    every other label (2-2-1's b₂ was drawn over w₃), on a white ground over the edge; the
    columns set further apart until every label has such a place."""
    groups = _groups(net)
    depth = _depths(net, groups)
    ncols = max(depth.values()) + 1
    cols = {c: [k for k in depth if depth[k] == c] for c in range(ncols)}
    rep = {k: g[-1] for k, g in enumerate(groups)}
    owner = {m: k for k, g in enumerate(groups) for m in g}
    height = {c: sum(len(scalar.units[rep[k]]) for k in ks) + (len(ks) - 1) * 0.6
              for c, ks in cols.items()}
    tall = max(height.values())
    # (a slide's height is the scarcer: columns set apart first)
    for dx, dy in [(dx, dy) for dy in (1.25, 1.4, 1.6)
                   for dx in (3.0, 3.4, 3.8, 4.3, 4.8, 5.4, 6.0, 6.6)]:
        top = (tall - 1) / 2 * dy
        pos, units, acts = {}, [], []
        for c, ks in cols.items():
            y = (height[c] - 1) / 2 * dy
            for k in ks:
                us = list(scalar.units[rep[k]])
                for i, u in enumerate(us):
                    pos["u%d_%d" % (k, i)] = (c * dx, y)
                    units.append(("u%d_%d" % (k, i), P.tex(u)))
                    y -= dy
                act = net.nodes[rep[k]]
                if act.op in ("act", "softmax"):
                    name = text_escape("softmax" if act.op == "softmax" else act.act.name)
                    x, yl = pos["u%d_%d" % (k, len(us) - 1)]
                    w = _text_width(r"\textsf{%s}" % name, LABEL_PT) + 0.1
                    acts.append((x - w / 2, yl - R_UNIT - 0.42, x + w / 2, yl - R_UNIT - 0.05,
                                 name))
                y -= 0.6 * dy
        edges, ones = [], {}
        for k, g in enumerate(groups):
            dense = net.nodes[g[0]]
            if dense.op != "dense":
                continue
            src = owner[dense.inputs[0]]
            W = scalar.params[dense.params[0]]
            for i in range(W.rows):
                for j in range(W.cols):
                    # preferred: those leaving one input part before they meet (w1 near x1,
                    # w3 further on, as the slide spreads them)
                    tex = P.tex(W[i, j]) if numbered else _entry(P, dense.params[0], i, j)
                    edges.append(("u%d_%d" % (src, j), "u%d_%d" % (k, i), tex,
                                  0.25 + 0.4 * i / max(W.rows - 1, 1), False))
            if len(dense.params) > 1:
                b = scalar.params[dense.params[1]]
                c = depth[src]
                if c not in ones:
                    ones[c] = "one%d" % c
                    pos[ones[c]] = (c * dx, top + dy)
                for i in range(len(b)):
                    tex = P.tex(b[i]) if numbered else _entry(P, dense.params[1], i)
                    edges.append((ones[c], "u%d_%d" % (k, i), tex, 0.5, True))
        circles = [pos[n] + (R_UNIT,) for n, _ in units]
        one_boxes = [(pos[n][0] - 0.38, pos[n][1] - 0.25, pos[n][0] + 0.38, pos[n][1] + 0.25)
                     for n in ones.values()]
        labels = _place_labels(circles, one_boxes + [a[:4] for a in acts],
                               [(pos[s], pos[t], tex, pref) for s, t, tex, pref, _ in edges])
        if labels is not None:
            break
    else:  # (never met: 4-3-2 placed at 3.4 cm) the widest, labels at their preferred places
        labels = [_label_box(tex, pos[s][0] + pref * (pos[t][0] - pos[s][0]),
                             pos[s][1] + pref * (pos[t][1] - pos[s][1])) + (tex,)
                  for s, t, tex, pref, _ in edges]
    lines = [r"\node[circle, draw, minimum size=8.5mm, inner sep=1pt] (%s) at (%.2f,%.2f) {$%s$};"
             % (n, pos[n][0], pos[n][1], tex) for n, tex in units]
    lines += [r"\node[draw, rounded corners, inner sep=2pt, font=\small] (%s) at (%.2f,%.2f) "
              r"{$+1$};" % (n, pos[n][0], pos[n][1]) for n in ones.values()]
    lines += [r"\node[font=\scriptsize, inner sep=1pt] at (%.3f,%.3f) {\textsf{%s}};"
              % ((a[0] + a[2]) / 2, (a[1] + a[3]) / 2, a[4]) for a in acts]
    lines += [r"\draw[->%s] (%s) -- (%s);" % (", gray" if bias else "", s, t)
              for s, t, _, _, bias in edges]
    # the labels last, on white over the edges they sit on
    lines += [r"\node[font=\scriptsize, fill=white, inner sep=1pt] at (%.3f,%.3f) {$%s$};"
              % ((r[0] + r[2]) / 2, (r[1] + r[3]) / 2, r[4]) for r in labels]
    # the picture's size: its bounding box (TikZ's)
    rects = [(x - R_UNIT, y - R_UNIT, x + R_UNIT, y + R_UNIT) for x, y, _ in circles] + \
        one_boxes + [a[:4] for a in acts] + [r[:4] for r in labels]
    w = max(r[2] for r in rects) - min(r[0] for r in rects) + 0.1
    h = max(r[3] for r in rects) - min(r[1] for r in rects) + 0.1
    pic = _scaled("\n".join(lines), (w, h), None)
    if _scale_of(pic["beamer"]) < FIT:  # a frame of its own (the multi-task net's: 86 %)
        pic = _scaled("\n".join(lines), (w, h), None, box=BEAMER_FRAME)
    pic["markdown"] = _fenced(_units_text(P, net, scalar, numbered, groups, depth))
    lay = {"circles": {n: pos[n] + (R_UNIT,) for n, _ in units},
           "boxes": {**{n: (pos[n][0] - 0.38, pos[n][1] - 0.25, pos[n][0] + 0.38,
                            pos[n][1] + 0.25) for n in ones.values()},
                     **{"act%d" % i: a[:4] for i, a in enumerate(acts)}},
           "labels": labels, "edges": [(s, t, [pos[s], pos[t]]) for s, t, _, _, _ in edges]}
    pic["layout"] = {fmt: dict(lay, scale=_scale_of(pic[fmt])) for fmt in ("article", "beamer")}
    return pic


def _shape(node) -> str:
    if node.image is not None:
        return r"\times".join(str(d) for d in node.image)
    if node.positions is not None:
        return r"%d \times %d" % (node.positions, node.dim)
    return str(node.dim)


def _op_words(node) -> str:
    """A box's words for its op: the activation's name, else the op's registered words (its
    short label; the trial's attention diagram said "scale shift" and "attn softmax", the op
    kinds)."""
    if node.op == "act":
        return text_escape(node.act.name)
    return text_escape(OPS[node.op].box)


def _box_label(P, net, g, run=1, parallel=False) -> str:
    first = net.nodes[g[0]]
    if parallel:  # parallel projections of one shape: W_q⁽¹⁾, W_k⁽¹⁾, W_v⁽¹⁾ 2×4 (a box of two
        # lines: with "each" it took three, and the heads side by side no longer fitted a frame)
        r, c = net.shapes[first.params[0]]
        return r"%s $%d{\times}%d$" % (", ".join(
            "$%s$" % P.tex(net.sym(net.nodes[m].params[0])) for m in g), r, c)
    if first.op == "input":
        return r"$%s \in %s$" % (P.tex(net.sym(first.name)), value_space(net, first.name))
    parts = [] if first.op == "dense" else [r"\textsf{%s}" % _op_words(first)]
    shown = [p for p in first.params if net.is_weight(p)] or list(first.params[:1])
    last = net.nodes[g[-(len(g) // run)]]
    for p, q in zip(shown, [p for p in last.params if net.is_weight(p)] or list(last.params[:1])):
        r, c = net.shapes[p]
        name = P.tex(net.sym(p)) + (r" \ldots %s" % P.tex(net.sym(q)) if run > 1 else "")
        parts.append(r"$%s$ $%d{\times}%d$" % (name, r, c))
    for m in g[1:len(g) // run]:
        parts.append(r"\textsf{%s}" % _op_words(net.nodes[m]))
    if run > 1:
        parts.append(r"%d layers" % run)
    return ", ".join(parts)


def _runs(net, groups) -> tuple[list, dict]:
    """Groups with each run of four or more like layers in a chain (a dense layer of one shape
    and its activation, each reading only the one before) made one, and each such group's
    number of layers: a 64-layer net's 62 hidden 16×16 layers as one box (on a slide they were
    62 boxes at 34 %)."""
    def kind(g):
        n = net.nodes[g[0]]
        if n.op != "dense":
            return None
        return (tuple(net.shapes[p] for p in n.params),
                tuple((net.nodes[m].op, getattr(net.nodes[m].act, "name", None)) for m in g[1:]))
    cons = _consumers(net)
    chains = []  # (the run's groups)
    for g in groups:
        prev = chains[-1][-1] if chains else None
        if prev is not None and kind(g) is not None and kind(g) == kind(prev) and \
                net.nodes[g[0]].inputs == (prev[-1],) and cons[prev[-1]] == [g[0]] and \
                not any(m in net.outputs for m in prev):
            chains[-1].append(g)
        else:
            chains.append([g])
    out, runs = [], {}
    for chain in chains:
        if len(chain) >= 4:
            runs[len(out)] = len(chain)
            out.append([m for g in chain for m in g])
        else:  # a short run drawn layer by layer
            out += chain
    return out, runs


def _box_graph(P, net, collapse=False) -> dict:
    """The boxes' graph: groups (a run of like layers one when ``collapse``), the groups of each
    depth, labels, outputs and edges: what the TikZ picture and the Markdown's text both draw."""
    groups, parallel = _projections(net, _groups(net))
    runs = {}
    if collapse:
        together = [groups[k] for k in parallel]
        groups, runs = _runs(net, groups)
        parallel = {k for k, g in enumerate(groups) if g in together}
    depth = _depths(net, groups)
    owner = {m: k for k, g in enumerate(groups) for m in g}
    rows = max(depth.values()) + 1
    per = [[k for k in depth if depth[k] == r] for r in range(rows)]
    labels = {k: _box_label(P, net, groups[k], runs.get(k, 1), k in parallel) for k in depth}
    outs = {k: "$%s \\in \\mathbb{R}^{%s}$" % (P.tex(net.sym(m)), _shape(net.nodes[m]))
            for k, g in enumerate(groups) for m in g if m in net.outputs}
    edges = []
    for k, g in enumerate(groups):
        edges += [(s, k) for s in dict.fromkeys(owner[i] for m in g for i in net.nodes[m].inputs
                                                if owner[i] != k)]
    return {"groups": groups, "runs": runs, "per": per, "labels": labels, "outs": outs,
            "edges": edges}


FIT = 0.95  # the least scale a picture is drawn at before it is laid out otherwise
# a picture on a frame of its own: the frame's full height below its title (17 lines of
# \small, 6.5 cm with the picture's 1.5 lines of space round it) and its text's full width
# (14 cm); at 6.4 cm the attention block's two heads side by side (6.84 cm, drawn at 95 %) lost
# to one column that interleaved them (scores, scores, softmax, softmax, …)
BEAMER_FRAME = (13.8, 6.5)


def _boxes(P, net) -> dict:
    """Boxes top to bottom, one line per depth, the branches of a depth side by side; each output
    value named with its shape under its box. A deep graph is wrapped into bands (columns read
    left to right, each top to bottom) and a depth with many branches onto several lines, as far
    as it makes the picture fit its box larger: the attention block's 17 depths in one column
    were drawn at 89 % of an article's size and 38 % of a slide's. A slide's picture still
    below 95 % takes a frame's full height (its own frame), and then a run of like layers is
    drawn as one box. Every arrow is routed in the open space: straight between two lines next
    to each other, else down into the gap below its box, along it to a gutter beside the band,
    along the gutter (over the top to a later band) and into the gap above its box; ``layout``
    holds the rectangles and segments."""
    out = {"layout": {}, "bands": {}}
    for fmt, boxes in (("article", [(ARTICLE_BOX[0], 13.0)]),
                       ("beamer", [BEAMER_BOX, BEAMER_FRAME])):
        for collapse in (False, True):
            G = _box_graph(P, net, collapse)
            for box in boxes:
                # the largest picture up to 95 %, then the fewest arrows routed round the
                # boxes, the largest, with fewer bands, then branches wrapped evenly (3 + 3
                # rather than 5 + 1)
                lay = max((_band_layout(G["per"], G["labels"], G["outs"], box, cap, bands,
                                        G["edges"], wrap)
                           for cap in range(max(map(len, G["per"])), 0, -1)
                           for bands in range(1, 7) for wrap in WRAPS),
                          key=lambda L: (min(round(L["scale"], 2), FIT), -L["routed"],
                                         round(L["scale"], 2), -L["bands"], -L["lines"],
                                         -L["cap"]))
                if lay["scale"] >= FIT:
                    break
            if lay["scale"] >= FIT:
                break
        lay = _band_layout(*lay["args"], tidy=True)  # its arrows' tracks untangled
        body = _band_tikz(net, G["groups"], lay, G["labels"], G["outs"])
        pic = _scaled(body, lay["size"], tall=True, box=box)
        out[fmt] = pic[fmt]
        if fmt == "article":  # the Markdown's text: the article's boxes
            out["markdown"] = _fenced(_boxes_text(G))
        if fmt == "beamer":
            out["lines"] = pic["lines"]
        out["bands"][fmt] = lay["bands"]
        out["layout"][fmt] = {"boxes": lay["rects"], "edges": lay["paths"],
                              "scale": _scale_of(pic[fmt]), "runs": G["runs"],
                              "args": lay["args"]}
    return out


def _scale_of(tex: str) -> float:
    m = re.search(r"\\begin\{tikzpicture\}\[scale=([\d.]+)", tex)
    return float(m.group(1)) if m else 1.0


BAND_GAP = 0.5   # cm between two bands when no arrow runs between them
WRAPS = (2.2, 3.6)  # cm: a label longer than this is wrapped (unless a word is longer)
BOX_PAD = 0.3    # cm: a box's width beyond its text (inner sep 2pt each side, 0.16 to spare)
BOX_SEP = 0.5    # cm between two boxes of a line
OUT_H = 0.9      # cm: an output's name under its box
ROW_GAP = 0.4    # cm between two lines of boxes: the arrows between them run in it
TRACK = 0.11     # cm between two arrows running side by side in a gap or a gutter
LINE_H = 0.36    # cm: a line of \footnotesize in a box


def _words(label: str) -> list[float]:
    """The widths (cm, \\footnotesize on a slide: 9 pt) of a label's words, where TeX may break
    it."""
    return [_text_width(w, 9) for w in label.split(" ") if w]


def _box_text(label: str, wrap: float) -> float:
    """The width (cm) of a box's text: its label on one line, or wrapped at ``wrap`` (at its
    longest word if that is longer): "\\textsf{attn\\_softmax}" 2.0 cm, "W_q^{(1)} 2×4" 1.6 cm."""
    words = _words(label)
    one = sum(words) + 0.1 * (len(words) - 1)
    return min(one, max(wrap, max(words)))


def _label_lines(label: str, room: float) -> int:
    """The lines a box's label takes in text ``room`` cm wide, filled word by word."""
    lines, used = 1, 0.0
    for w in _words(label):
        if used and used + 0.1 + w > room:
            lines, used = lines + 1, w
        else:
            used += (0.1 if used else 0.0) + w
    return lines


def _band_layout(per, labels, outs, box, cap, bands, edges=(), wrap=WRAPS[0],
                 tidy=False) -> dict:
    """Where each box goes with at most ``cap`` boxes on a line and the lines in ``bands``
    bands of even height (a partition of the lines in order that makes the tallest least), and
    each edge's path as a list of points."""
    lines = [ks[i:i + cap] for ks in per for i in range(0, len(ks), cap)]
    # a depth's second line set half a box to the right, so that the arrows into it pass
    # between the boxes of its first rather than through them (the LSTM's eight gates' weights)
    sub = {k: ks.index(k) // cap for ks in per for k in ks}  # which line of its depth
    text = {k: _box_text(labels[k], wrap) for k in labels}
    wid = {k: text[k] + BOX_PAD for k in labels}
    shift = [0.5 * sum(wid[k] for k in ln) / len(ln) if sub[ln[0]] % 2 and cap > 1 else 0.0
             for ln in lines]
    line_w = [sum(wid[k] for k in ln) + BOX_SEP * (len(ln) - 1) + shift[i]
              for i, ln in enumerate(lines)]
    bands = min(bands, len(lines))
    bw, bh = box

    def widths(parts):  # each band's widest line (cm)
        return [max(line_w[i] for i in part) for part in parts]

    def split(heights):  # the partition into ``bands`` runs whose tallest is least (a DP)
        n = len(heights)
        pre = [0.0]
        for h in heights:
            pre.append(pre[-1] + h)
        best = {(0, 0): (0.0, [])}
        for b in range(1, bands + 1):
            for j in range(1, n + 1):
                cands = [(max(best[i, b - 1][0], pre[j] - pre[i]), best[i, b - 1][1] + [(i, j)])
                         for i in range(j) if (i, b - 1) in best]
                if cands:
                    best[(j, b)] = min(cands, key=lambda c: c[0])
        return [list(range(i, j)) for i, j in best[(n, bands)][1]]

    has_out = [any(k in outs for k in ln) for ln in lines]
    box_h = [max(_label_lines(labels[k], text[k] + 0.01) for k in ln) * LINE_H + 0.2
             for ln in lines]
    heights = [h + ROW_GAP + (OUT_H if o else 0.0) for h, o in zip(box_h, has_out)]
    parts = split(heights)
    band_of = {i: b for b, part in enumerate(parts) for i in part}
    line_of = {k: i for i, ln in enumerate(lines) for k in ln}

    # the routes: which gaps (below line i; "top" above every band) and gutters (right of band
    # b) each arrow runs in, before any coordinate (their tracks size the gaps and gutters)
    routes = []

    def gap_above(i):
        return i - 1 if i - 1 in band_of and band_of[i - 1] == band_of[i] else "top"

    def build(straight):
        routes.clear()
        for r, (s, k) in enumerate(edges):
            ls, lk = line_of[s], line_of[k]
            bs, bk = band_of[ls], band_of[lk]
            if bs == bk and (lk == ls + 1 or r in straight):
                routes.append((s, k, None))
                continue
            legs = [("gap", ls), ("gutter", bs)]
            if bk > bs + 1:
                legs += [("gap", "top"), ("gutter", bk - 1)]
            legs.append(("gap", gap_above(lk)))
            routes.append((s, k, legs))

    def place(track):
        """Coordinates, given each leg's track in its gap or gutter; and each leg's extent
        along it."""
        ntr = {}
        for (kind, key, _), j in track.items():
            ntr[kind, key] = max(ntr.get((kind, key), 0), j + 1)

        def gap_h(key):
            n = ntr.get(("gap", key), 0)
            return max(ROW_GAP if key != "top" else 0.0, TRACK * (n + 1) if n else 0.0)

        def gutter_w(b):
            n = ntr.get(("gutter", b), 0)
            if b == len(parts) - 1:  # the right margin
                return TRACK * (n + 1) if n else 0.0
            return max(BAND_GAP, 0.2 + TRACK * (n + 1))

        pos, rects, right, x0, line_y, depth_h = {}, {}, [], 0.0, {}, []
        for b, (part, nb) in enumerate(zip(parts, widths(parts))):
            y = -gap_h("top")
            for i in part:  # (each box at the middle of its line, the output's name below it)
                line_y[i] = y - box_h[i] - (OUT_H if has_out[i] else 0.0)
                x = x0 + (nb - line_w[i]) / 2 + shift[i]
                for k in lines[i]:
                    pos[k] = (x + wid[k] / 2, y - box_h[i] / 2, b, i)
                    rects[k] = (x, y - box_h[i], x + wid[k], y)
                    x += wid[k] + BOX_SEP
                    if k in outs:  # (the output's name under the box's middle)
                        w, xm = _text_width(outs[k], 11) + 0.1, pos[k][0]
                        rects["o%d" % k] = (xm - w / 2, y - box_h[i] - OUT_H + 0.1,
                                            xm + w / 2, y - box_h[i] - 0.35)
                y = line_y[i] - gap_h(i)
            depth_h.append(-y)
            x0 += nb
            right.append(x0)
            x0 += gutter_w(b)

        def at(kind, key, r):
            j = track[kind, key, r]
            if kind == "gutter":
                n = ntr[kind, key]
                if key == len(parts) - 1:
                    return right[key] + TRACK * (j + 1)
                return right[key] + gutter_w(key) / 2 + (j - (n - 1) / 2) * TRACK
            n = ntr[kind, key]
            top = 0.0 if key == "top" else line_y[key]
            return top - gap_h(key) * (j + 1) / (n + 1)

        paths, extent = [], {}
        for r, (s, k, legs) in enumerate(routes):
            xs, ys, _, _ = pos[s]
            xk = pos[k][0]
            start, end = (xs, rects[s][1]), (xk, rects[k][3])
            if legs is None:
                lane = _lane(rects, s, k) if line_of[k] > line_of[s] + 1 else None
                paths.append((s, k, [(lane, start[1]), (lane, end[1])] if lane is not None
                              else [start, end]))
                continue
            c = [at(kind, key, r) for kind, key in legs]
            # down into the gap below, along it, along the gutter, [over the top, down the
            # next gutter,] along the gap above its box, into it
            pts = [start, (xs, c[0])]
            for m in range(1, len(c), 2):
                pts += [(c[m], c[m - 1]), (c[m], c[m + 1])]
            pts += [(xk, c[-1]), end]
            for m, (kind, key) in enumerate(legs):  # leg m is the segment pts[m+1]–pts[m+2]
                (ax, ay), (bx, by) = pts[m + 1], pts[m + 2]
                lo, hi = (ax, bx) if kind == "gap" else (ay, by)
                extent[kind, key, r] = (min(lo, hi), max(lo, hi))
            paths.append((s, k, pts))
        # the picture's size is its drawing's bounding box (TikZ's), and 0.1 cm of line width
        xs = [x for r in rects.values() for x in r[::2]] + [x for p in paths for x, _ in p[2]]
        ys = [y for r in rects.values() for y in r[1::2]] + [y for p in paths for _, y in p[2]]
        w, h = max(xs) - min(xs) + 0.1, max(ys) - min(ys) + 0.1
        return pos, rects, paths, extent, (w, h)

    def bundle(kind, key, r):
        """The arrows one leg is drawn with: those from one box run together until they part
        (the six projections read from one layer norm were six tracks side by side), as do
        those into one box along the gap above it."""
        s, k, legs = routes[r]
        return ("to", k) if legs.index((kind, key)) == len(legs) - 1 else ("from", s)

    def spans(extent):  # each bundle's extent in its gap or gutter: the union of its legs'
        out = {}
        for (kind, key, r), (lo, hi) in extent.items():
            b = (kind, key, bundle(kind, key, r))
            a = out.get(b, (lo, hi))
            out[b] = (min(a[0], lo), max(a[1], hi))
        return out

    def colour(extent):
        """Tracks shared by bundles whose extents are 0.3 cm apart or more (interval
        colouring)."""
        track, last, of = {}, {}, {}
        for (kind, key, b), (lo, hi) in sorted(spans(extent).items(), key=lambda e: e[1]):
            ends = last.setdefault((kind, key), [])
            j = next((j for j, e in enumerate(ends) if e + 0.3 <= lo), len(ends))
            ends[j:j + 1] = [hi]
            of[kind, key, b] = j
        for kind, key, r in extent:
            track[kind, key, r] = of[kind, key, bundle(kind, key, r)]
        return track

    def valid(track, extent):
        seen = {}
        for (kind, key, b), iv in spans(extent).items():
            r = next(r for (k_, y_, r) in extent if (k_, y_) == (kind, key)
                     and bundle(kind, key, r) == b)
            seen.setdefault((kind, key, track[kind, key, r]), []).append(iv)
        return all(b[0] - a[1] >= 0.25 for iv in seen.values()
                   for a, b in zip(sorted(iv), sorted(iv)[1:]))

    def solve():
        distinct, counts = {}, {}
        for r, (_, _, legs) in enumerate(routes):
            for kind, key in legs or ():
                distinct[kind, key, r] = counts[kind, key] = counts.get((kind, key), -1) + 1
        placed = place(distinct)
        for _ in range(4):  # the extents move as the gaps shrink: until the colouring holds
            track = colour(placed[3])
            placed = place(track)
            if valid(track, placed[3]):
                return untangle(track, placed)
        return untangle(distinct, place(distinct))

    def untangle(track, placed):
        """The tracks of each gap and gutter swapped pairwise while that crosses fewer arrows:
        the colouring orders them by where they start, and the attention block's two heads'
        arrows up one gutter to the next band crossed each other 20 times on its slide."""
        if not tidy:  # (the layout drawn only: untangling every candidate took the LSTM's
            return placed  # build from 2.5 s to 87 s)
        best = crossings(placed[2])
        for _ in range(3):
            better = False
            for chan in dict.fromkeys((kind, key) for kind, key, _ in track):
                used = sorted({j for (kind, key, _), j in track.items() if (kind, key) == chan})
                for a, b in itertools.combinations(used, 2):
                    swap = {t: (b if j == a and t[:2] == chan else a if j == b and t[:2] == chan
                                else j) for t, j in track.items()}
                    trial = place(swap)
                    if (n := crossings(trial[2])) < best:
                        best, track, placed, better = n, swap, trial, True
            if not better or not best:
                break
        return placed

    # an arrow past a line of its band straight where it passes between that line's boxes (the
    # LSTM's inputs into its second line of gates, set half a box over for it), else routed
    straight = {r for r, (s, k) in enumerate(edges)
                if band_of[line_of[s]] == band_of[line_of[k]] and line_of[k] > line_of[s] + 1}
    for _ in range(len(edges) + 1):
        build(straight)
        placed = solve()
        rects = placed[1]
        bad = {r for r, (s, k, pts) in enumerate(placed[2]) if r in straight and any(
            _crosses(pts[0], pts[1], q) for n, q in rects.items() if n not in (s, k, "o%d" % s))}
        if not bad:
            break
        straight -= bad
    pos, rects, paths, _, (w, h) = placed
    return {"scale": min(1.0, bw / w, bh / h), "bands": len(parts), "cap": cap, "text": text,
            "args": (per, labels, outs, box, cap, bands, edges, wrap),
            "routed": sum(legs is not None for _, _, legs in routes), "lines": len(lines),
            "pos": pos, "size": (w, h), "rects": rects, "paths": paths}


LANE_SEP = 0.15  # cm: a lane's least distance from a box it runs past


def _lane(rects, s, k):
    """The x of a vertical arrow from box ``s`` down to box ``k`` past the boxes between them,
    or None: the one nearest the middle of the boxes' common width clear of every box in
    between by LANE_SEP. None when the straight arrow between their middles passes no box.
    The attention block's W_v → weighted sum went round the band instead (the gap below, the
    gutter, the gap above: across the other head's arrows, article p.2), where a vertical
    beside its head's scores and softmax was free."""
    (sx0, sy0, sx1, _), (kx0, _, kx1, ky1) = rects[s], rects[k]
    own = (s, k, "o%d" % s)
    between = [r for n, r in rects.items() if n not in own and r[1] < sy0 and r[3] > ky1]
    start, end = ((sx0 + sx1) / 2, sy0), ((kx0 + kx1) / 2, ky1)
    if not any(_crosses(start, end, r) for r in between):
        return None
    free = [(max(sx0, kx0) + LANE_SEP, min(sx1, kx1) - LANE_SEP)]
    for r in between:  # the common width less each box's, LANE_SEP wider
        free = [part for lo, hi in free
                for part in ((lo, min(hi, r[0] - LANE_SEP)), (max(lo, r[2] + LANE_SEP), hi))
                if part[0] <= part[1]]
    if not free:
        return None
    mid = (max(sx0, kx0) + min(sx1, kx1)) / 2
    return min((min(max(mid, lo), hi) for lo, hi in free), key=lambda x: abs(x - mid))


def crossings(paths) -> int:
    """How many times two arrows' paths cross (not at an end)."""
    segs = [(r, p, q) for r, (_, _, pts) in enumerate(paths) for p, q in zip(pts, pts[1:])]
    return sum(i != j and _meet(a, b, c, d) is not None
               for (i, a, b), (j, c, d) in itertools.combinations(segs, 2))


def _crosses(p, q, rect, eps=0.02) -> bool:
    """Whether the segment p–q passes through the inside of ``rect`` (x0, y0, x1, y1): clipped
    against it (Liang–Barsky)."""
    lo, hi = 0.0, 1.0
    d = (q[0] - p[0], q[1] - p[1])
    for ax in (0, 1):
        for sign, edge in ((-1, rect[ax] + eps), (1, rect[ax + 2] - eps)):
            num, den = sign * (edge - p[ax]), sign * d[ax]
            if den == 0:
                if num < 0:
                    return False
            elif den > 0:
                hi = min(hi, num / den)
            else:
                lo = max(lo, num / den)
    return lo < hi


def _band_tikz(net, groups, lay, labels, outs) -> str:
    """The boxes where ``lay`` puts them, each line's as tall as its tallest, and each arrow
    along its path."""
    rects = lay["rects"]
    out = []
    for k, (x, y, _, _) in sorted(lay["pos"].items()):
        style = "draw, rounded corners, fill=gray!8" if net.nodes[groups[k][0]].op != "input" \
            else "draw=none"
        out.append(r"\node[%s, inner sep=2pt, font=\footnotesize, text width=%.2fcm, "
                   r"minimum height=%.2fcm, align=center] (g%d) at (%.2f,%.2f) {%s};"
                   % (style, rects[k][2] - rects[k][0] - 0.14, rects[k][3] - rects[k][1], k,
                      x, y, labels[k]))
    for s, k, pts in lay["paths"]:
        out.append(r"\draw[->, rounded corners=3pt] %s;"
                   % " -- ".join("(%.3f,%.3f)" % p for p in pts))
    for k, text in outs.items():
        x0, y0, x1, y1 = rects["o%d" % k]
        out.append(r"\node[font=\small, inner sep=1pt] (o%d) at (%.3f,%.3f) {%s};"
                   % (k, (x0 + x1) / 2, (y0 + y1) / 2, text))
        out.append(r"\draw[->] (%.3f,%.3f) -- (o%d);" % ((x0 + x1) / 2, rects[k][1], k))
    return "\n".join(out)


# -- the width of a label ---------------------------------------------------------------------
_GROUPED = {"mathbb", "mathbf", "mathrm", "mathit", "mathsf", "boldsymbol", "hat", "bar",
            "tilde", "textsf", "text", "textit", "textrm", "operatorname", "mathcal"}
EM = 0.03515  # cm in a point


def _text_width(tex: str, pt: float) -> float:
    """A label's width in cm at ``pt`` points, estimated from its text: 0.58 em a character
    (italic letters are ~0.5 em, W and M ~0.9), a capital 1.3 times that, bold 1.15 times, sans
    serif letters 0.5 em, a sub- or superscript at 70 %, a sub- and
    superscript on one base the wider of the two (W_{12}^{(1)}), a command one character."""
    return _tex_em(tex) * pt * EM


def _script(tex: str, i: int) -> tuple[str, int]:
    """The argument of the _ or ^ at ``i`` (a {group} or one character) and where it ends."""
    if tex[i + 1:i + 2] == "{":
        return _group(tex, i + 1)
    return tex[i + 1:i + 2], i + 2


def _tex_em(tex: str, letter: float = 0.58, bold: float = 1.0) -> float:
    width, i, prev_script = 0.0, 0, None
    while i < len(tex):
        c = tex[i]
        if c in "_^":
            inner, i = _script(tex, i)
            w = 0.7 * _tex_em(inner, letter, bold)
            if prev_script is not None:  # stacked on the same base: the wider one
                width += max(0.0, w - prev_script)
                prev_script = None
            else:
                width += w
                prev_script = w
            continue
        prev_script = None
        if c == "\\":
            m = re.match(r"\\([A-Za-z]+|.)", tex[i:])
            i += m.end()
            if m.group(1) in _GROUPED and tex[i:i + 1] == "{":
                inner, i = _group(tex, i)  # (sans serif text: 0.5 em a letter)
                width += _tex_em(inner, 0.5 if m.group(1) == "textsf" else letter,
                                 1.15 if m.group(1) in ("mathbf", "boldsymbol") else bold)
            elif m.group(1) == "_":
                width += 0.5
            elif m.group(1) not in (",", ";", "!", " ", "left", "right"):
                width += 0.8
        elif c in "{}$ ":
            width += 0.3 if c == " " else 0.0
            i += 1
        else:  # (a capital ~0.75 em: \\mathbf{W}_{hf} 2×2 wrapped at 0.58 em a letter)
            width += letter * bold * (1.3 if c.isupper() else 1.0)
            i += 1
    return width


# -- the Markdown's picture: text -------------------------------------------------------------
_SUP = str.maketrans("0123456789+-=()nTi×", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ⁿᵀⁱˣ")  # (ℝ⁴ˣ⁶)
_SUBS = str.maketrans("0123456789+-=(),aehijklmnoprstuvx",
                      "₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎,ₐₑₕᵢⱼₖₗₘₙₒₚᵣₛₜᵤᵥₓ")
_TEXT_CMDS = {"textbackslash": "\\", "textasciitilde": "~", "textasciicircum": "^",
              "textless": "<", "textgreater": ">", "textbar": "|", "textasciigrave": "`",
              "times": "×", "in": " ∈ ", "ldots": " … ", "cdot": "·", "odot": "⊙",
              "quad": "  ", ",": " ", ";": " ", " ": " ", "!": "", "lbrace": "{",
              "rbrace": "}"}


def _tex_text(tex: str) -> str:
    """A label's TeX (as the picture writes it: names from the notation printer, user text
    through text_escape) as Unicode text: W^{(1)}_{12} → W⁽¹⁾₁₂, \\hat{y} → ŷ, \\mathbb{R} → ℝ,
    an escaped character as itself; a script Unicode lacks a glyph for as _{…} or ^{…}."""
    import unicodedata
    out, i = [], 0
    while i < len(tex):
        c = tex[i]
        if c in "_^":
            inner, i = _script(tex, i)
            inner = re.sub(r"\s*×\s*", "×", _tex_text(inner).strip())  # ℝ^{4 \times 6}: ℝ⁴ˣ⁶
            table = _SUP if c == "^" else _SUBS
            moved = inner.translate(table)
            ok = all(ch != o or ch in ",×" for ch, o in zip(inner, moved)) and inner
            out.append(moved if ok else "%s(%s)" % (c, inner) if len(inner) > 1 else c + inner)
        elif c == "\\":
            m = re.match(r"\\([A-Za-z]+|.)", tex[i:])
            name, i = m.group(1), i + m.end()
            if tex[i:i + 2] == "{}":  # \textbackslash{}
                i += 2
            if name in _TEXT_CMDS:
                if name == "rbrace" and out:  # {0, …, 5 \rbrace: no space before the }
                    out[-1] = out[-1].rstrip()
                out.append(_TEXT_CMDS[name])
                while name.isalpha() and tex[i:i + 1] == " ":  # (the space ending it)
                    i += 1
            elif tex[i:i + 1] == "{" and name in ("hat", "mathbb", "tilde", "bar"):
                inner, i = _group(tex, i)
                inner = _tex_text(inner)
                out.append({"hat": inner + "\u0302", "tilde": inner + "\u0303",
                            "bar": inner + "\u0304"}.get(name, "ℝ" if inner == "R" else inner))
            elif tex[i:i + 1] == "{" and name.isalpha():  # \mathbf{…}, \textsf{…}: the text
                inner, i = _group(tex, i)
                out.append(_tex_text(inner))
            elif name.isalpha():  # a Greek letter, else the command's name
                try:
                    out.append(unicodedata.lookup("GREEK %s LETTER %s" % (
                        "CAPITAL" if name[0].isupper() else "SMALL", name.upper())))
                except KeyError:
                    out.append(name)
                while tex[i:i + 1] == " ":  # (the space ending a command)
                    i += 1
            else:
                out.append(name)  # \{ \_ \# \& \% \$: the character
        elif c in "{}$":
            i += 1
        elif tex.startswith("''", i):  # text_escape's '' for a "
            out.append('"')
            i += 2
        else:
            out.append(c)
            i += 1
    return re.sub(" {2,}", " ", unicodedata.normalize("NFC", "".join(out)))


def _fenced(lines) -> str:
    """A fenced code block of ``lines``: fenced with tildes (``` would read as TeX's opening
    quotes ``), the fence longer than any run of tildes in them."""
    runs = [len(r) for ln in lines for r in re.findall(r"~+", ln)]
    fence = "~" * max(3, max(runs, default=0) + 1)
    return "\n".join([fence + "text"] + list(lines) + [fence])


def _units_text(P, net, scalar, numbered, groups, depth) -> list[str]:
    """Each layer of weights as text: its inputs, each unit with the weights into it and the
    "+1" bias, the activation named (2-2-1: x₁ ── w₁ ──┐ … ──▶ h₁⁽¹⁾)."""
    owner = {m: k for k, g in enumerate(groups) for m in g}
    rep = {k: g[-1] for k, g in enumerate(groups)}
    out, layer = [], 0
    for k, g in enumerate(groups):
        dense = net.nodes[g[0]]
        if dense.op != "dense":
            continue
        layer += 1
        src = owner[dense.inputs[0]]
        ins = [_tex_text(P.tex(u)) for u in scalar.units[rep[src]]]
        outs = [_tex_text(P.tex(u)) for u in scalar.units[rep[k]]]
        act = net.nodes[rep[k]]
        how = ("softmax" if act.op == "softmax" else act.act.name) \
            if act.op in ("act", "softmax") else "no activation"
        out += ["" if out else None, "Layer %d (%s): %s → %s" % (
            layer, how, ", ".join(ins), ", ".join(outs))]
        W = scalar.params[dense.params[0]]
        b = scalar.params[dense.params[1]] if len(dense.params) > 1 else None
        rows = []
        for i in range(W.rows):
            into = [(ins[j], _tex_text(P.tex(W[i, j]) if numbered else
                                       _entry(P, dense.params[0], i, j)))
                    for j in range(W.cols)]
            if b is not None:
                into.append(("+1", _tex_text(P.tex(b[i]) if numbered else
                                             _entry(P, dense.params[1], i))))
            rows.append((into, outs[i]))
        wa = max(len(a) for into, _ in rows for a, _ in into)
        wb = max(len(w) for into, _ in rows for _, w in into)
        for into, unit in rows:
            mid = (len(into) - 1) // 2  # the line the arrow into the unit leaves from
            for n, (a, w) in enumerate(into):
                joint = "─" if len(into) == 1 else "┬" if n == 0 == mid else "┐" if n == 0 \
                    else "┘" if n == len(into) - 1 else "┼" if n == mid else "┤"
                out.append("  %s ── %s ──%s%s" % (a.ljust(wa), w.ljust(wb), joint,
                                                  "──▶ " + unit if n == mid else ""))
    return [ln for ln in out if ln is not None]


def _boxes_text(G) -> list[str]:
    """The boxes in the order of the graph, each numbered and named as in the picture, a ▼
    from a box into the next one when it reads it, "← [2], [5]" naming any other it reads, and
    each output's name and shape under its box."""
    labels, outs = G["labels"], G["outs"]
    order = sorted(labels, key=lambda k: (min(r for r, ks in enumerate(G["per"]) if k in ks), k))
    reads = {k: [s for s, t in G["edges"] if t == k] for k in labels}
    text = {k: "[%d] %s" % (n + 1, _tex_text(labels[k])) for n, k in enumerate(order)}
    num = {k: n + 1 for n, k in enumerate(order)}
    extra = {}
    for n, k in enumerate(order):
        other = [s for s in reads[k] if not n or s != order[n - 1]]
        if other:
            extra[k] = "  ← " + ", ".join("[%d]" % num[s] for s in other)
    inner = max(len(text[k] + extra.get(k, "")) for k in order) + 2
    out = []
    for n, k in enumerate(order):
        if n:
            fed = order[n - 1] in reads[k]
            out.append(" " * (inner // 2 + 1) + ("▼" if fed else " "))
        out.append("┌" + "─" * inner + "┐")
        out.append("│ " + (text[k] + extra.get(k, "")).ljust(inner - 1) + "│")
        below = "┬" if n + 1 < len(order) and k in reads[order[n + 1]] else "─"
        out.append("└" + "─" * (inner // 2) + below + "─" * (inner - inner // 2 - 1) + "┘")
        if k in outs:
            out.append(" " * (inner // 2 + 1) + "▼ " + _tex_text(outs[k]))
    return out


# -- the loss curve -----------------------------------------------------------------------------
def check_history(history) -> list[float]:
    """The losses of a run, one per epoch, as floats; one ValueError when it is not that."""
    if isinstance(history, (str, bytes)) or not hasattr(history, "__iter__"):
        raise ValueError(f"history must be a list of the loss of each epoch, not {history!r}")
    try:
        h = [float(v) for v in history]
    except (TypeError, ValueError):
        raise ValueError("history must be a list of numbers, the loss of each epoch") from None
    if not h:
        raise ValueError("history is empty: give the loss of each epoch")
    return h


def read_history(path) -> list[float]:
    """The losses of a run from a file: JSON (a list, or an object with a "history" list) or an
    .npz holding an array "history" (pickles refused); one ValueError naming the file."""
    path = str(path)
    try:
        if path.endswith(".npz"):
            with np.load(path, allow_pickle=False) as z:
                if "history" not in z.files:
                    raise ValueError(f"--history {path}: no array 'history' in it (it has "
                                     f"{', '.join(z.files) or 'none'})")
                h = z["history"].ravel().tolist()
        else:
            with open(path, encoding="utf-8") as f:
                h = json.load(f)
            if isinstance(h, dict):
                h = h.get("history")
    except FileNotFoundError:  # (the OSError's own words were "[Errno 2] No such file …")
        raise ValueError(f"--history {path}: no such file") from None
    except OSError as e:
        raise ValueError(f"--history {path}: cannot read it: {e.strerror or e}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"--history {path}: cannot read it: {e}") from None
    try:
        return check_history(h)
    except ValueError as e:
        raise ValueError(f"--history {path}: {e}") from None


def write_history(path, history) -> str:
    """Save a run's losses as JSON ({"history": [...]}), as :func:`read_history` reads them."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"history": [float(v) for v in history]}, f)
    return str(path)


def log_axis(history) -> bool:
    """A log loss axis when every loss is positive and finite and they span a decade or more."""
    finite = [v for v in history if math.isfinite(v)]
    return bool(finite) and len(finite) == len(history) and min(finite) > 0 and \
        max(finite) / min(finite) >= 10


def history_block(history) -> dict:
    h = check_history(history)
    log = log_axis(h)
    ys = [math.log10(v) if log else v for v in h if math.isfinite(v)]
    lo, hi = min(ys), max(ys)
    # a log axis stops at 1e-12 of the first loss (symgrad.core.losscurve: XOR's went on to
    # 3.1e-33, 20 of its 33 decades past any use); the curve leaves the box there, clipped
    cut = losscurve.floor(h) if log else None
    if log:
        lo, hi = math.floor(lo if cut is None else math.log10(cut.value)), math.ceil(hi)
    if hi - lo < 1e-12:
        lo, hi = lo - 1, hi + 1
    W, H = 11.0, 5.0
    n = len(h)

    def X(e):
        return (e - 1) / max(n - 1, 1) * W

    def Y(v):
        return ((math.log10(v) if log else v) - lo) / (hi - lo) * H

    pts = [(X(e), Y(v)) for e, v in enumerate(h, 1) if math.isfinite(v)]
    out = [r"\draw[gray!60] (0,0) rectangle (%.2f,%.2f);" % (W, H)]
    # ticks: powers of ten on a log axis (at most ~6), else five even steps
    if log:
        step = max(1, math.ceil((hi - lo) / 6))
        ticks = [(t, r"$10^{%d}$" % t) for t in range(int(lo), int(hi) + 1, step)]
    else:
        ticks = [(lo + (hi - lo) * i / 4, "$%s$" % _num(lo + (hi - lo) * i / 4)) for i in range(5)]
    for t, lab in ticks:
        y = (t - lo) / (hi - lo) * H
        out.append(r"\draw[gray!30] (0,%.3f) -- (%.2f,%.3f);" % (y, W, y))
        out.append(r"\node[left, font=\scriptsize] at (0,%.3f) {%s};" % (y, lab))
    for e in sorted({1, n, *range(0, n + 1, max(1, _nice(n / 5)))} - {0}):
        out.append(r"\node[below, font=\scriptsize] at (%.3f,0) {%d};" % (X(e), e))
    out.append(r"\node[below=4mm, font=\small] at (%.2f,0) {epoch};" % (W / 2))
    out.append(r"\node[rotate=90, above=9mm, font=\small] at (0,%.2f) {training loss%s};"
               % (H / 2, " (log scale)" if log else ""))
    curve = [r"\draw[thick, blue!70!black] " + " -- ".join("(%.3f,%.3f)" % p for p in pts)
             + ";"]
    if n <= 50:
        curve += [r"\fill[blue!70!black] (%.3f,%.3f) circle (1.2pt);" % p for p in pts]
    if cut is not None:  # the floor dashed, and the curve clipped to the box below it
        y = Y(cut.threshold)
        out.append(r"\draw[gray, dashed] (0,%.3f) -- (%.2f,%.3f);" % (y, W, y))
        curve = [r"\begin{scope}", r"\clip (0,0) rectangle (%.2f,%.2f);" % (W, H), *curve,
                 r"\end{scope}"]
    out += curve
    block = _scaled("\n".join(out), (W + 2.0, H + 1.2), None)
    block["markdown"] = ("*(The training loss per epoch is plotted in the PDF version; it went "
                         "from %s to %s in %d epochs.%s)*"
                         % (_num(h[0]), _num(h[-1]), n, "" if cut is None else
                            " " + losscurve.sentence(cut, _num)))
    block["points"], block["log"], block["floor"] = len(pts), log, cut
    return block


def _num(v: float) -> str:
    return "%.3g" % v if abs(v) >= 1e-3 or v == 0 else r"%.2g" % v


def _tex_num(v: float) -> str:
    """A number in a sentence: 0.521, or $5.2 \times 10^{-13}$ (not 5.2e-13)."""
    if v == 0 or 1e-3 <= abs(v) < 1e4:
        return "%.3g" % v
    m, e = ("%.1e" % v).split("e")
    m = m.rstrip("0").rstrip(".")
    return r"$10^{%d}$" % int(e) if m == "1" else r"$%s \times 10^{%d}$" % (m, int(e))


def _nice(x: float) -> int:
    if x <= 1:
        return 1
    p = 10 ** math.floor(math.log10(x))
    return int(next(m * p for m in (1, 2, 5, 10) if m * p >= x))


def history_section(history):
    """The "Training" section of a handout built after training, or [] without a history."""
    if history is None:
        return []
    h = check_history(history)
    block = history_block(h)
    sec = Section("Training")
    cut = block["floor"]
    sec.text(r"The network was trained for %d epoch%s; the mean training loss of each epoch "
             r"(before its steps) fell from %s to %s%s:"
             % (len(h), "s" if len(h) != 1 else "", _tex_num(h[0]), _tex_num(h[-1]),
                "" if not block["log"] else ", drawn on a logarithmic scale" if cut is None else
                ", drawn on a logarithmic scale down to %s (dashed), which is %s times the "
                "first epoch's loss. The loss crossed that line at epoch %d, where the curve leaves the "
                "picture%s"
                % (_tex_num(cut.threshold), _tex_num(losscurve.RELATIVE), cut.below_at,
                   "" if cut.flat_from is None else ", and from epoch %d on it stayed the same "
                   "floating-point number" % cut.flat_from)))
    sec.blocks.append(("picture", block))
    return [sec]


__all__ = ["network_block", "history_section", "history_block", "check_history", "read_history", "write_history", "log_axis",
           "small"]
