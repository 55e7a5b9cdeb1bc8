"""Where a compiled kernel's time goes, line by line: the generated source re-executed with a
timer around every statement (the time of an ``if`` or ``try`` includes its body), beside the
hand-written step's total. A profile, not a ratio: the timers' own cost (~0.1 µs a statement) is
in every figure.

Where it sits: outside the pipeline; it reads ``net.compile().source`` (compile).

Run: python bench/kernel_lines.py 64,64,64,64,10 --batch 2048 --dtype float32 [--onehot]
     [--reps 50] [--fused]  (one BLAS thread)"""
import os

for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[v] = "1"
import argparse  # noqa: E402
import ast  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("sizes")
ap.add_argument("--batch", type=int, default=128)
ap.add_argument("--dtype", default="float64")
ap.add_argument("--onehot", action="store_true")
ap.add_argument("--mse", action="store_true")
ap.add_argument("--fused", action="store_true")
ap.add_argument("--reps", type=int, default=200)
ap.add_argument("--repo", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
args = ap.parse_args()
sys.path.insert(0, args.repo)
import symgrad as sg  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import hand_numpy  # noqa: E402


class Timed(ast.NodeTransformer):
    """Every statement of the function body (and of nested blocks) between two clock reads."""

    def __init__(self):
        self.lines = []

    def wrap(self, body):
        out = []
        for st in body:
            self.generic_visit(st)
            if isinstance(st, (ast.Return, ast.Raise)):
                out.append(st)
                continue
            i = len(self.lines)
            self.lines.append(ast.get_source_segment(self.src, st).splitlines()[0][:90])
            out += ast.parse(f"_t{i} = _pc()").body + [st] + ast.parse(
                f"_acc[{i}] += _pc() - _t{i}").body
        return out

    def generic_visit(self, node):
        for field in ("body", "orelse", "finalbody"):
            if isinstance(getattr(node, field, None), list) and field != "handlers":
                setattr(node, field, self.wrap(getattr(node, field)))
        for h in getattr(node, "handlers", []):
            h.body = self.wrap(h.body)
        return node


def instrumented(kernel):
    src = kernel.source.split("\n# the fused loops")[0]
    tree = ast.parse(src)
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "kernel")
    t = Timed()
    t.src = src
    fn.body = t.wrap(fn.body)
    ast.fix_missing_locations(tree)
    acc = [0.0] * len(t.lines)
    ns = dict(kernel.__globals__, _pc=time.perf_counter, _acc=acc)
    exec(compile(tree, "<timed kernel>", "exec"), ns)
    return ns["kernel"], acc, t.lines


def main():
    sizes = [int(s) for s in args.sizes.split(",")]
    loss = "mse" if args.mse else "cross_entropy"
    net = sg.mlp(sizes, hidden="relu", output="identity" if args.mse else "softmax", loss=loss)
    k = net.compile(fused=args.fused)
    rng = np.random.default_rng(0)
    p = net.init_params(seed=0, dtype=args.dtype)
    X = rng.standard_normal((args.batch, sizes[0])).astype(args.dtype)
    if args.mse:
        Y = rng.standard_normal((args.batch, sizes[-1])).astype(args.dtype)
    else:
        Y = rng.integers(0, sizes[-1], args.batch)
        if args.onehot:
            Y = np.eye(sizes[-1], dtype=args.dtype)[Y]
    timed, acc, lines = instrumented(k)
    h = hand_numpy(sizes, loss)
    for f in (timed, k, h):
        for _ in range(10):
            f(p, X, Y)
    acc[:] = [0.0] * len(acc)
    tk = th = 0.0
    for _ in range(args.reps):
        t = time.perf_counter()
        k(p, X, Y)
        tk += time.perf_counter() - t
        t = time.perf_counter()
        h(p, X, Y)
        th += time.perf_counter() - t
        timed(p, X, Y)
    print(f"{args.sizes} b{args.batch} {args.dtype} {'one-hot' if args.onehot else 'labels'}: "
          f"kernel {tk / args.reps * 1e6:.1f} µs, hand {th / args.reps * 1e6:.1f} µs, "
          f"load {os.getloadavg()[0]:.2f}")
    for line, a in zip(lines, acc):
        if a / args.reps > 0.05e-6 * max(1, args.batch / 64):
            print(f"{a / args.reps * 1e6:9.1f} µs  {line}")


main()
