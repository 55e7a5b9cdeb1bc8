"""Every partial derivative of a parameter, unit by unit, assembled into its gradient; and gradient
descent written out weight by weight: the XOR slides' last steps ("we also need to derive the other
partial derivatives ∂ŷ/∂w1, …, ∂ŷ/∂b3", "∇_{W(1)} f = [∂f/∂w1 ∂f/∂w2; ∂f/∂w3 ∂f/∂w4]", then "for
each minibatch: compute all 9 partial derivatives, update w1 ← w1 − ε ∂f/∂w1, …").

Where it sits: derive, beside :mod:`~symgrad.derive.element` (whose one-weight derivations it
reads, each already checked against ``sympy.diff``); the check against the compiled matrix level
is handed in from above (:mod:`symgrad.compile.assembled`), as derive cannot import compile.
Printers and the handout walk the :class:`~symgrad.core.derivation.Derivation` it returns; no name
is read for meaning.
"""
from __future__ import annotations

import sympy as sp

from symgrad.core.derivation import Derivation, Descent, Grad, Partial, StepKind
from symgrad.core.primitives import step
from symgrad.derive.cost import cost_name
from symgrad.derive.element import ELL, derive_element, scalarize
from symgrad.derive.matrix import derive_parameter

# One element-level derivation per entry (about 0.08 s each for the XOR net): a parameter of more
# entries than this is the matrix level's to derive, not a page of partials.
ENTRY_LIMIT = 64


def names_parameter(net, name: str, naming: str | None = None) -> bool:
    """Whether ``name`` at the element level is a parameter to assemble (W1), not one scalar: the
    notes' naming calls the hidden biases b1, b2 as the parameters b1, b2 are called, and there
    the scalar wins (``symgrad derive --level element --wrt b1`` has always meant that one)."""
    if name not in net.shapes:
        return False
    try:
        scalarize(net, naming).scalar(name)
    except ValueError:
        return True
    return False


def assembled(net, param: str, of: str = "loss", naming: str | None = None,
              agree=None) -> Derivation:
    """∂ℓ/∂w (or ∂ŷ/∂w with ``of="output"``) for every entry w of ``param``, unit by unit, then
    laid out in ``param``'s shape as its gradient. ``agree(net, S, param, entries, explicit)``,
    given by a layer above (the facade passes :func:`symgrad.compile.assembled.against_kernel`:
    the compiled matrix level on one example), checks the loss's assembled gradient and says how,
    or returns "" where it cannot; it raises on a disagreement. Then an AGREE step shows the
    matrix level's result beside it."""
    if param not in net.shapes:
        raise ValueError(f"{param!r} is not a parameter of this network; its parameters are "
                         f"{', '.join(net.parameters)}")
    S = scalarize(net, naming)
    M = S.params[param]
    if len(M) > ENTRY_LIMIT:
        raise ValueError(f"{param} has {len(M)} entries, over the {ENTRY_LIMIT} written out one by "
                         f"one: derive it at the matrix level (symgrad derive NETWORK --wrt "
                         f"{param})")
    ds = [derive_element(net, w.name, of=of, naming=naming) for w in M]
    T = ds[0].meta["scalar"].units[net.output_node][0] if of == "output" else ELL
    d = Derivation(f"∇ of {T} with respect to {param}, entry by entry")
    for w, dw in zip(M, ds):
        d.add(Partial(T, w), dw.meta["value"], f"unit by unit; equal to sympy.diff of the network "
              f"written out ({dw.meta['checked']})",
              StepKind.PARTIAL)
    # a unit a step(·) reads (relu's derivative) is named, not defined, by the partials: define it
    # (issue 13: step(z₁,₁) was left for the reader to guess)
    read = {a for dw in ds for f in dw.meta["value"].atoms(step) for a in f.args}
    for u in sorted((u for u in read if u in S.defs), key=sp.default_sort_key):
        d.add(u, S.defs[u], "where: defining the unit inside step(·)", StepKind.DEFINITION)
    shape = net.shapes[param]
    P = net.sym(param)
    laid = sp.ImmutableMatrix(*shape, [sp.Derivative(T, w, evaluate=False) for w in M])
    lhs = Grad(T, P)
    d.add(lhs, laid, f"entry (i, j) of the gradient is the partial derivative by entry (i, j) of "
          f"{param}: the gradient is shaped like {param}", StepKind.UNVECTORIZE,
          shapes=[shape])
    d.add(None, sp.ImmutableMatrix(*shape, [dw.meta["value"] for dw in ds]),
          "each entry's result above, in the values of the forward pass", StepKind.SUBSTITUTION,
          shapes=[shape])
    result = sp.ImmutableMatrix(*shape, [dw.result for dw in ds])
    if of == "loss" and agree is not None:
        how = agree(net, S, param, M, [dw.meta["explicit"] for dw in ds])
        if how:
            m = derive_parameter(net, param)
            per = next((s.rhs for s in reversed(m.steps) if s.lhs == Grad(ELL, P)), None)
            if per is not None:
                d.add(None, per, f"the matrix level's result: equal entry by entry ({how})",
                      StepKind.AGREE, shapes=[shape])
            d.meta["checked"] = how
    d.result = result
    # the parameters as the LaTeX has them, W⁽¹⁾ b⁽¹⁾: b₁ is the first unit's bias here
    d.meta.update(param=param, of=T, entries=list(M), partials=ds, scalar=S, layered=True)
    return d


def descent(net, naming: str | None = None) -> Derivation:
    """Gradient descent written out weight by weight, as the XOR slides do before the matrix form:
    for each epoch, for each minibatch, every scalar w ← w − ε ∂f/∂w, with ∂f/∂w the mean of
    ∂ℓᵢ/∂w over the minibatch (each derived unit by unit: :func:`assembled`); then the same loop
    with one update per parameter matrix, the form symgrad compiles."""
    S = scalarize(net, naming)
    eps, f = sp.Symbol("epsilon"), sp.Symbol(cost_name(net))
    every = [w for p in net.parameters for w in S.params[p]]
    d = Derivation(f"Gradient descent, weight by weight: for each epoch, for each minibatch of n "
                   f"examples, compute all {len(every)} partial derivatives (each the mean over "
                   f"the minibatch of one example's), then update every weight and bias")
    for w in every:
        d.add(w, Descent(w, f, eps), "move against its partial derivative, ε times it",
              StepKind.UPDATE)
    for p in net.parameters:
        P = net.sym(p)
        d.add(P, Descent(P, f, eps), f"the same {len(S.params[p])} update"
              f"{'s' if len(S.params[p]) > 1 else ''} at once: the gradient holds the partial "
              f"derivatives of the entries, laid out as in {p}", StepKind.UPDATE,
              shapes=[net.shapes[p]])
    d.result = every
    d.meta.update(scalar=S, epsilon=eps, layered=True)
    return d
