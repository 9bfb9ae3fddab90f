"""Suffix array and LCP array of a bit string, vectorized with numpy.

Used by the SP 800-90B t-tuple and LRS estimators (section 6.3.5 and 6.3.6), which need, for every
tuple length W, the largest number of occurrences of any W-bit tuple and the number of pairs of
equal W-bit tuples. Both follow from the LCP intervals of the suffix array (Abouelhoda, Kurtz and
Ohlebusch, "Replacing suffix trees with enhanced suffix arrays", 2004): the suffixes sharing a prefix
of length >= W form contiguous runs of the suffix array.

Construction: prefix doubling (Manber and Myers) started from 32-bit windows, one numpy sort per
doubling; LCP by binary lifting over the rank arrays of every doubling level.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

#: Bits per initial window: ranks of 32-bit prefixes come straight from a packed integer.
WINDOW = 32


def _windows(bits: NDArray[np.uint8]) -> NDArray[np.int64]:
    """Packed WINDOW-bit window starting at each position (zero-padded past the end)."""
    n = bits.size
    padded = np.concatenate([bits.astype(np.int64), np.zeros(WINDOW, dtype=np.int64)])
    win = np.zeros(n, dtype=np.int64)
    for j in range(WINDOW):
        win = (win << 1) | padded[j:j + n]
    return win


def _dense_ranks(keys: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64], int]:
    """(order, rank per position starting at 1, number of distinct keys)."""
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    new = np.empty(sk.size, dtype=bool)
    new[0] = True
    np.not_equal(sk[1:], sk[:-1], out=new[1:])
    ranks_sorted = np.cumsum(new, dtype=np.int64)
    rank = np.empty(keys.size, dtype=np.int64)
    rank[order] = ranks_sorted
    return order, rank, int(ranks_sorted[-1])


def suffix_array_lcp(bits: NDArray[np.uint8]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Suffix array `sa` (start positions in lexicographic order, a shorter suffix before any
    extension of it) and `lcp`, where lcp[i] is the longest common prefix of suffixes sa[i-1] and
    sa[i] (lcp[0] = 0). Bits are 0/1; n >= 1."""
    b = np.asarray(bits, dtype=np.uint8)
    n = b.size
    if n == 0:
        raise ValueError("bits: need at least one bit")
    win = _windows(b)
    remaining = np.minimum(n - np.arange(n, dtype=np.int64), WINDOW)
    # Zero padding plus the remaining length orders 32-bit prefixes as suffixes are ordered
    # (a suffix that ends sorts before its extensions) and makes them equal only if identical.
    order, rank, distinct = _dense_ranks(win * (WINDOW + 1) + remaining)
    levels: list[tuple[int, NDArray[np.int64]]] = [(WINDOW, rank)]
    k = WINDOW
    while distinct < n:
        second = np.zeros(n, dtype=np.int64)
        if k < n:
            second[:n - k] = rank[k:]
        order, rank, distinct = _dense_ranks(rank * (n + 1) + second)
        k *= 2
        levels.append((k, rank))
    sa = order
    lcp = np.zeros(n, dtype=np.int64)
    if n == 1:
        return sa, lcp
    a, c = sa[:-1], sa[1:]
    common = np.zeros(n - 1, dtype=np.int64)
    # Binary lifting: from the longest level down, extend the common prefix by a whole level
    # whenever the two suffixes have the same rank there (equal prefixes of that length).
    for size, rk in reversed(levels):
        ext = np.concatenate([rk, [0]])  # position n (past the end) ranks below every suffix
        pa, pc = a + common, c + common
        same = ext[np.minimum(pa, n)] == ext[np.minimum(pc, n)]
        same &= (pa < n) & (pc < n)
        common += same * size
    # The last < WINDOW bits: leading equal bits of the packed windows, capped by the lengths left.
    wext = np.concatenate([win, [0]])
    pa, pc = np.minimum(a + common, n), np.minimum(c + common, n)
    diff = wext[pa] ^ wext[pc]
    lead = WINDOW - np.frexp(diff.astype(np.float64))[1]  # frexp exponent = bit length (0 for 0)
    lead = np.minimum(lead, np.minimum(n - pa, n - pc))
    lcp[1:] = common + lead
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
    values: list[int] = []
    sizes: list[int] = []
    parents: list[int] = []
    stack_l = [0]
    stack_lb = [0]
    seq = lcp.tolist()
    seq.append(0)  # closes every open interval
    for i in range(1, n + 1):
        li = seq[i]
        lb = i - 1
        top = stack_l[-1]
        while li < top:
            stack_l.pop()
            start = stack_lb.pop()
            below = stack_l[-1]
            values.append(top)
            sizes.append(i - start)
            parents.append(li if li > below else below)
            lb = start
            top = below
        if li > top:
            stack_l.append(li)
            stack_lb.append(lb)
    max_count = np.ones(v + 2, dtype=np.int64)
    pairs = np.zeros(v + 2, dtype=np.int64)
    if values:
        val = np.asarray(values, dtype=np.int64)
        size = np.asarray(sizes, dtype=np.int64)
        par = np.asarray(parents, dtype=np.int64)
        np.maximum.at(max_count, val, size)
        # Nested intervals are larger than the ones they contain: the largest group of length >= W
        # is the largest interval whose value is >= W.
        max_count = np.maximum.accumulate(max_count[::-1])[::-1].copy()
        choose2 = size * (size - 1) // 2
        diff = np.zeros(v + 2, dtype=np.int64)
        np.add.at(diff, par + 1, choose2)
        np.add.at(diff, val + 1, -choose2)
        pairs = np.cumsum(diff)
    return max_count[:v + 1], pairs[:v + 1]
