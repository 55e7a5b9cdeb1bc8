"""The numpy kernel's rewrites for the transformer block (issue 11): products of one batch value
with several weights fused into one GEMM (forward, the g reaching the value, the weights'
gradients), an input read entrywise copied once into the kernel's layout, statements no gradient
needs dropped. Each kernel is checked against the python backend, which shares no printer with
numpy and none of these rewrites."""
import re

import numpy as np
import pytest

import symgrad as sg


def rel(a, b):
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-300)


def agree(net, X, Y, seed=0):
    params = {p: v + 0.3 * np.random.default_rng(seed).normal(size=v.shape)
              for p, v in net.init_params(seed).items()}
    ours = net.compile(scalar=False)
    ref = net.compile(backend="python")
    (l0, g0), (l1, g1) = ours(params, X, Y), ref(params, X, Y)
    assert l0 == pytest.approx(l1, rel=1e-12)
    scale = max(np.abs(g).max() for g in g1.values())
    for p in net.parameters:
        assert g0[p].shape == params[p].shape
        # (a key's bias has gradient 0, rounding noise on both sides: by the largest gradient)
        assert np.abs(g0[p] - g1[p]).max() <= 1e-11 * max(np.abs(g1[p]).max(), 1e-3 * scale), p
    return ours.source


def test_siblings_reading_one_value_are_one_gemm_each_way():
    # three dense layers read h; their sum's g reaches h as one product, their weights'
    # gradients are rows of one product
    net = sg.Network()
    x = net.input("x", 5)
    h = net.act(net.dense(x, 6, name="h0"), "tanh", name="h")
    a, b, c = (net.dense(h, k, name=n) for k, n in ((3, "a"), (2, "b"), (3, "c")))
    z = net.dense(net.concat(net.act(a, "relu"), net.act(b, "sigmoid"), c), 2, name="z")
    net.set_loss(z, "mse")
    rng = np.random.default_rng(1)
    src = agree(net, rng.normal(size=(40, 5)), rng.normal(size=(40, 2)))
    for made in (r"_w\d+ = np\.concatenate\(\(",  # the weights stacked
                 r"_f\d+ = np\.matmul\(_w",          # forward: h [W_a; W_b; W_c]ᵀ
                 r"_s\d+ = _stack\(",                # the G's side by side
                 r"= np\.matmul\(_w\d+\.T, _s",        # the g reaching h
                 r"_d\d+ = _s\d+ @"):                # the weights' gradients
        assert re.search(made, src), made


@pytest.mark.parametrize("heads", [1, 2, 4])
def test_transformer_block_kernel(heads):
    net = sg.Network()
    x = net.input("x", shape=(5, 8))
    att = net.self_attention(net.layer_norm(x), heads, causal=heads == 2)
    r = net.add(x, att)
    out = net.add(r, net.dense(net.act(net.dense(net.layer_norm(r), 16), "relu"), 8))
    net.set_loss(out, "mse")
    rng = np.random.default_rng(heads)
    src = agree(net, rng.normal(size=(3, 5, 8)), rng.normal(size=(3, 5, 8)))
    assert "np.ascontiguousarray(X.T)" in src  # layer norm and the residual read X entrywise
    if heads > 1:
        assert src.count("np.matmul(_w") == 2  # q, k, v of every head: forward and backward


def test_an_input_read_only_by_products_is_not_copied():
    net = sg.mlp([4, 3, 2], loss="mse")
    rng = np.random.default_rng(0)
    src = agree(net, rng.normal(size=(30, 4)), rng.normal(size=(30, 2)))
    assert "ascontiguousarray" not in src and "_stack" not in src
