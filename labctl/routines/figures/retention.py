"""Figures of relaxation after programming (REF §Relaxation): the mean relaxation error and the level
spread against log time with their fitted laws extrapolated (REF: to 10 years), and the overlap of the
programmed levels after a chosen time; with the programming figures of the step's programming."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from labctl.routines.figures.base import Figure, Item, Note, StepData, StepGroup, eng, legend, si_axis, subplots
from labctl.routines.figures.program import program_figures
from labctl.routines.metrics import LinearFit, log_time_fit, programming_noise

#: The time after programming at which the level overlap is shown: the read time nearest to it (log scale), s.
OVERLAP_TIME = 3600.0
YEAR = 365.25 * 86400.0  # s


def time_law(ax: Any, t: NDArray[Any], y: NDArray[Any], horizon: float, color: str, label: str,
             unit: str = "S") -> LinearFit | None:
    """Measured points against log time and the line in log10(t) through them, drawn out to `horizon`
    (s) and marked there; returns the fit (None with fewer than two finite points)."""
    ok = np.isfinite(y) & (t > 0)
    ax.plot(t[ok], y[ok], "o", ms=4, color=color, label=f"{label}, measured")
    if ok.sum() < 2:
        return None
    fit = log_time_fit(t[ok], y[ok])
    x = np.geomspace(t[ok].min(), max(horizon, t[ok].max()), 200)
    ax.plot(x, fit(np.log10(x)), "-", lw=1, color=color,
            label=f"{label} = {eng(fit.slope, unit)}·log10(t/1 s) + {eng(fit.intercept, unit)}")
    at = float(fit(math.log10(horizon)))
    ax.plot([horizon], [at], "s", color=color, ms=5, label=f"{label} at {_duration(horizon)}: {eng(at, unit)}")
    return fit


def _duration(t: float) -> str:
    for unit, s in (("years", YEAR), ("days", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if t >= s:
            return f"{t / s:.3g} {unit}"
    return f"{t:.3g} s"


def _relaxation(step: StepData, g: StepGroup) -> dict[str, Any] | None:
    """Per read time: mean error and pooled level std over the converged cells; the reads by cell."""
    prog, reads = g.get("program"), g.get("relaxation_read")
    if prog is None or reads is None:
        return None
    idx = prog.rows * step.n_cols + prog.cols
    order = np.argsort(idx)
    times = np.unique(reads["t_after"])
    ok = prog["converged"] > 0.5
    mean, std, by_time = [], [], []
    for t in times:
        d = reads.where(reads["t_after"] == t)
        gt = np.full(idx.size, np.nan)
        pos = order[np.searchsorted(idx, d.rows * step.n_cols + d.cols, sorter=order)]
        gt[pos] = d["g"]
        by_time.append(gt)
        sel = ok & np.isfinite(gt)
        mean.append(float(np.mean(gt[sel] - prog["g"][sel])) if sel.any() else math.nan)
        sig = programming_noise(prog["target"], gt, sel).sigma
        std.append(float(np.sqrt(np.nanmean(sig ** 2))) if np.isfinite(sig).any() else math.nan)
    return {"times": times, "mean": np.array(mean), "std": np.array(std), "g": by_time, "target": prog["target"],
            "ok": ok}


def relaxation_figures(step: StepData) -> list[Item]:
    """Mean error and level spread against log time with the fits extrapolated; level overlap; programming."""
    out: list[Item] = []
    for g in step.groups:
        r = _relaxation(step, g)
        if r is None:
            continue
        horizon = float(g.params.get("extrapolate_to") or 10 * YEAR)
        fig, axes = subplots(2, ncol=2, size=(5.6, 4.0))
        time_law(axes[0], r["times"], r["mean"], horizon, "tab:blue", "mean G(t) − G_prog")
        time_law(axes[1], r["times"], r["std"], horizon, "tab:orange", "level σ")
        for ax, name in ((axes[0], "mean G(t) − G_prog"), (axes[1], "level spread σ (pooled)")):
            ax.set_xscale("log")
            ax.axvline(horizon, color="grey", lw=0.5)
            si_axis(ax, "x", "time after programming", "s")
            si_axis(ax, "y", name, "S")
            legend(ax)
        out.append(Figure("relaxation", fig, f"Relaxation{' (' + g.label + ')' if g.label else ''}: mean of G(t) − "
                          "G_prog over the converged cells and the pooled std of the levels against time after "
                          f"programming, each with its line in log time extrapolated to {_duration(horizon)} (square)."))
        k = int(np.argmin(np.abs(np.log10(r["times"]) - math.log10(OVERLAP_TIME))))
        out.append(_overlap(step, g, r, k))
    if not out:
        out.append(Note("No relaxation reads stored: no relaxation figure."))
    return out + [i for i in program_figures(step) if not isinstance(i, Note)]


def _overlap(step: StepData, g: StepGroup, r: dict[str, Any], k: int) -> Figure:
    t, gt, target, ok = r["times"][k], r["g"][k], r["target"], r["ok"]
    levels = np.unique(target)
    fig, axes = subplots(1, size=(9.0, 3.6))
    ax = axes[0]
    lo, hi = [], []
    for n, level in enumerate(levels):
        v = gt[(target == level) & ok & np.isfinite(gt)]
        if v.size:
            ax.hist(v, bins=20, histtype="stepfilled", alpha=0.5, color=f"C{n % 10}")
            lo.append(v.min())
            hi.append(v.max())
    overlaps = sum(1 for a, b in zip(hi[:-1], lo[1:]) if a >= b)
    si_axis(ax, "x", f"G at {_duration(float(t))} after programming", "S")
    ax.set_ylabel("cells")
    ax.set_title(f"{step.title(g)}: {len(levels)} levels, {overlaps} of {max(len(lo) - 1, 0)} neighbours overlap",
                 fontsize=9)
    return Figure("overlap", fig, f"The programmed levels {_duration(float(t))} after programming (the read "
                  f"nearest to {_duration(OVERLAP_TIME)}), one histogram per level: {overlaps} of "
                  f"{max(len(lo) - 1, 0)} pairs of neighbouring levels overlap (the highest cell of a level at or "
                  "above the lowest of the next).")
