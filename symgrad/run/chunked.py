"""Data beyond memory: the kernel's gradient over a ``dask.array`` of rows, chunk by chunk, and
training on it.

Where it sits: run, below :mod:`.train` (which hands it dask arrays), above compile. Nothing new is derived: a chunk's kernel
call gives its mean loss and mean gradients, and the mean over all examples is Σ nᵢ·meanᵢ / Σ nᵢ,
summed by Dask in a tree on whatever scheduler is active (threads locally, a
``dask.distributed`` cluster across machines). The client holds the parameters and one chunk's
sums at a time, never the data. Dask is an optional extra (``pip install 'symgrad[dask]'``) and is
imported only when a dask array is given.

Workers compile the kernel themselves, once per process: the network is one task of the graph
(shipped once to each worker, not once per chunk) and the compiled kernel is cached under a key
drawn on the client, so a worker meets the same network again without recompiling it.
"""
from __future__ import annotations

import math
import uuid

import numpy as np

from symgrad.compile.kernel import compile_network
from symgrad.compile.spec import init_params, is_dask
from symgrad.run.optim import DEFAULT_LR, Optimizer, _count

_KERNELS: dict = {}  # key → compiled kernel, in each worker process (and the client's)
_KEEP = 8  # kernels kept per process: a long session calling gradient() again and again


def _kernel(net, key):
    k = _KERNELS.get(key)
    if k is None:
        while len(_KERNELS) >= _KEEP:  # the oldest first (dicts keep their order)
            _KERNELS.pop(next(iter(_KERNELS)))
        k = _KERNELS[key] = compile_network(net)
    return k


def _located(err, start, x, y):
    """The kernel's error about a chunk, its row where the whole array has it: the kernel names
    nan or inf at [row in the chunk, column], which at row 7777 of chunks of 1500 read [277, 3]."""
    for what, a in (("X", x), ("Y", y)):
        a = np.asarray(a)
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            at = np.argwhere(~np.isfinite(a))[0].tolist()
            bad = "nan" if np.isnan(a[tuple(at)]) else "inf"
            at[0] += start
            return ValueError(f"{what} holds {bad} (at {at})")
    return err


def _chunk_sums(net, key, params, x, y, start=0):
    """(rows, rows · mean loss, {p: rows · mean gradient}) of one chunk (its first row ``start``
    of the whole): sums that add."""
    n = x.shape[0]
    if n == 0:
        return 0, 0.0, {p: np.zeros_like(v) for p, v in params.items()}
    try:
        loss, grads = _kernel(net, key)(params, x, y)
    except ValueError as e:
        raise _located(e, start, x, y) from None
    return n, float(loss) * n, {p: np.asarray(g) * n for p, g in grads.items()}


def _add(a, b):
    return a[0] + b[0], a[1] + b[1], {p: a[2][p] + b[2][p] for p in a[2]}


def _rows(net, X, Y):
    """(X, Y, X's row chunks and Y's, paired, each chunk's first row): Y rechunked to X's rows
    (its columns in one chunk). One of them in memory (a numpy Y beside a dask X) is wrapped with
    the other's row chunks. Checked from the arrays' metadata, before any chunk is computed."""
    import dask.array as da
    for what, a in (("X", X), ("Y", Y)):
        if is_dask(a) and any(math.isnan(c) for c in a.chunks[0]):
            raise ValueError(f"{what} has unknown chunk sizes (nan rows, as after boolean "
                             f"indexing): call {what} = {what}.compute_chunk_sizes() first")
    if not is_dask(Y):
        Y = np.asarray(Y)
        Y = da.from_array(Y, chunks=(X.chunks[0],) + Y.shape[1:]) if Y.ndim and \
            Y.shape[0] == X.shape[0] else da.from_array(Y)
    if not is_dask(X):
        X = np.asarray(X)
        X = da.from_array(X, chunks=(Y.chunks[0],) + X.shape[1:]) if X.ndim and \
            X.shape[0] == Y.shape[0] else da.from_array(X)
    if X.ndim != 2 or Y.ndim not in (1, 2):
        raise ValueError(f"X must be a 2-d dask array (rows × features) and Y 1-d or 2-d; got "
                         f"X of {X.ndim} and Y of {Y.ndim} dimensions")
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows and Y {Y.shape[0]}: one target row per example")
    if len(net.inputs) == 1:  # the whole array's shape, not a chunk's, as the kernel would say it
        d = net.nodes[net.inputs[0]].dim
        if X.shape[1] != d:
            raise ValueError(f"X has shape {X.shape}; expected (n, {d}), one example a row")
    X = X.rechunk({1: -1})
    Y = Y.rechunk({0: X.chunks[0]} if Y.ndim == 1 else {0: X.chunks[0], 1: -1})
    starts = np.concatenate([[0], np.cumsum(X.chunks[0])[:-1]]).tolist()
    return X, Y, X.to_delayed().ravel(), Y.to_delayed().ravel(), starts


def gradient(net, params: dict, X, Y, key: str | None = None):
    """``(loss, grads)`` of ``net`` over every row of the dask arrays X, Y: the mean loss and the
    mean gradients, as the kernel on all rows at once would give them (equal to it up to the
    rounding of a sum taken in another order). One ``dask.compute`` on the active scheduler."""
    import dask
    X, Y, xs, ys, starts = _rows(net, X, Y)
    key = key or uuid.uuid4().hex
    net_d = dask.delayed(net, pure=True, traverse=False)  # one task: shipped once per worker
    params = {p: np.asarray(v) for p, v in params.items()}
    params_d = dask.delayed(params, pure=True, traverse=False)
    parts = [dask.delayed(_chunk_sums, pure=True)(net_d, key, params_d, x, y, start)
             for x, y, start in zip(xs, ys, starts)]
    while len(parts) > 1:  # a tree of sums: no task holds more than two chunks' gradients
        parts = [dask.delayed(_add, pure=True)(*parts[i:i + 2]) if i + 1 < len(parts)
                 else parts[i] for i in range(0, len(parts), 2)]
    (n, loss, grads), = dask.compute(parts[0])
    if n == 0:
        raise ValueError("X has no rows")
    return loss / n, {p: g / n for p, g in grads.items()}


def train(net, X, Y, optimizer: str = "adam", lr: float | None = None, epochs: int = 10,
          batch_size: int | None = None, seed: int = 0, params: dict | None = None,
          quiet: bool = False, callback=None, momentum: float = 0.9):
    """:func:`symgrad.train` on dask arrays. ``batch_size`` None (or at least every row): full-batch
    descent, each step one :func:`gradient` over all chunks. Otherwise minibatch descent streamed
    chunk by chunk: each epoch visits the chunks in a fresh random order, brings one chunk to the
    client at a time and takes its minibatches there (shuffled within the chunk) with the
    in-memory loop, the optimizer's state carried across chunks. Returns ``(params, history)``,
    ``history[e]`` the mean loss of epoch e + 1 (full batch: at the step's start)."""
    epochs = _count(epochs, "epochs")
    X, Y, xs, ys, starts = _rows(net, X, Y)
    n = X.shape[0]
    if params is None:
        dt = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
        params = init_params(net, seed=seed, dtype=dt)
    params = {p: np.array(v) for p, v in params.items()}
    opt = Optimizer(optimizer, DEFAULT_LR.get(optimizer, 0.1) if lr is None else lr, momentum)
    history, key = [], uuid.uuid4().hex  # the kernel, compiled once per process for every step
    if batch_size is None or batch_size >= n:
        for epoch in range(1, epochs + 1):
            loss, grads = gradient(net, params, X, Y, key)
            if not np.isfinite(loss):
                raise ValueError(f"training diverged in epoch {epoch} of {epochs}: the loss is "
                                 f"{loss}, with {opt.name} at lr={opt.lr:g}; try a smaller lr")
            opt.step(params, grads)
            history.append(loss)
            if callback is not None and callback(epoch, params, loss):
                break
        return params, history
    batch_size = _count(batch_size, "batch_size")
    import dask
    rng = np.random.default_rng(seed)
    for epoch in range(1, epochs + 1):
        total = 0.0
        for c in rng.permutation(len(xs)):
            x, y = dask.compute(xs[c], ys[c])
            nb = -(-len(x) // batch_size)
            order = rng.permutation(len(x))
            kern = _kernel(net, key)
            for b in range(nb):
                idx = order[b * batch_size:(b + 1) * batch_size]
                try:
                    loss, grads = kern(params, x[idx], y[idx])
                except ValueError as e:
                    raise _located(e, starts[c], x, y) from None
                if not np.isfinite(loss):
                    raise ValueError(f"training diverged in epoch {epoch} of {epochs}: the loss "
                                     f"is {loss}, with {opt.name} at lr={opt.lr:g}; try a "
                                     f"smaller lr")
                total += float(loss) * len(idx)
                opt.step(params, grads)
        history.append(total / n)
        if not quiet:
            import sys
            print(f"epoch {epoch}/{epochs}: loss {history[-1]:.6g}", file=sys.stderr)
        if callback is not None and callback(epoch, params, history[-1]):
            break
    return params, history
