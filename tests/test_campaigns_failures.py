"""A backend that dies or never answers (issue 20, items 1 and 2): the run ends stored as `failed` with
the error chain (controller or instrument, command, unit), a stop event and the outputs-off attempts in
its log; nothing escapes Runner.run; what was measured stays, and the run resumes once the backend is
back. Real parts: the emulated chip controller on TCP, `labctl emulate` in a subprocess, the real store.
"""
from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import emulator
from emulator.controller import ChipController, serve_tcp
from helpers import free_port
from labctl.campaigns import Store
from labctl.campaigns.runner import Runner

ROOT = Path(__file__).resolve().parents[1]

#: Forming a 16 x 16 chip in units of 64 cells, 4 cells per batch: a run with many batches to die between.
CHIP_CAMPAIGN = ('[campaign]\nname = "controller dies"\n\n'
                 '[backend]\nkind = "chip"\naddress = "{address}"\nrows = 16\ncols = 16\n\n'
                 '[[steps]]\nroutine = "forming"\nchunk_cells = 64\nparams = {{ chunk = 4 }}\n')


def _kinds(store: Store, run_id: str) -> list[str]:
    return [e.kind for e in store.events(run_id)]


async def _run_until_batches(runner: Runner, batches: list, n: int, kill) -> object:  # noqa: ANN001
    """Run, calling `kill()` once `n` batches were taken; returns the RunResult (Runner.run must not raise)."""
    async def killer() -> None:
        while len(batches) < n:
            await asyncio.sleep(0.001)
        await kill()

    task = asyncio.create_task(killer())
    try:
        return await asyncio.wait_for(runner.run(), 120)
    finally:
        task.cancel()


async def test_a_controller_that_dies_mid_run_fails_the_run_recorded_and_it_resumes_once_back(tmp_path) -> None:
    controller = ChipController(emulator.Array(16, 16, seed=8))
    server = await serve_tcp(controller, "127.0.0.1", 0)
    address = server.address
    batches: list = []
    with Store(tmp_path / "runs.sqlite") as store:
        runner = Runner.new(store, CHIP_CAMPAIGN.format(address=address), "c.toml", on_batch=batches.append)
        result = await _run_until_batches(runner, batches, 3, server.close)
        rec = store.run(runner.run_id)
        assert result.status == rec.status == rec.shown_status == "failed"
        # The error chain: which controller, which command, which unit.
        first = rec.errors[0]
        assert address in first and "unit 0 (forming-0)" in first and re.search(r"\b[A-Z_]{4,}\b failed", first)
        kinds = _kinds(store, runner.run_id)
        assert kinds[-1] == "stop" and "outputs_off" in kinds and "close" in kinds
        off = next(e for e in store.events(runner.run_id) if e.kind == "outputs_off")
        assert "ABORT failed" in off.message and address in off.message  # the attempt, and why it failed
        kept = store.measurement_count(runner.run_id)
        assert kept > 0  # what was taken before the link died stays

        # The controller is back (same address): --resume runs the interrupted unit again and completes.
        port = int(address.rsplit(":", 1)[1])
        server = await serve_tcp(controller, "127.0.0.1", port)
        try:
            resumed = await Runner.resume(store, runner.run_id).run()
        finally:
            await server.close()
        assert resumed.status == "complete", resumed.errors
        assert store.run(runner.run_id).status == "complete"
        assert store.measurement_count(runner.run_id) > kept


def _station_file(tmp_path: Path, resources: dict[str, str]) -> Path:
    text = (ROOT / "examples" / "station-emulated.toml").read_text()
    for name, resource in resources.items():
        text = re.sub(rf'(\[instruments\.{name}\]\nresource = )"[^"]*"', rf'\g<1>"{resource}"', text)
    path = tmp_path / "station.toml"
    path.write_text(text)
    return path


async def _emulate(port: int) -> tuple[asyncio.subprocess.Process, dict[str, str]]:
    """`labctl emulate` (8 x 4, seed 3) in a subprocess: the process and its instruments' resources."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "labctl.cli", "emulate", "--no-pty", "--rows", "8", "--cols", "4", "--seed", "3",
        "--port", str(port), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    resources: dict[str, str] = {}
    assert proc.stdout is not None
    while len(resources) < 5:
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        assert line, "labctl emulate ended before it served its instruments"
        if line.startswith("instrument "):
            _, name, resource = line.split()
            resources[name] = resource
    return proc, resources


async def test_a_station_killed_mid_run_fails_the_run_naming_the_instrument_and_it_resumes(tmp_path) -> None:
    port = free_port()
    proc, resources = await _emulate(port)
    station = _station_file(tmp_path, resources)
    text = (f'[campaign]\nname = "station dies"\n\n[backend]\nkind = "station"\nstation = "{station}"\n'
            f'clock = "tcp://127.0.0.1:{port}"\nrows = 8\ncols = 4\n\n[[steps]]\nroutine = "forming"\n'
            'params = { chunk = 1 }\n')

    async def kill() -> None:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()

    batches: list = []
    try:
        with Store(tmp_path / "runs.sqlite") as store:
            runner = Runner.new(store, text, "s.toml", on_batch=batches.append)
            result = await _run_until_batches(runner, batches, 3, kill)
            rec = store.run(runner.run_id)
            assert result.status == rec.status == "failed"
            first = rec.errors[0]
            assert "unit 0 (forming-0)" in first
            assert any(name in first for name in resources)  # which instrument
            assert "'" in first and "TCPIP::127.0.0.1::" in first  # which command, at which address
            events = store.events(runner.run_id)
            assert events[-1].kind == "stop"
            off = [e for e in events if e.kind == "outputs_off"]
            assert len(off) == 1 and "failed" in off[0].message and any(n in off[0].message for n in resources)
            # every instrument died with the emulator: each one is named, not only the first
            # (the Lake Shore's heater is left as it is by outputs-off, so it has nothing to fail)
            assert re.search(r"outputs off failed on 5 of \d instrument\(s\)", off[0].message), off[0].message
            assert all(n in off[0].message for n in ("smu_2450", "smu_b2902a", "pg_33522b", "pg_81160a",
                                                       "matrix_707b")), off[0].message
            kept = store.measurement_count(runner.run_id)
            assert kept > 0

            # The instruments are back (new ports in the station file, the clock on the same port).
            proc, resources = await _emulate(port)
            _station_file(tmp_path, resources)
            resumed = await asyncio.wait_for(Runner.resume(store, runner.run_id).run(), 120)
            assert resumed.status == "complete", resumed.errors
            assert store.measurement_count(runner.run_id) > kept
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await proc.wait()


def test_a_chip_backend_where_nothing_listens_is_a_stored_failed_run_with_a_report(tmp_path) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    (tmp_path / "c.toml").write_text(CHIP_CAMPAIGN.format(address=address))
    store = tmp_path / "runs.sqlite"
    reports = tmp_path / "reports"
    proc = subprocess.run([sys.executable, "-m", "labctl.cli", "run", "c.toml", "--store", str(store),
                           "--report-dir", str(reports)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "failed" in proc.stdout and address in proc.stdout
    with Store(store, read_only=True) as s:
        (rec,) = s.runs()
        assert rec.status == "failed" and address in rec.errors[0] and "cannot open a session" in rec.errors[0]
        assert _kinds(s, rec.run_id)[-1] == "stop"
    summary = json.loads((reports / "summary.json").read_text())
    assert summary["run_id"] == rec.run_id and summary["status"] == "failed" and summary["measurements"] == 0
    # `labctl report` works on it too.
    again = subprocess.run([sys.executable, "-m", "labctl.cli", "report", "last", "--store", str(store), "--out",
                            str(tmp_path / "again")], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "Traceback" not in again.stderr
