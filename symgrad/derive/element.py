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

Cost grows with the size of the written-out loss (the number of input-to-output paths), so the
element level is for small networks: larger ones are refused at once, pointing to level="matrix".
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from symgrad.core.derivation import Derivation, Factors, Partial, StepKind
from symgrad.derive.backprop import per_position, rows_are, sequence_convention
from symgrad.core.evaluate import evaluate
from symgrad.core.primitives import (PRIMITIVES, kinked, rule_says, step, step_cases, step_says,
                                     unfold_steps)
from symgrad.graph.network import Graph
from symgrad.graph.ops import op_of

PARAM_LIMIT = 200    # scalar parameters: beyond this, writing the net out is pointless
SIZE_LIMIT = 3000    # nodes of the loss written out in the parameters (≈ input-to-output paths)
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


def _too_large(net, what: str) -> ValueError:
    return ValueError(f"this network is too large for the element level ({what}); "
                      "use level=\"matrix\", which derives any size")


def scalarize(net: Graph, naming: str | None = None) -> Scalar:
    """Write the network out unit by unit. ``naming``: "notes" numbers weights and biases in order
    (w1, w2, … and b1, b2, …, as the XOR slides do), "position" names them W1_12, b1_1 (W1_1,11 once W1 has 10 rows or columns)."""
    net.check()
    for node in net.nodes.values():  # before any work, and before the size limits' advice
        if node.op != "input":
            op_of(node, "element level")
    total = sum(r * c for r, c in net.shapes.values())
    if total > PARAM_LIMIT:
        raise _too_large(net, f"{total} scalar parameters, the limit is {PARAM_LIMIT}")
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
            one = name == "x" or net.tokens(name)  # a token input: one symbol, its name
            inputs[name] = units[name] = _symbols(name, node.dim, sep="" if one else "_")
            continue
        U = _symbols(name, node.dim, sep="_" if node.dim > 1 else "")
        ins = [units[i] for i in node.inputs]
        op = op_of(node, "element level")
        V = op.scalar(net, node, ins, [params[p] for p in node.params])
        if op.softmax:  # the notes write these partials as ŷ_k (δ_kj − ŷ_j)
            softmax.update({u: (k, list(U), list(ins[0])) for k, u in enumerate(U)})
        units[name] = U
        defs.update(zip(U, V))
    targets = {}
    for k, o in enumerate(net.outputs, 1):  # y, or y1, y2 … for the terms of several losses
        name = f"y{k}" if net.several_losses else "y"
        targets[o] = _symbols(name, units[o].rows, sep="" if units[o].rows == 1 else "_")
    y = targets[net.output_node] if not net.several_losses else \
        sp.Matrix.vstack(*targets.values())
    _distinct(params, units, targets)
    loss = (net.loss.written_out(units[net.output_node], y) if not net.weighted else
            sp.Add(*[t.weight * t.loss.written_out(units[t.output], targets[t.output])
                     for t in net.losses]))
    S = Scalar(params, units, defs, inputs, y, loss, softmax=softmax,
               onehot=net.loss.labels,
               tokens={inputs[i][0]: net.tokens(i) for i in inputs if net.tokens(i)},
               targets=targets, labelled={t.output for t in net.losses if t.loss.labels},
               weights={t.output: t.weight for t in net.losses})
    _index(S, net)
    return S


def _distinct(params, units, targets) -> None:
    """Every scalar written out (a weight w3, a unit h1_2 named after its node, an input, a target
    y) is a distinct symbol. Units are named after the user's nodes, so a node named "w3" or "y"
    made its units the very symbols of a weight or the target: the result was wrong (or the
    recursion endless) while the self-check, reading the same symbols, passed."""
    owner = {}
    named = {("y" if len(targets) == 1 else f"y{k}"): M
             for k, M in enumerate(targets.values(), 1)}
    for what, mats in (("parameter", params), ("node", units), ("target", named)):
        for name, M in mats.items():
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
    if big > SIZE_LIMIT:
        raise _too_large(net, f"its loss written out has about {big} terms, the limit is "
                              f"{SIZE_LIMIT}")
    for u, e in S.defs.items():
        S.full[u] = e.xreplace(S.full)


# -- the derivation --------------------------------------------------------------------------------
def derive_element(net: Graph, name: str, of: str = "loss", naming: str | None = None,
                   cases: bool = True) -> Derivation:
    """∂ℓ/∂w (``of="loss"``, then ∂f/∂w for the mean over a batch) or ∂ŷ/∂w (``of="output"``) for
    one weight, step by step. ``cases=False`` leaves relu'(z) as step(z) instead of cases."""
    if of not in ("loss", "output"):
        raise ValueError(f"of must be 'loss' or 'output', not {of!r}")
    if of == "output" and net.several_losses:
        raise ValueError(f"of='output' needs a network with one output; this one's loss reads "
                         f"{len(net.outputs)} ({', '.join(net.outputs)}): use of='loss'")
    S = scalarize(net, naming)
    w = S.scalar(name)
    outs = [u for o in net.outputs for u in S.units[o]]
    if of == "output" and len(outs) != 1:
        raise ValueError("of='output' needs a network with one output; use of='loss'")
    T, Tsym = (outs[0], outs[0]) if of == "output" else (S.loss, ELL)
    d = Derivation(f"∂{Tsym}/∂{w}, unit by unit" + per_position(net))
    sequence_convention(net, d)
    _opening(S, d, T, Tsym, w, of, net)
    value = _chain(S, d, T, Tsym, w)
    direct = sp.diff(S.explicit(T), w)
    result = _written_out(S, d, value, Tsym, w, outs)
    if cases and result.has(step):
        result = unfold_steps(result, net.relu_grad_at_zero)
        d.add(None, result, _cases_why(S, result, net.relu_grad_at_zero), StepKind.CASES)
    how = _check(S, value, result, direct, f"∂{Tsym}/∂{w}")
    if of == "loss":
        _batch(net, S, d, w)
    d.result = result
    d.meta.update(scalar=S, weight=w, direct=direct, explicit=S.explicit(result), checked=how,
                  forward={u: S.defs[u] for u in result.free_symbols if u in S.defs})
    return d


def _opening(S, d, T, Tsym, w, of, net=None):
    if of == "loss":
        why = "the loss of one example"
        if net is not None and net.weighted:
            why += ": Σ_k w_k ℓ_k over its terms, " + "; ".join(
                f"{'' if t.weight == 1 else f'{t.weight} × '}{t.loss.words} of {t.output} "
                f"against {_names(S.targets[t.output])}" for t in net.losses)
        d.add(Tsym, T, why, StepKind.DEFINITION)
        return
    full = S.explicit(T)
    if sp.count_ops(full) > 80:
        return
    d.add(T, full, f"write {T} out in the weights", StepKind.DEFINITION)
    d.add(Partial(T, w), sp.Derivative(full, w, evaluate=False), rule=StepKind.DEFINITION)
    if isinstance(full, sp.Add):
        kept = sp.Add(*[t for t in full.args if t.has(w)])
        if kept != full:
            d.add(None, sp.Derivative(kept, w, evaluate=False),
                  f"only this term depends on {w}", StepKind.SIMPLIFY)


def _chain(S: Scalar, d: Derivation, T, Tsym, w):
    """Record ∂T/∂w as products along the separating units; return it in unit symbols."""
    users, deltas = S.users.get(w, []), {}
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
    if deltas:
        for delta in reversed(list(deltas)):  # outermost last: each δ in terms of units alone
            total = total.xreplace({delta: deltas[delta]})
        total = sp.factor_terms(total)
        d.add(Partial(Tsym, w), total, "substitute the δ's from the backward pass",
              StepKind.SUBSTITUTION)
    return total


def _along(S, d, T, Tsym, w, deltas):
    """The chain from T down to the weight w (one use), one application of the rule per unit."""
    path = [S.users[w][0]]
    while path[-1] != T and len(S.users.get(path[-1], [])) == 1:
        path.append(S.users[path[-1]][0])
    top, down = path[-1], path[::-1]
    seps = down[1:] if top == T else down  # the units between T and w, from the top down
    local = [_local(S, a, b) for a, b in zip(down, down[1:] + [w])]
    if not seps:  # w enters T itself (∂ŷ/∂b3): nothing separates them
        d.add(Partial(Tsym, w), local[0], f"{w} enters {Tsym} = {S.defs[T]} directly",
              StepKind.JACOBIAN)
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
    d.add(Partial(Tsym, w) if deltas else None, Factors(*values), why, StepKind.JACOBIAN)
    return sp.Mul(*values)


def _delta(S: Scalar, d: Derivation, T, Tsym, u, deltas: dict):
    """δ_u = ∂T/∂u by reverse accumulation over u's users (the notes' "errors"), each δ recorded
    once, in terms of the δ's above it; returns the symbol δ_u."""
    delta = sp.Symbol(f"δ_{u}", real=True)
    if delta in deltas:
        return delta
    cons = S.users.get(u, [])
    if cons:
        val = sum(_delta(S, d, T, Tsym, c, deltas) * _local(S, c, u) for c in cons)
        why = (f"{u} feeds {_names(cons)}: the chain rule sums over them" if len(cons) > 1 else
               f"{cons[0]} separates {Tsym} from {u}, so the chain rule applies")
    else:
        val = sp.diff(T, u)
        why = "differentiate the loss" if T != u else f"∂{u}/∂{u} = 1"
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
    out = next((o for o, U in S.units.items() if list(U) == outs), None)
    if out not in S.labelled or out not in S.targets:  # no cross-entropy reads this softmax
        return ""
    while val.free_symbols & set(deltas):
        val = val.xreplace(deltas)
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
    why = f"f = (1/n) Σ_i ℓ_i is the mean loss over {rows_are(net)}: average their derivatives"
    if net.penalty != 0:
        weights = {s for p, M in S.params.items() if net.is_weight(p) for s in M}
        if w in weights:
            rhs += net.penalty * w
            why += f"; the penalty λΩ(θ), Ω = ½ Σ w², adds λ {w} with λ = {net.penalty}"
        else:
            why += f"; the penalty λΩ(θ) leaves out the biases, so {w} gets no λ term"
    d.add(Partial(sp.Symbol("f"), w), rhs, why, StepKind.BATCH)


# -- the self-check ---------------------------------------------------------------------------------
def _check(S: Scalar, value, result, direct, what: str, points: int = 3) -> str:
    """Check the chain (and the result drawn from it) against sympy.diff of the written-out loss:
    exactly when a cheap expansion shows it, else in floats at a few random points. Bounded in
    time: the evaluator below visits each distinct subexpression once (no code generation)."""
    import numpy as np
    diff = S.explicit(value) - direct
    if diff == 0 or (sp.count_ops(diff) < 150 and sp.expand(diff) == 0):
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
        vals = [evaluate(e, env) for e in (direct, value, result)]
        if not all(np.isfinite(v) for v in vals):
            continue
        if any(abs(v - vals[0]) > 1e-9 * (1 + abs(v) + abs(vals[0])) for v in vals[1:]):
            raise ArithmeticError(f"the chain for {what} disagrees with sympy.diff: a bug")
        checked += 1
        if checked == points:
            return f"numeric at {points} points"
    raise ArithmeticError(f"{what}: could not check the chain against sympy.diff at any point")
