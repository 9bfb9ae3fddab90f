"""Measured devices to aihwkit: `labctl export aihwkit RUN --out DIR` (docs/evaluation.md, "aihwkit").

(a) `noise_model.json` + `noise_model.py`: the programmed array as aihwkit's CMO/HfOx ReRAM inference
    noise model (`aihwkit.inference.ReRamCMONoiseModel`). In its source the model is, in µS with t in s:
        programming:  G_prog = G_target + (c0 + c1 G_target) ξ           coeff_dict[acceptance %] = [c0, c1]
        relaxation:   mean shift  decay["mean"][0] ln t
                      spread      decay["std"][0] ln t + decay["std"][1]
    labctl's relaxation law for a device (labctl.evaluation.relaxation, the device part: no offset, no
    floor) is mean m·u, spread s·u with u = log10(1 + t/tau). With t_aihwkit = 1 + t/tau both are exact:
        decay["mean"] = [m / ln 10],  decay["std"] = [s / ln 10, 0],
    so an inference time t (s) is given to aihwkit as `aihwkit_time(t) = 1 + t/tau` (noise_model.py).
    The programming-noise line is labctl's least-squares line of the per-level spread of G - G_target
    over the levels, one per acceptance range (the step's sweep over `tolerance`).
(b) `device.json` + `device.py`: the pulsed device of an open-loop run as `PowStepDevice` parameters.
    labctl's soft-bounds law (labctl.evaluation.devicefit): dy/dm = -y^gamma_up with y = (G_max - G)/span
    upwards (and the same downwards), integrated over each pulse; aihwkit's PowStep steps by
    dw = dw_min (1 + up_down) omega^(pow_gamma (1 + pow_up_down)) with omega = (b_max - w)/(b_max - b_min)
    (downwards (1 - up_down), (1 - omega), 1 - pow_up_down). With w = (G - g_mid)/g_scale, b the bounds in
    w, pow_gamma (1 ± pow_up_down) = gamma_up|down, and the two step sizes chosen so that both directions
    step by labctl's dG_sp at labctl's symmetry point, aihwkit's device has labctl's G_max, G_min,
    gamma, gamma_up_down, symmetry point, dG_sp, N_states and SP_skew exactly. The means over devices give
    the parameters, their spreads the *_dtod ones, c2c_sigma dw_min_std.
aihwkit is not needed to write these; the .py files import it when run.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labctl.evaluation.devicefit import DeviceParameters, fit_sequences
from labctl.evaluation.relaxation import RelaxationLaw, fit_relaxation

US = 1e6  # S -> µS, aihwkit's unit of conductance
LN10 = math.log(10.0)


@dataclass(frozen=True)
class ProgrammingNoise:
    """Spread of G - G_target per level and its line in G_target, for one acceptance range."""

    tolerance: float  # acceptance, relative
    levels: np.ndarray  # S
    std: np.ndarray  # S, per level (ddof=1)
    c0: float  # S
    c1: float  # 1

    def line(self, g_target: np.ndarray) -> np.ndarray:
        """labctl's fitted spread at g_target, S."""
        return self.c0 + self.c1 * np.asarray(g_target, dtype=np.float64)


def fit_programming_noise(tolerance: float, targets: np.ndarray, g: np.ndarray) -> ProgrammingNoise:
    """Per target level the spread of the programmed G around it, and the least-squares line through
    those spreads (S); targets, g in S (NaN: not programmed)."""
    ok = np.isfinite(targets) & np.isfinite(g)
    t, gg = targets[ok], g[ok]
    levels = np.unique(t)
    keep = [lv for lv in levels if np.count_nonzero(t == lv) >= 2]
    if len(keep) < 2:
        raise ValueError(f"programming noise at tolerance {tolerance:g}: need at least two levels with two"
                         f" or more programmed cells each, got {len(keep)}")
    lv = np.array(keep)
    std = np.array([np.std(gg[t == x] - x, ddof=1) for x in lv])
    c1, c0 = np.polyfit(lv, std, 1)
    return ProgrammingNoise(tolerance=float(tolerance), levels=lv, std=std, c0=float(c0), c1=float(c1))


def noise_model_parameters(noise: list[ProgrammingNoise], law: RelaxationLaw, g_min: float, g_max: float,
                           read_noise_std: float | None) -> dict[str, Any]:
    """The ReRamCMONoiseModel constructor arguments (µS, aihwkit's key and list order) and how to use them."""
    coeff = {f"{n.tolerance * 100:g}": [n.c0 * US, n.c1] for n in noise}
    return {
        "aihwkit_class": "aihwkit.inference.ReRamCMONoiseModel",
        "parameters": {
            "g_max": g_max * US, "g_min": g_min * US, "coeff_dict": coeff,
            "decay_dict": {"mean": [law.mean_per_decade / LN10 * US], "std": [law.std_per_decade / LN10 * US, 0.0]},
            # labctl's read noise is not the model's 1/f term (aihwkit's note: use forward.w_noise for it)
            "read_dict": {"K": 0.0, "t_read": 1e-6 / law.tau},
            "acceptance_range": min(float(k) for k in coeff), "prog_noise_scale": 1.0, "read_noise_scale": 1.0,
            "drift_scale": 1.0},
        "time": {"tau_s": law.tau, "t_inference": "1 + t / tau_s, t in s after programming"},
        "forward_w_noise": None if read_noise_std is None else read_noise_std / g_max,
        "units": {"conductance": "uS", "coeff_dict": "[c0 uS, c1 (1)], sigma = c0 + c1 G_target",
                  "decay_dict": "uS per ln(t_inference)", "forward_w_noise": "relative to g_max"},
        "labctl": {
            "programming_noise": [{"tolerance": n.tolerance, "levels_S": n.levels.tolist(), "std_S": n.std.tolist(),
                                   "c0_S": n.c0, "c1": n.c1} for n in noise],
            "relaxation": law.to_dict(), "read_noise_std_S": read_noise_std},
    }


def device_parameters(devices: DeviceParameters) -> dict[str, Any]:
    """PowStepDevice parameters (weights in units of g_scale around g_mid) and every device exactly."""
    g_mid = float(np.mean(0.5 * (devices.g_max + devices.g_min)))
    g_scale = float(np.mean(0.5 * (devices.g_max - devices.g_min)))
    span = devices.g_max - devices.g_min
    b_max = (devices.g_max - g_mid) / g_scale
    b_min = (devices.g_min - g_mid) / g_scale
    # Steps sized so that aihwkit's per-pulse rule has labctl's fitted symmetry point and step there
    # (dG_sp, so N_states and SP_skew too); the exponents are labctl's.
    g_sp = devices.symmetry_point()
    omega_sp = (devices.g_max - g_sp) / span
    dw_up = devices.dg_sp / (g_scale * omega_sp ** devices.gamma_up)
    dw_down = devices.dg_sp / (g_scale * (1.0 - omega_sp) ** devices.gamma_down)
    dw = 0.5 * (dw_up + dw_down)
    beta = (dw_up - dw_down) / (dw_up + dw_down)
    gamma = devices.gamma
    gamma_beta = devices.gamma_up_down
    per = {"b_max": b_max, "b_min": b_min, "dw_min": dw, "up_down": beta, "pow_gamma": gamma,
           "pow_up_down": gamma_beta, "c2c_sigma": devices.c2c_sigma}

    def rel(a: np.ndarray) -> float:
        return float(np.std(a) / abs(np.mean(a))) if a.size > 1 and np.mean(a) != 0 else 0.0

    return {
        "aihwkit_class": "aihwkit.simulator.configs.devices.PowStepDevice",
        "weight": {"g_mid_S": g_mid, "g_scale_S": g_scale, "w": "(G - g_mid_S) / g_scale_S"},
        "parameters": {
            "w_max": float(np.mean(b_max)), "w_min": float(np.mean(b_min)), "w_max_dtod": rel(b_max),
            "w_min_dtod": rel(b_min), "dw_min": float(np.mean(dw)), "dw_min_dtod": rel(dw),
            "dw_min_std": float(np.mean(devices.c2c_sigma)), "up_down": float(np.mean(beta)),
            "up_down_dtod": float(np.std(beta)), "pow_gamma": float(np.mean(gamma)), "pow_gamma_dtod": rel(gamma),
            "pow_up_down": float(np.mean(gamma_beta)), "pow_up_down_dtod": float(np.std(gamma_beta))},
        "devices": {k: np.asarray(v).tolist() for k, v in per.items()},
        "labctl": {"devices": devices.to_dict(), "summary": devices.summary()},
        "note": "aihwkit's per-pulse step dw omega^gamma has labctl's exponents, bounds, symmetry point and step"
                " there (dG_sp, N_states); labctl integrates its law over each pulse (devicefit.bound_after), so"
                " away from the symmetry point the two per-pulse steps differ by a fraction of order a*gamma",
    }


_NOISE_PY = '''"""aihwkit objects for the programmed array of labctl run {run_id} (written by `labctl export aihwkit`)."""
import json
from pathlib import Path

from aihwkit.inference import ReRamCMONoiseModel

SPEC = json.loads((Path(__file__).parent / "noise_model.json").read_text())
TAU = SPEC["time"]["tau_s"]


def aihwkit_time(t):
    """The model's t_inference for t seconds after programming (labctl's log10(1 + t/tau) law)."""
    return 1.0 + t / TAU


def noise_model(**overrides):
    p = dict(SPEC["parameters"], **overrides)
    p["coeff_dict"] = {{float(k): v for k, v in p["coeff_dict"].items()}}
    return ReRamCMONoiseModel(**p)


if __name__ == "__main__":
    print(noise_model(), "t_inference for 1 day:", aihwkit_time(86400.0))
'''

_DEVICE_PY = '''"""aihwkit device for the open-loop devices of labctl run {run_id} (written by `labctl export aihwkit`)."""
import json
from pathlib import Path

from aihwkit.simulator.configs import SingleRPUConfig
from aihwkit.simulator.configs.devices import PowStepDevice

SPEC = json.loads((Path(__file__).parent / "device.json").read_text())


def device(**overrides):
    return PowStepDevice(**dict(SPEC["parameters"], **overrides))


def rpu_config(**overrides):
    return SingleRPUConfig(device=device(**overrides))


if __name__ == "__main__":
    print(device())
'''


def _write(path: Path, text: str, force: bool) -> None:
    from labctl.campaigns.export import atomic_output

    if path.exists() and not force:
        raise ValueError(f"--out {path.parent}: {path.name} exists; give --force to replace it")
    with atomic_output(path, "w") as f:
        f.write(text)


def export_aihwkit(store_path: str | os.PathLike[str], run: str, out: str | os.PathLike[str], *,
                   force: bool = False) -> list[Path]:
    """Write what the run supports: (a) if it programmed levels (with the sweep's acceptance ranges),
    (b) if it has open-loop traces. Returns the files written; ValueError naming what is missing if none."""
    from labctl.campaigns.arrays import RunData
    from labctl.evaluation.runs import load_run

    data = RunData(store_path, run)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a directory")
    noise, read_std, g_range = _programming(data)
    stored = load_run(store_path, data.run_id)
    written: list[Path] = []
    specs: list[tuple[str, dict[str, Any], str]] = []
    if noise:
        if stored.has_retention:
            law = fit_relaxation(stored.retention_times, stored.retention_g, stored.retention_g_prog)
        else:
            law = RelaxationLaw.from_preset()
            law = RelaxationLaw(law.mean_per_decade, law.std_per_decade, law.tau,
                                source=f"{law.source} (run {data.run_id} has no retention reads)")
        specs.append(("noise_model", noise_model_parameters(noise, law, *g_range, read_std), _NOISE_PY))
    if stored.has_open_loop:
        devices = fit_sequences(stored.open_loop_g, stored.open_loop_direction)
        specs.append(("device", device_parameters(devices), _DEVICE_PY))
    if not specs:
        raise ValueError(f"run {data.run_id}: nothing to export to aihwkit (no programmed levels with at least two"
                         " cells each, no open-loop traces)")
    out.mkdir(parents=True, exist_ok=True)
    for name, spec, template in specs:
        spec = {"run_id": data.run_id, "source": f"labctl run store {store_path}", **spec}
        for path, text in ((out / f"{name}.json", json.dumps(spec, indent=1) + "\n"),
                           (out / f"{name}.py", template.format(run_id=data.run_id))):
            _write(path, text, force)
            written.append(path)
    return written


def _programming(data: Any) -> tuple[list[ProgrammingNoise], float | None, tuple[float, float]]:
    """Programming noise per acceptance range from every program step of the run (the last step that
    used a range wins), the mean read-noise spread (S) of its repeated reads, and (min, max) target."""
    by_tolerance: dict[float, ProgrammingNoise] = {}
    read_std = None
    lo, hi = np.inf, -np.inf
    for step in data.steps():
        if "program" in step.kinds:
            ds = data.dataset(step.index, "program", ["target", "g"])
            tol = np.atleast_1d(ds["tolerance"].values) if "tolerance" in ds.coords else None
            sweeps = ds["sweep_index"].values if "sweep_index" in ds.dims else [None]
            for k, s in enumerate(np.atleast_1d(sweeps)):
                sub = ds if s is None else ds.sel(sweep_index=s)
                t = sub["target"].values.ravel()
                tolerance = float(tol[k]) if tol is not None else _step_tolerance(data, step.index)
                if tolerance is None:
                    continue
                try:
                    by_tolerance[tolerance] = fit_programming_noise(tolerance, t, sub["g"].values.ravel())
                except ValueError:
                    continue
                lo, hi = min(lo, float(np.nanmin(t))), max(hi, float(np.nanmax(t)))
        if step.routine == "read_noise" and "read" in step.kinds:
            g = data.dataset(step.index, "read", ["g"])["g"].values
            if g.ndim >= 3 and g.shape[0] >= 2:
                read_std = float(np.nanmean(np.nanstd(g, axis=0, ddof=1)))
    return [by_tolerance[k] for k in sorted(by_tolerance)], read_std, (lo, hi)


def _step_tolerance(data: Any, step_index: int) -> float | None:
    """The acceptance range a step programmed with (its own or its nested `program` parameters)."""
    from labctl.campaigns.store import Store

    with Store(data.store_path, read_only=True) as s:
        for u in s.units(data.run_id):
            if u.step_index == step_index:
                for params in (u.params, u.params.get("program") or {}):
                    if isinstance(params, dict) and "tolerance" in params:
                        return float(params["tolerance"])
    return None
