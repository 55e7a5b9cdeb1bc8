"""Matrix calculus: gradients, Jacobians and Hessians of matrix-language expressions, in matrix form.

Where it sits: derive, above :mod:`symgrad.core.mlang` (which parses the text). The derivation is
the differential one a textbook shows (Magnus & Neudecker; the Matrix Cookbook):

1. the differential df, by one rule per node (``DIFFERENTIALS``, keyed by the SymPy class:
   d(AB) = dA B + A dB, d X⁻¹ = −X⁻¹ dX X⁻¹, d det X = det X tr(X⁻¹ dX), d f(X) = f'(X) ⊙ dX …);
2. each term of df written as ⟨G, dX⟩ = tr(Gᵀ dX) by moving everything off dX (the trace trick);
   only linear nodes can hold dX in a differential, so a small second table (``ADJOINTS``) does it;
3. the gradient identified: df = tr(∇fᵀ dX) for every dX. A Jacobian is identified as dF = J dx,
   and a Hessian is the Jacobian of the gradient.

SymPy's own matrix derivatives are not used: in 1.14 ∂ log det X/∂X is 0 (sympy#28618) and
∂/∂A[tr(AᵀA) + tr(BᵀB)] is 0 (sympy#27406). Every result is checked before it is returned
(:func:`verify`): at small sizes, entry by entry against ``sympy.diff`` of the written-out function,
at random points; a disagreement is an error, never an answer.
"""
from __future__ import annotations

import random
import re
from dataclasses import replace

import sympy as sp
from sympy.matrices.expressions import MatrixExpr

from symgrad.core.derivation import Derivation, Grad, Partial, StepKind, Vec, _printing
from symgrad.core.matexpr import (Commutation, DiagVec, Elementwise, HadamardPowerShown,
                                    LogSumExp, MatAddShown, Norm2, Over, Scalar, Softmax,
                                    SoftmaxJacobian, SoftmaxVJP, Symmetric, lam)
from symgrad.core.mlang import ELEMENTWISE, MatrixProblem, entrywise, parse_matrix

__all__ = ["derive_grad", "derive_derivative", "derive_hessian", "verify", "DIFFERENTIALS",
           "ADJOINTS", "ELEMENTWISE_DERIVATIVES", "SIMPLIFICATIONS", "DISPLAY", "display",
           "DiffSymbol", "DiffScalar"]


class DiffSymbol(sp.MatrixSymbol):
    """dX, the differential of a matrix or vector: distinct from any user name ("dX" included)."""

    def _sympystr(self, p):
        return "d" + self.name

    def _latex(self, p):
        return r"\mathrm{d}" + p._print(sp.MatrixSymbol(self.name, *self.shape))


class DiffScalar(sp.Symbol):
    """dt, the differential of a scalar."""

    def __new__(cls, name):
        return sp.Symbol.__new__(cls, name, real=True)

    def _sympystr(self, p):
        return "d" + self.name

    def _latex(self, p):
        return r"\mathrm{d}" + p._print(sp.Symbol(self.name))


class D(sp.Basic):
    """d(expr) for display: the differential of the gradient, d∇f."""

    def __new__(cls, of):
        return sp.Basic.__new__(cls, of)

    def _sympystr(self, p):
        return "d" + p._print(self.args[0])

    def _latex(self, p):
        return r"\mathrm{d}" + p._print(self.args[0])


def _d_of(sym):
    return (DiffSymbol(sym.name, *sym.shape) if isinstance(sym, sp.MatrixSymbol)
            else DiffScalar(sym.name))


# -- elementwise functions: f'(X) in matrix form, one rule per function --------------------------
_ew = entrywise


def _one_minus(M):
    return sp.MatAdd(sp.OneMatrix(*M.shape), -M).doit()


ELEMENTWISE_DERIVATIVES = {
    "exp": lambda X, fX: fX,
    "log": lambda X, fX: sp.HadamardPower(X, -1),
    "sqrt": lambda X, fX: sp.MatMul(sp.Rational(1, 2), sp.HadamardPower(fX, -1)).doit(),
    "abs": lambda X, fX: Elementwise(lam(sp.sign), X, label="sign", latex=r"\operatorname{sign}"),
    "sin": lambda X, fX: _ew("cos", X),
    "cos": lambda X, fX: -_ew("sin", X),
    "tanh": lambda X, fX: _one_minus(sp.HadamardPower(fX, 2)),
    "sigmoid": lambda X, fX: sp.HadamardProduct(fX, _one_minus(fX)),
    "relu": lambda X, fX: _ew_step(X),
    "softplus": lambda X, fX: _ew("sigmoid", X),
}
_missing = set(ELEMENTWISE) - set(ELEMENTWISE_DERIVATIVES)
if _missing:  # a function of the language without its rule fails at import, naming it
    raise ImportError(f"matrix calculus: no derivative rule for {sorted(_missing)}")


def _ew_step(X):
    return _ew("step", X)


# -- 1. differentials -----------------------------------------------------------------------------
class _Diff:
    """The differential of an expression with respect to one variable, memoized, recording the
    rules it used (each rule's text is printed once, as the step's justification)."""

    def __init__(self, var, dvar):
        self.var, self.dvar, self.memo, self.used = var, dvar, {}, []

    def __call__(self, e):
        """d e, or None where e does not depend on the variable."""
        if e in self.memo:
            return self.memo[e]
        if not e.has(self.var):
            out = None
        else:
            rule = _rule_for(e)
            text, fn = rule
            if text and text not in self.used:
                self.used.append(text)
            out = fn(self, e)
        self.memo[e] = out
        return out


DIFFERENTIALS: dict[type, tuple[str, object]] = {}
# each rule's text as LaTeX (text with its math in $…$, bold matrices as the equations set them),
# by the rule's text: what the LaTeX layouts print for the justification, never a guess at it
RULE_LATEX: dict[str, str] = {}


def defdiff(cls, text="", latex=""):
    """Register the differential rule of a node class: ``fn(d, e)`` returns d e (None for 0);
    ``text`` the rule as the justification says it, ``latex`` the same as LaTeX text."""
    def register(fn):
        DIFFERENTIALS[cls] = (text, fn)
        if text and latex:
            RULE_LATEX[text] = latex
        return fn
    return register


def _rule_for(e):
    for cls in type(e).__mro__:
        if cls in DIFFERENTIALS:
            return DIFFERENTIALS[cls]
    if isinstance(e, sp.Function) and len(e.args) == 1:
        return _FUNCTION_RULE
    raise ValueError(f"matrix calculus: no differential rule for {type(e).__name__} ({e})")


def _add(terms):
    terms = [t for t in terms if t is not None]
    if not terms:
        return None
    if isinstance(terms[0], MatrixExpr):
        return sp.MatAdd(*terms).doit() if len(terms) > 1 else terms[0]
    return sp.Add(*terms)


def _mul(*factors):
    """A product of scalars and matrices; None if a factor is None (zero)."""
    if any(f is None for f in factors):
        return None
    if not any(isinstance(f, MatrixExpr) for f in factors):
        return sp.Mul(*factors)
    out = sp.MatMul(*factors).doit()
    return Scalar(out) if isinstance(out, MatrixExpr) and out.shape == (1, 1) and \
        not any(isinstance(f, MatrixExpr) and f.shape == (1, 1) for f in factors) else out


@defdiff(sp.MatrixSymbol)
def _d_symbol(d, e):
    return d.dvar if e == d.var else None


@defdiff(sp.Symbol)
def _d_scalar_symbol(d, e):
    return d.dvar if e == d.var else None


@defdiff(sp.MatAdd, "d(A + B) = dA + dB",
         latex=r"$\mathrm{d}(\mathbf{A} + \mathbf{B}) = \mathrm{d}\mathbf{A} + \mathrm{d}\mathbf{B}$")
def _d_matadd(d, e):
    return _add([d(a) for a in e.args])


@defdiff(sp.Add, "d(a + b) = da + db",
         latex=r"$\mathrm{d}(a + b) = \mathrm{d}a + \mathrm{d}b$")
def _d_add(d, e):
    return _add([d(a) for a in e.args])


def _product_rule(d, factors):
    terms = []
    for i, f in enumerate(factors):
        df = d(f)
        if df is not None:
            terms.append(_mul(*factors[:i], df, *factors[i + 1:]))
    return _add(terms)


@defdiff(sp.MatMul, "d(AB) = dA B + A dB",
         latex=r"$\mathrm{d}(\mathbf{A}\mathbf{B}) = \mathrm{d}\mathbf{A}\,\mathbf{B} + \mathbf{A}\,\mathrm{d}\mathbf{B}$")
def _d_matmul(d, e):
    return _product_rule(d, list(e.args))


@defdiff(sp.Mul, "d(ab) = da b + a db",
         latex=r"$\mathrm{d}(ab) = \mathrm{d}a\,b + a\,\mathrm{d}b$")
def _d_mul(d, e):
    return _product_rule(d, list(e.args))


@defdiff(sp.Transpose, "d(Xᵀ) = (dX)ᵀ",
         latex=r"$\mathrm{d}(\mathbf{X}^{\top}) = (\mathrm{d}\mathbf{X})^{\top}$")
def _d_transpose(d, e):
    de = d(e.arg)
    return None if de is None else de.T


@defdiff(sp.Inverse, "d(X⁻¹) = −X⁻¹ dX X⁻¹",
         latex=r"$\mathrm{d}(\mathbf{X}^{-1}) = -\mathbf{X}^{-1}\,\mathrm{d}\mathbf{X}\,\mathbf{X}^{-1}$")
def _d_inverse(d, e):
    de = d(e.arg)
    return None if de is None else _mul(-1, e, de, e)


@defdiff(sp.MatPow, "d(Uᵏ) = Σ_i Uⁱ dU Uᵏ⁻¹⁻ⁱ",
         latex=r"$\mathrm{d}(\mathbf{U}^{k}) = \sum_{i} \mathbf{U}^{i}\,\mathrm{d}\mathbf{U}\,\mathbf{U}^{k-1-i}$")
def _d_matpow(d, e):
    A, k = e.args
    dA = d(A)
    pw = lambda j: sp.Identity(A.shape[0]) if j == 0 else A if j == 1 else sp.MatPow(A, j)
    return _add([_mul(pw(i), dA, pw(int(k) - 1 - i)) for i in range(int(k))])


@defdiff(sp.HadamardProduct, "d(A ⊙ B) = dA ⊙ B + A ⊙ dB",
         latex=r"$\mathrm{d}(\mathbf{A} \odot \mathbf{B}) = \mathrm{d}\mathbf{A} \odot \mathbf{B} + \mathbf{A} \odot \mathrm{d}\mathbf{B}$")
def _d_hadamard(d, e):
    terms = []
    for i, a in enumerate(e.args):
        da = d(a)
        if da is not None:
            terms.append(sp.HadamardProduct(*e.args[:i], da, *e.args[i + 1:]).doit())
    return _add(terms)


@defdiff(sp.HadamardPower, "d(X^∘p) = p X^∘(p − 1) ⊙ dX, entry by entry",
         latex=r"$\mathrm{d}(\mathbf{X}^{\circ p}) = p\,\mathbf{X}^{\circ (p-1)} \odot \mathrm{d}\mathbf{X}$, entry by entry")
def _d_hadamard_power(d, e):
    X, p = e.args
    dX = d(X)
    inner = X if p == 2 else sp.HadamardPower(X, p - 1)
    return None if dX is None else _mul(p, sp.HadamardProduct(inner, dX).doit())


@defdiff(Elementwise, "d f(X) = f′(X) ⊙ dX, entry by entry",
         latex=r"$\mathrm{d}f(\mathbf{X}) = f'(\mathbf{X}) \odot \mathrm{d}\mathbf{X}$, entry by entry")
def _d_elementwise(d, e):
    (X,) = e.operands
    dX = d(X)
    return None if dX is None else sp.HadamardProduct(
        ELEMENTWISE_DERIVATIVES[e.label](X, e), dX).doit()


@defdiff(Softmax, "d softmax(z) = (diag(s) − s sᵀ) dz = s ⊙ dz − s (sᵀ dz), each row of a "
                  "matrix alike",
         latex=r"$\mathrm{d}\operatorname{softmax}(\mathbf{z}) = (\operatorname{diag}(\mathbf{s}) - "
               r"\mathbf{s}\mathbf{s}^{\top})\,\mathrm{d}\mathbf{z} = \mathbf{s} \odot \mathrm{d}\mathbf{z} - "
               r"\mathbf{s}\,(\mathbf{s}^{\top}\mathrm{d}\mathbf{z})$, each row of a matrix alike")
def _d_softmax(d, e):
    dz = d(e.args[0])
    if dz is None:
        return None
    if e.args[1] == 1:  # row by row: one typed node, so that the Hessian sees the blocks
        return SoftmaxVJP(e, dz, 1)
    return _add([sp.HadamardProduct(e, dz).doit(), _mul(-1, e, Scalar(sp.MatMul(e.T, dz)))])


@defdiff(SoftmaxVJP, "d[S ⊙ (G − ((S ⊙ G) 𝟏) 𝟏ᵀ)] by the product rule, entry by entry",
         latex=r"$\mathrm{d}[\mathbf{S} \odot (\mathbf{G} - ((\mathbf{S} \odot \mathbf{G})\,\mathbf{1})\,"
               r"\mathbf{1}^{\top})]$ by the product rule, entry by entry")
def _d_softmax_vjp(d, e):
    S, G, axis = e.args
    if axis != 1:
        return d(_add([sp.HadamardProduct(S, G).doit(), _mul(-1, S, Scalar(sp.MatMul(S.T, G)))]))
    k = S.shape[1]
    ones = sp.MatMul(sp.OneMatrix(k, 1), sp.OneMatrix(1, k))
    return d(sp.HadamardProduct(S, _add([G, _mul(-1, sp.HadamardProduct(S, G), ones)])))


@defdiff(LogSumExp, "d logsumexp(z) = softmax(z)ᵀ dz; of a matrix's rows, (softmax(Z) ⊙ dZ) 𝟏",
         latex=r"$\mathrm{d}\operatorname{logsumexp}(\mathbf{z}) = \operatorname{softmax}(\mathbf{z})^{\top}\,\mathrm{d}\mathbf{z}$; of a matrix's rows, $(\operatorname{softmax}(\mathbf{Z}) \odot \mathrm{d}\mathbf{Z})\,\mathbf{1}$")
def _d_logsumexp(d, e):
    z, axis = e.args
    dz = d(z)
    if dz is None:
        return None
    if axis == 1:
        return sp.MatMul(sp.HadamardProduct(Softmax(z, 1), dz), sp.OneMatrix(z.shape[1], 1))
    return sp.MatMul(Softmax(z).T, dz)


@defdiff(sp.DiagMatrix, "d diag(v) = diag(dv)",
         latex=r"$\mathrm{d}\operatorname{diag}(\mathbf{v}) = \operatorname{diag}(\mathrm{d}\mathbf{v})$")
def _d_diagmatrix(d, e):
    dv = d(e.args[0])
    return None if dv is None else sp.DiagMatrix(dv)


@defdiff(sp.DiagonalOf, "d diag(X) = diag(dX)",
         latex=r"$\mathrm{d}\operatorname{diag}(\mathbf{X}) = \operatorname{diag}(\mathrm{d}\mathbf{X})$")
def _d_diagonalof(d, e):
    dX = d(e.args[0])
    return None if dX is None else sp.DiagonalOf(dX)


@defdiff(Scalar)
def _d_scalar(d, e):
    dm = d(e.matrix)
    return None if dm is None else (Scalar(dm) if isinstance(dm, MatrixExpr) else dm)


@defdiff(sp.Trace, "d tr(X) = tr(dX)",
         latex=r"$\mathrm{d}\operatorname{tr}(\mathbf{X}) = \operatorname{tr}(\mathrm{d}\mathbf{X})$")
def _d_trace(d, e):
    dX = d(e.arg)
    return None if dX is None else sp.Trace(dX)


@defdiff(sp.Determinant, "d det X = det X · tr(X⁻¹ dX)",
         latex=r"$\mathrm{d}\det(\mathbf{X}) = \det(\mathbf{X})\,\operatorname{tr}(\mathbf{X}^{-1}\,\mathrm{d}\mathbf{X})$")
def _d_det(d, e):
    dX = d(e.arg)
    return None if dX is None else e * sp.Trace(sp.MatMul(sp.Inverse(e.arg), dX))


@defdiff(sp.Pow, "d(uᵖ) = p uᵖ⁻¹ du",
         latex=r"$\mathrm{d}(u^{p}) = p\,u^{p-1}\,\mathrm{d}u$")
def _d_pow(d, e):
    base, p = e.args
    if p.has(d.var):
        raise ValueError(f"matrix calculus: the exponent of {e} depends on {d.var}; write "
                         "exp(p*log(a))")
    db = d(base)
    return None if db is None else p * base**(p - 1) * db


@defdiff(sp.exp, "d exp(a) = exp(a) da",
         latex=r"$\mathrm{d}\exp(a) = \exp(a)\,\mathrm{d}a$")
def _d_exp(d, e):
    da = d(e.args[0])
    return None if da is None else e * da


@defdiff(sp.log, "d log(a) = da / a",
         latex=r"$\mathrm{d}\log(a) = \mathrm{d}a / a$")
def _d_log(d, e):
    da = d(e.args[0])
    return None if da is None else da / e.args[0]


def _d_function(d, e):
    (a,) = e.args
    da = d(a)
    if da is None:
        return None
    t = sp.Dummy("t", real=True)
    return sp.diff(e.func(t), t).subs(t, a) * da


_FUNCTION_RULE = ("d f(a) = f′(a) da", _d_function)
RULE_LATEX[_FUNCTION_RULE[0]] = r"$\mathrm{d}f(a) = f'(a)\,\mathrm{d}a$"


def _rules_latex(used) -> str:
    """The rules a step used, as LaTeX text; "" when one has no LaTeX form (then the words
    printer reads the text)."""
    if not used or any(t not in RULE_LATEX for t in used):
        return ""
    return "; ".join(RULE_LATEX[t] for t in used)
for _leaf in (sp.Number, sp.NumberSymbol, sp.Identity, sp.OneMatrix, sp.ZeroMatrix):
    DIFFERENTIALS[_leaf] = ("", lambda d, e: None)


# -- 2. identifying the gradient: ⟨G, e⟩ for e linear in dX ---------------------------------------
ADJOINTS: dict[type, object] = {}


def defadjoint(cls):
    """Register how a linear node passes its adjoint to the operand holding dX: ⟨G, e⟩ =
    ⟨G', operand⟩; ``fn(e, G, i)`` returns G' for operand i."""
    def register(fn):
        ADJOINTS[cls] = fn
        return fn
    return register


def _inner(G, M):
    """⟨G, M⟩ = tr(Gᵀ M) as a scalar (Gᵀ M for vectors, as the notes write it)."""
    if not isinstance(M, MatrixExpr):
        return G * M
    if not isinstance(G, MatrixExpr):  # a 1×1 M with a scalar adjoint
        return G * Scalar(M)
    prod = sp.MatMul(G.T, M).doit()
    return Scalar(prod) if prod.shape == (1, 1) else sp.Trace(prod)


def _factors(e, dvar):
    """A product linear in dvar: (its factors, the index of the one holding dvar, the scalar
    factors, the matrix factors), the split the gradient's and the Jacobian's steps both make."""
    args = list(e.args)
    holding = [i for i, a in enumerate(args) if a.has(dvar)]
    if len(holding) != 1:
        raise ValueError(f"matrix calculus: {e} is not linear in {dvar}")
    return (args, holding[0], [a for a in args if not isinstance(a, MatrixExpr)],
            [a for a in args if isinstance(a, MatrixExpr)])


def _t(m):
    """mᵀ; a scalar (a 1×1 product wrapped as one) is its own transpose."""
    return m.T if isinstance(m, MatrixExpr) else m


def _seed_times(G, L, R):
    """Lᵀ G Rᵀ, with G possibly a scalar (the adjoint of a 1×1)."""
    parts = [m for m in (_t(L), G, _t(R)) if m is not None]
    return _mul(*parts) if len(parts) > 1 else parts[0]


class _Adjoint:
    def __init__(self, dvar):
        self.dvar = dvar

    def __call__(self, e, G):
        """The contribution to the gradient of ⟨G, e⟩, for e linear in dvar."""
        if e == self.dvar:
            return G
        if isinstance(e, (sp.Add, sp.MatAdd)):
            return _add([self(a, G) for a in e.args if a.has(self.dvar)])
        if isinstance(e, (sp.Mul, sp.MatMul)):
            args, i, scalars, mats = _factors(e, self.dvar)
            if not isinstance(args[i], MatrixExpr):  # the scalar coefficient holds dX
                rest = _mul(*[a for j, a in enumerate(scalars) if a is not args[i]], *mats) \
                    if len(args) > 1 else sp.Integer(1)
                return self(args[i], _inner(G, rest) if isinstance(rest, MatrixExpr) else G * rest)
            k = mats.index(args[i])
            coeff = sp.Mul(*scalars)
            L = _mul(coeff, *mats[:k]) if k else None
            R = _mul(*mats[k + 1:]) if k + 1 < len(mats) else None
            if L is None and coeff != 1:
                G = _mul(coeff, G)
            return self(args[i], _seed_times(G, L, R))
        if isinstance(e, Scalar):
            return self(e.matrix, G)
        for cls in type(e).__mro__:
            if cls in ADJOINTS:
                holding = [i for i, a in enumerate(e.args) if a.has(self.dvar)]
                i = holding[0]
                return self(e.args[i], ADJOINTS[cls](e, G, i))
        raise ValueError(f"matrix calculus: cannot identify the gradient in {e}")


@defadjoint(sp.Transpose)
def _adj_transpose(e, G, i):
    return G.T if isinstance(G, MatrixExpr) else G


@defadjoint(sp.Trace)
def _adj_trace(e, G, i):
    return _mul(G, sp.Identity(e.arg.shape[0]))


@defadjoint(sp.HadamardProduct)
def _adj_hadamard(e, G, i):
    return sp.HadamardProduct(G, *e.args[:i], *e.args[i + 1:]).doit()


@defadjoint(sp.DiagMatrix)
def _adj_diagmatrix(e, G, i):
    return sp.DiagonalOf(G)


@defadjoint(sp.DiagonalOf)
def _adj_diagonalof(e, G, i):
    return sp.DiagMatrix(G)


@defadjoint(SoftmaxVJP)
def _adj_softmax_vjp(e, G, i):
    return SoftmaxVJP(e.args[0], G, e.args[2])  # each row's diag(s) − s sᵀ is symmetric


# -- 3. identifying a Jacobian: dF = J dx ---------------------------------------------------------
class _Jacobian:
    def __init__(self, var, dvar):
        self.var, self.dvar, self.adj = var, dvar, _Adjoint(dvar)

    def row(self, s):
        """J of a scalar s linear in dx: the row (∇s)ᵀ."""
        g = self.adj(s, sp.Integer(1))
        return g.T if isinstance(g, MatrixExpr) else g

    def __call__(self, e):
        dv = self.dvar
        if e == dv:
            return sp.Identity(dv.shape[0]) if isinstance(dv, MatrixExpr) else sp.Integer(1)
        if not isinstance(e, MatrixExpr) or e.shape == (1, 1) and isinstance(e, Scalar):
            return self.row(e)
        if isinstance(e, sp.MatAdd):
            return _add([self(a) for a in e.args if a.has(dv)])
        if isinstance(e, sp.Transpose):
            return self(_push_transpose(e))
        if isinstance(e, sp.HadamardProduct):
            i = next(i for i, a in enumerate(e.args) if a.has(dv))
            others = sp.HadamardProduct(*e.args[:i], *e.args[i + 1:]).doit()
            return _mul(sp.DiagMatrix(others), self(e.args[i]))
        if isinstance(e, sp.MatMul):
            args, i, scalars, mats = _factors(e, dv)
            if not isinstance(args[i], MatrixExpr):  # the coefficient holds dx: v (∇c)ᵀ
                v = _mul(*[a for a in scalars if a is not args[i]], *mats)
                return _mul(v, self.row(args[i]))
            k = mats.index(args[i])
            L = _mul(sp.Mul(*scalars), *mats[:k]) if k or sp.Mul(*scalars) != 1 else None
            R = mats[k + 1:]
            Rm = _mul(*R) if R else None
            if isinstance(mats[k], sp.MatAdd):  # L (Σ Mⱼ) R = Σ L Mⱼ R
                return _add([self(_mul(*[m for m in (L, t, Rm) if m is not None]))
                             for t in mats[k].args if t.has(dv)])
            if Rm is not None and not isinstance(Rm, MatrixExpr):  # R a 1×1: a scalar factor
                L, Rm = (Rm if L is None else _mul(L, Rm)), None
            if Rm is None:
                inner = self(mats[k])
            else:
                mid = _mul(mats[k], Rm)
                if isinstance(mid, Scalar) or getattr(mid, "shape", None) == (1, 1):
                    inner = self.row(mid if isinstance(mid, Scalar) else Scalar(mid))
                elif isinstance(mats[k], sp.DiagMatrix) and Rm.shape[1] == 1:
                    inner = _mul(sp.DiagMatrix(Rm), self(mats[k].args[0]))
                elif isinstance(mats[k], sp.MatMul):  # a nested product: flatten it
                    return self(_mul(*[m for m in (L, mats[k], Rm) if m is not None]))
                else:
                    raise ValueError(f"matrix calculus: cannot identify the Jacobian of {e} "
                                     "in matrix form")
            return inner if L is None else _mul(L, inner)
        if isinstance(e, sp.DiagonalOf):
            raise ValueError(f"matrix calculus: cannot identify the Jacobian of {e}")
        raise ValueError(f"matrix calculus: cannot identify the Jacobian in {e}")


def _push_transpose(e):
    """(AB)ᵀ = BᵀAᵀ, (A + B)ᵀ = Aᵀ + Bᵀ, one level."""
    a = e.arg
    if isinstance(a, sp.MatMul):
        coeff, mats = a.as_coeff_matrices()
        return _mul(coeff, *[m.T for m in reversed(mats)])
    if isinstance(a, sp.MatAdd):
        return sp.MatAdd(*[t.T for t in a.args]).doit()
    if isinstance(a, sp.HadamardProduct):
        return sp.HadamardProduct(*[t.T for t in a.args]).doit()
    return a.T


# -- simplification -------------------------------------------------------------------------------
# Identities tidy applies, one rule per node class as DIFFERENTIALS: (the identity in words, fn
# returning the simpler node or the node itself). Each is checked at explicit sizes by
# tests/test_mcalc_trial.py, and every result they touch by verify.
SIMPLIFICATIONS: dict[type, tuple[str, object]] = {
    Commutation: ("K(m, 1) = K(1, m) = I: transposing a vector does not reorder its entries",
                  lambda e: sp.Identity(e.shape[0]) if 1 in e.args else e),
}


def tidy(e):
    """Merge diag products, collect like terms and factor a common left or right factor:
    Ax + Aᵀx = (A + Aᵀ)x, as the textbook writes it."""
    if not isinstance(e, sp.Basic) or e.is_Atom or isinstance(e, sp.MatrixSymbol):
        return e
    args = [tidy(a) for a in e.args]
    e = e.func(*args) if args != list(e.args) else e
    if type(e) in SIMPLIFICATIONS:
        e = SIMPLIFICATIONS[type(e)][1](e)
        if not isinstance(e, sp.Basic) or e.is_Atom or isinstance(e, (sp.MatrixSymbol,
                                                                       sp.Identity)):
            return e
    if isinstance(e, Scalar) and isinstance(e.matrix, sp.MatMul):  # (−yᵀ1) = −(yᵀ1)
        c, mats = e.matrix.as_coeff_matrices()
        if c.is_Number and c != 1:
            return c * Scalar(sp.MatMul(*mats).doit())
    if isinstance(e, sp.HadamardProduct):
        e = _ones_hadamard(e)
    if isinstance(e, sp.HadamardProduct):
        e = _hadamard_coefficients(e)
    if isinstance(e, sp.HadamardPower) and isinstance(e.args[0], sp.MatMul):
        c, mats = e.args[0].as_coeff_matrices()  # (−y)^∘2 = y^∘2
        if c == -1 and e.args[1].is_Integer and e.args[1] % 2 == 0:
            e = sp.HadamardPower(sp.MatMul(*mats).doit(), e.args[1])
    if isinstance(e, sp.DiagMatrix) and isinstance(e.args[0], sp.OneMatrix):
        e = sp.Identity(e.shape[0])  # diag(1) = I
    if isinstance(e, sp.MatMul):
        e = _merge_diags(e)
    if isinstance(e, sp.MatAdd):
        e = _factor(e)
    return e.doit() if isinstance(e, (sp.MatMul, sp.MatAdd)) else e


# -- display: the result as a textbook writes it ------------------------------------------------
def _norm_of(e):
    """v for √(vᵀv) (X for √tr(XᵀX)) wrapped as a Scalar or Trace; else None."""
    m = e.matrix if isinstance(e, Scalar) else e.arg if isinstance(e, sp.Trace) else None
    if isinstance(m, sp.MatMul) and len(m.args) == 2:
        a, b = m.args
        if (a == b.T or a == sp.Transpose(b).doit() or (isinstance(a, sp.Transpose)
                                                         and a.arg == b)) and \
                (b.shape[1] == 1) == isinstance(e, Scalar):
            return b
    return None


def _d_pow_norm(e):
    """(vᵀv)^(k/2) = ‖v‖₂ᵏ for odd k: a square root written as the norm (vᵀv and its integer
    powers stay as they are)."""
    v = _norm_of(e.base)
    if v is not None and (2 * e.exp).is_Integer and not e.exp.is_Integer:
        return Norm2(v) ** (2 * e.exp)
    return e


def _d_matmul_over(e):
    """c/‖v‖ M = (c M)/‖v‖ (x/‖x‖₂); a product of scalars in front split into its factors
    (2 A x, not (2 A) x)."""
    coeff, mats = e.as_coeff_matrices()
    num, den = sp.fraction(sp.factor_terms(coeff))
    if den != 1 and den.has(Norm2):
        sign = num.could_extract_minus_sign()
        num = -num if sign else num
        top = sp.MatMul(*num.as_ordered_factors(), *mats) if num != 1 else (
            mats[0] if len(mats) == 1 else sp.MatMul(*mats))
        return sp.MatMul(-1, Over(top, den)) if sign else Over(top, den)
    factors = coeff.as_ordered_factors() if isinstance(coeff, sp.Mul) else []
    if factors and all(f.is_Number or f.is_Symbol for f in factors):
        return sp.MatMul(*factors, *mats)
    return e


# How a result is written: one rule per node class, each equal to what it replaces (verify checks
# the written result itself). The derivation keeps working on the plain form (a Hessian is the
# Jacobian of the plain gradient).
DISPLAY: dict[type, object] = {
    sp.Pow: _d_pow_norm,  # (tried before its operands are rewritten: it matches vᵀv as built)
    sp.MatMul: _d_matmul_over,
    sp.HadamardPower: lambda e: HadamardPowerShown(*e.args),
    sp.MatAdd: lambda e: MatAddShown(*e.args),
}


def display(e):
    """``e`` written as the notes write it: ‖x‖₂ for √(xᵀx), x/‖x‖₂, 2 A x, y^∘2, 𝟏 − σ."""
    if not isinstance(e, sp.Basic) or e.is_Atom or isinstance(e, sp.MatrixSymbol):
        return e
    if isinstance(e, sp.Pow):
        shown = _d_pow_norm(e)
        if shown is not e:
            return shown.func(*[display(a) for a in shown.args])
    args = [display(a) for a in e.args]
    if args != list(e.args):
        e = e.func(*args)
    rule = DISPLAY.get(type(e))
    return rule(e) if rule else e


def _ones_hadamard(e):
    """(u 𝟏ᵀ) ⊙ S = diag(u) S and (𝟏 vᵀ) ⊙ S = S diag(v): a row-wise weight as the textbook
    writes it (the row sums Y𝟏 of log softmax's Z − logsumexp(Z) 𝟏ᵀ)."""
    if len(e.args) != 2:
        return e
    for i, a in enumerate(e.args):
        other = e.args[1 - i]
        if not isinstance(a, sp.MatMul):
            continue
        c, mats = a.as_coeff_matrices()
        last, first = mats[-1], mats[0]
        if isinstance(last, sp.OneMatrix) and last.shape[0] == last.shape[1] and len(mats) > 1:
            u = sp.MatMul(*mats[:-1], sp.OneMatrix(last.shape[0], 1)).doit()  # M 𝟏𝟏ᵀ = (M𝟏)𝟏ᵀ
            return _mul(c, sp.DiagMatrix(u), other)
        if isinstance(first, sp.OneMatrix) and first.shape[0] == first.shape[1] and len(mats) > 1:
            v = sp.MatMul(sp.OneMatrix(1, first.shape[1]), *mats[1:]).doit().T
            return _mul(c, other, sp.DiagMatrix(v))
    return e


def _signs(e):
    """(−𝟏) ⊙ Y = −Y throughout: the signs the adjoint pass leaves inside Hadamard products,
    taken out before the trace-trick step is printed (the rest waits for :func:`tidy`)."""
    if not isinstance(e, sp.Basic) or e.is_Atom or isinstance(e, sp.MatrixSymbol):
        return e
    args = [_signs(a) for a in e.args]
    e = e.func(*args) if args != list(e.args) else e
    if isinstance(e, sp.HadamardProduct):
        e = _ones_hadamard(e)
    return _hadamard_coefficients(e) if isinstance(e, sp.HadamardProduct) else e


def _hadamard_coefficients(e):
    """(−y) ⊙ A = −(y ⊙ A): numbers out of a Hadamard product, as a textbook writes them."""
    coeff, args = sp.Integer(1), []
    for a in e.args:
        if isinstance(a, sp.MatMul):
            c, mats = a.as_coeff_matrices()
            if c.is_Number and c != 1:
                coeff, a = coeff * c, sp.MatMul(*mats).doit()
        args.append(a)
    if coeff == 1:
        return e
    inner = sp.HadamardProduct(*args).doit()
    return sp.MatMul(coeff, inner).doit()


def _merge_diags(e):
    coeff, mats = e.as_coeff_matrices()
    out = []
    for m in mats:
        if out and isinstance(m, sp.DiagMatrix) and isinstance(out[-1], sp.DiagMatrix):
            out[-1] = sp.DiagMatrix(sp.HadamardProduct(out[-1].args[0], m.args[0]).doit())
        else:
            out.append(m)
    return sp.MatMul(coeff, *out).doit() if len(out) != len(mats) else e


def _split(t):
    if isinstance(t, sp.MatMul):
        coeff, mats = t.as_coeff_matrices()
        return coeff, list(mats)
    return sp.Integer(1), [t]


def _factor(e):
    terms = [_split(t) for t in e.args]
    for side in (-1, 0):
        groups: dict = {}
        for c, mats in terms:
            if len(mats) > 1:
                groups.setdefault(mats[side], []).append((c, mats))
        key = next((k for k, g in groups.items() if len(g) > 1), None)
        if key is None:
            continue
        grouped = groups[key]
        rest = [t for t in terms if not (len(t[1]) > 1 and t[1][side] == key)]
        inner = sp.MatAdd(*[_mul(c, *(m[:-1] if side == -1 else m[1:])) for c, m in grouped])
        inner = _factor(inner.doit()) if isinstance(inner.doit(), sp.MatAdd) else inner.doit()
        merged = sp.MatMul(inner, key) if side == -1 else sp.MatMul(key, inner)
        out = sp.MatAdd(merged, *[_mul(c, *m) for c, m in rest]) if rest else merged
        return out
    return e


# -- verification: entry by entry against sympy.diff ---------------------------------------------
_TEST_SIZES = (2, 3, 4, 5, 6, 7)  # the first size 2: a 3×3 symbolic inverse took 2 s


def _explicit(e, env):
    """``e`` with each matrix symbol replaced by the explicit matrix in ``env``: a scalar SymPy
    expression or an ImmutableMatrix."""
    if isinstance(e, sp.MatrixSymbol):
        return env[e.name]
    if e in env["__sizes__"]:  # a size symbol: its test size (det(2X) = 2ⁿ det X)
        return env["__sizes__"][e]
    if isinstance(e, sp.Symbol):
        return env.get(e.name, e)
    if isinstance(e, (sp.Identity, sp.OneMatrix, sp.ZeroMatrix)):
        return sp.ImmutableMatrix(e.subs(env["__sizes__"]).as_explicit())
    if isinstance(e, Scalar):
        return _explicit(e.matrix, env)[0, 0]
    if isinstance(e, Norm2):
        M = _explicit(e.arg, env)
        return sp.sqrt(sum(v**2 for v in M))
    if isinstance(e, Over):
        return sp.ImmutableMatrix(_explicit(e.args[0], env) / _explicit(e.args[1], env))
    if isinstance(e, sp.Trace):
        return _explicit(e.arg, env).trace()
    if isinstance(e, sp.Determinant):
        return _explicit(e.arg, env).det(method="berkowitz")
    if isinstance(e, sp.Inverse):
        return _explicit(e.arg, env).inv(method="LU")
    if isinstance(e, sp.MatPow):
        return _explicit(e.args[0], env) ** int(e.args[1])
    if isinstance(e, sp.MatMul):
        out = None
        for a in e.args:
            v = _explicit(a, env)
            out = v if out is None else out * v
        return sp.ImmutableMatrix(out) if isinstance(out, sp.MatrixBase) else out
    if isinstance(e, sp.MatAdd):
        vals = [_explicit(a, env) for a in e.args]
        out = vals[0]
        for v in vals[1:]:
            out = out + v
        return sp.ImmutableMatrix(out)
    if isinstance(e, sp.Transpose):
        return _explicit(e.arg, env).T
    if isinstance(e, sp.HadamardProduct):
        vals = [_explicit(a, env) for a in e.args]
        out = vals[0]
        for v in vals[1:]:
            out = out.multiply_elementwise(v)
        return sp.ImmutableMatrix(out)
    if isinstance(e, sp.HadamardPower):
        return _explicit(e.args[0], env).applyfunc(lambda v: v ** e.args[1])
    if isinstance(e, Elementwise):
        (X,) = e.operands
        return _explicit(X, env).applyfunc(e.lam)
    if isinstance(e, sp.KroneckerProduct):
        vals = [_explicit(a, env) for a in e.args]
        return sp.ImmutableMatrix(sp.kronecker_product(*vals))
    if isinstance(e, sp.DiagMatrix):
        v = _explicit(e.args[0], env)
        return sp.ImmutableMatrix(sp.diag(*v))
    if isinstance(e, sp.DiagonalOf):
        M = _explicit(e.args[0], env)
        return sp.ImmutableMatrix([M[i, i] for i in range(M.rows)])
    if isinstance(e, Commutation):
        return sp.ImmutableMatrix(Commutation(*e.subs(env["__sizes__"]).args).as_explicit())
    if isinstance(e, (Softmax, LogSumExp, SoftmaxVJP, SoftmaxJacobian, DiagVec)):
        node = type(e)(*[_explicit(a, env) if isinstance(a, MatrixExpr) else a for a in e.args])
        return sp.ImmutableMatrix(*node.shape, lambda i, j: node._entry(i, j))
    if isinstance(e, MatrixExpr):
        raise ValueError(f"matrix calculus: cannot write out {type(e).__name__}")
    if not e.args:
        return e
    return e.func(*[_explicit(a, env) for a in e.args])


def _entries(name, shape, symmetric=False):
    r, c = shape
    syms = {}
    def entry(i, j):
        key = (min(i, j), max(i, j)) if symmetric else (i, j)
        if key not in syms:
            syms[key] = sp.Dummy(f"{name}_{key[0]}{key[1]}", real=True)
        return syms[key]
    return sp.ImmutableMatrix(r, c, entry)


def verify(problem: MatrixProblem, var, result, order: str, points: int = 3, seed: int = 0):
    """Check ``result`` (the gradient, Jacobian or Hessian of ``problem.expr`` with respect to
    ``var``) entry by entry against ``sympy.diff`` of the written-out expression, at small sizes
    and random points. Returns the sizes used; raises AssertionError if they disagree.

    At each point every other argument is a random numeric matrix before anything is written
    out, and only ``var``'s entries stay symbols for ``sympy.diff``: written out with every
    entry a symbol, tr(inv(A + XᵀBX)C) took 9 s (a symbolic 3×3 inverse), now well under one.
    Sizes are tried in three assignments (2, 3, 4, … one per size symbol; reversed; all 3): the
    first made XᵀX of a 2×3 X singular, so logdet(XᵀX) had no point to be checked at."""
    symbols = list(problem.size_symbols.values())
    k = len(symbols)
    choices = [tuple(_TEST_SIZES[i % len(_TEST_SIZES)] for i in range(k)),
               tuple(reversed([_TEST_SIZES[i % len(_TEST_SIZES)] for i in range(k)])),
               (3,) * k]
    last = None
    for choice in dict.fromkeys(choices):
        sizes = {sym: sp.Integer(v) for sym, v in zip(symbols, choice)}
        try:
            _verify_at(problem, var, result, order, sizes, points, seed)
            return {str(kk): int(v) for kk, v in sizes.items()}
        except _NoPoint as e:
            last = e
    raise ValueError(f"matrix calculus: could not find a point where {problem.text!r} and its "
                     f"derivative are defined, to check the result ({last})")


class _NoPoint(Exception):
    """No random point of these sizes where the function and its derivative are defined."""


def _verify_at(problem, var, result, order, sizes, points, seed):
    rng = random.Random(seed)
    shape_of = {name: tuple(int(d.subs(sizes)) if isinstance(d, sp.Basic) else int(d)
                            for d in sym.shape)
                for name, sym in problem.symbols.items() if isinstance(sym, sp.MatrixSymbol)}
    checked = tries = 0
    while checked < points:
        tries += 1
        if tries > 30:
            raise _NoPoint(f"sizes {', '.join(f'{k} = {v}' for k, v in sizes.items())}")
        wide = tries < 15  # then positive values only: logs and square roots of entries
        value = (lambda: sp.Float(rng.uniform(-2, 2) if wide else rng.uniform(0.2, 2), 30))
        env = {"__sizes__": sizes}
        for name, sym in problem.symbols.items():
            if name == var.name:
                env[name] = (_entries(name, shape_of[name], isinstance(sym, Symmetric))
                             if name in shape_of else sp.Dummy(name, real=True))
            elif name in shape_of:
                r, c = shape_of[name]
                M = sp.Matrix(r, c, lambda i, j: value())
                if isinstance(sym, Symmetric):
                    M = (M + M.T) / 2
                env[name] = sp.ImmutableMatrix(M)
            else:
                env[name] = value()
        V = env[var.name]
        xs = list(V) if isinstance(V, sp.MatrixBase) else [V]
        at = {x: value() for x in set(xs)}
        try:
            f = _explicit(problem.expr, env)
            R = _explicit(result, env)
        except (ValueError, ZeroDivisionError, sp.matrices.exceptions.NonInvertibleMatrixError):
            continue  # a singular matrix at this point: another point
        got = list(R) if isinstance(R, sp.MatrixBase) else [R]
        if order == "grad":
            if isinstance(var, Symmetric):  # s_ij = s_ji: d/ds_ij sees G_ij + G_ji
                Rm = R if isinstance(R, sp.MatrixBase) else sp.ImmutableMatrix([[R]])
                got = [Rm[i, j] + (Rm[j, i] if i != j else 0) for i in range(Rm.rows)
                       for j in range(Rm.cols) if j >= i]
                want = [sp.diff(f, V[i, j]) for i in range(V.rows) for j in range(V.cols)
                        if j >= i]
            else:
                want = [sp.diff(f, x) for x in xs]
        elif order == "jacobian":
            F = f if isinstance(f, sp.MatrixBase) else sp.ImmutableMatrix([[f]])
            want = [sp.diff(Fi, x) for Fi in F for x in xs]
        else:  # hessian
            want = [sp.diff(sp.diff(f, x), y) for x in xs for y in xs]
        if len(got) != len(want):
            raise AssertionError(f"matrix calculus: the result has {len(got)} entries, "
                                 f"sympy.diff {len(want)}")
        fs = list(f) if isinstance(f, sp.MatrixBase) else [f]
        try:
            vals = [complex(sp.N(v.xreplace(at) if isinstance(v, sp.Basic) else v, 30))
                    for v in fs + want + got]
        except (TypeError, ValueError):
            continue
        if any(abs(v.imag) > 1e-12 or v != v or abs(v) == float("inf") for v in vals):
            continue  # outside the domain (log of a negative, a singular X): another point
        vals_w, vals_g = vals[len(fs):len(fs) + len(want)], vals[len(fs) + len(want):]
        for w, g in zip(vals_w, vals_g):
            if abs(w - g) > 1e-9 * max(1.0, abs(w)):
                raise AssertionError(f"matrix calculus: the derived {order} of {problem.text!r} "
                                     f"disagrees with sympy.diff ({g.real} against {w.real}); "
                                     "this is a bug in symgrad, please report it")
        checked += 1


# -- the derivations ------------------------------------------------------------------------------
def _problem(f, wrt, decl, what="grad") -> tuple[MatrixProblem, sp.Basic]:
    problem = f if isinstance(f, MatrixProblem) else parse_matrix(f, **decl)
    if not isinstance(wrt, str) or not wrt.strip():
        raise ValueError("wrt: name the variable to differentiate by, e.g. wrt=\"x\"")
    name = wrt.strip()
    if re.search(r"[\s,]", name):
        raise ValueError(f"wrt: {what} takes one variable (a scalar, vector or matrix), got "
                         f"{name!r}; derive by each in turn")
    if name not in problem.symbols:
        raise ValueError(f"wrt: {name!r} does not appear in {problem.text!r}")
    return problem, problem.symbols[name]


def _shape_text(e) -> str:
    if not isinstance(e, MatrixExpr):
        return "a scalar"
    r, c = e.shape
    return f"{r} × 1" if c == 1 else f"{r} × {c}"


def _declared(problem) -> str:
    return "; ".join(f"{n} is {_shape_text(s)}" + (" symmetric" if isinstance(s, Symmetric)
                                                      else "")
                     for n, s in problem.symbols.items())


def _differential(problem, var, d: Derivation, f_sym):
    dvar = _d_of(var)
    diff = _Diff(var, dvar)
    df = diff(problem.expr)
    if df is None:
        raise ValueError(f"wrt: {problem.text!r} does not depend on {var.name!r}")
    rules = "; ".join(diff.used) or "the variable's own differential"
    lx = _rules_latex(diff.used)
    d.add(DiffScalar(f_sym.name) if not isinstance(problem.expr, MatrixExpr) else
          DiffSymbol(f_sym.name, *problem.expr.shape), df, f"the differential, by the rules {rules}",
          StepKind.JACOBIAN, why_latex=f"the differential, by the rules {lx}" if lx else "")
    return df, dvar


def _printing_text():
    """The text printer, through core's printing hook (derive never imports printing)."""
    return _printing().PlainPrinter().doprint


def _start(problem, var, title) -> tuple[Derivation, sp.Symbol]:
    d = Derivation(title)
    f_sym = sp.Symbol("f")
    d.add(f_sym, problem.expr if problem.written is None else problem.written,
          f"the function; {_declared(problem)}", StepKind.DEFINITION)
    for note in problem.notes:
        d.add(None, problem.expr, note, StepKind.SIMPLIFY)
    if problem.written is not None and not problem.notes:
        d.meta["shown_from"] = len(d.steps) + 1
        d.add(None, problem.expr, "each norm written out: ‖v‖₂ = √(vᵀv), ‖X‖_F = √tr(XᵀX)",
              StepKind.SIMPLIFY,
              why_latex=r"each norm written out: $\|\mathbf{v}\|_{2} = \sqrt{\mathbf{v}^{\top}"
                        r"\mathbf{v}}$, $\|\mathbf{X}\|_{F} = \sqrt{\operatorname{tr}(\mathbf{X}^{\top}"
                        r"\mathbf{X})}$")
    return d, f_sym


def _finish(d, problem, var, result, order, lhs):
    plain = tidy(result)
    simpler = display(plain)
    d.result = simpler
    d.meta["plain_result"] = plain  # what a Hessian differentiates again
    if plain != result:
        d.add(None, simpler, "collecting like terms and common factors", StepKind.SIMPLIFY)
    elif simpler != plain and d.steps and d.steps[-1].rhs == result:
        d.steps[-1] = replace(d.steps[-1], rhs=simpler)
    sizes = verify(problem, var, simpler, order)
    at = ", ".join(f"{k} = {v}" for k, v in sizes.items()) or "the declared sizes"
    d.meta.update(problem=problem, wrt=var, order=order, checked_at=sizes)
    checked = (f"checked entry by entry against the derivative of the written-out function at {at} "
               "(3 random points)")
    last = d.steps[-1] if d.steps else None
    merged = last is not None and last.lhs in (lhs, None) and last.rhs == simpler
    if merged:  # the identified result is the result: one line saying both, not the line twice
        at_tex = ", ".join(f"${_tex(sp.Symbol(k))} = {v}$" for k, v in sizes.items()) or \
            "the declared sizes"
        lx = (f"{last.why_latex}; checked entry by entry against the derivative of the written-out "
              f"function at {at_tex} (3 random points)") if last.why_latex else ""
        d.steps[-1] = replace(last, why=f"{last.why}; {checked}", rule=StepKind.AGREE,
                              why_latex=lx)
    else:
        d.add(lhs, simpler, checked, StepKind.AGREE)
    d.meta["merged_check"] = merged
    k = d.meta.pop("shown_from", 0)  # every line as written, after the function's own lines
    d.steps = d.steps[:k] + [replace(st, rhs=_shown(st.rhs)) for st in d.steps[k:]]
    _name_repeated(d, problem, simpler)
    return d


def _shown(e):
    try:
        return display(e)
    except (TypeError, ValueError, AttributeError):  # a display node that cannot rebuild: as is
        return e


def _name_repeated(d, problem, result) -> None:
    """A last line naming the largest entrywise function or softmax that the result repeats, as
    the notes write it: Xᵀ diag((𝟏 − s) ⊙ s ⊙ y^∘2) X, where s = σ(−(Xw ⊙ y)). The result
    itself is unchanged (the line is for reading)."""
    counts: dict = {}
    for sub in sp.preorder_traversal(result):
        if isinstance(sub, (Elementwise, Softmax)):
            counts[sub] = counts.get(sub, 0) + 1
    repeated = [e for e, k in counts.items() if k > 1]
    if not repeated:
        return
    sub = max(repeated, key=sp.count_ops)
    taken = set(problem.symbols) | {str(x) for x in problem.size_symbols}
    name = next(n for n in ["s", "p", "q"] + [f"s{i}" for i in range(1, 100)] if n not in taken)
    short = sp.MatrixSymbol(name, *sub.shape)
    shown = result.xreplace({sub: short})
    what = _printing_text()(sub)
    d.add(None, shown, f"where {name} = {what}", StepKind.SIMPLIFY,
          why_latex=f"where ${_tex(short)} = {_tex(sub)}$")


def derive_grad(f, wrt: str, **decl) -> Derivation:
    """∇f of a scalar matrix-language expression, shaped like ``wrt``."""
    problem, var = _problem(f, wrt, decl, "grad")
    if not problem.is_scalar:
        raise ValueError(f"grad: {problem.text!r} is {_shape_text(problem.expr)}, not a scalar; "
                         "use derivative for its Jacobian")
    d, f_sym = _start(problem, var, _title("Gradient", problem, var))
    df, dvar = _differential(problem, var, d, f_sym)
    G = _signs(_Adjoint(dvar)(df, sp.Integer(1)))
    form = _inner(G, dvar) if isinstance(var, MatrixExpr) else G * dvar
    d.add(None, form, "each term moved into the form ⟨G, dX⟩ = tr(Gᵀ dX): a scalar is its own "
          "transpose and the trace is invariant under cyclic permutations (the trace trick)",
          StepKind.SUBSTITUTION,
          why_latex=r"each term moved into the form $\langle \mathbf{G}, \mathrm{d}\mathbf{X} "
                    r"\rangle = \operatorname{tr}(\mathbf{G}^{\top}\,\mathrm{d}\mathbf{X})$: a scalar "
                    "is its own transpose and the trace is invariant under cyclic permutations "
                    "(the trace trick)")
    lhs = Grad(f_sym, var)
    v, dv = _tex(var), r"\mathrm{d}" + _tex(var)
    d.add(lhs, G, f"identify the gradient: df = tr(Gᵀ d{var.name}) for every d{var.name} makes G "
          f"the gradient, shaped like {var.name} ({_shape_text(var)})",
          StepKind.GRADIENT, shapes=[_shape(var)],
          why_latex=(r"identify the gradient: $\mathrm{d}f = \operatorname{tr}(\mathbf{G}^{\top}\,"
                     f"{dv})$ for every ${dv}$ makes $\\mathbf{{G}}$ the gradient, shaped like "
                     f"${v}$ (${_shape_tex(var)}$)"))
    return _finish(d, problem, var, G, "grad", lhs)


def _tex(e) -> str:
    """``e`` in the notes' LaTeX (bold matrices), for a justification's math."""
    return _printing().latex(e)


def _shape_tex(e) -> str:
    if not isinstance(e, MatrixExpr):
        return "1 \\times 1"
    return " \\times ".join(_tex(x) for x in e.shape)


def _title(kind, problem, var) -> str:
    """"Gradient of f = xᵀ A x with respect to x": the parsed function in the Unicode a
    justification uses (products as spaces), which the handout's words printer sets as math."""
    from_text = _plain(problem.expr if problem.written is None else problem.written)
    return f"{kind} of f = {from_text} with respect to {var.name}"


_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def _plain(e) -> str:
    """Products as spaces, integer powers as superscripts (x² y), other powers as ^(…)."""
    text = _printing_text()(e)
    text = re.sub(r"(^|[\s(\[])-(?=\S)", r"\1−", text)  # a minus sign, not a hyphen
    text = re.sub(r" - ", " − ", text)
    text = re.sub(r"\*\*(-?\d+)\b", lambda m: m.group(1).translate(_SUPERSCRIPT), text)
    text = re.sub(r"\*\*\(?([^()*]+)\)?", r"^(\1)", text)
    return re.sub(r"(?<!\*)\*(?!\*)", " ", text)


def _shape(e):
    """(rows, cols) as plain values for the step records (JSON): ints, or a size's name."""
    if not isinstance(e, MatrixExpr):
        return (1, 1)
    return tuple(int(d) if getattr(d, "is_Integer", False) else str(d) for d in e.shape)


def derive_derivative(f, wrt: str, **decl) -> Derivation:
    """The Jacobian ∂f/∂wrt: dF = J dx (rows: the entries of f; columns: the entries of wrt).
    A matrix (f or wrt) enters by vec, row by row as in the notes: ∂vec[F]/∂vec[X], identified
    from dF = L dX R as L ⊗ Rᵀ (∂(Wx)/∂vec[W] = I ⊗ xᵀ, ∂(AXB)/∂vec[X] = A ⊗ Bᵀ)."""
    problem, var = _problem(f, wrt, decl, "derivative")
    F = problem.expr
    vec = any(isinstance(e, MatrixExpr) and e.shape[1] != 1 for e in (F, var))
    d, f_sym = _start(problem, var, _title("Jacobian", problem, var))
    df, dvar = _differential(problem, var, d, f_sym)
    if vec:
        J = _Kronecker(dvar)(df if isinstance(df, MatrixExpr) else _as_1x1(df))
        lhs = Partial(Vec(f_sym) if isinstance(F, MatrixExpr) and F.shape[1] != 1 else f_sym,
                      Vec(var) if var.shape[1] != 1 else var)
        why = (f"identify the Jacobian: vec[d{f_sym}] = J vec[d{var.name}] for every "
               f"d{var.name}, with vec[L dX R] = (L ⊗ Rᵀ) vec[dX] (vec row by row, as in the "
               f"notes); J is {_size_text(F)} × {_size_text(var)}")
    else:
        J = _Jacobian(var, dvar)(df)
        lhs = Partial(f_sym, var)
        why = (f"identify the Jacobian: df = J d{var.name} for every d{var.name}; J is "
               f"{_rows(F)} × {_rows(var)}")
    d.add(lhs, J, why, StepKind.JACOBIAN)
    return _finish(d, problem, var, J, "jacobian", lhs)


def _size(e):
    if not isinstance(e, MatrixExpr):
        return 1
    r, c = e.shape
    return r if c == 1 else r * c


def _size_text(e):
    """The length of vec[e] as text: 6, or m·k for an m×k of size names (not SymPy's k*m)."""
    n = _size(e)
    if isinstance(e, MatrixExpr) and e.shape[1] != 1 and not n.is_Integer:
        return f"{e.shape[0]}·{e.shape[1]}"
    return str(n)


def _as_1x1(s):
    return s.matrix if isinstance(s, Scalar) else sp.MatMul(s, sp.Identity(1))


class _Kronecker:
    """vec[dF] = J vec[dX] for dF a sum of L dX R (row-major vec: vec[L dX R] = (L ⊗ Rᵀ) vec[dX])."""

    def __init__(self, dvar):
        self.dvar = dvar

    def __call__(self, e):
        dv = self.dvar
        r, c = dv.shape
        if e == dv:
            return sp.Identity(r * c)
        if isinstance(e, sp.MatAdd):
            return _add([self(a) for a in e.args if a.has(dv)])
        if isinstance(e, sp.MatMul):
            coeff, mats = e.as_coeff_matrices()
            holding = [k for k, m in enumerate(mats) if m.has(dv)]
            if len(holding) == 1 and not coeff.has(dv):
                k = holding[0]
                L = _mul(coeff, *mats[:k]) if k else (
                    _mul(coeff, sp.Identity(e.shape[0])) if coeff != 1 else sp.Identity(e.shape[0]))
                R = _mul(*mats[k + 1:]) if k + 1 < len(mats) else sp.Identity(e.shape[1])
                if mats[k] == dv:
                    return _kron(L, _t(R))
                if isinstance(mats[k], sp.MatAdd):
                    return _add([self(_mul(L, t, R)) for t in mats[k].args if t.has(dv)])
                if not isinstance(mats[k], sp.MatMul):  # vec[L M R] = (L ⊗ Rᵀ) vec[M]
                    return _mul(_kron(L, _t(R)), self(mats[k]))
        if isinstance(e, SoftmaxVJP) and e.args[2] == 1:  # row by row: blkdiag(diag(sᵢ) − sᵢsᵢᵀ)
            return _mul(SoftmaxJacobian(e.args[0]), self(e.args[1]))
        if isinstance(e, sp.HadamardProduct):  # S ⊙ (L dX R): diag(vec[S]) J
            i = next(i for i, a in enumerate(e.args) if a.has(dv))
            others = sp.HadamardProduct(*e.args[:i], *e.args[i + 1:]).doit()
            diag = sp.DiagMatrix(others) if e.shape[1] == 1 else DiagVec(others)
            return _mul(diag, self(e.args[i]))
        if isinstance(e, sp.Transpose):  # vec[Mᵀ] = K vec[M]
            if e.arg == dv:
                return Commutation(*dv.shape)
            return self(_push_transpose(e))
        raise ValueError(f"matrix calculus: the Jacobian of {e} with respect to a matrix is not "
                         "a sum of products L dX R, their transposes and entrywise products")


def _kron(L, Rt):
    """L ⊗ Rᵀ, with 1 ⊗ M = M."""
    if getattr(L, "shape", None) == (1, 1) or L == sp.Identity(1):
        return Rt if L == sp.Identity(1) else _mul(L, Rt)
    if Rt == sp.Identity(1):
        return L
    c = sp.Integer(1)
    if isinstance(L, sp.MatMul):  # −X⁻¹ ⊗ X⁻ᵀ = −(X⁻¹ ⊗ X⁻ᵀ): numbers out front
        c, mats = L.as_coeff_matrices()
        L = _mul(*mats)
    return _mul(c, sp.KroneckerProduct(L, Rt)) if c != 1 else sp.KroneckerProduct(L, Rt)


def _rows(e):
    return e.shape[0] if isinstance(e, MatrixExpr) else 1


def derive_hessian(f, wrt: str, **decl) -> Derivation:
    """The Hessian of a scalar expression: the Jacobian of its gradient, in matrix form (A + Aᵀ,
    2XᵀX, Xᵀ diag(…) X); with respect to a matrix X, ∂vec[∇f]/∂vec[X] ((A + Aᵀ) ⊗ I for
    tr(XᵀAX)), vec row by row as in the notes."""
    problem, var = _problem(f, wrt, decl, "hessian")
    if not problem.is_scalar:
        raise ValueError(f"hessian: {problem.text!r} is {_shape_text(problem.expr)}, not a "
                         "scalar; the Hessian is of a scalar function (derivative gives the "
                         "Jacobian of a vector)")
    g = derive_grad(problem, wrt)
    G = g.meta["plain_result"]
    d = Derivation(_title("Hessian", problem, var))
    # the gradient's steps; its last (identified and checked) stays, as the gradient's line
    d.steps.extend(s if s.rule is not StepKind.AGREE else replace(s, rule=StepKind.GRADIENT)
                   for s in g.steps if s.rule is not StepKind.AGREE or g.meta["merged_check"])
    d.meta["shown_from"] = len(d.steps)  # (shown as written already)
    dvar = _d_of(var)
    diff = _Diff(var, dvar)
    dG = diff(G)
    by_vec = isinstance(var, MatrixExpr) and var.shape[1] != 1
    size = _size(var)
    if dG is None:
        H = sp.ZeroMatrix(size, size) if isinstance(var, MatrixExpr) else sp.Integer(0)
    else:
        lx = _rules_latex(diff.used)
        d.add(D(Grad(sp.Symbol("f"), var)), tidy(dG), "the differential of the gradient, by the "
              "rules " + "; ".join(diff.used), StepKind.JACOBIAN,
              why_latex="the differential of the gradient, by the rules " + lx if lx else "")
        H = _Kronecker(dvar)(dG) if by_vec else _Jacobian(var, dvar)(dG)
    lhs = sp.Symbol("H")
    how = (f"the differential of the gradient is H vec[d{var.name}] for every d{var.name}, "
           "with vec[L dX R] = (L ⊗ Rᵀ) vec[dX]" if by_vec else
           f"the differential of the gradient is H d{var.name} for every d{var.name}")
    v = _tex(var)
    n = _size(var)
    n_tex = _tex(sp.Integer(n) if isinstance(n, int) else n)
    how_tex = (rf"$\mathbf{{H}}\,\operatorname{{vec}}[\mathrm{{d}}{v}]$ for every "
               rf"$\mathrm{{d}}{v}$, with $\operatorname{{vec}}[\mathbf{{L}}\,\mathrm{{d}}\mathbf{{X}}\,"
               rf"\mathbf{{R}}] = (\mathbf{{L}} \otimes \mathbf{{R}}^{{\top}})\,\operatorname{{vec}}"
               rf"[\mathrm{{d}}\mathbf{{X}}]$" if by_vec else
               rf"$\mathbf{{H}}\,\mathrm{{d}}{v}$ for every $\mathrm{{d}}{v}$")
    d.add(lhs, H, f"identify the Hessian: {how}; H is {_size_text(var)} × {_size_text(var)}",
          StepKind.JACOBIAN,
          why_latex=(f"identify the Hessian: the differential of the gradient is {how_tex}; "
                     rf"$\mathbf{{H}}$ is ${n_tex} \times {n_tex}$"))
    d.meta["gradient"] = G
    return _finish(d, problem, var, H, "hessian", lhs)
