"""Training: the notes' minibatch loop over a compiled kernel, with sgd, momentum or adam.

Where it sits: compile → **train**. :func:`train` compiles the network once (``net.compile()``),
shuffles the examples every epoch, and on each minibatch takes the kernel's gradient of the mean
loss and steps the parameters with the optimizer, in place on its own copies. :func:`save_params`
and :func:`load_params` keep parameters in ``.npz`` files bit for bit.
"""
from __future__ import annotations

import math
import numbers
import os
import re
import sys
import time
import warnings
import zipfile
import zlib

import numpy as np

from symgrad.compile.common import FLOATS
from symgrad.compile.mfunction import MatrixDerivation
from symgrad.compile.kernel import compile_network, predict
from symgrad.compile.spec import Spec, init_params, param_shapes
from symgrad.graph.losses import Loss
from symgrad.run import chunked
from symgrad.run.chunked import is_dask
from symgrad.run.optim import DEFAULT_LR, OPTIMIZERS, Optimizer, _count  # noqa: F401 (re-exported)

class Progress:
    """The progress line on stderr: rewritten in place on a terminal, else at most 10 lines (the
    first epoch, every ⌈epochs/8⌉th, the last)."""

    def __init__(self, epochs, quiet, stream=None):
        self.epochs, self.quiet, self.out = epochs, quiet, stream or sys.stderr
        self.tty = hasattr(self.out, "isatty") and self.out.isatty()
        self.every, self.t0, self.open = -(-epochs // 8), time.perf_counter(), False

    def update(self, epoch, loss):
        if self.quiet:
            return
        last = epoch == self.epochs
        if not (self.tty or last or epoch % self.every == 0 or epoch == 1):
            return
        filled = round(20 * epoch / self.epochs)
        line = (f"epoch {epoch:>{len(str(self.epochs))}}/{self.epochs} "
                f"[{'#' * filled}{'.' * (20 - filled)}] loss {loss:.6g} "
                f"({time.perf_counter() - self.t0:.1f}s)")
        self.out.write(("\r" + line + ("\n" if last else "")) if self.tty else line + "\n")
        self.out.flush()
        self.open = self.tty and not last

    def end(self):
        """End a line left open on a terminal, so that an error prints on a line of its own."""
        if self.open:
            self.out.write("\n")
            self.out.flush()
            self.open = False


# -- bounds: what training may allocate, and when it has diverged ----------------------------------
# Training holds the parameters, their gradients and the optimizer's state (momentum: v; adam: m
# and v), and for each batch at most about two arrays of batch × units (tracemalloc over one kernel
# call of 10-200000-1 at batch 64: a peak 0.9 × batch × units × 8 bytes above the gradients). A run
# whose estimate exceeds MAX_TRAIN_BYTES is refused before anything is allocated (`symgrad train
# 99999999999-1` asked numpy for 745 GiB and printed its traceback); raise it to train bigger nets.
MAX_TRAIN_BYTES = 8 * 2**30
SLOTS = {"sgd": 0, "momentum": 1, "adam": 2}  # arrays of state per parameter
# Divergence: a batch's loss that is nan or inf, or above DIVERGED × the reference loss — the mean
# loss over up to REFERENCE_ROWS evenly spaced examples at the starting parameters, or an untrained
# net's there if larger (so a run restarted from a near-perfect fit is not measured against ~0).
# Runs that do not diverge stay far below. Measured over 54 runs of 30 epochs (sgd, momentum and
# adam at their default lr and two larger ones: sgd 1 and 3, momentum 0.1 and 0.5, adam 0.03 and
# 0.3; on digits with cross_entropy and with mse, xor with bce and with mse at batch size 1, and
# a regression with targets of 1 and of 1000): the 50 that did not diverge peaked at 19× the
# reference (xor, bce, momentum at lr=0.5), most under 4×; the 4 that diverged (sgd at 1 and 3)
# passed 1e6× within 3 epochs. Adam at lr=1e6 on xor reaches 1e25× in its second step.
DIVERGED = 1e6
REFERENCE_ROWS = 256
# A run that ends worse than it started, without diverging: after the last step the loss on the
# reference rows is above WORSE × the reference. The end is judged, not the way there (healthy runs
# peak at up to 19× mid-run, above). Measured end/start: every healthy run ends below its start
# (the 55 runs of the test suite, the examples and the README's commands: at most 0.99×, adam
# at its default lr for 3 epochs); runs at too large an lr that did not diverge ended at 1× to 380×
# (xor with bce: sgd at lr 10 ended at 3.5×, at 30 11×, at 1000 380×; momentum at 20 8.4×). Twice
# the start is far from any healthy run and is a run that made the loss worse, not noise. It is a
# warning (TrainingWarning), not an error: the parameters are still returned.
WORSE = 2
# Epochs are bounded by the optimizer steps they make (epochs × batches per epoch): the fastest
# step measured (xor, 2-2-1, batch size 1, the unrolled scalar path) takes about 50 µs, so
# MAX_STEPS = 10^8 steps is over an hour even there, and days for a net of any size. A larger
# run (`--epochs 1000000000000` ran until killed) is refused before the first step; raise it to
# train longer.
MAX_STEPS = 10**8


class TrainingWarning(UserWarning):
    """Training finished but ended worse than it started: the loss after the last step is above
    ``WORSE`` × its start (below ``DIVERGED``, which stops training). The parameters are returned;
    the steps were too large (try a smaller lr). ``symgrad train`` prints it as one line on
    stderr; ``warnings.simplefilter("error", TrainingWarning)`` makes it an error."""


class TrainingDiverged(ValueError):
    """Training's loss became nan or inf, or grew past ``DIVERGED`` × where it started: the steps
    were too large for this problem (try a smaller lr). The data were checked finite before the
    first step, so this never means they are bad. ``epoch``, ``where`` ("batch 3 of 43", or
    "after its last step"), ``optimizer``, ``lr``, ``loss`` and ``history`` (the finished epochs'
    mean losses) say where it happened."""

    def __init__(self, message, epoch, where, optimizer, lr, loss, history):
        super().__init__(message)
        self.epoch, self.where, self.optimizer, self.lr = epoch, where, optimizer, lr
        self.loss, self.history = loss, history


def _bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} bytes" if unit == "bytes" else f"{n:.3g} {unit}"
        n /= 1024


def check_size(net, dtype="float64", optimizer: str = "adam", rows: int = 0,
               extra_copies: int = 0) -> None:
    """Refuse, before anything is allocated, to train ``net`` when the estimate of what training
    holds (parameters, gradients, the optimizer's state, ``extra_copies`` more of the parameters,
    and two arrays of ``rows`` × units per batch) exceeds MAX_TRAIN_BYTES: one ValueError naming
    the largest parameter and its layer when the parameters alone are over, else the batch and
    the widest layer."""
    item = np.dtype(dtype).itemsize
    shapes = param_shapes(net)
    count = sum(math.prod(s) for s in shapes.values())
    copies = 2 + SLOTS.get(optimizer, 2) + extra_copies
    units = sum(node.dim * (node.positions or 1) for node in net.nodes.values())  # per example
    held, batch = item * copies * count, item * 2 * rows * units
    if held + batch <= MAX_TRAIN_BYTES:
        return
    limit = f"over the limit of {_bytes(MAX_TRAIN_BYTES)} (symgrad.run.train.MAX_TRAIN_BYTES)"
    if held > MAX_TRAIN_BYTES:  # the network alone, whatever the batch
        big = max(shapes, key=lambda p: math.prod(shapes[p]))
        dense = [n for n in net.nodes.values() if n.op == "dense"]
        layer = next((f"layer {i} ({n.name})" for i, n in enumerate(dense, 1) if big in n.params),
                     "the network")
        what = " × ".join(map(str, shapes[big]))
        kind = "weights" if net.is_weight(big) else "biases"
        raise ValueError(
            f"network too big to train: {big}, the {kind} of {layer}, is {what} = "
            f"{math.prod(shapes[big]):,} numbers ({_bytes(item * math.prod(shapes[big]))} as "
            f"{np.dtype(dtype).name}); its {count:,} parameters with their gradients and "
            f"{optimizer}'s state need about {_bytes(held + batch)}, {limit}")
    wide = max((n for n in net.nodes.values()), key=lambda n: n.dim)
    raise ValueError(
        f"batch too big to train: {rows:,} examples through the network's {units:,} units (the "
        f"widest, {wide.name}, has {wide.dim:,}) need about {_bytes(held + batch)} as "
        f"{np.dtype(dtype).name}, {limit}; use a smaller batch_size")


def _nonfinite(params) -> str | None:
    """'params['W1'] became nan' for the first parameter holding nan or inf, else None."""
    for k, p in params.items():
        if not np.isfinite(p).all():
            return f"params[{k!r}] became {'nan' if np.isnan(p).any() else 'inf'}"
    return None


class _Targets:
    """The targets of several losses, indexed as one array is: ``Y[idx]`` is the dict {output:
    its rows idx}, so every target is shuffled alike with X."""

    def __init__(self, outputs, arrays):
        self.outputs, self.arrays = outputs, arrays

    def __getitem__(self, idx):
        return {o: a[idx] for o, a in zip(self.outputs, self.arrays)}


def train_newton(d, data, optimizer="newton", steps=10, params=None, quiet=False, callback=None,
                 tol=1e-10):
    """Newton's method on a matrix-calculus model: ``d`` is ``sg.hessian(f, w, …)``, ``data`` a
    dict of every other argument of f (``{"X": X, "y": y}``); minimises f over w from ``params``
    (``{w: start}``) or zeros, full batch, for at most ``steps`` steps or until |∇f| < tol. Each
    step solves H s = ∇f and halves s while f does not decrease (a damped Newton step, so a
    Hessian that is not positive definite far from the optimum cannot send w uphill). Returns
    ``({w: value}, history)``, history[k] the value of f before step k + 1."""
    if isinstance(d, MatrixDerivation) and d.meta.get("order") != "hessian" and \
            optimizer != "newton":
        raise ValueError(f"a matrix-calculus model trains with optimizer='newton' from a derived "
                         f"Hessian, not {optimizer!r}: sg.train(sg.hessian(f, \"w\", vectors=…), "
                         "data, None, optimizer=\"newton\")")
    if not isinstance(d, MatrixDerivation) or d.meta.get("order") != "hessian":
        raise ValueError("optimizer='newton' needs a derived Hessian: "
                         "sg.train(sg.hessian(f, \"w\", vectors=…), data, None, "
                         "optimizer=\"newton\")")
    if optimizer != "newton":
        raise ValueError(f"a matrix-calculus model trains with optimizer='newton', "
                         f"not {optimizer!r}")
    steps = _count(steps, "epochs")
    w = d.meta["wrt"].name
    if not isinstance(data, dict):
        raise ValueError(f"data: a dict of the arguments of f other than {w!r}, "
                         f"got {type(data).__name__}")
    if w in data:
        raise ValueError(f"data: {w!r} is what Newton's method solves for; give its start as "
                         f"params={{{w!r}: …}}")
    needed = [n for n in d.meta["problem"].symbols if n != w]
    missing = [n for n in needed if n not in data]
    if missing:
        raise ValueError(f"data: missing {', '.join(map(repr, missing))} (the data are "
                         f"{', '.join(needed) or 'none'}; {w!r} is solved for)")
    fn = d.compile()
    var = d.meta["wrt"]
    if params is not None:
        if not isinstance(params, dict) or set(params) != {w}:
            raise ValueError(f"params: a dict {{{w!r}: start}}")
        x = np.array(params[w], dtype=float)
    else:
        x = np.zeros(_newton_shape(fn, data, w)) if hasattr(var, "shape") else np.zeros(())
    history = []
    f, g, H = fn(**data, **{w: x})
    for k in range(1, steps + 1):
        history.append(f)
        if not quiet:
            print(f"newton step {k}: f = {f:.10g}, |grad| = {np.linalg.norm(g):.3g}",
                  file=sys.stderr)
        if np.linalg.norm(g) < tol:
            break
        try:
            # a matrix W: H is by vec[W] row by row, numpy's C order, so ravel/reshape match
            s = np.linalg.solve(np.atleast_2d(H), np.ravel(g)).reshape(np.shape(x))
        except np.linalg.LinAlgError:
            raise TrainingDiverged(f"newton step {k}: the Hessian is singular (f has no unique "
                                   "minimum here: add a penalty such as 0.5*lam*w'*w)", k,
                                   "the solve", "newton", 1.0, f, history) from None
        t = 1.0
        while True:
            cand = x - t * s
            fc, gc, Hc = fn(**data, **{w: cand})
            if fc <= f or t < 1e-10:
                break
            t /= 2
        if not np.isfinite(fc):
            raise TrainingDiverged(f"newton step {k}: f became {fc}", k, "the line search",
                                   "newton", 1.0, fc, history)
        x, f, g, H = cand, fc, gc, Hc
        if callback is not None and callback(k, {w: x}, f):
            break
    return {w: x}, history


def _newton_shape(fn, data, w):
    """The shape of w: its numeric sizes, and each size symbol read off an argument in the data
    that shares it (n of X for the w of X*w); a vector is 1-D."""
    problem = fn.problem
    shape = problem.symbols[w].shape
    dims = shape[:1] if shape[1] == 1 else shape
    return tuple(int(size) if size.is_Integer else _data_size(problem, data, w, size)
                 for size in dims)


def _data_size(problem, data, w, size):
    for name, sym in problem.symbols.items():
        if name != w and hasattr(sym, "shape") and name in data:
            for axis, dim in enumerate(sym.shape):
                arr = np.asarray(data[name])
                if dim == size and arr.ndim > axis:
                    return arr.shape[axis]
    raise ValueError(f"params: the size {size} of {w!r} is not fixed by the data; give its "
                     f"start as params={{{w!r}: …}}")


def train(net, X, Y, optimizer: str = "adam", lr: float | None = None, epochs: int = 10,
          batch_size: int | None = 32, seed: int = 0, params: dict | None = None,
          quiet: bool = False, dtype=None, momentum: float = 0.9, shuffle: bool = True,
          callback=None):
    """Train ``net`` on the rows of X (targets Y) by minibatch gradient descent; ``batch_size``
    None: full-batch descent, one step an epoch over every row.

    X is (n, d0), or a dict {input name: (n, d) array} for a net with several inputs; Y likewise
    (n, dL), or for a net with several losses a dict {output name: its targets}, each shuffled
    with X; the loss reported is the total, Σ_k w_k mean ℓ_k (+ the penalty). Starts from
    ``params`` (copied, never changed) or ``net.init_params(seed, dtype)`` (dtype: X's if it is
    float32 or float64, else float64; the parameters' dtype is the kernel's); each epoch
    visits the examples in a fresh random order (``seed``) in batches of ``batch_size``, taking one
    ``optimizer`` step ("sgd", "momentum" or "adam"; ``lr`` defaults to 0.1, 0.01, 0.001) per batch.
    Prints a progress line (epoch, loss) on stderr unless ``quiet``; ``callback(epoch, params,
    loss)`` is called after each epoch and may return True to stop. Returns ``(params, history)``:
    ``history[e]`` is the mean loss over the minibatches of epoch e + 1 (before their steps).

    Everything is checked before the first step: the arguments, the data (nan or inf in X or Y is
    a ValueError naming them), and the size (:func:`check_size`). A batch whose loss is nan or inf
    or above ``DIVERGED`` × the starting loss, or parameters that became nan or inf, stop training
    with :class:`TrainingDiverged` (a ValueError) naming the epoch, optimizer and lr.

    Data beyond memory: X and Y may be ``dask.array``s (one may be a numpy array, wrapped with the
    other's row chunks), trained chunk by chunk on the active Dask scheduler (a
    ``dask.distributed`` cluster too) by :func:`symgrad.run.chunked.train`. ``batch_size`` None
    (or at least every row): each step is the exact full-batch gradient, summed over the chunks
    where they live; otherwise minibatches streamed one chunk at a time to this process, the
    chunks in a fresh random order each epoch. Only ``optimizer``, ``lr``, ``epochs``,
    ``batch_size``, ``seed``, ``params``, ``quiet``, ``callback`` and ``momentum`` apply there;
    the parameters take X's dtype if it is float32 or float64.
    """
    if is_dask(X) or is_dask(Y):  # data beyond memory: chunk by chunk (symgrad.run.chunked)
        return chunked.train(net, X, Y, optimizer, lr, epochs, batch_size, seed, params, quiet,
                             callback, momentum)
    if isinstance(net, MatrixDerivation) or optimizer == "newton":
        if Y is not None and isinstance(net, MatrixDerivation):
            raise ValueError("Y: a matrix-calculus model takes all its data in the dict X "
                             "({\"X\": …, \"y\": …}); pass Y=None")
        return train_newton(net, X, optimizer, epochs, params, quiet, callback)
    epochs = _count(epochs, "epochs")
    full = batch_size is None  # full batch: one step an epoch over every row
    if not full:
        batch_size = _count(batch_size, "batch_size")
    if seed is not None:  # (numpy's own words: "expected non-negative integer", naming nothing)
        seed = _count(seed, "seed", low=0)
    opt = Optimizer(optimizer, DEFAULT_LR.get(optimizer, 0.1) if lr is None else lr, momentum)
    kernel = compile_network(net)
    spec = Spec(net)
    first = next(iter(X.values()), None) if isinstance(X, dict) else X
    try:
        n_rows = len(first)
    except TypeError:  # not a sequence: spec.check says what is wrong with it, below
        n_rows = 1 if full else batch_size
    if full:
        batch_size = max(n_rows, 1)
    given = params is not None
    try:
        if not given:  # float data keeps its dtype; anything else trains in float64
            x_dt = np.asarray(first).dtype
            dt = np.dtype(dtype or (x_dt if x_dt in FLOATS else "float64"))
        else:
            one = next(iter(params.values()), None) if isinstance(params, dict) else None
            dt = np.dtype(dtype) if dtype else getattr(one, "dtype", np.dtype("float64"))
    except TypeError:  # np.dtype("nonsense")
        raise ValueError(f"dtype must be float32 or float64, not {dtype!r}") from None
    if dt in FLOATS:  # (else init_params or spec.check refuses the dtype, below)
        check_size(net, dt, optimizer, max(min(batch_size, n_rows), min(n_rows, REFERENCE_ROWS)),
                   extra_copies=given)  # (given params: an untrained net's loss is measured too)
    try:
        if not given:
            params = init_params(net, seed=seed, dtype=dt)
        else:
            params = {k: np.array(v, dtype=dtype) if dtype else np.array(v)
                      for k, v in params.items()}
    except MemoryError:  # under MAX_TRAIN_BYTES, but more than this machine has
        raise ValueError("out of memory for the parameters: use a smaller network") from None
    # validated and converted once, not per batch; Y=None is "training needs the targets"
    checked = spec.check(params, X, Y, targets="training")
    xs = checked[len(spec.names):len(spec.names) + len(spec.inputs)]
    ys = checked[len(spec.names) + len(spec.inputs):]  # several losses: one per output
    Y = _Targets(spec.outputs, ys) if spec.several else ys[0]
    params = {k: np.ascontiguousarray(params[k]) for k in spec.names}
    n = xs[0].shape[0]
    nb = -(-n // batch_size)
    if epochs * nb > MAX_STEPS:  # before the first step: such a run would not finish
        raise ValueError(
            f"epochs={epochs:,} × {nb:,} batch{'es' if nb > 1 else ''} of up to {batch_size:,} "
            f"examples is {epochs * nb:,} optimizer steps, over the limit of {MAX_STEPS:,} "
            f"(symgrad.run.train.MAX_STEPS, over an hour even for the smallest net); use fewer "
            f"epochs")

    def rows(idx):  # the minibatch's X: an array, or a dict for several inputs
        return xs[0][idx] if len(xs) == 1 else {k: a[idx] for k, a in zip(spec.inputs, xs)}
    masks = net.masks
    mask_rng = np.random.default_rng([seed, 1])  # its own stream: shuffles stay as without

    def train_rows(idx):  # with dropout, fresh masks for every step (ones are dropout off)
        if not masks:
            return rows(idx)
        batch_x = spec.with_masks(rows(idx), draw=mask_rng)
        return {k: batch_x[k].astype(xs[0].dtype, copy=False) if k in masks else v
                for k, v in batch_x.items()}
    rng, history, bar = np.random.default_rng(seed), [], Progress(epochs, quiet)

    def diverged(epoch, where, why, loss):
        bar.end()
        return TrainingDiverged(
            f"training diverged in epoch {epoch} of {epochs} ({where}): {why}, with "
            f"{opt.name} at lr={opt.lr:g}; try a smaller lr (e.g. {opt.lr / 10:g})",
            epoch, where, opt.name, opt.lr, loss, list(history))
    # numpy's overflow warnings are not printed: a diverging run is caught by the checks below
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        sample = np.linspace(0, n - 1, min(n, REFERENCE_ROWS)).round().astype(np.intp)
        ref = begin = float(kernel(params, rows(sample), Y[sample])[0])
        if not math.isfinite(ref):  # before any step: not divergence, nor the data's nan or inf
            raise ValueError(
                f"the loss is {ref} at the starting parameters, before any training step (on "
                f"{len(sample)} of the {n} examples): X, Y or the parameters are too large for "
                f"{checked[0].dtype.name}, or the loss is not defined there")
        if given:  # an untrained net's loss too, in case these params fit the data already
            fresh = init_params(net, seed=seed, dtype=checked[0].dtype)
            untrained = float(kernel(fresh, rows(sample), Y[sample])[0])
            del fresh
            if math.isfinite(untrained):
                ref = max(ref, untrained)
        bound = DIVERGED * ref if ref > 0 else math.inf
        epoch = batch = 0

        def loss_at(idx, where, draw=True):
            """The kernel on rows idx (with dropout masks drawn, unless not ``draw``), or
            TrainingDiverged if the loss or parameters went bad."""
            try:
                loss, grads = kernel(params, train_rows(idx) if draw else rows(idx), Y[idx])
            except ValueError:  # the kernel names an argument holding nan or inf: the data
                bad = _nonfinite(params)  # were checked finite, so it is the parameters
                if bad is None:
                    raise
                raise diverged(epoch, where, bad, math.nan) from None
            loss = float(loss)
            if not loss < bound:  # nan, inf, or orders of magnitude above the start
                why = (f"the loss is {loss}" if not math.isfinite(loss) else
                       f"the loss reached {loss:.3g}, over {DIVERGED:g} × its start ({ref:.3g})")
                raise diverged(epoch, where, why, loss)
            return loss, grads
        try:
            for epoch in range(1, epochs + 1):
                order = rng.permutation(n) if shuffle else np.arange(n)
                total = 0.0
                for batch, start in enumerate(range(0, n, batch_size), 1):
                    idx = order[start:start + batch_size]
                    loss, grads = loss_at(idx, f"batch {batch} of {nb}")
                    total += loss * len(idx)
                    opt.step(params, grads)
                history.append(total / n)
                bar.update(epoch, history[-1])
                if callback is not None and callback(epoch, params, history[-1]):
                    break
            # the last step, which no batch's loss has seen (adam at lr=1e308 leaves finite
            # parameters of ±1e308 whose predictions overflow): the loss on the reference rows,
            # without dropout, as at the start
            end, _ = loss_at(sample, "after its last step", draw=False)
        except MemoryError:
            bar.end()
            raise ValueError(f"out of memory while training (epoch {epoch}, batch {batch}): use a "
                             "smaller batch_size or network") from None
    if ref > 0 and end > WORSE * ref:  # finished, but worse than it started: say so, once
        bar.end()
        than = (f"its start ({begin:.3g})" if ref == begin else
                f"an untrained net's ({ref:.3g}; it started at {begin:.3g})")
        warnings.warn(TrainingWarning(
            f"training ended worse than it started: the loss is {end:.3g} after {epoch} "
            f"epoch{'s' if epoch > 1 else ''}, {end / ref:.3g} × {than}, with "
            f"{opt.name} at lr={opt.lr:g}; try a smaller lr (e.g. {opt.lr / 10:g})"),
            stacklevel=2)
    return params, history


def relu_biases(net) -> list[str]:
    """The biases of the dense layers that feed a ReLU-like unit (an activation whose init hint
    is He's, as relu and leaky_relu register): the ones :func:`train_starts` starts at
    ``relu_bias``."""
    out = []
    for node in net.nodes.values():
        if node.op == "dense" and len(node.params) == 2 and any(
                net.nodes[c].op == "act" and net.nodes[c].act.init == "he"
                for c in net.consumers(node.name)):
            out.append(node.params[1])
    return out


def train_starts(net, X, Y, starts: int = 1, relu_bias: float = 0.0, seed: int = 0, **kw):
    """:func:`train` from up to ``starts`` random starts, seeds ``seed``, ``seed`` + 1, …; the
    first start that classifies every training example right is kept, else the one with the
    lowest final loss (``history[-1]``). With ``relu_bias`` ≠ 0 the biases of layers feeding
    ReLU-like units (:func:`relu_biases`) start there instead of at 0, so no unit starts dead.
    A run that diverges stops them all (TrainingDiverged: the steps are too large for any
    start). The kept start's warnings are re-issued; the others' TrainingWarnings are not (a
    start abandoned for a better one). Returns ``(params, history, info)``, ``info`` a dict:
    ``start`` (1-based), ``seed``, ``tried`` and ``learned`` (it classified every example
    right)."""
    starts = _count(starts, "starts")
    if isinstance(relu_bias, bool) or not (isinstance(relu_bias, numbers.Real)
                                           and math.isfinite(relu_bias)):
        raise ValueError(f"relu_bias must be a finite number, not {relu_bias!r}")
    seed = _count(seed, "seed", low=0)
    biases = relu_biases(net) if relu_bias else []
    first = next(iter(X.values()), None) if isinstance(X, dict) else X
    x_dt = getattr(first, "dtype", None)
    best = None
    for k in range(starts):
        params = None
        if biases:  # train's own start (init_params(seed), in its dtype) with those biases moved
            params = init_params(net, seed=seed + k, dtype=x_dt if x_dt in FLOATS else "float64")
            for b in biases:
                params[b][...] = relu_bias
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got, history = train(net, X, Y, seed=seed + k, params=params, **kw)
        right = accuracy(net, got, X, Y) if not isinstance(Y, dict) else None
        run = (got, history, {"start": k + 1, "seed": seed + k, "tried": k + 1,
                              "learned": right == 1.0}, caught)
        for w in caught:  # anyone else's warnings: each start's, as Python would show them
            if not issubclass(w.category, TrainingWarning):
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
        if best is None or history[-1] < best[1][-1]:
            best = run
        if right == 1.0:
            best = run
            break
    got, history, info, caught = best
    info["tried"] = k + 1
    for w in caught:
        if issubclass(w.category, TrainingWarning):
            warnings.warn(w.message, stacklevel=2)
    return got, history, info


_RESERVED = ("file", "allow_pickle", "__history__")
# A checkpoint saved with its losses holds them as "history", which `symgrad handout --history`
# reads; "__history__" marks such a file, so that a network's own parameter named "history" is
# still a parameter in a checkpoint saved without losses.
HISTORY_MARK = "__history__"


def params_path(path) -> str:
    """The file save_params writes and load_params reads for ``path``: as given when it ends in
    .npz, else with .npz added (numpy's rule for savez, applied on both sides, so a checkpoint
    saved as "p" loads as "p")."""
    path = os.fspath(path)
    return path if path.endswith(".npz") else path + ".npz"


def output_problem(path) -> str | None:
    """What stops a file being written at ``path`` (its directory missing or not writable, or
    the path a directory), in a few words naming it, else None: checked by :func:`save_params`
    and by ``symgrad train -o`` before its first step."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return f"no such directory {folder}"
    if not os.access(folder, os.W_OK):
        return f"cannot write in {folder}"
    if os.path.isdir(path):
        return f"{path} is a directory"
    return None


def save_params(path, params: dict, history=None) -> str:
    """Write params to an ``.npz`` file, every bit kept; returns the file written (``path`` with
    .npz added unless it ends so). ``history``, the losses of the run, is stored beside them as
    "history" (load_params leaves it out; ``symgrad handout --history`` reads it)."""
    if isinstance(path, dict) and isinstance(params, (str, os.PathLike)):
        raise ValueError("save_params: the arguments are the other way round: "
                         "save_params(path, params)")
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"save_params: path must be a file name, not a {type(path).__name__}")
    if not isinstance(params, dict) or not params:
        got = "an empty dict" if isinstance(params, dict) else f"a {type(params).__name__}"
        raise ValueError(f"save_params: params must be a non-empty dict of arrays, not {got}")
    arrays = {}
    for k, v in params.items():
        if not isinstance(k, str) or k in _RESERVED:
            raise ValueError(f"save_params: cannot store a parameter named {k!r}")
        a = np.asarray(v)
        if a.dtype.hasobject:
            raise ValueError(f"save_params: {k} is not a numeric array")
        arrays[k] = a
    if history is not None:
        if "history" in arrays:
            raise ValueError("save_params: a parameter is named 'history': the losses cannot "
                             "be stored beside it (save them with symgrad train --history)")
        arrays["history"] = np.asarray(history, dtype=float).ravel()
        arrays[HISTORY_MARK] = np.asarray(True)
    out = params_path(path)
    problem = output_problem(out)
    if problem is not None:
        raise ValueError(f"save_params: cannot write {out}: {problem}")
    try:
        np.savez(out, **arrays)
    except OSError as e:  # (a full disk, a race with the checks above)
        raise ValueError(f"save_params: cannot write {out}: {e.strerror or e}") from None
    return out


def open_npz(path, bad, what: str):
    """``np.load(path)`` of an .npz archive, pickles refused; a file that is not one (empty,
    truncated, text, a single .npy) is ``bad(why)`` raised, ``why`` naming ``what`` the archive
    should hold. The one check of both readers of .npz files, :func:`load_params` and the data
    sets' :func:`_read_npz`. numpy takes any file that is neither a zip nor an .npy for a pickle
    and says so: that is "not a zip archive"."""
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, EOFError, zipfile.BadZipFile, ValueError) as e:
        why = "not a zip archive" if "pickle" in str(e) else type(e).__name__
        raise bad(f"not a readable .npz of {what} ({why})") from None
    if not hasattr(z, "files"):  # a plain .npy: one array, no names
        raise bad(f"holds one array (an .npy), not {what}")
    return z


def load_params(path) -> dict:
    """The params stored by :func:`save_params`, in their order, dtypes and shapes. A missing,
    truncated or foreign file is one ValueError naming the file and what is wrong with it."""
    given, path = os.fspath(path), params_path(path)
    if not os.path.isfile(path):
        if given != path and os.path.exists(given):  # t.txt exists, t.txt.npz does not
            raise ValueError(f"load_params: no such file {path}; {given} exists, but a "
                             "checkpoint is an .npz file (save_params adds .npz to its name)")
        raise ValueError(f"load_params: no such file {path}")

    def bad(why):
        return ValueError(f"load_params: {path} is not a symgrad checkpoint: {why}")
    with open_npz(path, bad, "named parameters") as z:
        out = {}
        for k in z.files:
            try:
                out[k] = z[k]
            except (OSError, EOFError, zipfile.BadZipFile, ValueError, zlib.error) as e:
                why = "pickled objects" if "pickle" in str(e) else f"{type(e).__name__}"
                raise bad(f"{k} cannot be read ({why})") from None
        if out.pop(HISTORY_MARK, None) is not None:  # the run's losses, not a parameter
            out.pop("history", None)
        return out


# -- data sets for the command line and the examples ----------------------------------------------
# `symgrad train`'s defaults for each named data set, where they differ from the general ones
# (TRAIN_DEFAULTS, and DEFAULT_LR per optimizer); an option given on the command line wins. The
# general ones do not learn xor: 10 epochs of 4 examples are 10 adam steps at lr 0.001, and
# `symgrad train 2-2-1 --data xor` ended at loss 0.209, 50 % right. Even run long, the slides'
# 2-2-1 relu net finds XOR from few starts: over seeds 0–99, 1000 full-batch adam steps at lr 0.05
# learned it from 17 starts of 100 (a unit dead on every point, or one unit fitting 3 of 4);
# with the hidden biases starting at 1, so that no unit starts dead, 42 of 100 (sgd at 0.1: 43,
# momentum at 0.01: 39). So xor's defaults are examples/xor.py's recipe: adam at lr 0.05, 1000
# epochs (full batch: 4 examples, batch size 32), ReLU biases from 1, and up to 10 starts
# (seeds s, s + 1, …), keeping the first that classifies all four points right.
TRAIN_DEFAULTS = {"epochs": 10, "batch_size": 32, "starts": 1, "relu_bias": 0.0}
DATA_DEFAULTS = {"xor": {"epochs": 1000, "lr": {"adam": 0.05}, "starts": 10, "relu_bias": 1.0}}
# The output activation and loss a classification data set's network spec gets when the user
# gives neither --output nor --loss (and the output has the units a softmax needs, ≥ 2). The
# general identity + mse fits a regression: `symgrad train 64-32-10 --data digits` ended 71.3 %
# right on the test set after 5 epochs, 88.2 % after 10, with no hint why; softmax + cross_entropy
# 86.7 % and 91.6 %. xor keeps identity + mse: its 2-2-1 net has one output unit, and its recipe
# above was measured with them (100 of 100 seeds).
DATA_HEADS = {"digits": {"output": "softmax", "loss": "cross_entropy"}}


def train_defaults(data: str, optimizer: str) -> dict:
    """epochs, batch_size, lr, starts and relu_bias for ``data`` trained with ``optimizer``:
    the data set's own (DATA_DEFAULTS) where it has them, else the general ones."""
    own = DATA_DEFAULTS.get(data, {})
    out = {**TRAIN_DEFAULTS, **{k: v for k, v in own.items() if k != "lr"}}
    out["lr"] = own.get("lr", {}).get(optimizer, DEFAULT_LR.get(optimizer))
    return out


def load_data(name: str, loss: str = "mse", test_size: float = 0.25, seed: int = 0) -> dict:
    """X, Y (and X_test, Y_test) of a named data set: ``xor`` (the four points), ``digits``
    (scikit-learn's 8×8 digits, scaled to [0, 1], a stratified split), or an ``.npz`` file with
    arrays X and Y (and optionally X_test with Y_test; no other arrays). Classes come as integer
    labels for cross_entropy and as one-hot rows (a 0/1 column for two classes) for other losses.
    A file that is missing, not an .npz (truncated, empty, text, one .npy), or holds other arrays
    or pickled objects is one ValueError naming it; :func:`check_data` checks the arrays against a
    network."""
    if name == "xor":
        X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
        data = {"X": X, "Y": np.array([0, 1, 1, 0]), "classes": 2}
    elif name == "digits":
        try:
            from sklearn.datasets import load_digits
            from sklearn.model_selection import train_test_split
        except ImportError:
            raise ValueError("the digits data set needs scikit-learn: pip install "
                             "'symgrad[examples]' (or pip install scikit-learn)") from None
        d = load_digits()
        X, Xt, y, yt = train_test_split(d.data / 16.0, d.target, test_size=test_size,
                                        random_state=seed, stratify=d.target)
        data = {"X": X, "Y": y, "X_test": Xt, "Y_test": yt, "classes": 10}
    elif str(name).endswith(".npz"):
        return _read_npz(name)
    else:
        raise ValueError(f"unknown data set {name!r}: use xor, digits or a .npz file with X and Y")
    k = data["classes"]
    for key in ("Y", "Y_test"):
        if key in data and not Loss.make(loss).labels:
            data[key] = (data[key][:, None] if k == 2 else np.eye(k)[data[key]]).astype(np.float64)
    return data


DATA_ARRAYS = ("X", "Y", "X_test", "Y_test")


def _read_npz(path) -> dict:
    """The arrays X, Y (X_test, Y_test) of an .npz file, or one ValueError naming it and what is
    wrong: every failure numpy and zipfile raise for a bad file (BadZipFile for a truncated one,
    EOFError for an empty one, which click takes for Ctrl-D) is caught here."""
    if not os.path.isfile(path):
        raise ValueError(f"no such data file: {path}")

    def bad(why):
        return ValueError(f"data file {path}: {why}")
    with open_npz(path, bad, "arrays X and Y") as z:
        extra = [k for k in z.files if k not in DATA_ARRAYS]
        missing = [k for k in ("X", "Y") if k not in z.files]
        if "X_test" in z.files and "Y_test" not in z.files:
            missing.append("Y_test (X_test is there)")
        if "Y_test" in z.files and "X_test" not in z.files:
            missing.append("X_test (Y_test is there)")
        if extra or missing:  # a misspelt X_test would otherwise be skipped without a word
            found = ", ".join(z.files) or "no arrays"
            raise bad(f"{'missing ' + ', '.join(missing) if missing else ''}"
                      f"{'; ' if missing and extra else ''}"
                      f"{'unexpected ' + ', '.join(extra) if extra else ''} (found {found}; "
                      "expected X, Y and optionally X_test, Y_test)")
        size = sum(info.file_size for info in z.zip.infolist())
        if size > MAX_TRAIN_BYTES:  # (a small compressed file may hold a huge array)
            raise bad(f"its arrays take {_bytes(size)} uncompressed, over the limit of "
                      f"{_bytes(MAX_TRAIN_BYTES)} (symgrad.run.train.MAX_TRAIN_BYTES)")
        out = {}
        for k in z.files:
            try:
                a = z[k]
            except MemoryError:  # a header declaring a shape the file does not hold
                raise bad(f"{k} declares an array too large to load") from None
            except (OSError, EOFError, zipfile.BadZipFile, ValueError, zlib.error) as e:
                why = "pickled objects" if "pickle" in str(e) else f"{type(e).__name__}: {e}"
                raise bad(f"{k} cannot be read ({why.splitlines()[0]})") from None
            if not isinstance(a, np.ndarray):
                raise bad(f"{k} is not a numpy array")
            out[k] = a
        return out


def check_data(net, data: dict, source: str = "data") -> None:
    """Check every array of ``data`` (X, Y, and X_test with Y_test when present) against ``net``
    before training: shapes, dtypes, labels, nan or inf. One ValueError naming ``source`` (the
    data set or file) and the array."""
    spec = Spec(net)
    for x, y in (("X", "Y"), ("X_test", "Y_test")):
        if x not in data and y not in data:
            continue
        if x not in data or y not in data:
            raise ValueError(f"{source}: {x} and {y} come together; found only "
                             f"{x if x in data else y}")
        dt = getattr(data[x], "dtype", None)  # checked in its own float dtype: no copy
        dt = dt if dt in FLOATS else np.dtype("float64")
        try:
            xs = spec.examples(data[x], dt)
            target = spec.target(data[y], xs[0].shape[0], dt)
        except ValueError as e:  # Spec names them X and Y
            raise ValueError(f"{source}: " + re.sub(r"^X\b", x, re.sub(r"^Y\b", y, str(e)))) \
                from None
        for what, a in ((x, xs[0]), (y, target)):
            if a.dtype.kind == "f" and not np.isfinite(a).all():
                bad = "nan" if np.isnan(a).any() else "inf"
                raise ValueError(f"{source}: {what} holds {bad} (at "
                                 f"{np.argwhere(~np.isfinite(a))[0].tolist()})")


def accuracy(net, params, X, Y) -> float | None:
    """The fraction of rows classified right (argmax, or > 1/2 for one output); None for
    targets that are not classes."""
    P, Y = predict(net, params, X), np.asarray(Y)
    if net.positions is not None:  # sequences: every position is classified, (n, T, k) → rows
        P = P.reshape(-1, P.shape[-1])
        Y = Y.reshape(len(P), -1) if Y.ndim == 3 else Y.reshape(len(P))
    if Y.ndim == 1 and Y.dtype.kind in "iu":
        return float((P.argmax(axis=1) == Y).mean())
    if not np.all((Y == 0) | (Y == 1)):
        return None
    if P.shape[1] == 1:
        return float(((P[:, 0] > 0.5) == (Y.reshape(len(Y), -1)[:, 0] > 0.5)).mean())
    return float((P.argmax(axis=1) == Y.argmax(axis=1)).mean())
