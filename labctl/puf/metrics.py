"""PUF quality metrics over a batch (ISO/IEC 20897 style), pure numpy on 0/1 arrays.

Notation: k devices, n response bits, T re-reads. Ideal values in brackets.
  uniformity      fraction of ones in one device's response                      [0.5]
  uniqueness      mean fractional Hamming distance over all device pairs          [0.5]
  bit-aliasing    fraction of ones of one bit position across devices            [0.5]
  steadiness      1 - mean fractional Hamming distance, reference vs re-reads     [1.0]
  min-entropy     per bit position, -log2 max(p, 1 - p) across devices           [1.0]
"""
from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray


def _bits2d(responses: ArrayLike, name: str = "responses") -> NDArray[np.float64]:
    a = np.asarray(responses)
    if a.ndim != 2 or a.shape[1] == 0:
        raise ValueError(f"{name}: expected shape (devices, bits), got {a.shape}")
    return a.astype(np.float64)


def uniformity(responses: ArrayLike) -> NDArray[np.float64]:
    """Fraction of ones of each device's response, shape (k,)."""
    return _bits2d(responses).mean(axis=1)


def pairwise_fhd(responses: ArrayLike) -> NDArray[np.float64]:
    """Fractional Hamming distance of every device pair i < j, shape (k(k-1)/2,)."""
    x = _bits2d(responses)
    k, n = x.shape
    if k < 2:
        raise ValueError(f"responses: uniqueness needs at least 2 devices, got {k}")
    ones = x.sum(axis=1)
    # |a xor b| = |a| + |b| - 2 a.b
    dist = (ones[:, None] + ones[None, :] - 2.0 * (x @ x.T)) / n
    iu = np.triu_indices(k, 1)
    return dist[iu]


def uniqueness(responses: ArrayLike) -> float:
    """Mean inter-device fractional Hamming distance."""
    return float(pairwise_fhd(responses).mean())


def bit_aliasing(responses: ArrayLike) -> NDArray[np.float64]:
    """Fraction of ones of each bit position across devices, shape (n,)."""
    return _bits2d(responses).mean(axis=0)


def intra_fhd(reference: ArrayLike, rereads: ArrayLike) -> NDArray[np.float64]:
    """Fractional Hamming distance of each re-read to its device's reference.

    reference: shape (k, n); rereads: shape (k, T, n). Returns shape (k, T)."""
    ref = _bits2d(reference, "reference")
    rr = np.asarray(rereads)
    if rr.ndim != 3 or rr.shape[0] != ref.shape[0] or rr.shape[2] != ref.shape[1]:
        raise ValueError(f"rereads: expected shape ({ref.shape[0]}, T, {ref.shape[1]}), got {rr.shape}")
    return np.mean(rr != ref[:, None, :].astype(rr.dtype), axis=2)


def steadiness(reference: ArrayLike, rereads: ArrayLike) -> NDArray[np.float64]:
    """1 - mean intra-device fractional Hamming distance of each device, shape (k,)."""
    return 1.0 - intra_fhd(reference, rereads).mean(axis=1)


def min_entropy_per_bit(responses: ArrayLike) -> NDArray[np.float64]:
    """-log2 max(p, 1 - p) of each bit position across devices, shape (n,)."""
    p = bit_aliasing(responses)
    return -np.log2(np.maximum(p, 1.0 - p))


def summary(values: ArrayLike) -> dict[str, float]:
    """Mean, standard deviation, min and max of a metric."""
    a = np.asarray(values, dtype=np.float64).ravel()
    if a.size == 0:
        return {"mean": math.nan, "std": math.nan, "min": math.nan, "max": math.nan}
    return {"mean": float(a.mean()), "std": float(a.std()), "min": float(a.min()), "max": float(a.max())}
