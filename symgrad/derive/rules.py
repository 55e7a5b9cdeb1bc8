"""Rule-by-rule steps inside one partial derivative: ∂f/∂x taken apart by the sum, constant multiple,
product, quotient and power rules and the chain rule with an explicit u = …, as a calculus
textbook (or a step-by-step calculator) writes it, every line checked against ``sympy.diff``.

Where it sits: derive, below the engines that print a scalar partial (``calculus.derive_jacobian``
and ``derive_gradient``, the element level's local factors); it records
:class:`~symgrad.core.derivation.Step` s of kind ``StepKind.RULE`` in the derivation it is given,
so the text and LaTeX printers print them as they print any step.

How: a line is the whole right-hand side with the parts not yet differentiated held as
:class:`Pending` (an unevaluated ``sympy.Derivative``, printed ∂/∂x[…]). Each step applies one rule,
looked up by the class of the pending expression in :data:`RULES` (as the matrix calculus's
``DIFFERENTIALS`` and JAX's ``jvp_rules``): ``@defrule(sp.Mul)`` registers the product, quotient and
constant multiple rules, ``@defrule(sp.Pow)`` the power rule, and so on; a function of a registered
primitive (exp, log, sin, σ, tanh, relu, …) takes its derivative from the primitive's registration
(:mod:`symgrad.core.primitives`), so a primitive added later has its rule too. The chain rule names
its inner function: ``let u = w1 x1 + b1; by the chain rule ∂σ(u)/∂w1 = σ(u)(1 − σ(u)) · ∂u/∂w1``,
the line keeps u, and ∂u/∂w1 is taken next; a last step writes u back.

Every line is checked before it is recorded (SymPy Gamma's steps once disagreed with its own
answer, sympy_gamma#106): its pending parts evaluated by ``sympy.diff`` and the u's written back,
it must equal ``sympy.diff(f, x)``, exactly where SymPy shows it cheaply, else at random points. A
rule giving a wrong line raises :class:`RuleStepError` naming the rule; a class with no rule raises
``MissingRuleError`` naming the class (:func:`check_complete` checks every class the engines and
the parser produce).

Cost: the checks dominate (a sympy.diff per partial, then each line compared, exactly or at four
points). Measured: the Jacobian of x² sin x and (x² + 1)/(x − 1), 12 lines, 0.31 s (0.06 s
without the rules); ∂ℓ/∂w1 of the 2-2-1 net, 21 lines, 0.16 s (0.007 s); a 2-3-3-2 tanh/softmax
net's ∂ℓ/∂W1_11, 64 lines, 0.12 s.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Callable

import sympy as sp
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.str import StrPrinter

from symgrad.core.derivation import Derivation, StepKind, _printing
from symgrad.core.evaluate import evaluate
from symgrad.core.primitives import (FUNCTIONS, RULES as PRIMITIVE_RULES, MissingRuleError,
                                     derivative, logsumexp)

__all__ = ["RULES", "SAYS", "Pending", "RuleStepError", "Use", "check_complete", "defrule",
           "engine_classes", "record", "rule_for", "rule_steps"]


class RuleStepError(ArithmeticError):
    """A rule produced a line that is not equal to sympy.diff: a bug in that rule, never printed."""


class Pending(sp.Derivative):
    """∂e/∂x not yet taken, inside a line of rule steps: printed ∂/∂x[e], or ∂u/∂x for a named
    inner function u. A ``sympy.Derivative`` (unevaluated), so ``doit`` takes it and exact
    printers (JSON) write ``Derivative(e, x)``, which sympify reads back."""

    @property
    def precedence(self):  # ∂u/∂x is a quotient: (∂v/∂u)/v in text, not ∂v/∂u/v
        return PRECEDENCE["Mul"] if self.expr.is_Symbol else PRECEDENCE["Atom"]

    def _sympystr(self, p):
        if type(p) is StrPrinter or any(c.__name__ == "SympifyPrinter" for c in type(p).__mro__):
            return StrPrinter._print_Derivative(p, self)  # exact (str, JSON): sympify reads it
        e, x = self.expr, self.variables[0]
        if e.is_Symbol:
            return f"∂{p._print(e)}/∂{p._print(x)}"
        return f"∂/∂{p._print(x)}[{p._print(e)}]"

    def _latex(self, p):
        e, x = self.expr, self.variables[0]
        if e.is_Symbol:
            return r"\frac{\partial %s}{\partial %s}" % (p._print(e), p._print(x))
        return r"\frac{\partial}{\partial %s}\left[%s\right]" % (p._print(x), p._print(e))


def d(e, x):
    """∂e/∂x still to take: 0 and 1 at once for a constant and for x itself (what every rule
    would say of them in a line of its own)."""
    if e == x:
        return sp.Integer(1)
    if not e.has(x):
        return sp.Integer(0)
    return Pending(e, x)


# -- the table ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Use:
    """One application of a rule to ∂e/∂x.

    ``rule`` names it (a key of :data:`SAYS`, or a primitive's name); ``value`` is ∂e/∂x with the
    parts still to differentiate as :class:`Pending`; for the chain rule ``inner`` is the inner
    function g, written :data:`U` in ``value`` until the engine names it (u, v, …)."""

    rule: str
    value: sp.Expr
    inner: sp.Expr | None = None
    dropped: tuple = ()  # the sum rule's terms that do not depend on x (their derivative is 0)


U = sp.Dummy("u", real=True)  # the chain rule's inner function, until the engine names it
RULES: dict[type, Callable[[sp.Expr, sp.Symbol], Use]] = {}
# Each rule in words (′: the derivative by the variable; {x}: the variable), the justification of
# a step that applies it. Letters f, h, p, z, c, a: g is the notes' gradient, bold in their words;
# superscripts that the LaTeX words know (ᵖ, ⁻¹, ²).
SAYS: dict[str, str] = {
    "constant": "a constant's derivative is 0",
    "variable": "∂{x}/∂{x} = 1",
    "sum": "the sum rule, (f + h)′ = f′ + h′",
    "constant multiple": "the constant multiple rule, (c f)′ = c f′",
    "product": "the product rule, (f h)′ = f′ h + f h′",
    "quotient": "the quotient rule, (f/h)′ = (f′ h − f h′)/h²",
    "power": "the power rule, (zᵖ)′ = p zᵖ⁻¹",
    "exponential": "the exponential rule, (aᵖ)′ = aᵖ log a · p′",
    "logarithmic": "logarithmic differentiation, (fᵖ)′ = fᵖ (p′ log f + p f′/f)",
    "cases": "differentiate each case",
}


def defrule(cls):
    """Register the rule of an expression class: ``fn(e, x)`` returns the :class:`Use` of its
    rule for ∂e/∂x (``e`` depends on ``x``)."""
    def register(fn):
        RULES[cls] = fn
        return fn
    return register


def rule_for(cls) -> Callable:
    """The rule of ``cls`` (through its bases, then the registered primitives); a class with none
    fails by name."""
    for base in cls.__mro__:
        if base in RULES:
            return RULES[base]
    if cls in PRIMITIVE_RULES:
        return _function
    raise MissingRuleError(f"full steps: no differentiation rule for {cls.__name__}; register one "
                           "with symgrad.derive.rules.defrule (or register the primitive)")


@defrule(sp.Number)
@defrule(sp.NumberSymbol)
@defrule(sp.core.numbers.ImaginaryUnit)
def _constant(e, x):
    return Use("constant", sp.Integer(0))


@defrule(sp.Symbol)
def _symbol(e, x):
    return Use("variable", sp.Integer(1)) if e == x else Use("constant", sp.Integer(0))


@defrule(sp.Add)
def _sum(e, x):
    kept = [t for t in e.args if t.has(x)]
    return Use("sum", sp.Add(*[d(t, x) for t in kept]),
               dropped=tuple(t for t in e.args if not t.has(x)))


@defrule(sp.Mul)
def _mul(e, x):
    const = [f for f in e.args if not f.has(x)]
    dep = [f for f in e.args if f.has(x)]
    if const:
        return Use("constant multiple", sp.Mul(*const) * d(sp.Mul(*dep), x))
    num = [f for f in dep if not _denominator(f)]
    den = [1 / f for f in dep if _denominator(f)]
    if num and den:
        u, v = sp.Mul(*num), sp.Mul(*den)
        return Use("quotient", (d(u, x) * v - u * d(v, x)) / v**2)
    return Use("product", sp.Add(*[sp.Mul(*dep[:i], d(f, x), *dep[i + 1:])
                                   for i, f in enumerate(dep)]))


def _denominator(f) -> bool:
    return f.is_Pow and f.exp.is_number and f.exp.is_negative


@defrule(sp.Pow)
def _pow(e, x):
    base, p = e.args
    if not p.has(x):  # xᵖ, or uᵖ with u = base by the chain rule
        if base == x:
            return Use("power", p * x**(p - 1))
        return Use("power", p * U**(p - 1) * Pending(U, x), inner=base)
    if not base.has(x):  # aᵍ
        if p == x:
            return Use("exponential", e * sp.log(base))
        return Use("exponential", base**U * sp.log(base) * Pending(U, x), inner=p)
    return Use("logarithmic", e * (d(p, x) * sp.log(base) + p * d(base, x) / base))


@defrule(sp.Piecewise)
def _piecewise(e, x):
    return Use("cases", sp.Piecewise(*[(d(v, x), c) for v, c in e.args]))


# functions whose arguments can be exchanged: the derivative by any argument is the registered
# derivative by the first, the arguments reordered
SYMMETRIC = {sp.Max, sp.Min, logsumexp}


def _function(e, x):
    """f(g) for a registered primitive f: its rule (f′ from the registration) and, when g is not
    x itself, the chain rule with u = g."""
    cls, args = type(e), e.args
    name = PRIMITIVE_RULES[cls].name
    dep = [i for i, a in enumerate(args) if a.has(x)]
    if dep == [0] or (len(dep) == 1 and cls in SYMMETRIC):
        i = dep[0]
        g, rest = args[i], args[:i] + args[i + 1:]
        if g == x:
            return Use(name, derivative(cls, x, rest=rest))
        return Use(name, derivative(cls, U, rest=rest) * Pending(U, x), inner=g)
    if cls in SYMMETRIC:
        # several arguments depend on x: the chain rule argument by argument
        return Use(name, sp.Add(*[derivative(cls, args[i], rest=args[:i] + args[i + 1:])
                                  * d(args[i], x) for i in dep]))
    raise MissingRuleError(f"full steps: no rule for {name} by its argument {dep[-1] + 1} "
                           f"(in {plain(e)})")


def says(rule: str, x) -> str:
    """The rule in words, for the variable ``x``."""
    if rule in SAYS:
        return SAYS[rule].replace("{x}", plain(x))
    spec = next((s for s in PRIMITIVE_RULES.values() if s.name == rule), None)
    return spec.says if spec else rule


# -- completeness ----------------------------------------------------------------------------------
def engine_classes() -> list[type]:
    """The expression classes the engines and the parser produce: numbers, symbols, sums,
    products, powers, cases, and every registered primitive and parser function (read when
    called, so a primitive registered later counts)."""
    out = [sp.Integer, sp.Rational, sp.Float, type(sp.pi), type(sp.E), sp.Symbol, sp.Add, sp.Mul, sp.Pow,
           sp.Piecewise]
    out += [c for c in PRIMITIVE_RULES if c not in out]
    out += [f for f, _ in FUNCTIONS.values() if isinstance(f, type) and f not in out]
    return out


def check_complete(classes=None) -> None:
    """Every class in ``classes`` (default :func:`engine_classes`) has a rule; else one
    ``MissingRuleError`` naming each class that lacks one."""
    missing = []
    for cls in engine_classes() if classes is None else classes:
        try:
            rule_for(cls)
        except MissingRuleError:
            missing.append(cls.__name__)
    if missing:
        raise MissingRuleError(f"full steps: no differentiation rule for {', '.join(missing)}")


# -- words ----------------------------------------------------------------------------------------
_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def plain(e) -> str:
    """``e`` in the Unicode a justification uses: products as spaces, integer powers raised
    (the text printer, through core's printing hook: derive never imports printing)."""
    text = _printing().PlainPrinter().doprint(e)
    text = re.sub(r"\*\*(-?\d+)\b", lambda m: m.group(1).translate(_SUPERSCRIPT), text)
    text = re.sub(r"\*\*\(?([^()*]+)\)?", r"^(\1)", text)
    return re.sub(r"(?<!\*)\*(?!\*)", " ", text).replace("-", "−")


# -- the engine -----------------------------------------------------------------------------------
# Lines of one partial: past this, the derivation is refused (a rule per node of the expression,
# so this is about the expression's size); the Jacobian writes full steps for up to 36 entries.
MAX_STEPS = 60
_NAMES = ("u", "v", "p", "q", "r", "s")


class _Run:
    """One partial's rule steps: the u's named so far and the truth each line is checked against."""

    def __init__(self, f, x):
        self.f, self.x = f, x
        self.truth = sp.diff(f, x)
        if self.truth.has(sp.Derivative, sp.Subs):  # a function sympy.diff cannot take
            raise MissingRuleError(f"full steps: sympy.diff leaves ∂/∂{plain(x)}[{plain(f)}] "
                                   "untaken, so no line could be checked (a function of your own "
                                   "should subclass symgrad's Primitive, whose derivative SymPy "
                                   "reads from its registration)")
        self.defs: dict = {}      # u → its inner function, in the variables
        self.serial: dict = {}    # pending part → when it appeared (the oldest is taken first)
        self.taken = {s.name for s in f.free_symbols} | {x.name}

    def fresh(self) -> sp.Symbol:
        names = list(_NAMES) + [f"u{k}" for k in range(1, 1000)]
        name = next(n for n in names if n not in self.taken)
        self.taken.add(name)
        return sp.Symbol(name, real=True)

    def number(self, expr) -> None:
        for e in sp.preorder_traversal(expr):
            if isinstance(e, Pending) and e not in self.serial:
                self.serial[e] = len(self.serial)

    def value(self, line):
        """The line with its pending parts taken by sympy.diff and the u's written back."""
        taken = {p: sp.diff(p.expr.xreplace(self.defs), *p.variables)
                 for p in line.atoms(Pending)}
        return line.xreplace(taken).xreplace(self.defs)

    def check(self, line, rule: str) -> None:
        value = self.value(line)
        if agrees(value, self.truth) is False:
            shown = plain(line) if value == line else f"{plain(line)}, that is {plain(value)},"
            raise RuleStepError(f"full steps: the {rule} rule gave a wrong step for "
                                f"∂/∂{plain(self.x)}[{plain(self.f)}]: {shown} is not "
                                f"{plain(self.truth)} (sympy.diff); this is a bug in symgrad")

    def use(self, part: Pending) -> Use:
        e = part.expr
        e = self.defs.get(e, e)  # ∂u/∂x: the rule of u's inner function
        return rule_for(type(e))(e, self.x)


def rule_steps(f, x) -> list[tuple]:
    """The lines of ∂f/∂x rule by rule: [(right-hand side, justification, kind)], the first
    ∂/∂x[f] itself, the last ∂f/∂x in the variables (no u left). Each line is checked against
    sympy.diff(f, x) before it is kept; a wrong one raises :class:`RuleStepError`."""
    f = sp.sympify(f, strict=True)
    run = _Run(f, x)
    line = d(f, x)
    out = [(line, "", StepKind.RULE)]
    run.number(line)
    while True:
        pending = sorted(line.atoms(Pending), key=run.serial.__getitem__)
        if not pending:
            break
        if len(out) > MAX_STEPS:
            raise ValueError(f"full steps: ∂/∂{x} of {plain(f)[:60]}… takes more than {MAX_STEPS} "
                             "rule steps; ask for the steps without the rules")
        first = pending[0]
        use = run.use(first)
        swap, why = {}, []
        named = first.expr in run.defs
        if use.inner is not None or named:  # the chain rule, or ∂u/∂x: one at a time
            group = [(first, use)]
        else:  # the same rule wherever it applies at once (every power rule of a polynomial)
            group = [(p, u) for p, u in ((p, run.use(p)) for p in pending if p.expr not in run.defs)
                     if u.rule == use.rule and u.inner is None]
        for part, u in group:
            value = u.value
            if u.inner is not None:
                name = run.fresh()
                run.defs[name] = u.inner
                value = value.xreplace({U: name})
                why.append(f"let {name} = {plain(u.inner)}; by the chain rule, "
                           f"(f({name}))′ = f′({name}) {name}′, with {says(u.rule, x)}")
            swap[part] = value
        if not why:
            why.append(says(use.rule, x))
            dropped = list(dict.fromkeys(t for _, u in group for t in u.dropped))
            if dropped:
                names = ", ".join(plain(t) for t in dropped[:4]) + (", …" if len(dropped) > 4
                                                                      else "")
                why[-1] += (f"; {names} {'does' if len(dropped) == 1 else 'do'} not depend on "
                            f"{plain(x)}")
        if named:
            why[0] = f"∂{first.expr}/∂{plain(x)}: " + why[0]
        line = line.xreplace(swap)
        run.check(line, use.rule)
        run.number(line)
        out.append((line, "; ".join(why), StepKind.RULE))
    if run.defs:
        names = [n for n in run.defs if line.has(n)]
        line = line.xreplace(run.defs)
        run.check(line, "substitution")
        if names:
            out.append((line, "substitute " + ", ".join(f"{n} = {plain(run.defs[n])}"
                                                         for n in names) + " back",
                        StepKind.SUBSTITUTION))
    return out


def record(deriv: Derivation, lhs, f, x, result=None, why: str = "") -> sp.Expr:
    """Record ∂f/∂x rule by rule in ``deriv`` under ``lhs`` (∂f/∂x, ∂ℓ/∂ŷ …), ending on ``result``
    (the engine's simplified form, checked equal) when given; returns the last right-hand side.
    The last line is of kind ``PARTIAL``: the entry itself."""
    lines = rule_steps(f, x)
    if len(lines) == 1 and lines[0][0] == 0:  # nothing to take apart
        of = getattr(lhs, "of", None)
        lines = [(sp.Integer(0), f"{plain(of) if of is not None else 'it'} does not depend on "
                  f"{plain(x)}", StepKind.PARTIAL)]
    if result is not None and lines[-1][0] != result:
        run = _Run(sp.sympify(f, strict=True), x)
        run.check(result, "simplification")
        lines.append((result, "simplify", StepKind.SIMPLIFY))
    for k, (rhs, text, kind) in enumerate(lines):
        if k == 0 and why:
            text = why
        if k == len(lines) - 1:
            kind = StepKind.PARTIAL
        deriv.add(lhs if k == 0 else None, rhs, text, kind)
    return lines[-1][0]


# -- the check ------------------------------------------------------------------------------------
def agrees(a, b, points: int = 4) -> bool | None:
    """Whether ``a`` equals ``b``: exactly where SymPy shows it cheaply, else in complex floats at
    random points (relative 1e-8, where both are finite); None if no point tried was."""
    diff = sp.sympify(a - b, strict=True)
    if diff == 0 or (sp.count_ops(diff) < 120 and sp.expand(diff) == 0):
        return True
    a, b = sp.sympify(a, strict=True), sp.sympify(b, strict=True)
    syms = sorted(a.free_symbols | b.free_symbols, key=str)
    rng = random.Random(0)
    checked = 0
    for _ in range(10 * points):
        env = {s: rng.uniform(-2, 2) for s in syms}
        va, vb = evaluate(a, env), evaluate(b, env)
        if not all(v == v and abs(v) != float("inf") for v in (va, vb)):
            continue
        if abs(va - vb) > 1e-8 * (1 + abs(va) + abs(vb)):
            return False
        checked += 1
        if checked >= points:
            return True
    return True if checked else None
