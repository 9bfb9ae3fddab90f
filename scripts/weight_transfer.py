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

from labctl.campaigns.experiment import add_arguments, experiment_backend, measure, report, run_info, save, script_main
from labctl.routines import ClosedLoopParams, ProgrammingNoiseParams
from labctl.routines import programming_noise as programming_noise_routine
from labctl.routines.figures.base import pyplot
from labctl.routines.figures.program import finish_sigma_axes, level_cdfs, pulses_histogram, sigma_prog
from labctl.routines.metrics import programming_noise


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
            res = await measure(args, backend, programming_noise_routine, None, None, params)
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
    """The run report's programming figures (labctl.routines.figures.program), from the JSON data."""
    runs = data["runs"]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for run in runs:
        pulses_histogram(ax, run["cells"]["iterations"], run["cells"]["converged"], f"{100 * run['tolerance']:g} %")
    save(fig, out / "iterations.png")
    fig, ax = plt.subplots(figsize=(6, 4))
    for run in runs:
        c = run["cells"]
        sigma_prog(ax, programming_noise(_floats(c["target_S"]), _floats(c["g_S"]), np.asarray(c["converged"])),
                   f"{100 * run['tolerance']:g} %")
    finish_sigma_axes(ax)
    save(fig, out / "sigma_prog.png")
    fig, axes = plt.subplots(1, len(runs), figsize=(6 * len(runs), 4), squeeze=False)
    for ax, run in zip(axes[0], runs):
        c = run["cells"]
        level_cdfs(ax, _floats(c["target_S"]), _floats(c["g_S"]), np.asarray(c["converged"], dtype=bool),
                   f"acceptance {100 * run['tolerance']:g} %")
    save(fig, out / "cdf.png")


def _floats(values: list[Any]) -> np.ndarray:
    return np.asarray([np.nan if v is None else v for v in values], dtype=float)


def main(argv: list[str] | None = None) -> int:
    return script_main(argv, "weight_transfer", parse, run, plot)


if __name__ == "__main__":
    raise SystemExit(main())
