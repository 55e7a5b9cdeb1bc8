"""Losses: ℓ of one example and everything the engines need to know about it.

Where it sits: declare → graph. :class:`Loss` carries each loss's behaviour (its scalar ℓ, the
∂ℓ/∂ŷ row the notes write, the g the backward pass starts from, whether it fuses with the output
activation, which output it needs), so the engines, printers and compiler ask the Loss instead
of testing its name. :mod:`symgrad.network` attaches one to a graph with ``set_loss``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import sympy as sp

from symgrad.graph.activations import ACTIVATIONS
from symgrad.core.matexpr import Elementwise, LogSumExp, SumAll, hadamard, lam
from symgrad.core.parse import parse


LOSSES = ("mse", "bce", "cross_entropy")
# The output each built-in loss needs, and the words for its fused backward start (ŷ − y at the logits).
_NEEDS = {"bce": ("sigmoid", "bce needs sigmoid outputs (output='sigmoid')"),
          "cross_entropy": ("softmax", "cross_entropy needs softmax outputs (output='softmax')")}
_FUSED = {"bce": "σ + binary cross-entropy", "cross_entropy": "softmax + cross-entropy"}


@dataclass(frozen=True)
class Loss:
    """A loss summed over output components: mse, bce, cross_entropy, or a user expression
    L(yhat, y) of one component (e.g. a Huber loss ``min(abs(yhat - y), 1)*(abs(yhat - y) -
    min(abs(yhat - y), 1)/2)``).

    Everything that depends on which loss it is lives here, so engines never test the name:
    :meth:`scalar` (ℓ of one example), :meth:`row` (∂ℓ/∂ŷ as the notes write it),
    :meth:`start` (the g the backward pass starts from), :attr:`fused`, :attr:`labels` and
    :meth:`check_output`.
    """

    name: str
    L: sp.Lambda | None = None  # per component, for a user loss

    @classmethod
    def make(cls, spec) -> "Loss":
        if isinstance(spec, Loss):
            return spec
        if spec in LOSSES:
            return cls(spec)
        if not isinstance(spec, str):
            raise TypeError(f"loss: expected one of {', '.join(LOSSES)} or an expression")
        body = parse(spec)
        yh, y = sp.Symbol("yhat", real=True), sp.Symbol("y", real=True)
        if not isinstance(body, sp.Expr):
            raise ValueError(f"loss {spec!r}: expected one of {', '.join(LOSSES)} or an "
                             "expression in yhat and y")
        unknown = sorted(s.name for s in body.free_symbols - {yh, y})
        if unknown:  # name them: "expected an expression in yhat and y" alone left users guessing
            raise ValueError(f"loss {spec!r}: {', '.join(unknown)} "
                             f"{'is not a variable' if len(unknown) == 1 else 'are not variables'}"
                             " of a loss, an expression in yhat and y (or one of "
                             f"{', '.join(LOSSES)})")
        p, t = sp.Dummy("p", real=True), sp.Dummy("t", real=True)
        return cls("custom", sp.Lambda((p, t), body.xreplace({yh: p, y: t})))

    @property
    def words(self) -> str:
        """What ℓ is, in a few words (a derivation's justification of a multi-task loss term)."""
        return {"mse": "the squared error ½‖ŷ − y‖²", "bce": "the binary cross-entropy",
                "cross_entropy": "the cross-entropy −Σ_k y_k log ŷ_k"}.get(
                    self.name, "Σ_k L(ŷ_k, y_k)")

    @property
    def fused(self) -> bool:
        """True when the loss and the output activation collapse together to ŷ − y at the logits."""
        return self.name in _FUSED

    @property
    def fused_label(self) -> str:
        return _FUSED.get(self.name, "")

    @property
    def labels(self) -> bool:
        """True when targets may come as integer class labels (cross_entropy: one softmax output
        per class), indexed rather than one-hot."""
        return self.name == "cross_entropy"

    def check_output(self, node) -> None:
        """bce needs a sigmoid output node, cross_entropy a softmax one over ≥ 2 units."""
        if self.labels and node.dim == 1:
            raise ValueError("cross_entropy needs at least 2 outputs: a softmax over 1 output is "
                             "always 1 (for two classes use 1 sigmoid output with bce)")
        if self.name not in _NEEDS:
            return
        act, msg = _NEEDS[self.name]
        # the function itself, not its name: a user's activation may be called "sigmoid" too
        ok = node.op == "softmax" if act == "softmax" else (
            node.op == "act" and node.act.same_function(ACTIVATIONS[act]))
        if not ok:
            raise ValueError(msg)

    def dL(self) -> sp.Lambda:
        """∂L/∂ŷ of one component of a user loss, as a Lambda of (ŷ, y)."""
        p, t = self.L.variables
        return sp.Lambda((p, t), self.L.expr.diff(p))

    def scalar(self, yh, y, z):
        """ℓ of one example (1×1). bce and cross-entropy are written in the logits z (softplus and
        log-sum-exp) so that they stay finite where ŷ rounds to 0 or 1."""
        if self.name == "mse":
            return sp.Rational(1, 2) * SumAll(hadamard(yh - y, yh - y))
        if self.name == "bce":
            return SumAll(Elementwise(lam(lambda a, t: sp.log(1 + sp.exp(a)) - t * a, 2), z, y,
                                      label="bce"))
        if self.name == "cross_entropy":  # −Σ y log softmax(z) = Σ y (logsumexp(z) − z)
            return SumAll(hadamard(y, sp.OneMatrix(z.rows, 1) * LogSumExp(z) - z))
        return SumAll(Elementwise(self.L, yh, y, label="L"))

    def written_out(self, out, y):
        """ℓ of one example over scalar entries (ŷ_k, y_k): the element level's loss, as the notes
        write it (in ŷ, not in the logits)."""
        if self.name == "mse":
            return sp.Rational(1, 2) * sum((a - b) ** 2 for a, b in zip(out, y))
        if self.name == "bce":
            return -sum(b * sp.log(a) + (1 - b) * sp.log(1 - a) for a, b in zip(out, y))
        if self.name == "cross_entropy":
            return -sum(b * sp.log(a) for a, b in zip(out, y))
        return sum(self.L(a, b) for a, b in zip(out, y))

    def row(self, yh, y):
        """(∂ℓ/∂ŷ as a row vector, before any simplification, and why)."""
        if self.name == "mse":
            return (yh - y).T, "ℓ = ½‖ŷ − y‖², so ∂ℓ/∂ŷ = (ŷ − y)ᵀ"
        if self.name == "bce":
            e = Elementwise(lam(lambda p, t: (p - t) / (p * (1 - p)), 2), yh, y,
                            label="(ŷ − y)/(ŷ(1 − ŷ))",
                            latex=r"\frac{\hat{y} - y}{\hat{y}(1 - \hat{y})}")
            return e.T, ("ℓ = −Σ_k [y_k log ŷ_k + (1 − y_k) log(1 − ŷ_k)], so ∂ℓ/∂ŷ_k = "
                         "−y_k/ŷ_k + (1 − y_k)/(1 − ŷ_k) = (ŷ_k − y_k)/(ŷ_k(1 − ŷ_k))")
        if self.name == "cross_entropy":
            e = Elementwise(lam(lambda p, t: -t / p, 2), yh, y, label="−y/ŷ",
                            latex=r"-\frac{y}{\hat{y}}")
            return e.T, "ℓ = −Σ_k y_k log ŷ_k, so ∂ℓ/∂ŷ_k = −y_k/ŷ_k"
        return (Elementwise(self.dL(), yh, y, label=self._dL_label()).T,
                "ℓ = Σ_k L(ŷ_k, y_k): differentiate L entrywise")

    def start(self, yh, y):
        """(g at the output, or at the logits when fused; why). The fused collapse is derived step
        by step in ``derive_matrix``; here is its result."""
        if self.fused:
            return yh - y, (f"{self.fused_label}: ∂ℓ/∂ŷ times the output Jacobian collapses "
                            "to ŷ − y")
        if self.name == "mse":
            return yh - y, "ℓ = ½‖ŷ − y‖², so ∇_ŷ ℓ = ŷ − y"
        return (Elementwise(self.dL(), yh, y, label=self._dL_label()),
                "ℓ = Σ_k L(ŷ_k, y_k): differentiate L entrywise")

    def _dL_label(self) -> str:
        """∂L/∂ŷ of a user loss as the formula it is (4*(ŷ - y)**3), never the bare name: a
        formula label prints its body on each entry, [4(ŷ_k − y_k)³]_k, at every level."""
        p, t = self.L.variables
        text = sp.sstr(self.dL().expr.xreplace({p: sp.Symbol("ŷ"), t: sp.Symbol("y")}))
        return text if not re.fullmatch(r"[\w']+", text) else "(%s)" % text


@dataclass(frozen=True)
class LossTerm:
    """One term w · ℓ(output, its target) of a network's loss (``net.losses``)."""

    output: str
    loss: Loss
    weight: sp.Expr = sp.Integer(1)


__all__ = ["Loss", "LossTerm", "LOSSES"]
