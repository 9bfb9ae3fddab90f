"""BLAS threading pinned where results must not depend on the core count (issue 18, item 6).

OpenBLAS splits long reductions (dot products and norms, e.g. of the device fit's least-squares residuals)
and large products over its threads, and each split sums in another order: the same seed gave another
device fit and other inference outputs with 1 and 2 threads. Inside `single_blas()` every BLAS library
loaded in the process (numpy's and scipy's OpenBLAS, MKL) runs on one thread whatever OMP_NUM_THREADS /
OPENBLAS_NUM_THREADS / MKL_NUM_THREADS say, so a reduction is always summed in the same order.
Parallelism comes from processes (sweeps, scripts/agad_seeds.py --workers) instead, which keeps every run
reproducible. `single_blas()` is a context manager and, as `@single_blas()`, a decorator.

OpenBLAS also picks its kernels by CPU, and each kernel sums in its own order: the same seed gave other AGAD
figures on an AMD EPYC (OpenBLAS's Haswell kernels) than on an Intel Xeon (SkylakeX kernels), and the same
figures when the AMD machine was made to run SkylakeX's. `pin_openblas_kernel()` (called when labctl is
imported) fixes the choice for the process and the processes it starts, through OPENBLAS_CORETYPE, before
numpy loads OpenBLAS: Haswell's kernels, which every x86-64 CPU with AVX2 and FMA runs, so the same seed gives
the same numbers on any such CPU. A value the user set is kept.
"""
from __future__ import annotations

import contextlib
import logging
import os
import platform
import sys
import threading
from collections.abc import Iterator, Mapping
from typing import Any

_controller_lock = threading.Lock()
_controller: Any = None  # threadpoolctl.ThreadpoolController, found once (inspecting the libraries is slow)


@contextlib.contextmanager
def single_blas() -> Iterator[None]:
    """Run the enclosed BLAS/LAPACK calls on one thread (restored after)."""
    global _controller
    with _controller_lock:
        if _controller is None:
            from threadpoolctl import ThreadpoolController

            _controller = ThreadpoolController()
    with _controller.limit(limits=1, user_api="blas"):
        yield


#: The OpenBLAS kernels every process of labctl runs where the CPU has them (x86-64 with AVX2 and FMA).
OPENBLAS_KERNEL = "Haswell"


def openblas_kernel_for(machine: str, cpu_flags: frozenset[str], environ: Mapping[str, str]) -> str | None:
    """The OPENBLAS_CORETYPE to set for a CPU (`platform.machine()`, its /proc/cpuinfo flags) under `environ`:
    OPENBLAS_KERNEL on x86-64 with avx2 and fma, unless the user chose a core type; None where nothing is set
    (another architecture, where OpenBLAS's kernels for the CPU are the only ones, or an older x86-64)."""
    if "OPENBLAS_CORETYPE" in environ or machine.lower() not in ("x86_64", "amd64"):
        return None
    return OPENBLAS_KERNEL if {"avx2", "fma"} <= cpu_flags else None


def _cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (Linux); empty where it cannot be read."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def pin_openblas_kernel() -> str | None:
    """Set OPENBLAS_CORETYPE (see the module docstring) for this process and its children, where numpy has not
    loaded OpenBLAS yet (labctl calls it on import); returns the value set, or None."""
    if "numpy" in sys.modules:
        # Too late for this process; pinning only its children would make them sum differently from it.
        logging.getLogger(__name__).debug("numpy was imported before labctl: OpenBLAS keeps its own kernels")
        return None
    kernel = openblas_kernel_for(platform.machine(), _cpu_flags(), os.environ)
    if kernel is None:
        return None
    os.environ["OPENBLAS_CORETYPE"] = kernel
    return kernel
