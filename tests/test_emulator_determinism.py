"""Determinism: a seed fixes everything, and batching does not change what a cell experiences."""
from __future__ import annotations

import numpy as np

import emulator
from labctl.core.reference import CONDITIONING, FORMING, QS_DWELL
from labctl.emulated import prepared_array, reference_pulses
from labctl.routines.params import all_cells


def run_sequence(arr: emulator.Array) -> list[np.ndarray]:
    r, c = all_cells(arr)
    out = [arr.sweep(r, c, FORMING.voltages(), vg=FORMING.vg, dwell=QS_DWELL)]
    for stage in CONDITIONING:
        arr.sweep(r, c, stage.voltages(), vg=stage.vg, dwell=QS_DWELL)
    out.append(arr.read(r, c))
    arr.pulse(r, c, 1.35, 1.4, 2.5e-6)
    out.append(arr.read_all())
    targets = np.linspace(10e-6, 90e-6, r.size)
    res = arr.program(r, c, targets, 0.02, **reference_pulses(targets))
    out += [res.g, res.iterations.astype(float)]
    arr.advance(3600.0)
    out.append(arr.read_all())
    out.append(arr.mvm(np.linspace(-0.2, 0.2, arr.rows)))
    return out


def test_same_seed_bit_identical() -> None:
    a = run_sequence(emulator.Array(6, 5, seed=42))
    b = run_sequence(emulator.Array(6, 5, seed=42))
    for x, y in zip(a, b):
        assert np.array_equal(x, y)


def test_different_seeds_differ() -> None:
    a = run_sequence(emulator.Array(6, 5, seed=1))
    b = run_sequence(emulator.Array(6, 5, seed=2))
    assert not np.array_equal(a[0], b[0])
    assert not np.array_equal(a[-2], b[-2])


def test_batching_does_not_change_results() -> None:
    """Cells addressed one at a time, in another order, see exactly what a vector call gives them."""
    vec = prepared_array(4, 4, seed=5)
    one = prepared_array(4, 4, seed=5)
    r, c = all_cells(vec)
    vec.pulse(r, c, 1.35, 1.4, 2.5e-6)
    g_vec = vec.read(r, c)
    for k in np.random.default_rng(0).permutation(r.size):
        one.pulse(r[k], c[k], 1.35, 1.4, 2.5e-6)
    g_one = np.empty(r.size)
    for k in reversed(range(r.size)):
        g_one[k] = one.read(r[k], c[k])[0]
    assert np.array_equal(g_vec, g_one)


def test_snapshot_restore_replays_exactly() -> None:
    arr = prepared_array(4, 4, seed=9)
    snap = arr.snapshot()
    r, c = all_cells(arr)
    first = arr.program(r, c, 30e-6, 0.002, **reference_pulses(30e-6)).g
    arr.restore(snap)
    assert np.array_equal(first, arr.program(r, c, 30e-6, 0.002, **reference_pulses(30e-6)).g)


def test_reseed_changes_cycle_noise_only() -> None:
    a = prepared_array(4, 4, seed=9)
    b = prepared_array(4, 4, seed=9)
    b.reseed(123)
    r, c = all_cells(a)
    for k, v in a.device_parameters().items():
        assert np.array_equal(v, b.device_parameters()[k]), k
    assert not np.array_equal(a.read(r, c), b.read(r, c))


def test_scalar_fast_path_equals_vector_path() -> None:
    """One-cell calls with plain ints and floats take a shortcut; it must do exactly what the vector path does."""
    fast = prepared_array(3, 3, seed=8)
    vec = prepared_array(3, 3, seed=8)
    for k in range(50):
        v = 1.35 if k % 3 else -1.3
        fast.pulse(1, 2, v, 1.4 if v > 0 else 3.3, 2.5e-6)
        vec.pulse(np.array([1]), np.array([2]), np.array([v]), np.array([1.4 if v > 0 else 3.3]), np.array([2.5e-6]))
        assert np.array_equal(fast.read(1, 2, 0.2), vec.read(np.array([1]), np.array([2]), 0.2))
    assert np.array_equal(fast.pulse_counts(), vec.pulse_counts())
