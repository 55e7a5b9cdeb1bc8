"""The element-level engine: a network written out unit by unit, and ∂ℓ/∂w for one weight.

Where it sits: derive, beside ``backprop`` (matrix level). A network is scalarized: every parameter
entry becomes a symbol (w1 … w6, b1 … b3 in the notes' numbering, or by position W1_12), every unit a
symbol with a local definition (z1_1 = w1 x1 + w2 x2 + b1, h1_1 = relu(z1_1)). A partial derivative
is the product of local partials along the units that separate the output from the weight, as the
notes reason ("x_j separates π from w_ij, so the Chain Rule applies"); a unit that feeds several
others gets its δ = ∂ℓ/∂u (the notes' "error"), summed over them. The product stays in the units'
symbols until the end: then the units whose written-out form is short are written out, the steps
(relu') become cases, and the result is checked against ``sympy.diff`` of the written-out loss
(exactly when cheap, else numerically at a few points) before it is returned.

Sequences: a position-wise network (every op acting on each position alone) is written out at one
position t, the same at every t. A network with attention (the ops of
``symgrad.graph.attention.ACROSS``) mixes the positions, so it is written out at every position of
one sequence: unit h1_t,i is feature i of h1 at position t (row t of the T × d value), each
position-wise op's rule applied row by row, attention's rules given whole sequences (s_tτ =
q_t · k_τ/√d_k, a_tτ = exp(s_tτ)/Σ_σ exp(s_tσ), o_t = Σ_τ a_tτ v_τ; a key the causal mask hides is
absent: its weight is the number 0). The loss ℓ is then that of one sequence, the mean of its T
positions' losses, as the kernel's mean over n·T positions is the mean of these over sequences. A
short result is written in the values of the forward pass (a_tτ, k_τ,i, ŷ_t), a long one keeps its
δ's, each defined in the backward pass printed above it. Written out, such a loss repeats every
score in each weight of its row, so the self-check there is not sympy.diff of it but forward
accumulation over the units (the opposite route to the δ's), in floats at a few points.

Cost grows with the size of the written-out loss (the number of input-to-output paths), or over
every position with the number of units, so the element level is for small networks: larger ones
are refused at once (PARAM_LIMIT, SIZE_LIMIT, UNIT_LIMIT), pointing to level="matrix".
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import sympy as sp

from symgrad.core.derivation import Derivation, Factors, Note, Partial, StepKind
from symgrad.derive.cost import cost_name
from symgrad.derive import rules
from symgrad.derive.backprop import per_position, rows_are, sequence_convention
from symgrad.core.evaluate import evaluate
from symgrad.core.primitives import (PRIMITIVES, kinked, rule_says, step, step_cases, step_says,
                                     unfold_steps)
from symgrad.graph.attention import ACROSS
from symgrad.graph.network import Graph
from symgrad.graph.ops import op_of, OPS

PARAM_LIMIT = 200    # scalar parameters: beyond this, writing the net out is pointless
SIZE_LIMIT = 3000    # nodes of the loss written out in the parameters (≈ input-to-output paths)
# A network with attention is written out at every position; past this many units (T × features
# summed over its values, inputs too, T × T for scores and weights; counted from the shapes before
# anything is written) it is refused at once. Its cost follows the units, not SIZE_LIMIT's count
# (its loss written out repeats each score in every a_tτ of its row, and nothing differentiates
# that: the self-check runs forward over the units). Layer norm, two heads, a residual and a
# softmax head, deriving the layer norm's gain (the deepest weight): T = 4, 160 units, 2.3 s and
# 144 steps; T = 5, 220 units, 5.0 s and 199 steps; an MLP near SIZE_LIMIT (2-3-3-3-3-2 tanh,
# W1_11) takes 3.5 s. At 160 the two limits cost about the same, and the derivation still reads.
UNIT_LIMIT = 160
# the registered primitives marked kinked (relu, abs, max, …; read when used, so one registered
# later counts), and a user's Piecewise, kinked wherever it switches
KINKS = kinked(sp.Piecewise)
# A node is written out by its op's registered ``scalar`` rule (symgrad.graph.ops); an op without
# one is refused by name. Read as a sum, as it once was, a mul node got a wrong gradient (0.695
# where the kernel gave 0.0517) that passed the self-check, since sympy.diff there differentiates
# the same wrong unit definitions.
ELL = sp.Symbol("ℓ")


@dataclass
class Scalar:
    """A scalarized network (one example): symbols and local definitions, in topological order."""

    params: dict        # parameter name -> Matrix of scalar symbols
    units: dict         # node name -> Matrix of unit symbols
    defs: dict          # unit symbol -> local definition (in unit and parameter symbols)
    inputs: dict        # input node -> Matrix of input symbols
    target: sp.Matrix
    loss: sp.Expr       # the per-example loss in the output units and the target
    full: dict = field(default_factory=dict)     # unit -> written out in inputs and parameters
    users: dict = field(default_factory=dict)    # symbol -> the units whose definitions use it
    softmax: dict = field(default_factory=dict)  # softmax unit -> (its index, its group of units)
    onehot: bool = False  # cross-entropy: targets are distributions, Σ_k y_k = 1
    tokens: dict = field(default_factory=dict)   # a token input's symbol -> V (its tokens)
    # each output of the loss -> its target's symbols (several losses: y1, y2_1 …, one per term)
    targets: dict = field(default_factory=dict)
    labelled: set = field(default_factory=set)   # the outputs whose loss is cross-entropy
    weights: dict = field(default_factory=dict)  # each output of the loss -> its term's weight
    # T when every position of a sequence is written out (a net with attention): each units
    # Matrix is then T × d, row t position t's units; None: one position, or a vector, a column
    positions: int | None = None
    output: sp.Matrix | None = None  # the output's units (ŷ), shaped as ``target``

    def explicit(self, expr):
        """Substitute every unit definition: an expression in inputs and parameters alone."""
        return sp.sympify(expr, strict=True).xreplace(self.full)

    def scalar(self, name: str) -> sp.Symbol:
        for M in self.params.values():
            for s in M:
                if s.name == name:
                    return s
        names = [s.name for M in self.params.values() for s in M]
        raise ValueError(f"unknown weight {name!r}; the weights are {', '.join(names[:40])}"
                         + (" …" if len(names) > 40 else ""))


def _symbols(prefix, rows, cols=1, sep=""):
    """Scalars named by position: h1_2 (unit 2 of h1), W1_12 (row 1, column 2 of W1). Once a
    matrix has 10 rows or columns the two indices are separated, W1_1,11: written together, row 1
    column 11 and row 11 column 1 were both W1_111, one symbol, so ∂ℓ/∂W1_111 was the sum of two
    gradients (12.632 for 8.973 on a 12-11-1 net) and the self-check, reading the same symbol,
    passed."""
    if cols == 1:
        if rows == 1 and not sep:
            return sp.Matrix([[sp.Symbol(prefix, real=True)]])
        return sp.Matrix(rows, 1, lambda i, _: sp.Symbol(f"{prefix}{sep}{i + 1}", real=True))
    comma = "," if max(rows, cols) > 9 else ""
    return sp.Matrix(rows, cols, lambda i, j: sp.Symbol(f"{prefix}{sep}{i + 1}{comma}{j + 1}",
                                                        real=True))


def _sequence_symbols(prefix, T, d):
    """A sequence value at every position, T × d, row t position t: unit (t, i) is named
    h1_t,i (s4_2,1 reads as the notes' s_tτ), or h1_t when the value has one feature."""
    if d == 1:
        return sp.Matrix(T, 1, lambda t, _: sp.Symbol(f"{prefix}_{t + 1}", real=True))
    return sp.Matrix(T, d, lambda t, i: sp.Symbol(f"{prefix}_{t + 1},{i + 1}", real=True))


def unrolled(net) -> int | None:
    """T when the element level writes every position of a sequence out: the network has a node
    that reads other positions (attention's); None when one position (or a vector) says it all."""
    return net.positions if any(_across(n) for n in net.nodes.values()) else None


def _attention(net) -> bool:
    return any(n.op in ACROSS for n in net.nodes.values())


def _reads_any(net) -> bool:
    """True when some node other than attention's reads other positions (a conv1d)."""
    return any(_across(n) and n.op not in ACROSS for n in net.nodes.values())


def _reads(net) -> str:
    return "; ".join((["attention reads every position"] if _attention(net) else []) +
                     (["a conv1d reads its neighbours"] if _reads_any(net) else []))


def _across(node) -> bool:
    """The node reads other positions of its sequence: attention's, or an op registered so
    (conv1d)."""
    return node.op in ACROSS or (node.op in OPS and OPS[node.op].across)


class TooLarge(ValueError):
    """A network past the element level's size limits (a handout leaves its unit-by-unit view
    out); any other ValueError is a mistake in the network or the arguments."""


def _too_large(net, what: str) -> TooLarge:
    return TooLarge(f"this network is too large for the element level ({what}); "
                    "use level=\"matrix\", which derives any size")


def scalarize(net: Graph, naming: str | None = None) -> Scalar:
    """Write the network out unit by unit. ``naming``: "notes" numbers weights and biases in order
    (w1, w2, … and b1, b2, …, as the XOR slides do), "position" names them W1_12, b1_1 (W1_1,11 once W1 has 10 rows or columns)."""
    net.check()
    for node in net.nodes.values():  # before any work, and before the size limits' advice
        if node.op != "input":
            op_of(node, "element level")
        if node.op in OPS and OPS[node.op].flattens:  # (its rows are sequences, the rest's
            raise ValueError(                          # positions: not written out here yet)
                f"the element level does not write out {node.name!r}, a flatten of a sequence "
                "(one vector per example from every position); use level=\"matrix\"")
    total = sum(r * c for r, c in net.shapes.values())
    if total > PARAM_LIMIT:
        raise _too_large(net, f"{total} scalar parameters, the limit is {PARAM_LIMIT}")
    T = unrolled(net)
    if T:
        count = sum(T * n.dim for n in net.nodes.values())
        if count > UNIT_LIMIT:
            raise _too_large(net, f"attention writes every one of its T = {T} positions out: "
                                  f"{count} units, the limit is {UNIT_LIMIT}")
    naming = naming or ("notes" if total <= 40 else "position")
    if naming not in ("notes", "position"):
        raise ValueError(f"naming must be 'notes' or 'position', not {naming!r}")
    params, counters = {}, {"w": 0, "b": 0}
    for p, (r, c) in net.shapes.items():
        if naming == "notes" and not net.is_table(p):  # an embedding table: E1_21 by position
            k = "w" if net.is_weight(p) else "b"
            start = counters[k]
            counters[k] += r * c
            params[p] = sp.Matrix(r, c, lambda i, j: sp.Symbol(f"{k}{start + i * c + j + 1}",
                                                               real=True))
        else:
            params[p] = _symbols(p, r, c, "_")
    units, defs, inputs, softmax = {}, {}, {}, {}
    for name, node in net.nodes.items():
        if node.op == "input":
            if T:
                inputs[name] = units[name] = _sequence_symbols(name, T, node.dim)
                continue
            one = name == "x" or net.tokens(name)  # a token input: one symbol, its name
            inputs[name] = units[name] = _symbols(name, node.dim, sep="" if one else "_")
            continue
        ins = [units[i] for i in node.inputs]
        op = op_of(node, "element level")
        P = [params[p] for p in node.params]
        if T is None:
            U, V = _symbols(name, node.dim, sep="_" if node.dim > 1 else ""), op.scalar(net, node,
                                                                                      ins, P)
        else:
            U, V = _sequence_symbols(name, T, node.dim), _every_position(net, node, op, ins, P, T)
            if node.op in ACROSS:  # a hidden key's score −∞ and weight 0 are numbers, not units
                U = sp.Matrix(T, node.dim, lambda t, i: V[t, i] if V[t, i].is_number else U[t, i])
        if op.softmax:  # the notes write these partials as ŷ_k (δ_kj − ŷ_j), one group a row
            for t in range(U.cols if T is None else T):
                row, vals = (U, ins[0]) if T is None else (U.row(t), ins[0].row(t))
                group = [(u, z) for u, z in zip(row, vals) if isinstance(u, sp.Symbol)]
                outs, zs = [u for u, _ in group], [z for _, z in group]
                softmax.update({u: (k, outs, zs) for k, u in enumerate(outs)})
        units[name] = U
        defs.update((u, v) for u, v in zip(U, V) if isinstance(u, sp.Symbol))
    out = units[net.output_node]
    if T is None:
        targets = {}
        for o in net.outputs:  # y, or y_cls … for the terms of several losses
            # named after the output as the matrix level names it (y_cls), so a handout writes
            # one target one way; y1, y2 … was y_1^{(2)} here beside y_cls there (issue 13)
            name = f"y_{o}" if net.several_losses else "y"
            targets[o] = _symbols(name, units[o].rows, sep="" if units[o].rows == 1 else "_")
        y = targets[net.output_node] if not net.several_losses else \
            sp.Matrix.vstack(*targets.values())
        _distinct(params, units, targets)
        loss = (net.loss.written_out(out, y) if not net.weighted else
                sp.Add(*[t.weight * t.loss.written_out(units[t.output], targets[t.output])
                         for t in net.losses]))
    else:  # one sequence: the mean of its positions' losses
        if net.several_losses:
            raise ValueError("element level: several losses over sequences written out at every "
                             "position are not written out; use level='matrix'")
        y = _sequence_symbols("y", T, out.cols)
        targets = {net.output_node: y}
        _distinct(params, units, targets)
        loss = sp.Add(*[net.loss.written_out(out.row(t), y.row(t)) for t in range(T)]) / T
    S = Scalar(params, units, defs, inputs, y, loss, softmax=softmax, onehot=net.loss.labels,
               tokens={s: net.tokens(i) for i in inputs if net.tokens(i) for s in inputs[i]},
               targets=targets, labelled={t.output for t in net.losses if t.loss.labels},
               weights={t.output: t.weight for t in net.losses}, positions=T, output=out)
    _index(S, net)
    return S


def _every_position(net, node, op, ins, params, T):
    """The node's units at every position (T × d): an op across positions is given its inputs'
    whole sequences; a position-wise op is applied to each position's row alone."""
    if _across(node):
        return op.scalar(net, node, ins, params)
    return sp.Matrix.vstack(*[op.scalar(net, node, [M.row(t).T for M in ins], params).T
                              for t in range(T)])


def _distinct(params, units, targets) -> None:
    """Every scalar written out (a weight w3, a unit h1_2 named after its node, an input, a target
    y) is a distinct symbol. Units are named after the user's nodes, so a node named "w3" or "y"
    made its units the very symbols of a weight or the target: the result was wrong (or the
    recursion endless) while the self-check, reading the same symbols, passed."""
    owner = {}
    named = {("y" if len(targets) == 1 else f"y_{o}"): M for o, M in targets.items()}
    for what, mats in (("parameter", params), ("node", units), ("target", named)):
        for name, M in mats.items():
            M = [s for s in M if isinstance(s, sp.Symbol)]  # (a hidden key's weight is the 0)
            if len(set(M)) != len(M):  # two entries of one matrix under one name
                raise ValueError(f"element level: two entries of {what} {name!r} would have one "
                                 "name; this is a bug in symgrad")
            for s in M:
                was = owner.setdefault(s, (what, name))
                if was != (what, name):
                    raise ValueError(f"element level: the scalar {s} would stand for both "
                                     f"{was[0]} {was[1]!r} and {what} {name!r}; rename the node "
                                     "(or use level='matrix', which never names scalars)")


def _index(S: Scalar, net) -> None:
    """Who uses what, and every unit written out, in one forward sweep; refuse a net whose
    written-out loss would be too large to differentiate and check (it grows with the paths)."""
    size = {}
    for u, e in S.defs.items():
        for s in e.free_symbols:
            S.users.setdefault(s, []).append(u)
        size[u] = sp.count_ops(e) + 1 + sum(size.get(s, 1) - 1 for s in e.free_symbols)
    big = sum(size.get(u, 1) for u in S.loss.free_symbols)
    if big > SIZE_LIMIT and S.positions is None:  # (over every position UNIT_LIMIT says)
        raise _too_large(net, f"its loss written out has about {big} terms, the limit is "
                              f"{SIZE_LIMIT}")
    for u, e in S.defs.items():
        S.full[u] = e.xreplace(S.full)


# -- the derivation --------------------------------------------------------------------------------
def derive_element(net: Graph, name: str, of: str = "loss", naming: str | None = None,
                   cases: bool = True, steps: str = "normal") -> Derivation:
    """∂ℓ/∂w (``of="loss"``, then ∂f/∂w for the mean over a batch) or ∂ŷ/∂w (``of="output"``) for
    one weight, step by step. ``cases=False`` leaves relu'(z) as step(z) instead of cases;
    ``steps="full"`` derives each local partial rule by rule (:mod:`symgrad.derive.rules`)."""
    if of not in ("loss", "output"):
        raise ValueError(f"of must be 'loss' or 'output', not {of!r}")
    if steps not in ("normal", "full"):
        raise ValueError(f"steps must be 'normal' or 'full' (the rules inside each partial), "
                         f"not {steps!r}")
    if of == "output" and net.several_losses:
        raise ValueError(f"of='output' needs a network with one output; this one's loss reads "
                         f"{len(net.outputs)} ({', '.join(net.outputs)}): use of='loss'")
    S = scalarize(net, naming)
    w = S.scalar(name)
    outs = [u for o in net.outputs for u in S.units[o]]
    if of == "output" and len(outs) != 1:
        raise ValueError("of='output' needs a network with one output; use of='loss'")
    T, Tsym = (outs[0], outs[0]) if of == "output" else (S.loss, ELL)
    if S.positions is None:
        d = Derivation(f"∂{Tsym}/∂{w}, unit by unit" + per_position(net))
        sequence_convention(net, d)
    else:
        d = Derivation(f"∂{Tsym}/∂{w}, unit by unit, over the T = {S.positions} position"
                       f"{'s' if S.positions > 1 else ''} of one sequence ({_reads(net)})")
        _every_position_convention(net, S, d)
    _opening(S, d, T, Tsym, w, of, net)
    d.meta["rule_steps"] = steps == "full"  # read where a local partial is taken
    deltas = {}
    value = _chain(S, d, T, Tsym, w, deltas)
    direct = sp.diff(S.explicit(T), w) if S.positions is None else _forward(S, T, w)
    result = _written_out(S, d, value, Tsym, w, outs)
    if cases and result.has(step):
        result = unfold_steps(result, net.relu_grad_at_zero)
        d.add(None, result, _cases_why(S, result, net.relu_grad_at_zero), StepKind.CASES)
    how = _check(S, value, result, direct, f"∂{Tsym}/∂{w}", deltas)
    if of == "loss":
        _batch(net, S, d, w)
    d.result = result
    if S.positions is None:
        explicit = S.explicit(result)
    else:  # the δ's a long result keeps, then the units, each written out once
        plugged = {}
        for delta, val in deltas.items():
            plugged[delta] = _plug(val, plugged)
        explicit = _plug(_plug(result, plugged), S.full)
    d.meta.update(scalar=S, weight=w, direct=direct, explicit=explicit, checked=how, value=value,
                  forward={u: S.defs[u] for u in result.free_symbols if u in S.defs},
                  deltas=deltas)
    return d


def _every_position_convention(net, S, d) -> None:
    """The first step of a network written out at every position: how its units are named, what
    attention's units are, and which ones the causal mask leaves out."""
    T = S.positions
    causal = any(n.op == "scores" and n.attr("causal") for n in net.nodes.values())
    d.add(sp.Symbol("t"), Note(
        f"positions 1 … {T} of one sequence, every one written out: a sequence value is T × d, "
        "row t the d features of position t, so h_t,i is unit i of h at position t (x_t,i input "
        "feature i, y_t,k the target there)"),
        "; ".join(
            (["attention reads every position: s_tτ = q_t · k_τ/√d_k, a_tτ = exp(s_tτ)/Σ_σ "
              "exp(s_tσ) over the keys σ position t sees, o_t,i = Σ_τ a_tτ v_τ,i"
              + ("; the causal mask hides key τ > t from position t: its score is left out of "
                 "the sum and a_tτ = 0, so position 1 sees key 1 alone and a_1,1 = 1"
                 if causal else "")] if _attention(net) else []) +
            (["a conv1d reads its neighbours: z_t,o = Σ_u Σ_c W_o,(c,u) h_(t+u−p),c + b_o, "
              "0 beyond the sequence's ends"] if _reads_any(net) else []))
        + "; every other op acts on each position alone, the same rule at every t",
        StepKind.DEFINITION)


def _opening(S, d, T, Tsym, w, of, net=None):
    if of == "loss":
        why = ("the loss of one example" if S.positions is None else
               f"the loss of one sequence: the mean of its T = {S.positions} positions' losses "
               "(the mean over n·T positions, as the kernel takes it, is the mean of these over "
               "the sequences)")
        if net is not None and net.weighted:
            why += ": Σ_k w_k ℓ_k over its terms, " + "; ".join(
                f"{'' if t.weight == 1 else f'{t.weight} × '}{t.loss.words} of {t.output} "
                f"against {_names(S.targets[t.output])}" for t in net.losses)
        d.add(Tsym, T, why, StepKind.DEFINITION)
        return
    full = S.explicit(T)
    if (S.positions and not _nodes_within(full, 400)) or sp.count_ops(full) > 80:
        return
    d.add(T, full, f"write {T} out in the weights", StepKind.DEFINITION)
    d.add(Partial(T, w), sp.Derivative(full, w, evaluate=False), rule=StepKind.DEFINITION)
    if isinstance(full, sp.Add):
        kept = sp.Add(*[t for t in full.args if t.has(w)])
        if kept != full:
            d.add(None, sp.Derivative(kept, w, evaluate=False),
                  f"only this term depends on {w}", StepKind.SIMPLIFY)


def _chain(S: Scalar, d: Derivation, T, Tsym, w, deltas: dict):
    """Record ∂T/∂w as products along the separating units; return it in unit symbols (written
    out at every position, a long one keeps its δ's, defined in ``deltas``)."""
    users = S.users.get(w, [])
    if not users:  # declared but never used (e.g. a layer the output does not reach)
        return d.add(Partial(Tsym, w), sp.Integer(0), f"{Tsym} does not depend on {w}", StepKind.JACOBIAN)
    if len(users) == 1:
        total = _along(S, d, T, Tsym, w, deltas)
    else:  # a shared weight: the chain rule sums over its uses, each through its δ
        total = sp.Integer(0)
        for u in users:
            total += _delta(S, d, T, Tsym, u, deltas) * _local(S, u, w)
        d.add(Partial(Tsym, w), total, f"{w} is used by {_names(users)}: the chain rule sums "
              "over its uses", StepKind.SUM)
    if deltas and S.positions:
        return _every_delta(S, d, Tsym, w, total, deltas)
    if deltas:
        for delta in reversed(list(deltas)):  # outermost last: each δ in terms of units alone
            total = total.xreplace({delta: deltas[delta]})
        total = sp.factor_terms(total)
        d.add(Partial(Tsym, w), total, "substitute the δ's from the backward pass",
              StepKind.SUBSTITUTION)
    return total


# A result over every position with its δ's substituted is printed when its tree has at most this
# many nodes (∂ℓ/∂w1 of one causal head at T = 2 has 95); past it the δ's stay, each defined in the
# backward pass above it, as the notes write ∂ℓ/∂w_ij = δ_j x_i. Substituted and factored, the δ's
# of a layer norm's gain under two heads at T = 2 took 11 s of factor_terms and ran to pages.
SHORT = 300


def _every_delta(S, d, Tsym, w, total, deltas):
    """Substitute the δ's (each written once, in the order the backward pass defined them) when
    the result stays short; else keep them."""
    plugged = {}
    for delta, val in deltas.items():
        plugged[delta] = _plug(val, plugged)
    full = _plug(total, plugged)
    if not _nodes_within(full, SHORT):
        return total
    full = sp.factor_terms(full)
    d.add(Partial(Tsym, w), full, "substitute the δ's from the backward pass",
          StepKind.SUBSTITUTION)
    return full


def _plug(expr, mapping: dict, memo: dict | None = None):
    """``expr`` with each symbol of ``mapping`` replaced, each distinct subexpression rebuilt
    once: xreplace walks a shared subexpression again at every use, and the δ's and units
    written out over every position share theirs many times over."""
    memo = {} if memo is None else memo

    def go(e):
        if e in mapping:
            return mapping[e]
        if not e.args:
            return e
        if e not in memo:
            args = [go(a) for a in e.args]
            memo[e] = e.func(*args) if any(a is not b for a, b in zip(args, e.args)) else e
        return memo[e]
    return go(sp.sympify(expr, strict=True))


_WEIGHTS, _BIASES = re.compile(r"[wW]\d+(_\d+(,\d+)?)?"), re.compile(r"b\d+(_\d+)?")


def _written(e) -> str:
    """A unit's definition as the notes write it, for a sentence: weights first and the bias last
    (w5 h1_1 + w6 h1_2 + b3), products by juxtaposition, never SymPy's str (b3 + h1_1*w5)."""
    def named(x, pattern):
        return isinstance(x, sp.Symbol) and bool(pattern.fullmatch(x.name))

    def term(t):
        coeff, factors = t.as_coeff_mul()
        factors = sorted(factors, key=lambda f: 0 if named(f, _WEIGHTS) else 1)
        parts = [] if coeff == 1 else [str(coeff)]
        parts += ["(%s)" % _written(f) if isinstance(f, sp.Add) else str(f) for f in factors]
        return " ".join(parts) or "1"

    if not isinstance(e, sp.Add):
        return term(e) if isinstance(e, sp.Mul) else str(e)
    terms = sorted(e.args, key=lambda t: 2 if named(t, _BIASES) else 0 if any(
        named(f, _WEIGHTS) for f in t.as_coeff_mul()[1]) else 1)
    out = ""
    for k, t in enumerate(terms):
        neg = t.could_extract_minus_sign()
        body = term(-t if neg else t)
        out += ("−" if neg else "") + body if k == 0 else (" − " if neg else " + ") + body
    return out


def _along(S, d, T, Tsym, w, deltas):
    """The chain from T down to the weight w (one use), one application of the rule per unit."""
    path = [S.users[w][0]]
    while path[-1] != T and len(S.users.get(path[-1], [])) == 1:
        path.append(S.users[path[-1]][0])
    top, down = path[-1], path[::-1]
    seps = down[1:] if top == T else down  # the units between T and w, from the top down
    local = [_local(S, a, b) for a, b in zip(down, down[1:] + [w])]
    if not seps:  # w enters T itself (∂ŷ/∂b3): nothing separates them
        d.add(Partial(Tsym, w), local[0], f"{w} enters {Tsym} = {_written(S.defs[T])} directly",
              StepKind.JACOBIAN)
        # the units named in that sentence are names of the derivation (printers set them as
        # math in the notation, h1_2 → h₂⁽¹⁾), though no step's expression holds them
        d.meta.setdefault("names", set()).update(
            x.name for x in S.defs[T].free_symbols if isinstance(x, sp.Symbol))
        return local[0]
    names = [Tsym] + seps + [w]
    for k, s in enumerate(seps):
        chain = names[:k + 2] + [w]
        d.add(Partial(Tsym, w) if k == 0 else None,
              Factors(*[Partial(a, b) for a, b in zip(chain, chain[1:])]),
              f"{s} separates {names[k]} from {w}, so the chain rule applies", StepKind.CHAIN_RULE)
    head, why = [], _local_why(S, down)
    if top != T:  # ∂T/∂top: the loss's own derivative, or the δ of a unit feeding several
        mark = len(d.steps)
        head = [_delta(S, d, T, Tsym, top, deltas) if S.users.get(top) else sp.diff(T, top)]
        if len(d.steps) > mark:  # the backward pass came in between
            why += f"; ∂{Tsym}/∂{top} = δ_{top} from the backward pass above"
    values = head + local
    ruled = False
    if d.meta.get("rule_steps"):  # each factor rule by rule, then the product restated
        pairs = ([(T, top, head[0])] if head and not S.users.get(top) else []) + \
            list(zip(down, down[1:] + [w], local))
        for a, b, v in pairs:
            ruled |= _rules(S, d, T, Tsym, a, b, v)
        if ruled:
            why += " (rule by rule above)"
    d.add(Partial(Tsym, w) if deltas or ruled else None, Factors(*values), why,
          StepKind.JACOBIAN)
    return _collapsed(S, d, top, down, values) if head and not S.users.get(top) \
        else sp.Mul(*values)


def _collapsed(S, d, top, down, values):
    """∂ℓ/∂ŷ · ∂ŷ/∂z where they simplify together, as the matrix level's do (bce after σ: ŷ − y):
    the two factors in ŷ, simplified, and checked equal; else the product as it stands."""
    if len(down) < 2 or len(values) < 2 or not isinstance(S.defs.get(top), sp.Function):
        return sp.Mul(*values)
    pair = values[0] * values[1]
    if sp.count_ops(pair) > 60:  # (a bounded effort: simplify is slow on big expressions)
        return sp.Mul(*values)
    in_top = pair.xreplace({S.defs[top]: top})
    if S.defs[top] in in_top.atoms(sp.Function) or down[1] in in_top.free_symbols:
        return sp.Mul(*values)
    simple = sp.factor(sp.cancel(in_top))
    if sp.count_ops(simple) >= sp.count_ops(in_top) or \
            sp.simplify((simple - in_top).xreplace({top: S.defs[top]})) != 0:
        return sp.Mul(*values)
    rest = values[2:]
    d.add(None, Factors(simple, *rest) if rest else simple,
          f"{top} = {S.defs[top].func.__name__}({down[1]}), so ∂ℓ/∂{top} · ∂{top}/∂{down[1]} "
          "simplifies (checked equal), as at the matrix level", StepKind.SIMPLIFY)
    return sp.Mul(simple, *rest)


def _rules(S, d, T, Tsym, a, b, value) -> bool:
    """∂a/∂b = value rule by rule, a a unit (by its definition) or T (the loss); False for
    softmax's factors, which the notes write in their own form ŷ_k (δ_kj − ŷ_j)."""
    if a in S.softmax and b in S.softmax[a][2]:
        return False
    of, f = (a, S.defs[a]) if a in S.defs else (Tsym, T)  # a unit, or the loss itself
    rules.record(d, Partial(of, b), f, b, value)
    return True


def _delta(S: Scalar, d: Derivation, T, Tsym, u, deltas: dict):
    """δ_u = ∂T/∂u by reverse accumulation over u's users (the notes' "errors"), each δ recorded
    once, in terms of the δ's above it; returns the symbol δ_u."""
    delta = sp.Symbol(f"δ_{u}", real=True)
    if delta in deltas:
        return delta
    cons = S.users.get(u, [])
    if cons:
        val = sum(_delta(S, d, T, Tsym, c, deltas) * _local(S, c, u) for c in cons)
        if d.meta.get("rule_steps"):
            for c in cons:
                _rules(S, d, T, Tsym, c, u, _local(S, c, u))
        why = (f"{u} feeds {_names(cons)}: the chain rule sums over them" if len(cons) > 1 else
               f"{cons[0]} separates {Tsym} from {u}, so the chain rule applies")
    else:
        val = sp.diff(T, u)
        if d.meta.get("rule_steps") and T.has(u) and T != u:
            _rules(S, d, T, Tsym, T, u, val)
        why = (f"∂{u}/∂{u} = 1" if T == u else "differentiate the loss" if T.has(u) else
               f"no unit reads {u}, and {Tsym} does not depend on it")
    deltas[delta] = val
    d.add(delta, val, f"δ_{u} = ∂{Tsym}/∂{u}: {why}" + _onehot(S, u, val, deltas), StepKind.BACKWARD)
    return delta


def _onehot(S, u, val, deltas) -> str:
    """For softmax + cross-entropy: the δ of a logit is ŷ_k − y_k once Σ_k y_k = 1 (one-hot
    targets), the collapse the matrix level uses; said in words, the δ itself stays general."""
    group = next((g for g in S.softmax.values() if u in g[2]), None)
    if group is None:
        return ""
    k, outs, ins = group
    if S.positions:  # (attention's weights are softmaxes too: no target reads them)
        out = S.output is not None and set(outs) <= set(S.output) and next(iter(S.targets))
    else:
        out = next((o for o, U in S.units.items() if list(U) == outs), None)
    if out not in S.labelled or out not in S.targets:  # no cross-entropy reads this softmax
        return ""
    while val.free_symbols & set(deltas):
        val = val.xreplace(deltas)
    if S.positions:  # every position written out: the target row of this softmax's position
        r = list(S.output).index(outs[0]) // S.output.cols
        y, w = list(S.target.row(r)), 1
    else:
        y = list(S.targets[out])
        w = S.weights.get(out, 1)  # several losses: w_k (ŷ_k − y_k)
    collapsed = val.xreplace({y[-1]: 1 - sum(y[:-1])}) - w * (outs[ins.index(u)] - y[ins.index(u)])
    if sp.expand(collapsed.xreplace({outs[-1]: 1 - sum(outs[:-1])})) != 0:
        return ""
    times = "" if w == 1 else f"{w}·"
    return (f"; with one-hot y (Σ_k y_k = 1, and Σ_k ŷ_k = 1) it is {times}({outs[ins.index(u)]}"
            f" − {y[ins.index(u)]})" if w != 1 else
            f"; with one-hot y (Σ_k y_k = 1, and Σ_k ŷ_k = 1) it is {outs[ins.index(u)]} − "
            f"{y[ins.index(u)]}") + ", as at the matrix level"


def _local(S: Scalar, a, b):
    """∂a/∂b for a unit a using b directly; softmax in the notes' form ŷ_k (δ_kj − ŷ_j)."""
    if a in S.softmax and b in S.softmax[a][2]:
        k, outs, ins = S.softmax[a]
        j = ins.index(b)
        return a * ((1 if j == k else 0) - outs[j])
    return sp.diff(S.defs[a], b)


def _local_why(S, units) -> str:
    said = []
    for u in units:
        e = S.defs.get(u)
        if u in S.softmax:
            said.append("softmax: ∂ŷ_k/∂z_j = ŷ_k (δ_kj − ŷ_j)")
        elif isinstance(e, sp.Function):
            said.append(rule_says(type(e)))
    said = list(dict.fromkeys(s for s in said if s))
    return "differentiate each factor" + (": " + "; ".join(said) if said else "")


def _names(units) -> str:
    return ", ".join(map(str, units))


def _written_out(S, d, value, Tsym, w, outs):
    """Factor in the units' symbols, then write out each unit whose written-out form is smooth,
    or one kink of a smooth form (relu(w1 x1 + w2 x2 + b1)), except an output when the derivative
    has kinks; the rest (ŷ, deeper pre-activations) stay as the values of the forward pass."""
    # factor_terms is structural: it pulls out (ŷ − y) and the like, never expands, and leaves
    # σ(1 − σ) and 1 − tanh² as the notes write them (simplify would turn 1 − tanh² into 1/cosh²)
    value = sp.factor_terms(value)
    if S.positions:  # written out, a unit repeats the whole sequence (every a_tτ all of row t)
        units = sorted(value.free_symbols & set(S.full), key=str)
        kept = [s for s in value.free_symbols if s.name.startswith("δ_")]
        said = ([f"{_units_kept(units)}: the values of the forward pass"] if units else []) + \
            (["the δ's those of the backward pass above (substituted, the result would run on "
              "for pages)"] if kept else [])
        if said and d.steps[-1].rhs == value:
            d.steps[-1] = replace(d.steps[-1], why=d.steps[-1].why + f" ({'; '.join(said)}; "
                                  "written out, each would repeat the sequence)")
        elif d.steps[-1].rhs != value:
            d.add(None, value, "multiply the factors", StepKind.SIMPLIFY)
        return value
    subs, kept = {}, []
    kinked = value.has(*KINKS)  # a kinked loss (Huber): its cases read best in ŷ
    for u in sorted(value.free_symbols & set(S.full), key=str):
        kinks = S.full[u].atoms(*KINKS)
        if u in outs and kinked or S.full[u].has(sp.KroneckerDelta):
            kept.append(u)  # (an embedding's unit: written out it is a sum over the vocabulary)
        elif not kinks or (len(kinks) == 1 and u not in outs):
            subs[u] = S.full[u]
        else:
            kept.append(u)
    out = value.xreplace(subs) if subs else value
    if out != value:
        why = "substitute the units' definitions"
        if kept:
            why += f" ({_names(kept)}: the values of the forward pass)"
        d.add(Partial(Tsym, w), out, why, StepKind.SUBSTITUTION)
    elif d.steps[-1].rhs != out:  # nothing to substitute: the product itself is the result
        d.add(None, out, "multiply the factors", StepKind.SIMPLIFY)
    return out


def _units_kept(units) -> str:
    return _names(units[:6]) + (f", … ({len(units)} units)" if len(units) > 6 else "")


def _cases_why(S, result, at0) -> str:
    """The cases step's justification, naming the functions whose derivative is a step."""
    rows = step_cases(sp.Symbol("z"), at0)
    text = ", ".join(f"{v} if {_rel(c)}" for v, c in rows[:-1]) + f", {rows[-1][0]} otherwise"
    used = {type(e) for e in S.defs.values()}
    whose = [step_says(p.cls) for p in PRIMITIVES.values() if p.cls in used and step_says(p.cls)]
    why = "; ".join(whose + [f"step(z) = {text}"])
    left = sorted({str(s.args[0]) for s in result.atoms(step)})
    if left:
        why += f"; step({', '.join(left)}) left as it is: more cases would not read better"
    return why


def _rel(c) -> str:
    ops = {sp.LessThan: "≤", sp.StrictLessThan: "<", sp.Equality: "="}
    return f"{c.lhs} {ops[type(c)]} {c.rhs}"


def _batch(net, S, d, w):
    """∂f/∂w for f = (1/n) Σ_i ℓ_i + λΩ(θ), Ω = ½ Σ w² over the weights (Algorithm 6.4)."""
    i, n = sp.Symbol("i", integer=True, positive=True), sp.Symbol("n", integer=True, positive=True)
    rhs = sp.Sum(sp.Derivative(sp.IndexedBase(ELL)[i], w, evaluate=False), (i, 1, n)) / n
    f = cost_name(net)
    why = f"{f} = (1/n) Σ_i ℓ_i is the mean loss over {rows_are(net)}: average their derivatives"
    if S.positions:
        why = (f"{f} = (1/n) Σ_i ℓ_i is the mean loss over the n sequences (each ℓ_i the mean over "
               f"its T = {S.positions} positions: {f} is the mean over all n·T, as the kernel's): "
               "average their derivatives")
    if net.penalty != 0:
        weights = {s for p, M in S.params.items() if net.is_weight(p) for s in M}
        if w in weights:
            rhs += net.penalty * w
            why += f"; the penalty λΩ(θ), Ω = ½ Σ w², adds λ {w} with λ = {net.penalty}"
        else:
            why += f"; the penalty λΩ(θ) leaves out the biases, so {w} gets no λ term"
    d.add(Partial(sp.Symbol(f), w), rhs, why, StepKind.BATCH)


# -- the self-check ---------------------------------------------------------------------------------
def _forward(S: Scalar, T, w):
    """∂T/∂w by forward accumulation: each unit's derivative from those of the units its
    definition reads, in the units' order, the route opposite to the chain's δ's; in the units'
    symbols, each unit's derivative a shared subexpression (the evaluator visits it once).
    For a network written out at every position: sympy.diff of its written-out loss met every
    score of a row again in each a_tτ and took 13 s of 15 for layer norm and one head at T = 2."""
    D = {w: sp.Integer(1)}
    for u, e in S.defs.items():
        terms = [sp.Mul(sp.diff(e, s), D[s], evaluate=False) for s in e.free_symbols if s in D]
        if terms:
            D[u] = sp.Add(*terms, evaluate=False)
    if T in D:
        return D[T]
    return sp.Add(*[sp.Mul(sp.diff(T, s), D[s], evaluate=False) for s in T.free_symbols
                    if s in D], evaluate=False)


def _nodes_within(expr, limit: int) -> bool:
    """Whether the tree of ``expr`` has at most ``limit`` nodes, walking no more than that:
    count_ops walks the whole tree, and an attention's written-out loss repeats its shared
    subexpressions (every a_tτ reads every score of row t) until the tree is millions of nodes
    (4.5 s of a 7.5 s derivation for two heads after a layer norm at T = 2)."""
    for k, _ in enumerate(sp.preorder_traversal(expr)):
        if k >= limit:
            return False
    return True


def _check(S: Scalar, value, result, direct, what: str, deltas=None, points: int = 3) -> str:
    """Check the chain (and the result drawn from it) against sympy.diff of the written-out loss:
    exactly when a cheap expansion shows it, else in floats at a few random points. Bounded in
    time: the evaluator below visits each distinct subexpression once (no code generation)."""
    import numpy as np
    if S.positions is None:  # (else direct is in the units' symbols: checked in floats)
        diff = S.explicit(value) - direct
        if diff == 0 or (_nodes_within(diff, 1000) and sp.count_ops(diff) < 150 and
                         sp.expand(diff) == 0):
            if result == value:
                return "exact"
    base = sorted(set().union(*[M.free_symbols for M in S.params.values()],
                              *[M.free_symbols for M in S.inputs.values()],
                              S.target.free_symbols), key=str)
    rng, checked = np.random.default_rng(0), 0
    for _ in range(4 * points):
        env = dict(zip(base, rng.uniform(-2, 2, len(base))))
        env.update({t: int(rng.integers(0, V)) for t, V in S.tokens.items()})  # a token: an index
        for u, e in S.defs.items():  # the forward pass, unit by unit
            env[u] = evaluate(e, env)
        for delta, e in (deltas or {}).items():  # the backward pass (δ's a result keeps)
            env[delta] = evaluate(e, env)
        vals = [evaluate(e, env) for e in (direct, value, result)]
        if not all(np.isfinite(v) for v in vals):
            continue
        if any(abs(v - vals[0]) > 1e-9 * (1 + abs(v) + abs(vals[0])) for v in vals[1:]):
            raise ArithmeticError(f"the chain for {what} disagrees with sympy.diff: a bug")
        checked += 1
        if checked == points:
            return f"numeric at {points} points"
    raise ArithmeticError(f"{what}: could not check the chain against sympy.diff at any point")
