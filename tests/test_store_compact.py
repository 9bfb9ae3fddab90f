"""The compact store (schema 3): blobs compressed, per-cell traces float32, schema-2 files migrated on open."""
from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from labctl.campaigns.store import SCHEMA_VERSION, Store, stored_form
from labctl.campaigns.store.codec import CELLS, EXACT, READING, decode, encode
from labctl.routines.base import Measurements

# The measurement tables exactly as schema 2 created them (labctl before schema 3).
_V2_TABLES = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('schema_version', '2');
CREATE TABLE batches (batch_id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, unit_index INTEGER NOT NULL,
    attempt INTEGER NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, t REAL NOT NULL, wall_time REAL NOT NULL,
    n_cells INTEGER NOT NULL, cells BLOB NOT NULL, UNIQUE (run_id, unit_index, attempt, seq));
CREATE TABLE scalars (batch_id INTEGER NOT NULL, quantity TEXT NOT NULL, data BLOB NOT NULL);
CREATE INDEX scalars_batch ON scalars (batch_id);
CREATE TABLE traces (batch_id INTEGER NOT NULL, quantity TEXT NOT NULL, n_points INTEGER NOT NULL,
    shared INTEGER NOT NULL, data BLOB NOT NULL);
CREATE INDEX traces_batch ON traces (batch_id);
"""


def _v2_file(path, bad_trace: bool = False):
    """A schema-2 file written the way schema 2's Store.append_batch wrote it (raw float64, int32 cells)."""
    rng = np.random.default_rng(5)
    g = rng.uniform(1e-5, 9e-5, 3)
    g[1] = np.nan
    i = rng.normal(1e-6, 1e-7, (3, 4))
    v = np.linspace(0.0, 1.5, 4)
    db = sqlite3.connect(path)
    db.executescript(_V2_TABLES)
    db.execute("INSERT INTO batches VALUES (1, 'r', 0, 0, 0, 'sweep', 2.5, 0.0, 3, ?)",
               (np.array([[0, 2], [3, 0], [1, 1]], "<i4").tobytes(),))
    db.execute("INSERT INTO scalars VALUES (1, 'g', ?)", (g.astype("<f8").tobytes(),))
    db.execute("INSERT INTO scalars VALUES (1, 'n', ?)", (np.array([1.0, 2.0, 3.0]).tobytes(),))
    db.execute("INSERT INTO traces VALUES (1, 'v', 4, 1, ?)", (v.tobytes(),))
    db.execute("INSERT INTO traces VALUES (1, 'i', 4, 0, ?)", (i.tobytes()[:-8] if bad_trace else i.tobytes(),))
    db.commit()
    db.close()
    return g, v, i


def _check(m: Measurements, g, v, i) -> None:
    assert m.kind == "sweep" and m.t == 2.5 and m.rows.tolist() == [0, 3, 1] and m.cols.tolist() == [2, 0, 1]
    assert list(m.values) == ["g", "n", "v", "i"]
    np.testing.assert_array_equal(m.values["g"], g)  # float64 exactly, NaN stays NaN
    assert m.values["n"].tolist() == [1.0, 2.0, 3.0]
    assert m.values["v"].tolist() == [v.tolist()] * 3
    assert m.values["i"].tolist() == i.tolist()  # a migration keeps every float64 digit


def test_a_schema_2_store_is_read_as_it_is_and_migrated_losslessly_on_open(tmp_path):
    path = tmp_path / "v2.sqlite"
    g, v, i = _v2_file(path)
    with Store(path, read_only=True) as s:  # a read-only open reads schema 2 as it is and changes nothing
        assert s.version == 2
        _check(s.load_batch("r", 0, 0, 0), g, v, i)
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta").fetchone() == ("2",)
    db.close()
    with Store(path) as s:
        assert s.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "3"
        assert {r[0] for r in s.db.execute("SELECT name FROM sqlite_master")}.isdisjoint({"scalars_v2", "traces_v2"})
        assert s.db.execute("SELECT codec FROM scalars").fetchall() == [(EXACT,), (EXACT,)]
        cells = s.db.execute("SELECT cells FROM batches").fetchone()[0]
        assert decode(cells, CELLS).tolist() == [0, 2, 3, 0, 1, 1]
        _check(s.load_batch("r", 0, 0, 0), g, v, i)
        # new batches go into the migrated tables beside the old ones
        s.append_batch("r", 0, 0, 1, Measurements(kind="read", rows=np.array([4]), cols=np.array([4]), t=3.0,
                                                  values={"g": np.array([2e-5])}))
        assert s.load_batch("r", 0, 0, 1).values["g"].tolist() == [2e-5]
    with Store(path) as s:  # opening again migrates nothing twice
        _check(s.load_batch("r", 0, 0, 0), g, v, i)


def test_a_migration_that_fails_leaves_the_schema_2_file_as_it_was(tmp_path):
    path = tmp_path / "bad.sqlite"
    _v2_file(path, bad_trace=True)
    before = sqlite3.connect(path).execute("SELECT * FROM scalars ORDER BY rowid").fetchall()
    with pytest.raises(ValueError, match=r"bad\.sqlite: cannot migrate to schema 3: batch 1 trace 'i'"):
        Store(path)
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta").fetchone() == ("2",)
    assert db.execute("SELECT * FROM scalars ORDER BY rowid").fetchall() == before  # one transaction, rolled back
    assert db.execute("SELECT COUNT(*) FROM sqlite_master WHERE name LIKE '%_v2'").fetchone() == (0,)
    db.close()


def test_per_cell_traces_come_back_as_float32_and_everything_else_exactly(tmp_path):
    rng = np.random.default_rng(7)
    n, k = 50, 33
    i = rng.lognormal(-14, 3, (n, k)) * rng.choice([-1, 1], (n, k))  # currents over many decades, both signs
    i[3, 4] = np.nan
    g = rng.uniform(1e-6, 1e-4, n)
    m = Measurements(kind="sweep", rows=np.arange(n) % 7, cols=np.arange(n) // 7, t=1.25,
                     values={"v": np.broadcast_to(np.linspace(0, 3.3, k), (n, k)), "i": i, "g": g,
                             "iterations": rng.integers(0, 100, n)})
    with Store(tmp_path / "s.sqlite") as s:
        s.append_batch("r", 0, 0, 0, m)
        back = s.load_batch("r", 0, 0, 0)
        codecs = dict(s.db.execute("SELECT quantity, codec FROM traces").fetchall())
        raw = sum(len(d) for (d,) in s.db.execute("SELECT data FROM traces WHERE quantity = 'i'"))
    assert codecs == {"v": EXACT, "i": READING} and raw < n * k * 4  # compressed below even raw float32
    np.testing.assert_array_equal(back.values["i"], i.astype(np.float32).astype(np.float64))
    assert back.values["v"][7].tolist() == np.linspace(0, 3.3, k).tolist()  # commanded voltages: float64
    assert back.values["g"].tolist() == g.tolist()
    assert back.values["iterations"].tolist() == m.values["iterations"].tolist()
    assert back.rows.tolist() == m.rows.tolist() and back.cols.tolist() == m.cols.tolist()
    # what a replaying resume compares: the fresh batch in the stored form equals the stored batch
    fresh = stored_form(m)
    for q in m.values:
        np.testing.assert_array_equal(np.asarray(fresh.values[q]).reshape(n, -1),
                                      np.asarray(back.values[q]).reshape(n, -1))
    assert SCHEMA_VERSION == 3


def test_the_codecs_round_trip_bit_patterns_that_wrap(tmp_path):
    # delta coding subtracts neighbouring bit patterns: sign flips and extremes wrap the integers
    x = np.array([[0.0, -0.0, np.finfo(np.float32).max, -np.finfo(np.float32).max, np.inf, -np.inf, 1e-45]])
    back = decode(encode(x, READING), READING, x.shape[1])
    assert back.tobytes() == x.astype(np.float32).astype(np.float64).tobytes()
    y = np.array([5e-324, -1.7976931348623157e308, 1.7976931348623157e308, -0.0])
    assert decode(encode(y, "f8+delta+shuffle+zstd"), "f8+delta+shuffle+zstd", 4).tobytes() == y.tobytes()
