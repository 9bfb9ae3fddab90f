"""Behaviour of the cell model that the calibration figures alone would not catch."""
from __future__ import annotations

import numpy as np
import pytest

import emulator
from labctl.core.reference import FORMING, QS_DWELL, ramp
from labctl.emulated import prepared_array, reference_pulses
from labctl.routines.params import all_cells


@pytest.fixture(scope="module")
def conditioned() -> bytes:
    arr = prepared_array(8, 8, seed=11)
    return arr.snapshot()


def fresh(snapshot: bytes) -> emulator.Array:
    arr = emulator.Array(8, 8, seed=11)
    arr.restore(snapshot)
    return arr


def test_pristine_cells_are_insulating_until_formed() -> None:
    arr = emulator.Array(4, 4, seed=1)
    r, c = all_cells(arr)
    assert not arr.formed().any()
    assert np.all(arr.read(r, c, noisy=False) < 1e-8)
    i = arr.sweep(r, c, FORMING.voltages(), vg=FORMING.vg, dwell=QS_DWELL)
    assert arr.formed().all()
    # After forming the selector at VG = 1.2 V limits the current (compliance).
    isat = arr.preset.isat_ref * 1.5
    assert np.all(i[:, -1] < isat)
    assert np.all(arr.read(r, c, noisy=False) > 1e-6)


def test_forming_follows_the_drawn_forming_voltage() -> None:
    arr = emulator.Array(8, 8, seed=2)
    r, c = all_cells(arr)
    v_form = arr.device_parameters()["v_form"].ravel()
    low = ramp(3.0, back=False)
    arr.sweep(r, c, low, vg=1.2, dwell=QS_DWELL)
    # Only cells whose ReRAM forming voltage lies below the sweep's end have formed.
    formed = arr.formed().ravel()
    assert np.all(v_form[formed] < 3.0)
    assert np.all(formed[v_form < 2.9])
    # ...and a sweep that never reaches the gate threshold forms nothing at all.
    arr2 = emulator.Array(8, 8, seed=2)
    arr2.sweep(r, c, ramp(3.6, back=False), vg=0.3, dwell=QS_DWELL)
    assert not arr2.formed().any()


def test_read_is_nonlinear(conditioned: bytes) -> None:
    arr = fresh(conditioned)
    r, c = all_cells(arr)
    g02 = arr.read(r, c, 0.2, noisy=False)
    g04 = arr.read(r, c, 0.4, noisy=False)
    assert np.all(g04 > g02 * 1.03)  # sinh-like hopping: the chord conductance grows with bias


def test_read_noise_between_02_and_2_percent(conditioned: bytes) -> None:
    arr = fresh(conditioned)
    r, c = all_cells(arr)
    arr.program(r, c, 40e-6, 0.02, **reference_pulses(40e-6))
    reads = np.stack([arr.read(r, c) for _ in range(200)])
    rel = reads.std(axis=0) / reads.mean(axis=0)
    assert 0.002 <= np.median(rel) <= 0.02
    # reads do not disturb the state
    assert np.allclose(arr.read(r, c, noisy=False), arr.read(r, c, noisy=False))


def test_pulse_response_depends_on_amplitude_width_and_gate(conditioned: bytes) -> None:
    def mean_step(v: float, vg: float, width: float) -> float:
        arr = fresh(conditioned)
        r, c = all_cells(arr)
        arr.program(r, c, 30e-6, 0.02, **reference_pulses(30e-6))
        g0 = arr.read(r, c, noisy=False)
        arr.pulse(r, c, v, vg, width)
        return float(np.mean(arr.read(r, c, noisy=False) - g0))

    ref_step = mean_step(1.35, 1.4, 2.5e-6)
    assert ref_step > 0
    assert mean_step(1.5, 1.4, 2.5e-6) > ref_step  # larger amplitude, larger step
    assert 0 < mean_step(1.35, 1.4, 60e-9) < ref_step  # a 60 ns pulse still switches, less
    assert mean_step(1.35, 0.0, 2.5e-6) == 0.0  # selector off: no current, no switching
    assert mean_step(0.5, 1.4, 2.5e-6) == 0.0  # below threshold: no change
    assert mean_step(-1.3, 3.3, 2.5e-6) < 0  # reset


def test_soft_bounds_saturate(conditioned: bytes) -> None:
    arr = fresh(conditioned)
    r, c = all_cells(arr)
    trace = []
    for _ in range(400):
        arr.pulse(r, c, 1.35, 1.4, 2.5e-6)
        trace.append(arr.read(r, c, noisy=False))
    trace = np.array(trace)
    early = np.abs(np.diff(trace[:20], axis=0)).mean()
    late = np.abs(np.diff(trace[-20:], axis=0)).mean()
    assert late < 0.3 * early
    gmax = arr.device_parameters()["g_max"].ravel()
    assert np.all(trace[-1] < 1.6 * gmax)


def test_relaxation_linear_in_log_time(conditioned: bytes) -> None:
    arr = fresh(conditioned)
    r, c = all_cells(arr)
    arr.program(r, c, 50e-6, 0.02, **reference_pulses(50e-6))
    g0 = arr.read(r, c, noisy=False)
    shifts = []
    for t in (1.0, 10.0, 100.0, 1000.0, 10000.0):
        arr.advance(t - arr.time)
        shifts.append(np.mean(arr.read(r, c, noisy=False) - g0))
    d = np.diff(shifts)
    # equal decades give (statistically) equal mean shifts, all negative
    assert np.all(np.array(shifts) < 0)
    assert np.std(d) < 0.5 * abs(np.mean(d))
    assert arr.time == pytest.approx(10000.0)


def test_faults(conditioned: bytes) -> None:
    arr = fresh(conditioned)
    arr.inject_fault([0, 1], [0, 0], "stuck_lrs")
    arr.inject_fault([2], [0], "stuck_hrs")
    before = arr.read([0, 1, 2], [0, 0, 0], noisy=False)
    for _ in range(20):
        arr.pulse([0, 1, 2], [0, 0, 0], -1.5, 3.3, 2.5e-6)
        arr.pulse([0, 1, 2], [0, 0, 0], 1.5, 1.4, 2.5e-6)
    assert np.array_equal(before, arr.read([0, 1, 2], [0, 0, 0], noisy=False))
    assert before[0] > before[2] * 5
    res = arr.program([0, 2], [0, 0], 50e-6, 0.02, max_iterations=50, **reference_pulses(50e-6))
    assert not res.converged.any() and np.all(res.iterations == 49)

    pristine = emulator.Array(4, 4, seed=0)
    pristine.inject_fault(0, 0, "no_form")
    r, c = all_cells(pristine)
    pristine.sweep(r, c, FORMING.voltages(), vg=FORMING.vg, dwell=QS_DWELL)
    f = pristine.formed()
    assert not f[0, 0] and f.sum() == 15


def test_pulse_counts_count_every_pulse(conditioned: bytes) -> None:
    arr = fresh(conditioned)
    arr.pulse([0, 0, 3], [1, 1, 2], 0.1, 1.4, 1e-6)
    counts = arr.pulse_counts()
    assert counts[0, 1] == 2 and counts[3, 2] == 1 and counts.sum() == 3
