"""PUF metrics on constructed bit sets whose answers are known by construction."""
from __future__ import annotations

import math

import numpy as np
import pytest

from labctl.puf import metrics


def test_uniformity_and_bit_aliasing_of_a_constructed_set():
    r = np.array([[1, 1, 1, 1, 0, 0, 0, 0],
                  [1, 1, 1, 1, 1, 1, 0, 0],
                  [1, 0, 0, 0, 0, 0, 0, 0]])
    assert metrics.uniformity(r).tolist() == [0.5, 0.75, 0.125]
    assert metrics.bit_aliasing(r).tolist() == pytest.approx([1, 2 / 3, 2 / 3, 2 / 3, 1 / 3, 1 / 3, 0, 0])


def test_uniqueness_is_the_mean_pairwise_distance():
    r = np.array([[0, 0, 0, 0], [1, 1, 1, 1], [0, 0, 1, 1]])
    # pairs: (0,1) 4/4, (0,2) 2/4, (1,2) 2/4
    assert sorted(metrics.pairwise_fhd(r).tolist()) == [0.5, 0.5, 1.0]
    assert metrics.uniqueness(r) == pytest.approx(2 / 3)
    # complementary devices are maximally distant, identical ones not at all
    a = np.random.default_rng(0).integers(0, 2, (1, 64))
    assert metrics.uniqueness(np.vstack([a, 1 - a])) == 1.0
    assert metrics.uniqueness(np.vstack([a, a])) == 0.0
    with pytest.raises(ValueError, match="at least 2 devices"):
        metrics.uniqueness(a)


def test_steadiness_counts_flipped_bits_of_re_reads():
    ref = np.zeros((2, 10), dtype=np.uint8)
    rereads = np.zeros((2, 3, 10), dtype=np.uint8)
    rereads[0, 0, :2] = 1  # device 0: 2, 0, 1 flips of 10
    rereads[0, 2, 5] = 1
    rereads[1, :, :5] = 1  # device 1: 5 flips in every re-read
    assert metrics.intra_fhd(ref, rereads).tolist() == [[0.2, 0.0, 0.1], [0.5, 0.5, 0.5]]
    assert metrics.steadiness(ref, rereads) == pytest.approx([0.9, 0.5])
    with pytest.raises(ValueError, match="rereads"):
        metrics.steadiness(ref, rereads[:, :, :5])


def test_min_entropy_per_bit():
    # position 0 always 1 (0 bits), position 1 balanced (1 bit), position 2 three of four ones
    r = np.array([[1, 0, 1], [1, 1, 1], [1, 0, 1], [1, 1, 0]])
    assert metrics.min_entropy_per_bit(r) == pytest.approx([0.0, 1.0, -math.log2(0.75)])


def test_random_devices_score_near_ideal():
    r = np.random.default_rng(7).integers(0, 2, (400, 256))
    assert metrics.uniqueness(r) == pytest.approx(0.5, abs=0.005)
    assert metrics.summary(metrics.uniformity(r))["mean"] == pytest.approx(0.5, abs=0.01)
    assert metrics.min_entropy_per_bit(r).mean() > 0.85
