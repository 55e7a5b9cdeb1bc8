"""The ESL notation preset and the printer of general-index expressions (the index level).

Where it sits: printing, beside :mod:`.names` (whose :class:`Notation` and ``register_notation``
it uses) and :mod:`.latex` (whose printer meets the index level's display nodes,
:class:`symgrad.derive.indexed.IndexExpr`, and asks them to print themselves). Importing this
module registers two things, as a registration point and nothing more: the ``esl`` preset
(Elements of Statistical Learning §11.4, seed 004 of the notes: α the hidden weights and α_0m
their biases, β the output weights and β_0k theirs, z_mi the hidden units, T_ki the outputs'
pre-activations, f_k(x_i) the outputs, R the cost), and the printers IndexExpr calls.

An index expression holds canonical IndexedBases (x, y, W1, b1, W2, b2, h1, z2, yhat, delta, s,
R); each notation writes them in its own letters and index order: ESL's x_il, y_ik, α_ml, β_km,
z_mi, T_ki, δ_ki, s_mi; the feature notes' ẇ_ij (input i to unit j: symgrad's W1 transposed),
π̇, ẋ, o and ⁽ⁿ⁾; the slides' W^{(1)}_{jl}, h^{(1)(i)}_j, ŷ^{(i)}_k.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.str import StrPrinter

from symgrad.derive.indexed import IndexExpr, act_kind
from symgrad.graph.activations import ACTIVATIONS
from symgrad.printing.names import (_PRIMES, _SUB, NOTATIONS, Notation, TeXName, function_text,
                                    register_notation, text_escape, text_name)
from symgrad.printing.text import TextPrinter, _enclosed, mean_of_sum


# -- the preset ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NamedNotation(Notation):
    """A notation that names whole values (W1 → α, b1 → α_0, h1 → z) rather than letters:
    ``names`` pairs a symgrad name with (TeX base, subscript prefix); others as ``Notation``."""

    names: tuple = ()
    scalars: tuple = ()  # whole scalar names: the cost f → R, ŷ → f
    # a network of several outputs: how each head's layer is written, (role, (TeX base,
    # subscript prefix)) for the roles of symgrad.graph.symbols.output_heads, the head's number
    # above (ESL's β, β_0, T for every head: β⁽²⁾); ``head_of`` is one network's, (name, role,
    # head number), set by :meth:`with_heads`
    heads: tuple = ()
    head_of: tuple = ()

    def __post_init__(self):
        super().__post_init__()
        roles = dict(self.heads)
        object.__setattr__(self, "_heads", {name: (*roles[role], k) for name, role, k
                                            in self.head_of if role in roles})

    def with_heads(self, heads) -> "NamedNotation":
        """This notation writing the heads of one network (output_heads: [{role: name}], the
        batch matrix of a head's pre-activation as role "batch pre"); unchanged for one head."""
        if len(heads) < 2 or not self.heads:
            return self
        return replace(self, head_of=tuple((name, role, k) for k, head in enumerate(heads, 1)
                                           for role, name in head.items()))

    def _named(self, name: str):
        """(base, subscript prefix, head number or None) of a name the notation names."""
        if name in self._heads:
            return self._heads[name]
        hit = dict(self.names).get(name)
        return (*hit, None) if hit else None

    def _vector(self, name: str, bold: bool):
        hit = self._named(name)
        if hit is None and name[:1] == "d" and name in self._symbols():
            hit = self._named(name[1:])  # a generated gradient's batch form: dα, dβ⁽²⁾ (was dW⁽¹⁾)
            hit = hit and (r"\mathrm{d}" + hit[0], *hit[1:])
        if hit:
            base, pre, k = hit
            return TeXName(self._bold(base, bold), sub=pre, sup="(%d)" % k if k else "")
        return super()._vector(name, bold)

    def scalar(self, name: str):
        hit = dict(self.scalars).get(name)
        if hit:
            return TeXName(hit)
        return super().scalar(name)

    def entry(self, name: str, index: str):
        hit = self._named(name)
        if hit:
            base, pre, k = hit
            return TeXName(base, sub=pre + text_escape(index), sup="(%d)" % k if k else "")
        return super().entry(name, index)


ESL = register_notation(NamedNotation(
    "esl", bold=False, bold_ones=True, by_position=True,  # α_ml unit by unit, as ESL, not w7
    names=(("W1", (r"\alpha", "")), ("b1", (r"\alpha", "0")), ("W2", (r"\beta", "")),
           ("b2", (r"\beta", "0")), ("h1", ("z", "")), ("z2", ("T", "")), ("yhat", ("f", "")),
           ("Yhat", ("F", "")), ("H1", ("Z", "")), ("Z2", ("T", "")),
           # ESL's z_m = σ(α_0m + α_mᵀx) is the activation, and it has no letter for the
           # pre-activation: v (not z⁽¹⁾, which read as a second z beside z = relu(z⁽¹⁾))
           ("z1", ("v", "")), ("Z1", ("V", ""))),
    scalars=(("f", "R"), ("yhat", "f")),
    # ESL's K outputs are f_k = g_k(T_k), T_k = β_0k + β_kᵀz: every head of a multi-task net is
    # a β, β_0 and T of its own, numbered (issue 13: the second head printed W⁽³⁾, b⁽³⁾, z⁽³⁾,
    # and z is ESL's hidden layer)
    heads=(("weight", (r"\beta", "")), ("bias", (r"\beta", "0")), ("pre", ("T", "")),
           ("batch pre", ("T", ""))),
    activations=(("sigmoid", r"\sigma"), ("sigmoid'", r"\sigma'"))), replace=True)


# -- general-index expressions ---------------------------------------------------------------------------
def _j(*idx) -> str:
    return "".join(idx)


# per notation: label → TeX of its entry given the indices' TeX (in the canonical order: x[i, l],
# y[i, k], W1[m, l], b1[m], W2[k, m], b2[k], h1[m, i], z1[m, i], z2[k, i], yhat[k, i],
# delta[k, i], s[m, i], R[i])
ENTRIES = {
    "esl": {"x": lambda i, l: "x_{%s}" % _j(i, l), "y": lambda i, k: "y_{%s}" % _j(i, k),
            "W1": lambda m, l: r"\alpha_{%s}" % _j(m, l), "b1": lambda m: r"\alpha_{0%s}" % m,
            "W2": lambda k, m: r"\beta_{%s}" % _j(k, m), "b2": lambda k: r"\beta_{0%s}" % k,
            "h1": lambda m, i: "z_{%s}" % _j(m, i), "z2": lambda k, i: "T_{%s}" % _j(k, i),
            "yhat": lambda k, i: "f_{%s}(x_{%s})" % (k, i),
            "delta": lambda k, i: r"\delta_{%s}" % _j(k, i),
            "s": lambda m, i: "s_{%s}" % _j(m, i), "R": lambda i: "R_{%s}" % i},
    "feature": {"x": lambda n, i: "x^{(%s)}_{%s}" % (n, i),
                "y": lambda n, k: "y^{(%s)}_{%s}" % (n, k),
                "W1": lambda j, i: r"\dot{w}_{%s}" % _j(i, j), "b1": lambda j: r"\dot{b}_{%s}" % j,
                "W2": lambda k, j: r"\ddot{w}_{%s}" % _j(j, k), "b2": lambda k: r"\ddot{b}_{%s}" % k,
                "h1": lambda j, n: r"\dot{x}^{(%s)}_{%s}" % (n, j),
                "z1": lambda j, n: r"\dot{\pi}^{(%s)}_{%s}" % (n, j),
                "z2": lambda k, n: r"\ddot{\pi}^{(%s)}_{%s}" % (n, k),
                "yhat": lambda k, n: "o^{(%s)}_{%s}" % (n, k),
                "delta": lambda k, n: r"\ddot{\delta}^{(%s)}_{%s}" % (n, k),
                "s": lambda j, n: r"\dot{\delta}^{(%s)}_{%s}" % (n, j),
                "R": lambda n: r"\ell^{(%s)}" % n},
    "slides": {"x": lambda i, l: "x^{(%s)}_{%s}" % (i, l), "y": lambda i, k: "y^{(%s)}_{%s}" % (i, k),
               "W1": lambda j, l: "W^{(1)}_{%s}" % _j(j, l), "b1": lambda j: "b^{(1)}_{%s}" % j,
               "W2": lambda k, j: "W^{(2)}_{%s}" % _j(k, j), "b2": lambda k: "b^{(2)}_{%s}" % k,
               "h1": lambda j, i: "h^{(1)(%s)}_{%s}" % (i, j),
               "z1": lambda j, i: "z^{(1)(%s)}_{%s}" % (i, j),
               "z2": lambda k, i: "z^{(2)(%s)}_{%s}" % (i, k),
               "yhat": lambda k, i: r"\hat{y}^{(%s)}_{%s}" % (i, k),
               "delta": lambda k, i: r"\delta^{(2)(%s)}_{%s}" % (i, k),
               "s": lambda j, i: r"\delta^{(1)(%s)}_{%s}" % (i, j),
               "R": lambda i: r"\ell^{(%s)}" % i}}
SIZES_TEX = {"esl": {"N": "N", "K": "K", "M": "M", "p": "p", "R": "R"},
             "other": {"N": "n", "K": "d_{2}", "M": "d_{1}", "p": "d_{0}", "R": "f"}}


class IndexLatexPrinter(LatexPrinter):
    """General-index expressions in one notation (``settings['notation']``, a Notation)."""

    _default_settings = {**LatexPrinter._default_settings, "notation": None, "whole": False,
                         "layers": 2}

    def __init__(self, settings=None):
        super().__init__(settings)
        nota = self._settings["notation"]
        self._nota = nota
        self._key = nota.name if nota is not None and nota.name in ENTRIES else "slides"
        # ESL's α, β name one hidden layer: a deeper net keeps ESL's R_i, δ_ki, s_mi, N and
        # letters, its layers written W⁽ˡ⁾_ml, h⁽ˡ⁾_mi as the text format writes them (the two
        # formats of one derivation agree; the CLI says so on stderr). The feature notes'
        # dots name one hidden layer too: a deeper net there is in the slides' W⁽ˡ⁾.
        self._deep_esl = self._key == "esl" and self._settings["layers"] > 2
        if self._settings["layers"] > 2 and not self._deep_esl:
            self._key = "slides"

    # names
    def _print_Symbol(self, expr, style="plain"):
        sizes = SIZES_TEX["esl" if self._key == "esl" else "other"]
        layers = self._settings["layers"]
        if layers > 2 and re.fullmatch(r"M\d+|K", expr.name):  # d_1 … d_L, a layer's width
            return "d_{%s}" % (expr.name[1:] or layers)
        if expr.name in sizes:
            return sizes[expr.name]
        name = expr.name
        base = name.rstrip("'")
        if len(base) == 1 and base.isalpha():
            return base + "'" * (len(name) - len(base))
        return r"\text{%s}" % text_escape(name)

    def _print_Indexed(self, expr):
        label = expr.base.label.name
        idx = [self._print(i) for i in expr.indices]
        if self._deep_esl:
            return self._deep_esl_entry(label, idx)
        if label == "z1" and self._key == "esl":  # ESL has no name for it: v, as the handout
            return "v_{%s}" % _j(*idx)
        fn = ENTRIES[self._key].get(label)
        layered = _LAYER.fullmatch(label)
        if self._key == "slides" and self._settings["layers"] > 2 and (
                layered or label == "delta"):  # any layer's, as the slides write layers 1 and 2
            base, n = layered.groups() if layered else ("s", str(self._settings["layers"]))
            if base == "W":
                return "W^{(%s)}_{%s}" % (n, _j(*idx))
            if base == "b":
                return "b^{(%s)}_{%s}" % (n, idx[0])
            sym = {"h": "h", "z": "z", "s": r"\delta"}.get(base, base)
            return "%s^{(%s)(%s)}_{%s}" % (sym, n, idx[1], idx[0])
        return fn(*idx) if fn else r"\text{%s}_{%s}" % (text_escape(label), ",".join(idx))

    def _deep_esl_entry(self, label, idx):
        """A deeper net's entry under esl, as the text format writes it: W⁽ˡ⁾_ml, b⁽ˡ⁾_m,
        h⁽ˡ⁾_mi, s⁽ˡ⁾_mi, ŷ_ki, and ESL's δ_ki, R_i, x_li, y_ki (the unit, then the example)."""
        layered = _LAYER.fullmatch(label)
        if layered and layered.group(1) in ("W", "b", "h", "z", "s"):
            return "%s^{(%s)}_{%s}" % (layered.group(1), layered.group(2), _j(*idx))
        if label in _UNIT_FIRST:
            idx = idx[::-1]
        base = {"yhat": r"\hat{y}", "delta": r"\delta"}.get(label)
        if base is None and label in ("x", "y", "R"):
            base = label
        if base is None:
            return r"\text{%s}_{%s}" % (text_escape(label), ",".join(idx))
        return "%s_{%s}" % (base, _j(*idx))

    def _print_KroneckerDelta(self, expr, exp=None):  # δ is ESL's output error: Iverson's bracket
        return r"[%s = %s]" % (self._print(expr.args[0]), self._print(expr.args[1]))

    def _act_name(self, kind, name, k=None):
        prime = kind.endswith("'")
        if kind.startswith("oact") and self._key == "esl" and not self._deep_esl:
            return "g_{%s}%s" % (self._print(k), "'" if prime else "")
        own = self._nota.activation(name + ("'" if prime else "")) if self._nota else None
        if own:
            return own
        act = ACTIVATIONS.get(name)
        if act is None:
            return r"\operatorname{%s}%s" % (text_escape(name), "'" if prime else "")
        return act.prime_latex if prime else act.latex

    def _print_Function(self, expr, exp=None):
        kind = act_kind(expr)
        if kind is None:
            return super()._print_Function(expr, exp)
        k, args = (expr.args[0], expr.args[1:]) if kind[0].startswith("oact") else (None,
                                                                                   expr.args)
        return r"%s\left(%s\right)" % (self._act_name(*kind, k), self._print(args[0]))

    def _print_Derivative(self, expr):
        return r"\frac{\partial %s}{\partial %s}" % (self._print(expr.expr),
                                                     self._print(expr.variables[0]))

    # sums, products
    def _print_Add(self, expr, order=None):
        pre = self._pre_activation(expr)
        if pre is not None:
            return pre
        terms = sorted(expr.args, key=lambda t: (t.could_extract_minus_sign(), str(t)))
        out = self._print(terms[0])
        for t in terms[1:]:
            if t.could_extract_minus_sign():
                out += " - " + self._term(-t)
            else:
                out += " + " + self._term(t)
        return out

    def _term(self, t):
        return self._print(t)

    @staticmethod
    def _pre_parts(expr):
        """(bias, Σ) of b + Σ W·h, a pre-activation, else None."""
        if len(expr.args) != 2:
            return None
        bias = next((a for a in expr.args if isinstance(a, sp.Indexed)), None)
        total = next((a for a in expr.args if isinstance(a, sp.Sum)), None)
        if bias is None or total is None or not re.fullmatch(r"b\d+", bias.base.label.name):
            return None
        return bias, total

    def _pre_activation(self, expr):
        """b + Σ W·h (a pre-activation): ESL's α_0m + α_mᵀx_i, or its unit's name elsewhere."""
        parts = self._pre_parts(expr)
        if parts is None:
            return None
        bias, total = parts
        unit, example = self._dot_parts(total)
        if unit is None:
            return None
        if self._key != "esl" and not self._settings["whole"]:
            name = "z" + bias.base.label.name[1:]
            return self._print(sp.IndexedBase(name)[unit, example])
        return "%s + %s" % (self._print(bias), self._print(total))

    @staticmethod
    def _dot_parts(total):
        """(row index, example index) of Σ_v W[r, v] u[·, v] or None."""
        if len(total.limits) != 1 or not isinstance(total.function, sp.Mul):
            return None, None
        v = total.limits[0][0]
        parts = [a for a in total.function.args if isinstance(a, sp.Indexed)]
        if len(parts) != 2 or len(total.function.args) != 2:
            return None, None
        w = next((a for a in parts if re.fullmatch(r"W\d+", a.base.label.name)), None)
        u = next((a for a in parts if a is not w), None)
        if w is None or u is None or w.indices[1] != v or \
                not re.fullmatch(r"x|h\d+", u.base.label.name):
            return None, None
        ex = [i for i in u.indices if i != v]
        return (w.indices[0], ex[0]) if len(ex) == 1 else (None, None)

    def _print_Sum(self, expr):
        if self._key == "esl" and not self._deep_esl and len(expr.limits) == 1:
            unit, example = self._dot_parts(expr)
            if unit is not None:  # ESL's α_mᵀx_i, β_kᵀz_i
                w = next(a for a in expr.function.args if a.base.label.name in ("W1", "W2"))
                vec = {"W1": (r"\alpha", "x"), "W2": (r"\beta", "z")}[w.base.label.name]
                return r"%s_{%s}^{\top} %s_{%s}" % (vec[0], self._print(unit), vec[1],
                                                     self._print(example))
        v, lo, hi = expr.limits[0]
        body = self._print(expr.function)
        if isinstance(expr.function, sp.Add):
            body = r"\left(%s\right)" % body
        return r"\sum_{%s=%s}^{%s} %s" % (self._print(v), self._print(lo), self._print(hi), body)

    def _print_Mul(self, expr):
        factors = []

        def flat(e):
            for a in e.args:
                (flat(a) if isinstance(a, sp.Mul) else factors.append(a))

        flat(expr)
        coeff = sp.Integer(1)
        rest = []
        for f in factors:
            if f.is_number:
                coeff *= f
            else:
                rest.append(f)
        rest.sort(key=self._rank)
        num = [f for f in rest if not (isinstance(f, sp.Pow) and f.exp.is_negative)]
        den = [1 / f for f in rest if isinstance(f, sp.Pow) and f.exp.is_negative]
        parts = []
        for f in num:
            s = self._print(f)
            parts.append(r"\left(%s\right)" % s if isinstance(f, sp.Add) else s)
        body = " ".join(parts) or "1"
        sign = "- " if coeff < 0 else ""
        coeff = abs(coeff)
        if coeff.q != 1 or den:
            d = " ".join([self._print(coeff.q)] * (coeff.q != 1) + [self._print(f) for f in den])
            return sign + r"\frac{%s}{%s} %s" % (self._print(coeff.p) if coeff.p != 1 else "1",
                                                   d, body)
        return sign + (self._print(coeff) + " " if coeff != 1 else "") + body

    _ORDER = ("Derivative", "Add", "KroneckerDelta", "oact'", "W2", "delta", "s", "hact'", "Sum", "b1",
              "h1", "x", "yhat", "y")

    def _rank(self, f):
        if isinstance(f, sp.Derivative):
            key = "Derivative"
        elif isinstance(f, sp.Indexed):
            key = f.base.label.name
        elif act_kind(f):
            key = act_kind(f)[0]
        else:
            key = type(f).__name__
        return self._ORDER.index(key) if key in self._ORDER else len(self._ORDER)

    def _print_Pow(self, expr):
        if expr.exp == 2 and isinstance(expr.base, sp.Add):
            return r"\left(%s\right)^{2}" % self._print(expr.base)
        return super()._print_Pow(expr)


class IndexStrPrinter(StrPrinter):
    """Plain text: W1[m, l], hact'[sigmoid](…) named by the activation: sigmoid'(…)."""

    def _print_Function(self, expr):
        kind = act_kind(expr)
        if kind is None:
            return super()._print_Function(expr)
        args = expr.args[1:] if kind[0].startswith("oact") else expr.args
        name = kind[1] + ("'" if kind[0].endswith("'") else "")
        return "%s(%s)" % (name, self._print(args[0]))


# Unicode's subscript letters (no b c d f g q w y z): an index with one of those, or a name with
# no subscript form, is written _{…}
_SUP = dict(zip("0123456789+-()", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁽⁾"))
_LAYER = re.compile(r"([A-Za-z]+?)(\d+)")  # W1, b3, h2, z1, s2
# the text's glyph per canonical base (ASCII: the base as it is); an entry's indices in the order
# of the notes: the unit, then the example, for data as for the network (yₖᵢ beside ŷₖᵢ)
_TEXT_BASE = {"yhat": "ŷ", "delta": "δ"}
_UNIT_FIRST = ("x", "y")  # canonical x[i, l], y[i, k]: data rows, one example a row
# ESL's letters (one hidden layer): α_ml, α_0m, β_km, β_0k, z_mi, T_ki, f_k(x_i); x_il, y_ik
_ESL_TEXT = {"W1": ("α", ""), "b1": ("α", "0"), "W2": ("β", ""), "b2": ("β", "0"), "h1": ("z", ""),
             "z2": ("T", "")}
_ESL_ASCII = {"W1": ("alpha", ""), "b1": ("alpha", "0"), "W2": ("beta", ""), "b2": ("beta", "0"),
              "h1": ("z", ""), "z2": ("T", "")}


class IndexTextPrinter(TextPrinter):
    """The text format of general-index expressions: δₖᵢ, sₘᵢ, W⁽¹⁾ₘₗ, ½(ŷₖᵢ − yₖᵢ)², Σₖ,
    [m = m′], relu′(…), products side by side; ESL's αₘₗ, βₖₘ, zₘᵢ, Tₖᵢ, fₖ(xᵢ) with
    ``notation="esl"`` on a one-hidden-layer net. ``unicode=False``: ASCII throughout (W1[m, l],
    sum_{k=1}^{K}, d R[i]/d W1[m, l], relu'), the engine's words included."""

    _default_settings = {**TextPrinter._default_settings, "whole": False, "layers": 2}
    _TEXT_FIRST = TextPrinter._TEXT_FIRST + ("Indexed",)  # not SymPy's own x[i, l]

    @property
    def _esl(self) -> bool:
        return self._settings.get("notation") == "esl" and self._settings["layers"] == 2

    # names
    def _index(self, e) -> str:
        """An index as a string: m, l′ (ASCII l'), 1."""
        if isinstance(e, sp.Symbol):
            base = e.name.rstrip("'")
            primes = len(e.name) - len(base)
            if self._u and primes:
                return base + _PRIMES.get(primes, "′" * primes)
            return e.name
        return self._print(e)

    def _sub(self, parts) -> str:
        """Indices as subscripts (ₘₗ′), or _{…} where a letter has none (ASCII: [m, l'])."""
        texts = [self._index(p) for p in parts]
        if not self._u:
            return "[%s]" % ", ".join(texts)
        if all(len(t.rstrip("′″‴")) == 1 for t in texts) and all(
                c in _SUB or c in "′″‴" for t in texts for c in t):
            return "".join(_SUB.get(c, c) for t in texts for c in t)
        return "_{%s}" % ",".join(texts)

    def _base(self, label: str) -> str:
        """W1 → W⁽¹⁾, yhat → ŷ, delta → δ (ASCII: as it is)."""
        if not self._u:
            return label
        m = _LAYER.fullmatch(label)
        if m and m.group(1) in ("W", "b", "h", "z", "s", "M"):
            return m.group(1) + "".join(_SUP[c] for c in "(%s)" % m.group(2))
        return _TEXT_BASE.get(label, text_name(label))

    def _print_Indexed(self, expr):
        label = expr.base.label.name
        idx = list(expr.indices)
        if self._esl:
            if label in _ESL_TEXT:
                base, pre = (_ESL_TEXT if self._u else _ESL_ASCII)[label]
                if self._u:
                    return base + _SUB[pre] * bool(pre) + self._sub(idx) if pre else \
                        base + self._sub(idx)
                return base + pre + self._sub(idx)
            if label == "yhat":  # f_k(x_i)
                k, i = idx
                return "f%s(x%s)" % (self._sub([k]), self._sub([i]))
            return self._base(label) + self._sub(idx)  # ESL's own x_il, y_ik, δ_ki, s_mi
        if label in _UNIT_FIRST:
            idx = idx[::-1]
        return self._base(label) + self._sub(idx)

    def _print_Symbol(self, expr):
        if expr.is_integer and expr.name.rstrip("'") != expr.name:
            return self._index(expr)
        return super()._print_Symbol(expr)

    def _print_Function(self, expr):
        kind = act_kind(expr)
        if kind is None:
            return super()._print_Function(expr)
        (which, name), prime = kind, kind[0].endswith("'")
        args = expr.args[1:] if which.startswith("oact") else expr.args
        mark = ("′" if self._u else "'") * prime
        if which.startswith("oact") and self._esl:  # ESL's g′_k: the prime before the index,
            k = expr.args[0]                        # not gₖ′′ for output k′
            return "g%s%s(%s)" % (mark, self._sub([k]),
                                  self._print(args[0]))
        if name == "identity" and not prime:
            return self._print(args[0])
        return "%s%s(%s)" % (function_text(name, self._u), mark, self._print(args[0]))

    def _print_Derivative(self, expr):
        d = "∂" if self._u else "d"
        return "%s%s/%s%s" % (d, self._print(expr.expr), d, self._print(expr.variables[0]))

    def _print_KroneckerDelta(self, expr):
        return "[%s = %s]" % (self._index(expr.args[0]), self._index(expr.args[1]))

    # sums
    def _print_Sum(self, expr):
        v, lo, hi = expr.limits[0]
        if self._esl:
            unit, example = IndexLatexPrinter._dot_parts(expr)
            if unit is not None:  # ESL's α_mᵀx_i, β_kᵀz_i
                w = next(a for a in expr.function.args if a.base.label.name in ("W1", "W2"))
                vec = {"W1": ("α", "x", "alpha"), "W2": ("β", "z", "beta")}[w.base.label.name]
                if self._u:
                    return "%s%sᵀ%s%s" % (vec[0], self._sub([unit]), vec[1], self._sub([example]))
                return "%s[%s]'%s[%s]" % (vec[2], self._index(unit), vec[1],
                                          self._index(example))
        body = self._print(expr.function)
        if isinstance(expr.function, sp.Add):
            body = "(%s)" % body
        if self._u:  # Σₖ: the bounds are the index's range, 1 to the layer's size
            return "Σ%s %s" % (self._sub([v]), body)
        return "sum_{%s=%s}^{%s} %s" % (self._index(v), self._print(lo), self._print(hi), body)

    def _print_Add(self, expr, order=None):
        parts = IndexLatexPrinter._pre_parts(expr)
        if parts is not None:  # a pre-activation as the notes write it: the bias, then Σ
            return "%s + %s" % (self._print(parts[0]), self._print(parts[1]))
        return super()._print_Add(expr, order)

    # products: side by side, a space between indexed factors (δₖᵢ zₘᵢ), ½ and − in front
    def _print_Mul(self, expr):
        mean = mean_of_sum(expr)
        if mean:
            n, total, rest = mean
            return "(1/%s) %s" % (self._print(n), self._print(sp.Mul(total, *rest,
                                                                       evaluate=False)))
        factors = []

        def flat(e):
            for a in e.args:
                (flat(a) if isinstance(a, sp.Mul) else factors.append(a))

        flat(expr)
        coeff = sp.Mul(*[f for f in factors if f.is_number])
        rest = sorted((f for f in factors if not f.is_number), key=_rank)
        num = [f for f in rest if not (f.is_Pow and f.exp.is_negative)]
        den = [1 / f for f in rest if f.is_Pow and f.exp.is_negative]
        sign = self._minus_sign() if coeff < 0 else ""
        coeff = abs(coeff)
        top = self._factors(num)
        if coeff.q != 1 and not den and self._u and coeff.p == 1 and coeff.q == 2:
            return sign + "½" + top
        if coeff.q != 1:
            den = [sp.Integer(coeff.q)] + den
        if coeff.p != 1 or not num:
            top = self._print(sp.Integer(coeff.p)) + (" " if num and not top.startswith("(")
                                                     else "") + top if num else \
                self._print(sp.Integer(coeff.p))
        if not den:
            return sign + top
        bottom = self._factors(den)
        if (len(den) > 1 or isinstance(den[0], (sp.Add, sp.Mul))) and not _enclosed(bottom):
            bottom = "(%s)" % bottom
        if (len(num) > 1 or coeff.p != 1) and not _enclosed(top):
            top = "(%s)" % top
        return "%s%s/%s" % (sign, top, bottom)

    def _factors(self, fs) -> str:
        out = []
        for n, f in enumerate(fs):
            s = self._print(f)
            if isinstance(f, sp.Add) or (isinstance(f, sp.Sum) and n < len(fs) - 1):
                s = "(%s)" % s  # a Σ reaches to the end of its product: bracketed before it
            out.append(s)
        return " ".join(out)

    def _print_Pow(self, expr, rational=False):
        if expr.exp == -1:
            b = self._print(expr.base)
            return "1/(%s)" % b if isinstance(expr.base, (sp.Add, sp.Mul)) else "1/" + b
        return super()._print_Pow(expr, rational)


_ORDER = ("Derivative", "Add", "KroneckerDelta", "oact'", "W", "delta", "s", "hact'", "Sum",
          "b", "h", "x", "yhat", "y")


def _rank(f):
    """Where a factor goes in a product, as the notes write them: δₖᵢ zₘᵢ, σ′(…) Σₖ βₖₘ δₖᵢ,
    a weight before the unit it multiplies (W⁽¹⁾ₘₗ xₗᵢ)."""
    if isinstance(f, sp.Derivative):
        key = "Derivative"
    elif isinstance(f, sp.Indexed):
        key = f.base.label.name
        key = key.rstrip("0123456789") if key[:1] in "Wbhs" else key
    elif act_kind(f):
        key = act_kind(f)[0]
    else:
        key = type(f).__name__
    return _ORDER.index(key) if key in _ORDER else len(_ORDER)


def index_latex(expr, printer=None, whole=False, layers=2) -> str:
    nota = getattr(printer, "_nota", None) or NOTATIONS["esl"]
    return IndexLatexPrinter({"notation": nota, "whole": whole, "layers": layers}).doprint(expr)


def _latex_hook(expr, printer, whole=False, layers=2):
    return index_latex(expr, printer, whole, layers)


IndexExpr.latex_printer = staticmethod(_latex_hook)
def _text_hook(expr, printer, whole=False, layers=2):
    """The text format's printer for a TextPrinter (its unicode and notation settings), else
    SymPy's syntax for JSON."""
    if isinstance(printer, TextPrinter):
        return IndexTextPrinter({"unicode": printer._settings["unicode"],
                                 "notation": printer._settings.get("notation"), "whole": whole,
                                 "layers": layers}).doprint(expr)
    return IndexStrPrinter().doprint(expr)


IndexExpr.text_printer = staticmethod(_text_hook)

__all__ = ["ESL", "NamedNotation", "IndexLatexPrinter", "index_latex"]
