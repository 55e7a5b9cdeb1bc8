"""Images (issue 11): ``net.input(name, shape=(C, H, W))``, ``conv2d``, ``max_pool2d`` and
``flatten``, alone and in random compositions with activations, residuals and gates, against an
independent interpreter of the same graph in PyTorch (F.conv2d, F.max_pool2d, torch.flatten;
float64, relative error < 1e-9) on the numpy kernel's both paths and the python backend, with a
stride and a padding for each axis too (< 1e-12); the nodes written out entry by entry against
numpy's own convolution; the element level against the kernel; max pooling's ties routed as
torch routes them."""
import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.compile.spec import work
from symgrad.core.conv import Conv2d, ConvMatrix, Geometry, MaxPool, Patches

torch = pytest.importorskip("torch")
F = torch.nn.functional

from torch_reference import torch_forward  # noqa: E402  (after the skip)

ACT_NAMES = ["relu", "tanh", "sigmoid", "identity"]


def torch_run(net, params, X, Y):
    ps = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    out = torch_forward(net, ps, X)
    if net.loss.name == "mse":  # ½‖ŷ − y‖² per example (every entry of an image), the mean
        loss = 0.5 * ((out - torch.tensor(Y)) ** 2).reshape(len(X), -1).sum(-1).mean()
    else:
        loss = F.nll_loss(torch.log(out), torch.tensor(Y))
    grads = torch.autograd.grad(loss, list(ps.values()))
    return loss.item(), {k: g.numpy() for k, g in zip(ps, grads)}, out.detach().numpy()


def rel(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)


def random_cnn(rng):
    """An image through 1–3 random steps (a convolution + activation, a max pool, a residual
    3×3 convolution added back, or a gate of two convolutions), then flatten → dense → softmax
    with cross-entropy, or, one time in four, mse on the image itself."""
    net = sg.Network()
    C, H, W = int(rng.integers(1, 4)), int(rng.integers(3, 8)), int(rng.integers(3, 8))
    h = net.input("x", shape=(C, H, W))
    for _ in range(int(rng.integers(1, 4))):
        C, H, W = net.nodes[h].image
        kind = rng.choice(["conv", "pool", "skip", "gate"])
        if kind == "pool" and min(H, W) >= 2:
            k, s = [(2, None), (2, 1), (3, 2)][int(rng.integers(0, 3))]
            if min(H, W) >= k:
                h = net.max_pool2d(h, k, stride=s)
                continue
        if kind == "skip":
            z = net.conv2d(h, C, 3, padding=1)
            h = net.add(net.act(z, str(rng.choice(["relu", "tanh"]))), h)
        elif kind == "gate":
            a = net.act(net.conv2d(h, 2, 1), "tanh")
            b = net.act(net.conv2d(h, 2, 1), "sigmoid")
            h = net.mul(a, b)
        else:
            kh, kw = int(rng.integers(1, min(H, 3) + 1)), int(rng.integers(1, min(W, 3) + 1))
            s, p = int(rng.integers(1, 3)), int(rng.integers(0, 2))
            h = net.act(net.conv2d(h, int(rng.integers(1, 4)), (kh, kw), stride=s, padding=p),
                        str(rng.choice(ACT_NAMES)))
    if rng.random() < 0.25:
        return net.set_loss(h, "mse"), None
    k = int(rng.integers(2, 4))
    return net.set_loss(net.act(net.dense(net.flatten(h), k), "softmax"), "cross_entropy"), k


@pytest.mark.parametrize("seed", range(14))
def test_random_cnns_equal_torch(seed):
    rng = np.random.default_rng(700 + seed)
    net, k = random_cnn(rng)
    params = net.init_params(seed=seed)
    params = {q: v + 0.1 * rng.normal(size=v.shape) for q, v in params.items()}  # biases ≠ 0
    kernels = [net.compile(scalar=False)]
    if work(net) <= 1500:  # the unrolled paths: code grows with the work (seconds past this)
        kernels += [net.compile(scalar=True), net.compile(backend="python")]
    shape = net.nodes["x"].image
    for n in (1, 3):
        X = rng.normal(size=(n, *shape))
        out = net.nodes[net.output_node]
        Y = rng.integers(0, k, size=n) if k else rng.normal(size=(n, *out.image))
        t_loss, t_grads, t_out = torch_run(net, params, X, Y)
        targets = [Y, np.eye(k)[Y]] if k else [Y, Y.reshape(n, -1)]
        for kernel in kernels:
            for target in targets:
                loss, grads = kernel(params, X, target)
                assert loss == pytest.approx(t_loss, rel=1e-10), (seed, n)
                for p in params:
                    assert grads[p].shape == params[p].shape, p
                    assert rel(grads[p], t_grads[p]) < 1e-9, (seed, n, p)
        P = net.predict(params, X)
        assert np.allclose(P.reshape(t_out.shape), t_out, rtol=1e-10, atol=1e-14)


def test_the_lenet_shape_equals_torch_in_float32_and_float64():
    """conv 5×5 → relu → pool → conv 3×3 (stride 2, padding 1) → relu → pool → dense: each
    dtype's kernel against torch in that dtype."""
    net = sg.Network()
    x = net.input("img", shape=(3, 16, 16))
    h = net.max_pool2d(net.act(net.conv2d(x, 6, 5), "relu"), 2)
    h = net.max_pool2d(net.act(net.conv2d(h, 8, 3, stride=2, padding=1), "relu"), 2)
    net.set_loss(net.act(net.dense(net.flatten(h), 10), "softmax"), "cross_entropy")
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(5, 3, 16, 16)), rng.integers(0, 10, 5)
    p64 = net.init_params(seed=1)
    t_loss, t_grads, _ = torch_run(net, p64, X, Y)
    for dt, tol in (("float64", 1e-9), ("float32", 2e-5)):
        params = {k: v.astype(dt) for k, v in p64.items()}
        loss, grads = net.compile()(params, X, Y)
        assert loss.dtype == np.dtype(dt) and loss == pytest.approx(t_loss, rel=tol)
        for p in params:
            assert grads[p].dtype == np.dtype(dt) and rel(grads[p], t_grads[p]) < tol, (dt, p)


def test_max_pool_routes_ties_to_the_first_maximum_as_torch():
    """After a relu many windows are all 0: torch's gradient goes to each window's first
    maximum; so does the kernel's (and the explicit entries say the same)."""
    net = sg.Network()
    x = net.input("x", shape=(1, 4, 4))
    h = net.max_pool2d(net.act(net.conv2d(x, 2, 1), "relu"), 2)
    net.set_loss(h, "mse")
    X = np.array([[[[1, 1, 0, 2], [1, 0, 2, 2], [-1, -1, 3, 0], [-1, -1, 0, 3]]]], float)
    params = {"W1": np.array([1.0, -1.0]).reshape(2, 1, 1, 1), "b1": np.zeros(2)}
    Y = np.zeros((1, 2, 2, 2))
    t_loss, t_grads, _ = torch_run(net, params, X, Y)
    for kernel in (net.compile(scalar=False), net.compile(backend="python")):
        loss, grads = kernel(params, X, Y)
        assert loss == pytest.approx(t_loss)
        for p in params:
            assert np.allclose(grads[p], t_grads[p], atol=1e-15), p


@pytest.mark.parametrize("sh,sw,ph,pw", [(2, 2, 1, 1), (2, 1, 0, 2), (1, 3, 2, 1)])
def test_the_nodes_written_out_entry_by_entry_equal_numpy(sh, sw, ph, pw):
    """Conv2d, its matrix T(W) and its patches U(x), each expanded by its own entries, against a
    convolution written here with numpy loops, for each axis's stride and padding; MaxPool
    too."""
    rng = np.random.default_rng(5)
    g = Geometry(2, 4, 5, 2, 3, sh=sh, sw=sw, ph=ph, pw=pw)
    W, b, x = rng.normal(size=(3, g.K)), rng.normal(size=(3, 1)), rng.normal(size=(g.C * g.H * g.W, 1))
    xp = np.pad(x.reshape(g.C, g.H, g.W), ((0, 0), (ph, ph), (pw, pw)))
    ref = np.zeros((3, g.Ho, g.Wo))
    for o in range(3):
        for i in range(g.Ho):
            for j in range(g.Wo):
                patch = xp[:, sh * i:sh * i + 2, sw * j:sw * j + 3]
                ref[o, i, j] = (W[o].reshape(2, 2, 3) * patch).sum() + b[o, 0]
    M = lambda a: sp.ImmutableMatrix(a)
    conv = np.array(Conv2d(M(W), M(b), M(x), g).as_explicit(), float).reshape(-1)
    assert np.allclose(conv, ref.reshape(-1))
    T = np.array(ConvMatrix(M(W), g).as_explicit(), float)
    assert np.allclose(T @ x[:, 0] + np.repeat(b[:, 0], g.P), ref.reshape(-1))
    U = np.array(Patches(M(x), g).as_explicit(), float)
    assert np.allclose((W @ U.T + b).reshape(-1), ref.reshape(-1))
    pool = Geometry(2, 4, 5, 2, 2, sh=2, sw=2)
    got = np.array(MaxPool(M(x), pool).as_explicit(), float).reshape(2, 2, 2)
    assert np.allclose(got, x.reshape(2, 4, 5)[:, :4, :4].reshape(2, 2, 2, 2, 2).max(axis=(2, 4)))
    pool = Geometry(2, 4, 5, 2, 3, sh=sh, sw=sw)
    got = np.array(MaxPool(M(x), pool).as_explicit(), float).reshape(2, pool.Ho, pool.Wo)
    want = F.max_pool2d(torch.tensor(x.reshape(1, 2, 4, 5)), (2, 3), stride=(sh, sw))[0].numpy()
    assert np.array_equal(got, want)


def element_gradients(net, params, X, Y, only=None):
    """Each parameter entry's derivative at the element level (the network written out unit by
    unit for the one example in X), evaluated at params, X and Y: {parameter: values in its
    shape}, for the parameters ``only`` names (default all)."""
    S = net.derive("w1", level="element").meta["scalar"]
    env = dict(zip(S.inputs["x"], X.reshape(-1)))
    env.update(zip(S.target, Y.reshape(-1)))
    for p, M in S.params.items():
        env.update(zip(M, params[p].reshape(-1)))
    return {p: np.array([float(net.derive(s.name, level="element").meta["explicit"].xreplace(env))
                         for s in M]).reshape(params[p].shape)
            for p, M in S.params.items() if only is None or p in only}


def tiny_cnn():
    net = sg.Network()
    x = net.input("x", shape=(1, 3, 3))
    h = net.max_pool2d(net.act(net.conv2d(x, 2, 2), "tanh"), 2, stride=1)
    return net.set_loss(net.dense(net.flatten(h), 1), "mse")


def test_element_level_equals_the_kernel_for_a_small_cnn():
    """The network written out unit by unit (a 2×2 convolution of a 3×3 image, as the notes
    write dense layers), each weight's derivative evaluated, against the compiled kernel."""
    net = tiny_cnn()
    rng = np.random.default_rng(3)
    params = net.init_params(seed=4)
    params = {q: v + 0.1 * rng.normal(size=v.shape) for q, v in params.items()}
    X, Y = rng.normal(size=(1, 1, 3, 3)), rng.normal(size=(1, 1))
    _, grads = net.compile()(params, X, Y)
    got = element_gradients(net, params, X, Y)
    for p in params:
        np.testing.assert_allclose(got[p], grads[p], rtol=1e-9, atol=1e-12, err_msg=p)


def test_the_chain_prints_the_convolution_and_pool_jacobians():
    text = tiny_cnn().derive("W1").to_text()
    # (the generated z1, p3, f4 as the handout writes them: z⁽¹⁾, p, f; test_derive_names)
    assert "∂z⁽¹⁾/∂vec[W⁽¹⁾] = I ⊗ U(x)" in text and "∂p/∂h⁽¹⁾ = S(h⁽¹⁾)" in text
    assert "∇_W⁽¹⁾ ℓ = mat(g_z⁽¹⁾) U(x)" in text and "channel by channel and row by row" in text
    assert "∂f/∂p = I" in text
    latex = sg.to_latex(tiny_cnn().derive("W1"))
    assert r"U\left(" in latex and r"\otimes" in latex


def test_bad_image_networks_are_one_line():
    net = sg.Network()
    x = net.input("x", shape=(1, 4, 4))
    v = net.input("v", 3)
    cases = [(lambda: net.dense(x, 2), "flatten it first"),
             (lambda: net.layer_norm(x), "flatten it first"),
             (lambda: net.act(x, "softmax"), "flatten it first"),
             (lambda: net.conv2d(v, 2, 2), "not an image"),
             (lambda: net.conv2d(x, 2, 5), "does not fit"),
             (lambda: net.conv2d(x, 2, 0), "kernel_size"),
             (lambda: net.max_pool2d(x, 5), "does not fit"),
             (lambda: net.input("bad", shape=(1, 2, 0)), "positive integer")]
    for build, words in cases:
        with pytest.raises(ValueError, match=words) as e:
            build()
        assert "\n" not in str(e.value)
    assert list(net.shapes) == []  # nothing was half made
    seq = net.input("s", shape=(3, 2))  # (a sequence flattens to one vector per example:
    assert net.nodes[net.flatten(seq)].shape == (6,)  # tests/test_seqflat.py)
    net2 = tiny_cnn()
    params = net2.init_params()
    k = net2.compile()
    for X, words in [(np.zeros((2, 9)), r"expected \(n, 1, 3, 3\)"),
                     (np.zeros((2, 1, 3, 4)), r"expected \(n, 1, 3, 3\)")]:
        with pytest.raises(ValueError, match=words):
            k(params, X, np.zeros((2, 1)))
    bad = np.zeros((2, 1, 3, 3))
    bad[1, 0, 2, 2] = np.nan
    with pytest.raises(ValueError, match=r"X holds nan \(at \[1, 0, 2, 2\]\)"):
        k(params, bad, np.zeros((2, 1)))


def test_trains_on_images_and_shares_torch_s_parameter_layout():
    net = tiny_cnn()
    assert list(net.init_params()) == ["W1", "b1", "W2", "b2"]
    assert net.init_params()["W1"].shape == (2, 1, 2, 2)  # torch.nn.Conv2d(1, 2, 2).weight
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 1, 3, 3))
    Y = X[:, 0].max(axis=(1, 2))[:, None]
    params, hist = sg.train(net, X, Y, epochs=60, lr=0.05, seed=0, batch_size=16)
    assert hist[-1] < 0.2 * hist[0]


def torch_conv1d(h, W, b, padding):
    """torch.nn.Conv1d on a (n, T, C) sequence: transposed to (n, C, T), padded as symgrad's
    padding says, convolved, transposed back."""
    k = W.shape[2]
    left = (k - 1) // 2 if padding == "same" else k - 1
    return F.conv1d(F.pad(h.transpose(1, 2), (left, k - 1 - left)), W, b).transpose(1, 2)


@pytest.mark.parametrize("padding", ["same", "causal"])
@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_conv1d_over_sequences_equals_torch(padding, k):
    """conv1d → tanh → conv1d (3, same) → dense → softmax per position, cross-entropy over n·T,
    on the numpy kernel's both paths and the python backend."""
    T, C, O = 5, 3, 4
    net = sg.Network()
    x = net.input("x", shape=(T, C))
    h = net.act(net.conv1d(x, O, k, padding=padding), "tanh")
    z = net.conv1d(h, 2, 3)
    net.set_loss(net.act(net.dense(z, 3), "softmax"), "cross_entropy")
    rng = np.random.default_rng(k)
    params = {q: v + 0.1 * rng.normal(size=v.shape) for q, v in net.init_params(seed=1).items()}
    assert params["W1"].shape == (O, C, k)  # torch.nn.Conv1d(C, O, k).weight
    X, Y = rng.normal(size=(4, T, C)), rng.integers(0, 3, (4, T))
    ps = {q: torch.tensor(v, requires_grad=True) for q, v in params.items()}
    t = torch.tanh(torch_conv1d(torch.tensor(X), ps["W1"], ps["b1"], padding))
    t = F.linear(torch_conv1d(t, ps["W2"], ps["b2"], "same"), ps["W3"], ps["b3"])
    loss = F.cross_entropy(t.reshape(-1, 3), torch.tensor(Y).reshape(-1))
    want = dict(zip(ps, (g.numpy() for g in torch.autograd.grad(loss, list(ps.values())))))
    for kernel in (net.compile(scalar=False), net.compile(scalar=True),
                   net.compile(backend="python")):
        got, grads = kernel(params, X, Y)
        assert got == pytest.approx(loss.item(), rel=1e-10)
        for p in params:
            assert grads[p].shape == params[p].shape and rel(grads[p], want[p]) < 1e-9, p
    text = net.derive("W1").to_text()
    assert "a conv1d reads its neighbours" in text and "I ⊗ u_tᵀ" in text
    assert "the correlation of g with the flipped kernel" in text


def test_bad_conv1d_is_one_line():
    net = sg.Network()
    s, v = net.input("s", shape=(4, 3)), net.input("v", 3)
    for build, words in [(lambda: net.conv1d(v, 2, 3), "not a sequence"),
                         (lambda: net.conv1d(s, 2, 3, padding=1), "'same' or 'causal'"),
                         (lambda: net.conv1d(s, 0, 3), "positive integer")]:
        with pytest.raises(ValueError, match=words) as e:
            build()
        assert "\n" not in str(e.value)
    assert list(net.shapes) == []


@pytest.mark.parametrize("k,s,p,H,W", [(1, 1, 2, 3, 4), (2, 3, 2, 5, 4), ((1, 3), 2, 1, 4, 6),
                                       (3, 1, 2, 3, 3), (2, 2, 0, 5, 5)])
def test_paddings_wider_than_the_kernel_and_strides_past_it_equal_torch(k, s, p, H, W):
    """Padding ≥ the kernel (whole output rows of padding), a stride larger than the kernel
    (entries no window reads), rectangular kernels: the patches' edges and the input gradient."""
    net = sg.Network()
    x = net.input("x", shape=(2, H, W))
    h = net.conv2d(net.act(net.conv2d(x, 3, k, stride=s, padding=p), "tanh"), 2, 1)
    net.set_loss(net.act(net.dense(net.flatten(h), 3), "softmax"), "cross_entropy")
    params = {q: v + 0.1 for q, v in net.init_params(seed=2).items()}
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(3, 2, H, W)), rng.integers(0, 3, 3)
    t_loss, t_grads, _ = torch_run(net, params, X, Y)
    for kernel in (net.compile(scalar=False), net.compile(backend="python")):
        loss, grads = kernel(params, X, Y)
        assert loss == pytest.approx(t_loss, rel=1e-12)
        assert all(rel(grads[q], t_grads[q]) < 1e-9 for q in params)


def test_element_level_routes_a_tie_to_the_first_maximum_as_the_kernel():
    """Two equal entries in a pool window (whole-number images tie often): the element level's
    cases give all of g to the first, as the kernel and torch do (Max would split it in half)."""
    net = sg.Network()
    x = net.input("x", shape=(1, 3, 3))
    h = net.max_pool2d(net.act(net.conv2d(x, 1, 2), "relu"), 2)
    net.set_loss(net.dense(net.flatten(h), 1), "mse")
    params = {"W1": np.array([[[[1.0, 1.0], [0.0, 0.0]]]]), "b1": np.zeros(1),
              "W2": np.array([[2.0]]), "b2": np.zeros(1)}
    X, Y = np.array([[[[1.0, 3.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]]]), np.zeros((1, 1))
    _, grads = net.compile()(params, X, Y)
    t_grads = torch_run(net, params, X, Y)[1]
    assert np.array_equal(grads["W1"], t_grads["W1"])
    assert np.array_equal(element_gradients(net, params, X, Y, only=["W1"])["W1"], grads["W1"])


def test_conv1d_element_level_equals_the_kernel():
    """A sequence with a conv1d is written out at every position of one sequence (as one with
    attention): each weight's derivative against the compiled kernel."""
    net = sg.Network()
    x = net.input("x", shape=(3, 2))
    net.set_loss(net.dense(net.act(net.conv1d(x, 2, 2, padding="causal"), "tanh"), 1), "mse")
    rng = np.random.default_rng(1)
    params = {q: v + 0.1 * rng.normal(size=v.shape) for q, v in net.init_params(seed=1).items()}
    X, Y = rng.normal(size=(1, 3, 2)), rng.normal(size=(1, 3, 1))
    _, grads = net.compile()(params, X, Y)
    d = net.derive("w1", level="element")
    S = d.meta["scalar"]
    assert S.positions == 3 and "a conv1d reads its neighbours" in d.to_text()
    got = element_gradients(net, params, X, Y)
    for p in params:
        np.testing.assert_allclose(got[p], grads[p], rtol=1e-9, atol=1e-12, err_msg=p)


# -- a stride and a padding for each axis, as torch's stride=(sh, sw), padding=(ph, pw) ------------
def random_axes_cnn(rng):
    """An image through 1–3 convolutions or max pools, each with its own stride (and, for a
    convolution, padding) along the rows and along the columns, drawn apart, and a rectangular
    kernel; the first a convolution whose two strides differ. Then flatten → dense → softmax
    with cross-entropy."""
    net = sg.Network()
    h = net.input("x", shape=(int(rng.integers(1, 4)), int(rng.integers(4, 10)),
                              int(rng.integers(4, 10))))
    for step in range(int(rng.integers(1, 4))):
        C, H, W = net.nodes[h].image
        kh, kw = int(rng.integers(1, min(H, 4) + 1)), int(rng.integers(1, min(W, 4) + 1))
        sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        if step == 0:
            sw = sh % 3 + 1
        if step > 0 and rng.random() < 0.4:
            h = net.max_pool2d(h, (kh, kw), stride=None if rng.random() < 0.3 else (sh, sw))
        else:
            pad = (int(rng.integers(0, 3)), int(rng.integers(0, 3)))
            z = net.conv2d(h, int(rng.integers(1, 2 * C + 2)), (kh, kw), stride=(sh, sw),
                           padding=pad)
            h = net.act(z, str(rng.choice(["relu", "tanh", "identity"])))
    return net.set_loss(net.act(net.dense(net.flatten(h), 3), "softmax"), "cross_entropy")


def equal_torch(net, params, X, Y, tol=1e-12):
    """The loss and every gradient of the numpy kernel's both paths and the python backend
    (the unrolled ones while their code stays small) against torch's, float64."""
    t_loss, t_grads, _ = torch_run(net, params, X, Y)
    kernels = [net.compile(scalar=False)]
    if work(net) <= 1500:
        kernels += [net.compile(scalar=True), net.compile(backend="python")]
    for kernel in kernels:
        loss, grads = kernel(params, X, Y)
        assert loss == pytest.approx(t_loss, rel=tol)
        for p in params:
            assert grads[p].shape == params[p].shape and rel(grads[p], t_grads[p]) < tol, p


@pytest.mark.parametrize("seed", range(12))
def test_random_cnns_with_a_stride_and_padding_for_each_axis_equal_torch(seed):
    rng = np.random.default_rng(900 + seed)
    net = random_axes_cnn(rng)
    params = {q: v + 0.1 * rng.normal(size=v.shape) for q, v in net.init_params(seed=seed).items()}
    X, Y = rng.normal(size=(3, *net.nodes["x"].image)), rng.integers(0, 3, 3)
    equal_torch(net, params, X, Y)


@pytest.mark.parametrize("O,k,s,p,H,W,pool", [
    (3, (2, 3), 1, (0, 2), 5, 4, ((2, 3), None)),  # input grad by correlation; pool tiles
    (2, (3, 2), 1, (2, 0), 3, 5, ((3, 2), (1, 2))),  # correlation; overlapping rows
    (5, (2, 3), 1, (1, 2), 4, 5, (2, (2, 3))),  # O > 2C: the scatter at stride 1
    (2, 2, (1, 3), (0, 1), 5, 7, ((2, 1), None)),  # the scatter, strides apart; pool tiles
    (2, (3, 1), (2, 1), (3, 0), 5, 4, ((1, 2), (2, 1))),  # padding past the kernel on one axis
])
def test_each_kernel_path_with_a_stride_and_padding_for_each_axis_equals_torch(O, k, s, p, H, W,
                                                                              pool):
    """A convolution whose input gradient is needed (a 1×1 convolution before it), then a max
    pool: each case picks one of the kernel's paths (the input gradient as a correlation, which
    needs stride 1 on both axes and each padding short of the kernel, or as a scatter; a pool
    whose windows tile the image, or not)."""
    net = sg.Network()
    x = net.input("x", shape=(1, H, W))
    h = net.act(net.conv2d(x, 2, 1), "tanh")
    h = net.act(net.conv2d(h, O, k, stride=s, padding=p), "tanh")
    h = net.max_pool2d(h, pool[0], stride=pool[1])
    net.set_loss(net.act(net.dense(net.flatten(h), 3), "softmax"), "cross_entropy")
    params = {q: v + 0.1 for q, v in net.init_params(seed=3).items()}
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(4, 1, H, W)), rng.integers(0, 3, 4)
    equal_torch(net, params, X, Y)


@pytest.mark.parametrize("s,p,words", [((1, 2), (1, 0), "stride (1, 2), padding (1, 0)"),
                                        (2, (1, 1), "stride 2, padding 1")])
def test_the_chain_says_each_axis_s_stride_and_padding(s, p, words):
    """Where a convolution's input Jacobian is printed, its note gives torch's arguments: one
    number where the axes agree, else the pair."""
    net = sg.Network()
    x = net.input("x", shape=(1, 4, 5))
    h = net.act(net.conv2d(net.conv2d(x, 2, 1), 2, (2, 3), stride=s, padding=p), "tanh")
    net.set_loss(net.dense(net.flatten(h), 1), "mse")
    assert f"2×3 window, {words})" in net.derive("W1").to_text()


def test_element_level_of_a_conv_with_a_stride_and_padding_for_each_axis_equals_the_kernel():
    """A 2×2 convolution of a 3×4 image at stride (1, 2), padding (1, 0), then a 2×1 pool at
    stride (2, 1), written out unit by unit: each weight's derivative against the numpy kernel
    (whose path reads no node's entries, as the unrolled one does) and torch."""
    net = sg.Network()
    x = net.input("x", shape=(1, 3, 4))
    h = net.act(net.conv2d(x, 2, 2, stride=(1, 2), padding=(1, 0)), "tanh")
    net.set_loss(net.dense(net.flatten(net.max_pool2d(h, (2, 1), stride=(2, 1))), 1), "mse")
    assert net.nodes[h].image == (2, 4, 2)
    rng = np.random.default_rng(6)
    params = {q: v + 0.1 * rng.normal(size=v.shape) for q, v in net.init_params(seed=2).items()}
    X, Y = rng.normal(size=(1, 1, 3, 4)), rng.normal(size=(1, 1))
    _, grads = net.compile(scalar=False)(params, X, Y)
    t_grads = torch_run(net, params, X, Y)[1]
    got = element_gradients(net, params, X, Y)
    for p in params:
        assert rel(grads[p], t_grads[p]) < 1e-12, p
        np.testing.assert_allclose(got[p], grads[p], rtol=1e-12, atol=1e-14, err_msg=p)


def test_bad_pairs_are_one_line():
    """Each bad stride, padding or kernel pair names the argument, the op and what it got; a
    window that does not fit names the axis."""
    net = sg.Network()
    x = net.input("x", shape=(1, 4, 6))
    cases = [(lambda: net.conv2d(x, 2, 2, stride=(1, -1)), r"conv2d: stride .* got \(1, -1\)"),
             (lambda: net.conv2d(x, 2, 2, stride=(0, 1)), r"conv2d: stride must be an integer ≥ 1"),
             (lambda: net.conv2d(x, 2, 2, padding=(-1, 0)),
              r"conv2d: padding must be an integer ≥ 0 .* got \(-1, 0\)"),
             (lambda: net.conv2d(x, 2, 2, stride=(1, 2, 1)), r"stride .* got \(1, 2, 1\)"),
             (lambda: net.conv2d(x, 2, 2, padding=[1]), r"padding .* got \[1\]"),
             (lambda: net.conv2d(x, 2, (2,)), r"kernel_size .* got \(2,\)"),
             (lambda: net.conv2d(x, 2, 2, stride=(1, 2.0)), r"stride .* got \(1, 2.0\)"),
             (lambda: net.conv2d(x, 2, 2, stride=(True, 1)), r"stride .* got \(True, 1\)"),
             (lambda: net.conv2d(x, 2, 3, padding="same"), r"padding .* got 'same'"),
             (lambda: net.conv2d(x, 2, (5, 2)),
              r"conv2d: a 5×2 kernel does not fit the 4×6 image 'x': its height is 4 < 5"),
             (lambda: net.conv2d(x, 2, (2, 9), padding=(0, 1)),
              r"its width is 6 \+ 2·1 padding = 8 < 9"),
             (lambda: net.max_pool2d(x, (2, 7)),
              r"max_pool2d: a 2×7 window does not fit .* its width is 6 < 7"),
             (lambda: net.max_pool2d(x, 2, stride=(2, 0)), r"max_pool2d: stride .* got \(2, 0\)")]
    for build, words in cases:
        with pytest.raises(ValueError, match=words) as e:
            build()
        assert "\n" not in str(e.value)
    assert list(net.shapes) == []  # nothing was half made
    z = net.conv2d(x, 2, [2, 3], stride=[2, 1], padding=[1, 0])  # lists, as torch takes them
    assert net.nodes[z].image == (2, 3, 4)


@pytest.mark.parametrize("k", [(12, 12), (1, 300)])
def test_a_pool_window_of_more_than_127_entries_equals_torch(k):
    """A global 12×12 max pool, and a 1×300 one along a row: each window's argmax offset goes
    past what int8 holds. The numpy path only: the unrolled ones write each window's first
    maximum as cases, quadratic in its entries."""
    net = sg.Network()
    x = net.input("x", shape=(1, *k))
    h = net.act(net.conv2d(x, 2, 1), "tanh")
    net.set_loss(net.dense(net.flatten(net.max_pool2d(h, k)), 1), "mse")
    params = {q: v + 0.1 for q, v in net.init_params(seed=1).items()}
    rng = np.random.default_rng(2)
    X, Y = rng.normal(size=(3, 1, *k)), rng.normal(size=(3, 1))
    t_loss, t_grads, _ = torch_run(net, params, X, Y)
    loss, grads = net.compile(scalar=False)(params, X, Y)
    assert loss == pytest.approx(t_loss, rel=1e-12)
    assert all(rel(grads[q], t_grads[q]) < 1e-12 for q in params)


@pytest.mark.skipif(__import__("shutil").which("pdflatex") is None, reason="no pdflatex here")
def test_a_conv1d_handout_compiles(tmp_path):
    """embedding → conv1d → relu → dense → softmax: conv1d's ∇W and g (𝐠_z2 indexed by t, a
    weight with a superscript indexed by u) once printed double subscripts and superscripts, and
    the words' … as amsmath's \\dots, which fails before \\boldsymbol."""
    from symgrad.handouts.pdf import compile_pdf
    net = sg.Network()
    e = net.embedding(net.input("t", shape=(6,), tokens=10), 4)
    h = net.act(net.conv1d(e, 5, 3), "relu")
    net.set_loss(net.act(net.dense(h, 3), "softmax"), "cross_entropy")
    tex = sg.handout(net)
    assert r"\dots" not in tex
    compile_pdf(tex, tmp_path / "conv1d.pdf", engine="pdflatex")
