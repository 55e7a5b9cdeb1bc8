"""The matrix-level engine: Jacobian chains simplified to the backprop form, and Algorithm 6.4.

Where it sits: derive → simplify. Two tables keyed by node op, each rule registered right under its
key: ``JACOBIANS`` gives the local Jacobian of a node (how the notes write a chain: ∂ŷ/∂h = W,
∂h/∂z = diag(f'(z)), ∂z/∂vec[W] = I ⊗ hᵀ) and ``VJPS`` gives the same Jacobian applied to a
gradient g (the simplified backprop form: g ⊙ f'(z), Wᵀ g, g hᵀ). One backward pass over the graph
defines each g once, so forward and backward values are shared by every parameter. The batch form
(one example per row, the mean loss) is derived from the same records by :func:`matexpr.batch`.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from .derivation import Chain, Derivation, Grad, Note, Partial, Vec
from .matexpr import (Elementwise, LogSumExp, SoftmaxVJP, SumAll, batch, bias_gradient, hadamard,
                      lam)
from .network import Network

N = sp.Symbol("n", integer=True, positive=True)  # the batch size
JACOBIANS: dict = {}
VJPS: dict = {}


def _rule(table, op):
    def register(fn):
        table[op] = fn
        return fn
    return register


# -- local Jacobians: (matrix, why) of node `node` with respect to `wrt` (an input or a parameter)
@_rule(JACOBIANS, "dense")
def _dense_jacobian(net, node, wrt):
    W, h = net.sym(node.params[0]), net.sym(node.inputs[0])
    if wrt == node.inputs[0]:
        return W, f"{node.name} = {W} {h} + … is linear in {h}"
    if wrt == node.params[0]:
        return (sp.KroneckerProduct(sp.Identity(node.dim), h.T),
                f"row i of {node.name} depends only on row i of {W}: blocks of {h}ᵀ on the diagonal")
    return sp.Identity(node.dim), f"{node.name} = … + {wrt}"


@_rule(JACOBIANS, "act")
def _act_jacobian(net, node, wrt):
    z, h = net.sym(node.inputs[0]), net.sym(node.name)
    return (sp.DiagMatrix(node.act.derivative(z, h)),
            f"{node.name}_i depends only on {z}_i, so the Jacobian is diagonal")


@_rule(JACOBIANS, "softmax")
def _softmax_jacobian(net, node, wrt):
    y = net.sym(node.name)
    return (sp.DiagMatrix(y) - y * y.T, "∂ŷ_i/∂z_j = ŷ_i(δ_ij − ŷ_j) for softmax")


@_rule(JACOBIANS, "add")
def _add_jacobian(net, node, wrt):
    return sp.Identity(node.dim), f"{node.name} is a sum: the skip connection passes g through"


# -- vector-Jacobian products: [(target, g-contribution, why)] for a node with gradient g --------
@_rule(VJPS, "dense")
def _dense_vjp(net, node, g):
    W, h = net.sym(node.params[0]), net.sym(node.inputs[0])
    out = [(node.inputs[0], W.T * g, f"g ← {W}ᵀ g"),
           (node.params[0], g * h.T, f"∇{W} = g {h}ᵀ")]
    if len(node.params) > 1:
        out.append((node.params[1], g, f"∇{node.params[1]} = g"))
    return out


@_rule(VJPS, "act")
def _act_vjp(net, node, g):
    z, h = net.sym(node.inputs[0]), net.sym(node.name)
    return [(node.inputs[0], hadamard(g, node.act.derivative(z, h)),
             f"g ← g ⊙ {node.act.name}'({z}): a row vector times a diagonal matrix")]


@_rule(VJPS, "softmax")
def _softmax_vjp(net, node, g):
    return [(node.inputs[0], SoftmaxVJP(net.sym(node.name), g),
             "g ← (diag(ŷ) − ŷŷᵀ) g, the softmax Jacobian is symmetric")]


@_rule(VJPS, "add")
def _add_vjp(net, node, g):
    return [(i, g, f"a sum passes g to {i} unchanged") for i in node.inputs]


def local_jacobian(net, node, wrt):
    try:
        return JACOBIANS[node.op](net, node, wrt)
    except KeyError:
        raise NotImplementedError(f"no Jacobian rule for the node op {node.op!r}") from None


# -- the backward pass ----------------------------------------------------------------------------
@dataclass
class Backward:
    """One backward pass: each g defined once (in order), each parameter's gradient."""

    start: str                 # the node whose g the loss gives directly
    start_why: str
    g: dict                    # node name -> (g symbol, definition, why), in definition order
    grads: dict                # parameter -> [(contribution, why)]
    fused: bool


def g_symbol(net, name):
    return sp.MatrixSymbol(f"g_{name}", net.nodes[name].dim, 1)


def loss_gradient(net):
    """(node, ∇ of the per-example loss at that node, why, fused)."""
    out = net.nodes[net.output_node]
    yh, y = net.sym(out.name), net.target
    name = net.loss.name
    if name in ("bce", "cross_entropy"):
        which = "σ + binary cross-entropy" if name == "bce" else "softmax + cross-entropy"
        return (out.inputs[0], yh - y,
                f"{which}: the loss gradient times the output Jacobian collapses to ŷ − y", True)
    if name == "mse":
        return out.name, yh - y, "ℓ = ½‖ŷ − y‖², so ∇ŷ ℓ = ŷ − y", False
    dL = net.loss.L.expr.diff(net.loss.L.variables[0])
    return (out.name, Elementwise(sp.Lambda(net.loss.L.variables, dL), yh, y, label="∂L/∂ŷ",
                                  latex=r"\partial_{\hat{y}} L"), "differentiate L entrywise", False)


def backward(net: Network) -> Backward:
    net.check()
    start, g0, why0, fused = loss_gradient(net)
    contribs = {start: [(g0, why0)]}
    grads = {p: [] for p in net.parameters}
    gdefs = {}
    for name in reversed(list(net.nodes)):
        node = net.nodes[name]
        if name not in contribs or node.op == "input":
            continue
        terms = contribs.pop(name)
        gdefs[name] = (g_symbol(net, name), _sum([t for t, _ in terms]),
                       "; ".join(dict.fromkeys(w for _, w in terms)))
        for target, term, why in VJPS[node.op](net, node, g_symbol(net, name)):
            (grads if target in grads else contribs).setdefault(target, []).append((term, why))
    for p in net.parameters:
        if not grads[p]:
            raise ValueError(f"the loss does not depend on parameter {p}")
    return Backward(start, why0, gdefs, grads, fused)


def is_weight(net, p) -> bool:
    return any(n.params and n.params[0] == p for n in net.nodes.values())


def batch_rows(net):
    """Per-example symbols → batch matrices (n × d): x → X, z1 → Z1, g_z1 → G_z1, y → Y."""
    rows = {}
    for name, node in net.nodes.items():
        rows[net.sym(name)] = sp.MatrixSymbol(_upper(name), N, node.dim)
        rows[g_symbol(net, name)] = sp.MatrixSymbol("G_" + name, N, node.dim)
    rows[net.target] = sp.MatrixSymbol("Y", N, net.target.rows)
    return rows


def _upper(name):
    return "Yhat" if name == "yhat" else name[0].upper() + name[1:]


def per_example_loss(net):
    yh, y = net.sym(net.output_node), net.target
    name = net.loss.name
    if name == "mse":
        return sp.Rational(1, 2) * SumAll(hadamard(yh - y, yh - y))
    if name == "bce":
        z = net.sym(net.nodes[net.output_node].inputs[0])
        return SumAll(Elementwise(lam(lambda a, t: sp.log(1 + sp.exp(a)) - t * a, 2), z, y,
                                  label="bce"))
    if name == "cross_entropy":  # −Σ y log softmax(z) = Σ y (logsumexp(z) − z)
        z = net.sym(net.nodes[net.output_node].inputs[0])
        return SumAll(hadamard(y, sp.OneMatrix(z.rows, 1) * LogSumExp(z) - z))
    return SumAll(Elementwise(net.loss.L, yh, y, label="L"))


def batch_loss(net):
    """The mean loss over the batch plus λΩ(θ), Ω = ½ Σ‖W‖² over the weight matrices (stable forms:
    bce and cross-entropy are written in the logits, with softplus and log-sum-exp)."""
    total = batch(per_example_loss(net), batch_rows(net), N) / N
    if net.penalty != 0:
        total += net.penalty / 2 * sp.MatAdd(*[SumAll(hadamard(net.sym(p), net.sym(p)))
                                               for p in net.parameters if is_weight(net, p)])
    return total


def algorithm(net: Network) -> Derivation:
    """Algorithm 6.4 derived for this network: forward values, then each g once, then every
    gradient. ``meta['program']`` is the same list of assignments in batch form (what compiles)."""
    bw = backward(net)
    d = Derivation("Forward and backward propagation (Algorithm 6.4) for this network")
    rows, program = batch_rows(net), []
    for name, node in net.nodes.items():
        if node.op != "input":
            rhs = net.definition(name)
            d.add(net.sym(name), rhs, "forward propagation", "forward")
            program.append((rows[net.sym(name)], batch(rhs, rows, N)))
    d.add(sp.Symbol("f"), batch_loss(net), "the mean loss over the n examples", "loss")
    for i, (name, (g, rhs, why)) in enumerate(bw.g.items()):
        d.add(g, rhs, why if i else bw.start_why, "backward")
        brhs = batch(rhs, rows, N)
        program.append((rows[g], brhs / N if name == bw.start else brhs))
    grads = {}
    for p in net.parameters:
        per = _sum([t for t, _ in bw.grads[p]])
        d.add(Grad(sp.Symbol("ℓ"), net.sym(p)), per, "; ".join(w for _, w in bw.grads[p]),
              "gradient", shapes=[net.shapes[p]])
        grads[p] = _batch_grad(net, p, bw, rows)
        program.append((sp.MatrixSymbol("d" + p, *net.shapes[p]), grads[p]))
    d.result = grads
    d.meta.update(program=program, loss=batch_loss(net), rows=rows, backward=bw, n=N)
    return d


def _batch_grad(net, p, bw, rows):
    """∇p of the mean loss: Σ over examples via Gᵀ H (weights) or Gᵀ 1 (biases), plus λ p."""
    terms = []
    for term, _ in bw.grads[p]:
        terms.append(bias_gradient(term, rows, N) if term.shape[1] == 1 and not
                     isinstance(term, sp.MatMul) else batch(term, rows, N))
    if net.penalty != 0 and is_weight(net, p):
        terms.append(net.penalty * net.sym(p))
    return _sum(terms)


def _sum(terms):
    return terms[0] if len(terms) == 1 else sp.MatAdd(*terms)


def gradients(net: Network) -> dict:
    """Parameter name → the gradient of the mean loss as a matrix expression in the batch's
    forward values (X, Z1, H1, …, Yhat, Y) and the parameters, the g's substituted in."""
    d = algorithm(net)
    gsubs = {}
    for lhs, rhs in d.meta["program"]:
        if lhs.name.startswith("G_"):
            gsubs[lhs] = rhs.xreplace(gsubs)
    return {p: g.xreplace(gsubs) for p, g in d.result.items()}


def expand_forward(net: Network, expr):
    """Substitute the batch forward definitions into ``expr`` (innermost last), leaving X, Y and
    the parameters: the closed form as a function of the data."""
    d = algorithm(net)
    env = {}
    for lhs, rhs in d.meta["program"]:
        if not lhs.name.startswith(("G_", "d")):
            env[lhs] = rhs.xreplace(env)
    return expr.xreplace(env)





def explicit(net: Network, expr, n: int, env: dict):
    """``expr`` (a batch expression) entry by entry for a batch of ``n`` examples, with ``env``
    mapping the names X, Y and the parameter names to explicit SymPy matrices."""
    e = expand_forward(net, expr).xreplace({N: n})
    subs = {}
    for m in e.atoms(sp.MatrixSymbol):
        if m.name in env:
            subs[m] = sp.ImmutableMatrix(env[m.name])
    return sp.Matrix(e.xreplace(subs).as_explicit())


from .derive_matrix import derive_parameter  # noqa: E402,F401  (the step-by-step view)
