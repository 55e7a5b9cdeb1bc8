"""Helpers shared by every part of the compiler: code-shape tests, σ folding, exp's safe range.

Where it sits: the bottom of symgrad.compile (derive → simplify → **compile** → train); every other
module of the package imports from here and nothing here imports from them. The overflow limits of
exp live here alone (:data:`XMAX`, :func:`exp_unshifted_limit`); :class:`PrimitivePrinting` is
how the numpy and the scalar printers print every function: a registered primitive by its code
for the printer's backend (symgrad.core.primitives; no method per primitive), anything else by
SymPy, and whatever neither can print is one error naming it and the backend, while compiling.
"""
from __future__ import annotations

import functools
import itertools
import linecache
import math
import re

import numpy as np
import sympy as sp

from sympy.core.function import Application
from sympy.printing.codeprinter import PrintMethodNotImplementedError

from symgrad.compile.forms import stable_forms
from symgrad.core.primitives import HELPERS, RULES, MissingCodeError, call_args, sigmoid
from symgrad.core.matexpr import N, Elementwise, SumAll  # noqa: F401  (N: re-exported to the package)

FLOATS = (np.dtype("float32"), np.dtype("float64"))
IDENT = re.compile(r"[A-Za-z_]\w*(\.T)?$")
NUMBER = re.compile(r"[-+(]*[\d.]+(/[\d.]+)?\)*$")
# exp(x) is finite for x up to log(max float): 709.78 in float64, 88.72 in float32; σ(x) clamps
# e⁻ˣ just below, at 709 and 88.
XMAX = {dt: math.floor(math.log(float(np.finfo(dt).max))) for dt in FLOATS}


def exp_unshifted_limit(dt, k: int) -> float:
    """A bound L: while every |z| < L, no exp(z) in dtype dt overflows or underflows below the
    normal numbers, and a sum of k of them stays finite (softmax needs no max shift)."""
    fi = np.finfo(dt)
    return min(math.log(float(fi.max) / k), -math.log(float(fi.tiny))) - 2


def atomic(code: str) -> bool:
    """Whether code needs no parentheses as an operand: no operator outside brackets."""
    depth = 0
    for ch in code:
        depth += (ch in "([{") - (ch in ")]}")
        if depth == 0 and ch in "+-*/@<>=%!& |^~":
            return False
    return True


def one_call(code: str):
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


def batch_rows(k) -> bool:
    """Whether a row count is the batch's: n, or n/T for the values after a flatten of
    sequences (one row per sequence where n counts positions)."""
    return isinstance(k, sp.Basic) and k.has(N)


def transposed(code: str) -> str:
    """The transpose of an atomic piece of code, undoing a trailing .T."""
    return code[:-2] if code.endswith(".T") and atomic(code[:-2]) else f"{code}.T"


@functools.lru_cache(maxsize=4096)  # the printers ask for it again and again
def lambda_body(lam: sp.Lambda):
    """A Lambda's body over real variables. (A derivative taken over complex dummies carries
    re/im terms, e.g. d|t|/dt; over reals they fold away.)"""
    reals = [sp.Dummy(f"r{i}", real=True) for i in range(len(lam.variables))]
    body = lam.expr.xreplace(dict(zip(lam.variables, reals)))
    # the same stable forms as compile_function's (an activation log σ(x) printed as written was
    # −709 at x = −1000 and its loss inf), after σ is folded from its exponentials
    return reals, stable_forms(stable(body.doit() if body.has(sp.Derivative) else body))


def print_elementwise(printer, e, paren) -> str:
    """An Elementwise node as its body, each variable bound to its operand's code (``paren``
    parenthesizes it) while the body prints: the numpy and the array backends' printers both."""
    reals, body = lambda_body(e.lam)
    saved = dict(printer.env)
    printer.env.update({r: paren(a) for r, a in zip(reals, e.operands)})
    try:
        return printer._print(body)
    finally:
        printer.env = saved


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


def broadcasts(e) -> bool:
    """Whether e prints as less than its full shape (a bias row, a column, a reduction)."""
    if isinstance(e, sp.MatMul):
        return any(isinstance(m, sp.OneMatrix) for m in e.args)
    if isinstance(e, (sp.MatAdd, sp.HadamardProduct)):
        return all(broadcasts(a) for a in e.args)
    if isinstance(e, (sp.HadamardPower, sp.Transpose)):
        return broadcasts(e.args[0])
    if isinstance(e, Elementwise):
        reals, body = lambda_body(e.lam)
        used = [op for r, op in zip(reals, e.operands) if body.has(r)]
        return not used or all(broadcasts(op) for op in used)
    return isinstance(e, (SumAll, sp.OneMatrix))


def exec_generated(src, name, ns):
    ns = {**HELPERS, **ns}  # what registered primitives' code calls (_sigmoid, _np_erf, …)
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


def missing_code(fn, backend: str) -> MissingCodeError:
    """The one-line error for what ``backend`` cannot print: ``fn`` a class, an expression, or
    the name of a module function SymPy would call."""
    cls = fn if isinstance(fn, type) else type(fn)
    name = fn if isinstance(fn, str) else RULES[cls].name if cls in RULES else cls.__name__
    what = ("primitive" if isinstance(fn, str) or cls in RULES or issubclass(cls, Application)
            else "expression")
    return MissingCodeError(f"compile: no {backend} code for the {what} {name!r}; register it "
                            "with symgrad.register_primitive")


def require_code(exprs, backends, derivatives=False) -> None:
    """Fail now, naming the function and the backend, when a registered primitive in ``exprs``
    (matrix expressions included: the bodies of their entrywise Lambdas count) has no code for
    one of ``backends``; with ``derivatives``, the primitives its registered rule brings in too
    (a Jacobian's). A function nobody registered is left to SymPy's printer, whose gaps raise
    the same error when printed."""
    seen, checked, todo = set(), set(), list(exprs)
    while todo:  # each distinct subtree once: 0.3 ms for a 16-layer program (atoms: 0.8 ms)
        e = todo.pop()
        if not isinstance(e, sp.Basic):  # a Matrix of expressions
            todo.extend(e if isinstance(e, sp.MatrixBase) else ())
            continue
        if e in seen:
            continue
        seen.add(e)
        todo.extend(e.args)
        spec = RULES.get(type(e))
        if spec is None or type(e) in checked:
            continue
        checked.add(type(e))
        for backend in backends:
            if backend not in spec.code:
                raise missing_code(type(e), backend)
        if derivatives:
            try:
                todo.append(sp.sympify(spec.deriv(e, *call_args(e, spec)), strict=True))
            except (TypeError, ValueError, sp.SympifyError):
                pass


class PrimitivePrinting:
    """How the code printers print functions. A registered primitive prints by its code for
    ``backend`` (a format string over the printed arguments, or a function of this printer and
    the argument expressions: see PrimitiveSpec.code), never by a method per primitive. Any other
    function goes to SymPy's printer; where that has nothing (strict mode) or would call a module
    the kernel's namespace lacks (NumPyPrinter writes math.erf for erf: a NameError at call
    time), the error names the function and the backend instead."""

    backend = ""   # the key of this printer's code in each registration
    modules = ()   # the modules its generated code may call (numpy. → np., math.)

    def code(self, e) -> str:
        """The code for a SymPy expression (for a primitive's code function)."""
        return self._print(e)

    def paren(self, e) -> str:
        """The code for e, parenthesized unless atomic."""
        code = self._print(e)
        return code if atomic(code) else f"({code})"

    def setting(self, key):
        """A setting of this printer (``relu_grad_at_zero``), for a primitive's code function."""
        return self._settings[key]

    def _print(self, expr, **kwargs):
        spec = RULES.get(type(expr))
        if spec is not None:
            code = spec.code.get(self.backend)
            if code is None:
                raise missing_code(type(expr), self.backend)
            args = call_args(expr, spec)
            return code(self, *args) if callable(code) else code.format(*map(self._print, args))
        if not isinstance(expr, Application):
            return super()._print(expr, **kwargs)
        self._functions = getattr(self, "_functions", []) + [expr]  # for _module_format's error
        try:
            return super()._print(expr, **kwargs)
        except PrintMethodNotImplementedError:
            raise missing_code(expr, self.backend) from None
        finally:
            self._functions = self._functions[:-1]

    def _module_format(self, fqn, register=True):
        if not fqn.startswith(self.modules):
            stack = getattr(self, "_functions", None)
            raise missing_code(stack[-1] if stack else fqn, self.backend)
        return super()._module_format(fqn, register)

    def _print_not_supported(self, expr):
        raise missing_code(expr, self.backend)
