"""`labctl export aihwkit`: the measured array and devices in aihwkit's parameter forms, checked by round
trip through aihwkit's published formulas (aihwkit is not installed: the formulas are written out here)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from labctl.campaigns import Store
from labctl.cli import main
from labctl.evaluation.aihwkit_export import fit_programming_noise
from labctl.evaluation.devicefit import fit_sequences
from labctl.evaluation.relaxation import fit_relaxation, log_time
from labctl.evaluation.runs import load_run
from helpers import FORMING_STEP, campaign_text, stored_run

CAMPAIGN = campaign_text("to-aihwkit", 8, 6, 21, """
[[steps]]
routine = "forming"
name = "form"
params = { step = 0.1 }
[[steps]]
routine = "program"
name = "transfer"
params = { levels = [20e-6, 40e-6, 60e-6, 80e-6] }
[steps.sweep]
tolerance = [0.02, 0.002]
[[steps]]
routine = "read_noise"
name = "noise"
params = { repeats = 4 }
[[steps]]
routine = "relaxation"
name = "relax"
params = { times = [1.0, 10.0, 100.0, 1000.0], program = { targets = 50e-6 } }
[[steps]]
routine = "open_loop"
name = "pulses"
cells = { kind = "region", rows = [0, 2], cols = [0, 3] }
params = { batch = 30, cycles = 1, pulses = 20 }
""")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("aihwkit")
    store = d / "runs.sqlite"
    run_id = stored_run(store, CAMPAIGN, "to-aihwkit.toml")
    assert main(["export", "aihwkit", run_id, "--store", str(store), "--out", str(d / "out")]) == 0
    return store, run_id, d / "out"


def test_the_noise_model_reproduces_labctls_programming_noise_and_relaxation(exported):
    store, run_id, out = exported
    spec = json.loads((out / "noise_model.json").read_text())
    p = spec["parameters"]
    assert spec["aihwkit_class"] == "aihwkit.inference.ReRamCMONoiseModel" and set(p["coeff_dict"]) == {"2", "0.2"}
    assert (p["g_min"], p["g_max"]) == pytest.approx((20.0, 80.0))  # µS
    # labctl's own fit, from the stored program batches of each acceptance range
    with Store(store, read_only=True) as s:
        units = {u.unit_index: u for u in s.units(run_id)}
        by_tol: dict[float, list] = {}
        for b in s.batches(run_id, ["program"], step_index=1):
            by_tol.setdefault(units[b.unit_index].params["tolerance"], []).append(b)
    g_grid = np.linspace(20e-6, 80e-6, 7)
    for tol, batches in by_tol.items():
        fit = fit_programming_noise(tol, np.concatenate([b.scalars["target"] for b in batches]),
                                    np.concatenate([b.scalars["g"] for b in batches]))
        c = p["coeff_dict"][f"{tol * 100:g}"]
        sigma_aihwkit = (c[0] + c[1] * (g_grid * 1e6)) * 1e-6  # aihwkit's _apply_poly: coeff[0] + coeff[1] G, µS
        np.testing.assert_allclose(sigma_aihwkit, fit.line(g_grid), rtol=1e-9, atol=0)
    # relaxation: aihwkit's mean decay["mean"][0] ln t and spread decay["std"][0] ln t + decay["std"][1], at
    # t_inference = 1 + t / tau, against labctl's fitted law (its device part: m u, s u, u = log10(1 + t/tau))
    stored = load_run(store, run_id)
    law = fit_relaxation(stored.retention_times, stored.retention_g, stored.retention_g_prog)
    assert spec["time"]["tau_s"] == law.tau and spec["labctl"]["relaxation"]["source"] == "fit"
    t = np.array([0.0, 1e-3, 1.0, 3600.0, 86400.0 * 365 * 10])
    t_inf = 1.0 + t / spec["time"]["tau_s"]
    mean = p["decay_dict"]["mean"][0] * np.log(t_inf) * 1e-6
    std = (p["decay_dict"]["std"][0] * np.log(t_inf) + p["decay_dict"]["std"][1]) * 1e-6
    u = log_time(t, law.tau)
    np.testing.assert_allclose(mean, law.mean_per_decade * u, rtol=1e-9, atol=1e-30)
    np.testing.assert_allclose(std, law.std_per_decade * u, rtol=1e-9, atol=1e-30)
    assert law.mean_per_decade < 0  # the preset relaxes downwards: the export is not a trivial zero
    assert 0 < spec["forward_w_noise"] < 0.05  # measured read noise, relative to g_max
    assert "aihwkit_time" in (out / "noise_model.py").read_text()
    compile((out / "noise_model.py").read_text(), "noise_model.py", "exec")


def test_the_pulsed_device_reproduces_labctls_fitted_device_figures(exported):
    store, run_id, out = exported
    spec = json.loads((out / "device.json").read_text())
    stored = load_run(store, run_id)
    fitted = fit_sequences(stored.open_loop_g, stored.open_loop_direction)
    dev = {k: np.asarray(v) for k, v in spec["devices"].items()}
    g_mid, g_scale = spec["weight"]["g_mid_S"], spec["weight"]["g_scale_S"]
    assert dev["b_max"].size == fitted.n == 6
    sp, dg_sp = fitted.symmetry_point(), fitted.dg_sp
    for i in range(fitted.n):
        span = fitted.g_max[i] - fitted.g_min[i]
        gamma_up = dev["pow_gamma"][i] * (1 + dev["pow_up_down"][i])
        gamma_down = dev["pow_gamma"][i] * (1 - dev["pow_up_down"][i])

        def steps(g):  # aihwkit PowStepDevice's documented update, up and down, in S
            w = (g - g_mid) / g_scale
            omega = (dev["b_max"][i] - w) / (dev["b_max"][i] - dev["b_min"][i])
            return (dev["dw_min"][i] * (1 + dev["up_down"][i]) * omega ** gamma_up * g_scale,
                    dev["dw_min"][i] * (1 - dev["up_down"][i]) * (1 - omega) ** gamma_down * g_scale)

        lo, hi = fitted.g_min[i], fitted.g_max[i]  # aihwkit's symmetry point, by bisection on its own steps
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            up, down = steps(mid)
            lo, hi = (lo, mid) if up < down else (mid, hi)
        sp_aihwkit = 0.5 * (lo + hi)
        assert sp_aihwkit == pytest.approx(sp[i], rel=1e-9, abs=1e-9 * span)
        assert steps(sp[i])[0] == pytest.approx(dg_sp[i], rel=1e-9) and steps(sp[i])[1] == pytest.approx(dg_sp[i], rel=1e-9)
        assert span / steps(sp[i])[0] == pytest.approx(fitted.n_states[i], rel=1e-9)
        assert (gamma_up, gamma_down) == pytest.approx((fitted.gamma_up[i], fitted.gamma_down[i]), rel=1e-9)
        np.testing.assert_allclose([g_mid + dev["b_max"][i] * g_scale, g_mid + dev["b_min"][i] * g_scale],
                                   [fitted.g_max[i], fitted.g_min[i]], rtol=0, atol=1e-9 * span)
        assert (dev["b_max"][i] - (sp_aihwkit - g_mid) / g_scale) / (dev["b_max"][i] - dev["b_min"][i]) == \
            pytest.approx(fitted.sp_skew[i], rel=1e-9)
    p = spec["parameters"]
    assert p["dw_min"] == pytest.approx(float(np.mean(dev["dw_min"])), rel=1e-12)
    assert p["pow_gamma"] == pytest.approx(float(np.mean(fitted.gamma)), rel=1e-12)
    assert p["pow_up_down"] == pytest.approx(float(np.mean(fitted.gamma_up_down)), rel=1e-12)
    assert p["up_down"] == pytest.approx(float(np.mean(dev["up_down"])), rel=1e-12)
    assert p["dw_min_std"] == pytest.approx(float(np.mean(fitted.c2c_sigma)), rel=1e-12)
    assert p["w_max"] == pytest.approx(1.0, abs=0.5) and p["w_min"] == pytest.approx(-1.0, abs=0.5)
    assert p["dw_min_dtod"] > 0 and p["pow_gamma_dtod"] > 0  # device-to-device spreads from six devices
    compile((out / "device.py").read_text(), "device.py", "exec")


def test_an_export_never_overwrites_and_names_what_is_missing(exported, tmp_path, capsys):
    store, run_id, out = exported
    before = (out / "device.json").read_text()
    assert main(["export", "aihwkit", run_id, "--store", str(store), "--out", str(out)]) == 2
    assert "exists; give --force" in capsys.readouterr().err and (out / "device.json").read_text() == before
    empty = tmp_path / "empty.sqlite"
    rid = stored_run(empty, campaign_text("form-only", 8, 6, 21, FORMING_STEP + "params = { step = 0.1 }\n"))
    assert main(["export", "aihwkit", "last", "--store", str(empty), "--out", str(tmp_path / "x")]) == 2
    assert f"run {rid}: nothing to export to aihwkit" in capsys.readouterr().err and not (tmp_path / "x").exists()
    assert main(["export", "aihwkit", "last", "--store", str(tmp_path / "none.sqlite"), "--out", "x"]) == 2
    assert "no run store" in capsys.readouterr().err
    assert math.isfinite(json.loads((out / "noise_model.json").read_text())["parameters"]["g_max"])
