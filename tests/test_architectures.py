"""Beyond the MLP (issue 11): gates (``mul``) and concatenations (``concat``), alone and in random
compositions with dense layers, activations and skip connections, against an independent
interpreter of the same graph in PyTorch autograd (float64, relative error < 1e-9, both kernel
paths), central differences, and the element level against the matrix level."""
import numpy as np
import pytest
import sympy as sp

import symgrad as sg

torch = pytest.importorskip("torch")
F = torch.nn.functional

ACTS = {"identity": lambda z: z, "relu": torch.relu, "sigmoid": torch.sigmoid,
        "tanh": torch.tanh, "softplus": F.softplus, "leaky_relu": F.leaky_relu}


def forward(net, ps, X):
    """The output of ``net`` for X, walking its nodes in torch with the parameter tensors ``ps``:
    one line per op, written here from torch's own functions, never from symgrad's derivation."""
    vals = {}
    for name, node in net.nodes.items():
        ins = [vals[i] for i in node.inputs]
        if node.op == "input":
            vals[name] = torch.tensor(X[name] if isinstance(X, dict) else X)
        elif node.op == "dense":
            W = ps[node.params[0]]
            vals[name] = F.linear(ins[0], W, ps[node.params[1]] if len(node.params) > 1 else None)
        elif node.op == "act":
            vals[name] = ACTS[node.act.name](ins[0])
        elif node.op == "softmax":
            vals[name] = torch.softmax(ins[0], -1)  # over the features: the last axis
        elif node.op == "add":
            vals[name] = sum(ins[1:], ins[0])
        elif node.op == "mul":
            vals[name] = ins[0] * ins[1]
        elif node.op == "concat":
            vals[name] = torch.cat(ins, dim=-1)
        elif node.op == "normalize":
            vals[name] = F.layer_norm(ins[0], (node.dim,), eps=float(node.attr("eps")))
        elif node.op == "scale_shift":
            vals[name] = ps[node.params[0]] * ins[0] + ps[node.params[1]]
        else:
            raise AssertionError(node.op)
    return vals[net.output_node]


def torch_run(net, params, X, Y):
    """The loss and gradients of ``net`` by walking its nodes in torch: one line per op, written
    here from torch's own functions, never from symgrad's derivation."""
    ps = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    out, y = forward(net, ps, X), torch.tensor(Y)
    # the mean over every example, or every position of every sequence (n·T) for (n, T, k)
    if net.loss.name == "mse":
        loss = 0.5 * ((out - y) ** 2).sum(-1).mean()
    elif net.loss.name == "cross_entropy":
        loss = -(y * torch.log(out)).sum(-1).mean()
    else:
        raise AssertionError(net.loss.name)
    grads = torch.autograd.grad(loss, list(ps.values()))
    return loss.item(), {k: g.numpy() for k, g in zip(ps, grads)}


def rel(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)


def assert_kernels_equal_torch(kernels, params, X, targets, t_loss, t_grads, where=()):
    """Every kernel, given each form of the targets, has torch's loss (1e-10) and gradients
    (1e-9 relative, each shaped like its parameter)."""
    for kernel in kernels:
        for target in targets:
            loss, grads = kernel(params, X, target)
            assert loss == pytest.approx(t_loss, rel=1e-10), where
            for p in params:
                assert grads[p].shape == params[p].shape
                assert rel(grads[p], t_grads[p]) < 1e-9, (*where, p)


def random_net(rng, depth, T=None):
    """x → a random stack: each step a dense + activation, a gate of two branches, a
    concatenation of the last values, or a skip connection; then a dense head. ``T``: x is a
    sequence of T positions (every op then acts on each position)."""
    net = sg.Network()
    d0 = int(rng.integers(2, 5))
    values = [net.input("x", d0) if T is None else net.input("x", shape=(T, d0))]
    dim = lambda v: net.nodes[v].dim
    for _ in range(depth):
        kind = rng.choice(["dense", "gate", "concat", "skip", "norm"])
        h = values[-1]
        if kind == "gate":  # an LSTM/GLU gate: tanh(W h) ⊙ σ(V h)
            d = int(rng.integers(2, 5))
            a = net.act(net.dense(h, d), "tanh")
            b = net.act(net.dense(h, d), "sigmoid")
            values.append(net.mul(a, b))
        elif kind == "norm" and dim(h) > 1:  # pre-norm, as a transformer block: LN then dense
            values.append(net.layer_norm(h, eps=float(rng.choice([1e-5, 1e-3]))))
        elif kind == "concat" and len(values) > 1:
            values.append(net.concat(*values[-2:]))
        elif kind == "skip" and len(values) > 1:
            same = [v for v in values[:-1] if dim(v) == dim(h)]
            d = dim(h)
            z = net.act(net.dense(h, d), str(rng.choice(list(ACTS))))
            values.append(net.add(z, same[-1] if same else h))
        else:
            values.append(net.act(net.dense(h, int(rng.integers(2, 5))),
                                  str(rng.choice(list(ACTS)))))
    k = int(rng.integers(2, 4))
    if rng.random() < 0.5:
        return net.set_loss(net.act(net.dense(values[-1], k), "softmax"), "cross_entropy"), k
    return net.set_loss(net.dense(values[-1], k), "mse"), k


@pytest.mark.parametrize("seed", range(24))
def test_random_compositions_equal_torch(seed):
    rng = np.random.default_rng(seed)
    net, k = random_net(rng, depth=int(rng.integers(1, 5)))
    params = net.init_params(seed=seed)
    d = net.nodes[net.inputs[0]].dim
    for n, scalar in ((3, True), (40, False)):
        X = rng.normal(size=(n, d))
        if net.loss.name == "cross_entropy":
            Y = np.eye(k)[rng.integers(0, k, size=n)]
        else:
            Y = rng.normal(size=(n, k))
        loss, grads = net.compile(scalar=scalar)(params, X, Y)
        t_loss, t_grads = torch_run(net, params, X, Y)
        assert loss == pytest.approx(t_loss, rel=1e-10)
        for p in net.parameters:
            assert rel(grads[p], t_grads[p]) < 1e-9, (seed, n, p)
        assert np.allclose(net.predict(params, X), torch_run_forward(net, params, X), rtol=1e-10)


def torch_run_forward(net, params, X):
    with torch.no_grad():
        return forward(net, {k: torch.tensor(v) for k, v in params.items()}, X).numpy()


def gate_and_stack():
    """examples/handouts/gated.py without its layer norm: a gate, then a stack."""
    net = sg.Network()
    x = net.input("x", 2)
    g = net.mul(net.act(net.dense(x, 2), "tanh", name="a"),
                net.act(net.dense(x, 2), "sigmoid", name="b"), name="g")
    return net.set_loss(net.dense(net.concat(g, x, name="c"), 1, name="yhat"), "mse")


def test_the_chain_prints_each_op_with_its_jacobian():
    text = gate_and_stack().derive("W1").to_text()
    assert "∂g/∂a = diag(b)" in text and "entry i reads entry i of each" in text
    assert "c stacks g, x: the rows of g are the identity, the others 0" in text
    assert "g ← entries 1…2 of g, the part of the stack g fills" in text
    assert "\\operatorname{diag}" in sg.to_latex(gate_and_stack().derive("W1"))


def test_element_level_equals_the_kernel_for_gates_and_stacks():
    net = gate_and_stack()
    rng = np.random.default_rng(3)
    params = net.init_params(seed=4)
    X, Y = rng.normal(size=(1, 2)), rng.normal(size=(1, 1))
    _, grads = net.compile()(params, X, Y)
    S = sg.network.Network.derive(net, "w1", level="element").meta["scalar"]
    env = {s: X[0, i] for i, s in enumerate(S.inputs["x"])}
    env[S.target[0]] = Y[0, 0]
    for p, M in S.params.items():
        flat = params[p].reshape(-1)
        env.update({s: flat[i] for i, s in enumerate(M)})
    for p, M in S.params.items():
        for i, s in enumerate(M):
            d = net.derive(s.name, level="element")
            assert d.meta["checked"]  # the engine's own check against sympy.diff
            value = float(d.meta["explicit"].xreplace(env))
            assert value == pytest.approx(grads[p].reshape(-1)[i], rel=1e-9, abs=1e-12), s


def test_gate_of_a_value_with_itself_and_concat_of_a_value_twice():
    net = sg.Network()
    x = net.input("x", 3)
    h = net.act(net.dense(x, 2), "tanh")
    sq = net.mul(h, h)
    c = net.concat(sq, h, sq)
    net.set_loss(net.dense(c, 2), "mse")
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    params = net.init_params(seed=1)
    t_loss, t_grads = torch_run(net, params, X, Y)
    for scalar in (True, False):
        loss, grads = net.compile(scalar=scalar)(params, X, Y)
        assert loss == pytest.approx(t_loss, rel=1e-12)
        assert all(rel(grads[p], t_grads[p]) < 1e-10 for p in net.parameters)
    assert "2 diag(h⁽¹⁾)" in net.derive("W1").to_text()  # (h1 as its handout writes it; a number
    # before a word keeps its space, as 2 sin(x))


def test_bad_gates_and_stacks_are_one_line():
    net = sg.Network()
    x = net.input("x", 3)
    h = net.dense(x, 2)
    with pytest.raises(ValueError, match="mul: the inputs have sizes 2, 3"):
        net.mul(h, x)
    with pytest.raises(ValueError, match="concat: give two or more values"):
        net.concat(h)
    with pytest.raises(ValueError, match="unknown input node 'nope'"):
        net.concat(h, "nope")
    assert sp.Symbol("x") not in net.nodes  # nothing half-added


def test_layer_norm_equals_torch_layer_norm_with_its_parameters():
    """normalize then scale_shift is torch.nn.LayerNorm (weight = γ, bias = β), gain before shift in
    net.parameters as in LayerNorm.parameters(); γ starts at ones and β at zeros, as torch's."""
    net = sg.Network()
    x = net.input("x", 5)
    ln = net.layer_norm(x, eps=1e-5)
    net.set_loss(net.dense(ln, 2), "mse")
    assert net.parameters[:2] == ["gamma1", "beta1"]
    p = net.init_params(seed=0)
    assert (p["gamma1"] == 1).all() and (p["beta1"] == 0).all()
    rng = np.random.default_rng(0)
    p["gamma1"], p["beta1"] = rng.normal(size=5), rng.normal(size=5)
    X, Y = rng.normal(size=(7, 5)) * 3 + 1, rng.normal(size=(7, 2))
    layer = torch.nn.LayerNorm(5, eps=1e-5, dtype=torch.float64)
    lin = torch.nn.Linear(5, 2, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(p["gamma1"]))
        layer.bias.copy_(torch.tensor(p["beta1"]))
        lin.weight.copy_(torch.tensor(p["W2"]))
        lin.bias.copy_(torch.tensor(p["b2"]))
    loss = 0.5 * ((lin(layer(torch.tensor(X))) - torch.tensor(Y)) ** 2).sum() / 7
    loss.backward()
    for scalar in (True, False):
        ours, grads = net.compile(scalar=scalar)(p, X, Y)
        assert ours == pytest.approx(loss.item(), rel=1e-12)
        assert rel(grads["gamma1"], layer.weight.grad.numpy()) < 1e-10
        assert rel(grads["beta1"], layer.bias.grad.numpy()) < 1e-10
        assert rel(grads["W2"], lin.weight.grad.numpy()) < 1e-10


def test_layer_norm_prints_its_jacobian_and_is_stable():
    net = sg.Network()
    x = net.input("x", 3)
    ln = net.layer_norm(net.dense(x, 3), name="ln")
    net.set_loss(net.dense(ln, 1), "mse")
    text = net.derive("W1").to_text()
    # the std by its name, std(h) (σ is the sigmoid), the generated xhat2 by its symbol x̂
    assert "the mean and std(z⁽¹⁾) move with every entry" in text and "σ" not in text
    assert "(I − 𝟏𝟏ᵀ/d − x̂ x̂ᵀ/d)/std(z⁽¹⁾)" in text
    p = net.init_params(seed=1)
    X = np.ones((4, 3))  # every example constant: var = 0, only ε keeps 1/σ finite
    p["W1"][:] = 0
    loss, grads = net.compile(scalar=False)(p, X, np.zeros((4, 1)))
    assert np.isfinite(loss) and all(np.isfinite(g).all() for g in grads.values())
    with pytest.raises(ValueError, match="layer_norm: eps must be > 0"):
        net.layer_norm(x, eps=0)
    with pytest.raises(ValueError, match="layer_norm: eps expected a number"):
        net.layer_norm(x, eps=-1)


def test_layer_norm_element_level_equals_the_kernel():
    net = sg.Network()
    x = net.input("x", 3)
    ln = net.layer_norm(x)
    net.set_loss(net.dense(ln, 1, name="yhat"), "mse")
    rng = np.random.default_rng(5)
    p = net.init_params(seed=2)
    p["gamma1"], p["beta1"] = rng.normal(size=3), rng.normal(size=3)
    X, Y = rng.normal(size=(1, 3)), rng.normal(size=(1, 1))
    _, grads = net.compile()(p, X, Y)
    S = net.derive("w1", level="element").meta["scalar"]
    env = {s: X[0, i] for i, s in enumerate(S.inputs["x"])}
    env[S.target[0]] = Y[0, 0]
    for q, M in S.params.items():
        env.update({s: v for s, v in zip(M, p[q].reshape(-1))})
    for q, M in S.params.items():
        for i, s in enumerate(M):
            d = net.derive(s.name, level="element")
            assert d.meta["checked"]
            value = float(d.meta["explicit"].xreplace(env))
            assert value == pytest.approx(grads[q].reshape(-1)[i], rel=1e-8, abs=1e-12), s


def dropout_net(p=0.4):
    net = sg.Network()
    x = net.input("x", 3)
    h = net.act(net.dense(x, 6), "tanh")
    d = net.dropout(h, p, name="d")
    return net.set_loss(net.dense(d, 2), "mse")


def test_dropout_is_a_gate_by_a_mask_input_and_equals_torch():
    net = dropout_net()
    (mask,) = net.masks
    assert net.masks == {mask: 0.4} and net.inputs == ["x", mask]
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(9, 3)), rng.normal(size=(9, 2))
    m = (rng.random((9, 6)) >= 0.4) / 0.6  # inverted dropout: kept units scaled by 1/(1 − p)
    params = net.init_params(seed=3)
    t_loss, t_grads = torch_run(net, params, {"x": X, mask: m}, Y)
    for scalar in (True, False):
        loss, grads = net.compile(scalar=scalar)(params, {"x": X, mask: m}, Y)
        assert loss == pytest.approx(t_loss, rel=1e-12)
        assert all(rel(grads[q], t_grads[q]) < 1e-10 for q in net.parameters)
    assert "∂d/∂h₁ = diag(" in net.derive("W1").to_text()


def test_predict_and_a_kernel_without_masks_run_without_dropout():
    net = dropout_net()
    plain = sg.Network()
    x = plain.input("x", 3)
    plain.set_loss(plain.dense(plain.act(plain.dense(x, 6), "tanh"), 2), "mse")
    params = net.init_params(seed=1)
    X, Y = np.random.default_rng(2).normal(size=(5, 3)), np.zeros((5, 2))
    assert np.array_equal(net.predict(params, X), plain.predict(params, X))
    a, b = net.compile()(params, X, Y), plain.compile()(params, X, Y)
    assert a[0] == b[0] and all(np.array_equal(a[1][k], b[1][k]) for k in params)


def test_train_draws_masks_from_its_seed():
    net = dropout_net(0.5)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3))
    Y = np.c_[np.sin(X[:, 0]), X[:, 1] * X[:, 2]]
    run = lambda seed: sg.train(net, X, Y, epochs=3, lr=0.01, seed=seed, quiet=True)
    (p1, h1), (p2, h2), (p3, _) = run(0), run(0), run(1)
    assert h1 == h2 and all(np.array_equal(p1[k], p2[k]) for k in p1)  # reproducible
    assert not all(np.array_equal(p1[k], p3[k]) for k in p1)
    # the masks are random: a step with dropout differs from the same step without it
    from symgrad.compile.spec import Spec
    spec = Spec(net)
    drawn = spec.with_masks(X, draw=np.random.default_rng(5))[net.inputs[1]]
    assert set(np.unique(drawn)) == {0.0, 2.0} and abs((drawn == 0).mean() - 0.5) < 0.05


def test_bad_dropout_is_one_line():
    net = sg.Network()
    x = net.input("x", 3)
    for p in (1, -0.1, "0.5", True):
        with pytest.raises(ValueError, match="dropout: p is the probability"):
            net.dropout(x, p)
