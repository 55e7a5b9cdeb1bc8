"""Examples per second of one full-batch gradient: in-memory numpy vs Dask on 1 and 2 workers.

    python bench/dask_bench.py [rows]      (default 2,000,000 rows × 64 features, float64)

The same network (64-32-1, ReLU, mse) and the same data: generated once in memory for numpy, and
generated on the workers and persisted there for Dask (so the timings are the gradients, not the
random numbers). Every process runs one BLAS thread (set below, before numpy loads), so 2 workers
are 2 cores against numpy's 1. Each figure is the median of 5 calls after a warm-up call (the
workers compile the kernel once, in the warm-up). Needs the dask extra:
pip install 'symgrad[dask]'. Prints a Markdown table for BENCHMARKS.md and the load average.
"""
import os

for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[v] = "1"

import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

import numpy as np  # noqa: E402


def median_time(fn, reps=5):
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times), max(times)


def main(rows=2_000_000, d=64, chunk=125_000):
    import dask.array as da
    from distributed import Client, LocalCluster

    import symgrad as sg
    from symgrad.run import chunked

    net = sg.mlp([d, 32, 1], hidden="relu", output="identity", loss="mse")
    p = net.init_params()
    w = np.linspace(-1, 1, d)[:, None]
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, d))
    Y = np.tanh(X @ w)
    kern = net.compile()
    results = [("numpy, in memory (1 process)",) + median_time(lambda: kern(p, X, Y))]
    del X, Y
    for workers in (1, 2):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster):
            Xd = da.random.RandomState(0).normal(size=(rows, d), chunks=(chunk, d))
            Yd = da.tanh(Xd @ w)
            Xd, Yd = Xd.persist(), Yd.persist()
            key = uuid.uuid4().hex  # one compiled kernel per worker for every call
            results.append((f"Dask, {workers} worker{'s' if workers > 1 else ''}",)
                           + median_time(lambda: chunked.gradient(net, p, Xd, Yd, key)))
    print(f"{rows:,} rows × {d} features (float64, {rows * d * 8 / 2**20:,.0f} MiB), "
          f"64-32-1 mse, chunks of {chunk:,} rows; load average {os.getloadavg()[0]:.2f}\n")
    print("| gradient over all rows | seconds (median, min–max) | examples/s | vs numpy |")
    print("|---|---|---|---|")
    base = results[0][1]
    for name, med, lo, hi in results:
        print(f"| {name} | {med:.3f} ({lo:.3f}–{hi:.3f}) | {rows / med:,.0f} | "
              f"{base / med:.2f}× |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000)
