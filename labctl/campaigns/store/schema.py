"""The store's tables (docs/store.md), their version, and the migration of older files on open."""
from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import numpy as np

SCHEMA_VERSION = 2  # 2: scalar quantities stored per batch as float64 blobs (table `scalars`)

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
CREATE TABLE IF NOT EXISTS sweeps (       -- a sweep (docs/sweeps.md): many independent tasks, one file
    sweep_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    status TEXT NOT NULL,            -- running | complete | failed | interrupted (shown, not stored)
    created_at REAL NOT NULL,        -- Unix time, s
    stopped_at REAL,
    sweep_path TEXT,
    sweep_toml TEXT NOT NULL,        -- the sweep file itself, as submitted
    sweep_json TEXT NOT NULL,        -- the validated sweep, defaults filled in
    seed INTEGER NOT NULL,
    n_tasks INTEGER NOT NULL,
    package_version TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER,
    resumes INTEGER NOT NULL DEFAULT 0,
    scheduler TEXT                   -- the Dask scheduler's address of the last submission
);
CREATE TABLE IF NOT EXISTS sweep_tasks (  -- one row per task that ended (done or failed); absent: not yet run
    sweep_id TEXT NOT NULL,
    task_index INTEGER NOT NULL,
    seed INTEGER NOT NULL,           -- derived from the sweep's seed and the task's index only
    axes_json TEXT NOT NULL,         -- the task's axis values
    status TEXT NOT NULL,            -- done | failed
    run_id TEXT,                     -- the run a campaign task stored (NULL for evaluation tasks)
    figures_json TEXT NOT NULL,      -- the figures the sweep collects, by name
    error TEXT,
    attempts INTEGER NOT NULL,
    worker TEXT,
    elapsed REAL,                    -- s on the worker
    finished_at REAL NOT NULL,
    PRIMARY KEY (sweep_id, task_index)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dies (          -- wafer campaigns: one row per die of the run (no version bump:
    run_id TEXT NOT NULL,                  -- created on open of any file, empty for one-die runs)
    die_index INTEGER NOT NULL,      -- place in the run's die order
    die_column INTEGER NOT NULL,     -- the prober's grid column and row
    die_row INTEGER NOT NULL,
    first_unit INTEGER NOT NULL,     -- the die's units of work are first_unit..last_unit
    last_unit INTEGER NOT NULL,
    status TEXT NOT NULL,            -- pending | measuring | done | skipped | failed
    touchdowns INTEGER NOT NULL DEFAULT 0,
    contact_g REAL,                  -- median conductance of the last contact check, S
    message TEXT,                    -- why a die was skipped or failed
    summary_json TEXT,               -- {step name: the step's summary on this die}
    PRIMARY KEY (run_id, die_index)
) WITHOUT ROWID;
"""


class Transaction:
    """`with Transaction(db):` BEGIN IMMEDIATE ... COMMIT; ROLLBACK on any exception (a cancellation and a
    KeyboardInterrupt too) and when the COMMIT itself fails, so a connection is never left in a transaction."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is not None:
            self._rollback()
            return
        try:
            self.db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise

    def _rollback(self) -> None:
        # SQLite has already rolled back after some errors (a full disk): a second ROLLBACK would fail
        # and its "no transaction is active" would replace the error that says what happened.
        if self.db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")


def stored_version(db: sqlite3.Connection) -> int | None:
    """The file's schema version, or None for a file without one (new, or its schema not committed yet)."""
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.OperationalError:  # no meta table
        return None
    return None if row is None else int(row[0])


def check_version(version: int | None, path: Path) -> None:
    """Refuse a file written by a newer labctl, naming its version."""
    if version is not None and version > SCHEMA_VERSION:
        raise ValueError(f"store {path}: schema version {version} was written by a newer labctl"
                         f" (this one reads up to {SCHEMA_VERSION}); upgrade labctl to open it")


def create_or_migrate(db: sqlite3.Connection, path: Path) -> None:
    """Create the tables of a new file, or bring an older file up to SCHEMA_VERSION (one transaction per
    migration). Writes the version only when it changes: a second connection opened during a run (the
    BatchWriter's) must not wait on the first's lock."""
    db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    found = stored_version(db)
    check_version(found, path)
    version = SCHEMA_VERSION if found is None else found
    db.executescript(_SCHEMA)
    if version < 2:
        _migrate_v1(db)
    if found is None or version < SCHEMA_VERSION:
        db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))


def _migrate_v1(db: sqlite3.Connection) -> None:
    """Schema 1 -> 2: the per-cell `measurements` rows of each batch become one `scalars` blob per quantity
    (cells in the batch's order, as they were inserted; NULL -> NaN). One transaction."""
    if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'measurements'").fetchone() is None:
        return
    with Transaction(db):
        columns: dict[tuple[int, str], list[float]] = {}
        for batch_id, q, v in db.execute("SELECT batch_id, quantity, value FROM measurements ORDER BY rowid"):
            columns.setdefault((batch_id, q), []).append(np.nan if v is None else v)
        db.executemany("INSERT INTO scalars VALUES (?, ?, ?)",
                       ((b, q, np.asarray(v, dtype="<f8").tobytes()) for (b, q), v in columns.items()))
        db.execute("DROP TABLE measurements")
