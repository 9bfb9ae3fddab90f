"""The store's tables (docs/store.md), their version, and the migration of older files on open."""
from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import numpy as np

from labctl.campaigns.store import codec

# 2: scalar quantities stored per batch as float64 blobs (table `scalars`);
# 3: blobs compressed (zstd), per-cell traces as float32, each blob's encoding in a `codec` column.
SCHEMA_VERSION = 3

# The measurement tables of schema 3.
_DATA = """
CREATE TABLE IF NOT EXISTS scalars (      -- scalar quantities: one row per batch and quantity
    batch_id INTEGER NOT NULL,
    quantity TEXT NOT NULL,
    codec TEXT NOT NULL,             -- the blob's encoding (store/codec.py): f8+shuffle+zstd
    data BLOB NOT NULL               -- (n_cells) in the batch's cell order, SI (0/1 for flags, NaN where none)
);
CREATE INDEX IF NOT EXISTS scalars_batch ON scalars (batch_id);
CREATE TABLE IF NOT EXISTS traces (        -- vector quantities (a sweep's currents): one row per batch
    batch_id INTEGER NOT NULL,
    quantity TEXT NOT NULL,
    n_points INTEGER NOT NULL,
    shared INTEGER NOT NULL,         -- 1: one trace that every cell of the batch shares (e.g. the voltages)
    codec TEXT NOT NULL,             -- f4+delta+shuffle+zstd per cell, f8+shuffle+zstd shared (store/codec.py)
    data BLOB NOT NULL               -- (n_cells, n_points) row-major, or (n_points) if shared
);
CREATE INDEX IF NOT EXISTS traces_batch ON traces (batch_id);
"""

_SCHEMA = _DATA + """
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
    cells BLOB NOT NULL,             -- (row, col) int32 pairs in the batch's order, zstd (codec i4+zstd)
    UNIQUE (run_id, unit_index, attempt, seq)
);
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

# The measurement tables as schema 2 had them (float64 blobs, no codec column): what a schema-1 file is
# migrated into before it becomes schema 3.
_V2_DATA = """
CREATE TABLE IF NOT EXISTS scalars (batch_id INTEGER NOT NULL, quantity TEXT NOT NULL, data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS scalars_batch ON scalars (batch_id);
CREATE TABLE IF NOT EXISTS traces (batch_id INTEGER NOT NULL, quantity TEXT NOT NULL, n_points INTEGER NOT NULL,
    shared INTEGER NOT NULL, data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS traces_batch ON traces (batch_id);
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
    migration; the last one writes the new version in the same transaction). Writes nothing to a file
    that is current: a second connection opened during a run (the BatchWriter's) must not wait on the
    first's lock."""
    db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    found = stored_version(db)
    check_version(found, path)
    if found is not None and found < 3:
        db.executescript(_V2_DATA)
        if found < 2:
            _migrate_v1(db)
        _migrate_v2(db, path)
        # The old blobs' pages are free now but still in the file: give them back (the file shrinks to
        # about half). Best effort: with another connection open it cannot, and later runs reuse them.
        with contextlib.suppress(sqlite3.OperationalError):
            db.execute("VACUUM")
    db.executescript(_SCHEMA)
    if found is None:
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


def _migrate_v2(db: sqlite3.Connection, path: Path) -> None:
    """Schema 2 -> 3, one transaction that also writes the new version: every scalar and trace blob
    re-encoded losslessly (float64 values as they were, zstd-compressed: a migration loses no digit; only
    new runs store per-cell traces as float32), the cells of every batch compressed. Rows keep their
    order within each batch."""
    with Transaction(db):
        for table in ("scalars", "traces"):
            db.execute(f"ALTER TABLE {table} RENAME TO {table}_v2")
            db.execute(f"DROP INDEX IF EXISTS {table}_batch")
        for statement in _DATA.split(";")[:-1]:  # the schema-3 tables (executescript would commit)
            db.execute(statement)
        reader = db.cursor()
        for batch_id, q, data in reader.execute("SELECT batch_id, quantity, data FROM scalars_v2 ORDER BY rowid"):
            db.execute("INSERT INTO scalars (batch_id, quantity, codec, data) VALUES (?, ?, ?, ?)",
                       (batch_id, q, codec.EXACT, codec.encode(np.frombuffer(data, "<f8"), codec.EXACT)))
        lossless_trace = "f8+delta+shuffle+zstd"
        for batch_id, q, k, shared, data in reader.execute(
                "SELECT batch_id, quantity, n_points, shared, data FROM traces_v2 ORDER BY rowid"):
            if k <= 0 or len(data) % (8 * k) or (shared and len(data) != 8 * k):
                raise ValueError(f"store {path}: cannot migrate to schema {SCHEMA_VERSION}: batch {batch_id}"
                                 f" trace {q!r} holds {len(data)} bytes, not a whole number of {k}-point"
                                 " float64 traces; the file is left as it was (schema 2)")
            a = np.frombuffer(data, "<f8").reshape(-1, k)
            how = codec.EXACT if shared else lossless_trace
            db.execute("INSERT INTO traces (batch_id, quantity, n_points, shared, codec, data) VALUES"
                       " (?, ?, ?, ?, ?, ?)", (batch_id, q, k, shared, how, codec.encode(a, how)))
        for batch_id, cells in reader.execute("SELECT batch_id, cells FROM batches").fetchall():
            db.execute("UPDATE batches SET cells = ? WHERE batch_id = ?",
                       (codec.encode(np.frombuffer(cells, "<i4"), codec.CELLS), batch_id))
        db.execute("DROP TABLE scalars_v2")
        db.execute("DROP TABLE traces_v2")
        db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
