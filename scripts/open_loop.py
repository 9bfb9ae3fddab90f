#!/usr/bin/env python3
"""Open-loop characterization of every cell (REF §Open-loop pulsed response).

Identical pulses (1.35 V at VG 1.4 V up, −1.3 V at VG 3.3 V down, 2.5 µs), batches of N up then N down,
then alternating 1-up/1-down pulses; per device G_max, G_min, G_sp, ΔG_sp, σ(ΔG_sp), N_states, SP skew
and NSR, and their distributions over the array. Writes open_loop.json and PNG plots to --out.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from labctl.campaigns.experiment import (add_arguments, experiment_backend, measure, pyplot, report, run_info, save,
                                         script_main)
from labctl.routines import OpenLoopParams, open_loop

METRICS = ("g_max", "g_min", "g_sp", "dg_sp", "dg_sp_std", "n_states", "sp_skew", "nsr")


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p, rows=32, cols=32, out="results/open_loop")
    p.add_argument("--batch", type=int, default=400, help="pulses per up or down batch (default 400)")
    p.add_argument("--cycles", type=int, default=2, help="up/down batch pairs (default 2)")
    p.add_argument("--alternating", type=int, default=500, help="1-up/1-down pulses (default 500)")
    p.add_argument("--examples", type=int, default=4, help="cells whose traces are plotted (default 4)")
    return p.parse_args(argv)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with experiment_backend(args) as backend:
        out["run"] = run_info(args, backend)
        params = OpenLoopParams(batch=args.batch, cycles=args.cycles, pulses=args.alternating)
        res = await measure(args, backend, open_loop, None, None, params)
        report("open loop", res.summary())
        out["summary"] = res.summary()
        out["cells"] = {"row": res.rows, "col": res.cols, **{name: getattr(res, name) for name in METRICS}}
        # Traces of a few cells, measured again on their own (the array-wide run keeps no traces).
        k = np.linspace(0, res.rows.size - 1, min(args.examples, res.rows.size)).astype(int)
        ex = await measure(args, backend, open_loop, res.rows[k], res.cols[k],
                           params.model_copy(update={"keep_traces": True}))
        out["examples"] = {"row": ex.rows, "col": ex.cols, "swing_S": ex.swing, "swing_direction": ex.swing_directions,
                           "alternating_S": ex.alternating}
    return out


def plot(data: dict[str, Any], out: Path) -> None:
    plt = pyplot()
    cells = data["cells"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, name, label, scale in ((axes[0], "n_states", "N_states", 1.0), (axes[1], "sp_skew", "SP skew (%)", 100.0),
                                   (axes[2], "nsr", "NSR (%)", 100.0)):
        x = np.array([np.nan if v is None else v for v in cells[name]], dtype=float) * scale
        x = x[np.isfinite(x)]
        ax.hist(x, bins=30)
        ax.axvline(np.mean(x), color="k", lw=1, label=f"mean {np.mean(x):.3g}")
        ax.set_xlabel(label)
        ax.set_ylabel("cells")
        ax.legend()
    save(fig, out / "open_loop_distributions.png")
    ex = data["examples"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [3, 1]})
    for k in range(len(ex["row"])):
        label = f"({ex['row'][k]}, {ex['col'][k]})"
        swing = np.asarray(ex["swing_S"][k], dtype=float) * 1e6
        axes[0].plot(swing, lw=0.7, label=label)
        alt = np.asarray(ex["alternating_S"][k], dtype=float) * 1e6
        axes[1].plot(alt, lw=0.7, label=label)
    axes[0].set_xlabel("pulse (up and down batches)")
    axes[1].set_xlabel("pulse (1 up / 1 down)")
    for ax in axes:
        ax.set_ylabel("G (µS)")
    axes[0].legend(fontsize=7)
    save(fig, out / "open_loop_traces.png")


def main(argv: list[str] | None = None) -> int:
    return script_main(argv, "open_loop", parse, run, plot)


if __name__ == "__main__":
    raise SystemExit(main())
