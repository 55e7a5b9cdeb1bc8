"""Benchmark: one full gradient evaluation (loss + all gradients) per call, symgrad's compiled kernel
against a hand-written numpy backprop and against the same GEMMs alone (the floor), over a grid of
depth (2–16), batch size (1–8192), dtype (float32, float64) and labels (integer, one-hot), with 1
BLAS thread and with the libraries' default threads; then PyTorch eager and JAX jit(value_and_grad)
beside symgrad's torch and jax backends, and a transformer block (issue 11) against torch eager.

Honesty (issue 15):
- every contender runs in a worker process started with malloc pinned (MALLOC_ARENA_MAX=1,
  MALLOC_MMAP_THRESHOLD_=32 MiB, MALLOC_TRIM_THRESHOLD_=1 GiB, MALLOC_TOP_PAD_=64 MiB), so a
  freed array's pages stay in the heap for every contender alike: before, each call of the
  hand-written step took ~1000 minor page faults (numpy's arrays mmapped and unmapped per call) that
  symgrad's preallocated buffers did not, flattering symgrad. The minor faults per call are
  reported; ``--no-pin`` runs without the pinning, to see what it changes;
- the thread count is set by environment variables before the worker starts (OpenBLAS, OpenMP,
  MKL, XLA), one table per setting;
- the load average is read at the start and the end of each worker and a warning printed when it
  is above 0.5 per core;
- contenders are timed round robin (the order rotating each round), each round a batch of calls
  of ≥ 5 ms; a figure is the median over the rounds of the per-round ratio to the hand-written
  numpy, with the min–max over the rounds beside it.

Run: ``python bench/bench.py [--quick] [--block-only] [--no-pin]``; results go to BENCHMARKS.md by
hand. ``--quick`` (a smoke test, < 60 s): a small grid, no frameworks' backends, no block.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
import symgrad as sg  # noqa: E402

MALLOC = {"MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_THRESHOLD_": str(32 << 20),
          "MALLOC_TRIM_THRESHOLD_": str(1 << 30), "MALLOC_TOP_PAD_": str(64 << 20)}
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
ONE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
WIDTH = dict(d_in=64, hidden=64, d_out=10)  # digits-sized: depth 16 at batch 8192 is ~3 GFLOP
FULL = dict(depths=(2, 4, 8, 16), batches=(1, 16, 256, 2048, 8192),
            dtypes=("float64", "float32"), labels=("int", "onehot"), budget=0.4, rounds=(5, 25))
QUICK = dict(depths=(2, 4), batches=(1, 256), dtypes=("float64", "float32"),
             labels=("int", "onehot"), budget=0.05, rounds=(3, 5))
FRAMEWORK_GRID = dict(depths=(2, 16), batches=(16, 256, 8192), labels=("int",))
BATCH_MS = 0.005  # one round's batch of calls of a contender lasts at least this long


def sizes_of(depth):
    return [WIDTH["d_in"]] + [WIDTH["hidden"]] * (depth - 1) + [WIDTH["d_out"]]


def worker_env(threads: str, pin: bool) -> dict:
    """The environment of a worker: the thread variables set (or unset for the default), malloc
    pinned (or our own MALLOC_* removed), this checkout first on the path."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS and k not in MALLOC
           and k != "XLA_FLAGS"}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    if threads == "1":
        env.update({k: "1" for k in THREAD_VARS}, XLA_FLAGS=ONE_THREAD_XLA)
    if pin:
        env.update(MALLOC)
    return env


def run_worker(args: list, threads: str, pin: bool, what: str):
    """python bench.py ARGS in a fresh process; its JSON answer, or None (said on stderr)."""
    r = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                       env=worker_env(threads, pin))
    if r.returncode != 0:
        last = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "failed"
        print(f"{what}, {threads} thread(s): {last}", file=sys.stderr)
        return None
    return json.loads(r.stdout.splitlines()[-1])


def load_per_core() -> float:
    return os.getloadavg()[0] / (os.cpu_count() or 1)


# -- timing ---------------------------------------------------------------------------------------
def minflt() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def rounds(calls: dict, budget: float, min_rounds: int, max_rounds: int, pause: float = 0.0):
    """Time ``calls`` (name → function) round robin. Warm-up first, 3 calls each in turn (the heap
    warmed alike); then each round times a batch of calls of each contender (≥ BATCH_MS, the order
    rotating), as many rounds as fit in ``budget`` seconds, within [min_rounds, max_rounds].
    ``pause``: seconds of sleep before each batch (a framework's spinning threads go idle).
    Returns {name: (seconds per call of each round, minor page faults per call)}."""
    names = list(calls)
    est = {}
    for k in names:  # warm-up, and an estimate of each call's time
        calls[k]()
    for _ in range(2):
        for k in names:
            t = time.perf_counter()
            calls[k]()
            est[k] = time.perf_counter() - t
    reps = {k: max(1, math.ceil(BATCH_MS / max(est[k], 1e-7))) for k in names}
    per_round = sum(reps[k] * est[k] + pause for k in names)
    n = max(min_rounds, min(max_rounds, int(budget / max(per_round, 1e-9))))
    times = {k: [] for k in names}
    faults = {k: 0 for k in names}
    for r in range(n):
        for k in names[r % len(names):] + names[:r % len(names)]:
            f, m = calls[k], reps[k]
            if pause:
                time.sleep(pause)
            f0 = minflt()
            t = time.perf_counter()
            for _ in range(m):
                f()
            times[k].append((time.perf_counter() - t) / m)
            faults[k] += minflt() - f0
    return {k: (times[k], faults[k] / (n * reps[k])) for k in names}


def ratio_stats(times: dict, name: str, base: str = "hand"):
    """(median, min, max) over the rounds of name's time ÷ base's in the same round."""
    rs = [a / b for a, b in zip(times[name][0], times[base][0])]
    return statistics.median(rs), min(rs), max(rs)


# -- the contenders -------------------------------------------------------------------------------
def hand_numpy(sizes, loss):
    """The backprop a person writes in numpy: a loop over layers, relu hidden units; Y integer
    labels or one-hot rows for cross_entropy."""
    L = len(sizes) - 1

    def kernel(p, X, Y):
        n = X.shape[0]
        Hs, Zs, H = [X], [], X
        for k in range(1, L + 1):
            Z = H @ p[f"W{k}"].T + p[f"b{k}"]
            Zs.append(Z)
            H = np.maximum(Z, 0) if k < L else Z
            Hs.append(H)
        Z = Zs[-1]
        if loss == "cross_entropy":
            Z = Z - Z.max(axis=1, keepdims=True)
            E = np.exp(Z)
            s = E.sum(axis=1, keepdims=True)
            G = E / s
            if Y.ndim == 1:
                rows = np.arange(n)
                value = np.mean(np.log(s[:, 0]) - Z[rows, Y])
                G[rows, Y] -= 1
            else:
                value = np.mean(np.log(s[:, 0]) - np.sum(Y * Z, axis=1))
                G -= Y
            G /= n
        elif loss == "bce":
            value = np.mean(np.sum(np.logaddexp(0, Z) - Y * Z, axis=1))
            G = (1 / (1 + np.exp(-Z)) - Y) / n
        else:
            D = Z - Y
            value = 0.5 * np.sum(D * D) / n
            G = D / n
        grads = {}
        for k in range(L, 0, -1):
            grads[f"W{k}"] = G.T @ Hs[k - 1]
            grads[f"b{k}"] = G.sum(axis=0)
            if k > 1:
                G = (G @ p[f"W{k}"]) * (Zs[k - 2] > 0)
        return value, grads
    return kernel


def gemm_floor(sizes, n, dtype):
    """The hand-written step's GEMMs alone, into preallocated arrays: per layer k, H W_kᵀ forward,
    Gᵀ H (∇W_k) and, below the first layer, G W_k backward: what no implementation can skip."""
    rng = np.random.default_rng(1)
    W = [rng.standard_normal((b, a)).astype(dtype) for a, b in zip(sizes, sizes[1:])]
    H = [rng.standard_normal((n, a)).astype(dtype) for a in sizes[:-1]]
    G = [rng.standard_normal((n, b)).astype(dtype) for b in sizes[1:]]
    Z = [np.empty((n, b), dtype) for b in sizes[1:]]
    dW = [np.empty_like(w) for w in W]
    dH = [np.empty((n, a), dtype) for a in sizes[:-1]]

    def call():
        for k in range(len(W)):
            np.matmul(H[k], W[k].T, out=Z[k])
        for k in range(len(W) - 1, -1, -1):
            np.matmul(G[k].T, H[k], out=dW[k])
            if k:
                np.matmul(G[k], W[k], out=dH[k])
    return call


def data(sizes, loss, n, dtype, labels="int", seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, sizes[0])).astype(dtype)
    if loss == "cross_entropy":
        Y = rng.integers(0, sizes[-1], n)
        if labels == "onehot":
            Y = np.eye(sizes[-1], dtype=dtype)[Y]
    elif loss == "bce":
        Y = rng.integers(0, 2, (n, sizes[-1])).astype(dtype)
    else:
        Y = rng.standard_normal((n, sizes[-1])).astype(dtype)
    return X, Y


def check_same(name, l0, g0, l1, g1, dtype):
    tol = 1e-4 if dtype == "float32" else 1e-9
    err = max(np.abs(np.asarray(g0[p], np.float64) - np.asarray(g1[p], np.float64)).max()
              / (np.abs(np.asarray(g0[p], np.float64)).max() + 1e-30) for p in g0)
    assert abs(float(l0) - float(l1)) <= tol * abs(float(l0)) and err < tol, (name, l0, l1, err)


# -- the grid: hand numpy, symgrad, the GEMM floor (a worker process) -----------------------------
def grid_worker(grid: dict) -> dict:
    """Every cell of ``grid``, in this process (started with the threads and malloc settings)."""
    out = {"load": [load_per_core()], "cells": []}
    for depth in grid["depths"]:
        sizes = sizes_of(depth)
        net = sg.mlp(sizes, hidden="relu", output="softmax", loss="cross_entropy")
        kernel = net.compile()
        hand = hand_numpy(sizes, "cross_entropy")
        for dtype in grid["dtypes"]:
            params = net.init_params(seed=0, dtype=dtype)
            for n in grid["batches"]:
                floor = gemm_floor(sizes, n, dtype)
                for labels in grid["labels"]:
                    X, Y = data(sizes, "cross_entropy", n, dtype, labels)
                    check_same((depth, n, dtype, labels), *hand(params, X, Y),
                               *kernel(params, X, Y), dtype)
                    t = rounds({"hand": lambda: hand(params, X, Y),
                                "symgrad": lambda: kernel(params, X, Y), "floor": floor},
                               grid["budget"], *grid["rounds"])
                    out["cells"].append({
                        "depth": depth, "batch": n, "dtype": dtype, "labels": labels,
                        "hand": statistics.median(t["hand"][0]),
                        "symgrad": ratio_stats(t, "symgrad"), "floor": ratio_stats(t, "floor"),
                        "faults": {k: v[1] for k, v in t.items()}, "rounds": len(t["hand"][0])})
    out["load"].append(load_per_core())
    return out


# -- PyTorch and JAX (a worker process each) ------------------------------------------------------
def torch_eager(sizes, loss, params, X, Y):
    try:
        import torch
    except ImportError:
        return None
    F = torch.nn.functional
    ps = [torch.tensor(v, requires_grad=True) for v in params.values()]
    Xt = torch.tensor(X)
    Yt = torch.tensor(Y)
    L = len(sizes) - 1

    def call():
        H = Xt
        for k in range(L):
            H = F.linear(H, ps[2 * k], ps[2 * k + 1])
            if k < L - 1:
                H = torch.relu(H)
        if loss == "cross_entropy":  # (integer labels, or one-hot rows as class probabilities)
            value = F.cross_entropy(H, Yt)
        elif loss == "bce":
            value = F.binary_cross_entropy_with_logits(H, Yt, reduction="sum") / Xt.shape[0]
        else:
            value = 0.5 * ((H - Yt) ** 2).sum() / Xt.shape[0]
        return value, dict(zip(params, torch.autograd.grad(value, ps)))
    return call


def jax_jit(sizes, loss, params, X, Y):
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    L = len(sizes) - 1

    def f(p, X, Y):
        H = X
        for k in range(1, L + 1):
            H = H @ p[f"W{k}"].T + p[f"b{k}"]
            if k < L:
                H = jax.nn.relu(H)
        if loss == "cross_entropy":
            if Y.ndim == 1:
                return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(H), Y[:, None], 1))
            return -jnp.mean(jnp.sum(Y * jax.nn.log_softmax(H), axis=1))
        if loss == "bce":
            return jnp.sum(jnp.logaddexp(0, H) - Y * H) / X.shape[0]
        return 0.5 * jnp.sum((H - Y) ** 2) / X.shape[0]
    g = jax.jit(jax.value_and_grad(f))
    jp = {k: jnp.asarray(v) for k, v in params.items()}
    jX, jY = jnp.asarray(X), jnp.asarray(Y)

    def call():
        v, gr = g(jp, jX, jY)
        jax.block_until_ready(gr)
        return v, gr
    return call


def symgrad_backend(label, net, params, X, Y):
    """One call of ``net.compile(backend=label)`` on the framework's own arrays (made once, as a
    training loop holds them)."""
    kernel = net.compile(backend=label)
    if label == "torch":
        import torch
        ps = {k: torch.tensor(v) for k, v in params.items()}
        Xa, Ya = torch.tensor(X), torch.tensor(Y)

        def call():
            return kernel(ps, Xa, Ya)
    else:
        import jax
        import jax.numpy as jnp
        ps = {k: jnp.asarray(v) for k, v in params.items()}
        Xa, Ya = jnp.asarray(X), jnp.asarray(Y)

        def call():
            v, g = kernel(ps, Xa, Ya)
            jax.block_until_ready(g)
            return v, g
    return call


def framework_worker(label: str, grid: dict, threads: str) -> dict:
    """The framework's autodiff and symgrad's backend for it, round robin with the hand-written
    numpy in this process, each checked against the hand-written step first. With the default
    threads, a 0.2 s pause before each batch: torch's OpenMP threads and OpenBLAS's spin after a
    call, and on 2 cores the other's next call paid for it."""
    if label == "torch":
        try:
            import torch
        except ImportError:
            return {"missing": True}
        if threads == "1":
            torch.set_num_threads(1)
    out = {"load": [load_per_core()], "cells": []}
    for depth in grid["depths"]:
        sizes = sizes_of(depth)
        net = sg.mlp(sizes, hidden="relu", output="softmax", loss="cross_entropy")
        hand = hand_numpy(sizes, "cross_entropy")
        for dtype in grid["dtypes"]:
            params = net.init_params(seed=0, dtype=dtype)
            for n in grid["batches"]:
                for labels in grid["labels"]:
                    X, Y = data(sizes, "cross_entropy", n, dtype, labels)
                    own = {"torch": torch_eager, "jax": jax_jit}[label](
                        sizes, "cross_entropy", params, X, Y)
                    if own is None:
                        return {"missing": True}
                    mine = symgrad_backend(label, net, params, X, Y)
                    l0, g0 = hand(params, X, Y)
                    for f in (own, mine):
                        l1, g1 = f()
                        l1 = l1.detach() if hasattr(l1, "detach") else l1
                        check_same((label, depth, n, dtype), l0, g0, l1,
                                   {p: np.asarray(g1[p]) for p in g0}, dtype)
                    t = rounds({"hand": lambda: hand(params, X, Y), "own": own, "symgrad": mine},
                               grid["budget"], *grid["rounds"],
                               pause=0.2 if threads == "default" else 0.0)
                    out["cells"].append({
                        "depth": depth, "batch": n, "dtype": dtype, "labels": labels,
                        "hand": statistics.median(t["hand"][0]), "own": ratio_stats(t, "own"),
                        "symgrad": ratio_stats(t, "symgrad"),
                        "vs": ratio_stats(t, "symgrad", base="own")})
    out["load"].append(load_per_core())
    return out


# -- the tables -----------------------------------------------------------------------------------
def fmt_ratio(r) -> str:
    return f"{r[0]:.2f} ({r[1]:.2f}–{r[2]:.2f})"


def fmt_time(s: float) -> str:
    return f"{s * 1e6:.0f} µs" if s < 1e-3 else f"{s * 1e3:.2f} ms"


def warn_load(what: str, loads) -> None:
    if max(loads) > 0.5:
        print(f"\n**Warning**: the load average reached {max(loads):.2f} per core during {what} "
              "(above 0.5): another busy process slows multi-threaded GEMMs many times over; "
              "these figures are not final.")


def print_grid(threads: str, res: dict) -> None:
    loads = res["load"]
    print(f"\n### {'1 BLAS thread' if threads == '1' else 'default threads'}: symgrad ÷ "
          f"hand-written numpy (load {loads[0]:.2f}–{loads[1]:.2f} per core)")
    warn_load(f"the {threads}-thread grid", loads)
    for dtype in dict.fromkeys(c["dtype"] for c in res["cells"]):
        print(f"\n{dtype}, {WIDTH['d_in']}-{WIDTH['hidden']}×(depth−1)-{WIDTH['d_out']} relu, "
              "softmax cross-entropy. Ratios: median (min–max) over the rounds; lower is faster. "
              "GEMM floor: the same GEMMs alone (time, and ÷ hand). Faults: minor page faults "
              "per call, hand / symgrad.\n")
        print("| depth | batch | hand, int labels | symgrad ÷ hand, int | symgrad ÷ hand, "
              "one-hot | GEMM floor | faults/call |")
        print("|---:|---:|---:|---|---|---|---|")
        cells = [c for c in res["cells"] if c["dtype"] == dtype]
        for depth, n in dict.fromkeys((c["depth"], c["batch"]) for c in cells):
            by = {c["labels"]: c for c in cells if (c["depth"], c["batch"]) == (depth, n)}
            c = by.get("int") or next(iter(by.values()))
            floor = f"{fmt_time(c['hand'] * c['floor'][0])} ({c['floor'][0]:.2f})"
            faults = " · ".join(f"{b['faults']['hand']:.0f} / {b['faults']['symgrad']:.0f}"
                                for b in by.values())
            print(f"| {depth} | {n} | {fmt_time(c['hand'])} | "
                  f"{fmt_ratio(by['int']['symgrad']) if 'int' in by else '–'} | "
                  f"{fmt_ratio(by['onehot']['symgrad']) if 'onehot' in by else '–'} | "
                  f"{floor} | {faults} |")


def print_frameworks(label: str, threads: str, res: dict) -> None:
    name = {"torch": "PyTorch eager", "jax": "JAX jit(value_and_grad)"}[label]
    loads = res["load"]
    print(f"\n### {name} and symgrad's {label} backend, "
          f"{'1 thread' if threads == '1' else 'default threads'} (load {loads[0]:.2f}–"
          f"{loads[1]:.2f} per core)")
    warn_load(f"the {label} run", loads)
    print(f"\nRatios to the hand-written numpy in the same process, median (min–max) over the "
          f"rounds; the last column symgrad's {label} backend ÷ {name} (target ≤ 1).\n")
    print(f"| depth | batch | dtype | labels | hand | {name} ÷ hand | symgrad {label} ÷ hand | "
          f"symgrad {label} ÷ {label} |")
    print("|---:|---:|---|---|---:|---|---|---|")
    for c in res["cells"]:
        print(f"| {c['depth']} | {c['batch']} | {c['dtype']} | {c['labels']} | {fmt_time(c['hand'])} | "
              f"{fmt_ratio(c['own'])} | {fmt_ratio(c['symgrad'])} | {fmt_ratio(c['vs'])} |")


COMPILE_ONE = """
import sys, time
t0 = time.perf_counter()
import numpy as np
import symgrad as sg
sg.mlp  # the facade loads on first use (issue 15): the import's cost is this line's too
t1 = time.perf_counter()
net = sg.mlp({sizes}, hidden="relu", output="softmax", loss="cross_entropy")
kernel = net.compile()
t2 = time.perf_counter()
params = net.init_params(0)
X, Y = np.random.default_rng(0).standard_normal((1, {sizes}[0])), np.zeros(1, np.intp)
t3 = time.perf_counter()
kernel(params, X, Y)  # batch 1, float64: the fused path's loops compile (or load) here
print(t1 - t0, t2 - t1, time.perf_counter() - t3, int(getattr(kernel, "fused", False)))
"""
COMPILE_DEPTHS = (2, 4, 8, 16, 32, 64)
COMPILE_MODES = ("numpy", "fused, cold cache", "fused, warm cache")
COMPILE_REPS = 5  # fresh processes per net and mode: the median is reported


def compile_once(sizes, mode, cache, repo=ROOT):
    """One fresh interpreter: (import, derive + compile, first call at batch 1, fused?) in
    seconds. ``mode``: "numpy" (SYMGRAD_FUSED=0) or a fused one, numba's loops cached under
    ``cache`` (a new directory: cold; one filled by an earlier run: warm). ``repo``: the symgrad
    checkout measured (another's, for before/after in one run)."""
    env = {**os.environ, "PYTHONPATH": repo, "SYMGRAD_FUSED": "0" if mode == "numpy" else "1",
           "SYMGRAD_CACHE_DIR": cache}
    r = subprocess.run([sys.executable, "-c", COMPILE_ONE.format(sizes=sizes)], cwd=repo,
                       capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"compiling {sizes} ({mode}) failed: "
                         f"{r.stderr.strip().splitlines()[-1]}")
    imp, t, first, fused = r.stdout.split()
    return float(imp), float(t), float(first), fused == "1"


def derive_compile_times(reps=COMPILE_REPS, depths=COMPILE_DEPTHS, repo=ROOT):
    """Derivation + compile of each network in fresh interpreters (nothing cached in-process,
    SymPy's caches cold), after ``import symgrad`` and its first name, then its first call (batch
    1): numba off (SYMGRAD_FUSED=0), on with a cold cache (a new cache directory each process) and
    with a warm one (the directory a first process filled). Each the median of ``reps`` processes,
    the modes interleaved so that the machine's load falls on each alike; the load average
    beside."""
    import tempfile
    nets = [(f"depth {d} (784-{'128-' * (d - 1)}10)" if d <= 4 else
             f"depth {d} (784-128×{d - 1}-10)", [784] + [128] * (d - 1) + [10]) for d in depths]
    nets.append(("784-256-128-10", [784, 256, 128, 10]))
    out = []
    with tempfile.TemporaryDirectory(prefix="symgrad-bench-") as tmp:
        for k, (name, sizes) in enumerate(nets):
            warm = os.path.join(tmp, f"warm{k}")
            compile_once(sizes, "fused, cold cache", warm, repo)  # fills the warm cache
            got, loads = {m: [] for m in COMPILE_MODES}, [os.getloadavg()[0]]
            for r in range(reps):
                for mode in COMPILE_MODES:
                    cache = warm if mode.endswith("warm cache") else os.path.join(tmp, f"c{k}_{r}")
                    got[mode].append(compile_once(sizes, mode, cache, repo))
            loads.append(os.getloadavg()[0])
            med = {m: tuple(statistics.median(x[i] for x in v) for i in range(3)) + (v[0][3],)
                   for m, v in got.items()}
            out.append((name, med, max(loads)))
            print(name, med, file=sys.stderr)
    return out


def print_compile_times(rows, reps=COMPILE_REPS):
    print(f"\nDerive + compile (`net.compile()`, fresh process, after `import symgrad` and its "
          f"first name) and the first call (batch 1, float64), each the median of {reps} "
          "processes; numba off (SYMGRAD_FUSED=0), on with a cold cache (a new "
          "SYMGRAD_CACHE_DIR), on with a warm one. Seconds.")
    print("\n| net | " + " | ".join(f"{m}: compile | first call" for m in COMPILE_MODES)
          + " | import | load avg |")
    print("|---|" + "---|---|" * len(COMPILE_MODES) + "---|---|")
    for name, med, load in rows:
        cells = [f"{med[m][1]:.3f} | {med[m][2]:.3f}"
                 + ("" if med[m][3] or m == "numpy" else " (no loops)") for m in COMPILE_MODES]
        print(f"| {name} | " + " | ".join(cells) + f" | {med['numpy'][0]:.2f} | {load:.1f} |")


# -- a transformer block (issue 11) ----------------------------------------------------------------
BLOCK = dict(T=64, d=128, heads=4, n=32)  # the size: T positions of d features, n sequences
BLOCK_REPS = 30  # steps per contender and dtype (a step is 30-150 ms)


def transformer_block(T, d, heads):
    """A pre-norm transformer block from symgrad's ops, h + MHA(LN(h)), then + W2 relu(W1 LN(·) +
    b1) + b2 (4·d hidden units), with the per-position mse loss 1/(2nT) Σ‖ŷ_t − y_t‖² against a
    target sequence; returns the network and its layers' names (for copying torch's weights)."""
    net = sg.Network()
    h = net.input("x", shape=(T, d))
    ln1 = net.layer_norm(h, name="ln1")
    att = net.self_attention(ln1, heads, name="att")
    r1 = net.add(h, att, name="r1")
    ln2 = net.layer_norm(r1, name="ln2")
    fc1 = net.dense(ln2, 4 * d, name="fc1")
    fc2 = net.dense(net.act(fc1, "relu", name="relu"), d, name="fc2")
    net.set_loss(net.add(r1, fc2, name="out"), "mse")
    return net, dict(ln1=ln1, att=att, ln2=ln2, fc1=fc1, fc2=fc2)


def torch_block(net, layers, dtype, T, d, heads, n):
    """The same block in torch eager (nn.LayerNorm, nn.MultiheadAttention, nn.Linear), its weights
    copied into symgrad's params; returns (params, X, Y, step, torch's loss, torch's gradients by
    symgrad's names), step() one forward, loss and backward (torch.autograd.grad of every
    parameter)."""
    import torch
    nn = torch.nn
    torch.manual_seed(0)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.att = nn.MultiheadAttention(d, heads, batch_first=True)
            self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

        def forward(self, h):
            a = self.ln1(h)
            h = h + self.att(a, a, a, need_weights=False)[0]
            return h + self.fc2(torch.relu(self.fc1(self.ln2(h))))

    model = Block().to(getattr(torch, dtype))
    ps = list(model.parameters())

    def by_name(ts):  # symgrad's parameter names → ts (tensors in model.parameters()' order)
        t = dict(zip((id(p) for p in ps), ts))
        f = lambda p: t[id(p)].detach().numpy().copy()  # noqa: E731
        out = {}
        for key in ("ln1", "ln2", "fc1", "fc2"):
            mod = getattr(model, key)
            out.update(zip(net.nodes[layers[key]].params, (f(mod.weight), f(mod.bias))))
        a = model.att
        out.update(sg.from_torch_mha(net, layers["att"], f(a.in_proj_weight), f(a.in_proj_bias),
                                     f(a.out_proj.weight), f(a.out_proj.bias)))
        return out

    params = by_name(ps)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, T, d)).astype(dtype)
    Y = rng.standard_normal((n, T, d)).astype(dtype)
    Xt, Yt = torch.tensor(X), torch.tensor(Y)

    def step():
        loss = ((model(Xt) - Yt) ** 2).sum() / (2 * n * T)  # symgrad's mse over n·T positions
        return loss, torch.autograd.grad(loss, ps)
    loss, grads = step()
    return params, X, Y, step, loss.item(), by_name(grads)


def block_agreement(loss, grads, l0, g0):
    """The largest relative difference of symgrad's loss and gradients from torch's: each
    gradient's difference by its norm. The keys' biases get a zero gradient (softmax ignores a
    constant added to a row): both sides hold rounding noise there (~1e-10 of the largest gradient
    in float32), so their difference is taken by the largest gradient's norm."""
    scale = max(np.linalg.norm(g) for g in g0.values())
    worst = abs(loss - l0) / abs(l0)
    for p, g in g0.items():
        norm = np.linalg.norm(g)
        worst = max(worst, np.linalg.norm(grads[p] - g) / (norm if norm > 1e-6 * scale else scale))
    return float(worst)


def block_ratios(reps, dtypes, threads):
    """Run in a process of its own, BLAS and torch on ``threads`` threads ("1", or "default": the
    libraries' own choice). One full gradient step of the block, symgrad's kernel and torch eager,
    each dtype; first checks that both give the same loss and gradients (float64: 1e-9 relative,
    float32: 1e-4). With one thread the two are called round-robin, one call each in turn; with
    the default threads in blocks of 5 calls with a pause between (see block_timing)."""
    import torch
    if threads == "1":
        torch.set_num_threads(1)
    out = {"load": os.getloadavg()[0], "torch_threads": torch.get_num_threads()}
    for dtype in dtypes:
        net, layers = transformer_block(BLOCK["T"], BLOCK["d"], BLOCK["heads"])
        # fused=False: the batch (32 sequences) is above the fused kernel's limit (5), where it
        # runs the numpy kernel, this one, so the figure is the same without numba's compile
        kernel = net.compile(fused=False)
        params, X, Y, step, l0, g0 = torch_block(net, layers, dtype, **BLOCK)
        loss, grads = kernel(params, X, Y)
        err = block_agreement(loss, grads, l0, g0)
        assert err < (1e-9 if dtype == "float64" else 1e-4), (dtype, err)
        t = block_timing({"symgrad": lambda: kernel(params, X, Y), "torch": step}, reps,
                         per_call=threads == "1")
        out[dtype] = {"symgrad": t["symgrad"], "torch": t["torch"], "err": err}
    return out


def block_timing(calls, reps, per_call=True):
    """Median seconds per call of each contender, over ``reps`` calls each after 3 warm-up calls.
    ``per_call``: round-robin, one call each in turn (the order rotating). Else in blocks of 5
    calls, a 0.3 s pause after each block and the order rotating: torch's OpenMP threads and
    OpenBLAS's spin for a while after a call, and on 2 cores the other's next call would pay
    for it."""
    if per_call:
        return interleaved(calls, reps, warmup=3)
    names, times = list(calls), {k: [] for k in calls}
    for f in calls.values():
        for _ in range(3):
            f()
    for r in range(-(-reps // 5)):
        for k in names[r % len(names):] + names[:r % len(names)]:
            time.sleep(0.3)
            for _ in range(5):
                t = time.perf_counter()
                calls[k]()
                times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def block_rows(reps, dtypes, pin=True):
    """The block's rows, one process per thread setting (OpenBLAS reads its thread count when
    numpy is imported), malloc pinned as the grid's."""
    rows = []
    for threads in ("1", "default"):
        got = run_worker(["--block", threads, "--reps", str(reps), "--dtypes", ",".join(dtypes)],
                         threads, pin, "transformer block")
        if got is None:
            continue
        for dtype in dtypes:
            rows.append({"threads": threads, "dtype": dtype, "load": got["load"],
                         "torch_threads": got["torch_threads"], **got[dtype]})
            print(rows[-1], file=sys.stderr)
    return rows


BLOCK_COMPILE = """
import sys, time
t0 = time.perf_counter()
import symgrad as sg
sg.mlp  # the facade loads on first use (issue 15)
t1 = time.perf_counter()
sys.path.insert(0, {here!r})
from bench import transformer_block
t2 = time.perf_counter()
net, _ = transformer_block({T}, {d}, {heads})
net.compile()
print(t1 - t0, time.perf_counter() - t2)
"""


def block_compile_time():
    """Building the block, deriving its program and compiling its kernel, in a fresh interpreter
    (SymPy's caches cold), after ``import symgrad``; (import, derive + compile) in seconds."""
    r = subprocess.run([sys.executable, "-c", BLOCK_COMPILE.format(here=HERE, **BLOCK)], cwd=ROOT,
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ROOT})
    if r.returncode != 0:
        raise SystemExit("compiling the transformer block failed: "
                         f"{r.stderr.strip().splitlines()[-1]}")
    return tuple(map(float, r.stdout.split()))



def interleaved(calls: dict, reps, warmup=20):
    """Median seconds per call of each contender, one call each per round (the order rotating)."""
    names = list(calls)
    for _ in range(warmup):
        for f in calls.values():
            f()
    times = {k: [] for k in names}
    for r in range(reps):
        for k in names[r % len(names):] + names[:r % len(names)]:
            t = time.perf_counter()
            calls[k]()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="a smoke test (< 60 s): depths 2 and 4, batches 1 and 256, no "
                         "frameworks, no transformer block, no compile times")
    ap.add_argument("--no-pin", dest="pin", action="store_false",
                    help="workers without the MALLOC_* settings (to see what pinning changes)")
    ap.add_argument("--block-only", action="store_true",
                    help="only the transformer block's rows and its derive + compile time")
    ap.add_argument("--grid", help=argparse.SUPPRESS)  # internal: a grid worker (JSON grid)
    ap.add_argument("--framework", help=argparse.SUPPRESS)  # internal: torch|jax worker
    ap.add_argument("--threads", default="default", help=argparse.SUPPRESS)
    ap.add_argument("--block", help=argparse.SUPPRESS)  # internal: the block's times, 1|default
    ap.add_argument("--reps", type=int, default=BLOCK_REPS, help=argparse.SUPPRESS)
    ap.add_argument("--dtypes", default="float64,float32", help=argparse.SUPPRESS)
    ap.add_argument("--compile-only", action="store_true",
                    help="only the derive + compile times (depths 2-64, numba off and on)")
    ap.add_argument("--repo", default=ROOT,
                    help="the symgrad checkout whose derive + compile times are taken (default: "
                         "this one; another for before/after in one run)")
    a = ap.parse_args()
    if a.compile_only:
        return print_compile_times(derive_compile_times(repo=os.path.abspath(a.repo)))
    if a.block:
        return print(json.dumps(block_ratios(a.reps, a.dtypes.split(","), a.block)))
    if a.grid:
        grid = json.loads(a.grid)
        if a.framework:
            return print(json.dumps(framework_worker(a.framework, grid, a.threads)))
        return print(json.dumps(grid_worker(grid)))

    t_start = time.perf_counter()
    grid = QUICK if a.quick else FULL
    load = load_per_core()
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, numpy "
          f"{np.__version__}, python {platform.python_version()}, load average "
          f"{load * (os.cpu_count() or 1):.2f} ({load:.2f} per core) at the start"
          f"{' (quick mode)' if a.quick else ''}")
    if a.pin:
        print("\nEvery worker process starts with malloc pinned: "
              + ", ".join(f"{k}={v}" for k, v in MALLOC.items())
              + " (a freed array's pages stay in the heap for every contender alike).")
    else:
        print("\n**malloc not pinned** (--no-pin): numpy's large temporaries are mmapped and "
              "unmapped per call, the faults column shows what it costs.")
    print("Threads: `1` = " + ", ".join(f"{k}=1" for k in THREAD_VARS)
          + f", XLA_FLAGS='{ONE_THREAD_XLA}', torch.set_num_threads(1); `default` = none of "
          "them set.")
    warn_load("the start", [load])
    if a.block_only:
        return print_block(block_rows(10 if a.quick else BLOCK_REPS, list(grid["dtypes"]), a.pin))
    for threads in ("1", "default"):
        res = run_worker(["--grid", json.dumps(grid), "--threads", threads], threads, a.pin, "grid")
        if res is not None:
            print_grid(threads, res)
    if not a.quick:
        fw = {**grid, **FRAMEWORK_GRID}
        for label in ("torch", "jax"):
            for threads in ("1", "default"):
                res = run_worker(["--grid", json.dumps(fw), "--framework", label,
                                  "--threads", threads], threads, a.pin, label)
                if res is None or res.get("missing"):
                    print(f"\n{label}: not installed (or failed, see stderr): no rows")
                    break
                print_frameworks(label, threads, res)
        print_compile_times(derive_compile_times())
        print_block(block_rows(BLOCK_REPS, list(grid["dtypes"]), a.pin))
    print(f"\n(bench.py{' --quick' if a.quick else ''}: {time.perf_counter() - t_start:.0f} s; "
          f"load average {os.getloadavg()[0]:.2f} at the end)")


def print_block(rows):
    T, d, heads, n = (BLOCK[k] for k in ("T", "d", "heads", "n"))
    print(f"\nTransformer block (pre-norm: LN, {heads}-head self-attention, +, LN, dense {4 * d} relu, "
          f"dense {d}, +; mse per position), T = {T}, d = {d}, batch {n}: one full gradient step, "
          "symgrad's kernel against torch eager (forward, loss, torch.autograd.grad), in one "
          "process per thread setting; ratio = symgrad / torch (lower is faster).")
    print("\n| threads | dtype | load avg | symgrad (ms) | torch eager (ms) | ratio | max rel diff |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        th = "1" if r["threads"] == "1" else f"default (torch {r['torch_threads']})"
        print(f"| {th} | {r['dtype']} | {r['load']:.2f} | {r['symgrad'] * 1e3:.1f} | "
              f"{r['torch'] * 1e3:.1f} | {r['symgrad'] / r['torch']:.2f} | {r['err']:.0e} |")
    imp, t = block_compile_time()
    print(f"\n| derive + compile, transformer block, fresh process | {t:.3f} s | "
          f"(import symgrad {imp:.2f} s) |")


if __name__ == "__main__":
    main()
