"""`labctl demo`: form, condition and program an emulated array; print what was done and measured.

Every step is a labctl routine (labctl.routines) run through the in-process EmulatorBackend."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

import emulator
from labctl.backends.emulator import EmulatorBackend
from labctl.core import reference as ref
from labctl.emulated import prepare, run_sync
from labctl.routines.iv import IVParams, iv_cycles
from labctl.routines.program import ClosedLoopParams, program


def run_demo(rows: int = 32, cols: int = 32, seed: int = 0, out: str | Path = "out/demo") -> int:
    """Run the reference procedures on a rows x cols emulated array; write summary.json to `out`."""
    if not (1 <= rows <= 1024 and 1 <= cols <= 1024):
        raise ValueError(f"rows, cols: must be in [1, 1024], got {rows} x {cols}")
    t0 = time.perf_counter()
    arr = emulator.Array(rows, cols, seed=seed)
    backend = EmulatorBackend(array=arr)
    cells = rows * cols
    formed = prepare(arr)
    print(f"formed {formed.formed.sum()}/{formed.formed.size} cells with a 0 → {ref.FORMING.v_stop:g} V sweep "
          f"at VG = {ref.FORMING.vg:g} V")
    iv = run_sync(iv_cycles(backend, None, None, IVParams(cycles=2, chunk=cells)))
    hrs, lrs = iv.g_hrs, iv.g_lrs
    print(f"quasi-static cycling: HRS {np.mean(1 / hrs) / 1e3:.0f} kΩ, LRS {np.mean(1 / lrs) / 1e3:.1f} kΩ")
    levels = np.linspace(*ref.WINDOW, ref.LEVELS).tolist()
    res = run_sync(program(backend, None, None, ClosedLoopParams(levels=levels, tolerance=ref.TOLERANCE,
                                                                 chunk=cells)))
    print(f"programmed {ref.LEVELS} levels 10–90 µS at 2 %: {res.converged.mean():.1%} converged, "
          f"{res.iterations.mean():.1f} pulses per cell on average")
    g0 = arr.read_all()
    arr.advance(3600.0)
    g1 = arr.read_all()
    print(f"after 1 h on the virtual clock: mean change {np.mean(g1 - g0) * 1e6:+.2f} µS, "
          f"spread {np.std(g1 - g0) * 1e6:.2f} µS")
    summary = {
        "rows": rows, "cols": cols, "seed": seed,
        "formed_fraction": float(formed.yield_fraction),
        "hrs_mean_ohm": float(np.mean(1 / hrs)), "lrs_mean_ohm": float(np.mean(1 / lrs)),
        "program_converged_fraction": float(res.converged.mean()),
        "program_pulses_mean": float(res.iterations.mean()),
        "relaxation_1h_mean_S": float(np.mean(g1 - g0)), "relaxation_1h_std_S": float(np.std(g1 - g0)),
        "wall_time_s": time.perf_counter() - t0,
    }
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    (path / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"summary written to {path / 'summary.json'} ({summary['wall_time_s']:.1f} s)")
    return 0
