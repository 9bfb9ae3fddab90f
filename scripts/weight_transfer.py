#!/usr/bin/env python3
"""Weight transfer (REF §Closed-loop programming): 35 levels between 10 and 90 µS, programmed with the
identical-pulse program-and-verify at 2 % and at 0.2 % acceptance on the whole array.

For each acceptance range: iterations per cell, σ_prog against G_target with its linear fit, and the
cumulative distributions of the programmed conductances. Writes weight_transfer.json and PNG plots to
--out. Runs on a fresh emulated array by default; --backend SPEC runs it on hardware.

    python scripts/weight_transfer.py --out results/weight_transfer
    python scripts/weight_transfer.py --backend tcp://10.0.0.7:5000 --out results/die7
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from labctl.campaigns.experiment import (add_arguments, experiment_backend, measure, pyplot, report, run_info, save,
                                         script_main)
from labctl.routines import ClosedLoopParams, ProgrammingNoiseParams, programming_noise


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p, rows=64, cols=64, out="results/weight_transfer")
    p.add_argument("--levels", type=int, default=35, help="number of target levels (default 35)")
    p.add_argument("--g-low", type=float, default=10e-6, help="lowest level, S (default 10e-6)")
    p.add_argument("--g-high", type=float, default=90e-6, help="highest level, S (default 90e-6)")
    p.add_argument("--tolerances", type=float, nargs="+", default=[0.02, 0.002],
                   help="acceptance ranges, fractions of the target (default 0.02 0.002)")
    p.add_argument("--max-iterations", type=int, default=500, help="verify reads per cell (default 500)")
    return p.parse_args(argv)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    levels = np.linspace(args.g_low, args.g_high, args.levels).tolist()
    out: dict[str, Any] = {"levels_S": levels, "runs": []}
    async with experiment_backend(args) as backend:
        out["run"] = run_info(args, backend)
        for tol in args.tolerances:
            params = ProgrammingNoiseParams(program=ClosedLoopParams(
                levels=levels, tolerance=tol, max_iterations=args.max_iterations))
            res = await measure(args, backend, programming_noise, None, None, params)
            report(f"acceptance {tol:g}", res.summary())
            p = res.programmed
            out["runs"].append({
                "tolerance": tol, "summary": res.summary(),
                "per_level": {"level_S": res.verify.levels, "count": res.verify.count,
                              "mean_S": res.verify.mean, "sigma_prog_S": res.verify.sigma,
                              "sigma_after_S": res.after.sigma},
                "sigma_fit": {"slope": res.verify.sigma_fit.slope, "intercept_S": res.verify.sigma_fit.intercept,
                              "r": res.verify.sigma_fit.r},
                "cells": {"row": p.rows, "col": p.cols, "target_S": p.targets, "g_S": p.g, "g_after_S": res.g_after,
                          "iterations": p.iterations, "converged": p.converged},
            })
    return out


def plot(data: dict[str, Any], out: Path) -> None:
    plt = pyplot()
    runs = data["runs"]
    # Iterations per cell.
    fig, ax = plt.subplots(figsize=(6, 4))
    for run in runs:
        it = np.asarray(run["cells"]["iterations"])
        ax.hist(it, bins=np.arange(0, it.max() + 2) - 0.5 if it.max() < 80 else 60, histtype="step",
                label=f"{100 * run['tolerance']:g} % ({int(np.sum(~np.asarray(run['cells']['converged'])))} not converged)")
    ax.set_xlabel("pulses per cell")
    ax.set_ylabel("cells")
    ax.set_yscale("log")
    ax.legend()
    save(fig, out / "iterations.png")
    # σ_prog against the target, with the linear fit.
    fig, ax = plt.subplots(figsize=(6, 4))
    for run in runs:
        lv = np.asarray(run["per_level"]["level_S"], dtype=float)
        sig = np.asarray([np.nan if s is None else s for s in run["per_level"]["sigma_prog_S"]], dtype=float)
        f = run["sigma_fit"]
        line = ax.plot(lv * 1e6, sig * 1e6, "o", ms=3, label=f"{100 * run['tolerance']:g} %")[0]
        if f["slope"] is not None:
            ax.plot(lv * 1e6, (f["slope"] * lv + f["intercept_S"]) * 1e6, "-", color=line.get_color(), lw=1)
    ax.set_xlabel("G target (µS)")
    ax.set_ylabel("σ_prog (µS)")
    ax.set_yscale("log")
    ax.legend()
    save(fig, out / "sigma_prog.png")
    # Cumulative distributions of the programmed conductances, one curve per level.
    fig, axes = plt.subplots(1, len(runs), figsize=(6 * len(runs), 4), squeeze=False)
    for ax, run in zip(axes[0], runs):
        t = np.asarray(run["cells"]["target_S"], dtype=float)
        g = np.asarray(run["cells"]["g_S"], dtype=float)
        ok = np.asarray(run["cells"]["converged"], dtype=bool)
        for level in np.unique(t):
            x = np.sort(g[(t == level) & ok])
            if x.size:
                ax.plot(x * 1e6, np.arange(1, x.size + 1) / x.size, lw=0.8)
        ax.set_xlabel("programmed G (µS)")
        ax.set_ylabel("cumulative fraction")
        ax.set_title(f"acceptance {100 * run['tolerance']:g} %")
    save(fig, out / "cdf.png")


def main(argv: list[str] | None = None) -> int:
    return script_main(argv, "weight_transfer", parse, run, plot)


if __name__ == "__main__":
    raise SystemExit(main())
