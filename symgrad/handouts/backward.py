"""Handouts: the shared backward pass (why each g is computed once) and Algorithm 6.4 as a box.

Where it sits: derive → print → **handout**. The two closing sections of ``symgrad.handout``: they
read ``net.backprop()`` (the backward steps, the gradients, the batch program) and the per-parameter
chains the parameter sections derived.
"""
from __future__ import annotations

import sympy as sp

from symgrad.core.derivation import Derivation, StepKind
from symgrad.core.matexpr import Cotangent
from symgrad.core.program import Kind
from symgrad.derive import backprop
from symgrad.derive.cost import without_mean
from symgrad.handouts.model import (Section, batch_tex, cost_name, cost_sums, cost_tex, cost_word,
                                    g_name, loss_names)
from symgrad.printing.latex import latex
from symgrad.printing.names import notation as _notation

# the steps that give a parameter's gradient: ∇_p ℓ, and ∇_W J where a penalty adds λW
_GRADIENTS = (StepKind.GRADIENT, StepKind.PENALTY)


def backward_section(P, net, alg, grouped: bool = False) -> Section:
    """The shared backward pass. ``grouped``: the parameter sections (a graph's brief handout,
    one per layer) already showed each chain and boxed each gradient: here the g's alone, each
    once (the transformer's slides repeated 25 chains, 25 gradients and their substituted forms
    after them: 22 frames of 46)."""
    sec = Section("The shared backward pass")
    bw = alg.meta["backward"]
    g = g_name(P.notation)
    if grouped:
        sec.text(r"Every chain above begins with the same factors. Multiplied from the left, "
                 r"each partial product is a row vector $%s^{\top}$, computed once here, from the "
                 r"output down, and read by every gradient boxed above: each $%s$ is the one "
                 r"above it times one local Jacobian, simplified (a diagonal Jacobian becomes "
                 r"$\odot$, a linear layer a transpose):" % (g, g))
        # (no clicks: a reference the sections above read, where one click a g was 19 pages)
        back = Derivation("", [s for s in alg.steps if s.rule is StepKind.BACKWARD],
                          meta={"overlays": False})
        sec.blocks.append(("derivation", back))
        return sec
    sec.text(r"Every chain above begins with the same factors. Multiplied from the left, each "
             r"partial product is a row vector $%s^{\top}$ that is computed once and reused by "
             r"every parameter below it:" % g)
    rows, several = [], []
    for p in net.parameters:
        d = P.derive(p)
        if len(d.meta["paths"]) > 1:  # (a multi-task trunk: g_z⁽¹⁾ sums what both heads pass
            several.append(p)         # back, so one path's factors are not it)
            continue
        chain = next(s for s in d.steps if s.rule is StepKind.CHAIN_RULE)
        factors = list(chain.rhs.args)
        user = d.meta["paths"][0][0]
        rows.append(r"%s &= \underbrace{%s}_{%s} %s" % (
            P.tex(chain.lhs), " ".join(P.tex(f) for f in factors[:-1]), P.tex(bw.g[user][0].T),
            P.tex(factors[-1])))
    if rows:
        sec.math(rows)
    if several:
        sec.text(r"The loss reaches %s along several paths: each path's chain begins with its "
                 r"own factors, and the $%s$ it reads is the sum of what every path passes back."
                 % (", ".join("$%s$" % P.tex(net.sym(p)) for p in several), g))
    sec.text(r"The $%s$'s, from the output down: each is the one above it times one local "
             r"Jacobian, simplified (a diagonal Jacobian becomes $\odot$, a linear layer a "
             r"transpose):" % g)
    back = Derivation("", [s for s in alg.steps if s.rule is StepKind.BACKWARD])
    sec.blocks.append(("derivation", back))
    sec.text(r"Then every gradient is a $%s$ times a value from the forward pass%s:" % (
        g, r" (plus $\lambda$ times the weights for $J$)" if net.penalty != 0 else ""))
    grads = Derivation("", [s for s in alg.steps if s.rule in _GRADIENTS])
    sec.blocks.append(("derivation", grads))
    rows, where = gradient_summary(net, alg, P.notation)
    sec.text(r"Putting it together (where each gradient comes from), with the "
             r"$%s$'s that no parameter reads substituted away:" % g_name(P.notation))
    sec.math(rows + ([r"\text{where } " + w for w in where]))
    return sec


def gradient_summary(net, alg=None, notation="slides"):
    """([rows "∇_p ℓ &= …"], [rows "g &= …"]): each per-example gradient in forward values and the
    g's that parameters read, the others substituted (∇W2 ℓ = (ŷ − y) h1ᵀ); with a penalty the
    rows ∇_W J = ∇_W ℓ + λW; last, ∇f_CE (or ∇ of the mean J) as the mean over the examples."""
    alg = alg or backprop.algorithm(net)
    bw = alg.meta["backward"]
    used = {m for s in alg.steps if s.rule is StepKind.GRADIENT
            for m in s.rhs.atoms(sp.MatrixSymbol)}
    subs, keep = {}, []
    for name, (g, rhs, _) in bw.g.items():
        rhs = rhs.xreplace(subs)
        if g in used and name not in bw.starts:
            keep.append((g, rhs))
        else:
            subs[g] = rhs
    rows = []
    for s in alg.steps:
        p = latex(s.lhs.args[1], notation) if s.rule in _GRADIENTS else None
        if s.rule is StepKind.GRADIENT:
            rows.append(r"\nabla_{%s} \ell &= %s" % (p, latex(s.rhs.xreplace(subs), notation)))
        elif s.rule is StepKind.PENALTY and cost_sums(notation):
            # a sum (ESL's J = R + λΩ): the penalty once, on the sum, not on each example
            rows.append(cost_tex(r"\nabla_{%s} J &= \sum_{i=1}^{n} \nabla_{%s} \ell^{(i)} + %s",
                                 notation) % (p, p, latex(net.penalty * s.lhs.args[1], notation)))
        elif s.rule is StepKind.PENALTY:
            rows.append(r"\nabla_{%s} J &= \nabla_{%s} \ell + %s"
                        % (p, p, latex(net.penalty * s.lhs.args[1], notation)))
    label = loss_names(net)[1]
    f = cost_name(notation, label)  # ESL's R
    mean = (batch_tex(r"\nabla \left(%s + \lambda \, \Omega\right) &= \frac{1}{n} \sum_{i=1}^{n} "
                      r"\nabla J^{(i)}", notation) % f
            if net.penalty != 0 and not cost_sums(notation) else
            cost_tex(r"\nabla %s &= \frac{1}{n} \sum_{i=1}^{n} \nabla \ell^{(i)}", notation) % f)
    return rows + [mean], [r"%s &= %s" % (latex(g, notation), latex(rhs, notation))
                           for g, rhs in keep]


def algorithm_section(P, net, alg, verbosity, exercise=None) -> Section:
    """The final algorithm; at verbosity "full" also the minibatch program, less the line of
    the ``exercise`` parameter's gradient: the exercise asks for it (it printed the answer)."""
    sec = Section("The final algorithm")
    # what the algorithm is and whose, not "of the notes": a reader may not have them (the
    # slides, seed 002, reproduce the book's Algorithm 6.4)
    sec.text(r"Back-propagation (Algorithm 6.4 in Goodfellow, Bengio and Courville, Deep "
             r"Learning, 2016), derived for this network: forward propagation, then "
             r"one backward pass that defines each $%s$ once and reads every gradient off "
             r"it, then a gradient-descent update with step size $\epsilon$." % g_name(P.notation))
    lines = [("head", "Forward propagation")]
    for s in alg.steps:
        if s.rule is StepKind.FORWARD:
            lines.append(("step", r"%s \leftarrow %s" % (P.tex(s.lhs), P.tex(s.rhs))))
    lines.append(("head", "Backward propagation"))
    grads = [s for s in alg.steps if s.rule is StepKind.GRADIENT]
    done = set()
    for s in alg.steps:
        if s.rule is not StepKind.BACKWARD:
            continue
        lines.append(("step", r"%s \leftarrow %s" % (P.tex(s.lhs), P.tex(s.rhs))))
        done.add(s.lhs)
        for gs in grads:
            if gs.rhs.atoms(sp.MatrixSymbol) & done and id(gs) not in done:
                need = {m for m in gs.rhs.atoms(Cotangent)}
                if need <= done:
                    lines.append(("step", r"%s \leftarrow %s" % (P.tex(gs.lhs), P.tex(gs.rhs))))
                    done.add(id(gs))
    lines.append(("head", "Update: the %s over a minibatch of %s examples, then a step"
                  % (cost_word(P.notation), _notation(P.notation).batch)))
    for p in net.parameters:  # ∇f is the mean of the ∇ℓ computed above (the loss section)
        s = P.tex(net.sym(p))
        mean = cost_tex(r"\tfrac{1}{n} \textstyle\sum_{i=1}^{n} \nabla_{%s} \ell^{(i)}",
                         P.notation) % s
        if net.penalty != 0 and net.is_weight(p):  # ∇ of the mean J: the penalty's λW once
            mean = r"\left(%s + %s\right)" % (mean, P.tex(net.penalty * net.sym(p)))
        lines.append(("step", r"%s \leftarrow %s - \epsilon \, %s" % (s, s, mean)))
    sec.blocks.append(("algorithm", ("Forward and backward propagation for this network", lines)))
    if verbosity == "full":
        sec.text(r"For a minibatch stacked one example per row ($\mathbf{X}$ is $n \times d$), "
                 r"the same program in matrices, every example at once:")
        rows = alg.meta["program"].display(Kind.FORWARD, Kind.BACKWARD, Kind.GRADIENT)
        if cost_sums(P.notation):  # (the program compiles the mean; ESL's R sums: no 1/n)
            rows = [(lhs, without_mean(rhs)) for lhs, rhs in rows]
        kept = [(lhs, rhs) for lhs, rhs in rows if exercise is None or
                getattr(lhs, "name", None) != "d" + exercise]
        sec.math([r"%s &\leftarrow %s" % (P.tex(lhs), P.tex(rhs)) for lhs, rhs in kept])
        if len(kept) < len(rows):
            sec.text(r"The line for $%s$ is left out: it is the exercise on $%s$."
                     % (P.tex(next(lhs for lhs, _ in rows if lhs not in dict(kept))),
                        P.tex(net.sym(exercise))))
    return sec
