"""Compiling derived gradients to numpy: network kernels, and plain functions with their Jacobians.

Where it sits: derive → simplify → **compile** → train. ``backprop.algorithm(net)`` gives the batch
program (forward values, each g once, every gradient; one example per row) and the mean loss.
:class:`KernelPrinter`, a SymPy ``NumPyPrinter``, prints those matrix expressions as numpy; the emitter
below turns the program into statements (shared subexpressions hoisted and computed once, dead
temporaries updated in place, products on BLAS through ``@``) and the source is exec'd into
``kernel(params, X, Y) -> (loss, grads)``. Tiny networks get a second code path from the same
program, unrolled into scalar Python per batch size (:class:`ScalarPrinter`): there numpy's per-call
overhead, not arithmetic, is the cost. :func:`compile_function` compiles a function of a few
variables and its Jacobian, vectorized over points. ``symgrad.train`` and ``symgrad.check`` call these.
"""
from __future__ import annotations

import itertools
import linecache
import math
import re
import threading

import numpy as np
import sympy as sp
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.pycode import PythonCodePrinter

from . import backprop
from .functions import _SETTINGS, sigmoid
from .matexpr import Elementwise, LogSumExp, Softmax, SoftmaxVJP, SumAll

N = backprop.N
FLOATS = (np.dtype("float32"), np.dtype("float64"))
_IDENT = re.compile(r"[A-Za-z_]\w*(\.T)?$")
_NUMBER = re.compile(r"[-+(]*[\d.]+(/[\d.]+)?\)*$")
_XMAX = {np.dtype("float32"): 88.0, np.dtype("float64"): 709.0}  # exp(x) overflows past these
SCALAR_WORK = 200  # batch size × weight entries up to which the unrolled scalar path is used


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


class KernelPrinter(NumPyPrinter):
    """A batch program's matrix expressions (one example a row) as numpy over arrays that hold
    every batch value transposed, one example a column, as the notes write z = W x + b: Z1 = X Wᵀ
    prints as ``W1 @ X.T``, so biases broadcast down columns and softmax reduces along them, both
    contiguous. A MatrixSymbol prints as its name (X and Y as the views ``X.T``, ``Y.T``), ``n`` is
    the batch size and ``dt`` the dtype. No broadcast is formed (1·bᵀ is ``b[:, None]``, Gᵀ·1 is
    ``G @ one_n``). An Elementwise prints its Lambda's body with the operand arrays for its
    variables; σ, softplus and log(1 + eᵘ) print in forms that neither overflow nor lose digits.
    """

    def __init__(self, settings=None, names=None):
        super().__init__(settings or {})
        self.env, self.consts, self.rows, self.pre, self.done = {}, {}, {}, [], set()
        self.names = names or {}  # MatrixSymbol -> code, for the inputs
        self.tmp = itertools.count()
        self.labels, self.onehot = None, False  # Y held as integer labels; their one-hot needed
        self.buffered = set()  # batch values that live in arrays of the kernel's, reused per call

    def _module_format(self, fqn, register=True):
        s = super()._module_format(fqn, register)
        return "np." + s[6:] if s.startswith("numpy.") else s

    def _paren(self, e):
        code = self._print(e)
        return code if _atomic(code) else f"({code})"

    def const(self, name, *spec):
        """A constant of the kernel's per (n, dtype), made once: see _consts."""
        self.consts[name] = spec
        return name

    def into(self, lhs, e):
        """Code for e, written into lhs's own array when lhs is buffered and e is a product of two
        factors or one numpy ufunc call (no allocation per call)."""
        code = self._print(e)
        if lhs not in self.buffered:
            return code
        buf = self.const(f"buf_{lhs.name}", "buf", lhs.shape[1])
        if isinstance(e, sp.MatMul) and len(e.args) == 2 and not _broadcast(e) \
                and e.as_coeff_matrices()[0] == 1:
            return f"np.matmul({self._trn(e.args[1])}, {self._trn(e.args[0])}, out={buf})"
        name = _call(code)
        if name and isinstance(getattr(np, name, None), np.ufunc):
            return f"{code[:-1]}, out={buf})"
        return code

    def _one(self, k, row=False):  # a ones vector, or a (1, k) row
        return self.const(f"one_{'r' if row else ''}{k}", "ones", (1, k) if row else k)

    # scalars
    def _print_Symbol(self, e):
        return self.env[e] if e in self.env else ("n" if e == N else super()._print_Symbol(e))

    _print_Dummy = _print_Symbol

    def _print_Pow(self, e, rational=False):
        if e.exp == -1:
            return f"(1/{self._paren(e.base)})"
        return super()._print_Pow(e, rational)

    def _print_relu(self, e):
        return f"np.maximum({self._print(e.args[0])}, 0)"

    def _print_step(self, e):  # in the kernel's dtype; step(0) = relu'(0) as configured
        x, at0 = self._paren(e.args[0]), _SETTINGS["relu_grad_at_zero"]
        if at0 == 0 or at0 == 1:
            return f"({x} {'>' if at0 == 0 else '>='} 0).astype(dt)"
        return f"np.heaviside({x}, 0.5)"

    def _print_sigmoid(self, e):  # 1/(1 + e^-x), e^-x clamped below overflow: exact to the last bit
        return f"(1/(1 + np.exp(np.minimum(-{self._paren(e.args[0])}, {self.const('xmax', 'xmax')}))))"

    def _print_softplus(self, e):
        return f"np.logaddexp(0, {self._print(e.args[0])})"

    def _print_log(self, e):
        u = _softplus_arg(e)
        if u is not None:
            return f"np.logaddexp(0, {self._print(u)})"
        a = e.args[0]
        if isinstance(a, sp.Add) and sp.S.One in a.args:
            return f"np.log1p({self._print(a - 1)})"
        return f"np.log({self._print(a)})"

    def _print_leaky_relu(self, e):
        x, a = self._paren(e.args[0]), e.args[1]
        if 0 <= a <= 1:
            return f"np.maximum({x}, {self._print(a)}*{x})"
        return f"np.where({x} > 0, {x}, {self._print(a)}*{x})"

    def _print_Heaviside(self, e):
        h0 = e.args[1] if len(e.args) > 1 else sp.S.Half
        return f"np.heaviside({self._print(e.args[0])}, {self._print(h0)})"

    def _print_Min(self, e, fn="minimum"):
        code = self._print(e.args[0])
        for a in e.args[1:]:
            code = f"np.{fn}({code}, {self._print(a)})"
        return code

    def _print_Max(self, e):
        return self._print_Min(e, "maximum")

    # matrices: code(e) holds e, or eᵀ for a batch value (n rows)
    def _print_MatrixSymbol(self, e):
        if e == self.labels:  # any use not printed at the labels below needs the one-hot matrix
            self.onehot = True
            return "Y1h"
        return self.names.get(e, e.name)

    def _nrm(self, e):
        """Code for e itself (not transposed) as a product's factor."""
        if isinstance(e, sp.Transpose):
            return self._trn(e.arg)
        return _T(self._paren(e)) if e.shape[0] == N else self._paren(e)

    def _trn(self, e):
        """Code for eᵀ as a product's factor."""
        if isinstance(e, sp.Transpose):
            return self._nrm(e.arg)
        return self._paren(e) if e.shape[0] == N else _T(self._paren(e))

    def _print_Transpose(self, e):
        a = e.arg
        return self._print(a) if a.shape[0] == N or e.shape[0] == N else _T(self._paren(a))

    def at_labels(self, e):
        """e[i, y_i] for every row i, as a 1-D array: what Σ y ⊙ e is for one-hot rows y."""
        if isinstance(e, sp.MatrixSymbol):
            return f"{self._print(e)}.ravel()[flat]"
        return f"({self._print(e)}).ravel()[flat]"

    def _product(self, c, mats):
        mats = list(mats)
        batch = sp.MatMul(*mats).shape[0] == N if len(mats) > 1 else mats[0].shape[0] == N
        if len(mats) == 2 and isinstance(mats[0], sp.OneMatrix) and mats[0].shape[1] == 1:
            r = mats[1]  # 1·rᵀ: a row broadcast over the batch, here down the columns
            code = (f"{r.arg.name}[:, None]" if isinstance(r, sp.Transpose) and
                    isinstance(r.arg, sp.MatrixSymbol) else f"{self._trn(r)}")
        elif len(mats) == 2 and isinstance(mats[1], sp.OneMatrix) and mats[1].shape[0] == 1:
            code = self._print(mats[0])  # v·1ᵀ: a batch column, held as a row, broadcast
        elif isinstance(mats[-1], sp.OneMatrix) and mats[-1].shape[1] == 1:  # A·1: row sums
            a = sp.MatMul(*mats[:-1]) if len(mats) > 2 else mats[0]
            k = a.shape[1]
            code = (f"{self._one(k, row=True)} @ {self._trn(a)}" if batch else
                    f"{self._nrm(a)} @ {self._one('n' if k == N else k)}")
        elif len(mats) == 1:
            code = self._print(mats[0])
        elif batch:
            code = " @ ".join(self._trn(m) for m in reversed(mats))
        else:
            code = " @ ".join(self._nrm(m) for m in mats)
        code = code if c == 1 or _atomic(code) else f"({code})"
        return code if c == 1 else f"-{code}" if c == -1 else f"{self._paren(c)}*{code}"

    def _print_MatMul(self, e):
        return self._product(*e.as_coeff_matrices())

    def _print_MatAdd(self, e):
        out = []
        for t in sorted(e.args, key=lambda t: isinstance(t, sp.MatMul) and t.args[0] == -1):
            c, mats = t.as_coeff_matrices() if isinstance(t, sp.MatMul) else (1, [t])
            neg = c.is_number and c < 0 if c != 1 else False
            code = self._product(-c if neg else c, mats)
            out.append(("- " if neg else "+ ") + (code if not neg or _atomic(code) else f"({code})"))
        s = " ".join(out)
        return s[2:] if s.startswith("+ ") else "-" + s[2:]

    def _print_HadamardProduct(self, e):
        return " * ".join(self._paren(a) for a in e.args)

    def _print_HadamardPower(self, e):
        return f"{self._paren(e.args[0])}**{self._print(e.args[1])}"

    def _print_OneMatrix(self, e):
        return f"np.ones(({self._print(e.shape[0])}, {self._print(e.shape[1])}), dt)"

    def _print_Elementwise(self, e):
        reals, body = _body(e.lam)
        saved = dict(self.env)
        self.env.update({r: self._paren(a) for r, a in zip(reals, e.operands)})
        try:
            return self._print(body)
        finally:
            self.env = saved

    def _print_SumAll(self, e):
        a = e.args[0]
        if self.labels is not None and isinstance(a, sp.HadamardProduct) and len(a.args) == 2 \
                and self.labels in a.args:
            other = a.args[0] if a.args[1] == self.labels else a.args[1]
            terms = other.args if isinstance(other, sp.MatAdd) else [other]
            out = []
            for t in terms:  # Σᵢ (a + b)[i, yᵢ] = Σᵢ a[i, yᵢ] + Σᵢ b[i, yᵢ]; a column: Σᵢ vᵢ
                c, mats = t.as_coeff_matrices() if isinstance(t, sp.MatMul) else (1, [t])
                col = len(mats) == 2 and isinstance(mats[1], sp.OneMatrix)
                code = (f"{self._paren(mats[0])}.sum()" if col else
                        f"{self.at_labels(sp.MatMul(*mats) if len(mats) > 1 else mats[0])}.sum()")
                out.append((c, code))
            out.sort(key=lambda t: bool(t[0] < 0))
            s = " ".join(("- " if c < 0 else "+ ") + (code if abs(c) == 1 else
                                                     f"{self._print(abs(c))}*{code}")
                         for c, code in out)
            return s[2:] if s.startswith("+") else "-" + s[2:]
        if isinstance(a, sp.HadamardProduct) and len(a.args) == 2 and not any(map(_broadcast, a.args)):
            return f"np.vdot({self._print(a.args[0])}, {self._print(a.args[1])})"
        if isinstance(a, sp.HadamardPower) and a.args[1] == 2:
            x = self._print(a.args[0])
            return f"np.vdot({x}, {x})" if _IDENT.match(x) else f"_sumsq({x})"
        return f"{self._paren(a)}.sum()"

    def softmax_rows(self, z, target, inplace=False, buffered=False):
        """exp(z − m) for each example into ``target`` and its sums s, remembered for a
        log-sum-exp of the same z. While every entry lies within ±xlim, exp(z) can neither
        overflow nor underflow, even summed, and no shift is needed (m is None); else m is each
        example's maximum."""
        zc, k = self._paren(z), z.shape[1]
        m, s, one = f"m_{target}", f"s_{target}", self._one(k, row=True)
        lim = self.const(f"xlim_{k}", "xlim", k)
        first = f"{target} = {zc}; {target} -= {m}" if inplace else f"{target} = {zc} - {m}"
        out = zc if inplace else self.const(f"buf_{target}", "buf", k) if buffered else None
        self.pre += [f"if np.vdot({zc}, {zc}) < {lim}**2 or -{lim} < {zc}.min() and {zc}.max() < "
                     f"{lim}:  # exp(z) is safe unshifted",
                     f"    {m} = None; {target} = np.exp({zc}" + (f", out={out})" if out else ")"),
                     "else:  # shift each example by its maximum",
                     f"    {m} = {zc}.max(axis=0, keepdims=True); {first}",
                     f"    np.exp({target}, out={target})", f"{s} = {one} @ {target}"]
        self.rows[z] = (m, s)
        return target

    def _print_Softmax(self, e):
        name = self.softmax_rows(e.args[0], f"_sm{next(self.tmp)}")
        self.pre.append(f"{name} /= s_{name}")
        return name

    def _print_LogSumExp(self, e):
        z = e.args[0]
        if z not in self.rows:
            self.softmax_rows(z, f"_e{next(self.tmp)}")
        m, s = self.rows[z]
        name = f"lse_{s[2:]}"
        if name not in self.done:
            self.done.add(name)
            self.pre.append(f"{name} = np.log({s}) if {m} is None else np.log({s}) + {m}")
        return name

    def _print_SoftmaxVJP(self, e):
        y, g = self._paren(e.args[0]), self._paren(e.args[1])
        return f"{y} * ({g} - {self._one(e.shape[1], row=True)} @ ({y} * {g}))"


# -- the program: shared subexpressions once, then statements with in-place updates ----------------
def _nodes(e):
    yield e
    if isinstance(e, sp.MatrixExpr) and not isinstance(e, sp.MatrixSymbol):
        for a in (e.operands if isinstance(e, Elementwise) else e.args):
            yield from _nodes(a)


def _worth(e):
    return (isinstance(e, sp.MatrixExpr) and not isinstance(e, (sp.MatrixSymbol, sp.OneMatrix))
            and not (isinstance(e, sp.Transpose) and isinstance(e.arg, sp.MatrixSymbol))
            and not _broadcast(e))


def cse(stmts):
    """Hoist every matrix subexpression used twice into a temporary ``_c<k>`` defined once, just
    before its first use (e.g. ŷ − y, shared by the mse loss and its gradient)."""
    stmts, k = list(stmts), 0
    while True:
        counts = {}
        for _, rhs in stmts:
            for e in _nodes(rhs):
                if _worth(e):
                    counts[e] = counts.get(e, 0) + 1
        reps = [e for e, c in counts.items() if c > 1]
        if not reps:
            return stmts
        e = max(reps, key=lambda x: sum(1 for _ in _nodes(x)))
        sym, k = sp.MatrixSymbol(f"_c{k}", *e.shape), k + 1
        first = next(i for i, (_, r) in enumerate(stmts) if any(x == e for x in _nodes(r)))
        stmts = [(lhs, rhs.xreplace({e: sym})) for lhs, rhs in stmts]
        stmts.insert(first, (sym, e))


def emit(stmts, printer, owned, outputs=()):
    """Python statements for ``stmts`` [(lhs, rhs)]. A symbol in ``owned`` that is dead after a
    statement (its whole alias group) may be updated in place to make that statement's value."""
    last, alias, lines, foreign = {}, {}, [], set()
    for i, (_, rhs) in enumerate(stmts):
        for s in rhs.atoms(sp.MatrixSymbol):
            last[s] = i
    group = lambda s: [t for t in alias if alias[t] == alias.get(s, s)] + [alias.get(s, s)]

    def consumable(s, i, rhs, shape):
        if not isinstance(s, sp.MatrixSymbol) or s not in owned or s in foreign or s.shape != shape:
            return False
        members = set(group(s))
        uses = sum(1 for x in _nodes(rhs) if x in members)
        return uses == 1 and all(last.get(t, -1) <= i for t in members)

    def fresh(t, shape):
        if t.shape != shape or _broadcast(t) or isinstance(t, (sp.MatrixSymbol, sp.Transpose)):
            return False
        code = printer._print(t)
        return not (_IDENT.match(code) or _NUMBER.match(code))

    stmts, scale = _fold_scale(stmts)
    printer.buffered = {s for s in owned if s.shape[0] == N} - set(outputs)
    for i, (lhs, rhs) in enumerate(stmts):
        L, shape = lhs.name, lhs.shape
        printer.pre = []
        body = []
        if isinstance(rhs, Softmax) and rhs.args[1] == 1:
            z = rhs.args[0]
            printer.softmax_rows(z, L, inplace=consumable(z, i, rhs, shape),
                                 buffered=lhs in printer.buffered)
            body = [f"{L} *= {printer._paren(scale[lhs])}/s_{L}" if lhs in scale
                    else f"{L} /= s_{L}"]
        elif isinstance(rhs, sp.MatrixSymbol):
            alias[lhs] = alias.get(rhs, rhs)
            body = [f"{L} = {rhs.name}.copy()" if lhs in outputs else f"{L} = {rhs.name}"]
        elif isinstance(rhs, (sp.MatAdd, sp.HadamardProduct, sp.MatMul)):
            body = _update(printer, lhs, rhs, i, consumable, fresh, alias)
        if not body:
            code = printer.into(lhs, rhs)
            body = [f"{L} = {code}"]
            if _IDENT.match(code):  # the value of another array (an identity activation)
                same = next((t for t in owned if t.name == code), None)
                if same is not None:
                    alias[lhs] = alias.get(same, same)
                else:  # an input's or a parameter's: never to be updated in place
                    foreign.add(lhs)
        lines += printer.pre + body
    return lines


def _fold_scale(stmts):
    """ŷ = softmax(z) whose one use is g = c·(ŷ + r) (the cross-entropy gradient, c = 1/n): scale
    ŷ by c while normalizing it, and g = ŷ + c·r, one pass over g fewer. Returns the statements
    and {ŷ: c}."""
    stmts, scale = list(stmts), {}
    for i, (lhs, rhs) in enumerate(stmts):
        if not isinstance(rhs, Softmax):
            continue
        users = [j for j, (_, r) in enumerate(stmts) if lhs in r.atoms(sp.MatrixSymbol)]
        if len(users) != 1:
            continue
        j = users[0]
        target, r = stmts[j]
        if isinstance(r, sp.MatMul):
            c, mats = r.as_coeff_matrices()
            if len(mats) == 1 and isinstance(mats[0], sp.MatAdd) and lhs in mats[0].args \
                    and c != 1 and not c.has(sp.MatrixSymbol):
                rest = [sp.MatMul(c, t).doit() for t in mats[0].args if t != lhs]
                stmts[j] = (target, sp.MatAdd(lhs, *rest))
                scale[lhs] = c
    return stmts, scale


def _update(printer, lhs, rhs, i, consumable, fresh, alias):
    """lhs = a ∘ b ∘ … as ``lhs = a; lhs ∘= b …`` when a is a dead temporary or a fresh array."""
    L, shape = lhs.name, lhs.shape
    if isinstance(rhs, sp.MatMul):
        c, mats = rhs.as_coeff_matrices()
        if c == 1 or len(mats) != 1:
            return None
        inner = mats[0]
        if isinstance(inner, (sp.MatAdd, sp.HadamardProduct)) and not consumable(inner, i, rhs, shape):
            head = _update(printer, lhs, inner, i, consumable, fresh, alias)
            if head:
                return head + ([f"np.negative({L}, out={L})"] if c == -1
                               else [f"{L} *= {printer._print(c)}"])
        terms, op = [inner], None
    else:
        terms, op = list(rhs.args), ("+=" if isinstance(rhs, sp.MatAdd) else "*=")
    pick = next((t for t in terms if consumable(t, i, rhs, shape)), None)
    if pick is not None:
        alias[lhs] = alias.get(pick, pick)
        head = [f"{L} = {pick.name}"]
    else:
        pick = next((t for t in terms if fresh(t, shape)), None)
        if pick is None:
            return None
        head = [f"{L} = {printer.into(lhs, pick)}"]
    rest = [t for t in terms if t is not pick]
    Y = printer.labels
    if op == "+=" and Y is not None and pick != Y:  # c·Y added at each row's label: one entry a row
        for t in [t for t in rest if t == Y or isinstance(t, sp.MatMul)
                  and t.as_coeff_matrices()[1] == [Y]]:
            rest.remove(t)
            c_ = 1 if t == Y else t.as_coeff_matrices()[0]
            head.append(f"_add_at({L}, flat, Y, {printer._print(c_)})")
    if op is None:
        return head + ([f"np.negative({L}, out={L})"] if c == -1 else [f"{L} *= {printer._print(c)}"])
    for t in rest:
        c_, mats = t.as_coeff_matrices() if isinstance(t, sp.MatMul) else (1, [t])
        if op == "+=" and c_ != 1 and c_.is_number and c_ < 0:
            head.append(f"{L} -= {printer._product(-c_, mats)}")
        else:
            head.append(f"{L} {op} {printer._print(t)}")
    return head


# -- network kernels -------------------------------------------------------------------------------
def param_shapes(net) -> dict:
    """Parameter name -> numpy shape: W (d_out, d_in) as in the notes, a bias 1-D (d,)."""
    return {p: s if backprop.is_weight(net, p) else (s[0],) for p, s in net.shapes.items()}


def _consts(specs):
    """``consts(n, dt)``: the kernel's constants for batch size n and dtype dt, made once per
    thread: read-only ones vectors, the example numbers, exp's safe range, and the arrays that
    batch values are computed into (``buf``: arg × n, one example a column)."""
    local = threading.local()

    def make(spec, n, dt):
        kind, arg = spec[0], (spec[1] if len(spec) > 1 else None)
        if kind == "xmax":
            return _XMAX[dt]
        if kind == "xlim":  # |z| < xlim: no exp(z) overflows, nor underflows below normal numbers,
            fi = np.finfo(dt)  # and a row sum of arg of them stays finite
            return min(math.log(float(fi.max) / arg), -math.log(float(fi.tiny))) - 2
        if kind == "buf":
            return np.empty((arg, n), dt)
        if kind == "ones":
            a = np.ones(n if arg == "n" else arg, dt)
        else:  # rows: 0, 1, …, n − 1
            a = np.arange(n)
        a.flags.writeable = False
        return a

    def consts(n, dt):
        cache = local.__dict__
        got = cache.get((n, dt))
        if got is None:
            if len(cache) > 16:
                cache.clear()
            got = cache[n, dt] = tuple(make(spec, n, dt) for spec in specs)
        return got
    return consts


def _add_at(A, flat, y, c):
    """Example i's entry y_i of A (held transposed, a fresh array of the kernel's) += c."""
    if A.flags.c_contiguous:
        A.reshape(-1)[flat] += c
    else:
        A[y, np.arange(len(y))] += c


def _sumsq(a):
    return np.vdot(a, a)


def _exec(src, name, ns):
    filename = f"<symgrad {name} {next(_COUNTER)}>"
    linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
    exec(compile(src, filename, "exec"), ns)
    fn = ns[name]
    fn.source = src
    return fn


_COUNTER = itertools.count()


def program(net):
    """The batch program with the mean loss placed after the forward values: [(lhs, rhs)]."""
    d = backprop.algorithm(net)
    prog = list(d.meta["program"])
    at = next(i for i, (lhs, _) in enumerate(prog) if lhs.name.startswith("G_"))
    return prog[:at] + [(sp.MatrixSymbol("loss", 1, 1), d.meta["loss"])] + prog[at:]


class Spec:
    """What a kernel checks its arguments against; the slow path of validation and conversion."""

    def __init__(self, net):
        self.net, self.shapes = net, param_shapes(net)
        self.names = list(self.shapes)
        self.d_in = net.nodes[net.inputs[0]].dim
        self.d_out = net.nodes[net.output_node].dim
        self.labels = net.loss.name == "cross_entropy"
        self.weights = sum(math.prod(s) for p, s in self.shapes.items() if len(s) == 2)
        rows = backprop.batch_rows(net)
        self.X, self.Y = rows[net.sym(net.inputs[0])], rows[net.target]

    def check(self, params, X, Y=None):
        if not isinstance(params, dict):
            raise ValueError(f"params: expected a dict of arrays named {', '.join(self.names)}")
        out, dt = [], None
        for p in self.names:
            if p not in params:
                raise ValueError(f"params: missing {p!r} (expected {', '.join(self.names)})")
            a = np.asarray(params[p])
            if a.dtype not in FLOATS:
                raise ValueError(f"params[{p!r}] is {a.dtype}; expected float32 or float64")
            if a.shape != self.shapes[p]:
                raise ValueError(f"params[{p!r}] has shape {a.shape}; expected {self.shapes[p]}")
            if dt is not None and a.dtype != dt:
                raise ValueError(f"params[{p!r}] is {a.dtype} but params[{self.names[0]!r}] is {dt}")
            dt = a.dtype
            out.append(a)
        X = _numeric(X, "X", dt)
        if X.ndim != 2 or X.shape[1] != self.d_in:
            raise ValueError(f"X has shape {X.shape}; expected (n, {self.d_in}), one example a row")
        out.append(X)
        if Y is not None:
            out.append(self.target(Y, X.shape[0], dt))
        return out

    def target(self, Y, n, dt):
        Y = np.asarray(Y)
        if self.labels and Y.ndim == 1 and Y.shape == (n,):
            if Y.dtype.kind not in "iu":
                raise ValueError(f"Y: class labels must be integers, got {Y.dtype}")
            if n and (Y.min() < 0 or Y.max() >= self.d_out):
                raise ValueError(f"Y: labels must lie in 0..{self.d_out - 1}, got "
                                 f"{Y.min() if Y.min() < 0 else Y.max()}")
            return Y
        if Y.ndim == 1 and self.d_out == 1 and Y.shape == (n,):
            Y = Y[:, None]
        if Y.shape != (n, self.d_out):
            extra = f" or ({n},) integer labels" if self.labels else ""
            raise ValueError(f"Y has shape {Y.shape}; expected ({n}, {self.d_out}){extra}")
        return _numeric(Y, "Y", dt)


def _numeric(A, what, dt):
    A = np.asarray(A)
    if A.dtype.kind not in "biuf":
        raise ValueError(f"{what} must be numeric, got {A.dtype}")
    return A if A.dtype == dt else A.astype(dt)


def _onehot(y, n, k, dt):
    Y = np.zeros((n, k), dt)
    Y[np.arange(n), y] = 1
    return Y


def _prologue(spec, with_y):
    """Fast argument checks; anything unusual goes to Spec.check (conversion or a clear error)."""
    names = spec.names
    yshape = "" if not with_y else (
        f" or Y.shape != (X.shape[0], {spec.d_out}) or Y.dtype is not dt" if not spec.labels else
        " or Y.shape[0] != X.shape[0] or Y.ndim == 1 and Y.dtype.kind not in 'iu'")
    args = ", ".join(names) + ", X" + (", Y" if with_y else "")
    shapes = "(" + "".join(f"{p}.shape, " for p in names) + ")"
    lines = ["    try:", f"        {'; '.join(f'{p} = params[{p!r}]' for p in names)}",
             "        dt = X.dtype",  # (dtype objects of native floats are unique)
             f"        if (X.ndim != 2 or X.shape[1] != {spec.d_in} or dt is not _F64 and dt is not _F32 or "
             f"{shapes} != _SHAPES or " + " or ".join(f"{p}.dtype is not dt" for p in names)
             + yshape + "):", "            raise ValueError", "    except Exception:",
             f"        {args}, = _spec.check(params, X{', Y' if with_y else ''})",
             "        dt = X.dtype", "    n = X.shape[0]"]
    return lines


def _namespace(spec, **extra):
    return dict(np=np, math=math, FLOATS=FLOATS, _XMAX=_XMAX, _spec=spec, _add_at=_add_at,
                _sumsq=_sumsq, _onehot=_onehot, _F64=FLOATS[1], _F32=FLOATS[0],
                _SHAPES=tuple(spec.shapes[p] for p in spec.names), **extra)


def _function(name, spec, stmts, owned, returns, with_y, outputs=(), head=()):
    """Source of ``name(params, X[, Y])``: the checks, then the statements; for cross_entropy a
    second copy of them for Y given as integer labels (indexed, never expanded to one-hot)."""
    variants = []
    for labels in ([True, False] if with_y and spec.labels else [False]):
        printer = KernelPrinter(names={spec.X: "X.T", spec.Y: "Y.T"})
        printer.labels = sp.MatrixSymbol("Y", N, spec.d_out) if labels else None
        body = emit(stmts, printer, owned, outputs)
        if printer.onehot:
            body.insert(0, f"Y1h = _onehot(Y, n, {spec.d_out}, dt).T")
        if labels:  # entry (y_i, i) of a (d, n) array; a label out of range raises here
            body = [f"flat = np.ravel_multi_index((Y, {printer.const('rows', 'rows')}), "
                    f"({spec.d_out}, n))"] + body
        variants.append((printer, body
                         + [f"return {returns}"]))
    consts = {c: v for p, _ in variants for c, v in p.consts.items()}
    pre = [f"    {', '.join(consts)}, = _consts(n, dt)"] if consts else []
    lines = [f"def {name}(params, X{', Y' if with_y else ''}):"] + _prologue(spec, with_y)
    lines += list(head) + pre
    if len(variants) == 2:
        lines += ["    if Y.ndim == 1:  # integer labels", "        try:",
                  "            " + variants[0][1][0], "        except ValueError:  # say which label",
                  "            _spec.target(Y, n, dt)"]
        lines += ["        " + b for b in variants[0][1][1:]]
    lines += ["    " + b for b in variants[-1][1]]
    return "\n".join(lines) + "\n", _consts(list(consts.values()))


def compile_network(net, backend: str = "numpy", scalar=None):
    """``loss, grads = kernel(params, X, Y)``: the mean loss and its gradient for every parameter.

    ``params`` maps names to arrays shaped as :func:`param_shapes` says; X is (n, d0), one example
    a row; Y is (n, dL), or (n,) integer labels for cross_entropy. The kernel keeps the dtype of the
    parameters (float32 or float64; X and Y are cast to it). ``kernel.source`` is the generated code,
    ``kernel.predict(params, X)`` the forward pass. ``scalar``: True/False forces the unrolled path
    for tiny nets on or off (default: on while batch size × weight entries ≤ SCALAR_WORK).
    """
    if backend != "numpy":
        raise ValueError(f"backend: only 'numpy' is available, not {backend!r}")
    net.check()
    return _cached(net, ("kernel", scalar), lambda: _compile_network(net, scalar))


def _compile_network(net, scalar):
    spec, prog = Spec(net), program(net)
    grads = [(lhs, rhs) for lhs, rhs in prog if lhs.name[1:] in spec.shapes and lhs.name[0] == "d"]
    stmts = cse(prog)
    owned = {lhs for lhs, _ in stmts}
    outs = ", ".join(f"{p!r}: d{p}" for p in spec.names)
    scalar_cache = {}
    limit = (SCALAR_WORK if scalar is None else (1 << 62) if scalar else -1)

    def scalar_kernel(n):
        if n not in scalar_cache:
            scalar_cache[n] = _scalar_function(spec, prog, n)
        return scalar_cache[n]

    head = [f"    if n * {spec.weights} <= {limit} and n:", "        try:",
            f"            return _scalar(n)({', '.join(spec.names)}, X, Y, dt)",
            "        except (ArithmeticError, ValueError):  # Python floats overflowed: use numpy's",
            "            pass"] if spec.weights <= limit else []  # (batch size 1 included)
    src, consts = _function("kernel", spec, stmts, owned, f"loss, {{{outs}}}", True,
                            outputs={g for g, _ in grads}, head=head)
    kernel = _exec(src, "kernel", _namespace(spec, _scalar=scalar_kernel, _consts=consts))
    kernel.predict = _forward(net, spec, prog)
    kernel.scalar_source = lambda n: scalar_kernel(n).source
    kernel.parameters, kernel.shapes, kernel.net = spec.names, spec.shapes, net
    return kernel


def _forward(net, spec, prog):
    out = sp.MatrixSymbol(backprop.batch_rows(net)[net.sym(net.output_node)].name, N, spec.d_out)
    stmts = []
    for lhs, rhs in prog:
        if lhs.name == "loss":
            break
        stmts.append((lhs, rhs))
    src, consts = _function("predict", spec, stmts, {lhs for lhs, _ in stmts} - {out},
                            f"{out.name}.T.copy()", False)
    return _exec(src, "predict", _namespace(spec, _consts=consts))


def _cached(net, key, make):
    """make() once per network structure (a network may still grow after a compile)."""
    sig = (tuple(net.nodes.values()), tuple(net.shapes.items()), net.output_node, net.loss,
           net.penalty, _SETTINGS["relu_grad_at_zero"], key)
    cache = net.__dict__.setdefault("_compiled", {})
    if sig not in cache:
        cache[sig] = make()
    return cache[sig]


def predict(net, params, X):
    """The network's output for the rows of X (probabilities for sigmoid and softmax outputs)."""
    return compile_network(net).predict(params, X)


def init_params(net, seed: int = 0, dtype="float64") -> dict:
    """Random weights (He normal, √(2/fan_in), before relu-like units; Glorot normal otherwise) and
    zero biases, shaped as :func:`param_shapes` says, from ``numpy.random.default_rng(seed)``."""
    dt = np.dtype(dtype)
    if dt not in FLOATS:
        raise ValueError(f"dtype must be float32 or float64, not {dtype}")
    rng, out = np.random.default_rng(seed), {}
    for p, shape in param_shapes(net).items():
        if len(shape) == 1:
            out[p] = np.zeros(shape, dt)
            continue
        fan_out, fan_in = shape
        acts = [net.nodes[c].act for n in net.nodes.values() if n.params and n.params[0] == p
                for c in net.consumers(n.name) if net.nodes[c].op == "act"]
        he = any(a.name in ("relu", "leaky_relu") for a in acts)
        std = math.sqrt(2 / fan_in) if he else math.sqrt(2 / (fan_in + fan_out))
        out[p] = (rng.standard_normal(shape) * std).astype(dt)
    return out



# -- the unrolled scalar path for tiny networks ---------------------------------------------------
def _exp(x):
    return math.exp(x) if x < 709.78 else math.inf


def _log(x):
    return math.log(x) if x > 0 else (-math.inf if x == 0 else math.nan)


def _sigmoid(x):
    if x >= 0:
        return 1 / (1 + math.exp(-x))
    e = math.exp(x)
    return e / (1 + e)


def _softplus(x):
    return x + math.log1p(math.exp(-x)) if x > 0 else math.log1p(math.exp(x))


def _sign(x):
    return (x > 0) - (x < 0)


def _heaviside(x, h0=0.5):
    return 1.0 if x > 0 else (h0 if x == 0 else 0.0)


class ScalarPrinter(PythonCodePrinter):
    """One entry at a time, on Python floats (the unrolled path): the same primitives in forms that
    neither overflow nor raise (``_exp``, ``_log``, ``_sigmoid``, ``_softplus``)."""

    def _print_Symbol(self, e):
        return e.name

    _print_Dummy = _print_Symbol

    def _cond(self, e, then, other):
        x = self._print(e.args[0])
        if not isinstance(e.args[0], (sp.Symbol, sp.Number)):
            return f"(lambda _x: {then.format(x='_x')} if _x > 0.0 else {other.format(x='_x')})({x})"
        return f"({then.format(x=x)} if {x} > 0.0 else {other.format(x=x)})"

    def _print_relu(self, e):
        return self._cond(e, "{x}", "0.0")

    def _print_step(self, e):
        at0 = float(_SETTINGS["relu_grad_at_zero"])
        return f"_heaviside({self._print(e.args[0])}, {at0})" if at0 else self._cond(e, "1.0", "0.0")

    def _print_leaky_relu(self, e):
        return self._cond(e, "{x}", f"{self._print(e.args[1])}*{{x}}")

    def _print_sigmoid(self, e):
        return f"_sigmoid({self._print(e.args[0])})"

    def _print_softplus(self, e):
        return f"_softplus({self._print(e.args[0])})"

    def _print_exp(self, e):
        return f"_exp({self._print(e.args[0])})"

    def _print_log(self, e):
        u = _softplus_arg(e)
        return f"_softplus({self._print(u)})" if u is not None else f"_log({self._print(e.args[0])})"

    def _print_sign(self, e):
        return f"_sign({self._print(e.args[0])})"

    def _print_Heaviside(self, e):
        return f"_heaviside({', '.join(map(self._print, e.args))})"

    def _print_Min(self, e, fn="min"):
        return f"{fn}({', '.join(map(self._print, e.args))})"

    def _print_Max(self, e):
        return self._print_Min(e, "max")

    def _print_Pow(self, e, rational=False):
        if e.exp == -1:
            return f"1/{self.parenthesize(e.base, 60)}"
        if e.exp == 2 and isinstance(e.base, sp.Symbol):
            return f"{e.base.name}*{e.base.name}"
        return super()._print_Pow(e, rational)


class _Unroller:
    """The batch program at a fixed n, entry by entry: one Python assignment per nonconstant
    entry, a stable max-shifted softmax per row."""

    def __init__(self, n):
        self.n, self.env, self.lines, self.rows = n, {}, [], {}
        self.p = ScalarPrinter({"order": "none"})  # terms as built: sorting them is slow

    def define(self, name, v):
        if v.is_Atom:
            return v
        self.lines.append(f"{name} = {self.p.doprint(v)}")
        return sp.Symbol(name)

    def assign(self, lhs, rhs):
        self.env[lhs] = [[self.define(f"{lhs.name}_{i}_{j}", v) for j, v in enumerate(row)]
                         for i, row in enumerate(self.entries(rhs))]

    def row(self, z):
        if z not in self.rows:
            out = []
            for i, zs in enumerate(self.entries(z)):
                tag = f"_{z.name}_{i}"
                m = self.define("m" + tag, sp.Max(*zs)) if len(zs) > 1 else zs[0]
                es = [self.define(f"e{tag}_{k}", sp.exp(x - m)) for k, x in enumerate(zs)]
                out.append((m, self.define("s" + tag, sp.Add(*es)), es))
            self.rows[z] = out
        return self.rows[z]

    def entries(self, e):
        if isinstance(e, sp.MatrixSymbol):
            return self.env[e]
        if isinstance(e, sp.OneMatrix):
            return [[sp.S.One] * int(e.shape[1].subs(N, self.n))
                    for _ in range(int(e.shape[0].subs(N, self.n)))]
        if isinstance(e, sp.Transpose):
            return [list(c) for c in zip(*self.entries(e.arg))]
        if isinstance(e, sp.MatMul):
            c, mats = e.as_coeff_matrices()
            M = self.entries(mats[0])
            for m in mats[1:]:
                B = self.entries(m)
                M = [[sp.Add(*[a * B[k][j] for k, a in enumerate(r)]) for j in range(len(B[0]))]
                     for r in M]
            c = sp.sympify(c).subs(N, self.n)
            return [[c * x for x in r] for r in M]
        if isinstance(e, (sp.MatAdd, sp.HadamardProduct)):
            op = sp.Add if isinstance(e, sp.MatAdd) else sp.Mul
            parts = [self.entries(a) for a in e.args]
            return [[op(*[p[i][j] for p in parts]) for j in range(len(parts[0][0]))]
                    for i in range(len(parts[0]))]
        if isinstance(e, sp.HadamardPower):
            return [[x ** e.args[1] for x in r] for r in self.entries(e.args[0])]
        if isinstance(e, Elementwise):
            reals, body = _body(e.lam)
            ops = [self.entries(o) for o in e.operands]
            return [[body.xreplace({r: o[i][j] for r, o in zip(reals, ops)})
                     for j in range(len(ops[0][0]))] for i in range(len(ops[0]))]
        if isinstance(e, Softmax):
            return [[x / s for x in es] for _, s, es in self.row(e.args[0])]
        if isinstance(e, LogSumExp):
            return [[m + sp.log(s)] for m, s, _ in self.row(e.args[0])]
        if isinstance(e, SoftmaxVJP):
            Y, G = self.entries(e.args[0]), self.entries(e.args[1])
            dots = [self.define(f"_dot{len(self.lines)}", sp.Add(*[a * b for a, b in zip(y, g)]))
                    for y, g in zip(Y, G)]
            return [[a * (b - d) for a, b in zip(y, g)] for y, g, d in zip(Y, G, dots)]
        if isinstance(e, SumAll):
            return [[sp.Add(*[x for r in self.entries(e.args[0]) for x in r])]]
        raise NotImplementedError(f"the scalar path cannot unroll {type(e).__name__}")


def _scalar_function(spec, prog, n):
    """``f(*params, X, Y, dt) -> (loss, grads)`` unrolled for batch size n (Python floats inside,
    arrays of dtype dt out)."""
    net, u = spec.net, _Unroller(n)
    rows = backprop.batch_rows(net)
    X, Y = rows[net.sym(net.inputs[0])], rows[net.target]
    args = [f"_p{i}" for i in range(len(spec.names))]
    head = [f"def kernel_n{n}({', '.join(args)}, _X, _Y, _dt):"]

    def unpack(sym, arg, shape):
        names = [[f"{sym.name}_{i}_{j}" for j in range(shape[1])] for i in range(shape[0])]
        u.env[sym] = [[sp.Symbol(x) for x in r] for r in names]
        return f"    {', '.join('(' + ', '.join(r) + ',)' for r in names)}, = {arg}.tolist()"

    for p, a in zip(spec.names, args):
        sym = net.sym(p)
        if len(spec.shapes[p]) == 1:
            names = [f"{p}_{i}_0" for i in range(sym.shape[0])]
            u.env[sym] = [[sp.Symbol(x)] for x in names]
            head.append(f"    {', '.join(names)}, = {a}.tolist()")
        else:
            head.append(unpack(sym, a, spec.shapes[p]))
    head.append(unpack(X, "_X", (n, spec.d_in)))
    if spec.labels:
        head += ["    if _Y.ndim == 2:", "    " + unpack(Y, "_Y", (n, spec.d_out)), "    else:",
                 "        _ls = _Y.tolist()",
                 f"        if min(_ls) < 0 or max(_ls) >= {spec.d_out}:",
                 f"            _spec.target(_Y, {n}, _dt)",
                 f"        {', '.join(f'_l{i}' for i in range(n))}, = _ls"]
        head += [f"        Y_{i}_{k} = 1.0 if _l{i} == {k} else 0.0"
                 for i in range(n) for k in range(spec.d_out)]
    else:
        head.append(unpack(Y, "_Y", (n, spec.d_out)))
    for lhs, rhs in prog:
        u.assign(lhs, rhs)
    flat = [v for p in spec.names for r in u.env[sp.MatrixSymbol("d" + p, *net.shapes[p])]
            for v in r]
    p, k, outs = u.p, 0, []
    for name in spec.names:
        size = math.prod(spec.shapes[name])
        view = f"_g[{k}:{k + size}]" + (f".reshape{spec.shapes[name]}"
                                          if len(spec.shapes[name]) == 2 else "")
        outs.append(f"{name!r}: {view}")
        k += size
    body = [f"    {line}" for line in u.lines]
    body += [f"    _g = np.array([{', '.join(p.doprint(v) for v in flat)}], _dt)",
             f"    return _dt.type({p.doprint(u.env[sp.MatrixSymbol('loss', 1, 1)][0][0])}), "
             f"{{{', '.join(outs)}}}"]
    ns = dict(np=np, math=math, _exp=_exp, _log=_log, _sigmoid=_sigmoid, _softplus=_softplus,
              _sign=_sign, _heaviside=_heaviside, _spec=spec)
    return _exec("\n".join(head + body) + "\n", f"kernel_n{n}", ns)


# -- plain functions ------------------------------------------------------------------------------
class CompiledFunction:
    """A function of a few variables (and its Jacobian), compiled to numpy and vectorized over
    points: ``f(P)`` with P of shape (..., k), one point per row, the variables in ``wrt`` order."""

    def __init__(self, f, wrt=None):
        from . import calculus
        from .derivation import Derivation
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

    @property
    def jacobian_matrix(self):
        if self.kind == "matrix":
            raise ValueError("a matrix-valued function has no Jacobian here: compile a vector")
        if self._J is None:
            from . import calculus
            self._J = calculus.jacobian(self.expr, self.wrt)
        return self._J

    def _make(self, what):
        if what not in self._fns:
            M = self.expr if what == "value" else self.jacobian_matrix
            shape = (() if self.kind == "scalar" and what == "value" else
                     (M.rows,) if what == "value" and self.kind == "vector" else M.shape)
            cells = [(i,) if len(shape) == 1 else (i // M.cols, i % M.cols) for i in range(len(M))]
            printer = KernelPrinter()
            printer.env = {x: f"_v{i}" for i, x in enumerate(self.wrt)}
            reps, exprs = sp.cse([stable(e) for e in M], symbols=sp.numbered_symbols("_t"))
            lines = [f"def {what}(P):", f"    P = _points(P, {len(self.wrt)})", "    dt = P.dtype"]
            lines += [f"    _v{i} = P[..., {i}]" for i in range(len(self.wrt))]
            body = [f"    {s} = {printer.doprint(v)}" for s, v in reps]
            body.append(f"    out = np.empty(P.shape[:-1] + {shape}, dt)")
            body += [f"    out[..., {', '.join(map(str, c))}] = {printer.doprint(e)}"
                     if shape else f"    out[...] = {printer.doprint(e)}" for c, e in zip(cells, exprs)]
            if "xmax" in "".join(body):
                lines.append("    xmax = _XMAX[dt]")
            src = "\n".join(lines + body + ["    return out"]) + "\n"
            self._fns[what] = _exec(src, what, dict(np=np, _points=_points, _XMAX=_XMAX))
        return self._fns[what]

    def __call__(self, P):
        return self._make("value")(P)

    def jacobian(self, P):
        """(..., outputs, k): rows are the outputs, columns the variables."""
        return self._make("jacobian")(P)

    def gradient(self, P):
        """(..., k) for a scalar function."""
        if self.kind != "scalar":
            raise ValueError("gradient: the function is not scalar; use jacobian")
        return self._make("jacobian")(P)[..., 0, :]

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


def compile_function(f, wrt=None) -> CompiledFunction:
    """Compile ``f`` (text, an expression, a vector or a matrix of expressions, or a Derivation from
    derive_jacobian/derive_gradient) in the variables ``wrt``: ``fn(P)``, ``fn.jacobian(P)``,
    ``fn.gradient(P)``, each vectorized over the points P (..., k)."""
    return CompiledFunction(f, wrt)
