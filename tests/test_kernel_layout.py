"""The numpy kernel's memory order of its batch values (issue 15): (d, n) buffers in C order, or
in Fortran order (each example's features side by side, as a hand-written step's (n, d) rows)
where OpenBLAS's products run faster that way (:func:`symgrad.compile.kernel.buffer_order`).
Numpy's results do not depend on memory order, so every architecture's kernel is run with both
orders forced and checked to agree (float64, 1e-12): a printer that relied on a buffer's layout
(a reshape, a flat index, a copy made in the other order) would show here."""
import numpy as np
import pytest

import symgrad as sg
from symgrad.compile.kernel import buffer_order

F32, F64 = np.dtype("float32"), np.dtype("float64")


def forced(net, order):
    """net's numpy kernel (numpy throughout, no unrolled path) with its buffers in ``order``."""
    k = net.compile(scalar=False, fused=False)
    k.__globals__["_consts"].order = lambda n, dt: order
    k.predict.__globals__["_consts"].order = lambda n, dt: order
    return k


def mlp():
    return sg.mlp([6, 5, 4, 3], hidden="relu", output="softmax", loss="cross_entropy")


def norm_residual():  # layer norm and a residual read the input entrywise: a copied input
    net = sg.Network()
    x = net.input("x", 4)
    h = net.act(net.dense(net.layer_norm(x), 4), "tanh")
    net.set_loss(net.dense(net.add(x, h), 2), "mse")
    return net


def block():  # attention over sequences, layer norm, residuals: values held as (n·T, d) rows
    net = sg.Network()
    x = net.input("x", shape=(5, 8))
    att = net.self_attention(net.layer_norm(x), 2, causal=True)
    r = net.add(x, att)
    net.set_loss(net.add(r, net.dense(net.act(net.dense(net.layer_norm(r), 16), "relu"), 8)),
                 "mse")
    return net


def conv():
    net = sg.Network()
    x = net.input("img", shape=(2, 6, 6))
    h = net.max_pool2d(net.act(net.conv2d(x, 3, 3, padding=1), "relu"), 2)
    net.set_loss(net.act(net.dense(net.flatten(h), 4), "softmax"), "cross_entropy")
    return net


def embedding():
    net = sg.Network()
    tok = net.input("tok", shape=(3,), tokens=7)
    h = net.act(net.dense(net.embedding(tok, 4), 5), "sigmoid")
    net.set_loss(net.dense(h, 2), "mse")
    return net


CASES = {
    "mlp labels": (mlp, lambda r, n: (r.normal(size=(n, 6)), r.integers(0, 3, n))),
    "mlp one-hot": (mlp, lambda r, n: (r.normal(size=(n, 6)), np.eye(3)[r.integers(0, 3, n)])),
    "norm residual": (norm_residual, lambda r, n: (r.normal(size=(n, 4)), r.normal(size=(n, 2)))),
    "attention block": (block, lambda r, n: (r.normal(size=(n, 5, 8)), r.normal(size=(n, 5, 8)))),
    "conv": (conv, lambda r, n: (r.normal(size=(n, 2, 6, 6)), r.integers(0, 4, n))),
    "embedding": (embedding, lambda r, n: (r.integers(0, 7, (n, 3)), r.normal(size=(n, 3, 2)))),
}


@pytest.mark.parametrize("case", list(CASES))
def test_fortran_ordered_buffers_give_the_c_ordered_results(case):
    build, make = CASES[case]
    rng = np.random.default_rng(0)
    X, Y = make(rng, 33)
    c_net, f_net = build(), build()  # (two nets: each its own kernel and buffers)
    params = {p: v + 0.3 * rng.normal(size=v.shape) for p, v in c_net.init_params(0).items()}
    kc, kf = forced(c_net, "C"), forced(f_net, "F")
    (l0, g0), (l1, g1) = kc(params, X, Y), kf(params, X, Y)
    assert l1 == pytest.approx(l0, rel=1e-12)
    scale = max(np.abs(g).max() for g in g0.values())
    for p in g0:
        assert g1[p].shape == g0[p].shape and g1[p].dtype == g0[p].dtype
        # (a key's bias has gradient 0, rounding noise either way: by the largest gradient)
        assert np.abs(g1[p] - g0[p]).max() <= 1e-12 * max(np.abs(g0[p]).max(), 1e-3 * scale), p
    out_c, out_f = kc.predict(params, X), kf.predict(params, X)
    assert np.abs(out_f - out_c).max() <= 1e-12 * np.abs(out_c).max()
    # the buffers really were Fortran-ordered (not a test that cannot fail)
    rows = X.shape[0] * {"attention block": 5, "embedding": 3}.get(case, 1)
    bufs = [a for a in kf.__globals__["_consts"](rows, F64)
            if isinstance(a, np.ndarray) and a.ndim == 2 and a.shape[0] > 1 and a.shape[1] == rows]
    assert bufs and all(a.flags.f_contiguous and not a.flags.c_contiguous for a in bufs)


def test_float32_large_batches_take_fortran_order_and_match_float64():
    """The measured rule: float32 from 1024 rows (sgemm 25–30 % faster into and out of Fortran
    order at 64×64×2048); float64 and small batches C. The float32 kernel then agrees with
    the float64 one to float32's precision."""
    assert [buffer_order(n, F32) for n in (1, 128, 1023, 1024, 8192)] == ["C"] * 3 + ["F"] * 2
    assert {buffer_order(n, F64) for n in (1, 128, 1024, 8192)} == {"C"}
    net = sg.mlp([8, 16, 16, 4], hidden="relu", output="softmax", loss="cross_entropy")
    k = net.compile(fused=False)
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(2048, 8)), rng.integers(0, 4, 2048)
    p64 = net.init_params(0)
    p32 = {p: v.astype(F32) for p, v in p64.items()}
    (l64, g64), (l32, g32) = k(p64, X, Y), k(p32, X.astype(F32), Y)
    bufs = [a for a in k.__globals__["_consts"](2048, F32)
            if isinstance(a, np.ndarray) and a.ndim == 2 and a.shape[0] > 1 and a.shape[1] == 2048]
    assert bufs and all(a.flags.f_contiguous and not a.flags.c_contiguous for a in bufs)
    assert type(l32) is np.float32 and l32 == pytest.approx(l64, rel=1e-5)
    for p in g64:
        assert g32[p].dtype == F32
        assert np.abs(g32[p] - g64[p]).max() <= 1e-4 * np.abs(g64[p]).max(), p


def test_a_small_input_weight_is_copied_into_fortran_order_every_call():
    """W1 of 64-32-10 (2048 entries) is read as W1 @ X.T from a Fortran-ordered copy made each
    call for batches of 48–160 (FORTRAN_WEIGHT); 784-256's first layer (200704 entries) is not. The copy is never
    cached: a weight changed in place between calls gives the new gradients."""
    small = sg.mlp([64, 32, 10], hidden="relu", output="softmax", loss="cross_entropy")
    big = sg.mlp([784, 256, 10], hidden="relu", output="softmax", loss="cross_entropy")
    for fused in (False, None):
        src = small.compile(fused=fused).source.split("# the fused loops")[0]
        assert "if 48 <= n <= 160:" in src and "p0 = np.asfortranarray(p0)" in src
        assert "p2 = np.asfortranarray" not in src
        assert "asfortranarray" not in big.compile(fused=fused).source
    small = sg.mlp([16, 8, 3], hidden="relu", output="softmax", loss="cross_entropy")
    rng = np.random.default_rng(2)
    X, Y = rng.normal(size=(50, 16)), rng.integers(0, 3, 50)
    p = small.init_params(3)
    k, ref = small.compile(scalar=False), small.compile(backend="python")
    for step in range(3):
        (l0, g0), (l1, g1) = k(p, X, Y), ref(p, X, Y)
        assert l0 == pytest.approx(l1, rel=1e-12)
        for q in g1:
            assert np.abs(g0[q] - g1[q]).max() <= 1e-12 * np.abs(g1[q]).max(), (step, q)
        p["W1"] *= 1.5  # in place: the next call must read the new values
        p["W1"][0, 0] = 0.7
    # a weight given in Fortran order (no copy then) and a strided view of one
    q = dict(p, W1=np.asfortranarray(p["W1"]))
    assert np.abs(k(q, X, Y)[1]["W1"] - ref(p, X, Y)[1]["W1"]).max() <= 1e-12 * \
        np.abs(ref(p, X, Y)[1]["W1"]).max()


def test_fused_loops_store_into_the_kernels_buffers():
    """The numba loops write their (d, n) results into the kernel's per-batch-size arrays, given
    as arguments, instead of allocating them each call; consecutive calls on other data (the
    buffers reused, the batch size changing) still give the numpy kernel's results."""
    pytest.importorskip("numba")
    net = sg.mlp([12, 9, 4], hidden="relu", output="softmax", loss="cross_entropy")
    fast, ref = net.compile(fused=True, scalar=False), net.compile(fused=False, scalar=False)
    assert fast.fused
    loops = fast.source.split("# the fused loops")[1].split("# _unfused")[0]
    assert "def _fz0(" in loops and "np.empty" not in loops
    assert "_fz0(_g0, p1, buf_" in fast.source
    p = net.init_params(4)
    rng = np.random.default_rng(5)
    for n in (30, 30, 7, 30):
        X, Y = rng.normal(size=(n, 12)), rng.integers(0, 4, n)
        (l0, g0), (l1, g1) = fast(p, X, Y), ref(p, X, Y)
        assert l0 == pytest.approx(l1, rel=1e-12)
        for q in g1:
            assert np.abs(g0[q] - g1[q]).max() <= 1e-12 * np.abs(g1[q]).max(), (n, q)
        Y1 = np.eye(4)[Y]
        assert fast(p, X, Y1)[0] == pytest.approx(ref(p, X, Y1)[0], rel=1e-12)
