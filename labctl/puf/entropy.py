"""NIST SP 800-90B (January 2018) non-IID min-entropy estimators for binary samples, section 6.3.

Each estimator follows the numbered steps of its section; where the text leaves a numerical choice
open, the choice of NIST's reference implementation (usnistgov/SP800-90B_EntropyAssessment, C++,
cpp/shared/most_common.h, cpp/non_iid/{collision,markov,compression}_test.h, cpp/shared/lrs_test.h;
checked line by line, see docs/puf.md) is made so that the results agree with it:
  - the confidence factor is the exact normal quantile Z_(0.995) = 2.5758293035489008 (the text
    prints it rounded to 2.576);
  - the collision estimate solves its step-7 equation in closed form for binary data,
    p = 1/2 + sqrt(5/4 - X'/2), which is what the equation reduces to with F(q) = q(2q^2 + 2q + 1);
  - the Markov estimate uses the sample transition probabilities without a confidence bound
    (as in the final text).
The tests reproduce the reference tool's published self-test outputs (cpp/selftest/refdata) to
1e-9 or better: end to end on its data.pi.bin, and from the printed intermediate statistics on the
other binary self-test files.
An estimator that cannot run on the data (too few samples, no tuple repeated 35 times, ...)
returns None for its entropy, with the reason.

All functions take a 1-D array of 0/1 values (any integer or bool dtype).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import brentq

from labctl.puf._sp800 import ffi, lib
from labctl.puf.suffix import lcp_interval_counts, suffix_array_lcp

#: Upper 0.5 % point of the standard normal distribution (SP 800-90B writes 2.576).
Z_ALPHA = 2.5758293035489008
#: t-tuple and LRS: a tuple length counts while some tuple occurs at least this often (6.3.5).
TUPLE_CUTOFF = 35
#: Compression estimate: bits per block and dictionary size (6.3.4).
COMPRESSION_BLOCK_BITS = 6
COMPRESSION_DICTIONARY = 1000
#: Markov estimate: length of the most likely sequences considered (6.3.3).
MARKOV_LENGTH = 128


@dataclass(frozen=True)
class Estimate:
    """One estimator's result: min-entropy per bit (None if it could not run) and its intermediates."""

    name: str
    min_entropy: float | None
    details: dict[str, Any] = field(default_factory=dict)


def as_bits(bits: ArrayLike) -> NDArray[np.uint8]:
    """Validate a bit string: 1-D, values 0 or 1, at least 2 samples."""
    a = np.asarray(bits)
    if a.ndim != 1:
        raise ValueError(f"bits: expected a 1-D array, got shape {a.shape}")
    if a.size < 2:
        raise ValueError(f"bits: need at least 2 samples, got {a.size}")
    if a.dtype != np.bool_ and (a.min() < 0 or a.max() > 1):
        raise ValueError("bits: values must be 0 or 1")
    return a.astype(np.uint8)


def upper_confidence_bound(p_hat: float, n: int) -> float:
    """p_u = min(1, p + Z sqrt(p(1 - p)/(n - 1))): the 99 % upper bound on a probability estimated
    from n samples (MCV step 3, t-tuple step 5, LRS step 5; dimensionless)."""
    return min(1.0, p_hat + Z_ALPHA * math.sqrt(p_hat * (1.0 - p_hat) / (n - 1)))


def most_common_value(bits: ArrayLike) -> Estimate:
    """6.3.1: p_u from the mode's frequency; H = -log2 p_u (bits)."""
    return _most_common(as_bits(bits))


def _most_common(symbols: NDArray[np.integer]) -> Estimate:
    """6.3.1 on samples of any alphabet (bits per sample)."""
    n = symbols.size
    mode = int(np.bincount(symbols).max())
    p_hat = mode / n
    p_u = upper_confidence_bound(p_hat, n)
    return Estimate("most_common_value", -math.log2(p_u), {"mode": mode, "p_hat": p_hat, "p_u": p_u})


def collision(bits: ArrayLike) -> Estimate:
    """6.3.2: mean time to the first collision in successive runs of 2 or 3 samples."""
    s = as_bits(bits)
    n = s.size
    # t_i = 2 if the next two samples are equal, else 3 (any 3 bits hold a collision): a sequential
    # walk, in C
    out = np.zeros(3, dtype=np.int64)
    lib.sp_collision(ffi.from_buffer("uint8_t[]", np.ascontiguousarray(s)), n, ffi.from_buffer("int64_t[]", out))
    v, total, total_sq = (int(x) for x in out)
    if v < 2:
        return Estimate("collision", None, {"reason": f"only {v} collision(s) in {n} samples"})
    x_bar = total / v
    sigma = math.sqrt((total_sq - total * x_bar) / (v - 1))
    x_prime = max(2.0, x_bar - Z_ALPHA * sigma / math.sqrt(v))
    details = {"v": v, "sum_t": total, "x_bar": x_bar, "sigma_hat": sigma, "x_bar_prime": x_prime}
    if x_prime < 2.5:
        p = 0.5 + math.sqrt(1.25 - 0.5 * x_prime)
        return Estimate("collision", -math.log2(p), {**details, "p": p})
    return Estimate("collision", 1.0, {**details, "p": 0.5, "note": "no solution: full entropy"})


def markov(bits: ArrayLike) -> Estimate:
    """6.3.3: first-order Markov model; probability of the most likely 128-bit sequence."""
    s = as_bits(bits)
    n = s.size
    head, tail = s[:-1], s[1:]
    c0 = int(np.count_nonzero(head == 0))  # zeros among the first n-1 samples
    c1 = (n - 1) - c0
    c00 = int(np.count_nonzero((head == 0) & (tail == 0)))
    c10 = int(np.count_nonzero((head == 1) & (tail == 0)))
    p00 = c00 / c0 if c0 else 0.0
    p01 = 1.0 - p00 if c0 else 0.0
    p10 = c10 / c1 if c1 else 0.0
    p11 = 1.0 - p10 if c1 else 0.0
    p0 = (c0 + (1 if s[-1] == 0 else 0)) / n
    p1 = 1.0 - p0
    k = MARKOV_LENGTH

    def nlog(x: float) -> float:
        return -math.log2(x)

    candidates = []  # -log2 of the probability of each candidate sequence
    if p00 > 0:
        candidates.append(nlog(p0) + (k - 1) * nlog(p00))                      # 00...0
    if p01 > 0 and p10 > 0:
        candidates.append(nlog(p0) + (k // 2) * nlog(p01) + (k // 2 - 1) * nlog(p10))  # 0101...01
        candidates.append(nlog(p1) + (k // 2) * nlog(p10) + (k // 2 - 1) * nlog(p01))  # 1010...10
    if p01 > 0 and p11 > 0:
        candidates.append(nlog(p0) + nlog(p01) + (k - 2) * nlog(p11))          # 011...1
    if p10 > 0 and p00 > 0:
        candidates.append(nlog(p1) + nlog(p10) + (k - 2) * nlog(p00))          # 100...0
    if p11 > 0:
        candidates.append(nlog(p1) + (k - 1) * nlog(p11))                      # 11...1
    h_seq = min(candidates, default=float(k))
    return Estimate("markov", min(h_seq / k, 1.0),
                    {"p0": p0, "p1": p1, "p00": p00, "p01": p01, "p10": p10, "p11": p11,
                     "p_max": 2.0 ** -h_seq})


def _compression_g(z: float, log2_i: NDArray[np.float64], d: int, blocks: int) -> float:
    """G(z) of 6.3.4 step 7 for the blocks d+1..blocks, in closed form (C, one pass):
    G(z) = z (z * sum_t sum_{u<t} a_u + sum_t a_t) / v, with a_u = log2(u) (1 - z)^(u - 1);
    log2_i[k] = log2(k + 2)."""
    return float(lib.sp_compression_g(z, ffi.from_buffer("double[]", log2_i), d, blocks))


def compression(bits: ArrayLike) -> Estimate:
    """6.3.4: Maurer-style universal statistic on 6-bit blocks with a 1000-block dictionary."""
    s = as_bits(bits)
    b, d = COMPRESSION_BLOCK_BITS, COMPRESSION_DICTIONARY
    blocks = s.size // b
    if blocks <= d:
        return Estimate("compression", None,
                        {"reason": f"needs more than {d * b} bits, got {s.size}"})
    weights = 1 << np.arange(b - 1, -1, -1)
    symbols = s[:blocks * b].reshape(blocks, b).astype(np.int64) @ weights
    # Distance to the previous occurrence of the same block (i + 1 when there is none, as with an
    # empty dictionary slot in step 2 of the text).
    order = np.argsort(symbols, kind="stable")
    prev = np.full(blocks, -1, dtype=np.int64)
    same = symbols[order[1:]] == symbols[order[:-1]]
    prev[order[1:][same]] = order[:-1][same]
    idx = np.arange(d, blocks)
    dist = np.where(prev[d:] >= 0, idx - prev[d:], idx + 1)
    logs = np.log2(dist.astype(np.float64))
    v = blocks - d
    x_bar = float(logs.sum()) / v
    # The reference tool's sigma: c * sqrt(sum(log2 D)^2 / (v - 1) - X^2), as in step 5 of the text.
    sigma = 0.5907 * math.sqrt(float(np.dot(logs, logs)) / (v - 1) - x_bar * x_bar)
    return compression_from_statistics(x_bar, sigma, blocks)


def compression_from_statistics(x_bar: float, sigma_hat: float, blocks: int) -> Estimate:
    """6.3.4 steps 6-8 from the mean X and the scaled deviation sigma of log2 of the distances, for
    `blocks` 6-bit blocks in all (the first 1000 are the dictionary): X' = X - Z sigma / sqrt(v), then
    the p in [1/64, 1] whose expected statistic equals X' (full entropy if there is none)."""
    b, d = COMPRESSION_BLOCK_BITS, COMPRESSION_DICTIONARY
    if blocks <= d:
        raise ValueError(f"blocks: need more than {d}, got {blocks}")
    v = blocks - d
    x_prime = x_bar - Z_ALPHA * sigma_hat / math.sqrt(v)
    details: dict[str, Any] = {"x_bar": x_bar, "sigma_hat": sigma_hat, "x_bar_prime": x_prime}
    alphabet = 1 << b
    log2_i = np.log2(np.arange(2, blocks + 1, dtype=np.float64))

    def expected(p: float) -> float:
        q = (1.0 - p) / (alphabet - 1)
        return _compression_g(p, log2_i, d, blocks) + (alphabet - 1) * _compression_g(q, log2_i, d, blocks)

    p_low = 1.0 / alphabet
    if expected(p_low) <= x_prime:
        return Estimate("compression", 1.0, {**details, "p": p_low, "note": "no solution: full entropy"})
    if expected(1.0) >= x_prime:
        p = 1.0
    else:
        # The reference tool bisects to within 4 ulp of X'; Brent reaches the same root to machine
        # precision in fewer evaluations of the expectation.
        p = brentq(lambda x: expected(x) - x_prime, p_low, 1.0, xtol=1e-300, rtol=4 * np.finfo(float).eps,
                   maxiter=500)
    return Estimate("compression", -math.log2(p) / b, {**details, "p": p})


def tuple_estimates(bits: ArrayLike) -> tuple[Estimate, Estimate]:
    """6.3.5 t-tuple and 6.3.6 longest repeated substring, from one suffix array."""
    s = as_bits(bits)
    _, lcp = suffix_array_lcp(s)
    return _tuple_estimates(lcp)


def _symbol_lcp(sa: NDArray[np.int64], lcp: NDArray[np.int64], width: int) -> NDArray[np.int64]:
    """LCP array, in samples, of the suffixes that start on a sample boundary of the bit string of
    width-bit samples (MSB first), from the bit string's suffix and LCP arrays: those suffixes keep
    their order, and two neighbours share the smallest LCP between them, floored to whole samples."""
    keep = np.flatnonzero(sa % width == 0)
    out = np.zeros(keep.size, dtype=np.int64)
    if keep.size > 1:
        out[1:] = np.minimum.reduceat(lcp[:keep[-1] + 1], keep[:-1] + 1) // width
    return out


def _tuple_estimates(lcp: NDArray[np.int64]) -> tuple[Estimate, Estimate]:
    """6.3.5 and 6.3.6 from the LCP array of the n suffixes of the samples."""
    n = lcp.size
    q, pairs = lcp_interval_counts(lcp)  # index W = tuple length; q[W] most common count
    v = q.size - 1  # longest repeated substring
    u = 1
    while u <= v and q[u] >= TUPLE_CUTOFF:
        u += 1
    t = u - 1
    if t >= 1:
        w = np.arange(1, u)
        p_max = float(np.max((q[1:u] / (n - w + 1.0)) ** (1.0 / w)))
        p_u = upper_confidence_bound(p_max, n)
        t_tuple = Estimate("t_tuple", -math.log2(p_u), {"t": t, "p_hat_max": p_max, "p_u": p_u})
    else:
        t_tuple = Estimate("t_tuple", None, {"reason": f"no tuple occurs {TUPLE_CUTOFF} times"})
    if v >= u:
        w = np.arange(u, v + 1)
        total_pairs = (n - w) * (n - w + 1.0) / 2.0  # C(n - W + 1, 2)
        p_w = pairs[u:v + 1] / total_pairs
        p_hat = float(np.max(p_w ** (1.0 / w)))
        p_u = upper_confidence_bound(p_hat, n)
        lrs = Estimate("lrs", -math.log2(p_u), {"u": u, "v": v, "p_hat": p_hat, "p_u": p_u})
    else:
        lrs = Estimate("lrs", None, {"u": u, "v": v, "reason": "no repeated tuple longer than t"})
    return t_tuple, lrs


def t_tuple(bits: ArrayLike) -> Estimate:
    """6.3.5 alone (see tuple_estimates)."""
    return tuple_estimates(bits)[0]


def lrs(bits: ArrayLike) -> Estimate:
    """6.3.6 alone (see tuple_estimates)."""
    return tuple_estimates(bits)[1]


@dataclass(frozen=True)
class Assessment:
    """The non-IID track of SP 800-90B (section 6.1) on one sequence of samples.

    `estimates`: the estimators on the samples as given (for bits, all ten of 6.3.1-6.3.10; for
    samples of more than one bit, the seven of them that take any alphabet). `bitstring`: for
    multi-bit samples, all ten on the samples' bits (MSB first), else None. The assessed min-entropy
    per sample is min(H_original, bits_per_symbol * H_bitstring) with H_original the smallest literal
    estimate (at most bits_per_symbol) and H_bitstring the smallest bit-string one (at most 1), as
    the reference tool ea_non_iid computes its "Assessed min entropy".
    """

    n_bits: int
    estimates: dict[str, Estimate]
    bits_per_symbol: int = 1
    alphabet: int = 2
    bitstring: dict[str, Estimate] | None = None

    @property
    def n_samples(self) -> int:
        return self.n_bits // self.bits_per_symbol

    @property
    def h_original(self) -> float | None:
        """Smallest estimate on the samples as given, bits per sample (None if none could run)."""
        values = [e.min_entropy for e in self.estimates.values() if e.min_entropy is not None]
        return min([float(self.bits_per_symbol), *values]) if values else None

    @property
    def h_bitstring(self) -> float | None:
        """Smallest estimate on the bit string of multi-bit samples, bits per bit (None for bits)."""
        if self.bitstring is None:
            return None
        values = [e.min_entropy for e in self.bitstring.values() if e.min_entropy is not None]
        return min([1.0, *values])

    @property
    def min_entropy(self) -> float | None:
        """Assessed min-entropy, bits per sample."""
        h = self.h_original
        if h is None or self.bitstring is None:
            return h
        return min(h, self.bits_per_symbol * self.h_bitstring)

    def to_dict(self) -> dict[str, Any]:
        out = {"n_bits": self.n_bits, "n_samples": self.n_samples, "bits_per_symbol": self.bits_per_symbol,
               "alphabet": self.alphabet, "min_entropy": self.min_entropy, "h_original": self.h_original,
               "estimates": {k: asdict(e) for k, e in self.estimates.items()}}
        if self.bitstring is not None:
            out["h_bitstring"] = self.h_bitstring
            out["bitstring_estimates"] = {k: asdict(e) for k, e in self.bitstring.items()}
        return out


def _all_ten(bits: NDArray[np.uint8], sa_lcp: tuple[NDArray[np.int64], NDArray[np.int64]] | None = None
             ) -> dict[str, Estimate]:
    from labctl.puf import prediction  # imports this module's Estimate

    _, lcp = sa_lcp if sa_lcp is not None else suffix_array_lcp(bits)
    t_tup, lrs_est = _tuple_estimates(lcp)
    s = bits.astype(np.int64)
    found = (_most_common(bits), collision(bits), markov(bits), compression(bits), t_tup, lrs_est,
             prediction.multi_mcw(s, 2), prediction.lag(s, 2), prediction.multi_mmc(s, 2),
             prediction.lz78y(s, 2))
    return {e.name: e for e in found}


def assess(bits: ArrayLike) -> Assessment:
    """The ten non-IID estimators of 6.3.1-6.3.10 on a bit string (binary samples); the assessed
    min-entropy is the smallest of the ten (bits per bit)."""
    s = as_bits(bits)
    return Assessment(n_bits=int(s.size), estimates=_all_ten(s))


def as_samples(samples: ArrayLike, bits_per_symbol: int | None = None) -> tuple[NDArray[np.int64], int]:
    """Validate samples of 1-8 bits: 1-D, integers in [0, 2**bits_per_symbol); bits_per_symbol
    defaults to the bit length of the largest sample. Returns (samples, bits_per_symbol)."""
    a = np.asarray(samples)
    if a.ndim != 1:
        raise ValueError(f"samples: expected a 1-D array, got shape {a.shape}")
    if a.size < 2:
        raise ValueError(f"samples: need at least 2 samples, got {a.size}")
    if a.dtype != np.bool_ and not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"samples: expected integers, got dtype {a.dtype}")
    a = a.astype(np.int64)
    lo, hi = int(a.min()), int(a.max())
    width = bits_per_symbol if bits_per_symbol is not None else max(1, hi.bit_length())
    if not 1 <= width <= 8:
        raise ValueError(f"bits_per_symbol: must be 1-8, got {width}")
    if lo < 0 or hi >= 1 << width:
        raise ValueError(f"samples: values must be in [0, {(1 << width) - 1}] for {width}-bit samples, "
                         f"got [{lo}, {hi}]")
    return a, width


def to_bitstring(samples: NDArray[np.int64], bits_per_symbol: int) -> NDArray[np.uint8]:
    """Each sample as bits_per_symbol bits, most significant first (SP 800-90B section 6.4)."""
    shifts = np.arange(bits_per_symbol - 1, -1, -1)
    return ((samples[:, None] >> shifts) & 1).astype(np.uint8).reshape(-1)


def assess_samples(samples: ArrayLike, bits_per_symbol: int | None = None) -> Assessment:
    """The non-IID track on samples of 1-8 bits, as ea_non_iid runs it (its initial entropy estimate
    without a submitter's claim): samples with two distinct values are assessed as bits by all ten
    estimators; otherwise the samples (ranked 0..k-1 over the k values that occur) by the seven
    estimators that take any alphabet, and their bit string by all ten. See Assessment."""
    a, width = as_samples(samples, bits_per_symbol)
    from labctl.puf import prediction

    values, ranked = np.unique(a, return_inverse=True)
    ranked = ranked.reshape(-1).astype(np.int64)
    k = int(values.size)
    if k <= 2:
        return Assessment(n_bits=int(a.size) * width, estimates=_all_ten(ranked.astype(np.uint8)),
                          bits_per_symbol=width, alphabet=2)
    bits = to_bitstring(a, width)
    sa, lcp = suffix_array_lcp(bits)
    bitstring = _all_ten(bits, (sa, lcp))
    t_tup, lrs_est = _tuple_estimates(_symbol_lcp(sa, lcp, width))
    found = (_most_common(ranked), t_tup, lrs_est, prediction.multi_mcw(ranked, k), prediction.lag(ranked, k),
             prediction.multi_mmc(ranked, k), prediction.lz78y(ranked, k))
    return Assessment(n_bits=int(bits.size), estimates={e.name: e for e in found}, bits_per_symbol=width,
                      alphabet=k, bitstring=bitstring)
