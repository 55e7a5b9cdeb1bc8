"""The numpy printer of batch programs: matrix expressions as numpy over transposed batch arrays.

Where it sits: compile, between the derived batch program (``backprop.algorithm``) and the emitter
(:mod:`.emit`), which asks this printer for the code of each statement's right-hand side.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import sympy as sp
from sympy.core.function import Application
from sympy.printing.numpy import NumPyPrinter

from symgrad.compile.common import (N, IDENT, PrimitivePrinting, atomic, batch_rows, broadcasts,
                                   one_call, print_elementwise, transposed)


class KernelPrinter(PrimitivePrinting, NumPyPrinter):
    """A batch program's matrix expressions (one example a row) as numpy over arrays that hold
    every batch value transposed, one example a column, as the notes write z = W x + b: Z1 = X Wᵀ
    prints as ``W1 @ X.T``, so biases broadcast down columns and softmax reduces along them, both
    contiguous. A MatrixSymbol prints as its name (X and Y as the views ``X.T``, ``Y.T``), ``n`` is
    the batch size and ``dt`` the dtype. No broadcast is formed (1·bᵀ is ``b[:, None]``, Gᵀ·1 is
    ``G @ one_n``). An Elementwise prints its Lambda's body with the operand arrays for its
    variables; every primitive prints by its registered "numpy" code (σ, softplus and log(1 + eᵘ)
    in forms that neither overflow nor lose digits).
    """

    # relu'(0), the value of step(0): a setting of the kernel being printed, never a global
    _default_settings = {**NumPyPrinter._default_settings, "relu_grad_at_zero": 0}
    backend, modules = "numpy", ("numpy.",)

    def __init__(self, settings=None, names=None):
        super().__init__(settings or {})
        self.env, self.consts, self.rows, self.pre, self.done = {}, {}, {}, [], set()
        self.names = names or {}  # MatrixSymbol -> code, for the inputs
        self.tmp = itertools.count()
        self.labels, self.onehot = None, False  # Y held as integer labels; their one-hot needed
        self.buffered = set()  # batch values that live in arrays of the kernel's, reused per call
        self.sumsq = {}  # a value's code → the name holding its Σ entry², once taken (emit)

    def _module_format(self, fqn, register=True):
        s = super()._module_format(fqn, register)
        return "np." + s[6:] if s.startswith("numpy.") else s

    def _paren(self, e):
        code = self._print(e)
        return code if atomic(code) else f"({code})"

    def const(self, name, *spec):
        """A constant of the kernel's per (n, dtype), made once: see _consts."""
        self.consts[name] = spec
        return name

    def into(self, lhs, e):
        """Code for e, written into lhs's own array when lhs is buffered and e is a product of two
        factors or one numpy ufunc call (no allocation per call)."""
        code = self._print(e)
        if lhs not in self.buffered:
            return code
        buf = lambda: self.const(f"buf_{lhs.name}", "buf", lhs.shape[1])  # (made when used)
        if isinstance(e, sp.MatMul) and len(e.args) == 2 and not broadcasts(e) \
                and e.as_coeff_matrices()[0] == 1:
            return f"np.matmul({self._trn(e.args[1])}, {self._trn(e.args[0])}, out={buf()})"
        name = one_call(code)
        if name and isinstance(getattr(np, name, None), np.ufunc):
            return f"{code[:-1]}, out={buf()})"
        if isinstance(e, sp.BlockMatrix) and code.startswith("_stack("):
            return f"{code[:-1]}, out={buf()})"
        return code

    def _one(self, k, row=False):  # a ones vector, or a (1, k) row
        if batch_rows(k):  # n, or n/T (the sequences, after a flatten): made from n
            T = int(N / k)
            return self.const("one_n" if T == 1 else f"one_n{T}", "ones",
                              "n" if T == 1 else f"n/{T}")
        return self.const(f"one_{'r' if row else ''}{k}", "ones", (1, k) if row else k)

    # scalars
    def _print(self, expr, **kwargs):
        # A constant such as √2 or log 2 as a Python float: np.sqrt(2) is a float64 scalar, which
        # makes a float32 array it multiplies float64 (NEP 50: Python floats are weak, numpy
        # scalars are not); exact GELU's 1/√2 gave a float32 kernel a float64 ∇W2.
        if isinstance(expr, (sp.Pow, Application)) and expr.is_number and expr.is_extended_real:
            try:
                v = float(expr)
            except (TypeError, ValueError):
                v = None
            if v is not None and math.isfinite(v):
                return repr(v) if v >= 0 else f"({v!r})"
        return super()._print(expr, **kwargs)

    def _print_Symbol(self, e):
        return self.env[e] if e in self.env else ("n" if e == N else super()._print_Symbol(e))

    _print_Dummy = _print_Symbol

    def _print_Pow(self, e, rational=False):
        if e.exp == -1:
            return f"(1/{self._paren(e.base)})"
        return super()._print_Pow(e, rational)

    def _print_Piecewise(self, e):
        """Nested np.where, the first condition outermost (NumPyPrinter writes np.select over a
        list of conditions and a list of values: the same, harder to read)."""
        out = None if e.args[-1].cond == sp.true else "np.nan"  # no condition holds: nan
        for value, cond in reversed(e.args):
            out = (self._print(value) if out is None else
                   f"np.where({self._print(cond)}, {self._print(value)}, {out})")
        return out

    # matrices: code(e) holds e, or eᵀ for a batch value (n rows)
    def _print_MatrixSymbol(self, e):
        if e == self.labels:  # any use not printed at the labels below needs the one-hot matrix
            self.onehot = True
            return "Y1h"
        return self.names.get(e, e.name)

    def _nrm(self, e):
        """Code for e itself (not transposed) as a product's factor."""
        if isinstance(e, sp.Transpose):
            return self._trn(e.arg)
        return transposed(self._paren(e)) if batch_rows(e.shape[0]) else self._paren(e)

    def _trn(self, e):
        """Code for eᵀ as a product's factor."""
        if isinstance(e, sp.Transpose):
            return self._nrm(e.arg)
        return self._paren(e) if batch_rows(e.shape[0]) else transposed(self._paren(e))

    def _print_Transpose(self, e):
        a = e.arg
        return (self._print(a) if batch_rows(a.shape[0]) or batch_rows(e.shape[0]) else
                transposed(self._paren(a)))

    def at_labels(self, e):
        """e[i, y_i] for every row i, as a 1-D array: what Σ y ⊙ e is for one-hot rows y."""
        if isinstance(e, sp.MatrixSymbol):
            return f"{self._print(e)}.ravel()[flat]"
        return f"({self._print(e)}).ravel()[flat]"

    def _product(self, c, mats):
        mats = list(mats)
        batch = batch_rows(mats[0].shape[0])  # (the product's rows: not a MatMul made to ask)
        if len(mats) == 2 and isinstance(mats[0], sp.OneMatrix) and mats[0].shape[1] == 1:
            r = mats[1]  # 1·rᵀ: a row broadcast over the batch, here down the columns
            code = (f"{r.arg.name}[:, None]" if isinstance(r, sp.Transpose) and
                    isinstance(r.arg, sp.MatrixSymbol) else f"{self._trn(r)}")
        elif len(mats) == 2 and isinstance(mats[1], sp.OneMatrix) and mats[1].shape[0] == 1:
            code = self._print(mats[0])  # v·1ᵀ: a batch column, held as a row, broadcast
        elif isinstance(mats[-1], sp.OneMatrix) and mats[-1].shape[1] == 1:  # A·1: row sums
            a = sp.MatMul(*mats[:-1]) if len(mats) > 2 else mats[0]
            k = a.shape[1]
            code = (f"{self._one(k, row=True)} @ {self._trn(a)}" if batch else
                    f"{self._nrm(a)} @ {self._one(k)}")
        elif len(mats) == 1:
            code = self._print(mats[0])
        elif batch:
            code = " @ ".join(self._trn(m) for m in reversed(mats))
        else:
            code = " @ ".join(self._nrm(m) for m in mats)
        code = code if c == 1 or atomic(code) else f"({code})"
        return code if c == 1 else f"-{code}" if c == -1 else f"{self._paren(c)}*{code}"

    def _print_MatMul(self, e):
        return self._product(*e.as_coeff_matrices())

    def _print_MatAdd(self, e):
        out = []
        for t in sorted(e.args, key=lambda t: isinstance(t, sp.MatMul) and t.args[0] == -1):
            c, mats = t.as_coeff_matrices() if isinstance(t, sp.MatMul) else (1, [t])
            neg = c.is_number and c < 0 if c != 1 else False
            code = self._product(-c if neg else c, mats)
            out.append(("- " if neg else "+ ") + (code if not neg or atomic(code) else f"({code})"))
        s = " ".join(out)
        return s[2:] if s.startswith("+ ") else "-" + s[2:]

    def _print_HadamardProduct(self, e):
        return " * ".join(self._paren(a) for a in e.args)

    def _print_HadamardPower(self, e):
        return f"{self._paren(e.args[0])}**{self._print(e.args[1])}"

    def _print_Elementwise(self, e):
        return print_elementwise(self, e, self._paren)

    def _print_SumAll(self, e):
        a = e.args[0]
        if self.labels is not None and isinstance(a, sp.HadamardProduct) and len(a.args) == 2 \
                and self.labels in a.args:
            other = a.args[0] if a.args[1] == self.labels else a.args[1]
            terms = other.args if isinstance(other, sp.MatAdd) else [other]
            out = []
            for t in terms:  # Σᵢ (a + b)[i, yᵢ] = Σᵢ a[i, yᵢ] + Σᵢ b[i, yᵢ]; a column: Σᵢ vᵢ
                c, mats = t.as_coeff_matrices() if isinstance(t, sp.MatMul) else (1, [t])
                col = len(mats) == 2 and isinstance(mats[1], sp.OneMatrix)
                code = (f"{self._paren(mats[0])}.sum()" if col else
                        f"{self.at_labels(sp.MatMul(*mats) if len(mats) > 1 else mats[0])}.sum()")
                out.append((c, code))
            out.sort(key=lambda t: bool(t[0] < 0))
            s = " ".join(("- " if c < 0 else "+ ") + (code if abs(c) == 1 else
                                                     f"{self._print(abs(c))}*{code}")
                         for c, code in out)
            return s[2:] if s.startswith("+") else "-" + s[2:]
        if isinstance(a, sp.HadamardProduct) and len(a.args) == 2 and not any(map(broadcasts, a.args)):
            return f"np.vdot({self._print(a.args[0])}, {self._print(a.args[1])})"
        if isinstance(a, sp.HadamardPower) and a.args[1] == 2:
            x = self._print(a.args[0])
            if IDENT.match(x):  # (other squares are summed below)
                return f"np.vdot({x}.ravel('K'), {x}.ravel('K'))"  # (see softmax_rows)
        return f"{self._paren(a)}.sum()"

    def softmax_rows(self, z, target, inplace=False, buffered=False):
        """exp(z − m) for each example into ``target`` and its sums s, remembered for a
        log-sum-exp of the same z. While every entry lies within ±xlim, exp(z) can neither
        overflow nor underflow, even summed, and no shift is needed (m is None); else m is each
        example's maximum. (The sum of squares reads z in memory order, ``ravel('K')``: np.vdot of
        a batch value held in Fortran order, attention's scores, copied it first, 0.7 ms a call
        at n·T = 2048 positions of 64 keys in float64.)"""
        zc, k = self._paren(z), z.shape[1]
        m, s, one = f"m_{target}", f"s_{target}", self._one(k, row=True)
        lim = self.const(f"xlim_{k}", "xlim", k)
        first = f"{target} = {zc}; {target} -= {m}" if inplace else f"{target} = {zc} - {m}"
        out = zc if inplace else self.const(f"buf_{target}", "buf", k) if buffered else None
        q = self.sumsq.get(zc) or f"np.vdot({zc}.ravel('K'), {zc}.ravel('K'))"
        self.pre += [f"if {q} < {lim}**2 or -{lim} < {zc}.min() and {zc}.max() < "
                     f"{lim}:  # exp(z) is safe unshifted",
                     f"    {m} = None; {target} = np.exp({zc}" + (f", out={out})" if out else ")"),
                     "else:  # shift each example by its maximum",
                     f"    {m} = {zc}.max(axis=0, keepdims=True); {first}",
                     f"    np.exp({target}, out={target})", f"{s} = {one} @ {target}"]
        self.rows[z] = (m, s)
        return target

    def _print_Softmax(self, e):
        name = self.softmax_rows(e.args[0], f"_sm{next(self.tmp)}")
        self.pre.append(f"{name} /= s_{name}")
        return name

    def _print_LogSumExp(self, e):
        z = e.args[0]
        if z not in self.rows:
            self.softmax_rows(z, f"_e{next(self.tmp)}")
        m, s = self.rows[z]
        name = f"lse_{s[2:]}"
        if name not in self.done:
            self.done.add(name)
            self.pre.append(f"{name} = np.log({s}) if {m} is None else np.log({s}) + {m}")
        return name

    def _print_BlockMatrix(self, e):
        """Values side by side: a batch value's code holds its transpose, so its one row of
        blocks is stacked down the rows; otherwise blocks in one column or one row."""
        R, C = e.blocks.shape
        if batch_rows(e.shape[0]) and R == 1:  # (in the memory order of the first: see _stack)
            return f"_stack({', '.join(self._print(b) for b in e.blocks)})"
        if C == 1 or R == 1:
            return (f"np.concatenate(({', '.join(self._print(b) for b in e.blocks)}), "
                    f"axis={0 if C == 1 else 1})")
        raise NotImplementedError(f"a {R}×{C} block matrix")

    def _print_MatrixSlice(self, e):
        (r0, r1, rs), (c0, c1, cs) = e.rowslice, e.colslice
        if rs != 1 or cs != 1:
            raise NotImplementedError("a strided slice")
        code = self._paren(e.parent)
        if batch_rows(e.shape[0]):  # held transposed: the columns taken are rows of the code
            return f"{code}[{c0}:{c1}]"
        return f"{code}[{r0}:{r1}, {c0}:{c1}]"

    def norm_stats(self, z, eps):
        """z − mean and 1/√(var + ε) of each example (a column of the held code) into
        temporaries, once per z: layer norm's forward pass and its backward pass share them."""
        if (z, eps) not in self.rows:
            k, zc = next(self.tmp), self._paren(z)
            c, inv = f"_lc{k}", f"_li{k}"
            self.pre += [f"{c} = {zc} - {zc}.mean(axis=0, keepdims=True)",
                         f"{inv} = 1/np.sqrt((({c})*({c})).mean(axis=0, keepdims=True) + "
                         f"{self._print(eps)})"]
            self.rows[(z, eps)] = (c, inv)
        return self.rows[(z, eps)]

    def _print_Normalize(self, e):
        z, eps, axis = e.args
        if axis != 1:
            raise NotImplementedError("normalize over one example outside a batch")
        c, inv = self.norm_stats(z, eps)
        return f"({c} * {inv})"

    def _print_NormalizeVJP(self, e):
        xh, z, g, eps, axis = e.args
        if axis != 1:
            raise NotImplementedError("normalize over one example outside a batch")
        _, inv = self.norm_stats(z, eps)
        xc, gc = self._paren(xh), self._paren(g)
        return (f"{inv} * ({gc} - {gc}.mean(axis=0, keepdims=True) - "
                f"{xc} * ({xc} * {gc}).mean(axis=0, keepdims=True))")

    def _print_SoftmaxVJP(self, e):
        y, g = self._paren(e.args[0]), self._paren(e.args[1])
        return f"{y} * ({g} - {self._one(e.shape[1], row=True)} @ ({y} * {g}))"

    # embedding (symgrad.graph.embedding): a lookup and an index-add, never a one-hot product
    def _print_Gather(self, e):
        E, tok, axis = e.args
        if axis != 1:
            raise NotImplementedError("an embedding of one example outside a batch")
        return f"{self._print(E)}[{self._print(tok)}].T"  # rows E[tok_i], held (d, n)


    # -- across positions (symgrad.core.sequence): attention's block products --------------------
    def _blocks(self, e, transpose):
        """A batch value (held transposed, d × n·T) as its (sequences, T, d) blocks: a view;
        ``transpose`` swaps each block's two axes (also a view)."""
        code = f"{self._paren(e)}.T.reshape(-1, {self._seq_T}, {e.shape[1]})"
        return f"{code}.transpose(0, 2, 1)" if transpose else code

    def _print_SeqProduct(self, e):
        """op(X_b) op(Y_b)·c (+ M) for every sequence b in one batched np.matmul, held transposed
        again (a view of the product). The causal mask M is −∞ above the diagonal, made in the
        kernel's dtype (a float64 mask would make a float32 kernel's scores float64). The scale
        (one float: 1/√d_k printed as (1/8)*1.414… was two passes) and the mask are applied in
        place to the product, a fresh array."""
        if e.axis != 1:
            raise NotImplementedError("a product across positions outside a batch")
        self._seq_T = e.positions
        code = f"np.matmul({self._blocks(e.x, e.tx)}, {self._blocks(e.y, e.ty)})"
        if e.scale != 1:
            c = repr(float(e.scale)) if e.scale.is_number else self._print(e.scale)
            code = f"{code}.__imul__({c})"
        if e.causal:
            code = (f"{code}.__iadd__(np.triu(np.full(({e.positions}, {e.positions}), -np.inf, "
                    "dt), 1))")
        return f"{code}.reshape(-1, {e.cols}).T"
    def _print_SeqFlatten(self, e):
        """The n/T rows of T·d, row b the T positions of sequence b side by side, held
        transposed: (T·d, n/T) from the (d, n) of the positions (one copy)."""
        if e.axis != 1:
            raise NotImplementedError("a flatten of one sequence outside a batch")
        return f"_seq_flatten({self._print(e.x)}, {e.positions})"

    def _print_SeqUnflatten(self, e):
        """flatten's gradient laid back at the positions: (d, n) from the held (T·d, n/T)."""
        if e.axis != 1:
            raise NotImplementedError("flatten's gradient of one sequence outside a batch")
        return f"_seq_unflatten({self._print(e.grad)}, {e.positions})"

    def _print_ScatterAdd(self, e):
        g, tok, V, axis = e.args
        if axis != 1:
            raise NotImplementedError("an embedding's gradient of one example outside a batch")
        return f"_scatter_add({self._print(tok)}, {self._print(g)}, {V}, dt)"

    # -- images (symgrad.core.conv): convolution as im2col GEMMs, max pooling with its argmax -----
    # (the functions called are symgrad.compile.images'; the patches U(x) and each pool's argmax
    # are made once, in the forward pass or at their first use, and read again after)
    def _once(self, key, make):
        # (named _u<k> and _sp<k>: emit.py's fused products are _w, _f, _s and _d<k>, numbered
        # apart, and a sequence's patches named _s<k> were overwritten by a stack of G's)
        if key not in self.rows:
            name = f"_{key[0]}{next(self.tmp)}"
            self.pre.append(f"{name} = {make}")
            self.rows[key] = name
        return self.rows[key]

    def _geo(self, g, *fields):
        return ", ".join(str(getattr(g, f)) for f in fields)

    def _image_batch(self, e):
        if e.axis != 1:
            raise NotImplementedError(f"{type(e).__name__} of one example outside a batch")

    def _patches(self, x, g):
        return self._once(("u", x, tuple(g)), f"_im2col({self._paren(x)}, n, "
                          f"{self._geo(g, 'C', 'H', 'W', 'kh', 'kw', 'sh', 'sw', 'ph', 'pw')})")

    def _print_Conv2d(self, e):
        self._image_batch(e)
        g = e.geom
        b = "None" if e.bias == 0 else self._print(e.bias)
        return f"_conv2d({self._patches(e.x, g)}, {self._print(e.Wm)}, {b}, n, {g.P})"

    def _print_ConvInputVJP(self, e):
        self._image_batch(e)
        g = e.geom
        return (f"_conv2d_xgrad({self._paren(e.grad)}, {self._print(e.Wm)}, n, "
                f"{self._geo(g, 'C', 'H', 'W', 'kh', 'kw', 'sh', 'sw', 'ph', 'pw', 'Ho', 'Wo')})")

    def _print_ConvWeightVJP(self, e):
        self._image_batch(e)
        g, O = e.geom, e.shape[0]
        return (f"_conv2d_wgrad({self._paren(e.grad)}, {self._patches(e.x, g)}, n, {g.P}, "
                f"({O}, {self._geo(g, 'C', 'kh', 'kw')}))")

    def _print_ChannelSum(self, e):
        if e.axis != 1:
            raise NotImplementedError("ChannelSum of one example outside a batch")
        return f"_channel_sum({self._paren(e.grad)}, n, {e.shape[1]}, {e.P})"

    def _pool(self, x, g):
        key = ("pool", x, tuple(g))
        if key not in self.rows:
            k = next(self.tmp)
            self.pre.append(f"_pm{k}, _pa{k} = _max_pool({self._paren(x)}, n, "
                            f"{self._geo(g, 'C', 'H', 'W', 'kh', 'kw', 'sh', 'sw')})")
            self.rows[key] = (f"_pm{k}", f"_pa{k}")
        return self.rows[key]

    def _print_MaxPool(self, e):
        self._image_batch(e)
        return self._pool(e.x, e.geom)[0]

    def _print_MaxPoolVJP(self, e):
        self._image_batch(e)
        g = e.geom
        return (f"_max_pool_grad({self._paren(e.grad)}, {self._pool(e.x, g)[1]}, n, "
                f"{self._geo(g, 'C', 'H', 'W', 'kh', 'kw', 'sh', 'sw')})")

    # conv1d over sequences (rows are positions: n·T of them)
    def _seq_patches(self, e):
        """The windows of e's input e.x, made once: the forward pass and ∇W read the same."""
        return self._once(("sp", e.x, e.k, e.left), f"_seq_patches({self._paren(e.x)}, "
                          f"{e.positions}, {e.k}, {e.left})")

    def _print_SeqConv(self, e):
        self._image_batch(e)
        b = "None" if e.bias == 0 else self._print(e.bias)
        return f"_conv1d({self._seq_patches(e)}, {self._print(e.Wm)}, {b})"

    def _print_SeqConvWeightVJP(self, e):
        self._image_batch(e)
        U = self._seq_patches(e)
        O, Ck = e.shape
        return f"_conv1d_wgrad({self._paren(e.grad)}, {U}, ({O}, {Ck // e.k}, {e.k}))"

    def _print_SeqConvInputVJP(self, e):
        self._image_batch(e)
        return (f"_conv1d_xgrad({self._paren(e.grad)}, {self._print(e.Wm)}, {e.positions}, {e.k}, "
                f"{e.left})")
