"""SIGINT: once stops at the next safe point, twice aborts at once; outputs go off; the run resumes."""
from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from labctl.campaigns import Runner, Store

from helpers import host_loop_campaign

# Program-verify on the host loop: every verify read is a stored batch, and the routine's only safe
# point is after its single chunk, so "at the next safe point" and "at once" end in different places.
CAMPAIGN = host_loop_campaign("sigint", size=16, seed=5, repeat=3)


def content(path):
    """Every stored measurement with its context (Store.measurement_rows), without wall-clock times."""
    with Store(path) as store:
        (run,) = store.runs()
        return list(store.measurement_rows(run.run_id))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    path = tmp_path_factory.mktemp("ref") / "ref.sqlite"
    with Store(path) as store:
        assert asyncio.run(Runner.new(store, CAMPAIGN, "sigint.toml").run()).status == "complete"
    return content(path)


def batches_of(store, unit):
    db = sqlite3.connect(store)
    try:
        return db.execute("SELECT kind, wall_time FROM batches WHERE unit_index = ? ORDER BY seq", (unit,)).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()


def start(tmp_path, store):
    f = tmp_path / "sigint.toml"
    f.write_text(CAMPAIGN)
    proc = subprocess.Popen([sys.executable, "-m", "labctl.campaigns.cli", "run", str(f), "--store", str(store), "--no-report"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(batches_of(store, 1)) < 20:  # well inside the first programming unit
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.005)
    return proc


def finish_and_compare(store, run_id, reference):
    proc = subprocess.run([sys.executable, "-m", "labctl.campaigns.cli", "run", "--resume", run_id, "--store", str(store),
                           "--no-report"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert content(store) == reference


def test_one_sigint_stops_at_the_next_safe_point_and_resumes(tmp_path, reference):
    store = tmp_path / "runs.sqlite"
    proc = start(tmp_path, store)
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "stopping at the next safe point" in err
    with Store(store) as s:
        rec = s.runs()[0]
        assert rec.status == "aborted"
        assert any("stopped at a safe point: SIGINT" in e for e in rec.errors)
        # The routine ran on to its safe point: the unit's last batch is the programming outcome.
        kinds = [k for k, _ in batches_of(store, 1)]
        assert kinds[-1] == "program" and kinds.count("program") == 1
        assert batches_of(store, 2) == []  # nothing after the safe point
        events = s.events(rec.run_id)
        off = [e.at for e in events if e.kind == "outputs_off"]
        assert off and off[-1] >= batches_of(store, 1)[-1][1]
        run_id = rec.run_id
    finish_and_compare(store, run_id, reference)


def test_second_sigint_aborts_at_once_outputs_off_and_resumes(tmp_path, reference):
    store = tmp_path / "runs.sqlite"
    proc = start(tmp_path, store)
    os.kill(proc.pid, signal.SIGINT)
    time.sleep(0.05)
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    with Store(store) as s:
        rec = s.runs()[0]
        assert rec.status == "aborted"
        assert any("aborted at once: second SIGINT" in e for e in rec.errors)
        # Stopped in the middle of the verify loop, before the routine's safe point.
        kinds = [k for k, _ in batches_of(store, 1)]
        assert kinds[-1] == "verify_read" and "program" not in kinds
        units = s.units(rec.run_id)
        assert units[1].status == "running" and units[2].status == "pending"
        off = [e.at for e in s.events(rec.run_id) if e.kind == "outputs_off"]
        assert off and off[-1] >= batches_of(store, 1)[-1][1]
        run_id = rec.run_id
    finish_and_compare(store, run_id, reference)
