"""The figures of a routine that declares none (a plugin without figures): per measured kind and
quantity a panel — a histogram of a scalar, mean ± std against the index a kind carries (pulse, cycle,
iteration, repeat), curves of a few cells of a vector quantity — and a map of the main conductance."""
from __future__ import annotations

from typing import Any

import numpy as np

from labctl.routines.base import PULSE_TRACE_KIND
from labctl.routines.figures.base import (MAX_CURVES, Figure, Item, Note, StepData, bins_for, cell_map, finite,
                                          si_axis, subplots)

#: Panels at most in the generic figure.
MAX_PANELS = 9
#: Quantities that say where in a sequence a value was taken rather than what was measured.
INDEX_NAMES = ("pulse", "cycle", "iteration", "round", "repeat")
LABEL_NAMES = INDEX_NAMES + ("stage", "direction", "polarity", "target", "t_after", "state")


def unit_of(quantity: str) -> tuple[str, str]:
    """(name, SI unit) of a stored quantity by its name: g... S, v... V, i... A, t... s, else dimensionless."""
    q = quantity.split(".")[-1]
    head = q.split("_")[0]
    unit = {"g": "S", "v": "V", "vg": "V", "i": "A", "r": "Ω", "t": "s", "elapsed": "s", "time": "s",
            "mean": "S", "std": "S", "sigma": "S", "target": "S"}.get(head, "")
    return q, unit


def generic_figures(step: StepData) -> list[Item]:
    """One figure with a panel per measured kind and quantity (first group with data), and a map."""
    group = next((g for g in step.groups if g.kinds), None)
    if group is None:
        return [Note("Nothing was measured in this step: no figure.")]
    panels: list[tuple[str, str, str]] = []
    for kind, d in group.kinds.items():
        if kind == PULSE_TRACE_KIND:
            continue  # drawn by the report's own figure of them (labctl.routines.figures.pulses)
        index = next((n for n in INDEX_NAMES if n in d), None)
        for q in d.values:
            if q in LABEL_NAMES and len(d.values) > 1:
                continue
            panels.append(("indexed" if index else "hist", kind, q))
    trace_kinds = [k for k in group.kinds if k != PULSE_TRACE_KIND and group.traces(k)]
    panels += [("traces", k, "") for k in trace_kinds]
    main = next(((k, q) for k, d in group.kinds.items() for q in d.values if q in ("g", "g_final", "g_programmed")),
                None)
    panels = panels[:MAX_PANELS - 1]
    fig, axes = subplots(len(panels) + (main is not None), ncol=3)
    for ax, (what, kind, q) in zip(axes, panels):
        _panel(ax, step, group, what, kind, q)
    if main is not None:
        d = group.kinds[main[0]]
        cell_map(ax=axes[-1], step=step, rows=d.rows, cols=d.cols, values=d[main[1]], name=main[1], unit="S")
        axes[-1].set_title(f"{main[0]}.{main[1]}: last value per cell", fontsize=9)
    return [Figure("quantities", fig, f"Every quantity the step measured{' (' + group.label + ')' if group.label else ''}"
                   f": {step.routine} declares no figures of its own (RoutineResult.figures).")]


def _panel(ax: Any, step: StepData, group: Any, what: str, kind: str, q: str) -> None:
    if what == "traces":
        b = group.traces(kind)[0]
        names = [n for n in b.values if n != "v"]
        y = b.values[names[0]]
        x = b.values.get("v")
        for k in range(min(MAX_CURVES, y.shape[0])):
            ax.plot(x[k] if x is not None else np.arange(y.shape[1]), y[k], lw=0.8)
        si_axis(ax, "x", "V" if x is not None else "point", "V" if x is not None else "")
        si_axis(ax, "y", *unit_of(names[0]))
        ax.set_title(f"{kind}.{names[0]}: {min(MAX_CURVES, y.shape[0])} cells", fontsize=9)
        return
    d = group.kinds[kind]
    name, unit = unit_of(q)
    if what == "indexed":
        index = next(n for n in INDEX_NAMES if n in d)
        x = d[index]
        xs = np.unique(x[np.isfinite(x)])
        mean = np.array([np.nanmean(d[q][x == k]) for k in xs])
        std = np.array([np.nanstd(d[q][x == k]) for k in xs])
        ax.plot(xs, mean, lw=0.8)
        ax.fill_between(xs, mean - std, mean + std, alpha=0.3)
        ax.set_xlabel(index)
        si_axis(ax, "y", name, unit)
        ax.set_title(f"{kind}.{q}: mean ± std over cells", fontsize=9)
    else:
        v = finite(d[q])
        if v.size:
            ax.hist(v, bins=bins_for(v))
        si_axis(ax, "x", name, unit)
        ax.set_ylabel("count")
        ax.set_title(f"{kind}.{q}: {v.size} values", fontsize=9)
