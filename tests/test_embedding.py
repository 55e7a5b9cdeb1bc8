"""Embeddings (issue 11): ``net.input(name, shape=(T,), tokens=V)`` a sequence of integer tokens
below V (batches (n, T) integers; ``shape=()`` one token an example, batches (n,)), and
``net.embedding(tokens, dim)`` as ``torch.nn.Embedding``: row tok of a V × dim table E. Checked
against torch autograd of nn.Embedding (weights copied in) followed by Linear / activations /
LayerNorm per position and per-position cross-entropy or mse, float64, < 1e-9 relative, on the
numpy kernel (both its paths) and the python backend; the gradient is an index-add, never a
one-hot product."""
import time

import numpy as np
import pytest

import symgrad as sg
from symgrad.compile.kernel import _scatter_add

torch = pytest.importorskip("torch")
from test_architectures import assert_kernels_equal_torch, rel  # noqa: E402  (after the skip)
F = torch.nn.functional
from torch_reference import torch_forward  # noqa: E402
ACT_NAMES = ["tanh", "relu", "sigmoid", "identity"]


def random_embedding_net(rng):
    """One or two token inputs (T positions, or one token), an embedding of each (two of the
    first sometimes, added or concatenated), then a random stack of dense + activation and
    layer norms, a dense head: softmax + cross-entropy or mse."""
    T = None if rng.random() < 0.25 else int(rng.integers(1, 5))
    shape = () if T is None else (T,)
    net = sg.Network()
    V = int(rng.integers(2, 9))
    toks = [net.input("tok", shape=shape, tokens=V)]
    if rng.random() < 0.4:
        toks.append(net.input("tok2", shape=shape, tokens=int(rng.integers(2, 9))))
    d = int(rng.integers(2, 5))
    embs = [net.embedding(t, d) for t in toks]
    if len(embs) == 1 and rng.random() < 0.4:  # two tables of the same tokens
        embs.append(net.embedding(toks[0], d))
    h = embs[0] if len(embs) == 1 else (net.add(*embs) if rng.random() < 0.5 else
                                        net.concat(*embs))
    for _ in range(int(rng.integers(0, 3))):
        if rng.random() < 0.3:
            h = net.layer_norm(h)
        else:
            h = net.act(net.dense(h, int(rng.integers(2, 5))), str(rng.choice(ACT_NAMES)))
    k = int(rng.integers(2, 4))
    if rng.random() < 0.6:
        return net.set_loss(net.act(net.dense(h, k), "softmax"), "cross_entropy"), k, T
    return net.set_loss(net.dense(h, k), "mse"), k, T


def torch_loss(net, params, X, labels=None, Y=None):
    ps = {q: torch.tensor(v, requires_grad=True) for q, v in params.items()}
    out = torch_forward(net, ps, X)
    k = out.shape[-1]
    if net.loss.name == "cross_entropy":  # per position, over the flattened positions
        logits = torch.log(out)  # (out is a softmax: log of it is log-softmax of the logits)
        loss = F.nll_loss(logits.reshape(-1, k), torch.tensor(labels).reshape(-1))
    else:
        loss = 0.5 * ((out - torch.tensor(Y)) ** 2).sum(-1).mean()
    grads = torch.autograd.grad(loss, [ps[p] for p in net.parameters])
    return loss.item(), {p: g.numpy() for p, g in zip(net.parameters, grads)}, out.detach().numpy()


@pytest.mark.parametrize("seed", range(14))
def test_random_embedding_compositions_equal_torch(seed):
    rng = np.random.default_rng(300 + seed)
    net, k, T = random_embedding_net(rng)
    params = {q: v + 0.1 * rng.normal(size=v.shape) for q, v in net.init_params(seed=seed).items()}
    kernels = [net.compile(scalar=True), net.compile(scalar=False), net.compile(backend="python")]
    lead = lambda n: (n,) if T is None else (n, T)
    for n in (1, 2, 9):
        X = {i: rng.integers(0, net.tokens(i), lead(n)) for i in net.inputs}
        X = X["tok"] if len(X) == 1 else X
        labels = rng.integers(0, k, lead(n))
        Y = rng.normal(size=lead(n) + (k,))
        t_loss, t_grads, t_out = torch_loss(net, params, X, labels, Y)
        targets = [labels, np.eye(k)[labels]] if net.loss.name == "cross_entropy" else [Y]
        assert_kernels_equal_torch(kernels, params, X, targets, t_loss, t_grads, (seed, n))
        P = net.predict(params, X)
        assert P.shape == lead(n) + (k,)
        assert np.allclose(P, t_out, rtol=1e-10, atol=1e-14)


def tagger(V=7, T=4, d=3, k=3):
    net = sg.Network()
    tok = net.input("tok", shape=(T,), tokens=V)
    h = net.layer_norm(net.act(net.dense(net.embedding(tok, d), 5), "tanh"))
    return net.set_loss(net.act(net.dense(h, k), "softmax"), "cross_entropy")


def test_the_table_is_torchs_weight_first_in_creation_order_and_starts_normal():
    net = tagger()
    assert net.parameters == ["E1", "W2", "b2", "gamma3", "beta3", "W4", "b4"]
    assert net.init_params()["E1"].shape == (7, 3)  # nn.Embedding(7, 3).weight
    assert not net.is_weight("E1") and net.weights == ["W2", "W4"]  # no penalty on the table
    big = sg.Network()
    e = big.embedding(big.input("t", shape=(2,), tokens=400), 50)
    big.set_loss(big.dense(e, 1), "mse")
    E = big.init_params(seed=3)["E1"]  # N(0, 1), as torch initialises nn.Embedding
    assert abs(E.mean()) < 0.02 and abs(E.std() - 1) < 0.02


def test_float32_kernels_agree_with_float64():
    net = tagger()
    rng = np.random.default_rng(1)
    p64 = net.init_params(seed=2)
    p32 = {q: v.astype(np.float32) for q, v in p64.items()}
    X, Y = rng.integers(0, 7, (30, 4)), rng.integers(0, 3, (30, 4))
    for scalar in (True, False):
        l64, g64 = net.compile(scalar=scalar)(p64, X[:2], Y[:2]) if scalar else \
            net.compile(scalar=False)(p64, X, Y)
        l32, g32 = net.compile(scalar=scalar)(p32, X[:2], Y[:2]) if scalar else \
            net.compile(scalar=False)(p32, X, Y)
        assert np.asarray(l32).dtype == np.float32 and l32 == pytest.approx(l64, rel=1e-5)
        for q in net.parameters:
            assert g32[q].dtype == np.float32
            assert rel(g32[q], g64[q]) < 1e-4
    assert net.predict(p32, X).dtype == np.float32


def test_the_gradient_is_an_index_add_in_both_regimes():
    rng = np.random.default_rng(0)
    for V, n, d in ((5, 40, 3), (50, 7, 4)):  # bincount (n ≥ V) and add.at (n < V)
        tok, G = rng.integers(0, V, n), rng.normal(size=(d, n))
        for dt in (np.float64, np.float32):
            out = _scatter_add(tok, G.astype(dt), V, np.dtype(dt))
            assert out.dtype == dt and out.shape == (V, d)
            assert np.allclose(out, np.eye(V)[tok].T @ G.T, rtol=1e-5)
    src = tagger().compile(scalar=False).source
    assert "_scatter_add(" in src and "np.eye" not in src.split("Y1h")[0]


def test_the_derivation_shows_the_lookup_and_the_scatter_add():
    net = tagger()
    text = net.derive("E1").to_text()  # (the generated E1, emb1 as the handout has them: E, e)
    assert "e = Eᵀ onehot(tok)" in text
    assert "row tok of E is the only one that moves e" in text
    assert "∂e/∂vec[E] = onehot(tok)ᵀ ⊗ I" in text
    assert "scatter-add of g into row tok of E" in text and "added into its token's row" in text
    assert "∇_E f = onehot(Tok)ᵀ G_e" in text
    assert "E₁ᵀ onehot(tok)" in net.backprop().to_text()
    assert r"\operatorname{onehot}" in net.derive("E1").to_latex()


def test_element_level_agrees_with_the_kernel():
    net = sg.Network()
    tok = net.input("tok", tokens=3)  # one token an example
    net.set_loss(net.act(net.dense(net.embedding(tok, 2), 2), "softmax"), "cross_entropy")
    rng = np.random.default_rng(4)
    params = {q: v + 0.2 * rng.normal(size=v.shape) for q, v in net.init_params(seed=1).items()}
    X, Y = np.array([1]), np.array([0])
    _, grads = net.compile(scalar=False)(params, X, Y)
    d = net.derive("E1_21", level="element")  # row 2 of E1: token 1
    assert "[tok = 1]" in d.to_text()
    S = d.meta["scalar"]
    env = {s: float(v) for q, M in S.params.items() for s, v in zip(M, params[q].reshape(-1))}
    env[S.inputs["tok"][0]] = 1
    env.update({S.target[0]: 1.0, S.target[1]: 0.0})
    from symgrad.core.evaluate import evaluate
    value = evaluate(d.meta["explicit"], env).real
    assert value == pytest.approx(grads["E1"][1, 0], rel=1e-9)
    env[S.inputs["tok"][0]] = 2  # another token: row 2 does not move
    assert evaluate(d.meta["explicit"], env).real == 0


def test_training_learns_a_token_to_label_map_per_position():
    V, T, k = 20, 6, 4
    rng = np.random.default_rng(0)
    table = rng.integers(0, k, V)  # the label of each token, at every position
    X = rng.integers(0, V, (600, T))
    net = sg.Network()
    e = net.embedding(net.input("tok", shape=(T,), tokens=V), 8)
    net.set_loss(net.act(net.dense(e, k), "softmax"), "cross_entropy")
    start = time.perf_counter()
    params, history = sg.train(net, X, table[X], epochs=15, batch_size=32, lr=0.05, quiet=True)
    took = time.perf_counter() - start
    Xt = rng.integers(0, V, (200, T))
    acc = (net.predict(params, Xt).argmax(-1) == table[Xt]).mean()
    assert acc > 0.99 and history[-1] < history[0] / 5, (acc, history)
    assert took < 5, took


def test_bad_tokens_are_one_line_each():
    net = tagger()
    p = net.init_params()
    Y = np.zeros((2, 4), int)
    k = net.compile()
    cases = {
        "X[1, 2] = 7 is no token: tokens lie in 0..6 (V = 7)":
            np.array([[0, 1, 2, 3], [4, 5, 7, 0]]),
        "X[0, 0] = -1 is no token":
            np.array([[-1, 1, 2, 3], [4, 5, 6, 0]]),
        "X: tokens must be integers, got float64":
            np.array([[0., 1, 2, 3], [4, 5, 6, 0]]),
        "X has shape (2, 3); expected (n, 4) integer tokens below 7":
            np.zeros((2, 3), int),
        "X has shape (2, 4, 1); expected (n, 4)":
            np.zeros((2, 4, 1), int),
    }
    for msg, X in cases.items():
        for call in (lambda: k(p, X, Y), lambda: net.predict(p, X),
                     lambda: net.compile(backend="python")(p, X, Y)):
            with pytest.raises(ValueError) as e:
                call()
            assert msg in str(e.value) and "\n" not in str(e.value), (msg, str(e.value))
    with pytest.raises(ValueError, match="holds integer tokens; embed them first"):
        g = sg.Network()
        g.dense(g.input("t", shape=(3,), tokens=5), 2)
    with pytest.raises(ValueError, match="is not a token input"):
        g = sg.Network()
        g.embedding(g.input("x", 3), 2)
    with pytest.raises(ValueError, match="tokens=V is the vocabulary size"):
        sg.Network().input("t", shape=(3,), tokens=0)
    with pytest.raises(ValueError, match="shape is \\(T,\\) for a sequence of T tokens"):
        sg.Network().input("t", shape=(3, 2), tokens=4)


def test_one_token_an_example():
    net = sg.Network()
    e = net.embedding(net.input("tok", shape=(), tokens=5), 3)
    net.set_loss(net.act(net.dense(e, 2), "softmax"), "cross_entropy")
    p = net.init_params()
    loss, grads = net.compile()(p, np.array([0, 4, 4]), np.array([1, 0, 1]))
    assert grads["E1"].shape == (5, 3) and not grads["E1"][1:4].any()  # unseen tokens: 0
    assert net.predict(p, np.array([2])).shape == (1, 2)
    with pytest.raises(ValueError, match=r"X has shape \(3, 1\); expected \(n,\) integer tokens"):
        net.compile()(p, np.zeros((3, 1), int), np.array([1, 0, 1]))
    assert sg.gradcheck(net) < 1e-6
