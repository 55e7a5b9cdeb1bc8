"""Sub- and superscripts on printed LaTeX: a second ^ (or _) on a base that already has one is a
double superscript, an error in pdflatex, KaTeX and MathJax alike.

Where it sits: core (string functions only), so the nodes that print their own LaTeX (a
convolution's Σ_u W_u h_{t+u−p}, attention's [K]_{1:T}) and the notes' printer share them. A
name prints with scripts of its own (W1 is 𝐖^{(1)}, the g of z1 is 𝐠_{𝐳^{(1)}}), so a node that
writes "%s_{u}" around a printed name must ask first: ``attach(name, "_", "u")``.
"""
from __future__ import annotations

import re

_MACRO = re.compile(r"\\[A-Za-z]+$")


def ends_in_script(tex: str, mark: str) -> bool:
    """Whether ``tex`` ends, at its top level, in a script chain holding a ``mark`` ("^" or "_"):
    𝐖^{(1)}, x^2, a^{b}_{c} for "^"; 𝐠_{𝐳^{(1)}} for "_"."""
    tex = tex.rstrip()
    while tex:
        start = _last_argument(tex)
        if start is None:
            return False
        head = tex[:start].rstrip()
        if not head or head[-1] not in "^_" or _escaped(head, len(head) - 1):
            return False
        if head[-1] == mark:
            return True
        tex = head[:-1].rstrip()  # the other kind of script: one of ``mark`` may stand before it
    return False


def ends_in_superscript(tex: str) -> bool:
    return ends_in_script(tex, "^")


def attach(tex: str, mark: str, script: str) -> str:
    """tex^{script} (or _{script}), with a ``tex`` that already ends in that kind of script in
    parentheses: (𝐖^{(1)})^{-1}, (𝐆_{𝐳^{(1)}})_{n}."""
    return (r"\left(%s\right)" % tex if ends_in_script(tex, mark) else tex) + \
        "%s{%s}" % (mark, script)


def _last_argument(tex: str) -> int | None:
    """Where the last argument of a script in ``tex`` starts: a {group}, a \\macro or one
    character; None when it ends in something else (an escaped brace, a backslash)."""
    m = _MACRO.search(tex)
    if m and not _escaped(tex, m.start()):
        return m.start()
    if tex[-1] != "}":
        return len(tex) - 1 if tex[-1] not in "{\\" and not _escaped(tex, len(tex) - 1) else None
    if _escaped(tex, len(tex) - 1):
        return None
    depth = 0
    for i in range(len(tex) - 1, -1, -1):
        if tex[i] in "{}" and not _escaped(tex, i):
            depth += 1 if tex[i] == "}" else -1
            if depth == 0:
                return i
    return None


def _escaped(tex: str, i: int) -> bool:
    """Whether tex[i] follows an odd run of backslashes (\\{ is a brace, \\\\{ a group)."""
    n = 0
    while i - n - 1 >= 0 and tex[i - n - 1] == "\\":
        n += 1
    return n % 2 == 1


__all__ = ["ends_in_script", "ends_in_superscript", "attach"]
