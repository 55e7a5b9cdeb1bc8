"""A step's justification, written in words with a little Unicode math ("g ← W2ᵀ g"), as LaTeX
text with the math in it as inline math in a notation's names.

Where it sits: print. ``symgrad.latex`` prints every justification through :func:`words`; the names
themselves come from ``symgrad.latex_names``. What is not recognised as math is escaped text.
"""
from __future__ import annotations

import functools
import re

import sympy as sp

from symgrad.core.primitives import PRIMITIVES
from symgrad.graph.activations import registered_activations
from symgrad.printing.names import SAFE_NAME, SAFE_SCALAR, UNICODE_MATH, Notation, TeXName, text_escape

# -- words: a justification as text with inline math -----------------------------------------------
_STOP = {"a", "A", "I", "is", "of", "in", "on", "to", "so", "by", "at", "be", "as", "or", "it",
         "and", "the", "if", "for", "each", "its", "an", "no", "not", "one", "row", "rows", "per",
         "all", "only", "then", "there", "first", "block", "blocks", "sum", "name", "path"}
# function names written as math: these, every registered primitive's (relu, sigmoid → σ, erf …)
# and every registered activation's (swish), read when a sentence is printed
_FUNCS = {"softmax": r"\operatorname{softmax}", "diag": r"\operatorname{diag}",
          "vec": r"\operatorname{vec}", "id": r"\operatorname{id}",
          "std": r"\operatorname{std}"}  # layer norm's std(h) (core.matexpr.Std)


def _functions() -> dict:
    return {**{s.name: s.latex for s in PRIMITIVES.values()},
            **{a.name: a.latex for a in registered_activations()}, **_FUNCS}
# ASCII digits: \d also takes 𝟏 (a bold digit one, as in 𝟏𝟏ᵀ), which then went out raw
_TOKEN = re.compile(r"\s+|R\^(?:\{[^{}]*\}|\w+(?:×\w+)*)|[A-Za-z][A-Za-z0-9]*|[0-9]+|<=|>=|.", re.S)
_WEAK = set("=+-*/()[]'|<>") | {"′", "−", "<=", ">="}
_WEAK_TEX = {"−": "-", "′": "'", "|": r"\mid", "<": "<", ">": ">", "<=": r"\le", ">=": r"\ge"}


@functools.lru_cache(maxsize=16)
def _name_index(vectors: tuple, scalars: tuple):
    """The names by first character, longest first: scanning every name at every position (and
    sorting them on every call) was quadratic in a deep net's handout (64 layers: 5.2 s of 8.6)."""
    by_first, scalars_by_first = {}, {}
    for v in sorted(set(vectors), key=len, reverse=True):
        by_first.setdefault(v[:1], []).append(v)
    for v in sorted((s for s in set(scalars) if "_" in s and SAFE_SCALAR.fullmatch(s)),
                    key=len, reverse=True):
        scalars_by_first.setdefault(v[:1], []).append(v)
    return by_first, frozenset(scalars), scalars_by_first


def words(text: str, nota: Notation, vectors=(), scalars=()) -> str:
    """Text for a LaTeX text group with the math in it as inline math ($…$) in ``nota``.

    ``vectors``/``scalars`` are the names of the MatrixSymbols/Symbols of the derivation: those
    words (and single letters, Unicode math, relu'(…), R^n, x_i, Wᵀ) become math; the rest is text.
    """
    by_first, scalars, scalars_by_first = _name_index(tuple(vectors), tuple(scalars))
    funcs = _functions()
    toks, pos = [], 0  # (kind, payload): 'math' TeXName-or-str, 'weak' str, 'text' str, 'space'
    while pos < len(text):
        name = next((v for v in by_first.get(text[pos], ()) if text.startswith(v, pos)
                     and _bounded(text, pos, v)), None)
        longer = name and next((v for v in scalars_by_first.get(text[pos], ()) if len(v) > len(name)
                                and text.startswith(v, pos) and _bounded(text, pos, v)), None)
        if name and not longer:  # (unit f_1_2 of the user's vector f_1 is the scalar)
            toks.append(["vec", nota.vector(name), name])
            pos += len(name)
            continue
        m = _NABLA.match(text, pos)
        nabla = m and _nabla(m.group(1), nota, vectors, scalars)
        if nabla:  # ∇_W1 ℓ, ∇_ŷ ℓ: the name below ∇ in the notation, never as typed (W1, yhat)
            toks.append(["math", nabla, m.group(0)])
            pos = m.end()
            continue
        m = re.match(r"vec\[([A-Za-z][A-Za-z0-9_]*)\]", text[pos:])
        if m:  # vec[W]: W is a matrix whatever its symbol
            toks.append(["math", r"\operatorname{vec}[%s]" % nota.vector(m.group(1)).tex(),
                         m.group(0)])
            pos += len(m.group(0))
            continue
        name = next((v for v in scalars_by_first.get(text[pos], ()) if text.startswith(v, pos)
                     and _bounded(text, pos, v)), None)
        if name:
            toks.append(["math", nota.scalar(name) or TeXName(_scalar_default(name)), name])
            pos += len(name)
            continue
        if text.startswith("'s", pos) and pos and text[pos - 1].isalpha() and \
                not text[pos + 2:pos + 3].isalnum():  # "torch's", "window's": possessive, no prime
            toks.append(["text", "'s", "'s"])
            pos += 2
            continue
        name = _delta(text, pos, scalars)
        if name:  # δ_s6_2,1, a unit's δ by its whole name
            toks.append(["math", nota.scalar(name), name])
            pos += len(name)
            continue
        if re.match(r"s\)", text[pos:]) and pos >= 2 and text[pos - 1] == "(" \
                and text[pos - 2].isalpha():  # "function(s)": a plural, not math
            toks.append(["text", text[pos], text[pos]])
            pos += 1
            continue
        m = _CARET.match(text, pos)
        if m:
            toks.append(["math", _caret(m), m.group(0)])
            pos += len(m.group(0))
            continue
        tok = _TOKEN.match(text, pos).group(0)
        pos += len(tok)
        if tok == "ŷ" and "yhat" in vectors:
            toks.append(["vec", nota.vector("yhat"), "yhat"])
            continue
        toks.append(_classify(tok, nota, scalars, toks, funcs))
    _identity_before_kron(toks, nota)
    _listed_scalars(toks, nota, scalars)
    return _join(_attach(toks, nota))


_NABLA = re.compile(r"∇_(ŷ|[A-Za-z][A-Za-z0-9]*(?:_[0-9][0-9,]*)?)(?![A-Za-z0-9_])")


def _nabla(name, nota, vectors, scalars) -> str | None:
    """\\nabla_{…} of a name the derivation knows (a vector, a scalar, ŷ), or None."""
    if name == "ŷ":
        name = "yhat"
        if name not in vectors and name not in scalars:
            return r"\nabla_{%s}" % nota.scalar(name).tex()
    if name in vectors:
        return r"\nabla_{%s}" % nota.vector(name).tex()
    if name in scalars:
        return r"\nabla_{%s}" % (nota.scalar(name) or TeXName(_scalar_default(name))).tex()
    return None


def _listed_scalars(toks, nota, scalars) -> None:
    """"(a, b)", "(x, y)": a variable in a parenthesised list of names is the variable, neither
    the article (a short English word: a, I, …) nor the vector of the same letter (𝐱)."""
    solid = [t for t in toks if t[0] != "space"]
    for k, t in enumerate(solid):
        if t[0] not in ("text", "vec") or t[2] not in scalars:
            continue
        before = solid[k - 1][2] if k else ""
        after = solid[k + 1][2] if k + 1 < len(solid) else ""
        if before in ("(", ",") and after in (",", ")"):
            t[:2] = ["math", nota.scalar(t[2]) or TeXName(_scalar_default(t[2]))]


def _delta(text, pos, scalars) -> str | None:
    """The δ of a unit (δ_h1_2, δ_s6_2,1) when the derivation has that symbol: as tokens it was
    δ, then h1 below it, then the 2 below that, and a comma ended it."""
    if not text.startswith("δ_", pos):
        return None
    # the longest δ the derivation has (δ_f_1_2 of a unit of the user's f_1 too); "feeds
    # δ_o6_2,1, δ_o6_2,2": the comma after a name is the list's
    found = [s for s in scalars if s.startswith("δ_") and text.startswith(s, pos)
             and _bounded(text, pos, s)]
    return max(found, key=len) if found else None


def _identity_before_kron(toks, nota) -> None:
    """"I ⊗ xᵀ": the identity matrix, not the English word I (which stays text elsewhere)."""
    solid = [t for t in toks if t[0] != "space"]
    for t, nxt in zip(solid, solid[1:]):
        if t[2] == "I" and nxt[2] == "⊗":
            t[:] = ["vec", nota.vector("I"), "I"]


def _bounded(text, pos, name) -> bool:
    before = text[pos - 1] if pos else " "
    after = text[pos + len(name)] if pos + len(name) < len(text) else " "
    return not ((before.isascii() and (before.isalnum() or before == "_"))
                or (after.isascii() and after.isalnum()))


def _classify(tok, nota, scalars, toks, funcs):
    if tok.isspace():
        return ["space", " ", tok]
    if tok.startswith("R^"):  # R^n, R^{n×m}, R^2×3: one superscript, ℝ^{2×3} (not ℝ^{2} × 3)
        dims = tok[2:].strip("{}").split("×")
        return ["math", r"\mathbb{R}^{%s}" % r" \times ".join(map(text_escape, dims)), tok]
    if tok in UNICODE_MATH:
        return ["math", UNICODE_MATH[tok], tok]
    if tok in _WEAK or (tok.isascii() and tok.isdigit()):
        return ["weak", _WEAK_TEX.get(tok, tok), tok]
    if tok == "_":
        return ["sub", "_", tok]
    if SAFE_NAME.fullmatch(tok):
        act = nota.activation(tok)
        if tok in funcs or act:
            return ["math", act or funcs[tok], tok]
        if tok in scalars and tok not in _STOP:
            return ["math", nota.scalar(tok) or TeXName(_scalar_default(tok)), tok]
        if tok in ("g", "G"):
            return ["vec", nota.vector(tok), tok]
        if len(tok) == 1 and tok not in _STOP:  # (n, the batch size: N in the feature notes)
            return ["math", (nota.scalar(tok) if tok == "n" else None) or TeXName(tok), tok]
    return ["text", text_escape(tok), tok]


def _scalar_default(name: str) -> str:
    """A scalar's name as the equations print it (SymPy's latex of the Symbol: alpha_12 →
    \\alpha_{12}, never alpha_{12} in the words beside \\alpha_{12}); only safe names come here."""
    if SAFE_SCALAR.fullmatch(name):
        return sp.latex(sp.Symbol(name))
    return text_escape(name)




def _attach(toks, nota):
    """Join subscripts (x_i, z1_j, δ_ij) and ᵀ/² to the atom before them."""
    out, i = [], 0
    while i < len(toks):
        kind, val, raw = toks[i]
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        if kind == "sub" and out and nxt and nxt[2].isalnum() and out[-1][0] == "text" \
                and len(out[-1][2]) == 1 and out[-1][2].isalpha():
            out[-1][:2] = ["math", TeXName(out[-1][2])]  # a_tτ: the letter, not the article
        if kind == "sub" and out and out[-1][0] in ("math", "vec") and nxt \
                and nxt[2].isalnum():
            prev = out[-1]
            greek = UNICODE_MATH.get(nxt[2])  # k_τ (attention's key position): a Greek index
            sub = greek or text_escape(nxt[2])
            more = _index_rest(toks, i + 2)  # s_tτ, h_t,i: a second index, joined
            sub += "".join(t for t, _ in more)
            i += len(more)
            rest = "".join(r for _, r in more)
            if prev[0] == "vec" and not greek and rest.isascii():
                prev[1] = nota.entry(prev[2], nxt[2] + rest)
            elif isinstance(prev[1], TeXName):
                prev[1] = prev[1].with_sub(sub)
            else:
                prev[1] = TeXName(prev[1], sub=sub)
            prev[0] = "math"
            i += 2
            continue
        if kind == "sub":
            kind, val = "text", r"\_"
        if kind in ("math", "vec") and out and out[-1][2] == "∇" and toks[i - 1][2] == "∇":
            out[-1][1] = r"\nabla_{%s}" % (val.tex() if isinstance(val, TeXName) else val)
            i += 1
            continue
        sup = raw in _SUPERSCRIPTS or raw.startswith("^∘")
        if sup and out and out[-1][0] == "text" and len(out[-1][2]) == 1 \
                and out[-1][2].isalpha():
            out[-1][:2] = ["math", TeXName(out[-1][2])]  # aᵖ: the letter, not the article
        if sup and out and out[-1][0] == "math" and isinstance(out[-1][1], str) \
                and _SUP_ONLY.fullmatch(out[-1][1]):
            out[-1][1:] = ["^{%s%s}" % (out[-1][1][2:-1], val[2:-1]), out[-1][2] + raw]
            i += 1  # (dX)ᵀ⁻¹: one superscript after a parenthesis, not ^{\top} ^{-} ^{1}
            continue
        if sup and out and isinstance(out[-1][1], TeXName):
            last = out[-1][1]
            if raw == "ᵀ" and out[-1][0] == "vec" and nota._rowed(out[-1][2]):
                out[-1][1] = TeXName(nota.transposed(out[-1][2]))  # (Ẇᵀ)ᵀ = Ẇ
            else:
                out[-1][1] = TeXName(last.base, last.sup + val[2:-1], last.sub)
            i += 1
            continue
        out.append([kind, val, raw])
        i += 1
    return out


_SUPERSCRIPTS = frozenset("ᵀ²⁻¹ᵏⁱᵖ⁰³⁴⁵⁶⁷⁸⁹")  # joined to the atom before: X⁻¹, uᵖ⁻¹, x³
_SUP_ONLY = re.compile(r"\^\{[^{}]*\}")
# X^∘p, X^∘(p−1): the entrywise power, a superscript as ᵖ is (its ^ was text, \textasciicircum{},
# which MathJax shows as typed in \text{}); any other ^ stays text, as in a user's name
_CARET = re.compile(r"\^∘([A-Za-z0-9]|\([A-Za-z0-9 +\-−]*\))")


def _caret(m) -> str:
    return r"^{\circ %s}" % " ".join(_WEAK_TEX.get(c, c) for c in m.group(1).replace(" ", ""))


def _index_rest(toks, i) -> list:
    """After a subscript's first index, the rest of it written against it: a Greek letter (s_tτ)
    or a comma and another index (h_t,i); [(TeX, raw)] per token taken."""
    out = []
    while i < len(toks):
        raw = toks[i][2]
        if len(raw) == 1 and raw in UNICODE_MATH and raw.isalpha():
            out.append((UNICODE_MATH[raw] + " ", raw))
            i += 1
        elif len(raw) == 1 and raw.isascii() and raw.isalpha() and toks[i - 1][2].isdigit():
            out.append((raw, raw))  # z_0i (ESL's bias input): the tokens split it as z_{0} i
            i += 1
        elif raw == "," and i + 1 < len(toks) and toks[i + 1][2].isalnum() \
                and toks[i + 1][2].isascii():
            out += [(",", raw), (text_escape(toks[i + 1][2]), toks[i + 1][2])]
            i += 2
        else:
            break
    return out


_OPS = {"+", "-", "=", "*", "/", "−", "<", ">", "<=", ">="}


def _operand(kind, tok) -> str:
    return "num" if kind == "weak" and tok[2].isdigit() else kind


def _join(toks) -> str:
    """Weak tokens (operators, digits, parentheses) are math when math is next to them."""
    kinds = ["math" if t[0] == "vec" else t[0] for t in toks]
    n = len(toks)
    stack, fixed = [], set()
    for i, t in enumerate(toks):  # a (…) group is math only if all inside is math: f(a, b)
        if t[2] == "(":
            stack.append(i)
        elif t[2] == ")" and stack:
            j = stack.pop()
            inner = [kinds[k] for k in range(j + 1, i)]
            mathy = "math" in inner and all(k in ("math", "weak", "space") or toks[k_][2] == ","
                                             for k_, k in zip(range(j + 1, i), inner))
            for k in (j, i):
                kinds[k] = "math" if mathy else "text"
                toks[k][0] = kinds[k]
            if mathy:
                for k in range(j + 1, i):
                    if toks[k][2] == ",":
                        kinds[k] = "math"
                        toks[k][1] = ","
            fixed.update((j, i))
    for i, k in enumerate(kinds):
        if k != "weak" or i in fixed:
            continue
        left = next((_operand(kinds[j], toks[j]) for j in range(i - 1, -1, -1)
                     if kinds[j] != "space" and not (kinds[j] == "weak" and _OPS.isdisjoint(
                         [toks[j][2]]) and not toks[j][2].isdigit())), None)
        right = next((_operand(kinds[j], toks[j]) for j in range(i + 1, n)
                      if kinds[j] != "space" and not (kinds[j] == "weak" and _OPS.isdisjoint(
                          [toks[j][2]]) and not toks[j][2].isdigit())), None)
        if toks[i][2] in _OPS:  # a binary operator: math between math (or a number) and math
            mathy = {left, right} <= {"math", "num"} and "math" in (left, right)
        else:
            mathy = "math" in (left, right)
        if mathy:
            kinds[i] = "math"
    out, run = [], []

    def flush():
        stripped = bool(run) and run[-1] == " "
        while run and run[-1] == " ":
            run.pop()
        if run:
            out.append("$%s$" % " ".join(p for p in run if p != " "))
        if stripped:
            out.append(" ")
        run.clear()

    for kind, (_, val, raw) in zip(kinds, toks):
        if kind == "math":
            run.append(val.tex() if isinstance(val, TeXName) else val)
        elif kind == "space":
            (run if run else out).append(" ")
        else:
            flush()
            out.append(text_escape(raw) if kind == "weak" or raw in "()" else val)
    flush()
    return "".join(out)
