"""The current during the pulses, where a pulse-and-measure station measured it (the "pulse_trace"
batches: labctl.campaigns.pulse_traces): for every routine that pulses, the report adds this figure
to the step's own (labctl.campaigns.report.step_figures).

One panel per cell for the first few cells pulsed: the current against the time from the start of
the pulse top, a few of the cell's pulses each (spread over those read, first and last included),
coloured by pulse number; set pulses (positive voltage) give positive currents, reset pulses negative.
"""
from __future__ import annotations

import numpy as np

from labctl.routines.base import PULSE_TRACE_KIND
from labctl.routines.figures.base import MAX_CURVES, Figure, Item, StepData, legend, pyplot, si_axis, subplots

#: Cells drawn (one panel each).
CELLS = 4
#: Batches of pulse traces read per group at most (the first ones: each holds every cell pulsed then).
MAX_BATCHES = 256


def pulse_trace_figures(step: StepData) -> list[Item]:
    """The transient-current figure of the step's first group with pulse traces (none without)."""
    group = next((g for g in step.groups if PULSE_TRACE_KIND in g.kinds), None)
    if group is None:
        return []
    batches = group.traces(PULSE_TRACE_KIND, MAX_BATCHES)
    if not batches:
        return []
    cells: list[tuple[int, int]] = []
    for r, c in zip(batches[0].rows.tolist(), batches[0].cols.tolist()):
        if len(cells) < CELLS:
            cells.append((r, c))
    curves: dict[tuple[int, int], list[tuple[float, float, np.ndarray, np.ndarray]]] = {cell: [] for cell in cells}
    for b in batches:
        current, time = b.values["pulse_current"], b.values["pulse_time"]
        number, voltage = b.scalars.get("pulse"), b.scalars.get("pulse_voltage")
        for k, cell in enumerate(zip(b.rows.tolist(), b.cols.tolist())):
            if cell in curves:
                n = float(number[k]) if number is not None else float(len(curves[cell]))
                v = float(voltage[k]) if voltage is not None else float("nan")
                curves[cell].append((n, v, time[k], current[k]))
    fig, axes = subplots(len(cells), ncol=2)
    cmap = pyplot().get_cmap("viridis")
    drawn = 0
    for ax, cell in zip(axes, cells):
        pulses = curves[cell]
        pick = np.unique(np.linspace(0, len(pulses) - 1, min(MAX_CURVES, len(pulses))).round().astype(int))
        last = pulses[-1][0] or 1.0
        for j in pick:
            n, v, t, i = pulses[j]
            ax.plot(t, i, lw=0.9, color=cmap(n / last), label=f"pulse {n:.0f} ({v:+.2g} V)" if pick.size <= 6 else None)
        drawn += pick.size
        ax.axhline(0.0, color="0.6", lw=0.5)
        si_axis(ax, "x", "time in pulse", "s")
        si_axis(ax, "y", "I", "A")
        ax.set_title(f"cell ({cell[0]}, {cell[1]}): {pick.size} of {len(pulses)} stored pulses", fontsize=9)
        legend(ax)
    read = "" if len(batches) < MAX_BATCHES else f" (of the first {MAX_BATCHES} batches of pulse traces)"
    return [Figure("pulse-currents", fig,
                   f"Current during the pulses{' (' + group.label + ')' if group.label else ''}, measured by the "
                   f"pulse-and-measure unit: {len(cells)} cells, {drawn} pulses{read}, coloured by pulse number "
                   "(dark first); set pulses give positive currents, reset pulses negative.")]
