"""The document model of a handout: titled sections of blocks, exercises, the names in it.

Where it sits: derive → print → **handout**. ``symgrad.handout`` (and ``handout_backward``) fill it;
``symgrad.handout_render`` turns it into an article, beamer slides or Markdown.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from symgrad.printing.names import notation as _notation


@dataclass
class Section:
    """A titled list of blocks: ("text", tex) ("math", [rows]) ("derivation", Derivation)
    ("algorithm", [(kind, tex)]) ("boxed", tex)."""

    title: str
    blocks: list = field(default_factory=list)

    def text(self, tex):
        self.blocks.append(("text", tex))

    def math(self, rows):
        self.blocks.append(("math", list(rows)))


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


def g_name(notation) -> str:
    """The backward pass's g as the notation writes vectors."""
    return r"\mathbf{g}" if _notation(notation).bold else "g"
