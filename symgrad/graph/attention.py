"""Attention: the first ops that mix the positions of a sequence (issue 11).

Where it sits: graph, beside :mod:`.ops` (whose registry it adds to). ``net.attention(q, k, v)`` is
softmax(Q Kᵀ/√d_k + M) V per sequence, as ``torch.nn.functional.scaled_dot_product_attention``,
built from three nodes so that each has a local Jacobian of its own in the printed chain:

- ``scores`` s = K q/√d_k (+ m_t): one position t's scores against the T keys (row t of S);
- ``attn_softmax`` a = softmax(s): row t of A, the softmax over the keys (diag(a) − a aᵀ);
- ``attend`` o = Vᵀ a = Σ_τ a_τ v_τ: row t of O = A V.

Their backward rules are the block products G_A = G_O Vᵀ, G_V = Aᵀ G_O, G_S = A ⊙ (G_A − rowsum(G_A
⊙ A)) (the softmax's own rule), G_Q = G_S K/√d_k, G_K = G_Sᵀ Q/√d_k, each a
:class:`~symgrad.core.sequence.SeqProduct`: one batched matmul over the n sequences in the kernel.
``self_attention`` is multi-head self-attention from dense projections (one Wq, Wk, Wv per head,
the heads concatenated, then an output dense layer), laid out so that torch's
``nn.MultiheadAttention`` weights copy in by slicing (:func:`from_torch_mha`).

Unit by unit (the ``scalar`` rules, read by the element level): these ops alone are given their
inputs at every position, T × d matrices of units (row t the d units of position t), and return
the node's units at every position: s_tτ = q_t · k_τ/√d_k (−∞ where the causal mask hides key τ
from position t), a_tτ = exp(s_tτ)/Σ_σ exp(s_tσ) over the keys σ position t sees (a hidden key's
weight is the number 0, its score absent from the sum), o_t = Σ_τ a_tτ v_τ. The element level
then writes the whole sequence out (``symgrad.derive.element``); ops in :data:`ACROSS` are the
ones it gives whole sequences.
"""
from __future__ import annotations

import sympy as sp

from symgrad.core.matexpr import SoftmaxVJP
from symgrad.core.sequence import AcrossJacobian, SeqProduct
from symgrad.graph.ops import OPS, Op, Symbol, register_op
from symgrad.graph.symbols import batch_name

WHOLE = "attention reads every position of its sequence"


def _scale(net, node):
    return 1 / sp.sqrt(net.nodes[node.inputs[0]].dim)


def _no_dim(net, inputs):
    raise ValueError("attention: build it with net.attention(q, k, v), which makes its nodes")


# -- scores: s_t = K q_t/√d_k (+ m_t), row t of S = Q Kᵀ/√d_k + M ---------------------------------
def _scores_define(net, node):
    q, k = (net.sym(i) for i in node.inputs)
    return SeqProduct(q, k, node.positions, ty=True, scale=_scale(net, node),
                      causal=node.attr("causal"))


def _scores_jacobian(net, node, wrt):
    qn, kn = node.inputs
    T, d = node.positions, net.nodes[qn].dim
    c = f"/√{d}"
    # the scale in front, \frac{1}{\sqrt{d}}, as the LaTeX printer writes the forward pass's
    scale = rf"\frac{{1}}{{\sqrt{{{d}}}}} \, "
    mask = ("; the causal mask m_t (0 for τ ≤ t, −∞ after) is a constant"
            if node.attr("causal") else "")
    if wrt == qn and qn != kn:
        return (AcrossJacobian(f"{kn}[1:T]{c}", scale + r"\left[%s\right]_{1:T}", T, d,
                               [net.sym(kn)]),
                f"{node.name} = K {qn}/√d_k with K = {kn}[1:T], the T × {d} keys (row τ is "
                f"{kn} at position τ): entry τ is {kn}_τ · {qn}_t/√{d}, linear in {qn}_t{mask}")
    if wrt == kn and qn != kn:
        return (AcrossJacobian(f"e_τ {qn}ᵀ{c}", scale + r"e_{\tau} %s", T, d,
                               [net.sym(qn).T]),
                f"{node.name}_t reads every key: entry τ is {kn}_τ · {qn}_t/√{d}, so "
                f"∂{node.name}_t/∂{kn}_τ = e_τ {qn}_tᵀ/√{d}, and the gradient at {kn}_τ gathers "
                f"it from every position t (G_K = G_Sᵀ Q/√d_k){mask}")
    return (AcrossJacobian(f"{kn}[1:T]{c} + e_t {qn}ᵀ{c}",
                           scale + r"\left(\left[%s\right]_{1:T} + e_t %s\right)",
                           T, d, [net.sym(kn), net.sym(qn).T]),
            f"{node.name} = K {qn}/√d_k with K = {qn}[1:T] itself: {qn}_t is both the query and "
            f"key t{mask}")


def _scores_vjp(net, node, g):
    qn, kn = node.inputs
    q, k = net.sym(qn), net.sym(kn)
    c, T = _scale(net, node), node.positions
    d = net.nodes[qn].dim
    return [(qn, SeqProduct(g, k, T, scale=c),
             f"G_{qn} = G_{node.name} {batch_name(kn)}/√{d}: g at {qn}_t is "
             f"{batch_name(kn)}ᵀ g_t/√{d}, the keys weighted by "
             f"position t's score gradients"),
            (kn, SeqProduct(g, q, T, tx=True, scale=c),
             # the formula printed is g_k at the current position t, Qᵀ G_S e_t, so the note
             # names that key t and sums over τ (it had key τ and t, the letters swapped)
             f"G_{kn} = G_{node.name}ᵀ {batch_name(qn)}/√{d}: the key at position t collects "
             f"g_τt {qn}_τ/√{d} from every position τ (column t of G_{node.name}: every position's "
             "score gradient for key t, times the queries)")]


def _scores_scalar(net, node, ins, params):
    """S (T × T): s_tτ = q_t · k_τ/√d_k, or −∞ where the causal mask hides key τ (τ > t)."""
    Q, K = ins
    c, causal = _scale(net, node), node.attr("causal")
    return sp.Matrix(Q.rows, K.rows, lambda t, tau: sp.S.NegativeInfinity if causal and tau > t
                     else c * sp.Add(*[a * b for a, b in zip(Q.row(t), K.row(tau))]))


register_op(Op("scores", _scores_define, _scores_jacobian, _scores_vjp, _scores_scalar, _no_dim,
               "attention scores, s_t = K q_t/√d_k (+ a causal mask m_t): row t of Q Kᵀ/√d_k",
               label="attention scores", short="scores", symbol=Symbol("s", operands=("q", "k"))))


# -- attn_softmax: a_t = softmax(s_t) over the T keys, row t of A ----------------------------------
def _attn_softmax_jacobian(net, node, wrt):
    a = net.sym(node.name)
    return (sp.DiagMatrix(a) - a * a.T,
            f"{node.name}_t = softmax({wrt}_t) over the T keys, row by row: "
            f"∂{node.name}_τ/∂{wrt}_σ = {node.name}_τ(δ_τσ − {node.name}_σ), the row-wise softmax "
            f"Jacobian diag({node.name}) − {node.name} {node.name}ᵀ (a masked key gets weight 0: "
            "its row and column vanish)")


def _attn_softmax_vjp(net, node, g):
    a = node.name  # row t by its name: "(diag(a) − a aᵀ)" set the article a as text beside the
    # math a, in two fonts, in a handout
    return [(node.inputs[0], SoftmaxVJP(net.sym(a), g),
             f"G_{node.inputs[0]} = {batch_name(a)} ⊙ (G_{a} − rowsum(G_{a} ⊙ {batch_name(a)})): "
             f"row t is "
             f"(diag({a}_t) − {a}_t {a}_tᵀ) g_t, symmetric, applied without writing the matrix "
             "out")]


def _attn_softmax_scalar(net, node, ins, params):
    """A (T × T): row t the softmax of row t of S over the keys it sees; a hidden key (score −∞)
    is left out of the sum and gets the weight 0."""
    S = ins[0]

    def row(t):
        e = [None if s == sp.S.NegativeInfinity else sp.exp(s) for s in S.row(t)]
        total = sp.Add(*[x for x in e if x is not None])
        return [sp.Integer(0) if x is None else x / total for x in e]
    return sp.Matrix([row(t) for t in range(S.rows)])


register_op(Op("attn_softmax", OPS["softmax"].define, _attn_softmax_jacobian, _attn_softmax_vjp,
               _attn_softmax_scalar, _no_dim,
               "attention weights, a_t = softmax(s_t) over the keys: row t of A", softmax=True,
               label="softmax over the keys", short="softmax", symbol=Symbol("a")))


# -- attend: o_t = Vᵀ a_t = Σ_τ a_tτ v_τ, row t of O = A V -----------------------------------------
def _attend_define(net, node):
    a, v = (net.sym(i) for i in node.inputs)
    return SeqProduct(a, v, node.positions)


def _attend_jacobian(net, node, wrt):
    an, vn = node.inputs
    T, dv = node.positions, node.dim
    if wrt == an:
        return (AcrossJacobian(f"{vn}[1:T]ᵀ", r"\left[%s\right]_{1:T}^{\top}", dv, T,
                               [net.sym(vn)]),
                f"{node.name}_t = Vᵀ {an}_t = Σ_τ {an}_tτ {vn}_τ with V = {vn}[1:T], the T × {dv} "
                f"values: linear in {an}_t")
    return (AcrossJacobian(f"{an}_tτ I", r"%s_{t\tau} I", dv, dv, [net.sym(an)]),
            f"{node.name}_t = Σ_τ {an}_tτ {vn}_τ reads every value: ∂{node.name}_t/∂{vn}_τ = "
            f"{an}_tτ I, and the gradient at {vn}_τ gathers it from every position t "
            f"(G_V = Aᵀ G_O)")


def _attend_vjp(net, node, g):
    an, vn = node.inputs
    a, v, T = net.sym(an), net.sym(vn), node.positions
    return [(an, SeqProduct(g, v, T, ty=True),
             f"G_{an} = G_{node.name} {batch_name(vn)}ᵀ: g at {an}_t is {batch_name(vn)} g_t, "
             f"entry τ is {vn}_τ · g_t"),
            # the formula printed is g_v at the current position t, G_Oᵀ A e_t = Σ_τ a_τt g_τ
            # (row t of Aᵀ G_O), so the note uses those letters (it had value τ and a_tτ g_t)
            (vn, SeqProduct(a, g, T, tx=True),
             f"G_{vn} = {batch_name(an)}ᵀ G_{node.name}: the value at position t collects "
             f"{an}_τt g_τ from every position τ")]


def _attend_scalar(net, node, ins, params):
    """O (T × d_v): o_t = Σ_τ a_tτ v_τ, row t of A V (a hidden key's a_tτ = 0 drops its term)."""
    A, V = ins
    return A * V


register_op(Op("attend", _attend_define, _attend_jacobian, _attend_vjp, _attend_scalar, _no_dim,
               "attention output, o_t = Σ_τ a_tτ v_τ: row t of A V",
               label="attention output", short="weighted sum", symbol=Symbol("o", operands=("", "v"))))

# ops that read other positions: the matrix level says so, the element level gives their scalar
# rules whole sequences (T × d matrices of units) and writes every position out
ACROSS = frozenset({"scores", "attn_softmax", "attend"})


# -- building -------------------------------------------------------------------------------------
def attention(net, q: str, k: str, v: str, causal: bool = False, name: str | None = None) -> str:
    """softmax(Q Kᵀ/√d_k + M) V over sequences q, k, v (M the causal mask when ``causal``): three
    nodes (scores, attn_softmax, attend); returns the output's name. q and k need the same
    features d_k, q, k and v the same T."""
    nodes = [net._node(i, "attention") for i in (q, k, v)]
    for role, n in zip("qkv", nodes):
        if n.positions is None:
            raise ValueError(f"attention: {role} {n.name!r} is a vector of shape {n.shape}; "
                             "attention needs sequences, shape (T, d)")
    Q, K, V = nodes
    if len({Q.positions, K.positions, V.positions}) != 1:
        raise ValueError(f"attention: q {Q.name!r}, k {K.name!r}, v {V.name!r} have shapes "
                         f"{Q.shape}, {K.shape}, {V.shape}; they need the same T")
    if Q.dim != K.dim:
        raise ValueError(f"attention: q {Q.name!r} has {Q.dim} features and k {K.name!r} has "
                         f"{K.dim}; q and k need the same d_k")
    if not isinstance(causal, bool):
        raise ValueError(f"attention: causal is True or False, got {causal!r}")
    T, Node = Q.positions, type(Q)  # (graph.network's Node: that module imports this one)
    s = net._add(Node(net._fresh(f"s{len(net.nodes)}"), "scores", (q, k), dim=T,
                      attrs=(("causal", causal),)))
    a = net._add(Node(net._fresh(f"a{len(net.nodes)}"), "attn_softmax", (s,), dim=T))
    return net._add(Node(name or net._fresh(f"o{len(net.nodes)}"), "attend", (a, v), dim=V.dim))


def self_attention(net, h: str, heads: int, causal: bool = False, name: str | None = None) -> str:
    """Multi-head self-attention of the sequence h (E features, ``heads`` dividing E), as
    ``torch.nn.MultiheadAttention(E, heads, batch_first=True)``: per head i, q_i = Wq_i h + bq_i,
    k_i, v_i likewise (E/heads features each), o_i = attention(q_i, k_i, v_i); the heads
    concatenated (``concat``), then the output layer Wo c + bo. Parameters in the order Wq1, bq1,
    Wk1, bk1, Wv1, bv1, Wq2 …, Wo, bo (fresh names if taken). Returns the output's name."""
    x = net._node(h, "self_attention")
    if isinstance(heads, bool) or not isinstance(heads, int) or heads < 1:
        raise ValueError(f"self_attention: heads must be a positive integer, got {heads!r}")
    if x.dim % heads:
        raise ValueError(f"self_attention: {heads} heads do not divide the {x.dim} features of "
                         f"{h!r}")
    hd, outs = x.dim // heads, []
    for i in range(1, heads + 1):
        qkv = [net.dense(h, hd, W=net._fresh(f"W{r}{i}"), b=net._fresh(f"b{r}{i}"),
                         name=net._fresh(f"{r}{i}")) for r in "qkv"]
        outs.append(attention(net, *qkv, causal=causal, name=net._fresh(f"head{i}")))
    c = net.concat(*outs) if heads > 1 else outs[0]
    return net.dense(c, x.dim, W=net._fresh("Wo"), b=net._fresh("bo"), name=name)


def from_torch_mha(net, out: str, in_proj_weight, in_proj_bias, out_proj_weight,
                   out_proj_bias) -> dict:
    """{parameter: array} for the block ``self_attention`` built (``out`` its output), sliced from
    torch's ``nn.MultiheadAttention`` layout: in_proj_weight (3E, E) stacks Wq, Wk, Wv, head i
    rows i·E/h … (i+1)·E/h − 1 of each; out_proj is Wo, bo. Arrays as given (numpy)."""
    o = net._node(out, "from_torch_mha")
    if o.op != "dense":
        raise ValueError(f"from_torch_mha: {out!r} is not the output layer of self_attention")
    c = net.nodes[o.inputs[0]]
    heads = list(c.inputs) if c.op == "concat" else [c.name]
    E = o.dim
    hd = E // len(heads)
    got = {o.params[0]: out_proj_weight, o.params[1]: out_proj_bias.reshape(-1)}
    for i, hname in enumerate(heads):
        att = net.nodes[hname]
        s = net.nodes[net.nodes[att.inputs[0]].inputs[0]]
        for r, proj in enumerate([*s.inputs, att.inputs[1]]):  # q, k, v
            lin = net.nodes[proj]
            rows = slice(r * E + i * hd, r * E + (i + 1) * hd)
            got[lin.params[0]] = in_proj_weight[rows]
            got[lin.params[1]] = in_proj_bias[rows].reshape(-1)
    return got


__all__ = ["attention", "self_attention", "from_torch_mha", "ACROSS"]
