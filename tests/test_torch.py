"""Compiled kernels against PyTorch autograd (skipped without torch; CI installs the CPU build):
random architectures (2–4 layers, so every hidden activation really meets every output/loss pair;
random widths, seeded), float64, relative error below 1e-9; a net with two inputs; and the adam
step against torch.optim.Adam."""
import itertools

import numpy as np
import pytest

import symgrad as sg
from symgrad.run.train import Optimizer

torch = pytest.importorskip("torch")
F = torch.nn.functional

ACTS = {"identity": lambda z: z, "relu": torch.relu, "leaky_relu": F.leaky_relu,
        "sigmoid": torch.sigmoid, "tanh": torch.tanh, "softplus": F.softplus,
        "x/(1 + abs(x))": lambda z: z / (1 + z.abs())}
HUBER = "min(abs(yhat - y), 1)*(abs(yhat - y) - min(abs(yhat - y), 1)/2)"


def t_huber(u):
    m = torch.clamp(u.abs(), max=1.0)
    return m * (u.abs() - m / 2)


HEADS = {  # (output, loss) -> torch mean loss from logits z and targets y
    ("identity", "mse"): lambda z, y: 0.5 * ((z - y) ** 2).sum() / len(z),
    ("sigmoid", "bce"): lambda z, y: F.binary_cross_entropy_with_logits(
        z, y, reduction="sum") / len(z),
    ("softmax", "cross_entropy"): lambda z, y: F.cross_entropy(z, y),
    ("softmax", "mse"): lambda z, y: 0.5 * ((torch.softmax(z, 1) - y) ** 2).sum() / len(z),
    ("identity", "log(cosh(yhat - y))"): lambda z, y: torch.log(torch.cosh(z - y)).sum() / len(z),
    ("identity", HUBER): lambda z, y: t_huber(z - y).sum() / len(z),
}
CASES = list(itertools.product(ACTS, HEADS))


def torch_loss_and_grads(sizes, hidden, head, params, X, Y, penalty):
    ps = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    H = torch.tensor(X)
    L = len(sizes) - 1
    for k in range(1, L + 1):
        H = F.linear(H, ps[f"W{k}"], ps[f"b{k}"])
        if k < L:
            H = ACTS[hidden](H)
    loss = HEADS[head](H, torch.tensor(Y))
    loss = loss + penalty / 2 * sum((ps[f"W{k}"] ** 2).sum() for k in range(1, L + 1))
    grads = torch.autograd.grad(loss, list(ps.values()))
    return loss.item(), {k: g.numpy() for k, g in zip(ps, grads)}


def rel(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)


@pytest.mark.parametrize("hidden,head", CASES)
def test_kernel_matches_torch_autograd(hidden, head):
    i = list(ACTS).index(hidden) * len(HEADS) + list(HEADS).index(head)
    rng = np.random.default_rng(i)
    depth = int(rng.integers(2, 5))  # layers: at least one hidden layer of the activation
    sizes = [int(d) for d in rng.integers(2, 6, depth + 1)]
    penalty = 0.01 * (i % 3)
    act = sg.activation(hidden, name="softsign") if "x" in hidden else hidden
    net = sg.mlp(sizes, hidden=act, output=head[0], loss=head[1], penalty=penalty)
    params = {k: v + 0.3 * rng.standard_normal(v.shape) for k, v in net.init_params(seed=i).items()}
    n = 4 + i % 4
    X = rng.standard_normal((n, sizes[0]))
    if head[1] == "cross_entropy":
        Y = rng.integers(0, sizes[-1], n)
    elif head[1] == "bce":
        Y = rng.integers(0, 2, (n, sizes[-1])).astype(float)
    else:
        Y = rng.standard_normal((n, sizes[-1]))
    ref_loss, ref = torch_loss_and_grads(sizes, hidden, head, params, X, Y, penalty)
    for scalar in (False, True):
        loss, grads = net.compile(scalar=scalar)(params, X, Y)
        assert abs(loss - ref_loss) <= 1e-12 * max(1.0, abs(ref_loss))
        for p in params:
            assert rel(grads[p], ref[p]) < 1e-9, (p, scalar, grads[p], ref[p])


def test_two_inputs_match_torch():
    net = sg.Network()
    a, b = net.input("a", 3), net.input("b", 2)
    s = net.add(net.dense(a, 4, name="za"), net.dense(b, 4, name="zb"))
    h = net.act(s, "softplus", name="h")
    net.set_loss(net.act(net.dense(h, 3, name="z3"), "softmax"), "cross_entropy", penalty=0.02)
    rng = np.random.default_rng(7)
    params = {k: v + 0.3 * rng.standard_normal(v.shape) for k, v in net.init_params(seed=7).items()}
    X = {"a": rng.standard_normal((6, 3)), "b": rng.standard_normal((6, 2))}
    y = rng.integers(0, 3, 6)
    ps = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    H = F.softplus(F.linear(torch.tensor(X["a"]), ps["W1"], ps["b1"])
                   + F.linear(torch.tensor(X["b"]), ps["W2"], ps["b2"]))
    ref = F.cross_entropy(F.linear(H, ps["W3"], ps["b3"]), torch.tensor(y))
    ref = ref + 0.01 * sum((ps[w] ** 2).sum() for w in ("W1", "W2", "W3"))
    tg = dict(zip(ps, torch.autograd.grad(ref, list(ps.values()))))
    for scalar in (False, True):
        loss, grads = net.compile(scalar=scalar)(params, X, y)
        assert abs(loss - ref.item()) <= 1e-12 * ref.item()
        assert all(rel(grads[p], tg[p].numpy()) < 1e-9 for p in params), scalar


def test_huge_logits_match_torch():
    net = sg.mlp([3, 4], output="softmax", loss="cross_entropy")
    rng = np.random.default_rng(0)
    params = {"W1": 400 * rng.standard_normal((4, 3)), "b1": rng.standard_normal(4)}
    X, y = rng.standard_normal((6, 3)), rng.integers(0, 4, 6)
    ref_loss, ref = torch_loss_and_grads([3, 4], "identity", ("softmax", "cross_entropy"),
                                         params, X, y, 0.0)
    loss, grads = net.compile()(params, X, y)
    assert abs(loss - ref_loss) <= 1e-12 * ref_loss
    assert all(rel(grads[p], ref[p]) < 1e-9 for p in params)


def test_adam_matches_torch():
    rng = np.random.default_rng(1)
    p = {"W": rng.standard_normal((3, 2))}
    tp = torch.tensor(p["W"].copy(), requires_grad=True)
    opt, ref = Optimizer("adam", 0.01), torch.optim.Adam([tp], lr=0.01)
    for _ in range(5):
        g = rng.standard_normal((3, 2))
        tp.grad = torch.tensor(g.copy())
        ref.step()
        opt.step(p, {"W": g})
    assert np.allclose(p["W"], tp.detach().numpy(), rtol=1e-12, atol=1e-14)
