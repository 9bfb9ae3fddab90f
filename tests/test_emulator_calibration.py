"""Calibration of the cmo-hfox preset against the reference figures (issue 2), on a 64x64 array.

The reference procedures are run exactly as scripts/calibrate_emulator.py runs them; each assertion is
one reference figure with the tolerance the issue names. If the physics or a preset value drifts, the
figure moves out of its band and the test fails.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from labctl.core.reference import QS_DWELL, RESET
from labctl.emulated import prepared_array, reference_pulses
from labctl.routines.params import all_cells

_spec = importlib.util.spec_from_file_location(
    "calibrate_emulator", Path(__file__).resolve().parents[1] / "scripts" / "calibrate_emulator.py")
assert _spec and _spec.loader
calibrate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(calibrate)


@pytest.fixture(scope="module")
def figures() -> dict[str, float]:
    return calibrate.measure(64, 64, seed=0)


def test_forming_voltage_distribution(figures: dict[str, float]) -> None:
    # REF §Forming: ReRAM forming voltage Gaussian, mean 3.17 V, sigma 75 mV; 100 % yield.
    assert figures["form_yield"] == 1.0
    assert figures["v_form_reram_mean_V"] == pytest.approx(3.17, abs=0.03)
    assert figures["v_form_reram_std_V"] == pytest.approx(0.075, abs=0.025)
    # 1T1R forming voltage ≈ 3.38 V and forming current ≈ 258 µA (100–500 µA).
    assert figures["v_form_1t1r_mean_V"] == pytest.approx(3.38, abs=0.05)
    assert figures["i_form_mean_A"] == pytest.approx(258e-6, rel=0.15)


def test_quasi_static_hrs_lrs(figures: dict[str, float]) -> None:
    # REF §Quasi-static: HRS ≈ 256 kΩ, LRS ≈ 18 kΩ, σ/µ ≈ 0.25 for both.
    assert figures["hrs_mean_ohm"] == pytest.approx(256e3, rel=0.2)
    assert figures["lrs_mean_ohm"] == pytest.approx(18e3, rel=0.2)
    assert figures["hrs_cv"] == pytest.approx(0.25, abs=0.08)
    assert figures["lrs_cv"] == pytest.approx(0.25, abs=0.08)
    assert 10 < figures["hrs_mean_ohm"] / figures["lrs_mean_ohm"] < 20  # HRS/LRS ≈ 15


def test_open_loop_metrics(figures: dict[str, float]) -> None:
    # REF §Open-loop: N_states mean 22 (16–33), SP_skew ≈ 61 %, NSR ≈ 90 %.
    assert figures["n_states_mean"] == pytest.approx(22, abs=4)
    assert figures["n_states_p05"] < 18 and figures["n_states_p95"] > 29
    assert figures["sp_skew_mean"] == pytest.approx(0.61, abs=0.08)
    assert figures["nsr_mean"] == pytest.approx(0.90, abs=0.15)


def test_relaxation(figures: dict[str, float]) -> None:
    # REF §Relaxation: std ≈ 0.6 µS 10 min after programming; mean shift ≈ −0.7 µS after 1 h.
    assert figures["relax_std_600s_S"] == pytest.approx(0.6e-6, abs=0.15e-6)
    assert figures["relax_mean_3600s_S"] == pytest.approx(-0.7e-6, abs=0.2e-6)


def test_analog_window_reachable_with_reference_pulses() -> None:
    """REF §Closed-loop: 10–90 µS reachable with the per-range identical pulses, at 2 % and 0.2 %."""
    arr = prepared_array(16, 16, seed=3)
    r, c = all_cells(arr)
    start = arr.snapshot()
    for tol in (0.02, 0.002):
        for target in (10e-6, 30e-6, 50e-6, 70e-6, 90e-6):
            arr.restore(start)
            arr.sweep(r, c, RESET.voltages(), vg=RESET.vg, dwell=QS_DWELL)  # reset every cell first
            res = arr.program(r, c, target, tol, max_iterations=3000, **reference_pulses(target))
            assert res.converged.mean() >= 0.99, (tol, target)
            ok = res.converged
            assert np.all(np.abs(res.g[ok] - target) <= tol * target)
            # programming noise (spread of the verify reads) below the acceptance band
            assert np.std(res.g[ok]) < tol * target
