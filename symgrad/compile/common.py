"""Helpers shared by every part of the compiler: code-shape tests, σ folding, exp's safe range.

Where it sits: the bottom of symgrad.compile (derive → simplify → **compile** → train); every other
module of the package imports from here and nothing here imports from them. The overflow limits of
exp live here alone (:data:`XMAX`, :func:`exp_unshifted_limit`); :class:`StablePrimitives` holds
the stable forms of log, softplus, min and max once for the numpy and the scalar printers.
"""
from __future__ import annotations

import functools
import itertools
import linecache
import math
import re

import numpy as np
import sympy as sp

from symgrad.core.primitives import sigmoid
from symgrad.core.matexpr import N, Elementwise, SumAll  # noqa: F401  (N: re-exported to the package)

FLOATS = (np.dtype("float32"), np.dtype("float64"))
_IDENT = re.compile(r"[A-Za-z_]\w*(\.T)?$")
_NUMBER = re.compile(r"[-+(]*[\d.]+(/[\d.]+)?\)*$")
# exp(x) is finite for x up to log(max float): 709.78 in float64, 88.72 in float32; σ(x) clamps
# e⁻ˣ just below, at 709 and 88.
XMAX = {dt: math.floor(math.log(float(np.finfo(dt).max))) for dt in FLOATS}


def exp_unshifted_limit(dt, k: int) -> float:
    """A bound L: while every |z| < L, no exp(z) in dtype dt overflows or underflows below the
    normal numbers, and a sum of k of them stays finite (softmax needs no max shift)."""
    fi = np.finfo(dt)
    return min(math.log(float(fi.max) / k), -math.log(float(fi.tiny))) - 2


def _atomic(code: str) -> bool:
    """Whether code needs no parentheses as an operand: no operator outside brackets."""
    depth = 0
    for ch in code:
        depth += (ch in "([{") - (ch in ")]}")
        if depth == 0 and ch in "+-*/@<>=%!& |^~":
            return False
    return True


def _call(code: str):
    """f if code is one call np.f(…) as a whole, else None."""
    m = re.match(r"np\.(\w+)\(", code)
    if not m:
        return None
    depth = 0
    for i in range(m.end() - 1, len(code)):
        depth += (code[i] == "(") - (code[i] == ")")
        if depth == 0:
            return m.group(1) if i == len(code) - 1 else None
    return None


def _T(code: str) -> str:
    """The transpose of an atomic piece of code, undoing a trailing .T."""
    return code[:-2] if code.endswith(".T") and _atomic(code[:-2]) else f"{code}.T"


@functools.lru_cache(maxsize=4096)  # the printers ask for it again and again
def _body(lam: sp.Lambda):
    """A Lambda's body over real variables. (A derivative taken over complex dummies carries
    re/im terms, e.g. d|t|/dt; over reals they fold away.)"""
    reals = [sp.Dummy(f"r{i}", real=True) for i in range(len(lam.variables))]
    body = lam.expr.xreplace(dict(zip(lam.variables, reals)))
    return reals, stable(body.doit() if body.has(sp.Derivative) else body)


def stable(expr):
    """Rewrite eᵘ/(1 + eᵘ) and 1/(1 + e⁻ᵘ) as σ(u), which prints without overflow."""
    def is_sigmoid_mul(e):
        return isinstance(e, sp.Mul) and any(_sigmoid_pair(e, f) for f in e.args)

    def fold(e):
        for f in e.args:
            u = _sigmoid_pair(e, f)
            if u is not None:
                rest = list(e.args)
                rest.remove(f)
                if isinstance(f, sp.exp):
                    rest.remove(sp.Pow(1 + f, -1))
                return sp.Mul(sigmoid(u), *rest)
        return e
    if not isinstance(expr, sp.Basic) or not expr.has(sp.exp):
        return expr
    expr = expr.replace(is_sigmoid_mul, fold)
    return expr.replace(lambda e: isinstance(e, sp.Pow) and _sigmoid_pair(None, e) is not None,
                        lambda e: sigmoid(_sigmoid_pair(None, e)))


def _sigmoid_pair(mul, f):
    """u if f (a factor of mul) makes σ(u): 1/(1 + e⁻ᵘ) alone, or eᵘ beside 1/(1 + eᵘ)."""
    if isinstance(f, sp.Pow) and f.exp == -1 and isinstance(f.base, sp.Add) \
            and len(f.base.args) == 2 and sp.S.One in f.base.args:
        other = f.base.args[0] if f.base.args[1] == 1 else f.base.args[1]
        if mul is None and isinstance(other, sp.exp):
            return -other.args[0]
    if mul is not None and isinstance(f, sp.exp) and sp.Pow(1 + f, -1) in mul.args:
        return f.args[0]
    return None


def _softplus_arg(e):
    """u if e is log(1 + exp(u)), else None."""
    a = e.args[0]
    if isinstance(a, sp.Add) and len(a.args) == 2 and sp.S.One in a.args:
        other = a.args[0] if a.args[1] == 1 else a.args[1]
        if isinstance(other, sp.exp):
            return other.args[0]
    return None


def _broadcast(e) -> bool:
    """Whether e prints as less than its full shape (a bias row, a column, a reduction)."""
    if isinstance(e, sp.MatMul):
        return any(isinstance(m, sp.OneMatrix) for m in e.args)
    if isinstance(e, (sp.MatAdd, sp.HadamardProduct)):
        return all(_broadcast(a) for a in e.args)
    if isinstance(e, (sp.HadamardPower, sp.Transpose)):
        return _broadcast(e.args[0])
    if isinstance(e, Elementwise):
        reals, body = _body(e.lam)
        used = [op for r, op in zip(reals, e.operands) if body.has(r)]
        return not used or all(_broadcast(op) for op in used)
    return isinstance(e, (SumAll, sp.OneMatrix))


def _exec(src, name, ns):
    filename = f"<symgrad {name} {next(_COUNTER)}>"
    linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
    exec(compile(src, filename, "exec"), ns)
    fn = ns[name]
    fn.source = src
    return fn


_COUNTER = itertools.count()


def legend(typed) -> str:
    """Comment lines saying which value each generated name holds (v4 = G_z1), for a reader. A
    label is printed only when it is a plain identifier (so no user text can end the comment or
    mean anything to Python); any other is "(a user name)"; ``kernel.legend`` has them all."""
    def shown(label):
        text = str(label)
        return text if text.isidentifier() and text.isascii() else "(a user name)"
    items = [f"{v.sym.name} = {shown(v.label)}" for v in typed.variables]
    return "".join(f"# {', '.join(items[i:i + 8])}\n" for i in range(0, len(items), 8))


class StablePrimitives:
    """The primitives both printers write alike, in forms that neither overflow nor lose digits:
    log(1 + eᵘ) as softplus, log(1 + a) as log1p, min/max folded pairwise, Heaviside. Each printer
    gives FORMS, format strings keyed by primitive over the printed arguments."""

    FORMS: dict = {}

    def _form(self, key, *args):
        return self.FORMS[key].format(*map(self._print, args))

    def _print_softplus(self, e):
        return self._form("softplus", e.args[0])

    def _print_log(self, e):
        u = _softplus_arg(e)
        if u is not None:
            return self._form("softplus", u)
        a = e.args[0]
        if isinstance(a, sp.Add) and sp.S.One in a.args:
            return self._form("log1p", a - 1)
        return self._form("log", a)

    def _print_Heaviside(self, e):
        return self._form("heaviside", e.args[0], e.args[1] if len(e.args) > 1 else sp.S.Half)

    def _print_Min(self, e, key="min"):
        code = self._print(e.args[0])
        for a in e.args[1:]:
            code = self.FORMS[key].format(code, self._print(a))
        return code

    def _print_Max(self, e):
        return self._print_Min(e, "max")
