"""The C implementations of the SP 800-90B prediction estimators (6.3.7-6.3.10) and of the suffix and
LCP arrays, against plain per-step Python readings of the text (with the tie rules of NIST's tool, see
labctl/puf/prediction.py) on small seeded inputs of several alphabets and structures."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from labctl.puf import prediction, suffix


def follow(guesses: list[list[int | None]], s: list[int], skip_none: bool) -> tuple[int, int, int]:
    """(C, N, longest run) of the scoreboard: the winner's guess counts; then every predictor that
    guessed right scores, and of those now at the top score the last one becomes the winner.
    skip_none: a step where the winner has no guess neither extends nor ends the run."""
    k = len(guesses[0])
    scores, winner, correct, run, longest = [0] * k, 0, 0, 0, 0
    for g, x in zip(guesses, s):
        if not (skip_none and g[winner] is None):
            if g[winner] == x:
                correct += 1
                run += 1
                longest = max(longest, run)
            else:
                run = 0
        hit = [j for j in range(k) if g[j] is not None and g[j] == x]
        for j in hit:
            scores[j] += 1
        top = max(scores)
        at_top = [j for j in hit if scores[j] == top]
        if at_top:
            winner = at_top[-1]
    return correct, len(guesses), longest


def ref_mcw(s: list[int]) -> tuple[int, int, int]:
    guesses = []
    for i in range(63, len(s)):
        g: list[int | None] = []
        for w in prediction.MCW_WINDOWS:
            if i < w:
                g.append(None)
                continue
            window = s[i - w:i]
            counts = Counter(window)
            best = max(counts.values())
            g.append(next(v for v in reversed(window) if counts[v] == best))  # ties: most recent
        guesses.append(g)
    return follow(guesses, s[63:], skip_none=False)


def ref_lag(s: list[int]) -> tuple[int, int, int]:
    guesses = [[s[i - d] if i >= d else None for d in range(1, 129)] for i in range(1, len(s))]
    return follow(guesses, s[1:], skip_none=False)


def most_common_next(counts: Counter) -> int | None:
    """The most frequent next value, ties to the larger value; None when there is none."""
    if not counts:
        return None
    best = max(counts.values())
    return max(y for y, c in counts.items() if c == best)


def ref_mmc(s: list[int]) -> tuple[int, int, int]:
    tables: list[dict[tuple, Counter]] = [dict() for _ in range(16)]
    guesses = []
    for i in range(len(s)):
        if i >= 2:
            guesses.append([most_common_next(tables[m - 1].get(tuple(s[i - m:i]), Counter())) if i >= m else None
                            for m in range(1, 17)])
        for m in range(1, min(16, i) + 1):
            tables[m - 1].setdefault(tuple(s[i - m:i]), Counter())[s[i]] += 1
    return follow(guesses, s[2:], skip_none=True)


def ref_lz78y(s: list[int]) -> tuple[int, int, int]:
    table: dict[tuple, Counter] = {}
    correct = run = longest = 0
    for i in range(16, len(s)):
        if i > 16:
            best, guess = 0, None
            for m in range(1, 17):  # ties to the longer prefix
                counts = table.get(tuple(s[i - m:i]))
                if counts and max(counts.values()) >= best:
                    best, guess = max(counts.values()), most_common_next(counts)
            if guess == s[i]:
                correct += 1
                run += 1
                longest = max(longest, run)
            else:
                run = 0
        for m in range(16, 0, -1):
            table.setdefault(tuple(s[i - m:i]), Counter())[s[i]] += 1
    return correct, len(s) - 17, longest


def sources() -> dict[str, tuple[np.ndarray, int]]:
    rng = np.random.default_rng(20)
    n = 4600
    lag7 = rng.integers(0, 2, n)
    flips = rng.random(n) < 0.05
    for i in range(7, n):
        lag7[i] = lag7[i - 7] ^ flips[i]
    walk = np.cumsum(rng.integers(-1, 2, n)) % 5
    return {"bits": (rng.integers(0, 2, n), 2), "biased_bits": ((rng.random(n) < 0.15).astype(int), 2),
            "lag7": (lag7, 2), "walk5": (walk, 5), "bytes": (rng.integers(0, 256, n), 256),
            "nibbles_skewed": (np.minimum(rng.geometric(0.3, n) - 1, 15), 16)}


SOURCES = sources()


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_predictors_agree_with_a_per_step_reading(name):
    s, k = SOURCES[name]
    seq = s.tolist()
    for estimator, ref in (("multi_mcw", ref_mcw), ("lag", ref_lag), ("multi_mmc", ref_mmc),
                           ("lz78y", ref_lz78y)):
        e = getattr(prediction, estimator)(s.astype(np.int64), k)
        got = (e.details["C"], e.details["N"], e.details["r"] - 1)
        assert got == ref(seq), (name, estimator)


def test_predictors_refuse_values_outside_the_alphabet():
    with pytest.raises(ValueError, match=r"symbols: values must be in \[0, 3\]"):
        prediction.multi_mmc(np.array([0, 1, 2, 4, 1, 0]), 4)
    with pytest.raises(ValueError, match="symbols"):
        prediction.lag(np.array([0, -1, 1, 0]), 2)


@pytest.mark.parametrize("name", ["bits", "biased_bits", "lag7"])
def test_suffix_and_lcp_arrays_agree_with_sorting(name):
    bits = SOURCES[name][0][:3000].astype(np.uint8)
    raw = bits.tobytes()
    expected = sorted(range(len(raw)), key=lambda i: raw[i:])  # a prefix sorts before its extensions
    sa, lcp = suffix.suffix_array_lcp(bits)
    assert sa.tolist() == expected
    for r in range(1, len(raw)):
        a, b = raw[expected[r - 1]:], raw[expected[r]:]
        common = next((j for j in range(min(len(a), len(b))) if a[j] != b[j]), min(len(a), len(b)))
        assert lcp[r] == common
    assert lcp[0] == 0
    # around the 64-bit initial window: short strings, zeros (every suffix a prefix of the longer ones)
    rng = np.random.default_rng(21)
    for n in (1, 2, 62, 63, 64, 65, 129):
        for b in (np.zeros(n, dtype=np.uint8), rng.integers(0, 2, n).astype(np.uint8)):
            raw = b.tobytes()
            assert suffix.suffix_array_lcp(b)[0].tolist() == sorted(range(n), key=lambda i: raw[i:]), n
    sa1, lcp1 = suffix.suffix_array_lcp(np.ones(100, dtype=np.uint8))
    assert sa1.tolist() == list(range(99, -1, -1)) and lcp1.tolist() == list(range(100))
