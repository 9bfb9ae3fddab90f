"""The Store's methods and the typed records its readers return; and that no SQL lives outside the store."""
from __future__ import annotations

import ast
import dataclasses
import os
import re
import socket
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

import labctl
from labctl.campaigns.store import (EventRecord, HistoryEntry, RunRecord, Store, StoredBatch, UnitPlan,
                                    UnitRecord)
from labctl.routines.base import Measurements

ROOT = Path(__file__).resolve().parents[1]


def _plan(index: int, step: int = 0, n_cells: int = 2, **kw) -> UnitPlan:  # type: ignore[no-untyped-def]
    fields = dict(unit_index=index, step_index=step, step_name=f"s{step}", routine="read", pass_index=0,
                  repeat_index=0, sweep_index=0, chunk_index=index, n_cells=n_cells, params={"v_read": 0.2})
    return UnitPlan(**{**fields, **kw})


def _create(s: Store, run_id: str, units: int = 3, *, kind: str = "emulator",
            identity: dict[str, str] | None = None, name: str = "t") -> None:
    s.create_run(run_id, name=name, campaign_toml="[campaign]\n", campaign={"steps": []}, backend_kind=kind,
                 identity=identity if identity is not None else {"emulator": "seed=1"},
                 metadata={"operator": "ada", "wafer": "W1"}, units=[_plan(i, step=i // 2) for i in range(units)],
                 backend_state=b"state0", seed=7, campaign_path="c.toml")


def _batch(kind: str, rows: list[int], cols: list[int], t: float = 1.0,
           **values: list[float]) -> Measurements:
    return Measurements(kind=kind, rows=np.array(rows), cols=np.array(cols), t=t,
                        values={k: np.asarray(v, dtype=float) for k, v in values.items()})


def test_create_run_stores_a_running_run_of_this_process_with_its_pending_units(tmp_path):
    before = time.time()
    with Store(tmp_path / "s.sqlite") as s:
        _create(s, "r1")
        rec = s.run("r1")
        units = s.units("r1")
        assert s.state("r1") == (-1, b"state0")
    assert isinstance(rec, RunRecord) and dataclasses.is_dataclass(rec)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.status = "complete"  # type: ignore[misc]
    assert (rec.run_id, rec.name, rec.status, rec.seed, rec.backend_kind) == ("r1", "t", "running", 7, "emulator")
    assert before <= rec.created_at == rec.started_at <= time.time() and rec.stopped_at is None
    assert (rec.host, rec.pid, rec.package_version) == (socket.gethostname(), os.getpid(), labctl.__version__)
    assert rec.identity == {"emulator": "seed=1"} and rec.metadata == {"operator": "ada", "wafer": "W1"}
    assert (rec.n_units, rec.resumes, rec.errors, rec.telemetry) == (3, 0, [], None)
    assert (rec.campaign_path, rec.campaign_toml, rec.campaign) == ("c.toml", "[campaign]\n", {"steps": []})
    assert all(isinstance(u, UnitRecord) for u in units)
    assert [(u.unit_index, u.step_index, u.chunk_index, u.status, u.attempt, u.summary) for u in units] == [
        (0, 0, 0, "pending", 0, None), (1, 0, 1, "pending", 0, None), (2, 1, 2, "pending", 0, None)]
    assert units[0].params == {"v_read": 0.2} and units[0].started_at is None and units[0].finished_at is None
    assert units[2].group == (0, 1, 0, 0)


def test_create_run_is_one_transaction(tmp_path):
    with Store(tmp_path / "s.sqlite") as s:
        _create(s, "r1")
        with pytest.raises(sqlite3.IntegrityError):  # the same unit twice: nothing of the run may stay
            s.create_run("r2", name="t", campaign_toml="", campaign={}, backend_kind="emulator", identity={},
                         metadata={}, units=[_plan(0), _plan(0)])
        assert not s.has_run("r2") and s.units("r2") == [] and s.has_run("r1")


def test_units_start_and_finish_with_their_summary_and_state(tmp_path):
    with Store(tmp_path / "s.sqlite") as s:
        _create(s, "r1")
        assert s.units_done("r1") == 0
        s.start_unit("r1", 0, 2)
        running = s.units("r1")[0]
        assert (running.status, running.attempt) == ("running", 2) and running.started_at is not None
        s.finish_unit("r1", 0, {"cells": np.int64(2), "g_mean": np.float64(1e-5), "g": np.array([1.0, 2.0])},
                      b"after0")
        s.start_unit("r1", 1, 0)
        done, started, pending = s.units("r1")
        assert s.units_done("r1") == 1 and s.state("r1") == (0, b"after0")
    assert done.status == "done" and done.summary == {"cells": 2, "g_mean": 1e-5, "g": [1.0, 2.0]}
    assert done.started_at <= done.finished_at
    assert (started.status, pending.status) == ("running", "pending")


def test_finish_run_records_errors_status_and_the_stop_event_in_order(tmp_path):
    with Store(tmp_path / "s.sqlite") as s:
        _create(s, "r1")
        s.event("r1", "start", "go")
        s.finish_run("r1", "aborted", ["first", "second"])
        rec = s.run("r1")
        events = s.events("r1")
        s.finish_run("r1", "failed", ["third"])
        again = s.run("r1")
    assert rec.status == "aborted" and rec.errors == ["first", "second"] and rec.stopped_at >= rec.started_at
    assert all(isinstance(e, EventRecord) for e in events)
    assert [(e.kind, e.message) for e in events] == [
        ("create", "run created"), ("start", "go"), ("error", "first"), ("error", "second"), ("stop", "run aborted")]
    assert [e.at for e in events] == sorted(e.at for e in events)
    assert again.status == "failed" and again.errors == ["first", "second", "third"]


def test_resume_run_counts_the_resume_and_clears_the_stop(tmp_path):
    with Store(tmp_path / "s.sqlite") as s:
        _create(s, "r1")
        s.finish_run("r1", "aborted")
        s.db.execute("UPDATE runs SET pid = 1, host = 'elsewhere' WHERE run_id = 'r1'")  # an earlier process
        s.resume_run("r1")
        s.resume_run("r1")
        rec = s.run("r1")
    assert (rec.status, rec.resumes, rec.stopped_at, rec.pid, rec.host) == (
        "running", 2, None, os.getpid(), socket.gethostname())


def test_set_telemetry_is_read_back_decoded(tmp_path):
    stats = {"broker": "mqtt://h:1883", "sent": 3, "dropped": 0, "pending": 0, "connects": 1, "last_error": None}
    with Store(tmp_path / "s.sqlite") as s:
        _create(s, "r1")
        s.set_telemetry("r1", stats)
        assert s.run("r1").telemetry == stats


def test_runs_latest_run_and_find_run(tmp_path):
    with Store(tmp_path / "s.sqlite") as s:
        assert s.latest_run() is None and s.runs() == []
        with pytest.raises(KeyError, match="holds no runs"):
            s.find_run("last")
        for run_id in ("20260101-000000-aaaa", "20260101-000000-aaab", "20260102-000000-bbbb"):
            _create(s, run_id)
        s.db.execute("UPDATE runs SET created_at = created_at + 100 WHERE run_id = '20260101-000000-aaaa'")
        assert [r.run_id for r in s.runs()] == ["20260101-000000-aaab", "20260102-000000-bbbb",
                                                 "20260101-000000-aaaa"]
        latest = s.latest_run()
        assert isinstance(latest, RunRecord) and latest.run_id == "20260101-000000-aaaa"
        assert s.find_run("last") == s.find_run("latest") == latest.run_id
        assert s.find_run("20260102") == "20260102-000000-bbbb"
        assert s.find_run("20260101-000000-aaab") == "20260101-000000-aaab"
        with pytest.raises(KeyError, match="matches 2 runs"):
            s.find_run("20260101")
        with pytest.raises(KeyError, match="no run 'x'"):
            s.find_run("x")
        with pytest.raises(KeyError):
            s.run("2026")  # run() takes exact ids only
        assert s.has_run("20260102-000000-bbbb") and not s.has_run("20260102")


def test_batches_of_one_step_with_traces(tmp_path):
    with Store(tmp_path / "s.sqlite") as s:
        _create(s, "r1")  # units 0, 1: step 0; unit 2: step 1
        sweep = Measurements(kind="sweep", rows=np.array([0, 1]), cols=np.array([1, 1]), t=2.0, values={
            "v": np.broadcast_to(np.linspace(0, 1, 4), (2, 4)), "i": np.arange(8.0).reshape(2, 4),
            "v_form": np.array([1.5, 1.7])})
        s.append_batch("r1", 0, 0, 0, sweep)
        s.append_batch("r1", 2, 0, 0, _batch("read", [1], [0], t=3.0, g=[2e-5]))
        s.append_batch("r1", 1, 0, 0, _batch("read", [0], [0], t=4.0, g=[1e-5]))
        step0 = list(s.batches("r1", step_index=0, traces=True))
        step1 = list(s.batches("r1", step_index=1))
        reads = list(s.batches("r1", ["read"], step_index=0))
        plain = list(s.batches("r1"))
    assert all(isinstance(b, StoredBatch) for b in step0)
    assert [(b.unit_index, b.kind) for b in step0] == [(0, "sweep"), (1, "read")]
    first = step0[0]
    assert list(first.scalars) == ["v_form"] and list(first.traces) == ["v", "i"]
    assert first.traces["v"].shape == (2, 4) and first.traces["v"][1].tolist() == np.linspace(0, 1, 4).tolist()
    assert first.traces["i"].tolist() == np.arange(8.0).reshape(2, 4).tolist()
    assert [(b.unit_index, b.t, b.scalars["g"].tolist()) for b in step1] == [(2, 3.0, [2e-5])]
    assert [(b.unit_index, b.rows.tolist()) for b in reads] == [(1, [0])]
    assert [b.unit_index for b in plain] == [0, 1, 2] and all(b.traces == {} for b in plain)
    assert len({b.batch_id for b in plain}) == 3


def test_cell_history_newest_first_on_the_same_backend_identity(tmp_path):
    path = tmp_path / "s.sqlite"
    with Store(path) as s:
        _create(s, "mine", name="mine")
        _create(s, "other", identity={"emulator": "seed=2"}, name="other")
        _create(s, "chip", kind="chip", name="chip")
        s.append_batch("mine", 0, 0, 0, _batch("read", [0, 1], [0, 0], t=1.0, g=[1e-5, 9e-5]), wall_time=100.0)
        s.append_batch("other", 0, 0, 0, _batch("read", [0], [0], t=1.0, g=[5e-5]), wall_time=150.0)
        s.append_batch("chip", 0, 0, 0, _batch("read", [0], [0], t=1.0, g=[6e-5]), wall_time=160.0)
        s.append_batch("mine", 1, 0, 0, _batch("program", [0], [0], t=2.0, g=[2e-5], target=[np.nan]),
                       wall_time=200.0)
    with Store(path, read_only=True) as ro:
        got = ro.cell_history(0, 0, backend_kind="emulator", identity={"emulator": "seed=1"})
        limited = ro.cell_history(0, 0, backend_kind="emulator", identity={"emulator": "seed=1"}, limit=1)
        every = ro.cell_history(0, 0)
        nothing = ro.cell_history(3, 3)
    assert all(isinstance(e, HistoryEntry) for e in got)
    assert [(e.wall_time, e.t, e.run_name, e.kind, e.quantity, e.value) for e in got] == [
        (200.0, 2.0, "mine", "program", "g", 2e-5), (100.0, 1.0, "mine", "read", "g", 1e-5)]  # NaN target left out
    assert [e.value for e in limited] == [2e-5]
    assert [e.run_name for e in every] == ["mine", "chip", "other", "mine"] and nothing == []


def test_a_read_only_store_writes_nothing(tmp_path):
    with pytest.raises(FileNotFoundError, match="no run store"):
        Store(tmp_path / "none.sqlite", read_only=True)
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).close()  # a file whose schema is not committed yet
    with Store(empty, read_only=True) as ro:
        assert ro.cell_history(0, 0) == []
    with sqlite3.connect(empty) as db:
        assert db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0  # nothing created
    path = tmp_path / "s.sqlite"
    with Store(path) as s:
        _create(s, "r1")
    with Store(path, read_only=True) as ro:
        assert ro.run("r1").name == "t"
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            ro.event("r1", "start", "must not be written")


def test_a_store_from_a_newer_labctl_is_refused_read_only_too(tmp_path):
    path = tmp_path / "new.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO meta VALUES ('schema_version', '99')")
    with pytest.raises(ValueError, match=r"schema version 99 .*newer labctl"):
        Store(path, read_only=True)


def test_a_schema_2_file_written_before_the_records_reads_the_same(tmp_path):
    """A run and unit as the store wrote them before the typed records (pydantic's compact JSON, a unit
    without a summary): every column comes back, JSON decoded."""
    path = tmp_path / "old.sqlite"
    Store(path).close()  # the schema-2 tables
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO runs VALUES ('r0', 'old', 'complete', 1.0, 2.0, 3.0, NULL, 'toml',"
                   " '{\"steps\":[]}', '0.0.9', NULL, 'chip', '{\"chip\":\"ACME\"}',"
                   " '{\"operator\":\"ada\",\"die\":\"\"}', 'h', 42, 1, 1,"
                   " '[\"e1\"]', '{\"sent\":1}')")
        db.execute("INSERT INTO units VALUES ('r0', 0, 0, 'form', 'forming', 0, 0, 0, 0, 4, '{\"v_max\":3.0}',"
                   " 'done', 1, 2.0, 2.5, '{\"formed\":4}')")
        db.execute("INSERT INTO units VALUES ('r0', 1, 1, 'read', 'read', 0, 0, 0, 0, 4, '{}', 'pending', 0,"
                   " NULL, NULL, NULL)")
        db.execute("INSERT INTO events VALUES ('r0', 2.0, 'start', 'old start')")
    with Store(path) as s:
        rec, units, events = s.run("r0"), s.units("r0"), s.events("r0")
    assert rec == RunRecord(run_id="r0", name="old", status="complete", created_at=1.0, started_at=2.0,
                            stopped_at=3.0, campaign_path=None, campaign_toml="toml", campaign={"steps": []},
                            package_version="0.0.9", seed=None, backend_kind="chip", identity={"chip": "ACME"},
                            metadata={"operator": "ada", "die": ""}, host="h", pid=42, n_units=1, resumes=1,
                            errors=["e1"], telemetry={"sent": 1})
    assert units == [
        UnitRecord(unit_index=0, step_index=0, step_name="form", routine="forming", pass_index=0, repeat_index=0,
                   sweep_index=0, chunk_index=0, n_cells=4, params={"v_max": 3.0}, status="done", attempt=1,
                   started_at=2.0, finished_at=2.5, summary={"formed": 4}),
        UnitRecord(unit_index=1, step_index=1, step_name="read", routine="read", pass_index=0, repeat_index=0,
                   sweep_index=0, chunk_index=0, n_cells=4, params={}, status="pending", attempt=0,
                   started_at=None, finished_at=None, summary=None)]
    assert events == [EventRecord(2.0, "start", "old start")]


# -- the store is the only place with SQL
_SQL = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|"
                  r"CREATE\s+(TABLE|INDEX)|DROP\s+TABLE|PRAGMA\s+\w+)\b", re.S)
_DB_CALLS = {"execute", "executemany", "executescript"}  # the DB-API calls that run SQL


def _text(node: ast.AST) -> str:
    """A string constant, or an f-string with each replacement field as '?'; '' for anything else."""
    if isinstance(node, ast.Constant):
        return node.value if isinstance(node.value, str) else ""
    if isinstance(node, ast.JoinedStr):
        return "".join(_text(v) if isinstance(v, ast.Constant) else "?" for v in node.values)
    return ""


def _sql_outside_the_store(path: Path) -> list[str]:
    """What in one module looks like SQL: an sqlite3 import, a string with an SQL statement, a call of
    a DB-API method (cursor.execute, ...)."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "sqlite3" for a in node.names):
            found.append(f"{where} imports sqlite3")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlite3":
            found.append(f"{where} imports from sqlite3")
        elif isinstance(node, (ast.Constant, ast.JoinedStr)) and _SQL.search(text := _text(node)):
            found.append(f"{where} SQL text {text[:60]!r}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _DB_CALLS:
            found.append(f"{where} calls .{node.func.attr}()")
    return found


def test_no_module_outside_the_store_holds_sql():
    store = ROOT / "labctl" / "campaigns" / "store"
    modules = [p for d in ("labctl", "scripts") for p in sorted((ROOT / d).rglob("*.py")) if store not in p.parents]
    assert len(modules) > 50
    found = [f for p in modules for f in _sql_outside_the_store(p)]
    assert found == [], "SQL belongs in labctl/campaigns/store:\n" + "\n".join(found)


def test_the_sql_check_sees_sql():
    """The check above would fail on what the store itself does (so an empty result means something)."""
    found = [f for p in sorted((ROOT / "labctl" / "campaigns" / "store").glob("*.py"))
             for f in _sql_outside_the_store(p)]
    assert any("imports sqlite3" in f for f in found) and any("calls .execute()" in f for f in found)
    assert any("SQL text 'SELECT" in f for f in found) and any("SQL text 'INSERT INTO" in f for f in found)
    assert any("UPDATE units SET" in f for f in found) and any("CREATE TABLE" in f for f in found)


def test_claim_run_takes_a_run_only_from_the_state_the_caller_read(tmp_path):
    with Store(tmp_path / "s.sqlite") as s, Store(tmp_path / "s.sqlite") as other:
        _create(s, "r1")
        s.finish_run("r1", "failed", ["link lost"])
        rec = s.run("r1")
        assert s.claim_run("r1", rec.status, rec.pid)  # the first resumer takes it
        assert not other.claim_run("r1", rec.status, rec.pid)  # the second read the same state: refused
        assert s.run("r1").status == "running" and s.run("r1").pid == os.getpid()


def test_mark_failed_ends_a_run_in_one_write(tmp_path):
    with Store(tmp_path / "s.sqlite") as s:
        _create(s, "r1")
        s.mark_failed("r1", ["store s.sqlite: cannot write (database or disk is full)"])
        rec = s.run("r1")
        assert rec.status == "failed" and rec.stopped_at is not None
        assert rec.errors == ["store s.sqlite: cannot write (database or disk is full)"]


def test_a_file_that_is_not_a_store_is_a_store_error_naming_it(tmp_path):
    from labctl.campaigns.store import StoreError

    path = tmp_path / "x.sqlite"
    path.write_bytes(b"not SQLite at all\n" * 64)
    for read_only in (False, True):
        with pytest.raises(StoreError, match=re.escape(str(path))):
            Store(path, read_only=read_only)
    missing = tmp_path / "no-such-dir" / "x.sqlite"
    with pytest.raises(StoreError, match=re.escape(str(missing))):
        Store(missing)
