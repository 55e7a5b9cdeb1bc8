"""``net.flatten(h)`` of a sequence (issue 11): the T positions of d features as one vector of T·d
per example in torch's order (``torch.flatten(h, 1)`` of an (n, T, d) tensor), after which the
network has one row per example: a text CNN (embedding → conv1d → relu → flatten → dense →
softmax, cross-entropy per example) and a real-valued sequence (dense per position → flatten →
dense, mse) against equal torch models (float64, loss and every gradient to ~1e-12, on the numpy
kernel's both paths and the python backend), predict against torch, training, the printed
derivation, the one-line refusals; and conv1d in random compositions with the other sequence ops
(dense, activations, layer norm, gates, residuals, attention, several conv1d of different k and
paddings), with and without a flatten, against an interpreter of the same graph in torch."""
import shutil

import numpy as np
import pytest

import symgrad as sg
from symgrad.handouts.pdf import compile_pdf
from symgrad.run.train import accuracy

torch = pytest.importorskip("torch")
F = torch.nn.functional
nn = torch.nn

from torch_reference import torch_forward  # noqa: E402  (after the skip)


def rel(a, b):
    """Relative error, over at least 1e-6: attention's keys' bias has a gradient of exactly 0
    in torch (softmax ignores a constant added to a row), ~1e-18 of rounding here."""
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-6)


def kernels(net):
    """The numpy kernel's whole-batch and unrolled paths, and the python backend."""
    return [net.compile(scalar=False), net.compile(scalar=True), net.compile(backend="python")]


def assert_equal(net, params, X, Ys, loss, grads, tol=1e-12, where=()):
    for k in kernels(net):
        for Y in Ys:
            got, g = k(params, X, Y)
            assert got == pytest.approx(loss, rel=tol), where
            for p in params:
                assert g[p].shape == params[p].shape, (where, p)
                assert rel(g[p], grads[p]) < tol, (where, p, rel(g[p], grads[p]))


# -- a text CNN against torch's modules --------------------------------------------------------
def text_cnn(T=6, V=11, E=4, O=5, k=3, classes=3, padding="same"):
    net = sg.Network()
    tok = net.input("tok", shape=(T,), tokens=V)
    h = net.act(net.conv1d(net.embedding(tok, E), O, k, padding=padding), "relu")
    net.set_loss(net.act(net.dense(net.flatten(h, name="f"), classes), "softmax"),
                 "cross_entropy")
    return net


class TorchTextCNN(nn.Module):
    """embedding → Conv1d (padded as symgrad's padding says) → relu → flatten → Linear."""

    def __init__(self, V, E, O, k, T, classes, left):
        super().__init__()
        self.emb, self.conv = nn.Embedding(V, E), nn.Conv1d(E, O, k)
        self.out = nn.Linear(T * O, classes)
        self.pad = (left, k - 1 - left)

    def forward(self, tok):
        h = torch.relu(self.conv(F.pad(self.emb(tok).transpose(1, 2), self.pad)))
        return self.out(torch.flatten(h.transpose(1, 2), 1))  # (n, T, O) → (n, T·O)


def torch_text_cnn(params, T, V, E, O, k, classes, left):
    m = TorchTextCNN(V, E, O, k, T, classes, left).double()
    with torch.no_grad():
        for mod, (w, b) in ((m.emb, ("E1", None)), (m.conv, ("W2", "b2")), (m.out, ("W3", "b3"))):
            mod.weight.copy_(torch.tensor(params[w]))
            if b:
                mod.bias.copy_(torch.tensor(params[b]))
    return m


@pytest.mark.parametrize("padding,k", [("same", 3), ("causal", 2), ("same", 4)])
def test_a_text_cnn_equals_torch(padding, k):
    T, V, E, O, C = 6, 11, 4, 5, 3
    net = text_cnn(T, V, E, O, k, C, padding)
    assert net.nodes["f"].shape == (T * O,) and net.positions is None and net.seq_len == T
    rng = np.random.default_rng(k)
    params = {q: v + 0.1 * rng.normal(size=v.shape) for q, v in net.init_params(seed=2).items()}
    m = torch_text_cnn(params, T, V, E, O, k, C, (k - 1) // 2 if padding == "same" else k - 1)
    for n in (1, 7):
        X, labels = rng.integers(0, V, (n, T)), rng.integers(0, C, n)
        logits = m(torch.tensor(X))
        loss = F.cross_entropy(logits, torch.tensor(labels))
        m.zero_grad()
        loss.backward()
        want = {"E1": m.emb.weight.grad, "W2": m.conv.weight.grad, "b2": m.conv.bias.grad,
                "W3": m.out.weight.grad, "b3": m.out.bias.grad}
        want = {p: g.numpy() for p, g in want.items()}
        assert_equal(net, params, X, [labels, np.eye(C)[labels]], loss.item(), want,
                     where=(padding, k, n))
        P = net.predict(params, X)
        assert P.shape == (n, C)  # one row per example
        assert rel(P, torch.softmax(logits, -1).detach().numpy()) < 1e-13
    assert sg.gradcheck(net) < 1e-6  # (its own data: (n, T) tokens, (n,) labels)


def test_a_real_valued_sequence_flattened_to_an_mse_equals_torch():
    """x (n, T, d) → Linear per position → tanh → flatten → Linear → ½‖ŷ − y‖², per example."""
    T, d, H, k = 4, 3, 5, 2
    net = sg.Network()
    h = net.act(net.dense(net.input("x", shape=(T, d)), H), "tanh")
    net.set_loss(net.dense(net.flatten(h), k), "mse")
    rng = np.random.default_rng(0)
    params = {q: v + 0.1 * rng.normal(size=v.shape) for q, v in net.init_params(seed=1).items()}
    lin1, lin2 = nn.Linear(d, H).double(), nn.Linear(T * H, k).double()
    with torch.no_grad():
        for lin, w, b in ((lin1, "W1", "b1"), (lin2, "W2", "b2")):
            lin.weight.copy_(torch.tensor(params[w]))
            lin.bias.copy_(torch.tensor(params[b]))
    for n in (1, 2, 9):
        X, Y = rng.normal(size=(n, T, d)), rng.normal(size=(n, k))
        out = lin2(torch.flatten(torch.tanh(lin1(torch.tensor(X))), 1))
        loss = 0.5 * ((out - torch.tensor(Y)) ** 2).sum(-1).mean()
        lin1.zero_grad(), lin2.zero_grad()
        loss.backward()
        want = {"W1": lin1.weight.grad, "b1": lin1.bias.grad, "W2": lin2.weight.grad,
                "b2": lin2.bias.grad}
        assert_equal(net, params, X, [Y], loss.item(), {p: g.numpy() for p, g in want.items()},
                     where=n)
        assert rel(net.predict(params, X), out.detach().numpy()) < 1e-13


def test_a_dropout_mask_after_the_flatten_is_one_vector_per_example():
    """dropout after the flatten gates the per-example vector: its mask is (n, T·d), and a given
    mask equals torch's product by it; predict runs without dropout."""
    T, d = 3, 2
    net = sg.Network()
    h = net.act(net.dense(net.input("x", shape=(T, d)), 2), "tanh")
    net.set_loss(net.dense(net.dropout(net.flatten(h), 0.5), 2), "mse")
    mask = next(iter(net.masks))
    assert net.nodes[mask].shape == (T * 2,)
    rng = np.random.default_rng(5)
    params = net.init_params(seed=3)
    X, Y = rng.normal(size=(4, T, d)), rng.normal(size=(4, 2))
    M = (rng.random((4, T * 2)) > 0.5) * 2.0
    ps = {q: torch.tensor(v, requires_grad=True) for q, v in params.items()}
    f = torch.flatten(torch.tanh(F.linear(torch.tensor(X), ps["W1"], ps["b1"])), 1)
    out = F.linear(f * torch.tensor(M), ps["W2"], ps["b2"])
    loss = 0.5 * ((out - torch.tensor(Y)) ** 2).sum(-1).mean()
    want = dict(zip(ps, (g.numpy() for g in torch.autograd.grad(loss, list(ps.values())))))
    assert_equal(net, params, {"x": X, mask: M}, [Y], loss.item(), want)
    plain = F.linear(f, ps["W2"], ps["b2"]).detach().numpy()
    assert rel(net.predict(params, X), plain) < 1e-13
    with pytest.raises(ValueError, match=rf"X\['{mask}'\] has shape \(4, 3, 2\); expected "
                                         r"\(n, 6\)"):
        net.compile()(params, {"x": X, mask: np.ones((4, T, 2))}, Y)


def test_training_a_text_cnn_learns_and_reports_accuracy():
    """The class is the token at position 2 (mod 3): a conv1d window and the flatten's
    positions see it."""
    net = text_cnn(T=5, V=6, E=3, O=4, k=3, classes=3)
    rng = np.random.default_rng(1)
    X = rng.integers(0, 6, (96, 5))
    Y = X[:, 2] % 3
    params, hist = sg.train(net, X, Y, epochs=40, lr=0.03, seed=0, batch_size=16)
    assert hist[-1] < 0.3 * hist[0]
    assert accuracy(net, params, X, Y) > 0.9


def test_the_derivation_prints_the_flatten_step():
    net = text_cnn()
    text = net.derive("W2").to_text()
    assert "one vector per sequence after f)" in text.splitlines()[0]
    # (the generated h2 is the handout's h⁽¹⁾, the conv's output: test_derive_names)
    assert "∂f/∂h⁽¹⁾ = e_t ⊗ I" in text and "∂f/∂vec(h⁽¹⁾[1:T]ᵀ) is the identity I₃₀" in text
    assert "f = [h⁽¹⁾_1; …; h⁽¹⁾_T]" in text
    assert "g at h⁽¹⁾ₜ ← row t of mat(g), g laid back as T × d = 6 × 5" in text
    assert "the mean over the n/T sequences, one row each after the flatten" in text
    assert "which carries the T/n" in text
    program = "\n".join(f"{lhs} = {rhs}" for lhs, rhs in net.backprop().meta["program"].display())
    assert "F = flatten_T(H2)" in program and "G_h2 = unflatten_T(G_f)" in program
    latex = sg.to_latex(net.derive("W3"))
    assert r"\operatorname{vec}" in latex or r"\operatorname{flatten}" in latex
    with pytest.raises(ValueError, match=r"does not write out 'f', a flatten of a sequence") as e:
        net.derive("W2", level="element")
    assert "\n" not in str(e.value)


def test_bad_uses_are_one_line_naming_the_op_and_the_shapes():
    net = sg.Network()
    x = net.input("x", shape=(2, 3))
    h = net.dense(x, 3, name="h")
    f = net.flatten(h, name="f")
    v = net.dense(f, 3, name="v")
    cases = [(lambda: net.mul(h, v), r"mul '\w+': 'h' has shape \(2, 3\) and 'v' has shape "
                                     r"\(3,\); a position-wise op needs"),
             (lambda: net.add(h, v, name="s"), r"add 's': 'h' has shape \(2, 3\) and 'v' has "
                                               r"shape \(3,\)"),
             (lambda: net.add(h, f), r"add: 'h' has shape \(2, 3\) and 'f' has shape \(6,\)"),
             (lambda: net.conv1d(f, 2, 3), r"conv1d: 'f' has shape \(6,\), not a sequence"),
             (lambda: net.attention(f, f, f), r"attention: q 'f' is a vector of shape \(6,\)"),
             (lambda: net.apply("seq_flatten", h), r"seq_flatten: build it with net.flatten")]
    for build, msg in cases:
        with pytest.raises(ValueError, match=msg) as e:
            build()
        assert "\n" not in str(e.value)
    assert net.flatten(f) == f  # a vector flattens to itself
    net.set_loss(v, "mse")
    params, k = net.init_params(), net.compile()
    X = np.zeros((2, 2, 3))
    for args, msg in [((np.zeros((2, 6)), np.zeros((2, 3))), r"X has shape \(2, 6\); expected "
                                                             r"\(n, 2, 3\)"),
                      ((X, np.zeros((2, 2, 3))), r"Y has shape \(2, 2, 3\); expected \(2, 3\)"),
                      ((X, np.zeros((4, 3))), r"Y has shape \(4, 3\); expected \(2, 3\)")]:
        for kern in kernels(net):
            with pytest.raises(ValueError, match=msg) as e:
                kern(params, *args)
            assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match=r"Y: the kernel needs the targets, \(n, 3\) one row per "
                                         r"example"):
        k(params, X, None)


# -- conv1d in random compositions with the other sequence ops, against torch ------------------
def random_conv_net(rng):
    """A sequence through 2–5 random steps, one conv1d at least (kernel 1–4, same or causal
    padding): a conv1d (+ activation), a dense layer per position (+ activation), layer norm, a
    gate of two conv1d, a residual conv1d added back, attention; then, every other time, flatten
    → dense (one vector per example), else dense per position; mse, or softmax + cross-entropy."""
    T, d = int(rng.integers(1, 6)), int(rng.integers(1, 4))
    net = sg.Network()
    h = net.input("x", shape=(T, d))
    kinds = ["conv"] + list(rng.choice(["conv", "dense", "norm", "gate", "skip", "attention"],
                                       size=int(rng.integers(1, 5))))
    rng.shuffle(kinds)

    def conv(h, out):
        return net.conv1d(h, out, int(rng.integers(1, 5)),
                          padding=str(rng.choice(["same", "causal"])))
    for kind in kinds:
        w = int(rng.integers(1, 4))
        if kind == "conv":
            h = net.act(conv(h, w), str(rng.choice(["tanh", "relu", "identity"])))
        elif kind == "dense":
            h = net.act(net.dense(h, w), str(rng.choice(["tanh", "sigmoid"])))
        elif kind == "norm":
            h = net.layer_norm(h)
        elif kind == "gate":
            h = net.mul(net.act(conv(h, w), "tanh"), net.act(conv(h, w), "sigmoid"))
        elif kind == "skip":
            h = net.add(h, net.act(conv(h, net.nodes[h].dim), "tanh"))
        else:
            h = net.attention(net.dense(h, 2), net.dense(h, 2), net.dense(h, w),
                              causal=bool(rng.integers(2)))
    if rng.integers(2):
        h = net.flatten(h)
    k = int(rng.integers(1, 4))
    z = net.dense(h, k)
    if k > 1 and rng.integers(2):
        net.set_loss(net.act(z, "softmax"), "cross_entropy")
    else:
        net.set_loss(z, "mse")
    return net, T, d, k


@pytest.mark.parametrize("seed", range(24))
def test_random_conv1d_compositions_equal_torch(seed):
    rng = np.random.default_rng(7000 + seed)
    net, T, d, k = random_conv_net(rng)
    assert any(n.op == "conv1d" for n in net.nodes.values())
    params = {q: v + 0.1 * rng.normal(size=v.shape)
              for q, v in net.init_params(seed=seed).items()}
    flat = net.positions is None
    for n in (1, 3):
        X = rng.normal(size=(n, T, d))
        lead = (n,) if flat else (n, T)
        ps = {q: torch.tensor(v, requires_grad=True) for q, v in params.items()}
        out = torch_forward(net, ps, X)
        if net.loss.name == "cross_entropy":
            labels = rng.integers(0, k, lead)
            loss = F.nll_loss(torch.log(out).reshape(-1, k), torch.tensor(labels).reshape(-1))
            Ys = [labels, np.eye(k)[labels]]
        else:
            Y = rng.normal(size=lead + (k,))
            loss = 0.5 * ((out - torch.tensor(Y)) ** 2).sum(-1).mean()
            Ys = [Y]
        want = dict(zip(ps, (g.numpy() for g in torch.autograd.grad(loss, list(ps.values())))))
        assert_equal(net, params, X, Ys, loss.item(), want, tol=1e-9, where=(seed, n, repr(net)))
        P = net.predict(params, X)
        assert P.shape == lead + (k,)
        assert np.allclose(P, out.detach().numpy(), rtol=1e-10, atol=1e-13)


def test_a_loss_per_position_and_a_loss_per_example_in_one_net_equal_torch():
    """net.add_loss of a tagger (softmax per position, cross-entropy over the n·T positions) and
    a regressor after the flatten (mse over the n sequences): ℓ = ℓ_tag + ½ ℓ_cls, each the mean
    over its own rows; Y a dict of (n, T) labels and (n, 2) targets; predict gives both."""
    T, d = 4, 3
    net = sg.Network()
    h = net.act(net.conv1d(net.input("x", shape=(T, d)), 3, 3), "tanh")
    net.add_loss(net.act(net.dense(h, 2), "softmax", name="tag"), "cross_entropy")
    net.add_loss(net.dense(net.flatten(h), 2, name="cls"), "mse", weight=0.5)
    rng = np.random.default_rng(0)
    params = {q: v + 0.1 * rng.normal(size=v.shape) for q, v in net.init_params(seed=1).items()}
    n = 5
    X, lab, Yc = rng.normal(size=(n, T, d)), rng.integers(0, 2, (n, T)), rng.normal(size=(n, 2))
    ps = {q: torch.tensor(v, requires_grad=True) for q, v in params.items()}
    t = torch.tanh(F.conv1d(F.pad(torch.tensor(X).transpose(1, 2), (1, 1)), ps["W1"],
                            ps["b1"]).transpose(1, 2))
    tag, cls = F.linear(t, ps["W2"], ps["b2"]), F.linear(torch.flatten(t, 1), ps["W3"], ps["b3"])
    loss = (F.cross_entropy(tag.reshape(-1, 2), torch.tensor(lab).reshape(-1))
            + 0.5 * 0.5 * ((cls - torch.tensor(Yc)) ** 2).sum(-1).mean())
    want = dict(zip(ps, (g.numpy() for g in torch.autograd.grad(loss, list(ps.values())))))
    assert_equal(net, params, X, [{"tag": lab, "cls": Yc}, {"tag": np.eye(2)[lab], "cls": Yc}],
                 loss.item(), want)
    P = net.predict(params, X)
    assert P["tag"].shape == (n, T, 2) and P["cls"].shape == (n, 2)
    assert rel(P["cls"], cls.detach().numpy()) < 1e-13
    assert rel(P["tag"], torch.softmax(tag, -1).detach().numpy()) < 1e-13
    text = net.derive("W1").to_text()
    assert "for a term on the positions, and the n/T sequences for a term after the flatten" in text
    with pytest.raises(ValueError, match=r"Y\['cls'\] has shape \(5, 4, 2\); expected \(5, 2\)"):
        net.compile()(params, X, {"tag": lab, "cls": np.zeros((n, T, 2))})
    assert sg.gradcheck(net) < 1e-6
    _, hist = sg.train(net, X, {"tag": lab, "cls": Yc}, epochs=30, lr=0.05, seed=0, quiet=True)
    assert hist[-1] < hist[0]


def test_a_handout_of_a_flattened_sequence_says_so_and_compiles(tmp_path):
    """The matrix level in full; the unit-by-unit view left out in one sentence saying why."""
    net = sg.Network()
    h = net.act(net.dense(net.input("x", shape=(3, 2)), 2), "tanh")
    net.set_loss(net.act(net.dense(net.flatten(h), 2), "softmax"), "cross_entropy")
    tex = sg.handout(net, level="both")
    assert "on sequences of T = 3 positions, flattened" in tex
    assert "a flatten of a sequence is derived at the matrix level only" in tex
    if shutil.which("pdflatex"):
        compile_pdf(tex, tmp_path / "seqflat.pdf", engine="pdflatex")
