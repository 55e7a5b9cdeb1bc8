"""Benchmark: one full gradient evaluation (loss + all gradients) per call, symgrad's compiled kernel
against a hand-written numpy backprop, PyTorch eager and JAX jit(value_and_grad), each when
installed, all in one run; ratios are to the hand-written numpy (lower is faster). symgrad's own
torch and jax backends run beside each framework's autodiff, in its process.

Where it sits: outside the pipeline; it times ``net.compile()`` (compile) as ``train`` uses it.
A transformer block (issue 11) is timed against torch eager alone, with one thread and with the
default threads (``--block-only`` runs just those rows).
Run: ``python bench/bench.py [--reps 200] [--quick] [--block-only]``; results go to BENCHMARKS.md
by hand.
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
            # symgrad's backend for the same framework (issue 14): its ratio to the hand-written
            # numpy as above, and to the framework's own autodiff timed round-robin with it
            mine = symgrad_backend(label, net, params, X, Y, call)
            out[f"{name}|{dtype}|symgrad"] = bracketed(lambda: hand(params, X, Y), mine, r)
            t = interleaved({"own": call, "symgrad": mine}, r)
            out[f"{name}|{dtype}|vs"] = t["symgrad"] / t["own"]
    return out


def symgrad_backend(label, net, params, X, Y, own):
    """One call of ``net.compile(backend=label)`` on the framework's own arrays (made once, as a
    training loop holds them); checked against the framework's own loss and gradients first."""
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
    l0, g0 = own()
    l1, g1 = call()
    l0 = l0.detach() if hasattr(l0, "detach") else l0
    g0 = [g0[p] for p in net.parameters] if isinstance(g0, dict) else list(g0)
    tol = 1e-4 if params[net.parameters[0]].dtype == np.float32 else 1e-9
    assert abs(float(l0) - float(l1)) <= tol * abs(float(l0)), (label, float(l0), float(l1))
    for a, b in zip(g0, (g1[p] for p in net.parameters)):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        assert np.abs(a - b).max() <= tol * (np.abs(a).max() + 1e-30), label
    return call


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
            key = f"{row['workload']}|{row['dtype']}"
            row[label] = ratios.get(key)
            row[f"symgrad-{label}"] = ratios.get(f"{key}|symgrad")
            row[f"{label}-vs"] = ratios.get(f"{key}|vs")
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
        kernel = net.compile()
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


def block_rows(reps, dtypes):
    """The block's rows, one process per thread setting (OpenBLAS reads its thread count when
    numpy is imported)."""
    import json
    import subprocess
    rows = []
    for threads in ("1", "default"):
        env = {k: v for k, v in os.environ.items()
               if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
        if threads == "1":
            env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        cmd = [sys.executable, __file__, "--block", threads, "--reps", str(reps),
               "--dtypes", ",".join(dtypes)]
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if r.returncode != 0:
            print(f"transformer block, {threads} thread(s): "
                  f"{r.stderr.strip().splitlines()[-1] if r.stderr else 'failed'}", file=sys.stderr)
            continue
        got = json.loads(r.stdout)
        for dtype in dtypes:
            rows.append({"threads": threads, "dtype": dtype, "load": got["load"],
                         "torch_threads": got["torch_threads"], **got[dtype]})
            print(rows[-1], file=sys.stderr)
    return rows


BLOCK_COMPILE = """
import sys, time
t0 = time.perf_counter()
import symgrad as sg
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
    import subprocess
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.join(here, "..")
    r = subprocess.run([sys.executable, "-c", BLOCK_COMPILE.format(here=here, **BLOCK)], cwd=root,
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": root})
    if r.returncode != 0:
        raise SystemExit("compiling the transformer block failed: "
                         f"{r.stderr.strip().splitlines()[-1]}")
    return tuple(map(float, r.stdout.split()))


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
    ap.add_argument("--block", help=argparse.SUPPRESS)  # internal: the block's times, 1|default
    ap.add_argument("--block-only", action="store_true",
                    help="only the transformer block's rows and its derive + compile time")
    a = ap.parse_args()
    if a.block:
        import json
        print(json.dumps(block_ratios(a.reps, a.dtypes.split(","), a.block)))
        return
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
    block_reps = 10 if a.quick else BLOCK_REPS
    if a.block_only:
        return print_block(block_rows(block_reps, dtypes))
    rows = run_workloads(reps, dtypes)
    block = block_rows(block_reps, dtypes)
    print(f"\nOne full gradient evaluation (loss + all gradients); medians over ≥ {MIN_REPS} calls "
          "after warm-up; symgrad, PyTorch and JAX as ratios to the hand-written numpy backprop "
          "(lower is faster).")
    print("\n| workload | dtype | hand numpy (µs) | symgrad | PyTorch eager | JAX jit |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        cells = [f"{r[k]:.2f}" if r.get(k) else "–" for k in ("symgrad", "torch", "jax")]
        print(f"| {r['workload']} | {r['dtype']} | {r['hand'] * 1e6:.1f} | " + " | ".join(cells) + " |")
    print("\nsymgrad's torch and jax backends (issue 14): ratio to the hand-written numpy, and to the "
          "same framework's own autodiff timed round-robin with it in its process (target ≤ 1).")
    print("\n| workload | dtype | symgrad torch | ÷ torch eager | symgrad jax | ÷ JAX jit |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        cells = [f"{r[k]:.2f}" if r.get(k) else "–"
                 for k in ("symgrad-torch", "torch-vs", "symgrad-jax", "jax-vs")]
        print(f"| {r['workload']} | {r['dtype']} | " + " | ".join(cells) + " |")
    print("\n| derive + compile, fresh process | seconds | (import symgrad, s) |\n|---|---|---|")
    for name, t, imp in derive_compile_times():
        print(f"| {name} | {t:.3f} | {imp:.2f} |")
    print("\n| per-call overhead (1-1 net, batch 1) | µs |\n|---|---|")
    labels = {"torch": "PyTorch eager (own process)", "jax": "JAX jit (own process)"}
    for name, t in {**overhead(reps * 5), **{labels[k]: v for k, v in OVERHEAD.items()}}.items():
        print(f"| {name} | {t * 1e6:.1f} |" if t else f"| {name} | – |")
    print_block(block)
    print("\n| GEMM fraction, 784-256-128-10 b256 CE | machine GEMM GFLOP/s | hand | symgrad | "
          "torch | jax |\n|---|---|---|---|---|---|")
    for dtype, (peak, fr) in gemm_fraction(rows, dtypes).items():
        print(f"| {dtype} | {peak / 1e9:.1f} | " + " | ".join(
            f"{fr[k]:.0%}" if k in fr else "–" for k in ("hand", "symgrad", "torch", "jax")) + " |")


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
