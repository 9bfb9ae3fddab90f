"""Forming, I–V cycling, open-loop, noise, relaxation and endurance routines on small emulated arrays.

Where REF fixes the procedure, the routine must reproduce it exactly on an array of the same seed
(the oracle: the REF sequence written out with direct emulator.Array calls); elsewhere the routine's figures
are checked against what the emulator knows independently (device parameters, the emitted raw reads).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import emulator
from labctl.backends import EmulatorBackend
from labctl.emulated import prepared_array
from labctl.routines import (
    Aborted,
    ClosedLoopParams,
    EnduranceParams,
    FormingParams,
    IVParams,
    OpenLoopParams,
    ProgrammingNoiseParams,
    PulseTrainParams,
    ReadNoiseParams,
    RelaxationParams,
    RoutineContext,
    SymmetryPointParams,
    endurance,
    form,
    iv_cycles,
    open_loop,
    programming_noise,
    pulse_train,
    read_noise,
    relaxation,
    symmetry_point,
)
from labctl.routines.metrics import open_loop_metrics, symmetry_point_metrics

from helpers import abort_at

pytestmark = pytest.mark.timeout(120)


async def test_forming_figures_match_the_devices_and_report_failures() -> None:
    b = EmulatorBackend(8, 4, seed=21)
    b.array.inject_fault(3, 2, "no_form")
    progress: list[tuple[float, float]] = []
    ctx = RoutineContext(collect=True, on_progress=lambda d, t, m: progress.append((d, t)))
    res = await form(b, None, None, FormingParams(), ctx)
    k = 3 * 4 + 2
    assert not res.formed[k] and math.isnan(res.v_form_reram[k])
    assert res.formed.sum() == 31 and res.yield_fraction == pytest.approx(31 / 32)
    assert np.array_equal(res.formed, b.array.formed().ravel())
    # The R_DS-corrected voltage recovers each device's own ReRAM forming voltage (to the sweep step and
    # the selector's non-linearity), which the raw 1T1R voltage overestimates.
    true = b.array.device_parameters()["v_form"].ravel()
    ok = res.formed
    assert np.abs(res.v_form_reram[ok] - true[ok]).max() < 0.06
    assert np.abs(res.v_form_reram[ok] - true[ok]).mean() < np.abs(res.v_form_1t1r[ok] - true[ok]).mean()
    # Emitted as measured: the raw sweep of every cell, and the figures.
    sweeps = [m for m in ctx.collected if m.kind == "forming_sweep"]
    assert sum(m.rows.size for m in sweeps) == 32 and sweeps[0].values["i"].shape[1] == 361
    assert progress[-1] == (32, 32)
    assert res.summary()["formed"] == 31


def qs_cycles(arr: emulator.Array, rows: np.ndarray, cols: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """REF §Quasi-static, written out: n cycles of reset (0 → −1.5 → 0 V in 10 mV steps, VG 3.3 V) and set
    (0 → 1.3 → 0 V, VG 1.1 V), each read at 0.2 V (VG 3.3 V). (HRS, LRS), each (n, cells), S."""
    down = np.linspace(0.0, -1.5, 151)
    up = np.linspace(0.0, 1.3, 131)
    hrs, lrs = np.empty((n, rows.size)), np.empty((n, rows.size))
    for k in range(n):
        arr.sweep(rows, cols, np.concatenate([down, down[-2::-1]]), vg=3.3, dwell=1e-3)
        hrs[k] = arr.read(rows, cols, 0.2, 3.3)
        arr.sweep(rows, cols, np.concatenate([up, up[-2::-1]]), vg=1.1, dwell=1e-3)
        lrs[k] = arr.read(rows, cols, 0.2, 3.3)
    return hrs, lrs


def open_loop_trace(arr: emulator.Array, rows: np.ndarray, cols: np.ndarray, batch: int, cycles: int,
                    alternating: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """REF §Open-loop, written out: `cycles` x (batch up, batch down), then `alternating` pulses 1 up / 1
    down (1.35 V at VG 1.4 V, −1.3 V at VG 3.3 V, 2.5 µs), a 0.2 V read after every pulse.
    (swing, its directions, alternating trace starting at the swing's last read, its directions)."""
    directions = np.tile(np.repeat(np.array([1, -1], dtype=np.int8), batch), cycles)
    swing = np.empty((rows.size, directions.size))
    for k, d in enumerate(directions):
        arr.pulse(rows, cols, *((1.35, 1.4, 2.5e-6) if d > 0 else (-1.3, 3.3, 2.5e-6)))
        swing[:, k] = arr.read(rows, cols, 0.2, 3.3)
    alt_dir = np.resize(np.array([1, -1], dtype=np.int8), alternating)
    alt = np.empty((rows.size, alternating + 1))
    alt[:, 0] = swing[:, -1]
    for k, d in enumerate(alt_dir):
        arr.pulse(rows, cols, *((1.35, 1.4, 2.5e-6) if d > 0 else (-1.3, 3.3, 2.5e-6)))
        alt[:, k + 1] = arr.read(rows, cols, 0.2, 3.3)
    return swing, directions, alt, alt_dir


async def test_iv_cycles_reproduce_the_reference_procedure() -> None:
    a, b = prepared_array(8, 4, seed=22), prepared_array(8, 4, seed=22)
    r, c = np.divmod(np.arange(32), 4)
    hrs, lrs = qs_cycles(a, r, c, n=3)
    res = await iv_cycles(EmulatorBackend(array=b), None, None, IVParams(cycles=3))
    assert np.array_equal(res.g_hrs, hrs) and np.array_equal(res.g_lrs, lrs)
    s = res.summary()
    assert s["r_hrs_mean_ohm"] == pytest.approx(np.mean(1 / hrs))
    assert s["hrs_lrs_ratio_mean"] > 1


async def test_open_loop_reproduces_the_reference_procedure_and_metrics() -> None:
    a, b = prepared_array(8, 4, seed=23), prepared_array(8, 4, seed=23)
    r, c = np.divmod(np.arange(32), 4)
    swing, swing_direction, alternating, alternating_direction = open_loop_trace(a, r, c, batch=60, cycles=2,
                                                                                 alternating=80)
    expected = open_loop_metrics(swing, swing_direction, alternating, alternating_direction)
    res = await open_loop(EmulatorBackend(array=b), None, None,
                          OpenLoopParams(batch=60, cycles=2, pulses=80, keep_traces=True, chunk=10))
    assert np.array_equal(res.swing, swing) and np.array_equal(res.alternating, alternating)
    for name in ("g_max", "g_min", "g_sp", "dg_sp", "dg_sp_std", "n_states", "sp_skew", "nsr"):
        assert np.array_equal(getattr(res, name), getattr(expected, name)), name
    assert res.summary()["n_states_median"] == pytest.approx(float(np.median(expected.n_states)))


async def test_pulse_train_then_symmetry_point_equal_open_loop() -> None:
    """The two halves run separately measure what open_loop measures in one go."""
    a, b = EmulatorBackend(array=prepared_array(4, 4, 24)), EmulatorBackend(array=prepared_array(4, 4, 24))
    whole = await open_loop(a, None, None, OpenLoopParams(batch=30, cycles=1, pulses=40, keep_traces=True))
    train = await pulse_train(b, None, None, PulseTrainParams(batch=30, cycles=1))
    assert np.array_equal(train.trace, whole.swing)
    assert np.array_equal(train.g_max, whole.g_max) and np.array_equal(train.g_min, whole.g_min)
    sp = await symmetry_point(b, None, None, SymmetryPointParams(pulses=40))
    # symmetry_point takes its own first read (an extra draw per cell), so its noise differs from
    # open_loop's; its figures are those of its own trace, and the symmetry point lies inside the swing.
    assert sp.trace.shape == whole.alternating.shape
    m = symmetry_point_metrics(sp.trace, sp.directions)
    assert np.array_equal(m.g_sp, sp.g_sp) and np.array_equal(m.dg_sp, sp.dg_sp)
    assert np.all((train.g_min < sp.g_sp) & (sp.g_sp < train.g_max))


async def test_programming_noise_groups_by_level() -> None:
    b = EmulatorBackend(array=prepared_array(16, 8, 25))
    levels = [20e-6, 50e-6, 80e-6]
    res = await programming_noise(b, None, None, ProgrammingNoiseParams(program=ClosedLoopParams(levels=levels)))
    p = res.programmed
    assert res.verify.levels.tolist() == pytest.approx(levels)
    for k, level in enumerate(levels):
        sel = (p.targets == level) & p.converged
        assert res.verify.count[k] == sel.sum()
        assert res.verify.sigma[k] == pytest.approx(p.g[sel].std(ddof=1))
        assert res.after.sigma[k] == pytest.approx(res.g_after[sel].std(ddof=1))
    # With a 2 % acceptance the accepted reads cannot spread more than the band allows.
    assert np.all(res.verify.sigma <= 0.02 * np.array(levels))
    assert math.isfinite(res.summary()["verify_sigma_slope"])


async def test_read_noise_statistics_match_the_emitted_reads() -> None:
    b = EmulatorBackend(array=prepared_array(4, 4, 26))
    ctx = RoutineContext(collect=True)
    res = await read_noise(b, None, None, ReadNoiseParams(repeats=25, chunk=5), ctx)
    reads = np.full((25, 16), np.nan)
    for m in ctx.collected:
        reads[m.values["repeat"][0], m.rows * 4 + m.cols] = m.values["g"]
    assert not np.isnan(reads).any()
    assert np.allclose(res.mean, reads.mean(axis=0), rtol=1e-12)
    assert np.allclose(res.std, reads.std(axis=0, ddof=1), rtol=1e-9)
    assert np.all(res.std > 0)


async def test_relaxation_reads_at_the_asked_times_and_fits_log_time() -> None:
    b = EmulatorBackend(array=prepared_array(8, 8, 27))
    params = RelaxationParams(program=ClosedLoopParams(levels=[30e-6, 60e-6]), t_first=1.0, t_last=1e4,
                              points_per_decade=2)
    ctx = RoutineContext(collect=True)
    res = await relaxation(b, None, None, params, ctx)
    assert res.times.tolist() == pytest.approx(np.geomspace(1, 1e4, 9).tolist())
    assert np.allclose(res.t_read, res.times)  # virtual clock: each read round exactly on time
    ok = res.programmed.converged
    for k in (0, 4, 8):
        assert res.mean_error[k] == pytest.approx(np.mean(res.g[k, ok] - res.programmed.g[ok]))
    expected = np.polyfit(np.log10(res.t_read), res.mean_error, 1)
    assert res.mean_fit.slope == pytest.approx(expected[0]) and res.mean_fit.intercept == pytest.approx(expected[1])
    assert res.extrapolated_mean_error == pytest.approx(np.polyval(expected, math.log10(params.extrapolate_to)))
    assert sum(m.kind == "relaxation_read" for m in ctx.collected) == 9


async def test_endurance_stops_cycling_closed_cells() -> None:
    b = EmulatorBackend(array=prepared_array(4, 4, 28))
    b.array.inject_fault(1, 1, "stuck_lrs")
    res = await endurance(b, None, None, EnduranceParams(max_cycles=30, check_every=10))
    k = 1 * 4 + 1
    assert res.closed[k] and res.cycles[k] == 10  # no window at the first check
    assert res.cycles.max() <= 30
    assert np.all(res.cycles[~res.closed] == 30)  # the open ones ran to the end and say so
    pulses = b.array.pulse_counts().ravel()
    assert pulses[k] < pulses[~res.closed].min()  # the closed cell was not cycled further
    assert res.summary()["closed"] == int(res.closed.sum())


async def test_open_loop_pauses_at_batches_and_aborts_there() -> None:
    b = EmulatorBackend(array=prepared_array(4, 4, 29))
    ctx = RoutineContext(collect=True, on_checkpoint=abort_at(3))
    with pytest.raises(Aborted):
        await open_loop(b, None, None, OpenLoopParams(batch=20, cycles=2, pulses=40), ctx)
    # Three batches of 20 pulses were done and stored; nothing after the third safe point.
    assert len(ctx.collected) == 60
    assert b.array.pulse_counts().ravel().tolist() == [60] * 16
