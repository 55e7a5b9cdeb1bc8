"""Every registered graph op, checked: a small network built with it has compiled gradients equal
to central differences of its own compiled loss, on the numpy kernel's both paths (the unrolled
tiny-net path and the whole-batch one) and on the python backend. The table of builders below must
cover the registry: an op registered without one fails here, naming it (the registry is checked
complete, as the rule tables are)."""
import numpy as np
import pytest

import symgrad as sg
from symgrad.graph.ops import OPS


def _mlp_with(op_node):
    def build():
        net = sg.Network()
        x = net.input("x", 3)
        h = op_node(net, net.act(net.dense(x, 3), "tanh"), x)
        net.set_loss(net.dense(h, 2), "mse")
        return net
    return build


def _gate(net, h, x):
    return net.mul(h, net.act(net.dense(x, 3), "sigmoid"))


def _stack(net, h, x):
    return net.concat(h, x)


def _skip(net, h, x):
    return net.add(h, x)


def _norm(net, h, x):
    return net.layer_norm(h)


def _tied(net, h, x):
    return net.act(net.dense(h, W="W1", transpose=True), "tanh")


def _softmax_head():
    net = sg.Network()
    x = net.input("x", 3)
    net.set_loss(net.act(net.dense(net.act(net.dense(x, 4), "relu"), 3), "softmax"),
                 "cross_entropy")
    return net


def _embedding():
    net = sg.Network()
    tok = net.input("tok", shape=(4,), tokens=5)
    e = net.embedding(tok, 3)
    net.set_loss(net.dense(net.act(e, "tanh"), 2), "mse")
    return net


def _attention(causal):
    def build():
        net = sg.Network()
        x = net.input("x", shape=(4, 3))
        a = net.attention(net.dense(x, 2), net.dense(x, 2), net.dense(x, 3), causal=causal)
        net.set_loss(net.dense(a, 2), "mse")
        return net
    return build


def _cnn(stride, pad, pool):
    def build():
        net = sg.Network()
        x = net.input("x", shape=(2, 4, 4))
        h = net.act(net.conv2d(x, 2, 2, stride=stride, padding=pad), "tanh")
        p = net.max_pool2d(h, *pool)
        net.set_loss(net.dense(net.flatten(p), 2), "mse")
        return net
    return build


def _conv1d(padding):
    def build():
        net = sg.Network()
        x = net.input("x", shape=(4, 3))
        h = net.act(net.conv1d(x, 2, 3, padding=padding), "tanh")
        net.set_loss(net.dense(h, 2), "mse")
        return net
    return build


def _seq_flatten(labels):
    def build():
        net = sg.Network()
        x = net.input("x", shape=(4, 3))
        f = net.flatten(net.act(net.conv1d(x, 2, 3), "tanh"))
        if labels:
            net.set_loss(net.act(net.dense(f, 3), "softmax"), "cross_entropy")
        else:
            net.set_loss(net.dense(f, 2), "mse")
        return net
    return build


BUILDERS = {  # op → the networks that use it
    "dense": [_mlp_with(_skip)], "act": [_mlp_with(_skip)], "add": [_mlp_with(_skip)],
    "mul": [_mlp_with(_gate)], "concat": [_mlp_with(_stack)],
    "normalize": [_mlp_with(_norm)], "scale_shift": [_mlp_with(_norm)],
    "dense_transposed": [_mlp_with(_tied)], "softmax": [_softmax_head],
    "embedding": [_embedding],
    "scores": [_attention(False), _attention(True)], "attn_softmax": [_attention(True)],
    "attend": [_attention(False)],
    "conv2d": [_cnn(1, 1, (2,)), _cnn(2, 0, (1,))], "max_pool2d": [_cnn(1, 0, (2, 1))],
    "flatten": [_cnn(1, 1, (2,))], "conv1d": [_conv1d("same"), _conv1d("causal")],
    "seq_flatten": [_seq_flatten(False), _seq_flatten(True)],
}


def test_every_registered_op_has_a_check():
    missing = sorted(set(OPS) - set(BUILDERS))
    assert not missing, f"registered ops with no network in tests/test_every_op.py: {missing}"


CASES = [(op, i) for op in sorted(BUILDERS) for i in range(len(BUILDERS[op]))]


@pytest.mark.parametrize("op,i", CASES)
def test_each_op_matches_central_differences(op, i):
    net = BUILDERS[op][i]()
    assert any(n.op == op for n in net.nodes.values()), f"the network for {op} does not use it"
    # numpy at 1 example runs the unrolled tiny-net path, at 9 the whole-batch one
    for backend, n in (("numpy", 1), ("numpy", 9), ("python", 3)):
        err = _check_backend(net, backend, n)
        assert err < 1e-6, (op, backend, n, err)


def _check_backend(net, backend, n):
    """Central differences of a backend's own loss against its gradients, relative to the
    larger of the two plus 1e-3: the keys' biases of attention have a gradient of exactly 0
    (softmax ignores a constant added to a row), where central differences give ~1e-10 of
    rounding, and a plain relative error is that noise over 0."""
    kernel = net.compile(backend=backend)
    rng = np.random.default_rng(n)
    params = net.init_params(seed=n)
    X, Y = _data(net, rng, n)
    _, grads = kernel(params, X, Y)
    worst, eps = 0.0, 1e-6
    for p, v in params.items():
        for idx in list(np.ndindex(v.shape))[:12]:
            up = {k: a.copy() for k, a in params.items()}
            down = {k: a.copy() for k, a in params.items()}
            up[p][idx] += eps
            down[p][idx] -= eps
            fd = (kernel(up, X, Y)[0] - kernel(down, X, Y)[0]) / (2 * eps)
            worst = max(worst, abs(fd - grads[p][idx]) / (1e-3 + abs(fd) + abs(grads[p][idx])))
    return worst


def _data(net, rng, n):
    X = {}
    for name in net.inputs:
        node = net.nodes[name]
        tokens = dict(node.attrs).get("tokens")
        shape = (n,) + node.shape if tokens is None else (n, node.positions) \
            if node.positions else (n,)
        X[name] = rng.integers(0, tokens, size=shape) if tokens else rng.normal(size=shape)
    out = net.nodes[net.output_node]
    if net.loss.name == "cross_entropy":
        Y = rng.integers(0, out.dim, size=(n,) + ((out.positions,) if out.positions else ()))
    else:
        Y = rng.normal(size=(n,) + out.shape)
    return (X if len(X) > 1 else next(iter(X.values()))), Y
