"""Issue 15 bench: a symgrad kernel's gradient step as a ratio to a hand-written numpy backprop of
the same net, medians of interleaved repeats, one BLAS thread: the kernel's fixed per-call cost
(argument checks, numpy calls around the GEMMs) for each legal target form.

Where it sits: outside the pipeline; it times ``net.compile()`` (compile). The reference is
checked against central differences and symgrad against it (1e-12 in float64) before timing.

Run: python bench/fastpath.py [--reps 400] [--rounds 5] [--repo PATH] [--only TEXT]
     [--base PATH]
Each case: `rounds` rounds, each timing symgrad and the hand-written step round-robin over `reps`
calls; the ratio of medians per round; the median ratio over rounds and its spread (min–max).
The process runs with malloc pinned as bench/bench.py's workers are (it re-executes itself with
the MALLOC_* settings), so neither contender pays page faults for its temporaries.
``--base PATH``: before/after. Each round runs this script once for the checkout at PATH and once
for ``--repo`` (order alternating), each a fresh process timing its symgrad against the same
hand-written step; the medians of the two checkouts' per-round ratios are printed side by side."""
import os
import sys

for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[v] = "1"  # (read when numpy loads, below)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import MALLOC  # noqa: E402  (bench.py's malloc pinning)

if any(os.environ.get(k) != v for k, v in MALLOC.items()):  # (read when the process starts)
    os.execve(sys.executable, [sys.executable] + sys.argv, {**os.environ, **MALLOC})
import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--reps", type=int, default=400)
ap.add_argument("--rounds", type=int, default=5)
ap.add_argument("--repo", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
ap.add_argument("--only", default="", help="run the cases whose name contains this text")
ap.add_argument("--base", default="", help="a checkout to compare with, round by round")
ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # (--base's workers)
args = ap.parse_args()
sys.path.insert(0, args.repo)
for m in [m for m in sys.modules if m == "symgrad" or m.startswith("symgrad.")]:
    del sys.modules[m]  # (bench.py imported its own checkout's)
import symgrad as sg  # noqa: E402

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
    ("784-256-128-10 b256 mse f64", [784, 256, 128, 10], "mse", 256, "float64", "dense"),
    ("784-256x7-10 b256 CE labels f64", [784] + [256] * 7 + [10], "cross_entropy", 256, "float64",
     "labels"),
    ("784-256x7-10 b256 CE onehot f64", [784] + [256] * 7 + [10], "cross_entropy", 256, "float64",
     "onehot"),
    # bench.py's float32 large-batch rows (1.04–1.18 of the hand step on a quiet machine)
    ("64-64x3-10 b2048 CE labels f32", [64] + [64] * 3 + [10], "cross_entropy", 2048, "float32",
     "labels"),
    ("64-64x7-10 b8192 CE labels f32", [64] + [64] * 7 + [10], "cross_entropy", 8192, "float32",
     "labels"),
]
net_sizes = {}


def compare():
    """--base: a fresh process per checkout and round, alternating; ratios side by side."""
    me = os.path.abspath(__file__)
    repos = {"base": os.path.abspath(args.base), "this": os.path.abspath(args.repo)}
    got = {r: {} for r in repos}
    print(f"base {repos['base']}, this {repos['this']}; {args.rounds} rounds of "
          f"{args.reps} reps each, load {os.getloadavg()[0]:.2f} at the start", flush=True)
    for rnd in range(args.rounds):
        order = list(repos) if rnd % 2 == 0 else list(repos)[::-1]
        for r in order:
            out = subprocess.run([sys.executable, me, "--repo", repos[r], "--rounds", "1", "--reps",
                                  str(args.reps), "--only", args.only, "--json"],
                                 capture_output=True, text=True, check=True).stdout
            for row in map(json.loads, out.splitlines()):
                got[r].setdefault(row["name"], []).append(row["ratio"])
    print(f"load {os.getloadavg()[0]:.2f} at the end")
    for name in got["this"]:
        b, t = got["base"][name], got["this"][name]
        print(f"{name:38s} base {statistics.median(b):5.3f} ({min(b):.3f}–{max(b):.3f})  this "
              f"{statistics.median(t):5.3f} ({min(t):.3f}–{max(t):.3f})", flush=True)


def main():
    if args.base:
        return compare()
    if not args.json:
        print(f"symgrad from {sg.__file__}; numpy {np.__version__}; reps {args.reps} × rounds "
              f"{args.rounds}; load {os.getloadavg()[0]:.2f}")
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
        work = n * sum(a * b for a, b in zip(sizes, sizes[1:]))  # (multiply-adds a GEMM pass)
        reps = args.reps if work < 2e6 else max(30, int(args.reps * 2e6 / work / 2))
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
        if args.json:
            print(json.dumps({"name": name, "ratio": statistics.median(ratios)}), flush=True)
            continue
        print(f"{name:38s} ratio {statistics.median(ratios):5.3f} (rounds {min(ratios):.3f}–"
              f"{max(ratios):.3f})  symgrad {statistics.median(abs_sg) * 1e6:8.1f} µs  hand "
              f"{statistics.median(abs_hand) * 1e6:8.1f} µs", flush=True)


main()
