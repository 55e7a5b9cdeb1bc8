"""The element-level engine: a network written out unit by unit, and ∂ℓ/∂w for one weight.

Where it sits: derive, beside ``backprop`` (matrix level). A network is scalarized: every parameter
entry becomes a symbol (w1 … w6, b1 … b3 in the notes' numbering, or by position W1_12), every unit a
symbol with a local definition (z1_1 = w1 x1 + w2 x2 + b1, h1_1 = relu(z1_1)). A partial derivative
is then the product of local partials along the units that separate the output from the weight,
as the notes reason ("x_j separates π from w_ij, so the Chain Rule applies"), summed where a unit
feeds several others. Non-smooth activations come out as cases. The product is checked against
``sympy.diff`` of the written-out expression before it is returned.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from .calculus import same, tidy
from .derivation import Derivation, Partial
from .functions import unfold_steps
from .network import Network


@dataclass
class Scalar:
    """A scalarized network (one example): symbols and local definitions, in topological order."""

    params: dict        # parameter name -> Matrix of scalar symbols
    units: dict         # node name -> Matrix of unit symbols
    defs: dict          # unit symbol -> local definition (in unit and parameter symbols)
    inputs: dict        # input node -> Matrix of input symbols
    target: sp.Matrix
    loss: sp.Expr       # the per-example loss in the output units and the target

    def explicit(self, expr):
        """Substitute every unit definition: an expression in inputs and parameters alone."""
        for u in reversed(list(self.defs)):
            expr = expr.xreplace({u: self.defs[u]})
        return expr

    def scalar(self, name: str) -> sp.Symbol:
        for M in self.params.values():
            for s in M:
                if s.name == name:
                    return s
        names = [s.name for M in self.params.values() for s in M]
        raise ValueError(f"unknown weight {name!r}; the weights are {', '.join(names[:40])}"
                         + (" …" if len(names) > 40 else ""))


def _symbols(prefix, rows, cols=1, sep=""):
    if cols == 1:
        if rows == 1 and not sep:
            return sp.Matrix([[sp.Symbol(prefix, real=True)]])
        return sp.Matrix(rows, 1, lambda i, _: sp.Symbol(f"{prefix}{sep}{i + 1}", real=True))
    return sp.Matrix(rows, cols, lambda i, j: sp.Symbol(f"{prefix}{sep}{i + 1}{j + 1}", real=True))


def scalarize(net: Network, naming: str | None = None) -> Scalar:
    """Write the network out unit by unit. ``naming``: "notes" numbers weights and biases in order
    (w1, w2, … and b1, b2, …, as the XOR slides do), "position" names them W1_12, b1_1."""
    net.check()
    total = sum(r * c for r, c in net.shapes.values())
    naming = naming or ("notes" if total <= 40 else "position")
    if naming not in ("notes", "position"):
        raise ValueError(f"naming must be 'notes' or 'position', not {naming!r}")
    params, counters = {}, {"w": 0, "b": 0}
    for p, (r, c) in net.shapes.items():
        is_w = any(n.params and n.params[0] == p for n in net.nodes.values())
        if naming == "notes":
            k = "w" if is_w else "b"
            start = counters[k]
            counters[k] += r * c
            params[p] = sp.Matrix(r, c, lambda i, j: sp.Symbol(f"{k}{start + i * c + j + 1}",
                                                               real=True))
        else:
            params[p] = _symbols(p, r, c, "_")
    units, defs, inputs = {}, {}, {}
    for name, node in net.nodes.items():
        if node.op == "input":
            inputs[name] = units[name] = _symbols(name, node.dim, sep="" if name == "x" else "_")
            continue
        U = _symbols(name, node.dim, sep="_" if node.dim > 1 else "")
        ins = [units[i] for i in node.inputs]
        if node.op == "dense":
            V = params[node.params[0]] * ins[0]
            if len(node.params) > 1:
                V = V + params[node.params[1]]
        elif node.op == "act":
            V = ins[0].applyfunc(node.act.f)
        elif node.op == "softmax":
            e = ins[0].applyfunc(sp.exp)
            V = e / sum(e)
        else:
            V = ins[0] + ins[1]
        units[name] = U
        defs.update(zip(U, V))
    out = units[net.output_node]
    y = _symbols("y", out.rows, sep="" if out.rows == 1 else "_")
    return Scalar(params, units, defs, inputs, y, _loss(net, out, y))


def _loss(net, out, y):
    name = net.loss.name
    if name == "mse":
        return sp.Rational(1, 2) * sum((a - b) ** 2 for a, b in zip(out, y))
    if name == "bce":
        return -sum(b * sp.log(a) + (1 - b) * sp.log(1 - a) for a, b in zip(out, y))
    if name == "cross_entropy":
        return -sum(b * sp.log(a) for a, b in zip(out, y))
    return sum(net.loss.L(a, b) for a, b in zip(out, y))


def _consumers(S: Scalar, u) -> list:
    return [c for c, e in S.defs.items() if e.has(u)]


def derive_element(net: Network, name: str, of: str = "loss", naming: str | None = None,
                   cases: bool = True) -> Derivation:
    """∂ℓ/∂w (``of="loss"``) or ∂ŷ/∂w (``of="output"``) for one weight, step by step."""
    S = scalarize(net, naming)
    w = S.scalar(name)
    outs = list(S.units[net.output_node])
    if of == "output":
        if len(outs) != 1:
            raise ValueError("of='output' needs a network with one output; use of='loss'")
        T, Tsym = outs[0], outs[0]
    elif of == "loss":
        T, Tsym = S.loss, sp.Symbol("ℓ")
    else:
        raise ValueError(f"of must be 'loss' or 'output', not {of!r}")
    d = Derivation(f"∂{Tsym}/∂{w}, unit by unit")
    if of == "output" and sp.count_ops(S.explicit(T)) <= 80:
        full = S.explicit(T)
        d.add(T, full, "write ŷ out in the weights", "definition")
        d.add(Partial(T, w), sp.Derivative(full, w, evaluate=False), rule="definition")
        if isinstance(full, sp.Add):
            kept = sp.Add(*[t for t in full.args if t.has(w)])
            if kept != full:
                d.add(None, sp.Derivative(kept, w, evaluate=False),
                      f"only this term depends on {w}", "simplify")
    elif of == "loss":
        d.add(Tsym, T, "the loss of one example", "definition")
    value = _chain(S, d, T, Tsym, w)
    explicit = tidy(S.explicit(value))
    d.add(Partial(Tsym, w), explicit, "substitute the units' definitions", "substitution")
    direct = sp.diff(S.explicit(T), w)
    if not same(explicit, direct):
        raise ArithmeticError(f"the chain for ∂{Tsym}/∂{w} disagrees with sympy.diff: a bug")
    result = explicit
    if cases and _has_steps(explicit):
        result = unfold_steps(explicit)
        d.add(None, result, "relu'(z) = 0 if z ≤ 0, 1 otherwise", "cases")
    if of == "loss":
        d.add(Partial(sp.Symbol("f"), w),
              sp.Symbol(f"(1/n) Σ_i ∂ℓ_i/∂{w}"),
              "the mean loss over n examples: average the per-example derivatives", "batch")
    d.result = result
    d.meta.update(scalar=S, weight=w, direct=direct)
    return d


def _has_steps(e) -> bool:
    from .functions import leaky_relu, relu, step
    return e.has(step) or e.has(relu) or e.has(leaky_relu)


def _chain(S: Scalar, d: Derivation, T, Tsym, w):
    """Record ∂T/∂w as a product along the separating units; return it in unit symbols."""
    users, deltas = _consumers(S, w), {}
    total = sp.Integer(0)
    for u in users:
        path = [u]  # climb while the unit feeds exactly one other: each one separates T from w
        while path[-1] != T and len(_consumers(S, path[-1])) == 1:
            path.append(_consumers(S, path[-1])[0])
        top, down = path[-1], path[::-1]
        syms, values = down + [w], []
        if top != T:  # the loss (not a unit), or a unit feeding several: ∂T/∂top first
            syms = [Tsym] + syms
            values.append(sp.diff(T, top) if not _consumers(S, top) else
                          _delta(S, d, T, Tsym, top, deltas))
        values += [sp.diff(S.defs[a], b) for a, b in zip(down, down[1:] + [w])]
        seps = ", ".join(map(str, down if top != T else down[1:])) or str(u)
        d.add(Partial(Tsym, w), _Product(*[Partial(a, b) for a, b in zip(syms, syms[1:])]),
              f"{seps} separate{'s' if ',' not in seps else ''} {Tsym} from {w}, "
              "so the chain rule applies", "chain_rule")
        d.add(None, _Product(*values), "differentiate each factor", "jacobian")
        total += sp.Mul(*values)
    if len(users) > 1:
        d.add(Partial(Tsym, w), total, f"{w} is used {len(users)} times: the terms add", "sum")
    for delta in reversed(list(deltas)):  # δ's in terms of units alone, outermost first
        total = total.xreplace({delta: deltas[delta]})
    return total


def _delta(S: Scalar, d: Derivation, T, Tsym, u, deltas: dict):
    """δ_u = ∂T/∂u by reverse accumulation over u's consumers (the notes' "errors"), each δ
    recorded once as a step in terms of the δ's above it; returns the symbol δ_u."""
    delta = sp.Symbol(f"δ_{u}", real=True)
    if delta in deltas:
        return delta
    cons = _consumers(S, u)
    val = sum(_delta(S, d, T, Tsym, c, deltas) * sp.diff(S.defs[c], u) for c in cons) if cons \
        else sp.diff(T, u)
    deltas[delta] = val
    d.add(Partial(Tsym, u), val, f"δ_{u}: {u} feeds {', '.join(map(str, cons))}, sum over them"
          if cons else f"δ_{u}", "backward")
    return delta


class _Product(sp.Basic):
    """Factors written side by side, unmultiplied."""

    def _sympystr(self, p):
        return " · ".join(f"({p._print(a)})" if isinstance(a, sp.Add) else p._print(a)
                          for a in self.args)

    def _latex(self, p):
        return r" \cdot ".join(r"\left(%s\right)" % p._print(a) if isinstance(a, sp.Add)
                               else p._print(a) for a in self.args)


