"""The facade: ``symgrad.Network``, a network graph with the engines as methods.

Where it sits: the top, beside ``symgrad/__init__`` and the CLI. :class:`Network` is the plain-data
:class:`~symgrad.graph.network.Graph` (nodes, parameters, loss) plus one-line methods that hand it
to the layers below: ``derive`` (symgrad.derive), ``compile``/``init_params``/``predict``
(symgrad.compile). Nothing below imports this module; every engine takes any ``Graph``.
"""
from __future__ import annotations

from symgrad.compile.assembled import against_kernel
from symgrad.compile.kernel import compile_network, predict
from symgrad.compile.spec import init_params
from symgrad.derive import assemble, backprop, element, indexed, matrix
from symgrad.derive import cost as cost_of
from symgrad.graph import files
from symgrad.graph import network as _graph
from symgrad.graph.activations import ACTIVATIONS, VECTOR_ACTIVATIONS, Activation, activation
from symgrad.graph.losses import LOSSES, Loss
from symgrad.graph.network import Graph, Node


class Network(Graph):
    """A network as a DAG of named nodes over named parameters; see :func:`mlp` for the shortcut.

    Build it with ``input``, ``dense``, ``act``, ``add`` and ``set_loss`` (the Graph's); derive,
    compile and run it with the methods below."""

    def derive(self, name: str, level: str = "matrix", cost: str | None = None, **kw):
        """The derivation of ∂f/∂``name``: ``level`` "matrix" (a chain of Jacobians simplified to
        the backprop form), "element" (unit by unit, for a scalar weight such as w1; for a
        parameter such as W1, every entry's partial derivative assembled into its gradient; a
        name that is both, b1 of the notes' naming, is the scalar) or "index" (one-hidden-layer
        nets: the general entry, W1_ij or ESL's alpha_ml, in symbolic indices, also what level
        "element" does with index letters; ``notation`` names the letters, "esl" by default).
        ``cost`` "mean" (the default, except for the index level in ESL's notation: "sum") or
        "sum" over the examples."""
        if level == "index" or (level == "element" and indexed.general(name, self)):
            # W1_ij at the element level: the general entry, alongside the concrete W1_12
            kw.pop("naming", None), kw.pop("steps", None), kw.pop("cases", None)
            return indexed.derive_index(self, name, cost=cost, **kw)
        if level == "matrix":
            return cost_of.with_cost(self, matrix.derive_parameter(self, name, **kw), cost)
        if level == "element":
            if assemble.names_parameter(self, name, kw.get("naming")):
                kw.pop("steps", None)  # (each entry's derivation is shown by its result)
                return assemble.assembled(self, name, agree=against_kernel, **kw)
            return cost_of.with_cost(self, element.derive_element(self, name, **kw), cost)
        raise ValueError(f"level must be 'matrix', 'element' or 'index', not {level!r}")

    def derive_all(self, level: str = "matrix", cost: str | None = None, **kw) -> list:
        """Every parameter's derivation, in order. The matrix level: each chain starts at the
        nearest node whose g an earlier derivation derived, so the whole is linear in depth;
        ``cost`` "mean" (the default) or "sum" over the examples. The element level: every
        partial derivative of each parameter assembled into its gradient (one example's ℓ),
        then gradient descent written out weight by weight (the XOR slides' last steps)."""
        if level == "element":
            return [assemble.assembled(self, p, agree=against_kernel, **kw)
                    for p in self.parameters] + [assemble.descent(self, kw.get("naming"))]
        if level != "matrix":
            raise ValueError(f"level must be 'matrix' or 'element', not {level!r}")
        return [cost_of.with_cost(self, d, cost) for d in matrix.derive_all(self)]

    def gradients(self) -> dict:
        return backprop.gradients(self)

    def backprop(self):
        """Algorithm 6.4 derived for this network."""
        return backprop.algorithm(self)

    def compile(self, backend: str = "numpy", **kw):
        """A kernel: ``loss, grads = kernel(params, X, Y)`` (see symgrad.compile)."""
        return compile_network(self, backend=backend, **kw)

    def init_params(self, seed: int = 0, dtype="float64") -> dict:
        return init_params(self, seed=seed, dtype=dtype)

    def predict(self, params: dict, X):
        """The output for X (probabilities for sigmoid and softmax outputs), shaped as torch
        would give it: (n, k), (n, T, k) for sequences, (n, C, H, W) for an image output, a dict
        {output: values} for several losses. X as the kernel takes it."""
        return predict(self, params, X)


def mlp(sizes, hidden="relu", output="identity", loss="mse", penalty=0) -> Network:
    """A fully connected network d0-d1-…-dL: x → z1 → h1 → … → zL → ŷ (see graph.network.mlp)."""
    return _graph.mlp(sizes, hidden, output, loss, penalty, cls=Network)


def load_network(source: str, hidden="relu", output="identity", loss="mse",
                 timeout: float | None = None, on_overrun=None) -> Graph:
    """A network from a spec ('2-2-1') or a Python file defining one (see graph.files);
    ``timeout`` seconds stop a file still running (main thread only)."""
    return files.load_network(source, hidden, output, loss, cls=Network, timeout=timeout,
                              on_overrun=on_overrun)


parse_spec = files.parse_spec
run_network_file = files.run_network_file

__all__ = ["Network", "Node", "Graph", "mlp", "activation", "Activation", "Loss", "ACTIVATIONS",
           "VECTOR_ACTIVATIONS", "LOSSES", "parse_spec", "load_network", "run_network_file"]
