#!/usr/bin/env python3
"""Start-up times (issue 15): `symgrad --help`, `symgrad derive --help`, `import symgrad` and
`import symgrad; symgrad.mlp` (the facade loaded), each a fresh interpreter, against a bare
`python -c pass`. Wall times, median (min–max) of N runs, round robin, with the load average, and
the child's CPU time (user + sys), which a busy machine inflates far less than the wall time.

    python bench/startup.py [--runs 10] [--python PATH] [--root CHECKOUT]

Runs the checkout it sits in, or --root (first on sys.path), as `python cli.py` does there.
`python -X importtime -c "import symgrad.cli"` shows what each import costs.
"""
from __future__ import annotations

import argparse
import os
import resource
import pathlib
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
CASES = {
    "python -c pass": ["-c", "pass"],
    "symgrad --help": ["-c", "import sys; sys.argv = ['symgrad', '--help']; "
                             "from symgrad.cli import main; main()"],
    "symgrad derive --help": ["-c", "import sys; sys.argv = ['symgrad', 'derive', '--help']; "
                                    "from symgrad.cli import main; main()"],
    "import symgrad": ["-c", "import symgrad"],
    "import symgrad; symgrad.mlp": ["-c", "import symgrad; symgrad.mlp"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--root", default=str(ROOT), help="the checkout to time")
    a = ap.parse_args()
    env = dict(os.environ, PYTHONPATH=a.root)
    times = {k: [] for k in CASES}
    cpu = {k: [] for k in CASES}
    load = os.getloadavg()[0]
    for _ in range(a.runs):  # round robin: a burst of load hits every case alike
        for name, args in CASES.items():
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            subprocess.run([a.python, *args], cwd=a.root, env=env, check=True,
                           stdout=subprocess.DEVNULL)
            times[name].append(time.perf_counter() - t)
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[name].append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
    load = max(load, os.getloadavg()[0])
    print(f"{a.runs} runs each, round robin; load average (1 min) up to {load:.2f} on "
          f"{os.cpu_count()} cores\n")
    print("| command | wall, median s | wall, min–max s | CPU, median s |\n|---|---:|---:|---:|")
    for name, ts in times.items():
        print(f"| `{name}` | {statistics.median(ts):.3f} | {min(ts):.3f}–{max(ts):.3f} | "
              f"{statistics.median(cpu[name]):.3f} |")


if __name__ == "__main__":
    main()
