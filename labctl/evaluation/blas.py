"""BLAS threading pinned for reproducible evaluations (issue 18, item 6).

OpenBLAS splits long level-1 reductions (dot products and norms of the ~10^4-10^5-element residual
vectors of the device fit's LSMR solver) and large products over its threads, and each split sums
in another order: the same seed gave another device fit, hence other training results, with 1 and
2 threads. Inside `one_blas_thread()` every BLAS library loaded in the process (numpy's and scipy's
OpenBLAS, MKL) runs on one thread whatever OMP_NUM_THREADS / OPENBLAS_NUM_THREADS / MKL_NUM_THREADS
say, so a reduction is always summed in the same order. Parallelism across runs comes from
processes (scripts/agad_seeds.py --workers), which keeps every run reproducible.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from threadpoolctl import threadpool_limits

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the block with every BLAS library of the process limited to one thread (restored after)."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def single_blas_thread(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorator form of `one_blas_thread` for functions whose results must not depend on core count."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with one_blas_thread():
            return fn(*args, **kwargs)

    return wrapper
