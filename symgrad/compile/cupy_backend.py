"""The CuPy backend: the typed program printed as CuPy, as numpy on a CUDA GPU.

Where it sits: compile (one backend, one module; the printer and kernel builder it shares with the
other array backends are :mod:`.arrays`'). ``net.compile(backend="cupy")`` gives ``kernel(params,
X, Y) -> (loss, grads)`` over ``cupy.ndarray``s on the current GPU (numpy arguments copied there
once), in the parameters' dtype; softmax and log-sum-exp are shifted by each row's maximum, σ and
softplus in numpy's stable forms. cupy is imported when this backend is first used; without it
(or without a GPU) compiling says so in one line.

:data:`TABLE` is this backend's code for each primitive, keyed by class (a primitive registered
with ``code={"cupy": ...}`` is used too).
"""
from __future__ import annotations

import math

import sympy as sp

from symgrad.core.primitives import (_fold, _log_code, leaky_relu, log1mexp, logsumexp, relu,
                                     sigmoid, softplus, step)
from symgrad.compile.arrays import ArrayPrinting, Runtime, function_runner, network_kernel
from symgrad.compile.backends import Backend, register_backend
from symgrad.compile.common import atomic
from symgrad.compile.mfunction import (_HELPERS, NUMPY_FUNCTIONS, ArrayMatrixPrinter,
                                       _helpers_over, _np_as, numpy_like_ops)

NAME = "cupy"


def _step(p, x):
    xc, at0 = p.paren(x), p.setting("relu_grad_at_zero")
    if at0 == 0 or at0 == 1:
        return f"({xc} {'>' if at0 == 0 else '>='} 0).astype(dt)"
    return f"cp.heaviside({xc}, {float(at0)!r}).astype(dt)"


def _leaky(p, x, a):
    xc = p.paren(x)
    if 0 <= a <= 1:
        return f"cp.maximum({xc}, {p.code(a)}*{xc})"
    return f"cp.where({xc} > 0, {xc}, {p.code(a)}*{xc})"


def _log1mexp(p, x):
    xc, cut = p.paren(x), repr(-math.log(2))
    return (f"cp.where({xc} > {cut}, cp.log(-cp.expm1(cp.minimum({xc}, -1e-300))), "
            f"cp.log1p(-cp.exp(cp.minimum({xc}, {cut}))))")


def _named(name):
    return f"cp.{name}({{0}})"


# primitive class -> CuPy code (a format string over the printed arguments, or (printer, *args))
TABLE = {
    sigmoid: "_cp_sigmoid({0})",
    softplus: "cp.logaddexp(0, {0})",
    relu: "cp.maximum({0}, 0)",
    step: _step,
    leaky_relu: _leaky,
    logsumexp: _fold("cp.logaddexp({0}, {1})"),
    log1mexp: _log1mexp,
    sp.log: _log_code("cp.logaddexp(0, {0})", "cp.log1p({0})", "cp.log({0})"),
    sp.exp: _named("exp"), sp.tanh: _named("tanh"), sp.sin: _named("sin"), sp.cos: _named("cos"),
    sp.tan: _named("tan"), sp.asin: _named("arcsin"), sp.acos: _named("arccos"),
    sp.atan: _named("arctan"), sp.sinh: _named("sinh"), sp.cosh: _named("cosh"),
    sp.erf: "_cp_erf({0})", sp.Abs: _named("abs"), sp.sign: _named("sign"),
    sp.Heaviside: "cp.heaviside({0}, {1})",
    sp.Max: _fold("cp.maximum({0}, {1})"), sp.Min: _fold("cp.minimum({0}, {1})"),
}


def _printer_class():
    from sympy.printing.numpy import CuPyPrinter

    class CuPyKernelPrinter(ArrayPrinting, CuPyPrinter):
        """Batch programs and functions as CuPy (``cp``)."""

        _default_settings = {**CuPyPrinter._default_settings, "relu_grad_at_zero": 0}
        backend, modules, table = NAME, ("cupy.",), TABLE
        sqrt, where, concat, stack = "cp.sqrt", "cp.where", "cp.concatenate", "cp.stack"

        def _module_format(self, fqn, register=True):
            s = super()._module_format(fqn, register)
            return "cp." + s[5:] if s.startswith("cupy.") else s

        def sum(self, code, axis):
            return f"{code if atomic(code) else f'({code})'}.sum(axis={axis}, keepdims=True)"

        def softmax(self, code):
            return f"_cp_softmax({code})"

        def logsumexp(self, code):
            return f"_cp_logsumexp({code})"

        def scalar(self, value):
            return f"cp.asarray({value}, dt)"

        def full(self, code, rows, cols):
            return f"cp.broadcast_to({code}, ({rows}, {cols}))"

    return CuPyKernelPrinter


class CuPyRuntime(Runtime):
    name = NAME

    def __init__(self):
        try:
            import cupy
            cupy.cuda.runtime.getDeviceCount()
        except Exception as e:  # no cupy, or no CUDA device
            raise ImportError("backend 'cupy' needs CuPy and a CUDA GPU: pip install "
                              f"'symgrad[cupy]' ({type(e).__name__}: {e})") from None
        self.cp = cupy

    def namespace(self):
        cp = self.cp

        def _cp_sigmoid(x):
            return cp.exp(-cp.logaddexp(0, -x))

        def _cp_softmax(z):
            e = cp.exp(z - z.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)

        def _cp_logsumexp(z):
            m = z.max(axis=1, keepdims=True)
            return cp.log(cp.exp(z - m).sum(axis=1, keepdims=True)) + m

        def _cp_erf(x):
            import cupyx.scipy.special
            return cupyx.scipy.special.erf(x)
        return {"cp": cp, "_cp_sigmoid": _cp_sigmoid, "_cp_softmax": _cp_softmax,
                "_cp_logsumexp": _cp_logsumexp, "_cp_erf": _cp_erf}

    def is_array(self, a):
        return isinstance(a, self.cp.ndarray)

    def asarray(self, a, like=None):
        return self.cp.asarray(a)

    def dtype_name(self, a):
        return str(a.dtype)

    def astype(self, a, like):
        return a.astype(like.dtype)

    def one_hot(self, Y, k, like):
        return self.cp.eye(k, dtype=like.dtype)[Y]

    def check_device(self, a, like, what):
        if a.device != like.device:
            raise ValueError(f"{what} is on {a.device} but the parameters are on {like.device}")

    def key(self, a):
        return type(a), a.shape, a.dtype, a.device

    def all_finite(self, a):
        return bool(self.cp.isfinite(a).all())

    def to_host(self, a):
        return self.cp.asnumpy(a)


def _network(net, scalar, at0):
    return network_kernel(net, at0, NAME, _printer_class(), CuPyRuntime())


def _function(what, M, shape, wrt, at0):
    """``what(P)`` at points P (…, k) of this backend's arrays."""
    return function_runner(CuPyRuntime(), _printer_class()({"relu_grad_at_zero": at0}), what, M,
                           shape, wrt)


def _matrix():
    """The printer of matrix-calculus results as CuPy: numpy's code and helpers, ``np`` being
    cupy (its API is numpy's, in-place updates included); constants in the arguments' dtype."""
    rt = CuPyRuntime()
    cp = rt.cp
    helpers = _helpers_over(cp, *[n for n in _HELPERS if n not in ("_m_step", "_m_commutation")])

    def _m_step(x):
        return (x > 0).astype(x.dtype)

    def _m_commutation(r, c, dt):
        p = cp.arange(r * c)
        return cp.eye(r * c, dtype=dt)[(p % c) * r + p // c].T

    def _m_out(v, dt):
        v = cp.asarray(v, dt)
        if v.ndim == 0 or v.shape == (1, 1):
            return v.reshape(())
        return v[:, 0] if v.ndim == 2 and v.shape[1] == 1 else v
    helpers.update(_m_step=_m_step, _m_commutation=_m_commutation, _m_out=_m_out)

    class CuPyMatrixPrinter(ArrayMatrixPrinter):
        backend = NAME
        ops = numpy_like_ops("cp")
        functions = _np_as(NUMPY_FUNCTIONS, "cp")

        def namespace(self):
            return {"cp": cp, **helpers}
    return CuPyMatrixPrinter(rt)


register_backend(Backend(NAME, _network, "CuPy: numpy's kernel on a CUDA GPU", function=_function,
                         matrix=_matrix))
