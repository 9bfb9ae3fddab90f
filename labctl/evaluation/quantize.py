"""Uniform DAC/ADC quantizers between symmetric bounds.

Convention of the field's reference simulator (../shared/reference/standards-and-methods.md,
§Analog in-memory computing accuracy): an n-bit converter has 2^n - 2 steps over the signed range
[-bound, bound], so zero is a level and the range is symmetric (one code of 2^n is unused).
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def quantization_step(bits: int, bound: float) -> float:
    """Step of an n-bit converter over [-bound, bound]: 2 * bound / (2^bits - 2), same unit as bound."""
    if not (isinstance(bits, (int, np.integer)) and 2 <= bits <= 32):
        raise ValueError(f"bits: must be an integer in [2, 32], got {bits!r}")
    if not (np.isfinite(bound) and bound > 0):
        raise ValueError(f"bound: must be a positive finite number, got {bound!r}")
    return 2.0 * float(bound) / (2 ** int(bits) - 2)


def quantize(values: ArrayLike, bits: int | None, bound: float) -> NDArray[np.float64]:
    """Clip `values` to [-bound, bound] and round to the nearest of the 2^bits - 1 levels.

    bits=None clips only (an ideal converter with a finite range). Ties round half to even (numpy's
    rounding), as a converter's decision threshold sits between levels.
    """
    x = np.clip(np.asarray(values, dtype=np.float64), -bound, bound)
    if bits is None:
        if not (np.isfinite(bound) and bound > 0):
            raise ValueError(f"bound: must be a positive finite number, got {bound!r}")
        return x
    step = quantization_step(bits, bound)
    return np.clip(np.round(x / step) * step, -bound, bound)
