"""Activations: the elementwise functions a layer applies, each with its derivative as data.

Where it sits: declare → graph. The declaring layer of :mod:`symgrad.network`: an
:class:`Activation` holds f and f' as SymPy Lambdas (f' may read the forward value h = f(z));
built-ins come from the rule table in :mod:`symgrad.functions`, a user expression in x is
differentiated with sympy.diff. Nothing here knows about graphs or losses.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from symgrad.core.primitives import leaky_relu, relu, rule_for, sigmoid, softplus
from symgrad.core.matexpr import Elementwise
from symgrad.core.parse import ParseError, parse


@dataclass(frozen=True)
class Activation:
    """An elementwise activation: f as a Lambda, and f' as a Lambda of (z, h = f(z))."""

    name: str
    f: sp.Lambda
    prime: sp.Lambda
    latex: str
    prime_latex: str

    def apply(self, z):
        return Elementwise(self.f, z, label=self.name, latex=self.latex)

    def derivative(self, z, h):
        """f'(z) entrywise; rules written in terms of h = f(z) reuse the forward value."""
        return Elementwise(self.prime, z, h, label=f"{self.name}'", latex=self.prime_latex,
                           shown=1)


def _from_primitive(name, prim, latex) -> Activation:
    rule = rule_for(prim)
    t, a = sp.Dummy("t", real=True), sp.Dummy("a", real=True)
    return Activation(name, sp.Lambda(t, prim(t)), sp.Lambda((t, a), rule.deriv(a, t)), latex,
                      rule.prime_latex)


def _builtin_activations() -> dict:
    t, a = sp.Dummy("t", real=True), sp.Dummy("a", real=True)
    acts = {"identity": Activation("identity", sp.Lambda(t, t), sp.Lambda((t, a), sp.Integer(1)),
                                   r"\operatorname{id}", r"\operatorname{id}'")}
    for name, prim, latex in [("relu", relu, r"\operatorname{relu}"), ("sigmoid", sigmoid, r"\sigma"),
                              ("tanh", sp.tanh, r"\tanh"),
                              ("softplus", softplus, r"\operatorname{softplus}")]:
        acts[name] = _from_primitive(name, prim, latex)
    step_rule = sp.Lambda((t, a), leaky_relu(t).diff(t))
    acts["leaky_relu"] = Activation("leaky_relu", sp.Lambda(t, leaky_relu(t)), step_rule,
                                    r"\operatorname{lrelu}", r"\operatorname{lrelu}'")
    return acts


ACTIVATIONS = _builtin_activations()
VECTOR_ACTIVATIONS = ("softmax",)


def activation(spec, name: str | None = None) -> Activation | str:
    """An activation by name (relu, sigmoid, …, softmax) or a user expression in ``x``.

    ``activation("x/(1 + abs(x))", name="softsign")``: its derivative is derived with sympy.diff,
    through the rule table for any primitive it uses.
    """
    if isinstance(spec, Activation) or spec in VECTOR_ACTIVATIONS:
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"activation: expected a name or an expression in x, got {spec!r}")
    if spec in ACTIVATIONS:
        return ACTIVATIONS[spec]
    try:
        body = parse(spec)
    except ParseError as e:
        raise ParseError(f"activation {spec!r}: {e}", e.column, spec) from None
    x = sp.Symbol("x", real=True)
    if not isinstance(body, sp.Expr) or not body.free_symbols <= {x}:
        raise ValueError(f"activation {spec!r}: expected a name ({', '.join(ACTIVATIONS)}, "
                         "softmax) or an expression in x alone")
    t, a = sp.Dummy("t", real=True), sp.Dummy("a", real=True)
    f = body.xreplace({x: t})
    label = name or "a"
    return Activation(label, sp.Lambda(t, f), sp.Lambda((t, a), sp.diff(f, t)),
                      rf"\operatorname{{{label}}}" if len(label) > 1 else label,
                      rf"\operatorname{{{label}}}'" if len(label) > 1 else label + "'")


__all__ = ["Activation", "ACTIVATIONS", "VECTOR_ACTIVATIONS", "activation"]
