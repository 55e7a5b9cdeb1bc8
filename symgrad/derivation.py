"""A derivation is data: an ordered list of step records, like a jaxpr's equations.

Where it sits: produced by the engines (calculus, network), consumed by the printers (text here, LaTeX
in symgrad.latex: ``to_latex``/``_repr_latex_`` delegate there), the simplifier and the compiler. The printed
steps and the compiled kernel read the same records, so they cannot disagree.

Steps hold SymPy objects. The display-only nodes below (``Partial``, ``Grad``, ``Vec``, ``Compose``,
``Chain``, ``Note``) are SymPy ``Basic`` subclasses that print themselves through SymPy's printers
(``_sympystr``/``_latex``), so any printer subclass can restyle them with ``_print_Partial`` etc.
"""
from __future__ import annotations

import re

from dataclasses import dataclass, field
from typing import Any, Iterator

import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.str import StrPrinter


def _basic(obj) -> sp.Basic:
    """Wrap plain names into SymPy objects so display nodes stay SymPy trees."""
    if isinstance(obj, sp.Basic):
        return obj
    if isinstance(obj, str):
        return sp.Symbol(obj)
    if isinstance(obj, (list, tuple)):
        return sp.ImmutableMatrix(obj)
    return sp.sympify(obj)  # numbers only: never reached with user text


# -- display nodes --------------------------------------------------------------------------------
class Partial(sp.Basic):
    """∂of/∂wrt: a Jacobian factor (or a scalar partial) as it is written before it is evaluated."""

    def __new__(cls, of, wrt):
        return sp.Basic.__new__(cls, _basic(of), _basic(wrt))

    of = property(lambda self: self.args[0])
    wrt = property(lambda self: self.args[1])

    def _sympystr(self, p):
        return f"∂{_group(p, self.of)}/∂{_group(p, self.wrt)}"

    def _latex(self, p):
        return r"\frac{\partial %s}{\partial %s}" % (p._print(self.of), p._print(self.wrt))


class Grad(sp.Basic):
    """∇_wrt of: the gradient, shaped like ``wrt``."""

    def __new__(cls, of, wrt):
        return sp.Basic.__new__(cls, _basic(of), _basic(wrt))

    def _sympystr(self, p):
        return f"∇_{_group(p, self.args[1])} {_group(p, self.args[0])}"

    def _latex(self, p):
        return r"\nabla_{%s} %s" % (p._print(self.args[1]), p._print(self.args[0]))


class Vec(sp.Basic):
    """vec[W]: the entries of W, row by row, as in the notes."""

    def __new__(cls, mat):
        return sp.Basic.__new__(cls, _basic(mat))

    def _sympystr(self, p):
        return f"vec[{p._print(self.args[0])}]"

    def _latex(self, p):
        return r"\operatorname{vec}[%s]" % p._print(self.args[0])


class Compose(sp.Basic):
    """f∘g∘…: a composition of named functions."""

    def __new__(cls, *fns):
        return sp.Basic.__new__(cls, *map(_basic, fns))

    def _sympystr(self, p):
        return "∘".join(p._print(a) for a in self.args)

    def _latex(self, p):
        return r" \circ ".join(p._print(a) for a in self.args)


class Chain(sp.Basic):
    """A product written out factor by factor (never multiplied): ∂f/∂g · ∂g/∂x."""

    def __new__(cls, *factors):
        return sp.Basic.__new__(cls, *map(_basic, factors))

    def _sympystr(self, p):
        return " · ".join(_group(p, a) for a in self.args)

    def _latex(self, p):
        return " ".join(p._print(a) for a in self.args)


class Factors(sp.Basic):
    """Factors written side by side with a dot, unmultiplied: w5 · relu′(z) · x1."""

    def _sympystr(self, p):
        return " · ".join(f"({p._print(a)})" if isinstance(a, sp.Add) else p._print(a)
                          for a in self.args)

    def _latex(self, p):
        return r" \cdot ".join(r"\left(%s\right)" % p._print(a) if isinstance(a, sp.Add)
                               else p._print(a) for a in self.args)


class Note(sp.Basic):
    """A right-hand side in words ("both methods agree")."""

    def __new__(cls, text: str):
        obj = sp.Basic.__new__(cls)
        obj._text = text
        return obj

    def _hashable_content(self):
        return (self._text,)

    def _sympystr(self, p):
        return self._text

    def _latex(self, p):  # a plain LatexPrinter; symgrad.latex prints it in the notes' notation
        from .latex_names import text_escape
        return r"\text{%s}" % text_escape(self._text)


def _group(printer, expr) -> str:
    """Print ``expr``, parenthesised when it is a sum or product (so ∂(f∘g)/∂x reads right)."""
    s = printer._print(expr)
    return f"({s})" if isinstance(expr, (sp.Add, sp.Mul, Compose)) else s


# -- step records ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """One line of a derivation: ``lhs = rhs``, with why it holds and the shapes of its factors.

    ``lhs`` None continues the previous line's chain (``= rhs``). ``rule`` is a machine-readable key
    (definition, jacobian, chain_rule, substitution, product, simplify, vectorize, unvectorize, ...);
    ``why`` the justification in words; ``shapes`` the (rows, cols) of each factor in ``rhs``.
    """

    lhs: sp.Basic | None
    rhs: sp.Basic
    why: str = ""
    rule: str = ""
    shapes: tuple = ()

    def shape_text(self) -> str:
        return " · ".join(f"{r}×{c}" for r, c in self.shapes)


@dataclass
class Derivation:
    """An ordered list of steps recorded while deriving, plus the result they arrive at."""

    title: str = ""
    steps: list[Step] = field(default_factory=list)
    result: Any = None
    meta: dict = field(default_factory=dict)

    def add(self, lhs, rhs, why: str = "", rule: str = "", shapes=()):
        """Record a step and return its right-hand side, so engines can write ``J = d.add(...)``."""
        self.steps.append(Step(None if lhs is None else _basic(lhs), _basic(rhs), why, rule,
                               tuple(tuple(s) for s in shapes)))
        return rhs

    def extend(self, other: "Derivation") -> None:
        self.steps.extend(other.steps)

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def __repr__(self) -> str:
        return f"<Derivation {self.title!r}: {len(self.steps)} steps>"

    def to_text(self) -> str:
        return TextPrinter().doprint_derivation(self)

    def to_latex(self, notation="slides", **settings) -> str:
        """The notes' LaTeX (an ``aligned`` block): see :func:`symgrad.latex.to_latex`."""
        from .latex import to_latex  # print sits above derive: imported when asked for
        return to_latex(self, notation, **settings)

    def _repr_latex_(self) -> str:
        return "$\\displaystyle " + self.to_latex() + "$"

    def to_dict(self) -> dict:
        """A JSON-ready record of every step, with exact SymPy strings (read back by sympify, so
        matrix entries keep SymPy's 0-based ``W1[1, 0]``). A step whose ``lhs`` is None (JSON
        null) continues the previous step: it reads "= rhs", the same left-hand side."""
        p = SympifyPrinter()
        return {"title": self.title,
                "steps": [{"lhs": None if s.lhs is None else p.doprint(s.lhs),
                           "rhs": p.doprint(s.rhs), "why": s.why, "rule": s.rule,
                           "shapes": [list(x) for x in s.shapes]} for s in self.steps],
                "result": p.doprint(self.result) if isinstance(self.result, sp.Basic)
                else self.result}


# -- printers ------------------------------------------------------------------------------------
def mean_of_sum(expr):
    """(n, the Sum, other factors) when ``expr`` is a Sum divided by a symbol n (a mean over n
    examples), so printers write (1/n) Σ_i … as the notes do; else None."""
    if not isinstance(expr, sp.Mul):
        return None
    sums = [a for a in expr.args if isinstance(a, sp.Sum)]
    over = [a for a in expr.args if a.is_Pow and a.exp == -1 and a.base.is_Symbol]
    if len(sums) != 1 or len(over) != 1:
        return None
    return over[0].base, sums[0], [a for a in expr.args if a is not sums[0] and a is not over[0]]


class TextPrinter(StrPrinter):
    """Plain text: matrices as nested lists, one step per line, justifications in brackets."""

    def _print_MatrixBase(self, m):
        rows = ["[" + ", ".join(self._print(e) for e in m.row(i)) + "]" for i in range(m.rows)]
        return "[" + ", ".join(rows) + "]"

    _print_ImmutableDenseMatrix = _print_MutableDenseMatrix = _print_MatrixBase

    def _print_MatrixSymbol(self, m):
        entry = re.fullmatch(r"(.+)\[(\d+)\]", m.name)  # a vector's entry as a 1×1 block, 0-based
        return f"{entry.group(1)}[{int(entry.group(2)) + 1}]" if entry else m.name

    def _print_MatrixElement(self, e):
        """1-based, as the notes and the LaTeX printer index: g_z1[1], W1[2, 1]."""
        i, j = e.i + 1, e.j + 1
        return f"{self._print(e.parent)}[{i}]" if e.parent.shape[1] == 1 else \
            f"{self._print(e.parent)}[{i}, {j}]"

    def _print_Mul(self, expr):
        mean = mean_of_sum(expr)
        if not mean:
            return super()._print_Mul(expr)
        n, total, rest = mean
        return f"(1/{self._print(n)}) " + " ".join(map(self._print, [total, *rest]))

    def _print_Sum(self, expr):
        (i, lo, hi), = expr.limits
        return f"Σ_{{{self._print(i)}={self._print(lo)}}}^{{{self._print(hi)}}} " \
               f"{self._print(expr.function)}"

    def _print_Derivative(self, expr):
        if len(expr.variables) != 1:
            return super()._print_Derivative(expr)
        f = expr.expr  # one example's ℓ_i (Indexed prints itself as ℓ[i], past any override)
        f = f"{self._print(f.base.label)}_{self._print(f.indices[0])}" \
            if isinstance(f, sp.Indexed) and len(f.indices) == 1 else self._print(f)
        return f"∂{f}/∂{self._print(expr.variables[0])}"

    def doprint_derivation(self, d: Derivation) -> str:
        lines, width = [], 0
        rendered = [(None if s.lhs is None else self.doprint(s.lhs), self.doprint(s.rhs), s)
                    for s in d.steps]
        width = max((len(lhs) for lhs, _, _ in rendered if lhs), default=0)
        if d.title:
            lines.append(d.title)
        for lhs, rhs, s in rendered:
            line = f"{(lhs or '').rjust(width)} = {rhs}"
            notes = [n for n in (s.shape_text(), s.why) if n]
            if notes:
                line += "    [" + "; ".join(notes) + "]"
            lines.append(line)
        return "\n".join(lines)


class DerivationLatexPrinter(LatexPrinter):
    """SymPy's LatexPrinter with bold matrices and square brackets: the base of the notes' printer
    (:class:`symgrad.latex.NotesLatexPrinter`), which lays out derivations and escapes names."""

    _default_settings = {**LatexPrinter._default_settings, "mat_symbol_style": "bold",
                         "mat_delim": "[", "show_shapes": True, "show_why": True}


class SympifyPrinter(StrPrinter):
    """Exact strings that ``sympy.sympify(s, locals=symgrad.SYMPIFY_LOCALS)`` reads back.

    A symbol whose name SymPy's parser would read as something else (``beta``, ``E``, ``lambda``)
    is written ``Symbol('beta')``. Symbols come back without symgrad's ``real=True`` assumption.
    """

    def _print_Symbol(self, s):
        return f"Symbol({s.name!r})" if s.name in _sympify_reserved() else s.name


_RESERVED: set[str] = set()


def _sympify_reserved() -> set[str]:
    """Names that sympify does not turn into a plain Symbol: SymPy's namespace, keywords, builtins."""
    if not _RESERVED:
        import builtins
        import keyword
        import types
        _RESERVED.update(sp.__all__, keyword.kwlist, ("True", "False", "None"),
                         (n for n, o in vars(builtins).items()
                          if isinstance(o, types.BuiltinFunctionType)))
    return _RESERVED


def _text_methods():
    """Readable text for the matrix nodes the network engine uses (⊙, ⊗, diag, ᵀ)."""
    def transpose(self, e):
        inner = self._print(e.arg)
        return f"{inner}ᵀ" if isinstance(e.arg, sp.MatrixSymbol) else f"({inner})ᵀ"

    return {
        "_print_HadamardProduct": lambda self, e: " ⊙ ".join(
            _group(self, a) if isinstance(a, (sp.MatAdd, sp.MatMul)) else self._print(a)
            for a in e.args),
        "_print_HadamardPower": lambda self, e: f"({self._print(e.args[0])})^⊙{e.args[1]}",
        "_print_KroneckerProduct": lambda self, e: " ⊗ ".join(self._print(a) for a in e.args),
        "_print_DiagMatrix": lambda self, e: f"diag({self._print(e.args[0])})",
        "_print_OneMatrix": lambda self, e: "1",
        "_print_Identity": lambda self, e: "I",
        "_print_Transpose": transpose,
    }


for _name, _fn in _text_methods().items():
    setattr(TextPrinter, _name, _fn)
