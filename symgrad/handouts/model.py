"""The document model of a handout: titled sections of blocks, exercises, the names in it.

Where it sits: derive → print → **handout**. ``symgrad.handout`` (and ``handout_backward``) fill it;
``symgrad.handout_render`` turns it into an article, beamer slides or Markdown.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from symgrad.derive.indexed import DEFAULT_COST
from symgrad.printing.names import notation as _notation


@dataclass
class Section:
    """A titled list of blocks: ("text", tex) ("math", [rows]) ("derivation", Derivation)
    ("whole", Derivation: on slides all at once, no click per step)
    ("algorithm", [(kind, tex)]) ("boxed", tex) ("list", [tex]: paragraphs in an article,
    a bulleted list on slides and in Markdown)."""

    title: str
    blocks: list = field(default_factory=list)

    def text(self, tex):
        self.blocks.append(("text", tex))

    def math(self, rows):
        self.blocks.append(("math", list(rows)))

    def items(self, texs):
        self.blocks.append(("list", list(texs)))


@dataclass
class Doc:
    title: str
    subtitle: str
    sections: list
    exercises: list          # [(statement tex, [blocks of the solution])]
    names: tuple             # (vectors, scalars) named in the document, for justifications
    notation: str


# How a handout names each built-in loss: (its words in the subtitle, the subscript of the cost f,
# what ℓ is for one example). Any other loss is a user's L summed over the outputs.
LOSS_NAMES = {"mse": ("squared-error", r"\text{MSE}",
                      "the squared error (halved, so its gradient is ŷ − y)"),
              "bce": ("binary cross-entropy", r"\text{BCE}",
                      "the binary cross-entropy of the sigmoid outputs"),
              "cross_entropy": ("cross-entropy", r"\text{CE}",
                                "the cross-entropy of the softmax outputs")}
CUSTOM_LOSS = ("custom", "L", "a loss of each output and its target, summed")


def loss_names(net) -> tuple:
    """(subtitle words, subscript of f, what ℓ is) for the network's loss (the first term's;
    f of several losses has no subscript: see :func:`term_names`)."""
    if net.weighted:
        return ("multi-task", "", "a weighted sum of losses, one per output")
    return LOSS_NAMES.get(net.loss.name, CUSTOM_LOSS)


def term_names(loss) -> tuple:
    """(words, subscript, what ℓ is) for one Loss, a term of several."""
    return LOSS_NAMES.get(loss.name, CUSTOM_LOSS)


def batch_tex(tex: str, notation) -> str:
    """A formula template's batch size {n} as the notation writes it: N where n is the example's
    own index (the feature notes' x^{(n)}); call it before names are put in."""
    return tex.replace("{n}", "{%s}" % _notation(notation).batch)


def cost_sums(notation) -> bool:
    """Whether the notation's notes sum the examples' losses (ESL's R(θ) = Σ_i R_i) rather than
    average them (the slides' f = (1/n) Σ_i ℓ_i): derive's DEFAULT_COST, the same table."""
    return DEFAULT_COST.get(_notation(notation).name, "mean") == "sum"


def cost_tex(tex: str, notation) -> str:
    """:func:`batch_tex` of a formula of the cost over a minibatch, written with the slides'
    1/n: the 1/n dropped where the notes sum (ESL's R = Σ_i R_i)."""
    tex = batch_tex(tex, notation)
    if cost_sums(notation):
        n = _notation(notation).batch
        for frac in (r"\frac{1}{%s} " % n, r"\tfrac{1}{%s} " % n):
            tex = tex.replace(frac, "")
    return tex


def cost_name(notation, label: str = "") -> str:
    """The cost's TeX: f_{MSE} (f of the loss's subscript) in the slides; the notation's own
    letter where it has one (ESL's R, whose f is the network's output f_k(x))."""
    own = _notation(notation).scalar("f")
    if own is not None and own.tex() != "f":
        return own.tex()
    return "f_{%s}" % label if label else "f"


def cost_word(notation) -> str:
    """How the cost gathers the examples' losses, in words: their mean or their sum."""
    return "sum" if cost_sums(notation) else "mean"


def g_name(notation) -> str:
    """The backward pass's g as the notation writes vectors."""
    return r"\mathbf{g}" if _notation(notation).bold else "g"


def value_space(net, name: str) -> str:
    """The set one example's value ``name`` lies in, as TeX, said the same everywhere: token ids
    below V at T positions {0, …, V−1}^T (the trial's tok was ℝ¹ in one place, ℝ^{4×1} in
    another), a sequence ℝ^{T×d}, an image ℝ^{C×H×W}, a vector ℝ^d."""
    node = net.nodes[name]
    V = net.tokens(name)
    if V is not None:
        # (\lbrace, not \{: the Markdown renderer reads \{ as text's escape, a full-width brace)
        ids = r"\lbrace 0, \ldots, %d \rbrace" % (V - 1) if V > 2 else \
            r"\lbrace 0, 1 \rbrace" if V == 2 else r"\lbrace 0 \rbrace"
        return ids + ("^{%d}" % node.positions if node.positions is not None else "")
    dims = node.image if node.image is not None else \
        (node.dim,) if node.positions is None else (node.positions, node.dim)
    return r"\mathbb{R}^{%s}" % r" \times ".join(map(str, dims))
