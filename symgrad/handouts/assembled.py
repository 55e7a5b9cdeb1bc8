"""Handouts: every partial derivative unit by unit, assembled into the gradients, and gradient
descent written out weight by weight, as the XOR slides do before the matrix form ("we also need
to derive the other partial derivatives", "∇_{W(1)} f = [∂f/∂w1 ∂f/∂w2; ∂f/∂w3 ∂f/∂w4]",
"compute all 9 partial derivatives … update w1 ← w1 − ε ∂f/∂w1").

Where it sits: derive → print → **handout**. A section of an element-level handout (``level``
"element" or "both") for a network small enough to write out whole; it reads
:mod:`symgrad.derive.assemble`, whose assembled gradients are checked against the compiled
kernel, each entry against ``sympy.diff``.
"""
from __future__ import annotations

import dataclasses

from symgrad.compile.assembled import against_kernel
from symgrad.core.derivation import Derivation, StepKind
from symgrad.derive import assemble
from symgrad.handouts.model import Section
from symgrad.printing.names import notation as _notation
from symgrad.printing.width import tex_width

# The slides write out the XOR net's 9 partial derivatives; a page holds about two dozen.
SCALAR_LIMIT = 24
# The widest matrix of results kept (estimated characters): the XOR net's ∇W1, 2 × 2, is 40.5,
# and a beamer frame's line holds about 48 at its size.
MATRIX_CHARS = 45
ENTRY_CHARS = 45  # an entry's row: the 0.72 of a line its right-hand side has with notes below


def fits(scalar) -> bool:
    return scalar is not None and sum(len(M) for M in scalar.params.values()) <= SCALAR_LIMIT


def _fitting(d: Derivation, P) -> Derivation:
    """Without the matrix of the entries' results where it is wider than a line can hold (a
    matrix cannot be broken: the feature net's 3 × 3 was 132 estimated characters, shrunk to 43 %);
    the entries stand above it, each on its own row."""
    steps = [s for s in d.steps if s.rule is not StepKind.SUBSTITUTION
             or tex_width(P.tex(s.rhs)) <= MATRIX_CHARS]
    return Derivation(d.title, steps, d.result, d.meta)


def _unrepeated(d: Derivation) -> Derivation:
    """The steps without the checks' words, which the section says once above them (the XOR
    net's nine entries each said "equal to sympy.diff … (numeric at 3 points)"); the checks ran
    in :func:`symgrad.derive.assemble.assembled` all the same."""
    short = {StepKind.PARTIAL: "unit by unit",
             StepKind.AGREE: "the matrix level's result, equal entry by entry"}
    return Derivation(d.title, [dataclasses.replace(s, why=short[s.rule]) if s.rule in short
                                else s for s in d.steps], d.result, d.meta)


def _checks(ds) -> str:
    """The checks that ran, in one sentence, from the derivations' records of them."""
    how = sorted({p.meta["checked"] for d in ds for p in d.meta["partials"]
                  if p.meta.get("checked")})
    kernel = sorted({d.meta["checked"] for d in ds if d.meta.get("checked")})
    out = ""
    if how:
        out += (r" Every entry was checked against the derivative of the network written out "
                r"and differentiated directly (%s)"
                % " or ".join(how))
    if kernel:
        out += (" and every" if how else " Every") + r" assembled gradient was %s" % " or ".join(kernel)
    return out + "." if out else ""


def _brief(d: Derivation) -> Derivation:
    """The gradient laid out and its entries' matrix, without each entry on a row of its own and
    the units they read defined again (the forward pass defines them): the same entries, once.
    Where the matrix of results is too wide to keep (:func:`_fitting`) the entries' rows stay.
    On the XOR slides at --level both this section was 25 of the deck's 57 pages, its 9 entries
    each a row and a click above the matrices that hold them again."""
    if not any(s.rule is StepKind.SUBSTITUTION for s in d.steps):
        return d
    steps = [s for s in d.steps if s.rule not in (StepKind.PARTIAL, StepKind.DEFINITION)]
    return Derivation(d.title, steps, d.result, d.meta)


def assembled_section(P, net, scalar, brief: bool = False) -> Section | None:
    """The section, or None where an entry is too long for a row of its own (the multi-task
    net's sums over both heads were 67 estimated characters, shrunk to 72 %): the per-parameter
    sections' one entry, unit by unit, is the notes' form there. ``brief`` (the slides past one
    layer): each gradient's matrix of entries, not each entry again on a row (:func:`_brief`)."""
    naming = getattr(scalar, "naming", None)
    ds = [assemble.assembled(net, p, naming=naming, agree=against_kernel) for p in net.parameters]
    if any(tex_width(P.tex(s.rhs)) > ENTRY_CHARS for d in ds for s in d.steps
           if s.rule is StepKind.PARTIAL):
        return None
    every = [w for p in net.parameters for w in scalar.params[p]]
    sec = Section("Every partial derivative, assembled into the gradients")
    sec.text(r"All %d partial derivatives are derived below the same way, unit by unit, then "
             r"laid out as the gradients: entry $(i, j)$ of $\nabla_{%s} \ell$ is the partial "
             r"derivative by entry $(i, j)$ of $%s$. Each entry below is derived unit by unit as "
             r"the one above was, and written in the values of the forward pass; the last line "
             r"of each block is the matrix level's result, equal entry by entry.%s" % (
                 len(every), P.tex(net.sym(net.parameters[0])), P.tex(net.sym(net.parameters[0])),
                 _checks(ds)))
    for d in ds:
        P.add(d)
        d = _unrepeated(_fitting(d, P))
        sec.blocks.append(("whole", _brief(d)) if brief else ("derivation", d))
    loop = assemble.descent(net, naming)
    P.add(loop)
    eps = P.tex(loop.meta["epsilon"])
    lines = [("head", "For each epoch, for each minibatch of $%s$ examples:"
              % _notation(P.notation).batch),
             ("head", r"compute the %d partial derivatives (means over the minibatch), then"
              % len(every))]
    # ∂f/∂w with a slash: a \frac in a line of the box is set in text style, too small to read
    lines += [("step", r"%s \leftarrow %s - %s \, \partial f / \partial %s" % (
        P.tex(s.lhs), P.tex(s.lhs), eps, P.tex(s.lhs)))
        for s in loop.steps if s.rule is StepKind.UPDATE and not s.shapes]
    sec.text(r"Gradient descent then moves every weight and bias against its partial derivative, "
             r"with step size $%s$; the final algorithm below does the same with one update per "
             r"parameter matrix." % eps)
    sec.blocks.append(("algorithm", ("Gradient descent, weight by weight", lines, None)))
    return sec
