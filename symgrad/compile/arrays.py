"""What the array backends (JAX, PyTorch, CuPy) share: a functional printer and the kernel builder.

Where it sits: compile, beside :mod:`.numpy_printer` (whose kernels hold batch values transposed
and update dead temporaries in place). Here every batch value is held as the notes' batch form, one
example a row, and every statement makes a new array: a pure function, as ``jax.jit`` wants, and
as readable for torch and CuPy. Each backend is one module (:mod:`.jax_backend`,
:mod:`.torch_backend`, :mod:`.cupy_backend`) giving a :class:`Runtime` (how arrays are checked,
converted and how the function is wrapped: ``jax.jit``, ``torch.no_grad``) and ONE table keyed by
primitive class of the code it prints for each primitive (``TABLE[sigmoid] = "torch.sigmoid({0})"``,
a format string over the printed arguments or a function ``(printer, *args)``, as a primitive's
``code`` in its registration; an entry there under the backend's name is used when the table has
none). A primitive with neither, or a matrix operation this printer has no rule for, fails while
compiling, naming it and the backend. Nothing here imports jax, torch or cupy: the runtimes do,
when a kernel is first built.

What the kernels keep of the numpy backend's guarantees: the program is the same typed program
(the fused ŷ − y of softmax + cross-entropy and σ + bce, the losses written in the logits with
softplus and log-sum-exp), every primitive in a stable form (σ and softplus never overflow at
±1000, softmax and log-sum-exp shifted by the framework's own routines), the dtype is the
parameters' (float32 or float64, X and Y converted to it on their device), and bad arguments are
one-line ValueErrors naming them, checked from shapes and dtypes only (no device-to-host copy; nan
in the data flows into the loss, as in the frameworks themselves).
"""
from __future__ import annotations

import math

import sympy as sp
from sympy.core.function import Application

from symgrad.core.matexpr import (N, Elementwise, LogSumExp, Normalize, NormalizeVJP, Softmax,
                                  SoftmaxVJP, SumAll)
from symgrad.core.primitives import RULES, MissingCodeError, call_args, step
from symgrad.core.program import Kind
from symgrad.compile.common import (PrimitivePrinting, atomic, broadcasts, exec_generated,
                                    lambda_body, legend, missing_code, print_elementwise)
from symgrad.compile.emit import cse
from symgrad.compile.kernel import _live  # the statements an output needs, as numpy's
from symgrad.compile.spec import Spec, check_keys, check_label_range, is_dask, out_of_core
from symgrad.derive import backprop

# the matrix operations this printer writes (anything else in a program is refused, named)
MATRIX_OPS = (sp.MatrixSymbol, sp.MatAdd, sp.MatMul, sp.HadamardProduct, sp.HadamardPower,
              sp.Transpose, sp.OneMatrix, sp.ZeroMatrix, sp.BlockMatrix, sp.MatrixSlice,
              sp.ImmutableDenseMatrix,
              Elementwise, SumAll, Softmax, LogSumExp, SoftmaxVJP, Normalize, NormalizeVJP)


class ArrayPrinting(PrimitivePrinting):
    """Matrix expressions of a batch program (one example a row, as written) as array code of one
    framework, and scalar expressions entrywise. Mixed into SymPy's printer for that framework
    (``JaxPrinter``, ``TorchPrinter``), whose ``_print_<Function>`` methods print whatever no
    table entry covers. Subclasses set ``backend``, ``table``, ``modules`` and the few calls that
    differ (``sum``, ``softmax``, ``logsumexp``, ``cast``, ``full``)."""

    table: dict = {}
    sqrt = where = concat = stack = ""  # the framework's functions by name
    axis_kw, keep_kw = "axis", "keepdims"

    def __init__(self, settings=None, names=None):
        super().__init__(settings or {})
        self.env, self.names = {}, names or {}

    def prelude(self, first) -> str:
        """Lines at the top of a generated function, after ``n`` and ``dt`` (torch: ``dev``, the
        device of its argument ``first``)."""
        return ""

    # -- what every framework spells differently (overridden) -----------------------------------
    def sum(self, code, axis):  # keeps the axis
        raise NotImplementedError

    def softmax(self, code):
        raise NotImplementedError

    def logsumexp(self, code):
        raise NotImplementedError

    def scalar(self, value):  # a constant array of the kernel's dtype (where branches)
        raise NotImplementedError

    def full(self, code, rows, cols):  # a value broadcast to its shape
        raise NotImplementedError

    # -- scalars --------------------------------------------------------------------------------
    def _print(self, expr, **kwargs):
        cls = type(expr)
        if cls in self.table or cls in RULES:
            code = self.table.get(cls)
            if code is None:
                code = RULES[cls].code.get(self.backend) if cls in RULES else None
            if code is None:
                raise missing_code(cls, self.backend)
            args = call_args(expr, RULES[cls]) if cls in RULES else list(expr.args)
            return code(self, *args) if callable(code) else code.format(*map(self._print, args))
        # a constant such as √2 or log 2 as a Python float: weakly typed in torch and JAX, so a
        # float32 array it multiplies stays float32
        if isinstance(expr, (sp.Pow, Application, sp.Rational, sp.Float)) and expr.is_number \
                and expr.is_extended_real and not isinstance(expr, sp.Integer):
            try:
                v = float(expr)
            except (TypeError, ValueError):
                v = None
            if v is not None and math.isfinite(v):
                return repr(v) if v >= 0 else f"({v!r})"
        if isinstance(expr, sp.MatrixExpr) and not isinstance(expr, MATRIX_OPS):
            raise MissingCodeError(f"compile: no {self.backend} code for the matrix operation "
                                   f"{type(expr).__name__!r} (the numpy backend has it)")
        return super()._print(expr, **kwargs)

    def _print_Symbol(self, e):
        return self.env[e] if e in self.env else ("n" if e == N else super()._print_Symbol(e))

    _print_Dummy = _print_Symbol

    def _print_Integer(self, e):
        return str(int(e))

    def _print_Pow(self, e, rational=False):
        if e.exp == -1:
            return f"(1/{self.paren(e.base)})"
        if e.exp == sp.S.Half:
            return f"{self.sqrt}({self._print(e.base)})"
        return f"{self.paren(e.base)}**{self.paren(e.exp)}"

    def _print_Piecewise(self, e):
        """Nested where, the first condition outermost; a constant branch made in the kernel's
        dtype (a Python number as both branches would make a float32 tensor in torch)."""
        out = None if e.args[-1].cond == sp.true else self.scalar("float('nan')")
        for value, cond in reversed(e.args):
            v = self.scalar(self._print(value)) if value.is_number else self._print(value)
            out = v if out is None else f"{self.where}({self._print(cond)}, {v}, {out})"
        return out

    # -- matrices: code(e) holds e itself (n rows for a batch value) ----------------------------
    rows1d = frozenset()  # parameters held 1-D, read as (d, 1) columns (see _held_1d)

    def _print_MatrixSymbol(self, e):
        name = self.names.get(e, e.name)
        return f"{name}[:, None]" if e in self.rows1d else name

    def _print_Transpose(self, e):
        if e.arg in self.rows1d:
            return self.names.get(e.arg, e.arg.name)
        return f"{self.paren(e.arg)}.T"

    def _print_OneMatrix(self, e):
        return self.scalar("1")  # (broadcast: a statement of ones alone is made full below)

    def _print_ZeroMatrix(self, e):
        return self.scalar("0")

    def _print_MatMul(self, e):
        return self._product(*e.as_coeff_matrices())

    def _product(self, c, mats):
        code, shape = None, None
        for m in mats:
            one = isinstance(m, sp.OneMatrix)
            if code is None:
                if one and m.shape[0] == 1:   # 1ᵀ A: column sums, wait for A
                    code, shape = "colsum", m.shape
                elif one:                     # 1 bᵀ: b broadcast down the rows
                    code, shape = "bcast", m.shape
                else:
                    code, shape = self.paren(m), m.shape
                continue
            if code == "colsum":
                code, shape = self.sum(self._print(m), 0), (1, m.shape[1])
            elif code == "bcast":
                code, shape = self.paren(m), (shape[0], m.shape[1])
            elif one and m.shape[1] == 1:     # A 1: row sums
                code, shape = (code if m.shape[0] == 1 else self.sum(code, 1)), (shape[0], 1)
            elif one:                         # v 1ᵀ: a column broadcast along the row
                shape = (shape[0], m.shape[1])
            else:
                code, shape = f"{code} @ {self.paren(m)}", (shape[0], m.shape[1])
        if code in ("colsum", "bcast"):
            code = self.scalar("1")
        if c == 1:
            return code
        code = code if atomic(code) else f"({code})"
        return f"-{code}" if c == -1 else f"{self.paren(c)}*{code}"

    addmm = ""  # a fused A @ B + bias (torch.addmm), where the framework has one

    def _fused_bias(self, e):
        """A B + 1 bᵀ (a dense layer) as one addmm call, or None."""
        if not self.addmm or len(e.args) != 2:
            return None
        prod = next((t for t in e.args if isinstance(t, sp.MatMul) and len(t.args) == 2
                     and not any(isinstance(m, sp.OneMatrix) for m in t.args)), None)
        bias = next((t for t in e.args if t is not prod and isinstance(t, sp.MatMul)
                     and len(t.args) == 2 and isinstance(t.args[0], sp.OneMatrix)
                     and t.args[0].shape[1] == 1), None)
        if prod is None or bias is None:
            return None
        return (f"{self.addmm}({self.paren(bias.args[1])}, {self.paren(prod.args[0])}, "
                f"{self.paren(prod.args[1])})")

    def _print_MatAdd(self, e):
        fused = self._fused_bias(e)
        if fused:
            return fused
        out = []
        for t in sorted(e.args, key=lambda t: isinstance(t, sp.MatMul) and t.args[0] == -1):
            c, mats = t.as_coeff_matrices() if isinstance(t, sp.MatMul) else (1, [t])
            neg = c != 1 and c.is_number and c < 0
            code = self._product(-c if neg else c, mats)
            out.append(("- " if neg else "+ ") + (code if not neg or atomic(code) else f"({code})"))
        s = " ".join(out)
        return s[2:] if s.startswith("+ ") else "-" + s[2:]

    def _print_HadamardProduct(self, e):
        gated = self._gated(e)
        return gated or " * ".join(self.paren(a) for a in e.args)

    def _gated(self, e):
        """g ⊙ step(z), relu's backward pass, as where(z > 0, g, 0): one pass, no cast."""
        at0 = self._settings["relu_grad_at_zero"]
        if len(e.args) != 2 or at0 not in (0, 1):
            return None
        for gate, other in (e.args, e.args[::-1]):
            if isinstance(gate, Elementwise):
                reals, body = lambda_body(gate.lam)
                if isinstance(body, step) and body.args[0] in reals[:len(gate.operands)]:
                    z = self.paren(gate.operands[reals.index(body.args[0])])
                    return f"{self.where}({z} {'>' if at0 == 0 else '>='} 0, {self._print(other)}, 0.0)"
        return None

    def _print_HadamardPower(self, e):
        return f"{self.paren(e.args[0])}**{self.paren(e.args[1])}"

    def _print_Elementwise(self, e):
        return print_elementwise(self, e, self.paren)

    def _print_SumAll(self, e):
        return f"{self.paren(e.args[0])}.sum()"

    def _axis(self, e, what):
        if e.args[1] != 1:
            raise MissingCodeError(f"compile: no {self.backend} code for {what} over one example "
                                   "outside a batch")

    def _print_Softmax(self, e):
        self._axis(e, "softmax")
        return self.softmax(self._print(e.args[0]))

    def _print_LogSumExp(self, e):
        self._axis(e, "log-sum-exp")
        return self.logsumexp(self._print(e.args[0]))

    def _print_SoftmaxVJP(self, e):
        if e.args[2] != 1:
            raise MissingCodeError(f"compile: no {self.backend} code for softmax over one example "
                                   "outside a batch")
        y, g = self.paren(e.args[0]), self.paren(e.args[1])
        return f"{y} * ({g} - {self.sum(f'{y} * {g}', 1)})"

    def _norm(self, z, eps):
        zc = self.paren(z)
        c = f"({zc} - {zc}.mean({self.axis_kw}=1, {self.keep_kw}=True))"
        inv = f"(1/{self.sqrt}(({c}*{c}).mean({self.axis_kw}=1, {self.keep_kw}=True) + " \
              f"{self._print(eps)}))"
        return c, inv

    def _print_Normalize(self, e):
        z, eps, axis = e.args
        if axis != 1:
            raise MissingCodeError(f"compile: no {self.backend} code for normalize over one example")
        c, inv = self._norm(z, eps)
        return f"({c} * {inv})"

    def _print_NormalizeVJP(self, e):
        xh, z, g, eps, axis = e.args
        if axis != 1:
            raise MissingCodeError(f"compile: no {self.backend} code for normalize over one example")
        _, inv = self._norm(z, eps)
        xc, gc = self.paren(xh), self.paren(g)
        mean = lambda a: f"({a}).mean({self.axis_kw}=1, {self.keep_kw}=True)"  # noqa: E731
        return f"{inv} * ({gc} - {mean(gc)} - {xc} * {mean(f'{xc} * {gc}')})"

    def _print_BlockMatrix(self, e):
        R, C = e.blocks.shape
        if C == 1 or R == 1:
            return (f"{self.concat}(({', '.join(self._print(b) for b in e.blocks)},), "
                    f"{self.axis_kw}={0 if C == 1 else 1})")
        raise MissingCodeError(f"compile: no {self.backend} code for a {R}×{C} block matrix")

    def _print_ImmutableDenseMatrix(self, e):
        """A concat: a row (side by side) or a column of matrix blocks."""
        if not all(isinstance(b, sp.MatrixExpr) for b in e):
            raise MissingCodeError(f"compile: no {self.backend} code for an explicit matrix")
        if e.rows == 1 or e.cols == 1:
            return (f"{self.concat}(({', '.join(self._print(b) for b in e)},), "
                    f"{self.axis_kw}={1 if e.rows == 1 else 0})")
        raise MissingCodeError(f"compile: no {self.backend} code for a {e.rows}×{e.cols} block "
                               "matrix")

    def _print_MatrixSlice(self, e):
        (r0, r1, rs), (c0, c1, cs) = e.rowslice, e.colslice
        if rs != 1 or cs != 1:
            raise MissingCodeError(f"compile: no {self.backend} code for a strided slice")
        rows = ":" if r0 == 0 and (r1 == e.parent.shape[0]) else f"{r0}:{self._print(r1)}"
        return f"{self.paren(e.parent)}[{rows}, {c0}:{c1}]"

    def statement(self, lhs, rhs):
        """``lhs = code``, a value printed smaller than its shape (a bias alone, ones) made full."""
        code = self._print(rhs)
        mats = rhs.as_coeff_matrices()[1] if isinstance(rhs, sp.MatMul) else []
        reduced = (isinstance(rhs, SumAll) or len(mats) > 1 and isinstance(mats[-1], sp.OneMatrix)
                   and mats[-1].shape[1] == 1)  # row sums: full already
        if not reduced and (broadcasts(rhs) or isinstance(rhs, (sp.OneMatrix, sp.ZeroMatrix))):
            r, c = lhs.shape
            code = self.full(code, self._print(r), self._print(c))
        return f"{lhs.name} = {code}"


def check_program(typed, backend):
    """Refuse, while compiling, a matrix operation the array printers have no rule for."""
    for e in typed.eqns:
        for node in sp.preorder_traversal(e.rhs):
            if isinstance(node, sp.MatrixExpr) and not isinstance(node, MATRIX_OPS):
                raise MissingCodeError(f"compile: no {backend} code for the matrix operation "
                                       f"{type(node).__name__!r} (the numpy backend has it)")


def supported(net, backend):
    """The networks the array backends compile: vector inputs (one, or several given as a dict),
    one loss (any architecture of dense, activation, add, mul, concat, layer norm and softmax
    nodes)."""
    why = ("several losses" if net.several_losses else
           "sequences" if net.seq_len is not None else
           "images" if any(net.nodes[i].image for i in net.inputs) else
           "token inputs" if any(net.tokens(i) is not None for i in net.inputs) else
           "dropout masks" if net.masks else None)
    if why:
        raise ValueError(f"compile: backend {backend!r} compiles networks of vector inputs and "
                         f"one loss; this one has {why} (backend='numpy' compiles it)")


class Runtime:
    """One framework at run time: imported on first use, never by ``import symgrad``."""

    name = ""

    def namespace(self) -> dict:          # modules and helpers the generated code calls
        raise NotImplementedError

    def wrap(self, fn):                   # jax.jit, torch.no_grad …
        return fn

    def is_array(self, a) -> bool:
        raise NotImplementedError

    def asarray(self, a, like=None):      # numpy (or a list) to this framework, on like's device
        raise NotImplementedError

    def dtype_name(self, a) -> str:       # "float32", "int64" …
        raise NotImplementedError

    def astype(self, a, like):            # a in like's dtype (and device)
        raise NotImplementedError

    def one_hot(self, Y, k, like):
        raise NotImplementedError

    def check_dtype(self, dt):            # e.g. JAX without x64 refuses float64
        return None

    def check_device(self, a, like, what):
        return None

    def key(self, a):                     # what the checks read of an array (see Signatures)
        return type(a), a.shape, a.dtype

    def mode(self):                       # framework state the checks read (JAX's x64 switch)
        return None

    def traces(self) -> bool:             # may the checks run inside wrap(), at trace time?
        return False                      # (overridden: a runtime whose wrap() traces)

    def cast(self, a, dtype_name):        # a as "float32" or "float64"
        return a.astype(dtype_name)

    def all_finite(self, a):              # True/False, None where values are not concrete
        raise NotImplementedError

    def concrete_int(self, a):            # int(a), or None where a has no value (traced)
        return int(a)

    def poison(self, bad, a):             # a, or nan where the traced bool ``bad`` holds
        raise NotImplementedError         # (only a runtime whose wrap() traces needs it)

    def to_host(self, a):                 # a as a numpy array (a bad argument, to name its entry)
        import numpy as np
        return np.asarray(a)


FLOAT_NAMES = ("float32", "float64")


class Signatures:
    """The argument signatures a kernel has checked and used as given: each array's type, shape,
    dtype (and device: :meth:`Runtime.key`) and the runtime's mode, mapped to the wrapped function
    they ran. A call of a known signature skips :class:`ArgCheck` and goes straight to it: every
    check reads only what the signature holds, so it would pass again. Why: on torch the checks
    of a 2-2-1 net cost 15–19 µs a call, the lookup 6 µs (JAX checks inside ``jax.jit`` instead,
    at trace time, and uses this only without x64). A call that needed converting (numpy arrays,
    another dtype, 1-D targets) is never recorded and takes the checked path each time."""

    LIMIT = 64  # signatures kept (one a batch shape, say); past it, new ones take the checked path

    def __init__(self, rt, names):
        self.rt, self.names, self.known = rt, tuple(names), {}

    def key(self, params, *arrays):
        if type(params) is not dict or len(params) != len(self.names):
            return None
        key = self.rt.key
        try:
            return (self.rt.mode(), *[key(params[p]) for p in self.names],
                    *[key(a) for a in arrays])
        except (KeyError, AttributeError, TypeError):  # a missing name, a list: checked path
            return None

    def get(self, params, *arrays):
        k = self.key(params, *arrays) if self.known else None
        return None if k is None else self.known.get(k)

    def add(self, fn, params, *arrays):
        k = self.key(params, *arrays)
        if k is not None and len(self.known) < self.LIMIT:
            self.known[k] = fn


class _Labels:
    """Integer class labels, checked, made one-hot inside the kernel's wrapped function."""

    def __init__(self, Y):
        self.Y = Y


class _Untraced(Exception):
    """Raised while tracing when an argument is no array (a list, a number): the call takes the
    checked path, which converts or names it."""


class ArgCheck:
    """Arguments checked from their shapes and dtypes (never their values: no device sync), in
    the numpy kernels' words, and converted to the framework's arrays in the parameters' dtype.
    ``tracing``: run on tracers inside ``jax.jit``, where a non-array raises :class:`_Untraced`."""

    def __init__(self, spec, rt: Runtime, tracing=False):
        self.spec, self.rt, self.tracing = spec, rt, tracing

    def array(self, a, what, like=None, cast=True):
        rt = self.rt
        if not rt.is_array(a):
            if self.tracing:
                raise _Untraced(what)
            if is_dask(a):  # (np.asarray would compute it all, in memory)
                raise ValueError(out_of_core(what))
            import numpy as np
            arr = np.asarray(a)
            if arr.dtype.kind not in "biuf":
                raise ValueError(f"{what} must be numeric, got {arr.dtype}")
            if cast and like is not None and arr.dtype.kind == "f":  # converted once, to the kernel's dtype
                arr = arr.astype(self.rt.dtype_name(like))
            a = rt.asarray(arr, like)
        return a

    def params(self, params):
        spec = self.spec
        want = ", ".join(spec.names)
        if not isinstance(params, dict):
            raise ValueError(f"params: expected a dict of arrays named {want}")
        extra = [repr(k) for k in params if k not in spec.shapes]
        if extra:
            raise ValueError(f"params: unexpected {', '.join(extra)} (expected {want})")
        out, dt = [], None
        for p in spec.names:
            if p not in params:
                raise ValueError(f"params: missing {p!r} (expected {want})")
            a = self.array(params[p], f"params[{p!r}]", out[0] if out else None, cast=False)
            name = self.rt.dtype_name(a)
            if name not in FLOAT_NAMES:
                raise ValueError(f"params[{p!r}] is {name}; expected float32 or float64")
            if tuple(a.shape) != tuple(spec.shapes[p]):
                raise ValueError(f"params[{p!r}] has shape {tuple(a.shape)}; expected "
                                 f"{spec.shapes[p]}")
            if dt is not None and name != dt:
                raise ValueError(f"params[{p!r}] is {name} but params[{spec.names[0]!r}] is {dt}"
                                 " (all parameters share one dtype)")
            if out:
                self.rt.check_device(a, out[0], f"params[{p!r}]")
            dt = name
            out.append(a)
        self.rt.check_dtype(dt)
        return out

    def xs(self, X, like):
        """The inputs as a list in the network's order: X itself for one input, a dict
        {input name: (n, d) array} for several (numpy's words, :meth:`Spec.examples`)."""
        spec = self.spec
        names = spec.inputs
        if len(names) == 1:
            return [self.x(X, like)]
        if not isinstance(X, dict):
            each = ", ".join(f"{k!r}: (n, {d}) array" for k, d in zip(names, spec.d_ins))
            raise ValueError(f"X: this network has {len(names)} inputs; give a dict {{{each}}}")
        check_keys("X", X, names, "network's inputs")
        out = []
        for k, d in zip(names, spec.d_ins):
            a = self.x(X[k], like, d, f"X[{k!r}]")
            if out and a.shape[0] != out[0].shape[0]:
                raise ValueError(f"X[{k!r}] has {a.shape[0]} rows but X[{names[0]!r}] has "
                                 f"{out[0].shape[0]}: every input needs one row per example")
            out.append(a)
        return out

    def x(self, X, like, d=None, what="X"):
        d = self.spec.d_in if d is None else d
        if isinstance(X, dict):
            raise ValueError(f"X: this network has one input; give an (n, {d}) array")
        X = self.array(X, what, like)
        if X.ndim != 2 or X.shape[1] != d:
            raise ValueError(f"{what} has shape {tuple(X.shape)}; expected (n, {d}), one example "
                             "a row")
        if X.shape[0] == 0:
            raise ValueError(f"{what} has no examples (shape {tuple(X.shape)})")
        self.rt.check_device(X, like, what)
        return X if self.rt.dtype_name(X) == self.rt.dtype_name(like) else self.rt.astype(X, like)

    def y(self, Y, n, like):
        spec = self.spec
        k, labels = spec.d_out, spec.labels
        extra = f" or ({n},) integer labels" if labels else ""
        if Y is None:
            raise ValueError(f"Y: the kernel needs the targets, (n, {k}) one row per example"
                             + (" or (n,) integer labels" if labels else "")
                             + "; got None (net.predict(params, X) needs none)")
        Y = self.array(Y, "Y", like)
        name = self.rt.dtype_name(Y)
        is_int = name.startswith(("int", "uint"))
        if labels and Y.ndim == 1 and tuple(Y.shape) == (n,):
            if not is_int:
                raise ValueError(f"Y: class labels must be integers, got {name}")
            self.rt.check_device(Y, like, "Y")
            return _Labels(Y)
        if Y.ndim == 1 and k == 1 and tuple(Y.shape) == (n,):
            Y = Y.reshape(n, 1)
        if tuple(Y.shape) != (n, k):
            raise ValueError(f"Y has shape {tuple(Y.shape)}; expected ({n}, {k}){extra}")
        if name == "bool":
            name = "int"
        self.rt.check_device(Y, like, "Y")
        return Y if name == self.rt.dtype_name(like) else self.rt.astype(Y, like)


def _held_1d(spec, typed):
    """The bias parameters: (d,) arrays the program reads as (d, 1) columns. They are used as
    they come: bᵀ prints as the 1-D array itself (it broadcasts as a row), b as ``b[:, None]``."""
    return {v.sym for v, p in zip(typed.params, spec.names)
            if len(spec.shapes[p]) == 1 and v.shape[1] == 1}


def _bias_gradient(printer, rhs):
    """Gᵀ 1, a bias's gradient, as the 1-D ``G.sum(0)`` (no transpose, no reshape), or None."""
    if isinstance(rhs, sp.MatMul):
        c, mats = rhs.as_coeff_matrices()
        if c == 1 and len(mats) == 2 and isinstance(mats[0], sp.Transpose) \
                and isinstance(mats[1], sp.OneMatrix) and mats[1].shape[1] == 1:
            return f"{printer.paren(mats[0].arg)}.sum(0)"
    return None


def print_function(name, printer, spec, typed, stmts, args, head=(), grads=()):
    """The source of ``name(*args)``: the statements (each repeated subexpression once), then
    ``return *head, *grads``, each gradient shaped as its parameter (``grads``: [(symbol, the
    parameter's shape)])."""
    stmts = cse(stmts)
    printer.rows1d = _held_1d(spec, typed)
    lines = [f"def {name}({', '.join(args)}):", f"    n = {args[len(typed.params)]}.shape[0]",
             f"    dt = {args[0]}.dtype", printer.prelude(args[0]).rstrip()]
    flat = {g for g, shape in grads if len(shape) == 1}
    done = set()  # gradients made 1-D already
    for lhs, rhs in stmts:
        code = _bias_gradient(printer, rhs) if lhs in flat else None
        if code:
            done.add(lhs)
            lines.append(f"    {lhs.name} = {code}")
        else:
            lines.append(f"    {printer.statement(lhs, rhs)}")
    rets = list(head) + [g.name if g in done or tuple(shape) == tuple(g.shape) else
                         f"{g.name}.reshape({tuple(shape)})" for g, shape in grads]
    return "\n".join(x for x in lines if x) + f"\n    return {', '.join(rets)}{',' if len(rets) == 1 else ''}\n"


def network_kernel(net, at0, backend, printer_cls, rt: Runtime):
    """``kernel(params, X, Y) -> (loss, grads)`` and ``kernel.predict(params, X)`` for an array
    backend, from the typed program. ``kernel.source`` is the generated function (generated names
    only: the user's parameter names are keys of the dicts, handled outside it)."""
    supported(net, backend)
    typed = backprop.program(net)
    check_program(typed, backend)
    spec = Spec(net, typed, at0)
    grads = typed.gradients
    loss = typed.loss.sym
    prog = [(e.out.sym, e.rhs) for e in typed.eqns]
    printer = printer_cls({"relu_grad_at_zero": at0})
    args = ([v.sym.name for v in typed.params] + [v.sym.name for v in typed.inputs]
            + [typed.target.sym.name])
    src = legend(typed) + print_function(
        "kernel", printer, spec, typed, _live(prog, {loss} | {v.sym for v in grads.values()}),
        args, [loss.name], [(grads[p].sym, spec.shapes[p]) for p in spec.names])
    raw = exec_generated(src, "kernel", rt.namespace())
    k = spec.d_out

    # Integer labels out of 0..k−1: one_hot made their rows zero on JAX (a silently wrong, finite
    # loss) and failed inside torch's scatter_. The range is read from the labels' values (a device
    # sync: see bench/labels.py). Where wrap() traces (jax.jit) the values are abstract, so the
    # wrapped function returns the offending label (or 0) for the caller to check outside, and
    # makes loss and gradients nan when they are out of range: under a user's own jax.jit, where
    # nothing can be raised, a bad label gives nan rather than a wrong number.
    jitted = type(rt).traces is not Runtime.traces
    what_y = spec.ynames[0]

    def labelled(run_one_hot, *a):
        """(loss, *grads) of a label call (Y last in ``a``), range-checked as above."""
        lo, hi = a[-1].min(), a[-1].max()
        if not jitted:  # before one_hot (torch's scatter_ would raise in its own words)
            check_label_range(what_y, k, int(lo), int(hi))
            return run_one_hot(*a)
        # one number back, not two: each is a device-to-host read (21 → 44 µs a 4-3-2 JAX call
        # with lo and hi, 37 µs with this): the first offending label, else 0 (always in range)
        off = lo * (lo < 0) + hi * (hi >= k) * (lo >= 0)
        return (*[rt.poison(off != 0, o) for o in run_one_hot(*a)], off)

    # cross_entropy's target rows (one-hot or distributions) with a negative entry: a row
    # [0, 1.5, −0.5] sums to 1, and torch and JAX gave its meaningless loss (2.50 for a 4-3-3
    # net) where numpy refuses it. Y.min() is taken inside the wrapped function and read back, one
    # number a call, as the labels' range is (bench/labels.py's device sync); only a Y with a
    # negative entry is copied to the host, where Spec.rows, numpy's check, names its row, entry
    # and column in numpy's words. Jitted, the loss and gradients are nan where it is negative
    # (under the caller's own jax.jit nothing can be raised, as for labels).
    def rowed(*a):
        """(loss, *grads) of a call with target rows (Y last in ``a``), checked as above."""
        if not jitted:  # (float(): 2 µs at 128 × 10 on torch's CPU, bool(Y.min() < 0) 6 µs)
            if float(a[-1].min()) < 0:
                refuse(a[-1])
            return raw(*a)
        neg = a[-1].min() < 0
        return (*[rt.poison(neg, o) for o in raw(*a)], neg)

    def refuse(Y):
        """Raise numpy's one line for target rows Y, of this framework (Spec.rows names it)."""
        import numpy as np
        Y = rt.to_host(Y)
        spec.rows(Y, Y.shape[0], Y.dtype if Y.dtype.kind == "f" else np.dtype(np.float64))

    def checked(out, Y):
        """(loss, grads) of the wrapped function's result for targets Y, their values checked
        where the check came back (a jitted call: one more output) and is concrete: the labels'
        range (Y integer labels, 1-D), or the rows' least entry."""
        if len(out) == len(spec.names) + 1:
            return out[0], out[1:]
        *out, off = out
        off = rt.concrete_int(off)  # (None: traced by the caller, which gets nan instead)
        if off and Y.ndim == 1:
            check_label_range(what_y, k, off, off)
        elif off:
            refuse(Y)
        return out[0], out[1:]

    def one_hot(*a):  # integer labels made one-hot inside the wrapped function (one XLA call)
        return raw(*a[:-1], rt.one_hot(a[-1], k, a[0]))

    def with_labels(*a):
        return labelled(one_hot, *a)
    run_labels = rt.wrap(with_labels)
    run = rt.wrap(rowed if spec.labels else raw)

    # the forward pass alone
    out_sym = typed.forward_of(spec.outputs[0]).sym
    fsrc = print_function("predict", printer, spec, typed,
                          _live([(e.out.sym, e.rhs) for e in typed.of_kind(Kind.FORWARD)],
                                {out_sym}), args[:-1], [out_sym.name])
    praw = exec_generated(fsrc, "predict", rt.namespace())
    pfn = rt.wrap(praw)
    check = ArgCheck(spec, rt)
    names = spec.names
    # JAX: the checks run inside jax.jit, on the tracers (shapes and dtypes), once a signature;
    # a call of a traced signature is jax.jit's own dispatch, as jax.jit(value_and_grad)'s
    traced, traced_x = None, None
    if type(rt).traces is not Runtime.traces:
        at_trace = ArgCheck(spec, rt, tracing=True)

        def step(params, X, Y):
            ps = at_trace.params(params)
            xs = at_trace.xs(X, ps[0])
            y = at_trace.y(Y, xs[0].shape[0], ps[0])
            if isinstance(y, _Labels):
                return labelled(one_hot, *ps, *xs, y.Y)
            # (a tuple: jit would sort a dict's keys)
            return tuple((rowed if spec.labels else raw)(*ps, *xs, y))

        def forward(params, X):
            ps = at_trace.params(params)
            return praw(*ps, *at_trace.xs(X, ps[0]))[0]
        traced, traced_x = rt.wrap(step), rt.wrap(forward)

    seen = Signatures(rt, names)
    inputs = spec.inputs

    def given(X):
        """The input arrays as given, in the network's order (None: not a dict of them)."""
        if len(inputs) == 1:
            return (X,)
        if type(X) is not dict or len(X) != len(inputs):
            return None
        try:
            return tuple(X[i] for i in inputs)
        except KeyError:
            return None

    def kernel(params, X, Y):
        if traced is not None and rt.traces():
            try:
                out = traced(params, X, Y)
            except (_Untraced, TypeError, ValueError):
                # an argument jit cannot take (a list, strings) or a check failed at trace time
                # (JAX appends its traceback note to the message): the checked path says which,
                # in one line
                pass
            else:
                value, gs = checked(out, Y)
                return value, dict(zip(names, gs))
        xg = given(X)
        fn = None if xg is None else seen.get(params, *xg, Y)
        if fn is not None:  # these shapes, dtypes and devices passed the checks before
            value, gs = checked(fn(*[params[p] for p in names], *xg, Y), Y)
            return value, dict(zip(names, gs))
        ps = check.params(params)
        xs = check.xs(X, ps[0])
        y = check.y(Y, xs[0].shape[0], ps[0])
        labels = isinstance(y, _Labels)
        fn = run_labels if labels else run
        if (xg is not None and all(a is b for a, b in zip(xs, xg)) and (y.Y if labels else y) is Y
                and all(a is params[p] for a, p in zip(ps, names))):
            seen.add(fn, params, *xg, Y)  # used as given: the same signature may skip the checks
        y = y.Y if labels else y
        value, gs = checked(fn(*ps, *xs, y), y)
        return value, dict(zip(names, gs))

    seen_x = Signatures(rt, names)

    def predict(params, X):
        if traced_x is not None and rt.traces():
            try:
                return traced_x(params, X)
            except (_Untraced, TypeError, ValueError):  # as in kernel
                pass
        xg = given(X)
        fn = None if xg is None else seen_x.get(params, *xg)
        if fn is not None:
            return fn(*[params[p] for p in names], *xg)[0]
        ps = check.params(params)
        xs = check.xs(X, ps[0])
        if xg is not None and all(a is b for a, b in zip(xs, xg)) and all(
                a is params[p] for a, p in zip(ps, names)):
            seen_x.add(pfn, params, *xg)
        return pfn(*ps, *xs)[0]

    kernel.source = src
    kernel.predict = predict
    kernel.predict_source = fsrc
    kernel.relu_grad_at_zero = at0
    kernel.legend = {v.sym.name: (v.kind.value, str(v.label)) for v in typed.variables}
    kernel.backend = backend
    kernel.scalar_source = lambda n: f"# backend {backend!r}: no unrolled code (numpy's tiny-net path)"
    return kernel


def function_source(printer, what, M, shape, wrt):
    """The source of ``what(P)`` for a compiled function on an array backend: each entry of M at
    the points P (..., k), stacked into (..., *shape) (no in-place writes: pure, for jax.jit)."""
    reps, exprs = sp.cse(list(M), symbols=sp.numbered_symbols("_t"))
    printer.env = {x: f"_v{i}" for i, x in enumerate(wrt)}
    lines = [f"def {what}(P):", "    dt = P.dtype", printer.prelude("P").rstrip()]
    lines += [f"    _v{i} = P[..., {i}]" for i in range(len(wrt))]
    lines += ["    _z = P[..., 0] * 0  # zeros, one a point (constant entries are made full)"]
    for s, v in reps:
        lines.append(f"    {s} = {printer.doprint(v)}")
    cells = [f"({printer.doprint(e)}) + _z" for e in exprs]
    lines.append(f"    out = {printer.stack}([{', '.join(cells)}], -1)")
    lines.append(f"    return out.reshape(tuple(P.shape[:-1]) + {tuple(shape)})")
    return "\n".join(x for x in lines if x) + "\n"


def function_runner(rt: Runtime, printer, what, M, shape, wrt):
    """``fn(P)`` on the framework's arrays: P (..., k) floats (numpy or a list converted once;
    integers become float64, float32 stays), the points' dtype and device kept."""
    src = function_source(printer, what, M, shape, wrt)
    fn = rt.wrap(exec_generated(src, what, rt.namespace()))
    k = len(wrt)

    def run(P):
        if not rt.is_array(P):
            import numpy as np
            P = np.asarray(P)
            if P.dtype.kind not in "biuf":
                raise ValueError(f"points must be numeric, got {P.dtype}")
            P = rt.asarray(P.astype(np.float64) if P.dtype.kind in "biu" else P)
        if rt.dtype_name(P) not in FLOAT_NAMES:
            raise ValueError(f"points must be float32 or float64, got {rt.dtype_name(P)}")
        if k == 1 and (P.ndim == 0 or P.shape[-1] != 1):
            P = P[..., None]
        if P.ndim == 0 or P.shape[-1] != k:
            raise ValueError(f"points have shape {tuple(P.shape)}; expected (..., {k}), one point "
                             "per row")
        return fn(P)
    run.source = src
    return run


__all__ = ["ArrayPrinting", "ArgCheck", "Runtime", "network_kernel", "function_source", "function_runner", "print_function",
           "check_program", "supported", "MATRIX_OPS"]
