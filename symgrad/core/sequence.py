"""Products across the positions of a sequence: what attention is made of.

Where it sits: core, beside :mod:`.matexpr`. Every other node of a network acts on each position
alone, so one position's value is a column and the batch is one position a row (n·T rows). An
attention layer reads every position of its sequence: per sequence it multiplies T × d blocks,
Q Kᵀ, A V, and their transposes in the backward pass. :class:`SeqProduct` is that product, in two
forms (as :class:`~symgrad.core.matexpr.Softmax` has two):

- axis 0, one position t (a column, as the notes write every vector): row t of op(X) op(Y), X and
  Y the T × d matrices of the sequence's positions (row τ = position τ's value), op a transpose or
  not; printed in the notes' voice (K q/√d_k: entry τ is k_τ · q_t/√d_k);
- axis 1, the batch (n·T rows, n sequences of T positions): the same product taken block by block,
  one T-row block per sequence. The numpy printer reshapes to (n, T, d) (a view) and calls one
  batched ``np.matmul``; there is no Python loop over sequences or positions.

``scale`` multiplies the product (1/√d_k for the scores); ``causal`` adds the mask m_t, 0 at
τ ≤ t and −∞ after, to the product (only the scores carry one). Every row then keeps its
diagonal entry finite, so a softmax over it has a finite maximum and never makes a NaN.
"""
from __future__ import annotations

import re

import sympy as sp
from sympy.matrices.expressions import MatrixExpr

from symgrad.core.scripts import attach


class SeqProduct(MatrixExpr):
    """op(X) op(Y) · scale (+ causal mask), taken per sequence of T positions: see the module."""

    def __new__(cls, x, y, T, tx=False, ty=False, scale=1, causal=False, axis: int = 0):
        return MatrixExpr.__new__(cls, sp.sympify(x, strict=True), sp.sympify(y, strict=True),
                                  sp.Integer(T), sp.true if tx else sp.false,
                                  sp.true if ty else sp.false, sp.sympify(scale, strict=True),
                                  sp.true if causal else sp.false, sp.Integer(axis))

    x = property(lambda self: self.args[0])
    y = property(lambda self: self.args[1])
    positions = property(lambda self: int(self.args[2]))  # T (not .T: the transpose)
    tx = property(lambda self: bool(self.args[3]))
    ty = property(lambda self: bool(self.args[4]))
    scale = property(lambda self: self.args[5])
    causal = property(lambda self: bool(self.args[6]))
    axis = property(lambda self: int(self.args[7]))

    @property
    def cols(self):
        """Columns of op(Y) for one sequence: T when Y is transposed, else Y's features."""
        return self.positions if self.ty else (self.y.shape[0] if self.axis == 0 else self.y.shape[1])

    @property
    def shape(self):
        return (self.cols, 1) if self.axis == 0 else (self.x.shape[0], self.cols)

    def with_operands(self, x, y, axis):
        return SeqProduct(x, y, self.positions, self.tx, self.ty, self.scale, self.causal, axis)

    def batched(self, go, n):
        """The batch form (matexpr.batch's hook): the operands' batch matrices, multiplied per
        sequence."""
        return self.with_operands(go(self.x), go(self.y), 1)

    # entry by entry (the batch form with explicit operands: an independent evaluation route)
    def _entry(self, i, j, **kwargs):
        if self.axis == 0:
            raise NotImplementedError("one position of an attention reads the other positions: "
                                      "write it out in the batch form (axis 1)")
        T, X, Y = self.positions, self.x, self.y
        b, t = divmod(int(i), T)
        rows = range(b * T, b * T + T)
        if self.tx:   # row t of X_bᵀ: column t of X_b, over the block's rows
            left = [X[r, t] for r in rows]
        else:         # row t of X_b
            left = [X[b * T + t, c] for c in range(X.shape[1])]
        if self.ty:   # column j of Y_bᵀ: row j of Y_b
            right = [Y[b * T + int(j), c] for c in range(Y.shape[1])]
        else:         # column j of Y_b
            right = [Y[r, j] for r in rows]
        value = self.scale * sp.Add(*(a * c for a, c in zip(left, right)))
        return value + (sp.S.NegativeInfinity if self.causal and int(j) > t else 0)

    def unroll(self, X, Y):
        """The batch form over lists of entries (rows of lists, as the unrolled scalar path holds
        a matrix): blocks of T rows multiplied; masked entries are −∞ (SymPy's), which the
        softmax after them turns into exact zeros."""
        T, out = self.positions, []
        for b in range(len(X) // T):
            Xb, Yb = X[b * T:(b + 1) * T], Y[b * T:(b + 1) * T]
            L = [list(c) for c in zip(*Xb)] if self.tx else Xb
            R = [list(c) for c in zip(*Yb)] if self.ty else Yb
            for t, row in enumerate(L):
                out.append([self.scale * sp.Add(*(a * R[k][j] for k, a in enumerate(row)))
                            + (sp.S.NegativeInfinity if self.causal and j > t else 0)
                            for j in range(len(R[0]))])
        return out

    # printing
    def _parts(self, p, latex=False):
        def seq(e):  # the T × d matrix of a per-position value
            s = p._print(e)
            return r"\left[%s\right]_{1:T}" % s if latex else f"{s}[1:T]"
        T_ = r"^{\top}" if latex else "ᵀ"
        if self.axis == 1:
            X = p._print(self.x) + (T_ if self.tx else "")
            Y = p._print(self.y) + (T_ if self.ty else "")
            return rf"\operatorname{{blocks}}_{{T}}\left({X} {Y}\right)" if latex else \
                f"blocks_T({X} {Y})"
        if not self.tx:  # row t of X op(Y) = op(Y)ᵀ x_t
            body = f"{seq(self.y)}{'' if self.ty else T_} {p._print(self.x)}"
        else:            # row t of Xᵀ op(Y) = op(Y)ᵀ X e_t
            body = f"{seq(self.y)}{'' if self.ty else T_} {seq(self.x)} e_t"
        return body

    def _coef(self, p, body, latex=False):
        if self.scale != 1:
            body = (r"%s \, %s" % (p._print(self.scale), body)) if latex else \
                f"({p._print(self.scale)})·{body}" if "/" in p._print(self.scale) else \
                f"{p._print(self.scale)}·{body}"  # (1/√2)·K q: not 1/(√2·K q)
        if self.causal:
            body += r" + m_{t}" if latex else " + m_t"
        return body

    def _sympystr(self, p):
        return self._coef(p, self._parts(p))

    def _latex(self, p):
        return self._coef(p, self._parts(p, True), True)


class AcrossJacobian(MatrixExpr):
    """A local Jacobian of an attention node with respect to another position's value, for the
    printed chain only (it never reaches a program): ∂s_t/∂k_τ = e_τ q_tᵀ/√d_k, ∂o_t/∂v_τ =
    a_tτ I. ``text`` is how it prints as text; ``latex`` is a template with one %s per entry of
    ``names`` (the nodes' symbols), each printed by the printer at hand, in its notation and
    escaped: the names were once put in the template raw, so a node named \\input{/etc/passwd}
    was read by TeX, and z3 was "z3", not 𝐳^{(3)}. A %s followed by _ or ^ in the template gets
    its script through :func:`~symgrad.core.scripts.attach` (no double subscript)."""

    def __new__(cls, text, latex, rows, cols, names=()):
        return MatrixExpr.__new__(cls, sp.Symbol(text), sp.Symbol(latex), sp.Integer(rows),
                                  sp.Integer(cols), sp.Tuple(*names))

    shape = property(lambda self: (self.args[2], self.args[3]))

    def _entry(self, i, j, **kwargs):
        raise NotImplementedError("a Jacobian across positions is printed, not written out")

    def _sympystr(self, p):
        return self.args[0].name

    def _latex(self, p):
        parts = self.args[1].name.split("%s")
        out = [parts[0]]
        for name, part in zip(self.args[4], parts[1:]):
            m = _SCRIPT.match(part)
            if m:  # %s_{…}: the script joins the name through attach
                out.append(attach(p._print(name), m.group(1), m.group(2)) + part[m.end():])
            else:
                out.append(p._print(name) + part)
        return "".join(out)


_SCRIPT = re.compile(r"([_^])\{([^{}]*)\}")


# -- flatten: from the positions of a sequence to one vector per sequence ------------------------
# The one crossing between the two kinds of rows a sequence network's batch program holds: a
# per-position value has n·T rows (every position of every sequence, as everywhere above), a
# per-example value n/T rows (one per sequence), so torch's flatten(h, 1) of an (n, T, d) tensor
# is the rows of T consecutive positions laid side by side (entry t·d + j of a sequence's vector
# is h_t's entry j), and its VJP lays them back.
class SeqFlatten(MatrixExpr):
    """f = [h_1; …; h_T] (axis 0: one sequence, a column of T·d; printed vec(h[1:T]ᵀ), the rows
    of the T × d matrix stacked), or the batch (axis 1: x has n·T rows of d, the result n/T rows
    of T·d, row b the T rows of sequence b side by side)."""

    def __new__(cls, x, T, axis: int = 0):
        return MatrixExpr.__new__(cls, sp.sympify(x, strict=True), sp.Integer(T),
                                  sp.Integer(axis))

    x = property(lambda self: self.args[0])
    positions = property(lambda self: int(self.args[1]))  # T (not .T: the transpose)
    axis = property(lambda self: int(self.args[2]))

    @property
    def shape(self):
        x, T = self.x, self.positions
        if self.axis == 0:
            return (T * x.shape[0], 1)
        return (sp.sympify(x.shape[0], strict=True) / T, T * x.shape[1])  # (an int when explicit)

    def batched(self, go, n):
        return SeqFlatten(go(self.x), self.positions, 1)

    def _entry(self, i, j, **kwargs):
        if self.axis == 0:
            raise NotImplementedError("a flatten of one sequence reads every position: write it "
                                      "out in the batch form (axis 1)")
        t, c = divmod(int(j), self.x.shape[1])
        return self.x[int(i) * self.positions + t, c]

    def _sympystr(self, p):
        if self.axis == 1:
            return f"flatten_T({p._print(self.x)})"
        return f"vec({p._print(self.x)}[1:T]ᵀ)"

    def _latex(self, p):
        if self.axis == 1:
            return r"\operatorname{flatten}_{T}\left(%s\right)" % p._print(self.x)
        return r"\operatorname{vec}\left(\left[%s\right]_{1:T}^{\top}\right)" % p._print(self.x)


class SeqUnflatten(MatrixExpr):
    """flatten's VJP: g of a sequence's flattened vector laid back at the positions, mat(g) the
    T × d matrix of its rows. Axis 0: row t of mat(g) (d × 1, g at position t); axis 1: the batch,
    g's n/T rows of T·d as n·T rows of d (``d`` the per-position size)."""

    def __new__(cls, g, T, d, axis: int = 0):
        return MatrixExpr.__new__(cls, sp.sympify(g, strict=True), sp.Integer(T), sp.Integer(d),
                                  sp.Integer(axis))

    grad = property(lambda self: self.args[0])
    positions = property(lambda self: int(self.args[1]))
    d = property(lambda self: int(self.args[2]))
    axis = property(lambda self: int(self.args[3]))

    @property
    def shape(self):
        return (self.d, 1) if self.axis == 0 else (self.grad.shape[0] * self.positions, self.d)

    def batched(self, go, n):
        return SeqUnflatten(go(self.grad), self.positions, self.d, 1)

    def _entry(self, i, j, **kwargs):
        if self.axis == 0:
            raise NotImplementedError("flatten's gradient at one position: write it out in the "
                                      "batch form (axis 1)")
        b, t = divmod(int(i), self.positions)
        return self.grad[b, t * self.d + int(j)]

    def _sympystr(self, p):
        if self.axis == 1:
            return f"unflatten_T({p._print(self.grad)})"
        return f"mat({p._print(self.grad)})ᵀ e_t"

    def _latex(self, p):
        if self.axis == 1:
            return r"\operatorname{unflatten}_{T}\left(%s\right)" % p._print(self.grad)
        return r"\operatorname{mat}\left(%s\right)^{\top} e_{t}" % p._print(self.grad)


__all__ = ["SeqProduct", "AcrossJacobian", "SeqFlatten", "SeqUnflatten"]
