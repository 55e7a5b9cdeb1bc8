"""Any function of a few variables, and its Jacobian, compiled to numpy and vectorized over points.

Where it sits: compile (derive → **compile**): the expressions of ``symgrad.calculus`` (or a
Derivation from derive_jacobian/derive_gradient) in the stable forms of :mod:`.forms`, printed by
:class:`.numpy_printer.KernelPrinter`.
"""
from __future__ import annotations

import numpy as np
import sympy as sp
from sympy.core.function import Application

from symgrad.core.primitives import RULES, check_relu_grad_at_zero, relu_grad_at_zero_default
from symgrad.compile.backends import backend_named
from symgrad.compile.common import FLOATS, XMAX, exec_generated, require_code
from symgrad.compile.forms import stable_forms, stable_jacobian
from symgrad.compile.numpy_printer import KernelPrinter
from symgrad.derive import calculus
from symgrad.core.derivation import Derivation


_NO_JACOBIAN = "a matrix-valued function has no Jacobian here: compile a vector"


class CompiledFunction:
    """A function of a few variables (and its Jacobian), compiled to numpy and vectorized over
    points: ``f(P)`` with P of shape (..., k), one point per row, the variables in ``wrt`` order.

    The code is the function in stable forms (:func:`.forms.stable_forms`: log σ(x) as
    −softplus(−x), log(eˣ + eʸ) as logsumexp, …), and the Jacobian's code is the derivative of
    those forms (:func:`.forms.stable_jacobian`, with torch's values for x**y at x = 0), also for a
    Derivation: the same function as its result, which may overflow as written (d/dx of
    eˣ/(1 + eˣ) simplifies to eˣ/(1 + 2eˣ + e²ˣ), nan at x = 1000). ``jacobian_matrix`` is the
    simplified Jacobian to read (a Derivation's result)."""

    def __init__(self, f, wrt=None, relu_grad_at_zero=None, backend="numpy"):
        chosen = backend_named(backend)
        if chosen.name != "numpy" and chosen.function is None:
            raise ValueError(f"compile_function: backend {chosen.name!r} compiles networks only")
        self.backend = chosen
        # relu'(0) in this function: fixed when it is made (the package default unless given)
        self.relu_grad_at_zero = relu_grad_at_zero_default() if relu_grad_at_zero is None else \
            check_relu_grad_at_zero(relu_grad_at_zero)
        J = None
        if isinstance(f, Derivation):
            if "function" not in f.meta:
                raise ValueError("compile_function: this derivation records no function")
            meta, J = f.meta, f.result
            f, wrt = meta["function"], wrt or meta["wrt"]
            if J.cols == 1 and f.rows == 1 and len(meta["wrt"]) > 1:  # a gradient: ∇f = Jᵀ
                f, J = f[0], J.T
        if isinstance(f, str):
            f = calculus.parse(f)
        if isinstance(f, sp.MatrixBase) and min(f.shape) > 1:
            self.kind, F = "matrix", sp.Matrix(f)
        else:
            self.kind = "scalar" if isinstance(f, sp.Expr) else "vector"
            F = calculus.as_vector(f)
        if wrt is None:
            raise ValueError("compile_function: give the variables, e.g. wrt='x1 x2'")
        self.wrt = calculus.as_symbols(wrt, F)
        extra = F.free_symbols - set(self.wrt)
        if extra:
            raise ValueError(f"compile_function: {', '.join(sorted(map(str, extra)))} not among "
                             f"the variables {', '.join(map(str, self.wrt))}")
        self.expr, self._J, self._fns = F, J, {}
        if chosen.name != "numpy":  # printed now: what this backend cannot print fails here
            self._make("value")
            if self.kind != "matrix":
                self._make("jacobian")
            return
        # printed on first call: any function it cannot print fails here, naming it, instead
        require_code([F] + ([J] if J is not None else []), ("numpy",), derivatives=True)
        probe = KernelPrinter({"relu_grad_at_zero": self.relu_grad_at_zero})
        for app in F.atoms(Application):  # a SymPy function nobody registered: SymPy's printer
            if type(app) not in RULES:
                probe.doprint(app)

    @property
    def jacobian_matrix(self):
        if self.kind == "matrix":
            raise ValueError(_NO_JACOBIAN)
        if self._J is None:
            self._J = calculus.jacobian(self.expr, self.wrt)
        return self._J

    def _make(self, what):
        if what not in self._fns:
            if what == "jacobian" and self.kind == "matrix":
                raise ValueError(_NO_JACOBIAN)
            M = stable_forms(self.expr) if what == "value" else \
                stable_jacobian(self.expr, self.wrt)
            shape = (() if self.kind == "scalar" and what == "value" else
                     (M.rows,) if what == "value" and self.kind == "vector" else M.shape)
            if self.backend.name != "numpy":
                self._fns[what] = self.backend.function(what, M, shape, self.wrt,
                                                        self.relu_grad_at_zero)
                return self._fns[what]
            cells = [(i,) if len(shape) == 1 else (i // M.cols, i % M.cols) for i in range(len(M))]
            printer = KernelPrinter({"relu_grad_at_zero": self.relu_grad_at_zero})
            printer.env = {x: f"_v{i}" for i, x in enumerate(self.wrt)}
            reps, exprs = sp.cse(list(M), symbols=sp.numbered_symbols("_t"))
            lines = [f"def {what}(P):", f"    P = _points(P, {len(self.wrt)})", "    dt = P.dtype"]
            lines += [f"    _v{i} = P[..., {i}]" for i in range(len(self.wrt))]
            body = [f"    {s} = {printer.doprint(v)}" for s, v in reps]
            body.append(f"    out = np.empty(P.shape[:-1] + {shape}, dt)")
            body += [f"    out[..., {', '.join(map(str, c))}] = {printer.doprint(e)}"
                     if shape else f"    out[...] = {printer.doprint(e)}" for c, e in zip(cells, exprs)]
            if "xmax" in "".join(body):
                lines.append("    xmax = _XMAX[dt]")
            src = "\n".join(lines + body + ["    return out"]) + "\n"
            self._fns[what] = exec_generated(src, what, dict(np=np, _points=_points, _XMAX=XMAX))
        return self._fns[what]

    def __call__(self, P):
        return self._make("value")(P)

    def jacobian(self, P):
        """(..., outputs, k): rows are the outputs, columns the variables."""
        return self._make("jacobian")(P)

    def gradient(self, P):
        """∇f at the points P, shaped as P: (..., k), and for one variable (m,) points give (m,)."""
        if self.kind != "scalar":
            raise ValueError("gradient: the function is not scalar; use jacobian")
        J = self._make("jacobian")(P)
        return J[..., 0, :].reshape(tuple(P.shape) if hasattr(P, "shape") else np.shape(P))

    @property
    def source(self):
        self._make("value")
        if self.kind != "matrix":
            self._make("jacobian")
        return "\n".join(f.source for f in self._fns.values())


def _points(P, k):
    P = np.asarray(P)
    if P.dtype not in FLOATS:
        if P.dtype.kind not in "biuf":
            raise ValueError(f"points must be numeric, got {P.dtype}")
        P = P.astype(np.float64)
    if k == 1 and (P.ndim == 0 or P.shape[-1] != 1):
        P = P[..., None]
    if P.ndim == 0 or P.shape[-1] != k:
        raise ValueError(f"points have shape {P.shape}; expected (..., {k}), one point per row")
    return P


def compile_function(f, wrt=None, relu_grad_at_zero=None, backend="numpy") -> CompiledFunction:
    """Compile ``f`` (text, an expression, a vector or a matrix of expressions, or a Derivation from
    derive_jacobian/derive_gradient) in the variables ``wrt``: ``fn(P)``, ``fn.jacobian(P)``,
    ``fn.gradient(P)``, each vectorized over the points P (..., k). ``relu_grad_at_zero``: relu'(0)
    in this function (default: the package default when it is made; ``fn.relu_grad_at_zero``).
    ``backend``: "numpy", or an array backend ("jax", "torch", "cupy"): the same stable forms
    printed for it, taking and returning its arrays (a primitive it cannot print fails here)."""
    return CompiledFunction(f, wrt, relu_grad_at_zero, backend)
