"""Issue 15 bench: a symgrad kernel's gradient step as a ratio to a hand-written numpy backprop of
the same net, medians of interleaved repeats, one BLAS thread: the kernel's fixed per-call cost
(argument checks, numpy calls around the GEMMs) for each legal target form.

Where it sits: outside the pipeline; it times ``net.compile()`` (compile). The reference is
checked against central differences and symgrad against it (1e-12 in float64) before timing.

Run: python bench/fastpath.py [--reps 400] [--rounds 5] [--repo PATH]
Each case: `rounds` rounds, each timing symgrad and the hand-written step round-robin over `reps`
calls; the ratio of medians per round; the median ratio over rounds and its spread (min–max)."""
import os

for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[v] = "1"
import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--reps", type=int, default=400)
ap.add_argument("--rounds", type=int, default=5)
ap.add_argument("--repo", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
ap.add_argument("--only", default="")
args = ap.parse_args()
sys.path.insert(0, args.repo)
import symgrad as sg  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import hand_numpy  # noqa: E402  (the same reference as bench/bench.py)


def hand(sizes, loss, onehot=False):
    """The backprop a person writes: bench.py's hand_numpy (relu hidden layers, identity+mse or
    softmax+CE output; Y integer labels or one-hot rows, told apart by Y.ndim)."""
    return hand_numpy(sizes, loss)


def fd_check(net, p, X, Y, loss, onehot):
    """The hand-written reference against central differences (f64), once per net shape."""
    h = hand(net_sizes[id(net)], loss, onehot)
    _, g = h(p, X, Y)
    rng = np.random.default_rng(1)
    for name in p:
        for _ in range(3):
            idx = tuple(rng.integers(0, s) for s in p[name].shape)
            q = {k: v.copy() for k, v in p.items()}
            q[name][idx] += 1e-6
            up = h(q, X, Y)[0]
            q[name][idx] -= 2e-6
            dn = h(q, X, Y)[0]
            fd = (up - dn) / 2e-6
            assert abs(fd - g[name][idx]) < 1e-6 * (1 + abs(fd)), (name, fd, g[name][idx])


CASES = [  # name, sizes, loss, batch, dtype, targets
    ("2-2-1 b4 mse", [2, 2, 1], "mse", 4, "float64", "dense"),
    ("64-32-10 b128 CE onehot f64", [64, 32, 10], "cross_entropy", 128, "float64", "onehot"),
    ("64-32-10 b128 CE labels f64", [64, 32, 10], "cross_entropy", 128, "float64", "labels"),
    ("64-32-10 b128 CE onehot f32", [64, 32, 10], "cross_entropy", 128, "float32", "onehot"),
    ("64-32-10 b128 CE labels f32", [64, 32, 10], "cross_entropy", 128, "float32", "labels"),
    ("64-32-10 b1 CE labels f64", [64, 32, 10], "cross_entropy", 1, "float64", "labels"),
    ("64-32-10 b32 CE labels f64", [64, 32, 10], "cross_entropy", 32, "float64", "labels"),
    ("64-32-10 b1 CE onehot f64", [64, 32, 10], "cross_entropy", 1, "float64", "onehot"),
    ("64-32-10 b32 CE onehot f64", [64, 32, 10], "cross_entropy", 32, "float64", "onehot"),
    ("784-256-128-10 b256 CE labels f64", [784, 256, 128, 10], "cross_entropy", 256, "float64", "labels"),
    ("784-256-128-10 b256 CE onehot f64", [784, 256, 128, 10], "cross_entropy", 256, "float64", "onehot"),
]
net_sizes = {}


def main():
    print(f"symgrad from {sg.__file__}; numpy {np.__version__}; reps {args.reps} × rounds {args.rounds}")
    for name, sizes, loss, n, dtype, targets in CASES:
        if args.only and args.only not in name:
            continue
        output = "softmax" if loss == "cross_entropy" else "identity"
        net = sg.mlp(sizes, hidden="relu", output=output, loss=loss)
        net_sizes[id(net)] = sizes
        k = net.compile()
        rng = np.random.default_rng(0)
        p = net.init_params(seed=0, dtype=dtype)
        X = rng.standard_normal((n, sizes[0])).astype(dtype)
        if loss == "cross_entropy":
            Y = rng.integers(0, sizes[-1], n)
            if targets == "onehot":
                Y = np.eye(sizes[-1], dtype=dtype)[Y]
        else:
            Y = rng.standard_normal((n, sizes[-1])).astype(dtype)
        h = hand(sizes, loss, targets == "onehot")
        # correctness: same loss and gradients (f64: to 1e-12 relative to the largest entry)
        l0, g0 = h(p, X, Y)
        l1, g1 = k(p, X, Y)
        tol = 1e-12 if dtype == "float64" else 1e-5
        assert abs(l0 - l1) <= tol * max(1, abs(l0)), (name, l0, l1)
        for q in g0:
            err = np.abs(g0[q] - g1[q]).max() / max(1e-300, np.abs(g0[q]).max())
            assert err <= tol, (name, q, err)
            assert g1[q].dtype == np.dtype(dtype), (name, q, g1[q].dtype)
        if dtype == "float64" and n >= 4:
            fd_check(net, p, X, Y, loss, targets == "onehot")
        calls = {"sg": lambda: k(p, X, Y), "hand": lambda: h(p, X, Y)}
        reps = args.reps if sizes[0] < 100 else max(50, args.reps // 8)
        ratios, abs_sg, abs_hand = [], [], []
        for _ in range(args.rounds):
            for _ in range(20):
                for f in calls.values():
                    f()
            times = {c: [] for c in calls}
            names = list(calls)
            for r in range(reps):
                for c in names[r % 2:] + names[:r % 2]:
                    t = time.perf_counter()
                    calls[c]()
                    times[c].append(time.perf_counter() - t)
            sgm, hm = statistics.median(times["sg"]), statistics.median(times["hand"])
            ratios.append(sgm / hm)
            abs_sg.append(sgm)
            abs_hand.append(hm)
        print(f"{name:38s} ratio {statistics.median(ratios):5.3f} (rounds {min(ratios):.3f}–"
              f"{max(ratios):.3f})  symgrad {statistics.median(abs_sg) * 1e6:8.1f} µs  hand "
              f"{statistics.median(abs_hand) * 1e6:8.1f} µs", flush=True)


main()
