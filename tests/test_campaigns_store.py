"""The store, exports, reports and the runs commands, on real runs of the emulator."""
from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from labctl.backends.emulator import EmulatorBackend
from labctl.campaigns import Runner, Store
from labctl.campaigns.backend import LimitedBackend
from labctl.campaigns.export import export_csv, read_csv
from labctl.campaigns.model import Limits
from labctl.campaigns.report import write_report
from labctl.campaigns.store import EXPORT_COLUMNS
from labctl.routines.base import Measurements

CAMPAIGN = """\
[campaign]
name = "store-test"

[metadata]
operator = "grace"
wafer = "W3"
die = "D1"

[backend]
rows = 8
cols = 4
seed = 9

[[steps]]
routine = "forming"
chunk_cells = 16

[[steps]]
routine = "program"
cells = { kind = "ranges", rows = "0:8:2", cols = [1, 3] }
params = { levels = [25e-6, 50e-6] }
[steps.sweep]
tolerance = [0.02, 0.005]
"""


def cli(*args, full=False):
    """The campaign commands in a subprocess; full=True through the whole `labctl` command (slower to
    start: it imports every layer's commands)."""
    module = "labctl.cli" if full else "labctl.campaigns.cli"
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "runs.sqlite"
    with Store(path) as store:
        result = asyncio.run(Runner.new(store, CAMPAIGN, "store.toml").run())
    assert result.status == "complete"
    return path, result


def stored_rows(path, run_id):
    with Store(path) as s:
        return [r[:-1] + (None if r[-1] is None else np.frombuffer(r[-1], "<f8").tolist(),)
                for r in s.measurement_rows(run_id)]


def test_store_is_wal_and_holds_the_run_record(run):
    path, result = run
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    with Store(path) as s:
        rec = s.run(result.run_id)
        assert rec.status == "complete" and rec.seed == 9 and rec.metadata["wafer"] == "W3"
        assert rec.campaign_toml == CAMPAIGN and "seed=9" in rec.identity["emulator"]
        assert rec.started_at <= rec.stopped_at
        assert s.measurement_count(result.run_id) == result.measurements > 0
        # sweep x chunks plan: forming 2 units of 16 cells, program 2 sweep points of 8 cells
        assert [(u.step_index, u.sweep_index, u.n_cells) for u in s.units(result.run_id)] == [
            (0, 0, 16), (0, 0, 16), (1, 0, 8), (1, 1, 8)]
        assert s.find_run(result.run_id[:15]) == result.run_id and s.find_run("last") == result.run_id


def test_csv_export_round_trip(run, tmp_path):
    path, result = run
    with Store(path) as s:
        n = export_csv(s, result.run_id, tmp_path / "m.csv")
    back = read_csv(tmp_path / "m.csv")
    want = stored_rows(path, result.run_id)
    assert n == len(back) == len(want)
    for got, row in zip(back, want):
        assert got["run_id"] == result.run_id
        assert tuple(got[c] for c in EXPORT_COLUMNS) == row


def test_parquet_export_round_trip_through_the_cli(run, tmp_path):
    path, result = run
    out = tmp_path / "m.parquet"
    proc = cli("runs", "export", result.run_id, "--format", "parquet", "--store", str(path), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    table = pq.read_table(out).to_pylist()
    want = stored_rows(path, result.run_id)
    assert len(table) == len(want)
    for got, row in zip(table, want):
        assert tuple(got[c] for c in EXPORT_COLUMNS) == row
    traces = [r for r in table if r["trace"] is not None]
    assert traces and all(len(r["trace"]) > 10 for r in traces)  # the forming sweeps


def test_runs_list_and_show(run):
    path, result = run
    proc = cli("runs", "list", "--store", str(path), full=True)
    assert proc.returncode == 0 and result.run_id in proc.stdout and "complete" in proc.stdout
    proc = cli("runs", "show", "last", "--store", str(path))
    assert proc.returncode == 0, proc.stderr
    assert f"run {result.run_id}" in proc.stdout and "wafer=W3" in proc.stdout and "seed 9" in proc.stdout
    proc = cli("runs", "show", "last", "--campaign", "--store", str(path))
    assert proc.stdout == CAMPAIGN
    proc = cli("runs", "show", "nope", "--store", str(path))
    assert proc.returncode == 2 and "no run 'nope'" in proc.stderr


def test_report_plots_and_summary(run, tmp_path):
    path, result = run
    proc = cli("report", result.run_id, "--store", str(path), "--out", str(tmp_path / "rep"))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["measurements"] == result.measurements
    with Store(path) as s:
        units = s.units(result.run_id)
    forming, program = summary["steps"]
    assert forming["summaries"][0]["summary"]["cells"] == 32
    assert forming["summaries"][0]["summary"]["formed"] == sum(u.summary["formed"] for u in units[:2])
    assert [g["params"]["tolerance"] for g in program["summaries"]] == [0.02, 0.005]
    assert program["summaries"][1]["summary"] == units[3].summary
    for step in summary["steps"]:
        png = tmp_path / "rep" / step["plot"]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_resume_of_a_complete_run_is_refused(run):
    path, result = run
    proc = cli("run", "--resume", result.run_id, "--store", str(path), "--no-report")
    assert proc.returncode == 2 and "already complete" in proc.stderr


def test_a_failing_routine_ends_the_run_failed_with_the_error(tmp_path):
    text = CAMPAIGN.replace("levels = [25e-6, 50e-6]", "targets = [25e-6, 50e-6, 30e-6]")  # 3 targets, 8 cells
    with Store(tmp_path / "r.sqlite") as s:
        result = asyncio.run(Runner.new(s, text, "bad.toml").run())
        assert result.status == "failed"
        rec = s.run(result.run_id)
        assert rec.status == "failed" and any("unit 2" in e and "targets" in e for e in rec.errors)
        assert [u.status for u in s.units(result.run_id)] == ["done", "done", "running", "pending"]
        assert any(e.kind == "outputs_off" for e in s.events(result.run_id))
        write_report(s, result.run_id, tmp_path / "rep")  # a partial run still gets its report
    assert json.loads((tmp_path / "rep" / "summary.json").read_text())["status"] == "failed"


async def test_campaign_limits_are_enforced_on_every_backend_call():
    inner = EmulatorBackend(4, 4, seed=1)
    b = LimitedBackend(inner, Limits(max_abs_voltage=1.0, max_gate_voltage=2.0, max_pulse_width=1e-5))
    r, c = np.array([0]), np.array([0])
    with pytest.raises(ValueError, match="voltages: 3.6 V exceeds the limit"):
        await b.sweep(r, c, np.linspace(0, 3.6, 10), vg=1.2)
    with pytest.raises(ValueError, match="vg: 3.3 V exceeds"):
        await b.read(r, c, 0.2, 3.3)
    with pytest.raises(ValueError, match="width"):
        await b.pulse(r, c, 0.5, 1.0, 1e-4)
    assert inner.array.pulse_counts().sum() == 0  # nothing reached the array
    await b.pulse(r, c, 0.5, 1.0, 1e-6)
    assert inner.array.pulse_counts()[0, 0] == 1


def _odd_batch() -> Measurements:
    return Measurements(kind="mixed", rows=np.array([0, 3, 1]), cols=np.array([2, 0, 1]), t=4.5, values={
        "g": np.array([1e-5, np.nan, 3.5e-5]), "converged": np.array([True, False, True]),
        "iterations": np.array([3, 7, 11]), "v_read": np.float64(0.2),
        "v": np.broadcast_to(np.linspace(0.0, 1.0, 5), (3, 5)), "i": np.arange(15.0).reshape(3, 5) * 1e-6})


def test_a_batch_comes_back_as_emitted_and_rows_expand_per_cell(tmp_path):
    m = _odd_batch()
    with Store(tmp_path / "s.sqlite") as s:
        assert s.append_batch("r", 0, 0, 0, m) == 6 * 3  # cell x quantity, scalar and vector
        back = s.load_batch("r", 0, 0, 0)
        s.db.execute("INSERT INTO units (run_id, unit_index, step_index, step_name, routine, pass_index,"
                     " repeat_index, sweep_index, chunk_index, n_cells, params_json, status) VALUES"
                     " ('r', 0, 0, 'x', 'read', 0, 0, 0, 0, 3, '{}', 'done')")
        rows = list(s.measurement_rows("r"))
        (b,) = s.batches("r", ["mixed", "read"])
        assert not list(s.batches("r", ["read"]))
    assert (b.kind, b.unit_index, b.attempt, b.seq, b.t) == ("mixed", 0, 0, 0, 4.5)
    assert b.rows.tolist() == [0, 3, 1] and list(b.scalars) == ["g", "converged", "iterations", "v_read"]
    assert back.kind == "mixed" and back.t == 4.5 and back.rows.tolist() == [0, 3, 1] and back.cols.tolist() == [2, 0, 1]
    assert list(back.values) == ["g", "converged", "iterations", "v_read", "v", "i"]
    np.testing.assert_array_equal(back.values["g"], m.values["g"])  # NaN stays NaN
    assert back.values["converged"].tolist() == [1.0, 0.0, 1.0] and back.values["iterations"].tolist() == [3, 7, 11]
    assert back.values["v_read"].tolist() == [0.2] * 3
    np.testing.assert_array_equal(back.values["v"], m.values["v"])
    # per-cell traces are stored as float32 (schema 3, docs/store.md): exactly the float32 of each value
    np.testing.assert_array_equal(back.values["i"], m.values["i"].astype(np.float32))
    # per batch: each scalar quantity over the cells in order, then each vector quantity; NaN -> None
    assert [(r[12], r[13], r[14], r[15]) for r in rows[:6]] == [
        (0, 2, "g", 1e-5), (3, 0, "g", None), (1, 1, "g", 3.5e-5),
        (0, 2, "converged", 1.0), (3, 0, "converged", 0.0), (1, 1, "converged", 1.0)]
    assert len(rows) == 18 and [r[14] for r in rows[12:]] == ["v"] * 3 + ["i"] * 3
    assert np.frombuffer(rows[16][16], "<f8").tolist() == (np.arange(5.0, 10.0) * 1e-6).astype(np.float32).tolist()


_V1_TABLES = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('schema_version', '1');
CREATE TABLE batches (batch_id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, unit_index INTEGER NOT NULL,
    attempt INTEGER NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, t REAL NOT NULL, wall_time REAL NOT NULL,
    n_cells INTEGER NOT NULL, cells BLOB NOT NULL, UNIQUE (run_id, unit_index, attempt, seq));
CREATE TABLE measurements (batch_id INTEGER NOT NULL, cell_row INTEGER NOT NULL, cell_col INTEGER NOT NULL,
    quantity TEXT NOT NULL, value REAL);
"""


def test_a_schema_1_store_is_migrated_on_open(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(_V1_TABLES)
    cells = np.array([[0, 2], [3, 0]], "<i4").tobytes()
    for b in (1, 2):
        db.execute("INSERT INTO batches VALUES (?, 'r', 0, 0, ?, 'read', 1.0, 0.0, 2, ?)", (b, b, cells))
    db.executemany("INSERT INTO measurements VALUES (?, ?, ?, ?, ?)", [
        (1, 0, 2, "g", 1e-5), (1, 3, 0, "g", None), (2, 0, 2, "g", 2e-5), (1, 0, 2, "n", 4.0),
        (2, 3, 0, "g", 3e-5), (1, 3, 0, "n", 5.0)])
    db.commit()
    db.close()
    with Store(path) as s:
        assert s.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "3"
        assert s.db.execute("SELECT name FROM sqlite_master WHERE name = 'measurements'").fetchone() is None
        first, second = s.load_batch("r", 0, 0, 1), s.load_batch("r", 0, 0, 2)
    assert list(first.values) == ["g", "n"]
    np.testing.assert_array_equal(first.values["g"], [1e-5, np.nan])
    assert first.values["n"].tolist() == [4.0, 5.0] and second.values["g"].tolist() == [2e-5, 3e-5]


def test_a_store_from_a_newer_labctl_is_refused_by_name(tmp_path):
    path = tmp_path / "new.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("INSERT INTO meta VALUES ('schema_version', '99')")
    db.commit()
    db.close()
    with pytest.raises(ValueError, match=r"new\.sqlite: schema version 99 .*newer labctl"):
        Store(path)
