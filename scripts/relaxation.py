#!/usr/bin/env python3
"""Relaxation after programming (REF §Relaxation after programming).

Part 1: 400 targets from 10 µS in 0.2 µS steps (to 89.8 µS), assigned to the cells in turn, programmed
closed loop and read 1 s and 1 h after programming: the relaxation error G(t) − G_prog per target and
the spread of each level.
Part 2: every cell programmed to 50 µS and followed to 1 week at log-spaced times; mean and spread
fitted linearly in log time and extrapolated to 10 years.

Writes relaxation.json and PNG plots to --out. Time passes on the emulator's virtual clock; on
hardware (--backend SPEC) the script really waits (a week for part 2: see --follow).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from labctl.campaigns.experiment import (add_arguments, experiment_backend, measure, pyplot, report, run_info, save,
                                         script_main)
from labctl.routines import ClosedLoopParams, RelaxationParams, relaxation
from labctl.routines.retention import HOUR, YEAR

WEEK = 7 * 86400.0


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p, rows=64, cols=64, out="results/relaxation")
    p.add_argument("--tolerance", type=float, default=0.02, help="acceptance range (default 0.02)")
    p.add_argument("--targets", type=int, default=400, help="number of targets of part 1 (default 400)")
    p.add_argument("--g-low", type=float, default=10e-6, help="first target, S (default 10e-6)")
    p.add_argument("--g-step", type=float, default=0.2e-6, help="target step, S (default 0.2e-6)")
    p.add_argument("--state", type=float, default=50e-6, help="state followed in part 2, S (default 50e-6)")
    p.add_argument("--follow", type=float, default=WEEK, help="how long part 2 follows it, s (default 1 week)")
    p.add_argument("--points-per-decade", type=int, default=4, help="reads per decade of time in part 2")
    p.add_argument("--extrapolate-to", type=float, default=10 * YEAR, help="extrapolation time, s (default 10 y)")
    return p.parse_args(argv)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    targets = (args.g_low + args.g_step * np.arange(args.targets)).tolist()
    out: dict[str, Any] = {}
    async with experiment_backend(args) as backend:
        out["run"] = run_info(args, backend)
        # Part 1: many targets, read at 1 s and 1 h.
        p1 = RelaxationParams(program=ClosedLoopParams(levels=targets, tolerance=args.tolerance),
                              times=[1.0, HOUR], extrapolate_to=args.extrapolate_to)
        r1 = await measure(args, backend, relaxation, None, None, p1)
        report("part 1: targets read at 1 s and 1 h", r1.summary())
        prog = r1.programmed
        ok = prog.converged
        per_target: dict[str, list[Any]] = {"target_S": [], "cells": [], "error_1s_S": [], "error_1h_S": [],
                                            "std_1s_S": [], "std_1h_S": []}
        for t in np.unique(prog.targets):
            sel = (prog.targets == t) & ok
            per_target["target_S"].append(t)
            per_target["cells"].append(int(sel.sum()))
            for k, tag in ((0, "1s"), (1, "1h")):
                per_target[f"error_{tag}_S"].append(float(np.mean(r1.g[k, sel] - prog.g[sel])) if sel.any() else None)
                per_target[f"std_{tag}_S"].append(float(np.std(r1.g[k, sel], ddof=1)) if sel.sum() > 1 else None)
        out["part1"] = {"summary": r1.summary(), "times_s": r1.t_read, "per_target": per_target,
                        "cells": {"target_S": prog.targets, "g_prog_S": prog.g, "converged": ok,
                                  "g_1s_S": r1.g[0], "g_1h_S": r1.g[1]}}
        # Part 2: one state followed for a long time.
        p2 = RelaxationParams(program=ClosedLoopParams(targets=args.state, tolerance=args.tolerance),
                              t_first=1.0, t_last=args.follow, points_per_decade=args.points_per_decade,
                              extrapolate_to=args.extrapolate_to)
        r2 = await measure(args, backend, relaxation, None, None, p2)
        report(f"part 2: {args.state * 1e6:g} µS followed for {args.follow:g} s", r2.summary())
        ok2 = r2.programmed.converged
        out["part2"] = {"summary": r2.summary(), "times_s": r2.t_read, "mean_error_S": r2.mean_error,
                        "std_S": r2.level_std, "mean_g_S": r2.g[:, ok2].mean(axis=1) if ok2.any() else None,
                        "mean_fit": {"slope_per_decade_S": r2.mean_fit.slope, "intercept_S": r2.mean_fit.intercept},
                        "std_fit": {"slope_per_decade_S": r2.std_fit.slope, "intercept_S": r2.std_fit.intercept},
                        "extrapolate_to_s": args.extrapolate_to,
                        "extrapolated_mean_error_S": r2.extrapolated_mean_error,
                        "extrapolated_std_S": r2.extrapolated_std}
    return out


def _floats(values: list[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def plot(data: dict[str, Any], out: Path) -> None:
    plt = pyplot()
    pt = data["part1"]["per_target"]
    t = _floats(pt["target_S"]) * 1e6
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for tag, label in (("1s", "1 s"), ("1h", "1 h")):
        axes[0].plot(t, _floats(pt[f"error_{tag}_S"]) * 1e6, ".", ms=3, label=label)
        axes[1].plot(t, _floats(pt[f"std_{tag}_S"]) * 1e6, ".", ms=3, label=label)
    axes[0].axhline(0, color="grey", lw=0.5)
    axes[0].set_ylabel("mean G(t) − G_prog (µS)")
    axes[1].set_ylabel("std of the level (µS)")
    for ax in axes:
        ax.set_xlabel("G target (µS)")
        ax.legend()
    save(fig, out / "relaxation_targets.png")
    cells = data["part1"]["cells"]
    ok = np.asarray(cells["converged"], dtype=bool)
    fig, ax = plt.subplots(figsize=(6, 4))
    g_prog = _floats(cells["g_prog_S"])[ok]
    for key, label in (("g_1s_S", "1 s"), ("g_1h_S", "1 h")):
        ax.hist((_floats(cells[key])[ok] - g_prog) * 1e6, bins=60, histtype="step", label=label)
    ax.set_xlabel("G(t) − G_prog (µS)")
    ax.set_ylabel("cells")
    ax.legend()
    save(fig, out / "relaxation_error_hist.png")
    p2 = data["part2"]
    times = _floats(p2["times_s"])
    horizon = np.geomspace(times[0], p2["extrapolate_to_s"], 200)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, fit, label in ((axes[0], "mean_error_S", p2["mean_fit"], "mean G(t) − G_prog (µS)"),
                                (axes[1], "std_S", p2["std_fit"], "std (µS)")):
        ax.plot(times, _floats(p2[key]) * 1e6, "o", ms=4, label="measured")
        if fit["slope_per_decade_S"] is not None:
            ax.plot(horizon, (fit["slope_per_decade_S"] * np.log10(horizon) + fit["intercept_S"]) * 1e6, "-", lw=1,
                    label="linear in log t, extrapolated")
        ax.axvline(p2["extrapolate_to_s"], color="grey", lw=0.5)
        ax.set_xscale("log")
        ax.set_xlabel("time after programming (s)")
        ax.set_ylabel(label)
        ax.legend()
    save(fig, out / "relaxation_long_term.png")


def main(argv: list[str] | None = None) -> int:
    return script_main(argv, "relaxation", parse, run, plot)


if __name__ == "__main__":
    raise SystemExit(main())
