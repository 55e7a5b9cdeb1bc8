"""Hessians of logistic losses written log(1 + exp(·)) (issue 12): the time to derive each, in a
fresh process, against sympy.hessian's.

Where it sits: outside the pipeline, beside bombs.py. Not a test (timings are noisy): it reports the
CPU time of the derivation (user + system, best of --repeat runs; the import of SymPy and symgrad
is not counted, ~0.5 s), so a machine shared with other work reads close to an idle one.
``symgrad.derive.hessian`` did not exist before issue 12; on such a checkout the Hessian is
derived as it was then, the Jacobian of the gradient (``--checkout`` names the tree to import).

Run: ``python bench/hessian_scalar.py [--timeout 120] [--repeat 3] [--checkout DIR] [--only 2x2,10x5]``;
results go to BENCHMARKS.md by hand.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

# n examples, m weights; the is 2 × 2. 5 × 2 and 6 × 1 were the worst before (26 s, over
# 40 s), 10 × 5 the size the issue asks to stay fast.
SIZES = [(2, 2), (3, 2), (4, 2), (5, 2), (6, 1), (8, 1), (10, 1), (10, 2), (10, 5), (20, 2)]

CHILD = r"""
import sys, time
n, m = int(sys.argv[1]), int(sys.argv[2])
import sympy as sp
from symgrad.core.parse import parse
f = parse(" + ".join(f"log(1 + exp(-({' + '.join(f'w{j}*x{i}_{j}' for j in range(1, m + 1))})))"
                     for i in range(1, n + 1)))
ws = " ".join(f"w{j}" for j in range(1, m + 1))
if sys.argv[3] == "sympy":
    xs = sp.symbols(ws, real=True, seq=True)
    t = time.process_time()
    sp.hessian(f, xs)
else:
    t = time.process_time()
    try:
        from symgrad.derive.hessian import derive_hessian
        derive_hessian(f, ws)
    except ImportError:  # before issue 12: the Jacobian of the gradient
        from symgrad.derive import calculus
        calculus.jacobian(calculus.gradient(f, ws), ws)
print(time.process_time() - t)
import symgrad
assert symgrad.__file__.startswith(sys.argv[4]), symgrad.__file__
"""


def run(root: str, n: int, m: int, what: str, timeout: float) -> float | None:
    try:
        # run elsewhere: `python -c` puts the working directory first on sys.path, before
        # PYTHONPATH, so from a checkout it would import that checkout whatever --checkout says
        root = os.path.abspath(root)
        p = subprocess.run([sys.executable, "-c", CHILD, str(n), str(m), what, root],
                           timeout=timeout, capture_output=True, text=True,
                           cwd=tempfile.gettempdir(), env={**os.environ, "PYTHONPATH": root})
    except subprocess.TimeoutExpired:
        return None
    if p.returncode:
        raise SystemExit(p.stderr.strip().splitlines()[-1])
    return float(p.stdout.split()[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--checkout", default=os.path.join(HERE, ".."))
    ap.add_argument("--only", default=None, help="sizes n×m to run, e.g. 2x2,10x5")
    args = ap.parse_args()
    sizes = SIZES if not args.only else [tuple(map(int, s.split("x")))
                                         for s in args.only.split(",")]
    print("| examples × weights | symgrad (s) | sympy.hessian (s) |\n|---|---|---|")
    for n, m in sizes:
        cells = []
        for what in ("symgrad", "sympy"):
            times = [run(args.checkout, n, m, what, args.timeout) for _ in range(args.repeat)]
            cells.append(f"over {args.timeout:g}" if None in times else f"{min(times):.2f}")
        print(f"| {n} × {m} | {cells[0]} | {cells[1]} |", flush=True)


if __name__ == "__main__":
    main()
