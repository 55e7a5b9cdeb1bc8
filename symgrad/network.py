"""Declaring networks: layers, activations and losses composed into a graph of SymPy expressions.

Where it sits: declare → graph. A :class:`Network` is an ordered DAG of nodes (inputs, dense layers,
elementwise activations, softmax, sums for skip connections) over named parameters. Each node's value
is a SymPy ``MatrixSymbol`` (one example, a column) with its definition as a matrix expression; the
engines in ``backprop`` (matrix level) and ``element`` (scalar level) differentiate these graphs.
Shapes follow the notes and ``torch.nn.Linear``: W_k is d_k × d_{k−1}, b_k has d_k entries.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from .functions import RULES, leaky_relu, relu, rule_for, sigmoid, softplus
from .matexpr import Elementwise, Softmax, lam
from .parse import ParseError, parse


# -- activations ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Activation:
    """An elementwise activation: f as a Lambda, and f' as a Lambda of (z, h = f(z))."""

    name: str
    f: sp.Lambda
    prime: sp.Lambda
    latex: str
    prime_latex: str

    def apply(self, z):
        return Elementwise(self.f, z, label=self.name, latex=self.latex)

    def derivative(self, z, h):
        """f'(z) entrywise; rules written in terms of h = f(z) reuse the forward value."""
        return Elementwise(self.prime, z, h, label=f"{self.name}'", latex=self.prime_latex,
                           shown=1)


def _from_primitive(name, prim, latex) -> Activation:
    rule = rule_for(prim)
    t, a = sp.Dummy("t", real=True), sp.Dummy("a", real=True)
    return Activation(name, sp.Lambda(t, prim(t)), sp.Lambda((t, a), rule.deriv(a, t)), latex,
                      rule.prime_latex)


def _builtin_activations() -> dict:
    t, a = sp.Dummy("t", real=True), sp.Dummy("a", real=True)
    acts = {"identity": Activation("identity", sp.Lambda(t, t), sp.Lambda((t, a), sp.Integer(1)),
                                   r"\operatorname{id}", r"\operatorname{id}'")}
    for name, prim, latex in [("relu", relu, r"\operatorname{relu}"), ("sigmoid", sigmoid, r"\sigma"),
                              ("tanh", sp.tanh, r"\tanh"),
                              ("softplus", softplus, r"\operatorname{softplus}")]:
        acts[name] = _from_primitive(name, prim, latex)
    step_rule = sp.Lambda((t, a), leaky_relu(t).diff(t))
    acts["leaky_relu"] = Activation("leaky_relu", sp.Lambda(t, leaky_relu(t)), step_rule,
                                    r"\operatorname{lrelu}", r"\operatorname{lrelu}'")
    return acts


ACTIVATIONS = _builtin_activations()
VECTOR_ACTIVATIONS = ("softmax",)


def activation(spec, name: str | None = None) -> Activation | str:
    """An activation by name (relu, sigmoid, …, softmax) or a user expression in ``x``.

    ``activation("x/(1 + abs(x))", name="softsign")``: its derivative is derived with sympy.diff,
    through the rule table for any primitive it uses.
    """
    if isinstance(spec, Activation) or spec in VECTOR_ACTIVATIONS:
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"activation: expected a name or an expression in x, got {spec!r}")
    if spec in ACTIVATIONS:
        return ACTIVATIONS[spec]
    try:
        body = parse(spec)
    except ParseError as e:
        raise ParseError(f"activation {spec!r}: {e}", e.column, spec) from None
    x = sp.Symbol("x", real=True)
    if not isinstance(body, sp.Expr) or not body.free_symbols <= {x}:
        raise ValueError(f"activation {spec!r}: expected a name ({', '.join(ACTIVATIONS)}, "
                         "softmax) or an expression in x alone")
    t, a = sp.Dummy("t", real=True), sp.Dummy("a", real=True)
    f = body.xreplace({x: t})
    label = name or "a"
    return Activation(label, sp.Lambda(t, f), sp.Lambda((t, a), sp.diff(f, t)),
                      rf"\operatorname{{{label}}}" if len(label) > 1 else label,
                      rf"\operatorname{{{label}}}'" if len(label) > 1 else label + "'")


# -- losses ---------------------------------------------------------------------------------------
LOSSES = ("mse", "bce", "cross_entropy")


@dataclass(frozen=True)
class Loss:
    """A loss summed over output components: mse, bce, cross_entropy, or a user expression
    L(yhat, y) of one component (e.g. a Huber loss ``min(abs(yhat - y), 1)*(abs(yhat - y) -
    min(abs(yhat - y), 1)/2)``)."""

    name: str
    L: sp.Lambda | None = None  # per component, for a user loss

    @classmethod
    def make(cls, spec) -> "Loss":
        if isinstance(spec, Loss):
            return spec
        if spec in LOSSES:
            return cls(spec)
        if not isinstance(spec, str):
            raise TypeError(f"loss: expected one of {', '.join(LOSSES)} or an expression")
        body = parse(spec)
        yh, y = sp.Symbol("yhat", real=True), sp.Symbol("y", real=True)
        if not isinstance(body, sp.Expr) or not body.free_symbols <= {yh, y}:
            raise ValueError(f"loss {spec!r}: expected one of {', '.join(LOSSES)} or an "
                             "expression in yhat and y")
        p, t = sp.Dummy("p", real=True), sp.Dummy("t", real=True)
        return cls("custom", sp.Lambda((p, t), body.xreplace({yh: p, y: t})))


# -- the graph ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Node:
    """One value in the graph: op is input, dense, act, softmax or add."""

    name: str
    op: str
    inputs: tuple = ()
    params: tuple = ()
    dim: int = 0
    act: Activation | None = None


@dataclass
class Network:
    """A network as a DAG of named nodes over named parameters; see :func:`mlp` for the shortcut."""

    nodes: dict = field(default_factory=dict)
    shapes: dict = field(default_factory=dict)  # parameter name -> (rows, cols)
    output_node: str | None = None
    loss: Loss | None = None
    penalty: sp.Expr = sp.Integer(0)
    layers: int = 0

    # building
    def _add(self, node: Node) -> str:
        if node.name in self.nodes or node.name in self.shapes:
            raise ValueError(f"the name {node.name!r} is already used in this network")
        for i in node.inputs:
            if i not in self.nodes:
                raise ValueError(f"{node.name}: unknown input node {i!r}")
        self.nodes[node.name] = node
        return node.name

    def input(self, name: str = "x", dim: int = 1) -> str:
        _check_dim(dim, name)
        return self._add(Node(name, "input", dim=dim))

    def dense(self, inp: str, dim: int | None = None, *, W: str | None = None, b=True,
              name: str | None = None) -> str:
        """z = W h + b. Reusing a parameter name shares the weights (shapes must agree)."""
        if W is None or W not in self.shapes:
            self.layers += 1
        k = self.layers
        W = W or f"W{k}"
        if dim is None:
            if W not in self.shapes:
                raise ValueError(f"dense: give the output size of {W}")
            dim = self.shapes[W][0]
        _check_dim(dim, W)
        h = self.nodes[inp] if inp in self.nodes else None
        if h is None:
            raise ValueError(f"dense: unknown input node {inp!r}")
        params = [self._param(W, (dim, h.dim))]
        if b:
            params.append(self._param(b if isinstance(b, str) else f"b{k}", (dim, 1)))
        return self._add(Node(name or f"z{k}", "dense", (inp,), tuple(params), dim))

    def _param(self, name: str, shape) -> str:
        if name in self.nodes:
            raise ValueError(f"the name {name!r} is already used for a node")
        if self.shapes.setdefault(name, shape) != shape:
            raise ValueError(f"parameter {name} is shared with shape {self.shapes[name]}, "
                             f"but here it needs {shape}")
        return name

    def act(self, inp: str, act, name: str | None = None) -> str:
        a = activation(act)
        z = self.nodes[inp]
        if a == "softmax":
            return self._add(Node(name or "yhat", "softmax", (inp,), dim=z.dim))
        return self._add(Node(name or f"h{self.layers}", "act", (inp,), dim=z.dim, act=a))

    def add(self, a: str, b: str, name: str | None = None) -> str:
        if self.nodes[a].dim != self.nodes[b].dim:
            raise ValueError(f"add: {a} has {self.nodes[a].dim} entries, {b} has "
                             f"{self.nodes[b].dim}")
        return self._add(Node(name or f"s{len(self.nodes)}", "add", (a, b),
                              dim=self.nodes[a].dim))

    def set_loss(self, output: str, loss="mse", penalty=0) -> "Network":
        if output not in self.nodes:
            raise ValueError(f"unknown output node {output!r}")
        self.output_node, self.loss = output, Loss.make(loss)
        self.penalty = sp.nsimplify(penalty)
        out = self.nodes[output]
        if self.loss.name == "bce" and not (out.op == "act" and out.act.name == "sigmoid"):
            raise ValueError("bce needs sigmoid outputs (output='sigmoid')")
        if self.loss.name == "cross_entropy" and out.op != "softmax":
            raise ValueError("cross_entropy needs softmax outputs (output='softmax')")
        return self

    # reading
    @property
    def parameters(self) -> list[str]:
        return list(self.shapes)

    @property
    def inputs(self) -> list[str]:
        return [n.name for n in self.nodes.values() if n.op == "input"]

    def sym(self, name: str) -> sp.MatrixSymbol:
        """The per-example symbol of a node (a column) or of a parameter."""
        if name in self.shapes:
            return sp.MatrixSymbol(name, *self.shapes[name])
        return sp.MatrixSymbol(name, self.nodes[name].dim, 1)

    @property
    def target(self) -> sp.MatrixSymbol:
        return sp.MatrixSymbol("y", self.nodes[self.output_node].dim, 1)

    def definition(self, name: str):
        """A node's value in terms of its inputs' symbols and its parameters (one example)."""
        n = self.nodes[name]
        ins = [self.sym(i) for i in n.inputs]
        if n.op == "dense":
            z = sp.MatMul(self.sym(n.params[0]), ins[0])
            return sp.MatAdd(z, self.sym(n.params[1])) if len(n.params) > 1 else z
        if n.op == "act":
            return n.act.apply(ins[0])
        if n.op == "softmax":
            return Softmax(ins[0])
        if n.op == "add":
            return sp.MatAdd(*ins)
        raise ValueError(f"{name} is an input: it has no definition")

    def consumers(self, name: str) -> list[str]:
        return [n.name for n in self.nodes.values() if name in n.inputs or name in n.params]

    def check(self) -> None:
        if self.output_node is None:
            raise ValueError("the network has no output and loss: call set_loss")
        if not self.shapes:
            raise ValueError("the network has no parameters")

    def __repr__(self):
        arch = " → ".join(f"{n.name}[{n.dim}]" for n in self.nodes.values())
        return f"<Network {arch}; loss {self.loss.name if self.loss else None}>"

    # the engines (imported late: they build on this module)
    def derive(self, name: str, level: str = "matrix", **kw):
        from . import backprop, element
        if level == "matrix":
            return backprop.derive_parameter(self, name, **kw)
        if level == "element":
            return element.derive_element(self, name, **kw)
        raise ValueError(f"level must be 'matrix' or 'element', not {level!r}")

    def gradients(self) -> dict:
        from . import backprop
        return backprop.gradients(self)

    def backprop(self):
        from . import backprop
        return backprop.algorithm(self)

    def compile(self, backend: str = "numpy", **kw):
        """A kernel: ``loss, grads = kernel(params, X, Y)`` (see symgrad.compile)."""
        from . import compile as _compile
        return _compile.compile_network(self, backend=backend, **kw)

    def init_params(self, seed: int = 0, dtype="float64") -> dict:
        from . import compile as _compile
        return _compile.init_params(self, seed=seed, dtype=dtype)

    def predict(self, params: dict, X):
        from . import compile as _compile
        return _compile.predict(self, params, X)


def _check_dim(dim, where):
    if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
        raise ValueError(f"{where}: a layer size must be a positive integer, got {dim!r}")


def mlp(sizes, hidden="relu", output="identity", loss="mse", penalty=0) -> Network:
    """A fully connected network d0-d1-…-dL: x → z1 → h1 → … → zL → ŷ.

    ``hidden`` names the hidden activation (or an expression in x), ``output`` the output one
    (identity, sigmoid, softmax, …). With an identity output ŷ is the last dense layer itself.
    """
    sizes = list(sizes)
    if len(sizes) < 2:
        raise ValueError(f"mlp: give at least the input and output sizes, got {sizes}")
    net = Network()
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


def parse_spec(spec: str) -> list[int]:
    """'784-256-128-10' -> [784, 256, 128, 10], with a one-line error naming a bad part."""
    parts = spec.split("-")
    if len(parts) < 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"bad network spec {spec!r}: expected sizes like 2-2-1")
    return [int(p) for p in parts]


__all__ = ["Network", "mlp", "activation", "Activation", "Loss", "ACTIVATIONS", "parse_spec",
           "RULES"]


def load_network(source: str, hidden="relu", output="identity", loss="mse") -> Network:
    """A network from a spec ('2-2-1', with the given activations and loss) or from a Python file
    that defines one (the user's own code, run as a script; the first Network found is used)."""
    if source.endswith(".py"):
        import runpy
        from pathlib import Path
        if not Path(source).is_file():
            raise ValueError(f"no such network file: {source}")
        found = [v for v in runpy.run_path(source, run_name="symgrad_network").values()
                 if isinstance(v, Network)]
        if not found:
            raise ValueError(f"{source} defines no Network (build one with symgrad.mlp or "
                             "symgrad.Network)")
        return found[0]
    return mlp(parse_spec(source), hidden=hidden, output=output, loss=loss)
