"""Crash safety: SIGKILL at random moments, resume, and the store equals an uninterrupted run."""
from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers import started_count as _started_count
from helpers import stored_run_id as _run_id

from labctl.campaigns import Runner, Store

CAMPAIGN = """\
[campaign]
name = "kill-and-resume"

[backend]
rows = 16
cols = 16
seed = 11

[[steps]]
routine = "forming"
chunk_cells = 64
params = { chunk = 16 }

[[steps]]
routine = "conditioning"
params = { chunk = 32 }

[[steps]]
routine = "iv_cycles"
cells = { kind = "checkerboard", parity = 0 }
params = { cycles = 3, chunk = 32 }

[[steps]]
routine = "program"
chunk_cells = 128
params = { levels = [20e-6, 40e-6, 60e-6, 80e-6], loop = "host", chunk = 64 }

[[steps]]
routine = "program"
name = "reprogram-native"
params = { levels = [30e-6, 70e-6], tolerance = 0.005, chunk = 32 }

[[steps]]
routine = "open_loop"
cells = { kind = "region", rows = [0, 4], cols = [0, 8] }
params = { batch = 60, cycles = 1, pulses = 80, chunk = 8 }
"""

KILLS = 20


def store_content(path) -> dict:
    """Everything a run measured and decided, without wall-clock times and ids."""
    db = sqlite3.connect(path)
    (run_id,) = db.execute("SELECT run_id FROM runs").fetchone()
    with Store(path) as store:
        meas = list(store.measurement_rows(run_id))
    units = db.execute("SELECT unit_index, status, attempt, summary_json FROM units WHERE run_id = ?"
                       " ORDER BY unit_index", (run_id,)).fetchall()
    state = db.execute("SELECT after_unit, backend_state FROM run_state WHERE run_id = ?", (run_id,)).fetchone()
    status = db.execute("SELECT status FROM runs").fetchone()[0]
    db.close()
    return {"measurements": meas, "units": units, "state": state, "status": status}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The same campaign run once without interruption, in-process."""
    path = tmp_path_factory.mktemp("ref") / "ref.sqlite"
    t0 = time.monotonic()
    with Store(path) as store:
        result = asyncio.run(Runner.new(store, CAMPAIGN, "kill.toml").run())
    duration = time.monotonic() - t0
    assert result.status == "complete"
    return {**store_content(path), "duration": duration}


def _cmd(tmp_path, store, run_id):
    base = [sys.executable, "-m", "labctl.campaigns.cli", "run", "--store", str(store), "--no-report"]
    return base + (["--resume", run_id] if run_id else [str(tmp_path / "kill.toml")])


def _kill_until_complete(tmp_path, store, rng, window: float, budget: int) -> int:
    """Start / resume the run in a subprocess and SIGKILL it at random moments, at most `budget`
    times or until the run completes; returns the number of kills."""
    kills = 0
    progress: list[int] = []
    while kills < budget:
        run_id = _run_id(store)
        if run_id is not None and store_content(store)["status"] == "complete":
            break
        before = _started_count(store)
        proc = subprocess.Popen(_cmd(tmp_path, store, run_id), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if kills % 4 == 0:
            # a moment anywhere in the process's life, start-up and run creation included
            time.sleep(rng.uniform(0.0, 0.6 + window))
        else:
            # a moment inside the run: after the run has (re)started, up to `window` into it
            deadline = time.monotonic() + 30
            while _started_count(store) == before and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, window))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait(timeout=30)
        if proc.returncode not in (-signal.SIGKILL, 0):
            pytest.fail(f"labctl run failed: {proc.stderr.read().decode()}")
        proc.stderr.close()
        if _run_id(store):
            progress.append(sum(1 for u in store_content(store)["units"] if u[1] == "done"))
    assert progress == sorted(progress)  # committed units never went back
    return kills


def test_sigkill_at_random_moments_then_resume_equals_uninterrupted_run(tmp_path, reference):
    """At least 20 SIGKILLs at random moments; every interrupted run, once resumed to the end, holds
    exactly what the uninterrupted run holds (nothing lost, nothing duplicated, same values). If a run
    completes before the kills are used up (a fast machine), a fresh run takes the remaining kills."""
    (tmp_path / "kill.toml").write_text(CAMPAIGN)
    rng = np.random.default_rng(20260601)
    # Kill moments scale with how long the run takes on this machine, so kills land spread over the run.
    window = reference["duration"] / 20
    kills = 0
    runs = 0
    replays = resumes = 0
    while kills < KILLS:
        store = tmp_path / f"runs-{runs}.sqlite"
        kills += _kill_until_complete(tmp_path, store, rng, window, KILLS - kills)
        runs += 1
        # Finish the run.
        proc = subprocess.run(_cmd(tmp_path, store, _run_id(store)), capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        got = store_content(store)
        assert got["status"] == "complete"
        assert len(got["measurements"]) == len(reference["measurements"])
        assert got["measurements"] == reference["measurements"]
        assert got["units"] == reference["units"]
        assert got["state"] == reference["state"]  # the array ends in the same state, bit for bit
        with Store(store) as st:
            replays += sum(e.kind == "replay" for e in st.events(_run_id(store)))
            resumes += st.run(_run_id(store)).resumes
    # The kills did land inside units (stored batches replayed on resume), not only between them.
    assert replays >= 1
    assert resumes >= KILLS // 2
