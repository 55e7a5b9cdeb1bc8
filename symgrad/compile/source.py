"""A matrix of expressions as the source of one self-contained Python function on floats.

Where it sits: compile, beside :mod:`.function` (numpy, vectorized over points) and :mod:`.scalar`
(the unrolled network path, whose ``ScalarPrinter`` it prints with): the text a user copies into
their own code, needing nothing but Python's ``math``. ``symgrad hessian --format python`` prints
it. The entries are first rewritten in the stable forms of :mod:`.forms`, as compile_function's
are (x²eᵘ/(1 + eᵘ)², a logistic loss's Hessian, is inf/inf = nan at u = 1000 as written, and
x²e^(u − 2 softplus(u)) after); every primitive is written in its registered "python" code, which
neither overflows nor raises, and the helpers that code calls are written out above the function,
so the text runs as it is.

Names are data: a variable's name is a parameter only where it is a plain identifier no generated
name can clash with (not a keyword or builtin, not ``math``, not starting with ``_``); any other
variable is a positional parameter ``_a0``, ``_a1``, … and the docstring says which it is, in
``repr`` (no user text is ever code).
"""
from __future__ import annotations

import builtins
import dis
import inspect
import keyword
import math
import types

import sympy as sp

from symgrad.compile.forms import stable_forms
from symgrad.compile.scalar import ScalarPrinter
from symgrad.core.primitives import HELPERS, relu_grad_at_zero_default


class _FloatPrinter(ScalarPrinter):
    """The python path's printer, with powers through ``_pow``: Python's float ** raises
    OverflowError where * gives inf (cosh(500)² raised, for a 1/cosh² that is 0.0)."""

    def _print_Pow(self, e, rational=False):
        if e.exp == -1 or e.exp == sp.S.Half or (e.exp == 2 and isinstance(e.base, sp.Symbol)):
            return super()._print_Pow(e, rational)
        return f"_pow({self._print(e.base)}, {self._print(e.exp)})"


# Python's float ** raises OverflowError past 1.8e308, ZeroDivisionError for 0 to a negative
# power, and gives a complex number for a negative base to a fractional power; numpy's inf, inf
# and nan instead, as the rest of the function's helpers do.
_POW = '''def _pow(x, y):
    try:
        r = x ** y
    except OverflowError:
        return math.inf if x > 0 or float(y) % 2 == 0 else -math.inf
    except ZeroDivisionError:
        return math.inf
    return math.nan if isinstance(r, complex) else r'''


def python_function(M, wrt, name: str = "f") -> str:
    """The source of ``def name(...)`` returning the entries of the matrix ``M`` as nested lists of
    floats (rows of columns), with ``import math`` and the helpers it calls above it. Its
    parameters are the variables ``wrt`` in order, then any other symbol of ``M`` by name."""
    M = stable_forms(sp.Matrix(M))
    if not (name.isidentifier() and not keyword.iskeyword(name)):
        raise ValueError(f"python: the function's name {name!r} is not a Python identifier")
    others = sorted(M.free_symbols - set(wrt), key=lambda s: s.name)
    params = list(wrt) + others
    shown = [s.name if _plain(s.name) else f"_a{i}" for i, s in enumerate(params)]
    if len(set(shown)) != len(shown):  # two symbols of one name (different assumptions)
        shown = [f"_a{i}" for i in range(len(params))]
    held = {s: sp.Symbol(n) for s, n in zip(params, shown)}
    M = M.xreplace(held)

    printer = _FloatPrinter({"order": "none", "relu_grad_at_zero": relu_grad_at_zero_default()})
    distinct = list(dict.fromkeys(e for e in M if not e.is_Atom))  # a mirrored entry once
    reps, reduced = sp.cse(distinct, symbols=sp.numbered_symbols("_t"))
    body = [f"    {t} = {printer.doprint(v)}" for t, v in reps]
    names = {}
    for k, (e, r) in enumerate(zip(distinct, reduced)):
        names[e] = f"_e{k}"
        body.append(f"    _e{k} = {printer.doprint(r)}")
    cell = (lambda e: names[e] if e in names else printer.doprint(sp.Float(e) if e.is_Number
                                                                     else e))
    rows = ", ".join("[" + ", ".join(cell(e) for e in M.row(i)) + "]" for i in range(M.rows))
    body.append(f"    return [{rows}]")

    # the parameters in a comment, not a docstring: a name in repr holds no line break, but may
    # hold the quotes that would end a docstring
    order = ", ".join(f"{n} is {s.name!r}" if n != s.name else n for n, s in zip(shown, params))
    doc = [f"    # {M.rows}×{M.cols}, a list of rows; the parameters in order: {order}"]
    code = "\n".join(body)
    helpers = _helpers(code) + ([_POW, "", ""] if "_pow(" in code else [])
    head = ["import math", ""] + helpers + [f"def {name}({', '.join(shown)}):"]
    return "\n".join(head + doc) + "\n" + code + "\n"


def _plain(n: str) -> bool:
    return (n.isidentifier() and n.isascii() and not keyword.iskeyword(n) and n != "math"
            and not n.startswith("_") and not hasattr(builtins, n))


def _helpers(code: str) -> list[str]:
    """The source of each helper the code calls, and of the helpers and constants they use."""
    out, done, todo = [], set(), [n for n in HELPERS if n + "(" in code]
    consts = []
    while todo:
        n = todo.pop(0)
        if n in done:
            continue
        done.add(n)
        fn = HELPERS[n]
        if not isinstance(fn, types.FunctionType) or fn.__name__ != n or fn.__closure__:
            raise ValueError(f"python: the helper {n} cannot be written out as source")
        # the globals it reads (co_names would hold attribute names too: math.exp's exp)
        for used in dict.fromkeys(i.argval for i in dis.get_instructions(fn)
                                  if i.opname == "LOAD_GLOBAL"):
            value = fn.__globals__.get(used)
            if used in HELPERS:
                todo.append(used)
            elif value is math or (value is None and hasattr(builtins, used)):
                continue
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                consts.append(f"{used} = {value!r}")
            elif value is not None:
                raise ValueError(f"python: the helper {n} uses {used}, which cannot be "
                                 "written out as source")
        out += [inspect.getsource(fn).rstrip(), "", ""]
    return sorted(set(consts)) + ([""] if consts else []) + out
