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
    """``s`` cut before each top-level ⊙, ⊗ or · and before each top-level \\left( or \\left[
    that follows something (a product's factors): where a row with no sum at its top may break."""
    pieces, depth, start, i = [], 0, 0, 0
    while i < len(s):
        c = s[i]
        if c == "\\":
            m = re.match(r"\\([A-Za-z]+|.)", s[i:])
            name = m.group(1)
            if depth == 0 and (name in ("odot", "otimes", "cdot") or name == "left" and
                               s[i + 5:i + 6] in "([") and s[start:i].strip() and not re.search(
                    r"(=|\\leftarrow|\\odot|\\otimes|\\cdot|\\frac\{[^{}]*\}\{[^{}]*\}|,|&)\s*$",
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
    """``s`` as rows of at most ``budget`` estimated characters, broken between top-level terms
    (one row if it fits or has no such place)."""
    if tex_width(s) <= budget:
        return [s]
    rows: list[str] = []
    # between terms first; a term still too long, between its factors
    pieces = [f for t in split_terms(s) for f in (split_factors(t) if tex_width(t) > budget
                                                  else [t])]
    for p in pieces:
        if rows and tex_width(rows[-1] + " " + p) <= budget:
            rows[-1] += " " + p
        else:
            rows.append(p)
    return rows
