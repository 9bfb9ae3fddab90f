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
        assert [(u["step_index"], u["sweep_index"], u["n_cells"]) for u in s.units(result.run_id)] == [
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
    assert forming["summaries"][0]["summary"]["formed"] == sum(json.loads(u["summary_json"])["formed"]
                                                               for u in units[:2])
    assert [g["params"]["tolerance"] for g in program["summaries"]] == [0.02, 0.005]
    assert program["summaries"][1]["summary"] == json.loads(units[3]["summary_json"])
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
        assert [u["status"] for u in s.units(result.run_id)] == ["done", "done", "running", "pending"]
        assert any(kind == "outputs_off" for _, kind, _ in s.events(result.run_id))
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
