"""BLAS threading pinned where results must not depend on the core count (issue 18, item 6).

OpenBLAS splits long reductions (dot products and norms, e.g. of the device fit's least-squares residuals)
and large products over its threads, and each split sums in another order: the same seed gave another
device fit and other inference outputs with 1 and 2 threads. Inside `single_blas()` every BLAS library
loaded in the process (numpy's and scipy's OpenBLAS, MKL) runs on one thread whatever OMP_NUM_THREADS /
OPENBLAS_NUM_THREADS / MKL_NUM_THREADS say, so a reduction is always summed in the same order.
Parallelism comes from processes (sweeps, scripts/agad_seeds.py --workers) instead, which keeps every run
reproducible. `single_blas()` is a context manager and, as `@single_blas()`, a decorator.
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
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
