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

    ``deriv(ans, x)`` returns f'(x); ``prime`` names f' in text ("relu'"), ``prime_latex`` in LaTeX.
    """

    deriv: Callable[[sp.Expr, sp.Expr], sp.Expr]
    prime: str
    prime_latex: str


RULES: dict[type, Rule] = {}


def defderiv(prim: type, deriv: Callable, *, prime: str | None = None,
             prime_latex: str | None = None) -> None:
    """Register the derivative rule of the elementwise primitive ``prim``."""
    name = prim.__name__
    RULES[prim] = Rule(deriv, prime or f"{name}'",
                       prime_latex or rf"\operatorname{{{name}}}'")


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
# relu'(0): the notes define it as 0 (σ'(z) = 0 if z ≤ 0). Change with set_relu_grad_at_zero.
_SETTINGS = {"relu_grad_at_zero": sp.Integer(0)}


def set_relu_grad_at_zero(value) -> None:
    """Choose relu'(0) (and the step at 0): 0 as in the notes, 1, or 1/2."""
    value = sp.nsimplify(value)
    if value not in (0, 1, sp.Rational(1, 2)):
        raise ValueError(f"relu'(0) must be 0, 1/2 or 1, not {value}")
    _SETTINGS["relu_grad_at_zero"] = value


# -- primitives -----------------------------------------------------------------------------------
class Primitive(sp.Function):
    """An elementwise function whose derivative comes from ``RULES`` (never hard-wired here)."""

    nargs = 1

    def fdiff(self, argindex=1):
        if argindex != 1:
            raise sp.ArgumentIndexError(self, argindex)
        return derivative(type(self), self.args[0], self)


class step(sp.Function):
    """The unit step with step(0) = relu'(0): relu'(z) = step(z). Unfolds to cases."""

    nargs = 1

    @classmethod
    def eval(cls, x):
        if x.is_number and x.is_extended_real:
            if x.is_zero:
                return _SETTINGS["relu_grad_at_zero"]
            return sp.Integer(1) if x.is_positive else sp.Integer(0)
        return None

    def fdiff(self, argindex=1):
        return sp.Integer(0)  # zero almost everywhere; no Dirac delta in training

    def _eval_rewrite_as_Piecewise(self, x, **kwargs):
        at0 = _SETTINGS["relu_grad_at_zero"]
        if at0 == 0:
            return sp.Piecewise((0, x <= 0), (1, True))
        if at0 == 1:
            return sp.Piecewise((0, x < 0), (1, True))
        return sp.Piecewise((0, x < 0), (at0, sp.Eq(x, 0)), (1, True))

    def _eval_is_nonnegative(self):
        return True

    @staticmethod
    def _imp_(x):  # what lambdify calls: numeric step with the configured value at 0
        import numpy as np
        return np.where(x > 0, 1.0, np.where(x < 0, 0.0, float(_SETTINGS["relu_grad_at_zero"])))


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


defderiv(relu, lambda ans, x: step(x), prime="relu'", prime_latex=r"\operatorname{relu}'")


class sigmoid(Primitive):
    """The logistic sigmoid σ(z) = 1 / (1 + exp(-z))."""

    @classmethod
    def eval(cls, x):
        if x.is_zero:
            return sp.Rational(1, 2)
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


defderiv(sigmoid, lambda ans, x: ans * (1 - ans), prime="σ'", prime_latex=r"\sigma'")


class softplus(Primitive):
    """softplus(z) = log(1 + exp(z)); its derivative is σ(z)."""

    @classmethod
    def eval(cls, x):
        if x.is_zero:
            return sp.log(2)
        return None

    def _eval_rewrite_as_log(self, x, **kwargs):
        return sp.log(1 + sp.exp(x))

    def _eval_evalf(self, prec):
        return sp.log(1 + sp.exp(self.args[0]))._eval_evalf(prec)

    @staticmethod
    def _imp_(x):
        import numpy as np
        return np.logaddexp(0.0, x)


defderiv(softplus, lambda ans, x: sigmoid(x), prime="softplus'",
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


# Rules for SymPy's own elementwise functions, so the matrix-level engine can use them as
# activations; sympy.diff already knows these, and the table states them in terms of ``ans``.
defderiv(sp.tanh, lambda ans, x: 1 - ans**2, prime="tanh'", prime_latex=r"\tanh'")
defderiv(sp.exp, lambda ans, x: ans, prime="exp'", prime_latex=r"\exp'")
defderiv(sp.log, lambda ans, x: 1 / x, prime="log'", prime_latex=r"\log'")
defderiv(sp.sin, lambda ans, x: sp.cos(x), prime="sin'", prime_latex=r"\sin'")
defderiv(sp.cos, lambda ans, x: -sp.sin(x), prime="cos'", prime_latex=r"\cos'")
defderiv(sp.Abs, lambda ans, x: sp.sign(x), prime="abs'", prime_latex=r"\operatorname{abs}'")


def unfold_steps(expr: sp.Expr) -> sp.Expr:
    """Rewrite steps (relu', leaky_relu') as cases and fold them outward: c·step(z)·x → cases."""
    expr = expr.replace(lambda e: isinstance(e, (step, relu, leaky_relu)),
                        lambda e: e.rewrite(sp.Piecewise))
    return sp.piecewise_fold(expr)


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
