"""The LaTeX printer of the lecture notes: derivations as ``aligned`` chains in the notes' notation.

Where it sits: derive → **print** → handout. Engines record :class:`~symgrad.derivation.Derivation`
steps; :func:`to_latex` prints one as an ``aligned`` block: each step with its justification as
text with inline math, the shape under each Jacobian factor (\\underbrace{∂ŷ/∂𝐡}_{1×2}), piecewise
results as ``cases``, long sums and chains broken over rows. Names go through a notation preset
(``symgrad.latex_names``): "slides" (CS/DS 541: 𝐖^{(k)}, 𝐳, 𝐡, ŷ) or "feature" (the
feature-discovery notes: π, o, Ẇ, ẇ_ij). Every name and word a user chose is escaped.
``symgrad.handout`` assembles these blocks into documents.
"""
from __future__ import annotations

import re

import sympy as sp
from sympy.printing.precedence import PRECEDENCE

from symgrad.core.derivation import Derivation, Grad, Partial
from symgrad.core.scripts import attach, ends_in_superscript
from symgrad.core.matexpr import Cotangent
from symgrad.printing.text import DerivationLatexPrinter, inverse_root, mean_of_sum
from symgrad.printing.layout import DerivationLayout
from symgrad.printing import names
from symgrad.printing.names import (TeXName, escaped_name, notation, portable_math,
                                    text_escape)
from symgrad.printing.terms import (FIT_MACRO, all_transposed, is_compose, join_terms, negative,
                          positive_first, names_in, notes_order, weights_first)
from symgrad.printing.width import tex_width
from symgrad.printing.words import words
from symgrad.core.primitives import RULES, shown_args
from symgrad.graph.activations import ACTIVATIONS

__all__ = ["NotesLatexPrinter", "to_latex", "notebook_latex", "latex", "tex_width", "FIT_MACRO"]


def _trusted_names() -> set:
    """LaTeX names written by symgrad itself (never from user text): safe to print verbatim. The
    registered primitives' (a registration is code, as a defderiv is) and activations' (whose
    names register_activation checks are plain identifiers) are among them."""
    names = {n for r in RULES.values() for n in (r.latex, r.prime_latex)}
    for name, a in ACTIVATIONS.items():
        names.update((a.latex, a.prime_latex))
    return names | {r"\partial_{\hat{y}} L"}


class NotesLatexPrinter(DerivationLayout, DerivationLatexPrinter):
    """SymPy's LatexPrinter in the notes' notation, plus the derivation layout.

    The display nodes and matrix nodes print themselves through ``_latex``; SymPy prefers that over
    a printer's ``_print_<Class>``, so :meth:`_print` dispatches to the methods defined here first.
    """

    _default_settings = {
        **DerivationLatexPrinter._default_settings,
        "notation": "slides",        # or "feature", or a latex_names.Notation
        "shape_style": "underbrace",  # shapes under each Jacobian factor, or "column"
        "why_position": "right",     # justification after the step, "below" it, or "none"
        "why_width": None,           # e.g. r"0.3\linewidth": wrap justifications in a \parbox
        "note_width": None,          # the same for a step whose right-hand side is words
        "max_width": 58,             # rows wider than this (estimated, in characters) are broken
        "bare_width": None,          # the same for a block without justifications (None: as above)
        "overlays": False,           # beamer: \pause before each step
        "two_methods": True,
        "why_small": False,          # justifications in \scriptstyle (the two-method columns)         # a derivation done two ways: the methods side by side
        "fit": None,                 # (lhs, rhs) widths: \sgfit (FIT_MACRO) caps each cell
        "line_chars": None,          # with fit: the line's width in characters (caps' budgets)
        "max_matrix_cols": 12,       # wider matrices show their first and last columns
        "vectors": (), "scalars": (),  # names justifications may mention (collected if empty)
    }

    def __init__(self, settings=None):
        super().__init__(settings)
        self._nota = notation(self._settings["notation"])
        self._trusted = _trusted_names()
        self._chain_shapes = None
        self._entries: dict = {}
        self._names = None  # (vectors, scalars) of the derivation being printed
        self._bare = False  # it has no justifications: its rows may take the whole line

    # dispatch: a registered primitive by its registration, then our own methods before the
    # objects' _latex
    def _print(self, expr, **kwargs):
        spec = RULES.get(type(expr))
        if spec is not None and not spec.sympy_latex:
            return self._primitive(expr, spec)
        for cls in type(expr).__mro__:
            method = _OWN.get(cls.__name__)
            if method is not None:
                return method(self, expr, **kwargs)
            if cls is sp.Basic:
                break
        return super()._print(expr, **kwargs)

    def _paren(self, expr, kinds=None) -> str:
        kinds = kinds or (sp.Add, sp.MatAdd, sp.KroneckerProduct, sp.HadamardProduct)
        s = self._print(expr)
        if isinstance(expr, sp.MatAdd) and all_transposed(expr):
            return s  # already (ŷ − y)ᵀ
        return r"\left(%s\right)" % s if isinstance(expr, kinds) or negative(expr) else s

    def _call(self, name: str, *args) -> str:
        """name(args): plain parentheses unless an argument is tall."""
        inner = ", ".join(a if isinstance(a, str) else self._print(a) for a in args)
        if re.search(r"\\frac|\\begin|\\sum|\\underbrace", inner):
            return r"%s\left(%s\right)" % (name, inner)
        return r"%s(%s)" % (name, inner)

    # names
    def _print_Symbol(self, expr, style="plain"):
        if expr in self._entries:
            return self._entries[expr]
        name = self._nota.scalar(expr.name)  # an unusual name ends in escaped_name, as everywhere
        return name.tex() if name else super()._print_Symbol(expr)

    def _print_MatrixSymbol(self, expr):
        if _named_like_a_gradient(expr):
            return escaped_name(expr.name, self._nota.bold).tex()
        return self._nota.vector(expr.name).tex()

    def _print_Cotangent(self, expr):
        """g of a node: 𝐠 with the node as subscript; a node itself named g_… is subscripted as
        its plain name, so the g of a node "g_z1" never reads as the g of the g of z1."""
        node = expr.name[2:]
        if node[:2] not in ("g_", "G_"):
            return self._nota.vector(expr.name).tex()
        return self._nota.vector(expr.name[0]).with_sub(escaped_name(node).tex()).tex()

    def _print_MatrixElement(self, expr):  # g[i, 0]: a scalar entry, 1-based as in the notes
        parent, i, j = expr.args
        idx = str(i + 1) if parent.shape[1] == 1 else "%s%s" % (i + 1, j + 1)
        if _named_like_a_gradient(parent):
            return r"\left(%s\right)_{%s}" % (escaped_name(parent.name).tex(), idx)
        if isinstance(parent, sp.MatrixSymbol):
            return self._nota.entry(parent.name, idx).tex()
        return r"\left(%s\right)_{%s}" % (self._print(parent), idx)

    def _print_Transpose(self, expr):
        arg = expr.arg
        if _named_like_a_gradient(arg):
            return escaped_name(arg.name, self._nota.bold).tex(r"\top")
        if type(arg).__name__ == "DiffSymbol":  # (dx)ᵀ: the d outside, as in d𝐱ᵀ
            return r"\mathrm{d}" + self._nota.transposed(arg.name)
        if isinstance(arg, sp.MatrixSymbol):
            return self._nota.transposed(arg.name)
        if isinstance(arg, (sp.Identity, sp.OneMatrix, sp.ZeroMatrix)):
            return self._print(arg) + r"^{\top}"
        return r"\left(%s\right)^{\top}" % self._print(arg)

    def _print_Identity(self, expr):
        return r"\mathbf{I}" if self._nota.bold else "I"

    def _print_OneMatrix(self, expr):
        # bold as the notation's vectors are, unless it says otherwise (Notation.bold_ones: ESL)
        bold = self._nota.bold if self._nota.bold_ones is None else self._nota.bold_ones
        one = r"\mathbf{1}" if bold else "1"
        return one + (r"^{\top}" if expr.rows == 1 and expr.cols != 1 else "")

    def _print_ZeroMatrix(self, expr):
        zero = r"\mathbf{0}" if self._nota.bold else "0"
        return zero + (r"^{\top}" if expr.rows == 1 and expr.cols != 1 else "")

    # matrix algebra
    def _print_MatAdd(self, expr):
        terms = positive_first(expr.args)
        if all_transposed(expr):  # yᵀ − ŷᵀ → (y − ŷ)ᵀ
            inner = sp.MatAdd(*[t.T for t in terms], evaluate=False)
            return r"\left(%s\right)^{\top}" % self._print_MatAdd(inner)
        return join_terms(self, terms)

    def _print_MatMul(self, expr):
        coeff, mats = expr.as_coeff_matrices()
        sign = ""
        if coeff.could_extract_minus_sign():
            sign, coeff = "-", -coeff
        head = [] if coeff == 1 else [self._paren(coeff, (sp.Add,))]
        kinds = (sp.MatAdd, sp.KroneckerProduct, sp.HadamardProduct)
        return juxtaposed(sign + " ".join(head + [self._paren(m, kinds) for m in mats]))

    def _print_HadamardProduct(self, expr):
        kinds = (sp.MatAdd, sp.MatMul, sp.HadamardProduct, sp.KroneckerProduct)
        return r" \odot ".join(self._paren(a, kinds) for a in expr.args)

    def _print_KroneckerProduct(self, expr):
        kinds = (sp.MatAdd, sp.MatMul, sp.HadamardProduct)
        return r" \otimes ".join(self._paren(a, kinds) for a in expr.args)

    # matrix calculus (symgrad.derive.mcalc): dX, det, X⁻ᵀ, diag(X), 1×1 scalars
    def _print_DiffSymbol(self, expr):
        return r"\mathrm{d}" + self._print(sp.MatrixSymbol(expr.name, *expr.shape))

    def _print_DiffScalar(self, expr):
        return r"\mathrm{d}" + self._print(sp.Symbol(expr.name, real=True))

    def _print_Determinant(self, expr):  # det(X) X⁻ᵀ, never det XX⁻ᵀ
        return r"\det(%s)" % self._print(expr.arg)

    def _print_Inverse(self, expr):
        arg = expr.arg
        if isinstance(arg, sp.Transpose) and isinstance(arg.arg, sp.MatrixSymbol):
            return raised(self._print(arg.arg), r"-\top")  # X⁻ᵀ, as the Cookbook writes it
        if isinstance(arg, sp.MatrixSymbol):
            return raised(self._print(arg), "-1")
        return r"\left(%s\right)^{-1}" % self._print(arg)

    def _helper_print_standard_power(self, expr, template: str) -> str:
        """SymPy's, for Pow and HadamardPower, with a base that already ends in a superscript in
        parentheses: it protects Symbols only, so W1^∘2 of the penalty was W^{(1)}^{∘2}."""
        out = super()._helper_print_standard_power(expr, template)
        base = template.split("%s", 1)[0] + self.parenthesize(expr.base, PRECEDENCE["Pow"])
        if out.startswith(base) and ends_in_superscript(base):
            out = r"\left(%s\right)" % base + out[len(base):]
        return out

    def _print_Trace(self, expr):
        return self._call(r"\operatorname{tr}", expr.arg)

    def _print_DiagonalOf(self, expr):
        return self._call(r"\operatorname{diag}", expr.args[0])

    def _print_Scalar(self, expr):
        return self._print(expr.matrix)

    def _print_DiagMatrix(self, expr):
        return self._call(r"\operatorname{diag}", expr.args[0])

    def _print_MatrixBase(self, expr):
        cap = self._settings["max_matrix_cols"]
        if expr.cols <= cap:
            return super()._print_MatrixBase(expr)
        keep = list(range(cap - 3)) + [None] + [expr.cols - 2, expr.cols - 1]
        rows = [" & ".join(r"\cdots" if j is None else self._print(expr[i, j]) for j in keep)
                for i in range(expr.rows)]
        return r"\left[\begin{matrix}%s\end{matrix}\right]" % r"\\".join(rows)

    def _print_Elementwise(self, expr):
        label, shown = expr.label, expr._shown
        args = expr.operands[:shown]
        if re.fullmatch(r"[A-Za-z][A-Za-z0-9]*'*", label) or expr._latex_name in self._trusted:
            return self._call(self._function_name(label, expr._latex_name), *args)
        # an entrywise formula (−y/ŷ): print its body on entry k of each operand
        ops = expr.operands
        transposed = all(isinstance(o, sp.Transpose) for o in ops)
        saved = dict(self._entries)
        for var, op in zip(expr.lam.variables, ops):
            base = op.arg if isinstance(op, sp.Transpose) else op
            name = self._nota.entry(base.name, "k") if isinstance(base, sp.MatrixSymbol) else \
                TeXName(r"\left(%s\right)" % self._print(base), sub="k")
            self._entries[var] = name.tex()
        try:
            body = self._print(expr.lam.expr)
        finally:
            self._entries = saved
        return r"\left[%s\right]_{k}%s" % (body, r"^{\top}" if transposed else "")

    def _function_name(self, label, latex_name="") -> str:
        own = self._nota.activation(label)
        if own:
            return own
        if latex_name in self._trusted:
            return latex_name
        m = re.fullmatch(r"([A-Za-z][A-Za-z0-9]*)('*)", label)
        if m:
            name = m.group(1)
            return (name if len(name) == 1 else r"\operatorname{%s}" % name) + m.group(2)
        return escaped_name(label).tex()

    # functions of scalars
    def _primitive(self, expr, spec):
        """A registered primitive as the notes write it: by its registered LaTeX name (or a
        notation's own, relu → a in the feature notes; step(z) shown as relu'(z)), with the
        arguments that differ from their defaults (leaky_relu's a = 1/100 is not shown)."""
        name = (self._function_name(spec.shown_as) if spec.shown_as else
                self._function_name(spec.name, spec.latex))
        return self._call(name, *shown_args(expr, spec))

    def _print_UnevaluatedExpr(self, expr):  # a substituted inner function, as the notes write it
        inner = expr.args[0]
        if isinstance(inner, (sp.Symbol, sp.Number)):
            return self._print(inner)
        return r"\left(%s\right)" % self._print(inner)

    def _print_Add(self, expr, order=None):
        terms = positive_first(notes_order(self._as_ordered_terms(expr, order=order)))
        return join_terms(self, terms)

    def _print_Mul(self, expr):  # w5 h1, as the notes write it, not SymPy's h1 w5
        root = _inverse_root(expr)
        if root:
            return root
        mean = mean_of_sum(expr)
        if mean:  # (1/n) Σ_i …, the notes' mean over the examples, not Σ_i … over n
            n, total, rest = mean
            return r"\frac{1}{%s} %s" % (self._print(n), " ".join(map(self._print, [total, *rest])))
        coeff, rest = expr.as_coeff_mul()
        if len(rest) == 1 and isinstance(rest[0], sp.UnevaluatedExpr) and coeff.is_Rational \
                and coeff.q != 1:  # (3 − x1)/4: the fraction bar groups it, no parentheses
            num = self._print(rest[0].args[0])
            num = num if abs(coeff.p) == 1 else r"%d \left(%s\right)" % (abs(coeff.p), num)
            return ("- " if coeff < 0 else "") + r"\frac{%s}{%d}" % (num, coeff.q)
        factors = weights_first(expr)
        if factors is None:
            return juxtaposed(super()._print_Mul(expr))
        sign, coeff, rest = factors
        head = [] if coeff == 1 else [self._print(coeff)]
        return juxtaposed(sign + " ".join(head + [self._paren(f, (sp.Add,)) for f in rest]))

    def _print_Indexed(self, expr):  # one example's value: ℓ^{(i)}, as the notes write ŷ^{(i)}
        if len(expr.indices) != 1:
            return super()._print_Indexed(expr)
        return r"%s^{(%s)}" % (self._print(expr.base.label), self._print(expr.indices[0]))

    def _print_Derivative(self, expr):
        if len(expr.variables) != 1:
            return super()._print_Derivative(expr)
        if isinstance(expr.expr, (sp.Indexed, sp.Symbol)):  # ∂ℓ^{(i)}/∂w1, ∂u/∂w1
            return r"\frac{\partial %s}{\partial %s}" % (self._print(expr.expr),
                                                         self._print(expr.variables[0]))
        return r"\frac{\partial}{\partial %s}\left[%s\right]" % (
            self._print(expr.variables[0]), self._print(expr.expr))

    def _print_Piecewise(self, expr):
        rows = []
        pieces = list(expr.args)
        for i, (e, c) in enumerate(pieces):
            if c == sp.true and i == len(pieces) - 1:
                prev = [pc for _, pc in pieces[:-1]]
                if len(prev) == 1 and isinstance(prev[0], sp.core.relational.Relational):
                    cond = r"\text{if } " + self._print(prev[0].negated)
                else:
                    cond = r"\text{otherwise}"
            else:
                cond = r"\text{if } " + self._print(c)
            rows.append(r"%s & %s" % (self._print(e), cond))
        return r"\begin{cases} %s \end{cases}" % r" \\ ".join(rows)

    # the display nodes of derivation.py
    def _print_Partial(self, expr):
        if isinstance(expr.of, (Partial, Grad)):  # the derivative of a derivative
            return r"\frac{\partial}{\partial %s} \left(%s\right)" % (self._print(expr.wrt),
                                                                    self._print(expr.of))
        return r"\frac{\partial %s}{\partial %s}" % (self._paren(expr.of, (sp.Add, sp.MatAdd))
                                                     if not is_compose(expr.of) else
                                                     r"\left(%s\right)" % self._print(expr.of),
                                                     self._print(expr.wrt))

    def _print_Partial2(self, expr):
        a, b = expr.args[1:]
        below = r"\partial %s^{2}" % self._paren(a) if a == b else \
            r"\partial %s \, \partial %s" % (self._print(a), self._print(b))
        return r"\frac{\partial^{2} %s}{%s}" % (self._paren(expr.of, (sp.Add, sp.MatAdd)), below)

    def _print_Grad(self, expr):
        return r"\nabla_{%s} %s" % (self._print(expr.args[1]), self._print(expr.args[0]))

    def _print_Hess(self, expr):
        return r"\nabla^{2}_{%s} %s" % (self._print(expr.args[1]), self._print(expr.args[0]))

    def _print_Vec(self, expr):
        arg = expr.args[0]
        inner = self._nota.vector(arg.name).tex() if isinstance(arg, sp.Symbol) else \
            self._print(arg)
        return r"\operatorname{vec}[%s]" % inner

    def _print_Chain(self, expr, sep=" "):
        shapes = self._chain_shapes
        self._chain_shapes = None
        parts = self._underbraced([self._paren(a) for a in expr.args], shapes)
        if shapes and parts[0].startswith(r"\underbrace") and sep == " ":
            sep = r" \, "  # room between the shapes underneath
        return sep.join(parts)

    def _underbraced(self, parts, shapes):
        """Each factor with its shape underneath, when there is one shape per factor."""
        if shapes and len(shapes) == len(parts) and self._settings["show_shapes"] \
                and self._settings["shape_style"] == "underbrace":
            return [r"\underbrace{%s}_{%d \times %d}" % (p, r, c)
                    for p, (r, c) in zip(parts, shapes)]
        return parts

    def _print_Factors(self, expr):  # factors side by side with a dot
        return self._print_Chain(expr, r" \cdot ")

    def _print_Note(self, expr):
        return r"\text{%s}" % self._words(expr._text)

    def _words(self, text: str) -> str:
        """Words with the names of the derivation being printed (else the settings') as math."""
        names = self._names or (self._settings["vectors"], self._settings["scalars"])
        return words(text, self._nota, *names)


# an upright name of several letters (a user's cls, reg) after another or after a number, one
# space apart: TeX drops the space between control sequences, so \mathrm{cls} \mathrm{cls}^{\top}
# read "clscls⊤" and 2 \mathrm{cls}_{1} "2cls₁" (issue 13). Single letters are italic, never matched.
_RUN_TOGETHER = re.compile(r"(\\mathrm\{[^{}]{2,}\}\}?(?:\^\{[^{}]*\}|_\{[^{}]*\})*|(?<![\w}.])[0-9.]+)"
                           r" (?=(?:\\boldsymbol\{)?\\mathrm\{[^{}]{2,}\})")


def juxtaposed(tex: str) -> str:
    """A printed product with a thin space where its factors would run together: before an upright
    name of several letters that follows another such name or a number."""
    return _RUN_TOGETHER.sub(r"\1 \\, ", tex)


def _inverse_root(expr) -> str | None:
    r"""\frac{1}{\sqrt{n}} for the number 1/√n, which SymPy keeps as √n/n: the attention scale
    1/√d_k as the notes write it and its Jacobians print it (issue 13: \frac{\sqrt{2}}{2} on
    one line, a division by \sqrt{2} on another). None for any other expression."""
    n = inverse_root(expr)
    return r"\frac{1}{\sqrt{%s}}" % n if n else None


_OWN = {name[len("_print_"):]: fn for name, fn in vars(NotesLatexPrinter).items()
        if name.startswith("_print_")}


def raised(base: str, sup: str) -> str:
    """base^{sup}, with a base that ends in a superscript in parentheses: (𝐖^{(1)})^{-1}."""
    return attach(base, "^", sup)


def _named_like_a_gradient(e) -> bool:
    """A user's value named g_… or G_… that is no gradient: the notation would set it as the g of
    something (𝐠 with a subscript), so it is written as the plain name it is. Gradients are
    known by their type (Cotangent), never by their name."""
    return isinstance(e, sp.MatrixSymbol) and not isinstance(e, Cotangent) and \
        e.name[:2] in ("g_", "G_")


def to_latex(derivation: Derivation, notation="slides", **settings) -> str:
    """A derivation as an ``aligned`` block (math mode, no delimiters) in the notes' notation."""
    return NotesLatexPrinter({"notation": notation, **settings}).doprint_derivation(derivation)


def notebook_latex(derivation: Derivation, notation="slides", **settings) -> str:
    """``Derivation._repr_latex_``: the block as inline display math for Jupyter, whose MathJax
    (or KaTeX) shows text-mode escapes as typed, so its text groups are made portable
    (:func:`~symgrad.printing.names.portable_math`; pdflatex still takes it)."""
    return "$\\displaystyle " + portable_math(to_latex(derivation, notation, **settings)) + "$"


def latex(expr, notation="slides", **settings) -> str:
    """One expression (or display node) in the notes' notation."""
    return NotesLatexPrinter({"notation": notation, **settings}).doprint(expr)


def words_latex(text: str, notation="slides", vectors=(), scalars=()) -> str:
    """A sentence with a little Unicode math, as LaTeX text with inline math."""
    return words(text, names.notation(notation), vectors, scalars)


__all__ += ["words_latex", "names_in", "text_escape"]
