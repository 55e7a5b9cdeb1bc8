"""The loss curve of a training run, drawn with matplotlib (an optional extra: symgrad[plot]).

Where it sits: run, beside train. ``symgrad train --plot loss.png`` checks the file with
:func:`check_plot_path` before its first step and draws :func:`plot_history` after the last.
matplotlib is imported only here and only when asked for: symgrad itself never needs it.
"""
from __future__ import annotations

import math
import os

from symgrad.core import losscurve

INSTALL = "pip install 'symgrad[plot]' (or pip install matplotlib)"


def _figure_class():
    """matplotlib's Figure (the object API: no pyplot, no backend or global state touched), or
    one ValueError saying what to install."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ValueError(f"--plot needs matplotlib, which is not installed: {INSTALL}") from None
    return Figure


def check_plot_path(path: str, problem=None) -> None:
    """Refuse before training a plot that could not be written: an empty path, a missing
    directory or a directory (``problem(path)`` says which, as for -o), no matplotlib, or a
    suffix matplotlib cannot write. One ValueError naming it."""
    if not str(path).strip():
        raise ValueError("--plot: the output path is empty")
    why = problem(path) if problem is not None else None
    if why is not None:
        raise ValueError(f"--plot {path}: {why}")
    kinds = _figure_class()().canvas.get_supported_filetypes()
    suffix = os.path.splitext(str(path))[1].lstrip(".").lower()
    if suffix not in kinds:
        raise ValueError(f"--plot {path}: give a file ending in "
                         f"{', '.join('.' + k for k in ('png', 'pdf', 'svg') if k in kinds)} "
                         f"or another suffix matplotlib writes ({', '.join(sorted(kinds))})")


def plot_history(path: str, history, title: str = "") -> str:
    """Draw history (the mean loss of each epoch) against the epoch and save it to ``path``; a
    logarithmic loss axis when every loss is positive, stopping at 1e-12 times the first epoch's
    loss (:mod:`symgrad.core.losscurve`: xor's falls from 0.52 to 3.1e-33, and 20 of the 33
    decades were a fit exact to a millionth, the last 250 epochs one float); the curve leaves
    the picture there, a dashed line marks the floor, and a note says where and to what."""
    history_figure(history, title).savefig(path)
    return path


def history_figure(history, title: str = ""):
    """The Figure :func:`plot_history` saves."""
    Figure = _figure_class()
    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.add_subplot()
    epochs = range(1, len(history) + 1)
    ax.plot(epochs, history, marker="." if len(history) <= 50 else None)
    if all(h > 0 and math.isfinite(h) for h in history):
        ax.set_yscale("log")
        cut = losscurve.floor(history)
        if cut is not None:
            ax.set_ylim(bottom=cut.value, top=max(history) * 2)
            ax.axhline(cut.threshold, color="gray", linestyle="--", linewidth=0.8)
            text = losscurve.sentence(cut)  # (right of the curve, above the floor: it falls fast)
            ax.text(0.97, 0.5, "\n".join(_wrap(text)),
                    transform=ax.transAxes, ha="right", va="center", fontsize=8, parse_math=False,
                    bbox=dict(facecolor="white", edgecolor="none", alpha=0.8))
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (mean over the epoch's batches)")
    if title:  # user names are data: a $ in a file name is no mathtext
        ax.set_title(title, parse_math=False)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig


def _wrap(text: str, width: int = 48) -> list[str]:
    lines = [""]
    for word in text.split():
        if lines[-1] and len(lines[-1]) + 1 + len(word) > width:
            lines.append("")
        lines[-1] += (" " if lines[-1] else "") + word
    return lines


__all__ = ["check_plot_path", "plot_history", "INSTALL"]
