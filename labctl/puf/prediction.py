"""NIST SP 800-90B (January 2018) prediction estimators, sections 6.3.7-6.3.10.

MultiMCW, Lag, MultiMMC and LZ78Y each run a set of predictors over the samples and count how often
the current best one (the "winner") guesses the next sample, C of N, and the longest run of correct
guesses r - 1. The estimate is -log2 max(P_global', P_local) (6.3.7 steps 4-5): P_global' the 99 %
upper bound on C/N, P_local the probability that makes a run of r or more in N guesses 1 % likely.

Where the text leaves a choice open, the one of NIST's reference tool ea_non_iid is made, so that
every printed value agrees with it (tests/test_sp800_90b_reference.py): the winner is the predictor
that most recently reached the highest score (in one step, the last one updated); a prediction from a
table of counts takes the largest count, ties to the larger symbol; MultiMMC keeps at most 100,000
(x, y) pairs per order and LZ78Y at most 65,536 prefixes, each table filled in order of first
occurrence; P_local is found by bisection with the run probability in extended precision.

Everything is vectorized with numpy: the predictors' scores over time are cumulative sums, the
winner follows from where a score equals the running maximum, and the count tables of MultiMMC and
LZ78Y are the occurrence counts of each context before each position, from one sort per context
length (no per-sample Python loop).
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
from numpy.typing import NDArray

from labctl.puf.entropy import Z_ALPHA, Estimate

#: MultiMCW window sizes (6.3.7).
MCW_WINDOWS = (63, 255, 1023, 4095)
#: Lag predictors: lags 1..D (6.3.8).
LAG_DEPTH = 128
#: Steps per scoreboard update of the lag predictors (see _Winner.feed).
LAG_SUBBLOCK = 256
#: MultiMMC: Markov orders 1..D, at most this many (x, y) pairs kept per order (6.3.9).
MMC_DEPTH = 16
MMC_MAX_ENTRIES = 100_000
#: LZ78Y: prefixes of 1..B samples, at most this many prefixes in the dictionary (6.3.10).
LZ78Y_DEPTH = 16
LZ78Y_MAX_DICTIONARY = 65_536
#: Time steps per block when a (predictors x steps) matrix is formed: bounds memory to ~10 MB.
_BLOCK_CELLS = 1 << 22

_LOG_ALPHA = math.log(0.99)


# ---------------------------------------------------------------- 6.3.7 steps 4-5 (shared)


def _log_no_run(p: float, r: int, n: int) -> float:
    """log of the probability that N guesses, each right with probability p, hold no run of r rights
    (the 6.3.7 step-5 expression, x from its fixed-point iteration), in extended precision."""
    ld = np.longdouble
    p_l, q = ld(p), ld(1.0) - ld(p)
    x, last = ld(1.0), ld(0.0)
    eps = np.finfo(np.longdouble).eps
    pr = p_l ** ld(r)
    i = 0
    while i <= 65 and (x - last) > eps * x:
        last = x
        x = ld(1.0) + q * pr * x ** ld(r + 1)
        i += 1
    return float(np.log(ld(1.0) - p_l * x) - np.log((ld(r + 1) - ld(r) * x) * q) - ld(n + 1) * np.log(x))


def _close(a: float, b: float) -> bool:
    """Equal to within 4 ulp (the bisection's stopping rule)."""
    return a == b or abs(a - b) <= 4 * np.finfo(float).eps * max(abs(a), abs(b)) or abs(a - b) <= np.finfo(float).tiny


def _p_local(r: int, n: int, low: float) -> float:
    """The p in [low, 1] with log P(no run of r in n) = log 0.99, by bisection."""
    lo, hi = low, 1.0
    lo_val, hi_val = math.inf, -math.inf
    p = (lo + hi) / 2.0
    val = _log_no_run(p, r, n)
    for _ in range(1076):
        if _close(val, _LOG_ALPHA):
            break
        if _LOG_ALPHA < val:
            lo, lo_val = p, val
        else:
            hi, hi_val = p, val
        if lo >= hi:
            return min(max(lo, hi), 1.0)
        if not (min(lo_val, hi_val) <= _LOG_ALPHA <= max(lo_val, hi_val)):
            return 1.0
        last, p = p, (lo + hi) / 2.0
        if not lo < p < hi or last == p:
            return hi
        val = _log_no_run(p, r, n)
        if not min(lo_val, hi_val) <= val <= max(lo_val, hi_val):
            return hi
    return p


def prediction_estimate(name: str, correct: int, n: int, longest_run: int, alphabet: int) -> Estimate:
    """6.3.7 steps 4-5 (shared by 6.3.8-6.3.10): min-entropy per sample from C correct guesses of N,
    the longest run of correct guesses and the alphabet size k (P is at least 1/k)."""
    p_global = correct / n
    if p_global > 0:
        p_prime = min(1.0, p_global + Z_ALPHA * math.sqrt(p_global * (1.0 - p_global) / (n - 1.0)))
    else:
        p_prime = 1.0 - 0.01 ** (1.0 / n)
    p = max(1.0 / alphabet, p_prime)
    p_local = None
    r = longest_run + 1
    if p < 1.0 and _log_no_run(p, r, n) > _LOG_ALPHA:
        p_local = _p_local(r, n, p)
        p = max(p, p_local)
    details = {"C": correct, "r": r, "N": n, "p_global": p_global, "p_global_prime": p_prime,
               "p_local": p_local}
    return Estimate(name, -math.log2(p), details)


# ---------------------------------------------------------------- following the winner


def _runs(seq: NDArray[np.bool_], run: int) -> tuple[int, int]:
    """(longest run of True in seq, counting `run` Trues before it; the run at its end)."""
    if seq.size == 0:
        return run, run
    c = np.cumsum(seq, dtype=np.int64)
    base = np.maximum.accumulate(np.where(seq, 0, c))
    lengths = c - base
    falses = np.flatnonzero(~seq)
    head = falses[0] if falses.size else seq.size
    lengths[:head] += run
    return int(lengths.max()), int(lengths[-1])


class _Winner:
    """Scoreboard of k predictors (6.3.7 step 3): each correct prediction scores 1; the winner, whose
    prediction is counted, is the predictor that most recently reached the top score (the last one
    updated in a step wins a tie made in that step). Fed block by block of (k x steps) matrices."""

    def __init__(self, k: int) -> None:
        self.scores = np.zeros(k, dtype=np.int64)
        self.winner = 0
        self.correct = 0
        self.run = 0
        self.longest = 0

    def feed(self, hits: NDArray[np.bool_], made: NDArray[np.bool_] | None = None) -> None:
        """hits[j, t]: predictor j guessed step t right; made[j, t]: it made a guess (None: always).
        A step where the winner makes no guess neither extends nor ends the run (6.3.9)."""
        k, m = hits.shape
        if m == 0:
            return
        top = int(self.scores.max())
        cand = np.flatnonzero(self.scores + m >= top)
        if cand.size < k:
            # a predictor more than m behind cannot reach the top in this block: it neither wins
            # nor moves the top, so only its total is needed
            scores, winner = self.scores[cand], int(np.searchsorted(cand, self.winner))
            self.scores += hits.sum(axis=1)
            sub = _Winner(cand.size)
            sub.scores, sub.winner, sub.correct, sub.run, sub.longest = scores, winner, self.correct, self.run, self.longest
            sub.feed(hits[cand], None if made is None else made[cand])
            self.scores[cand] = sub.scores
            self.winner = int(cand[sub.winner])
            self.correct, self.run, self.longest = sub.correct, sub.run, sub.longest
            return
        sc = np.cumsum(hits, axis=1, dtype=np.int64)
        sc += self.scores[:, None]
        events = hits & (sc == sc.max(axis=0))
        has = events.any(axis=0)
        last = (k - 1) - np.argmax(events[::-1], axis=0)
        idx = np.where(has, np.arange(m), -1)
        np.maximum.accumulate(idx, out=idx)
        after = np.where(idx >= 0, last[np.maximum(idx, 0)], self.winner)
        before = np.empty(m, dtype=np.int64)
        before[0] = self.winner
        before[1:] = after[:-1]
        cols = np.arange(m)
        right = hits[before, cols]
        if made is not None:
            right = right[made[before, cols]]
        self.correct += int(right.sum())
        longest, self.run = _runs(right, self.run)
        self.longest = max(self.longest, longest)
        self.scores = sc[:, -1].copy()
        self.winner = int(after[-1])


def _blocks(start: int, stop: int, k: int) -> Iterator[tuple[int, int]]:
    step = max(1024, _BLOCK_CELLS // max(k, 1))
    for a in range(start, stop, step):
        yield a, min(stop, a + step)


# ---------------------------------------------------------------- 6.3.7 MultiMCW


def _window_modes(s: NDArray[np.int64], w: int, a: int, b: int, alphabet: int) -> NDArray[np.int64]:
    """Most common value of s[i-w:i] for i in [a, b), ties to the value seen most recently."""
    ext = s[a - w:b]
    onehot = ext[None, :] == np.arange(alphabet)[:, None]
    cs = np.zeros((alphabet, ext.size + 1), dtype=np.int32)
    np.cumsum(onehot, axis=1, out=cs[:, 1:])
    m = b - a
    counts = cs[:, w:w + m] - cs[:, :m]
    pos = np.where(onehot, np.arange(ext.size, dtype=np.int32), -1)
    np.maximum.accumulate(pos, axis=1, out=pos)
    lastpos = pos[:, w - 1:w - 1 + m]  # last occurrence at or before i - 1
    key = counts.astype(np.int64) * (ext.size + 1) + lastpos
    return np.argmax(key, axis=0)


def multi_mcw(symbols: NDArray[np.int64], alphabet: int) -> Estimate:
    """6.3.7: four most-common-in-window predictors (windows 63, 255, 1023, 4095)."""
    n = symbols.size
    w_max = MCW_WINDOWS[-1]
    if n < w_max + 1:
        return Estimate("multi_mcw", None, {"reason": f"needs more than {w_max} samples, got {n}"})
    s = symbols.astype(np.int64)
    k = len(MCW_WINDOWS)
    first = MCW_WINDOWS[0]
    hits = np.zeros((k, n - first), dtype=bool)  # column t: prediction of s[first + t]
    for j, w in enumerate(MCW_WINDOWS):
        if alphabet == 2:
            c = np.concatenate([[0], np.cumsum(s, dtype=np.int64)])
            i = np.arange(w, n)
            mode = (2 * (c[i] - c[i - w]) > w).astype(np.int64)  # w is odd: no ties
            hits[j, w - first:] = mode == s[w:]
            continue
        for a, b in _blocks(w, n, alphabet):
            hits[j, a - first:b - first] = _window_modes(s, w, a, b, alphabet) == s[a:b]
    win = _Winner(k)
    for a, b in _blocks(0, n - first, k):
        win.feed(hits[:, a:b])
    return prediction_estimate("multi_mcw", win.correct, n - first, win.longest, alphabet)


# ---------------------------------------------------------------- 6.3.8 Lag


def lag(symbols: NDArray[np.int64], alphabet: int) -> Estimate:
    """6.3.8: 128 predictors, lag d guesses the sample d steps back."""
    n = symbols.size
    if n < 3:
        return Estimate("lag", None, {"reason": f"needs at least 3 samples, got {n}"})
    d = LAG_DEPTH
    s = symbols.astype(np.int16)
    padded = np.concatenate([np.full(d, -1, dtype=np.int16), s])  # -1 never equals a sample
    win = _Winner(d)
    for a, b in _blocks(1, n, d):
        # rows: lag 1..d; column t: step i = a + t predicts s[i] from s[i - lag]
        view = np.lib.stride_tricks.sliding_window_view(padded[a:b + d - 1], d)  # view[t, c] = s[a+t-d+c]
        hits = np.ascontiguousarray((view[:, ::-1] == s[a:b, None]).T)
        # short sub-blocks: once the lags' scores spread out, few can reach the top in one
        for c in range(0, b - a, LAG_SUBBLOCK):
            win.feed(hits[:, c:c + LAG_SUBBLOCK])
    return prediction_estimate("lag", win.correct, n - 1, win.longest, alphabet)


# ---------------------------------------------------------------- count tables (6.3.9, 6.3.10)


def _contexts(s: NDArray[np.int64], alphabet: int, depth: int) -> Iterator[NDArray[np.int64]]:
    """For m = 1..depth: an integer naming s[t:t+m] at each t (the context of position t + m), equal
    iff the tuples are equal, small enough that name * alphabet + sample fits in int64."""
    n = s.size
    bits = max(1, int(alphabet - 1).bit_length())
    key = s.astype(np.int64)
    dense = False
    for m in range(1, depth + 1):
        if m > 1:
            prev, new = key[1:], s[:n - m + 1]  # prev names s[t+1 .. t+m-1]
            if not dense and bits * (m + 1) <= 62:
                key = (new << (bits * (m - 1))) | prev
            else:
                if not dense:
                    prev = np.unique(prev, return_inverse=True)[1].reshape(-1).astype(np.int64)
                    dense = True
                key = np.unique(prev * alphabet + new, return_inverse=True)[1].reshape(-1).astype(np.int64)
        yield key[:n - m]


def _space(alphabet: int, m: int) -> int | None:
    """Number of possible m-tuples when their names are packed integers (see _contexts), else None."""
    bits = max(1, int(alphabet - 1).bit_length())
    return 1 << (bits * m) if bits * (m + 1) <= 62 else None


def _first_seen(keys: NDArray[np.integer], space: int | None) -> NDArray[np.int64]:
    """Position of the first occurrence of each element's value; `space` bounds the values (a
    direct table when small, else a sort)."""
    n = keys.size
    if space is not None and space <= 4 * n + 1024:
        table = np.empty(space, dtype=np.int64)
        table[keys[::-1]] = np.arange(n - 1, -1, -1)  # the last write, the first occurrence, wins
        return table[keys]
    _, first, inv = np.unique(keys, return_index=True, return_inverse=True)
    return first[inv.reshape(-1)]


def _first_values_allowed(keys: NDArray[np.integer], cap: int, space: int | None) -> NDArray[np.bool_] | None:
    """Which occurrences belong to the first `cap` distinct values (by first occurrence); None: all."""
    first = _first_seen(keys, space)
    starts = np.flatnonzero(first == np.arange(keys.size))  # sorted first occurrences
    if starts.size <= cap:
        return None
    return first <= starts[cap - 1]


def _prior_mode(ctx: NDArray[np.int64], y: NDArray[np.int64], counted: NDArray[np.bool_] | None,
                alphabet: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """For each position t: among earlier positions u < t with the same context whose (context, y)
    is counted, the largest count of one y and that y (ties to the larger y); count 0: none."""
    n = ctx.size
    order = np.argsort(ctx, kind="stable")
    count_before = np.zeros(n, dtype=np.int64)
    y_before = np.zeros(n, dtype=np.int64)
    if alphabet == 2:
        # sizes of the context groups in sorted order come from a histogram (no gather of ctx)
        sizes = np.bincount(ctx)
        sizes = sizes[sizes > 0]
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        code = (y + 1).astype(np.int8) if counted is None else np.where(counted, y + 1, 0).astype(np.int8)
        code = code[order]
        out = np.empty(n, dtype=np.int64)
        for value in (2, 1):  # y = 1, then y = 0
            hit = code == value
            c = np.cumsum(hit, dtype=np.int32)
            c -= hit  # counted occurrences before this one, from the start
            c -= np.repeat(c[starts], sizes)  # ... within its group
            if value == 2:
                n1 = c
            else:
                n0 = c
        out[order] = (np.maximum(n1, n0).astype(np.int64) << 1) | (n1 >= n0)
        return out >> 1, out & 1
    cs = ctx[order]
    start = np.empty(n, dtype=bool)
    start[0] = True
    np.not_equal(cs[1:], cs[:-1], out=start[1:])
    ys = y[order]
    # occurrence number of each (context, y) among counted ones, up to and including itself
    pair = ctx * alphabet + y
    porder = np.argsort(pair, kind="stable")
    ps = pair[porder]
    pstart = np.empty(n, dtype=bool)
    pstart[0] = True
    np.not_equal(ps[1:], ps[:-1], out=pstart[1:])
    okp = np.ones(n, dtype=bool) if counted is None else counted[porder]
    c = np.cumsum(okp, dtype=np.int64)
    cb = np.concatenate([[0], c[:-1]])
    pfirst = np.maximum.accumulate(np.where(pstart, np.arange(n), 0))
    occ = np.where(okp, c - cb[pfirst], 0)
    cnt = np.empty(n, dtype=np.int64)
    cnt[porder] = occ
    ev = cnt[order]  # in context-then-time order
    g = np.cumsum(start) - 1
    big = n + 1
    top = np.maximum.accumulate(g * big + ev) - g * big  # running largest count in the group
    val = np.where((ev == top) & (ev > 0), ys, -1)
    seg_start = start.copy()
    seg_start[1:] |= top[1:] != top[:-1]
    seg = np.cumsum(seg_start) - 1
    kk = alphabet + 1
    besty = np.maximum.accumulate(seg * kk + val + 1) - seg * kk - 1
    # state before each position: the one after the previous position of its group
    prev_top = np.concatenate([[0], top[:-1]])
    prev_y = np.concatenate([[0], besty[:-1]])
    prev_top[start] = 0
    count_before[order] = prev_top
    y_before[order] = np.where(prev_top > 0, prev_y, 0)
    return count_before, y_before


# ---------------------------------------------------------------- 6.3.9 MultiMMC


def multi_mmc(symbols: NDArray[np.int64], alphabet: int) -> Estimate:
    """6.3.9: Markov predictors of order 1..16 from the counts of (previous m samples, next)."""
    n = symbols.size
    if n < 3:
        return Estimate("multi_mmc", None, {"reason": f"needs at least 3 samples, got {n}"})
    s = symbols.astype(np.int64)
    depth = MMC_DEPTH
    steps = n - 2  # predictions of s[2] .. s[n-1]
    hits = np.zeros((depth, steps), dtype=bool)
    made = np.zeros((depth, steps), dtype=bool)
    for m, ctx in enumerate(_contexts(s, alphabet, depth), start=1):
        if ctx.size == 0:
            break
        y = s[m:]
        if alphabet == 2:
            ctx = ctx.astype(np.uint16)  # < 2**16: radix sorts
        counted = None
        space = _space(alphabet, m + 1)
        if space is None or space > MMC_MAX_ENTRIES:
            counted = _first_values_allowed(ctx.astype(np.int64) * alphabet + y, MMC_MAX_ENTRIES, space)
        cnt, pred = _prior_mode(ctx, y, counted, alphabet)
        # position i = m + t; step index i - 2 (order m predicts from i >= m + 1)
        lo = max(m + 1, 2)
        found = cnt[lo - m:] > 0
        made[m - 1, lo - 2:] = found
        hits[m - 1, lo - 2:] = found & (pred[lo - m:] == y[lo - m:])
    win = _Winner(depth)
    for a, b in _blocks(0, steps, depth):
        win.feed(hits[:, a:b], made[:, a:b])
    return prediction_estimate("multi_mmc", win.correct, steps, win.longest, alphabet)


# ---------------------------------------------------------------- 6.3.10 LZ78Y


def lz78y(symbols: NDArray[np.int64], alphabet: int) -> Estimate:
    """6.3.10: LZ78-like dictionary of prefixes of 1..16 samples; the prefix whose most common next
    sample was seen most often predicts (ties to the longer prefix)."""
    n = symbols.size
    b = LZ78Y_DEPTH
    if n < b + 2:
        return Estimate("lz78y", None, {"reason": f"needs more than {b + 1} samples, got {n}"})
    s = symbols.astype(np.int64)
    # the dictionary takes prefixes in order of first sight: by position, longer first within one
    firsts, lengths = [], []
    for m, ctx in enumerate(_contexts(s, alphabet, b), start=1):
        f = _first_seen(ctx[b - m:], _space(alphabet, m))  # positions b .. n-1
        first = f[f == np.arange(f.size)]
        firsts.append(first)
        lengths.append(np.full(first.size, m))
    first_all = np.concatenate(firsts)
    len_all = np.concatenate(lengths)
    limit_pos, limit_len = None, None
    if first_all.size > LZ78Y_MAX_DICTIONARY:
        o = np.lexsort((-len_all, first_all))[LZ78Y_MAX_DICTIONARY - 1]
        limit_pos, limit_len = int(first_all[o]), int(len_all[o])
    y = s[b:]
    steps = n - b - 1  # predictions of s[b+1] .. s[n-1]
    best_cnt = np.zeros(steps, dtype=np.int64)
    best_y = np.zeros(steps, dtype=np.int64)
    for m, ctx in enumerate(_contexts(s, alphabet, b), start=1):
        # best over prefix lengths with ties to the longer: take the shorter only when strictly better
        ctx = ctx[b - m:]
        if alphabet == 2:
            ctx = ctx.astype(np.uint16)  # < 2**16: radix sorts
        counted = None
        if limit_pos is not None:
            f = _first_seen(ctx, _space(alphabet, m))
            counted = (f < limit_pos) | ((f == limit_pos) & (m >= limit_len))
        cnt, pred = _prior_mode(ctx, y, counted, alphabet)
        cnt, pred = cnt[1:], pred[1:]
        better = (cnt > best_cnt) | ((cnt == best_cnt) & (cnt > 0))
        best_cnt[better] = cnt[better]
        best_y[better] = pred[better]
    right = (best_cnt > 0) & (best_y == y[1:])
    longest, _ = _runs(right, 0)
    return prediction_estimate("lz78y", int(right.sum()), steps, longest, alphabet)
