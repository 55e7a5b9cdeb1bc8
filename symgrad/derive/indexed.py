"""The index level: ∂R/∂α_ml, ∂R/∂β_km at ANY indices (SymPy's Indexed, Sum, KroneckerDelta).

Where it sits: derive, beside :mod:`.element` (which writes a network out weight by weight, every
index concrete) and :mod:`.matrix` (whole matrices). It derives, for a network
x → z1 = W1 x + b1 → h1 = σ(z1) → z2 = W2 h1 + b2 → ŷ = g(z2) with a loss summed over the output
components, the general element of each gradient in symbolic indices, as the ESL lecture (§11.4,
back-propagation) writes it: δ_ki = ∂R_i/∂T_ki, s_mi = σ′(α_0m + α_mᵀx_i) Σ_k β_km δ_ki,
∂R_i/∂β_km = δ_ki z_mi, ∂R_i/∂α_ml = s_mi x_il. A deeper net (L dense layers, each hidden one
followed by its activation) has one error per hidden layer, s1 … s(L−1), each from the one
above: s⁽ˡ⁾_mi = σ′(z⁽ˡ⁾_mi) Σ_k W⁽ˡ⁺¹⁾_km s⁽ˡ⁺¹⁾_ki (s⁽ᴸ⁾ = δ), ∂R_i/∂W⁽ˡ⁾_ml = s⁽ˡ⁾_mi h⁽ˡ⁻¹⁾_li.
Index i is the example, k an output, m a hidden unit, l an input (other letters when the user's
``wrt`` takes these, ``W1_ij``); the cost is the sum over the N examples (``cost="sum"``, ESL's
R(θ)) or their mean (``cost="mean"``).

Every general-index result is checked before it is returned: instantiated at every concrete index
of small networks with the same activations and loss (2-2-1, 3-2-2 — 2-2-2-1, 3-2-2-2 for two
hidden layers — and the network's own sizes when small), with N = 2 examples, its sums written
out, it must equal ``sympy.diff`` of the cost
written out weight by weight, at random points; a mismatch raises :class:`IndexCheckError`.

Expressions hold the canonical IndexedBases ``x, y, W1, b1, W2, b2, z1, h1, z2, yhat, delta, s, R``
and the activations as the undefined functions ``hact``/``hact'`` (hidden) and ``oact``/``oact'``
(output, whose first argument is the output index, as ESL's g_k); the steps wrap them in
:class:`IndexExpr`, a display node the printing layer renders in each notation's letters
(``symgrad.printing.indexed`` registers its printer: this layer never imports printing).
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass

import sympy as sp

from symgrad.core.derivation import Derivation, Remark, StepKind, _basic
from symgrad.core.evaluate import evaluate
from symgrad.graph.activations import ACTIVATIONS
from symgrad.graph.network import Graph


class IndexCheckError(AssertionError):
    """A general-index result that disagrees with sympy.diff of the written-out cost."""


class NotIndexable(ValueError):
    """A network the index level does not take: ``what`` says what it takes and what this one
    is; the message adds the levels that do take it, as the Python API spells them (the CLI
    spells them --level element or --level matrix)."""

    def __init__(self, what: str):
        super().__init__(f"{what} (use level='element' or 'matrix')")
        self.what = what


COSTS = ("sum", "mean")
# index letters per notation: example, output, hidden, input (ESL: x_il, y_ik, α_ml, β_km)
LETTERS = {"esl": ("i", "k", "m", "l"), "feature": ("n", "k", "j", "i"),
           "slides": ("i", "k", "j", "l")}
DEFAULT_COST = {"esl": "sum"}  # the presets whose notes sum over the examples; the rest: mean
CHECK_SIZES = ((2, 2, 1), (3, 2, 2))  # a one-hidden-layer net's (check_sizes: any depth's)

class _Bases(dict):
    """The canonical IndexedBases, any layer's made on first use (W3, h2, s1 of a deeper net)."""

    def __missing__(self, name):
        self[name] = sp.IndexedBase(name)
        return self[name]


B = _Bases({name: sp.IndexedBase(name) for name in
            ("x", "y", "W1", "b1", "W2", "b2", "z1", "h1", "z2", "yhat", "delta", "s", "R")})
ACT_KINDS = ("hact", "hact'", "oact", "oact'")


def act_fn(kind: str, act) -> sp.FunctionClass:
    """The undefined function standing for an activation (``hact[sigmoid]``, ``oact'[identity]``):
    printers name it by the activation, the check replaces it by the activation's Lambda."""
    return sp.Function(f"{kind}[{act.name}]")


def act_kind(e):
    """(kind, activation name) of an applied act_fn, else None."""
    m = re.fullmatch(r"(hact'?|oact'?)\[(.+)\]", getattr(e.func, "__name__", "")) \
        if isinstance(e, sp.Function) else None
    return (m.group(1), m.group(2)) if m else None
SIZES = {"N": sp.Symbol("N", integer=True, positive=True), "K": sp.Symbol("K", integer=True,
         positive=True), "M": sp.Symbol("M", integer=True, positive=True),
         "p": sp.Symbol("p", integer=True, positive=True)}
COST = sp.Symbol("R")  # the cost R(θ)


class IndexExpr(sp.Basic):
    """A general-index expression as a step's side: printed by the printer the printing layer
    registers (``IndexExpr.latex_printer(expr, printer)``), in the notation being printed."""

    latex_printer = None
    text_printer = None

    def __new__(cls, expr, whole=False, layers=2):
        return sp.Basic.__new__(cls, _basic(expr), sp.true if whole else sp.false,
                                sp.Integer(layers))

    @property
    def layers(self) -> int:
        """The network's dense layers (2: one hidden layer, ESL's α and β)."""
        return int(self.args[2])

    @property
    def whole(self) -> bool:
        """Pre-activations written out (a forward definition), else by their unit's name."""
        return bool(self.args[1])

    @property
    def expr(self):
        return self.args[0]

    def _latex(self, p):
        if IndexExpr.latex_printer is None:
            return sp.latex(self.expr)
        return IndexExpr.latex_printer(self.expr, p, self.whole, self.layers)

    def _sympystr(self, p):
        """SymPy's syntax for JSON (the sympify printer), the text format's for a TextPrinter."""
        if IndexExpr.text_printer is None:
            return str(self.expr)
        return IndexExpr.text_printer(self.expr, p, self.whole, self.layers)

    def _sympyrepr(self, p):
        return self._sympystr(p)


@dataclass
class Shape:
    """The network the index level derives, L dense layers (L − 1 hidden): its parameter names,
    activations and per-component loss L(ŷ_k, y_k)."""

    names: dict           # canonical W1 b1 … WL bL → the network's parameter names
    hiddens: tuple        # Activation of each hidden layer 1 … L − 1
    output: object        # Activation
    loss: object          # Loss
    sizes: tuple          # (p, M1, …, K)
    penalty: sp.Expr

    @property
    def layers(self) -> int:
        return len(self.sizes) - 1

    @property
    def hidden(self):  # the one-hidden-layer net's (ESL's σ)
        return self.hiddens[0]

    def activation(self, name: str):
        return next(a for a in (*self.hiddens, self.output) if a.name == name)


def shape_of(net: Graph) -> Shape:
    """The network as the index level needs it, or one ValueError saying what it is not."""
    nodes = list(net.nodes.values())
    ops = [n.op for n in nodes]
    what = ("the index level derives networks x → dense → activation (→ dense → activation …) → "
            "dense (→ activation) with one loss, such as 2-2-1 or 2-3-3-1")
    # several heads first: their nodes in order read as one chain (the multi-task net was
    # "input → dense → act → dense → dense → softmax", its two heads run together, issue 13)
    if len(net.losses) != 1 or net.losses[0].weight != 1:
        heads = sorted(set(net.outputs), key=net.outputs.index)
        raise NotIndexable(f"{what}; this one's loss is " + (
            f"{len(net.losses)} terms, on its outputs {' and '.join(heads)}" if len(heads) > 1
            else f"{len(net.losses)} terms on {heads[0]}" if len(net.losses) > 1
            else f"weighted {net.losses[0].weight}"))
    body = ops[1:-1] if ops[-1:] == ["act"] else ops[1:]
    if ops[:1] != ["input"] or len(body) < 3 or body[-1] != "dense" or \
            body[:-1] != ["dense", "act"] * ((len(body) - 1) // 2) or len(body) % 2 != 1:
        raise NotIndexable(f"{what}; this one is {' → '.join(ops)}")
    loss = net.losses[0].loss
    if loss.labels:
        raise ValueError("the index level needs a loss summed over the outputs one by one "
                         "(mse, bce or an expression in yhat and y), not cross_entropy")
    dense = [n for n in nodes if n.op == "dense"]
    if any(len(d.params) != 2 for d in dense):
        raise ValueError(f"{what}, each dense layer with a bias")
    acts = [n.act for n in nodes[1:1 + len(body)] if n.op == "act"]
    out = nodes[-1].act if ops[-1] == "act" else ACTIVATIONS["identity"]
    names = {}
    for n, d in enumerate(dense, 1):
        names[f"W{n}"], names[f"b{n}"] = d.params
    return Shape(names, tuple(acts), out, loss, (nodes[0].dim, *(d.dim for d in dense)),
                 net.penalty)


# -- the network in indices -----------------------------------------------------------------------
def size(layer: int, layers: int):
    """The size symbol of a layer's units: p the inputs, K the outputs, M the one hidden layer's
    (M1, M2, … a deeper net's)."""
    if layer == 0:
        return SIZES["p"]
    if layer == layers:
        return SIZES["K"]
    if layers == 2:
        return SIZES["M"]
    return sp.Symbol(f"M{layer}", integer=True, positive=True)


def unit(layer: int, j, i):
    """Unit j of layer ``layer`` for example i: x_il for the inputs, h⁽ℓ⁾_ji after."""
    return B["x"][i, j] if layer == 0 else B[f"h{layer}"][j, i]


def pre(layer: int, layers: int, j, i, bound):
    """b⁽ℓ⁾_j + Σ_l′ W⁽ℓ⁾_jl′ h⁽ℓ⁻¹⁾_l′i (ESL's α_0m + α_mᵀx_i): a pre-activation written out."""
    return B[f"b{layer}"][j] + sp.Sum(B[f"W{layer}"][j, bound] * unit(layer - 1, bound, i),
                                      (bound, 1, size(layer - 1, layers)))


def _pre1(m, i, lb):
    return pre(1, 2, m, i, lb)


def _pre2(k, i, mb):
    return pre(2, 2, k, i, mb)


@dataclass
class Indices:
    i: sp.Symbol  # example
    k: sp.Symbol  # output
    m: sp.Symbol  # hidden
    l: sp.Symbol  # input
    kk: sp.Symbol  # k′, m′: the chain rule's dummies
    mm: sp.Symbol

    @property
    def lb(self):  # the bound index of α_mᵀx_i = Σ_l′ α_ml′ x_il′
        return sp.Symbol(f"{self.l}'", integer=True)

    @property
    def mb(self):  # the bound index of β_kᵀz_i
        return sp.Symbol(f"{self.m}''", integer=True)


def _indices(notation: str, taken: set) -> Indices:
    base = LETTERS.get(notation, LETTERS["slides"])
    spare = [c for c in "ijklmnabcdeqrtuv" if c not in taken]
    out = []
    for c in base:
        if c in taken or c in out:
            c = next(s for s in spare if s not in out and s not in base)
        out.append(c)
    sym = [sp.Symbol(c, integer=True) for c in out]
    return Indices(*sym, sp.Symbol(out[1] + "'", integer=True), sp.Symbol(out[2] + "'",
                                                                          integer=True))


WRT = re.compile(r"(W1|b1|W2|b2)(?:_([A-Za-z])([A-Za-z])?)?")
ROW_ALIASES = {"wdot": "W1", "wddot": "W2"}  # the feature notes' ẇ_ij, ẅ_jk (row vectors)
ALIASES = {"alpha": "W1", "alpha0": "b1", "beta": "W2", "beta0": "b2", "α": "W1", "α0": "b1",
           "β": "W2", "β0": "b2"}


def general(name, net: Graph) -> bool:
    """True for an entry of one of ``net``'s parameters named with index letters (W1_ij, b2_k,
    ESL's alpha_ml), not digits (W1_12) and not a parameter's own name."""
    if not isinstance(name, str) or name in net.parameters:
        return False
    base, _, rest = name.rpartition("_")
    return bool(re.fullmatch(r"[A-Za-z]{1,2}", rest)) and (
        base in net.parameters or base in ALIASES or base in ROW_ALIASES)


def parse_wrt(shape: Shape, wrt: str):
    """'W1', 'W1_ij' (row i, column j: hidden unit i, input j), 'b2_k', or ESL's 'alpha_ml',
    'beta_km', 'alpha0_m', 'beta0_k' → (canonical name, index letters or None)."""
    text = str(wrt).strip()
    back = {v: k for k, v in shape.names.items()}
    name, _, rest = text.partition("_")
    if name not in back and text in back:  # a parameter named with an underscore
        name, rest = text, ""
    canon = back.get(name) or ALIASES.get(name) or ROW_ALIASES.get(name)
    if canon and re.fullmatch(r"\d+(,\d+)?", rest):
        raise ValueError(f"{text!r} is one concrete entry: --level element derives it (the "
                         f"index level takes letters: {name}_ij)")
    letters = rest or None
    if canon is None or (letters and (not letters.isalpha() or
                                      len(letters) != (2 if canon[0] == "W" else 1))):
        known = ", ".join(f"{shape.names[c]}_{'ij' if c[0] == 'W' else 'i'}" for c in shape.names)
        raise ValueError(f"unknown parameter {text!r} for the index level: give one of "
                         f"{', '.join(shape.names.values())}, or with index letters {known}")
    if letters and name in ROW_ALIASES:  # the feature notes' ẇ_ij joins input i to unit j
        letters = letters[::-1]
    if letters and len(set(letters)) != len(letters):
        raise ValueError(f"{text!r}: give a parameter's two indices different letters (W1_ij)")
    return canon, tuple(letters) if letters else None


# -- the derivation -------------------------------------------------------------------------------
def derive_index(net: Graph, wrt: str, cost: str | None = None, notation: str = "esl",
                 of: str = "loss") -> Derivation:
    """∂R/∂θ for one parameter entry θ in general indices (see the module docstring), checked at
    every concrete index of 2-2-1 and 3-2-2 against sympy.diff before it is returned."""
    shape = shape_of(net)
    notation = getattr(notation, "name", notation) or "esl"
    cost = cost or DEFAULT_COST.get(notation, "mean")
    if cost not in COSTS:
        raise ValueError(f"cost must be 'sum' or 'mean', not {cost!r}")
    if of not in ("loss", "output"):
        raise ValueError(f"of must be 'loss' or 'output', not {of!r}")
    if of == "output" and shape.layers != 2:
        raise ValueError("of='output' at the index level is for one-hidden-layer nets (the "
                         f"feature notes' ∂π/∂w); this one has {shape.layers - 1} hidden layers")
    canon, letters = parse_wrt(shape, wrt)
    ix = _indices(notation, set(letters or ()))
    last = int(canon[1:]) == shape.layers  # the output layer's: row k (an output), column m
    if letters:  # the user's letters name the parameter's own indices
        own = [sp.Symbol(c, integer=True) for c in letters]
        if canon[0] == "W" and not last:
            ix.m, ix.l = own
        elif canon[0] == "W":
            ix.k, ix.m = own
        elif not last:
            ix.m = own[0]
        else:
            ix.k = own[0]
        ix.kk, ix.mm = sp.Symbol(f"{ix.k}'", integer=True), sp.Symbol(f"{ix.m}'", integer=True)
    d = Derivation(title=f"∂{'R' if of == 'loss' else 'f'}/∂{shape.names[canon]} in general "
                   "indices")
    rec = _Record(d, shape, ix, canon, cost, of)
    if of == "loss":  # the title's ∂R/∂θ in the body's names (ESL's ∂R/∂α_ml, not ∂R/∂W1)
        d.meta["title_expr"] = IndexExpr(sp.Derivative(COST, rec.param), layers=shape.layers)
    rec.run()
    _verify(net, shape, rec)
    d.result = rec.total
    d.meta.update(level="index", cost=cost, notation=notation, wrt=canon, of=of,
                  indices={"example": str(ix.i), "output": str(ix.k), "hidden": str(ix.m),
                           "input": str(ix.l)},
                  per_example=rec.per_example, definitions=rec.definitions,
                  explicit=rec.explicit(rec.total), checked=rec.checked)
    return d


class _Record:
    """The steps of one derivation, and the definitions (δ, s, z, T, f) its result names."""

    def __init__(self, d, shape, ix, canon, cost, of):
        self.d, self.shape, self.ix, self.canon, self.cost, self.of = d, shape, ix, canon, cost, of
        self.definitions = {}
        self.checked = []
        self.layers = L = shape.layers  # self.L is the loss
        self.layer = int(canon[1:])
        k, m, l = ix.k, ix.m, ix.l
        self.HACT, self.HACTP = act_fn("hact", shape.hidden), act_fn("hact'", shape.hidden)
        self.OACT, self.OACTP = act_fn("oact", shape.output), act_fn("oact'", shape.output)
        # its own indices: an output layer's row is an output (k), a hidden layer's a unit (m)
        self.own = ((k, m) if self.layer == L else (m, l)) if canon[0] == "W" else \
            ((k,) if self.layer == L else (m,))
        self.param = B[canon][self.own]

    def hact(self, layer):
        return act_fn("hact", self.shape.hiddens[layer - 1])

    def hactp(self, layer):
        return act_fn("hact'", self.shape.hiddens[layer - 1])

    def err(self, layer) -> str:
        """The base of layer ``layer``'s error ∂R_i/∂z⁽ˡᵃʸᵉʳ⁾: δ the output's, ESL's s the one
        hidden layer's, s1, s2, … a deeper net's."""
        return "delta" if layer == self.layers else ("s" if self.layers == 2 else f"s{layer}")

    def add(self, lhs, rhs, why, kind, whole=False):
        L = self.layers
        self.d.add(None if lhs is None else IndexExpr(lhs, layers=L),
                   IndexExpr(rhs, whole, layers=L), why, kind)

    # the per-component loss and its derivative
    def L(self, k, i):
        p, t = sp.Dummy("p", real=True), sp.Dummy("t", real=True)
        return self.shape.loss.written_out([p], [t]).xreplace({p: B["yhat"][k, i],
                                                                  t: B["y"][i, k]})

    def dL(self, k, i):
        """∂L/∂f_k(x_i), as c (y_ik − f_k(x_i)) when it is that."""
        p, t = sp.Dummy("p", real=True), sp.Dummy("t", real=True)
        body = sp.diff(self.shape.loss.written_out([p], [t]), p)
        c = sp.diff(body, t)
        f, y = B["yhat"][k, i], B["y"][i, k]
        if c.is_number and c != 0 and sp.expand(body - c * (t - p)) == 0:
            return sp.Mul(c, y - f, evaluate=False) if c != 1 else y - f
        return body.xreplace({p: f, t: y})

    def gprime(self, k, i):
        if self.shape.output.name == "identity":
            return sp.Integer(1)
        return self.OACTP(k, pre(self.layers, self.layers, k, i, self.ix.mb))

    def run(self):
        ix, d = self.ix, self.d
        i, k, m, l = ix.i, ix.k, ix.m, ix.l
        N, K = SIZES["N"], SIZES["K"]
        Ri = B["R"][i]
        # the model, as the notes define it
        total = sp.Sum(Ri, (i, 1, N))
        if self.of == "loss":
            self.add(COST, total if self.cost == "sum" else total / N,
                     "the cost: the sum of the examples' losses" if self.cost == "sum" else
                     "the cost: the mean of the examples' losses", StepKind.DEFINITION)
            self.add(Ri, sp.Sum(self.L(k, i), (k, 1, K)),
                     f"the loss of example {i}: {self.shape.loss.words}, over the outputs",
                     StepKind.DEFINITION)
        L = self.layers
        for layer in range(1, L):
            act_of = pre(layer, L, m, i, ix.lb)
            if L > 2:  # the chain rule below names z⁽ˡ⁺¹⁾ and the errors σ′(z⁽ˡ⁾): each defined
                self.define(B[f"z{layer}"][m, i], act_of, f"the pre-activation of hidden layer "
                            f"{layer} for one example", StepKind.FORWARD)
                act_of = B[f"z{layer}"][m, i]
            self.define(B[f"h{layer}"][m, i], self.hact(layer)(act_of),
                        "a hidden unit of one example" if L == 2 else
                        f"a unit of hidden layer {layer} for one example", StepKind.FORWARD)
        self.define(B[f"z{L}"][k, i], pre(L, L, k, i, ix.mb), "an output's pre-activation",
                    StepKind.FORWARD)
        self.define(B["yhat"][k, i], self.OACT(k, B[f"z{L}"][k, i]), f"output {k}"
                    + (" (the identity)" if self.shape.output.name == "identity" else ""),
                    StepKind.FORWARD)
        if self.of == "output":
            getattr(self, "_out_" + self.canon)()
        else:
            (self._W2 if self.layer == L else self._W1)(bias=self.canon[0] == "b")
        pen = self.shape.penalty
        if self.of == "loss":
            per = self.per_example
            tot = sp.Sum(per, (i, 1, N))
            tot = tot if self.cost == "sum" else tot / N
            why = ("the cost is a sum: add the examples' derivatives" if self.cost == "sum" else
                   "the cost is a mean: average the examples' derivatives")
            if pen != 0 and self.canon[0] == "W":
                tot = tot + pen * self.param
                why += f"; the penalty λΩ(θ), Ω = ½ Σ w², adds λ times the weight, λ = {pen}"
            self.add(sp.Derivative(COST, self.param), tot, why, StepKind.BATCH)
            self.total = tot
        else:
            self.total = self.per_example
        nets = " and ".join("-".join(map(str, c)) for c in check_sizes(self.layers))
        self.d.add(None, Remark(f"checked at every index of {nets} against the derivative "
                                "taken entry by entry"),
                   "each index instantiated, the sums written out", StepKind.AGREE)

    def define(self, lhs, rhs, why, kind):
        self.definitions[lhs] = rhs
        self.add(lhs, rhs, why, kind, whole=kind is StepKind.FORWARD)

    # ∂R_i/∂θ
    def _delta(self):
        ix = self.ix
        i, k = ix.i, ix.k
        dR = sp.Derivative(B["R"][i], B["yhat"][k, i])
        self.add(dR, self.dL(k, i), f"differentiate the loss: only the {k}-th term of R_{i} holds "
                 f"output {k}", StepKind.JACOBIAN)
        rhs = sp.Mul(self.dL(k, i), self.gprime(k, i), evaluate=False) \
            if self.gprime(k, i) != 1 else self.dL(k, i)
        self.define(B["delta"][k, i], rhs, "the output error (ESL's δ_ki), the derivative by the "
                    f"output's pre-activation: the output separates R_{i} from it, so the chain "
                    "rule applies", StepKind.BACKWARD)

    def _s(self, layer=1):
        ix, L = self.ix, self.layers
        i, k, m = ix.i, ix.k, ix.m
        back = sp.Sum(B[f"W{layer + 1}"][k, m] * B[self.err(layer + 1)][k, i],
                      (k, 1, size(layer + 1, L)))
        why = ("the hidden error (ESL's s_mi): the back-propagation equation, each output's "
               "error δ sent back along its weight") if L == 2 else (
            f"the error of hidden layer {layer} (the derivative by its pre-activations), from "
            f"the errors of layer {layer + 1}: the back-propagation equation, each unit's error "
            "sent back along its weight")
        self.define(B[self.err(layer)][m, i], self.hactp(layer)(pre(layer, L, m, i, ix.lb)) * back,
                    why, StepKind.BACKWARD)

    def _W2(self, bias=False):
        ix = self.ix
        i, k, m, kk = ix.i, ix.k, ix.m, ix.kk
        Ri, th = B["R"][i], self.param
        z = sp.Integer(1) if bias else unit(self.layers - 1, m, i)
        self.add(sp.Derivative(Ri, th), sp.Sum(sp.Mul(sp.Derivative(Ri, B["yhat"][kk, i]),
                                                      sp.Derivative(B["yhat"][kk, i], th),
                                                      evaluate=False),
                                               (kk, 1, SIZES["K"])),
                 f"the outputs separate R_{i} from the weight, so the chain rule applies",
                 StepKind.CHAIN_RULE)
        g = self.gprime(kk, i)
        self.add(None, sp.Sum(sp.Derivative(Ri, B["yhat"][kk, i]) * sp.KroneckerDelta(k, kk) * g
                              * z, (kk, 1, SIZES["K"])),
                 f"output {kk} depends on the weight only when {kk} = {k}",
                 StepKind.SUM)
        self.add(None, sp.Derivative(Ri, B["yhat"][k, i]) * self.gprime(k, i) * z,
                 f"only the term {kk} = {k} is left", StepKind.SIMPLIFY)
        self._delta()
        self.per_example = B["delta"][k, i] * z
        self.add(sp.Derivative(Ri, th), self.per_example, "substitute the output error" +
                 ("; a bias's input is 1 (ESL's z_0i = 1)" if bias else ""), StepKind.SUBSTITUTION)

    def _W1(self, bias=False):
        """A hidden layer ℓ's weight: through layer ℓ + 1's pre-activations and layer ℓ's units,
        whose errors are defined first (δ, then each hidden layer's from the one above)."""
        ix, L, layer = self.ix, self.layers, self.layer
        i, k, m, l, mm = ix.i, ix.k, ix.m, ix.l, ix.mm
        Ri, th = B["R"][i], self.param
        x = sp.Integer(1) if bias else unit(layer - 1, l, i)
        K, M = size(layer + 1, L), size(layer, L)
        z, h, err = B[f"z{layer + 1}"], B[f"h{layer}"], B[self.err(layer + 1)]
        self._delta()
        for above in range(L - 1, layer, -1):
            self._s(above)
        hp = self.hactp(layer)
        self.add(sp.Derivative(Ri, th), sp.Sum(sp.Derivative(Ri, z[k, i]) * sp.Sum(
            sp.Mul(sp.Derivative(z[k, i], h[mm, i]), sp.Derivative(h[mm, i], th),
                   evaluate=False),
            (mm, 1, M)), (k, 1, K)),
            f"the outputs' pre-activations and the hidden units separate R_{i} from the weight, "
            "so the chain rule applies, summed over every path" if L == 2 else
            f"the pre-activations of layer {layer + 1} and the units of layer {layer} separate "
            f"R_{i} from the weight, so the chain rule applies, summed over every path",
            StepKind.CHAIN_RULE)
        self.add(None, sp.Sum(err[k, i] * sp.Sum(
            B[f"W{layer + 1}"][k, mm] * sp.KroneckerDelta(m, mm) * hp(pre(layer, L, mm, i, ix.lb))
            * x, (mm, 1, M)), (k, 1, K)),
            (f"the output error δ; hidden unit {mm} depends on the weight only when {mm} = {m}"
             if L == 2 else f"the errors of layer {layer + 1}; unit {mm} depends on the weight "
             f"only when {mm} = {m}"), StepKind.SUM)
        self.add(None, sp.Sum(err[k, i] * B[f"W{layer + 1}"][k, m] * hp(pre(layer, L, m, i, ix.lb))
                              * x, (k, 1, K)), f"only the term {mm} = {m} is left",
                 StepKind.SIMPLIFY)
        self._s(layer)
        self.per_example = B[self.err(layer)][m, i] * x
        self.add(sp.Derivative(Ri, th), self.per_example, "substitute the hidden error" +
                 ("; a bias's input is 1 (ESL's x_i0 = 1)" if bias else ""), StepKind.SUBSTITUTION)

    # ∂f_k(x_i)/∂θ: the output itself (the feature notes' ∂π/∂w)
    def _out_W1(self, bias=False):
        ix = self.ix
        i, k, m, l = ix.i, ix.k, ix.m, ix.l
        th, x = self.param, (sp.Integer(1) if bias else B["x"][i, l])
        rhs = self.gprime(k, i) * B["W2"][k, m] * self.HACTP(_pre1(m, i, ix.lb)) * x
        self.add(sp.Derivative(B["yhat"][k, i], th), sp.Mul(
            sp.Derivative(B["yhat"][k, i], B["h1"][m, i]), sp.Derivative(B["h1"][m, i], th),
            evaluate=False), "the hidden unit separates the output from the weight, so the chain "
            "rule applies", StepKind.CHAIN_RULE)
        self.per_example = rhs
        self.add(None, rhs, "differentiate each factor", StepKind.SUBSTITUTION)

    def _out_b1(self):
        self._out_W1(bias=True)

    def _out_W2(self, bias=False):
        ix = self.ix
        i, k, m = ix.i, ix.k, ix.m
        z = sp.Integer(1) if bias else B["h1"][m, i]
        self.per_example = self.gprime(k, i) * z
        self.add(sp.Derivative(B["yhat"][k, i], self.param), self.per_example,
                 "the output's pre-activation separates it from the weight",
                 StepKind.CHAIN_RULE)

    def _out_b2(self):
        self._out_W2(bias=True)

    # the definitions substituted back: what the check instantiates
    def explicit(self, expr):
        sh = self.shape
        defs = {**self.definitions}
        for _ in range(8 + 4 * self.layers):  # each pass substitutes one level of names
            new = _subs_indexed(expr, defs)
            if new == expr:
                break
            expr = new
        def value(e):  # each activation by its name: a deep net's layers may differ
            kind, name = act_kind(e)
            act, a = sh.activation(name), e.args[-1]
            return act.f(a) if not kind.endswith("'") else act.prime(a, act.f(a))

        return expr.replace(lambda e: act_kind(e) is not None, value)


def _subs_indexed(expr, defs: dict):
    """Each Indexed whose base has a definition replaced by it, the definition's indices renamed."""
    pattern = {lhs.base: (lhs, rhs) for lhs, rhs in defs.items()}

    def repl(e):
        lhs, rhs = pattern[e.base]
        mapping = dict(zip(lhs.indices, e.indices))
        # the definition's summed dummies must not capture the new indices
        return rhs.xreplace({a: b for a, b in mapping.items() if a != b}) if \
            _safe(rhs, mapping) else _renamed(rhs, mapping)

    return expr.replace(lambda e: isinstance(e, sp.Indexed) and e.base in pattern, repl)


def _safe(rhs, mapping) -> bool:
    bound = {v for s in rhs.atoms(sp.Sum) for v in s.variables}
    return not (bound & set(mapping.values())) and not (bound & set(mapping))


def _renamed(rhs, mapping):
    """rhs with its bound dummies renamed fresh, then its free indices mapped."""
    fresh = {}
    for s in rhs.atoms(sp.Sum):
        for v in s.variables:
            fresh.setdefault(v, sp.Dummy(str(v), integer=True))
    rhs = rhs.xreplace(fresh)
    return rhs.xreplace(mapping)


# -- the check ------------------------------------------------------------------------------------
def check_sizes(layers: int) -> tuple:
    """The small nets every result is checked on: 2-2-1 and 3-2-2 (2-2-2-1 and 3-2-2-2 …)."""
    return ((2,) + (2,) * (layers - 1) + (1,), (3,) + (2,) * (layers - 1) + (2,))


def _written_out(shape: Shape, sizes, N, cost):
    """The cost R written out weight by weight for layer sizes (p, M1, …, K) and N examples, and
    the symbol of every Indexed entry (W1[1, 2] → W1_1,2)."""
    p, K, L = sizes[0], sizes[-1], len(sizes) - 1
    sym = {}

    def s(base, *idx):
        key = B[base][idx]
        if key not in sym:
            sym[key] = sp.Symbol(f"{base}_{','.join(map(str, idx))}", real=True)
        return sym[key]

    of = shape.output.f
    q, t = sp.Dummy("q", real=True), sp.Dummy("t", real=True)
    Lc = sp.Lambda((q, t), shape.loss.written_out([q], [t]))
    total, outs = 0, {}
    for i in range(1, N + 1):
        h = [s("x", i, l) for l in range(1, p + 1)]
        for layer in range(1, L):
            f = shape.hiddens[layer - 1].f
            h = [f(s(f"b{layer}", m) + sum(s(f"W{layer}", m, l) * h[l - 1]
                                           for l in range(1, len(h) + 1)))
                 for m in range(1, sizes[layer] + 1)]
        for k in range(1, K + 1):
            T = s(f"b{L}", k) + sum(s(f"W{L}", k, m) * h[m - 1] for m in range(1, len(h) + 1))
            outs[(k, i)] = of(T)
            total += Lc(of(T), s("y", i, k))
    R = total if cost == "sum" else total / N
    if shape.penalty != 0:
        R += shape.penalty / 2 * sum(v ** 2 for key, v in sym.items()
                                     if re.fullmatch(r"W\d+", key.base.label.name))
    return R, outs, sym


def _written_sums(expr):
    """Every Sum over a concrete range written out term by term, nothing simplified. SymPy's
    Sum.doit, with the parameter's own indices still free, took 11.4 s of the 15 s that checking
    ∂R/∂W1 of 2-2-2-1 took (it tries closed forms); a KroneckerDelta evaluates itself once its
    indices are numbers, when they are substituted."""
    done = {}

    def walk(e):
        if e in done:
            return done[e]
        if isinstance(e, sp.Sum):
            body = walk(e.function)
            for v, lo, hi in reversed(e.limits):
                body = sp.Add(*(body.xreplace({v: sp.Integer(j)})
                                for j in range(int(lo), int(hi) + 1)))
            out = body
        elif e.args and not isinstance(e, sp.Indexed):
            out = e.func(*map(walk, e.args))
        else:
            out = e
        done[e] = out
        return out

    return walk(expr)


def _verify(net, shape: Shape, rec: _Record) -> None:
    """Every concrete index of each check size: the general result instantiated vs sympy.diff."""
    L = shape.layers
    sizes = list(check_sizes(L))
    if shape.sizes not in sizes and sum(a * b for a, b in zip(shape.sizes, shape.sizes[1:])) <= 12:
        sizes.append(shape.sizes)
    general = rec.explicit(rec.total)
    ix, N = rec.ix, 2
    rng = random.Random(13)
    for net_sizes in sizes:
        K, layer = net_sizes[-1], rec.layer
        R, outs, sym = _written_out(shape, net_sizes, N, rec.cost)
        rows, cols = net_sizes[layer], net_sizes[layer - 1]
        ranges = [(r, c) for r in range(1, rows + 1) for c in range(1, cols + 1)] \
            if rec.canon[0] == "W" else [(r,) for r in range(1, rows + 1)]
        own = rec.own
        size_subs = {SIZES["N"]: N, **{size(j, L): n for j, n in enumerate(net_sizes)}}
        once = _written_sums(general.xreplace(size_subs))  # own indices still free
        points = [{v: rng.uniform(-1.5, 1.5) for v in sym.values()} for _ in range(2)]
        for idx in ranges:
            theta = B[rec.canon][idx]
            targets = [(None, R)] if rec.of == "loss" else \
                [((k, i), outs[(k, i)]) for k in range(1, K + 1) for i in range(1, N + 1)
                 if rec.canon in ("W1", "b1") or k == idx[0]]
            for where, F in targets:
                direct = sp.diff(F, sym[theta])
                subs = dict(zip(own, idx))
                if where is not None:
                    subs.update({ix.k: where[0], ix.i: where[1]})
                inst = once.xreplace(subs)
                inst = inst.replace(lambda e: isinstance(e, sp.Indexed), lambda e: sym.get(e, e))
                left = inst.free_symbols - set(sym.values())
                if left:
                    raise IndexCheckError(f"the general ∂/∂{rec.canon} at {idx} (sizes {net_sizes}) "
                                          f"keeps {sorted(map(str, left))} after instantiation")
                for point in points:
                    a, b = evaluate(inst, point), evaluate(direct, point)
                    if not abs(a - b) <= 1e-9 * (1 + abs(b)):
                        raise IndexCheckError(
                            f"the general ∂/∂{rec.canon} disagrees with sympy.diff at index "
                            f"{idx} of a {'-'.join(map(str, net_sizes))} net: {a} vs {b}")
        rec.checked.append(net_sizes)
