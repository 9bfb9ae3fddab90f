"""SP 800-90B IID track (section 5) and restart tests (3.1.4): the statistics on inputs with known
answers, and the decisions on clearly IID and clearly non-IID data (seeded shuffles)."""
from __future__ import annotations

import bz2

import numpy as np
import pytest

from labctl.puf import iid


def stats(x, binary=False):
    x = np.asarray(x, dtype=np.int64)
    _, ranked = np.unique(x, return_inverse=True)
    ranked = ranked.reshape(-1).astype(np.int64)
    raw = ranked if binary else x
    median = 0.5 if binary else float(np.median(ranked))
    return dict(zip(iid.STATISTICS, iid.statistics(ranked, raw, binary, float(raw.mean()), median)))


def test_statistics_of_a_hand_worked_sequence():
    x = [1, 2, 3, 2, 1, 2, 2, 5]
    t = stats(x)
    # excursion: deviations from the mean 2.25 summed: -1.25 -1.5 -0.75 -1 -2.25 -2.5 -2.75 0
    assert t["excursion"] == pytest.approx(2.75)
    # up/down: 1<=2 2<=3 3>2 2>1 1<=2 2<=2 2<=5 -> + + - - + + +
    assert (t["num_directional_runs"], t["len_directional_runs"], t["num_increases_decreases"]) == (3, 3, 5)
    # ranks 0 1 2 1 0 1 1 3, median 1: - + + + - + + + -> 4 runs, longest 3
    assert (t["num_runs_median"], t["len_runs_median"]) == (4, 3)
    # collisions: 1 2 3 2 -> 4 samples; then 1 2 2 -> 3; then 5 alone: none
    assert (t["avg_collision"], t["max_collision"]) == (3.5, 4)
    assert t["periodicity_1"] == 1 and t["periodicity_2"] == 2  # x[5]=x[6]; x[1]=x[3], x[3]=x[5]
    assert t["covariance_1"] == 1*2 + 2*3 + 3*2 + 2*1 + 1*2 + 2*2 + 2*5
    assert t["compression"] == len(bz2.compress(b"1 2 3 2 1 2 2 5", 5))
    assert iid.collision_lengths(np.array([1, 2, 1, 3, 3, 4])) == [3, 2]


def test_binary_statistics_use_conversions():
    bits = np.array([1, 1, 0, 0, 0, 0, 0, 0,  1, 1, 1, 1, 0, 0, 0, 0,  1, 0, 1])
    assert iid.conversion_1(bits).tolist() == [2, 4, 2]
    assert iid.conversion_2(bits).tolist() == [0b11000000, 0b11110000, 0b10100000]
    t = stats(bits, binary=True)
    # directional statistics on the Hamming weights 2 4 2: + -
    assert (t["num_directional_runs"], t["len_directional_runs"], t["num_increases_decreases"]) == (2, 1, 1)
    assert t["covariance_1"] == 2 * 4 + 4 * 2 and t["periodicity_2"] == 1
    # runs about the median 0.5 on the bits themselves
    assert t["num_runs_median"] == 7 and t["len_runs_median"] == 6  # 11 000000 1111 0000 1 0 1


def test_counter_rules_reject_only_extreme_ranks():
    rng = np.random.default_rng(1)
    r = iid.permutation_tests(rng.integers(0, 16, 4000), shuffles=10_000, seed=2)
    assert r.iid and r.rejected == []
    # every statistic was decided: more than 5 shuffles above-or-equal and below-or-equal
    for name in iid.STATISTICS:
        assert r.c0[name] + r.c1[name] > 5 and r.c1[name] + r.c2[name] > 5
    assert r.shuffles < 10_000  # stops once every statistic is decided
    sorted_data = np.sort(rng.integers(0, 16, 2000))
    bad = iid.permutation_tests(sorted_data, shuffles=200, seed=2)
    assert not bad.iid
    assert {"excursion", "num_runs_median", "len_runs_median", "periodicity_1", "compression"} <= set(bad.rejected)
    assert bad.c0["periodicity_1"] + bad.c1["periodicity_1"] <= 5  # no shuffle repeats that often


def test_periodic_and_random_walk_sources_are_not_iid():
    rng = np.random.default_rng(3)
    n = 8000
    s = np.empty(n, dtype=np.int64)
    s[:16] = rng.integers(0, 2, 16)
    flips = rng.random(n) < 0.1
    for i in range(16, n):
        s[i] = s[i - 16] ^ flips[i]
    a = iid.assess_iid(s, shuffles=300, seed=5)
    assert not a.iid and a.min_entropy is None
    assert "periodicity_16" in a.permutation.rejected and "covariance_16" in a.permutation.rejected
    walk = np.cumsum(rng.integers(-1, 2, 4000)) % 16
    assert not iid.assess_iid(walk, shuffles=300, seed=5).iid


def test_iid_source_passes_and_gets_the_most_common_value_estimate():
    rng = np.random.default_rng(7)
    x = rng.integers(0, 16, 6000)
    a = iid.assess_iid(x, shuffles=10_000, seed=8)
    assert a.iid, (a.permutation.rejected, a.chi_square)
    assert 3.5 < a.min_entropy <= 4.0
    assert a.to_dict()["iid"] is True


def test_chi_square_statistics():
    # binary goodness of fit: every tenth holds exactly half ones -> 0
    half = np.tile([0, 1], 500)
    g = iid.goodness_of_fit(half)
    assert g.score == 0.0 and g.df == 9 and not g.rejects
    # strongly alternating bits: pairs 01 only -> independence rejects
    assert iid.independence(half).rejects
    rng = np.random.default_rng(9)
    b = rng.integers(0, 2, 20_000)
    assert not iid.independence(b).rejects and not iid.goodness_of_fit(b).rejects
    assert iid.independence(b).df == 2 ** 8 - 2  # m = 8: 2^-8 floor(20000/8) >= 5 > 2^-9 floor(20000/9)
    x = rng.integers(0, 16, 20_000)
    ind = iid.independence(x)
    assert ind.df == 256 - 16 and not ind.rejects
    drift = np.concatenate([rng.integers(0, 8, 10_000), rng.integers(8, 16, 10_000)])
    assert iid.goodness_of_fit(drift).rejects


def test_restart_sanity_check_and_validation():
    rng = np.random.default_rng(11)
    m = rng.integers(0, 16, (200, 200))
    cutoff = iid.restart_cutoff(3.5, 16, 200, 200, rounds=20_000, seed=1)
    assert 200 * 2 ** -3.5 < cutoff < 60
    r = iid.restart_tests(m, h_initial=3.5, rounds=20_000, seed=1)
    assert r.sanity_ok and r.passed and r.min_entropy == pytest.approx(min(3.5, r.h_row, r.h_col))
    stuck = m.copy()
    stuck[17, :] = 5  # one restart repeats the same value: its row count is 200
    bad = iid.restart_tests(stuck, h_initial=3.5, rounds=20_000, seed=1)
    assert bad.x_row == 200 and not bad.sanity_ok and not bad.passed and bad.min_entropy is None
    assert iid.max_row_col_counts(np.array([[1, 1, 2], [3, 1, 3]])) == (2, 2)
    with pytest.raises(ValueError, match="matrix"):
        iid.restart_tests(np.arange(10), h_initial=1.0)
