"""Graph ops: one registration per op, carrying everything every engine needs to know about it.

Where it sits: graph (above core). A node's ``op`` is a key of :data:`OPS`; the :class:`Op`
registered there says what the node computes (``define``, one example, a column), its local
Jacobian as the notes write a chain (``jacobian``), the same Jacobian applied to a gradient, the
backprop form (``vjp``), and the node written out unit by unit (``scalar``, for the element level),
with the words that justify each. The matrix level, the backward pass, the batch program (and so
every backend), the printers and the element level read these; none of them has a branch per op.
:func:`register_op` refuses a registration with a piece missing, naming it, and an engine asked
about an op nobody registered fails naming the op and the node, never falling back to a guess.

Each rule is a plain function of (net, node, …) returning SymPy expressions over ``net.sym(...)``,
the per-example symbols: here nothing is differentiated or compiled, only stated.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable

import sympy as sp

from symgrad.core.matexpr import (Normalize, NormalizeVJP, Softmax, SoftmaxVJP, Std, hadamard,
                                  normalize_jacobian_terms)


@dataclass(frozen=True)
class Op:
    """Everything about one graph op.

    - ``define(net, node)``: the node's value for one example (a column) in its inputs' and
      parameters' symbols;
    - ``jacobian(net, node, wrt)``: (∂node/∂wrt, why) for ``wrt`` an input node or a parameter, as
      the printed chain writes it (∂h/∂z = diag(f′(z)), ∂z/∂vec[W] = I ⊗ hᵀ);
    - ``vjp(net, node, g)``: [(input or parameter, its share of the gradient, why)] for the
      node's gradient ``g`` (a column): the simplified backprop form (Wᵀ g, g hᵀ, g ⊙ f′(z));
    - ``scalar(net, node, ins, params)``: the node's units written out, a column Matrix, from its
      inputs' unit Matrices and its parameters' entry Matrices (the element level);
    - ``dim(net, inputs)``: the node's size from its input nodes' names, or a one-line
      ValueError when they do not fit (what ``Graph.apply`` builds with);
    - ``words``: what the node does, in a few words ("a dense layer, z = W h + b");
    - ``softmax``: True when the units are a softmax of the inputs' (the element level writes
      their partials in the notes' form ŷ_k(δ_kj − ŷ_j));
    - ``init(net, node)``: optional, {parameter: its starting value as a function of the shape}
      for parameters that do not start as weights (random) or biases (zeros) do: a gain of ones;
    - ``images``: how the op treats an image value (C × H × W, symgrad.graph.conv): "keep" for
      an op entry by entry (the node is an image of its inputs' shape), "own" for an op whose
      builder gives the node its shape (conv2d, max_pool2d, flatten), False to refuse images;
    - ``weight``: True when the node's first parameter is a weight (random at init, in the
      penalty): dense, conv2d;
    - ``arrays(net, node)``: optional, {parameter: its array's shape} where the array is not
      the derivation's matrix (torch's (O, C, kh, kw) conv weight, O × C·kh·kw here);
    - ``across``: True when the node reads other positions of its sequence (conv1d; attention's
      are listed in symgrad.graph.attention.ACROSS);
    - ``label``: the op's name in a reader's words, for titles and diagrams ("layer norm",
      "softmax over the keys"): the op's key (scale_shift, attn_softmax) is an identifier,
      never shown;
    - ``short``: the label where a diagram's box has little room ("softmax" for the keys'
      softmax; default: the label): the attention slide's boxes at the full labels fit only at
      89–95 % of the width, at the short ones 97 %;
    - ``symbol``: a :class:`Symbol`, how a handout writes the node (its letter, its parameters'
      letters, the letters it gives the nodes it reads): a generated node name (s7, xhat2) is
      an identifier, never shown;
    - ``flattens``: True when the node is one vector per example made from a sequence's every
      position (flatten of a sequence): where every other op keeps its inputs' positions, its
      node has none, and in the batch program it crosses from the n·T rows of the positions to
      the n/T rows of the sequences (its VJP crosses back).
    """

    name: str
    define: Callable
    jacobian: Callable
    vjp: Callable
    scalar: Callable
    dim: Callable
    words: str
    softmax: bool = False
    init: Callable | None = None
    images: str | bool = False
    weight: bool = False
    arrays: Callable | None = None
    across: bool = False
    flattens: bool = False
    label: str = ""
    symbol: "Symbol | None" = None
    short: str = ""

    @property
    def box(self) -> str:
        """The op's words in a diagram's box: ``short``, else ``label``."""
        return self.short or self.label


@dataclass(frozen=True)
class Symbol:
    r"""How a handout writes the nodes of one op (symgrad.graph.symbols numbers them).

    - ``letter``: the TeX of the value's letter, from code, never user text: "z", r"\hat{x}"
      (an accent wraps the letter, which a vector sets in bold inside it);
    - ``params``: the letters of the node's parameters in order (dense: W, b; layer norm's
      scale_shift: γ, β), numbered as the node is;
    - ``operands``: a letter for each input position the op names (scores reads a query q and a
      key k, attend a value v), "" for none: a dense node read there is written by that letter;
    - ``numbered``: True for the notes' layers, z⁽¹⁾ and h⁽¹⁾ even when there is one; else a
      superscript only when the graph has several nodes of the letter (the heads' s⁽¹⁾, s⁽²⁾);
    - ``follows``: True when the node takes the number of its input (h⁽ᵏ⁾ = f(z⁽ᵏ⁾)).
    """

    letter: str
    params: tuple = ()
    operands: tuple = ()
    numbered: bool = False
    follows: bool = False


OPS: dict[str, Op] = {}
REQUIRED = tuple(f.name for f in fields(Op)
                 if f.name not in ("softmax", "init", "images", "weight", "arrays", "across",
                                   "flattens", "short"))


def register_op(op: Op, replace: bool = False) -> Op:
    """Add ``op`` to the table; every piece is required (an op that could not be derived, printed
    or written out would fail later, far from here). A name already registered is refused unless
    ``replace``: a network already derived keeps what it derived with the old rules."""
    if op.name in OPS and not replace:
        raise TypeError(f"register_op: the op {op.name!r} is already registered (replace=True "
                        "replaces it)")
    missing = [k for k in REQUIRED if getattr(op, k) in (None, "")]
    if missing:
        raise TypeError(f"register_op: the op {op.name!r} lacks {', '.join(missing)}")
    if not all(callable(getattr(op, k)) for k in ("define", "jacobian", "vjp", "scalar", "dim")):
        raise TypeError(f"register_op: define, jacobian, vjp, scalar and dim of {op.name!r} must "
                        "be functions")
    if not isinstance(op.symbol, Symbol) or not op.symbol.letter:
        raise TypeError(f"register_op: the symbol of {op.name!r} must be a Symbol with a letter, "
                        "e.g. Symbol('m')")
    OPS[op.name] = op
    return op


class MissingOpError(NotImplementedError):
    """A node whose op has no registration."""


def op_of(node, where: str = "") -> Op:
    """The registration of ``node``'s op; a node no one registered fails by name."""
    try:
        return OPS[node.op]
    except KeyError:
        raise MissingOpError(f"{where + ': ' if where else ''}no registered op {node.op!r} (node "
                             f"{node.name!r}); register one with symgrad.graph.ops.register_op"
                             ) from None


# -- dense: z = W h + b --------------------------------------------------------------------------
def _dense_define(net, node):
    z = sp.MatMul(net.sym(node.params[0]), net.sym(node.inputs[0]))
    return sp.MatAdd(z, net.sym(node.params[1])) if len(node.params) > 1 else z


def _dense_jacobian(net, node, wrt):
    W, h = net.sym(node.params[0]), net.sym(node.inputs[0])
    if wrt == node.inputs[0]:
        return W, f"{node.name} = {W} {h} + … is linear in {h}"
    if wrt == node.params[0]:
        return (sp.KroneckerProduct(sp.Identity(node.dim), h.T),
                f"row i of {node.name} depends only on row i of {W}: blocks of {h}ᵀ on the diagonal")
    return sp.Identity(node.dim), f"{node.name} = … + {wrt}"


def _dense_vjp(net, node, g):
    W, h = net.sym(node.params[0]), net.sym(node.inputs[0])
    out = [(node.inputs[0], W.T * g, f"g ← {W}ᵀ g"),
           (node.params[0], g * h.T, f"∇_{W} ℓ = g {h}ᵀ")]
    if len(node.params) > 1:
        out.append((node.params[1], g, f"∇_{node.params[1]} ℓ = g"))
    return out


def _dense_scalar(net, node, ins, params):
    return params[0] * ins[0] + params[1] if len(params) > 1 else params[0] * ins[0]


def _dense_dim(net, inputs):
    raise ValueError("dense: build it with net.dense(h, dim), which makes its parameters")


register_op(Op("dense", _dense_define, _dense_jacobian, _dense_vjp, _dense_scalar, _dense_dim,
               "a dense layer, z = W h + b", weight=True,
               label="dense layer", symbol=Symbol("z", ("W", "b"), numbered=True)))


# -- dense_transposed: z = Wᵀ h + b, a weight matrix used transposed (tied weights) ---------------
# An autoencoder's decoder reading the encoder's W1 as W1ᵀ: W keeps the shape its first layer gave
# it, (d_out, d_in) of that layer, and here maps d_out → d_in.
def _dense_t_define(net, node):
    z = sp.MatMul(sp.Transpose(net.sym(node.params[0])), net.sym(node.inputs[0]))
    return sp.MatAdd(z, net.sym(node.params[1])) if len(node.params) > 1 else z


def _dense_t_jacobian(net, node, wrt):
    W, h = net.sym(node.params[0]), net.sym(node.inputs[0])
    if wrt == node.inputs[0]:
        return sp.Transpose(W), f"{node.name} = {W}ᵀ {h} + … is linear in {h}"
    if wrt == node.params[0]:
        return (sp.KroneckerProduct(h.T, sp.Identity(node.dim)),
                f"entry j of {node.name} is Σ_i {W}_ij {h}_i: column j of {W}, so row i of "
                f"{W} moves every entry by {h}_i")
    return sp.Identity(node.dim), f"{node.name} = … + {wrt}"


def _dense_t_vjp(net, node, g):
    W, h = net.sym(node.params[0]), net.sym(node.inputs[0])
    out = [(node.inputs[0], W * g, f"g ← {W} g (the transpose of {W}ᵀ)"),
           (node.params[0], h * g.T, f"∇_{W} ℓ = {h} gᵀ: {W} is used transposed")]
    if len(node.params) > 1:
        out.append((node.params[1], g, f"∇_{node.params[1]} ℓ = g"))
    return out


def _dense_t_scalar(net, node, ins, params):
    z = params[0].T * ins[0]
    return z + params[1] if len(params) > 1 else z


def _dense_t_dim(net, inputs):
    raise ValueError("dense_transposed: build it with net.dense(h, W=name, transpose=True)")


register_op(Op("dense_transposed", _dense_t_define, _dense_t_jacobian, _dense_t_vjp,
               _dense_t_scalar, _dense_t_dim, "a dense layer reading a weight transposed, "
               "z = Wᵀ h + b (tied weights)", label="dense layer with tied weights",
               symbol=Symbol("z", ("W", "b"), numbered=True)))


def same_dims(what):
    """A ``dim`` rule: every input the same size, which is the node's."""
    def dim(net, inputs):
        dims = [net.nodes[i].dim for i in inputs]
        if len(set(dims)) != 1:
            raise ValueError(f"{what}: the inputs have sizes {', '.join(map(str, dims))}; "
                             "they must be equal")
        return dims[0]
    return dim


# -- act: h = f(z) entrywise ---------------------------------------------------------------------
def _act_define(net, node):
    return node.act.apply(net.sym(node.inputs[0]))


def _act_jacobian(net, node, wrt):
    z, h = net.sym(node.inputs[0]), net.sym(node.name)
    return (sp.DiagMatrix(node.act.derivative(z, h)),
            f"{node.name}_i depends only on {z}_i, so the Jacobian is diagonal")


def _act_vjp(net, node, g):
    z, h = net.sym(node.inputs[0]), net.sym(node.name)
    return [(node.inputs[0], hadamard(g, node.act.derivative(z, h)),
             f"g ← g ⊙ {node.act.name}'({z}): a row vector times a diagonal matrix")]


def _act_scalar(net, node, ins, params):
    return ins[0].applyfunc(node.act.f)


register_op(Op("act", _act_define, _act_jacobian, _act_vjp, _act_scalar, same_dims("act"),
               "an activation applied entry by entry", images="keep", label="activation",
               symbol=Symbol("h", numbered=True, follows=True)))


# -- softmax: ŷ = exp(z) / Σ exp(z) ----------------------------------------------------------------
def _softmax_define(net, node):
    return Softmax(net.sym(node.inputs[0]))


def _softmax_jacobian(net, node, wrt):
    y = net.sym(node.name)
    return sp.DiagMatrix(y) - y * y.T, "∂ŷ_i/∂z_j = ŷ_i(δ_ij − ŷ_j) for softmax"


def _softmax_vjp(net, node, g):
    return [(node.inputs[0], SoftmaxVJP(net.sym(node.name), g),
             "g ← (diag(ŷ) − ŷŷᵀ) g, the softmax Jacobian is symmetric")]


def _softmax_scalar(net, node, ins, params):
    e = ins[0].applyfunc(sp.exp)
    return e / sum(e)


register_op(Op("softmax", _softmax_define, _softmax_jacobian, _softmax_vjp, _softmax_scalar,
               same_dims("softmax"),
               "a softmax over the units", softmax=True, label="softmax",
               symbol=Symbol(r"\hat{y}")))


# -- add: s = a + b (a skip connection) -----------------------------------------------------------
def _add_define(net, node):
    return sp.MatAdd(*[net.sym(i) for i in node.inputs])


def _add_jacobian(net, node, wrt):
    k = node.inputs.count(wrt)  # add(h, h) = 2h: the path through it counts each use
    if k > 1:
        return k * sp.Identity(node.dim), f"{node.name} adds {wrt} {k} times"
    return sp.Identity(node.dim), f"{node.name} is a sum: the skip connection passes g through"


def _add_vjp(net, node, g):
    return [(i, g, f"a sum passes g to {i} unchanged") for i in node.inputs]


def _add_scalar(net, node, ins, params):
    return sum(ins[1:], ins[0])


register_op(Op("add", _add_define, _add_jacobian, _add_vjp, _add_scalar, same_dims("add"),
               "a sum of equally sized values", images="keep", label="sum",
               symbol=Symbol("r")))


# -- mul: m = a ⊙ b (a gate: GLU, LSTM, GRU) -------------------------------------------------------
def _mul_define(net, node):
    return hadamard(*[net.sym(i) for i in node.inputs])


def _mul_jacobian(net, node, wrt):
    a, b = node.inputs
    if a == b:  # mul(a, a) = a ⊙ a: both factors move
        return 2 * sp.DiagMatrix(net.sym(a)), f"{node.name} = {a} ⊙ {a}: entry i is {a}_i²"
    other = net.sym(b if wrt == a else a)
    return (sp.DiagMatrix(other),
            f"{node.name} = {a} ⊙ {b}: entry i reads entry i of each, so the Jacobian is "
            f"diag({other})")


def _mul_vjp(net, node, g):
    a, b = node.inputs
    return [(a, hadamard(g, net.sym(b)), f"g ← g ⊙ {b}: the other factor, entry by entry"),
            (b, hadamard(g, net.sym(a)), f"g ← g ⊙ {a}: the other factor, entry by entry")]


def _mul_scalar(net, node, ins, params):
    return ins[0].multiply_elementwise(ins[1])


register_op(Op("mul", _mul_define, _mul_jacobian, _mul_vjp, _mul_scalar, same_dims("mul"),
               "an elementwise product (a gate), m = a ⊙ b", images="keep",
               label="gate", symbol=Symbol("m")))


# -- concat: c = [a; b; …] stacked along the features (torch.cat(…, dim=-1)) ----------------------
def _concat_define(net, node):
    return sp.BlockMatrix([[net.sym(i)] for i in node.inputs])


def _concat_jacobian(net, node, wrt):
    d = net.nodes[wrt].dim
    blocks = [[sp.Identity(d) if i == wrt else sp.ZeroMatrix(net.nodes[i].dim, d)]
              for i in node.inputs]
    return (sp.BlockMatrix(blocks),
            f"{node.name} stacks {', '.join(node.inputs)}: the rows of {wrt} are the identity, "
            "the others 0")


def _concat_vjp(net, node, g):
    out, start = [], 0
    for i in node.inputs:
        d = net.nodes[i].dim
        out.append((i, g[start:start + d, :],
                    f"g ← entries {start + 1}…{start + d} of g, the part of the stack {i} fills"))
        start += d
    return out


def _concat_scalar(net, node, ins, params):
    return sp.Matrix.vstack(*ins)


def _concat_dim(net, inputs):
    if len(inputs) < 2:
        raise ValueError("concat: give two or more values to stack")
    return sum(net.nodes[i].dim for i in inputs)


register_op(Op("concat", _concat_define, _concat_jacobian, _concat_vjp, _concat_scalar,
               _concat_dim, "a concatenation along the features, c = [a; b]",
               label="concatenation", short="concat", symbol=Symbol("c")))


# -- normalize: x̂ = (h − mean h)/std(h), std(h) = √(var h + ε) (layer norm before its gain and
# shift). std, not σ: σ is the sigmoid in these notes (core.matexpr.Std)
def _normalize_define(net, node):
    return Normalize(net.sym(node.inputs[0]), node.attr("eps"))


def _normalize_jacobian(net, node, wrt):
    d, xh, h = node.dim, net.sym(node.name), net.sym(node.inputs[0])
    I, ones, outer = normalize_jacobian_terms(xh, d)
    J = sp.MatMul(1 / Std(h), sp.MatAdd(I, ones, outer))
    # the words name values by their symbols ({x̂}: the printers write node names by role)
    return J, (f"{node.name} = ({wrt} − mean {wrt})/std({wrt}): the mean and std({wrt}) move with "
               f"every entry, so ∂{node.name}/∂{wrt} = (I − 𝟏𝟏ᵀ/d − {node.name} {node.name}ᵀ/d)"
               f"/std({wrt}), d = {d}")


def _normalize_vjp(net, node, g):
    xh, h = net.sym(node.name), net.sym(node.inputs[0])
    return [(node.inputs[0], NormalizeVJP(xh, h, g, node.attr("eps")),
             f"g ← (g − mean g − {node.name} mean({node.name} ⊙ g))/std({node.inputs[0]}): the "
             "Jacobian is symmetric, applied without forming it")]


def _normalize_scalar(net, node, ins, params):
    vals = list(ins[0])
    mu = sp.Add(*vals) / len(vals)
    inv = 1 / sp.sqrt(sp.Add(*[(v - mu) ** 2 for v in vals]) / len(vals) + node.attr("eps"))
    return sp.Matrix([(v - mu) * inv for v in vals])


def _no_dim(op):
    def dim(net, inputs):
        raise ValueError(f"{op}: build it with net.layer_norm(h), which makes its parameters")
    return dim


register_op(Op("normalize", _normalize_define, _normalize_jacobian, _normalize_vjp,
               _normalize_scalar, _no_dim("normalize"),
               "a normalization over the features, x̂ = (h − mean h)/std(h), std(h) = √(var h + ε)",
               label="layer norm", symbol=Symbol(r"\hat{x}")))


# -- scale_shift: y = γ ⊙ x̂ + β (layer norm's gain and shift) -------------------------------------
def _scale_shift_define(net, node):
    gain, shift = (net.sym(p) for p in node.params)
    return sp.MatAdd(hadamard(gain, net.sym(node.inputs[0])), shift)


def _scale_shift_jacobian(net, node, wrt):
    x, (gain, shift) = net.sym(node.inputs[0]), node.params
    if wrt == node.inputs[0]:
        return sp.DiagMatrix(net.sym(gain)), f"{node.name} = {gain} ⊙ {x} + {shift}: entry by entry"
    if wrt == gain:
        return sp.DiagMatrix(x), f"{node.name}_i = {gain}_i {x}_i + {shift}_i"
    return sp.Identity(node.dim), f"{node.name} = … + {shift}"


def _scale_shift_vjp(net, node, g):
    x, (gain, shift) = net.sym(node.inputs[0]), node.params
    return [(node.inputs[0], hadamard(g, net.sym(gain)), f"g ← g ⊙ {gain}"),
            (gain, hadamard(g, x), f"∇_{gain} ℓ = g ⊙ {x}"),
            (shift, g, f"∇_{shift} ℓ = g")]


def _scale_shift_scalar(net, node, ins, params):
    return params[0].multiply_elementwise(ins[0]) + params[1]


register_op(Op("scale_shift", _scale_shift_define, _scale_shift_jacobian, _scale_shift_vjp,
               _scale_shift_scalar, _no_dim("scale_shift"),
               "a gain and a shift entry by entry, y = γ ⊙ x̂ + β",
               init=lambda net, node: {node.params[0]: "ones"},  # torch's LayerNorm: γ = 1
               label="layer norm", symbol=Symbol(r"\tilde{x}", (r"\gamma", r"\beta"))))  # torch's LayerNorm: γ = 1


__all__ = ["Op", "Symbol", "OPS", "register_op", "op_of", "same_dims", "MissingOpError"]
