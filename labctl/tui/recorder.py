"""A cell's history out of the run store.

Every action the operator takes at the TUI is a run of its own in the same SQLite store `labctl run`
writes (labctl.campaigns.store, schema in docs/store.md), stored by the campaign Runner: one run of one
unit, named "tui: <action>", whose campaign text is the one-step campaign file that repeats the action
(labctl.tui.actions.campaign_text).

`cell_history` reads a cell's measurements back (any run, manual or campaign, on the same backend
identity), newest first, on its own read-only connection (safe from any thread).
"""
from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class HistoryEntry:
    """One stored scalar measurement of a cell (SI units)."""

    wall_time: float  # Unix time, s
    t: float  # backend clock, s
    run_name: str
    kind: str
    quantity: str
    value: float


def cell_history(path: str | os.PathLike[str], row: int, col: int, *, backend_kind: str | None = None,
                 identity: dict[str, str] | None = None, limit: int = 50) -> list[HistoryEntry]:
    """Scalar measurements of cell (row, col), newest first, from runs on the same backend identity.

    Opens the store read-only; returns [] when the file does not exist yet.
    """
    if not Path(path).exists():
        return []
    db = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True, timeout=5.0)
    try:
        sql = ("SELECT b.batch_id, b.wall_time, b.t, r.name, b.kind, b.n_cells, b.cells FROM batches b"
               " JOIN runs r ON r.run_id = b.run_id WHERE 1")
        args: list[Any] = []
        if backend_kind is not None:
            sql += " AND r.backend_kind = ?"
            args.append(backend_kind)
        if identity is not None:
            sql += " AND r.identity_json = ?"
            args.append(json.dumps(identity))
        sql += " ORDER BY b.wall_time DESC, b.batch_id DESC"
        out: list[HistoryEntry] = []
        try:
            # Scalars are stored per batch (one blob per quantity), so the cell is looked up in each
            # batch's cell list, newest batch first, until `limit` values are found.
            for batch_id, wall_time, t, name, kind, n, cells in db.execute(sql, args):
                rc = np.frombuffer(cells, "<i4").reshape(n, 2)
                (hits,) = np.nonzero((rc[:, 0] == row) & (rc[:, 1] == col))
                if hits.size == 0:
                    continue
                for q, data in db.execute("SELECT quantity, data FROM scalars WHERE batch_id = ?"
                                          " ORDER BY rowid DESC", (batch_id,)):
                    values = np.frombuffer(data, "<f8")
                    for i in hits[::-1]:
                        if not np.isnan(values[i]):
                            out.append(HistoryEntry(wall_time, t, name, kind, q, float(values[i])))
                if len(out) >= limit:
                    break
        except sqlite3.OperationalError:  # an empty file without the schema yet
            return []
        return out[:limit]
    finally:
        db.close()
