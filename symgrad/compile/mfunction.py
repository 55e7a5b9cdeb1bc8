"""A matrix-calculus result compiled to numpy: ``fn(A=..., x=...)`` → (value, derivative).

Where it sits: compile, above :mod:`symgrad.derive.mcalc`. Like matrixcalculus.org's exported
``fAndG``, with shape checks: the generated function (``f_and_gradient``, ``f_and_jacobian`` or
``f_and_hessian``; ``f_and_derivative`` is the same function) takes the user's names as its
parameters, sorted by name, so it is called by keyword as ``d.compile()`` is (``fn(A=..., x=...)``);
a name that is not a plain identifier for the module (a Python keyword or builtin, ``np``, one
starting with ``_``) is a positional ``_a<i>`` instead, ``i`` its place in that order, named in the
docstring. User names are data: only a name that passed that check reaches the code. A Python
wrapper binds keyword arguments to them, checking every shape against the declared kinds and the
sizes they share, in one line naming the argument.

Code is printed by one rule per node class (``EMIT``), with each repeated subexpression computed
once. Vectors are (n, 1) columns inside and 1-D arrays at the boundary, as numpy users hold them.
A diagonal matrix is never formed: diag(d) B is ``d * B`` (Xᵀ diag(s) X at 8192 × 128 would
otherwise build a 512 MB diagonal). The stable forms: softplus as logaddexp(0, ·), σ through it,
softmax and logsumexp shifted by the maximum, log det by slogdet.

``compile(backend="jax" | "torch" | "cupy")`` prints the same rules through that backend's
printer (the registry's ``matrix`` field: an :class:`ArrayMatrixPrinter` whose ``ops`` table has
numpy's keys), with the same argument checks; the arrays in and out are the framework's.
"""
from __future__ import annotations

import inspect
import re

import numpy as np
import sympy as sp

from symgrad.compile.backends import backend_named
from symgrad.compile.common import FLOATS, exec_generated
from symgrad.core.matexpr import (Commutation, DiagVec, Elementwise, LogSumExp, Norm2, Over,
                                  Scalar, Softmax, SoftmaxJacobian, SoftmaxVJP)
from symgrad.core.derivation import Derivation
from symgrad.derive import mcalc

__all__ = ["compile_matrix", "CompiledMatrixFunction", "EMIT", "NUMPY_FUNCTIONS", "NUMPY_OPS",
           "MatrixPrinter", "ArrayMatrixPrinter",
           "MatrixDerivation", "grad", "derivative", "hessian"]

FLOAT_NAMES = tuple(map(str, FLOATS))  # "float32", "float64"

# elementwise and scalar functions by name (symgrad's primitives and SymPy's functions)
NUMPY_FUNCTIONS = {
    "exp": "np.exp", "log": "np.log", "sqrt": "np.sqrt", "abs": "np.abs", "Abs": "np.abs",
    "sin": "np.sin", "cos": "np.cos", "tanh": "np.tanh", "sign": "np.sign",
    "sigmoid": "_m_sigmoid", "relu": "_m_relu", "softplus": "_m_softplus", "step": "_m_step",
}


def _m_sigmoid(x):
    return np.exp(-np.logaddexp(0.0, -x))  # no overflow at ±1000, unlike 1/(1 + exp(-x))


def _m_relu(x):
    return np.maximum(x, 0.0)


def _m_softplus(x):
    return np.logaddexp(0.0, x)


def _m_step(x):
    return (np.asarray(x) > 0).astype(float)  # relu'(0) = 0, torch's choice


def _m_softmax(z, axis=0):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _m_logsumexp(z, axis=0):
    m = z.max(axis=axis, keepdims=True)
    return m + np.log(np.exp(z - m).sum(axis=axis, keepdims=True))


def _m_softmax_vjp(s, g, axis=0):
    return s * (g - (s * g).sum(axis=axis, keepdims=True))


def _m_softmax_jacobian(s, m):
    """blkdiag_i(diag(sᵢ) − sᵢsᵢᵀ) @ m, block by block: the n·k × n·k matrix is never formed
    (for the digits, 17970² entries: 2.6 GB)."""
    n, k = s.shape
    b = m.reshape(n, k, -1)
    out = s[:, :, None] * (b - np.einsum("ik,ikt->it", s, b)[:, None, :])
    return out.reshape(n * k, -1)


def _m_softmax_sandwich(a, s, x):
    """(A ⊗ I) blkdiag_i(diag(sᵢ) − sᵢsᵢᵀ) (X ⊗ I) = Σ_i (aᵢ xᵢᵀ) ⊗ (diag(sᵢ) − sᵢsᵢᵀ), aᵢ the
    i-th column of A: one GEMM of the rows aᵢ ⊗ sᵢ against xᵢ ⊗ sᵢ (n × p·k by n × m·k) and k
    GEMMs for the diagonal. For the digits' softmax regression (n = 1797, k = 10, 65 columns)
    the Newton step took 233 ms applied factor by factor (passes over 17970 × 650 arrays)."""
    p, n = a.shape
    m, k = x.shape[1], s.shape[1]
    b = (a.T[:, :, None] * s[:, None, :]).reshape(n, p * k)
    c = (x[:, :, None] * s[:, None, :]).reshape(n, m * k)
    h = -(b.T @ c).reshape(p, k, m, k)
    # one GEMM per class (a batched matmul over a transposed view took 0.4 s, these 2 ms)
    d = np.stack([(a * s[:, q]) @ x for q in range(k)])  # (k, p, m)
    i = np.arange(k)
    h[:, i, :, i] += d
    return h.reshape(p * k, m * k)


def _m_commutation(r, c):
    """K with K vec[A] = vec[Aᵀ] for an r×c A, vec row by row (numpy's C order)."""
    k = np.zeros((r * c, r * c))
    p = np.arange(r * c)
    k[(p % c) * r + p // c, p] = 1.0
    return k


def _m_kron_eye(a, k, m):
    """(A ⊗ I_k) @ m without forming A ⊗ I_k: (A ⊗ I) vec-row[M] = vec-row[A M]."""
    return (a @ m.reshape(a.shape[1], -1)).reshape(a.shape[0] * k, -1)


def _m_logdet(X):
    sign, logdet = np.linalg.slogdet(X)
    if sign <= 0:
        raise ValueError("logdet: det of the matrix is not positive at the given arguments")
    return logdet


_HELPERS = {f.__name__: f for f in (_m_sigmoid, _m_relu, _m_softplus, _m_step, _m_softmax,
                                     _m_logsumexp, _m_logdet, _m_softmax_vjp, _m_softmax_jacobian,
                                     _m_kron_eye, _m_softmax_sandwich, _m_commutation)}

# every call the rules below print, by operation: numpy's code (format strings over the printed
# operands). An array backend's printer (:class:`ArrayMatrixPrinter`) has a table of its own with
# the same keys; the helpers ``_m_*`` are each printer's namespace.
NUMPY_OPS = {
    "inv": "np.linalg.inv({0})", "det": "np.linalg.det({0})", "trace": "np.trace({0})",
    "diagflat": "np.diagflat({0})", "diagonal": "np.diag({0}).reshape(-1, 1)",
    "colsum": "np.sum({0}, axis=0, keepdims=True)", "rowsum": "np.sum({0}, axis=1, keepdims=True)",
    "sqrt": "np.sqrt({0})", "log": "np.log({0})", "norm2": "np.sqrt(np.sum({0} ** 2))",
    "eye": "np.eye({0})", "ones": "np.ones(({0}, {1}))", "zeros": "np.zeros(({0}, {1}))",
    "kron": "np.kron({0}, {1})", "matpow": "np.linalg.matrix_power({0}, {1})",
    "size_pow": "float({0}) ** ({1})", "logdet": "_m_logdet({0})",
    "softmax": "_m_softmax({0}, axis={1})", "logsumexp": "_m_logsumexp({0}, axis={1})",
    "softmax_vjp": "_m_softmax_vjp({0}, {1}, axis={2})",
    "commutation": "_m_commutation({0}, {1})", "softmax_jacobian": "_m_softmax_jacobian({0}, {1})",
    "softmax_sandwich": "_m_softmax_sandwich({0}, {1}, {2})",
    "kron_eye": "_m_kron_eye({0}, {1}, {2})", "out": "_m_out({0})",
}


class MatrixPrinter:
    """The numpy printer of matrix-calculus results: which code each operation is (``ops``, the
    entrywise ``functions``), the namespace the module runs in, the boundary lines and the
    argument checks. One printer per backend: an array backend's is a subclass
    (:class:`ArrayMatrixPrinter`), given by its registration's ``matrix``."""

    backend = "numpy"
    ops = NUMPY_OPS
    functions = NUMPY_FUNCTIONS

    def namespace(self) -> dict:
        return {"np": np, **_HELPERS}

    def boundary(self, ident, sym) -> str:
        """The line making an argument its kind inside (vectors (n, 1) columns)."""
        if isinstance(sym, sp.MatrixSymbol):
            return (f"    {ident} = np.asarray({ident}, dtype=float)" +
                    (".reshape(-1, 1)" if sym.shape[1] == 1 else ""))
        return f"    {ident} = float({ident})"

    def prelude(self, first) -> list:
        return []

    def head(self, body) -> list:
        """The module's imports and the helpers its body calls (self-contained)."""
        helpers = [inspect.getsource(f) for n, f in _HELPERS.items() if f"{n}(" in body]
        helpers.append(inspect.getsource(_m_out))
        return ["import numpy as np", "", "", "\n\n".join(h.rstrip() for h in helpers), "", ""]

    def bind(self, problem, arrays) -> list:
        return _bind(problem, arrays)


def _np_as(table, module):
    """numpy's code with ``np.`` as another module's name (``jnp.``, ``cp.``)."""
    return {k: v.replace("np.", f"{module}.") for k, v in table.items()}


def numpy_like_ops(module):
    """The ``ops`` of a backend whose module has numpy's API (``jnp``, ``cp``): numpy's, with
    arrays made in the arguments' dtype ``_dt`` and the helpers that need it given it."""
    return {**_np_as(NUMPY_OPS, module), "eye": module + ".eye({0}, dtype=_dt)",
            "ones": module + ".ones(({0}, {1}), _dt)", "zeros": module + ".zeros(({0}, {1}), _dt)",
            "size_pow": "{0} ** ({1})", "commutation": "_m_commutation({0}, {1}, _dt)",
            "out": "_m_out({0}, _dt)"}


def _helpers_over(module, *names):
    """numpy's helpers ``_m_*`` by name, run over another module with numpy's API (jax.numpy,
    cupy): the same code, its ``np`` that module."""
    import types
    return {n: types.FunctionType(_HELPERS[n].__code__, {**_HELPERS[n].__globals__, "np": module},
                                  n, _HELPERS[n].__defaults__) for n in names}


class ArrayMatrixPrinter(MatrixPrinter):
    """An array backend's printer of matrix-calculus results: ``ops`` and ``functions`` its own
    tables (same keys as numpy's), the helpers ``_m_*`` its namespace's, the arrays its
    framework's. Arguments are checked as numpy's are (:func:`_bind` with the backend's
    :class:`~symgrad.compile.arrays.Runtime`), kept on their device, in one dtype that the
    results keep (``_dt``, and ``_dev`` where the framework places arrays by device). The
    function is pure: no in-place update, so JAX can jit and differentiate it."""

    dtype_line = "    _dt = {0}.dtype"

    def __init__(self, rt):
        self.rt = rt

    def boundary(self, ident, sym) -> str:
        if isinstance(sym, sp.MatrixSymbol) and sym.shape[1] == 1:
            return f"    {ident} = {ident}.reshape(-1, 1)"
        return ""

    def prelude(self, first) -> list:
        return [self.dtype_line.format(first)]

    def head(self, body) -> list:
        return [f"# {self.backend}: the helpers _m_* are symgrad.compile.{self.backend}_backend's",
                "", ""]

    def bind(self, problem, arrays) -> list:
        return _bind(problem, arrays, self.rt)


class _Emitter:
    def __init__(self, names: dict, sizes: dict, printer: MatrixPrinter | None = None):
        self.names, self.sizes = names, sizes  # SymPy symbol → generated identifier
        self.lines, self.memo, self.count = [], {}, 0
        self.printer = printer or MatrixPrinter()

    def op(self, name, *args) -> str:
        """The printer's code for one operation over already printed operands."""
        return self.printer.ops[name].format(*args)

    def __call__(self, e) -> str:
        """An identifier or literal holding e's value (emitting the lines that compute it)."""
        if e in self.names:
            return self.names[e]
        if e in self.sizes:
            return self.sizes[e]
        if isinstance(e, sp.Number):
            return repr(float(e))
        if e in self.memo:
            return self.memo[e]
        for cls in type(e).__mro__:
            if cls in EMIT:
                code = EMIT[cls](self, e)
                break
        else:
            fns = self.printer.functions
            if isinstance(e, sp.Function) and e.func.__name__ in fns:
                code = f"{fns[e.func.__name__]}({self(e.args[0])})"
            else:
                raise ValueError(f"compile: no {self.printer.backend} code for "
                                 f"{type(e).__name__} ({e})")
        name = f"_t{self.count}"
        self.count += 1
        self.lines.append(f"    {name} = {code}")
        self.memo[e] = name
        return name


EMIT: dict[type, object] = {}


def defemit(*classes):
    def register(fn):
        for cls in classes:
            EMIT[cls] = fn
        return fn
    return register


# one operand, one call: the printer's operation for each
UNARY = {sp.Inverse: "inv", sp.Determinant: "det", sp.Trace: "trace", sp.DiagMatrix: "diagflat"}
for _cls, _op in UNARY.items():
    EMIT[_cls] = lambda p, e, _op=_op: p.op(_op, p(e.args[0]))
EMIT[sp.Transpose] = lambda p, e: f"{p(e.args[0])}.T"


@defemit(Softmax, LogSumExp)
def _e_softmax(p, e):
    z, axis = e.args
    return p.op("softmax" if isinstance(e, Softmax) else "logsumexp", p(z), int(axis))


@defemit(SoftmaxVJP)
def _e_softmax_vjp(p, e):
    s, g, axis = e.args
    return p.op("softmax_vjp", p(s), p(g), int(axis))


@defemit(Commutation)
def _e_commutation(p, e):
    return p.op("commutation", _dim(p, e.args[0]), _dim(p, e.args[1]))


@defemit(DiagVec)
def _e_diagvec(p, e):
    return p.op("diagflat", p(e.args[0]))  # ravels in C order: vec row by row


@defemit(SoftmaxJacobian)
def _e_softmax_jacobian(p, e):  # alone (not applied to anything): applied to I
    n = e.shape[0]
    return p.op("softmax_jacobian", p(e.args[0]), p.op("eye", _dim(p, n)))


def _operator(m):
    """A factor applied to what follows it rather than formed: (A ⊗ I) and the softmax
    Jacobian's blocks."""
    return isinstance(m, SoftmaxJacobian) or (
        isinstance(m, sp.KroneckerProduct) and len(m.args) == 2
        and isinstance(m.args[1], sp.Identity))


def _matmul_applied(p, coeff, mats):
    """A product with operators in it, applied right to left: (Xᵀ ⊗ I) Λ (X ⊗ I) for the
    digits' softmax regression (n = 1797, k = 10, 64 features) is 7·10⁸ multiply-adds where the
    formed matrices would take 7·10⁹ and 2.6 GB."""
    if (len(mats) >= 3 and isinstance(mats[-2], SoftmaxJacobian) and _operator(mats[-3])
            and isinstance(mats[-1], sp.KroneckerProduct) and _operator(mats[-1])):
        L, S, R = mats[-3].args[0], mats[-2].args[0], mats[-1].args[0]
        out, mats = p.op("softmax_sandwich", p(L), p(S), p(R)), mats[:-2]
    else:
        out = p(mats[-1])
    for m in reversed(mats[:-1]):
        if isinstance(m, SoftmaxJacobian):
            out = p.op("softmax_jacobian", p(m.args[0]), out)
        elif _operator(m):
            out = p.op("kron_eye", p(m.args[0]), _dim(p, m.args[1].shape[0]), out)
        elif isinstance(m, sp.DiagMatrix):
            out = f"({p(m.args[0])} * {out})"
        else:
            out = f"({p(m)} @ {out})"
    return out if coeff == 1 else f"({p(coeff)}) * {out}"


@defemit(sp.MatAdd, sp.Add)
def _e_add(p, e):
    return " + ".join(f"({p(a)})" for a in e.args)


@defemit(sp.Mul)
def _e_mul(p, e):
    return " * ".join(f"({p(a)})" for a in e.args)


@defemit(sp.Pow)
def _e_pow(p, e):
    b, x = e.args
    if x == sp.Rational(1, 2):
        return p.op("sqrt", p(b))
    if not x.is_number:  # 2ⁿ of det(2X): a size in the exponent
        return p.op("size_pow", p(b), p(x))
    return f"({p(b)}) ** {float(x)!r}"


@defemit(sp.MatMul)
def _e_matmul(p, e):
    coeff, mats = e.as_coeff_matrices()
    if any(_operator(m) for m in mats[:-1]):
        return _matmul_applied(p, coeff, mats)
    # diag(d) B = d * B and A diag(d) = A * dᵀ: a diagonal is never formed
    out, i = None, 0
    while i < len(mats):
        m = mats[i]
        if isinstance(m, sp.OneMatrix) and m.shape[0] == 1 and i + 1 < len(mats):
            out = p.op("colsum", p(mats[i + 1]))  # 𝟏ᵀB: column sums
            i += 2
            continue
        if isinstance(m, sp.OneMatrix) and m.shape[1] == 1 and out is not None:
            out = p.op("rowsum", out)  # A𝟏: row sums
            i += 1
            continue
        if isinstance(m, sp.DiagMatrix):
            d = p(m.args[0])
            if out is not None:
                out = f"({out} * {d}.T)"
            elif i + 1 < len(mats):
                out = f"({d} * {p(mats[i + 1])})"
                i += 1
            else:
                out = p.op("diagflat", d)
        else:
            v = p(m)
            out = v if out is None else f"({out} @ {v})"
        i += 1
    return out if coeff == 1 else f"({p(coeff)}) * {out}"


@defemit(sp.log)
def _e_log(p, e):
    if isinstance(e.args[0], sp.Determinant):
        return p.op("logdet", p(e.args[0].arg))
    return p.op("log", p(e.args[0]))


@defemit(sp.HadamardProduct)
def _e_hadamard(p, e):
    return " * ".join(p(a) for a in e.args)


@defemit(sp.HadamardPower)
def _e_hpow(p, e):
    return f"{p(e.args[0])} ** {float(e.args[1])!r}"


@defemit(Elementwise)
def _e_elementwise(p, e):
    fns = p.printer.functions
    if e.label not in fns:
        raise ValueError(f"compile: no {p.printer.backend} code for the entrywise function "
                         f"{e.label}")
    return f"{fns[e.label]}({p(e.operands[0])})"


@defemit(Norm2)
def _e_norm2(p, e):  # ‖v‖₂, or ‖X‖_F of a matrix
    return p.op("norm2", p(e.arg))


@defemit(Over)
def _e_over(p, e):
    return f"({p(e.args[0])}) / ({p(e.args[1])})"


@defemit(Scalar)
def _e_scalar(p, e):
    return f"({p(e.matrix)})[0, 0]"


@defemit(sp.DiagonalOf)
def _e_diagonal(p, e):
    return p.op("diagonal", p(e.args[0]))


def _dim(p, d):
    return str(int(d)) if d.is_Integer else p(d)


@defemit(sp.Identity)
def _e_eye(p, e):
    return p.op("eye", _dim(p, e.shape[0]))


@defemit(sp.OneMatrix)
def _e_ones(p, e):
    return p.op("ones", _dim(p, e.shape[0]), _dim(p, e.shape[1]))


@defemit(sp.ZeroMatrix)
def _e_zeros(p, e):
    return p.op("zeros", _dim(p, e.shape[0]), _dim(p, e.shape[1]))


@defemit(sp.KroneckerProduct)
def _e_kron(p, e):
    out = p(e.args[0])
    for a in e.args[1:]:
        out = p.op("kron", out, p(a))
    return out


@defemit(sp.MatPow)
def _e_matpow(p, e):
    return p.op("matpow", p(e.args[0]), int(e.args[1]))


class CompiledMatrixFunction:
    """``fn(**arrays)`` → (value, derivative); for a Hessian (value, gradient, Hessian).

    Arguments are the names of the expression, as keywords: scalars as numbers, vectors as 1-D
    arrays (or (n, 1) columns), matrices as 2-D arrays. ``source`` is the generated module,
    ``names`` the order of its positional arguments."""

    def __init__(self, derivation: Derivation, backend: str = "numpy"):
        make = backend_named(backend).matrix
        if make is None:
            raise ValueError(f"compile: backend {backend!r} has no printer for matrix-calculus "
                             "results")
        self.printer = printer = make()
        meta = derivation.meta
        if "problem" not in meta:
            raise ValueError("compile: not a matrix-calculus derivation (use symgrad.grad, "
                             "derivative or hessian)")
        self.problem, self.wrt, self.order = meta["problem"], meta["wrt"], meta["order"]
        outputs = [self.problem.expr]
        if self.order == "hessian":
            outputs.append(meta["gradient"])
        outputs.append(derivation.result)
        self.names = parameter_order(self.problem)
        self.source = module_source(self.problem, outputs, self.order, self.wrt.name, printer)
        self.function_name = FUNCTION_NAMES[self.order]
        self.backend = backend
        self._fn = exec_generated(self.source, self.function_name, printer.namespace())

    def __call__(self, **arrays):
        args = self.printer.bind(self.problem, arrays)
        outs = self._fn(*args)
        return tuple(outs)

    def __repr__(self):
        return f"<compiled {self.order} of {self.problem.text!r} by {self.wrt.name}>"


FUNCTION_NAMES = {"grad": "f_and_gradient", "jacobian": "f_and_jacobian",
                  "hessian": "f_and_hessian"}
# what the generated module itself defines or imports: never a parameter's name
# (the array backends' modules too: one parameter naming holds for every backend)
_MODULE_NAMES = {"np", "jnp", "jax", "torch", "cp", "f_and_derivative", *FUNCTION_NAMES.values()}


def parameter_order(problem) -> list[str]:
    """The generated function's parameters: the expression's names, sorted (a stable order that
    does not depend on where a name first appears in the text)."""
    return sorted(problem.symbols)


def parameter_name(name: str, i: int) -> str:
    """``name`` itself when it is a plain identifier for the module, else the positional
    ``_a<i>``: no keyword, builtin, module name or leading underscore (the generated temporaries
    are ``_t0``, ``_s0``…), so a user's name is never code but what it was checked to be."""
    import builtins
    import keyword
    plain = (isinstance(name, str) and name.isidentifier() and name.isascii()
             and re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name) is not None
             and not keyword.iskeyword(name) and not keyword.issoftkeyword(name)
             and not hasattr(builtins, name) and name not in _MODULE_NAMES
             and not name.startswith("_m_"))
    return name if plain else f"_a{i}"


_RETURNS = {"grad": "f and its gradient (shaped like {w})", "jacobian": "f and its Jacobian",
            "hessian": "f, its gradient and its Hessian"}


def module_source(problem, outputs, order="grad", wrt="", printer=None) -> str:
    """A self-contained numpy module (``printer`` an array backend's: its function, the helpers
    in its namespace): ``f_and_gradient(A, x)`` (``f_and_jacobian``,
    ``f_and_hessian``; ``f_and_derivative`` an alias), the parameters the expression's names
    sorted, each its own name when that is a plain identifier (:func:`parameter_name`) and
    ``_a<i>`` otherwise (the docstring says which), vectors as 1-D arrays or (n, 1) columns,
    results as Python floats, 1-D vectors and 2-D matrices."""
    order_names = parameter_order(problem)
    names = {problem.symbols[n]: parameter_name(n, i) for i, n in enumerate(order_names)}
    sizes = {}
    printer = printer or MatrixPrinter()
    lines = printer.prelude(next(iter(names.values())))
    for sym, ident in names.items():  # the boundary: arrays in, each of its kind's shape
        line = printer.boundary(ident, sym)
        if line:
            lines.append(line)
    for sym, ident in names.items():  # the symbolic sizes, read off the arguments
        if isinstance(sym, sp.MatrixSymbol):
            for axis, dim in enumerate(sym.shape):
                if isinstance(dim, sp.Symbol) and dim not in sizes:
                    sizes[dim] = f"_s{len(sizes)}"
                    lines.append(f"    {sizes[dim]} = {ident}.shape[{axis}]")
    emit = _Emitter(names, sizes, printer)
    results = [emit(o) for o in outputs]
    legend = ", ".join((f"{ident} ({_kind_text(sym)})" if ident == name else
                        f"{ident} = {_quoted(name)} ({_kind_text(sym)})")
                       for name, (sym, ident) in zip(order_names, names.items()))
    returns = _RETURNS[order].format(w=wrt)
    fname = FUNCTION_NAMES[order]
    head = printer.head("\n".join(emit.lines)) + [
            f"def {fname}({', '.join(names.values())}):",
            f'    """Generated by symgrad from {_quoted(problem.text)}. Parameters, by name '
            f'(call by keyword, or in this order): {legend}. Returns {returns}."""']
    out = ", ".join(emit.op("out", r) for r in results)
    tail = ["", "", f"f_and_derivative = {fname}  # the name every command's module shares", ""]
    return "\n".join(head + lines + emit.lines + [f"    return {out}"] + tail)


def _quoted(text: str) -> str:
    """The user's text inside a docstring: only printable ASCII without quotes or backslashes
    (the parser allows nothing else that could end the string), shortened."""
    safe = "".join(c for c in text if c.isascii() and c.isprintable() and c not in "\"\\")
    return "'" + (safe if len(safe) <= 60 else safe[:57] + "...").replace("'", "’") + "'"


def _kind_text(sym) -> str:
    if not isinstance(sym, sp.MatrixSymbol):
        return "a number"
    r, c = sym.shape
    return f"a vector of {r}" if c == 1 else f"a {r}×{c} matrix"


def _m_out(v):
    v = np.asarray(v, dtype=float)
    if v.ndim == 0 or v.shape == (1, 1):
        return float(v.reshape(()))
    return v[:, 0] if v.ndim == 2 and v.shape[1] == 1 else v


def _numbers(name, a):
    """numpy's conversion of one argument: float64, finite."""
    try:
        v = np.asarray(a, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected numbers, got {type(a).__name__}") from None
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name}: contains nan or inf")
    return v


def _framework_arrays(names, arrays, rt) -> dict:
    """An array backend's conversion: its arrays kept on their device, numpy arrays and lists
    put beside them; one float dtype for all, float32 when every float array given is float32
    (Python numbers have no say), else float64; finite (checked where the values are concrete:
    not on JAX's tracers, so the function stays jittable)."""
    like = next((arrays[n] for n in names if rt.is_array(arrays[n])), None)
    given, floats = {}, set()
    for n in names:
        a = arrays[n]
        if rt.is_array(a):
            kind = rt.dtype_name(a)
            if like is not None:
                rt.check_device(a, like, n)
        else:
            try:
                arr = np.asarray(a)
            except (TypeError, ValueError):
                arr = None
            if arr is None or arr.dtype.kind not in "biuf":
                raise ValueError(f"{n}: expected numbers, got {type(a).__name__}")
            kind = "float64" if isinstance(a, (int, float)) else str(arr.dtype)
            a = arr if arr.dtype.kind == "f" else arr.astype(np.float64)
        if kind in FLOAT_NAMES and not isinstance(arrays[n], (int, float)):
            floats.add(kind)
        elif not kind.startswith(("int", "uint", "bool", "float")):
            raise ValueError(f"{n}: expected float32 or float64 numbers, got {kind}")
        given[n] = a
    dt = "float32" if floats == {"float32"} else "float64"
    rt.check_dtype(dt)
    out = {}
    for n, a in given.items():
        if not rt.is_array(a):
            a = rt.asarray(a.astype(dt), like)
        elif rt.dtype_name(a) != dt:
            a = rt.cast(a, dt)
        if rt.all_finite(a) is False:
            raise ValueError(f"{n}: contains nan or inf")
        out[n] = a
    return out


def _bind(problem, arrays, rt=None) -> list:
    """The arrays in the generated function's order, each shape checked against its kind and
    the sizes it shares with the others (one line naming the argument); numpy's (float64), or
    with ``rt`` an array backend's runtime (:func:`_framework_arrays`)."""
    unknown = sorted(set(arrays) - set(problem.symbols))
    if unknown:
        raise ValueError(f"unexpected argument {unknown[0]!r}: the arguments are "
                         f"{', '.join(problem.symbols)}")
    order = parameter_order(problem)
    for name in order:
        if name not in arrays:
            raise ValueError(f"missing argument {name!r} (the arguments are "
                             f"{', '.join(problem.symbols)})")
    values = ({n: _numbers(n, arrays[n]) for n in order} if rt is None else
              _framework_arrays(order, arrays, rt))
    bound: dict = {}
    out = []
    for name in order:
        sym, v = problem.symbols[name], values[name]
        if not isinstance(sym, sp.MatrixSymbol):
            if v.ndim != 0:
                raise ValueError(f"{name}: a scalar, got an array of shape {tuple(v.shape)}")
            out.append(float(v) if rt is None else v)
            continue
        vector = sym.shape[1] == 1
        if vector and v.ndim == 1:
            v = v.reshape(-1, 1)
        if v.ndim != 2 or (vector and v.shape[1] != 1):
            want = "a vector (1-D array)" if vector else "a matrix (2-D array)"
            raise ValueError(f"{name}: {want}, got shape {tuple(v.shape)}")
        for axis, dim in enumerate(sym.shape):
            got = v.shape[axis]
            if dim.is_Integer and got != int(dim):
                raise ValueError(f"{name}: size {got} along axis {axis}, declared {dim}")
            if isinstance(dim, sp.Symbol):
                if dim in bound and bound[dim][0] != got:
                    raise ValueError(f"{name}: size {got} along axis {axis}, but {dim} = "
                                     f"{bound[dim][0]} from {bound[dim][1]}")
                bound.setdefault(dim, (got, name))
        out.append(v)
    return out


def compile_matrix(derivation: Derivation, backend: str = "numpy") -> CompiledMatrixFunction:
    return CompiledMatrixFunction(derivation, backend)


class MatrixDerivation(Derivation):
    """A matrix-calculus derivation (``symgrad.grad``, ``derivative``, ``hessian``): its
    ``result`` a matrix expression, and ``compile()`` its numpy function."""

    def compile(self, backend: str = "numpy") -> CompiledMatrixFunction:
        """``fn(**arrays)`` → (value, derivative); a Hessian's → (value, gradient, Hessian).
        ``backend``: any registered one with a matrix printer ("numpy", "jax", "torch",
        "cupy"): the arrays in and out are that framework's, on their device and dtype."""
        return CompiledMatrixFunction(self, backend)

    def to_python(self) -> str:
        """The compiled function as a self-contained module's source."""
        return self.compile().source


def _lifted(derive):
    def api(f, wrt, *, vectors="", matrices="", symmetric="", scalars="", sizes=None):
        d = derive(f, wrt, vectors=vectors, matrices=matrices, symmetric=symmetric,
                   scalars=scalars, sizes=sizes)
        return MatrixDerivation(d.title, d.steps, d.result, d.meta)
    api.__name__, api.__doc__ = derive.__name__.replace("derive_", ""), derive.__doc__
    return api


grad = _lifted(mcalc.derive_grad)
derivative = _lifted(mcalc.derive_derivative)
hessian = _lifted(mcalc.derive_hessian)
