"""What numpy kernels call for the image ops: im2col convolution, col2im, max pooling.

Where it sits: compile, beside :mod:`.kernel` (whose generated code calls these by the names the
numpy printer writes: ``_im2col``, ``_conv2d`` …). A kernel holds every batch value transposed,
one example a column (``a`` is (features, n)); an image's features are its C·H·W entries in
torch's order, so ``a.T.reshape(n, C, H, W)`` is the (n, C, H, W) batch, a view when ``a`` is a
transposed C-contiguous array (as X and every value made here are). Each function returns its
value held the same way, a view ``out.reshape(n, -1).T`` of a fresh C-contiguous array.

A convolution is one GEMM an example (W as O × C·kh·kw times that example's patches, C·kh·kw × P,
as one stacked np.matmul), its weight gradient likewise with the same patches (kept from the
forward pass), its input gradient a GEMM and a scatter back onto the image (col2im) by a loop over
the kh·kw kernel offsets — never over examples or positions. Max pooling keeps each window's
argmax (the first, among ties, as torch) from the forward pass for the backward one.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _at(u, v, sh, sw, Ho, Wo):
    """The slice of an image's rows and columns that kernel offset (u, v) reads, at stride
    (sh, sw)."""
    return (slice(None), slice(None), slice(u, u + sh * (Ho - 1) + 1, sh),
            slice(v, v + sw * (Wo - 1) + 1, sw))


def im2col(a, n, C, H, W, kh, kw, sh, sw, ph, pw):
    """The patches of the images held (C·H·W, n), as an (n, C·kh·kw, P) C-contiguous array:
    U(x)ᵀ of each example, row (c, u, v) in torch's weight order, column the output position;
    stride (sh, sw), ph rows and pw columns of zeros on each side. One strided copy per kernel
    offset, the padding's zeros written directly: 20–35 % faster than copying the transposed
    sliding-window view of a padded copy (64 × 16 × 16 × 16, 3×3: 1.4 ms against 2.1)."""
    x4 = a.T.reshape(n, C, H, W)
    Ho, Wo = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    U = np.empty((n, C, kh, kw, Ho, Wo), a.dtype)
    for u in range(kh):
        i0, i1 = _inside(u, ph, sh, H, Ho)
        for v in range(kw):
            j0, j1 = _inside(v, pw, sw, W, Wo)
            dst = U[:, :, u, v]
            if i0 > 0:
                dst[:, :, :i0] = 0
            if i1 < Ho:
                dst[:, :, i1:] = 0
            if j0 > 0:
                dst[:, :, i0:i1, :j0] = 0
            if j1 < Wo:
                dst[:, :, i0:i1, j1:] = 0
            if i0 < i1 and j0 < j1:
                dst[:, :, i0:i1, j0:j1] = x4[:, :, i0 * sh + u - ph:(i1 - 1) * sh + u - ph + 1:sh,
                                             j0 * sw + v - pw:(j1 - 1) * sw + v - pw + 1:sw]
    return U.reshape(n, C * kh * kw, Ho * Wo)


def _inside(u, p, s, H, Ho):
    """The output rows i whose input row i·s + u − p lies inside the image: [i0, i1)."""
    return max(0, -(-(p - u) // s)), max(0, min(Ho, (H - 1 + p - u) // s + 1))


def conv2d(U, Wt, b, n, P):
    """W ⋆ x + b from the patches U (n, K, P): one GEMM an example (np.matmul over the stack),
    already channel-major, held (O·P, n)."""
    O = Wt.shape[0]
    out = np.matmul(Wt.reshape(O, -1), U)  # (n, O, P)
    if b is not None:
        out += b[:, None]
    return out.reshape(n, O * P).T


def conv2d_weight_grad(G, U, n, P, shape):
    """Σ_examples mat(g) U(x), in torch's (O, C, kh, kw) weight shape."""
    O = shape[0]
    return np.matmul(G.T.reshape(n, O, P), U.transpose(0, 2, 1)).sum(axis=0).reshape(shape)


def conv2d_input_grad(G, Wt, n, C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo):
    """T(W)ᵀ g for every example: Wᵀ mat(g) (the patches' gradient, one GEMM an example),
    scattered back onto the (padded) image, one strided add per kernel offset; held (C·H·W, n)."""
    O = Wt.shape[0]
    if sh == sw == 1 and ph < kh and pw < kw and O <= 2 * C:
        # the gradient of a convolution is a convolution: g padded by kh − 1 − ph rows and
        # kw − 1 − pw columns (so stride 1 on both axes, and padding short of the kernel on
        # each), correlated with the flipped kernel, channels swapped; no scatter (the strided
        # adds of col2im, inner runs of Wo entries, took 10 of 18 ms for 64 × 16 × 16 × 16 → 32,
        # 3×3). Its patches hold O·kh·kw rows to col2im's C·kh·kw: past O = 2C the copy costs
        # more (3 → 16 channels at 32 × 32: 58 ms against 12)
        Wf = np.ascontiguousarray(Wt[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)).reshape(C, -1)
        Ug = im2col(G, n, O, Ho, Wo, kh, kw, 1, 1, kh - 1 - ph, kw - 1 - pw)
        return np.matmul(Wf, Ug).reshape(n, C * H * W).T
    dU = np.matmul(Wt.reshape(O, -1).T, G.T.reshape(n, O, Ho * Wo)).reshape(n, C, kh, kw, Ho, Wo)
    dx = np.zeros((n, C, H + 2 * ph, W + 2 * pw), dU.dtype)
    for u in range(kh):
        for v in range(kw):
            dx[_at(u, v, sh, sw, Ho, Wo)] += dU[:, :, u, v]
    if ph or pw:
        dx = np.ascontiguousarray(dx[:, :, ph:ph + H, pw:pw + W])
    return dx.reshape(n, -1).T


def channel_sum(G, n, O, P):
    """mat(g) 𝟏 of every example: (O, n) held, as the batch form (n × O) of a bias's share."""
    return G.T.reshape(n, O, P).sum(axis=2).T


def max_pool(a, n, C, H, W, kh, kw, sh, sw):
    """(the maxima held (C·Ho·Wo, n), each window's first argmax (n, C, Ho, Wo) as the smallest
    unsigned integers that hold kh·kw − 1): a running maximum over the kh·kw offsets, strided
    views of the image, no copy of the windows; an offset replaces the best so far only when
    strictly larger, so ties keep the first, as torch's."""
    x4 = a.T.reshape(n, C, H, W)
    Ho, Wo = (H - kh) // sh + 1, (W - kw) // sw + 1
    best = x4[_at(0, 0, sh, sw, Ho, Wo)].copy()
    # (int8 held offsets up to 127 only: a 12×12 window's offset 128 raised OverflowError)
    arg = np.zeros(best.shape, np.min_scalar_type(kh * kw - 1))
    for k in range(1, kh * kw):
        view = x4[_at(k // kw, k % kw, sh, sw, Ho, Wo)]
        more = np.greater(view, best)
        np.maximum(best, view, out=best)
        np.copyto(arg, k, where=more)  # (arg[more] = k, a fancy index, took 4× as long)
    return best.reshape(n, -1).T, arg


def max_pool_grad(G, arg, n, C, H, W, kh, kw, sh, sw):
    """S(x)ᵀ g: each window's g added at its argmax; held (C·H·W, n)."""
    Ho, Wo = arg.shape[2:]
    g4 = G.T.reshape(n, C, Ho, Wo)
    if sh == kh and sw == kw and H == Ho * kh and W == Wo * kw:
        # windows that tile the image (MaxPool2d(k) on a multiple of k, each axis on its own):
        # each entry is in one window, so each offset's share is written once, no zeros and no
        # adds (half the time)
        dx = np.empty((n, C, Ho, kh, Wo, kw), G.dtype)
        for k in range(kh * kw):
            np.multiply(g4, arg == k, out=dx[:, :, :, k // kw, :, k % kw])
        return dx.reshape(n, -1).T
    dx = np.zeros((n, C, H, W), G.dtype)
    zero = G.dtype.type(0)
    for k in range(kh * kw):
        dx[_at(k // kw, k % kw, sh, sw, Ho, Wo)] += np.where(arg == k, g4, zero)
    return dx.reshape(n, -1).T


# -- conv1d over sequences: held (features, n·T), one position a column ---------------------------
def seq_patches(a, T, k, left):
    """The windows of k positions of every sequence (zero beyond its ends), (n·T, C·k), row
    (sequence, t), column (c, u) in torch's (O, C, k) weight order."""
    C = a.shape[0]
    x3 = a.T.reshape(-1, T, C)
    xp = np.pad(x3, ((0, 0), (left, k - 1 - left), (0, 0)))
    return sliding_window_view(xp, k, axis=1).reshape(-1, C * k)  # (S, T, C, k): a copy


def conv1d(U, Wt, b):
    """z_t = Σ_u W_u h_{t+u−left} + b for every row: one GEMM, held (O, n·T)."""
    out = U @ Wt.reshape(Wt.shape[0], -1).T
    if b is not None:
        out += b
    return out.T


def conv1d_weight_grad(G, U, shape):
    """Σ_t g_t h_{t+u−left}ᵀ, torch's (O, C, k) shape."""
    return (G @ U).reshape(shape)


def conv1d_input_grad(G, Wt, T, k, left):
    """Σ_u W_uᵀ g_{τ−u+left}: each row's window gradient, added back at its k positions."""
    O, C = Wt.shape[:2]
    dU = (G.T @ Wt.reshape(O, -1)).reshape(-1, T, C, k)
    dx = np.zeros((dU.shape[0], T + k - 1, C), dU.dtype)
    for u in range(k):
        dx[:, u:u + T] += dU[:, :, :, u]
    return np.ascontiguousarray(dx[:, left:left + T]).reshape(-1, C).T


# -- flatten of sequences: from the positions' (d, n·T) to the sequences' (T·d, n) ---------------
def seq_flatten(H, T):
    """Column b the T positions of sequence b one after the other (entry t·d + j is h_t's j),
    always a fresh array (a reshape alone is a view when T or d is 1, which the kernel would
    then update in place under the value it came from)."""
    d = H.shape[0]
    out = np.empty((T * d, H.shape[1] // T), H.dtype)
    out.reshape(T, d, -1)[...] = H.reshape(d, -1, T).transpose(2, 0, 1)
    return out


def seq_unflatten(G, T):
    """flatten's gradient laid back at the positions: (d, n·T) from (T·d, n), fresh."""
    d = G.shape[0] // T
    out = np.empty((d, G.shape[1] * T), G.dtype)
    out.reshape(d, -1, T)[...] = G.reshape(T, d, -1).transpose(1, 2, 0)
    return out


RUNTIME = {"_seq_flatten": seq_flatten, "_seq_unflatten": seq_unflatten,
           "_seq_patches": seq_patches, "_conv1d": conv1d, "_conv1d_wgrad": conv1d_weight_grad,
           "_conv1d_xgrad": conv1d_input_grad, "_im2col": im2col, "_conv2d": conv2d, "_conv2d_wgrad": conv2d_weight_grad,
           "_conv2d_xgrad": conv2d_input_grad, "_channel_sum": channel_sum,
           "_max_pool": max_pool, "_max_pool_grad": max_pool_grad}

__all__ = ["RUNTIME"]
