"""Figures of the open-loop pulsed response (REF §Open-loop): potentiation/depression traces, the
symmetry-point sequence, and N_states / SP_skew / NSR per device (maps) with their distributions."""
from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from labctl.routines.figures.base import (MAX_CURVES, Figure, Item, KindData, Note, StepData, StepGroup, bins_for,
                                          cell_map, eng, finite, legend, si_axis, stack_by, subplots)
from labctl.routines.metrics import open_loop_metrics, swing_extremes, symmetry_point_metrics


def _matrix(step: StepData, d: KindData) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
    """Cells (row*n_cols+col), G after every pulse (cells, pulses) and the pulse directions (pulses,)."""
    cells, g = stack_by(d, "pulse", step, "g")
    _, direction = stack_by(d, "pulse", step, "direction")
    return cells, g, np.nan_to_num(direction[0]) if direction.size else np.zeros(0)


def trace_panel(ax: Any, step: StepData, cells: NDArray[np.int64], g: NDArray[Any], direction: NDArray[Any],
                title: str, first: int = 0) -> None:
    """G after every pulse of a few cells (thin) and the mean of all (thick); up-pulse stretches shaded."""
    x = np.arange(first, first + g.shape[1])
    for k in range(min(MAX_CURVES, g.shape[0])):
        ax.plot(x, g[k], lw=0.5, alpha=0.7)
    ax.plot(x, np.nanmean(g, axis=0), "k-", lw=1.4, label=f"mean of {g.shape[0]} cells")
    changes = int(np.sum(np.diff(direction) != 0)) if direction.size > 1 else 0
    if direction.size == g.shape[1] and 0 < changes < g.shape[1] / 4:  # batches, not an alternating sequence
        up = direction > 0
        ax.fill_between(x, 0, 1, where=up, transform=ax.get_xaxis_transform(), color="tab:green", alpha=0.08,
                        lw=0, label="set (potentiation) pulses")
    ax.set_xlabel("pulse number")
    si_axis(ax, "y", "G", "S")
    ax.set_title(title, fontsize=9)
    legend(ax)


def _swing(step: StepData, g: StepGroup) -> tuple[Any, ...] | None:
    d = g.get("pulse_read")
    return _matrix(step, d) if d is not None else None


def _alternating(step: StepData, g: StepGroup, swing: tuple[Any, ...] | None) -> tuple[Any, ...] | None:
    """The alternating sequence (cells, G (cells, pulses + 1), directions (pulses,)) with the read
    before its first pulse: in open_loop the last read of the train, in symmetry_point its "read" batch."""
    d = g.get("symmetry_read")
    if d is None:
        return None
    cells, alt, direction = _matrix(step, d)
    before = None
    if swing is not None and np.array_equal(swing[0], cells):
        before = swing[1][:, -1]
    elif (r := g.get("read")) is not None:
        idx, first = np.unique(r.rows * step.n_cols + r.cols, return_index=True)
        if np.array_equal(idx, cells):
            before = r["g"][first]
    if before is None:  # no read before: the first pulse's read stands in for it
        before, alt, direction = alt[:, 0], alt[:, 1:], direction[1:]
    return cells, np.concatenate([before[:, None], alt], axis=1), direction


def _metric_maps(step: StepData, cells: NDArray[np.int64], metrics: dict[str, NDArray[Any]], title: str) -> Any:
    fig, axes = subplots(6, ncol=3, size=(4.2, 3.2))
    rows, cols = np.divmod(cells, step.n_cols)
    for k, (name, values) in enumerate(metrics.items()):
        cell_map(axes[k], step, rows, cols, values, name, cmap="viridis")
        axes[k].set_title(f"{title}: {name} per device", fontsize=9)
        v = finite(values)
        ax = axes[k + 3]
        if v.size:
            ax.hist(v, bins=bins_for(v, 40))
        ax.axvline(np.median(v) if v.size else 0, color="k", lw=1, label=f"median {np.median(v):.3g}" if v.size else None)
        ax.set_xlabel(name)
        ax.set_ylabel("devices")
        legend(ax)
    return fig


def pulse_train_figures(step: StepData) -> list[Item]:
    """Potentiation/depression traces and the G_max / G_min distributions of the N-up/N-down train."""
    out: list[Item] = []
    for g in step.with_kind("pulse_read"):
        cells, sw, sd = _swing(step, g)  # type: ignore[misc]
        fig, axes = subplots(2, ncol=2)
        trace_panel(axes[0], step, cells, sw, sd, f"{step.title(g)}: pulse train")
        text = ""
        if np.any(sd > 0) and np.any(sd < 0):
            g_max, g_min = swing_extremes(sw, sd)
            for v, name in ((g_max, "G_max"), (g_min, "G_min")):
                axes[1].hist(finite(v), bins=bins_for(finite(v), 40), alpha=0.6,
                             label=f"{name}: median {eng(float(np.nanmedian(v)), 'S')}")
            si_axis(axes[1], "x", "G", "S")
            axes[1].set_ylabel("devices")
            legend(axes[1])
            text = " G_max / G_min: means of the last 10 % of every up / down batch, per device."
        out.append(Figure("traces", fig, f"Open-loop potentiation (set pulses, shaded) and depression: conductance "
                          f"read after every pulse of {min(MAX_CURVES, sw.shape[0])} cells and the mean of all "
                          f"{sw.shape[0]}.{text}"))
    return out or [Note("No pulse reads stored: no pulse-train figure.")]


def symmetry_point_figures(step: StepData) -> list[Item]:
    """The 1-up/1-down sequence and the G_sp / ΔG_sp distributions."""
    out: list[Item] = []
    for g in step.with_kind("symmetry_read"):
        cells, alt, ad = _alternating(step, g, None)  # type: ignore[misc]
        out.append(_sequence_figure(step, g, cells, alt, ad))
    return out or [Note("No alternating-pulse reads stored: no symmetry-point figure.")]


def _sequence_figure(step: StepData, g: StepGroup, cells: Any, alt: Any, ad: Any) -> Figure:
    fig, axes = subplots(2, ncol=2)
    trace_panel(axes[0], step, cells, alt, np.concatenate([[0], ad]), f"{step.title(g)}: 1 up / 1 down")
    settle = g.params.get("settle")
    text = ""
    if ad.size >= 3:
        m = symmetry_point_metrics(alt, ad, settle)
        n0 = ad.size // 2 if settle is None else settle
        axes[0].axvline(n0, color="grey", ls=":", lw=1, label="end of settling")
        legend(axes[0])
        axes[1].hist(finite(m.g_sp), bins=bins_for(finite(m.g_sp), 40))
        si_axis(axes[1], "x", "G_sp (symmetry point)", "S")
        axes[1].set_ylabel("devices")
        text = (f" G_sp median {eng(float(np.nanmedian(m.g_sp)), 'S')}, ΔG_sp median "
                f"{eng(float(np.nanmedian(m.dg_sp)), 'S')}, σ(ΔG_sp) median {eng(float(np.nanmedian(m.dg_sp_std)), 'S')}"
                f" (pulses after the first {n0} of {ad.size}).")
    return Figure("symmetry_point", fig, "Symmetry-point sequence: conductance after every alternating pulse of "
                  f"{min(MAX_CURVES, alt.shape[0])} cells and the mean of all {alt.shape[0]}, and G_sp per device."
                  + text)


def open_loop_figures(step: StepData) -> list[Item]:
    """Both sequences, and N_states / SP_skew / NSR per device (maps) with their distributions."""
    out: list[Item] = []
    out += [i for i in pulse_train_figures(step) if isinstance(i, Figure)]
    for g in step.with_kind("symmetry_read"):
        swing = _swing(step, g)
        seq = _alternating(step, g, swing)
        if seq is None:
            continue
        cells, alt, ad = seq
        out.append(_sequence_figure(step, g, cells, alt, ad))
        if swing is None or not np.array_equal(swing[0], cells) or ad.size < 3:
            out.append(Note(f"{step.title(g)}: the train and the sequence do not cover the same cells: no "
                            "N_states / SP_skew / NSR."))
            continue
        m = open_loop_metrics(swing[1], swing[2], alt, ad, g.params.get("settle"))
        metrics = {"N_states": m.n_states, "SP_skew": m.sp_skew, "NSR": m.nsr}
        fig = _metric_maps(step, cells, metrics, step.title(g))
        med = ", ".join(f"{k} median {np.nanmedian(v):.3g}" for k, v in metrics.items())
        out.append(Figure("metrics", fig, "Open-loop metrics per device (REF §Open-loop): N_states = (G_max − "
                          "G_min)/ΔG_sp, SP_skew = (G_max − G_sp)/(G_max − G_min), NSR = σ(ΔG_sp)/ΔG_sp; maps over "
                          f"the array and distributions. {med}."))
    if not out:
        out.append(Note("No pulse reads stored: no open-loop figures."))
    return out
