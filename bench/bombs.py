"""Resource bombs: tiny inputs that once took exponential time or unbounded memory, each run as a
user runs it (the CLI in a fresh process), with its wall time, peak memory and outcome.

Where it sits: outside the pipeline, beside bench.py. Not a test (timings are noisy): it reports,
and the contract it checks by eye is the issue's — each bomb completes in ≤ 2 s or is refused in
≤ 1 s, with peak memory ≤ 500 MiB. A process's start-up (importing SymPy, ~0.5 s) is included, as
the user waits for it too; the ``start-up`` row measures it alone.

Run: ``python bench/bombs.py [--timeout 30] [--only NAME]``; results go to BENCHMARKS.md by hand.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def nested(fn: str, depth: int) -> str:
    return f"{fn}(" * depth + "x" + ")" * depth


def product(k: int) -> tuple[str, str]:
    return "*".join(f"(x{i}+{i})" for i in range(1, k + 1)), ",".join(f"x{i}" for i in
                                                                        range(1, k + 1))


def maximum(k: int) -> tuple[str, str]:
    return f"max({', '.join(f'x{i}' for i in range(1, k + 1))})", ",".join(
        f"x{i}" for i in range(1, k + 1))


def names(k: int) -> str:
    return ",".join(f"x{i}" for i in range(k))


def tanh_maps(k: int) -> list[str]:
    out = []
    for i in range(1, k + 1):
        out += ["--fn", f"tanh(a{i}+b{i}), tanh(a{i}*b{i})", "--wrt", f"a{i},b{i}"]
    return out


def logistic(n: int, m: int) -> list[str]:
    """A logistic loss of n examples and m weights written log(1 + exp(·)), and --wrt."""
    f = " + ".join(f"log(1 + exp(-({' + '.join(f'w{j}*x{i}_{j}' for j in range(1, m + 1))})))"
                   for i in range(1, n + 1))
    return [f, "--wrt", ",".join(f"w{j}" for j in range(1, m + 1))]


def deep_spec(layers: int) -> str:
    return "-".join(["2"] * (layers + 1))


# name, argv after `symgrad` (the CLI), or None and a Python snippet as the third item
BOMBS = [
    ("start-up", ["--version"]),
    ("tanh nested 12", ["jacobian", nested("tanh", 12), "--wrt", "x"]),
    ("tanh nested 14", ["jacobian", nested("tanh", 14), "--wrt", "x"]),
    ("tanh nested 32", ["jacobian", nested("tanh", 32), "--wrt", "x"]),
    ("sigmoid nested 16", ["jacobian", nested("sigmoid", 16), "--wrt", "x"]),
    ("product of 12", ["jacobian", *product(12)[:1], "--wrt", product(12)[1]]),
    ("product of 20", ["jacobian", *product(20)[:1], "--wrt", product(20)[1]]),
    ("max of 24", ["jacobian", *maximum(24)[:1], "--wrt", maximum(24)[1]]),
    ("max of 32", ["jacobian", *maximum(32)[:1], "--wrt", maximum(32)[1]]),
    ("(x+y^1000000)*x", ["jacobian", "(x+y^1000000)*x", "--wrt", "x"]),
    ("(x+y^(10^100))^2", ["jacobian", "(x + y^(10^100))^2", "--wrt", "x"]),
    ("(x+1)^5000", ["jacobian", "(x+1)^5000", "--wrt", "x"]),
    ("x^(10^100) steps", ["jacobian", "x^(10^100)", "--wrt", "x", "--steps"]),
    ("1e5000*x", ["jacobian", "1e5000*x", "--wrt", "x"]),
    ("10^(10^6)*x", ["jacobian", "10^(10^6)*x", "--wrt", "x"]),
    ("exp chain 24", ["jacobian", "*".join(f"exp(x{i}*x{i + 1})" for i in range(24)),
                      "--wrt", ",".join(f"x{i}" for i in range(25))]),
    ("chain of 4 tanh", ["chain", "--fn", "tanh(tanh(u))", "--wrt", "u", "--fn", "tanh(tanh(v))",
                         "--wrt", "v", "--fn", "tanh(tanh(w))", "--wrt", "w", "--fn",
                         "tanh(tanh(x))", "--wrt", "x"]),
    ("chain of 5 maps (tanh(a+b), tanh(ab))", ["chain", *tanh_maps(5)]),
    ("chain of 6 maps (tanh(a+b), tanh(ab))", ["chain", *tanh_maps(6)]),
    ("hessian, logistic 2 × 2 (issue 12)", ["hessian", *logistic(2, 2)]),
    ("hessian, logistic 6 × 1", ["hessian", *logistic(6, 1)]),
    ("hessian, logistic 10 × 5 --steps", ["hessian", *logistic(10, 5), "--steps"]),
    ("identity of 500 variables", ["jacobian", names(500), "--wrt", names(500)]),
    ("identity of 1200 variables", ["jacobian", names(1200), "--wrt", names(1200)]),
    ("sum of 1000 w.r.t. each", ["jacobian", names(1000).replace(",", "+"), "--wrt",
                                 names(1000)]),
    ("derive 200 layers --wrt W1", ["derive", deep_spec(200), "--wrt", "W1"]),
    ("derive 200 layers, all", ["derive", deep_spec(200)]),
    ("derive 200 layers json", ["derive", deep_spec(200), "--format", "json"]),
    ("derive 300 layers", ["derive", deep_spec(300)]),
    ("derive 300 layers, library", None, "import symgrad as sg; net = sg.mlp([2] * 301)\n"
     "try:\n    net.derive_all(); print('ok')\nexcept ValueError as e:\n    print(e)"),
    ("residual stack of 14 blocks, all", None,
     "import symgrad as sg\nnet = sg.Network(); h = net.dense(net.input('x', 3), 3)\n"
     "for _ in range(14):\n    h = net.add(net.act(net.dense(h, 3), 'tanh'), h)\n"
     "net.set_loss(net.dense(h, 1), 'mse')\n"
     "print(sum(len(d.to_text()) for d in net.derive_all()), 'characters')"),
    ("handout of 31 gated residual blocks", None,
     "import symgrad as sg\nfrom symgrad.handouts.build import handout\n"
     "net = sg.Network(); h = net.input('x', 2)\nfor _ in range(31):\n"
     "    a = net.act(net.dense(h, 2), 'tanh'); g = net.act(net.dense(h, 2), 'sigmoid')\n"
     "    h = net.add(h, net.mul(a, g))\nnet.set_loss(net.dense(h, 1), 'mse')\n"
     "print(len(handout(net)), 'characters')"),
    ("product of 300 w.r.t. each", ["jacobian", names(300).replace(",", "*"), "--wrt",
                                    names(300)]),
    ("derive 12-11-1 element", ["derive", "12-11-1", "--level", "element", "--wrt", "W1_111"]),
    ("handout 32 layers", ["handout", deep_spec(32), "-o", "{tmp}/h.tex"]),
    ("handout 64 layers", ["handout", deep_spec(64), "-o", "{tmp}/h.tex"]),
    ("handout 200 layers", ["handout", deep_spec(200), "-o", "{tmp}/h.tex"]),
    ("train 99999999999-1", ["train", "99999999999-1", "--data", "xor", "--epochs", "1"]),
    ("train adam lr=1e6", ["train", "2-2-1", "--data", "xor", "--lr", "1e6", "--epochs", "50"]),
    ("log(sigmoid(x)) at -1000", None, "import symgrad as sg; f = sg.compile_function("
     "'log(sigmoid(x))', 'x'); v = f(-1000.0); print(v); assert abs(v + 1000) < 1e-9, v"),
]


def peak_rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run(argv: list[str] | None, timeout: float, snippet: str = "") -> tuple[float, float, str]:
    """(seconds, peak MiB, outcome) of ``symgrad argv`` (or the Python ``snippet``) in a fresh
    process."""
    with tempfile.TemporaryDirectory() as tmp:
        argv = [a.replace("{tmp}", tmp) for a in argv or []]
        code = snippet or ("import sys; from symgrad.cli import cli; "
                           "sys.argv = ['symgrad'] + sys.argv[1:]; cli()")
        t0 = time.perf_counter()
        p = subprocess.Popen([sys.executable, "-c", code, *argv], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, cwd=tmp,
                             env={**os.environ, "PYTHONPATH": os.path.join(HERE, "..")})
        peak, out, err = 0, b"", b""
        while True:
            peak = max(peak, peak_rss_kib(p.pid))
            try:
                out, err = p.communicate(timeout=0.05)
                break
            except subprocess.TimeoutExpired:
                if time.perf_counter() - t0 > timeout:
                    p.kill()
                    p.communicate()
                    return time.perf_counter() - t0, peak / 1024, f"killed after {timeout:g} s"
        dt = time.perf_counter() - t0
        last = (err.decode(errors="replace").strip().splitlines() or [""])[-1]
        if p.returncode == 0:
            outcome = f"ok, {len(out)} bytes out" if argv else f"ok: {out.decode().strip()[:60]}"
        else:
            outcome = f"exit {p.returncode}: {last[:110]}"
        return dt, peak / 1024, outcome


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--only", default=None, help="run only bombs whose name contains this")
    args = ap.parse_args()
    print("| bomb | time (s) | peak (MiB) | outcome |\n|---|---|---|---|")
    for name, argv, *snippet in BOMBS:
        if args.only and args.only not in name:
            continue
        dt, peak, outcome = run(argv, args.timeout, *snippet)
        print(f"| {name} | {dt:.2f} | {peak:.0f} | {outcome.replace('|', '/')} |", flush=True)


if __name__ == "__main__":
    main()
