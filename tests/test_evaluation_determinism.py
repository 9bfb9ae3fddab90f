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


def _openblas_kernels(imports: str, **env: str) -> tuple[str | None, set[str]]:
    """After `import IMPORTS, numpy` in a fresh process: its OPENBLAS_CORETYPE and the kernels ('architecture')
    of every OpenBLAS it loaded."""
    base = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    code = (f"import {imports}, numpy, os, json, threadpoolctl; print(json.dumps([os.environ.get("
            "'OPENBLAS_CORETYPE'), [i['architecture'] for i in threadpoolctl.threadpool_info() "
            "if i['internal_api'] == 'openblas']]))")
    proc = subprocess.run([sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    coretype, kernels = json.loads(proc.stdout)
    return coretype, set(kernels)


def test_importing_labctl_or_the_emulator_pins_one_openblas_kernel_on_any_x86_64_cpu() -> None:
    # OpenBLAS's kernel for this CPU sums in its own order (an AMD EPYC and an Intel Xeon gave other AGAD
    # figures for the same seed); labctl fixes it before numpy loads OpenBLAS, and keeps a user's choice.
    import platform

    from labctl.core.blas import OPENBLAS_KERNEL, _cpu_flags, openblas_kernel_for

    assert openblas_kernel_for(platform.machine(), _cpu_flags(), {}) == OPENBLAS_KERNEL, \
        "this test needs an x86-64 CPU with AVX2 and FMA"
    # set for the process and its children, and in effect (numpy's and scipy's OpenBLAS both)
    assert _openblas_kernels("labctl") == (OPENBLAS_KERNEL, {OPENBLAS_KERNEL})
    assert _openblas_kernels("emulator") == (OPENBLAS_KERNEL, {OPENBLAS_KERNEL})
    assert _openblas_kernels("labctl", OPENBLAS_CORETYPE="Sandybridge") == ("Sandybridge", {"Sandybridge"})
    # numpy first: too late to pin this process, so its children are not pinned either (they sum as it does)
    coretype, _ = _openblas_kernels("numpy, labctl")
    assert coretype is None
    # this suite's own process (conftest imports labctl first), so that it sums as the processes it starts do
    import numpy  # noqa: F401  (loads its OpenBLAS, if no test before did)
    import threadpoolctl

    assert os.environ.get("OPENBLAS_CORETYPE") == OPENBLAS_KERNEL
    assert {i["architecture"] for i in threadpoolctl.threadpool_info() if i["internal_api"] == "openblas"} == {OPENBLAS_KERNEL}


def test_the_openblas_pin_applies_only_where_the_cpu_runs_it_and_the_user_chose_nothing() -> None:
    from labctl.core.blas import OPENBLAS_KERNEL, openblas_kernel_for

    avx2 = frozenset({"sse2", "avx", "avx2", "fma"})
    assert openblas_kernel_for("x86_64", avx2, {}) == OPENBLAS_KERNEL
    assert openblas_kernel_for("AMD64", avx2 | {"avx512f"}, {}) == OPENBLAS_KERNEL
    assert openblas_kernel_for("x86_64", frozenset({"sse2", "avx"}), {}) is None  # would not run Haswell's kernels
    assert openblas_kernel_for("x86_64", avx2 - {"fma"}, {}) is None
    assert openblas_kernel_for("aarch64", frozenset(), {}) is None
    assert openblas_kernel_for("x86_64", avx2, {"OPENBLAS_CORETYPE": "Zen"}) is None
