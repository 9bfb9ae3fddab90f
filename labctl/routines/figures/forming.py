"""Figures of forming (REF §Forming): the I–V sweeps on a log current axis, the forming-voltage
distributions with their Gaussian fits (1T1R and R_DS-corrected ReRAM), the forming current and the
yield map."""
from __future__ import annotations

from typing import Any

from labctl.routines.figures.base import (Figure, Item, Note, StepData, StepGroup, bins_for, cell_map, eng, finite,
                                          gaussian_hist, iv_panel, legend, si_axis, subplots)


def iv_curves(ax: Any, group: StepGroup, kind: str, title: str) -> str | None:
    """|I| against V of the first cells of the first batch of `kind`; the caption fragment, None without traces."""
    batches = group.traces(kind)
    if not batches or "i" not in batches[0].values:
        return None
    n = iv_panel(ax, batches[0], title)
    return f"{n} of {batches[0].rows.size} cells of the first chunk"


def forming_figures(step: StepData) -> list[Item]:
    """I–V sweeps, V_form (1T1R and ReRAM) with Gaussian fits, I_form, yield map; one curve or panel per group."""
    out: list[Item] = []
    groups = step.with_kind("forming_sweep")
    if groups:
        fig, axes = subplots(len(groups), ncol=3)
        parts = [iv_curves(ax, g, "forming_sweep", step.title(g)) for ax, g in zip(axes, groups)]
        out.append(Figure("iv", fig, "Forming sweeps, |I| against the top-electrode voltage (log scale): "
                          + "; ".join(p for p in parts if p) + "."))
    else:
        out.append(Note("No forming sweeps stored: no I–V figure."))
    groups = step.with_kind("forming")
    if not groups:
        out.append(Note("No forming results stored (no chunk finished its sweep): no V_form, I_form or yield figure."))
        return out
    fig, axes = subplots(2, ncol=2)
    fits = []
    for ax, q, name in ((axes[0], "v_form_1t1r", "V_form, 1T1R"), (axes[1], "v_form_reram", "V_form, ReRAM (R_DS-corrected)")):
        for g in groups:
            mu, sigma = gaussian_hist(ax, g.kinds["forming"][q], g.label)
            fits.append(f"{name}{' ' + g.label if g.label else ''}: µ = {eng(mu, 'V')}, σ = {eng(sigma, 'V')}")
        si_axis(ax, "x", name, "V")
        ax.set_ylabel("probability density (1/V)")
        legend(ax)
    out.append(Figure("v_form", fig, "Forming voltage distributions with their Gaussian fits (mean and sample "
                      "std of the formed cells): " + "; ".join(fits) + "."))
    fig, axes = subplots(1)
    ax = axes[0]
    for g in groups:
        i = finite(g.kinds["forming"]["i_form"])
        if i.size:
            ax.hist(i, bins=bins_for(i), histtype="step", lw=1.2, label=g.label or None)
    si_axis(ax, "x", "I_form", "A")
    ax.set_ylabel("cells")
    legend(ax)
    out.append(Figure("i_form", fig, "Forming current (at the last point before the largest dI/dV) of the "
                      "formed cells."))
    fig, axes = subplots(len(groups), ncol=3)
    captions = []
    for ax, g in zip(axes, groups):
        d = g.kinds["forming"]
        formed = d["formed"] > 0.5
        cell_map(ax, step, d.rows, d.cols, formed.astype(float), "formed (1) / not (0)", vmin=0, vmax=1, cmap="RdYlGn")
        ax.set_title(f"{step.title(g)}: yield {100 * formed.mean():.1f} %", fontsize=9)
        captions.append(f"{int(formed.sum())} of {formed.size} cells formed{' (' + g.label + ')' if g.label else ''}")
    out.append(Figure("yield_map", fig, "Yield map (cells not in the step are blank): " + "; ".join(captions) + "."))
    return out
