"""The step-by-step matrix-level derivation of one parameter's gradient, as the notes write it.

Where it sits: derive → simplify, beside ``backprop`` (whose rule tables and backward pass it reads).
The chain of Jacobians ∂ℓ/∂ŷ · ∂ŷ/∂h · ∂h/∂z · ∂z/∂vec[W] is written with shapes, each factor
evaluated by the JACOBIANS table, then simplified to the backprop form g hᵀ with the g's of the one
shared backward pass, and finally stated for the batch (the mean over n examples).
"""
from __future__ import annotations

import sympy as sp

from symgrad.derive.backprop import (VJPS, algorithm, carried, gradients, local_jacobian,
                                     loss_steps, per_position, rows_are, sequence_convention,
                                     term_name)
from symgrad.core.derivation import Chain, Derivation, Grad, Partial, StepKind, Terms, Vec
from symgrad.derive.cost import cost_name
from symgrad.core.program import Kind
from symgrad.graph.network import Graph
from symgrad.graph.symbols import heads_of, renames, symbols_of

SHOWN_BLOCKS = 3  # blocks of ∂ℓ/∂vec[W] written out before the ⋯ (then the last one)


def _paths(net: Graph, start: str, goal, stop=()) -> list[list[str]]:
    """All node paths from ``start`` up to ``goal`` (an output, or a set of the outputs of several
    losses: a path reaching one ends there, and goes on to any other it feeds), or up to the
    first node in ``stop`` (a DAG: few for the networks people write). Depth first, in the
    consumers' order, without recursion (a frame per node: 500 layers passed the recursion limit
    here)."""
    goals = goal if isinstance(goal, (set, frozenset)) else {goal}
    out, stack = [], [[start]]
    while stack:
        path = stack.pop()
        if path[-1] in stop:
            out.append(path)
            continue
        if path[-1] in goals:
            out.append(path)  # (an output that feeds nothing else ends its paths here)
        at = path[-1]
        nxt = [c for c in net.consumers(at) if c in net.nodes and at in net.nodes[c].inputs]
        stack.extend(path + [c] for c in reversed(nxt))
    return out


# Each residual or gated block doubles the paths from a parameter to the loss: 14 blocks have
# 8192, and deriving every parameter took 22 s (deeper stacks ran for minutes). Past this many,
# the chain stops at the first node that feeds several others (a fork): its g is the sum over
# its consumers, which the backward pass writes once, as the notes define δ for a unit that
# feeds several others. Up to this many, every path is written out (a skip connection or two).
MAX_PATHS = 8


def _count_paths(net: Graph, start: str, goal, stop=()) -> int:
    """How many paths :func:`_paths` would list, counted without listing them (one pass over
    the nodes, newest first: a node comes after its inputs)."""
    goals = goal if isinstance(goal, (set, frozenset)) else {goal}
    count = {}
    for name in reversed(list(net.nodes)):
        if name in stop and name != start:
            count[name] = 1
        else:
            count[name] = (name in goals) + sum(count.get(c, 0) for c in net.consumers(name)
                                                if c in net.nodes and name in net.nodes[c].inputs)
        if name == start:
            return count[name]
    return 0


def _path_terms(net: Graph, paths) -> list[int] | None:
    """For several losses whose paths each end at a different term's output: the term (1-based)
    each path differentiates, the only one reading that output. None otherwise (one path, one
    loss, or a chain stopped short of the outputs at a g derived before)."""
    if len(paths) < 2 or not net.weighted:
        return None
    term = {t.output: k for k, t in enumerate(net.losses, 1)}
    ends = [path[-1] for path in paths]
    if len(set(ends)) < len(ends) or any(e not in term for e in ends):
        return None
    return [term[e] for e in ends]


def _forks(net: Graph) -> set:
    """Nodes read by more than one node (or twice by one, add(h, h))."""
    reads: dict = {}
    for n in net.nodes.values():
        for i in n.inputs:
            reads[i] = reads.get(i, 0) + 1
    return {k for k, v in reads.items() if v > 1}


def _above(net: Graph, starts) -> set:
    """``starts`` and every node between them and the output: the nodes whose g theirs is built
    from."""
    out, todo = set(), list(starts)
    while todo:
        at = todo.pop()
        if at not in out:
            out.add(at)
            todo.extend(c for c in net.consumers(at) if c in net.nodes)
    return out


def _size(net, p):
    r, c = net.shapes[p]
    return r * c


def derive_parameter(net: Graph, p: str, known: dict | None = None,
                     stated: str | None = None) -> Derivation:
    """∇_p of the loss: the chain of Jacobians with shapes → the backprop form → the batch form.

    ``known`` ({node: the parameter whose derivation derived its g}, as :func:`derive_all` keeps
    it) starts each chain at the nearest node whose g is already derived, so deriving every
    parameter of a deep net is linear in its depth: each chain written from ℓ repeated the whole
    net (a 32-layer net's derivations were 490 KB of text, 200 layers 18.5 MB). ``stated``: the
    parameter printed above whose derivation set out the positions' (or image's) convention,
    which this one refers to."""
    if p not in net.shapes:
        raise ValueError(f"unknown parameter {p!r}; the parameters are {', '.join(net.parameters)}")
    goals = set(net.outputs) if net.several_losses else net.output_node
    known = {k: v for k, v in (known or {}).items() if k not in net.outputs}
    alg = algorithm(net)
    bw = alg.meta["backward"]
    ell, P = sp.Symbol("ℓ"), net.sym(p)
    is_w = net.is_weight(p)
    wrt = Vec(P) if is_w or net.is_table(p) else P  # an embedding table is a matrix too
    d = Derivation(f"The gradient of the loss with respect to {p}" + per_position(net))
    sequence_convention(net, d, stated)
    loss_steps(net, d)
    users = [n.name for n in net.nodes.values() if p in n.params]
    forks = set()
    if sum(_count_paths(net, u, goals, known) for u in users) > MAX_PATHS:
        forks = _forks(net) - set(known) - set(net.outputs)
    paths = [path for u in users for path in _paths(net, u, goals, {*known, *forks})]

    # several losses, each path ending at its own term's output: the chains differ, and "∂ℓ/∂vec[W]"
    # on each read as if they were equal (issue 13, the multi-task trial): each is labelled by the
    # term it differentiates, ∂ℓ_k/∂vec[W], and their weighted sum follows
    terms = _path_terms(net, paths)
    for k, path in enumerate(paths):
        top = path[::-1]  # ŷ … z (or the nearest node whose g is known … z), outermost first
        of = sp.Symbol(term_name(net, terms[k])) if terms else ell
        factors = [Partial(of, net.sym(top[0]))]
        factors += [Partial(net.sym(a), net.sym(b)) for a, b in zip(top, top[1:])]
        factors.append(Partial(net.sym(path[0]), wrt))
        dims = [net.nodes[n].dim for n in top]
        shapes = [(1, dims[0])] + list(zip(dims, dims[1:])) + [(dims[-1], _size(net, p))]
        between = ", ".join(top)
        why = (f"{between} {'each separate' if len(top) > 1 else 'separates'} {of} from {p}, "
               "so the chain rule applies")
        if len(paths) > 1:
            why = f"path {k + 1} of {len(paths)}: " + why
        if terms:
            why += f" (of the terms of ℓ only {of} reads {top[0]})"
        d.add(Partial(of, wrt), Chain(*factors), why, StepKind.CHAIN_RULE, shapes=shapes)

        if terms:
            t = net.losses[terms[k] - 1]
            row, row_why = t.loss.row(net.sym(top[0]), net.target_of(top[0]))
        elif top[0] in known:
            g = bw.g[top[0]][0]
            row, row_why = g.T, f"g_{top[0]} ≐ ∇ ℓ at {top[0]}, derived for {known[top[0]]} above"
        elif top[0] in forks and top[0] != net.output_node:
            g = bw.g[top[0]][0]
            # the values it feeds by name (printed as their symbols), not "feeds 2 nodes",
            # a count of graph nodes a student cannot place
            *rest, last = net.consumers(top[0])
            row, row_why = g.T, (f"g_{top[0]} ≐ ∇ ℓ at {top[0]}, which feeds "
                                 f"{', '.join(rest)} and {last}: the sum of what each "
                                 "passes back, derived below (the paths are too many to list)")
        else:
            row, row_why = loss_row(net, top[0])
        evaluated = [row]
        d.add(factors[0], row, row_why, StepKind.JACOBIAN, shapes=[shapes[0]])
        for a, b, shp in zip(top, top[1:] + [None], shapes[1:]):
            node = net.nodes[a]
            J, jwhy = local_jacobian(net, node, b if b is not None else p)
            d.add(Partial(net.sym(a), net.sym(b) if b is not None else wrt), J, jwhy,
                  StepKind.JACOBIAN, shapes=[shp])
            evaluated.append(J)
        d.add(Partial(of, wrt), Chain(*evaluated), "substitute each factor", StepKind.SUBSTITUTION,
              shapes=shapes)
    if terms:
        parts = [Partial(sp.Symbol(term_name(net, k)), wrt) for k in terms]
        parts = [part if net.losses[k - 1].weight == 1 else Chain(net.losses[k - 1].weight, part)
                 for k, part in zip(terms, parts)]
        d.add(Partial(ell, wrt), Terms(*parts),
              f"ℓ is the weighted sum of its terms, each reaching {p} by its own path",
              StepKind.SUM)

    # a chain stopped at a fork reads its g, built from every g above it: those are derived too
    reached = {path[-1] for path in paths} & forks
    derived = _backprop_steps(net, d, bw, paths + [sorted(_above(net, reached))], p, P, wrt,
                              is_w, known)
    batch_g = alg.result[p]
    d.add(Grad(sp.Symbol(cost_name(net)), P), batch_g,
          f"the mean over {rows_are(net)}" + ("" if net.seq_len else " (one per row of X)")
          + f": every g row-stacked into G, which carries the {carried(net)}", StepKind.BATCH,
          shapes=[net.shapes[p]])
    d.result = gradients(net)[p]
    if renames(net):  # generated names (s18, xhat10): every printer writes them by role, r⁽¹⁾,
        d.meta["symbols"] = symbols_of(net)  # x̂⁽²⁾, in the maths and the words, as handouts do
    heads = heads_of(net)  # a multi-task net's heads: a notation that names them (ESL's β⁽ᵏ⁾) does
    if heads:
        d.meta["heads"] = heads
    d.meta.update(batch=batch_g, backward=bw, program=alg.meta["program"], paths=paths,
                  derived=derived,
                  where=(batch_g, [_batch_gs(net)[g] for g in bw.g if g in derived and
                                   g not in known]))
    return d


def _batch_gs(net: Graph) -> dict:
    """Node → (G, its batch definition in the notes' names): each in the G's before it, so each
    is as shallow as one layer. ``meta["where"]`` of a derivation is its result in G's and the G's
    its steps derived, in order: what JSON prints, linear in depth across every parameter (the
    result written out repeats the net below each parameter: 200 layers' results alone were
    ~8 MB, ~4 nodes deep per layer, past the recursion limit at ~120 layers)."""
    def build():
        prog = algorithm(net).meta["program"]
        names = {v.sym: v.label for v in prog.variables}
        return {e.out.of: (e.out.label, e.rhs.xreplace(names)) for e in prog.of_kind(Kind.BACKWARD)}
    return net.cached(_batch_gs, build)


def derive_all(net: Graph, params=None) -> list[Derivation]:
    """The derivations of ``params`` (default: every parameter), in order, each chain starting
    at the nearest node whose g an earlier one derived: linear in depth, not quadratic."""
    known, out = {}, []
    params = list(net.parameters if params is None else params)
    for p in params:  # the convention (positions, image) set out once, for the first
        d = derive_parameter(net, p, known, params[0] if out else None)
        known.update({g: p for g in d.meta["derived"] if g not in known})
        out.append(d)
    return out


def _backprop_steps(net, d, bw, paths, p, P, wrt, is_w, known):
    """Multiply from the left: each partial product is a named g, defined once and shared.
    Returns the nodes whose g this derivation wrote (or took as known)."""
    ell = sp.Symbol("ℓ")
    start = bw.start
    on_path = set().union(*paths)
    rows = net.cached(_backprop_steps, lambda: {k: (g.T, rhs.T)  # the g rows, once per net
                                                for k, (g, rhs, _) in bw.g.items()})
    if not net.weighted:  # one loss: its g first, then the others
        if start in on_path and start not in known:
            if bw.fused:
                _fused_steps(net, d)
            d.add(*rows[start], "name the gradient reaching " + start + ": g ≐ ∇ ℓ there",
                  StepKind.BACKWARD)
        for name in list(bw.g)[1:]:
            if name in on_path and name not in known:
                d.add(*rows[name], bw.g[name][2], StepKind.BACKWARD)
    else:  # several losses: each term's g where it begins, the others as passed back
        for name in bw.g:
            if name not in on_path or name in known:
                continue
            for k, _, _, fused in bw.starts.get(name, []):
                if fused:
                    _fused_steps(net, d, k)
            only_loss = len(bw.starts.get(name, [])) == len(bw.parts[name])
            d.add(*rows[name], f"name the gradient reaching {name}: g ≐ ∇ ℓ there ("
                  + bw.g[name][2] + ")" if only_loss else bw.g[name][2], StepKind.BACKWARD)
    users = [n for n in net.nodes.values() if p in n.params]
    terms, reasons = [], []
    for u in users:
        g = bw.g[u.name][0]
        if is_w:
            h = net.sym(u.inputs[0])
            if u.name not in known:  # else the chain began at g_u: just said
                d.add(Partial(ell, wrt), Chain(g.T, local_jacobian(net, u, p)[0]),
                      f"the chain so far is g_{u.name}ᵀ", StepKind.PRODUCT,
                      shapes=[(1, u.dim), (u.dim, _size(net, p))])
            if u.op not in ("dense", "dense_transposed"):  # a conv: the op's own rule
                e, w = next((e, w) for who, e, w in VJPS[u.op](net, u, g) if who == p)
                terms.append(e)
                reasons.append(w)
                continue
            if u.op == "dense_transposed":  # W used as Wᵀ: row i of W meets entry i of h
                d.add(Partial(ell, wrt), _blocks(h, g, h.rows),
                      f"{h}ᵀ ⊗ I puts {h}_i on the diagonal of block i, so block i of the row "
                      f"is {h}_i gᵀ" + _elided(h.rows), StepKind.PRODUCT)
                terms.append(h * g.T)
                continue
            d.add(Partial(ell, wrt), _blocks(g, h, u.dim), _blocks_why(g, h, u.dim),
                  StepKind.PRODUCT)
            terms.append(g * h.T)
        else:  # the op's own rule: g for a bias, g ⊙ x̂ for a gain …
            e, w = next((e, w) for who, e, w in VJPS[u.op](net, u, g) if who == p)
            terms.append(e)
            reasons.append(w)
    grad = terms[0] if len(terms) == 1 else sp.MatAdd(*terms)
    why = ("; ".join(dict.fromkeys(reasons)) if is_w and reasons
           else "unvectorize: block i becomes row i, an outer product" if is_w
           else "; ".join(dict.fromkeys(reasons)) if any(u.op != "dense" for u in users)
           else "a bias enters %s = … + %s with the identity Jacobian" % (users[0].name, p))
    if len(users) > 1:
        why += f"; {p} is shared by {len(users)} layers, so their gradients add"
    d.add(Grad(ell, P), grad, why, StepKind.UNVECTORIZE if is_w else StepKind.SIMPLIFY,
          shapes=[net.shapes[p]])
    if net.penalty != 0 and is_w:
        d.add(Grad(sp.Symbol("J"), P), grad + net.penalty * P,
              "J = ℓ + λΩ(θ), Ω = ½ Σ‖W‖²: the penalty adds ∇_W λΩ = λ W", StepKind.PENALTY,
              shapes=[net.shapes[p]])
    return on_path


def _blocks(g, h, dim):
    """[g_1 hᵀ, g_2 hᵀ, …, g_d hᵀ]: the first SHOWN_BLOCKS blocks, an explicit … , the last."""
    def block(i):  # entry names are 0-based; the notes' printer writes them 1-based
        return type(g)(f"{g.name}[{i}]", 1, 1) * h.T  # entry i of g, a gradient still
    if dim <= SHOWN_BLOCKS + 2:
        return sp.BlockMatrix([[block(i) for i in range(dim)]])
    dots = sp.MatrixSymbol("…", 1, h.rows)
    return sp.BlockMatrix([[*(block(i) for i in range(SHOWN_BLOCKS)), dots, block(dim - 1)]])


def _blocks_why(g, h, dim):
    return f"I ⊗ {h}ᵀ is block diagonal, so block i of the row is entry i of g times {h}ᵀ" + _elided(dim)


def _elided(dim):
    return (f"; blocks {SHOWN_BLOCKS + 1} to {dim - 1} of {dim} are elided (…)"
            if dim > SHOWN_BLOCKS + 2 else "")


def loss_row(net, output):
    """(∂ℓ/∂output as a row, why) for an output of the loss: the loss's own row; with several
    losses w_k times term k's (only ℓ_k reads that output)."""
    if not net.weighted:
        return net.loss.row(net.sym(output), net.target)
    k, t = next((k, t) for k, t in enumerate(net.losses, 1) if t.output == output)
    row, why = t.loss.row(net.sym(output), net.target_of(output))
    name = term_name(net, k)
    w = "" if t.weight == 1 else f"{t.weight} "
    return (row if t.weight == 1 else sp.MatMul(t.weight, row),
            f"of the terms of ℓ only {w}{name} reads {output}: {why}"
            + (f", times its weight {t.weight}" if t.weight != 1 else ""))


def _fused_steps(net, d, k=1):
    """The collapse of the loss and the output activation to ŷ − y, as algebra (the notes'
    softmax + cross-entropy and σ + binary cross-entropy); for term k of several losses, of ℓ_k
    and its output."""
    t = net.losses[k - 1]
    ell = sp.Symbol(term_name(net, k)) if net.weighted else sp.Symbol("ℓ")
    out = net.nodes[t.output]
    yh, y, z = net.sym(out.name), net.target_of(t.output), net.sym(out.inputs[0])
    k = out.dim
    row, row_why = t.loss.row(yh, y)
    both = [(1, k), (k, k)]
    if out.op == "softmax":
        J = sp.DiagMatrix(yh) - yh * yh.T
        d.add(Partial(ell, z), Chain(row, J), f"{out.name} = softmax({z}) separates {ell} from "
              f"{z}: ∂{ell}/∂ŷ times the softmax Jacobian", StepKind.CHAIN_RULE, shapes=both)
        d.add(None, sp.MatMul(-1, y.T, sp.DiagMatrix(sp.HadamardPower(yh, -1)), J),
              "(−y/ŷ)ᵀ = −yᵀ diag(1/ŷ)", StepKind.SIMPLIFY, shapes=[(1, k), (k, k), (k, k)])
        d.add(None, sp.MatAdd(-y.T, sp.MatMul(y.T, sp.OneMatrix(k, 1), yh.T)),
              "diag(1/ŷ) diag(ŷ) = I and diag(1/ŷ) ŷ = 𝟏, the vector of ones", StepKind.SIMPLIFY)
        d.add(None, (yh - y).T, "yᵀ𝟏 = Σ_k y_k = 1 (y is one-hot, or a distribution)",
              StepKind.SIMPLIFY, shapes=[(1, k)])
        return
    # unevaluated: for one output SymPy turns the 1×1 of ones into the identity (diag(ŷ ⊙ (I − ŷ)))
    dsig = sp.DiagMatrix(sp.HadamardProduct(yh, sp.MatAdd(sp.OneMatrix(k, 1), -yh,
                                                          evaluate=False)))
    d.add(Partial(ell, z), Chain(row, dsig), f"{out.name} = σ({z}) entrywise separates {ell} "
          f"from {z}; σ′(z) = σ(z)(1 − σ(z)) = ŷ(1 − ŷ), a diagonal Jacobian", StepKind.CHAIN_RULE,
          shapes=both)
    d.add(None, (yh - y).T, "entry k: (ŷ_k − y_k)/(ŷ_k(1 − ŷ_k)) · ŷ_k(1 − ŷ_k) = ŷ_k − y_k",
          StepKind.SIMPLIFY, shapes=[(1, k)])
