"""Sequence values (issue 11, item 1, first increment): ``net.input(name, shape=(T, d))`` is a
sequence of T positions of d features, batched (n, T, d) as torch lays it. Every op is
position-wise, so the engine is the per-example one at each position and the batch program runs
over the n·T positions, one a row. Checked against torch autograd of the same model (nn.Linear
and LayerNorm on (n, T, d), F.cross_entropy over the flattened positions), float64, < 1e-9
relative, on the numpy kernel (both its paths) and the python backend."""
import numpy as np
import pytest

import symgrad as sg
from test_architectures import (assert_kernels_equal_torch, forward, random_net, rel,
                                torch_run, torch_run_forward)

torch = pytest.importorskip("torch")
F = torch.nn.functional


@pytest.mark.parametrize("seed", range(16))
def test_random_position_wise_compositions_over_sequences_equal_torch(seed):
    rng = np.random.default_rng(100 + seed)
    T = int(rng.integers(1, 6))
    net, k = random_net(rng, depth=int(rng.integers(1, 5)), T=T)
    params = net.init_params(seed=seed)
    params = {q: v + 0.1 * rng.normal(size=v.shape) for q, v in params.items()}  # biases ≠ 0
    d = net.nodes["x"].dim
    kernels = [net.compile(scalar=True), net.compile(scalar=False), net.compile(backend="python")]
    for n in (1, 2, 9):
        X = rng.normal(size=(n, T, d))
        if net.loss.name == "cross_entropy":
            labels = rng.integers(0, k, size=(n, T))
            Ys = [np.eye(k)[labels], labels]
        else:
            Ys = [rng.normal(size=(n, T, k))]
        t_loss, t_grads = torch_run(net, params, X, np.eye(k)[labels] if len(Ys) == 2 else Ys[0])
        assert_kernels_equal_torch(kernels, params, X, Ys, t_loss, t_grads, (seed, n))
        P = net.predict(params, X)
        assert P.shape == (n, T, k)
        assert np.allclose(P, torch_run_forward(net, params, X), rtol=1e-10, atol=1e-14)


def seq_classifier(T=6, d=3, h=5, k=4):
    """dense → tanh → LayerNorm → dense → softmax at every position, cross-entropy per position:
    a token classifier."""
    net = sg.Network()
    x = net.input("tokens", shape=(T, d))
    z = net.layer_norm(net.act(net.dense(x, h), "tanh"))
    return net.set_loss(net.act(net.dense(z, k), "softmax"), "cross_entropy")


def torch_model(params, d=3, h=5, k=4):
    """The same model from torch.nn modules, the parameters copied in (torch's shapes and
    creation order are symgrad's: W1, b1, gamma2, beta2, W3, b3)."""
    lin1 = torch.nn.Linear(d, h, dtype=torch.float64)
    ln = torch.nn.LayerNorm(h, eps=1e-5, dtype=torch.float64)
    lin2 = torch.nn.Linear(h, k, dtype=torch.float64)
    model = torch.nn.Sequential(lin1, torch.nn.Tanh(), ln, lin2)
    with torch.no_grad():
        for (name, t), p in zip(model.named_parameters(), params):
            assert tuple(t.shape) == params[p].shape, (name, p)
            t.copy_(torch.tensor(params[p]))
    return model


def test_per_position_cross_entropy_is_torchs_over_the_flattened_positions():
    net = seq_classifier()
    assert net.parameters == ["W1", "b1", "gamma2", "beta2", "W3", "b3"]
    rng = np.random.default_rng(0)
    params = {q: v + 0.3 * rng.normal(size=v.shape) for q, v in net.init_params(seed=1).items()}
    model = torch_model(params)
    for n in (1, 7, 50):
        X, labels = rng.normal(size=(n, 6, 3)), rng.integers(0, 4, size=(n, 6))
        logits = model(torch.tensor(X))  # nn.Linear on (n, T, d): the last axis
        t_loss = F.cross_entropy(logits.reshape(-1, 4), torch.tensor(labels).reshape(-1))
        model.zero_grad()
        t_loss.backward()
        t_grads = [t.grad.numpy() for t in model.parameters()]
        kernels = [net.compile(), net.compile(scalar=False)]
        if n < 50:  # the python backend unrolls every position: 300 rows take 15 s to build
            kernels.append(net.compile(backend="python"))
        for kernel in kernels:
            loss, grads = kernel(params, X, labels)
            assert loss == pytest.approx(t_loss.item(), rel=1e-12)
            for p, g in zip(params, t_grads):
                assert rel(grads[p], g) < 1e-10, (n, p)
        with torch.no_grad():
            assert np.allclose(net.predict(params, X), torch.softmax(logits, -1).numpy(),
                               rtol=1e-12, atol=1e-15)


def test_mse_over_sequences_is_the_mean_over_positions_of_half_the_squared_norm():
    """mse = 1/(2n) Σ‖ŷ − y‖² over examples; over sequences, the mean over the n·T positions of
    ½‖ŷ_t − y_t‖², i.e. 1/(2nT) Σ‖ŷ − y‖² = (k/2) · F.mse_loss(ŷ, y)."""
    net = sg.Network()
    net.set_loss(net.dense(net.act(net.dense(net.input("x", shape=(4, 3)), 5), "relu"), 2),
                 "mse")
    rng = np.random.default_rng(1)
    params = net.init_params(seed=0)
    X, Y = rng.normal(size=(8, 4, 3)), rng.normal(size=(8, 4, 2))
    loss, _ = net.compile()(params, X, Y)
    out = torch.tensor(net.predict(params, X))
    assert loss == pytest.approx(0.5 * ((out - torch.tensor(Y)) ** 2).sum().item() / (8 * 4),
                                 rel=1e-13)
    k = 2
    assert loss == pytest.approx(F.mse_loss(out, torch.tensor(Y)).item() * k / 2, rel=1e-13)


def test_dropout_and_several_inputs_over_sequences():
    """Masks are (n, T, d), one per entry as torch's dropout draws them; two sequence inputs
    concatenated along the features (torch.cat(…, dim=-1))."""
    net = sg.Network()
    a, b = net.input("a", shape=(3, 2)), net.input("b", shape=(3, 4))
    h = net.dropout(net.act(net.dense(net.concat(a, b), 5), "tanh"), 0.3)
    net.set_loss(net.dense(net.mul(h, h), 2), "mse")
    (mask,) = net.masks
    rng = np.random.default_rng(2)
    X = {"a": rng.normal(size=(6, 3, 2)), "b": rng.normal(size=(6, 3, 4)),
         mask: (rng.random((6, 3, 5)) >= 0.3) / 0.7}
    Y = rng.normal(size=(6, 3, 2))
    params = net.init_params(seed=3)
    t_loss, t_grads = torch_run(net, params, X, Y)
    for kernel in (net.compile(scalar=True), net.compile(scalar=False),
                   net.compile(backend="python")):
        loss, grads = kernel(params, X, Y)
        assert loss == pytest.approx(t_loss, rel=1e-12)
        assert all(rel(grads[q], t_grads[q]) < 1e-10 for q in net.parameters)
    # no mask given: dropout off (ones), and train draws (n, T, d) masks
    no_mask = {"a": X["a"], "b": X["b"]}
    assert net.predict(params, no_mask).shape == (6, 3, 2)
    from symgrad.compile.spec import Spec
    assert Spec(net).with_masks(no_mask, draw=np.random.default_rng(0))[mask].shape == (6, 3, 5)
    _, history = sg.train(net, no_mask, Y, epochs=2, batch_size=4, quiet=True)
    assert len(history) == 2 and all(np.isfinite(history))


def test_float32_gradcheck_train_and_accuracy_over_sequences():
    net = seq_classifier(T=4)
    assert sg.gradcheck(net) < 1e-6
    rng = np.random.default_rng(4)
    X = rng.normal(size=(200, 4, 3))
    labels = (X[:, :, 0] > 0).astype(int) + 2 * (X[:, :, 1] > 0)  # per position, 4 classes
    params, history = sg.train(net, X, labels, epochs=30, lr=0.01, quiet=True)
    assert history[-1] < 0.5 * history[0]
    from symgrad.run.train import accuracy
    assert accuracy(net, params, X, labels) > 0.9
    p32 = {q: v.astype("float32") for q, v in params.items()}
    loss, grads = net.compile()(p32, X.astype("float32"), labels)
    assert loss.dtype == np.float32 and all(g.dtype == np.float32 for g in grads.values())
    assert net.predict(p32, X).dtype == np.float32


def test_bad_sequence_shapes_are_one_line_naming_the_argument_and_both_shapes():
    net = seq_classifier(T=6)
    params, kernel = net.init_params(), net.compile()
    X, labels = np.zeros((2, 6, 3)), np.zeros((2, 6), int)
    cases = [((np.zeros((2, 3)), labels), r"X has shape \(2, 3\); expected \(n, 6, 3\)"),
             ((np.zeros((2, 5, 3)), labels), r"X has shape \(2, 5, 3\); expected \(n, 6, 3\)"),
             ((np.zeros((12, 3)), labels), r"X has shape \(12, 3\); expected \(n, 6, 3\)"),
             ((X, np.zeros((2, 5), int)), r"Y has shape \(2, 5\); expected \(2, 6, 4\) or "
                                          r"\(2, 6\) integer labels"),
             ((X, np.zeros((2, 5, 4))), r"Y has shape \(2, 5, 4\); expected \(2, 6, 4\)"),
             ((X, np.zeros(12, int)), r"Y has shape \(12,\); expected \(2, 6, 4\)"),
             ((X, np.full((2, 6), 4)), r"Y: labels must lie in 0\.\.3, got 4")]
    for k in (kernel, net.compile(backend="python"), net.compile(scalar=False)):
        for (x, y), msg in cases:
            with pytest.raises(ValueError, match=msg) as e:
                k(params, x, y)
            assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match=r"X has shape \(2, 6\); expected \(n, 6, 3\)"):
        net.predict(params, np.zeros((2, 6)))
    with pytest.raises(ValueError, match=r"python': 600 positions \(100 sequences × 6\) × 35 "):
        net.compile(backend="python")(params, np.zeros((100, 6, 3)), np.zeros((100, 6), int))
    onehot = np.zeros((2, 6, 4))
    onehot[..., 0] = 1
    onehot[1, 2, 0] = 3
    with pytest.raises(ValueError, match=r"Y: Y\[1, 2\] sums to 3"):
        kernel(params, X, onehot)
    X[1, 4, 2] = np.nan
    with pytest.raises(ValueError, match=r"X holds nan \(at \[1, 4, 2\]\)"):
        kernel(params, X, labels)


def test_mixing_sequences_and_vectors_is_refused_naming_the_node_and_both_shapes():
    net = sg.Network()
    s, v, u = net.input("s", shape=(4, 3)), net.input("v", 3), net.input("u", shape=(5, 3))
    with pytest.raises(ValueError, match=r"add 'mix': 's' has shape \(4, 3\) and 'v' has shape "
                                         r"\(3,\); a position-wise op needs"):
        net.add(s, v, name="mix")
    with pytest.raises(ValueError, match=r"concat 'c': 's' has shape \(4, 3\) and 'u' has shape "
                                         r"\(5, 3\)"):
        net.concat(s, u, name="c")
    assert "mix" not in net.nodes and "c" not in net.nodes
    net.set_loss(net.dense(s, 2), "mse")
    with pytest.raises(ValueError, match=r"input 'v' has shape \(3,\) but the output 'z1' has "
                                         r"shape \(4, 2\)"):
        net.compile()
    for bad, msg in (((4,), None), ((0, 3), "positive integer"), ([4, 3], "shape is"),
                     ((2, 3, 4, 5), "shape is")):
        m = sg.Network()
        if msg is None:
            assert m.nodes[m.input("x", shape=bad)].shape == (4,)  # (d,) is a vector
            continue
        with pytest.raises(ValueError, match=msg):
            m.input("x", shape=bad)
    with pytest.raises(ValueError, match="give dim or shape, not both"):
        sg.Network().input("x", 3, shape=(2, 3))


def test_the_derivations_say_the_values_are_per_position_and_print_the_convention():
    net = seq_classifier(T=6)
    small = sg.Network()  # the element level writes one position out, unit by unit
    small.set_loss(small.dense(small.act(small.dense(small.input("x", shape=(6, 2)), 2), "tanh"),
                               1), "mse")
    for text in (net.derive("W1").to_text(), net.backprop().to_text(),
                 small.derive("w1", level="element").to_text()):
        assert "at one position t of a sequence of T = 6 (position-wise)" in text
        assert "a sequence value is T × d, row t the d features of position t" in text
        assert "the same at every position t" in text and "a batch is sequences × T × d" in text
    assert "the mean over the n rows, every position of every sequence (n = sequences × T" in \
        net.derive("W1").to_text()
    assert r"\text{one of the $T = 6$ positions" in sg.to_latex(net.derive("W1"))
    plain = sg.mlp([2, 2, 1])
    assert "position" not in plain.derive("W1").to_text() + plain.backprop().to_text()
    assert repr(net).startswith("<Network tokens[6×3] → z1[6×5]")


def test_hostile_names_over_sequences_stay_data(tmp_path):
    """The sequence kernel's own locals (_Xs, _Ys) and an injection as names: dict keys only."""
    marker = tmp_path / "INJECTED"
    net = sg.Network()
    x = net.input("_Xs", shape=(3, 2))
    z = net.dense(x, 4, W=f"params[__import__('os').system('touch {marker}')]", b="_Ys", name="n")
    net.set_loss(net.dense(net.act(z, "tanh", name="X"), 2, W="Y", b="dt", name="flat"), "mse")
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(5, 3, 2)), rng.normal(size=(5, 3, 2))
    params = net.init_params(seed=1)
    t_loss, t_grads = torch_run(net, params, {"_Xs": X}, Y)
    for kernel in (net.compile(), net.compile(scalar=False), net.compile(backend="python")):
        loss, grads = kernel(params, X, Y)
        assert loss == pytest.approx(t_loss, rel=1e-12)
        assert all(rel(grads[q], t_grads[q]) < 1e-10 for q in net.parameters)
        assert "system" not in kernel.source and "system" not in kernel.scalar_source(5)
    assert not marker.exists()
