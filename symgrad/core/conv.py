"""Convolution and max pooling over images: the matrix-expression nodes and their geometry.

Where it sits: core, beside :mod:`.matexpr` and :mod:`.sequence`. An image value of one example
(C channels of H × W) is held as the column of its C·H·W entries in torch's row-major order,
entry c·H·W + i·W + j; a batch is n such rows, the (n, C, H, W) batch torch holds read as
(n, C·H·W) (a view). So every node here is per example, as a dense layer is, and the batch
program keeps one example a row.

A convolution is a dense layer applied to every patch: with U(x) the P × C·kh·kw matrix of x's
patches (row p the window under output position p, im2col), the output channels at the P
positions are Z = W U(x)ᵀ + b𝟏ᵀ, W the O × C·kh·kw matrix of torch's (O, C, kh, kw) weight read
row-major. Its backward pass is therefore the dense layer's: ∇W = mat(g) U(x) (summed over the
examples), ∇b = mat(g) 𝟏, and g ← T(W)ᵀ g, T(W) the convolution's (O·P) × (C·H·W) matrix — a
correlation of g with the flipped kernel (a transposed convolution) that the kernel computes
by scattering W ᵀ mat(g) back onto the patches (col2im).

Each node has two forms, as :class:`~symgrad.core.matexpr.Softmax` has: axis 0 one example (a
column), axis 1 the batch (n rows). Each defines ``_entry``, so ``as_explicit()`` writes any of
them out entry by entry: the independent route against which the kernels and the element level
are checked. :class:`ConvMatrix`, :class:`Patches` and :class:`PoolSelect` are the local
Jacobians as the printed chain writes them (also explicit, for checking, never compiled).
"""
from __future__ import annotations

from typing import NamedTuple

import sympy as sp
from sympy.matrices.expressions import MatrixExpr

from symgrad.core.scripts import attach


class Geometry(NamedTuple):
    """A window sliding over C × H × W: kernel kh × kw, stride sh down the rows and sw along
    them, ph rows of zeros above and below and pw columns of zeros left and right (torch's
    Conv2d and MaxPool2d with ``stride=(sh, sw), padding=(ph, pw)``; a pool pads nothing)."""

    C: int
    H: int
    W: int
    kh: int
    kw: int
    sh: int = 1
    sw: int = 1
    ph: int = 0
    pw: int = 0

    @property
    def Ho(self):
        return (self.H + 2 * self.ph - self.kh) // self.sh + 1

    @property
    def Wo(self):
        return (self.W + 2 * self.pw - self.kw) // self.sw + 1

    @property
    def P(self):  # output positions
        return self.Ho * self.Wo

    @property
    def K(self):  # entries of one patch: C·kh·kw
        return self.C * self.kh * self.kw

    def args(self):
        return sp.Tuple(*map(sp.Integer, self))

    @classmethod
    def of(cls, t):
        return cls(*(int(v) for v in t))

    def spacing(self):
        """The words "stride s, padding p", as torch's arguments say them: one number where the
        two axes agree, else the pair (rows, columns)."""
        one = lambda a, b: str(a) if a == b else f"({a}, {b})"
        return f"stride {one(self.sh, self.sw)}, padding {one(self.ph, self.pw)}"

    def window(self, i, j):
        """[(c, u, v, h, w)] of output position (i, j): h, w in the padded-out image (may fall
        outside it, in the zero padding)."""
        return [(c, u, v, i * self.sh + u - self.ph, j * self.sw + v - self.pw)
                for c in range(self.C) for u in range(self.kh) for v in range(self.kw)]

    def inside(self, h, w):
        return 0 <= h < self.H and 0 <= w < self.W


def _reader(x, axis, row):
    """f(c, h, w): entry (c, h, w) of one example of x (row ``row`` of a batch), 0 in the
    padding."""
    def at(g, c, h, w):
        if not g.inside(h, w):
            return sp.S.Zero
        k = (c * g.H + h) * g.W + w
        return x[k, 0] if axis == 0 else x[row, k]
    return at


def _rows(x, axis):
    return [0] if axis == 0 else range(x.shape[0])


def _sym(a):
    return sp.sympify(a, strict=True)


class _Windowed(MatrixExpr):
    """A node over sliding windows: matrix operands, then the window's Geometry (a Tuple), then
    the axis (0 one example, 1 the batch); a subclass's own __new__ takes them in that order, so
    SymPy rebuilds it from its args."""

    def __new__(cls, *operands, geom, axis: int = 0):
        return MatrixExpr.__new__(cls, *map(_sym, operands),
                                  geom if isinstance(geom, sp.Tuple) else sp.Tuple(*geom),
                                  sp.Integer(axis))

    geom = property(lambda self: Geometry.of(self.args[-2]))
    axis = property(lambda self: int(self.args[-1]))

    def _image_shape(self, rows_of):
        g = self.geom
        k = g.C * g.H * g.W
        return (k, 1) if self.axis == 0 else (rows_of.shape[0], k)


class Conv2d(MatrixExpr):
    """W ⋆ x + b: torch's conv2d of one example (a column of O·Ho·Wo) or of a batch (n rows).
    W is O × C·kh·kw, b an O × 1 bias or 0."""

    def __new__(cls, W, b, x, geom, axis: int = 0):
        return MatrixExpr.__new__(cls, *(sp.sympify(a, strict=True) for a in (W, b, x)),
                                  sp.Tuple(*geom) if not isinstance(geom, sp.Tuple) else geom,
                                  sp.Integer(axis))

    Wm = property(lambda self: self.args[0])
    bias = property(lambda self: self.args[1])
    x = property(lambda self: self.args[2])
    geom = property(lambda self: Geometry.of(self.args[3]))
    axis = property(lambda self: int(self.args[4]))

    @property
    def shape(self):
        g, O = self.geom, self.Wm.shape[0]
        return (O * g.P, 1) if self.axis == 0 else (self.x.shape[0], O * g.P)

    def batched(self, go, n):
        return Conv2d(self.Wm, self.bias, go(self.x), self.args[3], 1)

    def _entry(self, i, j, **kwargs):
        g, W, b = self.geom, self.Wm, self.bias
        row, r = (0, int(i)) if self.axis == 0 else (int(i), int(j))
        o, q = divmod(r, g.P)
        oi, oj = divmod(q, g.Wo)
        at = _reader(self.x, self.axis, row)
        k = g.kh * g.kw
        out = sp.Add(*(W[o, c * k + u * g.kw + v] * at(g, c, h, w)
                       for c, u, v, h, w in g.window(oi, oj) if g.inside(h, w)))
        return out + (0 if b == 0 else b[o, 0])

    def _parts(self, p, latex):
        W, x = p._print(self.Wm), p._print(self.x)
        body = rf"{W} \star {x}" if latex else f"{W} ⋆ {x}"
        if self.bias != 0:
            body += f" + {p._print(self.bias)}"
        return body

    def _sympystr(self, p):
        return self._parts(p, False)

    def _latex(self, p):
        return self._parts(p, True)


class ConvInputVJP(_Windowed):
    """T(W)ᵀ g: a convolution's gradient reaching its input, the correlation of g with the
    flipped kernel (a transposed convolution), C·H·W entries an example."""

    def __new__(cls, g, W, geom, axis: int = 0):
        return _Windowed.__new__(cls, g, W, geom=geom, axis=axis)

    grad = property(lambda self: self.args[0])
    Wm = property(lambda self: self.args[1])
    shape = property(lambda self: self._image_shape(self.grad))

    def batched(self, go, n):
        return ConvInputVJP(go(self.grad), self.Wm, self.args[2], 1)

    def _entry(self, i, j, **kwargs):
        geo, W, G = self.geom, self.Wm, self.grad
        row, r = (0, int(i)) if self.axis == 0 else (int(i), int(j))
        c, q = divmod(r, geo.H * geo.W)
        h, w = divmod(q, geo.W)
        sh, sw, k = geo.sh, geo.sw, geo.kh * geo.kw
        terms = []
        for u in range(geo.kh):
            for v in range(geo.kw):
                # (h, w) is read by offset (u, v) of output (a/sh, b/sw), when both divide
                a, b_ = h + geo.ph - u, w + geo.pw - v
                if a % sh or b_ % sw or not (0 <= a // sh < geo.Ho and 0 <= b_ // sw < geo.Wo):
                    continue
                for o in range(W.shape[0]):
                    at = o * geo.P + (a // sh) * geo.Wo + b_ // sw
                    terms.append(W[o, c * k + u * geo.kw + v] *
                                 (G[at, 0] if self.axis == 0 else G[row, at]))
        return sp.Add(*terms)

    def _sympystr(self, p):
        return f"T({p._print(self.Wm)})ᵀ {p._print(self.grad)}"

    def _latex(self, p):
        return r"T\left(%s\right)^{\top} %s" % (p._print(self.Wm), p._print(self.grad))


class ConvWeightVJP(MatrixExpr):
    """∇W = mat(g) U(x): each output channel's gradient (a row of mat(g), O × P) times the
    patches; over a batch, summed over the examples (O × C·kh·kw either way)."""

    sums_examples = True  # the batch form is the sum over the examples itself (as ScatterAdd)

    def __new__(cls, g, x, geom, axis: int = 0):
        return MatrixExpr.__new__(cls, sp.sympify(g, strict=True), sp.sympify(x, strict=True),
                                  sp.Tuple(*geom) if not isinstance(geom, sp.Tuple) else geom,
                                  sp.Integer(axis))

    grad = property(lambda self: self.args[0])
    x = property(lambda self: self.args[1])
    geom = property(lambda self: Geometry.of(self.args[2]))
    axis = property(lambda self: int(self.args[3]))

    @property
    def shape(self):
        g = self.geom
        return (self.grad.shape[0 if self.axis == 0 else 1] // g.P, g.K)

    def batched(self, go, n):
        return ConvWeightVJP(go(self.grad), go(self.x), self.args[2], 1)

    def _entry(self, i, j, **kwargs):
        geo, G = self.geom, self.grad
        o, kk = int(i), int(j)
        c, uv = divmod(kk, geo.kh * geo.kw)
        u, v = divmod(uv, geo.kw)
        terms = []
        for row in _rows(self.x, self.axis):
            at = _reader(self.x, self.axis, row)
            for oi in range(geo.Ho):
                for oj in range(geo.Wo):
                    h, w = oi * geo.sh + u - geo.ph, oj * geo.sw + v - geo.pw
                    if geo.inside(h, w):
                        q = o * geo.P + oi * geo.Wo + oj
                        terms.append((G[q, 0] if self.axis == 0 else G[row, q]) * at(geo, c, h, w))
        return sp.Add(*terms)

    def _sympystr(self, p):
        g, x = p._print(self.grad), p._print(self.x)
        return f"mat({g}) U({x})" if self.axis == 0 else f"Σ_n mat({g}_n) U({x}_n)"

    def _latex(self, p):
        g, x = p._print(self.grad), p._print(self.x)
        if self.axis == 0:
            return r"\operatorname{mat}\left(%s\right) U\left(%s\right)" % (g, x)
        # row n of G_z1 is (G_z1)_n: \mathbf{G}_{\mathbf{z}^{(1)}}_{n} was a double subscript
        return r"\sum_{n} \operatorname{mat}\left(%s\right) U\left(%s\right)" % (
            attach(g, "_", "n"), attach(x, "_", "n"))


class ChannelSum(MatrixExpr):
    """mat(g) 𝟏: each output channel's gradient summed over its P positions (a convolution's
    bias gradient), O × 1 an example; n × O over a batch (rows summed after, as a bias's)."""

    def __new__(cls, g, P, axis: int = 0):
        return MatrixExpr.__new__(cls, sp.sympify(g, strict=True), sp.Integer(P), sp.Integer(axis))

    grad = property(lambda self: self.args[0])
    P = property(lambda self: int(self.args[1]))
    axis = property(lambda self: int(self.args[2]))

    @property
    def shape(self):
        G = self.grad
        return (G.shape[0] // self.P, 1) if self.axis == 0 else (G.shape[0], G.shape[1] // self.P)

    def batched(self, go, n):
        return ChannelSum(go(self.grad), self.P, 1)

    def _entry(self, i, j, **kwargs):
        G, P = self.grad, self.P
        if self.axis == 0:
            return sp.Add(*(G[int(i) * P + q, 0] for q in range(P)))
        return sp.Add(*(G[int(i), int(j) * P + q] for q in range(P)))

    def _sympystr(self, p):
        return f"mat({p._print(self.grad)}) 𝟏"

    def _latex(self, p):
        return r"\operatorname{mat}\left(%s\right) \mathbf{1}" % p._print(self.grad)


# -- the local Jacobians as the printed chain writes them ----------------------------------------
class ConvMatrix(MatrixExpr):
    """T(W), the (O·P) × (C·H·W) matrix of the convolution x ↦ W ⋆ x: row (o, p) holds W's row o
    at the columns of patch p (doubly block-Toeplitz for stride 1)."""

    def __new__(cls, W, geom):
        return MatrixExpr.__new__(cls, sp.sympify(W, strict=True),
                                  sp.Tuple(*geom) if not isinstance(geom, sp.Tuple) else geom)

    geom = property(lambda self: Geometry.of(self.args[1]))

    @property
    def shape(self):
        g = self.geom
        return (self.args[0].shape[0] * g.P, g.C * g.H * g.W)

    def _entry(self, i, j, **kwargs):
        g, W = self.geom, self.args[0]
        o, q = divmod(int(i), g.P)
        oi, oj = divmod(q, g.Wo)
        c, hw = divmod(int(j), g.H * g.W)
        h, w = divmod(hw, g.W)
        u, v = h - (oi * g.sh - g.ph), w - (oj * g.sw - g.pw)
        if 0 <= u < g.kh and 0 <= v < g.kw:
            return W[o, (c * g.kh + u) * g.kw + v]
        return sp.S.Zero

    def _sympystr(self, p):
        return f"T({p._print(self.args[0])})"

    def _latex(self, p):
        return r"T\left(%s\right)" % p._print(self.args[0])


class Patches(MatrixExpr):
    """U(x), the P × C·kh·kw matrix of x's patches (im2col): row p is the window under output
    position p, entry (c, u, v) in torch's weight order, 0 in the padding."""

    def __new__(cls, x, geom):
        return MatrixExpr.__new__(cls, sp.sympify(x, strict=True),
                                  sp.Tuple(*geom) if not isinstance(geom, sp.Tuple) else geom)

    geom = property(lambda self: Geometry.of(self.args[1]))
    shape = property(lambda self: (self.geom.P, self.geom.K))

    def _entry(self, i, j, **kwargs):
        g = self.geom
        oi, oj = divmod(int(i), g.Wo)
        c, u, v, h, w = g.window(oi, oj)[int(j)]
        return _reader(self.args[0], 0, 0)(g, c, h, w)

    def _sympystr(self, p):
        return f"U({p._print(self.args[0])})"

    def _latex(self, p):
        return r"U\left(%s\right)" % p._print(self.args[0])


# -- max pooling ----------------------------------------------------------------------------------
def _first_max(vals, k):
    """1 where vals[k] is the window's first maximum (torch's choice among ties), else 0."""
    conds = [vals[k] > v for v in vals[:k]] + [vals[k] >= v for v in vals[k + 1:]]
    return sp.Piecewise((1, sp.And(*conds)), (0, True)) if conds else sp.S.One


def _pool_windows(geo, x, axis, row):
    """[(output index, [(input index, value)])] for every window of one example."""
    at = _reader(x, axis, row)
    out = []
    for c in range(geo.C):
        for oi in range(geo.Ho):
            for oj in range(geo.Wo):
                cells = [(h, w) for _, u, v, h, w in geo._replace(C=1).window(oi, oj)]
                out.append(((c * geo.Ho + oi) * geo.Wo + oj,
                            [((c * geo.H + h) * geo.W + w, at(geo, c, h, w)) for h, w in cells]))
    return out


class MaxPool(MatrixExpr):
    """The maximum of each kh × kw window of each channel (torch's max_pool2d, no padding):
    C·Ho·Wo entries an example."""

    def __new__(cls, x, geom, axis: int = 0):
        return MatrixExpr.__new__(cls, sp.sympify(x, strict=True),
                                  sp.Tuple(*geom) if not isinstance(geom, sp.Tuple) else geom,
                                  sp.Integer(axis))

    x = property(lambda self: self.args[0])
    geom = property(lambda self: Geometry.of(self.args[1]))
    axis = property(lambda self: int(self.args[2]))

    @property
    def shape(self):
        g = self.geom
        return (g.C * g.P, 1) if self.axis == 0 else (self.x.shape[0], g.C * g.P)

    def batched(self, go, n):
        return MaxPool(go(self.x), self.args[1], 1)

    def _entry(self, i, j, **kwargs):
        g = self.geom
        row, r = (0, int(i)) if self.axis == 0 else (int(i), int(j))
        c, q = divmod(r, g.P)
        oi, oj = divmod(q, g.Wo)
        at = _reader(self.x, self.axis, row)
        return sp.Max(*(at(g, c, h, w) for _, _, _, h, w in g._replace(C=1).window(oi, oj)))

    def _sympystr(self, p):
        g = self.geom
        return f"maxpool{g.kh}×{g.kw}({p._print(self.x)})"

    def _latex(self, p):
        g = self.geom
        return r"\operatorname{maxpool}_{%d \times %d}\left(%s\right)" % (g.kh, g.kw,
                                                                           p._print(self.x))


class MaxPoolVJP(_Windowed):
    """S(x)ᵀ g: each window's gradient routed to the entry that was its maximum (the first, among
    ties, as torch routes it), C·H·W entries an example."""

    def __new__(cls, g, x, geom, axis: int = 0):
        return _Windowed.__new__(cls, g, x, geom=geom, axis=axis)

    grad = property(lambda self: self.args[0])
    x = property(lambda self: self.args[1])
    shape = property(lambda self: self._image_shape(self.x))

    def batched(self, go, n):
        return MaxPoolVJP(go(self.grad), go(self.x), self.args[2], 1)

    def _entry(self, i, j, **kwargs):
        geo, G = self.geom, self.grad
        row, r = (0, int(i)) if self.axis == 0 else (int(i), int(j))
        terms = []
        for q, cells in _pool_windows(geo, self.x, self.axis, row):
            for k, (idx, _) in enumerate(cells):
                if idx == r:
                    vals = [v for _, v in cells]
                    terms.append((G[q, 0] if self.axis == 0 else G[row, q]) * _first_max(vals, k))
        return sp.Add(*terms)

    def _sympystr(self, p):
        return f"S({p._print(self.x)})ᵀ {p._print(self.grad)}"

    def _latex(self, p):
        return r"S\left(%s\right)^{\top} %s" % (p._print(self.x), p._print(self.grad))


class PoolSelect(MatrixExpr):
    """S(x), max pooling's (C·Ho·Wo) × (C·H·W) Jacobian: row q has a single 1, at its window's
    (first) maximum."""

    def __new__(cls, x, geom):
        return MatrixExpr.__new__(cls, sp.sympify(x, strict=True),
                                  sp.Tuple(*geom) if not isinstance(geom, sp.Tuple) else geom)

    geom = property(lambda self: Geometry.of(self.args[1]))

    @property
    def shape(self):
        g = self.geom
        return (g.C * g.P, g.C * g.H * g.W)

    def _entry(self, i, j, **kwargs):
        q, cells = _pool_windows(self.geom, self.args[0], 0, 0)[int(i)]
        vals = [v for _, v in cells]
        return sp.Add(*(_first_max(vals, k) for k, (idx, _) in enumerate(cells) if idx == int(j)))

    def _sympystr(self, p):
        return f"S({p._print(self.args[0])})"

    def _latex(self, p):
        return r"S\left(%s\right)" % p._print(self.args[0])


# -- conv1d over a sequence: positions are the batch's rows ----------------------------------------
# A sequence value (T positions of C features) is held one position a row (n·T rows), as every
# sequence value is (core.sequence). conv1d mixes neighbouring positions of the same sequence:
# z_t = Σ_u W_u h_{t+u−p} + b, W_u (O × C) column u of torch's (O, C, k) weight, zero outside the
# sequence. Stride 1 and T outputs (padding "same" or "causal"), so the rows stay n·T.
class _SeqWindowed(MatrixExpr):
    """A node over windows of k positions of each sequence: matrix operands, then T, k, left
    (the positions before t that the window of t reads) and the axis (0 one position, 1 every
    position of the batch); a subclass's own __new__ takes them in that order, so SymPy rebuilds
    it from its args."""

    def __new__(cls, *operands, T, k, left, axis: int = 0):
        return MatrixExpr.__new__(cls, *map(_sym, operands), *map(sp.Integer, (T, k, left, axis)))

    positions = property(lambda self: int(self.args[-4]))  # T (not .T: the transpose)
    k = property(lambda self: int(self.args[-3]))
    left = property(lambda self: int(self.args[-2]))
    axis = property(lambda self: int(self.args[-1]))

    def _over_batch(self, *operands):
        """The same node of ``operands`` at every position of the batch (axis 1)."""
        return type(self)(*operands, self.positions, self.k, self.left, 1)


class SeqConv(_SeqWindowed):
    """z_t = Σ_u W_u h_{t+u−left} + b at every position of every sequence (axis 1: n·T rows);
    W is O × C·k (torch's (O, C, k) read row-major), b an O × 1 bias or 0. Axis 0 (one position
    t) is for printing only: it reads the neighbouring positions."""

    def __new__(cls, W, b, h, T, k, left, axis: int = 0):
        return _SeqWindowed.__new__(cls, W, b, h, T=T, k=k, left=left, axis=axis)

    Wm = property(lambda self: self.args[0])
    bias = property(lambda self: self.args[1])
    x = property(lambda self: self.args[2])

    @property
    def shape(self):
        O = self.Wm.shape[0]
        return (O, 1) if self.axis == 0 else (self.x.shape[0], O)

    def batched(self, go, n):
        return self._over_batch(self.Wm, self.bias, go(self.x))

    def _entry(self, i, j, **kwargs):
        if self.axis == 0:
            raise NotImplementedError("one position of a conv1d reads its neighbours: write it "
                                      "out in the batch form (axis 1)")
        W, X, T, k = self.Wm, self.x, self.positions, self.k
        b, t = divmod(int(i), T)
        C = X.shape[1]
        out = [W[int(j), c * k + u] * X[b * T + t + u - self.left, c]
               for u in range(k) if 0 <= t + u - self.left < T for c in range(C)]
        return sp.Add(*out) + (0 if self.bias == 0 else self.bias[int(j), 0])

    def _parts(self, p, latex):
        W, x = p._print(self.Wm), p._print(self.x)
        if latex:
            body = r"\sum_{u} %s %s" % (attach(W, "_", "u"), attach(x, "_", "t+u-%d" % self.left))
        else:
            body = f"Σ_u {W}_u {x}_(t+u−{self.left})"
        return body + (f" + {p._print(self.bias)}" if self.bias != 0 else "")

    def _sympystr(self, p):
        return self._parts(p, False)

    def _latex(self, p):
        return self._parts(p, True)


class SeqConvInputVJP(_SeqWindowed):
    """g at h_τ: Σ_u W_uᵀ g_{τ−u+left}, the correlation of g with the flipped kernel; C
    features a row."""

    def __new__(cls, g, W, T, k, left, axis: int = 0):
        return _SeqWindowed.__new__(cls, g, W, T=T, k=k, left=left, axis=axis)

    grad = property(lambda self: self.args[0])
    Wm = property(lambda self: self.args[1])

    @property
    def shape(self):
        C = self.Wm.shape[1] // self.k
        return (C, 1) if self.axis == 0 else (self.grad.shape[0], C)

    def batched(self, go, n):
        return self._over_batch(go(self.grad), self.Wm)

    def _entry(self, i, j, **kwargs):
        if self.axis == 0:
            raise NotImplementedError("a conv1d's gradient at one position reads its neighbours")
        W, G, T, k = self.Wm, self.grad, self.positions, self.k
        b, tau = divmod(int(i), T)
        return sp.Add(*(W[o, int(j) * k + u] * G[b * T + tau - u + self.left, o]
                        for u in range(k) if 0 <= tau - u + self.left < T
                        for o in range(W.shape[0])))

    def _sympystr(self, p):
        return f"Σ_u {p._print(self.Wm)}_uᵀ {p._print(self.grad)}_(τ−u+{self.left})"

    def _latex(self, p):
        # 𝐖^{(1)}_{u}^{\top} was a double superscript, 𝐠_{𝐳^{(1)}}_{τ−u+p} a double subscript
        W = attach(attach(p._print(self.Wm), "_", "u"), "^", r"\top")
        return r"\sum_{u} %s %s" % (W, attach(p._print(self.grad), "_", r"\tau-u+%d" % self.left))


class SeqConvWeightVJP(_SeqWindowed):
    """∇W_u = Σ_t g_t h_{t+u−left}ᵀ, over every position of every sequence (O × C·k, torch's
    (O, C, k) order)."""

    sums_examples = True

    def __new__(cls, g, h, T, k, left, axis: int = 0):
        return _SeqWindowed.__new__(cls, g, h, T=T, k=k, left=left, axis=axis)

    grad = property(lambda self: self.args[0])
    x = property(lambda self: self.args[1])

    @property
    def shape(self):
        i = 0 if self.axis == 0 else 1
        return (self.grad.shape[i], self.x.shape[i] * self.k)

    def batched(self, go, n):
        return self._over_batch(go(self.grad), go(self.x))

    def _entry(self, i, j, **kwargs):
        if self.axis == 0:
            raise NotImplementedError("a conv1d's weight gradient reads every position")
        G, X, T, k = self.grad, self.x, self.positions, self.k
        c, u = divmod(int(j), k)
        return sp.Add(*(G[r, int(i)] * X[r + u - self.left, c] for r in range(G.shape[0])
                        if 0 <= r % T + u - self.left < T))

    def _sympystr(self, p):
        g, x = p._print(self.grad), p._print(self.x)
        return f"[Σ_t {g}_t {x}_(t+u−{self.left})ᵀ]_u"

    def _latex(self, p):
        g, x = p._print(self.grad), p._print(self.x)
        return r"\left[\sum_{t} %s %s\right]_{u}" % (
            attach(g, "_", "t"), attach(attach(x, "_", "t+u-%d" % self.left), "^", r"\top"))


__all__ = ["Geometry", "Conv2d", "ConvInputVJP", "ConvWeightVJP", "ChannelSum", "ConvMatrix",
           "Patches", "MaxPool", "MaxPoolVJP", "PoolSelect", "SeqConv",
           "SeqConvInputVJP", "SeqConvWeightVJP"]
