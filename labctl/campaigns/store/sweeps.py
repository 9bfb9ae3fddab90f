"""The store's sweep tables (docs/sweeps.md): a sweep, its tasks that ended, and the runs they brought.

Only the submitting process writes them (the one writer of a sweep): workers run each campaign task into
a store file of their own and hand it back; `record_task` copies that run into this store and records the
task in one transaction, so a task is either wholly stored (its run, its figures) or not at all, and a
task that arrives twice (a worker lost after finishing) is stored once.
"""
from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import labctl
from labctl.campaigns.store.records import shown_status

if TYPE_CHECKING:
    from labctl.campaigns.store.schema import Transaction

_SWEEP_COLUMNS = ("sweep_id, name, status, created_at, stopped_at, sweep_path, sweep_toml, sweep_json, seed, n_tasks,"
                  " package_version, host, pid, resumes, scheduler")
_TASK_COLUMNS = ("task_index, seed, axes_json, status, run_id, figures_json, error, attempts, worker, elapsed,"
                 " finished_at")
#: Tables of one run, in the order they are copied (batches first: scalars and traces refer to them).
_RUN_TABLES = ("runs", "units", "run_state", "events", "dies")
_BATCH_TABLES = ("scalars", "traces")


@dataclass(frozen=True)
class SweepRecord:
    """One sweep (table `sweeps`)."""

    sweep_id: str
    name: str
    status: str  # running | complete | failed
    created_at: float  # Unix time, s
    stopped_at: float | None
    sweep_path: str | None
    sweep_toml: str
    sweep: dict[str, Any]
    seed: int
    n_tasks: int
    package_version: str
    host: str
    pid: int | None
    resumes: int
    scheduler: str | None

    @property
    def shown_status(self) -> str:
        """Status as stored, except that a running sweep whose submitting process is gone shows 'interrupted'."""
        return shown_status(self.status, self.host, self.pid)


@dataclass(frozen=True)
class TaskRecord:
    """One task of a sweep that ended (table `sweep_tasks`)."""

    task_index: int
    seed: int
    axes: dict[str, Any]
    status: str  # done | failed
    run_id: str | None
    figures: dict[str, Any]
    error: str | None
    attempts: int
    worker: str | None
    elapsed: float | None  # s on the worker
    finished_at: float  # Unix time, s


def _sweep_record(row: tuple[Any, ...]) -> SweepRecord:
    (sweep_id, name, status, created_at, stopped_at, sweep_path, sweep_toml, sweep_json, seed, n_tasks,
     package_version, host, pid, resumes, scheduler) = row
    return SweepRecord(sweep_id, name, status, created_at, stopped_at, sweep_path, sweep_toml, json.loads(sweep_json),
                       seed, n_tasks, package_version, host, pid, resumes, scheduler)


def _task_record(row: tuple[Any, ...]) -> TaskRecord:
    (task_index, seed, axes_json, status, run_id, figures_json, error, attempts, worker, elapsed, finished_at) = row
    return TaskRecord(task_index, seed, json.loads(axes_json), status, run_id, json.loads(figures_json), error,
                      attempts, worker, elapsed, finished_at)


def _columns(db: sqlite3.Connection, schema: str, table: str) -> list[str]:
    return [r[1] for r in db.execute(f"PRAGMA {schema}.table_info({table})")]


class SweepTables:
    """The sweep half of `Store` (mixed in; uses its connection `db` and `_transaction`)."""

    db: sqlite3.Connection
    path: Path

    def _transaction(self) -> Transaction:  # provided by Store
        raise NotImplementedError

    # -- written by the sweep's one writer
    def create_sweep(self, sweep_id: str, *, name: str, sweep_toml: str, sweep: dict[str, Any], seed: int,
                     n_tasks: int, sweep_path: str | None = None) -> None:
        """Insert a sweep, running in this process on this host."""
        self.db.execute(f"INSERT INTO sweeps ({_SWEEP_COLUMNS}) VALUES (?, ?, 'running', ?, NULL, ?, ?, ?, ?, ?, ?, ?,"
                        " ?, 0, NULL)",
                        (sweep_id, name, time.time(), sweep_path, sweep_toml, json.dumps(sweep), seed, n_tasks,
                         labctl.__version__, socket.gethostname(), os.getpid()))

    def claim_sweep(self, sweep_id: str, status: str, pid: int | None) -> bool:
        """Take a stored sweep for this process if it still has the `status` and `pid` the caller read (of
        two resumers started at once, one wins); counts a resume."""
        cur = self.db.execute("UPDATE sweeps SET status = 'running', pid = ?, host = ?, resumes = resumes + 1,"
                              " stopped_at = NULL WHERE sweep_id = ? AND status = ? AND pid IS ?",
                              (os.getpid(), socket.gethostname(), sweep_id, status, pid))
        return cur.rowcount == 1

    def set_scheduler(self, sweep_id: str, address: str) -> None:
        """Record the Dask scheduler the sweep is submitted to."""
        self.db.execute("UPDATE sweeps SET scheduler = ? WHERE sweep_id = ?", (address, sweep_id))

    def finish_sweep(self, sweep_id: str, status: str) -> None:
        """End a sweep with `status` (complete | failed | interrupted)."""
        self.db.execute("UPDATE sweeps SET status = ?, stopped_at = ? WHERE sweep_id = ?",
                        (status, time.time(), sweep_id))

    def record_task(self, sweep_id: str, task: TaskRecord, run_file: Path | None = None) -> bool:
        """Store one ended task and, from `run_file` (the worker's store), the run it made, in one
        transaction. False (nothing written) if the task is stored as done already; a failed task is
        replaced by a later attempt."""
        existing = self.db.execute("SELECT status, run_id FROM sweep_tasks WHERE sweep_id = ? AND task_index = ?",
                                   (sweep_id, task.task_index)).fetchone()
        if existing is not None and existing[0] == "done":
            return False
        if run_file is not None:
            # a plain path: a "file:" URI is taken as a file name where SQLite is built without URI support,
            # which would attach a new empty database and copy nothing
            self.db.execute("ATTACH DATABASE ? AS task", (str(run_file),))
        try:
            with self._transaction() as db:
                if existing is not None:
                    db.execute("DELETE FROM sweep_tasks WHERE sweep_id = ? AND task_index = ?",
                               (sweep_id, task.task_index))
                    if existing[1] is not None:
                        _delete_run(db, existing[1])
                if run_file is not None and task.run_id is not None:
                    _copy_run(db, task.run_id)
                db.execute(f"INSERT INTO sweep_tasks (sweep_id, {_TASK_COLUMNS}) VALUES"
                           " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (sweep_id, task.task_index, task.seed, json.dumps(task.axes, sort_keys=True), task.status,
                            task.run_id, json.dumps(task.figures, sort_keys=True), task.error, task.attempts,
                            task.worker, task.elapsed, task.finished_at))
        finally:
            if run_file is not None:
                self.db.execute("DETACH DATABASE task")
        return True

    # -- read
    def sweep(self, sweep_id: str) -> SweepRecord:
        """The sweep with exactly this id; KeyError if there is none."""
        row = self.db.execute(f"SELECT {_SWEEP_COLUMNS} FROM sweeps WHERE sweep_id = ?", (sweep_id,)).fetchone()
        if row is None:
            raise KeyError(sweep_id)
        return _sweep_record(row)

    def sweeps(self) -> list[SweepRecord]:
        """Every sweep, oldest first."""
        return [_sweep_record(r) for r in
                self.db.execute(f"SELECT {_SWEEP_COLUMNS} FROM sweeps ORDER BY created_at, sweep_id")]

    def find_sweep(self, ref: str) -> str:
        """Sweep id from an id, a unique prefix of one, or 'last'; KeyError naming what is there otherwise."""
        if ref in ("last", "latest"):
            row = self.db.execute("SELECT sweep_id FROM sweeps ORDER BY created_at DESC, sweep_id DESC LIMIT 1"
                                  ).fetchone()
            if row is None:
                raise KeyError(f"sweep: the store {self.path} holds no sweeps")
            return str(row[0])
        rows = [r[0] for r in self.db.execute("SELECT sweep_id FROM sweeps WHERE sweep_id = ? OR sweep_id LIKE ?",
                                              (ref, ref.replace("%", "") + "%"))]
        if ref in rows:
            return ref
        if len(rows) == 1:
            return str(rows[0])
        if not rows:
            raise KeyError(f"sweep: no sweep {ref!r} in {self.path} (see `labctl sweeps list --store {self.path}`)")
        raise KeyError(f"sweep: {ref!r} matches {len(rows)} sweeps ({', '.join(rows[:5])}...); give more characters")

    def sweep_tasks(self, sweep_id: str) -> list[TaskRecord]:
        """The sweep's ended tasks, by index."""
        return [_task_record(r) for r in self.db.execute(
            f"SELECT {_TASK_COLUMNS} FROM sweep_tasks WHERE sweep_id = ? ORDER BY task_index", (sweep_id,))]


def _copy_run(db: sqlite3.Connection, run_id: str) -> None:
    """Copy run `run_id` from the attached worker store `task` into main (batch ids renumbered)."""
    for table in _RUN_TABLES:
        cols = ", ".join(_columns(db, "main", table))
        db.execute(f"INSERT INTO main.{table} ({cols}) SELECT {cols} FROM task.{table} WHERE run_id = ?", (run_id,))
    batch_cols = [c for c in _columns(db, "main", "batches") if c != "batch_id"]
    cols = ", ".join(batch_cols)
    db.execute(f"INSERT INTO main.batches ({cols}) SELECT {cols} FROM task.batches WHERE run_id = ? ORDER BY batch_id",
               (run_id,))
    for table in _BATCH_TABLES:
        other = [c for c in _columns(db, "main", table) if c != "batch_id"]
        db.execute(
            f"INSERT INTO main.{table} (batch_id, {', '.join(other)})"
            f" SELECT m.batch_id, {', '.join('s.' + c for c in other)} FROM task.{table} s"
            " JOIN task.batches tb ON tb.batch_id = s.batch_id"
            " JOIN main.batches m ON m.run_id = tb.run_id AND m.unit_index = tb.unit_index"
            " AND m.attempt = tb.attempt AND m.seq = tb.seq WHERE tb.run_id = ?", (run_id,))


def _delete_run(db: sqlite3.Connection, run_id: str) -> None:
    """Remove a run a failed task left, before its retry's run replaces it."""
    for table in _BATCH_TABLES:
        db.execute(f"DELETE FROM {table} WHERE batch_id IN (SELECT batch_id FROM batches WHERE run_id = ?)", (run_id,))
    for table in ("batches", *_RUN_TABLES):
        db.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
