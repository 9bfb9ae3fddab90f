"""Figures of conditioning and quasi-static I–V cycling (REF §Quasi-static switching): the sweeps on a
log current axis, the HRS/LRS cumulative distributions, the switching voltages and the memory window
per cycle."""
from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from labctl.routines.figures.base import (Figure, Item, Note, StepData, bins_for, cdf, eng, finite, iv_panel, legend,
                                          si_axis, stack_by, subplots)
from labctl.routines.figures.cells import read_figure

_STAGES = ("negative sweep", "reset sweep", "set sweep")


def conditioning_figures(step: StepData) -> list[Item]:
    """The negative, reset and set sweeps of the first chunk (|I|, log) and the conductance afterwards."""
    out: list[Item] = []
    for g in step.with_kind("condition_sweep"):
        batches = g.traces("condition_sweep", max_batches=len(_STAGES))
        if not batches:
            continue
        fig, axes = subplots(len(batches), ncol=3)
        for ax, b, name in zip(axes, batches, _STAGES):
            iv_panel(ax, b, f"{step.title(g)}: {name}")
        out.append(Figure("sweeps", fig, f"Conditioning sweeps{' (' + g.label + ')' if g.label else ''}, |I| "
                          f"against the top-electrode voltage (log scale), {min(12, batches[0].rows.size)} cells of "
                          "the first chunk: the negative sweep after forming, then one reset and one set sweep."))
    groups = step.with_kind("read")
    if not groups:
        out.append(Note("No read after conditioning stored: no conductance figure."))
        return out
    out.append(read_figure(step, groups, "G after conditioning", "conductance", "Conductance read at the read bias "
                           "after conditioning: cumulative distribution and map."))
    return out


def switching_voltages(v: NDArray[Any], i: NDArray[Any], polarity: int) -> NDArray[np.float64]:
    """Per cell (rows of v, i: (n, points), V and A) the switching voltage of one sweep 0 → V_stop → 0:
    set (polarity +1) where the current rises most on the way out, reset (−1) where |I| falls most."""
    v = np.asarray(v, dtype=np.float64)
    i = np.abs(np.asarray(i, dtype=np.float64))
    turn = int(np.argmax(np.abs(v[0]))) + 1  # the way out: up to the largest |V|
    if turn < 3:
        return np.full(v.shape[0], np.nan)
    di = np.diff(i[:, :turn], axis=1)
    k = np.argmax(di, axis=1) if polarity > 0 else np.argmin(di, axis=1)
    return v[np.arange(v.shape[0]), k]


def iv_figures(step: StepData) -> list[Item]:
    """I–V loops of a few cells, HRS/LRS resistance CDFs, V_set / V_reset distributions, window per cycle."""
    out: list[Item] = []
    groups = step.with_kind("iv_sweep")
    for g in groups[:4]:
        cycles = int(g.params.get("cycles", 1))
        batches = g.traces("iv_sweep", max_batches=2 * cycles)
        if not batches:
            continue
        fig, axes = subplots(2, ncol=2)
        vs: dict[int, list[NDArray[Any]]] = {1: [], -1: []}
        for b in batches:
            pol = int(b.scalars.get("polarity", np.ones(1))[0])
            for k in range(min(3, b.rows.size)):
                axes[0].plot(b.values["v"][k], np.abs(b.values["i"][k]), lw=0.7, color=f"C{k}", alpha=0.8)
            vs[pol].append(switching_voltages(b.values["v"], b.values["i"], pol))
        axes[0].set_yscale("log")
        si_axis(axes[0], "x", "V", "V")
        si_axis(axes[0], "y", "|I|", "A")
        axes[0].set_title(f"{step.title(g)}: I–V loops of 3 cells, {cycles} cycles", fontsize=9)
        parts = []
        for pol, name in ((1, "V_set"), (-1, "V_reset")):
            x = finite(np.concatenate(vs[pol])) if vs[pol] else np.zeros(0)
            if x.size:
                axes[1].hist(x, bins=bins_for(x), alpha=0.6, label=f"{name}: median {eng(float(np.median(x)), 'V')}")
                parts.append(f"{name} median {eng(float(np.median(x)), 'V')}")
        si_axis(axes[1], "x", "switching voltage", "V")
        axes[1].set_ylabel("switching events")
        legend(axes[1])
        out.append(Figure("loops", fig, f"Quasi-static I–V loops (|I|, log scale) and switching voltages of the "
                          f"cells of the first chunk{' (' + g.label + ')' if g.label else ''}: V_set where the "
                          "current rises most on the way out of the set sweep, V_reset where it falls most in the "
                          "reset sweep, every cycle. " + "; ".join(parts) + "."))
    reads = step.with_kind("iv_read")
    if not reads:
        out.append(Note("No HRS/LRS reads stored: no resistance or window figure."))
        return out
    fig, axes = subplots(2, ncol=2)
    parts = []
    for n, g in enumerate(reads):
        d = g.kinds["iv_read"]
        hrs, lrs = d.where(d["state"] == 0), d.where(d["state"] == 1)
        tag = f" {g.label}" if g.label else ""
        for sub, name, ls in ((hrs, "HRS", "-"), (lrs, "LRS", "--")):
            with np.errstate(divide="ignore"):
                cdf(axes[0], 1.0 / sub["g"], color=f"C{n}", ls=ls, label=f"{name}{tag}")
        _, gh = stack_by(hrs, "cycle", step)
        _, gl = stack_by(lrs, "cycle", step)
        if gh.shape == gl.shape and gh.size:
            ratio = gl / gh  # R_HRS / R_LRS = G_LRS / G_HRS
            cyc = np.arange(1, ratio.shape[1] + 1)
            med = np.nanmedian(ratio, axis=0)
            axes[1].plot(cyc, med, "o-", ms=3, color=f"C{n}", label=f"median{tag}")
            axes[1].fill_between(cyc, np.nanpercentile(ratio, 25, axis=0), np.nanpercentile(ratio, 75, axis=0),
                                 color=f"C{n}", alpha=0.25, label=f"quartiles{tag}")
            parts.append(f"{g.label + ': ' if g.label else ''}median window {np.nanmedian(ratio):.3g} over "
                         f"{ratio.shape[0]} cells")
    axes[0].set_xscale("log")
    si_axis(axes[0], "x", "R at the read bias", "Ω")
    axes[0].set_ylabel("cumulative fraction")
    legend(axes[0])
    axes[1].set_xlabel("cycle")
    axes[1].set_ylabel("window R_HRS / R_LRS")
    legend(axes[1])
    out.append(Figure("window", fig, "HRS and LRS resistances read after every reset and set sweep (cumulative "
                      "distributions over cells and cycles) and the memory window per cycle. " + "; ".join(parts) + "."))
    return out
