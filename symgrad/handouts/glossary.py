"""Handouts: the words and symbols a network's handout defines where they are first used.

Where it sits: derive → print → **handout** (glossary). An instructor's trial of the attention
handout found ``normalize`` an undefined word, layer norm's standard deviation written σ(r) (read
as the sigmoid), and A, V, Q, K, e_t used without definition in mixed fonts (Q italic in one
note, 𝐆 bold beside it, q_t italic where the equations have 𝐪⁽¹⁾). :func:`definitions` is the
list the forward pass's section gives them (before the equations that first use them: after,
the article's p.1 used [k]_{1:T} and m_t defined on p.2; on slides a bulleted list);
:func:`matrix_names` and :func:`position_symbols` make the justifications write each the one way
the paragraph does: the stacked matrices bold as every matrix is (𝐐, 𝐊, 𝐕, 𝐀 as 𝐆 and 𝐖), a
value at position t bold with t below it (𝐪ₜ⁽¹⁾, 𝐠ₜ), an entry italic (a_tτ).
"""
from __future__ import annotations

from symgrad.core.matexpr import STD_TEX
from symgrad.graph.attention import ACROSS
from symgrad.handouts.diagram import _tex_num

# the letters attention's justifications write its T × d matrices with (symgrad.graph.attention:
# G_K = G_Sᵀ Q/√d_k, G_V = Aᵀ G_O), each defined in the paragraph below
STACKED = ("Q", "K", "V", "A")


def _attention(net) -> list:
    """The nodes of the ops that read every position (scores, softmax over the keys, weighted
    sum) and the values they read: the ones a note writes at a position t."""
    across = [n for n in net.nodes.values() if n.op in ACROSS]
    return list(dict.fromkeys([m for n in across for m in (n.name, *n.inputs)]))


def matrix_names(net) -> tuple:
    """The stacked matrices' letters, as names the justifications' words print bold, for a net
    with attention; () for any other (an MLP's words are as they were)."""
    return STACKED if _attention(net) else ()


def position_symbols(net, table: dict) -> dict:
    """{name_t: (letter, "t", number)}: a value of the attention at position t (q1_t, a8_t) and
    g_t, each written as its vector with t below (𝐪ₜ⁽¹⁾), not as an entry of it (q_t⁽¹⁾,
    italic, as an entry q_i is)."""
    if not _attention(net):
        return {}
    out = {"g_t": ("g", "t", None)}
    for name in _attention(net):
        letter, sub, k = table.get(name, (None, "", None))
        if letter is not None and not sub:
            out[name + "_t"] = (letter, "t", k)
    return out


def definitions(P, net) -> list[str]:
    """The definitions (TeX, one a paragraph or item) of normalize and std where a layer norm
    is, and attention's [·]_{1:T}, 𝐐, 𝐊, 𝐕, 𝐀, 𝐆, m_t and e_t where attention is; [] for a net
    with neither."""
    out = []
    norms = [n for n in net.nodes.values() if n.op == "normalize"]
    if norms:
        eps = sorted({n.attr("eps") for n in norms})
        h = r"\mathbf{h}"
        std = r"%s %s" % (STD_TEX, h)
        out.append(
            r"Here $\operatorname{normalize}(%s) = (%s - \operatorname{mean} %s) / %s$ is the "
            r"layer norm before its gain $\boldsymbol{\gamma}$ and shift $\boldsymbol{\beta}$: "
            r"for the $d$ entries $h_j$ of $%s$, $\operatorname{mean} %s = \frac{1}{d} "
            r"\sum_{j} h_{j}$, $\operatorname{var} %s = \frac{1}{d} \sum_{j} (h_{j} - "
            r"\operatorname{mean} %s)^{2}$ and $%s = \sqrt{\operatorname{var} %s + "
            r"\varepsilon}$ with $\varepsilon$ = %s: the standard deviation, a number (not the "
            r"sigmoid $\sigma$)."
            % (h, h, h, std, h, h, h, h, std, h, ", ".join(_tex_num(float(e)) for e in eps)))
    if _attention(net):
        # one definition a paragraph: as one paragraph it was slide 5's dense block of 9 lines
        out += [
            r"Attention reads every position of a sequence. $[\mathbf{k}]_{1:T}$ stacks "
            r"$\mathbf{k}$ at each of the $T$ positions as the rows of a $T \times d$ matrix "
            r"(row $\tau$ is $\mathbf{k}_{\tau}^{\top}$).",
            r"For one head: $\mathbf{Q} = [\mathbf{q}]_{1:T}$, "
            r"$\mathbf{K} = [\mathbf{k}]_{1:T}$ and $\mathbf{V} = [\mathbf{v}]_{1:T}$ are its "
            r"queries, keys and values ($T \times d_k$; row $t$ of $\mathbf{Q}$ is "
            r"$\mathbf{q}_{t}^{\top}$, the query of position $t$).",
            r"$\mathbf{A}$ is its $T \times T$ matrix of attention weights (row $t$ is "
            r"$\mathbf{a}_{t}^{\top}$, the softmax of position $t$'s scores; entry $a_{t\tau}$ "
            r"is the weight position $t$ gives key $\tau$).",
            r"$\mathbf{G}_{\mathbf{x}}$ stacks the gradients $\mathbf{g}_{t}$ of a value "
            r"$\mathbf{x}$ the same way.",
            *([r"$m_{t}$ is the causal mask (0 for keys up to $t$, $-\infty$ after)."]
              if any(n.attr("causal") for n in net.nodes.values() if n.op == "scores")
              else []),
            r"$e_{t}$ is column $t$ of the $T \times T$ identity $I$, a unit vector."]
    return out


__all__ = ["definitions", "matrix_names", "position_symbols", "STACKED"]
