"""Image ops (issue 11): convolution, max pooling and flattening, as torch's Conv2d, MaxPool2d and
flatten.

Where it sits: graph, beside :mod:`.ops` (whose registry it adds to; imported by :mod:`.network`
so that the ops are registered whenever a network can be built). An image value (C × H × W) is
one example's column of C·H·W entries in torch's row-major order (see :mod:`symgrad.core.conv`),
so these ops are per example as a dense layer is and the batch keeps one example a row; an
elementwise op (act, add, mul) keeps an image an image. ``flatten`` forgets the shape: the entries
are already in torch's order, so it is the identity on them.

The notes' voice for the backward pass: a convolution is the dense layer W applied to every patch
of x (Z = W U(x)ᵀ + b𝟏ᵀ, U(x) the patches, im2col), so ∇W = mat(g) U(x), ∇b = mat(g) 𝟏 and
g ← T(W)ᵀ g, the correlation of g with the flipped kernel; max pooling routes each window's g to
its maximum.
"""
from __future__ import annotations

import numbers

import sympy as sp

from symgrad.core.conv import (ChannelSum, Conv2d, ConvInputVJP, ConvMatrix, ConvWeightVJP,
                               Geometry, MaxPool, MaxPoolVJP, Patches, PoolSelect, SeqConv,
                               SeqConvInputVJP, SeqConvWeightVJP)
from symgrad.core.sequence import AcrossJacobian, SeqFlatten, SeqUnflatten
from symgrad.graph.ops import Op, Symbol, register_op


def geometry(node) -> Geometry:
    return Geometry(*node.attr("geom"))


def _refuse_dim(what, how):
    def dim(net, inputs):
        raise ValueError(f"{what}: build it with {how}")
    return dim


# -- conv2d: z = W ⋆ x + b -------------------------------------------------------------------------
def _conv_define(net, node):
    b = net.sym(node.params[1]) if len(node.params) > 1 else sp.S.Zero
    return Conv2d(net.sym(node.params[0]), b, net.sym(node.inputs[0]), geometry(node))


def _conv_jacobian(net, node, wrt):
    g, x = geometry(node), node.inputs[0]
    W = node.params[0]
    O = net.shapes[W][0]
    if wrt == x:
        return (ConvMatrix(net.sym(W), g),
                f"{node.name} = {W} ⋆ {x} + … is linear in {x}: row (o, p) of T({W}) holds row o "
                f"of {W} at the {g.K} entries of patch p ({g.kh}×{g.kw} window, "
                f"{g.spacing()})")
    if wrt == W:
        return (sp.KroneckerProduct(sp.Identity(O), Patches(net.sym(x), g)),
                f"channel o of {node.name} at position p is row o of {W} times patch p of {x}: a "
                f"dense layer on every patch, so ∂{node.name}/∂vec[{W}] = I ⊗ U({x}), U({x}) the "
                f"{g.P} × {g.K} patches (im2col)")
    return (sp.KroneckerProduct(sp.Identity(O), sp.OneMatrix(g.P, 1)),
            f"{wrt}_o is added at every one of the {g.P} positions of channel o")


def _conv_vjp(net, node, g):
    geo, x = geometry(node), node.inputs[0]
    W = node.params[0]
    out = [(x, ConvInputVJP(g, net.sym(W), geo),
            f"g ← T({W})ᵀ g: the correlation of g with the flipped kernel (a transposed "
            "convolution), each patch's share added back where it was read"),
           (W, ConvWeightVJP(g, net.sym(x), geo),
            f"I ⊗ U({x}) is block diagonal, so block o of the row is row o of mat(g) times "
            f"U({x}), and unvectorized ∇_{W} ℓ = mat(g) U({x}): the dense layer's g hᵀ with every "
            f"patch an h, summed over the {geo.P} positions (mat(g) is g as "
            f"{net.shapes[W][0]} channels × {geo.P} positions)")]
    if len(node.params) > 1:
        out.append((node.params[1], ChannelSum(g, geo.P),
                    f"∇_{node.params[1]} ℓ = mat(g) 𝟏: each channel's g summed over its positions"))
    return out


def _conv_scalar(net, node, ins, params):
    b = params[1] if len(params) > 1 else sp.S.Zero
    return Conv2d(sp.ImmutableMatrix(params[0]), b if b == 0 else sp.ImmutableMatrix(b),
                  sp.ImmutableMatrix(ins[0]), geometry(node)).as_explicit()


def _conv_arrays(net, node):
    g = geometry(node)
    return {node.params[0]: (net.shapes[node.params[0]][0], g.C, g.kh, g.kw)}


register_op(Op("conv2d", _conv_define, _conv_jacobian, _conv_vjp, _conv_scalar,
               _refuse_dim("conv2d", "net.conv2d(x, out_channels, kernel_size)"),
               "a convolution, z = W ⋆ x + b (torch.nn.Conv2d)", images="own", weight=True,
               arrays=_conv_arrays, label="convolution",
               symbol=Symbol("z", ("W", "b"), numbered=True)))


# -- max_pool2d: the maximum of each window ----------------------------------------------------------
def _pool_define(net, node):
    return MaxPool(net.sym(node.inputs[0]), geometry(node))


def _pool_jacobian(net, node, wrt):
    g = geometry(node)
    return (PoolSelect(net.sym(wrt), g),
            f"each entry of {node.name} is the largest of a {g.kh}×{g.kw} window of {wrt}: its "
            "partial is 1 at that maximum and 0 elsewhere, so row q of S has a single 1")


def _pool_vjp(net, node, g):
    x = node.inputs[0]
    return [(x, MaxPoolVJP(g, net.sym(x), geometry(node)),
             f"g ← S({x})ᵀ g: each window's g goes to its maximum (the first, among ties), "
             "the other entries get 0")]


def _pool_scalar(net, node, ins, params):
    """Each window's first maximum as cases, x_k where it beats the entries before it and ties
    or beats those after (torch's choice): written as Max, its derivative at a tie would be
    SymPy's Heaviside(0) = 1/2, half of g to each tied entry where the kernel gives all to the
    first."""
    g, x = geometry(node), ins[0]
    out = []
    for c in range(g.C):
        for i in range(g.Ho):
            for j in range(g.Wo):
                vals = [x[(c * g.H + h) * g.W + w, 0]
                        for _, _, _, h, w in g._replace(C=1).window(i, j)]
                cases = [(v, sp.And(*[v > o for o in vals[:k]], *[v >= o for o in vals[k + 1:]]))
                         for k, v in enumerate(vals[:-1])]
                out.append(sp.Piecewise(*cases, (vals[-1], True)) if cases else vals[0])
    return sp.Matrix(out)


register_op(Op("max_pool2d", _pool_define, _pool_jacobian, _pool_vjp, _pool_scalar,
               _refuse_dim("max_pool2d", "net.max_pool2d(x, kernel_size)"),
               "max pooling, the largest entry of each window (torch.nn.MaxPool2d)", images="own",
               label="max pooling", symbol=Symbol("p")))


# -- flatten: the same entries, the image shape forgotten -------------------------------------------
def _flatten_define(net, node):
    return net.sym(node.inputs[0])


def _flatten_jacobian(net, node, wrt):
    return (sp.Identity(node.dim),
            f"{node.name} holds the {node.dim} entries of {wrt} channel by channel and row by row, "
            "as the image already does: the identity")


def _flatten_vjp(net, node, g):
    return [(node.inputs[0], g, "g passes unchanged: flatten only forgets the shape")]


register_op(Op("flatten", _flatten_define, _flatten_jacobian, _flatten_vjp,
               lambda net, node, ins, params: ins[0],
               _refuse_dim("flatten", "net.flatten(x)"),
               "a flatten, the entries of an image as one vector (torch.flatten)", images="own",
               label="flatten", symbol=Symbol("f")))


# -- conv1d over a sequence: z_t = Σ_u W_u h_{t+u−left} + b ----------------------------------------
def _c1(node):
    return node.attr("k"), node.attr("left")


def _conv1d_define(net, node):
    k, left = _c1(node)
    b = net.sym(node.params[1]) if len(node.params) > 1 else sp.S.Zero
    return SeqConv(net.sym(node.params[0]), b, net.sym(node.inputs[0]), node.positions, k, left)


def _conv1d_jacobian(net, node, wrt):
    k, left = _c1(node)
    h, W = node.inputs[0], node.params[0]
    O, C = node.dim, net.nodes[h].dim
    span = f"{h}_(t−{left}) … {h}_(t+{k - 1 - left})"
    if wrt == h:
        return (AcrossJacobian(f"{W}_(τ−t+{left})", r"%%s_{\tau - t + %d}" % left, O, C,
                               [net.sym(W)]),
                f"{node.name}_t = Σ_u {W}_u {h}_(t+u−{left}) reads the {k} positions {span} (0 "
                f"beyond the sequence's ends): ∂{node.name}_t/∂{h}_τ = {W}_(τ−t+{left}), column "
                f"τ − t + {left} of the kernel, and the gradient at {h}_τ gathers it from the "
                f"{k} positions t that read τ")
    if wrt == W:
        return (AcrossJacobian("I ⊗ u_tᵀ", r"I \otimes u_{t}^{\top}", O, O * C * k),
                f"{node.name}_t is {W} times the window u_t = ({span}) stacked channel by "
                f"channel: a dense layer on every window, so ∂{node.name}_t/∂vec[{W}] = I ⊗ u_tᵀ")
    return sp.Identity(O), f"{node.name}_t = … + {wrt}"


def _conv1d_vjp(net, node, g):
    k, left = _c1(node)
    h, W = node.inputs[0], node.params[0]
    T = node.positions
    out = [(h, SeqConvInputVJP(g, net.sym(W), T, k, left),
            f"g at {h}_τ ← Σ_u {W}_uᵀ g_(τ−u+{left}): the correlation of g with the flipped "
            "kernel, each window's share added back at the positions it read"),
           (W, SeqConvWeightVJP(g, net.sym(h), T, k, left),
            f"∇_{W} ℓ: column u of each kernel row is Σ_t g_t {h}_(t+u−{left})ᵀ, the dense "
            "layer's g hᵀ with every window an h, summed over the positions")]
    if len(node.params) > 1:
        out.append((node.params[1], g, f"∇_{node.params[1]} ℓ = g"))
    return out


def _conv1d_scalar(net, node, ins, params):
    """Every position's units at once (the element level writes a sequence with a conv1d out at
    every position): ins[0] is T × C, row t position t; the result T × O."""
    k, left = _c1(node)
    h, W = ins[0], params[0]
    T, C = h.shape
    b = params[1] if len(params) > 1 else None
    return sp.Matrix(T, node.dim, lambda t, o: sp.Add(
        *(W[o, c * k + u] * h[t + u - left, c] for u in range(k) if 0 <= t + u - left < T
          for c in range(C))) + (b[o, 0] if b is not None else 0))


def _conv1d_arrays(net, node):
    k, _ = _c1(node)
    return {node.params[0]: (node.dim, net.nodes[node.inputs[0]].dim, k)}


register_op(Op("conv1d", _conv1d_define, _conv1d_jacobian, _conv1d_vjp, _conv1d_scalar,
               _refuse_dim("conv1d", "net.conv1d(h, out_channels, kernel_size)"),
               "a convolution over the positions, z_t = Σ_u W_u h_(t+u−p) + b (torch.nn.Conv1d)",
               weight=True, arrays=_conv1d_arrays, across=True, label="convolution over the positions",
               short="1-D convolution",
               symbol=Symbol("z", ("W", "b"), numbered=True)))


# -- seq_flatten: a sequence's T positions as one vector, f = [h_1; …; h_T] --------------------------
def _seq_flatten_define(net, node):
    return SeqFlatten(net.sym(node.inputs[0]), node.attr("T"))


def _seq_flatten_jacobian(net, node, wrt):
    T, d = node.attr("T"), net.nodes[wrt].dim
    return (AcrossJacobian("e_t ⊗ I", r"e_{t} \otimes I", T * d, d),
            f"{node.name} = [{wrt}_1; …; {wrt}_T] holds {wrt}_t in its entries (t−1)·{d}+1 … "
            f"t·{d}, torch's flatten(h, 1) order: ∂{node.name}/∂{wrt}_t = e_t ⊗ I ({T * d} × {d}), "
            f"so ∂{node.name}/∂vec({wrt}[1:T]ᵀ) is the identity I_{T * d}, and a gradient below "
            f"it sums over the T = {T} positions")


def _seq_flatten_vjp(net, node, g):
    h = node.inputs[0]
    T, d = node.attr("T"), net.nodes[h].dim
    return [(h, SeqUnflatten(g, T, d),
             f"g at {h}_t ← row t of mat(g), g laid back as T × d = {T} × {d} (entries "
             f"(t−1)·{d}+1 … t·{d}): flatten's Jacobian is the identity on vec({h}[1:T]ᵀ)")]


def _seq_flatten_scalar(net, node, ins, params):
    """Every position's units at once (ins[0] is T × d, row t position t): its rows one after
    the other, the order of torch's flatten."""
    return sp.Matrix([v for v in ins[0]])  # (a Matrix iterates row by row)


register_op(Op("seq_flatten", _seq_flatten_define, _seq_flatten_jacobian, _seq_flatten_vjp,
               _seq_flatten_scalar, _refuse_dim("seq_flatten", "net.flatten(h)"),
               "a flatten of a sequence, its T positions as one vector per example "
               "(torch.flatten(h, 1))", flattens=True, label="flatten",
               symbol=Symbol("f")))


# -- building -------------------------------------------------------------------------------------
def conv1d(net, h, out_channels, kernel_size, padding="same", stride=1, *, W=None, b=True,
           name=None) -> str:
    """z_t = Σ_u W_u h_{t+u−p} + b over a sequence h (T positions of C features), as
    ``torch.nn.Conv1d(C, out_channels, kernel_size, padding=...)`` applied to h transposed to
    (n, C, T) (and back): W is torch's (O, C, k) weight, b its (O,) bias. Stride 1 and T outputs,
    so the sequence keeps its positions: ``padding="same"`` (torch's: (k − 1)//2 before, the rest
    after) or ``"causal"`` (k − 1 before: z_t reads only h_{t−k+1} … h_t)."""
    node = net._node(h, "conv1d")
    if node.positions is None:
        raise ValueError(f"conv1d: {h!r} has shape {node.shape}, not a sequence; declare one "
                         "with net.input(name, shape=(T, d))")
    O = _size(out_channels, "conv1d: out_channels")
    k = _size(kernel_size, "conv1d: kernel_size")
    if stride != 1 or isinstance(stride, bool):
        raise ValueError(f"conv1d: stride must be 1 (the sequence keeps its {node.positions} "
                         f"positions: its positions are the batch's rows); got {stride!r}")
    if padding not in ("same", "causal"):
        raise ValueError(f"conv1d: padding is 'same' or 'causal' (the sequence keeps its "
                         f"{node.positions} positions: its positions are the batch's rows); got "
                         f"{padding!r}")
    left = (k - 1) // 2 if padding == "same" else k - 1
    net.layers += 1
    n = net.layers
    Wn = W or net._fresh(f"W{n}")
    params = [net._param(Wn, (O, node.dim * k))]
    if b:
        params.append(net._param(b if isinstance(b, str) else net._fresh(f"b{n}"), (O, 1)))
    Node = type(node)
    return net._add(Node(name or net._fresh(f"z{n}"), "conv1d", (h,), tuple(params), O,
                         attrs=(("k", k), ("left", left))))


# -- building images ---------------------------------------------------------------------------------
def _pair(v, what, where, low=1):
    """(rows, columns) from one number for both axes or a pair of them (a tuple or list, as torch
    takes them), else a one-line error; a string such as padding="same" is refused here."""
    vals = tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    if len(vals) != 2 or not all(isinstance(k, numbers.Integral) and not isinstance(k, bool)
                                 and k >= low for k in vals):
        raise ValueError(f"{where}: {what} must be an integer ≥ {low} or a pair of them (rows, "
                         f"columns), got {v!r}")
    return tuple(int(k) for k in vals)


def _fits(g, x, what, where):
    """A one-line error unless the window fits the padded image along both axes (Ho, Wo ≥ 1)."""
    for axis, size, k, pad, out in (("height", g.H, g.kh, g.ph, g.Ho),
                                    ("width", g.W, g.kw, g.pw, g.Wo)):
        if out < 1:
            padded = f" + 2·{pad} padding = {size + 2 * pad}" if pad else ""
            raise ValueError(f"{where}: a {g.kh}×{g.kw} {what} does not fit the {g.H}×{g.W} image "
                             f"{x!r}: its {axis} is {size}{padded} < {k}")


def _size(v, where) -> int:
    """A size as a Python int (numpy integers too; a bool is a slip), else a one-line error."""
    if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < 1:
        raise ValueError(f"{where}: a size must be a positive integer, got {v!r}")
    return int(v)


def _image(net, x, where):
    node = net._node(x, where)
    if node.image is None:
        raise ValueError(f"{where}: {x!r} has shape {node.shape}, not an image; declare images "
                         "with net.input(name, shape=(C, H, W))")
    return node


def conv2d(net, x, out_channels, kernel_size, stride=1, padding=0, *, W=None, b=True,
           name=None) -> str:
    """z = W ⋆ x + b, ``torch.nn.Conv2d(C, out_channels, kernel_size, stride, padding)``: W is
    torch's (O, C, kh, kw) weight (held O × C·kh·kw in derivations), b its (O,) bias; the output
    an image of O channels. Reusing ``W``/``b`` names shares them, as for dense. Kernel size,
    stride and padding are each one number for both axes or a pair (rows, columns), as torch
    takes them; padding is zeros, the same on both sides of an axis (a string such as "same" is
    refused)."""
    node = _image(net, x, "conv2d")
    C, H, Wd = node.image
    O = _size(out_channels, "conv2d: out_channels")
    kh, kw = _pair(kernel_size, "kernel_size", "conv2d")
    sh, sw = _pair(stride, "stride", "conv2d")
    ph, pw = _pair(padding, "padding", "conv2d", low=0)
    g = Geometry(C, H, Wd, kh, kw, sh, sw, ph, pw)
    _fits(g, x, "kernel", "conv2d")
    net.layers += 1
    k = net.layers
    Wn = W or net._fresh(f"W{k}")
    params = [net._param(Wn, (O, g.K))]
    if b:
        params.append(net._param(b if isinstance(b, str) else net._fresh(f"b{k}"), (O, 1)))
    Node = type(node)
    return net._add(Node(name or net._fresh(f"z{k}"), "conv2d", (x,), tuple(params), O * g.P,
                         attrs=(("geom", tuple(g)),), image=(O, g.Ho, g.Wo)))


def max_pool2d(net, x, kernel_size, stride=None, name=None) -> str:
    """The maximum of each window, ``torch.nn.MaxPool2d(kernel_size, stride)``: each one number
    for both axes or a pair (rows, columns); stride defaults to the kernel size, as torch's; no
    padding; a window off the edge is dropped, as torch floors."""
    node = _image(net, x, "max_pool2d")
    C, H, Wd = node.image
    kh, kw = _pair(kernel_size, "kernel_size", "max_pool2d")
    sh, sw = (kh, kw) if stride is None else _pair(stride, "stride", "max_pool2d")
    g = Geometry(C, H, Wd, kh, kw, sh, sw)
    _fits(g, x, "window", "max_pool2d")
    Node = type(node)
    return net._add(Node(name or net._fresh(f"p{len(net.nodes)}"), "max_pool2d", (x,),
                         dim=C * g.P, attrs=(("geom", tuple(g)),), image=(C, g.Ho, g.Wo)))


def flatten(net, x, name=None) -> str:
    """The C·H·W entries of an image as a vector, in torch's row-major order
    (``torch.flatten(x, 1)``); a sequence's T positions of d features as one vector of T·d per
    example, entry t·d + j position t's feature j (``torch.flatten(h, 1)`` of an (n, T, d)
    tensor; the ops after it see one vector per example); a vector is returned as it is."""
    node = net._node(x, "flatten")
    if node.positions is not None:
        T = node.positions
        return net._add(type(node)(name or net._fresh(f"f{len(net.nodes)}"), "seq_flatten", (x,),
                                   dim=T * node.dim, attrs=(("T", T),)))
    if node.image is None:
        return x
    Node = type(node)
    return net._add(Node(name or net._fresh(f"f{len(net.nodes)}"), "flatten", (x,),
                         dim=node.dim))


__all__ = ["conv1d", "conv2d", "max_pool2d", "flatten", "geometry"]
