"""Jacobians, gradients, the chain rule both ways, and vec/unvectorize: the lecture made executable.

Where it sits: derive, for plain vector functions (the network engine has its own, layer-aware
derivations built on the same records). Every public function here records its steps in a
:class:`~symgrad.derivation.Derivation` while it works; ``jacobian``/``gradient`` return just the result.
Conventions are the notes': a Jacobian has one row per output and one column per input; vec[W] lists
W row by row.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Sequence

import sympy as sp

from symgrad.core.derivation import Chain, Compose, Derivation, Grad, Note, Partial, StepKind, Vec
from symgrad.core.parse import ParseError, parse, parse_symbols
from symgrad.core.evaluate import evaluate
from symgrad.core.matexpr import substitute
from symgrad.core.primitives import differentiate

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
        n, total = abs(int(e)) if abs(e) < cap else cap, 1
        for i in range(1, k):  # C(n + k − 1, k − 1) terms in the expansion of a k-term sum^n
            total = min(cap, total * (n + i) // i)
        return total
    return min(cap, sum(_terms(a, cap) for a in expr.args))


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
        return min(sp.cancel(expr), sp.factor(expr), expr, key=sp.count_ops)
    if sp.count_ops(expr) > _SIMPLIFY_LIMIT:
        if not any(p.exp.is_negative for p in expr.atoms(sp.Pow)):
            return expr  # nothing to cancel; cancel would only expand (68 ms per entry of 25 exps)
        # cancel expands inside function calls too, which the term budget counts as one term
        # each: on the chain of four maps (exp(a b), log(1 + a² + b²)) it took 50 s of 54.
        # The compound arguments are held opaque, as for simplify below, and a large entry is
        # left as it is: on the same chain cancel still took 17 s on entries of 300–1500 nodes.
        if _nodes(expr, CANCEL_NODES + 1) > CANCEL_NODES:
            return expr
        opaque, back = _opaque_arguments(expr)
        return min(sp.cancel(opaque).xreplace(back), expr, key=sp.count_ops)
    opaque, back = _opaque_arguments(expr)
    return min(sp.simplify(opaque).xreplace(back), expr, key=sp.count_ops)


def _opaque_arguments(expr):
    """``expr`` with each compound argument of a function replaced by a symbol, and the way back.
    simplify then works on the outer structure (sin² + cos² = 1 still applies, the argument being
    one symbol), but never factors a polynomial inside cos(…): that alone took 26 s on a 20-op entry."""
    names, calls = {}, {}
    for call in expr.atoms(sp.Function):
        if any(not a.is_Atom for a in call.args):
            calls[call] = call.func(*[a if a.is_Atom else names.setdefault(a, sp.Dummy(real=a.is_real))
                                      for a in call.args])
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
def derive_jacobian(f, wrt, name: str = "f", var: str = "x", entries: bool = True) -> Derivation:
    """The Jacobian ∂f/∂x with its steps: each partial derivative, then the matrix."""
    F = as_vector(f, name)
    xs = as_symbols(wrt, F)
    fs, xv = sp.Symbol(name), sp.MatrixSymbol(var, len(xs), 1)
    d = Derivation(f"Jacobian of {name} with respect to ({', '.join(map(str, xs))})")
    d.add(fs, F, f"{name}: R^{len(xs)} → R^{F.rows}", StepKind.DEFINITION)
    simplify = Tidy()
    J = _jacobian_matrix(F, xs, simplify)
    if entries and F.rows * len(xs) <= 36:
        for i in range(F.rows):
            for j, x in enumerate(xs):
                fi = sp.Symbol(f"{name}_{i + 1}") if F.rows > 1 else fs
                d.add(Partial(fi, x), J[i, j], rule=StepKind.PARTIAL)
    d.add(Partial(fs, xv), J, f"rows are the outputs of {name}, columns its inputs"
          + simplify.note(), StepKind.JACOBIAN, shapes=[J.shape])
    d.result = J
    d.meta.update(function=F, wrt=xs)
    return d


def jacobian(f, wrt) -> sp.Matrix:
    """∂f/∂x: rows = outputs of f, columns = inputs, entries simplified and exact."""
    return derive_jacobian(f, wrt, entries=False).result


def derive_gradient(f, wrt, name: str = "f", var: str = "x") -> Derivation:
    """∇f for scalar f: the column vector, the transpose of the 1×m Jacobian."""
    F = as_vector(f, name)
    if F.rows != 1:
        raise ValueError(f"{name}: the gradient needs a scalar function, got {F.rows} outputs "
                         "(use jacobian)")
    d = derive_jacobian(F, wrt, name, var)
    J = d.result
    d.title = d.title.replace("Jacobian", "Gradient", 1)
    d.add(Grad(sp.Symbol(name), sp.MatrixSymbol(var, J.cols, 1)), J.T,
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
    xs, x = fns[-1].inputs, sp.MatrixSymbol("x", len(fns[-1].inputs), 1)
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
