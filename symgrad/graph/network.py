"""Declaring networks: layers, activations and losses composed into a graph of SymPy expressions.

Where it sits: graph (above core). A :class:`Graph` is an ordered DAG of nodes (inputs, dense layers,
elementwise activations, softmax, sums for skip connections) over named parameters. Each node's value
is a SymPy ``MatrixSymbol`` (one example, a column) with its definition as a matrix expression; the
engines in ``backprop`` (matrix level) and ``element`` (scalar level) differentiate these graphs.
Shapes follow the notes and ``torch.nn.Linear``: W_k is d_k × d_{k−1}, b_k has d_k entries.
What a node applies and what the loss is come from ``activations`` and ``losses`` (imported here,
never the other way; their public names are re-exported, e.g. ``symgrad.network.Loss``).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, replace
from functools import lru_cache

import sympy as sp

from symgrad.graph.activations import ACTIVATIONS, VECTOR_ACTIVATIONS, Activation, activation  # noqa: F401
from symgrad.graph.losses import LOSSES, Loss, LossTerm  # noqa: F401  (re-exported)
from symgrad.core.matexpr import Target
from symgrad.graph.ops import OPS, MissingOpError, op_of
from symgrad.graph import attention as _attention  # registers the ops across positions
from symgrad.graph import embedding as _embedding  # noqa: F401  (registers the embedding op)
from symgrad.graph import conv as _conv  # registers the image ops
from symgrad.core.parse import ParseError, parse
from symgrad.core.primitives import check_relu_grad_at_zero, relu_grad_at_zero_default


# -- the graph ------------------------------------------------------------------------------------
# Nodes on a network's longest path (Graph.depth): a 256-layer MLP is 512, 513 with an output
# activation. SymPy walks expressions recursively, each layer adds a few levels, and at 250-300
# layers Python's recursion limit (1000 frames) was a bare RecursionError (hashing the gradient,
# the chain's paths, printing). At 513, derive_all, gradients, compile (numpy and python) and
# every printer were measured to work for MLP, softmax, layer-norm, residual and gated stacks
# (gradients and compile for the last two) from a caller already 300 frames deep.
MAX_DEPTH = 513


@dataclass(frozen=True)
class Node:
    """One value in the graph: ``op`` is a key of :data:`symgrad.graph.ops.OPS` (input, dense,
    act, softmax, add, mul, concat, normalize, scale_shift …); ``attrs`` holds an op's settings
    as (name, value) pairs, e.g. (("eps", 1/100000),) for normalize. ``positions`` is T for a
    sequence value (T positions of ``dim`` features each, a (T, d) value per example, batched
    (n, T, d) as torch lays it), None for a plain vector (a column of ``dim``). ``image`` is
    (C, H, W) for an image value, held as the column of its ``dim`` = C·H·W entries in torch's
    row-major order (batched (n, C, H, W), read as (n, C·H·W)), None otherwise."""

    name: str
    op: str
    inputs: tuple = ()
    params: tuple = ()
    dim: int = 0
    act: Activation | None = None
    attrs: tuple = ()
    positions: int | None = None
    image: tuple | None = None

    def attr(self, key):
        return dict(self.attrs)[key]

    @property
    def shape(self) -> tuple:
        """The value of one example as torch holds it: (T, d) for a sequence, (C, H, W) an
        image, (d,) a vector."""
        if self.image is not None:
            return self.image
        return (self.dim,) if self.positions is None else (self.positions, self.dim)


@dataclass
class Graph:
    """A network as plain data: a DAG of named nodes over named parameters (see :func:`mlp`).

    The engines read it; they never call back into it. :class:`symgrad.Network` is this class with
    the engines as methods (the facade)."""

    nodes: dict = field(default_factory=dict)
    shapes: dict = field(default_factory=dict)  # parameter name -> (rows, cols)
    output_node: str | None = None
    loss: Loss | None = None
    penalty: sp.Expr = sp.Integer(0)
    # a multi-task loss ℓ = Σ_k w_k ℓ_k (net.add_loss): the first term is output_node and loss
    # with the weight loss_weight, the others LossTerms in more_losses; one loss of weight 1 is
    # the network of set_loss, derived and compiled exactly as before
    loss_weight: sp.Expr = sp.Integer(1)
    more_losses: tuple = ()
    layers: int = 0
    # relu'(0) for this network's derivations and kernels: fixed at creation from the package
    # default (symgrad.set_relu_grad_at_zero), changed only here (net.relu_grad_at_zero = 1)
    relu_grad_at_zero: sp.Rational = field(default_factory=relu_grad_at_zero_default)
    # derived results (the backward pass, Algorithm 6.4) kept until the network changes
    _cache: dict = field(default_factory=dict, repr=False, compare=False)
    # the names the builders chose (every default comes from _fresh): identifiers for code and
    # the API only; a handout writes those values by their op's registered Symbol, numbered by
    # role (symgrad.graph.symbols), where the names s7, xhat2 carried the graph's node count
    generated: set = field(default_factory=set, repr=False, compare=False)

    def __setattr__(self, name, value):
        # every way a penalty comes in (set_loss, mlp, Graph(penalty=…), net.penalty = … set
        # directly) is checked here: text only through the safe parser, and a λ the kernel cannot
        # use is refused at once rather than failing at compile
        if name == "penalty":
            value = penalty_value(value)
        elif name == "relu_grad_at_zero":
            value = check_relu_grad_at_zero(value)
        elif name == "loss_weight":
            value = weight_value(value)
        elif name == "loss" and value is not None:
            value = Loss.make(value)  # net.loss = "mse" read as set_loss reads it, not a str
            out = getattr(self, "output_node", None)
            if out in getattr(self, "nodes", {}):  # and checked against the output as it does
                value.check_output(self.nodes[out])
        super().__setattr__(name, value)

    def __getstate__(self):
        """Pickled without the cache: it holds compiled kernels (generated functions that do not
        pickle), and a copy on another process (a Dask worker) derives and compiles its own."""
        state = dict(self.__dict__)
        state["_cache"] = {}
        return state

    def cached(self, key, build):
        """``build()`` once per state of the network: every parameter's derivation reads the same
        forward and backward pass (the notes' "no redundant computation"), so deriving all
        parameters costs one pass, not one per parameter. Any change to the network (a node, a
        parameter, the loss or the penalty, even set directly) starts a fresh cache. ``key`` is
        the function that owns the value (``backprop.algorithm``, or a tuple starting with it),
        so no two modules can claim the same key by spelling it alike."""
        state = (tuple(self.nodes.values()), tuple(self.shapes.items()), self.output_node,
                 self.loss, self.penalty, self.relu_grad_at_zero, self.loss_weight,
                 self.more_losses)
        if self._cache.get("_state") != state:
            self._cache.clear()
            self._cache["_state"] = state
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    # building
    def _fresh(self, base: str) -> str:
        """A default name not yet used: base, else base_2, base_3 … (defaults never collide)."""
        name, k = base, 1
        while name in self.nodes or name in self.shapes:
            k += 1
            name = f"{base}_{k}"
        self.generated.add(name)
        return name

    def _add(self, node: Node) -> str:
        if node.name in self.nodes or node.name in self.shapes:
            raise ValueError(f"the name {node.name!r} is already used in this network")
        for i in node.inputs:
            if i not in self.nodes:
                raise ValueError(f"{node.name}: unknown input node {i!r}")
        if node.op != "input":  # every op is position-wise: a node has its inputs' positions
            ins = [self.nodes[i] for i in node.inputs]
            other = next((b for b in ins if b.positions != ins[0].positions), None)
            if other is not None:
                raise ValueError(
                    f"{node.op} {node.name!r}: {ins[0].name!r} has shape {ins[0].shape} and "
                    f"{other.name!r} has shape {other.shape}; a position-wise op needs values "
                    "with the same positions (both vectors, or sequences of the same T)")
            # (flatten of a sequence is the one op whose node has no positions: one vector per
            # example, made from every position of its input)
            flat = node.op in OPS and OPS[node.op].flattens
            node = replace(node, positions=ins[0].positions if ins and not flat else None)
            node = self._image_rule(node, ins)
            if node.op == "softmax" and node.dim == 1:  # (mlp([2, 1], output="softmax") with
                # mse trained without a word: ŷ = 1 whatever the input, every gradient 0)
                raise ValueError(f"softmax {node.name!r} over 1 unit is always 1 (nothing "
                                 "before it can learn): give it at least 2 units, or use a "
                                 "sigmoid for one output (with bce for two classes)")
            toks = [b.name for b in ins if b.op == "input" and "tokens" in dict(b.attrs)]
            if toks and node.op != "embedding":  # a token is an index, not a number to compute on
                raise ValueError(f"{node.op} {node.name!r}: {toks[0]!r} holds integer tokens; "
                                 f"embed them first, net.embedding({toks[0]!r}, dim)")
        self.nodes[node.name] = node
        return node.name

    def _image_rule(self, node: Node, ins) -> Node:
        """An op's node on image values: an op entry by entry keeps its inputs' (equal) image
        shape, conv2d, max_pool2d and flatten give their own; any other op is refused in one
        line (torch's Linear, LayerNorm and softmax on an image act on its last axis, W: what
        is meant is almost always the flattened image)."""
        imgs = [b for b in ins if b.image is not None]
        if not imgs:
            return node
        rule = OPS[node.op].images if node.op in OPS else False
        if not rule:
            raise ValueError(f"{node.op} {node.name!r}: {imgs[0].name!r} is an image of shape "
                             f"{imgs[0].shape}; flatten it first, net.flatten({imgs[0].name!r})")
        if rule == "own":
            return node
        other = next((b for b in ins if b.image != imgs[0].image), None)
        if other is not None:
            raise ValueError(f"{node.op} {node.name!r}: {imgs[0].name!r} has shape "
                             f"{imgs[0].shape} and {other.name!r} has shape {other.shape}")
        return replace(node, image=imgs[0].image)

    def input(self, name: str = "x", dim: int | None = None, *, shape=None, tokens=None) -> str:
        """An input: a vector of ``dim`` features (a column of the notes), or with
        ``shape=(T, d)`` a sequence of T positions of d features each, whose batches are
        (n, T, d) arrays as torch lays them; ``shape=(d,)`` is the vector ``dim=d``. Every op
        after it acts on each position alone (dense on the last axis, as torch.nn.Linear).
        ``tokens=V``: integer tokens below V, read only by :meth:`embedding`; ``shape=(T,)`` a
        sequence of T tokens (batches (n, T) integers), ``shape=()`` or none one token per
        example (batches (n,)). ``shape=(C, H, W)``: an image of C channels of H × W (batches
        (n, C, H, W), as torch's Conv2d takes them), for :meth:`conv2d` and :meth:`max_pool2d`."""
        if tokens is not None:
            return self._token_input(name, dim, shape, tokens)
        if shape is None:
            dim = _check_dim(1 if dim is None else dim, name)
            return self._add(Node(name, "input", dim=dim))
        if dim is not None:
            raise ValueError(f"input {name!r}: give dim or shape, not both")
        if not isinstance(shape, tuple) or len(shape) not in (1, 2, 3):
            raise ValueError(f"input {name!r}: shape is (d,) for a vector, (T, d) for a "
                             f"sequence of T positions of d features or (C, H, W) for an image; "
                             f"got {shape!r}")
        shape = tuple(_check_dim(k, f"input {name!r}") for k in shape)
        if len(shape) == 3:
            return self._add(Node(name, "input", dim=math.prod(shape), image=shape))
        return self._add(Node(name, "input", dim=shape[-1],
                              positions=shape[0] if len(shape) == 2 else None))

    def _token_input(self, name, dim, shape, V) -> str:
        if dim is not None:
            raise ValueError(f"input {name!r}: a token input has no dim (one token a position); "
                             "give shape=(T,) or shape=()")
        if isinstance(V, bool) or not isinstance(V, int) or V < 1:
            raise ValueError(f"input {name!r}: tokens=V is the vocabulary size, a positive "
                             f"integer; got {V!r}")
        shape = () if shape is None else shape
        if not isinstance(shape, tuple) or len(shape) > 1:
            raise ValueError(f"input {name!r}: a token input's shape is (T,) for a sequence of T "
                             f"tokens or () for one token; got {shape!r}")
        for k in shape:
            _check_dim(k, f"input {name!r}")
        return self._add(Node(name, "input", dim=1, attrs=(("tokens", V),),
                              positions=shape[0] if shape else None))

    def tokens(self, name: str) -> int | None:
        """V when ``name`` is a token input (integer tokens below V), else None."""
        node = self.nodes.get(name)
        return dict(node.attrs).get("tokens") if node is not None and node.op == "input" else None

    def embedding(self, tokens: str, dim: int, *, E: str | None = None,
                  name: str | None = None) -> str:
        """e = row tok of E at every position, ``torch.nn.Embedding(V, dim)``: the table E is
        V × dim (torch's ``weight``), a new parameter (default name E_k), N(0, 1) at init as
        torch's. Written e = Eᵀ onehot(tok) in derivations; computed as a lookup."""
        V = self.tokens(tokens)
        if V is None:
            raise ValueError(f"embedding: {tokens!r} is not a token input; declare one with "
                             "net.input(name, shape=(T,), tokens=V)")
        _check_dim(dim, "embedding")
        self.layers += 1
        k = self.layers
        E = E or self._fresh(f"E{k}")
        if E in self.shapes or E in self.nodes:
            raise ValueError(f"embedding: the name {E!r} is already used in this network")
        self._param(E, (V, dim))
        # (the node emb_k, not e_k: its batch value would display as E_k, the table's name)
        return self._add(Node(name or self._fresh(f"emb{k}"), "embedding", (tokens,), (E,), dim))

    def is_table(self, p: str) -> bool:
        """True for an embedding's table E (V × d): a matrix, but no weight of the penalty."""
        return any(n.op == "embedding" and n.params[0] == p for n in self.nodes.values())

    def dense(self, inp: str, dim: int | None = None, *, W: str | None = None, b=True,
              name: str | None = None, transpose: bool = False) -> str:
        """z = W h + b. Every call is a new layer k (default names W_k, b_k, z_k). Reusing a
        parameter name shares it (shapes must agree): ``W="W1"`` shares the weights only; the
        layer gets its own bias unless ``b="b1"`` shares that too. ``b=False``: no bias.
        ``transpose=True`` reads an existing W transposed, z = Wᵀ h + b (tied weights: an
        autoencoder's decoder as the encoder's W1ᵀ); W keeps its shape, so it maps its rows'
        size to its columns'."""
        if transpose is not False:
            return self._dense_transposed(inp, dim, W, b, name, transpose)
        self.layers += 1
        k = self.layers
        W = W or self._fresh(f"W{k}")
        if dim is None:
            if W not in self.shapes:
                raise ValueError(f"dense: give the output size of {W}")
            dim = self.shapes[W][0]
        dim = _check_dim(dim, W)
        if self.is_table(W):
            raise ValueError(f"dense: {W!r} is an embedding table; a dense layer cannot share it")
        h = self.nodes[inp] if inp in self.nodes else None
        if h is None:
            raise ValueError(f"dense: unknown input node {inp!r}")
        if h.image is not None:  # before any parameter is made
            raise ValueError(f"dense: {inp!r} is an image of shape {h.image}; flatten it first, "
                             f"net.flatten({inp!r})")
        params = [self._param(W, (dim, h.dim))]
        if b:
            params.append(self._param(b if isinstance(b, str) else self._fresh(f"b{k}"),
                                      (dim, 1)))
        return self._add(Node(name or self._fresh(f"z{k}"), "dense", (inp,), tuple(params), dim))

    def _dense_transposed(self, inp, dim, W, b, name, transpose) -> str:
        if transpose is not True:
            raise ValueError(f"dense: transpose is True or False, got {transpose!r}")
        if W not in self.shapes or not self.is_weight(W):
            raise ValueError(f"dense: transpose=True reads an existing weight matrix W; "
                             f"{W!r} is none (the weights are {', '.join(self.weights) or 'none'})")
        h = self._node(inp, "dense")
        rows, cols = self.shapes[W]
        if h.dim != rows:
            raise ValueError(f"dense: {W}ᵀ is {cols} × {rows} and takes {rows} features; "
                             f"{inp!r} has {h.dim}")
        if dim is not None and _check_dim(dim, W) != cols:
            raise ValueError(f"dense: {W}ᵀ gives {cols} features, not {dim}")
        self.layers += 1
        k = self.layers
        params = [W]
        if b:
            params.append(self._param(b if isinstance(b, str) else self._fresh(f"b{k}"),
                                      (cols, 1)))
        return self._add(Node(name or self._fresh(f"z{k}"), "dense_transposed", (inp,),
                              tuple(params), cols))

    def _param(self, name: str, shape) -> str:
        if name in self.nodes:
            raise ValueError(f"the name {name!r} is already used for a node")
        if self.shapes.setdefault(name, shape) != shape:
            raise ValueError(f"parameter {name} is shared with shape {self.shapes[name]}, "
                             f"but here it needs {shape}")
        return name

    def act(self, inp: str, act, name: str | None = None) -> str:
        a = activation(act)
        z = self._node(inp, "act")
        if a == "softmax":
            return self._add(Node(name or self._fresh("yhat"), "softmax", (inp,), dim=z.dim))
        return self._add(Node(name or self._fresh(f"h{self.layers}"), "act", (inp,), dim=z.dim,
                              act=a))

    def add(self, a: str, b: str, name: str | None = None) -> str:
        na, nb = self._node(a, "add"), self._node(b, "add")
        if na.dim != nb.dim:
            raise ValueError(f"add: {a!r} has shape {na.shape} and {b!r} has shape {nb.shape}")
        da = na.dim
        return self._add(Node(name or self._fresh(f"s{len(self.nodes)}"), "add", (a, b), dim=da))

    def mul(self, a: str, b: str, name: str | None = None) -> str:
        """m = a ⊙ b, the elementwise product of two equally sized values: a gate (GLU, LSTM,
        GRU), ``torch.mul``."""
        return self.apply("mul", a, b, name=name or self._fresh(f"m{len(self.nodes)}"))

    def layer_norm(self, inp: str, eps=1e-5, name: str | None = None) -> str:
        """y = γ ⊙ x̂ + β with x̂ = (h − mean h)/√(var h + ε) over the features of each example,
        as ``torch.nn.LayerNorm(d, eps)``: two nodes, normalize (x̂) then scale_shift, with the
        gain γ (ones at init) before the shift β (zeros), as torch's ``parameters()`` lists
        them."""
        h = self._node(inp, "layer_norm")
        try:
            eps = penalty_value(eps)  # an exact number ≥ 0, read as a penalty is
        except ValueError as e:
            raise ValueError(f"layer_norm: eps {str(e).split(': ', 1)[1]}") from None
        if eps == 0:
            raise ValueError("layer_norm: eps must be > 0 (it keeps 1/√(var + ε) finite)")
        self.layers += 1
        k = self.layers
        xhat = self._add(Node(self._fresh(f"xhat{k}"), "normalize", (inp,), dim=h.dim,
                              attrs=(("eps", eps),)))
        gain = self._param(self._fresh(f"gamma{k}"), (h.dim, 1))
        shift = self._param(self._fresh(f"beta{k}"), (h.dim, 1))
        return self._add(Node(name or self._fresh(f"ln{k}"), "scale_shift", (xhat,),
                              (gain, shift), dim=h.dim))

    def dropout(self, inp: str, p, name: str | None = None) -> str:
        """Inverted dropout, d = h ⊙ m with m_i = 1/(1 − p) kept or 0 dropped (probability p):
        a gate (``mul``) by a mask that is an input of the kernel, so a step is reproducible.
        ``sg.train`` draws the masks from its seed for every minibatch; ``predict`` (and a
        kernel given no mask) uses ones, which is dropout switched off."""
        h = self._node(inp, "dropout")
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
            raise ValueError(f"dropout: p is the probability of dropping a unit, 0 ≤ p < 1; got "
                             f"{p!r}")
        mask = self._add(Node(self._fresh(f"mask{len(self.nodes)}"), "input", dim=h.dim,
                              attrs=(("dropout", float(p)),), positions=h.positions,
                              image=h.image))
        return self.mul(inp, mask, name=name or self._fresh(f"drop{len(self.nodes)}"))

    @property
    def masks(self) -> dict:
        """{mask input: its dropout probability p}: the inputs a kernel may be given or not."""
        return {n.name: dict(n.attrs)["dropout"] for n in self.nodes.values()
                if n.op == "input" and "dropout" in dict(n.attrs)}

    def concat(self, *inputs: str, name: str | None = None) -> str:
        """c = [a; b; …], the values stacked along their features, in order: ``torch.cat(…,
        dim=-1)``."""
        return self.apply("concat", *inputs, name=name or self._fresh(f"c{len(self.nodes)}"))

    # -- images (symgrad.graph.conv) --
    def conv2d(self, x: str, out_channels: int, kernel_size, stride=1, padding=0, *,
               W: str | None = None, b=True, name: str | None = None) -> str:
        """z = W ⋆ x + b on an image, ``torch.nn.Conv2d``: see :func:`symgrad.graph.conv.conv2d`."""
        return _conv.conv2d(self, x, out_channels, kernel_size, stride, padding, W=W, b=b,
                            name=name)

    def conv1d(self, h: str, out_channels: int, kernel_size: int, padding="same", stride=1, *,
               W: str | None = None, b=True, name: str | None = None) -> str:
        """z_t = Σ_u W_u h_{t+u−p} + b over a sequence, ``torch.nn.Conv1d`` (stride 1, padding
        "same" by default or "causal"): see :func:`symgrad.graph.conv.conv1d`."""
        return _conv.conv1d(self, h, out_channels, kernel_size, padding, stride, W=W, b=b,
                            name=name)

    def max_pool2d(self, x: str, kernel_size, stride=None, name: str | None = None) -> str:
        """Max pooling, ``torch.nn.MaxPool2d``: see :func:`symgrad.graph.conv.max_pool2d`."""
        return _conv.max_pool2d(self, x, kernel_size, stride, name)

    def flatten(self, x: str, name: str | None = None) -> str:
        """An image's entries as a vector, ``torch.flatten(x, 1)``: see
        :func:`symgrad.graph.conv.flatten`."""
        return _conv.flatten(self, x, name)

    # -- across positions (symgrad.graph.attention) --
    def attention(self, q: str, k: str, v: str, causal: bool = False,
                  name: str | None = None) -> str:
        """softmax(Q Kᵀ/√d_k + M) V over sequences, as torch's
        ``F.scaled_dot_product_attention(q, k, v, is_causal=causal)``: see
        :func:`symgrad.graph.attention.attention`."""
        return _attention.attention(self, q, k, v, causal, name)

    def self_attention(self, h: str, heads: int, causal: bool = False,
                       name: str | None = None) -> str:
        """Multi-head self-attention from dense projections, as torch's
        ``nn.MultiheadAttention(E, heads, batch_first=True)``: see
        :func:`symgrad.graph.attention.self_attention`."""
        return _attention.self_attention(self, h, heads, causal, name)

    def apply(self, op: str, *inputs: str, name: str | None = None) -> str:
        """A node applying the registered op ``op`` (symgrad.graph.ops) to ``inputs``, with no
        parameters of its own: ``net.apply("add", a, b)``; its size is the op's ``dim`` rule's."""
        if op not in OPS:
            raise MissingOpError(f"apply: no registered op {op!r}; register one with "
                                 "symgrad.graph.ops.register_op")
        rule = OPS[op]
        for i in inputs:
            self._node(i, op)
        dim = rule.dim(self, inputs)
        return self._add(Node(name or self._fresh(f"{op}{len(self.nodes)}"), op, tuple(inputs),
                              dim=dim))

    def _node(self, name: str, where: str) -> Node:
        if name not in self.nodes:
            raise ValueError(f"{where}: unknown input node {name!r}")
        return self.nodes[name]

    def set_loss(self, output: str, loss="mse", penalty=0) -> "Graph":
        """The network's one loss, on the node ``output`` (replacing any loss set before, every
        term of :meth:`add_loss` included), with the weight penalty λ = ``penalty``."""
        if output not in self.nodes:
            raise ValueError(f"unknown output node {output!r}")
        loss = Loss.make(loss)
        loss.check_output(self.nodes[output])  # before any change: a refused loss leaves net as it was
        penalty = penalty_value(penalty)          # likewise a refused penalty
        self.output_node, self.loss, self.penalty = output, loss, penalty
        self.loss_weight, self.more_losses = sp.Integer(1), ()
        return self

    def add_loss(self, output: str, loss="mse", weight=1) -> "Graph":
        """One more term of a multi-task loss ℓ = Σ_k w_k ℓ_k: ``loss`` (mse, bce, cross_entropy
        or an expression in yhat and y) of the node ``output`` against its own target, weighted
        by ``weight`` (a finite number > 0, kept exact: 0.5 is 1/2). The first call on a network
        without a loss makes the first term (``set_loss`` replaces them all with one). Each term
        reads its own output node, and no node twice; the penalty stays ``net.penalty``."""
        if output not in self.nodes:
            raise ValueError(f"add_loss: unknown output node {output!r}")
        loss = Loss.make(loss)
        loss.check_output(self.nodes[output])
        weight = weight_value(weight)
        if any(t.output == output for t in self.losses):
            raise ValueError(f"add_loss: the node {output!r} already has a loss; each term of "
                             "the loss reads its own output node")
        if self.output_node is None or self.loss is None:
            self.output_node, self.loss, self.loss_weight = output, loss, weight
        else:
            self.more_losses = self.more_losses + (LossTerm(output, loss, weight),)
        return self

    @property
    def losses(self) -> tuple:
        """The terms of the loss, in order: (output node, Loss, weight) LossTerms; ℓ is
        Σ_k weight_k · ℓ_k(output_k, its target). One term for a network of ``set_loss``."""
        if self.output_node is None or self.loss is None:
            return ()
        return (LossTerm(self.output_node, self.loss, self.loss_weight), *self.more_losses)

    @property
    def outputs(self) -> list[str]:
        """The output nodes the loss reads, one per term."""
        return [t.output for t in self.losses]

    @property
    def several_losses(self) -> bool:
        """True when the loss has several terms: targets (and predictions) are then dicts keyed
        by the output nodes' names."""
        return len(self.more_losses) > 0

    @property
    def weighted(self) -> bool:
        """True when ℓ is written as a weighted sum of terms (several, or one of weight ≠ 1)."""
        return self.several_losses or self.loss_weight != 1

    # reading
    @property
    def parameters(self) -> list[str]:
        return list(self.shapes)

    def is_weight(self, p: str) -> bool:
        """True for a weight matrix (the W of some dense or conv2d layer), False for a bias. The L2 penalty
        λΩ(θ), Ω = ½ Σ‖W‖², covers the weights only, as in Algorithm 6.4."""
        return any(n.params and n.params[0] == p and n.op in OPS and OPS[n.op].weight
                   for n in self.nodes.values())

    @property
    def weights(self) -> list[str]:
        return [p for p in self.shapes if self.is_weight(p)]

    @property
    def positions(self) -> int | None:
        """T when the network's output is a sequence of T positions (every value up to it then
        is; the ops act on each position alone), None when it is a vector (a network of
        vectors, or one that flattens its sequences: see :attr:`seq_len`)."""
        return self.nodes[self.output_node].positions if self.output_node in self.nodes else \
            next((n.positions for n in self.nodes.values() if n.op == "input"), None)

    @property
    def seq_len(self) -> int | None:
        """T when the network's inputs are sequences of T positions, None for vectors (or
        images). The batch program's rows are then every position of every sequence (n·T),
        and a value after a flatten (:meth:`per_example`) has one row per sequence."""
        return next((n.positions for n in self.nodes.values()
                     if n.op == "input" and n.positions is not None), None)

    def per_example(self, name: str) -> bool:
        """True for a value that is one vector per sequence in a network of sequences (after a
        flatten, or a dropout mask there): its batch rows are the n/T sequences, where the
        per-position values have n·T."""
        return self.seq_len is not None and self.nodes[name].positions is None

    @property
    def flattens(self) -> bool:
        """True when some node turns a sequence into one vector per example (a flatten)."""
        return any(n.op in OPS and OPS[n.op].flattens for n in self.nodes.values())

    @property
    def inputs(self) -> list[str]:
        return [n.name for n in self.nodes.values() if n.op == "input"]

    def sym(self, name: str) -> sp.MatrixSymbol:
        """The per-example symbol of a node (a column) or of a parameter."""
        if name in self.shapes:
            return _matrix_symbol(name, *self.shapes[name])
        return _matrix_symbol(name, self.nodes[name].dim, 1)

    @property
    def target(self) -> sp.MatrixSymbol:
        """The target of the (first) output, y."""
        return self.target_of(self.output_node)

    def target_of(self, output: str) -> sp.MatrixSymbol:
        """The target of one output of the loss: y with one loss, y_<output> with several."""
        name = f"y_{output}" if self.several_losses else "y"
        return Target(name, self.nodes[output].dim, 1)

    def definition(self, name: str):
        """A node's value in terms of its inputs' symbols and its parameters (one example)."""
        n = self.nodes[name]
        if n.op == "input":
            raise ValueError(f"{name} is an input: it has no definition")
        return op_of(n, "definition").define(self, n)

    def consumers(self, name: str) -> list[str]:
        return [n.name for n in self.nodes.values() if name in n.inputs or name in n.params]

    def check(self) -> None:
        """Raise a one-line ValueError unless the network can be derived."""
        if self.output_node is None or self.loss is None:
            raise ValueError("the network has no output and loss: call net.set_loss(output, loss)")
        if not self.shapes:
            raise ValueError("the network has no parameters (add a layer with net.dense)")
        out = self.nodes[self.output_node]
        for t in self.more_losses:  # (a term per position and one per example after a
            other = self.nodes[t.output]  # flatten may mix: each is the mean over its rows)
            t.loss.check_output(other)  # again: a node may have changed since add_loss
            if other.positions not in (None, self.seq_len):
                raise ValueError(f"the outputs {out.name!r} and {other.name!r} of the loss have "
                                 f"shapes {out.shape} and {other.shape}: several losses need "
                                 "outputs that are vectors or sequences of the inputs' T")
        T = self.seq_len
        ref = out if out.positions is not None else \
            next((n for n in self.nodes.values() if n.op == "input" and n.positions == T), out)
        for i in self.inputs:  # an input that reaches no op could still differ from the output
            node = self.nodes[i]
            # (a dropout mask after a flatten is one vector per example, as the value it gates)
            if node.positions != T and not (node.positions is None and i in self.masks):
                raise ValueError(f"input {i!r} has shape {node.shape} but "
                                 f"{'the output' if ref is out else 'the input'} {ref.name!r} "
                                 f"has shape {ref.shape}: a network's inputs are all vectors or "
                                 "all sequences of the same T (net.flatten(h) makes one vector "
                                 "per example of a sequence)")
        depth = self.depth
        if depth > MAX_DEPTH:
            raise ValueError(f"the network is {depth} nodes deep (its longest path to "
                             f"{self.output_node}); symgrad derives networks of up to {MAX_DEPTH}, "
                             f"a 256-layer MLP (deeper ones pass Python's recursion "
                             "limit in SymPy)")

    @property
    def depth(self) -> int:
        """Nodes on the longest path from an input to the output: a d0-…-dL MLP is 2L deep.
        Iterative (nodes are kept in the order they were added, inputs first)."""
        longest = {}
        for name, n in self.nodes.items():
            longest[name] = 1 + max((longest.get(i, 0) for i in n.inputs), default=0)
        if self.several_losses:
            return max(longest.get(o, 0) for o in self.outputs)
        return longest.get(self.output_node, max(longest.values(), default=0))

    def __repr__(self):
        arch = " → ".join(f"{n.name}[{'×'.join(map(str, n.shape))}]" for n in self.nodes.values())
        if self.several_losses:
            terms = " + ".join(f"{'' if t.weight == 1 else str(t.weight) + '·'}{t.loss.name}"
                               f"({t.output})" for t in self.losses)
            return f"<Network {arch}; loss {terms}>"
        return f"<Network {arch}; loss {self.loss.name if self.loss else None}>"


@lru_cache(maxsize=4096)
def _matrix_symbol(name, rows, cols):  # built tens of thousands of times for a deep net
    return sp.MatrixSymbol(name, rows, cols)


def penalty_value(penalty) -> sp.Expr:
    """λ of the L2 penalty λΩ(θ) as an exact SymPy number ≥ 0: from an int, a float (kept as the
    rational it stands for: 0.01 → 1/100), a Fraction, a SymPy number, or text read by the safe
    parser only ("0.01", "1/100"). Anything else is a one-line ValueError saying what is wrong."""
    def refuse(why):
        return ValueError(f"penalty: expected a number λ ≥ 0, got {penalty!r} ({why})")

    if isinstance(penalty, bool):  # an int to Python, but True as a penalty is a slip, never λ = 1
        raise refuse("a bool")
    if isinstance(penalty, str):
        try:
            value = parse(penalty)
        except ParseError as e:
            raise refuse(str(e)) from None
    elif isinstance(penalty, sp.Basic):  # before numbers: SymPy registers its numbers there too
        value = penalty
    elif isinstance(penalty, numbers.Rational):  # int, Fraction, numpy integers: exact as given
        value = sp.Rational(int(penalty.numerator), int(penalty.denominator))
    elif isinstance(penalty, numbers.Real):      # float, numpy floats
        if not math.isfinite(penalty):
            raise refuse("not finite")
        value = _rational(float(penalty))
    else:                                        # complex, Decimal, a list …
        raise refuse(f"a {type(penalty).__name__}")
    if isinstance(value, sp.MatrixBase) or not isinstance(value, sp.Expr):
        raise refuse("a vector" if isinstance(value, sp.MatrixBase) else
                     f"a {type(value).__name__}, not a number")
    if value.free_symbols:
        names = sorted(map(str, value.free_symbols))
        if set(names) <= {"nan", "inf", "infinity", "oo", "zoo"}:  # the parser reads them as names
            raise refuse("not finite")
        raise refuse(f"it names {', '.join(names)}")
    if value.has(sp.Float):  # a SymPy Float: the rational it stands for, as for a Python float
        value = _rational(value)
    if value.has(sp.nan) or value.is_finite is not True:
        raise refuse("not finite")
    if value.is_extended_real is not True:
        raise refuse("not real")
    if value.is_nonnegative is not True:
        raise refuse("negative" if value.is_negative else "not known to be ≥ 0")
    if not math.isfinite(float(value)):  # 1e400, exp(1000): exact, but no float holds them
        raise refuse("too large for a float")
    return value


def weight_value(weight) -> sp.Expr:
    """A loss term's weight w_k: a finite number > 0, exact as a penalty is read (0.5 → 1/2,
    text through the safe parser only), else a one-line ValueError."""
    try:
        value = penalty_value(weight)
    except ValueError as e:
        raise ValueError(f"add_loss: weight: expected a finite number > 0, got {weight!r} "
                         f"({str(e).rsplit('(', 1)[-1]}") from None
    if value == 0:
        raise ValueError(f"add_loss: weight: expected a finite number > 0, got {weight!r} (zero: "
                         "a term of weight 0 is no term; leave it out)")
    return value


def _rational(x) -> sp.Expr:
    """The rational a float stands for (0.01 → 1/100) by nsimplify, only ever given a number
    (strict sympify refuses text). nsimplify rounds a tiny float such as 1e-300 to 0: there the
    float's exact binary value is kept instead."""
    number = sp.sympify(x, strict=True)
    value = sp.nsimplify(number)
    return value if value != 0 or number == 0 else sp.nsimplify(number, rational=True)


def _check_dim(dim, where) -> int:
    """A layer size as a Python int: any integer ≥ 1 (numpy's np.int64 included; a bool is a
    slip, never a size of 1), else a one-line ValueError naming where it was given."""
    if not isinstance(dim, numbers.Integral) or isinstance(dim, bool) or dim < 1:
        raise ValueError(f"{where}: a layer size must be a positive integer, got {dim!r}")
    return int(dim)


def mlp(sizes, hidden="relu", output="identity", loss="mse", penalty=0, cls=None) -> Graph:
    """A fully connected network d0-d1-…-dL: x → z1 → h1 → … → zL → ŷ.

    ``hidden`` names the hidden activation (or an expression in x), ``output`` the output one
    (identity, sigmoid, softmax, …). With an identity output ŷ is the last dense layer itself.
    ``cls`` is the class built (a Graph; ``symgrad.mlp`` builds the ``symgrad.Network`` facade).
    """
    if isinstance(sizes, str):  # each character a size: '2' was "not a positive integer"
        raise ValueError(f"mlp: sizes is a list such as [2, 2, 1], not the text {sizes!r} "
                         "(sg.load_network reads a spec such as '2-2-1')")
    sizes = list(sizes)
    if len(sizes) < 2:
        raise ValueError(f"mlp: give at least the input and output sizes, got {sizes}")
    net = (cls or Graph)()
    h = net.input("x", sizes[0])
    for k, d in enumerate(sizes[1:], start=1):
        last = k == len(sizes) - 1
        out_act = activation(output) if last else None
        z = net.dense(h, d, name="yhat" if last and out_act is ACTIVATIONS["identity"] else None)
        if not last:
            h = net.act(z, hidden, name=f"h{k}")
        elif out_act is ACTIVATIONS["identity"]:
            h = z
        else:
            h = net.act(z, output, name="yhat")
    return net.set_loss(h, loss, penalty)


__all__ = ["Graph", "Node", "mlp", "activation", "Activation", "Loss", "ACTIVATIONS", "LOSSES"]
