"""The 64-layer kernel of issue 15 (784-128×63-10, relu, softmax, cross-entropy): its loss and
every gradient against a backprop written here in numpy (shares nothing with symgrad's
derivation), and a few entries against central differences of that loss. The derive + compile
speed-ups (bench/bench.py --compile-only) must not change a result; this would catch one that did."""
import numpy as np
import pytest

import symgrad as sg

SIZES = [784] + [128] * 63 + [10]


def params_for(net, seed=0):
    """He-scaled weights (a relu stack of 64 layers keeps its activations' scale), small biases."""
    rng = np.random.default_rng(seed)
    p = {}
    for k, v in net.init_params(0).items():
        fan_in = v.shape[1] if v.ndim == 2 and v.shape[1] > 1 else 1
        p[k] = (rng.standard_normal(v.shape) * np.sqrt(2.0 / fan_in) if k.startswith("W")
                else 0.01 * rng.standard_normal(v.shape))
    return p


def numpy_backprop(p, X, y, L):
    """Mean cross-entropy of softmax(z_L) against labels y, and its gradients, by hand."""
    hs, zs = [X], []
    for i in range(1, L + 1):
        z = hs[-1] @ p[f"W{i}"].T + p[f"b{i}"].T
        zs.append(z)
        hs.append(np.maximum(z, 0) if i < L else z)
    z = zs[-1]
    m = z.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(z - m).sum(axis=1))
    n = len(y)
    loss = (lse - z[np.arange(n), y]).mean()
    g = np.exp(z - lse[:, None])
    g[np.arange(n), y] -= 1
    g /= n
    grads = {}
    for i in range(L, 0, -1):
        grads[f"W{i}"] = g.T @ hs[i - 1]
        grads[f"b{i}"] = g.sum(axis=0).reshape(p[f"b{i}"].shape)
        if i > 1:
            g = (g @ p[f"W{i}"]) * (zs[i - 2] > 0)
    return loss, grads


@pytest.fixture(scope="module")
def deep():
    net = sg.mlp(SIZES, hidden="relu", output="softmax", loss="cross_entropy")
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((5, SIZES[0])), rng.integers(0, SIZES[-1], 5)
    return net, params_for(net), X, y


def test_the_64_layer_kernel_matches_a_numpy_backprop(deep):
    net, p, X, y = deep
    loss, grads = net.compile(fused=False)(p, X, y)
    l0, g0 = numpy_backprop(p, X, y, len(SIZES) - 1)
    assert set(grads) == set(g0) and len(g0) == 128
    assert abs(loss - l0) <= 1e-12 * abs(l0)
    for k in g0:
        scale = np.abs(g0[k]).max()
        assert grads[k].shape == g0[k].shape == p[k].shape and scale > 0
        assert np.abs(grads[k] - g0[k]).max() <= 1e-9 * scale, k
    bad = dict(p, W32=1.1 * p["W32"])  # (the comparison can fail: another net's gradients differ)
    assert max(np.abs(numpy_backprop(bad, X, y, 64)[1][k] - g0[k]).max() for k in g0) > 1e-6


def test_the_64_layer_gradients_match_central_differences(deep):
    net, p, X, y = deep
    _, grads = net.compile(fused=False)(p, X, y)
    f = lambda q: numpy_backprop(q, X, y, len(SIZES) - 1)[0]  # noqa: E731
    h = 1e-6
    for k, idx in (("W1", (3, 100)), ("b32", (7,)), ("W64", (2, 5)), ("b64", (9,))):
        up, dn = dict(p, **{k: p[k].copy()}), dict(p, **{k: p[k].copy()})
        up[k][idx] += h
        dn[k][idx] -= h
        fd = (f(up) - f(dn)) / (2 * h)
        assert abs(grads[k][idx] - fd) <= 1e-6 * max(1e-3, abs(fd)), (k, grads[k][idx], fd)


@pytest.mark.slow
def test_the_64_layer_fused_kernel_matches_the_numpy_backprop(deep, monkeypatch, tmp_path):
    # the fused path (numba loops; ~3 s of compiling on a cold cache): batch 1, within its limit
    pytest.importorskip("numba")
    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(tmp_path))
    net, p, X, y = deep
    k = net.compile(fused=True)
    assert k.fused and k.fused_rows >= 1
    loss, grads = k(p, X[:1], y[:1])
    l0, g0 = numpy_backprop(p, X[:1], y[:1], len(SIZES) - 1)
    assert abs(loss - l0) <= 1e-12 * abs(l0)
    for q in g0:
        assert np.abs(grads[q] - g0[q]).max() <= 1e-9 * np.abs(g0[q]).max(), q
