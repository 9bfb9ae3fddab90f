"""`labctl demo`: form, condition and program an emulated array; print what was done and measured."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from emulator import reference as ref
from emulator.array import Array


def run_demo(rows: int = 32, cols: int = 32, seed: int = 0, out: str | Path = "out/demo") -> int:
    """Run the reference procedures on a rows x cols emulated array; write summary.json to `out`."""
    if not (1 <= rows <= 1024 and 1 <= cols <= 1024):
        raise ValueError(f"rows, cols: must be in [1, 1024], got {rows} x {cols}")
    t0 = time.perf_counter()
    arr = Array(rows, cols, seed=seed)
    r, c = ref.all_cells(arr)
    v, i = ref.forming_sweep(arr, r, c)
    formed = arr.formed()
    print(f"formed {formed.sum()}/{formed.size} cells with a 0 → 3.6 V sweep at VG = 1.2 V")
    ref.condition(arr, r, c)
    hrs, lrs = ref.qs_cycles(arr, r, c, n=2)
    print(f"quasi-static cycling: HRS {np.mean(1 / hrs) / 1e3:.0f} kΩ, LRS {np.mean(1 / lrs) / 1e3:.1f} kΩ")
    arr.sweep(r, c, ref.ramp(-1.5), vg=3.3, dwell=ref.QS_DWELL)
    targets = np.linspace(10e-6, 90e-6, 35)[np.arange(r.size) % 35]
    res = arr.program(r, c, targets, 0.02)
    print(f"programmed 35 levels 10–90 µS at 2 %: {res.converged.mean():.1%} converged, "
          f"{res.iterations.mean():.1f} pulses per cell on average")
    g0 = arr.read(r, c)
    arr.advance(3600.0)
    g1 = arr.read(r, c)
    print(f"after 1 h on the virtual clock: mean change {np.mean(g1 - g0) * 1e6:+.2f} µS, "
          f"spread {np.std(g1 - g0) * 1e6:.2f} µS")
    summary = {
        "rows": rows, "cols": cols, "seed": seed,
        "formed_fraction": float(formed.mean()),
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
