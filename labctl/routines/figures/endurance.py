"""Figures of endurance: G_on / G_off and the window G_on/G_off against cycles, and the fraction of
cells whose window is still open."""
from __future__ import annotations

import numpy as np

from labctl.routines.figures.base import Figure, Item, Note, StepData, legend, si_axis, stack_by, subplots


def endurance_figures(step: StepData) -> list[Item]:
    """Median and quartiles of G_on, G_off and their ratio per check; cells still open against cycles."""
    out: list[Item] = []
    for g in step.with_kind("endurance_read"):
        d = g.kinds["endurance_read"]
        _, on = stack_by(d, "cycle", step, "g_on")
        _, off = stack_by(d, "cycle", step, "g_off")
        keep = np.isfinite(on).any(axis=0)
        cyc = np.unique(d["cycle"])
        on, off = on[:, keep], off[:, keep]
        min_ratio = float(g.params.get("min_ratio", 2.0))
        fig, axes = subplots(3, ncol=3, size=(4.4, 3.4))
        for v, name, color in ((on, "G_on (LRS)", "tab:red"), (off, "G_off (HRS)", "tab:blue")):
            axes[0].plot(cyc, np.nanmedian(v, axis=0), "-", color=color, label=f"{name} median")
            axes[0].fill_between(cyc, np.nanpercentile(v, 25, axis=0), np.nanpercentile(v, 75, axis=0), color=color,
                                 alpha=0.25)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = on / off
        axes[1].plot(cyc, np.nanmedian(ratio, axis=0), "k-", label="median")
        axes[1].fill_between(cyc, np.nanpercentile(ratio, 25, axis=0), np.nanpercentile(ratio, 75, axis=0),
                             color="grey", alpha=0.3, label="quartiles")
        axes[1].axhline(min_ratio, color="red", ls=":", label=f"closed below {min_ratio:g}")
        n = on.shape[0]
        open_ = np.array([np.sum(ratio[:, k] >= min_ratio) for k in range(ratio.shape[1])]) / max(n, 1)
        axes[2].step(cyc, open_, where="post")
        for ax in axes:
            ax.set_xscale("log")
            ax.set_xlabel("cycles")
        si_axis(axes[0], "y", "G", "S")
        axes[1].set_ylabel("window G_on / G_off")
        axes[2].set_ylabel("fraction of cells with the window open")
        axes[2].set_ylim(0, 1.02)
        for ax in axes:
            legend(ax)
        out.append(Figure("window", fig, f"Endurance{' (' + g.label + ')' if g.label else ''}: G_on and G_off read "
                          f"at every check (median and quartiles of {n} cells; a closed cell is cycled no further), "
                          f"the window G_on/G_off, and the fraction of cells still above {min_ratio:g}."))
    return out or [Note("No endurance reads stored: no endurance figure.")]
