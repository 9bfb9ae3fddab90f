"""The child process a TUI campaign runs in: `python -m labctl.tui.campaign_child FD`, started by
CampaignController with one end of a socket pair as FD.

Why a process: the campaign's own Python work (the host program-and-verify loop, SQLite commits, the
routines' bookkeeping) holds the interpreter lock for most of a run; in a thread of the TUI's process
it delays every key press by whole switch intervals and more (docs/tui.md, docs/benchmarks.md). In a
process of its own it competes only for a CPU core.

What runs here is what `labctl run` runs: `Runner(...)` or `Runner.resume(store, ref)` on the store
file the TUI uses, with a RunControl; the same `[telemetry]`/`--mqtt` rules. The parent talks to it
over one duplex multiprocessing Connection on FD; the first message is the ChildRequest. (A fresh
interpreter rather than multiprocessing's 'spawn': spawn re-imports the parent's __main__, which is
the bench script, pytest or stdin, and costs start-up time; fork is unsafe with the TUI's threads.)

parent -> child: ("pause",), ("resume",), ("stop", reason), ("abort", reason). A reader thread hands
  them to the run's event loop (call_soon_threadsafe), where RunControl acts on them exactly as the
  CLI's signal handlers do. SIGTERM aborts at once too (the same handler as `labctl run`), which is
  the parent's fallback if the pipe is not read.
child -> parent: ("log", levelno, text), ("started", run_id), events of labctl.tui.campaign
  (RunBegan, StepProgress; progress within a unit at most every PROGRESS_INTERVAL s), then exactly one
  of ("refused", message) before anything ran, ("result", RunResult fields), ("crashed", traceback).

The parent points the child's stdout at /dev/null and its stderr at a temporary file: the terminal
belongs to the TUI; log records and the traceback of a crash come over the pipe, and the stderr file
is shown if the child dies before it can say anything.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

NICE = 5  # scheduling priority below the TUI's (see child_main)
PROGRESS_INTERVAL = 0.05  # s: the UI redraws progress at most this often; unit boundaries always go through


@dataclass(frozen=True)
class ChildRequest:
    """What to run: a campaign file (`path`) or a stored run to continue (`resume`: id, prefix, 'last')."""

    store_path: str
    path: str | None = None
    resume: str | None = None
    mqtt: str | None = None


class _PipeLog(logging.Handler):
    def __init__(self, send: Any) -> None:
        super().__init__(logging.INFO)
        self.send = send

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.send(("log", record.levelno, f"{record.name}: {record.getMessage()}"))
        except Exception:  # the parent went away: nothing left to tell
            pass


class _Sender:
    """Thread-safe send that never raises (a vanished parent must not fail the run: it still ends
    properly, outputs off and status stored)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.lock = threading.Lock()
        self.broken = False

    def __call__(self, msg: Any) -> None:
        if self.broken:
            return
        with self.lock:
            try:
                self.conn.send(msg)
            except (OSError, EOFError, ValueError):
                self.broken = True


class _Throttle:
    """Passes every event but StepProgress within a unit, which goes at most every `interval` s."""

    def __init__(self, send: Any, interval: float = PROGRESS_INTERVAL) -> None:
        self.send, self.interval, self.last = send, interval, 0.0

    def __call__(self, event: Any, force: bool = False) -> None:
        from labctl.tui.campaign import StepProgress

        now = time.monotonic()
        if isinstance(event, StepProgress) and not force and now - self.last < self.interval:
            return
        if isinstance(event, StepProgress):
            self.last = now
        self.send(event)


def _control_reader(conn: Connection, loop: asyncio.AbstractEventLoop, control: Any) -> None:
    actions = {"pause": lambda _r: control.pause(), "resume": lambda _r: control.resume(),
               "stop": control.request_stop, "abort": control.abort_now}
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            # The parent is gone (crashed or killed): nobody can pause, resume or stop this run any more,
            # so end it now rather than source unattended; outputs go off in the runner's finally.
            loop.call_soon_threadsafe(control.abort_now, "the TUI went away")
            return
        fn = actions.get(msg[0])
        if fn is not None:
            loop.call_soon_threadsafe(fn, msg[1] if len(msg) > 1 else msg[0])


async def _run(send: _Sender, conn: Connection, req: ChildRequest) -> None:
    from labctl.campaigns.plan import load_campaign
    from labctl.campaigns.problems import CampaignError
    from labctl.campaigns.runner import RunControl, Runner, new_run_id
    from labctl.campaigns.store import Store
    from labctl.campaigns.telemetry import telemetry_config  # the same [telemetry] / --mqtt rules as `labctl run`

    throttle = _Throttle(send)
    view = _ThrottledView(throttle)
    control = RunControl()
    store = Store(req.store_path)
    try:
        try:
            if req.resume is not None:
                runner = Runner.resume(store, req.resume, control=control, view=view)
            else:
                assert req.path is not None
                with open(os.path.expanduser(req.path)) as f:
                    text = f.read()
                runner = Runner(store, load_campaign(text, req.path), new_run_id(), resuming=False,
                                campaign_path=req.path, control=control, view=view)
            campaign = runner.loaded.campaign
            runner.telemetry_config = telemetry_config(campaign, req.mqtt, runner.campaign_path)
        except CampaignError as exc:
            send(("refused", "\n".join(p.format(exc.source) for p in exc.problems)))
            return
        except (ValueError, KeyError, OSError) as exc:
            send(("refused", str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)))
            return
        loop = asyncio.get_running_loop()
        signal.signal(signal.SIGTERM, lambda signum, frame: control.abort_now("SIGTERM"))
        threading.Thread(target=_control_reader, args=(conn, loop, control), name="campaign-control",
                         daemon=True).start()
        send(("started", runner.run_id))
        result = await runner.run()
        send(("result", dataclasses.asdict(result)))
    finally:
        store.close()


class _ThrottledView:
    """TuiProgress whose within-unit progress is rate-limited; begin and unit boundaries always pass."""

    def __init__(self, throttle: _Throttle) -> None:
        from labctl.tui.campaign import TuiProgress

        self.throttle = throttle
        self._forced = False
        self.inner = TuiProgress(self._post)

    def _post(self, event: Any) -> None:
        self.throttle(event, force=self._forced)

    def _boundary(self, fn: Any, *args: Any) -> None:
        self._forced = True
        try:
            fn(*args)
        finally:
            self._forced = False

    def begin(self, run_id: str, units: list[Any], done: set[int]) -> None:
        self._boundary(self.inner.begin, run_id, units, done)

    def unit_started(self, unit: Any) -> None:
        self._boundary(self.inner.unit_started, unit)

    def unit_progress(self, unit: Any, fraction: float, message: str) -> None:
        self.inner.unit_progress(unit, fraction, message)

    def unit_done(self, unit: Any) -> None:
        self._boundary(self.inner.unit_done, unit)

    def station(self, info: Any) -> None:
        self.inner.station(info)

    def end(self, status: str) -> None:
        self.inner.end(status)


def child_main(conn: Connection) -> None:
    """Run the ChildRequest that arrives first on `conn`; report over `conn` until the run has ended."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C meant for a terminal is the TUI's business
    # Below the UI in the scheduler: when cores are short the operator's keys go first; the campaign
    # loses throughput, not timing (pulse widths and waits are the instruments' or the backend's).
    os.nice(NICE)
    send = _Sender(conn)
    root = logging.getLogger("labctl")
    root.setLevel(logging.INFO)
    root.addHandler(_PipeLog(send))
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").addHandler(_PipeLog(send))
    try:
        req = conn.recv()
        if not isinstance(req, ChildRequest):
            raise TypeError(f"campaign process: expected a ChildRequest first, got {type(req).__name__}")
        asyncio.run(_run(send, conn, req))
    except BaseException:
        send(("crashed", traceback.format_exc()))


if __name__ == "__main__":
    # Through the module's import name, so that the request unpickles as the class isinstance checks
    # (run with -m, this file is also __main__, a second copy of every class in it).
    from labctl.tui.campaign_child import child_main as _child_main

    _child_main(Connection(int(sys.argv[1])))
