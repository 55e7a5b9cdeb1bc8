"""Handouts: the shared backward pass (why each g is computed once) and Algorithm 6.4 as a box.

Where it sits: derive → print → **handout**. The two closing sections of ``symgrad.handout``: they
read ``net.backprop()`` (the backward steps, the gradients, the batch program) and the per-parameter
chains the parameter sections derived.
"""
from __future__ import annotations

import sympy as sp

from .derivation import Derivation
from .handout_model import Section, g_name
from .latex import latex


def _backward_section(P, net, alg) -> Section:
    sec = Section("The shared backward pass")
    bw = alg.meta["backward"]
    g = g_name(P.notation)
    sec.text(r"Every chain above begins with the same factors. Multiplied from the left, each "
             r"partial product is a row vector $%s^{\top}$ that is computed once and reused by "
             r"every parameter below it:" % g)
    rows = []
    for p in net.parameters:
        d = P.derive(p)
        chain = next(s for s in d.steps if s.rule == "chain_rule")
        factors = list(chain.rhs.args)
        user = d.meta["paths"][0][0]
        rows.append(r"%s &= \underbrace{%s}_{%s} %s" % (
            P.tex(chain.lhs), " ".join(P.tex(f) for f in factors[:-1]), P.tex(bw.g[user][0].T),
            P.tex(factors[-1])))
    sec.math(rows)
    sec.text(r"The $%s$'s, from the output down: each is the one above it times one local "
             r"Jacobian, simplified (a diagonal Jacobian becomes $\odot$, a linear layer a "
             r"transpose):" % g)
    back = Derivation("", [s for s in alg.steps if s.rule == "backward"])
    sec.blocks.append(("derivation", back))
    sec.text(r"Then every gradient is a $%s$ times a value from the forward pass:" % g)
    grads = Derivation("", [s for s in alg.steps if s.rule == "gradient"])
    sec.blocks.append(("derivation", grads))
    rows, where = gradient_summary(net, alg, P.notation)
    sec.text(r"Putting it together (the notes' ``where do these come from?''), with the "
             r"$%s$'s that no parameter reads substituted away:" % g_name(P.notation))
    sec.math(rows + ([r"\text{where } " + w for w in where]))
    return sec


def gradient_summary(net, alg=None, notation="slides"):
    """([rows "∇_p f_CE &= …"], [rows "g &= …"]): each gradient in forward values and the g's
    that parameters read, the others substituted (∇W2 f_CE = (ŷ − y) h1ᵀ)."""
    alg = alg or net.backprop()
    bw = alg.meta["backward"]
    used = {m for s in alg.steps if s.rule == "gradient" for m in s.rhs.atoms(sp.MatrixSymbol)}
    subs, keep = {}, []
    for name, (g, rhs, _) in bw.g.items():
        rhs = rhs.xreplace(subs)
        if g in used and name != bw.start:
            keep.append((g, rhs))
        else:
            subs[g] = rhs
    label = {"mse": r"\text{MSE}", "bce": r"\text{BCE}", "cross_entropy": r"\text{CE}"}.get(
        net.loss.name, "L")
    rows = [r"\nabla_{%s} f_{%s} &= %s" % (latex(s.lhs.args[1], notation), label,
                                          latex(s.rhs.xreplace(subs), notation))
            for s in alg.steps if s.rule == "gradient"]
    return rows, [r"%s &= %s" % (latex(g, notation), latex(rhs, notation)) for g, rhs in keep]


def _algorithm_section(P, net, alg, verbosity) -> Section:
    sec = Section("The final algorithm")
    sec.text(r"Algorithm 6.4 of the notes, derived for this network: forward propagation, then "
             r"one backward pass that defines each $%s$ once and reads every gradient off "
             r"it, then a gradient-descent update with step size $\epsilon$." % g_name(P.notation))
    lines = [("head", "Forward propagation")]
    for s in alg.steps:
        if s.rule == "forward":
            lines.append(("step", r"%s \leftarrow %s" % (P.tex(s.lhs), P.tex(s.rhs))))
    lines.append(("head", "Backward propagation"))
    grads = [s for s in alg.steps if s.rule == "gradient"]
    done = set()
    for s in alg.steps:
        if s.rule != "backward":
            continue
        lines.append(("step", r"%s \leftarrow %s" % (P.tex(s.lhs), P.tex(s.rhs))))
        done.add(s.lhs)
        for gs in grads:
            if gs.rhs.atoms(sp.MatrixSymbol) & done and id(gs) not in done:
                need = {m for m in gs.rhs.atoms(sp.MatrixSymbol) if m.name.startswith("g_")}
                if need <= done:
                    lines.append(("step", r"%s \leftarrow %s" % (P.tex(gs.lhs), P.tex(gs.rhs))))
                    done.add(id(gs))
    lines.append(("head", "Update: the mean over a minibatch of n examples, then a step"))
    for p in net.parameters:  # ∇f is the mean of the ∇ℓ computed above (the loss section)
        s = P.tex(net.sym(p))
        lines.append(("step", r"%s \leftarrow %s - \epsilon \, \tfrac{1}{n} \textstyle\sum_{i=1}^{n} "
                              r"\nabla_{%s} \ell^{(i)}" % (s, s, s)))
    sec.blocks.append(("algorithm", ("Forward and backward propagation for this network", lines)))
    if verbosity == "full":
        sec.text(r"For a minibatch stacked one example per row ($\mathbf{X}$ is $n \times d$), "
                 r"the same program, as symgrad compiles it:")
        sec.math([r"%s &\leftarrow %s" % (P.tex(lhs), P.tex(rhs))
                  for lhs, rhs in alg.meta["program"]])
    return sec
