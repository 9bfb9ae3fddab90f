"""Figures of the reads of selected cells (`read`, `retention`, `pulses`: CellReads): the conductance
distribution and map of a read, mean and spread against log time of a retention follow-up with its
log-time law extrapolated to 10 years, the traces of identical pulses."""
from __future__ import annotations

import numpy as np

from labctl.routines.figures.base import (Figure, Item, Note, StepData, StepGroup, cdf, cell_map, eng, legend, si_axis,
                                          subplots)
from labctl.routines.figures.open_loop import _matrix, trace_panel
from labctl.routines.figures.retention import YEAR, time_law


def cell_reads_figures(step: StepData) -> list[Item]:
    """By what the step measured: retention reads, pulse reads, or a plain read."""
    out: list[Item] = []
    for g in step.with_kind("retention"):
        d = g.kinds["retention"]
        times = np.unique(d["elapsed"])
        mean = np.array([np.nanmean(d["g"][d["elapsed"] == t]) for t in times])
        std = np.array([np.nanstd(d["g"][d["elapsed"] == t]) for t in times])
        fig, axes = subplots(2, ncol=2, size=(5.4, 3.8))
        pos = times > 0
        time_law(axes[0], times[pos], mean[pos], 10 * YEAR, "tab:blue", "mean G")
        time_law(axes[1], times[pos], std[pos], 10 * YEAR, "tab:orange", "σ of G")
        for ax, name in ((axes[0], "mean G"), (axes[1], "σ of G over the cells")):
            ax.set_xscale("log")
            si_axis(ax, "x", "time after the start", "s")
            si_axis(ax, "y", name, "S")
            legend(ax)
        out.append(Figure("retention", fig, f"Retention{' (' + g.label + ')' if g.label else ''}: mean and spread "
                          f"of the conductance of {np.unique(d.rows * step.n_cols + d.cols).size} cells against log "
                          "time, each with its line in log time extrapolated to 10 years (square)."
                          + (" The read at 0 s is left out of the log-time fit." if not pos.all() else "")))
    for g in step.with_kind("pulse_read"):
        cells, gm, direction = _matrix(step, g.kinds["pulse_read"])
        fig, axes = subplots(1, size=(6.0, 3.8))
        trace_panel(axes[0], step, cells, gm, direction, step.title(g))
        out.append(Figure("pulses", fig, "Conductance read after every identical pulse, a few cells and the mean."))
    if out:
        return out
    groups = step.with_kind("read")
    if not groups:
        return [Note("No reads stored: no figure.")]
    return [read_figure(step, groups, "G", "read", "Conductance read: cumulative distribution and map.")]


def read_figure(step: StepData, groups: list[StepGroup], quantity: str, name: str, caption: str) -> Figure:
    """Cumulative distribution (groups overlaid) and map (one per group) of the "read" batches' G."""
    fig, axes = subplots(1 + len(groups), ncol=3)
    parts = []
    for g in groups:
        gg = g.kinds["read"]["g"]
        cdf(axes[0], gg, label=g.label or None)
        parts.append(f"{g.label + ': ' if g.label else ''}median {eng(float(np.nanmedian(gg)), 'S')}")
    si_axis(axes[0], "x", quantity, "S")
    axes[0].set_ylabel("cumulative fraction of cells")
    legend(axes[0])
    for ax, g in zip(axes[1:], groups):
        d = g.kinds["read"]
        cell_map(ax, step, d.rows, d.cols, d["g"], "G", "S")
        ax.set_title(step.title(g), fontsize=9)
    return Figure(name, fig, f"{caption} " + "; ".join(parts) + ".")
