"""Primitive functions and the one table of derivative rules.

Where it sits: the bottom of the pipeline (declare). Every route that differentiates reads ``RULES``:
``sympy.diff`` through the ``fdiff`` of the primitives below, the element-level engine through it, and
the matrix-level engine through :func:`derivative`. A new activation touches this file only:
subclass :class:`Primitive`, then ``defderiv(cls, lambda ans, x: ...)`` right under it.

A rule reads like autograd's ``defvjp``: ``ans`` is the primitive's output f(x), ``x`` its input, and the
rule returns f'(x), preferably in terms of ``ans`` (σ' = σ(1 - σ), tanh' = 1 - tanh²) so the value of
the forward pass is reused.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import sympy as sp


class MissingRuleError(LookupError):
    """Raised when an expression uses a primitive that has no derivative rule."""


@dataclass(frozen=True)
class Rule:
    """The derivative of one elementwise primitive.

    ``deriv(ans, x)`` returns f'(x); ``prime`` names f' in text ("relu'"), ``prime_latex`` in LaTeX;
    ``says`` states the rule in words for a derivation's justification ("σ' = σ(1 − σ)").
    """

    deriv: Callable[[sp.Expr, sp.Expr], sp.Expr]
    prime: str
    prime_latex: str
    says: str = ""


RULES: dict[type, Rule] = {}


def defderiv(prim: type, deriv: Callable, *, prime: str | None = None,
             prime_latex: str | None = None, says: str = "") -> None:
    """Register the derivative rule of the elementwise primitive ``prim``."""
    name = prim.__name__
    RULES[prim] = Rule(deriv, prime or f"{name}'",
                       prime_latex or rf"\operatorname{{{name}}}'", says)


def rule_says(fn: type) -> str:
    """The rule of ``fn`` in words, for a justification ("" if it has none)."""
    rule = RULES.get(fn)
    return rule.says if rule else _SAYS.get(fn, "")


def rule_for(prim: type) -> Rule:
    """The rule for ``prim``; a primitive without one fails loudly, by name."""
    try:
        return RULES[prim]
    except KeyError:
        raise MissingRuleError(
            f"no derivative rule for the primitive {getattr(prim, '__name__', prim)!r}; "
            "register one with symgrad.functions.defderiv") from None


def derivative(prim: type, x: sp.Expr, ans: sp.Expr | None = None) -> sp.Expr:
    """f'(x) for the elementwise primitive ``prim``, with ``ans`` standing for f(x) if given."""
    rule = rule_for(prim)
    return rule.deriv(prim(x) if ans is None else ans, x)


# -- settings -------------------------------------------------------------------------------------
# relu'(0) is a setting of the object that needs a value there (a network, a kernel, a compiled
# function), fixed when that object is made; the package default below only seeds new objects.
# Symbolically step(0) stays step(0): nothing global decides it, so no result depends on what else
# the process did (a global, with SymPy's cache holding step(0) evaluated under an old value, made
# a kernel give relu'(0) = 0 at batch size 4 and 1 at batch size 8).
_DEFAULT = {"relu_grad_at_zero": sp.Integer(0)}  # the notes': σ'(z) = 0 if z ≤ 0


def check_relu_grad_at_zero(value) -> sp.Rational:
    """relu'(0) as an exact 0, 1/2 or 1, given as a number (an int, a float, a Fraction or a SymPy
    number). Text is refused, never read: nsimplify would sympify it (eval), and this module sits
    below the safe parser."""
    refused = ValueError(f"relu'(0): expected a number 0, 1/2 or 1, got {value!r} "
                         f"(a {type(value).__name__})")
    if isinstance(value, (bool, str)):  # True is an int to Python, but here a slip, never 1
        raise refused
    try:
        number = sp.sympify(value, strict=True)  # numbers only: strict refuses text
    except sp.SympifyError:
        raise refused from None
    if not (isinstance(number, sp.Expr) and number.is_number and number.is_extended_real):
        raise refused
    value = sp.nsimplify(number)
    if value not in (0, 1, sp.Rational(1, 2)):
        raise ValueError(f"relu'(0) must be 0, 1/2 or 1, not {value}")
    return value


def relu_grad_at_zero_default() -> sp.Rational:
    """The relu'(0) that new networks and compiled functions start with."""
    return _DEFAULT["relu_grad_at_zero"]


def set_relu_grad_at_zero(value) -> None:
    """Choose the package default of relu'(0) for networks and functions made from now on: 0 as
    in the notes, 1, or 1/2. Objects made before keep theirs (``net.relu_grad_at_zero``,
    ``kernel.relu_grad_at_zero``); SymPy's cache is never touched."""
    _DEFAULT["relu_grad_at_zero"] = check_relu_grad_at_zero(value)


# -- primitives -----------------------------------------------------------------------------------
class Primitive(sp.Function):
    """An elementwise function whose derivative comes from ``RULES`` (never hard-wired here)."""

    nargs = 1

    def fdiff(self, argindex=1):
        if argindex != 1:
            raise sp.ArgumentIndexError(self, argindex)
        return derivative(type(self), self.args[0], self)


class step(sp.Function):
    """The unit step, relu'(z) = step(z): 1 for z > 0, 0 for z < 0. step(0) is not decided here:
    it is relu'(0), a setting of whatever evaluates it (``step_cases(z, at0)``, a kernel, a
    network's ``relu_grad_at_zero``), so step(0) stays unevaluated. Unfolds to cases."""

    nargs = 1

    @classmethod
    def eval(cls, x):
        if x.is_number and x.is_extended_real and not x.is_zero:
            return sp.Integer(1) if x.is_positive else sp.Integer(0)
        return None

    def fdiff(self, argindex=1):
        return sp.Integer(0)  # zero almost everywhere; no Dirac delta in training

    def _eval_is_nonnegative(self):
        return True

    @staticmethod
    def _imp_(x):  # what lambdify calls: it knows no relu'(0), so at exactly 0 it says nan
        import numpy as np
        return np.where(x > 0, 1.0, np.where(x < 0, 0.0, np.nan))


def at_zero(expr, at0):
    """``expr`` with every step(0) replaced by relu'(0) = ``at0`` (a network's or a kernel's)."""
    return expr.replace(lambda e: isinstance(e, step) and e.args[0].is_zero, lambda e: at0) \
        if expr.has(step) else expr


class relu(Primitive):
    """relu(z) = max(0, z)."""

    @classmethod
    def eval(cls, x):
        if x.is_number and x.is_extended_real:
            return sp.Max(0, x)
        return None

    def _eval_rewrite_as_Piecewise(self, x, **kwargs):
        return sp.Piecewise((0, x <= 0), (x, True))

    def _eval_rewrite_as_Max(self, x, **kwargs):
        return sp.Max(0, x)

    @staticmethod
    def _imp_(x):
        import numpy as np
        return np.maximum(x, 0.0)


defderiv(relu, lambda ans, x: step(x), prime="relu'", prime_latex=r"\operatorname{relu}'",
         says="relu'(z) = step(z), 1 for z > 0 and 0 for z < 0")


class sigmoid(Primitive):
    """The logistic sigmoid σ(z) = 1 / (1 + exp(-z))."""

    @classmethod
    def eval(cls, x):
        if x.is_zero:
            return sp.Rational(1, 2)
        if isinstance(x, sp.Float):  # as exp(0.5) does: numbers in, a number out
            return 1 / (1 + sp.exp(-x))
        return None

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return 1 / (1 + sp.exp(-x))

    def _eval_is_positive(self):
        return self.args[0].is_extended_real

    def _eval_evalf(self, prec):
        return (1 / (1 + sp.exp(-self.args[0])))._eval_evalf(prec)

    @staticmethod
    def _imp_(x):  # exp(-log(1 + e^-x)): no overflow for any finite x
        import numpy as np
        return np.exp(-np.logaddexp(0.0, -np.asarray(x, dtype=float)))


defderiv(sigmoid, lambda ans, x: ans * (1 - ans), prime="σ'", prime_latex=r"\sigma'",
         says="σ'(z) = σ(z)(1 − σ(z))")


class softplus(Primitive):
    """softplus(z) = log(1 + exp(z)); its derivative is σ(z)."""

    @classmethod
    def eval(cls, x):
        if x.is_zero:
            return sp.log(2)
        if isinstance(x, sp.Float):
            return sp.log(1 + sp.exp(x))
        return None

    def _eval_rewrite_as_log(self, x, **kwargs):
        return sp.log(1 + sp.exp(x))

    def _eval_evalf(self, prec):
        return sp.log(1 + sp.exp(self.args[0]))._eval_evalf(prec)

    @staticmethod
    def _imp_(x):
        import numpy as np
        return np.logaddexp(0.0, x)


defderiv(softplus, lambda ans, x: sigmoid(x), prime="softplus'", says="softplus'(z) = σ(z)",
         prime_latex=r"\operatorname{softplus}'")


class leaky_relu(sp.Function):
    """leaky_relu(z, a) = z if z > 0 else a z; a defaults to 1/100 (as in PyTorch)."""

    nargs = (1, 2)

    @classmethod
    def eval(cls, x, a=None):
        if a is None:
            return cls(x, sp.Rational(1, 100))
        if x.is_number and x.is_extended_real:
            return x if x.is_positive else a * x
        return None

    def fdiff(self, argindex=1):
        x, a = self.args
        if argindex == 1:
            return a + (1 - a) * step(x)
        if argindex == 2:
            return x * (1 - step(x))
        raise sp.ArgumentIndexError(self, argindex)

    def _eval_rewrite_as_Piecewise(self, x, a, **kwargs):
        return sp.Piecewise((a * x, x <= 0), (x, True))

    @staticmethod
    def _imp_(x, a=0.01):
        import numpy as np
        return np.where(x > 0, x, a * x)


_SAYS = {leaky_relu: "leaky_relu'(z) = a + (1 − a) step(z), a for z < 0 and 1 for z > 0"}

# Rules for SymPy's own elementwise functions, so the matrix-level engine can use them as
# activations; sympy.diff already knows these, and the table states them in terms of ``ans``.
defderiv(sp.tanh, lambda ans, x: 1 - ans**2, prime="tanh'", prime_latex=r"\tanh'",
         says="tanh'(z) = 1 − tanh²(z)")
defderiv(sp.exp, lambda ans, x: ans, prime="exp'", prime_latex=r"\exp'")
defderiv(sp.log, lambda ans, x: 1 / x, prime="log'", prime_latex=r"\log'")
defderiv(sp.sin, lambda ans, x: sp.cos(x), prime="sin'", prime_latex=r"\sin'")
defderiv(sp.cos, lambda ans, x: -sp.sin(x), prime="cos'", prime_latex=r"\cos'")
defderiv(sp.Abs, lambda ans, x: sp.sign(x), prime="abs'", prime_latex=r"\operatorname{abs}'")


# -- cases ----------------------------------------------------------------------------------------
MAX_CASES = 4  # more cases than this read worse than relu'(z) itself: those steps stay as they are


def unfold_steps(expr: sp.Expr, at0, max_cases: int = MAX_CASES) -> sp.Expr:
    """Write the steps in ``expr`` (relu'(z) = step(z), leaky_relu' = a + (1 - a) step) as cases,
    as the notes do: c·step(z) = 0 if z ≤ 0, c otherwise; ``at0`` is relu'(0), the value at 0.

    Only ``step`` is rewritten. relu, leaky_relu and the unit values stay as they are: rewriting a
    forward relu as cases too, then multiplying the branches out, is what made the cases exponential
    in the number of units. The cases are built mutually exclusive (a product of steps is zero as soon
    as one of them is), equal branches are merged, impossible ones dropped (conditions simplified as
    boolean formulas over "z ≤ 0" atoms), and where more than ``max_cases`` would result the steps
    of that part stay written as step(z), which is exact too.
    """
    if not expr.has(step):
        return expr
    atoms: dict = {}
    pieces = _merge(_cases(sp.sympify(expr, strict=True), max_cases, atoms, at0))
    if len(pieces) == 1:
        return pieces[0][0]
    back = {b: rel for rel, b in atoms.items()}
    pieces.sort(key=lambda vc: vc[0] != 0)  # the notes write the zero case first
    args, before = [], sp.false
    for v, c in pieces[:-1]:  # read in order: a case need not repeat what the ones above exclude
        args.append((v, _relational(_given_not(c, before), back)))
        before = sp.Or(before, c)
    return sp.Piecewise(*args, (pieces[-1][0], sp.true))


def step_cases(z, at0) -> list:
    """step(z) as (value, condition) pairs, with relu'(0) = ``at0`` at 0."""
    at0 = check_relu_grad_at_zero(at0)
    if at0 == 0:
        return [(sp.Integer(0), z <= 0), (sp.Integer(1), z > 0)]
    if at0 == 1:
        return [(sp.Integer(0), z < 0), (sp.Integer(1), z >= 0)]
    return [(sp.Integer(0), z < 0), (at0, sp.Eq(z, 0)), (sp.Integer(1), z > 0)]


def _cases(e, limit, atoms, at0) -> list:
    """``e`` as exclusive (value, boolean) pairs over atoms standing for step conditions."""
    if not e.has(step):
        return [(e, sp.true)]
    if isinstance(e, step):
        rels = step_cases(e.args[0], at0)
        bools = [_atom(r, atoms) for _, r in rels[:-1]]
        conds = [sp.And(*[sp.Not(b) for b in bools[:k]], bools[k]) for k in range(len(bools))]
        conds.append(sp.And(*[sp.Not(b) for b in bools]))
        return [(v, c) for (v, _), c in zip(rels, conds)]
    parts = [_cases(a, limit, atoms, at0) for a in e.args]
    if isinstance(e, sp.Mul):  # a zero factor decides alone: the other factors' cases vanish there
        zero = [c for p in parts for v, c in p if v == 0]
        parts = [[(v, c) for v, c in p if v != 0] for p in parts]
    else:
        zero = []
    out = [(sp.Integer(0), sp.Or(*zero))] if zero else []
    combos = [([], sp.Not(sp.Or(*zero)) if zero else sp.true)]
    for p in parts:
        combos = [(vs + [v], sp.And(c, pc)) for vs, c in combos for v, pc in p]
        combos = [(vs, c) for vs, c in combos if _satisfiable(c)]
        if len(combos) + len(out) > limit:
            return _kept(e, atoms, at0)
    out += [(e.func(*vs), c) for vs, c in combos]
    return _merge(out)


def _kept(e, atoms, at0):
    """Too many cases: keep ``e`` with its steps written as step(z); only the steps that multiply
    all of ``e`` still become the one zero case (with relu'(0) = 0 or 1 a step is 0 or 1)."""
    kills = [a for a in e.args if isinstance(a, step)] if isinstance(e, sp.Mul) else []
    if not kills or at0 not in (0, 1):
        return [(e, sp.true)]
    zero = sp.Or(*[_atom(step_cases(k.args[0], at0)[0][1], atoms) for k in kills])
    return [(sp.Integer(0), zero), (e.func(*[a for a in e.args if a not in kills]), sp.Not(zero))]


def _merge(pieces) -> list:
    """Merge branches with the same value; drop branches that cannot happen."""
    by_value: dict = {}
    for v, c in pieces:
        by_value[v] = sp.Or(by_value.get(v, sp.false), c)
    out = []
    for v, c in by_value.items():
        c = _simplify_bool(c)
        if c != sp.false:
            out.append((v, c))
    return out


def _given_not(c, before):
    """Drop the literals of the conjunction ``c`` that add nothing once ``before`` is false."""
    if not isinstance(c, sp.And) or before == sp.false:
        return c
    from sympy.logic.inference import satisfiable
    lits = list(c.args)
    for lit in list(lits):
        shorter = sp.And(*[x for x in lits if x is not lit])
        if not satisfiable(sp.And(sp.Not(before), sp.Xor(shorter, c))):
            lits.remove(lit)
    return sp.And(*lits)


def _atom(rel, atoms):
    if rel not in atoms:
        atoms[rel] = sp.Dummy(f"c{len(atoms)}")
    return atoms[rel]


def _simplify_bool(c):
    if len(c.free_symbols) <= 8:  # simplify_logic is exponential in the atoms
        return sp.simplify_logic(c)
    return c


def _satisfiable(c) -> bool:
    from sympy.logic.inference import satisfiable
    return c == sp.true or bool(satisfiable(c))


def _relational(c, back):
    """A boolean over atoms back to relationals: ¬(z ≤ 0) is written z > 0."""
    if c in back:
        return back[c]
    if isinstance(c, sp.Not) and c.args[0] in back:
        return back[c.args[0]].negated
    if isinstance(c, (sp.And, sp.Or)):
        return c.func(*[_relational(a, back) for a in c.args])
    return c


# The names users may call in parsed text (see symgrad.parse), mapped to what they build.
FUNCTIONS: dict[str, tuple[Callable, tuple[int, ...]]] = {
    "sin": (sp.sin, (1,)), "cos": (sp.cos, (1,)), "tan": (sp.tan, (1,)),
    "asin": (sp.asin, (1,)), "acos": (sp.acos, (1,)), "atan": (sp.atan, (1,)),
    "sinh": (sp.sinh, (1,)), "cosh": (sp.cosh, (1,)), "tanh": (sp.tanh, (1,)),
    "exp": (sp.exp, (1,)), "log": (sp.log, (1,)), "ln": (sp.log, (1,)),
    "sqrt": (sp.sqrt, (1,)), "abs": (sp.Abs, (1,)),
    "sigmoid": (sigmoid, (1,)), "relu": (relu, (1,)), "softplus": (softplus, (1,)),
    "leaky_relu": (leaky_relu, (1, 2)),
    "max": (sp.Max, (2, None)), "min": (sp.Min, (2, None)),
}
CONSTANTS: dict[str, sp.Expr] = {"pi": sp.pi, "e": sp.E}
