"""Handouts as documents: the content model of ``symgrad.handout`` as an article, beamer slides or
Markdown, and the article or slides compiled to PDF by a real TeX engine.

Where it sits: derive → print → handout (**render**). Only packages in Debian's texlive-latex-base,
texlive-latex-recommended and texlive-pictures (beamer) are used, and only plain pdflatex features:
no shell escape, no fonts to fetch. The algorithm box is drawn with rules and a tabular, not an
algorithm package.
"""
from __future__ import annotations

import re

from symgrad.core.derivation import StepKind
from symgrad.printing.latex import FIT_MACRO, NotesLatexPrinter, tex_width
from symgrad.printing.layout import NOALIGN_ROWS, PAUSE
from symgrad.printing.width import break_terms
from symgrad.printing.names import portable_math, text_escape

ARTICLE_PREAMBLE = r"""\documentclass[11pt]{article}
\usepackage[a4paper,margin=2.3cm]{geometry}
\usepackage{amsmath,amssymb}
\usepackage{longtable}
\usepackage{tikz}
\usepackage{parskip}
\allowdisplaybreaks
\setlength{\jot}{5pt}
\setlength{\emergencystretch}{3em}
""" + FIT_MACRO
BEAMER_PREAMBLE = r"""\documentclass[11pt,aspectratio=169]{beamer}
\usepackage{amsmath,amssymb}
\usefonttheme[onlymath]{serif}
\usepackage{tikz}
\setbeamertemplate{navigation symbols}{}
\setbeamertemplate{footline}[frame number]
\setbeamerfont{frametitle}{size=\large}
\setlength{\emergencystretch}{3em}
""" + FIT_MACRO
FORMATS = ("article", "beamer", "markdown")
# steps that read the ones just before them (substitute each factor defined above, simplify it):
# a new frame or page never starts at one of them
KEEP_WITH_PREVIOUS = {StepKind.SUBSTITUTION, StepKind.SIMPLIFY, StepKind.CASES, StepKind.AGREE,
                      StepKind.SUM}


def _printer(doc, **settings) -> NotesLatexPrinter:
    vectors, scalars = doc.names
    return NotesLatexPrinter({"notation": doc.notation, "vectors": vectors, "scalars": scalars,
                              **settings})


def render(doc, fmt: str = "article", reveal: bool = True) -> str:
    """``reveal``: beamer slides uncover their derivations click by click (:func:`_clicks`);
    False, none: one page per frame, slides to print."""
    if fmt == "article":
        return _article(doc)
    if fmt == "beamer":
        return _beamer(doc, reveal)
    if fmt in ("markdown", "md"):
        return _markdown(doc)
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")


# -- article --------------------------------------------------------------------------------------
# How many estimated characters (symgrad.printing.width) a line holds, so that rows are broken
# before TeX has to shrink them. Measured on the ten example handouts (3417 cells): an estimated
# character is 5.9 pt of 11-pt math at the median, 7.26 pt at the 97th percentile; at 6.9 pt
# (7.26 x 0.95) a cell filled to its budget is shrunk to no less than 95 % in 97 cases of 100.
CHAR_PT = 6.9
ARTICLE_LINE = 466.6 / CHAR_PT     # a4 with 2.3 cm margins: \linewidth = 466.6 pt
BEAMER_LINE = 403.1 / (CHAR_PT * 10 / 11)  # a 16:9 frame (shrink=1), \small: 403.1 pt, 10 pt


def _article(doc) -> str:
    pr = dict(why_position="right", why_width=r"0.3\linewidth", note_width=r"0.42\linewidth",
              max_width=46, bare_width=72, line_chars=ARTICLE_LINE,
              fit=(r"0.2\linewidth", r"0.44\linewidth", r"0.72\linewidth"))
    out = [ARTICLE_PREAMBLE, r"\title{%s}" % _title_tex(doc.title),
           r"\author{%s \\[2pt] \small %s, typeset by symgrad}" % _subtitle_lines(doc),
           r"\date{}", r"\begin{document}", r"\maketitle", ""]
    for sec in doc.sections:
        out.append(r"\section{%s}" % sec.title)
        out.extend(_article_blocks(doc, sec.blocks, pr))
    if doc.exercises:
        out.append(r"\section{Exercises}")
        out.append(r"\begin{enumerate}")
        out.extend(r"\item %s" % stmt for stmt, _ in doc.exercises)
        out.append(r"\end{enumerate}")
        out.append(r"\clearpage")
        out.append(r"\section*{Solutions}")
        for k, (stmt, blocks) in enumerate(doc.exercises, 1):
            out.append(r"\subsection*{Exercise %d}" % k)
            out.append(stmt)
            out.extend(_article_blocks(doc, blocks, pr))
    out.append(r"\end{document}")
    return "\n".join(out) + "\n"


def _items(doc, blocks, pr, fit=None):
    """The document's blocks printed for one format (printer settings ``pr``), as the few kinds a
    format lays out: ("text", tex), ("steps", [[rows] per step], [may a page break before it]),
    ("display", tex) and ("algorithm", (title, lines)). ``fit``: (lhs, rhs) caps for rows the
    handout wrote itself, as the printer's own ``fit`` caps derivation rows."""
    for kind, body in blocks:
        if kind in ("derivation", "whole"):
            # "whole": a derivation shown at once on slides, not a step a click (a brief deck's
            # element level: XOR's --level both slides were 57 pages for 27 frames); a graph's
            # shared g's are a reference, not a reveal: no clicks either
            dpr = dict(pr, overlays=False) if kind == "whole" or \
                body.meta.get("overlays") is False else pr
            both = _printer(doc, **dpr).side_by_side(body)
            if both:
                yield "display", both
            else:
                yield ("steps", _printer(doc, **dpr).step_rows(body),
                       [s.lhs is not None and s.rule not in KEEP_WITH_PREVIOUS
                        for s in body.steps])
        elif kind == "math":
            steps = _fitted(body, *fit, pr.get("line_chars")) if fit else [[r] for r in body]
            yield "steps", steps, [True] * len(steps)
        elif kind == "boxed":
            yield "display", r"\boxed{%s}" % body
        else:
            yield kind, body


def _article_blocks(doc, blocks, pr) -> list[str]:
    """Text as paragraphs; a display follows its text with no blank line (no empty paragraph)."""
    out = []
    for kind, body, *breaks in _items(doc, blocks, pr, (r"0.25\linewidth", r"0.6\linewidth")):
        if kind == "text":
            out.append("\n" + body)
        elif kind == "list":
            out += ["\n" + t for t in body]
        elif kind == "steps":
            out.append(_align(body, breaks[0]))
        elif kind == "display":
            out.append(r"\[ \sgfit{\linewidth}{%s} \]" % body)
        elif kind == "picture":  # (symgrad.handouts.diagram)
            out.append(body["article"])
        elif kind == "algorithm":
            out.append(_algorithm_box(*body[:2], breakable=True, line_chars=0.94 * ARTICLE_LINE,
                                      number=_number(body)))
    return out


def _align(steps, breaks=None) -> str:
    """An align* of steps (each a list of rows): a page may break only before a step that starts
    something new (``breaks``), never inside a step (\\\\*), nor before the last step or after the
    first, so no row is left alone on a page."""
    breaks = breaks or [True] * len(steps)
    out = []
    for i, rows in enumerate(steps):
        if i:
            keep = i == 1 or i == len(steps) - 1 or not breaks[i]
            if _is_note(steps[i - 1][-1]):  # a note row already ended the row before it
                out.append("\n" if keep else "\n\\noalign{\\penalty\\interdisplaylinepenalty}\n")
            else:
                out.append(" \\\\*\n" if keep else " \\\\\n")
        out.append("".join(r if j == 0 else ("\n" if _is_note(rows[j - 1]) else " \\\\*\n") + r
                           for j, r in enumerate(rows)))
    return "\\begin{align*}\n" + "".join(out) + "\n\\end{align*}"


def _is_note(row: str) -> bool:
    """A justification or a left-hand side on a row of its own (a \\noalign): it ends no row."""
    return row.startswith(NOALIGN_ROWS)


def _fitted(rows, lhs_cap, rhs_cap, line_chars=None) -> list[list[str]]:
    """Rows written by the handout itself ("lhs &= rhs && note") with each side in an \\sgfit,
    as the printer does for derivations: nothing runs off the page. A right-hand side longer
    than its cap (``line_chars`` known) is first broken between its terms, continued on rows
    of its own (the gradient summary's g of a transformer block: shrunk to 39 % before)."""
    out = []
    for row in rows:
        main, bar, note = row.partition(" && ")
        m = re.match(r"^(.*?)(?<!\\)&(\s*(?:=|\\leftarrow).*)$", main, re.S)
        if not m or not m.group(1).strip():
            out.append([row])
            continue
        lhs, rhs = m.group(1).strip(), m.group(2)
        above, cap = [], rhs_cap
        if line_chars and tex_width(lhs) > _cap_chars(lhs_cap, line_chars):
            # a left-hand side wider than its column (a user's name of 20 characters in a
            # fraction, shrunk to 79 %): on a row of its own above, and a row with no note gives
            # its right-hand side what the two columns had
            above, lhs = [r"\sglhs{%s}" % lhs], ""
            if not note.strip():
                cap = r"%.2f\linewidth" % (1 - _cap_frac(lhs_cap))
        budget = _cap_chars(cap, line_chars)
        parts = break_terms(rhs.strip(), budget) if budget else [rhs]
        first = (r"\sgfit{%s}{%s} " % (lhs_cap, lhs) if lhs else "") + \
            r"&\sgfit{%s}{{}%s}" % (cap, parts[0]) + bar + note
        out.append(above + [first] + [r"&\quad \sgfit{%s}{%s}" % (cap, p) for p in parts[1:]])
    return out


def _cap_frac(cap: str) -> float:
    return float(re.fullmatch(r"\s*([0-9.]+)\s*\\linewidth\s*", cap).group(1))


def _cap_chars(cap: str, line_chars) -> float | None:
    """A cap such as 0.6\\linewidth in estimated characters of a line of ``line_chars``."""
    m = re.fullmatch(r"\s*([0-9.]+)\s*\\linewidth\s*", cap)
    return float(m.group(1)) * line_chars if m and line_chars else None


def _subtitle_lines(doc) -> tuple[str, str]:
    what, _, how = doc.subtitle.partition("; ")
    return what, how[:1].upper() + how[1:] if how else "Derived"


def _title_tex(title: str) -> str:
    return text_escape(title)


ALGORITHM_ROWS = 40  # an article's algorithm longer than this breaks across pages (an LSTM
# cell's has 61 rows: in one box it stood 448 pt taller than the page)


def _number(body) -> str | None:
    """An algorithm block is (title, lines) for the notes' Algorithm 6.4, or (title, lines,
    number) with its own number, None for none (the weight-by-weight gradient descent)."""
    return body[2] if len(body) > 2 else "6.4"


def _label(title, number, bold=r"\textbf{%s}") -> str:
    return (bold % f"Algorithm {number}") + " (derived): " + title if number else \
        (bold % "Algorithm") + ": " + title


def _algorithm_box(title, lines, width=r"0.94\linewidth", size="", breakable=False,
                   line_chars=None, number="6.4", start=0) -> str:
    """``line_chars``: the characters a line of the box holds (its size's), so that a long
    line is continued on unnumbered rows, broken between terms, rather than shrunk. ``start``:
    the lines numbered before this box (a slide's algorithm continued from the frame before)."""
    rows, k = [], start
    for kind, tex in lines:
        if kind == "head":
            rows.append(r" & \textbf{%s} \\" % tex)
        else:
            k += 1
            parts = break_terms(tex, 0.84 * line_chars) if line_chars else [tex]
            rows.append(r"{\footnotesize %d:} & \quad \sgfit{0.88\linewidth}{\textstyle %s} \\"
                        % (k, parts[0]))
            rows += [r" & \qquad \sgfit{0.84\linewidth}{\textstyle %s} \\" % p for p in parts[1:]]
    if breakable and len(rows) > ALGORITHM_ROWS:
        return "\n".join([
            r"\par\noindent\rule{\linewidth}{0.8pt}\par\vspace{1pt}",
            r"\noindent %s\par\vspace{2pt}" % _label(title, number),
            r"\noindent\rule{\linewidth}{0.4pt}",
            r"\begin{longtable}{@{}r@{\hspace{0.6em}}l@{}}",
            *rows,
            r"\end{longtable}",
            r"\vspace{-\baselineskip}\noindent\rule{\linewidth}{0.8pt}\par"])
    return "\n".join([
        r"\begin{center}\begin{minipage}{%s}%s" % (width, size),
        r"\hrule height 0.8pt\relax\vspace{3pt}",
        r"%s\par\vspace{3pt}" % _label(title, number),
        r"\hrule\relax\vspace{4pt}",
        r"\begin{tabular}{@{}r@{\hspace{0.6em}}l@{}}",
        *rows,
        r"\end{tabular}\par\vspace{3pt}",
        r"\hrule height 0.8pt\relax",
        r"\end{minipage}\end{center}"])


# -- beamer ---------------------------------------------------------------------------------------
FRAME_HEIGHT = 17.0  # in lines of \small text on a 16:9 frame
DISPLAY_SKIP = 1.0   # the space above and below a display


def _beamer(doc, reveal: bool = True) -> str:
    out = [BEAMER_PREAMBLE, r"\title{%s}" % _title_tex(doc.title),
           r"\subtitle{%s}" % _subtitle_lines(doc)[0],
           r"\author{%s, typeset by symgrad}" % _subtitle_lines(doc)[1],
           r"\date{}", r"\begin{document}", r"\begin{frame}\titlepage\end{frame}", ""]
    for sec in doc.sections:
        out.append(r"\section{%s}" % sec.title)
        out.extend(_frames(doc, sec.title, sec.blocks, reveal))
    if doc.exercises:
        items = "\n".join(r"\item %s" % stmt for stmt, _ in doc.exercises)
        out.append(_frame("Exercises", r"\begin{enumerate}" + "\n" + items + "\n"
                          r"\end{enumerate}" + "\n" + r"\vfill{\small Solutions at the end.}"))
        for k, (stmt, blocks) in enumerate(doc.exercises, 1):
            out.extend(_frames(doc, "Solution to exercise %d" % k, [("text", stmt), *blocks],
                               reveal))
    out.append(r"\end{document}")
    return "\n".join(out) + "\n"


def _frame(title, body) -> str:
    # shrink: where the estimate of heights was short (one long chain, a tall matrix), beamer
    # scales the frame down to fit rather than letting it run off the bottom
    return "\\begin{frame}[shrink=1]{%s}\n\\small\n%s\n\\end{frame}\n" % (title, body)


def _frames(doc, title, blocks, reveal: bool = True) -> list[str]:
    """Pack blocks into frames; a derivation gets frames of its own, its steps uncovered a few
    at a time (:func:`_clicks`; none without ``reveal``). The blocks are units (a paragraph, a
    display, a chain of steps: a page breaks only where a step has its own left-hand side) of
    estimated heights, laid into the fewest frames, of nearly equal height (:func:`_balanced`)."""
    pr = dict(why_position="below", max_width=62, overlays=reveal, note_width=r"0.6\linewidth",
              why_width=r"0.6\linewidth", fit=(r"0.28\linewidth", r"0.66\linewidth"),
              line_chars=BEAMER_LINE)
    # (piece or rows of a chain, height, the steps block it is of or None, may a frame start
    # with it: not with a block's first chain after text, which stays with what leads into it)
    units = []
    for n, (kind, body, *breaks) in enumerate(_items(doc, blocks, pr, (r"0.3\linewidth",
                                                                       r"0.66\linewidth"))):
        if kind == "steps":
            for rows, may_break in zip(body, breaks[0]):
                if not units or units[-1][2] != n:  # (after another block's chain it may)
                    units.append(([], 0.0, n, bool(units) and units[-1][2] is not None))
                elif may_break:
                    units.append(([], 0.0, n, True))
                chain, h, _, brk = units[-1]
                units[-1] = (chain + rows, h + sum(_row_height(r) for r in rows), n, brk)
            continue
        if kind == "text":
            piece, h = body, max(1.0, tex_width(body) / 80) + 0.4
        elif kind == "list":  # (a definition an item: as one paragraph, slide 5's 9 lines)
            piece = "\\begin{itemize}\n%s\n\\end{itemize}" % "\n".join(
                r"\item " + t for t in body)
            h = sum(max(1.0, tex_width(t) / 74) + 0.3 for t in body) + 0.4
        elif kind == "display":
            piece = r"\[ \sgfit{\linewidth}{%s} \]" % body
            h = sum(_row_height(r) for r in body.split(r"\\")) + DISPLAY_SKIP
        elif kind == "picture":  # (symgrad.handouts.diagram)
            piece, h = body["beamer"], body["lines"]
        else:
            units += _algorithm_units(body)
            continue
        units.append((piece, h, None, True))
    frames = []
    for k, (a, b) in enumerate(_balanced(units)):
        out, chain, block = [], [], None
        for piece, _, n, _ in _clicks(units[a:b]):
            if n is None or n != block:
                if chain:
                    out.append(_display(chain))
                chain, block = [], n
            if n is None:
                out.append(piece)
            else:
                chain += piece
        if chain:
            out.append(_display(chain))
        frames.append(_frame(title + (r" (cont.)" if k else ""), "\n".join(out)))
    return frames


# The least a click may uncover, and the least a frame shows before its first, in estimated
# lines (_row_height): a third of a frame, what TAIL calls near-empty. A \pause before every step
# made pages that differ by one row of about 2.6 lines (XOR's shared backward pass: frames of 3
# and 4 pages, each a g more); now a click shows a chain's result, or several steps at once.
# Measured (pages of brief slides, before -> after): XOR --level both 30 -> 27, 2-2-1 22 -> 19,
# 784-256-128-10 softmax/CE 32 -> 25 (a quarter of a frame kept 28, 20 and 28).
REVEAL = FRAME_HEIGHT / 3


def _clicks(units, least: float = REVEAL) -> list:
    """A frame's units with the \\pause (the printer's, before each step of a derivation) kept
    only where the rows since the last click and the rows after it each fill ``least`` lines:
    the frame's first page shows that much, and no click adds less. A frame whose derivation
    is short gets none; the last page of a frame is the same whichever are kept."""
    heights, block = [], None  # per unit, each row's height (a piece: one row), as _balanced
    for piece, h, n, _ in units:
        skip = DISPLAY_SKIP if n is not None and n != block else 0.0
        heights.append([skip + h] if n is None else
                       [skip * (j == 0) + _row_height(r) for j, r in enumerate(piece)])
        block = n
    left = sum(map(sum, heights))  # the height from the last click on
    out, shown = [], 0.0           # the height since the last click
    for (piece, h, n, brk), hs in zip(units, heights):
        if n is None:
            out.append((piece, h, n, brk))
            shown += hs[0]
            continue
        rows = []
        for r, rh in zip(piece, hs):
            if r.startswith(PAUSE):
                if shown >= least and left - shown >= least:
                    left, shown = left - shown, 0.0
                else:
                    r = r[len(PAUSE):]
            rows.append(r)
            shown += rh
        out.append((rows, h, n, brk))
    return out


BEAMER_ALGORITHM_ROWS = 18  # the rows of \scriptsize an algorithm's frame holds at full size
# What a box of several really holds, in plain rows, a taller row counting more. Measured on the
# attention slides (shrink=1's warnings): 18 plain rows with the box's rules and title were 105 %
# of a frame (shrunk to 95 %); 17 rows, 15 of them updates (\tfrac{1}{n} \textstyle\sum_{i=1}^{n}),
# 117 %; 18 rows, 5 of them a bracket with scripts ([v]_{1:T}^T) or a fraction (1/√2), 122 %;
# the first box with the section's two-line opening sentence above it 128 %. So a frame holds 17,
# the first box of several 14, an update row counts 1.25 and a tall row 1.6.
FRAME_ROWS, OPENING_ROWS = 17, 3
ROW_WEIGHTS = ((re.compile(r"\\right[\])][_^]|\\frac\{"), 1.6),
               (re.compile(r"\\textstyle\\sum_"), 1.25))


def _row_weight(tex: str) -> float:
    return next((w for pattern, w in ROW_WEIGHTS if pattern.search(tex)), 1.0)


def _algorithm_units(body) -> list:
    """A slide's algorithm as boxes of at most BEAMER_ALGORITHM_ROWS rows, each a frame's unit,
    numbered on from the box before: in one box the attention handout's 80 rows went on one
    frame that shrink=1 scaled until unreadable. The boxes are of nearly equal rows (no short
    tail to merge back into a full frame), each of several within what a frame holds (FRAME_ROWS,
    tall rows weighed: the attention slides' were shrunk to 78-82 %), and a box ends on no
    heading."""
    title, lines = body[:2]
    # \scriptsize is 8 pt of the frame's 10, yet a line held only ~1.1 times the characters
    # (at 10/8 a transformer's line was shrunk to 90 %)
    chars = 0.98 * BEAMER_LINE * 1.1
    sizes = [1 if kind == "head" else len(break_terms(tex, 0.84 * chars)) for kind, tex in lines]
    heights = [size * (1.0 if kind == "head" else _row_weight(tex))
               for size, (kind, tex) in zip(sizes, lines)]

    def fill(cap, several):
        chunks, rows, height = [[]], 0, 0.0
        for line, size, h in zip(lines, sizes, heights):
            # (one box alone is as it was: 2-2-1's 17 rows share a frame with the sentence)
            room = FRAME_ROWS - (OPENING_ROWS if len(chunks) == 1 else 0)
            if chunks[-1] and (rows + size > cap or several and height + h > room):
                # a heading moves on with the lines under it
                moved = [chunks[-1].pop()] if chunks[-1][-1][0] == "head" else []
                chunks.append(moved)
                rows, height = len(moved), float(len(moved))
            chunks[-1].append(line)
            rows += size
            height += h
        return chunks

    n = -(-sum(sizes) // BEAMER_ALGORITHM_ROWS)
    while True:  # more boxes, evenly filled, until none is more than a frame holds
        chunks = fill(-(-sum(sizes) // n) if n else 0, n > 1)
        if len(chunks) <= n or n <= 1:
            break
        n += 1
    units, start = [], 0
    for j, chunk in enumerate(chunks):
        piece = _algorithm_box(title + (" (continued)" if j else ""), chunk, r"0.98\linewidth",
                               r"\scriptsize", line_chars=chars, number=_number(body),
                               start=start)
        start += sum(kind != "head" for kind, _ in chunk)
        # a box of a full frame's rows: no two share a frame
        h = 0.6 * len(chunk) + 1.5 if len(chunks) == 1 else FRAME_HEIGHT * 0.75
        units.append((piece, h, None, True))
    return units


TAIL = FRAME_HEIGHT / 3       # a frame holding less than this is near-empty
MERGED = FRAME_HEIGHT * 4 / 3  # the most two frames merged may hold


def _balanced(units) -> list[tuple[int, int]]:
    """(start, stop) of the units on each frame: as few frames as filling each to FRAME_HEIGHT
    takes, then the least cap that still takes no more, so the frames come out of nearly equal
    height rather than full ones and a near-empty "(cont.)" (the MNIST slides had frames of
    12 characters after full ones). A unit taller than a frame has one of its own (shrink=1
    fits it); a frame under a third of one joins a neighbour where the two hold at most
    MERGED."""
    def fill(cap):
        out, start, h, block = [], 0, 0.0, None
        for i, (_, uh, n, brk) in enumerate(units):
            add = uh + (DISPLAY_SKIP if n is not None and n != block else 0.0)
            if i > start and brk and h + add > cap:
                out.append((start, i, h))
                start, h, block = i, 0.0, None
                add = uh + (DISPLAY_SKIP if n is not None else 0.0)
            h, block = h + add, n
        if units:
            out.append((start, len(units), h))
        return out

    full = fill(FRAME_HEIGHT)
    lo, hi = 0.0, FRAME_HEIGHT
    for _ in range(30):  # the least cap that takes no more frames than filling to the brim
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if len(fill(mid)) <= len(full) else (mid, hi)
    frames = fill(hi)
    # a frame still under a third (one chain between two too tall to share: XOR's ∂ℓ/∂b₂ between
    # ∇W⁽¹⁾ and ∇b⁽¹⁾ assembled, 27 characters) joins the lower of its neighbours, where the
    # two hold at most MERGED
    while True:
        joins = [(frames[i][2] + frames[j][2], min(i, j)) for i in range(len(frames))
                 if frames[i][2] < TAIL for j in (i - 1, i + 1) if 0 <= j < len(frames)
                 and frames[i][2] + frames[j][2] <= MERGED]
        if not joins:
            break
        h, i = min(joins)
        frames[i:i + 2] = [(frames[i][0], frames[i + 1][1], h)]
    return [(a, b) for a, b, _ in frames]


def _display(rows) -> str:
    # a row of its own (a \noalign) ends no row: a \\ after it made an empty row
    body = "".join(r if not j else ("\n" if _is_note(rows[j - 1]) else " \\\\\n") + r
                   for j, r in enumerate(rows))
    return "\\[\\begin{aligned}\n" + body + "\n\\end{aligned}\\]"


def _row_height(row: str) -> float:
    """Estimated height in lines of \\small text: fractions, shapes underneath, matrix and cases
    rows, and a justification's wrapped lines (a 0.6-line-wide \\parbox of footnotesize)."""
    if r"\parbox" in row:
        text = re.sub(r"\$[^$]*\$", "xxxx", row.split(r"\footnotesize", 1)[-1])
        shape = 0.7 if r"\scriptstyle" in row else 0.0
        return 0.3 + shape + 0.95 * max(1, -(-len(text) // 55))
    h = 1.3
    if r"\frac" in row or r"\underbrace" in row or r"\sum" in row:
        h += 0.9
    if r"\underbrace" in row:
        h += 0.5
    m = max((len(re.findall(r"\\\\", b)) for b in re.findall(r"\\begin\{(?:matrix|cases)\}(.*?)"
                                                               r"\\end\{(?:matrix|cases)\}", row)),
            default=0)
    return h + 1.2 * m


# -- markdown -------------------------------------------------------------------------------------
def _markdown(doc) -> str:
    pr = dict(why_position="below", max_width=70)
    out = [f"# {_md_text(_title_tex(doc.title))}", "",
           "*%s. %s by symgrad.*" % tuple(map(_md_text, _subtitle_lines(doc))), ""]
    for sec in doc.sections:
        out += [f"## {_md_text(sec.title)}", ""]
        out += _md_blocks(doc, sec.blocks, pr)
    if doc.exercises:
        out += ["## Exercises", ""]
        out += [f"{k}. {_md_text(stmt)}" for k, (stmt, _) in enumerate(doc.exercises, 1)]
        out += ["", "---", "", "## Solutions", ""]
        for k, (stmt, blocks) in enumerate(doc.exercises, 1):
            out += [f"### Exercise {k}", "", _md_text(stmt), ""]
            out += _md_blocks(doc, blocks, pr)
    return "\n".join(out).rstrip() + "\n"


def _md_blocks(doc, blocks, pr) -> list[str]:
    out = []
    for kind, body, *_ in _items(doc, blocks, pr):
        if kind == "text":
            out += [_md_text(body), ""]
        elif kind == "list":
            out += ["- " + _md_text(t) for t in body] + [""]
        elif kind == "steps":
            rows = [r for step in body for r in step]
            out += ["$$", "\\begin{aligned}", _md_math(" \\\\\n".join(rows)), "\\end{aligned}",
                    "$$", ""]
        elif kind == "display":
            out += ["$$", _md_math(body), "$$", ""]
        elif kind == "picture":  # TikZ: KaTeX cannot draw it (symgrad.handouts.diagram)
            out += [body["markdown"], ""]
        elif kind == "algorithm":
            title, lines = body[:2]
            out += [_label(title, _number(body), "**%s**"), ""]
            k = 0
            for kind_, tex in lines:
                if kind_ == "head":
                    out += ["", f"*{tex}*", ""]
                else:
                    k += 1
                    out.append(f"{k}. ${_md_math(tex)}$")
            out.append("")
    return out


# TeX's text escapes as Markdown's: a bracket or backquote escaped (no link, no code span forms),
# TeX's quotes as plain ones
_MD = {r"\textbackslash{}": "\\\\", r"\textasciitilde{}": "~", r"\textasciicircum{}": "^",
       r"\textless{}": "&lt;", r"\textgreater{}": "&gt;", r"\textbar{}": "|", "''": '"', "``": '"',
       "{[}": "\\[", "{]}": "\\]", r"\textasciigrave{}": "\\`"}


# Inside math, MathJax and KaTeX without extensions know neither text-mode escapes nor \textbf in
# \text, and a "\$" would end inline math in a Markdown renderer: user names' special characters
# become look-alike full-width characters (printing.names.portable_math), \text{\textbf{…}}
# becomes \textbf{…}; the table catches an escape left outside a text group.
_MD_MATH = [(r"\textbackslash{}", "＼"), (r"\textasciicircum{}", "＾"), (r"\textasciitilde{}", "～"),
            (r"\textless{}", "＜"), (r"\textgreater{}", "＞"), (r"\textbar{}", "｜"), (r"\$", "＄"),
            (r"\&", "＆"), (r"\%", "％"), (r"\#", "＃"), (r"\_", "＿"), (r"\{", "｛"),
            (r"\}", "｝")]


def _md_math(tex: str) -> str:
    tex = portable_math(tex, fullwidth=True)
    for a, b in _MD_MATH:
        tex = tex.replace(a, b)
    return tex


def _md_text(tex: str) -> str:
    """LaTeX text (with $…$ math) as Markdown: math kept, text escapes made Markdown escapes."""
    parts = re.split(r"((?<!\\)\$(?:[^$\\]|\\.)*\$)", tex)
    for i in range(1, len(parts), 2):
        parts[i] = _md_math(parts[i])
    for i in range(0, len(parts), 2):
        t = parts[i]
        for a, b in _MD.items():
            t = t.replace(a, b)
        t = re.sub(r"\\(?:textbf|emph)\{([^{}]*)\}", r"**\1**", t)
        t = t.replace("*", r"\*") if "**" not in t else t
        parts[i] = t
    return "".join(parts)
