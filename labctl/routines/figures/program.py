"""Figures of closed-loop programming (REF §Closed-loop programming), one set per acceptance range
(sweep point): cumulative distributions of the programmed levels, σ_prog against G_target with its
linear fit (coefficients printed), pulses per cell against G_target with the mean per level, the
convergence map and the list of cells that did not converge.

The drawing functions take plain arrays, so scripts/weight_transfer.py draws its figures with them too.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from labctl.routines.figures.base import (MAX_LISTED, Figure, Item, Note, StepData, StepGroup, Table, cell_map, eng,
                                          legend, shown, si_axis, subplots, subsample)
from labctl.routines.metrics import ProgrammingNoise, programming_noise

#: Cumulative distributions drawn per level at most (above it every k-th level is drawn, said in the title).
MAX_LEVEL_CURVES = 40


def level_cdfs(ax: Any, targets: NDArray[Any], g: NDArray[Any], converged: NDArray[Any], title: str = "") -> int:
    """One cumulative distribution of the programmed G per target level (converged cells), the
    targets marked; returns the number of levels drawn."""
    t = np.asarray(targets, dtype=np.float64)
    ga = np.asarray(g, dtype=np.float64)
    ok = np.asarray(converged, dtype=bool) & np.isfinite(ga)
    levels = np.unique(t)
    every = max(1, int(np.ceil(levels.size / MAX_LEVEL_CURVES)))
    drawn = 0
    for level in levels[::every]:
        x = np.sort(ga[(t == level) & ok])
        if x.size:
            ax.plot(x, np.arange(1, x.size + 1) / x.size, lw=0.8, drawstyle="steps-post")
            drawn += 1
    si_axis(ax, "x", "programmed G", "S")
    ax.set_ylabel("cumulative fraction of cells")
    ax.set_ylim(0, 1.02)
    ax.set_title(title + (f" (every {every}th level)" if every > 1 else ""), fontsize=9)
    return drawn


def sigma_prog(ax: Any, noise: ProgrammingNoise, label: str = "") -> str:
    """σ_prog per level against G_target with the linear fit σ = a·G + b; returns the fit as text."""
    f = noise.sigma_fit
    line = ax.plot(noise.levels, noise.sigma, "o", ms=3, label=label or "σ_prog")[0]
    text = "no fit (fewer than two levels with two cells)"
    if np.isfinite(f.slope):
        text = f"σ_prog = {f.slope:.4g}·G_target + {eng(f.intercept, 'S')} (r = {f.r:.3f}, {f.n} levels)"
        ax.plot(noise.levels, f(noise.levels), "-", lw=1, color=line.get_color(), label=text)
    return text


def finish_sigma_axes(ax: Any) -> None:
    si_axis(ax, "x", "G target", "S")
    si_axis(ax, "y", "σ_prog", "S")
    ax.set_ylim(bottom=0)
    legend(ax)


def pulses_vs_target(ax: Any, targets: NDArray[Any], iterations: NDArray[Any], converged: NDArray[Any]) -> str:
    """Pulses per cell against G_target (a scatter, subsampled above MAX_SCATTER cells, not converged
    in red) and the mean per level; returns the caption fragment."""
    t = np.asarray(targets, dtype=np.float64)
    it = np.asarray(iterations, dtype=np.float64)
    ok = np.asarray(converged, dtype=bool)
    pick = subsample(t.size)
    jitter = np.random.default_rng(1).uniform(-0.25, 0.25, pick.size) * (np.ptp(t) / max(np.unique(t).size, 1))
    good = ok[pick]
    ax.scatter((t[pick] + jitter)[good], it[pick][good], s=3, alpha=0.35, color="tab:blue", lw=0)
    if not good.all():
        ax.scatter((t[pick] + jitter)[~good], it[pick][~good], s=12, marker="x", color="tab:red", lw=0.8,
                   label="not converged")
    levels = np.unique(t)
    means = np.array([it[t == lv].mean() for lv in levels])
    ax.plot(levels, means, "k-o", ms=3, lw=1, label="mean per level")
    ax.set_yscale("symlog", linthresh=10)
    si_axis(ax, "x", "G target", "S")
    ax.set_ylabel("pulses per cell")
    legend(ax)
    return f"{shown(pick.size, t.size)}; mean {it.mean():.3g} pulses per cell"


def pulses_histogram(ax: Any, iterations: NDArray[Any], converged: NDArray[Any], label: str = "") -> None:
    """Histogram of pulses per cell (log count axis); the label gives the cells that did not converge."""
    it = np.asarray(iterations, dtype=np.int64)
    bins: Any = np.arange(0, it.max() + 2) - 0.5 if it.size and it.max() < 80 else 60
    n_bad = int(np.sum(~np.asarray(converged, dtype=bool)))
    ax.hist(it, bins=bins, histtype="step", label=f"{label} ({n_bad} not converged)".strip())
    ax.set_xlabel("pulses per cell")
    ax.set_ylabel("cells")
    ax.set_yscale("log")
    legend(ax)


def _program(group: StepGroup) -> dict[str, NDArray[Any]] | None:
    d = group.get("program")
    if d is None:
        return None
    return {"rows": d.rows, "cols": d.cols, "target": d["target"], "g": d["g"],
            "iterations": d["iterations"], "converged": d["converged"] > 0.5}


def _tolerance(group: StepGroup) -> str:
    p = group.params.get("program", group.params)
    tol = p.get("tolerance") if isinstance(p, dict) else None
    return f"{100 * tol:g} % acceptance" if isinstance(tol, (int, float)) else ""


def program_figures(step: StepData) -> list[Item]:
    """Per acceptance range (group): level CDFs, σ_prog vs G_target with fit, pulses vs G_target,
    convergence map, and the table of cells that did not converge."""
    groups = [(g, p) for g in step.groups if (p := _program(g)) is not None]
    if not groups:
        return [Note("No programming outcome stored (no chunk finished): no programming figures.")]
    out: list[Item] = []
    names = [(_tolerance(g) + (f" ({g.label})" if g.label else "")).strip() or step.name for g, _ in groups]
    fig, axes = subplots(len(groups), ncol=2)
    for ax, (g, p), name in zip(axes, groups, names):
        level_cdfs(ax, p["target"], p["g"], p["converged"], name)
    out.append(Figure("cdf", fig, "Cumulative distributions of the programmed conductances, one curve per target "
                      "level (converged cells), one panel per acceptance range."))
    fig, axes = subplots(1, size=(6.4, 4.2))
    fits = []
    for (g, p), name in zip(groups, names):
        noise = programming_noise(p["target"], p["g"], p["converged"])
        fits.append(f"{name}: {sigma_prog(axes[0], noise, name)}")
    finish_sigma_axes(axes[0])
    out.append(Figure("sigma_prog", fig, "Programming noise σ_prog (sample std of the converged cells of a level) "
                      "against G_target, with the least-squares line. " + "; ".join(fits) + "."))
    fig, axes = subplots(len(groups), ncol=2)
    parts = []
    for ax, (g, p), name in zip(axes, groups, names):
        parts.append(f"{name}: {pulses_vs_target(ax, p['target'], p['iterations'], p['converged'])}")
        ax.set_title(name, fontsize=9)
    out.append(Figure("pulses", fig, "Pulses per cell against G_target (not converged: red ×; small random "
                      "horizontal offsets to separate the points), with the mean per level. " + "; ".join(parts) + "."))
    fig, axes = subplots(len(groups), ncol=2)
    parts = []
    for ax, (g, p), name in zip(axes, groups, names):
        cell_map(ax, step, p["rows"], p["cols"], p["iterations"], "pulses per cell", cmap="viridis")
        bad = ~p["converged"]
        ax.plot(p["cols"][bad], p["rows"][bad], "x", color="red", ms=4, label="not converged")
        legend(ax, loc="upper right")
        ax.set_title(f"{name}: {int(p['converged'].sum())} of {p['converged'].size} converged", fontsize=9)
        parts.append(f"{name}: {int(bad.sum())} not converged")
    out.append(Figure("convergence_map", fig, "Convergence map: pulses per cell over the array, cells that did not "
                      "converge marked ×. " + "; ".join(parts) + "."))
    for (g, p), name in zip(groups, names):
        bad = np.flatnonzero(~p["converged"])
        if bad.size == 0:
            out.append(Note(f"{name}: every cell converged."))
            continue
        rows = [[str(p["rows"][k]), str(p["cols"][k]), eng(p["target"][k], "S"), eng(p["g"][k], "S"),
                 f"{100 * (p['g'][k] - p['target'][k]) / p['target'][k]:+.2f} %", str(int(p["iterations"][k]))]
                for k in bad[:MAX_LISTED]]
        out.append(Table(f"{name}: cells that did not converge ({bad.size})",
                         ["row", "col", "G target", "last G", "error", "pulses"], rows,
                         note=f"first {MAX_LISTED} of {bad.size} listed" if bad.size > MAX_LISTED else ""))
    return out
