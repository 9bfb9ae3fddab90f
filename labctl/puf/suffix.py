"""Suffix array and LCP array of a bit string, and its LCP intervals (C: labctl/puf/c/sp800_suffix.c).

Used by the SP 800-90B t-tuple and LRS estimators (section 6.3.5 and 6.3.6), which need, for every
tuple length W, the largest number of occurrences of any W-bit tuple and the number of pairs of
equal W-bit tuples. Both follow from the LCP intervals of the suffix array (Abouelhoda, Kurtz and
Ohlebusch, "Replacing suffix trees with enhanced suffix arrays", 2004): the suffixes sharing a prefix
of length >= W form contiguous runs of the suffix array.

Construction: prefix doubling (Manber and Myers) started from 32-bit windows ordered by a radix sort,
one counting sort per doubling; LCP by Kasai's algorithm; the intervals by one stack pass.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from labctl.puf._sp800 import ffi, lib


def suffix_array_lcp(bits: NDArray[np.uint8]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Suffix array `sa` (start positions in lexicographic order, a shorter suffix before any
    extension of it) and `lcp`, where lcp[i] is the longest common prefix of suffixes sa[i-1] and
    sa[i] (lcp[0] = 0). Bits are 0/1; 1 <= n < 2**31."""
    b = np.ascontiguousarray(bits, dtype=np.uint8)
    n = b.size
    if n == 0:
        raise ValueError("bits: need at least one bit")
    if n >= 1 << 31:
        raise ValueError(f"bits: at most 2**31 - 1 bits, got {n}")
    sa = np.empty(n, dtype=np.int64)
    lcp = np.empty(n, dtype=np.int64)
    if lib.sp_suffix_array(ffi.from_buffer("uint8_t[]", b), n, ffi.from_buffer("int64_t[]", sa),
                           ffi.from_buffer("int64_t[]", lcp)) != 0:
        raise MemoryError(f"suffix array: out of memory for {n} bits")
    return sa, lcp


def lcp_interval_counts(lcp: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """From the LCP array of n suffixes: for every tuple length W = 0..v (v = longest repeat),
    `max_count[W]`: occurrences of the most frequent W-bit tuple (1 if none repeats), and
    `pairs[W]`: sum over distinct W-bit tuples of C(count, 2).

    Each LCP interval [lb, rb] with value l and enclosing value l_parent is the group of suffixes
    sharing a tuple of every length W in (l_parent, l]; a stack pass finds them all in O(n).
    """
    n = lcp.size
    v = int(lcp.max()) if n > 1 else 0
    max_count = np.ones(v + 2, dtype=np.int64)
    diff = np.zeros(v + 2, dtype=np.int64)
    if n > 1:
        lc = np.ascontiguousarray(lcp, dtype=np.int64)
        if lib.sp_lcp_intervals(ffi.from_buffer("int64_t[]", lc), n, ffi.from_buffer("int64_t[]", max_count),
                                ffi.from_buffer("int64_t[]", diff)) != 0:
            raise MemoryError(f"LCP intervals: out of memory for {n} suffixes")
    # Nested intervals are larger than the ones they contain: the largest group of length >= W
    # is the largest interval whose value is >= W.
    max_count = np.maximum.accumulate(max_count[::-1])[::-1].copy()
    pairs = np.cumsum(diff)
    return max_count[:v + 1], pairs[:v + 1]
