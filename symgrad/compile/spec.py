"""What a network kernel takes: parameter shapes, argument checks and conversion, initial weights.

Where it sits: compile (derive → simplify → **compile** → train). :mod:`.kernel` builds its argument
checks on :class:`Spec`; ``symgrad.train`` and ``symgrad.check`` validate data through it once, and
``Network.init_params`` is :func:`init_params`.
"""
from __future__ import annotations

import math

import numpy as np

from .. import backprop
from .common import FLOATS


def param_shapes(net) -> dict:
    """Parameter name -> numpy shape: W (d_out, d_in) as in the notes, a bias 1-D (d,)."""
    return {p: s if backprop.is_weight(net, p) else (s[0],) for p, s in net.shapes.items()}


class Spec:
    """What a kernel checks its arguments against; the slow path of validation and conversion."""

    def __init__(self, net):
        self.net, self.shapes = net, param_shapes(net)
        self.names = list(self.shapes)
        self.d_in = net.nodes[net.inputs[0]].dim
        self.d_out = net.nodes[net.output_node].dim
        self.labels = net.loss.name == "cross_entropy"
        self.weights = sum(math.prod(s) for p, s in self.shapes.items() if len(s) == 2)
        rows = backprop.batch_rows(net)
        self.X, self.Y = rows[net.sym(net.inputs[0])], rows[net.target]

    def check(self, params, X, Y=None):
        if not isinstance(params, dict):
            raise ValueError(f"params: expected a dict of arrays named {', '.join(self.names)}")
        out, dt = [], None
        for p in self.names:
            if p not in params:
                raise ValueError(f"params: missing {p!r} (expected {', '.join(self.names)})")
            a = np.asarray(params[p])
            if a.dtype not in FLOATS:
                raise ValueError(f"params[{p!r}] is {a.dtype}; expected float32 or float64")
            if a.shape != self.shapes[p]:
                raise ValueError(f"params[{p!r}] has shape {a.shape}; expected {self.shapes[p]}")
            if dt is not None and a.dtype != dt:
                raise ValueError(f"params[{p!r}] is {a.dtype} but params[{self.names[0]!r}] is {dt}")
            dt = a.dtype
            out.append(a)
        X = _numeric(X, "X", dt)
        if X.ndim != 2 or X.shape[1] != self.d_in:
            raise ValueError(f"X has shape {X.shape}; expected (n, {self.d_in}), one example a row")
        out.append(X)
        if Y is not None:
            out.append(self.target(Y, X.shape[0], dt))
        return out

    def target(self, Y, n, dt):
        Y = np.asarray(Y)
        if self.labels and Y.ndim == 1 and Y.shape == (n,):
            if Y.dtype.kind not in "iu":
                raise ValueError(f"Y: class labels must be integers, got {Y.dtype}")
            if n and (Y.min() < 0 or Y.max() >= self.d_out):
                raise ValueError(f"Y: labels must lie in 0..{self.d_out - 1}, got "
                                 f"{Y.min() if Y.min() < 0 else Y.max()}")
            return Y
        if Y.ndim == 1 and self.d_out == 1 and Y.shape == (n,):
            Y = Y[:, None]
        if Y.shape != (n, self.d_out):
            extra = f" or ({n},) integer labels" if self.labels else ""
            raise ValueError(f"Y has shape {Y.shape}; expected ({n}, {self.d_out}){extra}")
        return _numeric(Y, "Y", dt)


def _numeric(A, what, dt):
    A = np.asarray(A)
    if A.dtype.kind not in "biuf":
        raise ValueError(f"{what} must be numeric, got {A.dtype}")
    return A if A.dtype == dt else A.astype(dt)


def init_params(net, seed: int = 0, dtype="float64") -> dict:
    """Random weights (He normal, √(2/fan_in), before relu-like units; Glorot normal otherwise) and
    zero biases, shaped as :func:`param_shapes` says, from ``numpy.random.default_rng(seed)``."""
    dt = np.dtype(dtype)
    if dt not in FLOATS:
        raise ValueError(f"dtype must be float32 or float64, not {dtype}")
    rng, out = np.random.default_rng(seed), {}
    for p, shape in param_shapes(net).items():
        if len(shape) == 1:
            out[p] = np.zeros(shape, dt)
            continue
        fan_out, fan_in = shape
        acts = [net.nodes[c].act for n in net.nodes.values() if n.params and n.params[0] == p
                for c in net.consumers(n.name) if net.nodes[c].op == "act"]
        he = any(a.name in ("relu", "leaky_relu") for a in acts)
        std = math.sqrt(2 / fan_in) if he else math.sqrt(2 / (fan_in + fan_out))
        out[p] = (rng.standard_normal(shape) * std).astype(dt)
    return out



