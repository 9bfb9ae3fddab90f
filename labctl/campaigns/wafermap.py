"""Wafer maps of a wafer campaign's per-die summaries (the store's `dies` table): one panel per quantity,
each die a square at its (column, row), coloured by the quantity; skipped and failed dies marked.

`wafer_map_figure(dies)` returns a matplotlib Figure (no pyplot state: usable from a report writer, a
notebook or a web page alike). Quantities are named "<step name>.<summary key>", e.g. "forming-0.yield".
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from labctl.campaigns.store import DieRecord

#: Summary keys shown first when present, in this order: yield, forming voltage, programming spread.
PREFERRED_KEYS = ("yield", "v_form_1t1r_mean_V", "rel_error_std", "converged_fraction", "g_mean_S")
MAX_PANELS = 6


def die_value(die: DieRecord, quantity: str) -> float:
    """A die's value of "<step>.<key>" (NaN if the die has none: skipped, failed, not measured yet)."""
    step, _, key = quantity.rpartition(".")
    value = ((die.summary or {}).get(step) or {}).get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def quantities(dies: Sequence[DieRecord]) -> list[str]:
    """Every numeric per-die summary quantity, the preferred keys first, then the rest by name."""
    found: set[str] = set()
    for d in dies:
        for step, summary in (d.summary or {}).items():
            for key, value in (summary or {}).items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "cells":
                    found.add(f"{step}.{key}")
    rank = {k: i for i, k in enumerate(PREFERRED_KEYS)}
    return sorted(found, key=lambda q: (rank.get(q.rpartition(".")[2], len(rank)), q))


def wafer_map_figure(dies: Sequence[DieRecord], shown: Sequence[str] | None = None, title: str = "") -> Figure:
    """The wafer maps of `shown` quantities (default: the first MAX_PANELS of `quantities(dies)`, or the dies'
    status alone when none has a summary yet)."""
    shown = list(shown) if shown is not None else quantities(dies)[:MAX_PANELS]
    panels: list[str | None] = list(shown) or [None]
    ncol = min(3, len(panels))
    nrow = -(-len(panels) // ncol)
    fig = Figure(figsize=(3.6 * ncol, 3.3 * nrow))
    columns = max((d.column for d in dies), default=0) + 1
    rows = max((d.row for d in dies), default=0) + 1
    for k, quantity in enumerate(panels):
        ax = fig.add_subplot(nrow, ncol, k + 1)
        grid = np.full((rows, columns), np.nan)
        for d in dies:
            grid[d.row, d.column] = die_value(d, quantity) if quantity else {"done": 1.0}.get(d.status, 0.0)
        im = ax.imshow(grid, origin="lower", cmap="viridis", interpolation="nearest")
        for d in dies:
            mark = {"skipped": "skip", "failed": "fail", "pending": "", "measuring": "..."}.get(d.status)
            if mark:
                ax.text(d.column, d.row, mark, ha="center", va="center", fontsize=7, color="red")
        ax.set_title(quantity or "die status (1 = done)", fontsize=8)
        ax.set_xlabel("column")
        ax.set_ylabel("row")
        ax.set_xticks(range(columns))
        ax.set_yticks(range(rows))
        if np.isfinite(grid).any():
            fig.colorbar(im, ax=ax, shrink=0.8)
    done = sum(d.status == "done" for d in dies)
    fig.suptitle(f"{title}  {done}/{len(dies)} dies done".strip(), fontsize=10)
    fig.tight_layout()
    return fig


def die_table(dies: Sequence[DieRecord]) -> list[dict[str, Any]]:
    """The dies as plain rows (for summary.json): position, status, touchdowns, contact reading, message."""
    return [{"die": d.die_index, "column": d.column, "row": d.row, "status": d.status, "touchdowns": d.touchdowns,
             "contact_g_S": d.contact_g, "message": d.message, "summary": d.summary} for d in dies]
