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
a frame, "markdown": text}): KaTeX cannot draw TikZ, so Markdown says the picture is in the PDF.
"""
from __future__ import annotations

import json
import math
import re

import numpy as np

from symgrad.core import losscurve
from symgrad.handouts.model import Section
from symgrad.derive import element
from symgrad.printing.names import notation, text_escape

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


def _scaled(body: str, size, tall=False, note="") -> dict:
    """The picture for each format, scaled down to fit its box when larger."""
    w, h = size
    out = {"markdown": "*(A diagram of the network is in the PDF version of this handout.)*"
           + note}
    for fmt, (bw, bh) in (("article", ARTICLE_BOX), ("beamer", BEAMER_BOX)):
        bh = 13.0 if tall and fmt == "article" else bh  # a deep net's boxes: most of a page
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


def _units(P, net, scalar, numbered=True) -> dict:
    groups = _groups(net)
    depth = _depths(net, groups)
    ncols = max(depth.values()) + 1
    cols = {c: [k for k in depth if depth[k] == c] for c in range(ncols)}
    rep = {k: g[-1] for k, g in enumerate(groups)}
    owner = {m: k for k, g in enumerate(groups) for m in g}
    height = {c: sum(len(scalar.units[rep[k]]) for k in ks) + (len(ks) - 1) * 0.6
              for c, ks in cols.items()}
    tall = max(height.values())
    dy, dx = 1.25, 3.4
    pos, lines = {}, []
    for c, ks in cols.items():
        y = (height[c] - 1) / 2 * dy
        for k in ks:
            units = list(scalar.units[rep[k]])
            for i, u in enumerate(units):
                nid = "u%d_%d" % (k, i)
                pos[nid] = (c * dx, y)
                lines.append(r"\node[circle, draw, minimum size=8.5mm, inner sep=1pt] (%s) at "
                             r"(%.2f,%.2f) {$%s$};" % (nid, c * dx, y, P.tex(u)))
                y -= dy
            y -= 0.6 * dy
            act = net.nodes[rep[k]]
            if act.op in ("act", "softmax"):
                name = "softmax" if act.op == "softmax" else act.act.name
                lines.append(r"\node[font=\scriptsize, below=1mm] at (u%d_%d.south) {%s};"
                             % (k, len(units) - 1, text_escape(name)))
    top = (tall - 1) / 2 * dy
    edges = []
    bias_at = {}
    for k, g in enumerate(groups):
        dense = net.nodes[g[0]]
        if dense.op != "dense":
            continue
        src = owner[dense.inputs[0]]
        W = scalar.params[dense.params[0]]
        for i in range(W.rows):
            for j in range(W.cols):
                # labels staggered along the edges by their unit: those leaving one input
                # part before they meet (w1 near x1, w3 further on, as the slide spreads them)
                at = 0.2 + 0.45 * i / max(W.rows - 1, 1)
                edges.append(r"\draw[->] (u%d_%d) -- node[pos=%.2f, sloped, above=-1pt, "
                             r"font=\scriptsize] {$%s$} (u%d_%d);"
                             % (src, j, at, P.tex(W[i, j]) if numbered else
                                _entry(P, dense.params[0], i, j), k, i))
        if len(dense.params) > 1:
            b = scalar.params[dense.params[1]]
            c = depth[src]
            if c not in bias_at:
                bias_at[c] = "one%d" % c
                edges.append(r"\node[draw, rounded corners, inner sep=2pt, font=\small] (one%d)"
                             r" at (%.2f,%.2f) {$+1$};" % (c, c * dx, top + dy))
            for i in range(len(b)):
                edges.append(r"\draw[->, gray] (%s) -- node[pos=0.5, sloped, above=-1pt, "
                             r"font=\scriptsize, text=black] {$%s$} (u%d_%d);"
                             % (bias_at[c], P.tex(b[i]) if numbered else
                                _entry(P, dense.params[1], i), k, i))
    w = (ncols - 1) * dx + 1.5
    h = tall * dy + dy + 0.8
    return _scaled("\n".join(lines + edges), (w, h), None)


def _shape(node) -> str:
    if node.image is not None:
        return r"\times".join(str(d) for d in node.image)
    if node.positions is not None:
        return r"%d \times %d" % (node.positions, node.dim)
    return str(node.dim)


def _op_words(node) -> str:
    if node.op == "act":
        return text_escape(node.act.name)
    return text_escape(node.op)


def _box_label(P, net, g) -> str:
    first = net.nodes[g[0]]
    if first.op == "input":
        return r"$%s \in \mathbb{R}^{%s}$" % (P.tex(net.sym(first.name)), _shape(first))
    parts = [] if first.op == "dense" else [r"\textsf{%s}" % _op_words(first)]
    shown = [p for p in first.params if net.is_weight(p)] or list(first.params[:1])
    for p in shown:
        r, c = net.shapes[p]
        parts.append(r"$%s$ $%d{\times}%d$" % (P.tex(net.sym(p)), r, c))
    for m in g[1:]:
        parts.append(r"\textsf{%s}" % ("softmax" if net.nodes[m].op == "softmax"
                                      else _op_words(net.nodes[m])))
    return ", ".join(parts)


def _boxes(P, net) -> dict:
    """Boxes top to bottom, one line per depth, the branches of a depth side by side; each output
    value named with its shape under its box. A deep graph is wrapped into bands (columns read
    left to right, each top to bottom, an arrow from the foot of one band up the gap into the
    next) and a depth with many branches onto several lines, as far as it makes the picture
    fit its box larger: the attention block's 17 depths in one column were drawn at 89 % of an
    article's size and 38 % of a slide's."""
    groups = _groups(net)
    depth = _depths(net, groups)
    owner = {m: k for k, g in enumerate(groups) for m in g}
    rows = max(depth.values()) + 1
    per = [[k for k in depth if depth[k] == r] for r in range(rows)]
    labels = {k: _box_label(P, net, groups[k]) for k in depth}
    outs = [(k, m) for k, g in enumerate(groups) for m in g if m in net.outputs]
    edges = []
    for k, g in enumerate(groups):
        edges += [(s, k) for s in dict.fromkeys(owner[i] for m in g for i in net.nodes[m].inputs
                                                if owner[i] != k)]
    out = {}
    for fmt, box in (("article", (ARTICLE_BOX[0], 13.0)), ("beamer", BEAMER_BOX)):
        # the largest picture, less 3 % for each arrow from one band to another (a band cut
        # between a row of branches and what reads them crossed nine), with fewer bands, then
        # branches wrapped evenly (3 + 3 rather than 5 + 1)
        lay = max((_band_layout(per, labels, outs, box, cap, bands, edges)
                   for cap in range(max(map(len, per)), 0, -1) for bands in range(1, 5)),
                  key=lambda L: (round(L["scale"] - 0.03 * L["crossing"], 2), -L["bands"],
                                 -L["lines"], -L["cap"]))
        body = _band_tikz(P, net, groups, lay, labels, outs, edges)
        pic = _scaled(body, lay["size"], tall=True)
        out[fmt] = pic[fmt]
        out["markdown"] = pic["markdown"]
        if fmt == "beamer":
            out["lines"] = pic["lines"]
        out.setdefault("bands", {})[fmt] = lay["bands"]
    return out


BAND_GAP = 0.9   # cm between two bands (the arrow from one into the next runs in it)
MIN_BOX = 2.6    # cm: the narrowest box (\textsf{attn\_softmax} in \footnotesize: 1.9 cm, on one line)
OUT_H = 0.9      # cm: an output's name under its box


def _label_lines(label: str, width: float) -> int:
    """The lines a box's label takes at ``width`` cm (\\footnotesize: ~0.17 cm a character)."""
    chars = len(re.sub(r"\\[A-Za-z]+|[{}$^_]|\(\d\)", "", label))
    return max(1, math.ceil(chars * 0.17 / max(width - 0.6, 0.5)))


def _band_layout(per, labels, outs, box, cap, bands, edges=()) -> dict:
    """Where each box goes with at most ``cap`` boxes on a line and the lines in ``bands``
    bands of even height (a partition of the lines in order that makes the tallest least)."""
    lines = [ks[i:i + cap] for ks in per for i in range(0, len(ks), cap)]
    # a depth's second line set half a box to the right, so that the arrows into it pass
    # between the boxes of its first rather than through them (the LSTM's eight gates' weights)
    sub = {k: ks.index(k) // cap for ks in per for k in ks}  # which line of its depth
    shift = [0.5 if sub[ln[0]] % 2 else 0.0 for ln in lines]
    bands = min(bands, len(lines))
    bw, bh = box

    def widths(parts):  # each band's widest line, in boxes
        return [max(len(lines[i]) + shift[i] for i in part) for part in parts]

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

    has_out = [any(k == o for o, _ in outs for k in ln) for ln in lines]
    dx = 4.2
    for _ in range(3):  # a label's lines depend on the box width, the width on the bands
        heights = [max(_label_lines(labels[k], dx) for k in ln) * 0.36 + 0.5
                   + (OUT_H if out else 0.0) for ln, out in zip(lines, has_out)]
        parts = split(heights)
        # the boxes share the width the gaps leave, each between MIN_BOX and 4.2 cm
        dx = min(4.2, max(MIN_BOX, (bw - (len(parts) - 1) * BAND_GAP) / sum(widths(parts))))
    # (and beside the last band, the arrows of a residual routed past the boxes between)
    w = sum(widths(parts)) * dx + (len(parts) - 1) * BAND_GAP + 0.6
    h = max(sum(heights[i] for i in part) for part in parts) + 0.4
    pos, right, x0 = {}, [], 0.0
    for b, (part, nb) in enumerate(zip(parts, widths(parts))):
        y = 0.0
        for i in part:  # (each box at the middle of its line, the output's name below it)
            for j, k in enumerate(lines[i]):
                pos[k] = (x0 + nb * dx / 2 + (j - (len(lines[i]) - 1) / 2 + shift[i] / 2) * dx,
                          y - (heights[i] - (OUT_H if has_out[i] else 0.0)) / 2, b, i)
            y -= heights[i]
        x0 += nb * dx
        right.append(x0)
        x0 += BAND_GAP
    crossing = sum(pos[s][2] != pos[k][2] for s, k in edges)
    return {"scale": min(1.0, bw / w, bh / h), "bands": len(parts), "cap": cap, "dx": dx,
            "crossing": crossing, "lines": len(lines),
            "pos": pos, "size": (w, h), "right": right,
            "alone": {k for ln in lines if len(ln) == 1 for k in ln}}


def _band_tikz(P, net, groups, lay, labels, outs, edges) -> str:
    """The boxes where ``lay`` puts them, and an arrow for each edge: straight within a band,
    beside the band past the boxes between (a residual), up the gap into the next band."""
    dx, pos = lay["dx"], lay["pos"]
    out = []
    for k, (x, y, _, _) in sorted(pos.items()):
        style = "draw, rounded corners, fill=gray!8" if net.nodes[groups[k][0]].op != "input" \
            else "draw=none"
        out.append(r"\node[%s, inner sep=2pt, font=\footnotesize, text width=%.2fcm, align=center]"
                   r" (g%d) at (%.2f,%.2f) {%s};" % (style, dx - 0.6, k, x, y, labels[k]))
    skips = 0
    for s, k in edges:
        (_, _, bs, ls), (_, yk, bk, lk) = pos[s], pos[k]
        if bs == bk and (lk == ls + 1 or not {s, k} <= lay["alone"]):
            out.append(r"\draw[->] (g%d) -- (g%d);" % (s, k))
        elif bs == bk:  # past the boxes between them, at the band's right
            skips += 1
            out.append(r"\draw[->, rounded corners=3pt] (g%d.east) -- ++(%.2f,0) |- (g%d.east);"
                       % (s, 0.25 + 0.15 * (skips % 3), k))
        else:  # down from its box, up the gap after its band (over the top to a later one),
            # into its box from the left
            gap = lay["right"][bs] + BAND_GAP / 2
            gap_in = lay["right"][bk - 1] + BAND_GAP / 2
            via = "" if bk == bs + 1 else " -| (%.2f,0.35)" % gap
            out.append(r"\draw[->, rounded corners=3pt] (g%d.south) -- ++(0,-0.25)%s -| (%.2f,%.2f)"
                       r" -- (g%d.west);" % (s, via, gap_in, yk, k))
    for k, m in outs:
        out.append(r"\node[font=\small, below=4mm] (o%d) at (g%d.south) {$%s \in "
                   r"\mathbb{R}^{%s}$};" % (k, k, P.tex(net.sym(m)), _shape(net.nodes[m])))
        out.append(r"\draw[->] (g%d) -- (o%d);" % (k, k))
    return "\n".join(out)


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
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
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
                         "from %s to %s in %d epochs%s.)*"
                         % (_num(h[0]), _num(h[-1]), n, "" if cut is None else
                            "; " + losscurve.note(cut, _num)))
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
                ", drawn on a logarithmic scale down to %s (dashed), %s of the first epoch's "
                "loss: the loss passed it at epoch %d, where the curve leaves the picture%s"
                % (_tex_num(cut.threshold), _tex_num(losscurve.RELATIVE), cut.below_at,
                   "" if cut.flat_from is None else ", and from epoch %d on it stayed the same "
                   "floating-point number" % cut.flat_from)))
    sec.blocks.append(("picture", block))
    return [sec]


__all__ = ["network_block", "history_section", "history_block", "check_history", "read_history", "write_history", "log_axis",
           "small"]
