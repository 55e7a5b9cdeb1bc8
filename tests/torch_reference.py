"""An independent interpreter of a network's graph in PyTorch, for the tests that compare
symgrad's kernels with torch: one table, keyed by op, of how torch's own functions compute each
node (F.linear, F.conv2d, F.embedding, F.layer_norm, F.scaled_dot_product_attention, …), and a
walk of the nodes in order. Nothing of symgrad's is used but the graph's own records (ops, inputs,
parameter names, attributes). Import it after ``pytest.importorskip("torch")``."""
import torch

from symgrad.core.conv import Geometry

F = torch.nn.functional
ACTS = {"identity": lambda z: z, "relu": torch.relu, "tanh": torch.tanh,
        "sigmoid": torch.sigmoid}
TORCH_OPS = {}


def op(*names):
    def register(fn):
        for name in names:
            TORCH_OPS[name] = fn
        return fn
    return register


def _bias(node, ps):
    return ps[node.params[1]] if len(node.params) > 1 else None


@op("dense")
def _dense(net, node, ins, ps, vals):
    return F.linear(ins[0], ps[node.params[0]], _bias(node, ps))


@op("act")
def _act(net, node, ins, ps, vals):
    return ACTS[node.act.name](ins[0])


@op("softmax")
def _softmax(net, node, ins, ps, vals):
    return torch.softmax(ins[0], -1)


@op("add")
def _add(net, node, ins, ps, vals):
    return ins[0] + ins[1]


@op("mul")
def _mul(net, node, ins, ps, vals):
    return ins[0] * ins[1]


@op("concat")
def _concat(net, node, ins, ps, vals):
    return torch.cat(ins, dim=-1)


@op("embedding")
def _embedding(net, node, ins, ps, vals):
    return F.embedding(ins[0], ps[node.params[0]])


@op("normalize")  # layer norm without its affine part; scale_shift is γ ⊙ x̂ + β
def _normalize(net, node, ins, ps, vals):
    return F.layer_norm(ins[0], (node.dim,), eps=float(node.attr("eps")))


@op("scale_shift")
def _scale_shift(net, node, ins, ps, vals):
    return ps[node.params[0]] * ins[0] + ps[node.params[1]]


@op("conv1d")  # symgrad's (n, T, C) sequences are torch's (n, C, T) transposed
def _conv1d(net, node, ins, ps, vals):
    k, left = node.attr("k"), node.attr("left")
    out = F.conv1d(F.pad(ins[0].transpose(1, 2), (left, k - 1 - left)), ps[node.params[0]],
                   _bias(node, ps))
    return out.transpose(1, 2)


@op("conv2d")
def _conv2d(net, node, ins, ps, vals):
    g = Geometry.of(node.attr("geom"))
    return F.conv2d(ins[0], ps[node.params[0]], _bias(node, ps), stride=(g.sh, g.sw),
                    padding=(g.ph, g.pw))


@op("max_pool2d")
def _max_pool2d(net, node, ins, ps, vals):
    g = Geometry.of(node.attr("geom"))
    return F.max_pool2d(ins[0], (g.kh, g.kw), stride=(g.sh, g.sw))


@op("flatten", "seq_flatten")
def _flatten(net, node, ins, ps, vals):
    return torch.flatten(ins[0], 1)


@op("scores", "attn_softmax")
def _read_by_attend(net, node, ins, ps, vals):
    return None  # attend computes them, through torch's own attention


@op("attend")
def _attend(net, node, ins, ps, vals):
    s = net.nodes[net.nodes[node.inputs[0]].inputs[0]]
    q, k = (vals[i] for i in s.inputs)
    return F.scaled_dot_product_attention(q, k, ins[1], is_causal=s.attr("causal"))


def torch_forward(net, ps, X):
    """The net's output for X (an array, or a dict by input name) with the parameter tensors
    ``ps`` (conv weights in torch's layout), each node by its entry in TORCH_OPS."""
    vals = {}
    for name, node in net.nodes.items():
        if node.op == "input":
            vals[name] = torch.tensor(X[name] if isinstance(X, dict) else X)
            continue
        if node.op not in TORCH_OPS:
            raise AssertionError(f"torch_reference: no torch rule for the op {node.op!r}")
        vals[name] = TORCH_OPS[node.op](net, node, [vals[i] for i in node.inputs], ps, vals)
    return vals[net.output_node]
