"""Issue 14 trial: the per-call cost of checking integer class labels' range on the JAX and torch
kernels' fast paths (a known signature), as median µs per call over interleaved rounds, for a tiny
net (fixed cost dominates) and a 256-512-10 net on 1024 rows.

Run: python bench/labels.py [--repo PATH] [--reps 300] [--rounds 5]
Compare a checkout without the check by pointing --repo at it."""
import argparse
import os
import statistics
import sys
import time

import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("--repo", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
ap.add_argument("--reps", type=int, default=300)
ap.add_argument("--rounds", type=int, default=5)
args = ap.parse_args()
sys.path.insert(0, args.repo)
import jax  # noqa: E402
import torch  # noqa: E402

import symgrad as sg  # noqa: E402

jax.config.update("jax_enable_x64", True)
torch.set_num_threads(1)
rng = np.random.default_rng(0)
cases = []
for sizes, n in (([4, 3, 2], 5), ([256, 512, 10], 1024)):
    net = sg.mlp(sizes, hidden="relu", output="softmax", loss="cross_entropy")
    p = net.init_params(seed=0, dtype="float32")
    X = rng.normal(size=(n, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], n)
    kj, kt = net.compile(backend="jax"), net.compile(backend="torch")
    jp = {k: jax.numpy.asarray(v) for k, v in p.items()}
    jX, jy = jax.numpy.asarray(X), jax.numpy.asarray(y)
    tp = {k: torch.as_tensor(v) for k, v in p.items()}
    tX, ty = torch.as_tensor(X), torch.as_tensor(y)
    cases.append((f"jax   {sizes} n={n}", lambda kj=kj, a=(jp, jX, jy): jax.block_until_ready(kj(*a))))
    cases.append((f"torch {sizes} n={n}", lambda kt=kt, a=(tp, tX, ty): kt(*a)))
for name, f in cases:
    f(), f()
    meds = []
    for _ in range(args.rounds):
        ts = []
        for _ in range(args.reps):
            t = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t)
        meds.append(statistics.median(ts))
    print(f"{name:28s} {statistics.median(meds) * 1e6:9.1f} µs/call "
          f"(rounds {min(meds) * 1e6:.1f}–{max(meds) * 1e6:.1f})")
