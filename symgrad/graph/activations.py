"""Activations: the elementwise functions a layer applies, each with its derivative as data.

Where it sits: graph (above core). An :class:`Activation` holds f and f' as SymPy Lambdas (f' may
read the forward value h = f(z)) and the weight init it wants before it. The named ones are every
registered primitive with an init hint (relu, sigmoid, tanh, … from symgrad.core.primitives, f'
from its rule), identity, and those added by :func:`register_activation`, an expression in x
differentiated with sympy.diff through the primitives' rules. Nothing here knows about graphs or
losses.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

import sympy as sp

from symgrad.core.primitives import INITS, PRIMITIVES, PrimitiveSpec
from symgrad.core.matexpr import Elementwise
from symgrad.core.parse import ParseError, parse


@dataclass(frozen=True)
class Activation:
    """An elementwise activation: f as a Lambda, f' as a Lambda of (z, h = f(z)), their LaTeX
    names, and ``init``, the weight init before it ("he" or "glorot")."""

    name: str
    f: sp.Lambda
    prime: sp.Lambda
    latex: str
    prime_latex: str
    init: str = "glorot"

    def apply(self, z):
        return Elementwise(self.f, z, label=self.name, latex=self.latex)

    def same_function(self, other: "Activation") -> bool:
        """Whether f is ``other.f`` up to the name of its bound variable. Not ``f == other.f``:
        f binds a Dummy, and an activation unpickled in a new process keeps the old process's
        Dummy, so the Lambdas compare unequal (a pickled sigmoid+bce net refused to compile on a
        Dask process cluster: "bce needs sigmoid outputs")."""
        a, b = self.f.variables, other.f.variables
        return len(a) == len(b) and self.f.expr.xreplace(dict(zip(a, b))) == other.f.expr

    def derivative(self, z, h):
        """f'(z) entrywise; rules written in terms of h = f(z) reuse the forward value."""
        return Elementwise(self.prime, z, h, label=f"{self.name}'", latex=self.prime_latex,
                           shown=1)


def _from_primitive(spec: PrimitiveSpec) -> Activation:
    t, a = sp.Dummy("t", real=True), sp.Dummy("a", real=True)
    rest = spec.defaults  # leaky_relu's a = 1/100
    return Activation(spec.name, sp.Lambda(t, spec.cls(t, *rest)),
                      sp.Lambda((t, a), spec.deriv(a, t, *rest)), spec.latex, spec.prime_latex,
                      spec.init)


def _identity() -> Activation:
    t, a = sp.Dummy("t", real=True), sp.Dummy("a", real=True)
    return Activation("identity", sp.Lambda(t, t), sp.Lambda((t, a), sp.Integer(1)),
                      r"\operatorname{id}", r"\operatorname{id}'")


ACTIVATIONS = {"identity": _identity(),
               **{s.name: _from_primitive(s) for s in PRIMITIVES.values() if s.init}}
VECTOR_ACTIVATIONS = ("softmax",)
_REGISTERED: dict[str, str] = {}  # name → its text, for those added by register_activation
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


_BUILT_FROM = {name: PRIMITIVES[name] for name in ACTIVATIONS if name in PRIMITIVES}


def _named(spec) -> Activation | None:
    """The named activation ``spec``: built in, registered, or a primitive registered (after this
    module was loaded) with an init hint. One built from a primitive follows its registration: a
    rule replaced later (defderiv) is the rule hidden=name uses, as sympy.diff does (before, the
    named activation kept the rule it was built with and disagreed with "softplus(x)")."""
    prim = PRIMITIVES.get(spec)
    if prim is not None and prim.init and _BUILT_FROM.get(spec) is not prim:
        ACTIVATIONS[spec], _BUILT_FROM[spec] = _from_primitive(prim), prim
    return ACTIVATIONS.get(spec)


def activation(spec, name: str | None = None) -> Activation | str:
    """An activation by name (relu, sigmoid, …, softmax, or one registered) or a user expression
    in ``x``.

    ``activation("x/(1 + abs(x))", name="softsign")``: its derivative is derived with sympy.diff,
    through the rule table for any primitive it uses.
    """
    if isinstance(spec, Activation) or spec in VECTOR_ACTIVATIONS:
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"activation: expected a name or an expression in x, got {spec!r}")
    named = _named(spec)
    if named is not None:
        return named
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


def register_activation(name: str, text: str, *, init: str = "glorot") -> Activation:
    """Add the named activation ``name``, f(x) given by ``text`` (read by the safe parser; a
    composition of registered primitives, e.g. ``register_activation("swish", "x*sigmoid(x)")``):
    one call, after which ``mlp(..., hidden=name)`` and ``net.act(z, name)`` use it in every
    engine. Its derivative comes from sympy.diff through the primitives' rules, its LaTeX name is
    \\operatorname{name}, ``init`` ("he" or "glorot") the weight init before it. Registering a name
    again replaces it; a built-in name or a primitive's is refused."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"register_activation: the name must be a letter then letters, digits "
                         f"or _, not {name!r}")
    if name in VECTOR_ACTIVATIONS or name in PRIMITIVES or (name in ACTIVATIONS and
                                                             name not in _REGISTERED):
        raise ValueError(f"register_activation: {name!r} is built in; choose another name")
    if init not in INITS:
        raise ValueError(f"register_activation: init must be one of {', '.join(INITS)}, "
                         f"not {init!r}")
    if not isinstance(text, str):
        raise TypeError(f"register_activation: {name!r} is given as text in x (read by the safe "
                        f"parser), not {type(text).__name__}")
    tex = r"\operatorname{%s}" % name.replace("_", r"\_")
    act = replace(activation(text, name=name), name=name, latex=tex, prime_latex=tex + "'",
                  init=init)
    ACTIVATIONS[name] = act
    _REGISTERED[name] = text
    return act


def registered_activations() -> list[Activation]:
    """The activations added by :func:`register_activation`, in order."""
    return [ACTIVATIONS[n] for n in _REGISTERED]


__all__ = ["Activation", "ACTIVATIONS", "VECTOR_ACTIVATIONS", "activation", "register_activation",
           "registered_activations"]
