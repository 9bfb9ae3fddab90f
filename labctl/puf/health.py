"""NIST SP 800-90B section 4.4 health tests on raw bits: Repetition Count and Adaptive Proportion.

Both are defined by the claimed min-entropy H per sample and the false-alarm probability alpha
(2^-20 by default, the value the text recommends):
  - Repetition Count Test (4.4.1): fails when one value repeats C = 1 + ceil(-log2(alpha) / H) times
    in a row;
  - Adaptive Proportion Test (4.4.2): in each window of W = 1024 samples (binary data), fails when
    the window's first value occurs C = 1 + CRITBINOM(W, 2^-H, 1 - alpha) times or more, where
    CRITBINOM(n, p, q) is the smallest k with P(Binomial(n, p) <= k) >= q.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import binom

from labctl.puf.entropy import as_bits

ALPHA = 2.0 ** -20
APT_WINDOW_BINARY = 1024


class HealthTestFailure(Exception):
    """A health test tripped: the noise source is stuck or biased beyond its claimed entropy."""


def _check_entropy(h: float) -> None:
    if not (0.0 < h <= 1.0) or not math.isfinite(h):
        raise ValueError(f"claimed_entropy: {h!r} bits per bit is outside the allowed range (0, 1]")


def rct_cutoff(claimed_entropy: float, alpha: float = ALPHA) -> int:
    """Repetition Count Test cutoff C = 1 + ceil(-log2(alpha) / H)."""
    _check_entropy(claimed_entropy)
    return 1 + math.ceil(-math.log2(alpha) / claimed_entropy)


def apt_cutoff(claimed_entropy: float, window: int = APT_WINDOW_BINARY, alpha: float = ALPHA) -> int:
    """Adaptive Proportion Test cutoff C = 1 + CRITBINOM(W, 2^-H, 1 - alpha), i.e. the smallest C with
    P(Binomial(W, 2^-H) >= C) <= alpha (upper tail from the survival function, which keeps its
    precision where 1 - alpha would round)."""
    _check_entropy(claimed_entropy)
    p = 2.0 ** -claimed_entropy
    k = np.arange(window + 1)
    tail = binom.sf(k - 1, window, p)  # P(X >= k)
    return int(k[np.argmax(tail <= alpha)])


@dataclass(frozen=True)
class HealthReport:
    """Outcome of both tests on one bit stream (counts only: no sample values)."""

    n_bits: int
    claimed_entropy: float
    rct_cutoff: int
    rct_longest_run: int
    rct_passed: bool
    apt_cutoff: int
    apt_window: int
    apt_windows: int
    apt_max_count: int
    apt_passed: bool

    @property
    def passed(self) -> bool:
        return self.rct_passed and self.apt_passed

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def run_health_tests(bits: ArrayLike, claimed_entropy: float, alpha: float = ALPHA,
                     window: int = APT_WINDOW_BINARY) -> HealthReport:
    """Run RCT over the whole stream and APT over each complete window of `window` bits."""
    s = as_bits(bits)
    c_rct = rct_cutoff(claimed_entropy, alpha)
    c_apt = apt_cutoff(claimed_entropy, window, alpha)
    change = np.flatnonzero(s[1:] != s[:-1])
    edges = np.concatenate([[-1], change, [s.size - 1]])
    longest = int(np.max(np.diff(edges)))
    n_windows = s.size // window
    max_count = 0
    if n_windows:
        w = s[:n_windows * window].reshape(n_windows, window)
        first = w[:, :1]
        counts = np.count_nonzero(w == first, axis=1)
        max_count = int(counts.max())
    return HealthReport(n_bits=int(s.size), claimed_entropy=claimed_entropy, rct_cutoff=c_rct,
                        rct_longest_run=longest, rct_passed=longest < c_rct, apt_cutoff=c_apt,
                        apt_window=window, apt_windows=n_windows, apt_max_count=max_count,
                        apt_passed=max_count < c_apt)
