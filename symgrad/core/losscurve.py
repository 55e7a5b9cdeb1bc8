"""Where a loss curve's log axis stops: the part of a run's losses worth a picture.

Where it sits: core (numbers only), read by both pictures of a run, ``symgrad.run.plot`` (the
PNG of ``symgrad train --plot``) and ``symgrad.handouts.diagram`` (a handout's Training section).

XOR's 1000 epochs fall from 0.52 to 3.1e-33: on a log axis to the last loss, 20 of the 33 decades
were a fit already exact to a millionth (loss 1e-12 is a residual |ŷ − y| ≈ 1.4e-6) and the last
250 epochs a flat line, the loss unchanged in float64. The axis stops at ``RELATIVE`` of the first
epoch's loss; the curve leaves the picture there and a note says at which epoch, and where the
loss stopped changing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

# Below this fraction of its first epoch's loss a run has converged for any picture's purpose.
RELATIVE = 1e-12


@dataclass(frozen=True)
class Floor:
    """A log axis's floor for a run: ``value`` (a power of ten, at or below RELATIVE of the first
    loss), ``below_at`` the first epoch (from 1) whose loss is under RELATIVE of the first, or
    None when none is; ``flat_from`` the epoch from which the loss stays the same float to the
    end (None unless the last two epochs' are equal); ``last`` the last loss."""

    value: float
    below_at: int | None
    flat_from: int | None
    last: float
    threshold: float


def floor(history) -> Floor | None:
    """The Floor of a run's losses (positive and finite, as a log axis needs), or None when no
    loss falls below RELATIVE of the first: the axis then goes down to the smallest."""
    h = [float(v) for v in history]
    if not h or not all(math.isfinite(v) and v > 0 for v in h):
        return None
    threshold = h[0] * RELATIVE
    below = next((e for e, v in enumerate(h, 1) if v < threshold), None)
    if below is None:
        return None
    flat = len(h)
    while flat > 1 and h[flat - 2] == h[-1]:
        flat -= 1
    return Floor(10.0 ** math.floor(math.log10(threshold)), below,
                 flat if flat < len(h) else None, h[-1], threshold)


def note(f: Floor, fmt=lambda v: "%.2g" % v) -> str:
    """The sentence a picture cut at ``f`` carries (``fmt`` prints a number)."""
    # a sentence read as it stands (it said "(1e-12 of the first epoch's)")
    out = ("at epoch %d the loss fell below %s, which is %s times the first epoch's loss, and "
           "it ended at %s" % (f.below_at, fmt(f.threshold), fmt(RELATIVE), fmt(f.last)))
    if f.flat_from is not None:
        out += ", the same floating-point number from epoch %d on" % f.flat_from
    return out


def sentence(f: Floor, fmt=lambda v: "%.2g" % v) -> str:
    """:func:`note` as a sentence of its own: capitalized, with its full stop."""
    text = note(f, fmt)
    return text[:1].upper() + text[1:] + "."


__all__ = ["Floor", "floor", "note", "sentence", "RELATIVE"]
