"""Evaluating a SymPy expression at one point in complex floats, in time bounded by its size.

Where it sits: beside derive, used by the self-checks (the element level checks each result
against sympy.diff of the written-out loss). lambdify generates and compiles code for the whole
expression, which took minutes on a written-out Huber loss; this walks the expression once,
visiting each distinct subexpression once, and lets SymPy evaluate any function at its float
arguments, so every primitive of the rule table works without a numeric twin.
"""
from __future__ import annotations

import cmath

import sympy as sp

# The common functions in complex floats directly. Through SymPy at a Float argument, exp of a
# large one ran mpmath at the precision of its exponent (ln 2 to thousands of digits): 114 s of a
# chain of exp(a b) maps; here it is an OverflowError, so nan, at once.
_CMATH = {sp.exp: cmath.exp, sp.log: cmath.log, sp.sin: cmath.sin, sp.cos: cmath.cos,
          sp.tan: cmath.tan, sp.sinh: cmath.sinh, sp.cosh: cmath.cosh, sp.tanh: cmath.tanh,
          sp.asin: cmath.asin, sp.acos: cmath.acos, sp.atan: cmath.atan}


def evaluate(expr, env: dict) -> complex:
    """``expr`` in complex floats, ``env`` giving each free symbol's value; each distinct
    subexpression is visited once, and a function SymPy evaluates at its float arguments."""
    memo: dict = {}

    def ev(e):
        if e not in memo:
            memo[e] = _node(e, ev, env)
        return memo[e]

    # outside the try: strict sympify refuses text with a ValueError, which must not read as nan
    expr = sp.sympify(expr, strict=True)
    try:
        return complex(ev(expr))
    except (ZeroDivisionError, OverflowError, ValueError, TypeError):
        return complex("nan")


_REL = {"<=": lambda a, b: a <= b, "<": lambda a, b: a < b, ">=": lambda a, b: a >= b,
        ">": lambda a, b: a > b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b}


def _node(e, ev, env):
    """One node of :func:`evaluate`, its arguments evaluated through ``ev``."""
    a = e.args
    if e.is_Symbol:
        return complex(env[e])
    if e.is_number:
        return complex(e)
    if e.is_Add or e.is_Mul:
        vals = list(map(ev, a))
        out = vals[0]
        for v in vals[1:]:
            out = out + v if e.is_Add else out * v
        return out
    if e.is_Pow:
        return ev(a[0]) ** ev(a[1])
    if isinstance(e, sp.Piecewise):
        return next((ev(v) for v, c in a if c == sp.true or ev(c)), complex("nan"))
    if e.is_Relational:
        return _REL[e.rel_op](ev(e.lhs).real, ev(e.rhs).real)
    if isinstance(e, (sp.And, sp.Or, sp.Not)):
        vals = [bool(ev(x)) for x in a]
        return all(vals) if isinstance(e, sp.And) else any(vals) if isinstance(e, sp.Or) \
            else not vals[0]
    if e.func in _CMATH and len(a) == 1:
        return _CMATH[e.func](ev(a[0]))
    args = [sp.Float(v.real) + sp.I * sp.Float(v.imag) for v in map(ev, a)]
    return complex(sp.N(e.func(*args)))
