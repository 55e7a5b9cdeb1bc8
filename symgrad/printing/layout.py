"""How a derivation is laid out: each step as rows of an ``aligned`` block, long rows broken.

Where it sits: print. A mixin of :class:`symgrad.latex.NotesLatexPrinter`: a step becomes
``lhs &= rhs && justification`` (or the justification on a row below); a right-hand side wider than
``max_width`` (estimated by ``symgrad.latex_width``) is broken between terms of a sum, between the
factors of a chain (keeping each shape underneath), or inside σ(…) of a long sum; with ``fit`` set,
TeX scales down any cell that is still too wide (``\\sgfit``, which says so in the log).

With ``fit`` and ``line_chars`` (a handout), each cell's budget is its cap's share of the line, so
rows are broken before TeX would have to shrink them; a block with a row that cannot be broken
narrow enough (a row of blocks gᵢxᵀ, a cases) gives its right-hand sides the width of the
justification column and writes its justifications below the rows, as does a justification longer
than two lines of its column (``\\sgnotebelow``).
"""
from __future__ import annotations

import re
from dataclasses import replace

import sympy as sp

from symgrad.core.derivation import Derivation, Factors, Note, Remark, Step, StepKind
from symgrad.printing.names import with_symbols
from symgrad.printing.terms import call_of_sum, factor_count, positive_first, term, names_in, notes_order
from symgrad.printing.width import break_terms, tex_width


# a column heading for each way of deriving, by the kind of step it uses (the chain rule first)
# rows that are a \noalign (in an align*, after a \\): a justification below its step, a left-hand
# side above it; they end no row and take no \pause
NOALIGN_ROWS = (r"\sgnotebelow", r"\sglhs")
# what starts a step's first row on slides (``overlays``): beamer uncovers the rest on a click
PAUSE = "\\pause "

# A justification longer than this (estimated characters) takes more than two lines of the article's
# 0.3-line column (about 33 characters of \footnotesize a line): it goes on a row of its own below.
NOTE_BELOW = 66

_METHOD_HEADS = ((StepKind.CHAIN_RULE, "the chain rule"),
                 (StepKind.SUBSTITUTION, "substitute, then differentiate"))


class DerivationLayout:
    """The layout half of the notes' printer (settings and _print come from the printer)."""

    def doprint_derivation(self, d: Derivation) -> str:
        saved = self._nota
        if d.meta.get("symbols") and not self._nota.symbols:  # (a handout's notation has them)
            self._nota = with_symbols(self._nota, *d.meta["symbols"])
        if d.meta.get("heads"):  # (a handout's notation has them already: with_heads is idempotent)
            self._nota = self._nota.with_heads(d.meta["heads"])
        try:
            if self._settings["two_methods"]:
                both = self.side_by_side(d)
                if both:
                    return both
            return self._aligned(d.steps, d.meta)
        finally:
            self._nota = saved

    def _aligned(self, steps, meta=None) -> str:
        # (meta: the names an engine wrote only in its words, meta["names"], are names still)
        rows = [line for step in self.step_rows(Derivation("", list(steps), meta=dict(meta or {})))
                for line in step]
        return "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"

    def side_by_side(self, d: Derivation) -> str | None:
        """A derivation done several ways (the f∘g example: one run of steps marked ``method`` 1,
        then 2, …, then an ``AGREE`` step): the shared steps before it, the ways in columns, then
        the agreement. None for any other derivation. The ways are found by the steps' types,
        never by the words of their justifications."""
        marked = [i for i, s in enumerate(d.steps) if s.method]
        if not marked:
            return None
        a, end = marked[0], marked[-1] + 1
        ways = [s.method for s in d.steps[a:end]]
        if (len(marked) != end - a or ways != sorted(ways) or ways[-1] < 2
                or set(ways) != set(range(1, ways[-1] + 1))
                or end == len(d.steps) or d.steps[end].rule is not StepKind.AGREE):
            return None
        bounds = [a + ways.index(k) for k in range(1, ways[-1] + 1)] + [end]
        result = next((s.lhs for s in reversed(d.steps[:end]) if s.lhs is not None), None)
        cols = []
        for k, (lo, hi) in enumerate(zip(bounds, bounds[1:]), 1):
            rules = {s.rule for s in d.steps[lo:hi]}
            head = next((h for rule, h in _METHOD_HEADS if rule in rules), "")
            # the heading says "Method k": a justification that opens with those words (as the
            # linear printouts need it to) does not say them again under it
            lead = f"method {k}:"
            steps = [replace(s, why=s.why[len(lead):].strip())
                     if s.why[:len(lead)].lower() == lead else s for s in d.steps[lo:hi]]
            saved = dict(self._settings)
            self._settings.update(why_position="below", why_small=True, why_width=None)
            try:
                body = self._aligned(steps, d.meta).replace(r"\begin{aligned}", r"\begin{aligned}[t]", 1)
            finally:
                self._settings = saved
            cols.append((r"\text{Method %d%s}" % (k, ": " + head if head else ""), body))
        last = d.steps[end - 1].rhs
        parts = [self._aligned(d.steps[:a], d.meta)] if a else []
        # plain {cc}: KaTeX refuses @{...} in a column spec ("Unknown column alignment: @"), and
        # MathJax and pdflatex take {cc} alike; a \quad after each column but the last, with the
        # 2 x 5pt of \arraycolsep, makes the 2em gap @{\qquad} made
        gap = r" \quad"
        parts.append("\\begin{array}{%s}\n%s \\\\[4pt]\n%s\n\\end{array}"
                     % ("c" * len(cols), " & ".join(h + gap for h, _ in cols[:-1]) + " & "
                        + cols[-1][0], ("%s\n&\n" % gap).join(b for _, b in cols)))
        note = d.steps[end].rhs
        agreed = r"\text{%s: }" % self._words(note._text if isinstance(note, Note)
                                              else "both methods agree")
        if result is not None:
            agreed += r"%s = %s" % (self._print(result), self._print(last))
        parts.append(agreed)
        return "\\begin{gathered}\n" + " \\\\[8pt]\n".join(parts) + "\n\\end{gathered}"

    def step_rows(self, d: Derivation) -> list[list[str]]:
        """Each step's rows (a long step takes several), for an aligned or align* body."""
        own_vectors, own_scalars = names_in(d)
        vectors, scalars = self._settings["vectors"], self._settings["scalars"]
        if not (vectors or scalars):
            self._names = own_vectors, own_scalars
        else:  # a name this derivation uses as a scalar (yhat) is a scalar in its words too
            self._names = (tuple(v for v in vectors if v not in own_scalars or v in own_vectors),
                           tuple(set(scalars) | set(own_scalars)))
        self._bare = not any(self._notes(s) for s in d.steps)
        self._too_wide = False
        out = [self._step_lines(s) for s in d.steps]
        if self._too_wide and self._wide_caps():  # a row the column cannot hold: notes below
            out = [self._step_lines(s, wide=True) for s in d.steps]
        for i, lines in enumerate(out):
            if self._settings["overlays"] and i:  # (a row of its own, a \noalign, takes none)
                k = next(j for j, ln in enumerate(lines) if not ln.startswith(NOALIGN_ROWS))
                lines[k] = PAUSE + lines[k]
        return out

    def _cap_chars(self, cap: str) -> float | None:
        """A cap such as 0.44\\linewidth as a budget in estimated characters, when the line's
        width in characters is known (``line_chars``); else None."""
        m = re.fullmatch(r"\s*([0-9.]+)\s*\\linewidth\s*", cap or "")
        chars = self._settings["line_chars"]
        return float(m.group(1)) * chars if m and chars else None

    def _wide_caps(self) -> bool:
        """May a block of this printer put its notes below to give its rows the whole line? (a
        handout's article: notes at the right, a third cap for the whole line, the macro.)"""
        caps = self._settings["fit"]
        return bool(caps and len(caps) > 2 and self._settings["line_chars"]
                    and self._settings["why_position"] == "right")

    def _step_lines(self, s: Step, wide: bool = False) -> list[str]:
        lhs = "" if s.lhs is None else self.doprint(s.lhs)
        # a block with no justifications anywhere has the whole line for its right-hand sides
        bare = self._bare and self._settings["bare_width"]
        caps = self._settings["fit"]
        rhs_cap = caps and (caps[2] if (bare or wide) and len(caps) > 2 else caps[1])
        budget = self._cap_chars(rhs_cap) if caps else None
        if budget is None:
            budget = max((bare or self._settings["max_width"]) - tex_width(lhs) - 2, 16)
        chunks = self._broken(s, budget)
        if caps and max(map(tex_width, chunks)) > budget:
            self._too_wide = True
        why = self._why(s)
        below = wide or (why is not None and self._wide_caps() and _note_chars(why) > NOTE_BELOW)
        notes = self._notes(s, shapes_only=below and not wide)
        above = None  # a left-hand side wider than its column (a long user name): on its own row
        if caps and lhs and self._settings["line_chars"] and \
                tex_width(lhs) > self._cap_chars(caps[0]):
            above, lhs = r"\sglhs{%s}" % lhs, ""
        if caps:  # TeX scales a cell down only if it is still wider than its share of the line
            lhs = lhs and r"\sgfit{%s}{%s}" % (caps[0], lhs)
            chunks = [r"\sgfit{%s}{%s}" % (rhs_cap, c) for c in chunks]
        rel = r"\leftarrow" if s.rule is StepKind.UPDATE else "="  # (w ← w − ε ∂f/∂w)
        if s.lhs is None and isinstance(s.rhs, Remark):  # a sentence, not "= text"
            rel = r"\quad"
        lines = [f"{lhs} &{rel} {chunks[0]}"] + [r"&\quad %s" % c for c in chunks[1:]]
        pos = self._settings["why_position"]
        if below and (why is not None or notes):  # (the shapes stay at the right unless wide)
            if notes and not wide:
                lines[0] += r" && " + notes
            lines.append(self._note_below(s, wide))
        elif notes and pos == "right":
            lines[0] += r" && " + notes
        elif notes and pos == "below":
            lines.append(r"& \qquad %s" % notes)
        return [above] + lines if above else lines

    def _why(self, s: Step) -> str | None:
        """The justification's words as TeX text, when this printer shows them."""
        if self._settings["show_why"] and s.why and self._settings["why_position"] != "none":
            return s.why_latex or self._words(s.why)
        return None

    def _note_below(self, s: Step, wide: bool) -> str:
        """A justification on a row of its own under its step (\\sgnotebelow: right-aligned,
        as wide as the third cap), with the step's shapes in front of it when the row is wide."""
        shapes = self._shapes(s) if wide else None
        text = self._why(s) or ""
        return r"\sgnotebelow{%s}{%s%s}" % (
            self._settings["fit"][2], r"$%s$\quad " % shapes if shapes else "", text)

    def _shapes(self, s: Step) -> str | None:
        """The step's shapes (r × c ·…) unless they are written under the chain's factors."""
        if self._settings["show_shapes"] and s.shapes and not (
                self._settings["shape_style"] == "underbrace" and factor_count(s.rhs) == len(s.shapes)
                and len(s.shapes) > 1):
            return r"\scriptstyle " + r" \cdot ".join(f"{r} \\times {c}" for r, c in s.shapes)
        return None

    def _notes(self, s: Step, shapes_only: bool = False) -> str:
        parts = []
        shapes = self._shapes(s)
        if shapes:
            parts.append(shapes)
        if not shapes_only and self._why(s) is not None:
            text = self._why(s)
            width = self._settings["why_width"]
            parts.append(r"\parbox[t]{%s}{\raggedright\footnotesize %s}" % (width, text) if width
                         else r"{\scriptstyle \text{%s}}" % text if self._settings["why_small"]
                         else r"\text{%s}" % text)
        if len(parts) == 2 and self._settings["why_width"]:
            return r"\begin{array}[t]{@{}l@{}}%s \\[-2pt] %s\end{array}" % (
                "{" + parts[0] + "}", parts[1])
        return r"\quad ".join("{%s}" % p if p.startswith(r"\scriptstyle") else p for p in parts)

    def _broken(self, s: Step, budget: float) -> list[str]:
        """The right-hand side as one or more rows of at most ``budget`` (estimated) width."""
        rhs = s.rhs
        if type(rhs).__name__ == "Note" and self._settings["note_width"]:
            return [r"\parbox[t]{%s}{\raggedright %s}" % (self._settings["note_width"],
                                                          self._words(rhs._text))]
        if isinstance(rhs, (sp.Add, sp.MatAdd, sp.Derivative)) or factor_count(rhs) > 1 \
                or call_of_sum(rhs) or _block_row(rhs):
            self._chain_shapes = s.shapes
            whole = self._print(rhs)
            if tex_width(whole) <= budget:
                return [whole]
            return self._split(rhs, budget, s.shapes) or self._by_text(whole, budget)
        self._chain_shapes = None
        return self._by_text(self._print(rhs), budget)

    def _by_text(self, tex: str, budget: float) -> list[str]:
        """A row with no break the expression's structure gives (a product of a name and a
        parenthesized sum, ∂/∂w[a fraction]) broken in its printed text, between factors or
        inside its parentheses, when TeX would otherwise shrink it (a handout's ``fit``): the
        softsign net's w₅x₁(out − y)(…) was shrunk to 90 %."""
        if not self._settings["fit"] or tex_width(tex) <= budget:
            return [tex]
        return break_terms(tex, budget)

    def _split(self, rhs, budget, shapes):
        open_, close = "", ""
        if isinstance(rhs, sp.Derivative) and isinstance(rhs.expr, sp.Add) \
                and len(rhs.variables) == 1:
            open_ = r"\frac{\partial}{\partial %s}\Bigl[" % self._print(rhs.variables[0])
            close, rhs = r"\Bigr]", rhs.expr
        elif call_of_sum(rhs):  # σ(a long sum): break the sum inside σ\Bigl( … \Bigr)
            hole = sp.Symbol("SYMGRADHOLE")
            # cut at the hole as printed: a name of several letters prints as \mathrm{…}
            head = self._print(rhs.func(hole)).partition(self._print(hole))[0]
            open_ = re.sub(r"(\\left)?\($", "", head) + r"\Bigl("
            close, rhs = r"\Bigr)", rhs.args[0]
        if _block_row(rhs):  # a row of blocks [g₁hᵀ g₂hᵀ … gₖhᵀ]: continued in \Bigl[ … \Bigr]
            open_, close = r"\Bigl[", r"\Bigr]"
            row = rhs.blocks[0, :] if isinstance(rhs, sp.BlockMatrix) else rhs[0, :]
            pieces = [(r"\quad " if j else "") + self._print(b) for j, b in enumerate(row)]
        elif isinstance(rhs, (sp.Add, sp.MatAdd)):
            terms = positive_first(notes_order(self._as_ordered_terms(rhs))
                                    if isinstance(rhs, sp.Add) else rhs.args)
            pieces = [term(self, t, i == 0) for i, t in enumerate(terms)]
        elif factor_count(rhs) > 1:
            self._chain_shapes = shapes
            sep = r" \cdot " if isinstance(rhs, Factors) else " "
            pieces = self._print(rhs).split(sep) if not shapes else None
            if pieces is None:  # print factor by factor, keeping each underbrace
                parts = self._underbraced([self._paren(a) for a in rhs.args], shapes)
                pieces = [p if i == 0 else sep.strip() + " " + p if sep != " " else p
                          for i, p in enumerate(parts)]
        else:
            return None
        lines, cur = [], open_
        for p in pieces:
            if cur.strip() and tex_width(cur + p) > budget:
                lines.append(cur + (r"\Bigr." if open_ and not lines else ""))
                cur = (r"\Bigl." if open_ else "") + p
            else:
                cur = (cur + " " + p) if cur.strip() else cur + p
        lines.append(cur + close)
        return lines


def _note_chars(text: str) -> float:
    """A justification's length in estimated characters: its words, and its $…$ math by width."""
    return sum(tex_width(p[1:-1]) if p.startswith("$") else len(p)
               for p in re.split(r"(\$[^$]*\$)", text))


def _block_row(e) -> bool:
    """A row of blocks or entries, short enough to be shown whole (a wide one is elided)."""
    if isinstance(e, sp.BlockMatrix):
        return e.blocks.shape[0] == 1 and e.blocks.shape[1] > 1
    return isinstance(e, sp.MatrixBase) and e.rows == 1 and 1 < e.cols <= 12
