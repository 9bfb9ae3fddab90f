"""Resume on a backend without snapshots (a chip controller: the array stays where it was). A SIGKILL in
the middle of a unit, then `--resume`: the interrupted unit runs again as attempt 1, what attempt 0
committed stays as it was, and the run completes."""
from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time

import emulator
from emulator.controller import ChipController, serve_tcp
from labctl.campaigns import Store

CAMPAIGN = """\
[campaign]
name = "hardware resume"

[backend]
kind = "chip"
address = "tcp://127.0.0.1:{port}"
rows = 16
cols = 16

[[steps]]
routine = "forming"
chunk_cells = 64
params = {{ chunk = 4 }}

[[steps]]
routine = "program"
params = {{ levels = [20e-6, 60e-6], chunk = 32 }}
"""


def _query(store, sql: str, args: tuple = ()) -> list:
    if not store.exists():
        return []
    db = sqlite3.connect(store)
    try:
        return db.execute(sql, args).fetchall()
    except sqlite3.OperationalError:  # the schema is not committed yet
        return []
    finally:
        db.close()


def _interrupted_unit(store) -> tuple[int, list] | None:
    """A unit that is running with batches committed, and those batches; None otherwise."""
    rows = _query(store, "SELECT u.unit_index FROM units u WHERE u.status = 'running' AND u.attempt = 0 AND"
                         " EXISTS (SELECT 1 FROM batches b WHERE b.unit_index = u.unit_index AND b.attempt = 0)")
    if not rows:
        return None
    unit = rows[0][0]
    return unit, _query(store, "SELECT batch_id, seq, n_cells, cells FROM batches WHERE unit_index = ?"
                               " AND attempt = 0 ORDER BY seq", (unit,))


async def test_sigkill_mid_unit_then_resume_runs_the_unit_again_as_attempt_1(tmp_path) -> None:
    controller_array = emulator.Array(16, 16, seed=8)
    controller = ChipController(controller_array)
    server = await serve_tcp(controller, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    (tmp_path / "hw.toml").write_text(CAMPAIGN.format(port=port))
    store = tmp_path / "runs.sqlite"
    base = [sys.executable, "-m", "labctl.campaigns.cli", "run", "--store", str(store), "--no-report"]
    try:
        proc = await asyncio.create_subprocess_exec(*base, str(tmp_path / "hw.toml"), stdout=subprocess.DEVNULL,
                                                    stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        # Kill once the second forming unit has committed a batch or two (one of 16 per unit).
        while (hit := _interrupted_unit(store)) is None or hit[0] < 1 or len(hit[1]) < 2:
            assert proc.returncode is None and time.monotonic() < deadline, "the run ended before the kill"
            await asyncio.sleep(0.002)
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
        hit = _interrupted_unit(store)
        assert hit is not None, "the unit finished between the check and the kill"
        unit, before = hit
        (run_id,) = _query(store, "SELECT run_id FROM runs")[0]
        assert _query(store, "SELECT after_unit, backend_state IS NULL FROM run_state") == [(unit - 1, 1)]

        resumed = await asyncio.create_subprocess_exec(*base, "--resume", run_id, stdout=subprocess.PIPE,
                                                       stderr=subprocess.PIPE)
        out, err = await asyncio.wait_for(resumed.communicate(), 120)
        assert resumed.returncode == 0, err.decode()
    finally:
        await server.close()

    with Store(store) as s:
        rec = s.run(run_id)
        units = s.units(run_id)
        events = [e.kind for e in s.events(run_id)]
    assert rec.status == "complete" and rec.resumes == 1
    assert [u.status for u in units] == ["done"] * len(units)
    assert [u.attempt for u in units] == [1 if u.unit_index == unit else 0 for u in units]
    assert "resume" in events and "replay" not in events  # nothing to replay without a snapshot
    # Attempt 0's batches are kept byte for byte; attempt 1 is the whole unit again, 16 batches of 4 cells.
    assert _query(store, "SELECT batch_id, seq, n_cells, cells FROM batches WHERE unit_index = ? AND attempt = 0"
                         " ORDER BY seq", (unit,))[:len(before)] == before
    again = _query(store, "SELECT seq, kind, n_cells FROM batches WHERE unit_index = ? AND attempt = 1 ORDER BY seq",
                   (unit,))
    done = _query(store, "SELECT seq, kind, n_cells FROM batches WHERE unit_index = 0 AND attempt = 0 ORDER BY seq")
    assert [(k, n) for _, k, n in again] == [(k, n) for _, k, n in done] and [q for q, _, _ in again] == list(range(len(again)))
    def cells(attempt: int) -> set[bytes]:
        return {r[0] for r in _query(store, "SELECT cells FROM batches WHERE unit_index = ? AND attempt = ?",
                                     (unit, attempt))}

    assert cells(0) and cells(0) <= cells(1)  # the same cells, measured again
    # The array was where attempt 0 left it: the cells attempt 0 formed show no forming event in attempt 1,
    # which forms the rest; every cell of the array ends formed. (Chunks formed after the last commit
    # before the kill are in neither count: on hardware what was not committed is not known.)
    with Store(store) as s:
        formed_before = sum(int(s.load_batch(run_id, unit, 0, seq).values["formed"].sum())
                            for _, seq, _, _ in before if s.load_batch(run_id, unit, 0, seq).kind == "forming")
    summary = next(u.summary for u in units if u.unit_index == unit)
    assert formed_before > 0 and summary["cells"] == 64 and 0 < summary["formed"] <= 64 - formed_before
    assert controller_array.formed().all()
