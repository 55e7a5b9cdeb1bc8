"""bench/bench.py (issue 15): its baselines compute what they claim, its workers start with the
settings it prints, malloc pinning removes the hand-written step's page faults, and --quick runs
to its tables. The figures themselves are never asserted (speed is the bench's business)."""
from __future__ import annotations

import importlib.util
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import symgrad as sg

BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench" / "bench.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_under_test", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


bench = _bench()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_hand_written_step_equals_symgrad_with_either_labels(dtype):
    sizes = bench.sizes_of(3)
    net = sg.mlp(sizes, hidden="relu", output="softmax", loss="cross_entropy")
    kernel, hand = net.compile(), bench.hand_numpy(sizes, "cross_entropy")
    params = net.init_params(seed=0, dtype=dtype)
    X, Y = bench.data(sizes, "cross_entropy", 33, dtype, "int")
    X1, Y1 = bench.data(sizes, "cross_entropy", 33, dtype, "onehot")
    assert np.array_equal(X, X1) and np.array_equal(Y1.argmax(axis=1), Y) and Y1.sum() == 33
    l0, g0 = hand(params, X, Y)
    l1, g1 = hand(params, X1, Y1)
    bench.check_same("labels", l0, g0, l1, g1, dtype)
    bench.check_same("symgrad", l0, g0, *kernel(params, X1, Y1), dtype)
    g0["W1"][0, 0] += 1e-2 * np.abs(g0["W1"]).max()  # (the check can fail)
    with pytest.raises(AssertionError):
        bench.check_same("changed", l0, g0, *kernel(params, X, Y), dtype)


def test_the_gemm_floor_does_the_steps_gemms():
    """3 GEMMs per layer but the first (no gradient of the input): counted through np.matmul."""
    calls = []
    real = np.matmul

    def counting(a, b, out=None):
        calls.append((a.shape, b.shape))
        return real(a, b, out=out)
    floor = bench.gemm_floor(bench.sizes_of(4), 7, "float64")
    np.matmul = counting
    try:
        floor()
    finally:
        np.matmul = real
    assert len(calls) == 3 * 4 - 1
    assert ((7, 64), (64, 64)) in calls and ((10, 7), (7, 64)) in calls


def test_rounds_times_every_contender_each_round_and_ratios_are_per_round():
    t = bench.rounds({"hand": lambda: sum(range(2000)), "other": lambda: sum(range(4000))},
                     budget=0.05, min_rounds=4, max_rounds=6)
    assert set(t) == {"hand", "other"}
    assert 4 <= len(t["hand"][0]) == len(t["other"][0]) <= 6
    med, lo, hi = bench.ratio_stats(t, "other")
    assert lo <= med <= hi and med > 0


def test_workers_start_with_the_printed_settings():
    one, default = bench.worker_env("1", True), bench.worker_env("default", False)
    assert all(one[k] == "1" for k in bench.THREAD_VARS) and "XLA_FLAGS" in one
    assert all(one[k] == v for k, v in bench.MALLOC.items())
    assert not any(k in default for k in (*bench.THREAD_VARS, *bench.MALLOC, "XLA_FLAGS"))


@pytest.mark.slow
def test_pinning_malloc_removes_the_hand_written_steps_page_faults():
    """Unpinned, numpy's large temporaries are mmapped and unmapped per call (~1800 minor faults
    per call at depth 4, batch 2048, float64); pinned, the hand-written step pays none, as
    symgrad's preallocated buffers do not."""
    grid = dict(depths=[4], batches=[2048], dtypes=["float64"], labels=["int"], budget=0.05,
                rounds=[3, 3])
    faults = {}
    for pin in (False, True):
        res = bench.run_worker(["--grid", json.dumps(grid), "--threads", "1"], "1", pin, "grid")
        faults[pin] = res["cells"][0]["faults"]["hand"]
    assert faults[False] > 100 and faults[True] < 10, faults


@pytest.mark.slow
def test_quick_mode_prints_every_table():
    r = subprocess.run([sys.executable, str(BENCH), "--quick"], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "MALLOC_MMAP_THRESHOLD_=33554432" in out and "load average" in out
    for threads in ("### 1 BLAS thread", "### default threads"):
        assert out.count(threads) == 1
    rows = [line for line in out.splitlines() if line.startswith(("| 2 |", "| 4 |"))]
    assert len(rows) == 2 * 2 * 2 * 2  # threads × dtypes × depths × batches
    assert all(line.count("|") == 8 for line in rows)
