"""Metric extraction on synthetic traces whose answers are known by construction."""
from __future__ import annotations

import math

import numpy as np
import pytest

from labctl.routines.metrics import (
    forming_metrics,
    linear_fit,
    log_time_fit,
    open_loop_metrics,
    programming_noise,
    symmetry_point_metrics,
)


def test_forming_at_largest_di_dv_with_rds_correction() -> None:
    v = np.round(np.arange(361) * 0.01, 10)
    formed = 1e-7 * v
    formed[330] = 250e-6  # soft breakdown just before the filament forms at 3.30 V
    formed[331:] = 600e-6  # then the selector limits the current
    pristine = 1e-7 * v  # never forms
    m = forming_metrics(v, np.stack([formed, pristine]), r_ds=800.0)
    assert m.formed.tolist() == [True, False]
    assert m.v_form_1t1r[0] == pytest.approx(3.30)
    assert m.i_form[0] == pytest.approx(250e-6)
    assert m.v_form_reram[0] == pytest.approx(3.30 - 800.0 * 250e-6)
    assert math.isnan(m.v_form_1t1r[1]) and math.isnan(m.v_form_reram[1])
    assert m.yield_fraction == 0.5


def test_forming_refuses_a_falling_sweep() -> None:
    with pytest.raises(ValueError, match="voltages"):
        forming_metrics(np.array([1.0, 0.5, 0.0]), np.zeros((1, 3)), r_ds=800.0)


def synthetic_device(g_max: float, g_min: float, g_start: float, steps: np.ndarray, batch: int = 50):
    """Swing: exponential approach to g_max in the up batch, to g_min in the down batch (the last 10 % of
    each batch sit exactly on the bound); alternating: from g_start, step k of size steps[k] in
    direction +1, −1, +1, ..."""
    k = np.arange(batch)
    approach = np.where(k >= batch - batch // 10, 1.0, 1 - np.exp(-k / 5))
    up = g_min + (g_max - g_min) * approach
    down = g_max - (g_max - g_min) * approach
    swing = np.concatenate([up, down])
    sd = np.repeat([1, -1], batch)
    ad = np.resize([1, -1], steps.size)
    alt = np.concatenate([[g_start], g_start + np.cumsum(ad * steps)])
    return swing, sd, alt, ad


def test_open_loop_metrics_known_device() -> None:
    steps = np.full(40, 2e-6)
    swing, sd, alt, ad = synthetic_device(90e-6, 10e-6, 40e-6, steps)
    m = open_loop_metrics(swing[None], sd, alt[None], ad)
    assert m.g_max[0] == pytest.approx(90e-6)
    assert m.g_min[0] == pytest.approx(10e-6)
    assert m.g_sp[0] == pytest.approx(41e-6)  # the sequence sits at 42, 40, 42, ...: mean 41
    assert m.dg_sp[0] == pytest.approx(2e-6)
    assert m.dg_sp_std[0] == pytest.approx(0.0, abs=1e-18)
    assert m.n_states[0] == pytest.approx(40.0)
    assert m.sp_skew[0] == pytest.approx((90 - 41) / 80)
    assert m.nsr[0] == pytest.approx(0.0, abs=1e-12)


def test_symmetry_point_noisy_steps() -> None:
    rng = np.random.default_rng(1)
    steps = rng.uniform(0.5e-6, 3.5e-6, 60)
    _, _, alt, ad = synthetic_device(90e-6, 10e-6, 50e-6, steps)
    m = symmetry_point_metrics(alt[None], ad, settle=20)
    assert m.dg_sp[0] == pytest.approx(steps[20:].mean())
    assert m.dg_sp_std[0] == pytest.approx(steps[20:].std(ddof=1))
    assert m.g_sp[0] == pytest.approx(alt[21:].mean())
    # In the full metrics the NSR is σ/mean of the same steps.
    swing, sd, _, _ = synthetic_device(90e-6, 10e-6, 50e-6, steps)
    full = open_loop_metrics(swing[None], sd, alt[None], ad, settle=20)
    assert full.nsr[0] == pytest.approx(steps[20:].std(ddof=1) / steps[20:].mean())


def test_symmetry_point_needs_two_settled_pulses() -> None:
    with pytest.raises(ValueError, match="settle"):
        symmetry_point_metrics(np.zeros((1, 5)), np.array([1, -1, 1, -1]), settle=3)


def test_linear_fits() -> None:
    x = np.linspace(0, 10, 11)
    f = linear_fit(x, 3 * x + 2)
    assert (f.slope, f.intercept, f.r, f.n) == (pytest.approx(3), pytest.approx(2), pytest.approx(1), 11)
    assert f(4.0) == pytest.approx(14.0)
    t = np.geomspace(1, 1e6, 7)
    g = log_time_fit(t, 50e-6 - 0.1e-6 * np.log10(t))
    assert g.slope == pytest.approx(-0.1e-6) and g.intercept == pytest.approx(50e-6)
    assert math.isnan(linear_fit([1.0, 1.0], [2.0, 3.0]).slope)  # nothing to fit, said so
    with pytest.raises(ValueError, match="times"):
        log_time_fit([0.0, 1.0], [1.0, 2.0])


def test_programming_noise_by_level_and_fit() -> None:
    targets = np.array([10, 10, 10, 20, 20, 20, 30]) * 1e-6
    g = np.array([9, 10, 11, 18, 20, 22, 31]) * 1e-6
    n = programming_noise(targets, g)
    assert n.levels.tolist() == pytest.approx([10e-6, 20e-6, 30e-6])
    assert n.count.tolist() == [3, 3, 1]
    assert n.mean[:2] == pytest.approx([10e-6, 20e-6])
    assert n.sigma[:2] == pytest.approx([1e-6, 2e-6])
    assert math.isnan(n.sigma[2])  # one cell has no spread; left out of the fit
    assert n.sigma_fit.slope == pytest.approx(0.1) and n.sigma_fit.intercept == pytest.approx(0.0, abs=1e-15)
    masked = programming_noise(targets, g, mask=[True, True, False, True, True, True, True])
    assert masked.count.tolist() == [2, 3, 1] and masked.sigma[0] == pytest.approx(np.std([9e-6, 10e-6], ddof=1))
