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

The predictors, the scoreboard and the count tables run in C (labctl/puf/c/sp800_predict.c, the
cffi module labctl.puf._sp800), one pass over the samples each; they return C, N and the longest
run, and steps 4-5 are computed here.
"""
from __future__ import annotations

import math
import numpy as np
from numpy.typing import NDArray

from labctl.puf._sp800 import ffi, lib
from labctl.puf.entropy import Z_ALPHA, Estimate

#: MultiMCW window sizes (6.3.7).
MCW_WINDOWS = (63, 255, 1023, 4095)
#: Lag predictors: lags 1..D (6.3.8).
LAG_DEPTH = lib.SP_LAG_DEPTH
#: MultiMMC: Markov orders 1..D, at most this many (x, y) pairs kept per order (6.3.9).
MMC_DEPTH = lib.SP_MMC_DEPTH
MMC_MAX_ENTRIES = lib.SP_MMC_MAX_ENTRIES
#: LZ78Y: prefixes of 1..B samples, at most this many prefixes in the dictionary (6.3.10).
LZ78Y_DEPTH = lib.SP_LZ78Y_DEPTH
LZ78Y_MAX_DICTIONARY = lib.SP_LZ78Y_MAX_DICTIONARY

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


# ---------------------------------------------------------------- the predictors (C)


def _run_c(estimator: str, symbols: NDArray[np.integer], alphabet: int | None) -> tuple[int, int, int]:
    """(C, N, longest run) from the C implementation of one estimator on samples 0..alphabet-1."""
    a = np.asarray(symbols)
    limit = 256 if alphabet is None else alphabet
    if not 1 <= limit <= 256:
        raise ValueError(f"alphabet: must be 1-256, got {alphabet}")
    if a.size and (int(a.min()) < 0 or int(a.max()) >= limit):
        raise ValueError(f"symbols: values must be in [0, {limit - 1}], got [{int(a.min())}, {int(a.max())}]")
    s = np.ascontiguousarray(a, dtype=np.uint8)
    out = np.zeros(3, dtype=np.int64)
    args = [ffi.from_buffer("uint8_t[]", s), s.size] + ([] if alphabet is None else [alphabet])
    if getattr(lib, f"sp_{estimator}")(*args, ffi.from_buffer("int64_t[]", out)) != 0:
        raise MemoryError(f"{estimator}: out of memory on {s.size} samples")
    return int(out[0]), int(out[1]), int(out[2])


def multi_mcw(symbols: NDArray[np.int64], alphabet: int) -> Estimate:
    """6.3.7: four most-common-in-window predictors (windows 63, 255, 1023, 4095; a window's mode
    ties to the value seen most recently; a window not yet full guesses wrong)."""
    n = symbols.size
    w_max = MCW_WINDOWS[-1]
    if n < w_max + 1:
        return Estimate("multi_mcw", None, {"reason": f"needs more than {w_max} samples, got {n}"})
    correct, steps, longest = _run_c("multi_mcw", symbols, alphabet)
    return prediction_estimate("multi_mcw", correct, steps, longest, alphabet)


def lag(symbols: NDArray[np.int64], alphabet: int) -> Estimate:
    """6.3.8: 128 predictors, lag d guesses the sample d steps back."""
    n = symbols.size
    if n < 3:
        return Estimate("lag", None, {"reason": f"needs at least 3 samples, got {n}"})
    correct, steps, longest = _run_c("lag", symbols, None)
    return prediction_estimate("lag", correct, steps, longest, alphabet)


def multi_mmc(symbols: NDArray[np.int64], alphabet: int) -> Estimate:
    """6.3.9: Markov predictors of order 1..16 from the counts of (previous m samples, next)."""
    n = symbols.size
    if n < 3:
        return Estimate("multi_mmc", None, {"reason": f"needs at least 3 samples, got {n}"})
    correct, steps, longest = _run_c("multi_mmc", symbols, alphabet)
    return prediction_estimate("multi_mmc", correct, steps, longest, alphabet)


def lz78y(symbols: NDArray[np.int64], alphabet: int) -> Estimate:
    """6.3.10: LZ78-like dictionary of prefixes of 1..16 samples; the prefix whose most common next
    sample was seen most often predicts (ties to the longer prefix)."""
    n = symbols.size
    b = LZ78Y_DEPTH
    if n < b + 2:
        return Estimate("lz78y", None, {"reason": f"needs more than {b + 1} samples, got {n}"})
    correct, steps, longest = _run_c("lz78y", symbols, alphabet)
    return prediction_estimate("lz78y", correct, steps, longest, alphabet)
