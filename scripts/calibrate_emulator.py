"""Run the reference procedures on an emulated array and print the figures the preset is calibrated to.

The procedures are labctl's routines (labctl.routines), run through the in-process EmulatorBackend:
the same code that measures a real array measures the emulated one it is compared with.

Usage: python scripts/calibrate_emulator.py [--rows 64 --cols 64 --seed 0] [--json]
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from emulator.array import Array
from labctl.backends import ProgramSettings
from labctl.backends.emulator import EmulatorBackend
from labctl.core import reference as ref
from labctl.emulated import prepare, run_sync
from labctl.routines.iv import IVParams, iv_cycles
from labctl.routines.open_loop import OpenLoopParams, open_loop
from labctl.routines.params import all_cells
from labctl.routines.program import program_and_verify


def measure(rows: int, cols: int, seed: int) -> dict[str, float]:
    """The calibration figures of a rows x cols array of `seed` (SI units; see tests/test_emulator_calibration.py)."""
    arr = Array(rows, cols, seed=seed)
    b = EmulatorBackend(array=arr)
    cells = rows * cols
    fm = prepare(arr)  # REF §Forming, then the conditioning sweeps
    iv = run_sync(iv_cycles(b, None, None, IVParams(chunk=cells)))  # REF §Quasi-static: 5 cycles
    r, c = all_cells(b)
    formed = arr.formed().ravel()
    r, c, hrs, lrs = r[formed], c[formed], iv.g_hrs[:, formed], iv.g_lrs[:, formed]
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
    om = run_sync(open_loop(b, r, c, OpenLoopParams(chunk=cells)))  # REF §Open-loop: 2 x 400 / 400, 500
    out.update({
        "g_max_mean_S": float(np.mean(om.g_max)), "g_min_mean_S": float(np.mean(om.g_min)),
        "n_states_mean": float(np.mean(om.n_states)),
        "n_states_p05": float(np.percentile(om.n_states, 5)),
        "n_states_p95": float(np.percentile(om.n_states, 95)),
        "sp_skew_mean": float(np.mean(om.sp_skew)), "nsr_mean": float(np.mean(om.nsr)),
    })
    # Relaxation: program every cell to 50 µS at 2 %, then at 0.2 %, and read at 10 min and 1 h.
    targets = np.full(r.size, 50e-6)
    res = run_sync(program_and_verify(b, r, c, targets, ProgramSettings(tolerance=ref.TOLERANCE)))
    out["program_2pct_converged"] = float(res.converged.mean())
    out["program_2pct_iter_mean"] = float(res.iterations.mean())
    res = run_sync(program_and_verify(b, r, c, targets, ProgramSettings(tolerance=ref.TOLERANCE_FINE,
                                                                        max_iterations=2000)))
    g0 = res.g
    run_sync(b.wait(600.0))
    g600 = run_sync(b.read(r, c))
    run_sync(b.wait(3000.0))
    g3600 = run_sync(b.read(r, c))
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
