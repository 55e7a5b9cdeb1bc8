"""The matrix-level engine: Jacobian chains simplified to the backprop form, and Algorithm 6.4.

Where it sits: derive (above graph). Two tables keyed by node op, views of the op registry
(symgrad.graph.ops, where each op's rules are registered together): ``JACOBIANS`` gives the local
Jacobian of a node (how the notes write a chain: ∂ŷ/∂h = W, ∂h/∂z = diag(f'(z)), ∂z/∂vec[W] =
I ⊗ hᵀ) and ``VJPS`` gives the same Jacobian applied to a gradient g (the simplified backprop form:
g ⊙ f'(z), Wᵀ g, g hᵀ). One backward pass over the graph
defines each g once, so forward and backward values are shared by every parameter. The batch form
(one example per row, the mean loss) is derived from the same records by :func:`matexpr.batch`.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import sympy as sp

from symgrad.core.derivation import Derivation, Grad, Note, StepKind
from symgrad.derive.cost import cost_name
from symgrad.core.primitives import at_zero
from symgrad.core.program import Kind, Program
from symgrad.core.matexpr import (N, Cotangent, ScatterAdd, SumAll, Target, batch, bias_gradient,
                                  hadamard, substitute, to_explicit)
from symgrad.graph.network import Graph
from symgrad.graph.ops import OPS, op_of
from symgrad.graph.attention import ACROSS
from symgrad.graph.symbols import batch_name

class _RuleTable(Mapping):
    """One interpretation of every registered op, keyed by op: JACOBIANS["dense"] is the dense
    op's local Jacobian rule, VJPS["dense"] its vector-Jacobian product. A view of
    symgrad.graph.ops.OPS, where each op is registered once with all its rules."""

    def __init__(self, rule: str):
        self.rule = rule

    def __getitem__(self, op):
        return getattr(OPS[op], self.rule)

    def __iter__(self):
        return iter(OPS)

    def __len__(self):
        return len(OPS)


JACOBIANS = _RuleTable("jacobian")
VJPS = _RuleTable("vjp")


def local_jacobian(net, node, wrt):
    """(∂node/∂wrt, why), by the node's op's registered rule."""
    return op_of(node, "the matrix level").jacobian(net, node, wrt)


# -- sequences: position-wise ---------------------------------------------------------------------
def per_position(net) -> str:
    """Words for a title: "" for a network of vectors; for one of sequences, that every value is
    one position's. Every op is position-wise, so a sequence network is the per-example engine
    at each position t, and its batch is every position of every sequence, one a row."""
    T = net.seq_len
    flat = _flattens(net)
    # (after a flatten, one vector per sequence: said once, after what the positions do)
    tail = f"; one vector per sequence after {_names(flat)}" if flat else ""
    if T is not None and _across(net):
        which = sorted({"attention reads every position" if net.nodes[n].op in ACROSS else
                        "a conv1d reads its neighbours" for n in _across(net)})
        return f", at one position t of a sequence of T = {T} ({'; '.join(which)}{tail})"
    return "" if T is None else \
        f", at one position t of a sequence of T = {T} (position-wise{tail})"


def _flattens(net) -> list[str]:
    """The nodes that flatten a sequence into one vector per example."""
    return [n.name for n in net.nodes.values() if n.op in OPS and OPS[n.op].flattens]


def _names(names) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def rows_of(net, name):
    """The batch rows of a node's value (or of a target, by its output node): n, every example
    or every position of every sequence; n/T for a value after a flatten of sequences, one row
    per sequence (n counts positions there)."""
    return N / net.seq_len if net.per_example(name) else N


def _across(net) -> list[str]:
    """The nodes that read other positions (attention's, symgrad.graph.attention)."""
    return [n.name for n in net.nodes.values()
            if n.op in ACROSS or n.op in OPS and OPS[n.op].across]


def _across_words(net) -> str:
    """The nodes that read other positions, counted (a list of six names set as one formula
    ran 61pt off the page in the handout)."""
    att = sum(net.nodes[n].op in ACROSS for n in _across(net))
    conv = len(_across(net)) - att
    return " and ".join(
        # said by what they are, not counted as graph nodes ("(6 nodes)" read as code words)
        (["attention's scores, weights and outputs of each head"] if att else []) +
        ([f"conv1d ({conv} node{'s' if conv > 1 else ''}: z_t reads h at t − p … t − p + k − 1)"]
         if conv else []))


def rows_are(net) -> str:
    """What the batch's n rows are: the examples, or every position of every sequence."""
    T = net.seq_len
    if T is None:
        return "the n examples"
    tokens = all(net.nodes[i].op == "input" and "tokens" in dict(net.nodes[i].attrs)
                 for i in net.inputs if i not in net.masks)  # (n, T) tokens: tok.reshape(-1)
    read = ("the sequences' tokens are read one after another, one row per position)" if tokens
            else "X stacks the sequences' positions one after another, one row per position)")
    after = [o for o in net.outputs if net.per_example(o)] if net.outputs else []
    if after and len(after) == len(net.outputs):  # the loss reads values after a flatten
        return (f"the n/T sequences, one row each after the flatten (n counts every position "
                f"of every sequence, n = sequences × T, T = {T}; " + read)
    if after:  # several losses, some per position and some per sequence
        return (f"the n rows, every position of every sequence, for a term on the positions, "
                f"and the n/T sequences for a term after the flatten (n = sequences × T, "
                f"T = {T}; " + read)
    return f"the n rows, every position of every sequence (n = sequences × T, T = {T}; " + read


def carried(net) -> str:
    """The factor the loss's G carries: 1/n, T/n over the sequences after a flatten."""
    after = [o for o in net.outputs if net.per_example(o)]
    return ("1/n" if not after else "T/n" if len(after) == len(net.outputs) else
            "1/n of its term, T/n for a term after the flatten")


def sequence_convention(net, d: Derivation, stated: str | None = None) -> None:
    """For a sequence network, the first step: how a sequence value is laid out and why the
    steps below are those of one position. ``stated``: the parameter whose derivation, printed
    above this one, set it out; this one then refers to it (an instructor's trial: the same
    five lines before every one of attention's 25 parameters)."""
    T = net.seq_len
    if T is None:
        imgs = [n for n in net.nodes.values() if n.image is not None]
        if imgs and stated is not None:  # (names in the why, where printers write them)
            d.add(sp.Symbol(imgs[0].name), Note("an image, written as the column of its entries"),
                  f"as set out for {stated} above", StepKind.DEFINITION)
        elif imgs:
            C, H, W = imgs[0].image
            d.add(sp.Symbol(imgs[0].name), Note(
                f"an image: C × H × W = {C} × {H} × {W}, written as the column of its {C * H * W} "
                "entries, channel by channel and row by row (entry c·H·W + i·W + j), so every "
                "value is a column, as every vector here; a batch is n such images, one per row"),
                "images are vectors here: a convolution is the dense layer W (O × C·kh·kw, "
                "its weights read channel by channel, row by row) applied to every patch of its "
                "input; mat(g) is a gradient as channels × positions, U(x) the patches (im2col), "
                "one a row", StepKind.DEFINITION)
        return
    if stated is not None:
        d.add(sp.Symbol("t"), Note(f"one of the T = {T} positions"),
              f"a value at position t as set out for {stated} above", StepKind.DEFINITION)
        return
    d.add(sp.Symbol("t"), Note(
        f"one of the T = {T} positions: a sequence value is T × d, row t the d features of "
        "position t, written here as a column, as every vector is (W is d_out × d_in, "
        "z_t = W h_t + b, the same W at every position); a batch is sequences × T × d"),
        "position-wise: every op acts on each position alone, so each value below is that of one "
        "position t, and the same at every position t" if not _across(net) else
        # the nodes counted, not listed: a list of six names (two heads) set as one formula ran
        # 61pt off the page in the handout
        f"every op but {_across_words(net)} acts on each position alone; " + (
            "those read the whole sequence: X[1:T] is the T × d matrix of x at every position "
            "(row τ = x_τ), m_t the causal mask (0 up to t, −∞ after), e_t column t of I; a "
            "gradient reaching a value at position τ from every position t is summed over t "
            "(G_K = G_Sᵀ Q/√d_k, G_V = Aᵀ G_O)"
            if any(net.nodes[n].op in ACROSS for n in _across(net)) else
            "W_u is column u of the kernel (O × C), 0 beyond the sequence's ends; a gradient "
            "reaching h_τ from the k positions that read it is summed over them")
        + _flatten_words(net), StepKind.DEFINITION)


def _flatten_words(net) -> str:
    """For a network that flattens its sequences: what the values after the flatten are."""
    flat = _flattens(net)
    if not flat:
        return ""
    return (f"; {_names(flat)} = [h_1; …; h_T] lays the T positions of a sequence one after "
            "the other, one vector of T·d per sequence as torch.flatten(h, 1) (entry "
            "(t−1)·d + j is h_t's j): the values after it are one per sequence, their batch n/T "
            "rows, and their gradient passes back to position t as row t of mat(g), g as T × d")


# -- the backward pass ----------------------------------------------------------------------------
@dataclass
class Backward:
    """One backward pass: each g defined once (in order), each parameter's gradient."""

    start: str                 # the node whose g the loss gives directly (the first term's)
    start_why: str
    g: dict                    # node name -> (g symbol, definition, why), in definition order
    grads: dict                # parameter -> [(contribution, why)]
    fused: bool
    # every term of the loss: node -> [(k, the term's g there, why, fused)], where term k's
    # gradient enters the backward pass (one entry for a network of set_loss)
    starts: dict = field(default_factory=dict)
    parts: dict = field(default_factory=dict)  # node -> the terms its g sums, in order


def g_symbol(net, name):
    return Cotangent(f"g_{name}", net.nodes[name].dim, 1)


def loss_gradient(net):
    """(node, ∇ of the per-example loss at that node, why, fused): fused losses start at the
    logits (the input of the output activation), the others at ŷ. The first term's: see
    :func:`loss_gradients` for every term of a multi-task loss."""
    _, node, g0, why, fused = loss_gradients(net)[0]
    return node, g0, why, fused


def loss_gradients(net) -> list:
    """[(k, node, g, why, fused)] for each term k = 1, 2, … of the loss: where its gradient
    enters the backward pass (the logits for a fused loss, else its output) and what it is there,
    w_k times the term's own start (ŷ_k − y_k …): ∂ℓ/∂ŷ_k = w_k ∂ℓ_k/∂ŷ_k, each term read by its
    own output only."""
    out = []
    for k, t in enumerate(net.losses, 1):
        node = net.nodes[t.output]
        g0, why = t.loss.start(net.sym(node.name), net.target_of(t.output))
        if net.weighted:
            if t.weight != 1:
                g0 = sp.MatMul(t.weight, g0)  # ½(ŷ − y), as the notes would write it
            why = f"{term_name(net, k)}: {why}" + (f", times its weight {t.weight}"
                                                   if t.weight != 1 else "")
        out.append((k, node.inputs[0] if t.loss.fused else node.name, g0, why, t.loss.fused))
    return out


def term_name(net, k) -> str:
    """How a derivation names term k of the loss: ℓ_k, written with its weight (½ ℓ_2)."""
    return f"ℓ_{k}"


def backward(net: Graph) -> Backward:
    """The one backward pass (cached on the network until it changes)."""
    return net.cached(backward, lambda: _backward(net))


def _backward(net: Graph) -> Backward:
    net.check()
    terms = loss_gradients(net)
    contribs, starts = {}, {}
    for k, node, g0, why, fused in terms:
        contribs.setdefault(node, []).append((g0, why))
        starts.setdefault(node, []).append((k, g0, why, fused))
    grads = {p: [] for p in net.parameters}
    gdefs, parts = {}, {}
    for name in reversed(list(net.nodes)):
        node = net.nodes[name]
        if name not in contribs or node.op == "input":
            continue
        terms_here = contribs.pop(name)
        parts[name] = [t for t, _ in terms_here]
        gdefs[name] = (g_symbol(net, name), _sum([t for t, _ in terms_here]),
                       "; ".join(dict.fromkeys(w for _, w in terms_here)))
        for target, term, why in op_of(node, "the backward pass").vjp(net, node,
                                                                      g_symbol(net, name)):
            (grads if target in grads else contribs).setdefault(target, []).append((term, why))
    for p in net.parameters:
        if not grads[p]:
            raise ValueError(f"the loss does not depend on parameter {p}")
    _, start, _, why0, fused = terms[0]
    return Backward(start, why0, gdefs, grads, fused, starts, parts)


def batch_rows(net):
    """Per-example symbols → the batch matrices (n × d) of the notes' display: x → X, z1 → Z1,
    g_z1 → G_z1, y → Y (Y_<output> for each target of several losses). Display names only: the
    program's own symbols are generated (Program)."""
    targets = {net.target_of(o): Target("Y" + net.target_of(o).name[1:], rows_of(net, o),
                                        net.nodes[o].dim)
               for o in net.outputs}
    rows, taken = {}, {t.name for t in targets.values()}
    for name, node in net.nodes.items():
        label = batch_name(name)
        while label in taken:  # nodes z1 and Z1, or y: each batch value keeps its own symbol
            label += "′"
        taken.add(label)
        r = rows_of(net, name)
        rows[net.sym(name)] = sp.MatrixSymbol(label, r, node.dim)
        rows[g_symbol(net, name)] = Cotangent("G_" + name, r, node.dim)  # a gradient by type
    rows.update(targets)
    return rows


def per_example_loss(net):
    """ℓ of one example (1 × 1): the one loss, or Σ_k w_k ℓ_k over the terms of several."""
    if not net.weighted:
        return _term_loss(net, net.losses[0])
    return sp.MatAdd(*[t.weight * _term_loss(net, t) for t in net.losses])


def term_losses(net) -> list:
    """[(LossTerm, ℓ_k of one example)] for each term of the loss."""
    return [(t, _term_loss(net, t)) for t in net.losses]


def _term_loss(net, t):
    out = net.nodes[t.output]
    z = net.sym(out.inputs[0]) if out.inputs else None
    return t.loss.scalar(net.sym(out.name), net.target_of(t.output), z)


def batch_loss(net, rows=None, params=None):
    """The mean loss over the batch plus λΩ(θ), Ω = ½ Σ‖W‖² over the weight matrices (stable forms:
    bce and cross-entropy are written in the logits, with softplus and log-sum-exp). ``rows`` and
    ``params`` map per-example and parameter symbols to the batch's (the display's by default).
    Several losses: Σ_k w_k (the mean of ℓ_k), each term's mean over the same rows."""
    params = params or {}
    rows = rows or batch_rows(net)
    if not net.weighted:
        n = rows_of(net, net.output_node)  # (the sequences, for an output after a flatten)
        total = batch(per_example_loss(net), rows, n) / n
    else:
        total = sp.MatAdd(*[t.weight * batch(l, rows, rows_of(net, t.output)) /
                            rows_of(net, t.output) for t, l in term_losses(net)])
    if net.penalty != 0:
        Ws = [params.get(net.sym(p), net.sym(p)) for p in net.weights]
        total += net.penalty / 2 * sp.MatAdd(*[SumAll(hadamard(W, W)) for W in Ws])
    return total.xreplace(params) if params else total


def loss_steps(net, d: Derivation) -> None:
    """For a multi-task loss, the steps that define it for one example: each term ℓ_k (which
    loss, of which output, against which target) and their weighted sum ℓ. Nothing for one loss
    (ℓ is the loss itself)."""
    if not net.weighted:
        return
    for k, (t, ell) in enumerate(term_losses(net), 1):
        d.add(sp.Symbol(term_name(net, k)), ell, term_words(net, t), StepKind.DEFINITION)
    total = sp.Add(*[sp.Mul(t.weight, sp.Symbol(term_name(net, k)), evaluate=False)
                     if t.weight != 1 else sp.Symbol(term_name(net, k))
                     for k, t in enumerate(net.losses, 1)], evaluate=False)
    d.add(sp.Symbol("ℓ"), total, loss_sum_words(net), StepKind.DEFINITION)


def term_words(net, t) -> str:
    """What one term of the loss is, in words: its loss, output and target."""
    out = net.nodes[t.output]
    y = net.target_of(t.output).name
    where = f", written in the logits {out.inputs[0]}" if t.loss.name in ("bce", "cross_entropy") \
        else ""
    return f"{t.loss.words} of {t.output} against its target {y}{where}"


def loss_sum_words(net) -> str:
    k = len(net.losses)
    return ((f"the loss of one example: the weighted sum of its {k} terms, each read by its own "
             "output" if k > 1 else "the loss of one example: its one term, weighted")
            + "; the mean of ℓ over the batch is Σ_k w_k (the mean of ℓ_k)")


def algorithm(net: Graph) -> Derivation:
    """Algorithm 6.4 derived for this network: forward values, then each g once, then every
    gradient (with λW when there is a penalty). ``meta['program']`` is the same computation in
    batch form as a typed :class:`~symgrad.core.program.Program` (what compiles). Cached on the
    network until it changes: the Derivation returned is shared, read it without modifying it."""
    return net.cached(algorithm, lambda: _algorithm(net))


def program(net: Graph) -> Program:
    """The batch program of Algorithm 6.4 (one example a row, the mean loss), typed: every
    variable knows its kind and what it stands for, its symbol is generated."""
    return algorithm(net).meta["program"]


def _algorithm(net: Graph) -> Derivation:
    bw = backward(net)
    d = Derivation("Forward and backward propagation (Algorithm 6.4) for this network"
                   + per_position(net))
    sequence_convention(net, d)
    shown = batch_rows(net)
    prog, rows = Program(), {}  # rows: per-example symbol → the program's batch symbol
    for name, node in net.nodes.items():
        if node.op == "input":
            rows[net.sym(name)] = prog.new(Kind.INPUT, (rows_of(net, name), node.dim), name,
                                           shown[net.sym(name)]).sym
    for o in net.outputs:  # one target (y), or one per output of several losses
        t = net.target_of(o)
        rows[t] = prog.new(Kind.TARGET, (rows_of(net, o), t.rows),
                           o if net.several_losses else None, shown[t]).sym
    params = {net.sym(p): prog.new(Kind.PARAM, net.shapes[p], p, net.sym(p)).sym
              for p in net.parameters}
    for name, node in net.nodes.items():
        if node.op != "input":
            rhs = net.definition(name)
            d.add(net.sym(name), rhs, "forward propagation", StepKind.FORWARD)
            r = rows_of(net, name)
            rows[net.sym(name)] = prog.define(Kind.FORWARD, batch(rhs, rows, r).xreplace(params),
                                              (r, node.dim), name, shown[net.sym(name)]).sym
    loss_steps(net, d)
    shown_loss = batch_loss(net, shown)  # (once: it and batch_rows were made 3 times)
    d.add(sp.Symbol(cost_name(net)), shown_loss, f"the mean loss over {rows_are(net)}", StepKind.LOSS)
    prog.define(Kind.LOSS, batch_loss(net, rows, params), (1, 1), None, sp.MatrixSymbol("f", 1, 1))
    for name, (g, rhs, why) in bw.g.items():
        d.add(g, rhs, why, StepKind.BACKWARD)
        rows[g] = prog.define(Kind.BACKWARD, _batch_g(net, bw, name, rhs, rows).xreplace(params),
                              (rows_of(net, name), net.nodes[name].dim), name, shown[g]).sym
    for p in net.parameters:
        per = _sum([t for t, _ in bw.grads[p]])
        d.add(Grad(sp.Symbol("ℓ"), net.sym(p)), per, "; ".join(w for _, w in bw.grads[p]),
              StepKind.GRADIENT, shapes=[net.shapes[p]])
        if net.penalty != 0 and net.is_weight(p):
            d.add(Grad(sp.Symbol("J"), net.sym(p)), per + net.penalty * net.sym(p),
                  "J = ℓ + λΩ(θ), Ω = ½ Σ‖W‖²: the penalty adds ∇_W λΩ = λ W", StepKind.PENALTY,
                  shapes=[net.shapes[p]])
        prog.define(Kind.GRADIENT, _batch_grad(net, p, bw, rows).xreplace(params), net.shapes[p],
                    p, sp.MatrixSymbol("d" + p, *net.shapes[p]))
    _check_closed(prog)
    shown_of = {v.sym: v.label for v in prog.variables}
    d.result = {e.out.of: e.rhs.xreplace(shown_of) for e in prog.of_kind(Kind.GRADIENT)}
    d.meta.update(program=prog, loss=shown_loss, backward=bw, n=N)
    return d


def _batch_g(net, bw, name, rhs, rows):
    """G of one node for the batch: the loss's own g's there carry the mean's 1/n; a g passed
    back from the nodes above already does (a node where a term of several losses begins may
    also feed others)."""
    n_own = len(bw.starts.get(name, []))
    n = rows_of(net, name)  # (the mean over the sequences, for a node after a flatten)
    if not n_own:
        return batch(rhs, rows, n)
    if not net.weighted:  # one loss: its g alone (every network of set_loss)
        return batch(rhs, rows, n) / n
    own, rest = bw.parts[name][:n_own], bw.parts[name][n_own:]  # the loss's come first
    means = [sp.MatMul(g.args[0] / n, batch(g.args[1], rows, n))  # w(ŷ − y) → (w/n)(Ŷ − Y)
             if isinstance(g, sp.MatMul) and len(g.args) == 2 and g.args[0].is_number
             else batch(g, rows, n) / n for g in own]
    return _sum(means + ([batch(_sum(rest), rows, n)] if rest else []))


def _check_closed(prog: Program) -> None:
    """Every symbol an equation reads is a variable defined before it: no user-named symbol is
    left in the program (it would reach generated code), none is read before it is set. A free
    scalar symbol other than the batch size n can only come from an Activation or Loss built by
    hand around one (a printer would write its name into the code, or bind it to a local there)."""
    known = {v.sym for v in [*prog.inputs, *prog.targets, *prog.params]}
    for e in prog.eqns:
        stray = e.rhs.atoms(sp.MatrixSymbol) - known
        if stray:
            raise AssertionError(f"program: {e.out.label} reads {sorted(map(str, stray))} before "
                                 "they are defined")
        free = sorted(str(s) for s in e.rhs.free_symbols
                      if not isinstance(s, sp.MatrixSymbol) and s != N)
        if free:
            raise ValueError(f"{e.out.label}: the expression holds the free symbol(s) "
                             f"{', '.join(map(repr, free))}, which is no value of the network "
                             "(an Activation or Loss built around a symbol?)")
        known.add(e.out.sym)


def _batch_grad(net, p, bw, rows):
    """∇p of the mean loss: Σ over examples via Gᵀ H (weights) or Gᵀ 1 (biases), plus λ p."""
    terms = []
    for term, _ in bw.grads[p]:
        n = _rows_read(term, rows)  # the sequences for a layer after a flatten
        if isinstance(term, ScatterAdd) or getattr(term, "sums_examples", False):
            # an embedding table, a conv weight: summed over the rows by their batch form
            terms.append(batch(term, rows, n))
            continue
        terms.append(bias_gradient(term, rows, n) if term.shape[1] == 1 and not
                     isinstance(term, sp.MatMul) else batch(term, rows, n))
    if net.penalty != 0 and net.is_weight(p):
        terms.append(net.penalty * net.sym(p))
    return _sum(terms)


def _rows_read(term, rows):
    """The batch rows of the per-example values a gradient's term reads (n, or n/T after a
    flatten of sequences: a layer's g and its input have the same rows)."""
    for s in term.atoms(sp.MatrixSymbol):
        if s in rows:
            return rows[s].shape[0]
    return N


def _sum(terms):
    return terms[0] if len(terms) == 1 else sp.MatAdd(*terms)


def gradients(net: Graph) -> dict:
    """Parameter name → the gradient of the mean loss as a matrix expression in the batch's
    forward values (X, Z1, H1, …, Yhat, Y) and the parameters, the g's substituted in."""
    def build():
        prog = program(net)
        gsubs = {}
        for e in prog.of_kind(Kind.BACKWARD):
            gsubs[e.out.sym] = substitute(e.rhs, gsubs)
        shown, memo = {v.sym: v.label for v in prog.variables}, {}
        return {e.out.of: substitute(substitute(e.rhs, gsubs), shown, memo)
                for e in prog.of_kind(Kind.GRADIENT)}
    return dict(net.cached(gradients, build))


def expand_forward(net: Graph, expr):
    """Substitute the batch forward definitions into ``expr`` (written in the display's names,
    X, Z1, W1 …), leaving X, Y and the parameters: the closed form as a function of the data."""
    env = {}
    for lhs, rhs in program(net).display(Kind.FORWARD):
        env[lhs] = rhs.xreplace(env)
    return expr.xreplace(env)


def evaluate(net: Graph, n: int, env: dict) -> dict:
    """Run the batch program on explicit SymPy matrices: one statement at a time, each left-hand
    side computed once and stored as an explicit matrix (no expression is ever re-expanded).
    ``env`` maps X (each input's display name), Y and the parameter names to matrices; returns
    every value by its display name (Z1, H1, G_z1, dW1 …), with relu'(0) the network's
    ``relu_grad_at_zero`` wherever a pre-activation is exactly 0. An independent route when compared with
    ``sympy.diff`` of a loss written out by hand (the tests do)."""
    prog = program(net)
    vals = {}
    for v in [*prog.inputs, *prog.targets]:
        if v.label.name in env:
            vals[v.sym] = sp.ImmutableMatrix(env[v.label.name])
    for v in prog.params:
        if v.of in env:
            vals[v.sym] = sp.ImmutableMatrix(env[v.of])
    out = {}
    for e in prog.eqns:
        value = at_zero(to_explicit(e.rhs.xreplace(vals).xreplace({N: n})), net.relu_grad_at_zero)
        vals[e.out.sym] = value
        out[e.out.label.name] = value
    return out


def explicit(net: Graph, expr, n: int, env: dict):
    """``expr`` (a batch expression) entry by entry for a batch of ``n`` examples, with ``env``
    mapping the names X, Y and the parameter names to explicit SymPy matrices. A gradient of
    :func:`gradients` is read off the evaluated program (fast); anything else is expanded."""
    grads = gradients(net)
    for p, g in grads.items():
        if g == expr:
            return sp.Matrix(evaluate(net, n, env)["d" + p])
    e = expand_forward(net, expr).xreplace({N: n})
    subs = {m: sp.ImmutableMatrix(env[m.name]) for m in e.atoms(sp.MatrixSymbol) if m.name in env}
    return sp.Matrix(to_explicit(e.xreplace(subs)))
