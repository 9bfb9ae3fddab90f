"""Campaign control for the TUI: a thin layer over labctl.campaigns (Runner, RunControl, Store).

Validation is `load_campaign` (the same line-numbered errors `labctl run` prints); running is
`Runner(...).run()` on the backend session's thread, into the session's store, with the runner's own
RunControl for pause, resume and abort; resuming is `Runner.resume(store, ref)`. Nothing here plans,
stores or interrupts a run itself. `TuiProgress` is the runner's ProgressView: it turns the runner's
callbacks (on the session thread) into per-step fractions and hands them to `post` (thread-safe).
"""
from __future__ import annotations

import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labctl.campaigns.model import CampaignError, LoadedCampaign, Unit, load_campaign
from labctl.tui.session import BackendSession


@dataclass(frozen=True)
class StepProgress:
    """Progress of one step of a run: cells done / cells planned over all its units."""

    run_id: str
    step_index: int
    step_name: str
    fraction: float
    overall: float
    message: str = ""


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
                               min(done_all / max(self.total, 1), 1.0), message))

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
    """Runs, pauses, resumes and aborts campaigns on the session's thread, into its store."""

    def __init__(self, session: BackendSession, post: Callable[[Any], None], mqtt: str | None = None) -> None:
        self.session = session
        self.post = post
        self.mqtt = mqtt
        self.control: Any = None  # RunControl of the active run
        self.run_id: str | None = None
        self._remove_hook: Callable[[], None] | None = None

    @property
    def active(self) -> bool:
        return self.control is not None

    async def run(self, path: str | None = None, resume: str | None = None) -> Any:
        """Run a campaign file, or resume a stored run (id, prefix or 'last'); returns the RunResult.
        Raises CampaignError / ValueError before anything runs."""
        from labctl.campaigns.runner import RunControl, Runner, new_run_id

        view = TuiProgress(self.post)

        async def go(_backend: Any) -> Any:
            store = self.session.store()
            control = RunControl()
            if resume is not None:
                runner = Runner.resume(store, resume, control=control, view=view)
            else:
                assert path is not None
                text = Path(path).expanduser().read_text()
                runner = Runner(store, load_campaign(text, path), new_run_id(), resuming=False,
                                campaign_path=path, control=control, view=view)
            runner.telemetry_config = self._telemetry(runner.loaded.campaign)
            self.control, self.run_id = control, runner.run_id
            self._remove_hook = self.session.add_stop_hook(lambda: control.abort_now("emergency stop"))
            try:
                result = await runner.run()
            finally:
                self._remove_hook()
                self.control = None
            self.post(RunEnded(result.run_id, result.status, result.measurements, tuple(result.errors)))
            return result

        return await self.session.call(go)

    def _telemetry(self, campaign: Any) -> Any:
        if self.mqtt is None and campaign.telemetry is None:
            return None
        from labctl.campaigns.cli import _telemetry_config  # the same [telemetry] / --mqtt rules as `labctl run`

        return _telemetry_config(types.SimpleNamespace(mqtt=self.mqtt), campaign)

    # -- requests from the UI thread, carried out on the session loop
    def _on_loop(self, fn: Callable[[], None]) -> bool:
        if self.control is None or self.session.loop is None:
            return False
        self.session.loop.call_soon_threadsafe(fn)
        return True

    def pause(self) -> bool:
        c = self.control
        return c is not None and self._on_loop(c.pause)

    def resume(self) -> bool:
        c = self.control
        return c is not None and self._on_loop(c.resume)

    def abort(self, reason: str = "aborted from labctl tui") -> bool:
        c = self.control
        return c is not None and self._on_loop(lambda: c.abort_now(reason))

    @property
    def paused(self) -> bool:
        return self.control is not None and self.control.paused
