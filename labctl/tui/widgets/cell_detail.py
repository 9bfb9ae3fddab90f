"""CellDetail: the cursor's cell — its values, its history from the store, and a live plot of the
running action (I–V sweep, pulse train, retention) drawn with textual-plotext."""
from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import numpy as np
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static
from textual_plotext import PlotextPlot

from labctl.routines.base import PULSE_TRACE_KIND, Measurements
from labctl.tui.heatmap import format_siemens

if TYPE_CHECKING:  # the store is imported where it is read, not when the TUI starts
    from labctl.campaigns.store import HistoryEntry

#: Batch kinds that carry a sweep (v and i traces, V and A), a read after a pulse, a timed read.
SWEEP_KINDS = ("forming_sweep", "iv_sweep", "reset_sweep", "sweep")
PULSE_KINDS = ("pulse_read", "verify_read")
TIMED_KINDS = ("retention",)


def _value_text(quantity: str, value: float) -> str:
    """A stored value with the unit its quantity name implies (g*, target: S; v*: V; i, i_*: A)."""
    if quantity in ("g", "target") or quantity.startswith("g_"):
        return format_siemens(value)
    if quantity in ("v", "elapsed", "pulse_voltage", "pulse_width") or quantity.startswith("v_"):
        return f"{value:.4g} {'s' if quantity in ('elapsed', 'pulse_width') else 'V'}"
    if quantity == "i" or quantity.startswith("i_"):
        return f"{value:.4g} A"
    return f"{value:.6g}"


def _ohms(r: float) -> str:
    for scale, unit in ((1e9, "GΩ"), (1e6, "MΩ"), (1e3, "kΩ")):
        if r >= scale:
            return f"{r / scale:.4g} {unit}"
    return f"{r:.4g} Ω"


class CellDetail(Vertical):
    """Header with the cell's values, its history table and the live plot."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.cell = (0, 0)
        self.g = math.nan
        self.n_selected = 1
        self._plot_kind = ""
        self._x: list[float] = []
        self._y: list[float] = []

    def compose(self) -> ComposeResult:
        yield Static("", id="cell-values")
        yield DataTable(id="cell-history", cursor_type="row", zebra_stripes=True)
        yield PlotextPlot(id="cell-plot")

    def on_mount(self) -> None:
        table = self.query_one("#cell-history", DataTable)
        table.add_columns("when", "run", "kind", "quantity", "value")
        table.can_focus = True
        plot = self.query_one(PlotextPlot)
        plot.plt.title("live plot: run an action")
        self._show_values()

    # -- values and history
    def show_cell(self, row: int, col: int, g: float, n_selected: int) -> None:
        self.cell, self.g, self.n_selected = (row, col), g, n_selected
        self._show_values()

    def _show_values(self) -> None:
        r, c = self.cell
        g = format_siemens(self.g) if math.isfinite(self.g) else "not read"
        sel = f"  ·  {self.n_selected} cells selected" if self.n_selected > 1 else ""
        r_text = f"  R = {_ohms(1 / self.g)}" if math.isfinite(self.g) and self.g > 0 else ""
        self.query_one("#cell-values", Static).update(f"[b]Cell ({r}, {c})[/b]  G = [b]{g}[/b]{r_text}{sel}")

    def show_history(self, entries: list[HistoryEntry]) -> None:
        table = self.query_one("#cell-history", DataTable)
        table.clear()
        for e in entries:
            if e.kind == PULSE_TRACE_KIND and e.quantity != "pulse_voltage":
                continue  # a measured pulse is one row: its voltage (its current is a trace, not listed)
            when = time.strftime("%H:%M:%S", time.localtime(e.wall_time))
            table.add_row(when, e.run_name, e.kind, e.quantity, _value_text(e.quantity, e.value))

    # -- live plot
    def start_plot(self, kind: str, title: str) -> None:
        """Clear the plot for a new action; kind: "iv", "pulse", "retention" or ""."""
        self._plot_kind, self._x, self._y = kind, [], []
        plot = self.query_one(PlotextPlot)
        plot.plt.clear_data()
        plot.plt.clear_figure()
        plot.plt.title(title)
        plot.refresh()

    def add_batch(self, m: Measurements) -> None:
        """Plot what a running action just measured (the cursor cell if it is in the batch, else the first)."""
        hit = np.flatnonzero((m.rows == self.cell[0]) & (m.cols == self.cell[1]))
        k = int(hit[0]) if hit.size else 0
        if m.rows.size == 0:
            return
        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        label = f"cell ({int(m.rows[k])}, {int(m.cols[k])})"
        if m.kind in SWEEP_KINDS and "v" in m.values and "i" in m.values:
            v = np.asarray(m.values["v"]).reshape(m.rows.size, -1)[k]
            i = np.asarray(m.values["i"]).reshape(m.rows.size, -1)[k]
            plt.clear_data()
            plt.plot(v.tolist(), (i * 1e6).tolist(), marker="braille", label=label)
            plt.xlabel("V (V)")
            plt.ylabel("I (µA)")
            plt.title(f"{m.kind}: I–V")
        elif (m.kind in PULSE_KINDS or m.kind in TIMED_KINDS) and "g" in m.values:
            g = float(np.asarray(m.values["g"])[k])
            if m.kind in TIMED_KINDS:
                self._x.append(max(float(np.asarray(m.values["elapsed"])[k]), 1e-3))
            else:
                self._x.append(len(self._x) + 1)
            self._y.append(g * 1e6)
            plt.clear_data()
            if m.kind in TIMED_KINDS:
                plt.xscale("log")
                plt.xlabel("time after start (s)")
            else:
                plt.xlabel("pulse")
            plt.ylabel("G (µS)")
            plt.title(f"{m.kind}: {label}")
            plt.plot(self._x, self._y, marker="braille")
        else:
            return
        plot.refresh()
