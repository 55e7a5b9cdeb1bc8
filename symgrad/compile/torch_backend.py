"""The PyTorch backend: the typed program printed as torch, tensors in and tensors out.

Where it sits: compile (one backend, one module; the printer and kernel builder it shares with the
other array backends are :mod:`.arrays`'). ``net.compile(backend="torch")`` gives ``kernel(params,
X, Y) -> (loss, grads)`` that runs on the parameters' device and dtype (float32 or float64): X
and Y are converted there (numpy arguments copied to it once), the loss is a 0-d tensor and every
gradient a tensor shaped like its parameter; no value goes back to the host. It runs under
``torch.no_grad()``: the derived backward is the gradient, autograd records nothing
(:mod:`.torch_module` wraps it as a ``torch.autograd.Function``). torch is imported when this
backend is first used (SymPy's ``sympy.printing.pytorch`` imports it too, so the printer class is
made then).

:data:`TABLE` is this backend's code for each primitive, keyed by class: the one place to add
one (a primitive registered with ``code={"torch": ...}`` is used too). σ is ``torch.sigmoid``;
softplus is max(x, 0) + log1p(e^−|x|), exact in float64 at every x (``F.softplus`` returns x
past its threshold of 20, off by 2e-9 there).
"""
from __future__ import annotations

import math

import sympy as sp

from symgrad.core.primitives import (_log_code, leaky_relu, log1mexp, logsumexp, relu, sigmoid,
                                     softplus, step)
from symgrad.compile.arrays import ArrayPrinting, Runtime, function_runner, network_kernel
from symgrad.compile.backends import Backend, register_backend
from symgrad.compile.common import atomic, missing_code
from symgrad.compile.mfunction import ArrayMatrixPrinter

NAME = "torch"


def _step(p, x):
    xc, at0 = p.paren(x), p.setting("relu_grad_at_zero")
    if at0 == 0 or at0 == 1:
        return f"({xc} {'>' if at0 == 0 else '>='} 0).to(dt)"
    return f"(({xc} > 0).to(dt) + {float(at0)!r}*({xc} == 0).to(dt))"


def _leaky(p, x, a):
    xc = p.paren(x)
    if 0 <= a <= 1:
        return f"torch.maximum({xc}, {p.code(a)}*{xc})"
    return f"torch.where({xc} > 0, {xc}, {p.code(a)}*{xc})"


def _log1mexp(p, x):
    xc, cut = p.paren(x), repr(-math.log(2))
    return (f"torch.where({xc} > {cut}, torch.log(-torch.expm1({xc})), "
            f"torch.log1p(-torch.exp(torch.clamp_max({xc}, {cut}))))")


def _pairwise(fn, clamp):
    """max/min/logaddexp of any number of arguments, folded pairwise; torch's binary functions
    take tensors only, so a constant argument is made a tensor like the other (or clamps it)."""
    def code(p, *args):
        out, out_num = p.code(args[0]), args[0].is_number
        for a in args[1:]:
            c = p.code(a)
            if a.is_number and clamp:
                out = f"{clamp}({out}, {c})"
            elif a.is_number:
                out = f"{fn}({out}, torch.full_like({out}, {c}))"
            elif out_num:
                out = f"{fn}(torch.full_like({c}, {out}), {c})"
            else:
                out = f"{fn}({out}, {c})"
            out_num = False
        return out
    return code


def _named(name):
    return f"torch.{name}({{0}})"


def _heaviside(p, x, h0):
    xc = p.code(x)
    return f"torch.heaviside({xc}, torch.full_like({xc}, {p.code(h0)}))"


# primitive class -> torch code (a format string over the printed arguments, or (printer, *args))
TABLE = {
    sigmoid: "torch.sigmoid({0})",
    softplus: "_softplus({0})",
    relu: "torch.relu({0})",
    step: _step,
    leaky_relu: _leaky,
    logsumexp: _pairwise("torch.logaddexp", None),
    log1mexp: _log1mexp,
    sp.log: _log_code("_softplus({0})", "torch.log1p({0})", "torch.log({0})"),
    sp.exp: _named("exp"), sp.tanh: _named("tanh"), sp.sin: _named("sin"), sp.cos: _named("cos"),
    sp.tan: _named("tan"), sp.asin: _named("asin"), sp.acos: _named("acos"),
    sp.atan: _named("atan"), sp.sinh: _named("sinh"), sp.cosh: _named("cosh"),
    sp.erf: _named("erf"), sp.Abs: _named("abs"), sp.sign: _named("sign"),
    sp.Heaviside: _heaviside,
    sp.Max: _pairwise("torch.maximum", "torch.clamp_min"),
    sp.Min: _pairwise("torch.minimum", "torch.clamp_max"),
}

_CLASS = []


def _printer_class():
    if _CLASS:
        return _CLASS[0]
    from sympy.printing.pytorch import TorchPrinter  # (imports torch)

    class TorchKernelPrinter(ArrayPrinting, TorchPrinter):
        """Batch programs and functions as torch."""

        _default_settings = {**TorchPrinter._default_settings, "relu_grad_at_zero": 0}
        backend, modules, table = NAME, ("torch.",), TABLE
        sqrt, where, concat, stack = "torch.sqrt", "torch.where", "torch.cat", "torch.stack"
        axis_kw, keep_kw = "dim", "keepdim"
        addmm = "torch.addmm"

        def _print_Function(self, expr):
            if type(expr) not in self.mapping:
                raise missing_code(expr, self.backend)
            return super()._print_Function(expr)

        _print_Application = _print_Function

        def _print_Relational(self, e):
            ops = {"==": "==", "!=": "!=", ">": ">", "<": "<", ">=": ">=", "<=": "<="}
            return f"({self.paren(e.lhs)} {ops[e.rel_op]} {self.paren(e.rhs)})"

        def _print_Add(self, e, order=None):
            return super(TorchPrinter, self)._print_Add(e)

        def _print_Mul(self, e):
            return super(TorchPrinter, self)._print_Mul(e)

        def sum(self, code, axis):
            return f"{code if atomic(code) else f'({code})'}.sum({axis}, keepdim=True)"

        def softmax(self, code):
            return f"torch.softmax({code}, 1)"

        def logsumexp(self, code):
            return f"torch.logsumexp({code}, 1, keepdim=True)"

        def scalar(self, value):
            return f"torch.tensor({value}, dtype=dt, device=dev)"

        def full(self, code, rows, cols):
            return f"({code}).expand({rows}, {cols})"

        def prelude(self, first):
            return f"    dev = {first}.device\n"

    _CLASS.append(TorchKernelPrinter)
    return TorchKernelPrinter


class TorchRuntime(Runtime):
    name = NAME

    def __init__(self):
        try:
            import torch
        except ImportError:
            raise ImportError("backend 'torch' needs PyTorch: pip install 'symgrad[torch]'") from None
        self.torch = torch

    def namespace(self):
        torch = self.torch

        def _softplus(x):  # log(1 + eˣ) = max(x, 0) + log1p(e^−|x|): no overflow, no threshold
            return torch.clamp_min(x, 0) + torch.log1p(torch.exp(-torch.abs(x)))
        return {"torch": torch, "_softplus": _softplus}

    def wrap(self, fn):
        wrapped = self.torch.no_grad()(fn)
        wrapped.source = getattr(fn, "source", "")
        return wrapped

    def is_array(self, a):
        return isinstance(a, self.torch.Tensor)

    def asarray(self, a, like=None):
        return self.torch.as_tensor(a, device=None if like is None else like.device)

    def dtype_name(self, a):
        return str(a.dtype).replace("torch.", "")

    def astype(self, a, like):
        return a.to(like.dtype)

    def one_hot(self, Y, k, like):
        # (F.one_hot checks the labels' range on the host: a device sync)
        return self.torch.zeros((Y.shape[0], k), dtype=like.dtype, device=like.device).scatter_(
            1, Y.long().unsqueeze(1), 1.0)

    def check_device(self, a, like, what):
        if a.device != like.device:
            raise ValueError(f"{what} is on {a.device} but the parameters are on {like.device}")

    def key(self, a):
        return type(a), a.shape, a.dtype, a.device

    def cast(self, a, dtype_name):
        return a.to(getattr(self.torch, dtype_name))

    def all_finite(self, a):
        return bool(self.torch.isfinite(a).all())

    def to_host(self, a):
        return a.detach().cpu().numpy()


def _network(net, scalar, at0):
    return network_kernel(net, at0, NAME, _printer_class(), TorchRuntime())


def _function(what, M, shape, wrt, at0):
    """``what(P)`` at points P (…, k) of this backend's arrays."""
    return function_runner(TorchRuntime(), _printer_class()({"relu_grad_at_zero": at0}), what, M,
                           shape, wrt)


# numpy's matrix operations in torch (the keys of mfunction.NUMPY_OPS)
MATRIX_OPS = {
    "inv": "torch.linalg.inv({0})", "det": "torch.linalg.det({0})", "trace": "torch.trace({0})",
    "diagflat": "torch.diagflat({0})", "diagonal": "torch.diagonal({0}).reshape(-1, 1)",
    "colsum": "{0}.sum(0, keepdim=True)", "rowsum": "{0}.sum(1, keepdim=True)",
    "sqrt": "torch.sqrt({0})", "log": "torch.log({0})", "norm2": "torch.sqrt(({0} ** 2).sum())",
    "eye": "torch.eye({0}, dtype=_dt, device=_dev)",
    "ones": "torch.ones(({0}, {1}), dtype=_dt, device=_dev)",
    "zeros": "torch.zeros(({0}, {1}), dtype=_dt, device=_dev)",
    # (torch 2.13's kron fails on a transposed view: "view size is not compatible")
    "kron": "torch.kron({0}.contiguous(), {1}.contiguous())", "matpow": "torch.linalg.matrix_power({0}, {1})",
    "size_pow": "{0} ** ({1})", "logdet": "_m_logdet({0})",
    "softmax": "torch.softmax({0}, {1})", "logsumexp": "torch.logsumexp({0}, {1}, keepdim=True)",
    "softmax_vjp": "_m_softmax_vjp({0}, {1}, {2})",
    "commutation": "_m_commutation({0}, {1}, _dt, _dev)",
    "softmax_jacobian": "_m_softmax_jacobian({0}, {1})",
    "softmax_sandwich": "_m_softmax_sandwich({0}, {1}, {2})",
    "kron_eye": "_m_kron_eye({0}, {1}, {2})", "out": "_m_out({0}, _dt, _dev)",
}
MATRIX_FUNCTIONS = {
    "exp": "torch.exp", "log": "torch.log", "sqrt": "torch.sqrt", "abs": "torch.abs",
    "Abs": "torch.abs", "sin": "torch.sin", "cos": "torch.cos", "tanh": "torch.tanh",
    "sign": "torch.sign", "sigmoid": "torch.sigmoid", "relu": "torch.relu",
    "softplus": "_softplus", "step": "_m_step",
}


def _matrix():
    """The printer of matrix-calculus results as torch: tensors in and out, on the arguments'
    device and in their dtype; σ, softplus, softmax and log-sum-exp in torch's stable forms."""
    rt = TorchRuntime()
    torch = rt.torch

    def _m_step(x):
        return (x > 0).to(x.dtype)

    def _m_logdet(X):
        sign, logdet = torch.linalg.slogdet(X)
        if not sign > 0:
            raise ValueError("logdet: det of the matrix is not positive at the given arguments")
        return logdet

    def _m_softmax_vjp(s, g, axis):
        return s * (g - (s * g).sum(axis, keepdim=True))

    def _m_softmax_jacobian(s, m):  # numpy's, block by block
        n, k = s.shape
        b = m.reshape(n, k, -1)
        return (s[:, :, None] * (b - torch.einsum("ik,ikt->it", s, b)[:, None, :])).reshape(n * k, -1)

    def _m_softmax_sandwich(a, s, x):  # numpy's (see mfunction._m_softmax_sandwich)
        p, n = a.shape
        m, k = x.shape[1], s.shape[1]
        b = (a.T[:, :, None] * s[:, None, :]).reshape(n, p * k)
        c = (x[:, :, None] * s[:, None, :]).reshape(n, m * k)
        h = -(b.T @ c).reshape(p, k, m, k)
        d = torch.stack([(a * s[:, q]) @ x for q in range(k)])
        i = torch.arange(k, device=a.device)
        h[:, i, :, i] += d
        return h.reshape(p * k, m * k)

    def _m_kron_eye(a, k, m):
        return (a @ m.reshape(a.shape[1], -1)).reshape(a.shape[0] * k, -1)

    def _m_commutation(r, c, dt, dev):
        p = torch.arange(r * c, device=dev)
        return torch.eye(r * c, dtype=dt, device=dev)[(p % c) * r + p // c].T

    def _m_out(v, dt, dev):
        v = torch.as_tensor(v, dtype=dt, device=dev)
        if v.dim() == 0 or tuple(v.shape) == (1, 1):
            return v.reshape(())
        return v[:, 0] if v.dim() == 2 and v.shape[1] == 1 else v
    helpers = dict(_m_step=_m_step, _m_logdet=_m_logdet, _m_softmax_vjp=_m_softmax_vjp,
                   _m_softmax_jacobian=_m_softmax_jacobian,
                   _m_softmax_sandwich=_m_softmax_sandwich, _m_kron_eye=_m_kron_eye,
                   _m_commutation=_m_commutation, _m_out=_m_out)

    class TorchMatrixPrinter(ArrayMatrixPrinter):
        backend = NAME
        ops, functions = MATRIX_OPS, MATRIX_FUNCTIONS
        dtype_line = "    _dt, _dev = {0}.dtype, {0}.device"

        def namespace(self):
            return {"torch": torch, **rt.namespace(), **helpers}
    return TorchMatrixPrinter(rt)


register_backend(Backend(NAME, _network, "PyTorch: tensors in, tensors out, on their device and "
                         "dtype (no autograd: the derived backward)", function=_function,
                         matrix=_matrix))
