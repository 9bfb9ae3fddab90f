"""SP 800-90B estimators and health tests against literal readings of the text.

Each reference below is written straight from the numbered steps of SP 800-90B section 6.3 (slow,
plain Python, no shared code with labctl.puf.entropy), and the vectorized estimators must agree
with it to 1e-9 on several kinds of data. The collision estimate's closed form is checked against
the text's own equation (step 7, with F(1/z) = Gamma(3, z) z^-3 e^z) solved numerically.
"""
from __future__ import annotations

import math
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.special import gamma, gammaincc

from labctl.puf import entropy, health

Z = 2.5758293035489008  # Phi^-1(0.995); the text prints 2.576


def pu(p: float, n: int) -> float:
    return min(1.0, p + Z * math.sqrt(p * (1 - p) / (n - 1)))


# ---------------------------------------------------------------- literal references


def ref_mcv(s: list[int]) -> float:
    mode = Counter(s).most_common(1)[0][1]
    return -math.log2(pu(mode / len(s), len(s)))


def ref_collision(s: list[int]) -> float:
    L = len(s)
    t, i = [], 0  # 0-based version of steps 1-3
    while i < L - 1:
        if s[i] == s[i + 1]:
            t.append(2)
            i += 2
        elif i + 2 < L:
            t.append(3)
            i += 3
        else:
            break
    v = len(t)
    x = sum(t) / v
    sd = math.sqrt(sum((ti - x) ** 2 for ti in t) / (v - 1))
    xp = x - Z * sd / math.sqrt(v)

    def F(q: float) -> float:  # F(1/z) = Gamma(3, z) z^-3 e^z with z = 1/q
        z = 1.0 / q
        return gamma(3) * gammaincc(3, z) * z ** -3 * math.exp(z)

    def expected(p: float) -> float:
        q = 1 - p
        return p / q ** 2 * (1 + 0.5 * (1 / p - 1 / q)) * F(q) - p / q * 0.5 * (1 / p - 1 / q)

    lo, hi = 0.5 + 1e-12, 1 - 1 / 600  # e^(1/q) stays finite
    if not (expected(hi) <= xp <= expected(lo)):
        return 1.0 if xp > expected(lo) else -math.log2(hi)
    p = brentq(lambda q: expected(q) - xp, lo, hi, xtol=1e-15)
    return -math.log2(p)


def ref_markov(s: list[int]) -> float:
    L = len(s)
    p = [s.count(0) / L, s.count(1) / L]
    trans = [[0, 0], [0, 0]]
    for a, b in zip(s, s[1:]):
        trans[a][b] += 1
    P = [[trans[a][b] / sum(trans[a]) if sum(trans[a]) else 0.0 for b in (0, 1)] for a in (0, 1)]
    seqs = [[0] * 128, [0, 1] * 64, [0] + [1] * 127, [1] + [0] * 127, [1, 0] * 64, [1] * 128]
    best = 0.0
    for seq in seqs:
        prob = p[seq[0]]
        for a, b in zip(seq, seq[1:]):
            prob *= P[a][b]
        best = max(best, prob)
    return min(-math.log2(best) / 128, 1.0)


def ref_compression(s: list[int]) -> float:
    b, d = 6, 1000
    nb = len(s) // b
    blocks = [int("".join(map(str, s[i * b:(i + 1) * b])), 2) for i in range(nb)]
    dic = [0] * 64
    for i in range(d):
        dic[blocks[i]] = i + 1  # 1-based positions as in the text
    D = []
    for i in range(d + 1, nb + 1):
        D.append(i - dic[blocks[i - 1]] if dic[blocks[i - 1]] else i)
        dic[blocks[i - 1]] = i
    v = nb - d
    x = sum(math.log2(x) for x in D) / v
    c = 0.5907
    sd = c * math.sqrt(sum(math.log2(x) ** 2 for x in D) / (v - 1) - x * x)
    xp = x - Z * sd / math.sqrt(v)

    def G(z: float) -> float:  # the double sum of step 7, term by term
        total = 0.0
        for t in range(d + 1, nb + 1):
            for u in range(1, t + 1):
                f = z * z * (1 - z) ** (u - 1) if u < t else z * (1 - z) ** (t - 1)
                total += math.log2(u) * f
        return total / v

    def expected(p: float) -> float:
        q = (1 - p) / 63
        return G(p) + 63 * G(q)

    if expected(1 / 64) <= xp:
        return 1.0
    lo, hi = 1 / 64, 1.0
    for _ in range(60):  # bisection: the expectation falls as p rises
        mid = (lo + hi) / 2
        if expected(mid) > xp:
            lo = mid
        else:
            hi = mid
    return -math.log2((lo + hi) / 2) / b


def tuple_counts(s: list[int], w: int) -> Counter:
    text = "".join(map(str, s))
    return Counter(text[i:i + w] for i in range(len(text) - w + 1))


def ref_t_tuple(s: list[int]) -> float:
    L = len(s)
    ps = []
    w = 1
    while True:
        q = max(tuple_counts(s, w).values())
        if q < 35:
            break
        ps.append((q / (L - w + 1)) ** (1 / w))
        w += 1
    return -math.log2(pu(max(ps), L))


def ref_lrs(s: list[int]) -> float:
    L = len(s)
    u = 1
    while max(tuple_counts(s, u).values()) >= 35:
        u += 1
    ps = []
    w = u
    while True:
        counts = tuple_counts(s, w)
        if max(counts.values()) < 2:
            break
        num = sum(c * (c - 1) // 2 for c in counts.values())
        ps.append((num / math.comb(L - w + 1, 2)) ** (1 / w))
        w += 1
    return -math.log2(pu(max(ps), L))


def sequences() -> dict[str, list[int]]:
    rng = np.random.default_rng(1234)
    n = 6 * 1050 + 3
    markov = [0]
    for _ in range(n - 1):  # sticky chain: P(repeat) = 0.7
        markov.append(markov[-1] if rng.random() < 0.7 else 1 - markov[-1])
    return {
        "uniform": rng.integers(0, 2, n).tolist(),
        "biased": (rng.random(n) < 0.8).astype(int).tolist(),
        "markov": markov,
        "periodic_noisy": [(i % 3 == 0) ^ (rng.random() < 0.05) for i in range(n)],
    }


SEQS = {k: [int(x) for x in v] for k, v in sequences().items()}


@pytest.mark.parametrize("name", sorted(SEQS))
def test_estimators_agree_with_literal_references(name):
    s = SEQS[name]
    a = np.array(s)
    assert entropy.most_common_value(a).min_entropy == pytest.approx(ref_mcv(s), abs=1e-9)
    assert entropy.markov(a).min_entropy == pytest.approx(ref_markov(s), abs=1e-9)
    t_est, lrs_est = entropy.tuple_estimates(a)
    assert t_est.min_entropy == pytest.approx(ref_t_tuple(s), abs=1e-9)
    assert lrs_est.min_entropy == pytest.approx(ref_lrs(s), abs=1e-9)
    assert entropy.collision(a).min_entropy == pytest.approx(ref_collision(s), abs=1e-7)


@pytest.mark.parametrize("name", ["uniform", "markov"])
def test_compression_agrees_with_the_double_sum(name):
    s = SEQS[name][:6 * 1040]
    assert entropy.compression(np.array(s)).min_entropy == pytest.approx(ref_compression(s), abs=1e-7)


def test_hand_worked_cases():
    # MCV: 60 ones in 100 bits: p = 0.6, p_u = 0.6 + Z sqrt(0.24 / 99) = 0.72687
    s = np.array([1, 1, 0, 1, 0] * 20)
    assert entropy.most_common_value(s).min_entropy == pytest.approx(-math.log2(0.6 + Z * math.sqrt(0.24 / 99)))
    # ... and with 6 of 10 the bound reaches 1: no entropy is credited
    assert entropy.most_common_value(s[:10]).min_entropy == 0.0
    # Collision: 00|101|11|010|00 -> t = 2, 3, 2, 3, 2: mean 2.4, sample sd sqrt(0.3)
    s = np.array([0, 0, 1, 0, 1, 1, 1, 0, 1, 0, 0, 0])
    xp = 2.4 - Z * math.sqrt(0.3) / math.sqrt(5)
    assert entropy.collision(s).min_entropy == pytest.approx(-math.log2(0.5 + math.sqrt(1.25 - 0.5 * max(2, xp))))
    # Markov, alternating 0101...: P0 = 1/2, P01 = P10 = 1, so the best sequence 0101... has p = 1/2
    s = np.array([0, 1] * 100)
    assert entropy.markov(s).min_entropy == pytest.approx(1 / 128)


def test_degenerate_inputs():
    stuck = np.zeros(10_000, dtype=np.uint8)
    a = entropy.assess(stuck)
    assert a.min_entropy == pytest.approx(0.0, abs=1e-12)
    assert entropy.compression(np.ones(100, dtype=np.uint8)).min_entropy is None  # too short
    with pytest.raises(ValueError, match="bits"):
        entropy.assess(np.array([0, 2, 1]))


def test_one_million_random_bits_score_near_one():
    bits = np.random.default_rng(5).integers(0, 2, 1_000_000)
    a = entropy.assess(bits)
    for name in ("most_common_value", "markov"):
        assert a.estimates[name].min_entropy > 0.99
    # collision, compression, t-tuple and LRS are conservative on full-entropy data (LRS hinges on
    # the longest repeat, a single chance event); they must still stay in (0.75, 1]
    for name in ("collision", "compression", "t_tuple", "lrs"):
        assert 0.75 < a.estimates[name].min_entropy <= 1.0
    assert a.min_entropy == min(e.min_entropy for e in a.estimates.values())


# ---------------------------------------------------------------- health tests


def test_cutoffs_follow_the_definitions():
    assert health.rct_cutoff(1.0) == 21  # 1 + ceil(20 / 1)
    assert health.rct_cutoff(0.3) == 1 + math.ceil(20 / 0.3)
    # APT at H = 1: smallest C with P(Binomial(1024, 1/2) >= C) <= 2^-20, in exact arithmetic
    tail = Fraction(0)
    c = 1024
    alpha = Fraction(1, 2 ** 20)
    while tail + Fraction(math.comb(1024, c), 2 ** 1024) <= alpha:
        tail += Fraction(math.comb(1024, c), 2 ** 1024)
        c -= 1
    assert health.apt_cutoff(1.0) == c + 1
    with pytest.raises(ValueError, match="claimed_entropy"):
        health.rct_cutoff(0.0)


def test_health_tests_trip_on_stuck_and_biased_sources_only():
    rng = np.random.default_rng(3)
    good = rng.integers(0, 2, 8192)
    assert health.run_health_tests(good, 0.8).passed
    stuck = good.copy()
    stuck[3000:3000 + health.rct_cutoff(0.8)] = 1
    r = health.run_health_tests(stuck, 0.8)
    assert not r.rct_passed and r.rct_longest_run >= r.rct_cutoff
    biased = (rng.random(8192) < 0.75).astype(int)
    r = health.run_health_tests(biased, 0.8)
    assert r.rct_passed and not r.apt_passed and r.apt_max_count >= r.apt_cutoff
