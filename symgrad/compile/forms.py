"""Stable forms: the rewrite table compile_function applies before it prints, and its derivative.

Where it sits: compile, between the expressions of a function (``symgrad.calculus``) and the numpy
printer. Printed as written, log(σ(x)) is np.log of σ, which the printer clamps at 1e-308 below
x = −709 (e⁻ˣ would overflow): −709 at x = −1000 where the exact value is −1000; log(eˣ + eʸ) is
inf at x = 1000 and its derivative eˣ/(eˣ + eʸ) is inf/inf = nan. :func:`stable_forms` rewrites such
compositions, one row of :data:`TABLE` each, into the same function in forms whose pieces print
without overflow or cancellation (softplus as np.logaddexp(0, u), :class:`logsumexp` as
np.logaddexp, σ clamped, expm1). :func:`stable_jacobian` differentiates the stable form (so the
derivative is stable too: d/dx log σ(x) = σ(−x), not 1 − σ(x), which is 0 past x ≈ 37) with
torch's conventions for x**y at x = 0, then rewrites it again. The kernels of networks have their
own stable forms (softmax and its log-sum-exp in the numpy printer, σ folding in
:func:`.common.stable`); this table is for plain functions.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import sympy as sp
from sympy.codegen.cfunctions import expm1

from symgrad.core.primitives import log1mexp, logsumexp, sigmoid, softplus


class Row(NamedTuple):
    """One rewrite: its rule in words, the class of node it looks at, and the rewrite, which
    returns the same value in a stable form, or None where the node does not match."""

    says: str
    kind: type
    rewrite: Callable


def _exp_exponent(f):
    """u if f is eᵘ (or a product of exponentials, Σ of their exponents), else None."""
    if isinstance(f, sp.exp):
        return f.exp
    if isinstance(f, sp.Mul) and all(isinstance(g, sp.exp) for g in f.args):
        return sp.Add(*[g.exp for g in f.args])
    return None


def _exponents(e):
    """[u₁, …] if e = e^u₁ + … is a sum of two or more exponentials (a positive number c counting
    as e^(log c), c·eᵘ as e^(u + log c)), else None."""
    if not isinstance(e, sp.Add):
        return None
    out = []
    for t in e.args:
        if t.is_number:
            if not t.is_positive:
                return None
            out.append(sp.log(t))
            continue
        c, f = t.as_coeff_Mul()
        u = _exp_exponent(f)
        if u is None or not c.is_positive:
            return None
        out.append(u + sp.log(c))
    return out


def _log_sum(us):
    """log Σ e^u over us: softplus(u) for log(1 + eᵘ), else logsumexp."""
    if len(us) == 2 and sp.S.Zero in us:
        return softplus(us[1] if us[0] == 0 else us[0])
    return logsumexp(*us)


def _complement(fn, new):
    """c − c·fn(u) (an Add holding the number c and the term −c·fn(u)) as ``new(c, u)``."""
    def rewrite(e):
        c, terms = e.as_coeff_add()
        if c == 0:
            return None
        for t in terms:
            k, f = t.as_coeff_Mul()
            if k == -c and isinstance(f, fn):
                rest = list(terms)
                rest.remove(t)
                return sp.Add(new(c, f.args[0]), *rest)
        return None
    return rewrite


def _log_softmax(e):
    """c·logsumexp(…, b, …) − c·b + r as c·logsumexp(… − b, 0, …) + r (softplus(u) counting as
    logsumexp(0, u)): the differences first. At x = y = −1e6, x − logsumexp(x, y) rounds
    logsumexp at 1e6 (1.2e-10): the softmax weight exp(x − logsumexp(x, y)) came out
    0.49999999998, and exp(−softplus(y − x)) is 0.5; x − softplus(x) at x = 40 is 0 for
    −softplus(−x) = −4.2e-18."""
    for t in e.args:
        c, L = t.as_coeff_Mul()
        us = L.args if isinstance(L, logsumexp) else (0, L.args[0]) if isinstance(L, softplus) \
            else None
        if us is None:
            continue
        rest = e - t
        have = set(sp.Add.make_args(rest))
        for b in us:
            if b != 0 and set(sp.Add.make_args(sp.expand(-c * b))) <= have:
                return c * _log_sum([u - b for u in us]) + (rest + c * b)
    return None


def _log_sigmoid(e):
    a = e.args[0]
    return -softplus(-a.args[0]) if isinstance(a, sigmoid) else None


def _log_of_sum(e):
    us = _exponents(e.args[0])
    return _log_sum(us) if us is not None else None


def _log1mexp(e):
    a = e.args[0]
    return log1mexp((-a).args[0]) if isinstance(-a, expm1) else None


def _log_of_exp(e):
    a = e.args[0]
    return a.exp if isinstance(a, sp.exp) else None  # v is real: every variable here is


def _positive_form(f):
    """Whether f is σ, an exponential, a sum of them, or a power of one: a factor whose log the
    table writes stably (so a log of a product holding it is worth splitting)."""
    b = f.base if isinstance(f, sp.Pow) else f
    return isinstance(b, (sigmoid, sp.exp)) or _exponents(b) is not None


def _log_of_product(e):
    a = e.args[0]
    if isinstance(a, sp.Mul) and any(map(_positive_form, a.args)) \
            and all(f.is_nonnegative for f in a.args):
        return sp.Add(*[sp.log(f) for f in a.args])  # log 0 = −inf on both sides
    if isinstance(a, sp.Pow) and _positive_form(a.base) and a.exp.is_extended_real:
        return a.exp * sp.log(a.base)
    return None


def _quotient(e):
    """Π e^aⱼ · Π Sᵢ^kᵢ, S an exponential sum and some k < 0: e^(Σa + Σ k log S), the logs by
    logsumexp; e^a/(e^a + e^b) is σ(a − b). (A numerator and a denominator that overflow together
    divide to inf/inf = nan; their difference of logs does not.)"""
    A, sums, rest = [], [], []
    for f in sp.Mul.make_args(e):
        u = _exp_exponent(f)
        b, k = (f.base, f.exp) if isinstance(f, sp.Pow) else (f, sp.S.One)
        us = _exponents(b) if k.is_number and k.is_extended_real else None
        if u is not None:
            A.append(u)
        elif us is not None:
            sums.append((us, k))
        else:
            rest.append(f)
    if not any(k.is_negative for _, k in sums):
        return None
    a = sp.Add(*A)
    if len(sums) == 1 and sums[0][1] == -1 and len(sums[0][0]) == 2:
        u, v = sums[0][0]
        for p, q in ((u, v), (v, u)):
            if a - p == 0:
                return sp.Mul(sigmoid(p - q), *rest)
    return sp.Mul(sp.exp(a + sp.Add(*[k * _log_sum(us) for us, k in sums])), *rest)


# Each row, read at every node from the leaves up (a node's arguments are rewritten first, and a
# rewritten node is read again). The measurements are float64 at the extreme arguments, printed
# as written vs rewritten.
TABLE = (
    Row("1 − σ(u) = σ(−u)   (1 − σ(40) is 0, σ(−40) is 4.2e-18)", sp.Add,
        _complement(sigmoid, lambda c, u: c * sigmoid(-u))),
    Row("eᵘ − 1 = expm1(u)   (log(1 − eᵘ) at u = −1e-20: −inf as written, −46.05 after)", sp.Add,
        _complement(sp.exp, lambda c, u: -c * expm1(u))),
    Row("logsumexp(…, b, …) − b = logsumexp(… − b, 0, …), softplus(u) − u = softplus(−u)   (log "
        "softmax; at x = y = −1e6 the softmax weight exp(x − logsumexp(x, y)) was 0.49999999998, "
        "exp(−softplus(y − x)) is 0.5)", sp.Add, _log_softmax),
    Row("log σ(u) = −softplus(−u)   (at u = −1000: −709 as written, −1000 after)", sp.log,
        _log_sigmoid),
    Row("log(1 − eᵘ) = log1mexp(u)   (log(−expm1(u)) at u = −40: 0, log1mexp −4.2e-18)", sp.log,
        _log1mexp),
    Row("log Σ e^uᵢ = logsumexp(u)   (log(eˣ + eʸ) at x = 1000: inf as written, 1000 after; "
        "log(1 + eᵘ) = softplus(u))", sp.log, _log_of_sum),
    Row("log eᵛ = v, where SymPy cannot tell v is real (v holding softplus)   (log(e²ˣ/(1 + eˣ)²) "
        "at x = −1000: −inf as e^(−2 softplus(−x)) underflows, −2000 after)", sp.log, _log_of_exp),
    Row("log(a·b) = log a + log b for a, b ≥ 0, and log(bᵏ) = k log b for b > 0, where a factor "
        "is σ or exponential (log(2σ(x)) at x = −1000: −708.3 as written, −999.3 after)", sp.log,
        _log_of_product),
    Row("e^a/Σ e^bᵢ = e^(a − logsumexp(b)), e^a/(e^a + e^b) = σ(a − b)   (eˣ/(eˣ + eʸ) at "
        "x = 1000: nan as written, 1 after)", (sp.Mul, sp.Pow), _quotient),
)


def stable_forms(expr):
    """``expr`` (an expression or a Matrix) with every row of :data:`TABLE` applied: the same
    function, in forms that print without overflow or cancellation."""
    if isinstance(expr, sp.MatrixBase):
        return expr.applyfunc(stable_forms)
    if not isinstance(expr, sp.Basic):
        return expr
    memo: dict = {}

    def walk(e, factor=False):
        if (e, factor) in memo:
            return memo[e, factor]
        if e.is_Atom or not e.args:
            return e
        # a power in a product is read with the product, not alone first: alone, 1/(1 + eˣ)
        # becomes σ(−x), and eˣ·σ(−x) is inf·0 at x = 1000 where eˣ/(1 + eˣ) is σ(x)
        args = tuple(walk(a, isinstance(e, sp.Mul) and isinstance(a, sp.Pow)) for a in e.args)
        new = e.func(*args) if args != e.args else e
        for row in () if factor else TABLE:
            out = row.rewrite(new) if isinstance(new, row.kind) else None
            if out is not None:
                new = walk(out)
                break
        memo[e, factor] = new
        return new
    return walk(expr)


# -- the derivative, with torch's conventions for x**y at x = 0 ---------------------------------
class _pow(sp.Function):
    """x**y while differentiating, with torch's pow backward (what HIPS autograd does too):
    ∂/∂x = 0 where y = 0 (SymPy's y·x^(y−1) is 0·inf = nan at x = 0), ∂/∂y = 0 where x = 0 and
    y ≥ 0 (SymPy's x^y·log x is 0·(−inf) = nan there). Elsewhere SymPy's rules, unchanged: at
    x = 0, ∂/∂x is inf for 0 < y < 1, 1 for y = 1, 0 for y > 1 and ∂/∂y is −inf for y < 0, as in
    torch. The branch not taken is evaluated at a harmless point (y = 1, x = 1), so numpy, which
    evaluates both, warns of no 0·inf that the result does not hold."""

    nargs = 2

    def fdiff(self, argindex=1):
        x, y = self.args
        if argindex == 1:
            at = sp.Eq(y, 0)
            y = sp.Piecewise((1, at), (y, True))
            return sp.Piecewise((0, at), (y * x**(y - 1), True))
        if argindex == 2:
            at = sp.And(sp.Eq(x, 0), y >= 0)
            x = sp.Piecewise((1, at), (x, True))
            return sp.Piecewise((0, at), (x**y * sp.log(x), True))
        raise sp.ArgumentIndexError(self, argindex)


def stable_jacobian(F: sp.Matrix, wrt) -> sp.Matrix:
    """∂F/∂wrt of the stable form of F, rewritten stably again: rows the outputs, columns wrt.
    SymPy's derivative as it comes (no simplification: putting a sum over one denominator made
    ∂/∂x (x + x**y) the 0/0 (x + y·x**y)/x at x = 0), with torch's conventions for x**y when the
    exponent is not a number (:class:`_pow`)."""
    variable_exponent = (lambda e: isinstance(e, sp.Pow) and not e.exp.is_number)
    G = stable_forms(F).applyfunc(lambda e: e.replace(variable_exponent,
                                                      lambda p: _pow(p.base, p.exp)))
    J = G.jacobian(sp.Matrix(list(wrt))) if wrt else sp.zeros(G.rows, 0)
    return stable_forms(J.applyfunc(lambda e: e.replace(_pow, sp.Pow)))
