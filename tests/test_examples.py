"""The examples run as they are (smoke tests, each in its own interpreter); digits for real."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(name, **env):
    return subprocess.run([sys.executable, str(ROOT / "examples" / name)], capture_output=True,
                          text=True, cwd=ROOT, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **env})


def test_xor_learns_all_four_points():
    r = run("xor.py")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "4/4 right" in r.stdout and "WRONG" not in r.stdout


def test_logistic_regression():
    r = run("logistic_regression.py")
    assert r.returncode == 0, r.stdout + r.stderr
    names = dict(re.findall(r"(\w+) = (\w+)", "".join(
        line for line in r.stdout.splitlines(True) if line.startswith("# "))))
    held = {v: k for k, v in names.items()}  # display name → generated name
    assert f"{held['dW1']} = {held['G_z1']} @ X" in r.stdout  # ∇W1 = G_z1ᵀ X, one GEMM


@pytest.mark.slow  # 3–7 s: run by .ci/run's -m slow step, keeping the default run under 10 min
def test_digits_reaches_97_percent_within_a_minute():
    pytest.importorskip("sklearn")
    r = run("digits.py")
    assert r.returncode == 0, r.stdout + r.stderr
    acc = float(re.search(r"test accuracy ([\d.]+)%", r.stdout).group(1))
    seconds = float(re.search(r"epochs in ([\d.]+)s", r.stdout).group(1))
    assert acc >= 97.0 and seconds < 60


@pytest.mark.slow  # 3–7 s: run by .ci/run's -m slow step, keeping the default run under 10 min
def test_lstm_equals_torch_and_learns_the_sequence_task():
    r = run("lstm.py")
    assert r.returncode == 0, r.stdout + r.stderr
    acc = float(re.search(r"test accuracy ([\d.]+)%", r.stdout).group(1))
    assert acc >= 95.0
    if "skipped" not in r.stdout:  # torch installed: the copied-weights comparison ran
        err = float(re.search(r"torch.nn.LSTM's to ([\d.e+-]+)", r.stdout).group(1))
        assert err < 1e-9


@pytest.mark.slow  # 3–7 s: run by .ci/run's -m slow step, keeping the default run under 10 min
def test_transformer_sorts_sequences_and_equals_torch():
    r = run("transformer.py")
    assert r.returncode == 0, r.stdout + r.stderr
    acc = float(re.search(r"test token accuracy ([\d.]+)%", r.stdout).group(1))
    assert acc >= 99.0
    if "skipped" not in r.stdout:  # torch installed: the copied-weights comparison ran
        err = float(re.search(r"equal torch's .* to ([\d.e+-]+) \(relative\)", r.stdout).group(1))
        assert err < 1e-9


@pytest.mark.slow  # 3–7 s: run by .ci/run's -m slow step, keeping the default run under 10 min
def test_cnn_digits_reaches_98_percent():
    """conv → relu → pool → conv → relu → pool → dense → softmax on the 8×8 digits, for real."""
    pytest.importorskip("sklearn")
    r = run("cnn_digits.py")
    assert r.returncode == 0, r.stdout + r.stderr
    acc = float(re.search(r"test accuracy ([\d.]+)%", r.stdout).group(1))
    assert acc >= 98.0


@pytest.mark.slow  # 3–7 s: run by .ci/run's -m slow step, keeping the default run under 10 min
def test_newton_softmax_matches_sklearn_in_ten_steps():
    """Softmax regression on the digits: Newton from the derived 650 × 650 Hessian by vec[W],
    against scikit-learn's LogisticRegression(C=1) (the example exits 1 on a gap > 1e-5)."""
    pytest.importorskip("sklearn")
    r = run("newton_softmax.py")
    assert r.returncode == 0, r.stdout + r.stderr
    assert float(re.search(r"LogisticRegression: ([\d.e+-]+)", r.stdout).group(1)) < 1e-5


def test_newton_logistic_matches_sklearn_in_ten_steps():
    """Newton's method from the derived Hessian, against scikit-learn's LogisticRegression(C=1)."""
    pytest.importorskip("sklearn")
    r = run("newton_logistic.py")
    assert r.returncode == 0, r.stdout + r.stderr
    steps = int(re.search(r"; (\d+) Newton steps", r.stdout).group(1))
    gap = float(re.search(r"LogisticRegression: ([\d.e+-]+)", r.stdout).group(1))
    assert steps <= 10 and gap < 1e-5
