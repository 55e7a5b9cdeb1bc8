"""The typed program: a derived computation as plain data, like a jaxpr.

Where it sits: core. ``symgrad.derive.backprop`` produces a :class:`Program` (the batch form of
Algorithm 6.4: forward values, the mean loss, each backward value once, every gradient); the
compiler backends, the printers and the handouts walk it. Nobody infers meaning from a name: each
:class:`Var` says what it is (:class:`Kind`), what it stands for (``of``, the user's node or
parameter name — data, never code) and how it displays (``label``). Its SymPy symbol ``sym`` is
named by the program itself (``v3``, ``p0``, ``x0``), so an identifier in generated code can
neither collide with another nor carry a user's text.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

import sympy as sp


class Kind(enum.Enum):
    """What a program variable is."""

    INPUT = "input"          # a batch of one input (n × d), one example a row
    TARGET = "target"        # the batch of targets Y
    PARAM = "param"          # a parameter (a weight matrix or a bias column)
    FORWARD = "forward"      # a forward value (Z1, H1, …, Ŷ)
    LOSS = "loss"            # the mean loss (+ penalty), 1 × 1
    BACKWARD = "backward"    # a backward value G = ∂f/∂(a forward value)
    GRADIENT = "gradient"    # ∇θ f for one parameter, shaped like it


_PREFIX = {Kind.INPUT: "x", Kind.TARGET: "y", Kind.PARAM: "p", Kind.FORWARD: "v", Kind.LOSS: "v",
           Kind.BACKWARD: "v", Kind.GRADIENT: "v"}


@dataclass(frozen=True)
class Var:
    """One variable: its generated symbol, kind, what it stands for, and its display symbol."""

    sym: sp.MatrixSymbol     # named by the program (x0, y, p1, v7): safe in any generated code
    kind: Kind
    of: str | None           # the user's node or parameter name (a dict key), None for the loss
    label: sp.MatrixSymbol   # how the notes write it (X, Z1, G_z1, W1, dW1): display only

    @property
    def shape(self):
        return self.sym.shape


@dataclass(frozen=True)
class Eqn:
    """``out = rhs``: rhs a matrix expression over earlier variables' symbols."""

    out: Var
    rhs: sp.Basic


@dataclass
class Program:
    """Variables (inputs, target, parameters) and equations in order of evaluation."""

    inputs: list[Var] = field(default_factory=list)
    target: Var | None = None  # the first target (the only one, unless the loss has several)
    targets: list[Var] = field(default_factory=list)  # one per term of the loss, in order
    params: list[Var] = field(default_factory=list)
    eqns: list[Eqn] = field(default_factory=list)
    _count: dict = field(default_factory=dict, repr=False)

    def new(self, kind: Kind, shape, of=None, label=None) -> Var:
        """A fresh variable of ``kind``: its symbol is numbered here, never taken from ``of``."""
        prefix = _PREFIX[kind]
        k = self._count.get(prefix, 0)
        self._count[prefix] = k + 1
        name = (("y" if k == 0 else f"y{k}") if kind is Kind.TARGET else f"{prefix}{k}")
        v = Var(sp.MatrixSymbol(name, *shape), kind, of, label if label is not None else
                sp.MatrixSymbol(name, *shape))
        if kind is Kind.INPUT:
            self.inputs.append(v)
        elif kind is Kind.TARGET:
            self.target = self.target or v
            self.targets.append(v)
        elif kind is Kind.PARAM:
            self.params.append(v)
        return v

    def define(self, kind: Kind, rhs, shape=None, of=None, label=None) -> Var:
        v = self.new(kind, shape or rhs.shape, of, label)
        self.eqns.append(Eqn(v, rhs))
        return v

    # reading
    def of_kind(self, *kinds) -> list[Eqn]:
        return [e for e in self.eqns if e.out.kind in kinds]

    @property
    def loss(self) -> Var:
        return next(e.out for e in self.eqns if e.out.kind is Kind.LOSS)

    @property
    def gradients(self) -> dict:
        """Parameter name → its gradient's Var, in parameter order."""
        return {e.out.of: e.out for e in self.eqns if e.out.kind is Kind.GRADIENT}

    def forward_of(self, node: str) -> Var:
        for v in self.inputs:
            if v.of == node:
                return v
        return next(e.out for e in self.eqns if e.out.kind is Kind.FORWARD and e.out.of == node)

    @property
    def variables(self) -> list[Var]:
        return [*self.inputs, *self.targets, *self.params, *(e.out for e in self.eqns)]

    def display(self, *kinds) -> list[tuple]:
        """[(lhs, rhs)] written in the notes' names (X, Z1, G_z1, W1), for printing only; the
        equations of ``kinds`` (all if none given)."""
        names = {v.sym: v.label for v in self.variables}
        return [(e.out.label, e.rhs.xreplace(names)) for e in self.eqns
                if not kinds or e.out.kind in kinds]

    def __repr__(self):
        return (f"<Program: {len(self.inputs)} inputs, {len(self.params)} parameters, "
                f"{len(self.eqns)} equations>")


__all__ = ["Kind", "Var", "Eqn", "Program"]
