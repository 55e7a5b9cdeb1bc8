"""One step of multi-head self-attention (loss and every gradient): symgrad's kernel against torch
eager ``nn.MultiheadAttention`` (forward, loss, backward) with the same weights, in one process.

Where it sits: outside the pipeline, beside bench.py. The issue's transformer-block size: T = 64
positions, E = 128 features, n = 32 sequences, float32, 1, 2 and 4 heads, causal and not. One
thread for both (torch.set_num_threads(1); run with OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 so
numpy's BLAS is single-threaded too): on 2 cores, two BLAS threads beside another process swing
the figures several-fold. Each figure is the best of 15 calls after one warm-up, the two
contenders interleaved; the ratio is symgrad's time over torch's (lower is faster). Before timing,
the losses are checked equal (float32: 1e-5 relative).

Run: ``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python bench/attention.py``
"""
from __future__ import annotations

import time

import numpy as np
import torch

import symgrad as sg

T, E, N = 64, 128, 32


def best_of(fns, k: int = 15) -> list[float]:
    """The best time of each of ``fns`` over k rounds, called round-robin."""
    for f in fns:
        f()
    times = [[] for _ in fns]
    for _ in range(k):
        for f, ts in zip(fns, times):
            t0 = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t0)
    return [min(ts) for ts in times]


def case(heads: int, causal: bool) -> str:
    net = sg.Network()
    x = net.input("x", shape=(T, E))
    out = net.self_attention(x, heads, causal=causal)
    net.set_loss(out, "mse")
    t0 = time.perf_counter()
    kernel = net.compile()
    built = time.perf_counter() - t0
    mha = torch.nn.MultiheadAttention(E, heads, batch_first=True, dtype=torch.float32)
    weights = (mha.in_proj_weight, mha.in_proj_bias, mha.out_proj.weight, mha.out_proj.bias)
    params = sg.from_torch_mha(net, out, *(w.detach().numpy().copy() for w in weights))
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N, T, E)).astype(np.float32)
    Y = rng.normal(size=(N, T, E)).astype(np.float32)
    Xt, Yt = torch.tensor(X), torch.tensor(Y)
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1) if causal else None

    def torch_step():
        mha.zero_grad()
        o, _ = mha(Xt, Xt, Xt, need_weights=False, attn_mask=mask)
        loss = ((o - Yt) ** 2).sum() / (2 * N * T)  # symgrad's mse: 1/(2nT) Σ‖ŷ − y‖²
        loss.backward()
        return loss.item()

    ours = kernel(params, X, Y)[0]
    assert abs(ours - torch_step()) <= 1e-5 * abs(ours), "the losses differ"
    ts, tt = best_of([lambda: kernel(params, X, Y), torch_step])
    return (f"| {heads} | {'causal' if causal else 'none'} | {built:.2f} | {ts * 1e3:.1f} | "
            f"{tt * 1e3:.1f} | {ts / tt:.2f} |")


def main() -> None:
    torch.set_num_threads(1)
    print("| heads | mask | derive + compile (s) | symgrad (ms) | torch eager (ms) | ratio |")
    print("|---|---|---|---|---|---|")
    for heads in (1, 2, 4):
        for causal in (False, True):
            print(case(heads, causal), flush=True)


if __name__ == "__main__":
    main()
