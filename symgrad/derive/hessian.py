"""Hessians of scalar functions: the matrix of second partial derivatives, step by step.

Where it sits: derive, beside :mod:`.calculus`, whose gradient, input normalisation, budgets and
simplification (``Tidy``) it reuses: the Hessian is derived as the Jacobian of the gradient, one
row per entry of the gradient. Second partials commute (Schwarz's theorem, wherever f is twice
continuously differentiable: everywhere but at the kinks of relu, abs or max, where neither order
is defined), so only the upper triangle is differentiated and simplified, and each entry below the
diagonal is its mirror: m(m + 1)/2 derivatives instead of m². A
:class:`~symgrad.core.derivation.Derivation` records the steps; nothing here prints or compiles.
"""
from __future__ import annotations

import sympy as sp

from symgrad.core.derivation import Derivation, Grad, Hess, Partial, Partial2, StepKind
from symgrad.derive import rules
from symgrad.derive.calculus import (MAX_JACOBIAN_NODES, Tidy, _check_entries, _nodes, _partials,
                                     as_symbols, as_vector, check_steps, derive_gradient)

# Steps written per entry and per row, as the Jacobian writes its entries up to 36: a Hessian of
# 6 variables has 21 entries to derive (the upper triangle), of 12 variables 12 rows. Past these
# the matrix is written once.
ENTRY_STEPS = 6
ROW_STEPS = 12


def derive_hessian(f, wrt, name: str = "f", var: str = "x", steps: str = "normal") -> Derivation:
    """The Hessian ∇²f of a scalar f with respect to the variables ``wrt``, with its steps: the
    gradient first, then each row as the Jacobian of one entry of the gradient. H is m×m and
    symmetric: entry (i, j) is ∂²f/∂x_i∂x_j, derived for i ≤ j only and mirrored.
    ``steps="full"``: each first and second partial rule by rule (:mod:`symgrad.derive.rules`),
    for up to ENTRY_STEPS variables."""
    check_steps(steps)
    F = as_vector(f, name)
    if F.rows != 1:
        raise ValueError(f"{name}: the Hessian needs a scalar function, got {F.rows} outputs "
                         "(take the Hessian of each output)")
    xs = as_symbols(wrt, F)
    if not xs:
        raise ValueError("wrt: no variables to differentiate by")
    absent = [x.name for x in xs if x not in F[0].free_symbols]
    if absent:
        raise ValueError(f"wrt: {', '.join(map(repr, absent))} "
                         f"{'does' if len(absent) == 1 else 'do'} not occur in {name} "
                         "(its row and column of the Hessian would be 0)")
    m = len(xs)
    _check_entries(m, m, "the Hessian")
    if steps == "full" and m > ENTRY_STEPS:
        raise ValueError(f"full steps are written for Hessians of up to {ENTRY_STEPS} variables; "
                         f"this one has {m}")
    d = derive_gradient(F, xs, name, var, steps=steps)
    g = d.result
    d.title = f"Hessian of {name} with respect to ({', '.join(map(str, xs))})"

    fs, xv = sp.Symbol(name), sp.MatrixSymbol(var, m, 1)
    d.add(Hess(fs, xv), Partial(Grad(fs, xv), xv),
          "the Hessian is the Jacobian of the gradient: row i is the gradient of "
          f"∂{name}/∂{var}_i, transposed", StepKind.DEFINITION, shapes=[(m, m)])
    xi, xj = sp.Symbol(f"{var}_i"), sp.Symbol(f"{var}_j")
    d.add(Partial2(fs, xj, xi), Partial2(fs, xi, xj),
          "second partials commute (Schwarz), so the Hessian is symmetric and only the upper "
          f"triangle is derived: {m * (m + 1) // 2} of {m * m} entries, the rest mirrored",
          StepKind.PLAIN)

    simplify = Tidy()
    H = _upper_triangle(g, xs, simplify)
    if m <= ENTRY_STEPS:
        for i in range(m):
            for j in range(i, m):
                if steps == "full":  # ∂/∂x_j of the gradient's entry i, rule by rule
                    rules.record(d, Partial2(fs, xs[i], xs[j]), g[i], xs[j], H[i, j])
                else:
                    d.add(Partial2(fs, xs[i], xs[j]), H[i, j], rule=StepKind.PARTIAL)
    if 1 < m <= ROW_STEPS:
        for i in range(m):
            row = H[i, :]
            why = (f"row {i + 1}: the Jacobian of ∂{name}/∂{xs[i]}"
                   + (f"; left of the diagonal, mirrored from column {i + 1}" if i else ""))
            d.add(Partial(Partial(fs, xs[i]), xv), row, why, StepKind.JACOBIAN,
                  shapes=[row.shape])
    d.add(Hess(fs, xv), H, "symmetric: rows and columns are the variables "
          f"({', '.join(map(str, xs))})" + simplify.note(), StepKind.JACOBIAN, shapes=[H.shape])
    d.result = H
    # no "function" key: compile_function reads a Derivation's function and result as f and its
    # Jacobian, which a Hessian is not
    d.meta = {"scalar": F[0], "wrt": xs, "gradient": g}
    return d


def _upper_triangle(g: sp.Matrix, xs, simplify) -> sp.Matrix:
    """The m×m Hessian from the gradient ``g``: ∂g_i/∂x_j for j ≥ i, simplified, and mirrored.
    The entries written out count against the Jacobian's limit, a mirrored entry twice."""
    m = len(xs)
    H = sp.zeros(m, m)
    left = MAX_JACOBIAN_NODES
    for i in range(m):
        # one row at a time, so the count stops the work at the row that passes it
        for j, v in enumerate(_partials(g[i], xs[i:], simplify), start=i):
            H[i, j] = H[j, i] = v
            if not v.is_Atom:
                left -= (1 if i == j else 2) * _nodes(v, left + 1)
        if left < 0:
            raise ValueError(f"the Hessian, written out, would pass {MAX_JACOBIAN_NODES} "
                             f"nodes (its {m}×{m} entries); ask for fewer variables")
    return H
