"""The JAX backend: the typed program printed as one pure function under ``jax.jit``.

Where it sits: compile (one backend, one module; the printer and kernel builder it shares with the
other array backends are :mod:`.arrays`'). ``net.compile(backend="jax")`` gives ``kernel(params, X,
Y) -> (loss, grads)`` whose arrays are JAX arrays on their device (numpy arguments are put on the
default device once); nothing is updated in place, so the whole step is one XLA computation.
``compile_function(..., backend="jax")`` prints a function and its Jacobian the same way.
float64 needs 64-bit JAX (``jax.config.update("jax_enable_x64", True)``): without it a float64
parameter is an error, never silently float32. Integer class labels out of 0..k−1 raise numpy's
one-line error (their range is read back from the device: one small read a call); under a
caller's own ``jax.jit`` (``jax.jit(kernel)``), where labels have no values yet, the loss and every
gradient come back nan instead. jax is imported when this backend is first used.

:data:`TABLE` is this backend's code for each primitive, keyed by class: the one place to add
one (a primitive registered with ``code={"jax": ...}`` is used too).
"""
from __future__ import annotations

import math

import numpy as np
import sympy as sp

from symgrad.core.primitives import (_log_code, _fold, leaky_relu, log1mexp, logsumexp, relu,
                                     sigmoid, softplus, step)
from symgrad.compile.arrays import ArrayPrinting, Runtime, function_runner, network_kernel
from symgrad.compile.backends import Backend, register_backend
from symgrad.compile.common import atomic
from symgrad.compile.mfunction import (NUMPY_FUNCTIONS, ArrayMatrixPrinter,
                                       _helpers_over, _np_as, numpy_like_ops)

NAME = "jax"


def _step(p, x):
    xc, at0 = p.paren(x), p.setting("relu_grad_at_zero")
    if at0 == 0 or at0 == 1:
        return f"({xc} {'>' if at0 == 0 else '>='} 0).astype(dt)"
    return f"jnp.where({xc} > 0, 1.0, jnp.where({xc} < 0, 0.0, {float(at0)!r})).astype(dt)"


def _leaky(p, x, a):
    xc = p.paren(x)
    if 0 <= a <= 1:
        return f"jnp.maximum({xc}, {p.code(a)}*{xc})"
    return f"jnp.where({xc} > 0, {xc}, {p.code(a)}*{xc})"


def _log1mexp(p, x):
    xc, cut = p.paren(x), repr(-math.log(2))
    return (f"jnp.where({xc} > {cut}, jnp.log(-jnp.expm1({xc})), "
            f"jnp.log1p(-jnp.exp(jnp.minimum({xc}, {cut}))))")


def _named(name):
    return f"jnp.{name}({{0}})"


# primitive class -> JAX code (a format string over the printed arguments, or (printer, *args))
TABLE = {
    sigmoid: "jax.nn.sigmoid({0})",
    softplus: "jnp.logaddexp({0}, 0.0)",
    relu: "jnp.maximum({0}, 0.0)",
    step: _step,
    leaky_relu: _leaky,
    logsumexp: _fold("jnp.logaddexp({0}, {1})"),
    log1mexp: _log1mexp,
    sp.log: _log_code("jnp.logaddexp({0}, 0.0)", "jnp.log1p({0})", "jnp.log({0})"),
    sp.exp: _named("exp"), sp.tanh: _named("tanh"), sp.sin: _named("sin"), sp.cos: _named("cos"),
    sp.tan: _named("tan"), sp.asin: _named("arcsin"), sp.acos: _named("arccos"),
    sp.atan: _named("arctan"), sp.sinh: _named("sinh"), sp.cosh: _named("cosh"),
    sp.erf: "jax.scipy.special.erf({0})", sp.Abs: _named("abs"), sp.sign: _named("sign"),
    sp.Heaviside: "jnp.heaviside({0}, {1})",
    sp.Max: _fold("jnp.maximum({0}, {1})"), sp.Min: _fold("jnp.minimum({0}, {1})"),
}


def _printer_class():
    from sympy.printing.numpy import JaxPrinter

    class JaxKernelPrinter(ArrayPrinting, JaxPrinter):
        """Batch programs and functions as jax.numpy (``jnp``)."""

        _default_settings = {**JaxPrinter._default_settings, "relu_grad_at_zero": 0}
        backend, modules, table = NAME, ("jax.numpy.", "jax."), TABLE
        sqrt, where, concat, stack = "jnp.sqrt", "jnp.where", "jnp.concatenate", "jnp.stack"

        def _module_format(self, fqn, register=True):
            s = super()._module_format(fqn, register)
            return "jnp." + s[10:] if s.startswith("jax.numpy.") else s

        def sum(self, code, axis):
            return f"{code if atomic(code) else f'({code})'}.sum(axis={axis}, keepdims=True)"

        def softmax(self, code):
            return f"jax.nn.softmax({code}, axis=1)"

        def logsumexp(self, code):
            return f"jax.nn.logsumexp({code}, axis=1, keepdims=True)"

        def scalar(self, value):
            return f"jnp.asarray({value}, dt)"

        def full(self, code, rows, cols):
            return f"jnp.broadcast_to({code}, ({rows}, {cols}))"

    return JaxKernelPrinter


class JaxRuntime(Runtime):
    name = NAME

    def __init__(self):
        try:
            import jax
            import jax.numpy as jnp
            import jax.scipy.special  # noqa: F401  (erf)
        except ImportError:
            raise ImportError("backend 'jax' needs JAX: pip install 'symgrad[jax]'") from None
        self.jax, self.jnp = jax, jnp

    def namespace(self):
        return {"jax": self.jax, "jnp": self.jnp}

    def wrap(self, fn):
        jitted = self.jax.jit(fn)
        jitted.source = getattr(fn, "source", "")
        return jitted

    def is_array(self, a):
        return isinstance(a, self.jax.Array)

    def asarray(self, a, like=None):
        self.check_dtype(str(a.dtype))
        if like is not None:
            return self.jax.device_put(a, like.sharding)
        return self.jnp.asarray(a)

    def dtype_name(self, a):
        return str(a.dtype)

    def astype(self, a, like):
        return a.astype(like.dtype)

    def one_hot(self, Y, k, like):
        return self.jax.nn.one_hot(Y, k, dtype=like.dtype)

    def mode(self):
        return self.jax.config.jax_enable_x64

    def all_finite(self, a):
        try:
            return bool(self.jnp.isfinite(a).all())
        except self.jax.errors.ConcretizationTypeError:  # traced (jit, grad): no values to check
            return None

    def concrete_int(self, a):
        # (through numpy: int() of a JAX scalar took 6.7 µs, np.asarray 1.7 µs, at load 4)
        return None if isinstance(a, self.jax.core.Tracer) else int(np.asarray(a))

    def poison(self, bad, a):
        return self.jnp.where(bad, self.jnp.nan, a)

    def traces(self):
        # without x64, jit makes a float64 numpy argument float32 before a check could refuse it
        return self.jax.config.jax_enable_x64

    def check_dtype(self, dt):
        if dt == "float64" and not self.jax.config.jax_enable_x64:
            raise ValueError("backend 'jax': float64 needs 64-bit JAX, "
                             "jax.config.update('jax_enable_x64', True) (or give float32)")


def _network(net, scalar, at0):
    return network_kernel(net, at0, NAME, _printer_class(), JaxRuntime())


def _function(what, M, shape, wrt, at0):
    """``what(P)`` at points P (…, k) of this backend's arrays."""
    return function_runner(JaxRuntime(), _printer_class()({"relu_grad_at_zero": at0}), what, M,
                           shape, wrt)


def _matrix():
    """The printer of matrix-calculus results as jax.numpy: pure (no in-place update), so the
    compiled function can be jitted and differentiated; numpy's helpers over ``jnp`` where they
    are pure, the others here."""
    rt = JaxRuntime()
    jax, jnp = rt.jax, rt.jnp

    def _m_step(x):
        return (x > 0).astype(x.dtype)

    def _m_logdet(X):
        sign, logdet = jnp.linalg.slogdet(X)
        try:
            positive = bool(sign > 0)
        except jax.errors.ConcretizationTypeError:  # traced: nan, never a wrong number
            return jnp.where(sign > 0, logdet, jnp.nan)
        if not positive:
            raise ValueError("logdet: det of the matrix is not positive at the given arguments")
        return logdet

    def _m_commutation(r, c, dt):
        p = jnp.arange(r * c)
        return jnp.eye(r * c, dtype=dt)[(p % c) * r + p // c].T

    def _m_softmax_sandwich(a, s, x):  # numpy's, its diagonal added functionally
        p, n = a.shape
        m, k = x.shape[1], s.shape[1]
        b = (a.T[:, :, None] * s[:, None, :]).reshape(n, p * k)
        c = (x[:, :, None] * s[:, None, :]).reshape(n, m * k)
        h = -(b.T @ c).reshape(p, k, m, k)
        d = jnp.stack([(a * s[:, q]) @ x for q in range(k)])
        i = jnp.arange(k)
        return h.at[:, i, :, i].add(d).reshape(p * k, m * k)

    def _m_out(v, dt):
        v = jnp.asarray(v, dt)
        if v.ndim == 0 or v.shape == (1, 1):
            return v.reshape(())
        return v[:, 0] if v.ndim == 2 and v.shape[1] == 1 else v

    helpers = _helpers_over(jnp, "_m_sigmoid", "_m_relu", "_m_softplus", "_m_softmax",
                            "_m_logsumexp", "_m_softmax_vjp", "_m_softmax_jacobian", "_m_kron_eye")
    helpers.update(_m_step=_m_step, _m_logdet=_m_logdet, _m_commutation=_m_commutation,
                   _m_softmax_sandwich=_m_softmax_sandwich, _m_out=_m_out)

    class JaxMatrixPrinter(ArrayMatrixPrinter):
        backend = NAME
        ops = numpy_like_ops("jnp")
        functions = _np_as(NUMPY_FUNCTIONS, "jnp")

        def namespace(self):
            return {"jax": jax, "jnp": jnp, **helpers}
    return JaxMatrixPrinter(rt)


register_backend(Backend(NAME, _network, "JAX: one pure function under jax.jit, on the arrays' "
                         "device", function=_function, matrix=_matrix))
