"""The embedding op (issue 11): ``net.embedding(tokens, dim)`` as ``torch.nn.Embedding``.

Where it sits: graph, beside :mod:`.ops` (its own module: one registration, imported by
:mod:`.network` so that it is registered whenever a network can be built). A token input
(``net.input(name, shape=(T,), tokens=V)``) holds at each position an integer token below V; an
embedding node's value there is row tok of its table E (V × d, torch's ``nn.Embedding.weight``).

The notes write it as a product with a one-hot vector, e = Eᵀ onehot(tok), and its gradient as
the outer product ∇E = onehot(tok) gᵀ: that is how it is derived and printed (the nodes
``Gather`` and ``ScatterAdd`` of :mod:`symgrad.core.matexpr`), never how it is computed. A kernel
reads row tok of E, and adds each g into the row of its token (an index-add); no gradient flows
into the tokens, which are data.
"""
from __future__ import annotations

import sympy as sp

from symgrad.core.matexpr import Gather, OneHot, ScatterAdd
from symgrad.graph.ops import Op, Symbol, register_op


def vocabulary(net, node) -> int:
    """V of an embedding node: the number of rows of its table."""
    return net.shapes[node.params[0]][0]


def _define(net, node):
    return Gather(net.sym(node.params[0]), net.sym(node.inputs[0]))


def _jacobian(net, node, wrt):
    E, tok, V = node.params[0], node.inputs[0], vocabulary(net, node)
    return (sp.KroneckerProduct(sp.Transpose(OneHot(net.sym(tok), V)), sp.Identity(node.dim)),
            f"{node.name} = {E}ᵀ onehot({tok}) is row {tok} of {E}: row {tok} of {E} is the only "
            f"one that moves {node.name}, so ∂{node.name}/∂vec[{E}] = onehot({tok})ᵀ ⊗ I, block "
            f"{tok} the identity and the other {V - 1} blocks 0 (written as a product, computed "
            f"as a lookup of row {tok})")


def _vjp(net, node, g):
    E, tok = node.params[0], node.inputs[0]
    return [(E, ScatterAdd(g, net.sym(tok), vocabulary(net, node)),
             f"∇_{E} ℓ = onehot({tok}) gᵀ: the scatter-add of g into row {tok} of {E}, the other "
             f"rows 0 (block {tok} of gᵀ(onehot({tok})ᵀ ⊗ I) is gᵀ, unvectorized): each g is "
             "added into its token's row, with no product to form; the tokens are data and get "
             "no gradient")]


def _scalar(net, node, ins, params):
    tok, E = ins[0][0], params[0]
    return sp.Matrix([sp.Add(*(sp.KroneckerDelta(tok, v) * E[v, k] for v in range(E.rows)))
                      for k in range(E.cols)])


def _dim(net, inputs):
    raise ValueError("embedding: build it with net.embedding(tokens, dim), which makes its table")


register_op(Op("embedding", _define, _jacobian, _vjp, _scalar, _dim,
               "an embedding, e = Eᵀ onehot(tok): row tok of E (torch.nn.Embedding)",
               init=lambda net, node: {node.params[0]: "normal"},  # torch's N(0, 1)
               label="embedding", symbol=Symbol("e", ("E",))))
