"""Plain-text and sympify-able printers of derivations, and the base of the LaTeX printer.

Where it sits: printing (above derive). ``Derivation.to_text``/``to_dict`` reach these through
core's one printing hook; ``symgrad.printing.latex`` builds the notes' printer on
:class:`DerivationLatexPrinter`.
"""
from __future__ import annotations

import re

import sympy as sp
from sympy.core.mul import _keep_coeff
from sympy.printing.latex import LatexPrinter
from sympy.printing.precedence import PRECEDENCE, precedence
from sympy.printing.str import StrPrinter

from symgrad.core.derivation import Derivation, StepKind, grouped
from symgrad.core.parse import PRINT_DIGITS, digits_of
from symgrad.core.primitives import SYMPIFY_LOCALS


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


class BoundedNumbers:
    """Printers' exact numbers, refused in one line past what Python prints. The parser keeps
    its numbers printable, but derivatives multiply them (the second derivative of x^(2^13000)
    has a 7800-digit coefficient), and Python's own error advises raising a process-wide limit."""

    def _print_Integer(self, expr):
        _printable(expr)
        up = super()
        return up._print_Integer(expr) if hasattr(up, "_print_Integer") else up._print_Rational(expr)

    def _print_Rational(self, expr):
        _printable(expr)
        return super()._print_Rational(expr)


def memo(print_entry):
    """``print_entry``, printing each distinct entry once (equal expressions print alike)."""
    done: dict = {}

    def entry(e):
        if e not in done:
            done[e] = print_entry(e)
        return done[e]
    return entry


def _printable(r) -> None:
    digits = digits_of(r)
    if digits > PRINT_DIGITS:
        raise ValueError(f"a number in the result has {digits} digits; symgrad prints exact "
                         f"numbers of up to {PRINT_DIGITS} digits")


def _precedence(item) -> int:
    """SymPy's ``precedence``, but a MatMul's sign read off its coefficient. SymPy asks
    ``could_extract_minus_sign``, which builds −expr and runs ``doit`` over the whole subtree, at
    every MatMul a printer parenthesizes: the nested g's of a deep net made JSON cubic in depth
    (30 layers 21.7 s against 1.0 s for text, 97 % of it in that ``doit``). Same answer: a
    MatMul's sign is its leading Number's (−expr == expr only for a 0 or zoo coefficient)."""
    if isinstance(item, sp.MatMul):
        if any(isinstance(a, sp.Function) and getattr(a, "precedence", PRECEDENCE["Mul"])
               < PRECEDENCE["Mul"] for a in item.args):
            return PRECEDENCE["Mul"]
        c = item.args[0]
        return PRECEDENCE["Add"] if c.is_Number and c.is_extended_negative else PRECEDENCE["Mul"]
    return precedence(item)


class LinearPrecedence:
    """Str-based printers' parenthesizing without SymPy's ``doit`` per MatMul (see
    :func:`_precedence`); output unchanged."""

    def parenthesize(self, item, level, strict=False):
        p = _precedence(item)
        return f"({self._print(item)})" if p < level or (not strict and p <= level) \
            else self._print(item)

    def _print_MatMul(self, expr):  # StrPrinter's, with _precedence
        c, m = expr.as_coeff_mmul()
        sign = ""
        if c.is_number:
            re_, im = c.as_real_imag()
            if (im.is_zero and re_.is_negative) or (re_.is_zero and im.is_negative):
                expr, sign = _keep_coeff(-c, m), "-"
        return sign + "*".join(self.parenthesize(a, _precedence(expr)) for a in expr.args)


class TextPrinter(LinearPrecedence, BoundedNumbers, StrPrinter):
    """Plain text: matrices as nested lists, one step per line, justifications in brackets."""

    def _print_MatrixBase(self, m):
        # The matrix is read as lists, and equal entries printed once: most entries of a large
        # Jacobian are 0 or 1, and indexing a SymPy matrix entry by entry took 2.4 s of 4.8 for
        # the 500×500 identity (1.2 s in all now, start-up included).
        entry = memo(self._print)
        rows = ["[" + ", ".join(map(entry, row)) + "]" for row in m.tolist()]
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

    # matrix calculus (symgrad.derive.mcalc): as the Cookbook writes them, not SymPy's class names
    def _print_Trace(self, e):
        return f"tr({self._print(e.arg)})"

    def _print_Determinant(self, e):
        return f"det({self._print(e.arg)})"

    def _print_Inverse(self, e):
        a = e.arg
        if isinstance(a, sp.Transpose) and isinstance(a.arg, sp.MatrixSymbol):
            return f"{self._print(a.arg)}⁻ᵀ"
        return f"{self._print(a)}⁻¹" if isinstance(a, sp.MatrixSymbol) else \
            f"({self._print(a)})⁻¹"

    def _print_DiagonalOf(self, e):
        return f"diag({self._print(e.args[0])})"

    def _print_Scalar(self, e):
        return self._print(e.matrix)

    def _print_KroneckerDelta(self, e):
        """[tok = 2], 1 when the token is 2 and 0 otherwise (an embedding's unit at the element
        level): the Iverson bracket, where SymPy writes KroneckerDelta(2, tok)."""
        a, b = e.args
        a, b = (b, a) if a.is_number else (a, b)
        return f"[{self._print(a)} = {self._print(b)}]"

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
            rel = "←" if s.rule is StepKind.UPDATE else "="  # (w ← w − ε ∂f/∂w)
            line = f"{(lhs or '').rjust(width)} {rel} {rhs}"
            notes = [n for n in (s.shape_text(), s.why) if n]
            if notes:
                line += "    [" + "; ".join(notes) + "]"
            lines.append(line)
        return "\n".join(lines)


class DerivationLatexPrinter(BoundedNumbers, LatexPrinter):
    """SymPy's LatexPrinter with bold matrices and square brackets: the base of the notes' printer
    (:class:`symgrad.latex.NotesLatexPrinter`), which lays out derivations and escapes names."""

    _default_settings = {**LatexPrinter._default_settings, "mat_symbol_style": "bold",
                         "mat_delim": "[", "show_shapes": True, "show_why": True}


class SympifyPrinter(LinearPrecedence, BoundedNumbers, StrPrinter):
    """Exact strings that SymPy reads back (its sympify, given locals=symgrad.SYMPIFY_LOCALS).

    A symbol whose name SymPy's parser would read as something else (``beta``, ``E``, ``lambda``)
    is written ``Symbol('beta')``. Symbols come back without symgrad's ``real=True`` assumption.
    """

    def _print_Symbol(self, s):
        # symgrad's own function names too: with locals=SYMPIFY_LOCALS a variable named step
        # read back as the function step
        reserved = s.name in _sympify_reserved() or s.name in SYMPIFY_LOCALS
        return f"Symbol({s.name!r})" if reserved else s.name


class MatrixSympifyPrinter(SympifyPrinter):
    """A matrix-calculus result as a string sympify reads back with symgrad.SYMPIFY_LOCALS and
    nothing else: each matrix symbol spelled out with its shape (``MatrixSymbol('X', n, m)``)."""

    # the _print_<Class> methods below, not the nodes' own _sympystr (which SymPy's printers try
    # first): softmax(x) read back as the scalar function softmax
    printmethod = "_sympify_matrix_str"

    def _print_OneMatrix(self, m):
        return f"OneMatrix({self._print(m.shape[0])}, {self._print(m.shape[1])})"

    def _print_Identity(self, m):
        return f"Identity({self._print(m.shape[0])})"

    def _print_ZeroMatrix(self, m):
        return f"ZeroMatrix({self._print(m.shape[0])}, {self._print(m.shape[1])})"

    def _print_DiagMatrix(self, m):
        return f"DiagMatrix({self._print(m.args[0])})"

    def _print_DiagonalOf(self, m):
        return f"DiagonalOf({self._print(m.args[0])})"

    def _print_KroneckerProduct(self, m):
        return f"KroneckerProduct({', '.join(self._print(a) for a in m.args)})"

    def _print_Trace(self, m):
        return f"Trace({self._print(m.arg)})"

    def _print_Determinant(self, m):
        return f"Determinant({self._print(m.arg)})"

    def _print_MatrixSymbol(self, m):
        cls = "Symmetric" if type(m).__name__ == "Symmetric" else "MatrixSymbol"
        return f"{cls}({m.name!r}, {self._print(m.shape[0])}, {self._print(m.shape[1])})"

    def _print_Transpose(self, e):
        return f"Transpose({self._print(e.arg)})"

    def _print_Inverse(self, e):
        return f"Inverse({self._print(e.arg)})"

    def _print_Scalar(self, e):
        return f"Scalar({self._print(e.matrix)})"

    def _print_Elementwise(self, e):
        # a Symbol, bound by the Lambda: two Dummy('t') read back as two different symbols
        return (f"Elementwise(Lambda(Symbol('t'), {e.label}(Symbol('t'))), "
                f"{self._print(e.operands[0])})")

    def _print_Softmax(self, e):
        axis = ", 1" if e.args[1] == 1 else ""  # row by row, a matrix's
        return f"Softmax({self._print(e.args[0])}{axis})"

    def _print_LogSumExp(self, e):
        axis = ", 1" if e.args[1] == 1 else ""
        return f"LogSumExp({self._print(e.args[0])}{axis})"

    def _print_SoftmaxVJP(self, e):
        return f"SoftmaxVJP({self._print(e.args[0])}, {self._print(e.args[1])}, {e.args[2]})"

    def _print_Commutation(self, e):
        return f"Commutation({self._print(e.args[0])}, {self._print(e.args[1])})"

    def _print_DiagVec(self, e):
        return f"DiagVec({self._print(e.args[0])})"

    def _print_SoftmaxJacobian(self, e):
        return f"SoftmaxJacobian({self._print(e.args[0])})"

    def _print_HadamardProduct(self, e):
        return f"HadamardProduct({', '.join(self._print(a) for a in e.args)})"

    def _print_HadamardPower(self, e):
        return f"HadamardPower({self._print(e.args[0])}, {self._print(e.args[1])})"


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
            grouped(self, a) if isinstance(a, (sp.MatAdd, sp.MatMul)) else self._print(a)
            for a in e.args),
        "_print_HadamardPower": lambda self, e: f"({self._print(e.args[0])})^⊙{e.args[1]}",
        "_print_KroneckerProduct": lambda self, e: " ⊗ ".join(
            grouped(self, a) if isinstance(a, (sp.MatAdd, sp.MatMul)) else self._print(a)
            for a in e.args),
        "_print_DiagMatrix": lambda self, e: f"diag({self._print(e.args[0])})",
        # 1ᵀ: a row of ones (the matrix language's sum(x) = 1ᵀx); a column stays 1, as in 1 bᵀ
        "_print_OneMatrix": lambda self, e: "1ᵀ" if e.rows == 1 and e.cols != 1 else "1",
        "_print_Identity": lambda self, e: "I",
        "_print_Transpose": transpose,
    }


for _name, _fn in _text_methods().items():
    setattr(TextPrinter, _name, _fn)


def to_text(d: Derivation) -> str:
    return TextPrinter().doprint_derivation(d)


def to_dict(d: Derivation) -> dict:
    """The record as JSON-ready data. A derivation with ``meta["where"]`` (a network parameter's:
    its result in named G's and the G's its steps derived, see symgrad.derive.matrix) prints its
    result in those names plus ``"where"``, their definitions in order, as the text defines each g
    once: the result written out repeats the net below the parameter for every parameter."""
    p = SympifyPrinter()
    out = {"title": d.title,
           "steps": [{"lhs": None if s.lhs is None else p.doprint(s.lhs),
                      "rhs": p.doprint(s.rhs), "why": s.why, "rule": s.rule.value,
                      "shapes": [list(x) for x in s.shapes]} for s in d.steps]}
    if "where" in d.meta:
        result, where = d.meta["where"]
        out["result"] = p.doprint(result)
        out["where"] = [{"lhs": p.doprint(lhs), "rhs": p.doprint(rhs)} for lhs, rhs in where]
    else:
        out["result"] = p.doprint(d.result) if isinstance(d.result, sp.Basic) else d.result
    return out
