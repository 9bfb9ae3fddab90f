"""Evaluation results do not depend on the number of BLAS threads (issue 18, item 6)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _training_json(tmp: Path, threads: int) -> dict[str, object]:
    """`labctl eval training` in a fresh process with every BLAS thread variable set to `threads`."""
    out = tmp / f"threads-{threads}"
    env = {**os.environ, **{v: str(threads) for v in THREAD_VARS}}
    # A 3x3 array: its 9 fitted devices give ~14,000 residuals, long enough for OpenBLAS to split the
    # fit's reductions over two threads (which changed the fit before the BLAS pinning).
    proc = subprocess.run([sys.executable, "-m", "labctl.cli", "eval", "training", "--seed", "0", "--devices", "3",
                           "--epochs", "1", "--algorithms", "fp,agad", "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    data = json.loads((out / "training.json").read_text())
    for result in data["digits"].values():
        result.pop("epoch_seconds")  # wall time, the only field that may differ
    return data


def test_training_gives_identical_numbers_with_one_and_two_blas_threads(tmp_path: Path) -> None:
    one = _training_json(tmp_path, 1)
    two = _training_json(tmp_path, 2)
    assert one["device_fit"] == two["device_fit"]  # exact float equality, through JSON's repr round trip
    assert one["population"] == two["population"]
    assert one["digits"] == two["digits"]
    assert one["digits"]["agad"]["pulses"] > 0
