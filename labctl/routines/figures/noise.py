"""Figures of read noise: σ of the repeated reads against G (per cell) and the relative noise."""
from __future__ import annotations

import numpy as np

from labctl.routines.figures.base import (Figure, Item, Note, StepData, bins_for, finite, legend, per_cell, shown,
                                          si_axis, subplots, subsample)


def read_noise_figures(step: StepData) -> list[Item]:
    """σ against mean G of every cell (subsampled above MAX_SCATTER), binned median; σ/G histogram."""
    groups = step.with_kind("read")
    if not groups:
        return [Note("No reads stored: no read-noise figure.")]
    fig, axes = subplots(2, ncol=2)
    parts = []
    for g in groups:
        cells, mean, std, n = per_cell(step, g.kinds["read"], "g")
        ok = (n >= 2) & np.isfinite(std)
        mean, std = mean[ok], std[ok]
        if mean.size == 0:
            continue
        pick = subsample(mean.size)
        pts = axes[0].scatter(mean[pick], std[pick], s=3, alpha=0.35, lw=0, label=g.label or None)
        edges = np.quantile(mean, np.linspace(0, 1, 11))
        mids, med = [], []
        for lo, hi in zip(edges[:-1], edges[1:]):
            sel = (mean >= lo) & (mean <= hi)
            if sel.any():
                mids.append(mean[sel].mean())
                med.append(np.median(std[sel]))
        axes[0].plot(mids, med, "-o", ms=3, color=pts.get_facecolor()[0][:3], lw=1.2, label="median per decile of G")
        rel = finite(std / mean)
        axes[1].hist(100 * rel, bins=bins_for(rel), histtype="step", lw=1.2, label=g.label or None)
        parts.append(f"{g.label + ': ' if g.label else ''}{shown(pick.size, mean.size)}, {int(np.median(n[ok]))} reads "
                     f"per cell, median σ/G = {100 * np.median(rel):.3g} %")
    si_axis(axes[0], "x", "mean G", "S")
    si_axis(axes[0], "y", "σ of the reads", "S")
    legend(axes[0])
    axes[1].set_xlabel("σ / G (%)")
    axes[1].set_ylabel("cells")
    legend(axes[1])
    return [Figure("read_noise", fig, "Read noise: sample std of the repeated reads of each cell against its mean "
                   "conductance, with the median per decile of G, and the relative noise. " + "; ".join(parts) + ".")]
