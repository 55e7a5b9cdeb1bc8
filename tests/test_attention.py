"""Attention (issue 11): ``net.attention(q, k, v, causal)`` = softmax(Q Kᵀ/√d_k + M) V per
sequence, the first op across positions, and ``net.self_attention(h, heads)``, multi-head
self-attention from dense projections. Checked against torch autograd in float64 (<1e-9 relative):
``F.scaled_dot_product_attention`` with the projections as nn.Linear, and
``nn.MultiheadAttention`` with its packed weights copied in; on the numpy kernel (both paths) and
the python backend; against central differences; in float32; with scores of ±1000s."""
import re

import numpy as np
import pytest

import symgrad as sg
from symgrad.graph.attention import from_torch_mha
from test_architectures import rel

torch = pytest.importorskip("torch")
F = torch.nn.functional


def sdpa_net(T, d, dk, dv, k, causal, head="mse", shared=False):
    """x → q, k, v (dense) → attention → dense head (softmax + cross-entropy, or mse)."""
    net = sg.Network()
    x = net.input("x", shape=(T, d))
    q = net.dense(x, dk, name="q")
    kk = q if shared else net.dense(x, dk, name="k")
    v = net.dense(x, dv, name="v")
    o = net.attention(q, kk, v, causal=causal)
    z = net.dense(o, k)
    if head == "cross_entropy":
        return net.set_loss(net.act(z, "softmax"), "cross_entropy")
    return net.set_loss(z, "mse")


def torch_sdpa(net, params, X, Y, causal, shared=False):
    """The same model in torch (weights copied): loss, gradients and output."""
    tp = {p: torch.tensor(v, requires_grad=True) for p, v in params.items()}
    names = net.parameters
    lin = lambda h, i: h @ tp[names[2 * i]].T + tp[names[2 * i + 1]]  # noqa: E731
    Xt = torch.tensor(X)
    Q = lin(Xt, 0)
    K = Q if shared else lin(Xt, 1)
    V = lin(Xt, 1 if shared else 2)
    O = F.scaled_dot_product_attention(Q, K, V, is_causal=causal)
    z = lin(O, 2 if shared else 3)
    k = z.shape[-1]
    if net.loss.name == "cross_entropy":
        loss = F.cross_entropy(z.reshape(-1, k), torch.tensor(Y).reshape(-1))
        out = torch.softmax(z, -1)
    else:
        loss = ((z - torch.tensor(Y)) ** 2).sum() / (2 * X.shape[0] * X.shape[1])
        out = z
    loss.backward()
    return loss.item(), {p: t.grad.numpy() for p, t in tp.items()}, out.detach().numpy()


@pytest.mark.parametrize("seed", range(12))
def test_attention_equals_torch_sdpa(seed):
    rng = np.random.default_rng(seed)
    T, d, dk, dv = (int(rng.integers(1, 6)), *(int(v) for v in rng.integers(1, 5, size=3)))
    k = int(rng.integers(2, 5))
    causal, head, shared = bool(seed % 2), ("mse", "cross_entropy")[seed // 2 % 2], seed % 5 == 4
    net = sdpa_net(T, d, dk, dv, k, causal, head, shared)
    params = {p: v + 0.3 * rng.normal(size=v.shape) for p, v in net.init_params(seed).items()}
    kernels = [net.compile(scalar=False), net.compile(scalar=True), net.compile(backend="python")]
    for n in (1, 3):
        X = rng.normal(size=(n, T, d))
        Y = rng.integers(0, k, size=(n, T)) if head == "cross_entropy" else \
            rng.normal(size=(n, T, k))
        t_loss, t_grads, t_out = torch_sdpa(net, params, X, Y, causal, shared)
        for kernel in kernels:
            loss, grads = kernel(params, X, Y)
            assert loss == pytest.approx(t_loss, rel=1e-10), (seed, n)
            for p in net.parameters:
                assert grads[p].shape == params[p].shape
                # (a key's bias has gradient 0: softmax ignores a constant added to a row)
                assert rel(grads[p], t_grads[p]) < 1e-9 or \
                    np.abs(grads[p] - t_grads[p]).max() < 1e-14, (seed, n, p)
        assert np.allclose(net.predict(params, X), t_out, rtol=1e-10, atol=1e-14)


def mha_net(T, E, heads, causal):
    net = sg.Network()
    x = net.input("x", shape=(T, E))
    return net.set_loss(net.self_attention(x, heads, causal=causal), "mse"), x


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("T,E,heads", [(1, 2, 1), (4, 6, 3), (5, 8, 2)])
def test_self_attention_equals_torch_multihead_attention(T, E, heads, causal):
    rng = np.random.default_rng(T * 10 + E)
    torch.manual_seed(E)
    net, _ = mha_net(T, E, heads, causal)
    mha = torch.nn.MultiheadAttention(E, heads, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        for t in mha.parameters():
            t.normal_()
    packed = lambda f: (f(mha.in_proj_weight), f(mha.in_proj_bias),  # noqa: E731
                        f(mha.out_proj.weight), f(mha.out_proj.bias))
    params = from_torch_mha(net, net.output_node, *packed(lambda t: t.detach().numpy().copy()))
    assert list(params) == net.parameters or set(params) == set(net.parameters)
    n = 3
    X, Y = rng.normal(size=(n, T, E)), rng.normal(size=(n, T, E))
    Xt = torch.tensor(X)
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1) if causal else None
    out, _ = mha(Xt, Xt, Xt, need_weights=False, attn_mask=mask)
    t_loss = ((out - torch.tensor(Y)) ** 2).sum() / (2 * n * T)
    t_loss.backward()
    t_grads = from_torch_mha(net, net.output_node, *packed(lambda t: t.grad.numpy()))
    for kernel in (net.compile(scalar=False), net.compile(backend="python")):
        loss, grads = kernel(params, X, Y)
        assert loss == pytest.approx(t_loss.item(), rel=1e-10)
        for p in net.parameters:
            assert rel(grads[p], t_grads[p]) < 1e-9 or \
                np.abs(grads[p] - t_grads[p]).max() < 1e-13, p
    assert np.allclose(net.predict(params, X), out.detach().numpy(), rtol=1e-10, atol=1e-13)


def central_differences(kernel, params, X, Y, eps=1e-6):
    out = {}
    for p, v in params.items():
        g = np.zeros_like(v)
        for i in np.ndindex(v.shape):
            hi, lo = dict(params), dict(params)
            hi[p], lo[p] = v.copy(), v.copy()
            hi[p][i] += eps
            lo[p][i] -= eps
            g[i] = (kernel(hi, X, Y)[0] - kernel(lo, X, Y)[0]) / (2 * eps)
        out[p] = g
    return out


@pytest.mark.parametrize("causal", [False, True])
def test_attention_kernel_against_central_differences(causal):
    """The numpy kernel's gradients against central differences of its own loss, every entry.
    (sg.gradcheck's per-part relative error is not used: the keys' biases have gradient exactly
    0, softmax ignoring a constant added to a row, so their relative error is the differences'
    noise over 0.)"""
    rng = np.random.default_rng(3)
    for net, shape in ((sdpa_net(4, 3, 2, 3, 2, causal, "cross_entropy"), None),
                       (mha_net(3, 4, 2, causal)[0], None)):
        params = net.init_params(1)
        T, d = net.nodes["x"].shape
        X = rng.normal(size=(3, T, d))
        k = net.nodes[net.output_node].dim
        Y = rng.integers(0, k, size=(3, T)) if net.loss.name == "cross_entropy" else \
            rng.normal(size=(3, T, k))
        kernel = net.compile(scalar=False)
        _, grads = kernel(params, X, Y)
        numeric = central_differences(kernel, params, X, Y)
        scale = max(np.abs(g).max() for g in numeric.values())
        for p in net.parameters:
            assert np.abs(grads[p] - numeric[p]).max() < 1e-8 * scale, p


@pytest.mark.parametrize("causal", [False, True])
def test_scores_of_thousands_stay_finite_and_equal_torch(causal):
    """Weights large enough that the scores are ±1000s: the softmax is one-hot to the last digit
    and the masked entries −∞; nothing overflows and nothing is NaN, on both paths."""
    rng = np.random.default_rng(7)
    T, d = 5, 3
    net = sdpa_net(T, d, 2, 2, 3, causal)
    params = {p: 40 * v for p, v in net.init_params(3).items()}
    X = 10 * rng.normal(size=(4, T, d))
    Y = rng.normal(size=(4, T, 3))
    t_loss, t_grads, _ = torch_sdpa(net, params, X, Y, causal)
    Q = X @ params["W1"].T + params["b1"]
    K = X @ params["W2"].T + params["b2"]
    assert np.abs(Q @ K.transpose(0, 2, 1)).max() / np.sqrt(2) > 1000
    for kernel in (net.compile(scalar=False), net.compile(backend="python")):
        loss, grads = kernel(params, X, Y)
        assert np.isfinite(loss) and loss == pytest.approx(t_loss, rel=1e-9)
        for p in net.parameters:
            assert np.isfinite(grads[p]).all()
            assert rel(grads[p], t_grads[p]) < 1e-9 or np.abs(grads[p] - t_grads[p]).max() < 1e-9


def test_float32_kernel():
    rng = np.random.default_rng(1)
    net, _ = mha_net(6, 8, 2, True)
    p64 = net.init_params(0)
    p32 = net.init_params(0, dtype="float32")
    X, Y = rng.normal(size=(5, 6, 8)), rng.normal(size=(5, 6, 8))
    l64, g64 = net.compile()(p64, X, Y)
    l32, g32 = net.compile()(p32, X, Y)
    assert isinstance(l32, np.float32) or np.asarray(l32).dtype == np.float32
    assert l32 == pytest.approx(l64, rel=1e-5)
    scale = max(np.abs(g).max() for g in g64.values())
    for p in net.parameters:
        assert g32[p].dtype == np.float32 and np.abs(g32[p] - g64[p]).max() < 1e-5 * scale, p
    assert net.predict(p32, X).dtype == np.float32


def test_kernel_is_batched_matmuls_without_python_loops():
    net = sdpa_net(4, 3, 2, 3, 2, True)
    src = net.compile(scalar=False).source
    assert src.count("np.matmul(") >= 6 and ".reshape(-1, 4, " in src
    assert not re.search(r"^\s*(for|while) ", src, re.M)
    assert "-np.inf" in src


def test_refusals_are_one_line():
    net = sg.Network()
    x = net.input("x", shape=(4, 3))
    y = net.input("y", shape=(5, 3))
    u = net.input("u", 3)
    q2 = net.dense(x, 2)
    with pytest.raises(ValueError, match="is a vector of shape \\(3,\\); attention needs sequences"):
        net.attention(u, u, u)
    with pytest.raises(ValueError, match="need the same T"):
        net.attention(x, y, y)
    with pytest.raises(ValueError, match="q and k need the same d_k"):
        net.attention(q2, x, x)
    with pytest.raises(ValueError, match="heads do not divide"):
        net.self_attention(x, 2)
    with pytest.raises(ValueError, match="causal is True or False"):
        net.attention(x, x, x, causal="yes")


def test_derivations_print_the_attention_steps():
    net = sdpa_net(3, 2, 2, 2, 2, True)
    text = net.derive("W1").to_text()  # W1: the queries' weights
    assert "(attention reads every position)" in text
    for piece in ("k[1:T]/√2", "diag(a", "v[1:T]ᵀ", "G_q = G_s", "causal mask m_t"):
        assert piece in text, piece
    bp = net.backprop().to_text()
    for piece in ("G_k = G_s", "ᵀ Q/√2", "G_a", "A5 ⊙ (G_a5",
                  "G_v = A5ᵀ G_o6: the value at position t collects a5_τt g_τ"):
        assert piece in bp, piece
    assert "e_τ qᵀ/√2" in net.derive("W2").to_text()  # the keys: across positions
    assert net.backprop().to_latex()
    # the element level writes a small one out at every position (tests/test_attention_element.py)
    # and refuses a long sequence at once, in one line
    with pytest.raises(ValueError, match=r"^this network is too large for the element level "
                                         r"\(attention writes every one of its T = 64 positions "
                                         r"out: \d+ units, the limit is \d+\); use level=\"matrix\""):
        sdpa_net(64, 2, 2, 2, 1, False).derive("w1", level="element")


def test_training_learns_a_causal_copy_task():
    """Predict the previous token's class at every position (a causal attention can look back):
    train reaches a low loss where a position-wise model cannot."""
    rng = np.random.default_rng(0)
    T, k, n = 5, 3, 512
    tok = rng.integers(0, k, size=(n, T))
    X = np.concatenate([np.eye(k)[tok], np.broadcast_to(np.eye(T), (n, T, T))], axis=-1)
    Y = np.concatenate([tok[:, :1], tok[:, :-1]], axis=1)
    net = sg.Network()
    x = net.input("x", shape=(T, k + T))
    o = net.self_attention(x, 1, causal=True)
    net.set_loss(net.act(net.dense(o, k), "softmax"), "cross_entropy")
    params, hist = sg.train(net, X, Y, lr=0.02, epochs=40, batch_size=64, seed=0, quiet=True)
    acc = (net.predict(params, X).argmax(-1) == Y).mean()
    assert acc > 0.9, acc
