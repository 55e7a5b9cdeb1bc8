"""How a derivation is laid out: each step as rows of an ``aligned`` block, long rows broken.

Where it sits: print. A mixin of :class:`symgrad.latex.NotesLatexPrinter`: a step becomes
``lhs &= rhs && justification`` (or the justification on a row below); a right-hand side wider than
``max_width`` (estimated by ``symgrad.latex_width``) is broken between terms of a sum, between the
factors of a chain (keeping each shape underneath), or inside σ(…) of a long sum; with ``fit`` set,
TeX scales down any cell that is still too wide (``\\sgfit``).
"""
from __future__ import annotations

import re
from dataclasses import replace

import sympy as sp

from symgrad.core.derivation import Derivation, Factors, Note, Step, StepKind
from symgrad.printing.terms import call_of_sum, factor_count, positive_first, term, names_in, notes_order
from symgrad.printing.width import tex_width


# a column heading for each way of deriving, by the kind of step it uses (the chain rule first)
_METHOD_HEADS = ((StepKind.CHAIN_RULE, "the chain rule"),
                 (StepKind.SUBSTITUTION, "substitute, then differentiate"))


class DerivationLayout:
    """The layout half of the notes' printer (settings and _print come from the printer)."""

    def doprint_derivation(self, d: Derivation) -> str:
        if self._settings["two_methods"]:
            both = self.side_by_side(d)
            if both:
                return both
        return self._aligned(d.steps)

    def _aligned(self, steps) -> str:
        rows = [line for step in self.step_rows(Derivation("", list(steps))) for line in step]
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
                body = self._aligned(steps).replace(r"\begin{aligned}", r"\begin{aligned}[t]", 1)
            finally:
                self._settings = saved
            cols.append((r"\text{Method %d%s}" % (k, ": " + head if head else ""), body))
        last = d.steps[end - 1].rhs
        parts = [self._aligned(d.steps[:a])] if a else []
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
        out = []
        for i, s in enumerate(d.steps):
            lines = self._step_lines(s)
            if self._settings["overlays"] and i:
                lines[0] = r"\pause " + lines[0]
            out.append(lines)
        return out

    def _step_lines(self, s: Step) -> list[str]:
        lhs = "" if s.lhs is None else self.doprint(s.lhs)
        # a block with no justifications anywhere has the whole line for its right-hand sides
        bare = self._bare and self._settings["bare_width"]
        budget = max((bare or self._settings["max_width"]) - tex_width(lhs) - 2, 16)
        chunks = self._broken(s, budget)
        notes = self._notes(s)
        caps = self._settings["fit"]
        if caps:  # TeX scales a cell down only if it is still wider than its share of the line
            lhs = lhs and r"\sgfit{%s}{%s}" % (caps[0], lhs)
            rhs_cap = caps[2] if bare and len(caps) > 2 else caps[1]
            chunks = [r"\sgfit{%s}{%s}" % (rhs_cap, c) for c in chunks]
        lines = [f"{lhs} &= {chunks[0]}"] + [r"&\quad %s" % c for c in chunks[1:]]
        pos = self._settings["why_position"]
        if notes and pos == "right":
            lines[0] += r" && " + notes
        elif notes and pos == "below":
            lines.append(r"& \qquad %s" % notes)
        return lines

    def _notes(self, s: Step) -> str:
        parts = []
        if self._settings["show_shapes"] and s.shapes and not (
                self._settings["shape_style"] == "underbrace" and factor_count(s.rhs) == len(s.shapes)
                and len(s.shapes) > 1):
            parts.append(r"\scriptstyle " + r" \cdot ".join(f"{r} \\times {c}"
                                                            for r, c in s.shapes))
        if self._settings["show_why"] and s.why and self._settings["why_position"] != "none":
            text = self._words(s.why)
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
                or call_of_sum(rhs):
            self._chain_shapes = s.shapes
            whole = self._print(rhs)
            if tex_width(whole) <= budget:
                return [whole]
            return self._split(rhs, budget, s.shapes) or [whole]
        self._chain_shapes = None
        return [self._print(rhs)]

    def _split(self, rhs, budget, shapes):
        open_, close = "", ""
        if isinstance(rhs, sp.Derivative) and isinstance(rhs.expr, sp.Add) \
                and len(rhs.variables) == 1:
            open_ = r"\frac{\partial}{\partial %s}\Bigl[" % self._print(rhs.variables[0])
            close, rhs = r"\Bigr]", rhs.expr
        elif call_of_sum(rhs):  # σ(a long sum): break the sum inside σ\Bigl( … \Bigr)
            hole = sp.Symbol("SYMGRADHOLE")
            head = self._print(rhs.func(hole)).partition("SYMGRADHOLE")[0]
            open_ = re.sub(r"(\\left)?\($", "", head) + r"\Bigl("
            close, rhs = r"\Bigr)", rhs.args[0]
        if isinstance(rhs, (sp.Add, sp.MatAdd)):
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
