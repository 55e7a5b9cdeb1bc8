"""Benchmark: one full gradient evaluation (loss + all gradients) per call, symgrad's compiled kernel
against a hand-written numpy backprop, PyTorch eager and JAX jit(value_and_grad), each when
installed, all in one run; ratios are to the hand-written numpy (lower is faster).

Where it sits: outside the pipeline; it times ``net.compile()`` (compile) as ``train`` uses it.
Run: ``python bench/bench.py [--reps 200] [--quick]``; results go to BENCHMARKS.md by hand.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import symgrad as sg  # noqa: E402

WORKLOADS = [  # name, sizes, hidden, output, loss, batch
    ("2-2-1 b4 (xor)", [2, 2, 1], "relu", "sigmoid", "bce", 4),
    ("64-32-10 b128 CE", [64, 32, 10], "relu", "softmax", "cross_entropy", 128),
    ("784-256-128-10 b256 CE", [784, 256, 128, 10], "relu", "softmax", "cross_entropy", 256),
    ("784-256-128-10 b256 mse", [784, 256, 128, 10], "relu", "identity", "mse", 256),
]


def timeit(fn, reps, warmup=20):
    """Median seconds per call over ``reps`` calls after ``warmup`` calls."""
    return interleaved({"f": fn}, reps, warmup)["f"]


def interleaved(calls: dict, reps, warmup=20):
    """Median seconds per call of each contender, timed round-robin (one call of each per round,
    the order rotating) so that load from elsewhere on the machine hits all of them alike."""
    names = list(calls)
    for _ in range(warmup):
        for f in calls.values():
            f()
    times = {k: [] for k in names}
    for r in range(reps):
        for k in names[r % len(names):] + names[:r % len(names)]:
            f = calls[k]
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def bracketed(hand, other, reps):
    """other's median over the hand baseline's, timed in blocks hand, other, (pause), hand."""
    h1 = timeit(hand, reps)
    t = timeit(other, reps)
    time.sleep(0.5)  # let the framework's worker threads go idle before BLAS runs again
    return t / ((h1 + timeit(hand, reps)) / 2)


def framework_ratios(label, reps, dtypes):
    """Run in a subprocess of its own: torch's or JAX's worker threads next to OpenBLAS's in one
    process oversubscribe the 2 cores and slow every later GEMM many times over."""
    make = {"torch": torch_eager, "jax": jax_jit}[label]
    out = {}
    for name, sizes, hidden, output, loss, n in WORKLOADS:
        for dtype in dtypes:
            net = sg.mlp(sizes, hidden=hidden, output=output, loss=loss)
            params = net.init_params(seed=0, dtype=dtype)
            X, Y = data(sizes, loss, n, dtype)
            call = make(sizes, loss, params, X, Y)
            if call is None:
                return {}
            hand = hand_numpy(sizes, loss)
            r = max(MIN_REPS, reps if sizes[0] < 100 else reps // 4)
            out[f"{name}|{dtype}"] = bracketed(lambda: hand(params, X, Y), call, r)
    return out


def in_subprocess(label, reps, dtypes):
    import json
    import subprocess
    cmd = [sys.executable, __file__, "--framework", label, "--reps", str(reps),
           "--dtypes", ",".join(dtypes)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print(f"{label}: {r.stderr.strip().splitlines()[-1] if r.stderr else 'failed'}",
              file=sys.stderr)
        return {}
    return json.loads(r.stdout)


# -- the baselines ---------------------------------------------------------------------------------
def hand_numpy(sizes, loss):
    """The backprop a person writes in numpy: a loop over layers, relu hidden units."""
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
            rows = np.arange(n)
            value = np.mean(np.log(s[:, 0]) - Z[rows, Y])
            G = E / s
            G[rows, Y] -= 1
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
        if loss == "cross_entropy":
            value = F.cross_entropy(H, Yt)
        elif loss == "bce":
            value = F.binary_cross_entropy_with_logits(H, Yt, reduction="sum") / Xt.shape[0]
        else:
            value = 0.5 * ((H - Yt) ** 2).sum() / Xt.shape[0]
        return value, torch.autograd.grad(value, ps)
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
            return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(H), Y[:, None], 1))
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


def data(sizes, loss, n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, sizes[0])).astype(dtype)
    if loss == "cross_entropy":
        Y = rng.integers(0, sizes[-1], n)
    elif loss == "bce":
        Y = rng.integers(0, 2, (n, sizes[-1])).astype(dtype)
    else:
        Y = rng.standard_normal((n, sizes[-1])).astype(dtype)
    return X, Y


OVERHEAD = {}  # a framework's per-call time on the 1-1 net, from its own process
MIN_REPS = 50  # every median is over at least this many calls


def run_workloads(reps, dtypes):
    rows = []
    for name, sizes, hidden, output, loss, n in WORKLOADS:
        for dtype in dtypes:
            net = sg.mlp(sizes, hidden=hidden, output=output, loss=loss)
            kernel = net.compile()
            params = net.init_params(seed=0, dtype=dtype)
            X, Y = data(sizes, loss, n, dtype)
            hand = hand_numpy(sizes, loss)
            l0, g0 = hand(params, X, Y)
            l1, g1 = kernel(params, X, Y)
            tol = 1e-4 if dtype == "float32" else 1e-10
            err = max(np.abs(g0[p] - g1[p]).max() / (np.abs(g0[p]).max() + 1e-30) for p in g0)
            assert abs(l0 - l1) <= tol * abs(l0) and err < tol, (name, dtype, l0, l1, err)
            r = max(MIN_REPS, reps if sizes[0] < 100 else reps // 4)
            h = lambda: hand(params, X, Y)  # noqa: E731
            t = interleaved({"hand": h, "symgrad": lambda: kernel(params, X, Y)}, r)
            rows.append({"workload": name, "dtype": dtype, "hand": t["hand"],
                         "symgrad": t["symgrad"] / t["hand"]})
            print(rows[-1], file=sys.stderr)
    for label in ("torch", "jax"):  # each framework in a process of its own
        ratios = in_subprocess(label, reps, dtypes)
        OVERHEAD[label] = ratios.get("overhead")
        for row in rows:
            row[label] = ratios.get(f"{row['workload']}|{row['dtype']}")
    return rows


COMPILE_ONE = """
import sys, time
t0 = time.perf_counter()
import symgrad as sg
t1 = time.perf_counter()
net = sg.mlp({sizes}, hidden="relu", output="softmax", loss="cross_entropy")
net.compile()
print(t1 - t0, time.perf_counter() - t1)
"""


def derive_compile_times():
    """Derivation + compile of each network in a fresh interpreter (nothing cached, SymPy's caches
    cold), after ``import symgrad``; the import's own time is reported beside it."""
    import subprocess
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    nets = [(f"depth {d} (784-{'128-' * (d - 1)}10)" if d <= 4 else
             f"depth {d} (784-128×{d - 1}-10)", [784] + [128] * (d - 1) + [10]) for d in (2, 4, 8, 16)]
    nets.append(("784-256-128-10", [784, 256, 128, 10]))
    out = []
    for name, sizes in nets:
        r = subprocess.run([sys.executable, "-c", COMPILE_ONE.format(sizes=sizes)], cwd=root,
                           capture_output=True, text=True, env={**os.environ, "PYTHONPATH": root})
        if r.returncode != 0:
            raise SystemExit(f"compiling {name} failed: {r.stderr.strip().splitlines()[-1]}")
        imp, t = map(float, r.stdout.split())
        out.append((name, t, imp))
    return out


def overhead(reps):
    """Per-call cost with almost no arithmetic: a 1-1 net (mse), batch 1 (each framework in its
    own block)."""
    net = sg.mlp([1, 1], loss="mse")
    params = net.init_params()
    X, Y = np.ones((1, 1)), np.ones((1, 1))
    scalar, vec, hand = net.compile(), net.compile(scalar=False), hand_numpy([1, 1], "mse")
    return interleaved({"symgrad, scalar path": lambda: scalar(params, X, Y),
                        "symgrad, numpy path": lambda: vec(params, X, Y),
                        "hand numpy": lambda: hand(params, X, Y)}, reps)


def framework_overhead(label, reps):
    net = sg.mlp([1, 1], loss="mse")
    call = {"torch": torch_eager, "jax": jax_jit}[label]([1, 1], "mse", net.init_params(),
                                                          np.ones((1, 1)), np.ones((1, 1)))
    return timeit(call, reps) if call else None


def gemm_fraction(rows, dtypes):
    """FLOPs of the 8 GEMMs of 784-256-128-10 b256 per step over the measured time, as a fraction
    of the machine's large-GEMM throughput (a 1024³ matmul); torch's and JAX's times are their
    ratios times the hand-written numpy's time in this process."""
    n, s = 256, [784, 256, 128, 10]
    flops = sum(2 * n * a * b for a, b in zip(s, s[1:])) * 3 - 2 * n * s[0] * s[1]
    out = {}
    for dtype in dtypes:
        A = np.random.default_rng(0).standard_normal((1024, 1024)).astype(dtype)
        peak = 2 * 1024 ** 3 / timeit(lambda: A @ A, MIN_REPS, warmup=3)
        for r in rows:
            if r["workload"].startswith("784-256-128-10 b256 CE") and r["dtype"] == dtype:
                secs = {k: r["hand"] * (1 if k == "hand" else r[k])
                        for k in ("hand", "symgrad", "torch", "jax") if r.get(k)}
                out[dtype] = (peak, {k: flops / t / peak for k, t in secs.items()})
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="float64 only, fewer repetitions")
    ap.add_argument("--framework", help=argparse.SUPPRESS)  # internal: one framework's ratios
    ap.add_argument("--dtypes", default="float64,float32", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.framework:
        import json
        out = framework_ratios(a.framework, a.reps, a.dtypes.split(","))
        out["overhead"] = framework_overhead(a.framework, a.reps * 5)
        print(json.dumps(out))
        return
    dtypes = ["float64"] if a.quick else ["float64", "float32"]
    reps = max(MIN_REPS, 60 if a.quick else a.reps)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, numpy "
          f"{np.__version__}, python {platform.python_version()}, load average "
          f"{os.getloadavg()[0]:.2f} at the start (another busy process makes 2-thread GEMMs "
          "many times slower: run on a quiet machine)")
    rows = run_workloads(reps, dtypes)
    print(f"\nOne full gradient evaluation (loss + all gradients); medians over ≥ {MIN_REPS} calls "
          "after warm-up; symgrad, PyTorch and JAX as ratios to the hand-written numpy backprop "
          "(lower is faster).")
    print("\n| workload | dtype | hand numpy (µs) | symgrad | PyTorch eager | JAX jit |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        cells = [f"{r[k]:.2f}" if r.get(k) else "–" for k in ("symgrad", "torch", "jax")]
        print(f"| {r['workload']} | {r['dtype']} | {r['hand'] * 1e6:.1f} | " + " | ".join(cells) + " |")
    print("\n| derive + compile, fresh process | seconds | (import symgrad, s) |\n|---|---|---|")
    for name, t, imp in derive_compile_times():
        print(f"| {name} | {t:.3f} | {imp:.2f} |")
    print("\n| per-call overhead (1-1 net, batch 1) | µs |\n|---|---|")
    labels = {"torch": "PyTorch eager (own process)", "jax": "JAX jit (own process)"}
    for name, t in {**overhead(reps * 5), **{labels[k]: v for k, v in OVERHEAD.items()}}.items():
        print(f"| {name} | {t * 1e6:.1f} |" if t else f"| {name} | – |")
    print("\n| GEMM fraction, 784-256-128-10 b256 CE | machine GEMM GFLOP/s | hand | symgrad | "
          "torch | jax |\n|---|---|---|---|---|---|")
    for dtype, (peak, fr) in gemm_fraction(rows, dtypes).items():
        print(f"| {dtype} | {peak / 1e9:.1f} | " + " | ".join(
            f"{fr[k]:.0%}" if k in fr else "–" for k in ("hand", "symgrad", "torch", "jax")) + " |")


if __name__ == "__main__":
    main()
