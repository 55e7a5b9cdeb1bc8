"""Network kernels: the batch program compiled to ``kernel(params, X, Y) -> (loss, grads)``.

Where it sits: compile (derive → simplify → **compile** → train). ``backprop.algorithm(net)`` gives
the batch program (forward values, each g once, every gradient; one example per row) and the mean
loss; :mod:`.emit` and :mod:`.numpy_printer` turn it into numpy statements, wrapped here into a
function with fast argument checks (the slow path and its clear errors are :class:`.spec.Spec`'s)
and exec'd. Tiny networks first try the unrolled scalar path of :mod:`.scalar`.
"""
from __future__ import annotations

import functools
import math
import threading

import numpy as np
import sympy as sp

from symgrad.core.matexpr import Elementwise, Normalize, NormalizeVJP, Softmax, SoftmaxVJP
from symgrad.core.program import Kind, Program
from symgrad.derive import backprop
from symgrad.core.primitives import check_relu_grad_at_zero
from symgrad.compile.common import FLOATS, N, XMAX, exec_generated, exp_unshifted_limit, legend
from symgrad.compile.backends import Backend, backend_named, register_backend
from symgrad.compile.emit import cse, emit
from symgrad.compile.numpy_printer import KernelPrinter
from symgrad.compile.scalar import scalar_function
from symgrad.compile.images import RUNTIME
from symgrad.compile.mfunction import MatrixPrinter
from symgrad.compile.spec import Spec
from symgrad.compile import fused as fused_path
from symgrad.core.primitives import MissingCodeError

SCALAR_WORK = 200  # batch size × weight entries up to which the unrolled scalar path is used


def buffer_order(n, dt):
    """The memory order of a kernel's batch values, (d, n) arrays, for batch size n and dtype dt:
    "F" (each example's features side by side, the layout of a hand-written step's (n, d) rows)
    for float32 batches of 1024 or more, else "C" (each feature's examples side by side).
    OpenBLAS's sgemm runs the kernel's products faster into and out of Fortran-ordered arrays at
    large n: 64×64 by 64×2048, 1 thread, µs C / F: W H 257 / 178, Wᵀ G 249 / 177, G Hᵀ 244 / 206;
    the whole step of 64-64×3-10 b2048 float32 went from 1.03 to 0.89 of the hand-written one
    (bench/fastpath.py has the rows). In float64, and at small batches, C is as fast or faster
    (64-32-10 b128 0.70 / 0.75 f32, 0.73 / 0.80 f64; 64-64×3-10 b8192 f64 0.80 / 0.93), and
    b512 f32 was within the noise (0.89 / 0.87). Results are the same either way (to rounding:
    the sums of a product are taken in another order)."""
    return "F" if dt == FLOATS[0] and n >= 1024 else "C"


# A weight read only against an input's rows, W Xᵀ (printed ``np.matmul(W, X.T)``, X.T a
# Fortran-ordered view), is copied into Fortran order on every call for batches of FORTRAN_ROWS
# and weights of at most FORTRAN_WEIGHT entries: dgemm/sgemm of two Fortran-ordered operands ran
# faster there. Measured (1 thread, load ~5, W C-ordered / a Fortran copy, the copy included):
# 32×64 f64 n = 32 1.20, 48 0.89, 128 0.81, 256 0.79; 64×64 f64 32 1.02, 48 0.92, 128 0.86,
# 256 1.06; f32 alike (32×64 at 128 0.68); 10×128 f64 96 1.51, 128 0.83; at n ≤ 16 the copy
# alone costs 1.4–2×. Slower for the big first layer of 784-256-128-10 (256×784 by 256 rows
# f64 2536 / 3050 µs without the copy, which costs 0.1 ms more). Copied every call, never cached:
# the caller may change the weight in place between calls.
FORTRAN_WEIGHT = 4096
FORTRAN_ROWS = (48, 160)


def _input_weights(stmts, params, inputs):
    """The parameters of ``params`` read only as W in products X Wᵀ with an input X (the kernel
    prints them W @ X.T), with at most FORTRAN_WEIGHT entries."""
    ok, bad = set(), set()

    def walk(e):
        if isinstance(e, sp.MatMul) and len(e.args) == 2 and e.args[0] in inputs and \
                isinstance(e.args[1], sp.Transpose) and e.args[1].arg in params:
            ok.add(e.args[1].arg)
            return
        if isinstance(e, sp.MatrixSymbol):
            if e in params:
                bad.add(e)
            return
        for a in (e.operands if isinstance(e, Elementwise) else e.args):
            if isinstance(a, sp.Basic):
                walk(a)
    for _, rhs in stmts:
        walk(rhs)
    return [p for p in params if p in ok - bad and p.shape[0] * p.shape[1] <= FORTRAN_WEIGHT]


def _c_order(n, dt):
    return "C"


def _consts(specs, order=buffer_order):
    """``consts(n, dt)``: the kernel's constants for batch size n and dtype dt, made once per
    thread: read-only ones vectors, the example numbers, exp's safe range, and the arrays that
    batch values are computed into (``buf``: arg × n, one example a column)."""
    local = threading.local()

    def make(spec, n, dt):
        kind, arg = spec[0], (spec[1] if len(spec) > 1 else None)
        if kind == "xmax":
            return XMAX[dt]
        if kind == "xlim":
            return exp_unshifted_limit(dt, arg)
        if kind == "rowtol2":  # (Spec.rows' tolerance of a target row's sum)²
            return Spec.row_tolerance(dt, arg) ** 2
        if kind == "buf":
            return np.empty((arg, n), dt, order=consts.order(n, dt))
        # "n/T": the n/T sequences of n positions, the rows of a value after a flatten
        rows = n // int(arg[2:]) if isinstance(arg, str) and arg.startswith("n/") else n
        if kind == "ones":
            a = np.ones(rows if isinstance(arg, str) else arg, dt)
        else:  # rows: 0, 1, …, n − 1
            a = np.arange(rows)
        a.flags.writeable = False
        return a

    def consts(n, dt):
        cache = local.__dict__
        got = cache.get((n, dt))
        if got is None:
            if len(cache) > 16:
                cache.clear()
            got = cache[n, dt] = tuple(make(spec, n, dt) for spec in specs)
        return got
    consts.order = order
    return consts


def _sumsq(a):
    """Σ entry² of an array in one BLAS dot, read in memory order (no copy of a transpose)."""
    r = a.ravel("K")
    return np.vdot(r, r)


def _add_at(A, flat, y, c):
    """Example i's entry y_i of A (held transposed, a fresh array of the kernel's) += c."""
    if A.flags.c_contiguous:
        A.reshape(-1)[flat] += c
    else:
        A[y, np.arange(len(y))] += c


def _scatter_add(tok, G, V, dt):
    """onehot(tok)ᵀ Gᵀ, the (V, d) sum of each example's g (a column of G, held (d, n)) into the
    row of its token: an embedding table's gradient, never a one-hot product (V = 1000, n = 4096,
    d = 64: 30 ms as one). Measured (2 shared cores, numpy 2.4, float64), np.bincount per feature
    costs about d·(n + V), np.add.at about n·d at a higher rate: V, n, d = 1000, 4096, 64:
    bincount 0.52 ms, add.at 2.4 ms, a sort-based segment sum 2.4 ms; 50, 4096, 16: 0.09, 0.63,
    0.23 ms; but 1000, 64, 64: 0.17, 0.045, 0.041 ms and 30000, 4096, 256: 55, 22, 34 ms. So
    bincount when a batch has at least V rows, else add.at."""
    if len(tok) >= V:
        return np.stack([np.bincount(tok, g, V) for g in G], axis=1).astype(dt, copy=False)
    out = np.zeros((V, G.shape[0]), dt)
    np.add.at(out, tok, G.T)
    return out


def _stack(*vs, out=None):
    """Batch values (each held transposed, (d_i, n)) stacked along their features, (Σ d_i, n), in
    the memory order of the first: Fortran-ordered ones (attention's outputs and gradients, held
    as their (n, d_i) rows) side by side without a transposing copy. ``out``: a (Σ d_i, n) array
    of the kernel's to write into (its memory read as (n, Σ d_i) rows for Fortran order): a fresh
    3 MB array cost 2.6 ms here, twice the copy (12 × 32 × 2048 float32)."""
    if vs[0].flags.f_contiguous and not vs[0].flags.c_contiguous:
        n, r = vs[0].shape[1], 0
        rows = (np.empty((n, sum(v.shape[0] for v in vs)), vs[0].dtype) if out is None else
                out.reshape(n, -1))
        for v in vs:
            rows[:, r:r + v.shape[0]] = v.T
            r += v.shape[0]
        return rows.T
    return np.concatenate(vs, axis=0, out=out)


def program(net) -> Program:
    """The typed batch program the kernels are printed from (forward values, the mean loss, each
    backward value once, every gradient): see :func:`symgrad.derive.backprop.program`."""
    return backprop.program(net)


def _prologue(spec, with_y):
    """Fast argument checks; anything unusual (a conversion, a dict of the wrong inputs, extra
    parameters, no examples) goes to Spec.check, which converts or raises a clear error. For a
    sequence network X is (n, T, d) and Y (n, T, k) or (n, T) labels: once checked they are read
    as their n·T positions, one a row ((n·T, d), a view), and n below counts those rows."""
    names, xs = spec.pvars, spec.xvars
    x0, T = xs[0], spec.T
    # each input's and output's positions: None for one vector per example (of a network of
    # vectors, or after a flatten of sequences: one row per sequence)
    x_Ts = [None if i in spec.per_example else T for i in spec.inputs]
    if with_y and spec.several:  # a dict of (n, k) float arrays, one per output of the loss
        lead = lambda T: f"{x0}.shape[0], " if T is None else f"{x0}.shape[0], {T}, "  # noqa: E731
        yshape = " or len(Y) != %d" % len(spec.yvars) + "".join(
            f" or {y}.shape != ({lead(yT)}{d}) or {y}.dtype is not dt"
            for y, d, yT in zip(spec.yvars, spec.d_outs, spec.out_Ts))
    elif with_y:
        lead = f"{x0}.shape[0], " if spec.out_T is None else f"{x0}.shape[0], {T}, "
        yshape = f" or Y.shape != ({lead}{spec.d_out}) or Y.dtype is not dt"
        if spec.labels:  # (n[, T]) integer labels, or (n[, T], k) rows of the kernel's dtype
            yshape = (f" or (Y.shape != ({lead[:-2]},) or Y.dtype.kind not in 'iu') and "
                      f"(Y.shape != ({lead}{spec.d_out}) or Y.dtype is not dt)")
    else:
        yshape = ""
    if with_y and not spec.several:  # (a dask Y, as a dask X below: not an ndarray)
        yshape = " or not isinstance(Y, _ND)" + yshape
    # (cross_entropy: integer labels and float rows both take this fast path; each row's sum of
    # 1, which the fused gradient ŷ − y requires, is checked by the one-hot variant's own code)
    # Locals are the program's generated names; the user's names are dict keys held in the
    # namespace (_k0, _i0 …), never written into the source.
    args = ", ".join(names + xs + (spec.yvars if with_y else []))
    shapes = "(" + "".join(f"{p}.shape, " for p in names) + ")"
    get = [f"{p} = params[_k{i}]" for i, p in enumerate(names)]
    if len(xs) > 1:  # several inputs: X is a dict {input name: array}
        get += [f"{x} = X[_i{i}]" for i, x in enumerate(xs)]
    if with_y and spec.several:  # several losses: Y is a dict {output name: array}
        get += [f"{y} = Y[_o{i}]" for i, y in enumerate(spec.yvars)]
    toks = [spec.tokens.get(i) for i in spec.inputs]  # V of a token input, else None
    imgs = [spec.images.get(i) for i in spec.inputs]  # (C, H, W) of an image input, else None
    lead = (f"{x0}.ndim != 2 or {x0}.shape[1] != {spec.d_in}" if T is None else
            f"{x0}.ndim != 3 or {x0}.shape[1] != {T} or {x0}.shape[2] != {spec.d_in}")
    if imgs[0]:
        lead = f"{x0}.ndim != 4 or {x0}.shape[1:] != {imgs[0]}"
    if toks[0]:
        lead = f"{x0}.ndim != 1" if T is None else f"{x0}.ndim != 2 or {x0}.shape[1] != {T}"
    rows = [f"{x}.shape != ({x0}.shape[0], "
            f"{', '.join(map(str, im)) if im else ('' if xT is None else f'{xT}, ') + str(d)}) or "
            f"{x}.dtype is not dt"
            for x, d, V, im, xT in zip(xs[1:], spec.d_ins[1:], toks[1:], imgs[1:], x_Ts[1:])
            if not V]
    rows += [f"{x}.shape != ({x0}.shape[0]{'' if T is None else f', {T}'},)"
             for x, V in zip(xs[1:], toks[1:]) if V]
    # tokens: intp, each 0 ≤ tok < V, checked on every call (a negative one would read a row
    # from the end of E); anything else goes to _spec.check, which says which token and where
    in_range = [f"{x}.dtype is not _INTP or {x}.min() < 0 or {x}.max() >= {V}"
                for x, V in zip(xs, toks) if V]
    dsrc = names[0] if toks[0] else x0  # the kernel's dtype: the parameters' (tokens are ints)
    lines = ["    try:", f"        {'; '.join(get)}",
             f"        dt = {dsrc}.dtype",  # (dtype objects of native floats are unique)
             f"        if ({lead} or not {x0}.shape[0] or "
             # (a dask array passes every check above: not an ndarray, it goes to _spec.check)
             + (f"not isinstance({x0}, _ND) or " if len(xs) == 1 else "")
             + f"dt is not _F64 and dt is not _F32 or len(params) != {len(names)} or "
             + (f"len(X) != {len(xs)} or " if len(xs) > 1 else "")
             + " or ".join(rows + [f"{shapes} != _SHAPES"] + [f"{p}.dtype is not dt" for p in names]
                           + in_range)
             + yshape + "):", "            raise ValueError", "    except Exception:",
             f"        {args}, = _spec.check(params, X{', Y, True' if with_y else ''})",
             f"        dt = {dsrc}.dtype"]
    if T is None:  # an image (n, C, H, W) is read as its (n, C·H·W) rows: a view
        return lines + [f"    n = {x0}.shape[0]"] + (["    _Xs = X  # as given, for the error "
                                                     "messages"] if any(imgs) else []) + [
            f"    {x} = {x}.reshape(n, {d})" for x, d, im in zip(xs, spec.d_ins, imgs) if im]
    lines += [f"    _Xs{', _Ys' if with_y else ''} = X{', Y' if with_y else ''}  # as given, "
              "for the error messages", f"    n = {x0}.shape[0] * {T}  # rows: every position"]
    lines += [f"    {x} = {x}.reshape(n{'' if V else f', {d}'})"
              for x, d, V, xT in zip(xs, spec.d_ins, toks, x_Ts) if xT is not None]
    # (Y of an output after a flatten keeps its row per sequence, as that output's values)
    if with_y and spec.several:
        lines += [f"    {y} = {y}.reshape(n, {d})"
                  for y, d, yT in zip(spec.yvars, spec.d_outs, spec.out_Ts) if yT is not None]
    elif with_y and spec.out_T is not None:
        lines.append("    Y = Y.reshape(n, -1) if Y.ndim == 3 else Y.reshape(n)")
    return lines


def _namespace(spec, **extra):
    keys = {f"_k{i}": p for i, p in enumerate(spec.names)}  # the user's names: data, not code
    keys.update({f"_i{i}": x for i, x in enumerate(spec.inputs)})
    if spec.several:  # the outputs of several losses: keys of Y and of predict's dict
        keys.update({f"_o{i}": o for i, o in enumerate(spec.outputs)})
    return dict(np=np, _spec=spec, _add_at=_add_at, _scatter_add=_scatter_add, _stack=_stack,
                **RUNTIME, _F64=FLOATS[1], _F32=FLOATS[0], _ND=np.ndarray, _INTP=np.dtype(np.intp), _isfinite=math.isfinite, _sumsq=_sumsq,
                _SHAPES=tuple(spec.shapes[p] for p in spec.names), **keys, **extra)


def _function(name, spec, stmts, owned, returns, with_y, outputs=(), head=(), tail=(), sums=(),
              printer=KernelPrinter, order=buffer_order, fortran=()):
    """Source of ``name(params, X[, Y])``: the checks, ``head``, the statements, ``tail``; for
    cross_entropy a second copy of them for Y given as integer labels (indexed, never one-hot).
    ``order(n, dt)``: the memory order of the batch values' buffers (:func:`buffer_order`);
    ``fortran``: parameters' locals copied into Fortran order each call (FORTRAN_WEIGHT)."""
    variants, printer_cls = [], printer
    # an input read entrywise (layer norm, a residual) is copied once into the layout of the
    # kernel's own arrays, (d, n) in buffer_order's order (C: a copy; F: X.T itself, a view); a
    # C-ordered kernel reading X.T, a view, made every such op mix two layouts
    # (10× the time of one layout: 0.75 against 0.06 ms at 128 × 2048 float32)
    copied = {x: f"{v}t" for x, v, i in zip(spec.Xs, spec.xvars, spec.inputs)
              if i not in spec.tokens and _read_entrywise(stmts, x)}
    # the rows of Y: n, or the n/T sequences for an output after a flatten of sequences
    ny = "n" if spec.out_T is not None or spec.T is None else f"(n // {spec.T})"
    for labels in ([True, False] if with_y and spec.labels else [False]):
        printer = printer_cls({"relu_grad_at_zero": spec.relu_grad_at_zero},
                                names={**{x: v if i in spec.tokens else f"{v}.T"  # tokens: (n,)
                                          for x, v, i in zip(spec.Xs, spec.xvars, spec.inputs)},
                                       **copied,
                                       **{Y: f"{v}.T" for Y, v in zip(spec.Ys, spec.yvars)}})
        printer.labels = spec.Y if labels else None
        printer.unbuffered = spec.image_values
        body = emit(stmts, printer, owned, outputs, sums)
        if printer.onehot:
            body.insert(0, f"Y1h = np.eye({spec.d_out}, dtype=dt)[Y].T")
        if with_y and spec.labels and not labels:
            # rows of Y, (ny, k): ŷ − y needs each to sum to 1. Σ_i (s_i − 1)² ≤ tol² bounds every
            # row's |s_i − 1| by tol, in 3 calls (4 µs at 128 × 10); past it (a row off, nan, or
            # many rows each just inside tol) Spec.rows decides, and names the row. Y.min() < 0:
            # a row like [0, 1.5, −0.5] sums to 1 but is no distribution (one call, ~1.5 µs).
            one_k = printer.const(f"one_k{spec.d_out}", "ones", spec.d_out)
            tol = printer.const("rowtol2", "rowtol2", spec.d_out)
            body = [f"_sy = Y @ {one_k}", "_sy -= 1",
                    f"if not np.vdot(_sy, _sy) <= {tol} or Y.min() < 0:",
                    f"    _spec.rows(Y, {ny}, dt)"] + body
        if labels:  # entry (y_i, i) of a (d, n) array; a label out of range raises here
            rows = (printer.const("rows", "rows") if ny == "n" else
                    printer.const(f"rows_n{spec.T}", "rows", f"n/{spec.T}"))
            body = [f"flat = np.ravel_multi_index((Y, {rows}), ({spec.d_out}, {ny}))"] + body
        variants.append((printer, body + list(tail) + [f"return {returns}"]))
    consts = {c: v for p, _ in variants for c, v in p.consts.items()}
    pre = [f"    {', '.join(consts)}, = _consts(n, dt)"] if consts else []
    lines = [f"def {name}(params, X{', Y' if with_y else ''}):"] + _prologue(spec, with_y)
    lines += list(head) + pre
    if fortran:
        lo, hi = FORTRAN_ROWS
        lines += [f"    if {lo} <= n <= {hi}:  # (see FORTRAN_WEIGHT)"]
        lines += [f"        {p} = np.asfortranarray({p})" for p in fortran]
    if copied:  # (in the buffers' order: X.T, a view, is already Fortran-ordered)
        lines += ["    _fo = _consts.order(n, dt) == 'F'"]
    lines += [f"    {c} = {c[:-1]}.T if _fo else np.ascontiguousarray({c[:-1]}.T)"
              for c in copied.values()]
    if len(variants) == 2:
        lines += ["    if Y.ndim == 1:  # integer labels", "        try:",
                  "            " + variants[0][1][0], "        except ValueError:  # say which label",
                  f"            _spec.rows(Y, {ny}, dt)"]
        lines += ["        " + b for b in variants[0][1][1:]]
    lines += ["    " + b for b in variants[-1][1]]
    return "\n".join(lines) + "\n", _consts(list(consts.values()), order)


def compile_network(net, backend: str = "numpy", scalar=None, relu_grad_at_zero=None, fused=None):
    """``loss, grads = kernel(params, X, Y)``: the mean loss and its gradient for every parameter.

    ``params`` maps names to arrays shaped as :func:`param_shapes` says (exactly those names); X
    is (n, d0), one example a row (n ≥ 1), or for a net with several inputs a dict {input name:
    (n, d) array}; Y is (n, dL), or (n,) integer labels for cross_entropy. Dtype policy: the
    parameters' dtype (float32 or float64, all alike) is the kernel's; X and Y are converted to it
    and the loss and gradients come back in it. nan or inf in any argument raises a ValueError
    naming it (numpy's own overflow of finite arguments returns inf). ``kernel.source`` is the
    generated numpy code, ``kernel.scalar_source(n)`` the unrolled code that tiny nets run for
    batch size n, ``kernel.predict(params, X)`` the forward pass. ``scalar``: True/False forces the
    unrolled path for tiny nets on or off (default: on while n × weight entries ≤ SCALAR_WORK).
    ``relu_grad_at_zero``: relu'(0) in this kernel (default: the network's own setting,
    ``net.relu_grad_at_zero``); a built kernel is fixed and reports it as
    ``kernel.relu_grad_at_zero``, whatever changes later. ``fused`` (numpy backend): the
    entrywise work between the GEMMs as numba loops (:mod:`.fused`); None (default) when numba is
    importable and SYMGRAD_FUSED is not 0, falling back to numpy (said in ``kernel.source``) when
    a loop cannot be compiled; True requires it (errors name the primitive), False: numpy only.
    """
    chosen = backend_named(backend)
    if fused is not None and chosen.name != "numpy":
        raise ValueError(f"fused: only the numpy backend has a fused path, not {chosen.name!r}")
    net.check()
    at0 = net.relu_grad_at_zero if relu_grad_at_zero is None else \
        check_relu_grad_at_zero(relu_grad_at_zero)
    if chosen.name != "numpy":
        return net.cached((compile_network, chosen.name, scalar, at0),
                          lambda: chosen.network(net, scalar, at0))
    use = fused_path.choose(fused)
    return net.cached((compile_network, chosen.name, scalar, at0, use, fused),
                      lambda: chosen.network(net, scalar, at0, fused=use,
                                             required=fused is True))


# The fused loops pay below about this many entries of entrywise work per call (batch rows × the
# summed widths of the fused values), measured as fused/numpy time (bench/fastpath.py's nets, 1
# BLAS thread, float64, labels): 64-32-10 (126 a row) b1 0.66, b32 0.74, b128 0.92, b256 1.00,
# b512 1.13, b1024 1.24; 784-256-128-10 (1260 a row) b8 0.92, b32 0.98, b256 1.17. The loops are
# scalar (the Σ entry² they carry keeps numba from vectorizing them), numpy's ufuncs are SIMD.
FUSED_WORK = 16384
# By default the fused path is built only where its loops would run for batches of at least this
# many rows (``fused_rows``, FUSED_WORK over the fused values' width): a deep, wide net's run at
# batch 1–3 only, gain nothing there, and would still import numba at compile() (0.2–0.4 s) and
# compile the loops at a first small call (0.3–1.6 s). fused/numpy per call, 1 BLAS thread,
# float64 labels, min of 15 rounds at load 3 on 2 cores: 784-256×7-10 (fused_rows 3) b1 1.05,
# b2 0.97, b3 1.02; 784-256×4-10 (5) b1–b5 0.92–0.95; 784-256-128-10 (13) b1–b13 0.90–0.93.
# fused=True builds it whatever the rows.
FUSED_MIN_ROWS = 4


class _Unpaid(Exception):
    """The fused path would not pay (FUSED_MIN_ROWS): the numpy kernel, saying why."""


def _compile_network(net, scalar, at0, fused=False, required=False):
    slow = _compile_numpy(net, scalar, at0, None)
    if not fused:
        return slow
    try:
        fast = _compile_numpy(net, scalar, at0, slow, least_rows=1 if required else FUSED_MIN_ROWS)
    except (MissingCodeError, ImportError, _Unpaid) as err:  # (ImportError: a broken numba)
        if required:
            raise
        # the documented fallback of fused=None: numpy throughout, and the source says why
        slow.source = f"# fused path off, numpy throughout: {err}\n" + slow.source
        return slow
    return fast if fast.fused else slow  # (nothing to fuse: the numpy kernel)


def _compile_numpy(net, scalar, at0, unfused, least_rows=1):
    """The numpy kernel; with ``unfused`` (that kernel, made first) the fused one, which calls
    ``unfused`` for batches above its measured limit (FUSED_WORK), or :class:`_Unpaid` when that
    limit is below ``least_rows`` (before any loop is built or numba imported)."""
    fused = unfused is not None
    typed = program(net)
    spec = Spec(net, typed, at0)
    prog = [(e.out.sym, e.rhs) for e in typed.eqns]
    grads = typed.gradients  # parameter name → its gradient's variable, in parameter order
    stmts = cse(_live(prog, {typed.loss.sym} | {v.sym for v in grads.values()}))
    owned = {lhs for lhs, _ in stmts}
    loss = typed.loss.sym.name
    outs = ", ".join(f"_k{i}: {grads[p].sym.name}" for i, p in enumerate(spec.names))
    limit = (SCALAR_WORK if scalar is None else (1 << 62) if scalar else -1)
    scalar_kernel = _unrolled(spec, typed)

    head = [f"    if n * {spec.weights} <= {limit}:", "        try:",
            f"            _r = _scalar(n)({', '.join(spec.pvars + spec.xvars + spec.yvars)}, dt)",
            "            if _r is not None:  # (None: nan or inf in the arguments)",
            "                return _r",
            "        except (ArithmeticError, ValueError):  # Python floats overflowed: use numpy's",
            "            pass"] if spec.weights <= limit else []  # (batch size 1 included)
    # nan and inf, after the fact: numpy carries nan from any argument into the loss, and inf
    # from Y (one-hot rows: their check), but a saturating unit hides an inf in a parameter or an
    # input (b1 = −inf under relu gave a finite loss and gradients). Σ entry² of an array is
    # finite exactly when its entries are (or overflows: then Spec finds nothing and the result
    # stands), one BLAS dot; taken of the first value each float argument enters linearly (Z1 =
    # X W1ᵀ + b1 carries all three), else of the argument itself.
    given = ("X, Y" if not spec.images else "_Xs, Y") if spec.T is None else "_Xs, _Ys"
    floats = [v.sym for v in typed.params] + [x for x, i in zip(spec.Xs, spec.inputs)
                                               if i not in spec.tokens]
    carried = _carriers(stmts, floats, typed.loss.sym)
    names = {x: v for x, v in zip(spec.Xs, spec.xvars)}
    sums = [f"q_{c.name}" for c in dict.fromkeys(carried.values())] + [
        f"_sumsq({names.get(a, a.name)})" for a in floats if a not in carried]
    tail = [f"if not _isfinite({' + '.join([loss] + sums)}):"
            "  # nan or inf: raise naming the argument, unless it overflowed",
            f"    _spec.diagnose(params, {given})"]
    printer, loops = KernelPrinter, {}
    tiny = bool(head)  # (the scalar path's lines, before the fused path's dispatch joins them)
    if fused:  # the entrywise runs between GEMMs as numba loops (fused.py)
        avoid = set(spec.Ys)
        stmts, made = fused_path.split_products(stmts, avoid)
        owned |= made
        stmts, groups = fused_path.group(stmts, avoid, set(carried.values()))
        printer = functools.partial(fused_path.FusedKernelPrinter, groups=groups,
                                    sums=set(carried.values()), loops=loops)
        width = sum(lhs.shape[1] for g in groups for lhs, _ in g[0] if lhs.shape[0] == N)
        fused_rows = max(1, FUSED_WORK // max(1, width))  # rows a call: examples, or positions
        if fused_rows < least_rows:
            raise _Unpaid(f"its loops would run only for batches of up to {fused_rows} "
                          f"row{'s' if fused_rows > 1 else ''}, too few to pay (FUSED_MIN_ROWS = "
                          f"{least_rows}; fused=True builds them)")
        head = [f"    if n > {fused_rows}:  # a large batch: the numpy kernel (see FUSED_WORK)",
                f"        return _unfused(params, {given})"] + head
    src, consts = _function("kernel", spec, stmts, owned, f"{loss}, {{{outs}}}", True,
                            outputs={v.sym for v in grads.values()}, head=head, tail=tail,
                            sums=set(carried.values()), printer=printer,
                            # (the fused loops walk (d, n) arrays a row at a time, and run for
                            # small batches only, where C order is as fast: see buffer_order)
                            order=_c_order if fused else buffer_order,
                            fortran=[p.name for p in _input_weights(
                                stmts, [v.sym for v in typed.params],
                                {x for x, i in zip(spec.Xs, spec.inputs)
                                 if i not in spec.tokens and i not in spec.images})])
    if tiny:  # say plainly which code runs for small batches: it is not in this source
        most = limit // spec.weights
        rows = "n examples" if spec.T is None else f"n rows (sequences × {spec.T} positions)"
        src = (f"# A tiny net: a call with {rows}, n ≤ {most} (n × {spec.weights} weight entries ≤ "
               f"{limit}), runs kernel_n<n>,\n# the same program unrolled over Python floats for that "
               "n, made on first use: kernel.scalar_source(n)\n# shows it. The numpy code below "
               "runs for larger batches, and whenever Python floats overflow.\n" + src)
    src = legend(typed) + src
    if loops:
        src = ("# fused: each _fz<k>(…) is one numba loop (its source below the kernel) doing the "
               "entrywise work\n# between two GEMMs; net.compile(fused=False) or SYMGRAD_FUSED=0 "
               "gives numpy throughout\n" + src)
    kernel = exec_generated(src, "kernel", _namespace(
        spec, _scalar=scalar_kernel, _consts=consts, _unfused=unfused,
        **{k: fn for k, (_, fn) in loops.items()}))
    kernel.fused = bool(loops)
    if loops:
        kernel.source = (src + "\n# the fused loops (numba.njit, float64 and float32)\n" +
                         "\n".join(s for s, _ in loops.values()) +
                         f"\n# _unfused: the numpy kernel, for batches of more than {fused_rows} "
                         "rows\n" + unfused.source)
        kernel.fused_rows, kernel.fused_width = fused_rows, width
    return _reporting(kernel, net, spec, typed, at0, scalar_kernel)


def _carriers(stmts, args, loss):
    """{arg: the first value of ``stmts`` that holds nan or inf whenever arg does}: a value
    built from arg by sums, products and ⊙ alone (inf·0 is nan, inf − inf is nan, so no entry
    of arg is lost, n ≥ 1), never one through a nonlinear unit (relu(−inf) = 0)."""
    def leaves(e):
        if isinstance(e, sp.MatrixSymbol):
            return {e}
        if isinstance(e, sp.Transpose):
            return leaves(e.arg)
        if isinstance(e, (sp.MatAdd, sp.HadamardProduct, sp.MatMul)):
            out = set()
            for a in e.args:
                if isinstance(a, sp.MatrixExpr):
                    out |= leaves(a)
                elif not (a.is_number and a != 0):  # a nonzero number scales; anything else stops
                    return set()
            return out
        return set()
    found, args = {}, set(args)
    for lhs, rhs in stmts:
        if lhs == loss or lhs.shape == (1, 1) or not isinstance(lhs, sp.MatrixSymbol):
            continue
        for a in leaves(rhs) & args:
            found.setdefault(a, lhs)
    return found


def _read_entrywise(stmts, x):
    """Whether the batch input x is an operand of an entrywise op or a per-example reduction in
    ``stmts`` (a sum, a product ⊙, an activation, layer norm, softmax): the ops a transposed view
    slows. Products (BLAS, attention's batched ones) and the image ops read it as it is."""
    ops = (sp.MatAdd, sp.HadamardProduct, sp.HadamardPower, Elementwise, Normalize, NormalizeVJP,
           Softmax, SoftmaxVJP)

    def direct(e):
        return e == x or isinstance(e, sp.Transpose) and e.arg == x

    def walk(e):
        if not isinstance(e, sp.Basic) or not e.has(x):
            return False
        args = e.operands if isinstance(e, Elementwise) else e.args
        return (isinstance(e, ops) and any(map(direct, args))) or any(map(walk, args))
    return any(walk(rhs) for _, rhs in stmts)


def _live(stmts, wanted):
    """The statements that ``wanted`` needs: the program also carries g's that lead only to an
    input (layer norm of an input: G_x̂ = G ⊙ γ, whose one use would be G_x), 1 ms a call at
    128 × 2048 float32."""
    need, out = set(wanted), []
    for lhs, rhs in reversed(stmts):
        if lhs in need:
            out.append((lhs, rhs))
            need |= rhs.free_symbols
    return out[::-1]


def _unrolled(spec, typed):
    """``unrolled(n)``: the program unrolled over Python floats for batch size n, made once."""
    made = {}

    def unrolled(n):
        if n not in made:
            made[n] = scalar_function(spec, typed, n)
        return made[n]
    return unrolled


def _reporting(kernel, net, spec, typed, at0, unrolled):
    """What every backend's kernel reports: its forward pass, the unrolled code for a batch size,
    its relu'(0), and which generated name holds which value."""
    kernel.predict = _forward(net, spec, typed)
    kernel.scalar_source = lambda n: unrolled(n).source
    kernel.relu_grad_at_zero = at0
    # which generated name is which value (the source holds none of the user's names)
    kernel.legend = {v.sym.name: (v.kind.value, str(v.label)) for v in typed.variables}
    return kernel


def _forward(net, spec, typed):
    outs = [typed.forward_of(o).sym for o in spec.outputs]
    stmts = [(e.out.sym, e.rhs) for e in typed.of_kind(Kind.FORWARD)]
    # (a copy: the value may be a buffer the kernel reuses; a sequence's (n·T, k) rows are given
    # back as (n, T, k), a view of that copy)
    def back(d, out):
        image = net.nodes[out].image  # an image output as torch holds it, (n, C, H, W)
        T = net.nodes[out].positions  # (None after a flatten: a row per sequence already)
        return (f".reshape(-1, {', '.join(map(str, image))})" if image else
                "" if T is None else f".reshape(-1, {T}, {d})")
    returns = (f"{outs[0].name}.T.copy(){back(spec.d_out, spec.outputs[0])}" if not spec.several
               # several losses: {output name: its values}, the names held in the namespace
               else "{" + ", ".join(f"_o{i}: {o.name}.T.copy(){back(d, name)}" for i, (o, d, name)
                                    in enumerate(zip(outs, spec.d_outs, spec.outputs))) + "}")
    src, consts = _function("predict", spec, stmts, {lhs for lhs, _ in stmts} - set(outs),
                            returns, False)
    return exec_generated(src, "predict", _namespace(spec, _consts=consts))


register_backend(Backend("numpy", _compile_network, "numpy over whole batches (BLAS products), and "
                          "for tiny nets the program unrolled over Python floats",
                         matrix=MatrixPrinter))


PYTHON_WORK = 20000  # batch size × weight entries the python backend unrolls (code grows with it)


def _compile_python(net, scalar, at0):
    """The python backend: the same typed program unrolled over Python floats for each batch size
    (the numpy kernel's tiny-net path, for any n up to PYTHON_WORK / weight entries). Its loss and
    gradients share no printer with the numpy kernel: a reference for it (``kernel.predict`` is
    the numpy forward pass all the same)."""
    typed = program(net)
    spec = Spec(net, typed, at0)
    unrolled = _unrolled(spec, typed)

    def kernel(params, X, Y):
        args = spec.check(params, X, Y, True)  # converted, and checked finite
        k = len(spec.names) + len(spec.inputs)
        args, Ys = args[:k], args[k:]  # (several losses: one target per output)
        xs, Ys = spec.flat(args[len(spec.names):], Ys)  # a sequence's positions as rows
        args = args[:len(spec.names)] + xs
        n = xs[0].shape[0]
        if n * spec.weights > PYTHON_WORK:
            rows = "examples" if spec.T is None else f"positions ({n // spec.T} sequences × {spec.T})"
            raise ValueError(f"backend 'python': {n} {rows} × {spec.weights} weight entries is "
                             f"over {PYTHON_WORK}; use backend='numpy'")
        return unrolled(n)(*args, *Ys, args[0].dtype)

    kernel.source = legend(typed) + "# backend 'python': kernel.scalar_source(n) is the code for n"
    return _reporting(kernel, net, spec, typed, at0, unrolled)


register_backend(Backend("python", _compile_python, "the program unrolled over Python floats, per "
                         "batch size (small nets; a reference sharing no printer with numpy)"))


def predict(net, params, X):
    """The network's output for the rows of X (probabilities for sigmoid and softmax outputs)."""
    return compile_network(net).predict(params, X)


