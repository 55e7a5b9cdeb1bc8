"""Tied weights: a weight matrix read transposed, z = Wᵀ h + b (``net.dense(h, W="W1",
transpose=True)``, the op dense_transposed), as an autoencoder's decoder reuses its encoder's W1.
Checked against torch autograd of the same model (the decoder ``h @ W1 + b``), at the element
level against the kernel, and the refusals."""
import numpy as np
import pytest

import symgrad as sg

torch = pytest.importorskip("torch")


def autoencoder(penalty=0, hidden="tanh"):
    net = sg.Network()
    x = net.input("x", 4)
    h = net.act(net.dense(x, 3), hidden)
    net.set_loss(net.dense(h, W="W1", transpose=True), "mse", penalty=penalty)
    return net


def torch_loss(p, X, Y, penalty, hidden):
    tp = {n: torch.tensor(v, requires_grad=True) for n, v in p.items()}
    act = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}[hidden]
    h = act(torch.tensor(X) @ tp["W1"].T + tp["b1"].reshape(-1))
    z = h @ tp["W1"] + tp["b2"].reshape(-1)
    loss = ((z - torch.tensor(Y)) ** 2).sum() / (2 * len(X)) + penalty / 2 * (tp["W1"] ** 2).sum()
    loss.backward()
    return loss.item(), {n: t.grad.numpy() for n, t in tp.items()}, z.detach().numpy()


@pytest.mark.parametrize("backend", ["numpy", "python"])
@pytest.mark.parametrize("penalty,hidden,n", [(0, "tanh", 1), (0, "sigmoid", 7), (0.01, "relu", 40)])
def test_tied_autoencoder_equals_torch(backend, penalty, hidden, n):
    net = autoencoder(penalty, hidden)
    assert net.parameters == ["W1", "b1", "b2"] and net.weights == ["W1"]
    rng = np.random.default_rng(n)
    X, Y = rng.normal(size=(n, 4)), rng.normal(size=(n, 4))
    params = net.init_params(seed=n)
    loss, grads = net.compile(backend=backend)(params, X, Y)
    t_loss, t_grads, t_pred = torch_loss(params, X, Y, penalty, hidden)
    assert loss == pytest.approx(t_loss, rel=1e-12)
    for p in net.parameters:
        np.testing.assert_allclose(grads[p], t_grads[p].reshape(grads[p].shape), rtol=1e-9,
                                   atol=1e-12)
    np.testing.assert_allclose(net.predict(params, X), t_pred, rtol=1e-12, atol=1e-14)


def test_the_printed_chain_has_both_uses_of_the_tied_weight():
    d = autoencoder().derive("W1")
    text = d.to_text()
    assert "∂z₂/∂vec[W₁] = h₁ᵀ ⊗ I" in text and "h₁g_z₂ᵀ" in text
    assert "W₁ is shared by 2 layers" in text
    assert r"\otimes" in sg.to_latex(d)


def test_the_element_level_of_a_tied_weight_equals_the_kernel():
    net = sg.Network()
    x = net.input("x", 2)
    h = net.act(net.dense(x, 2), "tanh")
    net.set_loss(net.dense(h, W="W1", transpose=True), "mse")
    e = net.derive("w1", level="element")
    assert e.meta["checked"]
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(1, 2)), rng.normal(size=(1, 2))
    params = net.init_params(seed=3)
    _, grads = net.compile()(params, X, Y)
    S = e.meta["scalar"]
    point = {s: float(v) for s, v in zip(S.inputs["x"], X[0])}
    point.update({s: float(v) for s, v in zip(S.target, Y[0])})
    for p, M in S.params.items():
        point.update({s: float(v) for s, v in zip(M, np.asarray(params[p]).reshape(-1))})
    assert float(e.meta["explicit"].xreplace(point)) == pytest.approx(grads["W1"][0, 0], rel=1e-10)


def test_transpose_refusals_are_one_line():
    net = sg.Network()
    x = net.input("x", 4)
    z = net.dense(x, 3)
    with pytest.raises(ValueError, match=r"'W9' is none \(the weights are W1\)"):
        net.dense(z, W="W9", transpose=True)
    with pytest.raises(ValueError, match=r"'b1' is none"):
        net.dense(z, W="b1", transpose=True)
    with pytest.raises(ValueError, match=r"W1ᵀ is 4 × 3 and takes 3 features; 'x' has 4"):
        net.dense(x, W="W1", transpose=True)
    with pytest.raises(ValueError, match=r"W1ᵀ gives 4 features, not 5"):
        net.dense(z, 5, W="W1", transpose=True)
    with pytest.raises(ValueError, match="transpose is True or False"):
        net.dense(z, W="W1", transpose="yes")
