"""The update rules training steps with, and the argument check they share.

Where it sits: run, below :mod:`.train` (the in-memory loop) and :mod:`.chunked` (the loop over
dask arrays), which both step parameters with :class:`Optimizer`.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

OPTIMIZERS = ("sgd", "momentum", "adam")  # and "newton", for a derived Hessian (train_newton)
DEFAULT_LR = {"sgd": 0.1, "momentum": 0.01, "adam": 0.001}


class Optimizer:
    """One update rule, stepping ``params`` in place from ``grads`` (which it may overwrite)."""

    def __init__(self, name, lr, momentum=0.9, betas=(0.9, 0.999), eps=1e-8):
        if name not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {name!r}")
        if isinstance(lr, bool) or not (isinstance(lr, numbers.Real) and math.isfinite(lr)
                                        and lr > 0):
            raise ValueError(f"lr must be a positive number, not {lr!r}")
        if isinstance(momentum, bool) or not (isinstance(momentum, numbers.Real)
                                              and 0 <= momentum < 1):
            raise ValueError(f"momentum must be a number in [0, 1), not {momentum!r}")
        self.name, self.lr, self.mu, self.betas, self.eps = name, float(lr), momentum, betas, eps
        self.state, self.t = {}, 0

    def step(self, params, grads):
        self.t += 1
        lr = self.lr
        if self.name == "adam":  # bias-corrected moments, folded into the step size
            b1, b2 = self.betas
            lr = lr * math.sqrt(1 - b2 ** self.t) / (1 - b1 ** self.t)
        for k, p in params.items():
            g = grads[k]
            if self.name == "sgd":
                g *= lr
                p -= g
            elif self.name == "momentum":  # v ← μv − lr·g; θ ← θ + v
                v = self.state.get(k)
                if v is None:
                    v = self.state[k] = np.zeros_like(p)
                v *= self.mu
                g *= lr
                v -= g
                p += v
            else:  # m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²; θ ← θ − lr·m̂/(√v̂ + ε)
                if k not in self.state:
                    self.state[k] = (np.zeros_like(p), np.zeros_like(p))
                m, v = self.state[k]
                m *= b1
                m += (1 - b1) * g
                v *= b2
                g *= g
                g *= 1 - b2
                v += g
                np.sqrt(v, out=g)
                g += self.eps * math.sqrt(1 - b2 ** self.t)
                np.divide(m, g, out=g)
                g *= lr
                p -= g


def _count(value, what, low=1):
    """value as an int ≥ low (numpy integers included, bools not), else a one-line ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        kind = "a positive integer" if low == 1 else f"an integer ≥ {low}"
        raise ValueError(f"{what} must be {kind}, not {value!r}")
    return int(value)
