"""The text format, the plain and sympify-able printers of derivations, and the base of the LaTeX
printer.

:class:`TextPrinter` is the text format (``--format text``, ``Derivation.to_text()`` and ``str()``):
Unicode math a student reads in a terminal, built on SymPy's StrPrinter by ``_print_<Class>``
methods and one setting, ``unicode`` (False: ASCII names and operators). :class:`PlainPrinter` is
SymPy's str with symgrad's nodes, which the engines write their words with; :class:`SympifyPrinter`
the exact strings of JSON.

Where it sits: printing (above derive). ``Derivation.to_text``/``to_dict`` reach these through
core's one printing hook; ``symgrad.printing.latex`` builds the notes' printer on
:class:`DerivationLatexPrinter`.
"""
from __future__ import annotations

import re
import unicodedata

import sympy as sp
from sympy.core.mul import _keep_coeff
from sympy.printing.latex import LatexPrinter
from sympy.printing.precedence import PRECEDENCE, precedence
from sympy.printing.str import StrPrinter

from symgrad.core.derivation import Derivation, Note, StepKind, grouped
from symgrad.core.parse import PRINT_DIGITS, digits_of
from symgrad.core.primitives import SYMPIFY_LOCALS, sigmoid
from symgrad.printing.names import (SUPERSCRIPT, ascii_words, function_text, index_words,
                                    text_name, text_symbols)
from symgrad.printing.terms import BIAS, _is, _minus, names_in, negated, notes_order


def _enclosed(s: str) -> bool:
    """Whether the whole of ``s`` is one pair of parentheses, "(a b)" but not "(a)(b)"."""
    if not (s.startswith("(") and s.endswith(")")):
        return False
    depth = 0
    for k, ch in enumerate(s):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and k < len(s) - 1:
            return False
    return True


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


def inverse_root(expr):
    """n where ``expr`` is the number 1/√n (n > 1), which SymPy keeps as √n/n: the attention
    scale 1/√d_k, printed 1/√n (issue 13). None for any other expression, a float's too."""
    if expr.is_Rational or not (expr.is_number and expr.is_positive):
        return None
    n = 1 / expr**2  # exact: a float's n is a Float
    return n if n.is_Integer and n > 1 else None


def slice_ranges(e: sp.MatrixSlice, sep: str = ", ") -> str | None:
    """A MatrixSlice's rows and columns as the notes write ranges, 1-based and inclusive: "3:4"
    for Python's [2:4, :] (the columns left out where it keeps them all), "3" for one row. None
    for a step other than 1, which the notes never write (the printer's own form then)."""
    def one(sl, n):
        start, stop, step = sl
        if step != 1:
            return None
        return str(start + 1) if stop - start == 1 else "%s:%s" % (start + 1, stop)
    rows, cols = one(e.rowslice, e.parent.shape[0]), one(e.colslice, e.parent.shape[1])
    if rows is None or cols is None:
        return None
    return rows if tuple(e.colslice[:2]) == (0, e.parent.shape[1]) else rows + sep + cols


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


class PlainPrinter(LinearPrecedence, BoundedNumbers, StrPrinter):
    """SymPy's str with symgrad's nodes readable: matrices as nested lists, ⊙, ᵀ, 1-based entries,
    one step per line. The engines write their justifications' formulas with it (through core's
    printing hook; ``symgrad.derive.rules.plain`` turns its ``*`` and ``**`` into words), and the
    LaTeX printer reads those words back; :class:`TextPrinter`, the text format, builds on it."""

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
        width = max((_columns(lhs) for lhs, _, _ in rendered if lhs), default=0)
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

    def _print_MatrixSlice(self, e):
        # the rows a concatenation's backward split hands on: mathematics, not Python's
        # 0-based, end-exclusive g_c[2:, :] (issue 13)
        ranges = slice_ranges(e, r",\,")
        if ranges is None:
            return super()._print_MatrixSlice(e)
        return r"\left[%s\right]_{%s}" % (self._print(e.parent), ranges)


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

    def hadamard_power(self, e):
        # 1/ŷ entry by entry, as the words beside it say (it printed diag((ŷ)^⊙-1) next to
        # "(−y/ŷ)ᵀ = −yᵀ diag(1/ŷ)"); other powers ŷ^⊙2, a compound base in brackets
        base, p = e.args
        b = self._print(base)
        b = b if isinstance(base, sp.MatrixSymbol) else f"({b})"
        return f"1/{b}" if p == -1 else f"{b}^⊙{self._print(p)}"

    return {
        "_print_HadamardProduct": lambda self, e: " ⊙ ".join(
            grouped(self, a) if isinstance(a, (sp.MatAdd, sp.MatMul)) else self._print(a)
            for a in e.args),
        "_print_HadamardPower": hadamard_power,
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
    setattr(PlainPrinter, _name, _fn)


# -- the text format --------------------------------------------------------------------------------
_SCRIPTS = set("₀₁₂₃₄₅₆₇₈₉⁰¹²³⁴⁵⁶⁷⁸⁹ᵀ′²³")
_RELATIONS = {"<=": "≤", ">=": "≥", "!=": "≠", "==": "=", "<": "<", ">": ">"}


class TextPrinter(PlainPrinter):
    """The text format: Unicode math a student reads in a terminal.

    ŷ and x₁ for yhat and x1 (names through :func:`symgrad.printing.names.text_name`), products
    side by side (w₅x₁, σ(h)(1 − σ(h)), g_z₂ᵀW₂), powers raised (x²), "−" for minus with the
    positive terms first (ŷ − y), ≤ and ≥, cases as ``{ 0 if … ≤ 0; w₅x₁ otherwise }``, σ for the
    sigmoid and σ′, relu′ for derivatives; no ``*``, ``**`` or SymPy call syntax. A form SymPy
    simplified away is recognised before printing and checked equal: 1/(4 cosh²(u/2)) prints as
    σ(u)(1 − σ(u)), exp(a) exp(b) as exp(a + b). ``unicode=False`` writes names, minus signs,
    relations and powers in ASCII (x1, yhat, sigmoid, -, <=, x^2), the engines' words too
    (:func:`symgrad.printing.names.ascii_words`), and the structural glyphs too (∂ → d, ᵀ → ',
    ⊙ → .*, ⊗ → kron, · → *, ⁽¹⁾ → ^(1)): the whole output is ASCII. JSON keeps SymPy's own strings
    (:class:`SympifyPrinter`); the engines' words use :class:`PlainPrinter`.
    """

    # notation: the index level's names (esl: ESL's α, β; else W⁽¹⁾, W⁽²⁾)
    _default_settings = {**StrPrinter._default_settings, "unicode": True, "notation": None}
    # nodes that print themselves (_sympystr, shared with JSON) but read differently in text
    _TEXT_FIRST = ("Elementwise", "SoftmaxJacobian", "SoftmaxVJP", "NormalizeVJP")

    def _print(self, expr, **kwargs):
        for cls in type(expr).__mro__:
            if cls.__name__ in self._TEXT_FIRST:
                return getattr(self, "_print_" + cls.__name__)(expr, **kwargs)
            if cls is sp.Basic:
                break
        return super()._print(expr, **kwargs)

    @property
    def _u(self) -> bool:
        return bool(self._settings["unicode"])

    def doprint(self, expr):
        out = super().doprint(expr)
        return out if self._u else _ascii(out)

    def _minus_sign(self) -> str:
        return "−" if self._u else "-"

    # names and numbers
    def _print_MatrixSlice(self, e):
        # as the LaTeX printer writes it, 1-based and inclusive like the entries g_z1[1]: Python's
        # g_c[2:, :] read as 0-based (issue 13). Not in PlainPrinter, whose words the engines'
        # justifications are written in
        ranges = slice_ranges(e)
        if ranges is None:
            return super()._print_MatrixSlice(e)
        return "%s[%s]" % (self.parenthesize(e.parent, PRECEDENCE["Atom"], strict=True), ranges)

    def _print_Symbol(self, expr):
        if isinstance(expr, sp.Dummy):
            return super()._print_Symbol(expr)
        return self._nm(expr.name)

    def _print_MatrixSymbol(self, m):
        entry = re.fullmatch(r"(.+)\[(\d+)\]", m.name)  # a vector's entry as a 1×1 block, 0-based
        if entry:
            return f"{self._nm(entry.group(1))}[{int(entry.group(2)) + 1}]"
        if getattr(self, "_layered", False):
            return _layered(m.name, self._u)
        return self._nm(m.name)

    def _nm(self, name: str) -> str:
        """A name in text: by its role where the derivation's network generated it (s18 → r⁽¹⁾,
        g_s18 → g_r⁽¹⁾, as the handout writes it: ``meta["symbols"]``), else :func:`_name`."""
        roles = getattr(self, "_roles", None)
        if roles:
            if name in roles:
                return roles[name]
            m = re.fullmatch(r"([gG])_(.+)", name)
            if m and m.group(2) in roles:
                return f"{m.group(1)}_{roles[m.group(2)]}"
        return _name(name, self._u)

    def _print_Pi(self, expr):
        return "π" if self._u else "pi"

    def _print_Exp1(self, expr):
        return "e"

    def _print_Infinity(self, expr):
        return "∞" if self._u else "oo"

    def _print_NegativeInfinity(self, expr):
        return "−∞" if self._u else "-oo"

    def _signed(self, text: str) -> str:
        return self._minus_sign() + text[1:] if text.startswith("-") else text

    def _print_Integer(self, expr):
        return self._signed(super()._print_Integer(expr))

    def _print_Rational(self, expr):
        return self._signed(super()._print_Rational(expr))

    def _print_Float(self, expr):
        return self._signed(super()._print_Float(expr))

    # functions
    def _print_Function(self, expr):
        name = function_text(expr.func.__name__, self._u)
        return f"{name}({', '.join(self._print(a) for a in expr.args)})"

    def _print_Elementwise(self, e):
        if not re.fullmatch(r"[\w']+", e._label):  # a formula over the entries: [−y/ŷ]ᵀ
            return self._entry_formula(e)
        ops = e.operands[:e._shown]
        if ops and all(isinstance(a, sp.Transpose) for a in ops):  # relu′(z₁)ᵀ, not relu′(z₁ᵀ)
            inner = ", ".join(self._print(a.arg) for a in ops)
            return f"{function_text(e._label, self._u)}({inner})" + ("ᵀ" if self._u else "'")
        return f"{function_text(e._label, self._u)}({', '.join(self._print(a) for a in ops)})"

    def _entry_formula(self, e):
        """[4(ŷ − y)³]ᵀ: the formula an Elementwise applies, printed by this printer from its
        Lambda in the operands' names; its label is SymPy's str (4*(-y + ŷ)**3, issue 13), kept
        for operands that are not plain names. A label with no ASCII * or - is the engines' own
        text (bce's (ŷ − y)/(ŷ(1 − ŷ))) and reads better as written."""
        ops = [a.arg if isinstance(a, sp.Transpose) else a for a in e.operands]
        lam = e.lam
        # the engines' own text, (ŷ − y)/(ŷ(1 − ŷ)), as written where it is in the operands' own
        # names; a head named cls with target y_cls printed the undefined [−y/ŷ]ᵀ (issue 13)
        if not re.search(r"[*-]", e._label) and all(self._print(a) in e._label for a in ops):
            return PlainPrinter._print(self, e)
        if len(ops) != len(lam.variables) or not all(isinstance(a, sp.MatrixSymbol) for a in ops):
            return PlainPrinter._print(self, e)
        body = lam.expr.xreplace({v: sp.Symbol(a.name, real=True)
                                  for v, a in zip(lam.variables, ops)})
        t = "ᵀ" if isinstance(e.operands[0], sp.Transpose) else ""
        return f"[{self._print(body)}]{t}"

    def _print_Derivative(self, expr):
        if len(expr.variables) == 1 and isinstance(expr.expr, (sp.Add, sp.Mul, sp.Pow)):
            return f"∂({self._print(expr.expr)})/∂{self._print(expr.variables[0])}"
        f = expr.expr  # one example's ℓᵢ, as the words beside it write it (issue 13: ∂ℓ_i)
        if self._u and len(expr.variables) == 1 and isinstance(f, sp.Indexed) and \
                len(f.indices) == 1:
            entry = _entry_word(self._print(f.base.label), self._print(f.indices[0]))
            if entry:
                return f"∂{entry}/∂{self._print(expr.variables[0])}"
        return super()._print_Derivative(expr)

    # sums: positive terms first (ŷ − y, not −y + ŷ), weights before biases, "−" for minus
    def _print_Add(self, expr, order=None):
        terms = self._as_ordered_terms(expr, order=order)
        if any(_is(BIAS, t) for t in terms):  # w₁x₁ + w₂x₂ + b₁; else SymPy's order (w₀ + w₁x₁)
            terms = notes_order(terms)
        return self._join_terms(terms, PRECEDENCE["Add"])

    def _print_MatAdd(self, expr):  # in SymPy's order, as str had it, positive terms first
        return self._join_terms(self._as_ordered_terms(expr), PRECEDENCE["Add"])

    def _join_terms(self, terms, prec) -> str:
        neg = [_minus(t) for t in terms]
        terms = [t for t, n in zip(terms, neg) if not n] + [t for t, n in zip(terms, neg) if n]
        out = []
        for t in terms:
            if _minus(t):
                body = self.parenthesize(negated(t), prec)
                out.append(f"{self._minus_sign()}{body}" if not out else
                           f" {self._minus_sign()} {body}")
            else:
                body = self.parenthesize(t, prec)
                out.append(body if not out else f" + {body}")
        return "".join(out)

    # products: side by side, numerator over denominator
    def _print_Mul(self, expr):
        n = inverse_root(expr)
        if n:  # 1/√2, as the LaTeX printer and the justifications' Q/√2 write it, not √2/2
            return f"1/{self._print(sp.sqrt(n))}"
        if mean_of_sum(expr):
            return super()._print_Mul(expr)
        expr = readable_forms(expr)
        if not isinstance(expr, sp.Mul):
            return self._print(expr)
        c, rest = expr.as_coeff_Mul()
        sign = ""
        if c < 0:
            expr, sign = _keep_coeff(-c, rest), self._minus_sign()
        num, den = [], []
        for f in sp.Mul.make_args(expr):
            if f.is_Rational:
                if f.p != 1:
                    num.append(sp.Integer(f.p))
                if f.q != 1:
                    den.append(sp.Integer(f.q))
            elif f.is_Pow and f.exp.is_Number and f.exp < 0 and f.is_commutative:
                den.append(f.base if f.exp == -1 else sp.Pow(f.base, -f.exp))
            else:
                num.append(f)
        prec = PRECEDENCE["Mul"]
        top = self._side_by_side(_factor_order(num), prec) if num else "1"
        if not den:
            return sign + top
        bottom = self._side_by_side(_factor_order(den), prec)
        if len(den) > 1 or (len(den) == 1 and precedence(den[0]) <= prec):
            bottom = f"({bottom})" if not (len(den) == 1 and bottom.startswith("(")) else bottom
        return f"{sign}{top}/{bottom}"

    def _print_MatMul(self, expr):
        c, mats = expr.as_coeff_mmul()
        sign = ""
        if c.is_number and c.is_extended_real and c < 0:
            c, sign = -c, self._minus_sign()
        args = ([c] if c != 1 else []) + list(mats.args if isinstance(mats, sp.MatMul)
                                              else [mats])
        # a scalar product among the factors side by side with them: 2Ax, not (2A)x
        args = [f for a in args for f in (a.args if a.is_Mul and a.is_commutative else [a])]
        prec = PRECEDENCE["Mul"]  # of the product without its sign
        num, den = [], []  # scalars dividing the product go under it: (…)/σ, sum(…)/2
        for a in args:
            if a.is_Rational and a.q != 1:
                num += [sp.Integer(a.p)] if a.p != 1 else []
                den.append(sp.Integer(a.q))
            elif a.is_Pow and a.is_commutative and a.exp.is_Number and a.exp < 0:
                den.append(a.base if a.exp == -1 else sp.Pow(a.base, -a.exp))
            else:
                num.append(a)
        top = self._side_by_side(num, prec)
        if not den:
            return sign + top
        if not num:
            top = "1"
        bottom = self._side_by_side(den, PRECEDENCE["Mul"])
        wrapped = _enclosed(bottom)  # (xᵀx) is already in parentheses: not ((xᵀx))
        return f"{sign}{top}/({bottom})" if not wrapped and (len(den) > 1 or precedence(
            den[0]) <= PRECEDENCE["Mul"]) else f"{sign}{top}/{bottom}"

    def _print_OneMatrix(self, e):
        """𝟏, the vector of ones (ASCII: 1), as the notes write diag(Y𝟏); a row of ones 𝟏ᵀ."""
        one = "𝟏" if self._u else "1"
        return f"{one}ᵀ" if e.rows == 1 and e.cols != 1 else one

    def _print_SoftmaxJacobian(self, e):  # JSON keeps the node's own string (MatrixSympifyPrinter)
        s = "sᵢ" if self._u else "s_i"
        return (f"blkdiag_i(diag({s}) {self._minus_sign()} {s}{'' if self._u else ' '}{s}ᵀ | "
                f"S = {self._print(e.args[0])})")

    def _print_SoftmaxVJP(self, e):
        y, g = (self._print(a) for a in e.args[:2])
        m = self._minus_sign()
        if e.args[2] == 1:  # row by row: S ⊙ (G − ((S ⊙ G) 𝟏) 𝟏ᵀ)
            one = self._print(sp.OneMatrix(2, 1))
            return f"({y} ⊙ ({g} {m} ({y} ⊙ {g}){one}{one}ᵀ))"
        return f"(diag({y}) {m} {y} {y}ᵀ){g}"

    def _print_NormalizeVJP(self, e):  # (I − 𝟏𝟏ᵀ/d − x̂x̂ᵀ/d)g/std(h); JSON keeps its string
        shown = e.shown()
        return PlainPrinter._print(self, e) if shown is None else self._print(shown)

    def _print_Transpose(self, e):
        inner = self._print(e.arg)
        atom = isinstance(e.arg, (sp.MatrixSymbol, sp.OneMatrix, sp.Identity))
        return f"{inner}ᵀ" if atom else f"({inner})ᵀ"

    def _side_by_side(self, factors, prec) -> str:
        out, prev, prev_f = "", "", None
        for f in factors:
            s = self.parenthesize(f, prec, strict=False)
            if prev_f is None:
                out = s
            else:
                out += _joiner(prev_f, prev, f, s) + s
            prev, prev_f = s, f
        return out

    def _print_Pow(self, expr, rational=False):
        base, e = expr.args
        if e.is_Number and e < 0 and expr.is_commutative:
            inner = sp.Pow(base, -e) if e != -1 else base
            s = self.parenthesize(inner, PRECEDENCE["Mul"], strict=False)
            return f"1/{s}"
        b = self._print(base)
        if precedence(base) <= PRECEDENCE["Pow"] or base.is_Pow or (
                base.is_Number and (base < 0 or not base.is_Integer)):
            b = f"({b})"
        if e == sp.S.Half:
            root = self._print(base)
            root = root if base.is_Atom else f"({root})"
            return f"√{root}" if self._u else f"sqrt({self._print(base)})"
        if e.is_Integer and self._u:
            return b + str(e).translate(SUPERSCRIPT)
        x = self._print(e)
        return f"{b}^{x}" if e.is_Atom and not (e.is_Number and e < 0) else f"{b}^({x})"

    # cases, relations, logic
    def _print_Relational(self, expr):
        op = expr.rel_op
        op = _RELATIONS.get(op, op) if self._u else op
        return f"{self._print(expr.lhs)} {op} {self._print(expr.rhs)}"

    def _print_Piecewise(self, expr):
        parts = []
        for e, c in expr.args:
            cond = "otherwise" if c == sp.true else f"if {self._print(c)}"
            parts.append(f"{self._print(e)} {cond}")
        return "{ " + "; ".join(parts) + " }"

    def _print_And(self, expr):
        return " and ".join(self.parenthesize(a, PRECEDENCE["And"]) for a in expr.args)

    def _print_Or(self, expr):
        return " or ".join(self.parenthesize(a, PRECEDENCE["Or"]) for a in expr.args)

    def _print_Not(self, expr):
        return f"not {self.parenthesize(expr.args[0], PRECEDENCE['Not'])}"

    # derivations
    def doprint_derivation(self, d: Derivation) -> str:
        # the element level's parameter matrices by layer, W⁽¹⁾ b⁽¹⁾, apart from its scalars w₁ b₁
        self._layered = bool(d.meta.get("layered"))
        self._roles = text_symbols(*d.meta["symbols"], unicode=self._u) \
            if d.meta.get("symbols") else None
        lines = []
        rendered = [(None if s.lhs is None else self.doprint(s.lhs), self.doprint(s.rhs), s)
                    for s in d.steps]
        # (an entry the maths print with its underscore, e_t, the words print so too)
        words = self._words(d, " ".join(f"{lhs} {rhs}" for lhs, rhs, _ in rendered))
        width = max((_columns(lhs) for lhs, _, _ in rendered if lhs), default=0)
        if d.title:  # the index level's ∂R/∂θ printed as its body prints θ (issue 13)
            t = d.meta.get("title_expr")
            lines.append(words(d.title) if t is None else
                         f"{self.doprint(t)} in general indices")
        for lhs, rhs, s in rendered:
            if lhs is None and isinstance(s.rhs, Note):  # a remark on the lines above
                line = f"{''.rjust(width)}   {words(rhs)}"
            else:
                rel = "←" if s.rule is StepKind.UPDATE else "="  # (w ← w − ε ∂f/∂w)
                lhs = lhs or ""
                line = f"{' ' * (width - _columns(lhs))}{lhs} {rel} {rhs}"
            notes = [n for n in (s.shape_text(), words(s.why)) if n]
            if notes:
                line += "    [" + "; ".join(notes) + "]"
            lines.append(line)
        out = "\n".join(lines)
        return out if self._u else _ascii(out)

    def _words(self, d: Derivation, maths: str = ""):
        """The engines' words (titles, justifications) with the derivation's names as the
        expressions show them: "ŷ separates ℓ from w₁", "g ← W₂ᵀ g", "σ′(z₂)"."""
        vectors, scalars = names_in(d)
        if not self._u:  # ASCII throughout: the words' ŷ, −, ‖·‖² as the names print (yhat, -)
            if getattr(self, "_roles", None):  # (and a generated name by its role: r^(1))
                role = re.compile(r"(?<![A-Za-z0-9_'])((?:[gG]_)?(?:%s))(?![A-Za-z0-9'])" % "|".join(
                    re.escape(v) for v in sorted(self._roles, key=len, reverse=True)))
                return lambda text: ascii_words(role.sub(lambda m: self._nm(m.group(1)), text))
            if not getattr(self, "_layered", False):
                return ascii_words
            layer = re.compile(r"(?<![A-Za-z0-9_'])(%s)(?![A-Za-z0-9_'])" % "|".join(
                re.escape(v) for v in vectors)) if vectors else None
            return lambda text: ascii_words(
                layer.sub(lambda m: _layered(m.group(1), False), text) if layer else text)
        known = set(vectors) | set(scalars) | {"yhat", "Yhat"}
        subscripts = [True]  # this sentence's entries in Unicode subscripts (see _entries)
        printed = {m.group(0) for m in _WORD_ENTRY.finditer(maths)}

        def name(m):
            word, primes = m.group(1), m.group(2)
            if primes:  # a function's derivative: relu'(z), sigmoid'(z)
                return function_text(word, True) + "′" * len(primes)
            if word in vectors and getattr(self, "_layered", False):
                return _layered(word)
            if word in known:
                return self._nm(word)
            base, under, rest = word.rpartition("_")  # yhat_i, z2_i, t_1_i: an entry by its index
            if under and base in known and not rest[:1].isdigit():
                shown = self._nm(base)
                if shown[-1:] in _SUBSCRIPT_DIGITS and not rest.translate(_SUB_LETTERS).isascii():
                    return f"{shown},{rest.translate(_SUB_LETTERS)}"  # h₁,ᵢ as z₁,₂ (not h₁_i)
                entry = _entry_word(shown, rest) if subscripts[0] else None  # ŷᵢ beside h₁,ᵢ
                return entry or f"{shown}_{rest}"
            return "σ" if word == "sigmoid" and m.string[m.end():m.end() + 1] == "(" else word

        def words(text: str) -> str:
            text, subscripts[0] = _entries(text, known, printed, self._nm)
            if getattr(self, "_roles", None):  # v2_τ, entry τ of v2 (τ has no subscript): v⁽²⁾_τ;
                # h2_1, position 1 of h2: h⁽¹⁾_1 (the name pass leaves a name with a digit index)
                text = re.sub(r"(?<![A-Za-z0-9_'])([A-Za-z][A-Za-z0-9]*)(?=_(?:[^\x00-\x7f]|\d))",
                              lambda m: self._roles.get(m.group(1), m.group(1)), text)
            text = re.sub(r"∇_([A-Za-z][A-Za-z0-9]*)", lambda m: "∇_" + (
                self._nm(m.group(1)) if m.group(1) in known else m.group(1)), text)
            text = re.sub(r"(?<![A-Za-z0-9_'])([A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*)"
                          r"(?:('+)(?=\()|(?![A-Za-z0-9_']))", name, text)
            text = re.sub(r"(?<=[^\s\d'])'(?=\()", "′", text)  # σ'(z) → σ′(z)
            return text.replace(" - ", " − ").replace("(-", "(−")
        if d.meta.get("level") == "index":  # R_i, m', δ_ki as the body writes them: Rᵢ, m′, δₖᵢ
            return lambda text: index_words(words(text))
        return words


def _columns(text: str) -> int:
    """The columns ``text`` takes in a terminal: a combining accent takes none (x̂ is x and U+0302,
    no precomposed letter; len() counted 2, and the = of g_x̂⁽²⁾ᵀ stood a column right of the
    others)."""
    return sum(not unicodedata.combining(c) for c in text)


_SUBSCRIPT_DIGITS = set("₀₁₂₃₄₅₆₇₈₉")
# a letter's entry in the engines' words: ŷ_k, y_k, ℓ_i, Σ_k, δ_ij; and, to leave the sentence as
# written, one with an index Unicode has no subscript for (s_tτ, k_τ) or two of them (h_t,i)
_WORD_ENTRY = re.compile(r"(?<![\w′'])([^\W\d_])_(\w+(?:,\w+)*)")


def _entries(text: str, known, printed=frozenset(), name=_name) -> tuple[str, bool]:
    """The words' entries of single letters as the maths write entries, in Unicode subscripts
    (issue 13: "ŷ_i depends only on z₂,ᵢ", "−Σ_k y_k log ŷ_k" beside maths in ŷ₁, z₂,ᵢ). All of a
    sentence's or none (attention's "s_tτ = q_t · k_τ/√d_k" keeps its underscores: τ has no
    subscript); a name of the derivation (a user's x_i, a target y_reg) and the g of a node
    (g_z) as the maths print them. Also whether the sentence's entries are subscripts, for the
    entries of longer names (yhat_i, q_t) the words' name pass writes."""
    found = [m for m in _WORD_ENTRY.finditer(text) if m.group(1) not in "gG"
             and m.group(0) not in printed]  # (as the maths print it: e_t ⊗ I)
    new = [name(m.group(0)) if m.group(0) in known else _entry_word(m.group(1), m.group(2))
           for m in found]
    ok = None not in new
    if not ok:
        new = [name(m.group(0)) if m.group(0) in known else None for m in found]
    for m, entry in reversed(list(zip(found, new))):
        if entry is not None:
            text = text[:m.start()] + entry + text[m.end():]
    return text, ok


def _entry_word(base: str, index: str) -> str | None:
    """``base`` with ``index`` in Unicode subscripts (ŷ, k → ŷₖ; ℓ, i → ℓᵢ), or None where
    Unicode has no subscript for a letter of it (y_reg stays as written)."""
    if not 0 < len(index) <= 3 or any(c not in _SUBSCRIPTABLE for c in index):
        return None  # (τ is no subscript: x_τ stays, not xτ)
    return base + index.translate(_SUB_LETTERS).translate(_SUB_DIGITS)
_SUB_LETTERS = str.maketrans(dict(zip("aehijklmnoprstuvx", "ₐₑₕᵢⱼₖₗₘₙₒₚᵣₛₜᵤᵥₓ")))
_SUB_DIGITS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
_SUBSCRIPTABLE = frozenset("aehijklmnoprstuvx0123456789")


def _name(name: str, unicode: bool = True) -> str:
    """A name in text: :func:`text_name`, and a name with underscores as subscripts where it
    wrote them as they are (issue 13: zeta_1 → ζ₁, t_1 → t₁, g_zeta_1 → g_ζ₁, and a unit of one
    zeta_1_2 → ζ₁,₂ as z1_2 → z₁,₂)."""
    shown = text_name(name, unicode)
    if not unicode or shown != name:
        return shown
    if "_" not in name:
        return _greek(name)
    m = re.fullmatch(r"([gG])_([A-Za-z].*)", name)  # the g of a node so named
    if m:
        return f"{m.group(1)}_{_name(m.group(2))}"
    # (a loss term's ℓ_1 as ℓ₁: the words beside it write ℓ₁, issue 13)
    m = re.fullmatch(r"([A-Za-z]+|[^\W\d_])_(\d+)(?:_(\d+(?:,\d+)?))?", name)
    if m:
        letters, sub, unit = m.groups()
        out = _greek(text_name(letters)) + sub.translate(_SUB_DIGITS)
        return out + ("," + unit.translate(_SUB_DIGITS) if unit else "")
    return shown


def _greek(word: str) -> str:
    """zeta → ζ, Omega → Ω: every Greek letter's name, as the LaTeX names have them (\\zeta);
    text_name's table has the common ones only."""
    import unicodedata
    if word.lower() not in GREEK_NAMES:
        return word
    case = "CAPITAL" if word[0].isupper() else "SMALL"
    try:
        return unicodedata.lookup(f"GREEK {case} LETTER {word.upper()}")
    except KeyError:
        return word


GREEK_NAMES = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
               "lamda", "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon", "phi",
               "chi", "psi", "omega"}


def _layered(name: str, unicode: bool = True) -> str:
    """A layer's matrix or vector by its layer as a superscript, as the LaTeX writes it: W1 →
    W⁽¹⁾, b1 → b⁽¹⁾, g_z1 → g_z⁽¹⁾ (ASCII: W^(1)); any other name as :func:`_name` has it."""
    m = re.fullmatch(r"((?:[gG]_)?)([A-Za-z]+?)(\d+)", name)
    if not m or m.group(2) in ("yhat", "Yhat"):
        return _name(name, unicode)
    prefix, letters, layer = m.groups()
    if not unicode:
        return f"{prefix}{letters}^({layer})"
    return f"{prefix}{_greek(letters)}⁽{layer.translate(SUPERSCRIPT)}⁾"


def _ascii(text: str) -> str:
    """ASCII mode's last word: the structural glyphs nodes print themselves with (∂, ℓ, ᵀ, ⊗, ·,
    W⁽¹⁾, ×) read in ASCII (d, l, ', kron, *, W^(1), x), so --ascii output is ASCII throughout
    (issue 13: ∂ℓ/∂vec[W1] and I ⊗ xᵀ survived it)."""
    if text.isascii():
        return text
    text = text.replace(" ⊗ ", " kron ")
    text = re.sub("⁽([⁰¹²³⁴⁵⁶⁷⁸⁹]+)⁾", lambda m: "^(" + m.group(1).translate(_FROM_SUPERSCRIPT) + ")",
                  text)
    return re.sub(r" +kron +", " kron ", ascii_words(text))  # the words' ⊗ is spaced too


_FROM_SUPERSCRIPT = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹", "0123456789")


def _symbolic(e) -> bool:
    """A factor that reads as a name: x₁, W₂, xᵀ, x²."""
    while isinstance(e, (sp.Transpose, sp.Inverse)):
        e = e.arg
    if isinstance(e, sp.Pow):
        e = e.base
    return isinstance(e, (sp.Symbol, sp.MatrixSymbol)) and not isinstance(e, sp.Dummy)


def _joiner(left, ls: str, right, rs: str) -> str:
    """What goes between two printed factors: nothing where no name can run into the next (w₅x₁,
    2x, σ(h)(1 − σ(h)), (A + Aᵀ)x), else a space (x₁ exp(u), a b, 2 sin(x))."""
    if left.is_Number:  # 2x, 2σ(x); a word needs its space: 2sin(x) read as a name "2sin"
        return "·" if rs[:1].isdigit() else " " if re.match(r"[A-Za-z]{2}", rs) else ""
    if ls.endswith("]"):  # an entry or a block: g_z₁[1] xᵀ
        return " "
    if rs.startswith("𝟏") and not ls[-1:].isdigit():  # Y𝟏, (xᵀx)𝟏: the bold one runs into no name
        return ""
    ends_closed = ls[-1:] in _SCRIPTS or ls[-1:] == ")"
    matrix = isinstance(left, sp.MatrixExpr) and _symbolic(left)
    if rs.startswith("(") or rs.startswith("√"):  # no name runs into a group; a matrix is no call
        return "" if ends_closed or matrix else " "
    if ends_closed and _symbolic(right):
        return ""
    if matrix and _symbolic(right) and re.match(r"[A-Za-z](?![A-Za-z])", rs) and \
            re.fullmatch(r".*[^A-Za-z]|[A-Za-z]", ls):
        return ""  # matrices named by one letter read side by side: xᵀAx (but xᵀA dx)
    return " "


def _factor_order(factors) -> list:
    """Numbers, then names (weights first), then functions, then parenthesized sums: 2w₅x₁σ(h)(1 − σ(h))."""
    def rank(f):
        if f.is_number and f.is_Atom:  # 2, π
            return 0
        if _symbolic(f):
            return 1 if re.fullmatch(r"[wW]\d+(_\d+)?", getattr(f, "name", "")) else 2
        if isinstance(f, sp.Function) or (f.is_Pow and isinstance(f.base, sp.Function)):
            return 3
        return 4
    return sorted(factors, key=rank)


def readable_forms(expr):
    """``expr`` with forms SymPy simplified into something a student does not recognise put back,
    each checked equal before it is used: exp(a) exp(b) → exp(a + b) (an identity), and
    1/cosh²(u/2) → 4σ(u)(1 − σ(u)), the sigmoid's derivative (an identity too, and still
    checked: both forms evaluated to 30 digits at two points); anything not matched, or not
    checked equal, is returned as it is. Only a product's own factors are read."""
    if not isinstance(expr, sp.Mul):
        return expr
    args = list(expr.args)  # only its own factors are read: no walk of the tree below each Mul
    if not any(isinstance(a, sp.exp) or a.is_Pow and isinstance(a.base, sp.cosh) for a in args):
        return expr
    exps = [a for a in args if isinstance(a, sp.exp)]
    if len(exps) > 1:
        args = [a for a in args if not isinstance(a, sp.exp)] + \
            [sp.exp(sp.Add(*(a.args[0] for a in exps)), evaluate=False)]
    out = []
    for a in args:
        if a.is_Pow and a.exp == -2 and isinstance(a.base, sp.cosh):
            u = 2 * a.base.args[0]
            s = sigmoid(u)
            out += [sp.Integer(4), s, 1 - s]
        else:
            out.append(a)
    if len(out) == len(args) and len(exps) < 2:
        return expr
    coeff = sp.Mul(*(a for a in out if a.is_Number))
    new = sp.Mul(coeff, *(a for a in out if not a.is_Number), evaluate=False)
    return new if _same(expr, sp.Mul(*out)) else expr


def _same(a, b) -> bool:
    """a == b at two rational points, to 30 digits (b through exp, as σ is defined)."""
    free = sorted(a.free_symbols | b.free_symbols, key=str)
    for k in (1, 2):
        point = {x: sp.Rational(3 + 2 * k * i, 7 + k) for i, x in enumerate(free)}
        va = a.subs(point).evalf(30, subs=None)
        vb = b.rewrite(sp.exp).subs(point).evalf(30)
        if va.is_number is False or vb.is_number is False or abs(complex(va - vb)) > 1e-20:
            return False
    return True


def to_text(d: Derivation, **settings) -> str:
    """A derivation in the text format (see :class:`TextPrinter`; ``unicode=False``: ASCII)."""
    return TextPrinter(settings).doprint_derivation(d)


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
        out["result"] = p.doprint(d.result) if isinstance(d.result, sp.Basic) else \
            [p.doprint(r) for r in d.result] if isinstance(d.result, (list, tuple)) else d.result
    return out
