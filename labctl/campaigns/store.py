"""The run store: one SQLite file in WAL mode (schema in docs/store.md).

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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labctl.routines.base import Measurements

SCHEMA_VERSION = 2  # 2: scalar quantities stored per batch as float64 blobs (table `scalars`)
DEFAULT_STORE = "labctl-runs.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    status TEXT NOT NULL,            -- created | running | complete | aborted | failed
    created_at REAL NOT NULL,        -- Unix time, s
    started_at REAL,
    stopped_at REAL,
    campaign_path TEXT,
    campaign_toml TEXT NOT NULL,     -- the campaign file itself, as run
    campaign_json TEXT NOT NULL,     -- the validated campaign (defaults filled in), SI
    package_version TEXT NOT NULL,
    seed INTEGER,
    backend_kind TEXT NOT NULL,
    identity_json TEXT NOT NULL,     -- instrument / emulator identities
    metadata_json TEXT NOT NULL,     -- operator, wafer, die, notes
    host TEXT NOT NULL,
    pid INTEGER,
    n_units INTEGER NOT NULL,
    resumes INTEGER NOT NULL DEFAULT 0,
    errors_json TEXT NOT NULL DEFAULT '[]',
    telemetry_json TEXT
);
CREATE TABLE IF NOT EXISTS units (
    run_id TEXT NOT NULL,
    unit_index INTEGER NOT NULL,
    step_index INTEGER NOT NULL,
    step_name TEXT NOT NULL,
    routine TEXT NOT NULL,
    pass_index INTEGER NOT NULL,
    repeat_index INTEGER NOT NULL,
    sweep_index INTEGER NOT NULL,
    chunk_index INTEGER NOT NULL,
    n_cells INTEGER NOT NULL,
    params_json TEXT NOT NULL,
    status TEXT NOT NULL,            -- pending | running | done
    attempt INTEGER NOT NULL DEFAULT 0,
    started_at REAL,
    finished_at REAL,
    summary_json TEXT,
    PRIMARY KEY (run_id, unit_index)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS run_state (
    run_id TEXT PRIMARY KEY,
    after_unit INTEGER NOT NULL,     -- -1: the state before the first unit
    backend_state BLOB,              -- e.g. emulator.Array.snapshot(); NULL if the backend has none
    saved_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    batch_id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    unit_index INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    t REAL NOT NULL,                 -- backend clock, s
    wall_time REAL NOT NULL,         -- Unix time, s
    n_cells INTEGER NOT NULL,
    cells BLOB NOT NULL,             -- (row, col) int32 little-endian pairs, in the batch's order
    UNIQUE (run_id, unit_index, attempt, seq)
);
CREATE TABLE IF NOT EXISTS scalars (      -- scalar quantities: one row per batch and quantity
    batch_id INTEGER NOT NULL,
    quantity TEXT NOT NULL,
    data BLOB NOT NULL               -- float64 little-endian, (n_cells) in the batch's cell order; SI; 0/1; NaN
);
CREATE INDEX IF NOT EXISTS scalars_batch ON scalars (batch_id);
CREATE TABLE IF NOT EXISTS traces (        -- vector quantities (a sweep's currents): one row per batch
    batch_id INTEGER NOT NULL,
    quantity TEXT NOT NULL,
    n_points INTEGER NOT NULL,
    shared INTEGER NOT NULL,         -- 1: one trace that every cell of the batch shares (e.g. the voltages)
    data BLOB NOT NULL               -- float64 little-endian, (n_cells, n_points) row-major, or (n_points) if shared
);
CREATE INDEX IF NOT EXISTS traces_batch ON traces (batch_id);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL,
    at REAL NOT NULL,
    kind TEXT NOT NULL,              -- start | resume | stop | outputs_off | error | replay | telemetry
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_run ON events (run_id);
"""


def _split(batch_id: int, m: Measurements) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Scalar rows and trace rows of a batch, one per quantity."""
    n = m.rows.size
    scalars: list[tuple[Any, ...]] = []
    traces: list[tuple[Any, ...]] = []
    for q, arr in m.values.items():
        a = np.asarray(arr)
        if a.ndim == 0:
            a = np.broadcast_to(a, (n,))
        if a.ndim == 1:
            scalars.append((batch_id, q, np.ascontiguousarray(a, dtype="<f8").tobytes()))
        else:
            if n > 1 and a.strides[0] == 0:  # broadcast from one trace: shared without looking
                shared, flat = True, np.ascontiguousarray(a[:1].reshape(1, -1), dtype="<f8")
            else:
                flat = np.ascontiguousarray(a.reshape(n, -1), dtype="<f8")
                shared = n > 1 and bool(np.all(flat == flat[0]))  # e.g. the voltages of a sweep, repeated
            data = flat[0] if shared else flat
            traces.append((batch_id, q, flat.shape[1], int(shared), data.tobytes()))
    return scalars, traces


def _cells_blob(m: Measurements) -> bytes:
    return np.stack([m.rows, m.cols], axis=1).astype("<i4").tobytes()


@dataclass(frozen=True)
class StoredBatch:
    """One stored batch with its scalar quantities (Store.batches)."""

    unit_index: int
    attempt: int
    seq: int
    kind: str
    t: float  # backend clock, s
    rows: np.ndarray  # int64 (n_cells,)
    cols: np.ndarray
    scalars: dict[str, np.ndarray]  # quantity -> float64 (n_cells,), SI, NaN where none


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    name: str
    status: str
    created_at: float
    started_at: float | None
    stopped_at: float | None
    campaign_path: str | None
    campaign_toml: str
    campaign_json: str
    package_version: str
    seed: int | None
    backend_kind: str
    identity: dict[str, str]
    metadata: dict[str, Any]
    host: str
    pid: int | None
    n_units: int
    resumes: int
    errors: list[str]
    telemetry: dict[str, Any] | None

    @property
    def shown_status(self) -> str:
        """Status as stored, except that a run marked running whose process is gone shows 'interrupted'."""
        if self.status == "running" and self.host == socket.gethostname() and self.pid is not None:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return "interrupted"
            except PermissionError:
                pass
        return self.status


class Store:
    """The SQLite run store. One connection per process; not shared across threads."""

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_STORE, *, synchronous: str = "NORMAL") -> None:
        self.path = Path(path)
        self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        # 16 KiB pages (new files only): a sweep's traces are blobs of hundreds of kB, which 4 KiB pages
        # split into long overflow chains; measured ~10x faster commits of such blobs.
        self.db.execute("PRAGMA page_size=16384")
        self.db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a committed transaction survives the process being killed (it is in the
        # WAL, in the OS page cache); FULL also survives power loss at the price of an fsync per commit.
        if synchronous.upper() not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous: expected NORMAL or FULL, got {synchronous!r}")
        self.db.execute(f"PRAGMA synchronous={synchronous.upper()}")
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        row = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = SCHEMA_VERSION if row is None else int(row[0])
        if version > SCHEMA_VERSION:
            self.db.close()
            raise ValueError(f"store {self.path}: schema version {version} was written by a newer labctl"
                             f" (this one reads up to {SCHEMA_VERSION}); upgrade labctl to open it")
        self.db.executescript(_SCHEMA)
        if version < 2:
            _migrate_v1(self.db)
        if row is None or version < SCHEMA_VERSION:  # a write only when needed: a second connection opened
            # during a run (the BatchWriter's) must not wait on the first's lock
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- runs
    def create_run(self, run: dict[str, Any], units: Sequence[dict[str, Any]], backend_state: bytes | None) -> None:
        """Insert a run, its planned units (pending) and the initial backend state in one transaction."""
        cols = ", ".join(run)
        marks = ", ".join("?" for _ in run)
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(f"INSERT INTO runs ({cols}) VALUES ({marks})", tuple(run.values()))
            db.executemany(
                "INSERT INTO units (run_id, unit_index, step_index, step_name, routine, pass_index, repeat_index,"
                " sweep_index, chunk_index, n_cells, params_json, status) VALUES"
                " (:run_id, :unit_index, :step_index, :step_name, :routine, :pass_index, :repeat_index,"
                " :sweep_index, :chunk_index, :n_cells, :params_json, 'pending')", units)
            db.execute("INSERT INTO run_state VALUES (?, -1, ?, ?)", (run["run_id"], backend_state, time.time()))
            db.execute("INSERT INTO events VALUES (?, ?, 'create', ?)", (run["run_id"], time.time(), "run created"))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def update_run(self, run_id: str, **fields: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in fields)
        self.db.execute(f"UPDATE runs SET {sets} WHERE run_id = ?", (*fields.values(), run_id))

    def add_error(self, run_id: str, message: str) -> None:
        row = self.db.execute("SELECT errors_json FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        errors = json.loads(row[0]) if row else []
        errors.append(message)
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute("UPDATE runs SET errors_json = ? WHERE run_id = ?", (json.dumps(errors), run_id))
        self.db.execute("INSERT INTO events VALUES (?, ?, 'error', ?)", (run_id, time.time(), message))
        self.db.execute("COMMIT")

    def event(self, run_id: str, kind: str, message: str) -> None:
        self.db.execute("INSERT INTO events VALUES (?, ?, ?, ?)", (run_id, time.time(), kind, message))

    def events(self, run_id: str) -> list[tuple[float, str, str]]:
        return self.db.execute("SELECT at, kind, message FROM events WHERE run_id = ? ORDER BY rowid",
                               (run_id,)).fetchall()

    def run(self, run_id: str) -> RunRecord:
        cur = self.db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        row = cur.fetchone()
        if row is None:
            raise KeyError(run_id)
        d = dict(zip([c[0] for c in cur.description], row))
        return RunRecord(
            run_id=d["run_id"], name=d["name"], status=d["status"], created_at=d["created_at"],
            started_at=d["started_at"], stopped_at=d["stopped_at"], campaign_path=d["campaign_path"],
            campaign_toml=d["campaign_toml"], campaign_json=d["campaign_json"],
            package_version=d["package_version"], seed=d["seed"], backend_kind=d["backend_kind"],
            identity=json.loads(d["identity_json"]), metadata=json.loads(d["metadata_json"]), host=d["host"],
            pid=d["pid"], n_units=d["n_units"], resumes=d["resumes"], errors=json.loads(d["errors_json"]),
            telemetry=json.loads(d["telemetry_json"]) if d["telemetry_json"] else None)

    def runs(self) -> list[RunRecord]:
        ids = [r[0] for r in self.db.execute("SELECT run_id FROM runs ORDER BY created_at, run_id")]
        return [self.run(i) for i in ids]

    def find_run(self, ref: str) -> str:
        """Run id from an id, a unique prefix of one, or 'last'; KeyError naming the candidates otherwise."""
        if ref in ("last", "latest"):
            row = self.db.execute("SELECT run_id FROM runs ORDER BY created_at DESC, run_id DESC LIMIT 1").fetchone()
            if row is None:
                raise KeyError(f"run: the store {self.path} holds no runs")
            return row[0]
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
    def units(self, run_id: str) -> list[dict[str, Any]]:
        cur = self.db.execute("SELECT * FROM units WHERE run_id = ? ORDER BY unit_index", (run_id,))
        names = [c[0] for c in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]

    def start_unit(self, run_id: str, unit_index: int, attempt: int) -> None:
        self.db.execute("UPDATE units SET status = 'running', attempt = ?, started_at = ? WHERE run_id = ?"
                        " AND unit_index = ?", (attempt, time.time(), run_id, unit_index))

    def finish_unit(self, run_id: str, unit_index: int, summary: Any, backend_state: bytes | None) -> None:
        """Mark a unit done with its summary and the backend state after it, in one transaction."""
        db = self.db
        now = time.time()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("UPDATE units SET status = 'done', finished_at = ?, summary_json = ? WHERE run_id = ?"
                       " AND unit_index = ?", (now, json.dumps(summary, default=_json_default), run_id, unit_index))
            db.execute("UPDATE run_state SET after_unit = ?, backend_state = ?, saved_at = ? WHERE run_id = ?",
                       (unit_index, backend_state, now, run_id))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def state(self, run_id: str) -> tuple[int, bytes | None]:
        row = self.db.execute("SELECT after_unit, backend_state FROM run_state WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise KeyError(run_id)
        return row[0], row[1]

    # -- measurements
    def append_batch(self, run_id: str, unit_index: int, attempt: int, seq: int, m: Measurements,
                     wall_time: float | None = None) -> int:
        """Commit one batch of measurements (one transaction); returns the number of measurements
        (cell x quantity) written. wall_time: when the batch was taken (default: now), s since the epoch."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            cur = db.execute("INSERT INTO batches (run_id, unit_index, attempt, seq, kind, t, wall_time, n_cells,"
                             " cells) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             (run_id, unit_index, attempt, seq, m.kind, m.t,
                              time.time() if wall_time is None else wall_time, int(m.rows.size),
                              _cells_blob(m)))
            scalars, traces = _split(cur.lastrowid, m)
            if scalars:
                db.executemany("INSERT INTO scalars VALUES (?, ?, ?)", scalars)
            if traces:
                db.executemany("INSERT INTO traces VALUES (?, ?, ?, ?, ?)", traces)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return (len(scalars) + len(traces)) * int(m.rows.size)

    def batch_count(self, run_id: str, unit_index: int, attempt: int) -> int:
        row = self.db.execute("SELECT COUNT(*) FROM batches WHERE run_id = ? AND unit_index = ? AND attempt = ?",
                              (run_id, unit_index, attempt)).fetchone()
        return int(row[0])

    def batch_scalars(self, batch_id: int) -> dict[str, np.ndarray]:
        """The scalar quantities of a batch, each float64 (n_cells,) in the batch's cell order (read-only)."""
        return {q: np.frombuffer(data, "<f8") for q, data in
                self.db.execute("SELECT quantity, data FROM scalars WHERE batch_id = ? ORDER BY rowid", (batch_id,))}

    def _batch_values(self, batch_id: int, n: int) -> dict[str, np.ndarray]:
        out = self.batch_scalars(batch_id)
        for q, k, shared, data in self.db.execute("SELECT quantity, n_points, shared, data FROM traces"
                                                  " WHERE batch_id = ? ORDER BY rowid", (batch_id,)):
            a = np.frombuffer(data, "<f8")
            out[q] = np.broadcast_to(a, (n, k)) if shared else a.reshape(n, k)
        return out

    def load_batch(self, run_id: str, unit_index: int, attempt: int, seq: int) -> Measurements | None:
        """A stored batch as Measurements (to check a replay against), or None."""
        row = self.db.execute("SELECT batch_id, kind, t, n_cells, cells FROM batches WHERE run_id = ? AND"
                              " unit_index = ? AND attempt = ? AND seq = ?", (run_id, unit_index, attempt, seq)
                              ).fetchone()
        if row is None:
            return None
        batch_id, kind, t, n, cells = row
        rc = np.frombuffer(cells, "<i4").reshape(n, 2).astype(np.int64)
        return Measurements(kind=kind, rows=rc[:, 0].copy(), cols=rc[:, 1].copy(), t=t,
                            values=self._batch_values(batch_id, n))

    def batches(self, run_id: str, kinds: Sequence[str] | None = None) -> Iterator[StoredBatch]:
        """A run's batches in the order taken (unit, attempt, seq), with their scalar quantities decoded;
        only those of the given kinds if `kinds` is given (the others are not read)."""
        sql = ("SELECT batch_id, unit_index, attempt, seq, kind, t, n_cells, cells FROM batches WHERE run_id = ?")
        args: list[Any] = [run_id]
        if kinds is not None:
            sql += f" AND kind IN ({', '.join('?' for _ in kinds)})"
            args += list(kinds)
        for batch_id, unit, attempt, seq, kind, t, n, cells in self.db.execute(
                sql + " ORDER BY unit_index, attempt, seq", args).fetchall():
            rc = np.frombuffer(cells, "<i4").reshape(n, 2).astype(np.int64)
            yield StoredBatch(unit, attempt, seq, kind, t, rc[:, 0], rc[:, 1], self.batch_scalars(batch_id))

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
        reader = self.db.cursor()
        for batch_id, n, cells, *head in self.db.execute(head_sql, (run_id,)).fetchall():
            head = tuple(head)
            rc = np.frombuffer(cells, "<i4").reshape(n, 2).tolist()
            for q, data in reader.execute("SELECT quantity, data FROM scalars WHERE batch_id = ? ORDER BY rowid",
                                          (batch_id,)).fetchall():
                values = np.frombuffer(data, "<f8")
                for (r, c), v in zip(rc, np.where(np.isnan(values), None, values).tolist()):
                    yield head + (r, c, q, v, None)
            for q, k, shared, data in reader.execute("SELECT quantity, n_points, shared, data FROM traces"
                                                     " WHERE batch_id = ? ORDER BY rowid", (batch_id,)).fetchall():
                size = 8 * k
                for i, (r, c) in enumerate(rc):
                    yield head + (r, c, q, None, data if shared else data[i * size:(i + 1) * size])


def _migrate_v1(db: sqlite3.Connection) -> None:
    """Schema 1 -> 2: the per-cell `measurements` rows of each batch become one `scalars` blob per quantity
    (cells in the batch's order, as they were inserted; NULL -> NaN). One transaction."""
    if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'measurements'").fetchone() is None:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        columns: dict[tuple[int, str], list[float]] = {}
        for batch_id, q, v in db.execute("SELECT batch_id, quantity, value FROM measurements ORDER BY rowid"):
            columns.setdefault((batch_id, q), []).append(np.nan if v is None else v)
        db.executemany("INSERT INTO scalars VALUES (?, ?, ?)",
                       ((b, q, np.asarray(v, dtype="<f8").tobytes()) for (b, q), v in columns.items()))
        db.execute("DROP TABLE measurements")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


EXPORT_COLUMNS = ("unit_index", "step_index", "step_name", "routine", "pass_index", "repeat_index", "sweep_index",
                  "chunk_index", "attempt", "seq", "kind", "t", "cell_row", "cell_col", "quantity", "value", "trace")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)
