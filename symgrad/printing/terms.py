"""Terms and factors in the order the notes write them, and the helpers that join them.

Where it sits: print. ``symgrad.latex`` prints a sum as the notes do, weights times inputs first and
the bias last (w₁x₁ + w₂x₂ + b₁, ŷ = w₅h₁ + w₆h₂ + b₃), and a product with its weight first (w₅h₁).
Which symbol is a weight or a bias is read off its name (the engines' naming: w5, W1_12, b3).
"""
from __future__ import annotations

import re

import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixElement

from symgrad.core.derivation import Chain, Compose, Derivation, Factors

# the roles of scalar parameters, by name: the element engine's numbering and position naming
WEIGHT = re.compile(r"[wW]\d+(_\d+)?")
BIAS = re.compile(r"b\d+(_\d+)?")


def _is(pattern, e) -> bool:
    if isinstance(e, sp.Symbol):
        return bool(pattern.fullmatch(e.name))
    if isinstance(e, MatrixElement):
        return isinstance(e.parent, sp.MatrixSymbol) and bool(pattern.fullmatch(e.parent.name))
    return False


def notes_order(terms) -> list:
    """Terms with a weight in them first, a lone bias last; the rest keep SymPy's order."""
    terms = list(terms)
    if not any(_is(BIAS, t) or _has_weight(t) for t in terms):
        return terms
    return sorted(terms, key=lambda t: 0 if _has_weight(t) else 2 if _is(BIAS, t) else 1)


def _has_weight(t) -> bool:
    return isinstance(t, sp.Mul) and any(_is(WEIGHT, f) for f in t.args)


def weights_first(expr):
    """(sign, coefficient, factors) of a product of a weight and other plain factors, weight
    first; None when SymPy's own order should stand."""
    coeff, factors = expr.as_coeff_mul()
    if len(factors) < 2 or not any(_is(WEIGHT, f) for f in factors) \
            or _is(WEIGHT, factors[0]) or any(isinstance(f, sp.Add) for f in factors):
        return None
    sign = ""
    if coeff < 0:
        sign, coeff = "-", -coeff
    ordered = [f for f in factors if _is(WEIGHT, f)] + [f for f in factors if not _is(WEIGHT, f)]
    return sign, coeff, ordered


def is_compose(e) -> bool:
    return isinstance(e, Compose)


def factor_count(e) -> int:
    return len(e.args) if isinstance(e, (Chain, Factors)) else 1


def negative(e) -> bool:
    if isinstance(e, sp.MatMul):
        return e.as_coeff_matrices()[0].could_extract_minus_sign()
    return isinstance(e, sp.Number) and e < 0


def all_transposed(e) -> bool:
    return all(isinstance(_unsigned(t), sp.Transpose) for t in e.args)


def _unsigned(t):
    if isinstance(t, sp.MatMul):
        coeff, mats = t.as_coeff_matrices()
        if coeff == -1 and len(mats) == 1:
            return mats[0]
    return t


def _sympy_minus(t) -> bool:
    """SymPy's ``could_extract_minus_sign``, without its cost on matrices: a MatAdd asks each
    term, and a matrix product answers by building −product and running ``doit`` over it, so a
    sum nested in a product nested in a sum … was asked again at every level (16 s of a 31-block
    gated residual net's handout). A product's own answer is its leading number's sign."""
    if isinstance(t, sp.MatMul):
        c = t.args[0]
        return bool(c.is_Number and c.is_extended_negative)
    if isinstance(t, sp.MatAdd):
        neg = sum(map(_sympy_minus, t.args))
        if 2 * neg != len(t.args):  # a tie is settled by SymPy's sort keys, below
            return 2 * neg > len(t.args)
    return t.could_extract_minus_sign()


def _minus(t) -> bool:
    if isinstance(t, sp.MatMul):
        return t.as_coeff_matrices()[0].could_extract_minus_sign()
    return _sympy_minus(t) if isinstance(t, sp.Expr) else False


def positive_first(terms) -> list:
    terms = list(terms)
    if terms and _minus(terms[0]):
        return [t for t in terms if not _minus(t)] + [t for t in terms if _minus(t)]
    return terms


def negated(t):
    """−t, for a term ``_minus`` said is negative. A matrix product's −1 is taken off its
    coefficient without SymPy's ``-t``, which runs ``doit`` over the whole product: nested, once
    per level (18 s of a 31-block gated residual net's 22 s handout)."""
    if isinstance(t, sp.MatMul):
        c, mats = t.as_coeff_matrices()
        if -c == 1:
            return mats[0] if len(mats) == 1 else sp.MatMul(*mats)
        return sp.MatMul(-c, *mats)
    return -t


def term(p, t, first: bool) -> str:
    if _minus(t):
        return ("-" if first else "- ") + p._paren(negated(t), (sp.Add, sp.MatAdd))
    return p._print(t) if first else "+ " + p._print(t)


def join_terms(p, terms) -> str:
    return " ".join(term(p, t, i == 0) for i, t in enumerate(terms))


def names_in(d: Derivation) -> tuple[tuple, tuple]:
    """(MatrixSymbol names, Symbol names) that appear in a derivation's steps."""
    vectors, scalars = set(), set()
    for s in d.steps:
        for e in (s.lhs, s.rhs):
            if isinstance(e, sp.Basic):
                vectors.update(m.name for m in e.atoms(sp.MatrixSymbol))
                scalars.update(x.name for x in e.atoms(sp.Symbol) if not isinstance(x, sp.Dummy))
    # a unit known only by its δ (δ_s6_2,1, whose unit feeds nothing else shown) is still a name
    scalars.update([x[2:] for x in scalars if x.startswith("δ_")])
    scalars.update(d.meta.get("names", ()))  # names an engine wrote only in its words
    # a generated name the words name but no expression holds ("a sum passes g to z12", "the
    # part of the stack head2 fills", G_a14 = G_head2 Vᵀ): still a value, written by its role
    for name in d.meta.get("symbols", ({},))[0]:
        vectors.update((name, "g_" + name, "G_" + name))
    return tuple(sorted(vectors)), tuple(sorted(scalars))


def call_of_sum(e) -> bool:
    return isinstance(e, sp.Function) and len(e.args) == 1 and isinstance(e.args[0], sp.Add) \
        and not isinstance(e, sp.Piecewise)


# A cell that the breaker could not make narrow enough (one huge factor, a long user name) is
# scaled down by TeX, which alone knows its real width; cells that fit are left alone. Every
# scaling is written to the log ("sgfit: scaled 262.6pt to 205.3pt"): the tests hold it to 95 %.
# \sgnotebelow: a justification on a row of its own under its step (in an align*, after a \\),
# right-aligned, #1 wide; it claims no column, so it widens none. \sglhs: a left-hand side too wide
# for its column, on a row of its own above its "= …".
FIT_MACRO = r"""\usepackage{graphicx}
\newsavebox{\sgbox}
\newcommand{\sgfit}[2]{\savebox{\sgbox}{$\displaystyle #2$}%
  \ifdim\wd\sgbox>#1\typeout{sgfit: scaled \the\wd\sgbox\space to \the\dimexpr#1\relax}%
  \resizebox{#1}{!}{\usebox{\sgbox}}\else\usebox{\sgbox}\fi}
\newcommand{\sglhs}[1]{\noalign{\hbox{\sgfit{\linewidth}{#1}}\nobreak}}
\newcommand{\sgnotebelow}[2]{\noalign{\nobreak\vskip-1pt\hbox to\linewidth{\hfill
  \parbox[t]{#1}{\raggedright\footnotesize #2}}\nobreak\vskip2pt}}
"""
