"""A derivation is data: an ordered list of step records, like a jaxpr's equations.

Where it sits: produced by the engines (calculus, network), consumed by the printers (text here, LaTeX
in symgrad.latex: ``to_latex``/``_repr_latex_`` delegate there), the simplifier and the compiler. The printed
steps and the compiled kernel read the same records, so they cannot disagree.

Steps hold SymPy objects. The display-only nodes below (``Partial``, ``Partial2``, ``Grad``,
``Hess``, ``Descent``, ``Vec``, ``Compose``, ``Chain``, ``Terms``, ``Note``) are SymPy ``Basic`` subclasses that print
themselves through SymPy's printers (``_sympystr``/``_latex``), so any printer subclass can restyle
them with ``_print_Partial`` etc.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Iterator

import sympy as sp


def _basic(obj) -> sp.Basic:
    """Wrap plain names into SymPy objects so display nodes stay SymPy trees."""
    if isinstance(obj, sp.Basic):
        return obj
    if isinstance(obj, str):
        return sp.Symbol(obj)
    if isinstance(obj, (list, tuple)):
        return sp.ImmutableMatrix(obj)
    # numbers (and SymPy's own mutable matrices) only: strict refuses text, so no user string can
    # be parsed here even if one slips past the branch above
    return sp.sympify(obj, strict=True)


# -- display nodes --------------------------------------------------------------------------------
class Partial(sp.Basic):
    """∂of/∂wrt: a Jacobian factor (or a scalar partial) as it is written before it is evaluated."""

    def __new__(cls, of, wrt):
        return sp.Basic.__new__(cls, _basic(of), _basic(wrt))

    of = property(lambda self: self.args[0])
    wrt = property(lambda self: self.args[1])

    def _sympystr(self, p):
        if isinstance(self.of, (Partial, Grad)):  # the derivative of a derivative: ∂(∂f/∂a)/∂x
            return f"∂({p._print(self.of)})/∂{grouped(p, self.wrt)}"
        return f"∂{grouped(p, self.of)}/∂{grouped(p, self.wrt)}"

    def _latex(self, p):
        if isinstance(self.of, (Partial, Grad)):
            return r"\frac{\partial}{\partial %s} \left(%s\right)" % (p._print(self.wrt),
                                                                    p._print(self.of))
        return r"\frac{\partial %s}{\partial %s}" % (p._print(self.of), p._print(self.wrt))


class Grad(sp.Basic):
    """∇_wrt of: the gradient, shaped like ``wrt``."""

    def __new__(cls, of, wrt):
        return sp.Basic.__new__(cls, _basic(of), _basic(wrt))

    def _sympystr(self, p):
        return f"∇_{grouped(p, self.args[1])} {grouped(p, self.args[0])}"

    def _latex(self, p):
        return r"\nabla_{%s} %s" % (p._print(self.args[1]), p._print(self.args[0]))


class Partial2(sp.Basic):
    """∂²of/∂a∂b: a second partial derivative (∂²of/∂a² when a is b), one entry of a Hessian."""

    def __new__(cls, of, a, b):
        return sp.Basic.__new__(cls, _basic(of), _basic(a), _basic(b))

    of = property(lambda self: self.args[0])

    def _sympystr(self, p):
        a, b = self.args[1:]
        below = f"∂{grouped(p, a)}²" if a == b else f"∂{grouped(p, a)}∂{grouped(p, b)}"
        return f"∂²{grouped(p, self.of)}/{below}"

    def _latex(self, p):
        a, b = (p._print(x) for x in self.args[1:])
        below = r"\partial %s^{2}" % a if self.args[1] == self.args[2] else \
            r"\partial %s \partial %s" % (a, b)
        return r"\frac{\partial^{2} %s}{%s}" % (p._print(self.of), below)


class Hess(sp.Basic):
    """∇²_wrt of: the Hessian, the matrix of second partial derivatives of a scalar."""

    def __new__(cls, of, wrt):
        return sp.Basic.__new__(cls, _basic(of), _basic(wrt))

    def _sympystr(self, p):
        return f"∇²_{grouped(p, self.args[1])} {grouped(p, self.args[0])}"

    def _latex(self, p):
        return r"\nabla^{2}_{%s} %s" % (p._print(self.args[1]), p._print(self.args[0]))


class Descent(sp.Basic):
    """wrt − rate ∂of/∂wrt (a scalar ``wrt``) or wrt − rate ∇_wrt of (a matrix): the new value of
    a gradient-descent step, the right-hand side of an ``UPDATE`` step (w ← w − ε ∂f/∂w)."""

    def __new__(cls, wrt, of, rate):
        return sp.Basic.__new__(cls, _basic(wrt), _basic(of), _basic(rate))

    def _derivative(self):
        wrt, of = self.args[:2]
        return Grad(of, wrt) if getattr(wrt, "is_Matrix", False) else Partial(of, wrt)

    def _sympystr(self, p):
        wrt, _, rate = self.args
        return f"{p._print(wrt)} − {grouped(p, rate)} {p._print(self._derivative())}"

    def _latex(self, p):
        wrt, _, rate = self.args
        return r"%s - %s \, %s" % (p._print(wrt), p._print(rate), p._print(self._derivative()))


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
        return " · ".join(grouped(p, a) for a in self.args)

    def _latex(self, p):
        return " ".join(p._print(a) for a in self.args)


class Terms(sp.Basic):
    """A sum written term by term, never added: ∂ℓ/∂vec[W] = ∂ℓ₁/∂vec[W] + 1/2 · ∂ℓ₂/∂vec[W]
    (``sp.Add`` refuses derivatives as terms)."""

    def __new__(cls, *terms):
        return sp.Basic.__new__(cls, *map(_basic, terms))

    def _sympystr(self, p):
        return " + ".join(p._print(a) for a in self.args)

    def _latex(self, p):
        return " + ".join(p._print(a) for a in self.args)


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

    def _latex(self, p):  # a plain LatexPrinter; symgrad.printing prints it in the notes' notation
        return r"\text{%s}" % _printing().text_escape(self._text)


class Remark(Note):
    """A sentence about the lines above ("checked … against sympy.diff"), not a value: LaTeX
    writes it with no "=" before it (the index level's check read as an equation row)."""


def grouped(printer, expr) -> str:
    """Print ``expr``, parenthesised when it is a sum or product (so ∂(f∘g)/∂x reads right)."""
    s = printer._print(expr)
    return f"({s})" if isinstance(expr, (sp.Add, sp.Mul, Compose)) else s


# -- step records ---------------------------------------------------------------------------------
class StepKind(str, enum.Enum):
    """What a step does: the key printers, handouts and layouts select steps by, never by words.

    A ``str`` enum whose values are the names steps have always had, so JSON (``to_dict``) and code
    comparing ``step.rule == "chain_rule"`` read the same as before; new code compares members
    (``s.rule is StepKind.CHAIN_RULE``). The names say what the step's right-hand side is.
    """

    PLAIN = ""                  # an equality of no particular kind (a step recorded without one)
    DEFINITION = "definition"   # names a value: f = …, z = W x, ∂J/∂z = pᵀ, T written out
    PARTIAL = "partial"         # one scalar entry ∂f_i/∂x_j of a Jacobian
    JACOBIAN = "jacobian"       # a Jacobian (or a local factor of a chain) evaluated
    TRANSPOSE = "transpose"     # a gradient as the transpose of a 1×m Jacobian
    CHAIN_RULE = "chain_rule"   # the chain rule written out factor by factor, not yet multiplied
    SUM = "sum"                 # the multivariate chain rule summing over a value's several uses
    SUBSTITUTION = "substitution"  # factors or inner functions substituted in (composition, δ's)
    PRODUCT = "product"         # factors multiplied out (Jacobians, blocks, ∂ℓ/∂vec[W] = gᵀ(I⊗hᵀ))
    BLOCK = "block"             # a matrix written as blocks (∂z/∂vec[W] block by block)
    SIMPLIFY = "simplify"       # the same value in a simpler form
    CASES = "cases"             # a value split into cases where a ReLU kinks
    AGREE = "agree"             # a derivation done several ways: the ways give the same result
    VECTORIZE = "vectorize"     # vec[W]: the entries of W row by row
    UNVECTORIZE = "unvectorize"  # ∂/∂vec[W] laid back out as ∇_W, shaped like W
    BATCH = "batch"             # one example's gradient turned into the mean over the batch
    FORWARD = "forward"         # Algorithm 6.4: a forward value (Z1 = X W1ᵀ, H1 = relu(Z1), …)
    LOSS = "loss"               # Algorithm 6.4: the mean loss over the n examples
    BACKWARD = "backward"       # a backward value: g (or δ) = ∂ℓ/∂ of a unit, from the one above
    GRADIENT = "gradient"       # Algorithm 6.4: ∇_p ℓ of one parameter, read off a g
    PENALTY = "penalty"         # ∇_W J = ∇_W ℓ + λW, the weight penalty added
    RULE = "rule"               # an elementary rule inside one partial (sum, product, chain: u = …)
    UPDATE = "update"           # a gradient-descent update, lhs ← rhs (printed with an arrow)

    # str() and f-strings give the old string, as a plain str key would have printed
    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @classmethod
    def of(cls, kind) -> "StepKind":
        """``kind`` as a member: a member itself, or the string of one (engines written before the
        enum pass "forward"); anything else fails, naming it and the kinds there are."""
        if isinstance(kind, cls):
            return kind
        try:
            return cls(kind)
        except ValueError:
            raise ValueError(f"unknown step kind {kind!r}; the kinds are "
                             f"{', '.join(repr(k.value) for k in cls)}") from None


@dataclass(frozen=True)
class Step:
    """One line of a derivation: ``lhs = rhs``, with why it holds and the shapes of its factors.

    ``lhs`` None continues the previous line's chain (``= rhs``). ``rule`` is what the step does, a
    :class:`StepKind` (a string naming one is converted); ``why`` the justification in words, for
    readers only; ``shapes`` the (rows, cols) of each factor in ``rhs``. ``method`` is the structure
    of a derivation done several ways (the f∘g example): k ≥ 1 for a step of the k-th way, 0 for a
    step shared by all of them; layouts find the ways by it, never by the words of ``why``.
    """

    lhs: sp.Basic | None
    rhs: sp.Basic
    why: str = ""
    rule: StepKind = StepKind.PLAIN
    shapes: tuple = ()
    method: int = 0
    why_latex: str = ""  # the justification as LaTeX text (math in $…$), when its engine wrote one

    def __post_init__(self):
        object.__setattr__(self, "rule", StepKind.of(self.rule))
        if not (isinstance(self.method, int) and self.method >= 0):
            raise ValueError(f"a step's method is the number of its way (1, 2, …) or 0, "
                             f"got {self.method!r}")

    def shape_text(self) -> str:
        return " · ".join(f"{r}×{c}" for r, c in self.shapes)


@dataclass
class Derivation:
    """An ordered list of steps recorded while deriving, plus the result they arrive at."""

    title: str = ""
    steps: list[Step] = field(default_factory=list)
    result: Any = None
    meta: dict = field(default_factory=dict)

    def add(self, lhs, rhs, why: str = "", rule: StepKind | str = StepKind.PLAIN, shapes=(),
            method: int = 0, why_latex: str = ""):
        """Record a step and return its right-hand side, so engines can write ``J = d.add(...)``.

        ``rule`` is a :class:`StepKind`; a string naming one is accepted (an unknown one raises
        ``ValueError``); ``method`` numbers the way of deriving the step belongs to (see ``Step``);
        ``why_latex`` the justification as LaTeX text with its math in ``$…$``, printed by the
        LaTeX layouts instead of guessing the math in ``why`` (the matrix calculus's rules).
        """
        self.steps.append(Step(None if lhs is None else _basic(lhs), _basic(rhs), why,
                               StepKind.of(rule), tuple(tuple(s) for s in shapes), method,
                               why_latex))
        return rhs

    def extend(self, other: "Derivation") -> None:
        self.steps.extend(other.steps)

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def __repr__(self) -> str:
        return f"<Derivation {self.title!r}: {len(self.steps)} steps>"

    # Printing reaches up to symgrad.printing through _printing(), the one hook (as SymPy's core
    # reaches its printers from Basic.__str__): records never import their printers at load time.
    def to_text(self, **settings) -> str:
        """The text format: Unicode math for a terminal (``unicode=False``: readable ASCII); see
        :class:`symgrad.printing.text.TextPrinter`."""
        return _printing().to_text(self, **settings)

    def __str__(self) -> str:
        return self.to_text()

    def to_latex(self, notation="slides", **settings) -> str:
        """The notes' LaTeX (an ``aligned`` block): see :func:`symgrad.printing.latex.to_latex`."""
        return _printing().to_latex(self, notation, **settings)

    def _repr_latex_(self) -> str:
        """For Jupyter: to_latex as display-style math that MathJax and KaTeX render as they
        come (see :func:`symgrad.printing.latex.notebook_latex`)."""
        return _printing().notebook_latex(self)

    def to_dict(self) -> dict:
        """A JSON-ready record of every step, with exact SymPy strings (read back by sympify, so
        matrix entries keep SymPy's 0-based ``W1[1, 0]``). A step whose ``lhs`` is None (JSON
        null) continues the previous step: it reads "= rhs", the same left-hand side."""
        return _printing().to_dict(self)


def _printing():
    """The printing layer, imported when a record is first printed: the one function-level import
    from core upward (documented in the import-graph test)."""
    import symgrad.printing
    return symgrad.printing


