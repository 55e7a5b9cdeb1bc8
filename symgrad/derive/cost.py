"""The cost over the examples: their mean (the slides' f = (1/n) Σ_i ℓ_i) or their sum (ESL's
R(θ) = Σ_i R_i), for the matrix and element levels.

Where it sits: derive, after :mod:`.matrix` and :mod:`.element` (the facade hands it their
derivation). Both engines derive one example's gradient and state the batch as the mean; the sum
differs only in that last step, whose 1/n goes: the matrix level's G at the loss carries no 1/n
(G_ŷ = Ŷ − Y), the element level's batch step adds the examples' derivatives instead of averaging
them. The per-example steps are the same for both costs. The index level
(:mod:`.indexed`) takes ``cost`` itself.
"""
from __future__ import annotations

from dataclasses import replace

import sympy as sp

from symgrad.core.derivation import Derivation, StepKind

COSTS = ("mean", "sum")


# the cost's letter: the slides' f, or the next free one when the user's network names a value or
# parameter f (issue 13: an output named f read "f = (1/n) Σ ℓ_i" next to its own f − y)
COST_LETTERS = ("f", "J", "R", "C", "E")


def cost_name(net) -> str:
    """The letter the cost over the examples is written with: f unless a name of ``net`` takes it."""
    taken = set(net.nodes) | set(net.shapes)
    return next((c for c in COST_LETTERS if c not in taken),
                next(f"f{k}" for k in range(len(taken) + 1) if f"f{k}" not in taken))


def check_cost(cost) -> str:
    cost = cost or "mean"
    if cost not in COSTS:
        raise ValueError(f"cost must be 'mean' or 'sum', not {cost!r}")
    return cost


def _no_mean(expr, n):
    """expr with the mean's 1/n dropped (the G at the loss, the element level's average)."""
    if n is None:
        return expr
    out = expr.xreplace({sp.Pow(n, -1): sp.Integer(1)})
    return out.replace(lambda e: isinstance(e, sp.MatMul) and e.args and e.args[0] == 1,
                       lambda e: e.args[1] if len(e.args) == 2 else
                       sp.MatMul(*e.args[1:], evaluate=False))


def _n_of(*exprs):
    for e in exprs:
        for s in getattr(e, "free_symbols", ()):
            if isinstance(s, sp.Symbol) and s.name == "n":
                return s
    return None


def without_mean(expr):
    """``expr``, written for the mean cost, written for the sum: its 1/n dropped (a batch
    program's G at the loss, G_ŷ = (1/n)(Ŷ − Y) → Ŷ − Y)."""
    return _no_mean(expr, _n_of(expr))


def with_cost(net, d: Derivation, cost) -> Derivation:
    """``d`` (a matrix- or element-level derivation of the mean cost) for ``cost``: "mean" as it
    is, "sum" with its batch step and result over the sum of the examples' losses."""
    cost = check_cost(cost)
    d.meta["cost"] = cost
    if cost == "mean":
        return d
    if getattr(net, "seq_len", None):
        raise ValueError("cost='sum' is for networks of one value per example (a sequence "
                         "network's loss is the mean over its positions)")
    where = [k for k, s in enumerate(d.steps) if s.rule is StepKind.BATCH]
    if not where:
        return d
    k = where[-1]
    step = d.steps[k]
    defs = d.meta["where"][1] if d.meta.get("where") else []
    n = _n_of(step.rhs, d.result, *[rhs for _, rhs in defs])
    why = step.why
    if isinstance(step.rhs, sp.Expr) and step.rhs.has(sp.Sum):  # the element level
        f = cost_name(net)
        why = (why.replace(f"{f} = (1/n) Σ_i ℓ_i is the mean loss", f"{f} = Σ_i ℓ_i is the summed loss")
               .replace("average their derivatives", "add their derivatives"))
        d.steps[k] = replace(step, rhs=_no_mean(step.rhs, n), why=why)
        return d
    # the matrix level: the G's carry no 1/n
    d.steps[k] = replace(step, why=why.replace("the mean over", "the sum over").replace(
        "which carries the 1/n", "which carries no 1/n (the cost is the sum over the examples)"))
    d.result = _no_mean(d.result, n)
    if "batch" in d.meta:
        d.meta["batch"] = _no_mean(d.meta["batch"], n)
    if d.meta.get("where"):
        res, defs = d.meta["where"]
        d.meta["where"] = (_no_mean(res, n), [(g, _no_mean(rhs, n)) for g, rhs in defs])
    return d
