"""Matrix-expression nodes SymPy lacks, and the per-example → batch transformation.

Where it sits: core. The network engine writes forward values and gradients as SymPy matrix
expressions (``MatMul``, ``MatAdd``, ``Transpose``, ``HadamardProduct``, ``OneMatrix``) plus the nodes
here; the printers and the compiler read them. Every node defines ``_entry``, so ``as_explicit()``
expands any expression entry by entry (how the engine's results are checked against ``sympy.diff``).

Per example, vectors are columns (the notes' convention: z = W x + b, ∇W = g hᵀ). A batch stacks
examples as rows (X is n×d, as numpy and torch hold data): :func:`batch` maps one to the other.
"""
from __future__ import annotations

import re

import sympy as sp
from sympy.core.symbol import Str
from sympy.printing.precedence import PRECEDENCE
from sympy.matrices.expressions import MatrixExpr

N = sp.Symbol("n", integer=True, positive=True)  # the batch size: rows of every batch value


class Cotangent(sp.MatrixSymbol):
    """g of a node, ∂ℓ/∂(its value): printed as its name (g_z1) but never equal to a node's own
    symbol, so a user's node named "g_z1" cannot be mistaken for the g of z1 (a MatrixSymbol is
    equal to any other of the same name and shape; a subclass is not)."""


class Target(sp.MatrixSymbol):
    """The target y of one example: distinct from any node a user names "y"."""


class Symmetric(sp.MatrixSymbol):
    """A matrix declared symmetric (the matrix language's ``symmetric=``): its own transpose, so
    Sᵀ never appears in an expression or a result."""

    def _eval_transpose(self):
        return self


class Scalar(sp.Expr):
    """A 1×1 matrix expression used as a scalar: xᵀy, xᵀAx, sum(X), logsumexp(z). The matrix
    language treats them as scalars (they scale and broadcast), which SymPy refuses for a 1×1
    ``MatMul`` ("Mix of Matrix and Scalar symbols"); printed as the product it wraps."""

    is_commutative = True

    def __new__(cls, m):
        if m.shape != (1, 1):
            raise ValueError(f"Scalar wraps a 1×1 matrix expression, got shape {m.shape}")
        return sp.Expr.__new__(cls, m)

    matrix = property(lambda self: self.args[0])

    @property
    def precedence(self):
        """The product's or sum's (SymPy's printers read it): (xᵀx)^(3/2), not xᵀ*x**(3/2)."""
        m = self.args[0]
        return PRECEDENCE["Add"] if isinstance(m, sp.MatAdd) else \
            PRECEDENCE["Mul"] if isinstance(m, sp.MatMul) else PRECEDENCE["Atom"]

    def _eval_is_extended_real(self):
        return True

    def _eval_transpose(self):
        return self

    def _sympystr(self, p):
        return p._print(self.args[0])

    def _latex(self, p):
        return p._print(self.args[0])


class Elementwise(MatrixExpr):
    """``lam`` applied entry by entry to equally shaped matrices: relu(z), σ'(z), ŷ − y …

    ``label`` names the function for display (``relu``, ``σ'``); ``shown`` is how many leading
    arguments are displayed (σ'(z) hides its second argument h = σ(z), which it reuses).
    """

    def __new__(cls, lam: sp.Lambda, *args, label: str = "", latex: str = "", shown: int = 0):
        if args and isinstance(args[0], Str):  # rebuilt by SymPy from its own args
            return MatrixExpr.__new__(cls, lam, *args)
        label = label or str(lam.expr.func)
        meta = (Str(label), Str(latex or label), sp.Integer(shown or len(args)))
        return MatrixExpr.__new__(cls, lam, *meta, *(sp.sympify(a, strict=True) for a in args))

    lam = property(lambda self: self.args[0])
    label = property(lambda self: self.args[1].name)
    _label = label
    _latex_name = property(lambda self: self.args[2].name)
    _shown = property(lambda self: int(self.args[3]))
    operands = property(lambda self: self.args[4:])
    shape = property(lambda self: self.args[4].shape)

    def _entry(self, i, j, **kwargs):
        return self.lam(*(a[i, j] for a in self.operands))

    def _eval_transpose(self):
        return Elementwise(self.lam, *(a.T for a in self.operands), label=self._label,
                           latex=self._latex_name, shown=self._shown)

    def _sympystr(self, p):
        if not re.fullmatch(r"[\w']+", self._label):  # a formula over the entries: [−y/ŷ]ᵀ
            return f"[{self._label}]" + ("ᵀ" if isinstance(self.operands[0], sp.Transpose) else "")
        return f"{self._label}({', '.join(p._print(a) for a in self.operands[:self._shown])})"

    def _latex(self, p):
        inner = ", ".join(p._print(a) for a in self.operands[:self._shown])
        return r"%s\left(%s\right)" % (self._latex_name, inner)


class Softmax(MatrixExpr):
    """softmax over a column (axis 0: one example) or over each row (axis 1: a batch)."""

    def __new__(cls, z, axis: int = 0):
        return MatrixExpr.__new__(cls, sp.sympify(z, strict=True), sp.Integer(axis))

    shape = property(lambda self: self.args[0].shape)

    def _entry(self, i, j, **kwargs):
        z, axis = self.args
        if axis == 0:
            return sp.exp(z[i, j]) / sp.Add(*(sp.exp(z[k, j]) for k in range(z.shape[0])))
        return sp.exp(z[i, j]) / sp.Add(*(sp.exp(z[i, k]) for k in range(z.shape[1])))

    def _sympystr(self, p):
        return f"softmax({p._print(self.args[0])})"

    def _latex(self, p):
        return r"\operatorname{softmax}\left(%s\right)" % p._print(self.args[0])


class SoftmaxVJP(MatrixExpr):
    """(diag(ŷ) − ŷŷᵀ) g = ŷ ⊙ (g − (ŷᵀg) 1): the softmax Jacobian applied to g, never formed."""

    def __new__(cls, yhat, g, axis: int = 0):
        return MatrixExpr.__new__(cls, sp.sympify(yhat, strict=True), sp.sympify(g, strict=True),
                                  sp.Integer(axis))

    shape = property(lambda self: self.args[0].shape)

    def _entry(self, i, j, **kwargs):
        y, g, axis = self.args
        if axis == 0:
            dot = sp.Add(*(y[k, j] * g[k, j] for k in range(y.shape[0])))
        else:
            dot = sp.Add(*(y[i, k] * g[i, k] for k in range(y.shape[1])))
        return y[i, j] * (g[i, j] - dot)

    def _sympystr(self, p):
        y, g = (p._print(a) for a in self.args[:2])
        if self.args[2] == 1:  # row by row: S ⊙ (G − ((S ⊙ G) 𝟏) 𝟏ᵀ)
            return f"({y} ⊙ ({g} - ({y} ⊙ {g})*1*1ᵀ))"  # bracketed: it prints inside products
        return f"(diag({y}) - {y}*{y}.T)*{g}"

    def _latex(self, p):
        y, g = (p._print(a) for a in self.args[:2])
        if self.args[2] == 1:
            return (r"\left(%s \odot \left(%s - \left(%s \odot %s\right) \mathbf{1} "
                    r"\mathbf{1}^{\top}\right)\right)" % (y, g, y, g))
        yt = p._print(sp.Transpose(self.args[0]))  # a^{(8)} then ^{\top}: a double superscript
        return r"\left(\operatorname{diag}(%s) - %s %s\right) %s" % (y, y, yt, g)


class LogSumExp(MatrixExpr):
    """log Σ_k exp(z_k), per example: a 1×1 for a column, an n×1 column for a batch's rows."""

    def __new__(cls, z, axis: int = 0):
        return MatrixExpr.__new__(cls, sp.sympify(z, strict=True), sp.Integer(axis))

    @property
    def shape(self):
        z, axis = self.args
        return (1, 1) if axis == 0 else (z.shape[0], 1)

    def _entry(self, i, j, **kwargs):
        z, axis = self.args
        if axis == 0:
            return sp.log(sp.Add(*(sp.exp(z[k, 0]) for k in range(z.shape[0]))))
        return sp.log(sp.Add(*(sp.exp(z[i, k]) for k in range(z.shape[1]))))

    def _sympystr(self, p):
        return f"logsumexp({p._print(self.args[0])})"

    def _latex(self, p):
        return r"\log \sum \exp\left(%s\right)" % p._print(self.args[0])


class _OnVecOf(MatrixExpr):
    """An r·c × r·c matrix acting on vec[·] of r×c matrices, built from one r×c matrix S."""

    def __new__(cls, S):
        return MatrixExpr.__new__(cls, sp.sympify(S, strict=True))

    @property
    def shape(self):
        r, c = self.args[0].shape
        return (r * c, r * c)


class SoftmaxJacobian(_OnVecOf):
    """The Jacobian of the row-by-row softmax S = softmax(Z) (n×k), vec row by row: the
    block-diagonal matrix of the rows' Jacobians, blkdiag_i(diag(sᵢ) − sᵢsᵢᵀ), n·k × n·k. The
    Hessian of softmax regression is (X ⊗ I)ᵀ this (X ⊗ I), the k-class form of
    Xᵀ diag(σ ⊙ (1 − σ)) X; it is applied block by block, never formed."""

    def _entry(self, i, j, **kwargs):
        S = self.args[0]
        k = int(S.shape[1])
        (a, p), (b, q) = divmod(int(i), k), divmod(int(j), k)
        if a != b:
            return sp.Integer(0)
        return S[a, p] * ((1 if p == q else 0) - S[a, q])

    def _sympystr(self, p):
        return f"blkdiag_i(diag(s_i) - s_i*s_iᵀ | S = {p._print(self.args[0])})"

    def _latex(self, p):
        return (r"\operatorname{blkdiag}_i\left(\operatorname{diag}(\mathbf{s}_i) - \mathbf{s}_i "
                r"\mathbf{s}_i^{\top}\right)_{\mathbf{S} = %s}" % p._print(self.args[0]))


class Commutation(MatrixExpr):
    """The commutation matrix K of an r×c matrix: K vec[A] = vec[Aᵀ], vec row by row as in the
    notes; rc × rc. What vec[dXᵀ] needs in a Hessian by a matrix (log det X: −(X⁻ᵀ ⊗ X⁻¹) K)."""

    def __new__(cls, r, c):
        return MatrixExpr.__new__(cls, sp.sympify(r, strict=True), sp.sympify(c, strict=True))

    @property
    def shape(self):
        r, c = self.args
        return (r * c, r * c)

    def _entry(self, i, j, **kwargs):
        r, c = self.args
        a, b = divmod(int(j), int(c))  # column j is entry (a, b) of A; row b·r + a is that of Aᵀ
        return sp.Integer(1) if i == b * r + a else sp.Integer(0)

    def _sympystr(self, p):
        return f"K({p._print(self.args[0])}, {p._print(self.args[1])})"

    def _latex(self, p):
        return r"\mathbf{K}_{%s,%s}" % (p._print(self.args[0]), p._print(self.args[1]))


class DiagVec(_OnVecOf):
    """diag(vec[S]) for a matrix S: vec[S ⊙ dX] = diag(vec[S]) vec[dX], vec row by row."""

    def _entry(self, i, j, **kwargs):
        S = self.args[0]
        a, b = divmod(int(i), int(S.shape[1]))
        return S[a, b] if i == j else sp.Integer(0)

    def _sympystr(self, p):
        return f"diag(vec({p._print(self.args[0])}))"

    def _latex(self, p):
        return r"\operatorname{diag}(\operatorname{vec}[%s])" % p._print(self.args[0])


def _moments(vals, eps):
    """(mean, 1/√(var + ε)) of a list of entries: layer norm's statistics (the biased variance,
    as torch.nn.LayerNorm)."""
    d = len(vals)
    mu = sp.Add(*vals) / d
    return mu, 1 / sp.sqrt(sp.Add(*[(v - mu) ** 2 for v in vals]) / d + eps)


class Normalize(MatrixExpr):
    """x̂ = (z − mean z)/√(var z + ε) over a column (axis 0: one example) or over each row (axis 1:
    a batch): layer norm before its gain and shift."""

    def __new__(cls, z, eps, axis: int = 0):
        return MatrixExpr.__new__(cls, sp.sympify(z, strict=True), sp.sympify(eps, strict=True),
                                  sp.Integer(axis))

    shape = property(lambda self: self.args[0].shape)

    def _entry(self, i, j, **kwargs):
        z, eps, axis = self.args
        vals = ([z[k, j] for k in range(z.shape[0])] if axis == 0
                else [z[i, k] for k in range(z.shape[1])])
        mu, inv = _moments(vals, eps)
        return (z[i, j] - mu) * inv

    def _sympystr(self, p):
        return f"normalize({p._print(self.args[0])})"

    def _latex(self, p):
        return r"\operatorname{normalize}\left(%s\right)" % p._print(self.args[0])


# layer norm's standard deviation √(var h + ε) as LaTeX writes it; a handout defines it where
# normalize is first used (symgrad.handouts.glossary)
STD_TEX = r"\operatorname{std}"


class Std(sp.Function):
    """std(h) = √(var h + ε), the standard deviation a layer norm divides by (its ε within), as a
    scalar of the derivation's node h. Written std, never σ: σ is the sigmoid in these notes (an
    instructor's trial read (…)/σ(s₁₈) as the sigmoid of a residual sum). A name only: nothing
    evaluates it (the kernels compute the moments themselves)."""

    nargs = 1
    is_positive = True
    is_real = True

    def _sympystr(self, p):
        return f"std({p._print(self.args[0])})"

    def _latex(self, p, exp=None):
        tex = r"%s(%s)" % (STD_TEX, p._print(self.args[0]))
        return tex if exp is None else r"%s^{%s}" % (tex, exp)


def normalize_jacobian_terms(xh, d: int) -> tuple:
    """(I, −𝟏𝟏ᵀ/d, −x̂x̂ᵀ/d), the terms of layer norm's Jacobian (I − 𝟏𝟏ᵀ/d − x̂x̂ᵀ/d)/std(h), each
    built as it stands (arithmetic folds −(𝟏𝟏ᵀ/d) into one 𝟏/d): the chain's Jacobian and the
    VJP's printed form are the same terms, so the two read alike."""
    ones = sp.OneMatrix(d, 1)
    return (sp.Identity(d), sp.MatMul(sp.Rational(-1, d), ones, sp.Transpose(ones)),
            sp.MatMul(sp.Rational(-1, d), xh, sp.Transpose(xh)))


class NormalizeVJP(MatrixExpr):
    """(g − mean g − x̂ mean(x̂ ⊙ g))/std(h): layer norm's Jacobian (I − 𝟏𝟏ᵀ/d − x̂x̂ᵀ/d)/std(h)
    applied to g, never formed (it is symmetric, so this is also gᵀ times it)."""

    def __new__(cls, xhat, z, g, eps, axis: int = 0):
        return MatrixExpr.__new__(cls, *(sp.sympify(a, strict=True) for a in (xhat, z, g, eps)),
                                  sp.Integer(axis))

    shape = property(lambda self: self.args[0].shape)

    def _entry(self, i, j, **kwargs):
        xh, z, g, eps, axis = self.args
        if axis == 0:
            idx = [(k, j) for k in range(z.shape[0])]
        else:
            idx = [(i, k) for k in range(z.shape[1])]
        _, inv = _moments([z[a, b] for a, b in idx], eps)
        d = len(idx)
        mean_g = sp.Add(*[g[a, b] for a, b in idx]) / d
        mean_xg = sp.Add(*[xh[a, b] * g[a, b] for a, b in idx]) / d
        return inv * (g[i, j] - mean_g - xh[i, j] * mean_xg)

    def shown(self):
        """The notes' form, (I − 𝟏𝟏ᵀ/d − x̂x̂ᵀ/d) g/std(h), as an expression the printers write
        (one example's column, axis 0; d the number of features), None for the batch's rows."""
        xh, z, g, _, axis = self.args
        if axis != 0:
            return None
        I, ones, outer = normalize_jacobian_terms(xh, xh.shape[0])
        return sp.MatMul(1 / Std(z), sp.MatAdd(I, ones, outer), g)

    def _sympystr(self, p):  # JSON's string (the text printer writes shown()); std as in Std
        xh, z, g = (p._print(a) for a in self.args[:3])
        return f"(I - 1*1.T/d - {xh}*{xh}.T/d)*{g}/std({z})"

    def _latex(self, p):
        e = self.shown()
        if e is not None:
            return p._print(e)
        xh, z, g = (p._print(a) for a in self.args[:3])
        xt = p._print(sp.Transpose(self.args[0]))  # x̂ᵀ as the printer writes a transpose
        return (r"\frac{1}{%s(%s)}\left(I - \frac{\mathbf{1}\mathbf{1}^{\top}}{d} - "
                r"\frac{%s %s}{d}\right) %s" % (STD_TEX, z, xh, xt, g))


class SumAll(MatrixExpr):
    """The sum of all entries, as a 1×1 matrix: Σ_i Σ_k e_ik."""

    def __new__(cls, e):
        return MatrixExpr.__new__(cls, sp.sympify(e, strict=True))

    shape = property(lambda self: (1, 1))

    def _entry(self, i, j, **kwargs):
        e = self.args[0]
        return sp.Add(*(e[a, b] for a in range(e.shape[0]) for b in range(e.shape[1])))

    def _sympystr(self, p):
        return f"sum({p._print(self.args[0])})"

    def _latex(self, p):
        return r"\sum %s" % p._print(self.args[0])


# -- embedding: a row lookup and its scatter-add (torch.nn.Embedding) ----------------------------
# The notes write an embedding as a product with a one-hot vector, e = Eᵀ onehot(tok), and its
# gradient as the outer product onehot(tok) gᵀ: that is how these nodes print, never how they are
# computed (a kernel reads row tok of E, and adds each g into the row of its token).
def _token(t):
    """The token of one example (a 1×1 value) as a scalar."""
    return t[0, 0]


class OneHot(MatrixExpr):
    """onehot(tok), a V × 1 column with a 1 at row tok (0-based): for display and Jacobians only."""

    def __new__(cls, tok, V):
        return MatrixExpr.__new__(cls, sp.sympify(tok, strict=True), sp.Integer(V))

    shape = property(lambda self: (self.args[1], 1))

    def _entry(self, i, j, **kwargs):
        return sp.KroneckerDelta(_token(self.args[0]), i)

    def _sympystr(self, p):
        return f"onehot({p._print(self.args[0])})"

    def _latex(self, p):
        return r"\operatorname{onehot}\left(%s\right)" % p._print(self.args[0])


class Gather(MatrixExpr):
    """Row tok of E: for one example (axis 0) the column Eᵀ onehot(tok), d × 1; over a batch
    (axis 1, tokens an n × 1 column) the n × d rows E[tok_i], written onehot(tok) E."""

    def __new__(cls, E, tok, axis: int = 0):
        return MatrixExpr.__new__(cls, sp.sympify(E, strict=True), sp.sympify(tok, strict=True),
                                  sp.Integer(axis))

    @property
    def shape(self):
        E, tok, axis = self.args
        return (E.shape[1], 1) if axis == 0 else (tok.shape[0], E.shape[1])

    def _entry(self, i, j, **kwargs):
        E, tok, axis = self.args
        t, k = (tok[0, 0], i) if axis == 0 else (tok[i, 0], j)
        return sp.Add(*(sp.KroneckerDelta(t, v) * E[v, k] for v in range(E.shape[0])))

    def _sympystr(self, p):
        E, tok, axis = (p._print(a) for a in self.args)
        return f"{E}ᵀ onehot({tok})" if self.args[2] == 0 else f"onehot({tok}) {E}"

    def _latex(self, p):
        E, tok = self.args[:2]
        oh = r"\operatorname{onehot}\left(%s\right)" % p._print(tok)
        # Eᵀ through the printer's own transpose: E^{(1)} with ^{\top} after it is a double
        # superscript, which pdflatex refused in every handout of an embedding
        return f"{p._print(sp.Transpose(E))} {oh}" if self.args[2] == 0 else f"{oh} {p._print(E)}"


class ScatterAdd(MatrixExpr):
    """∇E of an embedding: for one example (axis 0) the V × d outer product onehot(tok) gᵀ, g in
    row tok and zeros elsewhere; over a batch (axis 1) onehot(tok)ᵀ G, each row of G added into
    the row of its token (an index-add: the one-hot matrix is never formed)."""

    def __new__(cls, g, tok, V, axis: int = 0):
        return MatrixExpr.__new__(cls, sp.sympify(g, strict=True), sp.sympify(tok, strict=True),
                                  sp.Integer(V), sp.Integer(axis))

    @property
    def shape(self):
        g, _, V, axis = self.args
        return (V, g.shape[0]) if axis == 0 else (V, g.shape[1])

    def _entry(self, i, j, **kwargs):
        g, tok, _, axis = self.args
        if axis == 0:
            return sp.KroneckerDelta(tok[0, 0], i) * g[j, 0]
        return sp.Add(*(sp.KroneckerDelta(tok[r, 0], i) * g[r, j] for r in range(g.shape[0])))

    def _sympystr(self, p):
        g, tok = (p._print(a) for a in self.args[:2])
        return f"onehot({tok}) {g}ᵀ" if self.args[3] == 0 else f"onehot({tok})ᵀ {g}"

    def _latex(self, p):
        g, tok = self.args[:2]
        oh = r"\operatorname{onehot}\left(%s\right)" % p._print(tok)
        return f"{oh} {p._print(sp.Transpose(g))}" if self.args[3] == 0 else \
            f"{oh}^{{\\top}} {p._print(g)}"


_CHECKED = (sp.MatMul, sp.MatAdd, sp.HadamardProduct)


def substitute(expr, mapping: dict, memo: dict | None = None):
    """``expr.xreplace(mapping)`` for a program's expressions, whose shapes the program has
    already checked. SymPy's MatMul, MatAdd and HadamardProduct re-validate their arguments' shapes
    on every rebuild, and a shape is recomputed down the whole expression each time: the
    gradients of a 200-layer net (each g substituted into the next) took 22 s of 23 in shape
    calls. These three are rebuilt as they are (their constructors do nothing else without
    evaluate=True), every other node by its own constructor; shared subtrees once (across calls
    too when they pass one ``memo`` dict, which then must go with the same mapping)."""
    done = memo if memo is not None else {}
    done.update(mapping)
    stack = [sp.sympify(expr, strict=True)]
    while stack:  # post-order without recursion: a 200-layer gradient is ~800 nodes deep
        e = stack[-1]
        if e in done:
            stack.pop()
            continue
        todo = [a for a in e.args if a not in done]
        if todo:
            stack.extend(todo)
            continue
        stack.pop()
        args = [done[a] for a in e.args]
        if all(x is y for x, y in zip(args, e.args)):
            done[e] = e
        else:
            new = sp.Basic.__new__(type(e), *args) if type(e) in _CHECKED else e.func(*args)
            hash(new)  # now, its args' hashes known: hashed first at the root it recursed the
            done[e] = new  # whole depth (a 250-layer gradient passed the recursion limit)
    return done[sp.sympify(expr, strict=True)]


def lam(f, arity: int = 1) -> sp.Lambda:
    """A Lambda of fresh dummies from a Python function of SymPy scalars."""
    ds = sp.symbols(f"_e0:{arity}", cls=sp.Dummy, real=True)
    return sp.Lambda(ds, f(*ds))


def hadamard(*ms):
    return sp.HadamardProduct(*ms) if len(ms) > 1 else ms[0]


# -- per example → batch --------------------------------------------------------------------------
def batch(expr, rows: dict, n):
    """Stack the per-example column expression ``expr`` into the batch, one example per row.

    ``rows`` maps each per-example vector symbol (x, z1, h1, ŷ, y, g…) to its batch matrix (n×d).
    Parameters (any other MatrixSymbol) are shared by all examples: W v becomes V Wᵀ, a bias b
    becomes the broadcast 1 bᵀ. Outer products g hᵀ (a parameter gradient) sum over the examples:
    Gᵀ H. A bias gradient g sums to Gᵀ 1.
    """
    def per_example(e) -> bool:
        return any(s in rows for s in e.atoms(sp.MatrixSymbol))

    def scaled(c, m):
        return m if c == 1 else c * m

    def go(e):
        if isinstance(e, sp.MatrixSymbol):
            if e in rows:
                return rows[e]
            if e.shape[1] == 1:
                return sp.OneMatrix(n, 1) * e.T  # a bias, broadcast over the batch
            raise ValueError(f"cannot batch the parameter matrix {e} on its own")
        if isinstance(e, sp.MatAdd):
            return sp.MatAdd(*map(go, e.args))
        if isinstance(e, sp.MatMul):
            coeff, mats = e.as_coeff_matrices()
            if len(mats) == 1:
                return scaled(coeff, go(mats[0]))
            head, last = mats[:-1], mats[-1]
            if isinstance(last, sp.Transpose) and per_example(last.arg):  # g hᵀ: sum over examples
                return scaled(coeff, sp.MatMul(go(sp.MatMul(*head)).T, go(last.arg)))
            if per_example(last) and not any(per_example(m) for m in head):
                At = head[0].T if len(head) == 1 else sp.MatMul(*head).T  # (a MatMul of one: A)
                return scaled(coeff, sp.MatMul(go(last), At))  # (A v)ᵀ = vᵀ Aᵀ
            raise ValueError(f"cannot batch the product {e}")
        if isinstance(e, sp.HadamardProduct):
            return sp.HadamardProduct(*map(go, e.args))
        if isinstance(e, sp.HadamardPower):
            return sp.HadamardPower(go(e.args[0]), e.args[1])
        if isinstance(e, Elementwise):
            return Elementwise(e.lam, *map(go, e.operands), label=e._label, latex=e._latex_name,
                               shown=e._shown)
        if isinstance(e, Softmax):
            return Softmax(go(e.args[0]), 1)
        if isinstance(e, SoftmaxVJP):
            return SoftmaxVJP(go(e.args[0]), go(e.args[1]), 1)
        if isinstance(e, LogSumExp):
            return LogSumExp(go(e.args[0]), 1)
        if isinstance(e, SumAll):
            return SumAll(go(e.args[0]))
        if isinstance(e, Normalize):
            return Normalize(go(e.args[0]), e.args[1], 1)
        if isinstance(e, NormalizeVJP):
            return NormalizeVJP(go(e.args[0]), go(e.args[1]), go(e.args[2]), e.args[3], 1)
        if isinstance(e, Gather):  # E is a parameter, the tokens a batch column
            return Gather(e.args[0], go(e.args[1]), 1)
        if isinstance(e, ScatterAdd):  # onehot(tok) gᵀ summed over the rows: onehot(Tok)ᵀ G
            return ScatterAdd(go(e.args[0]), go(e.args[1]), e.args[2], 1)
        if isinstance(e, sp.BlockMatrix) and e.blocks.shape[1] == 1:  # [a; b] → [A, B]
            return sp.BlockMatrix([[go(b) for b in e.blocks]])
        if isinstance(e, sp.MatrixSlice) and per_example(e.parent) and e.colslice == (0, 1, 1):
            (r0, r1, step) = e.rowslice  # entries r0…r1 of each example: those columns
            return sp.MatrixSlice(go(e.parent), (0, n, 1), (r0, r1, step))
        if hasattr(e, "batched"):  # a node that knows its own batch form (core.sequence)
            return e.batched(go, n)
        raise ValueError(f"cannot batch {type(e).__name__}: {e}")

    return go(expr)


def bias_gradient(g, rows: dict, n):
    """Σ_i g_i over the batch: Gᵀ 1."""
    return sp.MatMul(batch(g, rows, n).T, sp.OneMatrix(n, 1))


# -- entry by entry -------------------------------------------------------------------------------
def to_explicit(e) -> sp.ImmutableMatrix:
    """``e`` as an explicit matrix, when every MatrixSymbol in it has been replaced by one.

    Products are multiplied entry by entry here: SymPy's own route (``as_explicit`` of a MatMul
    builds a Sum per entry, or converts to a polynomial domain) took seconds on a 2×2 product of
    entries with square roots. The nodes of this module expand through their ``_entry``.
    """
    if isinstance(e, sp.MatrixBase):
        return sp.ImmutableMatrix(e)
    if isinstance(e, sp.MatMul):
        coeff, mats = e.as_coeff_matrices()
        out = to_explicit(mats[0])
        for m in mats[1:]:
            out = _times(out, to_explicit(m))
        return out if coeff == 1 else out.applyfunc(lambda v: coeff * v)
    if isinstance(e, sp.MatAdd):
        terms = [to_explicit(a) if isinstance(a, MatrixExpr) else a for a in e.args]
        return sp.ImmutableMatrix(*terms[0].shape, lambda i, j: sp.Add(*(t[i, j] for t in terms)))
    if isinstance(e, sp.Transpose):
        return to_explicit(e.arg).T
    if isinstance(e, (sp.OneMatrix, sp.ZeroMatrix, sp.Identity)):
        return sp.ImmutableMatrix(e.as_explicit())
    args = [to_explicit(a) if isinstance(a, MatrixExpr) else a for a in e.args]
    return sp.ImmutableMatrix(e.func(*args).as_explicit())


def _times(A, B):
    return sp.ImmutableMatrix(A.rows, B.cols, lambda i, j: sp.Add(*(A[i, k] * B[k, j]
                                                                    for k in range(A.cols))))





# -- display nodes: how a result is written, each equal to the form it replaces (mcalc.display) ---
class Norm2(sp.Expr):
    """‖v‖₂ of a vector (‖X‖_F of a matrix): √(vᵀv), √tr(XᵀX) as a textbook writes them."""

    is_commutative = True

    def __new__(cls, m):
        return sp.Expr.__new__(cls, m)

    arg = property(lambda self: self.args[0])

    def _eval_is_extended_real(self):
        return True

    def _eval_is_extended_nonnegative(self):
        return True

    def _eval_transpose(self):
        return self

    def _eval_derivative(self, s):  # of the written-out form (never with a matrix symbol inside)
        return self.expanded().diff(s)

    def expanded(self):
        """√(vᵀv) or √tr(XᵀX), the form it stands for."""
        m = self.arg
        inner = Scalar(sp.MatMul(m.T, m)) if m.shape[1] == 1 else sp.Trace(sp.MatMul(m.T, m))
        return sp.sqrt(inner)

    def _sub(self):
        return "2" if self.arg.shape[1] == 1 else "F"

    def _sympystr(self, p):
        return f"‖{p._print(self.arg)}‖{'₂' if self._sub() == '2' else '_F'}"

    def _latex(self, p):
        return r"\left\| %s \right\|_{%s}" % (p._print(self.arg), self._sub())

    def _sympify_matrix_str(self, p):
        return f"Norm2({p._print(self.arg)})"


class Over(MatrixExpr):
    """M / s, a matrix over a scalar, written as such (x/‖x‖₂ rather than 1/‖x‖₂ x)."""

    def __new__(cls, m, s):
        return MatrixExpr.__new__(cls, m, sp.sympify(s, strict=True))

    shape = property(lambda self: self.args[0].shape)

    def _entry(self, i, j, **kwargs):
        return self.args[0]._entry(i, j, **kwargs) / self.args[1]

    def _eval_transpose(self):
        return Over(self.args[0].T, self.args[1])

    def as_product(self):
        return sp.MatMul(1 / self.args[1], self.args[0]).doit()

    def _sympystr(self, p):
        from sympy.printing.precedence import precedence
        m, s = self.args
        top = p._print(m)
        if precedence(m) < PRECEDENCE["Mul"]:
            top = f"({top})"
        plain = isinstance(s, (sp.Symbol, Norm2)) or s.is_Atom or (
            isinstance(s, sp.Pow) and isinstance(s.base, (sp.Symbol, Norm2)))
        return f"{top}/{p._print(s) if plain else '(' + p._print(s) + ')'}"

    def _latex(self, p):
        return r"\frac{%s}{%s}" % (p._print(self.args[0]), p._print(self.args[1]))

    def _sympify_matrix_str(self, p):
        return f"Over({p._print(self.args[0])}, {p._print(self.args[1])})"


class HadamardPowerShown(sp.HadamardPower):
    """X^∘p, the Hadamard power as the notes write it (SymPy's text is (X)^⊙p)."""

    def _sympystr(self, p):
        base, e = self.args
        b = p._print(base)
        if not isinstance(base, sp.MatrixSymbol):
            b = f"({b})"
        return f"{b}^∘{p._print(e)}"


class MatAddShown(sp.MatAdd):
    """A matrix sum printed with its positive terms first: 𝟏 − σ(z), not −σ(z) + 𝟏."""

    def _sympystr(self, p):
        if hasattr(p, "_join_terms"):  # the text format: positive terms first, with its "−"
            return p._print_MatAdd(self)
        pos, neg = [], []
        for t in self.args:
            c = t.as_coeff_mmul()[0] if isinstance(t, sp.MatMul) else sp.Integer(1)
            (neg if c.is_number and c.is_negative else pos).append(t)
        if not pos:
            return sp.StrPrinter._print_MatAdd(p, self) if hasattr(sp.StrPrinter, "_print_MatAdd") \
                else p._print(sp.MatAdd(*self.args))
        out = " + ".join(p.parenthesize(t, PRECEDENCE["Add"]) for t in pos)
        for t in neg:
            out += " - " + p.parenthesize(sp.MatMul(-1, t).doit(), PRECEDENCE["Add"])
        return out


# read back from JSON strings: sympify(s, locals=symgrad.SYMPIFY_LOCALS)
from symgrad.core.primitives import SYMPIFY_LOCALS as _LOCALS  # noqa: E402
_LOCALS.update(Scalar=Scalar, Symmetric=Symmetric, Softmax=Softmax, LogSumExp=LogSumExp,
               Elementwise=Elementwise, SoftmaxVJP=SoftmaxVJP, SoftmaxJacobian=SoftmaxJacobian,
               Commutation=Commutation, DiagVec=DiagVec, Norm2=Norm2, Over=Over)
