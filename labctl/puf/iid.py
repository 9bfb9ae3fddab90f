"""NIST SP 800-90B (January 2018) IID track and restart tests: section 5 and 3.1.4.

- Permutation tests (5.1): 19 statistics (excursion, directional runs: number, longest, increases
  vs decreases, runs about the median: number, longest, average and largest collision time,
  periodicity and covariance at lags 1, 2, 8, 16, 32, bzip2 length of the samples written as decimal
  text) on the samples and on seeded Fisher-Yates shuffles of them. C0 counts the shuffles whose
  statistic is larger than the original's, C1 the equal ones; a statistic rejects IID if
  C0 + C1 <= 5 or C0 >= shuffles - 5 (the original ranks among the top or bottom 0.05 %). Binary
  samples use conversion I (ones per 8-bit block) for the directional, periodicity and covariance
  statistics and conversion II (8-bit blocks as bytes) for the collision ones, as the text says.
  As in NIST's ea_iid, a statistic stops being counted once it can no longer reject (more than 5
  shuffles on either side), and shuffling stops when every statistic is decided.
- Chi-square tests (5.2): independence and goodness of fit, binary and non-binary, p < 0.001 rejects.
- Restart tests (3.1.4): the sanity check on an r x c restart matrix (the largest count of one value
  in any row or column against a cutoff simulated for the claimed entropy H_I), and the assessment of
  the row-wise and column-wise data (validation: min(H_r, H_c) >= H_I / 2).

The shuffles use numpy's seeded generator, so C0/C1 cannot equal NIST's (xoshiro256**) bit for bit;
the statistics are deterministic and equal to the reference tool's definitions.
"""
from __future__ import annotations

import bz2
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import chi2

from labctl.puf import entropy

#: Shuffles of the permutation tests (5.1).
SHUFFLES = 10_000
#: Lags of the periodicity and covariance statistics (5.1.9, 5.1.10).
LAGS = (1, 2, 8, 16, 32)
STATISTICS = ("excursion", "num_directional_runs", "len_directional_runs", "num_increases_decreases",
              "num_runs_median", "len_runs_median", "avg_collision", "max_collision",
              *(f"periodicity_{p}" for p in LAGS), *(f"covariance_{p}" for p in LAGS), "compression")
#: Chi-square tests reject at p below this (5.2).
CHI_SQUARE_ALPHA = 0.001


def conversion_1(bits: NDArray[np.int64]) -> NDArray[np.int64]:
    """Number of ones in each 8-bit block (the last block may be short)."""
    pad = (-bits.size) % 8
    return np.concatenate([bits, np.zeros(pad, dtype=bits.dtype)]).reshape(-1, 8).sum(axis=1)


def conversion_2(bits: NDArray[np.int64]) -> NDArray[np.int64]:
    """Each 8-bit block as a byte, first bit most significant (the last block zero-padded)."""
    pad = (-bits.size) % 8
    blocks = np.concatenate([bits, np.zeros(pad, dtype=bits.dtype)]).reshape(-1, 8)
    return blocks @ (1 << np.arange(7, -1, -1))


def _runs(signs: NDArray[np.bool_]) -> tuple[int, int]:
    """(number of runs, longest run) of a boolean sequence."""
    if signs.size == 0:
        return 0, 0
    change = np.flatnonzero(signs[1:] != signs[:-1])
    bounds = np.concatenate([[-1], change, [signs.size - 1]])
    return int(change.size + 1), int(np.diff(bounds).max())


def collision_lengths(s: NDArray[np.int64]) -> list[int]:
    """5.1.7: from each start, the number of samples up to and including the first repeated value;
    the next start is the sample after it."""
    n = s.size
    order = np.argsort(s, kind="stable")
    nxt = np.full(n, n, dtype=np.int64)
    same = s[order[1:]] == s[order[:-1]]
    nxt[order[:-1][same]] = order[1:][same]
    # the first repeat after a start st is at min(nxt[st:]) (a later i has nxt[i] > i)
    suffix_min = np.minimum.accumulate(nxt[::-1])[::-1].tolist()
    out, st = [], 0
    while st < n and suffix_min[st] < n:
        j = suffix_min[st]
        out.append(j - st + 1)
        st = j + 1
    return out


def statistics(symbols: NDArray[np.int64], raw: NDArray[np.int64], binary: bool, mean: float,
               median: float) -> NDArray[np.float64]:
    """The 19 permutation-test statistics (STATISTICS order) of one ordering of the samples;
    `symbols` ranked 0..k-1, `raw` the sample values (excursion, covariance and compression)."""
    out = np.empty(len(STATISTICS))
    dev = np.cumsum(raw - mean)
    out[0] = float(np.max(np.abs(dev)))
    seq = conversion_1(symbols) if binary else symbols
    up = seq[:-1] <= seq[1:]
    out[1], out[2] = _runs(up)
    n_up = int(up.sum())
    out[3] = max(n_up, up.size - n_up)
    out[4], out[5] = _runs(symbols >= median)
    col = collision_lengths(conversion_2(symbols) if binary else symbols)
    out[6] = sum(col) / len(col) if col else 0.0  # NIST divides 0 by 0 there; no collision scores 0
    out[7] = max(col, default=0)
    per = conversion_1(symbols) if binary else symbols
    cov = per if binary else raw
    for j, p in enumerate(LAGS):
        out[8 + j] = int(np.count_nonzero(per[:-p] == per[p:])) if per.size > p else 0
        out[13 + j] = int(np.dot(cov[:-p], cov[p:])) if cov.size > p else 0
    text = " ".join(map(str, raw.tolist())).encode()
    out[18] = len(bz2.compress(text, 5))
    return out


@dataclass(frozen=True)
class PermutationResult:
    """Per statistic: the original value, C0 (shuffles above), C1 (equal), C2 (below), and whether
    it rejects IID."""

    original: dict[str, float]
    c0: dict[str, int]
    c1: dict[str, int]
    c2: dict[str, int]
    shuffles: int
    rejected: list[str] = field(default_factory=list)

    @property
    def iid(self) -> bool:
        return not self.rejected


def _prepare(samples: ArrayLike) -> tuple[NDArray[np.int64], NDArray[np.int64], bool, float, float]:
    raw, _ = entropy.as_samples(samples)
    values, ranked = np.unique(raw, return_inverse=True)
    ranked = ranked.reshape(-1).astype(np.int64)
    binary = values.size <= 2
    if binary:
        raw = ranked
    median = 0.5 if binary else float(np.median(ranked))
    return ranked, raw, binary, float(raw.mean()), median


def permutation_tests(samples: ArrayLike, shuffles: int = SHUFFLES, seed: int = 0) -> PermutationResult:
    """5.1 on samples of 1-8 bits, with `shuffles` Fisher-Yates shuffles from a seeded generator."""
    if shuffles < 12:
        raise ValueError(f"shuffles: need at least 12, got {shuffles}")
    ranked, raw, binary, mean, median = _prepare(samples)
    t = statistics(ranked, raw, binary, mean, median)
    counts = np.zeros((3, t.size), dtype=np.int64)
    rng = np.random.default_rng(seed)
    open_ = np.ones(t.size, dtype=bool)
    done = 0
    for _ in range(shuffles):
        if not open_.any():
            break
        perm = rng.permutation(ranked.size)
        tp = statistics(ranked[perm], raw[perm], binary, mean, median)
        counts[0] += open_ & (tp > t)
        counts[1] += open_ & (tp == t)
        counts[2] += open_ & (tp < t)
        open_ &= ~((counts[0] + counts[1] > 5) & (counts[1] + counts[2] > 5))
        done += 1
    rejected = [name for j, name in enumerate(STATISTICS)
                if counts[0, j] + counts[1, j] <= 5 or counts[1, j] + counts[2, j] <= 5]
    as_dict = lambda row: {name: int(row[j]) for j, name in enumerate(STATISTICS)}  # noqa: E731
    return PermutationResult(original={name: float(t[j]) for j, name in enumerate(STATISTICS)},
                             c0=as_dict(counts[0]), c1=as_dict(counts[1]), c2=as_dict(counts[2]),
                             shuffles=done, rejected=rejected)


# ---------------------------------------------------------------- 5.2 chi-square tests


def _bins(expected: NDArray[np.float64]) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Group categories, in increasing order of expectation (ties by category), into bins of expected
    count >= 5, a short last bin merged into the one before; returns (bin of each category, bin
    expectations)."""
    order = np.lexsort((np.arange(expected.size), expected))
    bin_of = np.empty(expected.size, dtype=np.int64)
    sums: list[float] = []
    current, b = 0.0, 0
    for idx in order:
        if current >= 5.0:
            sums.append(current)
            b += 1
            current = 0.0
        bin_of[idx] = b
        current += float(expected[idx])
    if b != 0 and current < 5.0:
        bin_of[bin_of == b] = b - 1
        sums[-1] += current
    else:
        sums.append(current)
    return bin_of, np.asarray(sums)


@dataclass(frozen=True)
class ChiSquare:
    """One chi-square test: statistic, degrees of freedom, p-value and whether it rejects IID."""

    name: str
    score: float
    df: int
    p_value: float

    @property
    def rejects(self) -> bool:
        return self.p_value < CHI_SQUARE_ALPHA

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "score": self.score, "df": self.df, "p_value": self.p_value,
                "rejects": self.rejects}


def _p_value(score: float, df: int) -> float:
    return float(chi2.sf(score, df)) if df > 0 else 1.0


def independence(samples: ArrayLike) -> ChiSquare:
    """5.2.1 (non-binary: non-overlapping pairs against p_i p_j floor(L/2), binned to >= 5 expected,
    df = bins - k) or 5.2.3 (binary: non-overlapping m-bit tuples, m <= 11 the largest with
    min(p0, p1)^m floor(L/m) >= 5, df = 2^m - 2)."""
    s, _, binary, _, _ = _prepare(samples)
    n = s.size
    if binary:
        p1 = float(s.sum()) / n
        p0 = 1.0 - p1
        m = 11
        while m > 1 and min(p0, p1) ** m * (n // m) < 5:
            m -= 1
        if m < 2:
            return ChiSquare("independence", 0.0, 0, 1.0)
        blocks = n // m
        tuples = s[:blocks * m].reshape(blocks, m) @ (1 << np.arange(m - 1, -1, -1))
        occ = np.bincount(tuples, minlength=1 << m)
        w = np.array([bin(i).count("1") for i in range(1 << m)])
        e = p1 ** w * p0 ** (m - w) * blocks
        score = float(np.sum((occ - e) ** 2 / e))
        return ChiSquare("independence", score, (1 << m) - 2, _p_value(score, (1 << m) - 2))
    k = int(s.max()) + 1
    p = np.bincount(s, minlength=k) / n
    expected = np.outer(p, p).reshape(-1) * math.floor(n * 0.5)
    bin_of, bin_exp = _bins(expected)
    pairs = s[0:n - 1:2] * k + s[1:n:2]
    observed = np.bincount(bin_of[pairs], minlength=bin_exp.size)
    score = float(np.sum((observed - bin_exp) ** 2 / bin_exp))
    df = bin_exp.size - k
    return ChiSquare("independence", score, df, _p_value(score, df))


def goodness_of_fit(samples: ArrayLike) -> ChiSquare:
    """5.2.2 (non-binary: counts of each value in 10 equal parts against p_i floor(L/10), binned to
    >= 5 expected, df = 9 (bins - 1)) or 5.2.4 (binary: zeros and ones in 10 parts, df = 9)."""
    s, _, binary, _, _ = _prepare(samples)
    n = s.size
    part = n // 10
    parts = s[:10 * part].reshape(10, part)
    if binary:
        p = float(s.sum()) / n
        o1 = parts.sum(axis=1)
        o0 = part - o1
        e0, e1 = (1.0 - p) * part, p * part
        score = float(np.sum((o0 - e0) ** 2 / e0 + (o1 - e1) ** 2 / e1))
        return ChiSquare("goodness_of_fit", score, 9, _p_value(score, 9))
    k = int(s.max()) + 1
    p = np.bincount(s, minlength=k) / n
    bin_of, bin_exp = _bins(p * math.floor(n / 10.0))
    score = 0.0
    for row in parts:
        observed = np.bincount(bin_of[row], minlength=bin_exp.size)
        score += float(np.sum((observed - bin_exp) ** 2 / bin_exp))
    df = 9 * (bin_exp.size - 1)
    return ChiSquare("goodness_of_fit", score, df, _p_value(score, df))


@dataclass(frozen=True)
class IidAssessment:
    """The IID track: permutation and chi-square tests, and if they all pass the IID min-entropy
    (most common value, 6.3.1; for multi-bit samples min(H_original, bits * H_bitstring))."""

    permutation: PermutationResult
    chi_square: tuple[ChiSquare, ChiSquare]
    min_entropy: float | None

    @property
    def iid(self) -> bool:
        return self.permutation.iid and not any(c.rejects for c in self.chi_square)

    def to_dict(self) -> dict[str, Any]:
        return {"iid": self.iid, "min_entropy": self.min_entropy,
                "permutation": {"shuffles": self.permutation.shuffles, "rejected": self.permutation.rejected,
                                "original": self.permutation.original, "c0": self.permutation.c0,
                                "c1": self.permutation.c1, "c2": self.permutation.c2},
                "chi_square": [c.to_dict() for c in self.chi_square]}


def assess_iid(samples: ArrayLike, bits_per_symbol: int | None = None, shuffles: int = SHUFFLES,
               seed: int = 0) -> IidAssessment:
    """Section 5 on samples of 1-8 bits; min_entropy (bits per sample) is None when IID is rejected."""
    raw, width = entropy.as_samples(samples, bits_per_symbol)
    perm = permutation_tests(raw, shuffles, seed)
    chis = (independence(raw), goodness_of_fit(raw))
    h = None
    if perm.iid and not any(c.rejects for c in chis):
        _, ranked = np.unique(raw, return_inverse=True)
        h = min(float(width), entropy._most_common(ranked.reshape(-1)).min_entropy)
        if np.unique(raw).size > 2:
            h = min(h, width * entropy.most_common_value(entropy.to_bitstring(raw, width)).min_entropy)
    return IidAssessment(perm, chis, h)


# ---------------------------------------------------------------- 3.1.4 restart tests


def restart_cutoff(h_initial: float, alphabet: int, rows: int, cols: int, rounds: int = 100_000,
                   seed: int = 0) -> int:
    """3.1.4.3: the largest acceptable count of one value in a row or column of 1000 restarts, from
    `rounds` simulated rows of the worst-case ("inverted near-uniform") source with min-entropy
    h_initial (floor(1/p) values of probability p = 2^-H_I and one with the rest), at the
    1 - alpha quantile, alpha = 1 - 0.99^(1/(r + c))."""
    p = 2.0 ** -h_initial
    k_eff = math.ceil(1.0 / p)
    if k_eff > alphabet:
        raise ValueError(f"h_initial: {h_initial} bits needs at least {k_eff} values, the samples have {alphabet}")
    probs = np.full(k_eff, p)
    probs[-1] = 1.0 - p * (k_eff - 1)
    rng = np.random.default_rng(seed)
    top = rng.multinomial(cols, probs, size=rounds).max(axis=1)
    top.sort()
    alpha = 1.0 - math.exp(math.log(0.99) / (rows + cols))
    return int(top[int(math.floor((1.0 - alpha) * rounds)) - 1])


@dataclass(frozen=True)
class RestartResult:
    """The sanity check (largest row/column count of one value X_max against the cutoff) and the
    row-wise and column-wise assessments (H_r, H_c, bits per sample); passes when X_max <= cutoff
    and min(H_r, H_c) >= H_I / 2; min_entropy = min(H_I, H_r, H_c) then, else None."""

    x_row: int
    x_col: int
    cutoff: int
    h_row: float | None
    h_col: float | None
    h_initial: float

    @property
    def sanity_ok(self) -> bool:
        return max(self.x_row, self.x_col) <= self.cutoff

    @property
    def passed(self) -> bool:
        return (self.sanity_ok and self.h_row is not None and self.h_col is not None
                and min(self.h_row, self.h_col) >= self.h_initial / 2.0)

    @property
    def min_entropy(self) -> float | None:
        return min(self.h_initial, self.h_row, self.h_col) if self.passed else None


def max_row_col_counts(matrix: NDArray[np.int64]) -> tuple[int, int]:
    """Largest count of one value within any row, and within any column."""
    k = int(matrix.max()) + 1
    def top(rows: NDArray[np.int64]) -> int:
        offs = rows + (np.arange(rows.shape[0]) * k)[:, None]
        return int(np.bincount(offs.reshape(-1), minlength=rows.shape[0] * k).max())
    return top(matrix), top(matrix.T)


def restart_tests(matrix: ArrayLike, h_initial: float, bits_per_symbol: int | None = None,
                  iid: bool = False, rounds: int = 100_000, seed: int = 0, shuffles: int = SHUFFLES) -> RestartResult:
    """3.1.4 on an r x c matrix of restart samples (row i: the c samples after restart i; the text
    uses 1000 x 1000) with the initial entropy estimate h_initial (bits per sample). H_r and H_c come
    from the non-IID assessment of the rows (resp. columns) concatenated, or the IID one if iid."""
    m = np.asarray(matrix)
    if m.ndim != 2:
        raise ValueError(f"matrix: expected a 2-D restart matrix, got shape {m.shape}")
    flat, width = entropy.as_samples(m.reshape(-1), bits_per_symbol)
    m = flat.reshape(m.shape)
    x_r, x_c = max_row_col_counts(m)
    alphabet = max(2, int(np.unique(m).size))
    cutoff = restart_cutoff(h_initial, 1 << width if alphabet <= 1 << width else alphabet, m.shape[0],
                            m.shape[1], rounds, seed)
    if max(x_r, x_c) > cutoff:
        return RestartResult(x_r, x_c, cutoff, None, None, h_initial)
    def h(data: NDArray[np.int64]) -> float | None:
        if iid:
            return assess_iid(data, width, shuffles, seed).min_entropy
        return entropy.assess_samples(data, width).min_entropy
    return RestartResult(x_r, x_c, cutoff, h(m.reshape(-1)), h(m.T.reshape(-1)), h_initial)
