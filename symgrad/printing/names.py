"""Names and words in the notes' notation: how symbol names and justifications become LaTeX.

Where it sits: derive → print (→ handout). The LaTeX printer (``symgrad.latex``) asks a
:class:`Notation` how to write every name it meets (W1 → 𝐖^{(1)} in the CS/DS 541 slides, Ẇ in the
feature-discovery notes), and :func:`words` turns a step's justification, written in words with a
little Unicode math ("g ← W2ᵀ g"), into text with inline math in the same notation. A name that is not
recognised is escaped character by character, so no user-chosen name can inject TeX.
:func:`text_name` is the same table for the text format (yhat → ŷ, x1 → x₁): a name is only
matched against patterns, never evaluated.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace

import sympy as sp
from sympy.printing.conventions import split_super_sub
from sympy.printing.latex import greek_letters_set, translate as _sympy_translate

# -- escaping -------------------------------------------------------------------------------------
_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
             "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
             "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
             "|": r"\textbar{}", '"': "''",
             # the same glyphs in TeX, but no Markdown link can form: a node named
             # [a](javascript:alert(3)) became 390 javascript: links in a rendered handout
             "[": "{[}", "]": "{]}", "`": r"\textasciigrave{}"}
# Unicode the engines write in justifications, as math.
UNICODE_MATH = {"→": r"\to", "←": r"\leftarrow", "∘": r"\circ", "∂": r"\partial", "ᵀ": r"^{\top}",
                "⊙": r"\odot", "×": r"\times", "·": r"\cdot", "σ": r"\sigma", "∇": r"\nabla",
                "Σ": r"\sum", "≤": r"\le", "≥": r"\ge", "ŷ": r"\hat{y}", "λ": r"\lambda",
                "Ω": r"\Omega", "θ": r"\theta", "π": r"\pi", "⊗": r"\otimes", "≐": r"\doteq",
                "∈": r"\in", "δ": r"\delta", "ε": r"\epsilon", "≠": r"\ne", "′": "'", "−": "-",
                "…": r"\ldots", "ℓ": r"\ell", "½": r"\tfrac{1}{2}", "‖": r"\|", "²": "^{2}",
                "⊘": r"\oslash", "∑": r"\sum", "α": r"\alpha", "β": r"\beta", "γ": r"\gamma",
                "η": r"\eta", "μ": r"\mu", "ρ": r"\rho", "τ": r"\tau", "φ": r"\phi", "ψ": r"\psi",
                "ω": r"\omega", "Π": r"\Pi", "Δ": r"\Delta", "∞": r"\infty", "√": r"\surd", "≈": r"\approx",
                "⇒": r"\Rightarrow", "⟹": r"\implies", "↦": r"\mapsto", "𝟙": r"\mathbf{1}", "𝟏": r"\mathbf{1}",
                # matrix calculus: ⟨G, dX⟩, X⁻¹, Aᵏ, Aⁱ, aᵖ (superscripts join the atom before)
                "⟨": r"\langle", "⟩": r"\rangle", "⁻": "^{-}", "¹": "^{1}", "ᵏ": "^{k}",
                "ⁱ": "^{i}", "ᵖ": "^{p}", "⁰": "^{0}", "³": "^{3}", "⁴": "^{4}", "⁵": "^{5}",
                "⁶": "^{6}", "⁷": "^{7}", "⁸": "^{8}", "⁹": "^{9}"}
# "…" is \ldots, not \dots: amsmath's \dots reads the token after it, and a \boldsymbol there
# (a vector of a name of several letters, "hc") stopped pdflatex with "Missing } inserted"


def text_escape(text: str) -> str:
    """Plain text safe for a LaTeX text group: specials escaped, no control characters, and
    non-ASCII reduced to ASCII (accents dropped) or '?', so plain pdflatex always compiles it."""
    out = []
    for c in str(text):
        if c in _SPECIALS:
            out.append(_SPECIALS[c])
        elif c in "\n\r\t\f\v":
            out.append(" ")
        elif ord(c) < 32 or ord(c) == 127:
            out.append("?")
        elif ord(c) < 128:
            out.append(c)
        else:
            plain = unicodedata.normalize("NFKD", c).encode("ascii", "ignore").decode()
            out.append(text_escape(plain) if plain else "?")
    return re.sub(r" {2,}", " ", "".join(out))


# -- math for browsers ----------------------------------------------------------------------------
# MathJax's \text{} knows no macros without its textmacros extension: \text{a\_b} shows "a\_b",
# \text{\textit{x}} shows "\textit{x}", {[} shows its braces; KaTeX knows no \textasciigrave.
# portable_math rewrites every text group of a math string so that KaTeX, MathJax and pdflatex
# show the same thing: each text-mode escape leaves the text group for its math-mode glyph
# (\text{a}{\_}\text{b}), a nested \textit or \textbf stands on its own (both take it in math),
# TeX's quotes `` and '' become ". For Markdown (fullwidth=True) an escape becomes a look-alike
# full-width character inside the text instead: a \$, \_ or [ there would be read by Markdown.
_MATH_GLYPH = {r"\textbackslash": r"\backslash", r"\textasciitilde": r"\tilde{}",
               r"\textasciicircum": r"\hat{}", r"\textless": "<", r"\textgreater": ">",
               r"\textbar": r"\vert", r"\textasciigrave": r"\grave{}"}
FULLWIDTH = {r"\textbackslash": "＼", r"\textasciicircum": "＾", r"\textasciitilde": "～",
             r"\textless": "＜", r"\textgreater": "＞", r"\textbar": "｜",
             r"\textasciigrave": "｀", r"\$": "＄", r"\&": "＆", r"\%": "％", r"\#": "＃",
             r"\_": "＿", r"\{": "｛", r"\}": "｝", "[": "［", "]": "］"}
_TEXT_CMDS = {r"\text": "text", r"\textrm": "text", r"\textit": "textit", r"\emph": "textit",
              r"\textbf": "textbf"}
_CONTROL = re.compile(r"\\(?:[A-Za-z]+|.)", re.S)


def _group(tex: str, i: int) -> tuple[str, int]:
    """The inside of the {group} that opens at tex[i], and the index after it."""
    depth, j = 0, i
    while j < len(tex):
        c = tex[j]
        if c == "\\":
            j += 2
            continue
        depth += (c == "{") - (c == "}")
        j += 1
        if depth == 0:
            return tex[i + 1:j - 1], j
    return tex[i + 1:], len(tex)


def portable_math(tex: str, fullwidth: bool = False) -> str:
    """Math for KaTeX and MathJax as they come (and still for pdflatex): see above."""
    out, i = [], 0
    while i < len(tex):
        m = _CONTROL.match(tex, i)
        if m and m.group(0) in _TEXT_CMDS and tex[m.end():m.end() + 1] == "{":
            inner, i = _group(tex, m.end())
            out.append(_portable_text(_TEXT_CMDS[m.group(0)], inner, fullwidth))
        elif m:
            out.append(m.group(0))
            i = m.end()
        else:
            out.append(tex[i])
            i += 1
    return "".join(out)


def _portable_text(cmd: str, text: str, fullwidth: bool) -> str:
    pieces, buf, k = [], [], 0

    def flush():
        if buf:
            pieces.append(r"\%s{%s}" % (cmd, "".join(buf)))
            buf.clear()

    while k < len(text):
        c = text[k]
        if c == "$":  # math inside the text: both renderers take it; its own text groups too
            end = k + 1
            while end < len(text) and text[end] != "$":
                end += 2 if text[end] == "\\" else 1
            buf.append("$%s$" % portable_math(text[k + 1:end], fullwidth))
            k = end + 1
        elif c == "\\":
            m = _CONTROL.match(text, k)
            name, k = m.group(0), m.end()
            if name in _TEXT_CMDS and text[k:k + 1] == "{":
                flush()
                inner, k = _group(text, k)
                pieces.append(_portable_text(_TEXT_CMDS[name], inner, fullwidth))
                continue
            if text[k:k + 2] == "{}":
                k += 2
            if fullwidth and name in FULLWIDTH:
                buf.append(FULLWIDTH[name])
                continue
            flush()
            glyph = _MATH_GLYPH.get(name, name)
            pieces.append(glyph if name not in _MATH_GLYPH and not name[1:].isalnum()
                          and name[1:] not in "&%$#_{}" else "{%s}" % glyph)
        elif c == "{":
            inner, k = _group(text, k)
            if inner in ("[", "]"):  # {[}: text_escape's bracket, no Markdown link
                buf.append(FULLWIDTH[inner] if fullwidth else inner)
            else:
                flush()
                pieces.append(_portable_text(cmd, inner, fullwidth))
        elif text.startswith(("''", "``"), k):
            buf.append('"')
            k += 2
        else:
            buf.append(" " if c == "~" else c)
            k += 1
    flush()
    if not pieces:
        return r"\%s{}" % cmd
    return pieces[0] if len(pieces) == 1 else "{%s}" % "".join(pieces)


# -- names ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TeXName:
    """A name as base, superscript and subscript, so a transpose joins the superscript (𝐡^{(1)⊤})
    instead of stacking a second one (a TeX error)."""

    base: str
    sup: str = ""
    sub: str = ""

    def tex(self, extra_sup: str = "") -> str:
        s = self.base
        if self.sub:
            s += "_{%s}" % self.sub
        sup = self.sup + extra_sup
        return s + ("^{%s}" % sup if sup else "")

    def with_sub(self, sub: str) -> "TeXName":
        if self.sub:
            return TeXName("{%s}" % self.tex(), sub=sub)
        return replace(self, sub=sub)


SAFE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*")
SAFE_SCALAR = re.compile(r"[A-Za-z][A-Za-z0-9]*(_[A-Za-z0-9,]+)*")
_LAYERED = re.compile(r"([A-Za-z]+?)(\d+)")            # W1, z12, h3, s5
_ENTRY = re.compile(r"([A-Za-z]+?)(\d+)_(\d+(?:,\d+)?)")  # z1_2 (unit 2), W1_12 (entry 1,2), W1_1,11
_WEIGHT = re.compile(r"W\d+")                           # a layer's weight matrix
_NODE = re.compile(r"x|y|yhat|[zh]\d+")                 # a value computed for each example
_GREEK = greek_letters_set | {"lamda"}
_UNIT_OF_SUBSCRIPTED = re.compile(r"([A-Za-z][A-Za-z0-9]*_[A-Za-z0-9]+)_(\d+(?:,\d+)?)")  # f_1_2
_ACCENTS = {1: r"\dot", 2: r"\ddot", 3: r"\dddot", 4: r"\ddddot"}


def greek(name: str) -> str | None:
    """The TeX of a Greek letter's name (alpha → \\alpha, Gamma → \\Gamma), as SymPy writes it
    (its own fixed table: the name only chooses an entry); None for any other name."""
    if name.lower() not in _GREEK:
        return None
    tex = _sympy_translate(name)
    return tex if tex.startswith("\\") else None


def escaped_name(name: str, bold: bool = False) -> TeXName:
    """Any name at all, as text: the last resort, and the guard against injection."""
    return TeXName(r"\text{%s{%s}}" % (r"\textbf" if bold else r"\textit", text_escape(name)))


@dataclass(frozen=True)
class Notation:
    """How vectors, matrices and their entries are named.

    ``layer`` is "superscript" (𝐖^{(k)}, the slides) or "accent" (Ẇ, Ẅ for layers 1, 2: the
    feature-discovery notes); ``letters`` renames node letters (z → π, h → x, yhat → o);
    ``activations`` renames activations (relu → a); ``bold`` sets vectors and matrices in bold.
    """

    name: str
    layer: str = "superscript"
    bold: bool = True
    letters: tuple = ()
    activations: tuple = ()
    entry_letters: tuple = ()
    row_weights: bool = False  # the notes' row vectors (π̇ = xẆ): their Ẇ is symgrad's W1ᵀ
    example: str = ""          # a superscript on per-example values, e.g. (n): x^{(n)}, o^{(n)}
    batch: str = "n"           # the number of examples (N where n is the example's index)
    # (name, letter TeX, subscript TeX, number or 0): values written by role, not by name (a
    # handout's generated names, symgrad.graph.symbols); the letters are registered code
    symbols: tuple = ()
    # the ones vector 𝟏 bold even where vectors are not (ESL's notes write it so; an upright 1
    # is the number: its ℓ₂ = Σ y ⊙ (1 log Σ exp z − z) read as a stray factor); None: as ``bold``
    bold_ones: bool | None = None
    # a unit-by-unit handout's weights by their place (ẇ_ij, ESL's α_ml) rather than numbered in
    # order as the XOR slides' w1 … w6; None: by place in the accent notes, numbered otherwise
    by_position: bool | None = None

    def units_by_position(self) -> bool:
        return self.layer == "accent" if self.by_position is None else self.by_position

    # helpers
    def _letter(self, letter: str) -> str:
        letter = dict(self.letters).get(letter, letter)
        if letter.startswith("\\"):
            return letter
        if greek(letter):  # alpha → α, as SymPy prints the scalar alpha_12 (α₁₂) beside it
            return greek(letter)
        return text_escape(letter) if len(letter) == 1 else r"\mathrm{%s}" % text_escape(letter)

    def _bold(self, tex: str, bold: bool) -> str:
        if not bold or not self.bold:
            return tex
        return r"\boldsymbol{%s}" % tex if tex.startswith("\\") else r"\mathbf{%s}" % tex

    def _symbol(self, name: str, bold: bool, unit: bool = False) -> TeXName | None:
        """A value written by its registered symbol (x̂⁽¹⁾, W_q⁽²⁾), None for one written by name;
        ``unit``: the letter of its entries (the feature notes' ẇ_ij of Ẇ)."""
        entry = self._symbols().get(name)
        if entry is None:
            return None
        letter, sub, k = entry
        if unit:
            letter = dict(self.entry_letters).get(letter, letter)
        m = re.fullmatch(r"(\\[a-z]+)\{(.+)\}", letter)  # an accent: x̂ is \hat{𝐱}, bold inside
        if m and not greek(m.group(1)[1:]):
            base = r"%s{%s}" % (m.group(1), self._bold(self._letter(m.group(2)), bold))
        else:
            base = self._bold(self._letter(letter), bold)
        t = self._layered(base, k) if k else TeXName(base)
        return replace(t, sub=sub) if sub else t

    def __post_init__(self):  # the table as a dict once (every name printed asks it)
        object.__setattr__(self, "_by_name", {name: (letter, sub, k)
                                               for name, letter, sub, k in self.symbols})

    def _symbols(self) -> dict:
        return self._by_name

    def with_heads(self, heads) -> "Notation":
        """This notation for a network whose output heads are ``heads`` (symgrad.graph.symbols.
        output_heads); a notation that registers no names for heads writes them by name."""
        return self

    def _layered(self, base: str, k: int) -> TeXName:
        if self.layer == "accent" and k in _ACCENTS:
            return TeXName(r"%s{%s}" % (_ACCENTS[k], base))
        return TeXName(base, sup="(%d)" % k)

    def _hat(self, letter: str, bold: bool) -> TeXName | None:
        if letter not in ("yhat", "Yhat"):
            return None
        renamed = dict(self.letters).get(letter)
        if renamed:
            return TeXName(self._bold(self._letter(letter), bold))
        return TeXName(r"\hat{%s}" % self._bold(letter[0], bold))

    # the three kinds of name
    def vector(self, name: str) -> TeXName:
        """A MatrixSymbol: a node value (z1, h1, yhat, x, y), a parameter (W1, b1), a gradient
        (g_z1) or a batch matrix (Z1, G_z1)."""
        return self._per_example(name, self._vector(name, True), r"\top" if self._rowed(name)
                                 else "")

    def transposed(self, name: str) -> str:
        """The transpose of a MatrixSymbol (W1ᵀ is the notes' own Ẇ in the row convention)."""
        if self._rowed(name):
            return self._vector(name, True).tex()
        return self.vector(name).tex(r"\top")

    def _rowed(self, name: str) -> bool:
        return self.row_weights and bool(_WEIGHT.fullmatch(name))

    def _per_example(self, name: str, t: TeXName, extra: str = "") -> TeXName:
        sup = (self.example if self.example and _NODE.fullmatch(name) else "") + extra
        return replace(t, sup=t.sup + sup) if sup else t

    def _vector(self, name: str, bold: bool) -> TeXName:
        if name == "…":  # the elided blocks of a long row (derive_matrix): math, not a name
            return TeXName(r"\cdots")
        own = self._symbol(name, bold)
        if own:
            return own
        hat = self._hat(name, bold)
        if hat:
            return hat
        m = re.fullmatch(r"(.+)\[(\d+)\]", name)  # one entry of a vector, 0-based
        if m:
            return TeXName(r"\left(%s\right)" % self.vector(m.group(1)).tex(),
                           sub=str(int(m.group(2)) + 1))
        m = re.fullmatch(r"([gGyY])_(.+)", name)  # g_z1; y_cls, the target of the output cls
        if m:
            return TeXName(self._bold(m.group(1), bold), sub=self.vector(m.group(2)).tex())
        if SAFE_NAME.fullmatch(name):
            m = _LAYERED.fullmatch(name)
            if m:
                return self._layered(self._bold(self._letter(m.group(1)), bold), int(m.group(2)))
            return TeXName(self._bold(self._letter(name), bold))
        m = re.fullmatch(r"([A-Za-z][A-Za-z0-9]*)_([A-Za-z0-9]+)", name)
        if m:  # a user's f_1: the vector f with 1 below, as SymPy writes the scalar f_1
            base = self._vector(m.group(1), bold)
            if not base.sub:
                return replace(base, sub=text_escape(m.group(2)))
        return escaped_name(name, bold and self.bold)

    def entry(self, name: str, index: str) -> TeXName:
        """Entry ``index`` of the vector or matrix ``name``, a scalar: z^{(1)}_2, ẇ_{12}."""
        own = self._symbol(name, False, unit=True)
        if own:  # z⁽²⁾₃: the unit below, beside the subscript a role has (W_q: {W_q}_{ij})
            return self._per_example(name, own).with_sub(text_escape(self._row_index(name,
                                                                                     index)))
        m = _LAYERED.fullmatch(name)
        if m and SAFE_NAME.fullmatch(name):
            letter = dict(self.entry_letters).get(m.group(1), m.group(1))
            base = self._layered(self._letter(letter), int(m.group(2)))
        else:
            base = self._vector(name, False)
            if re.fullmatch(r"[A-Za-z0-9]+", base.sub) and not base.sup \
                    and re.fullmatch(r"[A-Za-z0-9,]+", index):
                # unit 2 of the user's f_1: f_{1,2}, one subscript (not {f_{1}}_{2})
                return self._per_example(name, replace(base, sub=base.sub + "," + index))
        return self._per_example(name, base).with_sub(text_escape(self._row_index(name, index)))

    def _row_index(self, name: str, index: str) -> str:
        if self._rowed(name) and re.fullmatch(r"\d\d|\d+,\d+", index):
            # ẇ_ij joins input i to feature j in the notes
            return ",".join(index.split(",")[::-1]) if "," in index else index[::-1]
        return index

    def scalar(self, name: str) -> TeXName | None:
        """A Symbol. None means "an ordinary safe name: print it as SymPy does" (x1 → x_1)."""
        if name == "ℓ":
            return TeXName(r"\ell")
        if name in ("yhat", "Yhat"):
            return self._per_example(name, self._hat(name, False))
        m = re.fullmatch(r"δ_(.+)", name)
        if m:
            inner = self.scalar(m.group(1))
            if inner is None:  # a safe name as SymPy prints it: δ_q_1,1 → δ_{q_{1,1}}
                inner = TeXName(sp.latex(sp.Symbol(m.group(1)))) if SAFE_SCALAR.fullmatch(
                    m.group(1)) else TeXName(text_escape(m.group(1)))
            return TeXName(r"\delta", sub=inner.tex())
        m = _ENTRY.fullmatch(name)
        if m:
            return self.entry(m.group(1) + m.group(2), m.group(3))
        m = _UNIT_OF_SUBSCRIPTED.fullmatch(name)
        if m:  # unit 2 of a node the user named f_1
            return self.entry(m.group(1), m.group(2))
        m = _LAYERED.fullmatch(name)
        if m and m.group(1) in ("z", "h"):  # the one unit of a layer: z2 → z^{(2)}, π̈
            return self._per_example(name, self._layered(self._letter(m.group(1)),
                                                         int(m.group(2))))
        m = re.fullmatch(r"(yhat|Yhat)_(\d+)", name)
        if m:
            return self._hat(m.group(1), False).with_sub(m.group(2))
        if name == "n" and self.batch != "n":  # the batch size, not the example's index
            return TeXName(text_escape(self.batch))
        if name in ("x", "y") and self.example:  # the one input or target of example n
            return TeXName(name, sup=self.example)
        m = re.fullmatch(r"([xy])(\d+)", name)
        if m and self.example:  # input i of example n
            return TeXName(m.group(1), sup=self.example, sub=m.group(2))
        m = re.fullmatch(r"([yY])_([A-Za-z][A-Za-z0-9]*)", name)
        if m and self._word(m.group(2)):  # y_reg, the target of the output reg (one unit):
            return self._vector(name, False)  # as its vector y_{reg} and entries {y_{cls}}_1 are
        if SAFE_SCALAR.fullmatch(name):
            return self._word(name)
        if len(name) == 1 and name in UNICODE_MATH:
            return TeXName(UNICODE_MATH[name])
        m = re.fullmatch(r"(.)_([A-Za-z0-9]+)", name)
        if m and m.group(1) in UNICODE_MATH:  # σ_z1: a Greek letter with a node's name below
            sub = self.vector(m.group(2)).tex() if SAFE_NAME.fullmatch(m.group(2)) else \
                text_escape(m.group(2))
            return TeXName(UNICODE_MATH[m.group(1)], sub=sub)
        return escaped_name(name)

    def _word(self, name: str) -> TeXName | None:
        """A safe scalar whose letters are a word (cls, reg_1, cls_2): upright as one name,
        \\mathrm{cls}_{2}. SymPy sets them in italics, which reads as a product c·l·s. None (SymPy
        prints it) for one letter (x_1, w10) and for the names SymPy gives a meaning: a Greek
        letter (alpha_1 → α₁) or an accent (xbar → x̄)."""
        base, sups, subs = split_super_sub(name)
        if len(base) < 2 or not base.isalpha() or _sympy_translate(base) != base:
            return None
        # sub- and superscripts as SymPy joins them, each part printed as a name of its own
        parts = [" ".join(self._part(p) for p in ps) for ps in (subs, sups)]
        return TeXName(r"\mathrm{%s}" % text_escape(base), sub=parts[0], sup=parts[1])

    def _part(self, part: str) -> str:
        word = self._word(part) if SAFE_NAME.fullmatch(part) else None
        return word.tex() if word else sp.latex(sp.Symbol(part)) if SAFE_SCALAR.fullmatch(
            part) else text_escape(part)

    def activation(self, label: str) -> str | None:
        """The notation's own name for an activation (relu → a in the feature notes), or None."""
        return dict(self.activations).get(label)


def with_symbols(nota: Notation, table: dict, names=()) -> Notation:
    """``nota`` writing the values of ``table`` ({name: (letter, subscript, number)},
    symgrad.graph.symbols) by their symbols. Two values must never print alike: an entry whose
    symbol another of ``names`` (or of the table) already prints as is left out, and that value
    keeps its name."""
    table = dict(table)
    while True:
        nota2 = replace(nota, symbols=tuple((n, *v) for n, v in table.items()))
        seen, clash = {}, set()
        for name in list(dict.fromkeys([*table, *names])):
            tex = nota2.vector(name).tex()
            if tex in seen:
                clash.update({name, seen[tex]} & set(table))
            seen.setdefault(tex, name)
        if not clash:
            return nota2
        for name in clash:
            del table[name]


NOTATIONS: dict[str, Notation] = {}  # the presets by name: to_latex, handouts and the CLI read it


def register_notation(preset: Notation, replace: bool = False) -> Notation:
    """Add a notation preset, usable by name everywhere a notation is chosen (``to_latex(d,
    notation=...)``, ``handout(..., notation=...)``, ``symgrad handout --notation``); a name
    already registered is refused unless ``replace``."""
    if not isinstance(preset, Notation) or not preset.name:
        raise TypeError("register_notation: give a named Notation, e.g. Notation('mine', ...)")
    if preset.name in NOTATIONS and not replace:
        raise TypeError(f"register_notation: {preset.name!r} is already registered (replace=True "
                        "replaces it)")
    NOTATIONS[preset.name] = preset
    return preset


register_notation(Notation("slides"))  # CS/DS 541: 𝐖^{(k)}, 𝐳, 𝐡, ŷ
register_notation(Notation("feature", layer="accent", bold=False,  # the feature-discovery notes
                           letters=(("z", r"\pi"), ("Z", r"\Pi"), ("h", "x"), ("H", "X"),
                                    ("yhat", "o"), ("Yhat", "O")),
                           activations=(("relu", "a"), ("relu'", "a'")),
                           entry_letters=(("W", "w"), ("z", r"\pi"), ("h", "x")),
                           row_weights=True, example="(n)", batch="N"))


def notation(spec) -> Notation:
    if isinstance(spec, Notation):
        return spec
    try:
        return NOTATIONS[spec]
    except KeyError:
        raise ValueError(f"notation must be one of {', '.join(NOTATIONS)}, not {spec!r}") from None


# -- names in text --------------------------------------------------------------------------------
# The text format (TextPrinter, symgrad.printing.text) shows names as a student writes them in a
# terminal: yhat as ŷ, x1 as x₁, the unit z1_2 as z₁,₂, g_z2 as g_z₂. A name is data: it is only
# ever matched against these patterns, never evaluated; one that matches none prints as it is.
SUBSCRIPT = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")
_HATS = {"yhat": "ŷ", "Yhat": "Ŷ"}
GREEK_TEXT = {"alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "eta": "η",
              "theta": "θ", "lambda": "λ", "lamda": "λ", "mu": "μ", "rho": "ρ", "sigma": "σ",
              "tau": "τ", "phi": "φ", "psi": "ψ", "omega": "ω"}
# functions shown by a glyph in text (the LaTeX printer has its own, from the registrations)
FUNCTION_TEXT = {"sigmoid": "σ"}


def text_name(name: str, unicode: bool = True) -> str:
    """A symbol's name as the text format shows it: ``yhat`` → ŷ, ``x1`` → x₁, ``W1`` → W₁,
    ``z1_2`` → z₁,₂ (layer 1, unit 2), ``yhat_2`` → ŷ₂, ``g_z2`` → g_z₂, ``lambda`` → λ; any other
    name as it is. ``unicode=False``: every name as it is (x1, yhat), for ASCII-only terminals."""
    if not unicode:
        return name
    if name in _HATS:
        return _HATS[name]
    m = re.fullmatch(r"(yhat|Yhat)_(\d+)", name)
    if m:
        return _HATS[m.group(1)] + m.group(2).translate(SUBSCRIPT)
    m = re.fullmatch(r"([gG])_([A-Za-z].*)", name)  # a gradient named by its node: g_z2, G_h1
    if m:
        return f"{m.group(1)}_{text_name(m.group(2))}"
    m = _ENTRY.fullmatch(name)
    if m:
        letters, layer, unit = m.groups()
        return (_HATS.get(letters, letters) + layer.translate(SUBSCRIPT) + ","
                + unit.translate(SUBSCRIPT))
    m = _LAYERED.fullmatch(name)
    if m:
        return _HATS.get(m.group(1), m.group(1)) + m.group(2).translate(SUBSCRIPT)
    return GREEK_TEXT.get(name, name)


# A registered letter's TeX in text (symgrad.graph.ops' Symbol letters, code, never a user's text):
# an accent as its combining mark (\hat{x} → x̂), a Greek letter by its glyph; ASCII by name.
_TEXT_ACCENTS = {"hat": "\u0302", "tilde": "\u0303", "bar": "\u0304", "dot": "\u0307"}


def _letter_text(tex: str, unicode: bool) -> str:
    m = re.fullmatch(r"\\([a-z]+)\{(.+)\}", tex)
    if m and m.group(1) in _TEXT_ACCENTS:  # x̂; ŷ precomposed, as text_name writes yhat
        inner = _letter_text(m.group(2), unicode)
        if not unicode:
            return inner + m.group(1)
        return unicodedata.normalize("NFC", inner + _TEXT_ACCENTS[m.group(1)])
    if tex.startswith("\\mathrm{d}"):  # the batch program's d of a parameter: dγ
        return "d" + _letter_text(tex[len("\\mathrm{d}"):], unicode)
    if tex.startswith("\\"):
        word = tex[1:]
        return GREEK_TEXT.get(word, word) if unicode else word
    return tex


def text_symbols(table: dict, names=(), unicode: bool = True) -> dict:
    """{name: its text} for the values of ``table`` (symgrad.graph.symbols) that keep their symbol
    (:func:`with_symbols` decides, as it does for LaTeX): the handout's r⁽¹⁾, x̂⁽²⁾, W_q⁽¹⁾ in the
    text format (ASCII: r^(1), xhat^(2), W_q^(1)), the number up as the LaTeX writes it."""
    kept = with_symbols(Notation("text"), table, names).symbols
    out = {}
    for name, letter, sub, k in kept:
        t = _letter_text(letter, unicode) + ("_" + sub if sub else "")
        if k:
            t += "⁽%s⁾" % str(k).translate(SUPERSCRIPT) if unicode else "^(%d)" % k
        out[name] = t
    return out


# the engines' words in ASCII (TextPrinter's unicode=False): what the words' glyphs read as
ASCII_WORDS = {"ŷ": "yhat", "Ŷ": "Yhat", "−": "-", "½": "1/2", "‖": "||", "²": "^2", "³": "^3",
               "ᵀ": "'", "′": "'", "″": "''", "∂": "d", "Σ": "sum", "∇": "grad", "⊙": ".*",
               "⊗": " kron ", "·": "*", "×": "x", "≤": "<=", "≥": ">=", "≠": "!=", "←": "<-",
               "→": "->", "≐": ":=", "…": "...", "⟨": "<", "⟩": ">", "𝟏": "1", "√": "sqrt",
               "ℓ": "l", "⁻¹": "^-1", "∘": "o"}


_SUPER_ASCII = dict(zip("ᵖᵏⁱⁿ⁻⁺⁰¹²³⁴⁵⁶⁷⁸⁹", "pkin-+0123456789"))
_SUPER_RUN = re.compile("[%s]+" % "".join(_SUPER_ASCII))


def _caret(m) -> str:
    run = "".join(_SUPER_ASCII[c] for c in m.group())
    return "^" + run if len(run) == 1 or run == "-1" else "^(%s)" % run


def ascii_words(text: str) -> str:
    """``text`` in ASCII: the glyphs above, Greek letters by name (δ → delta), sub- and
    superscript digits as digits (x₁ → x1); anything else left is a ?."""
    import unicodedata
    # a run of superscripts is an exponent: zᵖ⁻¹ → z^(p-1), not "zp^-1" (each glyph alone read
    # as its letter, the power rule printed (zp)' = p zp^-1)
    text = _SUPER_RUN.sub(_caret, text)
    for glyph, plain in ASCII_WORDS.items():
        text = text.replace(glyph, plain)
    out = []
    for ch in text:
        if ch.isascii():
            out.append(ch)
            continue
        name = unicodedata.name(ch, "")
        if name.startswith(("GREEK SMALL LETTER ", "GREEK CAPITAL LETTER ")):
            word = name.split(" LETTER ")[1].lower()
            out.append(word if "SMALL" in name else word.capitalize())
        else:
            plain = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
            out.append(plain or "?")
    return "".join(out)


def function_text(label: str, unicode: bool = True) -> str:
    """A function's name (or its derivative's, ``relu'``) in text: sigmoid → σ, sigmoid' → σ′,
    relu' → relu′; ASCII as it is."""
    if not unicode:
        return label
    base, primes = re.fullmatch(r"(.*?)('*)", label).groups()
    return FUNCTION_TEXT.get(base, base) + "′" * len(primes)


# The index level's subscripts and primes: printing/indexed writes entries with them and the
# text printer turns a justification's words into them, so they live below both.
_SUB = dict(zip("0123456789aehijklmnoprstuvx+-=()",
                "₀₁₂₃₄₅₆₇₈₉ₐₑₕᵢⱼₖₗₘₙₒₚᵣₛₜᵤᵥₓ₊₋₌₍₎"))
_PRIMES = {1: "′", 2: "″", 3: "‴"}

# the index level's words in the text format: the engine writes R_i, m', δ_ki, z_0i (LaTeX's
# words make them R_{i}, m', \delta_{ki}); the text writes them as its body does, Rᵢ, m′, δₖᵢ
_WORD_ENTRY = re.compile(r"(?<![A-Za-z0-9_])([A-Za-zα-ω])_([a-z0-9]{1,3})(?![A-Za-z0-9_])")
_WORD_PRIME = re.compile(r"(?<![A-Za-z0-9_])([a-z])('+)(?![A-Za-z0-9_'(])")


def index_words(text: str) -> str:
    """A justification's single-letter entries and primed indices in Unicode (R_i → Rᵢ,
    δ_ki → δₖᵢ, m' → m′); a subscript with a letter Unicode lacks stays as written."""
    text = _WORD_ENTRY.sub(lambda m: m.group(1) + "".join(_SUB[c] for c in m.group(2))
                           if all(c in _SUB for c in m.group(2)) else m.group(0), text)
    return _WORD_PRIME.sub(lambda m: m.group(1) + _PRIMES.get(len(m.group(2)),
                                                              "′" * len(m.group(2))), text)
