"""The run store: one SQLite file in WAL mode (schema in docs/store.md), and the only place with SQL.

Durability contract (docs/campaigns.md): every batch of measurements is committed as it is emitted;
the end of a unit of work (its status, its summary and the backend state after it) is committed in one
transaction. A process killed at any moment therefore leaves only whole batches and whole unit ends.
"""
from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import labctl
from labctl.campaigns.store import codec
from labctl.campaigns.store.records import DieRecord, EventRecord, HistoryEntry, RunRecord, StoredBatch, UnitPlan, UnitRecord
from labctl.campaigns.store.schema import (SCHEMA_VERSION, Transaction, check_version, create_or_migrate,
                                           stored_version)
from labctl.campaigns.store.sweeps import SweepTables
from labctl.routines.base import Measurements

DEFAULT_STORE = "labctl-runs.sqlite"

EXPORT_COLUMNS = ("unit_index", "step_index", "step_name", "routine", "pass_index", "repeat_index", "sweep_index",
                  "chunk_index", "attempt", "seq", "kind", "t", "cell_row", "cell_col", "quantity", "value", "trace")

_RUN_COLUMNS = ("run_id, name, status, created_at, started_at, stopped_at, campaign_path, campaign_toml,"
                " campaign_json, package_version, seed, backend_kind, identity_json, metadata_json, host, pid,"
                " n_units, resumes, errors_json, telemetry_json")
_UNIT_COLUMNS = ("unit_index, step_index, step_name, routine, pass_index, repeat_index, sweep_index, chunk_index,"
                 " n_cells, params_json, status, attempt, started_at, finished_at, summary_json")


def _vectors(m: Measurements) -> Iterator[tuple[str, np.ndarray, bool]]:
    """Each quantity of a batch as (name, array, shared): scalars as (n,), vectors as (n, points) or, when
    every cell has the same trace (broadcast from one, or equal: a sweep's voltages), that one (points,)."""
    n = m.rows.size
    for q, arr in m.values.items():
        a = np.asarray(arr)
        if a.ndim == 0:
            a = np.broadcast_to(a, (n,))
        if a.ndim == 1:
            yield q, a, False
            continue
        if n >= 1 and a.strides[0] == 0:  # broadcast from one trace: shared without looking
            yield q, a.reshape(n, -1)[0], True
            continue
        flat = a.reshape(n, -1)
        if n > 1 and bool(np.all(flat == flat[0])):  # e.g. the voltages of a sweep, repeated
            yield q, flat[0], True
        else:
            yield q, flat, False


def _split(batch_id: int, m: Measurements) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Scalar rows and trace rows of a batch, one per quantity, encoded (docs/store.md, "Encoding"):
    scalars and shared traces as float64 exactly, per-cell traces as float32."""
    scalars: list[tuple[Any, ...]] = []
    traces: list[tuple[Any, ...]] = []
    for q, a, shared in _vectors(m):
        if a.ndim == 1 and not shared:
            scalars.append((batch_id, q, codec.EXACT, codec.encode(a, codec.EXACT)))
        else:
            how = codec.EXACT if shared else codec.READING
            traces.append((batch_id, q, a.shape[-1], int(shared), how, codec.encode(a, how)))
    return scalars, traces


def stored_form(m: Measurements) -> Measurements:
    """The batch `m` as the store keeps it (per-cell traces rounded to float32; everything else as it is):
    what a replayed batch is compared with the stored one in."""
    n = m.rows.size
    values: dict[str, Any] = {}
    for q, a, shared in _vectors(m):
        if a.ndim == 1 and not shared:
            values[q] = a
        elif shared:
            values[q] = np.broadcast_to(a, (n, a.size))
        else:
            values[q] = a.astype(np.float32).astype(np.float64)
    return Measurements(kind=m.kind, rows=m.rows, cols=m.cols, t=m.t, values=values)


def _cells_blob(m: Measurements) -> bytes:
    return codec.encode(np.stack([m.rows, m.cols], axis=1), codec.CELLS)


def _run_record(row: Sequence[Any]) -> RunRecord:
    (run_id, name, status, created_at, started_at, stopped_at, campaign_path, campaign_toml, campaign_json,
     package_version, seed, backend_kind, identity_json, metadata_json, host, pid, n_units, resumes, errors_json,
     telemetry_json) = row
    return RunRecord(
        run_id=run_id, name=name, status=status, created_at=created_at, started_at=started_at,
        stopped_at=stopped_at, campaign_path=campaign_path, campaign_toml=campaign_toml,
        campaign=json.loads(campaign_json), package_version=package_version, seed=seed, backend_kind=backend_kind,
        identity=json.loads(identity_json), metadata=json.loads(metadata_json), host=host, pid=pid,
        n_units=n_units, resumes=resumes, errors=json.loads(errors_json),
        telemetry=json.loads(telemetry_json) if telemetry_json else None)


def _unit_record(row: Sequence[Any]) -> UnitRecord:
    (unit_index, step_index, step_name, routine, pass_index, repeat_index, sweep_index, chunk_index, n_cells,
     params_json, status, attempt, started_at, finished_at, summary_json) = row
    return UnitRecord(
        unit_index=unit_index, step_index=step_index, step_name=step_name, routine=routine,
        pass_index=pass_index, repeat_index=repeat_index, sweep_index=sweep_index, chunk_index=chunk_index,
        n_cells=n_cells, params=json.loads(params_json), status=status, attempt=attempt, started_at=started_at,
        finished_at=finished_at, summary=json.loads(summary_json) if summary_json else None)


class StoreError(Exception):
    """A store file that cannot be opened, read or written (corrupt, not SQLite, truncated, a full disk,
    a directory that cannot be written); the message names the file. `status`: the CLI's exit status
    (2: the file given is unusable; 1: an operation on a good file failed)."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


def as_store_error(exc: BaseException, path: str | os.PathLike[str]) -> StoreError | None:
    """The StoreError an SQLite error on the store at `path` means, or None for any other error."""
    if isinstance(exc, StoreError):
        return exc
    if not isinstance(exc, sqlite3.Error):
        return None
    text = str(exc)
    if "disk is full" in text or "disk I/O error" in text:
        return StoreError(f"store {path}: cannot write ({text})", status=1)
    if "unable to open" in text or "readonly" in text:
        return StoreError(f"store {path}: cannot open or write the file or its directory ({text})")
    return StoreError(f"store {path}: not a readable labctl run store ({type(exc).__name__}: {text})")


class Store(SweepTables):
    """The SQLite run store. One connection per process; not shared across threads.

    read_only=True opens an existing file for reading only (FileNotFoundError if there is none): it never
    creates, migrates or locks anything, so any thread may open one beside a writer (e.g. the TUI's cell
    history while a run is stored)."""

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_STORE, *, synchronous: str = "NORMAL",
                 read_only: bool = False) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise StoreError(f"store {self.path}: is a directory, not a run store file")
        if read_only and not self.path.is_file():
            raise FileNotFoundError(f"store: no run store at {self.path}")
        if not read_only and synchronous.upper() not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous: expected NORMAL or FULL, got {synchronous!r}")
        #: The file's schema version: SCHEMA_VERSION once opened for writing (older files are migrated);
        #: a read-only open reads an older file as it is.
        self.version = SCHEMA_VERSION
        try:
            self._open(read_only, synchronous)
        except sqlite3.Error as exc:  # corrupt, truncated, not SQLite, an unwritable directory
            raise as_store_error(exc, self.path) from exc  # type: ignore[misc]

    def _open(self, read_only: bool, synchronous: str) -> None:
        if read_only:
            self.db = sqlite3.connect(f"file:{self.path.resolve()}?mode=ro", uri=True, timeout=30.0)
            self._checked(lambda: check_version(stored_version(self.db), self.path))
            self.version = stored_version(self.db) or SCHEMA_VERSION
            # A file that is not SQLite (or truncated) shows only when a page is read.
            self._checked(lambda: self.db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone())
            return
        self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        # 16 KiB pages (new files only): a sweep's traces are blobs of hundreds of kB, which 4 KiB pages
        # split into long overflow chains; measured ~10x faster commits of such blobs.
        self._checked(lambda: self.db.execute("PRAGMA page_size=16384"))
        self._checked(lambda: self.db.execute("PRAGMA journal_mode=WAL"))
        # NORMAL in WAL mode: a committed transaction survives the process being killed (it is in the
        # WAL, in the OS page cache); FULL also survives power loss at the price of an fsync per commit.
        self.db.execute(f"PRAGMA synchronous={synchronous.upper()}")
        self._checked(lambda: create_or_migrate(self.db, self.path))

    def _checked(self, opening: Callable[[], None]) -> None:
        """Run the opening checks; a file refused (or failing) leaves no connection open."""
        try:
            opening()
        except BaseException:
            self.db.close()
            raise

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _transaction(self) -> Transaction:
        return Transaction(self.db)

    # -- blobs: schema 3 encodes each (its `codec` column); a read-only schema-2 file holds raw float64
    def _codec_column(self) -> str:
        return "codec" if self.version >= 3 else f"'{codec.RAW}'"

    def _cells(self, blob: bytes, n: int) -> np.ndarray:
        """A batch's cells as int64 (n, 2) (row, col) pairs, in the batch's order."""
        if self.version >= 3:
            return codec.decode(blob, codec.CELLS).reshape(n, 2)
        return np.frombuffer(blob, "<i4").reshape(n, 2).astype(np.int64)

    @staticmethod
    def _only(quantities: Sequence[str] | None) -> tuple[str, list[Any]]:
        if quantities is None:
            return "", []
        return f" AND quantity IN ({', '.join('?' for _ in quantities)})", list(quantities)

    def _scalar_blobs(self, batch_id: int, order: str = "",
                      quantities: Sequence[str] | None = None) -> list[tuple[str, np.ndarray]]:
        only, args = self._only(quantities)
        rows = self.db.execute(f"SELECT quantity, {self._codec_column()}, data FROM scalars WHERE batch_id = ?"
                               f"{only} ORDER BY rowid {order}", (batch_id, *args)).fetchall()
        return [(q, codec.decode(data, how)) for q, how, data in rows]

    def _trace_blobs(self, batch_id: int,
                     quantities: Sequence[str] | None = None) -> list[tuple[str, int, bool, np.ndarray]]:
        """(quantity, points, shared, float64 values: (n_points,) if shared else (n_cells * n_points,))."""
        only, args = self._only(quantities)
        rows = self.db.execute(f"SELECT quantity, n_points, shared, {self._codec_column()}, data FROM traces"
                               f" WHERE batch_id = ?{only} ORDER BY rowid", (batch_id, *args)).fetchall()
        return [(q, k, bool(shared), codec.decode(data, how, k)) for q, k, shared, how, data in rows]

    # -- runs: written by the run engine
    def create_run(self, run_id: str, *, name: str, campaign_toml: str, campaign: dict[str, Any], backend_kind: str,
                   identity: dict[str, str], metadata: dict[str, Any], units: Sequence[UnitPlan],
                   backend_state: bytes | None = None, seed: int | None = None,
                   campaign_path: str | None = None) -> None:
        """Insert a run (status running, started now by this process on this host), its planned units
        (pending) and the backend state before the first unit, in one transaction."""
        now = time.time()
        with self._transaction() as db:
            db.execute(f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES (?, ?, 'running', ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?,"
                       " ?, ?, ?, ?, 0, '[]', NULL)",
                       (run_id, name, now, now, campaign_path, campaign_toml, json.dumps(campaign), labctl.__version__,
                        seed, backend_kind, json.dumps(identity), json.dumps(metadata), socket.gethostname(),
                        os.getpid(), len(units)))
            db.executemany(
                "INSERT INTO units (run_id, unit_index, step_index, step_name, routine, pass_index, repeat_index,"
                " sweep_index, chunk_index, n_cells, params_json, status) VALUES"
                " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending')",
                [(run_id, u.unit_index, u.step_index, u.step_name, u.routine, u.pass_index, u.repeat_index,
                  u.sweep_index, u.chunk_index, u.n_cells, json.dumps(u.params, sort_keys=True)) for u in units])
            db.execute("INSERT INTO run_state VALUES (?, -1, ?, ?)", (run_id, backend_state, now))
            db.execute("INSERT INTO events VALUES (?, ?, 'create', ?)", (run_id, now, "run created"))

    def resume_run(self, run_id: str) -> None:
        """Mark a stored run running again, in this process on this host, one resume more."""
        self.db.execute("UPDATE runs SET status = 'running', pid = ?, host = ?, resumes = resumes + 1,"
                        " stopped_at = NULL WHERE run_id = ?", (os.getpid(), socket.gethostname(), run_id))

    def claim_run(self, run_id: str, status: str, pid: int | None) -> bool:
        """Take a stored run for this process, atomically: marks it running here only if it still has
        the `status` and `pid` the caller read. False if another process claimed it in between (the
        resume lock: of two resumers started at once, one wins)."""
        cur = self.db.execute("UPDATE runs SET status = 'running', pid = ?, host = ? WHERE run_id = ? AND"
                              " status = ? AND pid IS ?", (os.getpid(), socket.gethostname(), run_id, status, pid))
        return cur.rowcount == 1

    def finish_run(self, run_id: str, status: str, errors: Iterable[str] = ()) -> None:
        """End a run: record its errors (appended to the run's list, one `error` event each), its status
        and stop time, and a `stop` event, in one transaction."""
        errors = list(errors)
        now = time.time()
        with self._transaction() as db:
            if errors:
                (stored,) = db.execute("SELECT errors_json FROM runs WHERE run_id = ?", (run_id,)).fetchone()
                db.execute("UPDATE runs SET errors_json = ? WHERE run_id = ?",
                           (json.dumps(json.loads(stored) + errors), run_id))
                db.executemany("INSERT INTO events VALUES (?, ?, 'error', ?)", [(run_id, now, e) for e in errors])
            db.execute("UPDATE runs SET status = ?, stopped_at = ? WHERE run_id = ?", (status, now, run_id))
            db.execute("INSERT INTO events VALUES (?, ?, 'stop', ?)", (run_id, now, f"run {status}"))

    def mark_failed(self, run_id: str, errors: Iterable[str]) -> None:
        """The smallest write that ends a run as failed, its errors appended (one statement, no events): what
        the runner falls back to when finish_run could not be committed (a full disk)."""
        (stored,) = self.db.execute("SELECT errors_json FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        self.db.execute("UPDATE runs SET status = 'failed', stopped_at = ?, errors_json = ? WHERE run_id = ?",
                        (time.time(), json.dumps(json.loads(stored) + list(errors)), run_id))

    def set_telemetry(self, run_id: str, stats: dict[str, Any]) -> None:
        """Record the run's telemetry statistics (broker, sent, dropped, ...; docs/store.md)."""
        self.db.execute("UPDATE runs SET telemetry_json = ? WHERE run_id = ?", (json.dumps(stats), run_id))

    def event(self, run_id: str, kind: str, message: str) -> None:
        """Append an entry to the run's log."""
        self.db.execute("INSERT INTO events VALUES (?, ?, ?, ?)", (run_id, time.time(), kind, message))

    # -- runs: read
    def events(self, run_id: str) -> list[EventRecord]:
        """The run's log, oldest first."""
        return [EventRecord(at, kind, message) for at, kind, message in
                self.db.execute("SELECT at, kind, message FROM events WHERE run_id = ? ORDER BY rowid", (run_id,))]

    def has_run(self, run_id: str) -> bool:
        """Whether the store holds a run with exactly this id."""
        return self.db.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is not None

    def run(self, run_id: str) -> RunRecord:
        """The run with exactly this id; KeyError if there is none."""
        row = self.db.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise KeyError(run_id)
        return _run_record(row)

    def runs(self) -> list[RunRecord]:
        """Every run, oldest first."""
        return [_run_record(r) for r in self.db.execute(f"SELECT {_RUN_COLUMNS} FROM runs"
                                                         " ORDER BY created_at, run_id")]

    def latest_run(self) -> RunRecord | None:
        """The run created last, or None if the store holds none."""
        row = self.db.execute(f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY created_at DESC, run_id DESC LIMIT 1"
                              ).fetchone()
        return None if row is None else _run_record(row)

    def find_run(self, ref: str) -> str:
        """Run id from an id, a unique prefix of one, or 'last'; KeyError naming the candidates otherwise."""
        if ref in ("last", "latest"):
            latest = self.latest_run()
            if latest is None:
                raise KeyError(f"run: the store {self.path} holds no runs")
            return latest.run_id
        rows = [r[0] for r in self.db.execute("SELECT run_id FROM runs WHERE run_id = ? OR run_id LIKE ?",
                                              (ref, ref.replace("%", "") + "%"))]
        if ref in rows:
            return ref
        if len(rows) == 1:
            return rows[0]
        if not rows:
            raise KeyError(f"run: no run {ref!r} in {self.path} (see `labctl runs list --store {self.path}`)")
        raise KeyError(f"run: {ref!r} matches {len(rows)} runs ({', '.join(rows[:5])}...); give more characters")

    # -- units
    def units(self, run_id: str, first: int = 0, last: int | None = None) -> list[UnitRecord]:
        """The run's units of work in plan order (those from `first` to `last`, inclusive, if given)."""
        hi = (1 << 62) if last is None else last
        return [_unit_record(r) for r in self.db.execute(f"SELECT {_UNIT_COLUMNS} FROM units WHERE run_id = ? AND"
                                                          " unit_index BETWEEN ? AND ? ORDER BY unit_index",
                                                          (run_id, first, hi))]

    def units_done(self, run_id: str) -> int:
        """How many of the run's units are done."""
        (n,) = self.db.execute("SELECT COUNT(*) FROM units WHERE run_id = ? AND status = 'done'",
                               (run_id,)).fetchone()
        return int(n)

    def start_unit(self, run_id: str, unit_index: int, attempt: int) -> None:
        """Mark a unit running (this attempt, started now)."""
        self.db.execute("UPDATE units SET status = 'running', attempt = ?, started_at = ? WHERE run_id = ?"
                        " AND unit_index = ?", (attempt, time.time(), run_id, unit_index))

    def finish_unit(self, run_id: str, unit_index: int, summary: Any, backend_state: bytes | None) -> None:
        """Mark a unit done with its summary and the backend state after it, in one transaction."""
        now = time.time()
        with self._transaction() as db:
            db.execute("UPDATE units SET status = 'done', finished_at = ?, summary_json = ? WHERE run_id = ?"
                       " AND unit_index = ?", (now, json.dumps(summary, default=json_default), run_id, unit_index))
            db.execute("UPDATE run_state SET after_unit = ?, backend_state = ?, saved_at = ? WHERE run_id = ?",
                       (unit_index, backend_state, now, run_id))

    def state(self, run_id: str) -> tuple[int, bytes | None]:
        """(index of the last unit done, -1 before the first; the backend state saved after it or None)."""
        row = self.db.execute("SELECT after_unit, backend_state FROM run_state WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise KeyError(run_id)
        return row[0], row[1]

    # -- dies of a wafer campaign
    def create_dies(self, run_id: str, dies: Sequence[tuple[int, int, int, int, int]]) -> None:
        """Record a wafer run's dies, pending: (die_index, column, row, first_unit, last_unit) each. Dies
        already recorded (a resume) are left as they are."""
        with self._transaction() as db:
            db.executemany("INSERT OR IGNORE INTO dies (run_id, die_index, die_column, die_row, first_unit, last_unit,"
                           " status) VALUES (?, ?, ?, ?, ?, ?, 'pending')", [(run_id, *d) for d in dies])

    def update_die(self, run_id: str, die_index: int, status: str, touchdowns: int | None = None,
                   contact_g: float | None = None, message: str | None = None,
                   summary: dict[str, Any] | None = None) -> None:
        """Set a die's status, and whichever of its touchdown count, last contact reading (S), message and
        per-step summary are given."""
        sets, args = ["status = ?"], [status]
        for column, value in (("touchdowns", touchdowns), ("contact_g", contact_g), ("message", message),
                              ("summary_json", None if summary is None else json.dumps(summary, default=json_default))):
            if value is not None:
                sets.append(f"{column} = ?")
                args.append(value)
        self.db.execute(f"UPDATE dies SET {', '.join(sets)} WHERE run_id = ? AND die_index = ?",
                        (*args, run_id, die_index))

    def skip_die(self, run_id: str, die_index: int, touchdowns: int, contact_g: float | None, message: str,
                 unit_indexes: Sequence[int], backend_state: bytes | None) -> None:
        """A die that failed its contact check, in one transaction: the die `skipped` (its touchdowns, last
        contact reading in S, why), its units not done `skipped`, and the run's state as after the last of
        them, so a resume goes on behind them."""
        now = time.time()
        with self._transaction() as db:
            db.execute("UPDATE dies SET status = 'skipped', touchdowns = ?, contact_g = ?, message = ? WHERE"
                       " run_id = ? AND die_index = ?", (touchdowns, contact_g, message, run_id, die_index))
            db.executemany("UPDATE units SET status = 'skipped', finished_at = ? WHERE run_id = ? AND unit_index = ?"
                           " AND status != 'done'", [(now, run_id, i) for i in unit_indexes])
            if unit_indexes:
                db.execute("UPDATE run_state SET after_unit = MAX(after_unit, ?), backend_state = ?, saved_at = ?"
                           " WHERE run_id = ?", (max(unit_indexes), backend_state, now, run_id))

    def dies(self, run_id: str) -> list[DieRecord]:
        """A wafer run's dies in die order (empty for a one-die run, or a file written before the table)."""
        try:
            rows = self.db.execute("SELECT die_index, die_column, die_row, first_unit, last_unit, status, touchdowns,"
                                   " contact_g, message, summary_json FROM dies WHERE run_id = ? ORDER BY die_index",
                                   (run_id,)).fetchall()
        except sqlite3.OperationalError:  # a read-only file from before the table
            return []
        return [DieRecord(*r[:9], None if r[9] is None else json.loads(r[9])) for r in rows]

    # -- measurements
    def append_batch(self, run_id: str, unit_index: int, attempt: int, seq: int, m: Measurements,
                     wall_time: float | None = None) -> int:
        """Commit one batch of measurements (one transaction); returns the number of measurements
        (cell x quantity) written. wall_time: when the batch was taken (default: now), s since the epoch."""
        cells = _cells_blob(m)
        with self._transaction() as db:
            cur = db.execute("INSERT INTO batches (run_id, unit_index, attempt, seq, kind, t, wall_time, n_cells,"
                             " cells) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             (run_id, unit_index, attempt, seq, m.kind, m.t,
                              time.time() if wall_time is None else wall_time, int(m.rows.size),
                              cells))
            scalars, traces = _split(cur.lastrowid, m)
            if scalars:
                db.executemany("INSERT INTO scalars (batch_id, quantity, codec, data) VALUES (?, ?, ?, ?)", scalars)
            if traces:
                db.executemany("INSERT INTO traces (batch_id, quantity, n_points, shared, codec, data) VALUES"
                               " (?, ?, ?, ?, ?, ?)", traces)
        return (len(scalars) + len(traces)) * int(m.rows.size)

    def batch_count(self, run_id: str, unit_index: int, attempt: int) -> int:
        """Batches stored for one attempt of a unit."""
        row = self.db.execute("SELECT COUNT(*) FROM batches WHERE run_id = ? AND unit_index = ? AND attempt = ?",
                              (run_id, unit_index, attempt)).fetchone()
        return int(row[0])

    def batch_scalars(self, batch_id: int) -> dict[str, np.ndarray]:
        """The scalar quantities of a batch, each float64 (n_cells,) in the batch's cell order (read-only)."""
        return dict(self._scalar_blobs(batch_id))

    def _batch_traces(self, batch_id: int, n: int, quantities: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        return {q: np.broadcast_to(a, (n, k)) if shared else a.reshape(n, k)
                for q, k, shared, a in self._trace_blobs(batch_id, quantities)}

    def load_batch(self, run_id: str, unit_index: int, attempt: int, seq: int) -> Measurements | None:
        """A stored batch as Measurements (to check a replay against), or None."""
        row = self.db.execute("SELECT batch_id, kind, t, n_cells, cells FROM batches WHERE run_id = ? AND"
                              " unit_index = ? AND attempt = ? AND seq = ?", (run_id, unit_index, attempt, seq)
                              ).fetchone()
        if row is None:
            return None
        batch_id, kind, t, n, cells = row
        rc = self._cells(cells, n)
        return Measurements(kind=kind, rows=rc[:, 0].copy(), cols=rc[:, 1].copy(), t=t,
                            values={**self.batch_scalars(batch_id), **self._batch_traces(batch_id, n)})

    def batches(self, run_id: str, kinds: Sequence[str] | None = None, *, step_index: int | None = None,
                traces: bool = False, quantities: Sequence[str] | None = None) -> Iterator[StoredBatch]:
        """A run's batches in the order taken (unit, attempt, seq), with their scalar quantities decoded;
        only those of the given kinds, or of one step, if asked (the others are not read); with their
        vector quantities too if `traces`; only the named `quantities` (scalar or vector) if given."""
        sql = ("SELECT b.batch_id, b.unit_index, b.attempt, b.seq, b.kind, b.t, b.n_cells, b.cells FROM batches b")
        where, args = ["b.run_id = ?"], [run_id]
        if step_index is not None:
            sql += " JOIN units u ON u.run_id = b.run_id AND u.unit_index = b.unit_index"
            where.append("u.step_index = ?")
            args.append(step_index)
        if kinds is not None:
            where.append(f"b.kind IN ({', '.join('?' for _ in kinds)})")
            args += list(kinds)
        sql += " WHERE " + " AND ".join(where) + " ORDER BY b.unit_index, b.attempt, b.seq"
        for batch_id, unit, attempt, seq, kind, t, n, cells in self.db.execute(sql, args).fetchall():
            rc = self._cells(cells, n)
            yield StoredBatch(batch_id=batch_id, unit_index=unit, attempt=attempt, seq=seq, kind=kind, t=t,
                              rows=rc[:, 0], cols=rc[:, 1], scalars=dict(self._scalar_blobs(batch_id, "", quantities)),
                              traces=self._batch_traces(batch_id, n, quantities) if traces else {})

    def step_kinds(self, run_id: str) -> dict[int, dict[str, tuple[list[str], list[str]]]]:
        """What a run holds, reading no measurement: step index -> batch kind (in the order first taken)
        -> (its scalar quantities, its vector quantities), as the kind's first batch has them."""
        out: dict[int, dict[str, tuple[list[str], list[str]]]] = {}
        firsts = self.db.execute("SELECT u.step_index, b.kind, MIN(b.batch_id) AS first FROM batches b JOIN units u"
                                 " ON u.run_id = b.run_id AND u.unit_index = b.unit_index WHERE b.run_id = ?"
                                 " GROUP BY u.step_index, b.kind ORDER BY u.step_index, first", (run_id,)).fetchall()
        for step, kind, first in firsts:
            out.setdefault(step, {})[kind] = (
                [q for (q,) in self.db.execute("SELECT quantity FROM scalars WHERE batch_id = ? ORDER BY rowid",
                                               (first,))],
                [q for (q,) in self.db.execute("SELECT quantity FROM traces WHERE batch_id = ? ORDER BY rowid",
                                               (first,))])
        return out

    def measurement_count(self, run_id: str) -> int:
        """Measurements (cell x quantity) of a run, scalar and vector."""
        total = 0
        for table in ("scalars", "traces"):
            (n,) = self.db.execute(f"SELECT COALESCE(SUM(b.n_cells), 0) FROM {table} x JOIN batches b"
                                   " USING (batch_id) WHERE b.run_id = ?", (run_id,)).fetchone()
            total += int(n)
        return total

    def measurement_rows(self, run_id: str) -> Iterator[tuple[Any, ...]]:
        """Every measurement of a run with its context, in the order taken (per batch: its scalar
        quantities, then its vector quantities, cell by cell):
        (unit_index, step_index, step_name, routine, pass_index, repeat_index, sweep_index, chunk_index,
         attempt, seq, kind, t, cell_row, cell_col, quantity, value, trace float64 bytes | None)."""
        head_sql = ("SELECT b.batch_id, b.n_cells, b.cells, b.unit_index, u.step_index, u.step_name, u.routine,"
                    " u.pass_index, u.repeat_index, u.sweep_index, u.chunk_index, b.attempt, b.seq, b.kind, b.t"
                    " FROM batches b JOIN units u ON u.run_id = b.run_id AND u.unit_index = b.unit_index"
                    " WHERE b.run_id = ? ORDER BY b.unit_index, b.attempt, b.seq")
        for batch_id, n, cells, *head in self.db.execute(head_sql, (run_id,)).fetchall():
            head = tuple(head)
            rc = self._cells(cells, n).tolist()
            for q, values in self._scalar_blobs(batch_id):
                for (r, c), v in zip(rc, np.where(np.isnan(values), None, values).tolist()):
                    yield head + (r, c, q, v, None)
            for q, k, shared, values in self._trace_blobs(batch_id):
                data = values.tobytes()
                size = 8 * k
                for i, (r, c) in enumerate(rc):
                    yield head + (r, c, q, None, data if shared else data[i * size:(i + 1) * size])

    def cell_history(self, row: int, col: int, *, backend_kind: str | None = None,
                     identity: dict[str, str] | None = None, limit: int = 50) -> list[HistoryEntry]:
        """Scalar measurements of cell (row, col), newest first, at most `limit`, from every run (manual
        or campaign) on the given backend kind and identity; [] from a file whose schema is not there yet."""
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
            for batch_id, wall_time, t, name, kind, n, cells in self.db.execute(sql, args):
                rc = self._cells(cells, n)
                (hits,) = np.nonzero((rc[:, 0] == row) & (rc[:, 1] == col))
                if hits.size == 0:
                    continue
                for q, values in self._scalar_blobs(batch_id, "DESC"):
                    for i in hits[::-1]:
                        if not np.isnan(values[i]):
                            out.append(HistoryEntry(wall_time, t, name, kind, q, float(values[i])))
                if len(out) >= limit:
                    break
        except sqlite3.OperationalError:  # an empty file without the schema yet
            return []
        return out[:limit]


def json_default(o: Any) -> Any:
    """JSON for what summaries hold besides plain Python: numpy scalars and arrays; anything else as str."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)
