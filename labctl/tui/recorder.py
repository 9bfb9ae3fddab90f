"""Manual actions into the run store, and a cell's history out of it.

Every action the operator takes at the TUI is stored as a run of its own in the same SQLite store
`labctl run` writes (labctl.campaigns.store, schema in docs/store.md): one run of one unit, named
"tui: <action>", whose campaign text is the one-step campaign file that would repeat the action.
Batches are committed as the routine emits them, so a crash of the TUI keeps what was measured;
the run ends complete, aborted or failed like a campaign run.

`cell_history` reads a cell's measurements back (any run, manual or campaign, on the same backend
identity), newest first, on its own read-only connection (safe from any thread).
"""
from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

import labctl
from labctl.backends.base import ArrayBackend
from labctl.routines.base import Measurements


def campaign_text(action: str, routine: str, rows: np.ndarray, cols: np.ndarray, params: BaseModel,
                  info: Any) -> str:
    """The one-step campaign file equivalent to a manual action (stored as the run's campaign text)."""
    cells = ", ".join(f"[{int(r)}, {int(c)}]" for r, c in zip(rows[:4096], cols[:4096]))
    lines = [
        "# Recorded by `labctl tui`: one manual action as the campaign that repeats it.",
        "[campaign]", f'name = "tui: {action}"', "",
        "[backend]", f'kind = "{info.kind}"', f"rows = {info.rows}", f"cols = {info.cols}", "",
        "[[steps]]", f'routine = "{routine}"', f'name = "{action}"', f"cells = {{ list = [{cells}] }}",
        "[steps.params]",
    ]
    for k, v in params.model_dump(exclude_defaults=True).items():
        lines.append(f"{k} = {json.dumps(v)}")
    return "\n".join(lines) + "\n"


@dataclass
class ManualRun:
    """One manual action being recorded. Use on the thread that owns `store`."""

    store: Any  # labctl.campaigns.store.Store
    run_id: str
    seq: int = 0
    measurements: int = 0

    @classmethod
    def begin(cls, store: Any, backend: ArrayBackend, action: str, routine: str, rows: np.ndarray,
              cols: np.ndarray, params: BaseModel) -> ManualRun:
        """Create the run (status running) and its single unit."""
        from labctl.campaigns.runner import new_run_id

        run_id = new_run_id()
        info = backend.info
        run = {
            "run_id": run_id, "name": f"tui: {action}", "status": "running", "created_at": time.time(),
            "started_at": time.time(), "campaign_path": None,
            "campaign_toml": campaign_text(action, routine, rows, cols, params, info),
            "campaign_json": json.dumps({"action": action, "routine": routine,
                                         "params": json.loads(params.model_dump_json())}),
            "package_version": labctl.__version__, "seed": None, "backend_kind": info.kind,
            "identity_json": json.dumps(info.identity), "metadata_json": json.dumps({"source": "labctl tui"}),
            "host": socket.gethostname(), "pid": os.getpid(), "n_units": 1,
        }
        unit = {"run_id": run_id, "unit_index": 0, "step_index": 0, "step_name": action, "routine": routine,
                "pass_index": 0, "repeat_index": 0, "sweep_index": 0, "chunk_index": 0, "n_cells": int(rows.size),
                "params_json": params.model_dump_json()}
        store.create_run(run, [unit], None)
        store.event(run_id, "start", "manual action started from labctl tui")
        store.start_unit(run_id, 0, 0)
        return cls(store, run_id)

    def sink(self, m: Measurements) -> None:
        """Commit one emitted batch (the RoutineContext sink)."""
        self.measurements += self.store.append_batch(self.run_id, 0, 0, self.seq, m)
        self.seq += 1

    def finish(self, status: str, summary: dict[str, Any] | None = None, error: str | None = None) -> None:
        """End the run: complete (unit done with its summary), aborted or failed (error recorded)."""
        if status == "complete":
            self.store.finish_unit(self.run_id, 0, summary or {}, None)
        if error:
            self.store.add_error(self.run_id, error)
        self.store.update_run(self.run_id, status=status, stopped_at=time.time())
        self.store.event(self.run_id, "stop", f"run {status}")


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
