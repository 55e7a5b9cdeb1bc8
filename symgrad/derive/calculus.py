"""Jacobians, gradients, the chain rule both ways, and vec/unvectorize: the lecture made executable.

Where it sits: derive, for plain vector functions (the network engine has its own, layer-aware
derivations built on the same records). Every public function here records its steps in a
:class:`~symgrad.derivation.Derivation` while it works; ``jacobian``/``gradient`` return just the result.
Conventions are the notes': a Jacobian has one row per output and one column per input; vec[W] lists
W row by row.
"""
from __future__ import annotations

import numbers
import re
from dataclasses import dataclass
from typing import Sequence

import sympy as sp

from symgrad.core.derivation import Chain, Compose, Derivation, Grad, Note, Partial, StepKind, Vec
from symgrad.core.parse import ParseError, parse, parse_symbols
from symgrad.core.evaluate import evaluate
from symgrad.core.matexpr import substitute
from symgrad.core.primitives import differentiate
from symgrad.derive import rules

# sympy.simplify is thorough but can take seconds on a large expression; past this size entries
# get the cheap exact forms only (cancel/factor), which are still exact.
_SIMPLIFY_LIMIT = 24
# The budget of every simplification (cancel, factor, simplify, expand): an entry past it stays as
# differentiated, exact, and the derivation says so. cancel and factor expand before they factor,
# so their cost follows the expanded size: the Jacobian of (x1+1)⋯(x20+20) has entries of 2¹⁹
# terms expanded (> 20 s), tanh nested 12 deep 4096 (cancel alone 2.3 s), while 200 terms take
# ~0.05 s. Polynomial algorithms also grow with the degree: factor(2x + y¹⁰⁰⁰⁰⁰⁰) ran > 40 s and
# (x + y^(10¹⁰⁰))² ran out of memory.
TERM_BUDGET = 200
DEGREE_BUDGET = 64
# Size written out counts too, where the terms stay few: an entry of the chain of six maps
# (tanh(a + b), tanh(a b)) has 32 terms but 11 000 nodes inside its tanh's, and cancel took
# 0.7 s on each of them (8.7 s for the chain) to shorten it by a third.
NODE_BUDGET = 2000


CANCEL_NODES = 300  # cancel of an entry with functions in it (see _tidy)


def _nodes(expr, cap: int = NODE_BUDGET + 1) -> int:
    """The nodes of ``expr``'s tree, counted up to ``cap`` (the walk stops there)."""
    n = 0
    for _ in sp.preorder_traversal(expr):
        n += 1
        if n >= cap:
            break
    return n


def _terms(expr, cap: int = TERM_BUDGET + 1) -> int:
    """An upper bound on the terms of ``expr`` expanded (function calls count as one), capped at
    ``cap``: computed on the tree in one pass, without expanding anything."""
    if expr.is_Atom or isinstance(expr, sp.Function) or not expr.args:
        return 1
    if expr.is_Add:
        return min(cap, sum(_terms(a, cap) for a in expr.args))
    if expr.is_Mul:
        n = 1
        for a in expr.args:
            n = min(cap, n * _terms(a, cap))
        return n
    if expr.is_Pow:
        k, e = _terms(expr.base, cap), expr.exp
        if not (e.is_Integer and k > 1):
            return k if e.is_Integer else 1
        return _power_terms(k, abs(int(e)) if abs(e) < cap else cap, cap)
    return min(cap, sum(_terms(a, cap) for a in expr.args))


def _power_terms(k: int, n: int, cap: int) -> int:
    """The terms of a k-term sum to the n-th power, expanded: C(n + k − 1, k − 1), capped."""
    total = 1
    for i in range(1, k):
        total = min(cap, total * (n + i) // i)
    return total


def _over_one_denominator(expr, cap: int = TERM_BUDGET + 1) -> int:
    """An upper bound on the terms of ``expr`` put over one common denominator and expanded,
    numerator and denominator together (capped at ``cap``): what cancel and factor build before
    they reduce anything. ``_terms`` counts a sum of fractions by its terms; over one denominator
    each numerator is multiplied by every other denominator, so n fractions over distinct
    denominators of two terms give n·2ⁿ⁻¹ terms: the gradient of a logistic loss of n examples
    written log(1 + exp(·)) is such a sum, and its Hessian (the Jacobian of the gradient)
    took 27.9 s of CPU at 5 examples and 2 weights, over 120 s at 8 examples and one
    (bench/hessian_scalar.py), nearly all of it cancel building a form min() then threw away."""
    memo: dict = {}

    def terms(b):
        if b not in memo:
            memo[b] = _terms(b, cap)
        return memo[b]

    num, den = _together(expr, cap, terms)
    total = num
    for b, v in den.items():
        total = min(cap, total + _power_terms(terms(b), v, cap))
    return total


def _together(e, cap: int, terms=None) -> tuple[int, dict]:
    """(terms of the numerator, {denominator base: power}) of ``e`` over one denominator, each
    count an upper bound capped at ``cap``; a base of one term (x, exp(u)) is left out, as it
    multiplies the numerator without adding terms. Function calls are atoms (cancel treats them
    as generators)."""
    if terms is None:
        terms = lambda b: _terms(b, cap)  # noqa: E731
    if e.is_Atom or isinstance(e, sp.Function) or not e.args:
        return 1, {}
    if e.is_Pow:
        if not e.exp.is_Integer:
            return 1, {}
        k = min(abs(int(e.exp)), cap) if abs(e.exp) < 10 ** 9 else cap
        n, den = _together(e.base, cap, terms)
        if e.exp > 0:
            return _power_terms(n, k, cap), {b: min(cap, v * k) for b, v in den.items()}
        num = 1  # 1/(n/d)^k = d^k/n^k
        for b, v in den.items():
            num = min(cap, num * _power_terms(terms(b), v * k, cap))
        return num, ({e.base: k} if n > 1 else {})
    if e.is_Mul:
        num, den = 1, {}
        for a in e.args:
            n, d = _together(a, cap, terms)
            num = min(cap, num * n)
            for b, v in d.items():
                den[b] = min(cap, den.get(b, 0) + v)
        return num, den
    parts = [_together(a, cap, terms) for a in e.args]
    if not e.is_Add:
        return min(cap, sum(n for n, _ in parts)), {}
    lcm: dict = {}
    for _, d in parts:
        for b, v in d.items():
            lcm[b] = max(lcm.get(b, 0), v)
    num = 0
    for n, d in parts:  # each numerator times the part of the common denominator it lacks
        for b, v in lcm.items():
            if v > d.get(b, 0):
                n = min(cap, n * _power_terms(terms(b), v - d.get(b, 0), cap))
        num = min(cap, num + n)
    return num, lcm


def _degree(expr) -> int:
    """The largest integer exponent anywhere in ``expr`` (1 if none)."""
    return max([1] + [abs(int(p.exp)) if abs(p.exp) < 10 ** 9 else 10 ** 9
                      for p in expr.atoms(sp.Pow) if p.exp.is_Integer])


def over_budget(expr) -> str | None:
    """Why simplifying ``expr`` is past the budget, or None if it is within it."""
    if _degree(expr) > DEGREE_BUDGET:
        return f"a power above {DEGREE_BUDGET}"
    if _terms(expr) > TERM_BUDGET:
        return f"more than {TERM_BUDGET} terms expanded"
    if _nodes(expr) > NODE_BUDGET:
        return f"more than {NODE_BUDGET} nodes"
    return None


class Tidy:
    """Simplify entries to short exact forms within the budget, and remember why any entry was
    left as differentiated (``note`` says it in words for the step that shows the entries)."""

    def __init__(self):
        self.skipped: list[str] = []

    def __call__(self, expr):
        if isinstance(expr, sp.MatrixBase):
            return expr.applyfunc(self)
        expr = sp.sympify(expr, strict=True)  # an expression already: strict refuses any text
        if expr.is_Rational or expr.is_Symbol:
            return expr  # nothing to simplify (most entries of a large Jacobian are 0 or 1)
        why = over_budget(expr)
        if why:
            if why not in self.skipped:
                self.skipped.append(why)
            return expr
        return _tidy(expr)

    def note(self) -> str:
        return ("; entries with " + " or ".join(self.skipped) + " are left as differentiated "
                "(exact, not simplified: past symgrad's simplification budget)"
                if self.skipped else "")


def tidy(expr):
    """Simplify an entry (or every entry of a matrix) to a short exact form, in bounded time."""
    return Tidy()(expr)


def _tidy(expr):
    if expr.has(sp.Float):
        expr = sp.nsimplify(sp.sympify(expr, strict=True), rational=True)
    if not expr.free_symbols:
        if sp.count_ops(expr) > _SIMPLIFY_LIMIT:
            return expr
        return sp.nsimplify(sp.sympify(sp.simplify(expr), strict=True)) if expr.has(sp.Float) \
            else sp.simplify(expr)
    if expr.is_rational_function():
        if not expr.atoms(sp.Add):
            return expr  # a monomial is in its simplest form (factor of x1⋯x299: 40 ms each)
        return _cancelled(expr, (sp.cancel, sp.factor))
    if sp.count_ops(expr) > _SIMPLIFY_LIMIT:
        if not any(p.exp.is_negative for p in expr.atoms(sp.Pow)):
            return expr  # nothing to cancel; cancel would only expand (68 ms per entry of 25 exps)
        # cancel expands inside function calls too, which the term budget counts as one term
        # each: on the chain of four maps (exp(a b), log(1 + a² + b²)) it took 50 s of 54.
        # The compound arguments are held opaque, as for simplify below, and a large entry is
        # left as it is: on the same chain cancel still took 17 s on entries of 300–1500 nodes.
        # A sum of fractions over unrelated denominators is reduced group by group, each group
        # within that size (a logistic loss's gradient and Hessian, one group per example).
        opaque, back = _opaque_arguments(expr)
        return _cancelled(opaque, (sp.cancel,), back, CANCEL_NODES)
    opaque, back = _opaque_arguments(expr)
    return min(sp.simplify(opaque).xreplace(back), expr, key=sp.count_ops)


def _cancelled(expr, forms, back=None, nodes=None):
    """The shortest (by count_ops) of ``expr``, ``form(expr)`` for each form (cancel, factor), and
    the sum of its groups of fractions each so reduced, in bounded work. cancel and factor first
    put the whole over one denominator, which for fractions over distinct denominators only grows:
    that step is taken when its size is within the budget (``_over_one_denominator``), and never
    when the groups' denominators share no symbol, where nothing can cancel across groups (the
    numerator of a group's fraction over the common denominator is that numerator times the other
    groups' denominators, prime to its own). Grouping is what keeps one example's terms of a
    logistic loss's Hessian together: x²eᵘ/(1 + eᵘ) − x²e²ᵘ/(1 + eᵘ)² becomes x²eᵘ/(1 + eᵘ)², for
    each example, however many there are.

    ``back`` restores the opaque arguments (see ``_opaque_arguments``): forms are compared as they
    will be written. ``nodes``: the largest expression (or group) reduced at all."""
    def size(e):
        return sp.count_ops(e if back is None else e.xreplace(back))

    def small(e):
        return not _lowest_terms(e) and _over_one_denominator(e) <= TERM_BUDGET and (
            nodes is None or _nodes(e, nodes + 1) <= nodes)

    fractions, rest = _denominator_groups(expr)
    coprime = len(fractions) > 1 and not rest and _disjoint([syms for _, syms in fractions])
    whole = not coprime and small(expr)
    candidates = ([form(expr) for form in forms] if whole else []) + [expr]
    if len(fractions) + bool(rest) > 1:
        parts = [sp.Add(*terms) for terms, _ in fractions]
        # each group as it is unless a form of it is strictly shorter
        reduced = [min([p] + [form(p) for form in forms], key=size) if small(p) else p
                   for p in parts]
        if any(r is not p for r, p in zip(reduced, parts)):
            candidates.append(sp.Add(*rest, *reduced))
    # with no form of the whole, the groups' sum is the shorter (only a group strictly shorter
    # was replaced): sizing both, restored, took the Hessian of a logistic loss of 10 examples
    # and 5 weights from 0.6 s of CPU to 0.9 s
    best = min(candidates, key=size) if whole else candidates[-1]
    return best if back is None else best.xreplace(back)


def _lowest_terms(t) -> bool:
    """Whether the term ``t`` is visibly a fraction in lowest terms, so cancel could only expand
    its denominator: a monomial (powers of symbols, of calls, of exp(c·u) with c > 0) over powers
    of sums that each have a constant term and no negative power inside. Such a sum has no
    monomial factor, so it shares none with the numerator, whose only factors are its generators.
    Each of a logistic loss's Hessian entries is a sum of such terms, one per example: cancel
    on each to find nothing made tidying the 25 entries of the 10-example, 5-weight Hessian take
    1.2–1.5 s of CPU instead of 0.27–0.34 s."""
    for f in (t.args if t.is_Mul else (t,)):
        base, k = f.as_base_exp() if f.is_Pow else (f, sp.S.One)
        if base.is_Add:
            if not (k.is_Integer and k < 0) or not any(a.is_Number for a in base.args):
                return False
            if any(_negative_power(a) for a in base.args):
                return False
        elif not (base.is_Atom or isinstance(base, sp.Function)) or _negative_power(base):
            return False
    return True


def _negative_power(e) -> bool:
    """Whether e holds a negative power of a generator, exp(−u) included (exp(−u) = exp(u)⁻¹)."""
    return any(p.exp.is_negative for p in e.atoms(sp.Pow)) or any(
        c.args[0].could_extract_minus_sign() for c in e.atoms(sp.exp))


def _denominator_groups(expr) -> tuple[list, list]:
    """The terms of the sum ``expr`` in groups joined by a denominator they share (directly or
    through others), each group with the free symbols of its denominators, and the terms with no
    denominator apart: ([(terms, symbols)], rest). A non-sum is one group or the rest."""
    terms = expr.args if expr.is_Add else (expr,)
    owner: dict = {}     # denominator base → its group's id
    parent: list = []    # union-find over the groups' ids
    members: list = []

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    rest = []
    for t in terms:
        bases = _together(t, TERM_BUDGET + 1)[1]
        if not bases:
            rest.append(t)
            continue
        g = len(parent)
        parent.append(g)
        members.append((t, tuple(bases)))
        for b in bases:
            if b in owner:
                parent[root(owner[b])] = g
            owner[b] = g
    groups: dict = {}
    for i, (t, bases) in enumerate(members):
        terms_, syms = groups.setdefault(root(i), ([], set()))
        terms_.append(t)
        for b in bases:
            syms |= b.free_symbols
    return list(groups.values()), rest


def _disjoint(sets) -> bool:
    seen: set = set()
    for s_ in sets:
        if seen & s_:
            return False
        seen |= s_
    return True


def _opaque_arguments(expr):
    """``expr`` with each compound argument of a function replaced by a symbol, and the way back.
    simplify then works on the outer structure (sin² + cos² = 1 still applies, the argument being
    one symbol), but never factors a polynomial inside cos(…): that alone took 26 s on a 20-op entry.

    An exponential's argument is held as a rational multiple of one symbol, c·u with u's sign
    fixed, so exp(−2u) is exp(u)⁻² to cancel and simplify, not an unrelated exp of another symbol:
    a logistic loss's second derivative x²e⁻ᵘ/(1 + e⁻ᵘ) − x²e⁻²ᵘ/(1 + e⁻ᵘ)² then reduces to
    x²e⁻ᵘ/(1 + e⁻ᵘ)², one term per example."""
    names, calls = {}, {}

    def held(a):
        return names.setdefault(a, sp.Dummy(real=a.is_real))

    for call in expr.atoms(sp.Function):
        if isinstance(call, sp.exp) and not call.args[0].is_Atom:
            c, u = call.args[0].as_content_primitive()
            if u.could_extract_minus_sign():
                c, u = -c, -u
            if not u.is_Atom:
                calls[call] = sp.exp(c * held(u))
            continue
        if any(not a.is_Atom for a in call.args):
            calls[call] = call.func(*[a if a.is_Atom else held(a) for a in call.args])
    return expr.xreplace(calls), {d: a for a, d in names.items()}


def same(a, b, points: int = 4) -> bool | None:
    """Whether two expressions (or matrices) are equal: exactly if SymPy can show it cheaply, else
    numerically at random points (relative 1e-9, at 20 digits, where both are defined). None
    when no point tried has finite values (towers of exp overflow everywhere): undecided."""
    if isinstance(a, sp.MatrixBase) or isinstance(b, sp.MatrixBase):
        a, b = sp.Matrix(a), sp.Matrix(b)
        if a.shape != b.shape:
            return False
        verdicts = [same(x, y, points) for x, y in zip(a, b)]
        return False if False in verdicts else None if None in verdicts else True
    diff = sp.sympify(a - b, strict=True)
    if diff == 0 or (sp.count_ops(diff) < 150 and not over_budget(diff) and sp.expand(diff) == 0):
        return True  # cheap exact proof; expanding a large difference can take minutes
    a, b = sp.sympify(a, strict=True), sp.sympify(b, strict=True)
    syms = sorted(a.free_symbols | b.free_symbols, key=str)
    import numpy as np
    rng, checked = np.random.default_rng(0), 0
    with np.errstate(all="ignore"):
        for _ in range(8 * points):
            pt = rng.uniform(-2, 2, len(syms))
            # first in floats, over the DAG: a point where a value overflows is skipped before
            # mpmath evaluates exp of a huge number at the precision of its exponent (114 s)
            floats = dict(zip(syms, pt))
            if not all(np.isfinite(evaluate(e, floats)) for e in (a, b)):
                continue
            # evaluated over the expression's DAG, each shared subtree once: lambdify printed
            # the tree written out first (10.9 s of 15.9 for a chain of six cubic maps)
            env = {s_: sp.Float(v, 30) for s_, v in zip(syms, pt)}
            try:
                va, vb = (complex(substitute(e, env).evalf(20)) for e in (a, b))
            except (TypeError, ValueError, ArithmeticError):
                # not a number there (a singular point), or too large for mpmath to evaluate
                # (exp of exp of … overflowed its exponent: OverflowError): try another
                continue
            if not (np.isfinite(va) and np.isfinite(vb)):
                continue  # a singular point: try another
            if abs(va - vb) > 1e-9 * (1 + abs(va) + abs(vb)):
                return False
            checked += 1
            if checked >= points:
                return True
    return True if checked else None


# -- input normalisation --------------------------------------------------------------------------
def as_vector(f, where: str = "f") -> sp.Matrix:
    """Text, an expression, a sequence or a Matrix -> a column Matrix of outputs."""
    if isinstance(f, str):
        f = parse(f)
    if isinstance(f, sp.MatrixBase):
        return sp.Matrix(f).reshape(len(f), 1) if 1 in f.shape else _not_vector(f, where)
    if isinstance(f, sp.Basic):
        return sp.Matrix([f])
    if isinstance(f, (list, tuple)):
        return sp.Matrix([parse(e) if isinstance(e, str) else _expr(e, where) for e in f])
    raise TypeError(f"{where}: expected text, a SymPy expression, a sequence or a Matrix, "
                    f"not {type(f).__name__}")


def _not_vector(f, where):
    raise ValueError(f"{where}: expected a vector, got a {f.rows}×{f.cols} matrix")


def _expr(e, where):
    if isinstance(e, sp.Basic):
        return e
    if isinstance(e, (int, float)):
        return sp.nsimplify(sp.sympify(e, strict=True), rational=True)
    raise TypeError(f"{where}: entries must be text or SymPy expressions, not {type(e).__name__}")


def as_symbols(wrt, f: sp.Matrix | None = None, where: str = "wrt") -> list[sp.Symbol]:
    """Text ("x1 x2", "x1,x2"), a sequence or a Matrix of symbols -> a list of symbols.

    A name is resolved against the free symbols of ``f`` first, so a SymPy expression built with
    its own ``Symbol('x1')`` is differentiated by that very symbol, not by a namesake.
    """
    if isinstance(wrt, str):
        syms = parse_symbols(wrt)
    elif isinstance(wrt, sp.MatrixBase):
        syms = list(wrt)
    elif isinstance(wrt, sp.Symbol):
        syms = [wrt]
    elif isinstance(wrt, (list, tuple)):
        syms = [parse_symbols(w)[0] if isinstance(w, str) else w for w in wrt]
    else:
        raise TypeError(f"{where}: expected names or symbols, not {type(wrt).__name__}")
    for s in syms:
        if not isinstance(s, sp.Symbol):
            raise ValueError(f"{where}: {s} is not a variable name")
    if len(set(syms)) != len(syms):
        raise ParseError(f"{where}: a variable is listed twice", None, str(wrt))
    by_name = {s.name: s for s in (f.free_symbols if f is not None else ())}
    return [by_name.get(s.name, s) for s in syms]


def _column(syms) -> sp.Matrix:
    return sp.Matrix(syms) if syms else sp.zeros(0, 1)


# -- Jacobians ------------------------------------------------------------------------------------
STEPS = ("normal", "full")
# Entries written out one by one (each ∂f_i/∂x_j on its line, and rule by rule with full steps)
ENTRY_STEPS = 36


def check_steps(steps: str) -> str:
    """``steps``: "normal" (each partial's value) or "full" (each partial rule by rule)."""
    if steps not in STEPS:
        raise ValueError(f"steps must be 'normal' or 'full' (the rules inside each partial), "
                         f"not {steps!r}")
    return steps


def vector_name(xs, F=None) -> str:
    """The name of the vector of the variables ``xs`` in ∂f/∂𝐱: their common letter (w1, w2 → 𝐰;
    x1, x2, x3 → 𝐱), else x, or w when x is a variable of f held fixed (the notes' two
    perspectives of 2ax + b/y: by (x, y) it is ∂f/∂𝐱, by (a, b) ∂f/∂𝐰)."""
    names = [x.name for x in xs]
    heads = {m.group(1) if m else None
             for m in (re.fullmatch(r"([A-Za-z]+?)_?\d+", n) for n in names)}
    if len(heads) == 1 and None not in heads:
        return heads.pop()
    fixed = set() if F is None else {x.name for x in F.free_symbols} - set(names)
    return next((v for v in ("x", "w", "v", "u") if v not in fixed), "x")


def _variable(xs, var, F):
    """What ∂f/∂· is taken by: the variable itself when there is one, else a vector of them."""
    if var is None and len(xs) == 1:
        return xs[0]
    return sp.MatrixSymbol(var or vector_name(xs, F), len(xs), 1)


def derive_jacobian(f, wrt, name: str = "f", var: str | None = None, entries: bool = True,
                    steps: str = "normal") -> Derivation:
    """The Jacobian ∂f/∂x with its steps: each partial derivative, then the matrix.
    ``steps="full"``: each partial rule by rule (sum, product, quotient, power, the chain rule with
    u = …), every line checked against sympy.diff (:mod:`symgrad.derive.rules`)."""
    check_steps(steps)
    F = as_vector(f, name)
    xs = as_symbols(wrt, F)
    if steps == "full" and F.rows * len(xs) > ENTRY_STEPS:
        raise ValueError(f"full steps are written for Jacobians of up to {ENTRY_STEPS} entries; "
                         f"this one has {F.rows}×{len(xs)} = {F.rows * len(xs)}")
    fs, xv = sp.Symbol(name), _variable(xs, var, F)
    d = Derivation(f"Jacobian of {name} with respect to ({', '.join(map(str, xs))})")
    d.add(fs, F, f"{name}: R^{len(xs)} → R^{F.rows}", StepKind.DEFINITION)
    simplify = Tidy()
    J = _jacobian_matrix(F, xs, simplify)
    if entries and F.rows * len(xs) <= ENTRY_STEPS:
        for i in range(F.rows):
            for j, x in enumerate(xs):
                fi = sp.Symbol(f"{name}_{i + 1}") if F.rows > 1 else fs
                if steps == "full":
                    rules.record(d, Partial(fi, x), F[i], x, J[i, j])
                else:
                    d.add(Partial(fi, x), J[i, j], rule=StepKind.PARTIAL)
    d.add(Partial(fs, xv), J, f"rows are the outputs of {name}, columns its inputs"
          + simplify.note(), StepKind.JACOBIAN, shapes=[J.shape])
    d.result = J
    d.meta.update(function=F, wrt=xs)
    return d


def jacobian(f, wrt) -> sp.Matrix:
    """∂f/∂x: rows = outputs of f, columns = inputs, entries simplified and exact."""
    return derive_jacobian(f, wrt, entries=False).result


def derive_gradient(f, wrt, name: str = "f", var: str | None = None,
                    steps: str = "normal") -> Derivation:
    """∇f for scalar f: the column vector, the transpose of the 1×m Jacobian (``steps="full"``:
    each partial rule by rule, as :func:`derive_jacobian`)."""
    check_steps(steps)
    F = as_vector(f, name)
    if F.rows != 1:
        raise ValueError(f"{name}: the gradient needs a scalar function, got {F.rows} outputs "
                         "(use jacobian)")
    d = derive_jacobian(F, wrt, name, var, steps=steps)
    J = d.result
    d.title = d.title.replace("Jacobian", "Gradient", 1)
    d.add(Grad(sp.Symbol(name), _variable(as_symbols(wrt, F), var, F)), J.T,
          "for a real-valued function the gradient is the transpose of the Jacobian",
          StepKind.TRANSPOSE, shapes=[J.T.shape])
    d.result = J.T
    return d


def gradient(f, wrt) -> sp.Matrix:
    """∇f for a scalar f: a column vector (the transpose of its 1×m Jacobian)."""
    return derive_gradient(f, wrt).result


# -- the chain rule -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fn:
    """A named vector function of named inputs: ``Fn("x1 + 2*x2, x2", "x1 x2", "g")``."""

    outputs: sp.Matrix
    inputs: tuple
    name: str

    @classmethod
    def make(cls, spec, name: str) -> "Fn":
        if isinstance(spec, Fn):
            return spec
        if not isinstance(spec, (tuple, list)) or len(spec) not in (2, 3):
            raise TypeError(f"{name}: give (expression, inputs) or (expression, inputs, name)")
        F = as_vector(spec[0], name)
        return cls(F, tuple(as_symbols(spec[1], F, f"inputs of {name}")),
                   spec[2] if len(spec) == 3 else name)


def _feeds(outer: Fn, inner: Fn, feed) -> dict:
    """{input of ``outer``: 0-based index of the output of ``inner`` that feeds it}."""
    if feed is None:
        if len(outer.inputs) != inner.outputs.rows:
            raise ValueError(f"{outer.name} takes {len(outer.inputs)} inputs but {inner.name} "
                             f"gives {inner.outputs.rows} outputs; say which feeds which (feed=)")
        return {v: k for k, v in enumerate(outer.inputs)}
    names = {v.name: v for v in outer.inputs}
    out = {}
    for key, k in dict(feed).items():
        key = getattr(key, "name", key)
        if key not in names:
            raise ValueError(f"feed: {outer.name} has no input {key!r}")
        if not (isinstance(k, int) and 1 <= k <= inner.outputs.rows):
            raise ValueError(f"feed: {inner.name} has no output {k!r} "
                             f"(outputs are numbered 1..{inner.outputs.rows})")
        out[names[key]] = k - 1
    missing = [v.name for v in outer.inputs if v not in out]
    if missing:
        raise ValueError(f"feed: nothing feeds {outer.name}'s input(s) {', '.join(missing)}")
    return out


# A Jacobian has rows × columns entries, and each once cost a SymPy diff, a simplification and a
# matrix assignment (~30 µs) even where the input does not occur: the identity of 1200 variables
# took 86 s. Past this many entries it is refused at once; below it only the entries whose input
# occurs are differentiated (one set look-up for the rest), and a sum is differentiated term by
# term over just the terms holding the input (∂/∂x_j of x1 + … + x1000 read all 1000 terms for
# each j: 15 s).
MAX_JACOBIAN_ENTRIES = 250_000


def _check_entries(rows: int, cols: int, what: str = "the Jacobian") -> None:
    if rows * cols > MAX_JACOBIAN_ENTRIES:
        raise ValueError(f"{what} would have {rows}×{cols} = {rows * cols} entries; symgrad "
                         f"derives up to {MAX_JACOBIAN_ENTRIES} (ask for fewer outputs or inputs)")


def _partials(e, xs, simplify) -> list:
    """[simplify(∂e/∂x) for x in xs], differentiating only where x occurs in ``e``."""
    free = e.free_symbols
    if e.is_Mul and len(e.args) > 8:
        # a product: only the factors holding x are differentiated, the rest multiply as they
        # are (SymPy's product rule rebuilt the n − 1 others for each of n factors, for each
        # input: ∂(x0⋯x299)/∂x took 294 s for all 300)
        out, frees = [], [f.free_symbols for f in e.args]
        for x in xs:
            holding = [f for f, fs in zip(e.args, frees) if x in fs]
            if not holding:
                out.append(sp.S.Zero)
                continue
            # the other factors keep their canonical order: no re-sorting of a long product
            rest = sp.Mul._from_args([f for f, fs in zip(e.args, frees) if x not in fs])
            dh = differentiate(sp.Mul(*holding), x)
            out.append(simplify(rest if dh == 1 else rest * dh))
        return out
    if e.is_Add and len(e.args) > 8:
        holding: dict = {}  # input → the terms of the sum that hold it
        for term in e.args:
            for s in term.free_symbols:
                holding.setdefault(s, []).append(term)
        return [simplify(sp.Add(*[differentiate(t, x) for t in holding[x]])) if x in holding
                else sp.S.Zero for x in xs]
    return [simplify(differentiate(e, x)) if x in free else sp.S.Zero for x in xs]


# The entries written out, all together: the Jacobian of x0⋯x999 w.r.t. each has 1000 entries of
# 999 factors (4.9 MB of text, 13.5 s). Counted as each entry is made, so the work stops there.
MAX_JACOBIAN_NODES = 150_000


def _jacobian_matrix(F: sp.Matrix, xs, simplify=tidy) -> sp.Matrix:
    _check_entries(F.rows, len(xs))
    if not (F.rows and xs):
        return sp.zeros(F.rows, len(xs))
    left = [MAX_JACOBIAN_NODES]

    def entry(v):
        v = simplify(v)
        if not v.is_Atom:
            left[0] -= _nodes(v, left[0] + 1)
            if left[0] < 0:
                raise ValueError(f"the Jacobian, written out, would pass {MAX_JACOBIAN_NODES} "
                                 f"nodes (its {F.rows}×{len(xs)} entries); ask for fewer outputs "
                                 "or inputs")
        return v
    return sp.Matrix([_partials(e, xs, entry) for e in F])


# The composition is written out by substitution, and its size multiplies at every junction: ten
# maps (x1 x2 x3, x1 + x2 x3, x3 x1) composed ran for minutes past 700 MB. What costs is the
# derivative written out (differentiated, simplified, printed), and the chain rule makes it grow
# with the nesting as well as the size: an entry of f(g(…)) is differentiated into a product along
# every path. Both are estimated first, from the functions alone, in one pass over each tree
# (_size_and_derivative); a chain whose derivative would pass this many nodes per entry is refused
# at once. Measured (derive and print, in-process, idle; the estimate in brackets): six
# tanh(tanh(u)) maps (181) 1.2 s; four maps (tanh(a + b), tanh(a b)) (459) 1.1 s; five (1155)
# 2.0 s; six (2787) 4.7 s; seven (6531) 12 s; four cubic maps (x y z, x + y z, z x) (661) 1.3 s;
# five (2073) 2.2 s; six (6321) 8.3 s. The CLI adds ~0.6 s of start-up, and the promise is
# about a second.
CHAIN_SIZE = 1000


def _size_and_derivative(e, leaves: dict, memo: dict) -> tuple[int, int]:
    """(nodes of ``e`` written out, an estimate of the nodes of ∂e/∂x written out), where a leaf
    in ``leaves`` stands for an inner function's output with its own pair. The estimate follows
    the rules: a sum's derivative is the sum of its terms'; a product's is one term per factor
    (that factor's derivative times the others); f(u)'s is f′(u)·u′, f′(u) about twice u."""
    if e in leaves:
        return leaves[e]
    if e in memo:
        return memo[e]
    if not e.args:
        pair = (1, 1)
    else:
        parts = [_size_and_derivative(a, leaves, memo) for a in e.args]
        size = 1 + sum(s_ for s_, _ in parts)
        if e.is_Add:
            pair = (size, 1 + sum(d_ for _, d_ in parts))
        elif isinstance(e, sp.Function) and len(parts) == 1:
            pair = (size, parts[0][1] + 2 * size)
        else:  # a product, a power and anything else: the product rule
            pair = (size, 1 + sum(d_ + size - s_ for s_, d_ in parts))
    memo[e] = pair
    return pair


def _check_composed_size(fns, maps) -> None:
    pairs = None  # (size, derivative) of each output of the inner part composed so far
    for i in range(len(fns) - 1, -1, -1):
        leaves = {v: pairs[k] for v, k in maps[i].items()} if pairs is not None else {}
        grew, memo = pairs is not None, {}  # the innermost function alone is no composition
        pairs = [_size_and_derivative(e, leaves, memo) for e in fns[i].outputs]
        worst = max((d_ for _, d_ in pairs), default=0)
        if grew and worst > CHAIN_SIZE:
            raise ValueError(f"chain: the derivative of {'∘'.join(g.name for g in fns[i:])}, "
                             f"written out, would have about {worst} nodes per entry; symgrad "
                             f"derives chains up to {CHAIN_SIZE} (compose fewer functions)")


def chain(*fns, feed: Sequence | None = None) -> Derivation:
    """The Jacobian of f∘g(∘h…) by substitution and by the product of Jacobians; both are checked.

    ``fns`` are outermost first, each an :class:`Fn` or ``(expression, inputs[, name])``. By default
    the outputs of each function feed the inputs of the one before it in order; ``feed`` gives, per
    junction, a mapping {input name of the outer function: 1-based output index of the inner one}.
    """
    if len(fns) < 2:
        raise ValueError("chain needs at least two functions, outermost first")
    fns = [Fn.make(f, "fghkpq"[i] if i < 6 else f"f{i}") for i, f in enumerate(fns)]
    feed = list(feed) if feed is not None else [None] * (len(fns) - 1)
    if len(feed) != len(fns) - 1:
        raise ValueError(f"feed: give one mapping per junction ({len(fns) - 1}), got {len(feed)}")
    maps = [_feeds(fns[i], fns[i + 1], feed[i]) for i in range(len(fns) - 1)]
    xs = fns[-1].inputs
    x = sp.MatrixSymbol(vector_name(xs, fns[-1].outputs), len(xs), 1)
    comp = Compose(*[sp.Symbol(f.name) for f in fns])
    d = Derivation(f"The chain rule for {'∘'.join(f.name for f in fns)}, two ways")
    for f in fns:
        d.add(sp.Symbol(f.name), f.outputs, f"{f.name}: R^{len(f.inputs)} → R^{f.outputs.rows}",
              StepKind.DEFINITION)

    _check_composed_size(fns, maps)
    # Each function's output as a function of x (innermost first), by substitution.
    values = {len(fns) - 1: fns[-1].outputs}
    for i in range(len(fns) - 2, -1, -1):
        values[i] = fns[i].outputs.xreplace({v: values[i + 1][k] for v, k in maps[i].items()})

    # Method 1: substitute the inner functions into the outer, then differentiate. Each step says
    # which way it belongs to (method=), the structure the side-by-side layout reads.
    shown = fns[0].outputs.xreplace({v: sp.UnevaluatedExpr(fns[1].outputs[k])
                                     for v, k in maps[0].items()}) if len(fns) == 2 else values[0]
    d.add(comp, shown, "method 1: substitute the inner function(s) into the outer",
          StepKind.SUBSTITUTION, method=1)
    simplify = Tidy()
    simplified = values[0].applyfunc(simplify)
    if simplified != shown:
        d.add(None, simplified, rule=StepKind.SIMPLIFY, method=1)
    by_substitution = _jacobian_matrix(simplified, xs, simplify)
    d.add(Partial(comp, x), by_substitution, "differentiate the composition", StepKind.JACOBIAN,
          shapes=[by_substitution.shape], method=1)

    # Method 2: multiply the Jacobians, each evaluated where its inputs come from.
    factors, partials = [], []
    for i, f in enumerate(fns):
        inner = fns[i + 1] if i + 1 < len(fns) else None
        below = sp.Symbol(inner.name) if inner else x
        Jf = _jacobian_matrix(f.outputs, f.inputs, simplify)
        if inner:
            cols = sp.zeros(Jf.rows, inner.outputs.rows)  # one column per output of inner
            for j, v in enumerate(f.inputs):
                cols[:, maps[i][v]] += Jf[:, j]
            d.add(Partial(sp.Symbol(f.name), below), cols,
                  f"method 2: the Jacobian of {f.name}, one column per output of {inner.name}",
                  StepKind.JACOBIAN, shapes=[cols.shape], method=2)
            Jf = cols.xreplace({v: values[i + 1][k] for v, k in maps[i].items()})
            Jf = Jf.applyfunc(simplify)
            if Jf != cols:
                d.add(None, Jf, f"evaluated at {inner.name}(x)", StepKind.SUBSTITUTION, method=2)
        else:
            d.add(Partial(sp.Symbol(f.name), x), Jf, f"the Jacobian of {f.name}",
                  StepKind.JACOBIAN, shapes=[Jf.shape], method=2)
        factors.append(Jf)
        partials.append(Partial(sp.Symbol(f.name), below))
    shapes = [m.shape for m in factors]
    d.add(Partial(comp, x), Chain(*partials), "the chain rule of multivariate calculus",
          StepKind.CHAIN_RULE, shapes=shapes, method=2)
    d.add(None, Chain(*[sp.ImmutableMatrix(m) for m in factors]), rule=StepKind.SUBSTITUTION,
          shapes=shapes, method=2)
    product = factors[0]
    for m in factors[1:]:
        product = product * m
    by_chain = product.applyfunc(simplify)
    d.add(None, by_chain, f"multiply: {' · '.join(f'{r}×{c}' for r, c in shapes)} → "
          f"{by_chain.rows}×{by_chain.cols}" + simplify.note(), StepKind.PRODUCT,
          shapes=[by_chain.shape], method=2)

    verdict = same(by_chain, by_substitution)
    if verdict is False:
        raise ArithmeticError("the two methods disagree: this is a bug in symgrad")
    d.add(None, Note("both methods agree" if verdict else
                     "both methods agree where SymPy could compare them; elsewhere the values "
                     "overflow at every point tried, so they were not compared numerically"),
          rule=StepKind.AGREE)
    d.result = by_chain
    d.meta.update(substitution=by_substitution, chain_rule=by_chain, composition=simplified,
                  factors=factors, wrt=list(xs))
    return d


# -- vec and unvectorize --------------------------------------------------------------------------
def vec(W) -> sp.Matrix:
    """vec[W]: the entries of W row by row (W11 … W1m … Wn1 … Wnm), as a column."""
    W = sp.Matrix(W)
    return W.reshape(W.rows * W.cols, 1)


def unvec(v, shape) -> sp.Matrix:
    """Undo :func:`vec`: lay the nm entries of ``v`` back out as an n×m matrix, row by row."""
    v = sp.Matrix(v)
    n, m = shape
    if len(v) != n * m:
        raise ValueError(f"unvec: {len(v)} entries cannot fill a {n}×{m} matrix")
    return v.reshape(n, m)


def matrix_symbols(name: str, n: int, m: int) -> sp.Matrix:
    """An n×m matrix of real symbols W_11 … W_nm (W_{i,j} when a dimension passes 9)."""
    sep = "," if max(n, m) > 9 else ""
    return sp.Matrix(n, m, lambda i, j: sp.Symbol(f"{name}_{i + 1}{sep}{j + 1}", real=True))


def derive_vec_jacobian(f, W, name: str = "f", wname: str = "W") -> Derivation:
    """∂f/∂vec[W]: the Jacobian of f with respect to the entries of W, row by row."""
    F, Wm = as_vector(f, name), sp.Matrix(W)
    d = Derivation(f"Jacobian of {name} with respect to vec[{wname}]")
    v = vec(Wm)
    d.add(Vec(sp.Symbol(wname)), v.T, "the entries of W row by row".replace("W", wname),
          StepKind.VECTORIZE, shapes=[v.T.shape])
    simplify = Tidy()
    J = _jacobian_matrix(F, list(v), simplify)
    d.add(Partial(sp.Symbol(name), Vec(sp.Symbol(wname))), J,
          "rows are the outputs, columns the entries of vec[W]".replace("W", wname)
          + simplify.note(),
          StepKind.JACOBIAN, shapes=[J.shape])
    d.result = J
    return d


def derive_matrix_gradient(n: int, m: int) -> Derivation:
    """∇_W J = p xᵀ for J depending on z = W x, with W n×m, derived through vec[W] as in the notes."""
    if not all(isinstance(k, numbers.Integral) and not isinstance(k, bool) and k >= 1
               for k in (n, m)):
        raise ValueError(f"n and m must be positive integers, got {n!r} and {m!r}")
    n, m = int(n), int(m)
    W = matrix_symbols("W", n, m)
    xs = [sp.Symbol(f"x_{j + 1}", real=True) for j in range(m)]
    ps = [sp.Symbol(f"p_{i + 1}", real=True) for i in range(n)]
    x, p, J = sp.Matrix(xs), sp.Matrix(ps), sp.Symbol("J")
    Ws, xv, pv, z = (sp.MatrixSymbol("W", n, m), sp.MatrixSymbol("x", m, 1),
                     sp.MatrixSymbol("p", n, 1), sp.MatrixSymbol("z", n, 1))
    d = Derivation(f"∇_W J for z = W x, W ∈ R^{n}×{m}")
    d.add(z, sp.MatMul(Ws, xv), "J depends on W only through z", StepKind.DEFINITION)
    d.add(Partial(J, Vec(Ws)), Chain(Partial(J, z), Partial(z, Vec(Ws))),
          "z separates J from W, so the chain rule applies", StepKind.CHAIN_RULE,
          shapes=[(1, n), (n, n * m)])
    d.add(Partial(J, z), pv.T, "name the row vector ∂J/∂z = pᵀ", StepKind.DEFINITION,
          shapes=[(1, n)])
    dz = _jacobian_matrix(W * x, list(vec(W)))
    d.add(Partial(z, Vec(Ws)), dz, "z_i = Σ_j W_ij x_j depends only on row i of W",
          StepKind.JACOBIAN, shapes=[dz.shape])
    blocks = sp.BlockMatrix([[xv.T if i == j else sp.ZeroMatrix(1, m) for j in range(n)]
                             for i in range(n)])
    d.add(None, blocks, "block i of row i is xᵀ, every other block 0ᵀ", StepKind.BLOCK)
    row = (p.T * dz).applyfunc(sp.expand)
    d.add(Partial(J, Vec(Ws)), Chain(pv.T, blocks), shapes=[(1, n), (n, n * m)],
          rule=StepKind.PRODUCT)
    d.add(None, sp.BlockMatrix([[ps[i] * xv.T for i in range(n)]]), "multiply block by block",
          StepKind.PRODUCT, shapes=[(1, n * m)])
    grad = unvec(row, (n, m))
    if grad != p * x.T:
        raise ArithmeticError("unvectorizing disagrees with p xᵀ: this is a bug in symgrad")
    d.add(Grad(J, Ws), sp.BlockMatrix([[ps[i] * xv.T] for i in range(n)]),
          "unvectorize: entry block i becomes row i", StepKind.UNVECTORIZE, shapes=[(n, m)])
    d.add(None, sp.MatMul(pv, xv.T), "an outer product", StepKind.SIMPLIFY, shapes=[(n, m)])
    d.result = sp.MatMul(pv, xv.T)
    d.meta.update(explicit=grad, dz_dvecW=dz, W=W, x=x, p=p)
    return d
