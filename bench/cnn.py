"""One training step of a small CNN (loss and every gradient): symgrad's kernel against torch
eager (``nn.Conv2d``, ``nn.MaxPool2d``, ``nn.Linear``, cross-entropy, backward) with the same
weights, in one process.

Where it sits: outside the pipeline, beside bench.py (which runs it as its CNN section). Two
workloads of issue 11: the digits example's network (1 × 8 × 8, conv 16 → pool → conv 32 → pool
→ dense 10) at batch 32, and a CIFAR-sized one (3 × 32 × 32, conv 16 → pool → conv 32 → pool →
dense 10) at batch 64; float32 and float64. One thread for both (torch.set_num_threads(1); run
with OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 so numpy's BLAS is single-threaded too). Each
figure is the best of k calls after warm-up, the contenders interleaved round-robin; the ratio
is symgrad's time over torch's (lower is faster). The losses and gradients are checked equal
before timing.

Run: ``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python bench/cnn.py``
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import symgrad as sg  # noqa: E402
from attention import best_of  # noqa: E402  (bench/attention.py: best of k, round-robin)

WORKLOADS = [("digits 1×8×8, b32", (1, 8, 8), 32), ("3×32×32, b64", (3, 32, 32), 64)]


def network(shape):
    net = sg.Network()
    x = net.input("x", shape=shape)
    h = net.max_pool2d(net.act(net.conv2d(x, 16, 3, padding=1), "relu"), 2)
    h = net.max_pool2d(net.act(net.conv2d(h, 32, 3, padding=1), "relu"), 2)
    return net.set_loss(net.act(net.dense(net.flatten(h), 10), "softmax"), "cross_entropy")


def case(label, shape, n, dtype, k=15) -> str:
    import torch
    tdt = {"float32": torch.float32, "float64": torch.float64}[dtype]
    net = network(shape)
    t0 = time.perf_counter()
    kernel = net.compile()
    built = time.perf_counter() - t0
    params = net.init_params(seed=0, dtype=dtype)
    C = shape[0]
    model = torch.nn.Sequential(
        torch.nn.Conv2d(C, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(32 * (shape[1] // 4) * (shape[2] // 4), 10)).to(tdt)
    with torch.no_grad():
        for t, p in zip(model.parameters(), params.values()):
            t.copy_(torch.tensor(p))
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, *shape)).astype(dtype)
    Y = rng.integers(0, 10, n)
    Xt, Yt = torch.tensor(X), torch.tensor(Y)

    def torch_step():
        model.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(Xt), Yt)
        loss.backward()
        return loss.item()

    ours, grads = kernel(params, X, Y)
    tol = 1e-4 if dtype == "float32" else 1e-10
    assert abs(ours - torch_step()) <= tol * abs(ours), "the losses differ"
    for t, p in zip(model.parameters(), params):
        g = t.grad.numpy()
        assert np.linalg.norm(grads[p] - g) <= 100 * tol * np.linalg.norm(g), p
    ts, tt = best_of([lambda: kernel(params, X, Y), torch_step], k)
    return (f"| {label} | {dtype} | {built:.2f} | {ts * 1e3:.2f} | {tt * 1e3:.2f} | "
            f"{ts / tt:.2f} |")


def main(k: int = 15) -> None:
    import torch
    torch.set_num_threads(1)
    print(f"CNN step, 1 thread, load average {os.getloadavg()[0]:.2f}")
    print("| workload | dtype | derive + compile (s) | symgrad (ms) | torch eager (ms) | ratio |")
    print("|---|---|---|---|---|---|")
    for label, shape, n in WORKLOADS:
        for dtype in ("float32", "float64"):
            print(case(label, shape, n, dtype, k), flush=True)


if __name__ == "__main__":
    main()
