"""How wide a piece of LaTeX math will print, roughly, in characters: for breaking long rows.

Where it sits: print. The printer (``symgrad.latex``) measures each row it is about to emit and breaks
sums and chains that would run off the page; this reads the LaTeX it produced, so it works for every
kind of expression alike. Fractions count their wider part, matrices the sum of their widest columns,
scripts a little over half.
"""
from __future__ import annotations

import re

_GROUP_CMDS = {"text", "textbf", "textit", "operatorname", "mathrm", "mathbf", "boldsymbol",
               "hat", "dot", "ddot", "dddot", "ddddot", "mathbb", "underbrace", "mathit",
               "overline", "tilde", "bar", "vec", "widehat", "mathcal"}
_SKIP_ONE = {"left", "right", "bigl", "bigr", "Bigl", "Bigr", "big", "Big", "biggl", "biggr"}
_SPACE = {"quad": 2.0, "qquad": 4.0, ",": 0.3, ";": 0.5, ":": 0.4, "!": -0.2, " ": 0.4}
_WIDE = {"cdot", "odot", "otimes", "circ", "times", "to", "leftarrow", "le", "ge", "ne", "doteq",
         "in", "approx", "Rightarrow", "implies", "mapsto", "oslash"}
_MATRICES = {"matrix", "bmatrix", "pmatrix", "array", "cases", "aligned"}
# Glyphs wider than a letter, measured with \settowidth in 11-pt Computer Modern: \& 8.4 pt,
# \% and \# 9.0 pt against an italic x's 5.1 pt (a user's name "x_&%#_1" was estimated 40 pt short
# in a row of four of them); a \cdots between two letters adds 16.4 pt, 2.6 letters of 6.3 pt.
_WIDE_GLYPHS = {"&": 1.7, "%": 1.75, "#": 1.75, "cdots": 2.4, "ldots": 2.4, "dots": 2.4}


def tex_width(s: str) -> float:
    """Estimated printed width of math-mode LaTeX ``s``, in characters of the body font."""
    return _seq(s, 0)[0]


def _seq(s: str, i: int, stop: str = "}") -> tuple[float, int]:
    w = 0.0
    while i < len(s):
        c = s[i]
        if c == stop:
            return w, i + 1
        if c == "{":
            gw, i = _seq(s, i + 1)
            w += gw
        elif c in "^_":
            gw, i = _atom(s, i + 1)
            w += 0.65 * gw
        elif c == "\\":
            cw, i = _command(s, i)
            w += cw
        elif c in "+-=<>":
            w, i = w + 2.1, i + 1
        elif c.isupper():
            w, i = w + 1.35, i + 1
        elif c == ",":
            w, i = w + 0.6, i + 1
        elif c.isspace() or c == "&":
            i += 1
        else:
            w, i = w + 1.0, i + 1
    return w, i


def _atom(s: str, i: int) -> tuple[float, int]:
    """One argument: a {group}, a command, or a character."""
    while i < len(s) and s[i].isspace():
        i += 1
    if i >= len(s):
        return 0.0, i
    if s[i] == "{":
        return _seq(s, i + 1)
    if s[i] == "\\":
        return _command(s, i)
    return 1.0, i + 1


def _command(s: str, i: int) -> tuple[float, int]:
    m = re.match(r"\\([A-Za-z]+|.)", s[i:])
    if not m:
        return 0.0, i + 1
    name, i = m.group(1), i + len(m.group(0))
    if name in ("frac", "tfrac", "dfrac"):
        a, i = _atom(s, i)
        b, i = _atom(s, i)
        return max(a, b) * (0.75 if name == "tfrac" else 1.0) + 0.4, i
    if name in _SKIP_ONE:
        if s[i:i + 1] == "\\":
            m2 = re.match(r"\\([A-Za-z]+|.)", s[i:])
            return 0.5, i + len(m2.group(0))
        return 0.5, i + 1
    if name == "begin":
        env = re.match(r"\{(\w+\*?)\}", s[i:])
        if env and env.group(1) in _MATRICES:
            end = s.find(r"\end{%s}" % env.group(1), i)
            end = len(s) if end < 0 else end
            body = s[i + len(env.group(0)):end]
            return _grid(body, env.group(1)), end + len(r"\end{%s}" % env.group(1))
        return 0.0, i + (len(env.group(0)) if env else 0)
    if name in ("text", "textbf", "textit"):
        # \text{\textbf{…}} (a user's name) counted 0.85 twice: 105 pt of a 60-pt estimate
        gw, j = _atom(s, i)
        return gw * {"text": 0.85, "textbf": 1.15, "textit": 1.0}[name], j
    if name == "underbrace":
        gw, j = _atom(s, i)
        while j < len(s) and s[j].isspace():
            j += 1
        if s[j:j + 1] == "_":
            lw, j = _atom(s, j + 1)
            gw = max(gw, 0.75 * lw)
        return gw + 0.6, j
    if name in _GROUP_CMDS:
        gw, j = _atom(s, i)
        if name == "operatorname":
            gw = 0.8 * gw + 0.3
        return gw, j
    if name in _SPACE:
        return _SPACE[name], i
    if name in ("parbox", "underbrace"):
        return 0.0, i
    if name in _WIDE:
        return 1.8, i
    if name in _WIDE_GLYPHS:
        return _WIDE_GLYPHS[name], i
    if name in ("sum", "prod"):
        return 1.6, i
    if name in ("log", "exp", "sin", "cos", "tan", "tanh", "max", "min", "det"):
        return len(name) + 0.3, i
    if name in ("textbackslash", "textasciicircum", "textasciitilde", "textless", "textgreater"):
        return 0.8, i + (2 if s[i:i + 2] == "{}" else 0)
    return 1.0, i


def _grid(body: str, env: str) -> float:
    """Sum over the columns of each column's widest entry (with the gaps between them)."""
    if env == "array":
        body = re.sub(r"^\{[^}]*\}", "", body)
    rows = [r for r in re.split(r"\\\\", body) if r.strip()]
    cols: list[float] = []
    for row in rows:
        for j, cell in enumerate(_cells(row)):
            w = tex_width(cell)
            if j < len(cols):
                cols[j] = max(cols[j], w)
            else:
                cols.append(w)
    return sum(cols) + 1.5 * max(len(cols) - 1, 0) + 1.0


def _cells(row: str) -> list[str]:
    """Split a row at its top-level &."""
    depth, cur, out = 0, [], []
    for c in row:
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        if c == "&" and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    out.append("".join(cur))
    return out


def split_factors(s: str) -> list[str]:
    """``s`` cut before each top-level ⊙, ⊗ or ·, before each top-level \\left( or \\left[ that
    follows something (a product's factors), and before a top-level \\frac or \\underbrace set
    after a space (a chain of Jacobians ∂ℓ/∂a ∂a/∂b): where a row with no sum at its top may
    break. An index glued to its name (γ\\left[:2, :\\right]) is not cut off it."""
    pieces, depth, start, i = [], 0, 0, 0
    while i < len(s):
        c = s[i]
        if c == "\\":
            m = re.match(r"\\([A-Za-z]+|.)", s[i:])
            name = m.group(1)
            cut = (name in ("odot", "otimes", "cdot")
                   or name == "left" and s[i + 5:i + 6] in "([" and not (
                       s[i + 5:i + 6] == "[" and i and not s[i - 1].isspace())
                   or name in ("frac", "underbrace") and i and s[i - 1].isspace())
            if depth == 0 and cut and s[start:i].strip() and not re.search(
                    r"(=|\\leftarrow|\\odot|\\otimes|\\cdot|\\frac\{[^{}]*\}\{[^{}]*\}|[-+,&])\s*$",
                    s[start:i]):
                pieces.append(s[start:i].rstrip())
                start = i
            depth += name == "left"
            depth -= name == "right"
            i += len(m.group(0))
            continue
        if c in "{([":
            depth += 1
        elif c in "})]":
            depth -= 1
        i += 1
    pieces.append(s[start:].strip())
    return [p for p in pieces if p]


def split_terms(s: str) -> list[str]:
    """Math-mode LaTeX ``s`` cut before each + and − between terms at its top level (outside
    braces, brackets and \\left…\\right), each piece after the first starting with its sign: the
    places a row written as text (a handout's own rows, an algorithm line) may break."""
    pieces, depth, start, i = [], 0, 0, 0
    while i < len(s):
        c = s[i]
        if c == "\\":
            m = re.match(r"\\([A-Za-z]+|.)", s[i:])
            name = m.group(1)
            depth += name == "left"
            depth -= name == "right"
            i += len(m.group(0))
            continue
        if c in "{([":
            depth += 1
        elif c in "})]":
            depth -= 1
        elif c in "+-" and depth == 0 and s[start:i].strip() and not re.search(
                r"(=|\\leftarrow|[-+(,&]|\\quad)\s*$", s[start:i]):
            pieces.append(s[start:i].rstrip())
            start = i
        i += 1
    pieces.append(s[start:].strip())
    return [p for p in pieces if p]


def break_terms(s: str, budget: float) -> list[str]:
    """``s`` as rows of at most ``budget`` estimated characters, broken between top-level terms,
    then between a long term's factors, then inside a long factor's parentheses (one row if it
    fits or has no such place)."""
    if tex_width(s) <= budget:
        return [s]
    pieces: list[str] = []
    for t in split_terms(s):
        for f in (split_factors(t) if tex_width(t) > budget else [t]):
            pieces.extend(break_inside(f, budget) if tex_width(f) > budget else [f])
    rows: list[str] = []
    for p in pieces:
        if rows and tex_width(rows[-1] + " " + p) <= budget:
            rows[-1] += " " + p
        else:
            rows.append(p)
    return rows


_DELIM = r"\\[A-Za-z]+|\\.|."


def break_inside(s: str, budget: float) -> list[str]:
    """A factor too long for a row, ``prefix \\left( inner \\right) suffix`` (the gated net's
    layer norm, a softsign's derivative in a user's long names), as rows whose inner sum or product
    is broken between its terms or factors: ``prefix \\left( … \\right.``, ``\\left. … \\right.``,
    ``\\left. … \\right) suffix``, each row's delimiters sized to its own content. ``[s]`` when
    there is no outer pair or its inside has no place to break."""
    for open_at, inner_at, opener, close_at, end, closer in sorted(
            _outer_pairs(s), key=lambda q: -tex_width(s[q[1]:q[3]])):
        prefix, inner, suffix = s[:open_at], s[inner_at:close_at], s[end:]
        if re.search(r"\\begin|(?<!\\)&|\\\\", inner):  # a matrix's rows and columns stay whole
            continue
        rows = _inner_rows(prefix, inner, suffix, budget)
        if len(rows) > 1:
            out = [r"%s\left%s %s \right." % (prefix, opener, rows[0])]
            out += [r"\left. %s \right." % r for r in rows[1:-1]]
            out.append(r"\left. %s \right%s%s" % (rows[-1], closer, suffix))
            return out
    return [s]


def _outer_pairs(s: str) -> list[tuple]:
    """Each \\left…\\right pair of ``s`` outside every brace group and every other pair:
    (start, inner start, opening delimiter, inner end, end, closing delimiter)."""
    pairs, depth, braces, i, cur = [], 0, 0, 0, None
    while i < len(s):
        m = re.match(r"\\([A-Za-z]+|.)", s[i:]) if s[i] == "\\" else None
        if m and m.group(1) in ("left", "right"):
            j = i + len(m.group(0))
            j += len(s[j:]) - len(s[j:].lstrip())
            d = re.match(_DELIM, s[j:])
            end = j + len(d.group(0)) if d else j
            if m.group(1) == "left":
                if depth == 0 and braces == 0:
                    cur = (i, end, d.group(0) if d else ".")
                depth += 1
            else:
                depth -= 1
                if depth == 0 and braces == 0 and cur:
                    pairs.append((*cur, i, end, d.group(0) if d else "."))
                    cur = None
            i = end
            continue
        if s[i] == "{":
            braces += 1
        elif s[i] == "}":
            braces -= 1
        i += len(m.group(0)) if m else 1
    return pairs


def _inner_rows(prefix: str, inner: str, suffix: str, budget: float) -> list[str]:
    # the delimiters and what stands beside them take part of each row
    spare = budget - max(tex_width(prefix), tex_width(suffix)) - 1.0
    return break_terms(inner.strip(), spare) if spare > 4 else [inner]
