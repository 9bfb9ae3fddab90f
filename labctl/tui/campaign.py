"""Campaign control for the TUI: a thin layer over labctl.campaigns (Runner, RunControl, Store).

Validation is `load_campaign` (the same line-numbered errors `labctl run` prints). Running is
`Runner(...).run()`, and resuming `Runner.resume(store, ref)`, in a child process
(labctl.tui.campaign_child) on the same store file as the TUI, with the runner's own RunControl for
pause, resume and abort driven over a pipe. Why a process: the campaign's Python work would otherwise
hold the interpreter lock against the UI thread (docs/tui.md). Nothing here plans, stores or
interrupts a run itself. `TuiProgress` is the runner's ProgressView (in the child): it turns the
runner's callbacks into per-step fractions, which reach `post` (thread-safe) through the pipe.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from labctl.campaigns.plan import LoadedCampaign, Unit, load_campaign
from labctl.campaigns.problems import CampaignError
from labctl.tui.session import BackendSession

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepProgress:
    """Progress of one step of a run: cells done / cells planned over all its units."""

    run_id: str
    step_index: int
    step_name: str
    fraction: float
    overall: float
    message: str = ""
    #: A wafer campaign's station: {"prober": str, "die": [column, row], "temperature_K": float} (plain data).
    station: dict[str, Any] | None = None


@dataclass(frozen=True)
class RunBegan:
    run_id: str
    steps: list[str]


@dataclass(frozen=True)
class RunEnded:
    run_id: str
    status: str
    measurements: int = 0
    errors: tuple[str, ...] = ()


def validate(path: str) -> tuple[LoadedCampaign | None, list[str]]:
    """The loaded campaign, or the problems (each 'file:line: field: message'), before anything runs."""
    p = Path(path).expanduser()
    if not p.is_file():
        return None, [f"{path}: no such campaign file"]
    try:
        return load_campaign(p.read_text(), str(p)), []
    except CampaignError as exc:
        return None, [prob.format(exc.source) for prob in exc.problems]
    except ValueError as exc:
        return None, [str(exc)]


class TuiProgress:
    """labctl.campaigns.runner.ProgressView forwarding per-step progress to `post`."""

    def __init__(self, post: Callable[[Any], None]) -> None:
        self.post = post
        self.run_id = ""
        self.units: list[Unit] = []
        self.step_total: dict[int, int] = {}
        self.step_done: dict[int, float] = {}
        self.names: dict[int, str] = {}
        self.total = 0
        self.station_info: dict[str, Any] | None = None

    def begin(self, run_id: str, units: list[Unit], done: set[int]) -> None:
        self.run_id, self.units = run_id, units
        self.step_total, self.step_done, self.names = {}, {}, {}
        for u in units:
            self.step_total[u.step_index] = self.step_total.get(u.step_index, 0) + int(u.rows.size)
            self.step_done.setdefault(u.step_index, 0.0)
            self.names[u.step_index] = u.step_name
            if u.index in done:
                self.step_done[u.step_index] += int(u.rows.size)
        self.total = sum(self.step_total.values())
        self.post(RunBegan(run_id, [self.names[i] for i in sorted(self.names)]))
        for i in sorted(self.names):
            self._send(i, 0.0, "resumed" if done else "")

    def _send(self, step: int, within: float, message: str) -> None:
        done_all = sum(self.step_done.values()) + within
        frac = (self.step_done[step] + within) / max(self.step_total[step], 1)
        self.post(StepProgress(self.run_id, step, self.names[step], min(frac, 1.0),
                               min(done_all / max(self.total, 1), 1.0), message, self.station_info))

    def station(self, info: dict[str, Any]) -> None:
        """The runner's wafer station (prober, die, chuck temperature), shown with the next progress."""
        self.station_info = dict(info)

    def unit_started(self, unit: Unit) -> None:
        self._send(unit.step_index, 0.0, f"unit {unit.index}")

    def unit_progress(self, unit: Unit, fraction: float, message: str) -> None:
        self._send(unit.step_index, fraction * unit.rows.size, message)

    def unit_done(self, unit: Unit) -> None:
        self.step_done[unit.step_index] += int(unit.rows.size)
        self._send(unit.step_index, 0.0, f"unit {unit.index} done")

    def end(self, status: str) -> None:
        pass  # the controller posts RunEnded with the runner's result


class CampaignController:
    """Runs, pauses, resumes and aborts campaigns, each in a child process (labctl.tui.campaign_child),
    into the session's store file.

    The child runs exactly what `labctl run` runs (Runner, the same store, the same resume); this side
    only starts it, forwards its events to `post` and sends it control messages. Emergency stop sends
    an abort over the pipe (the runner switches its outputs off and stores the run as aborted); if the
    child has not ended ESCALATE_S later it gets SIGTERM (the same abort, by signal, as `labctl run`),
    and ESCALATE_S after that it is killed.
    """

    ESCALATE_S = 5.0

    def __init__(self, session: BackendSession, post: Callable[[Any], None], mqtt: str | None = None) -> None:
        self.session = session
        self.post = post
        self.mqtt = mqtt
        self.run_id: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None  # the active run's process
        self._conn: Connection | None = None
        self._send_lock = threading.Lock()
        self._paused = False
        self._live: set[subprocess.Popen[bytes]] = set()  # started and not yet seen to end

    @property
    def active(self) -> bool:
        return self._proc is not None

    @property
    def paused(self) -> bool:
        """A pause was asked for and not yet undone (the run holds at its next safe point)."""
        return self._proc is not None and self._paused

    def _store_path(self) -> str:
        from labctl.campaigns.store import DEFAULT_STORE

        return str(Path(self.session.store_path or DEFAULT_STORE).expanduser().resolve())

    async def run(self, path: str | None = None, resume: str | None = None) -> Any:
        """Run a campaign file, or resume a stored run (id, prefix or 'last'), in a child process;
        returns the RunResult. Raises ValueError (with the problems) if the child refuses before
        anything runs, RuntimeError if it dies without a result."""
        from labctl.campaigns.runner import RunResult
        from labctl.tui.campaign_child import ChildRequest

        if self._proc is not None:
            raise RuntimeError("campaign: one runs already")
        req = ChildRequest(self._store_path(), None if path is None else str(Path(path).expanduser()), resume,
                           self.mqtt)
        here_sock, there_sock = socket.socketpair()
        here = Connection(here_sock.detach())
        there_fd = there_sock.detach()
        errfile = tempfile.TemporaryFile()
        try:
            proc = subprocess.Popen([sys.executable, "-m", "labctl.tui.campaign_child", str(there_fd)],
                                    pass_fds=(there_fd,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=errfile, start_new_session=True)
        except BaseException:
            here.close()
            errfile.close()
            raise
        finally:
            os.close(there_fd)
        self._proc, self._conn, self._paused, self.run_id = proc, here, False, None
        self._live.add(proc)
        remove_hook = self.session.add_stop_hook(lambda: self.abort("emergency stop"))
        stderr = ""
        try:
            self._send_now(req)
            outcome = await asyncio.to_thread(self._pump, here)
        except asyncio.CancelledError:  # the app is closing: the run must end, outputs off, stored as aborted
            self._send("abort", "labctl tui closed")
            raise
        finally:
            remove_hook()
            self._proc, self._conn, self._paused = None, None, False
            try:
                await asyncio.to_thread(self._reap, proc)
            finally:
                here.close()
                errfile.seek(0)
                stderr = errfile.read()[-2000:].decode(errors="replace").strip()
                errfile.close()
        kind, payload = outcome
        if kind == "refused":
            raise ValueError(payload)
        if kind != "result":
            raise RuntimeError(f"campaign process (exit code {proc.returncode}): {payload}"
                               + (f"\n{stderr}" if stderr else ""))
        result = RunResult(**payload)
        self.post(RunEnded(result.run_id, result.status, result.measurements, tuple(result.errors)))
        return result

    def _pump(self, conn: Connection) -> tuple[str, Any]:
        """Forward the child's events until its last word (on a worker thread: recv blocks)."""
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                return "crashed", "ended without a result"
            if isinstance(msg, tuple):
                if msg[0] == "log":
                    log.log(msg[1], "campaign: %s", msg[2])
                elif msg[0] == "started":
                    self.run_id = msg[1]
                elif msg[0] in ("refused", "result", "crashed"):
                    return msg[0], msg[1]
            else:
                if isinstance(msg, RunBegan):
                    self.run_id = msg.run_id
                self.post(msg)

    def _reap(self, proc: subprocess.Popen[bytes]) -> None:
        """Wait for the child; SIGTERM (its abort handler), then SIGKILL, each after ESCALATE_S."""
        for escalate in (None, proc.terminate, proc.kill):
            if escalate is not None:
                log.error("campaign process %d did not end: %s", proc.pid, escalate.__name__)
                escalate()
            try:
                proc.wait(self.ESCALATE_S)
                break
            except subprocess.TimeoutExpired:
                continue
        self._live.discard(proc)

    def _send_now(self, msg: Any) -> bool:
        conn = self._conn
        if conn is None:
            return False
        with self._send_lock:  # the UI thread and the session thread (emergency stop) both send
            try:
                conn.send(msg)
            except (OSError, ValueError):
                return False
        return True

    def _send(self, *msg: Any) -> bool:
        return self._send_now(msg)

    # -- requests from the UI thread (or the session thread, for emergency stop)
    def pause(self) -> bool:
        """Hold at the next safe point, outputs off."""
        ok = self._send("pause")
        self._paused = self._paused or ok
        return ok

    def resume(self) -> bool:
        ok = self._send("resume")
        if ok:
            self._paused = False
        return ok

    def abort(self, reason: str = "aborted from labctl tui") -> bool:
        """Abort the run at once: outputs off, stored as aborted with `reason`. SIGTERM follows if the
        child has not ended within ESCALATE_S."""
        proc = self._proc
        if proc is None or not self._send("abort", reason):
            return False
        timer = threading.Timer(self.ESCALATE_S, self._escalate, args=(proc,))
        timer.daemon = True
        timer.start()
        return True

    @staticmethod
    def _escalate(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            log.error("campaign process %d did not end after an abort: SIGTERM", proc.pid)
            proc.terminate()

    def close(self, timeout: float = 10.0) -> None:
        """Abort a running campaign and wait for its process to end (at app exit; any thread). The run
        task may already have been cancelled: every process started and not yet reaped is waited for."""
        self.abort("labctl tui closed")
        for proc in list(self._live):
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.error("campaign process %d still running %.0f s after the abort: SIGKILL", proc.pid, timeout)
                proc.kill()
            self._live.discard(proc)
