"""Run the reference procedures on an emulated array and print the figures the preset is calibrated to.

Usage: python scripts/calibrate_emulator.py [--rows 64 --cols 64 --seed 0] [--json]
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from emulator import reference as ref
from emulator.array import Array
from labctl.routines.metrics import forming_metrics, open_loop_metrics


def measure(rows: int, cols: int, seed: int) -> dict[str, float]:
    arr = Array(rows, cols, seed=seed)
    r, c = ref.all_cells(arr)
    v, i = ref.forming_sweep(arr, r, c)
    fm = forming_metrics(v, i, r_ds=arr.preset.rds_ref)
    ref.condition(arr, r, c)
    hrs, lrs = ref.qs_cycles(arr, r, c)
    formed = arr.formed().ravel()
    r, c, hrs, lrs = r[formed], c[formed], hrs[:, formed], lrs[:, formed]
    out: dict[str, float] = {
        "form_yield": fm.yield_fraction,
        "v_form_1t1r_mean_V": float(np.nanmean(fm.v_form_1t1r)),
        "i_form_mean_A": float(np.nanmean(fm.i_form)),
        "v_form_reram_mean_V": float(np.nanmean(fm.v_form_reram)),
        "v_form_reram_std_V": float(np.nanstd(fm.v_form_reram)),
        "hrs_mean_ohm": float(np.mean(1 / hrs)),
        "hrs_cv": float(np.std(1 / hrs) / np.mean(1 / hrs)),
        "lrs_mean_ohm": float(np.mean(1 / lrs)),
        "lrs_cv": float(np.std(1 / lrs) / np.mean(1 / lrs)),
    }
    tr = ref.open_loop(arr, r, c)
    om = open_loop_metrics(tr.swing, tr.swing_direction, tr.alternating, tr.alternating_direction)
    out.update({
        "g_max_mean_S": float(np.mean(om.g_max)), "g_min_mean_S": float(np.mean(om.g_min)),
        "n_states_mean": float(np.mean(om.n_states)),
        "n_states_p05": float(np.percentile(om.n_states, 5)),
        "n_states_p95": float(np.percentile(om.n_states, 95)),
        "sp_skew_mean": float(np.mean(om.sp_skew)), "nsr_mean": float(np.mean(om.nsr)),
    })
    # Relaxation: program every cell to 50 µS at 2 %, then read at 10 min and 1 h.
    res = arr.program(r, c, 50e-6, 0.02)
    out["program_2pct_converged"] = float(res.converged.mean())
    out["program_2pct_iter_mean"] = float(res.iterations.mean())
    res = arr.program(r, c, 50e-6, 0.002, max_iterations=2000)
    g0 = res.g
    arr.advance(600.0)
    g600 = arr.read(r, c)
    arr.advance(3000.0)
    g3600 = arr.read(r, c)
    ok = res.converged
    out.update({
        "program_converged": float(ok.mean()), "program_iter_mean": float(res.iterations.mean()),
        "relax_std_600s_S": float(np.std(g600[ok])),
        "relax_mean_3600s_S": float(np.mean(g3600[ok] - g0[ok])),
    })
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--cols", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    out = measure(a.rows, a.cols, a.seed)
    if a.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:24s} {v:.6g}")


if __name__ == "__main__":
    main()
