"""ProbeStationApp: the probe-station TUI (`labctl tui`).

The app composes one widget per concept and carries messages between them; the backend lives in a
BackendSession thread, so no backend call ever runs on the UI's event loop. Actions run as workers
(group "action"), the map refresh as a worker (group "map"), campaigns through CampaignController.
An action is a one-step campaign (labctl.tui.actions.campaign_text) run by the campaign Runner on the
session's thread and backend: stored, progressing, cancelled and switched off as every campaign is.
"""
from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Footer, TabbedContent, TabPane

from labctl.backends.base import ArrayBackend
from labctl.campaigns.runner import SilentProgress
from labctl.routines.base import Measurements
from labctl.tui.actions import ActionSpec, action_specs, campaign_text
from labctl.tui.campaign import CampaignController, RunBegan, RunEnded, StepProgress, validate
from labctl.tui.session import CONNECTED, BackendSession, SessionState, is_link_error
from labctl.tui.widgets.array_map import ArrayMap
from labctl.tui.widgets.campaign_panel import CampaignPanel
from labctl.tui.widgets.cell_detail import CellDetail
from labctl.tui.widgets.forms import ActionForm
from labctl.tui.widgets.help import HelpScreen
from labctl.tui.widgets.legend import MapLegend
from labctl.tui.widgets.log_panel import LogPanel, PanelHandler
from labctl.tui.widgets.remote_panel import RemotePanel
from labctl.tui.widgets.status import EmergencyStopButton, StatusBar

log = logging.getLogger("labctl.tui")


class SessionChanged(Message):
    def __init__(self, state: SessionState) -> None:
        super().__init__()
        self.state = state


class LiveBatch(Message):
    """A batch a running action just emitted (posted from the session thread)."""

    def __init__(self, batch: Measurements) -> None:
        super().__init__()
        self.batch = batch


class ActionProgress(Message):
    def __init__(self, done: float, total: float, text: str) -> None:
        super().__init__()
        self.done, self.total, self.text = done, total, text


class CampaignEvent(Message):
    """RunBegan / StepProgress / RunEnded from the campaign controller (its pipe-reading thread)."""

    def __init__(self, event: Any) -> None:
        super().__init__()
        self.event = event


def _while_mounted(handler: Callable[..., None]) -> Callable[..., None]:
    """For handlers of messages posted from the session thread: they may arrive while the app is
    closing and its widgets are gone; there is nothing to show them on then."""
    def wrapper(self: Any, msg: Any) -> None:
        try:
            handler(self, msg)
        except NoMatches:
            pass

    wrapper.__name__ = handler.__name__
    wrapper.__doc__ = handler.__doc__
    return wrapper


class ProbeStationApp(App[int]):
    """The probe-station TUI. `backend_factory` builds the (unopened) backend on the session thread;
    `backend_table` is the campaign [backend] table naming the same array (seed and preset of an
    emulator, a chip's address, a station file), written into every action's campaign text so that
    `labctl run` can repeat it (rows and cols always come from the connected backend)."""

    CSS_PATH = "app.tcss"
    TITLE = "labctl probe station"
    ENABLE_COMMAND_PALETTE = False

    BINDINGS = [
        Binding("ctrl+s", "emergency_stop", "EMERGENCY STOP", priority=True),
        Binding("f12", "emergency_stop", "Emergency stop (alias)", show=False, priority=True),
        Binding("question_mark,f1", "help", "Help"),
        Binding("q", "quit", "Quit"),
        Binding("a", "refresh_map", "Read array"),
        Binding("t", "toggle_timer", "Auto-refresh", show=False),
        Binding("r", "cell('read')", "Read"),
        Binding("f", "cell('form')", "Form"),
        Binding("p", "cell('program')", "Program"),
        Binding("u", "cell('pulse')", "Pulses"),
        Binding("i", "cell('iv')", "I–V"),
        Binding("e", "cell('retention')", "Retention"),
        Binding("c", "cancel", "Cancel action"),
        Binding("m", "focus_map", "Map", show=False),
        Binding("h", "focus_history", "History", show=False),
        Binding("1", "tab('tab-campaign')", "Campaign tab", show=False),
        Binding("2", "tab('tab-remote')", "Remote tab", show=False),
        Binding("3", "tab('tab-log')", "Log tab", show=False),
        Binding("o", "open_campaign", "Campaign file", show=False),
        Binding("g", "campaign('run')", "Run campaign", show=False),
        Binding("space", "campaign('toggle')", "Pause/resume campaign", show=False),
        Binding("x", "campaign('abort')", "Abort campaign", show=False),
    ]

    def __init__(self, backend_factory: Callable[[], ArrayBackend], *, store_path: str | None = None,
                 refresh_interval: float = 0.0, mqtt: str | None = None, watch_station: str = "+",
                 campaign_path: str = "", backend_table: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.store_path = store_path
        self.backend_table = dict(backend_table or {})
        self.session = BackendSession(backend_factory, on_state=lambda s: self.post_message(SessionChanged(s)),
                                      store_path=store_path)
        self.actions = action_specs()
        for spec in self.actions.values():  # import the routines now, not on the UI loop when a form opens
            spec.params_model  # noqa: B018
        self.campaigns = CampaignController(self.session, lambda e: self.post_message(CampaignEvent(e)), mqtt)
        self.refresh_interval = refresh_interval
        self.mqtt = mqtt
        self.watch_station = watch_station
        self.campaign_path = campaign_path
        self.busy: str | None = None  # the running action's title
        self._control: Any = None  # the running action's RunControl
        self.last_result: Any = None
        self.last_error: str | None = None
        self._first_connect = True
        self._timer: Any = None
        self._handler: PanelHandler | None = None
        self._estop = False
        self._history_timer: Any = None
        self.map_updates = 0  # whole-array reads shown (for tests and the benchmark)

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        with Horizontal(id="top-bar"):
            yield StatusBar(id="status")
            yield EmergencyStopButton(id="estop")
        with Horizontal(id="main"):
            with Vertical(id="map-column"):
                yield ArrayMap(id="map")
                yield MapLegend(id="legend")
            with Vertical(id="side-column"):
                yield CellDetail(id="detail")
                with TabbedContent(id="tabs", initial="tab-log"):
                    with TabPane("Campaign", id="tab-campaign"):
                        yield CampaignPanel(id="campaign")
                    with TabPane("Remote", id="tab-remote"):
                        yield RemotePanel(broker=self.mqtt, station=self.watch_station, id="remote")
                    with TabPane("Log", id="tab-log"):
                        yield LogPanel(id="log")
        yield Footer()

    def on_mount(self) -> None:
        panel = self.query_one(LogPanel)
        self._handler = PanelHandler(panel)
        logging.getLogger("labctl").addHandler(self._handler)
        logging.getLogger("labctl").setLevel(logging.INFO)
        if self.campaign_path:
            self.query_one("#campaign-path").value = self.campaign_path  # type: ignore[attr-defined]
        panel.write_line("connecting to the backend…")
        self.session.start()
        self.query_one(ArrayMap).focus()
        if self.refresh_interval > 0:
            self._timer = self.set_interval(self.refresh_interval, self._timed_refresh)

    async def on_unmount(self) -> None:
        if self._handler is not None:
            logging.getLogger("labctl").removeHandler(self._handler)
        # A running campaign ends (aborted, outputs off, stored) and the backend is closed with its outputs
        # off before the process goes (threads: waiting must not hold the loop).
        await asyncio.to_thread(self.campaigns.close)
        await asyncio.to_thread(self.session.close)

    # ------------------------------------------------------------------ session
    @_while_mounted
    def on_session_changed(self, msg: SessionChanged) -> None:
        s = msg.state
        self.query_one(StatusBar).set_session(s)
        logp = self.query_one(LogPanel)
        if s.state == CONNECTED and s.info is not None:
            if self._first_connect:
                self._first_connect = False
                self.query_one(ArrayMap).resize_array(s.info.rows, s.info.cols)
                logp.write_line(f"connected: {s.info.kind} {s.info.rows}×{s.info.cols} "
                                f"{'; '.join(f'{k}={v}' for k, v in s.info.identity.items())}")
                self.action_refresh_map()
            else:
                logp.write_line(f"reconnected ({s.reconnects}×)", logging.WARNING)
                self.notify("backend reconnected", severity="warning")
        elif s.state == "reconnecting" and s.attempt == 1:
            logp.write_line(f"link lost, reconnecting: {s.message}", logging.ERROR)
            self.notify("backend link lost: reconnecting", severity="error")
        elif s.state == "failed":
            logp.write_line(f"cannot connect: {s.message}", logging.ERROR)
            self.notify(f"cannot connect: {s.message}", severity="error", timeout=10)

    # ------------------------------------------------------------------ map
    def action_refresh_map(self) -> None:
        if self.campaigns.active:
            self.notify("a campaign runs: the array map is not read meanwhile", severity="warning")
            return
        self._read_array()

    def _timed_refresh(self) -> None:
        if self.busy is None and not self.campaigns.active and self.session.state.state == CONNECTED:
            self._read_array()

    def action_toggle_timer(self) -> None:
        if self._timer is None:
            self.refresh_interval = self.refresh_interval or 5.0
            self._timer = self.set_interval(self.refresh_interval, self._timed_refresh)
            self.notify(f"array map refreshed every {self.refresh_interval:g} s")
        else:
            self._timer.stop()
            self._timer = None
            self.notify("array map auto-refresh off")

    @work(exclusive=True, group="map")
    async def _read_array(self) -> None:
        try:
            g = await self.session.call(lambda b: b.read_array())
        except Exception as exc:
            self._error(f"READ_ARRAY failed: {exc}")
            return
        self.query_one(ArrayMap).show(g)
        self.map_updates += 1
        finite = g[np.isfinite(g)]
        self.query_one(LogPanel).write_line(
            f"array read: {g.size} cells, G {finite.min() * 1e6:.3g}–{finite.max() * 1e6:.3g} µS"
            if finite.size else "array read")

    def on_array_map_cursor_moved(self, msg: ArrayMap.CursorMoved) -> None:
        amap = self.query_one(ArrayMap)
        r0, r1, c0, c1 = amap.selection()
        n = (r1 - r0 + 1) * (c1 - c0 + 1)
        self.query_one(MapLegend).set_cursor(msg.row, msg.col, msg.g, n)
        self.query_one(CellDetail).show_cell(msg.row, msg.col, msg.g, n)
        # The store is read once the cursor rests (0.15 s), not on every key of a fast move.
        if self._history_timer is not None:
            self._history_timer.stop()
        self._history_timer = self.set_timer(0.15, lambda: self._load_history(msg.row, msg.col))

    def on_array_map_scale_changed(self, msg: ArrayMap.ScaleChanged) -> None:
        self.query_one(MapLegend).set_scale(msg.scale)

    @work(exclusive=True, group="history", thread=True)
    def _load_history(self, row: int, col: int) -> None:
        info = self.session.state.info
        if info is None:
            return
        from labctl.campaigns.store import DEFAULT_STORE, Store

        try:
            with Store(self.store_path or DEFAULT_STORE, read_only=True) as store:
                entries = store.cell_history(row, col, backend_kind=info.kind, identity=info.identity)
        except FileNotFoundError:  # nothing stored yet
            entries = []
        try:
            self.call_from_thread(self._show_history, entries)
        except Exception:  # the app is closing: nothing to show the history on
            pass

    def _show_history(self, entries: list[Any]) -> None:
        try:
            self.query_one(CellDetail).show_history(entries)
        except NoMatches:  # closing
            pass

    # ------------------------------------------------------------------ actions
    def action_cell(self, key: str) -> None:
        spec = self.actions.get(key)
        if spec is None:
            self._error(f"action {key!r}: this installation has no such routine")
            return
        if self.busy is not None:
            self._error(f"{spec.title}: busy with {self.busy} (c cancels it)")
            return
        if self.campaigns.active:
            self._error(f"{spec.title}: a campaign runs on this station; pause does not free the array "
                        "(abort it first)")
            return
        if self.session.state.state != CONNECTED:
            self._error(f"{spec.title}: backend not connected ({self.session.state.state})")
            return
        amap = self.query_one(ArrayMap)
        rows, cols = amap.selected_cells()
        r0, r1, c0, c1 = amap.selection()
        where = f"at ({r0}, {c0})" if rows.size == 1 else f"in rows {r0}–{r1}, cols {c0}–{c1}"

        def chosen(params: Any) -> None:
            if params is not None:
                self.perform(spec, params, rows, cols)

        self.push_screen(ActionForm(spec, self.session.state.limits, int(rows.size), where), chosen)

    def _campaign_text(self, spec: ActionSpec, params: Any, rows: np.ndarray, cols: np.ndarray) -> str:
        """The one-step campaign file of an action on the connected backend."""
        info, limits = self.session.state.info, self.session.state.limits
        assert info is not None and limits is not None
        table = {"kind": info.kind, **self.backend_table, "rows": info.rows, "cols": info.cols}
        return campaign_text(spec, rows, cols, params, table, limits)

    @work(exclusive=True, group="action")
    async def perform(self, spec: ActionSpec, params: Any, rows: np.ndarray, cols: np.ndarray) -> Any:
        """Run one action as a one-step campaign through the Runner on the session thread (stored like
        every campaign); updates map, detail and log."""
        from labctl.campaigns.oneshot import load_one_step, run_one_step
        from labctl.campaigns.problems import CampaignError
        from labctl.campaigns.runner import RunControl

        logp = self.query_one(LogPanel)
        try:
            loaded = load_one_step(self._campaign_text(spec, params, rows, cols), f"tui: {spec.key}", params)
        except CampaignError as exc:  # the campaign's [limits] refuse it: nothing is sent
            self._error(f"{spec.title}: " + "; ".join(p.format(exc.source) for p in exc.problems))
            return None
        except ValueError as exc:  # the text would not repeat the action: nothing is sent
            self._error(f"{spec.title}: {exc}")
            return None
        self.busy = spec.title
        self.last_error = None
        self._estop = False
        control = self._control = RunControl()
        status = self.query_one(StatusBar)
        status.set_activity(f"[b]{spec.title}[/b] on {rows.size} cell(s)…  (c cancels)")
        self.query_one(CellDetail).start_plot(spec.plot, f"{spec.title}: live")
        shown = ", ".join(f"{f}={getattr(params, f)!r}" for f in spec.fields)
        logp.write_line(f"{spec.title}: {rows.size} cell(s), {shown}")
        session = self.session

        async def execute(backend: ArrayBackend) -> tuple[Any, Any]:
            remove_hook = session.add_stop_hook(lambda: control.abort_now("emergency stop"))
            try:
                done = await run_one_step(session.store(), loaded, backend, control=control,
                                          view=_ActionProgressView(self.post_message),
                                          on_batch=lambda m: self.post_message(LiveBatch(m)))
            finally:
                remove_hook()
            if done.failure is not None and is_link_error(done.failure):
                raise done.failure  # stored as failed; the session sees the lost link and reconnects
            return done.run, done.result

        try:
            run, result = await session.call(execute)
        except asyncio.CancelledError:
            self._action_stopped(spec, "EMERGENCY STOP" if self._estop else "cancelled")
            raise
        except Exception as exc:
            self._action_failed(spec, str(exc))
            return None
        finally:
            self._control = None
        if run.status == "aborted":
            self._action_stopped(spec, "EMERGENCY STOP" if self._estop else "cancelled")
            return None
        if run.status != "complete":
            self._action_failed(spec, "; ".join(run.errors) or run.status)
            return None
        self.busy = None
        self.last_result = result
        g = getattr(result, "g", None)
        if isinstance(g, np.ndarray) and g.shape == rows.shape:
            self.query_one(ArrayMap).set_cells(rows, cols, g)
        summary = result.summary() if callable(getattr(result, "summary", None)) else {}
        text = ", ".join(f"{k}={_short(v)}" for k, v in list(summary.items())[:6])
        logp.write_line(f"{spec.title} done (run {run.run_id}): {text}")
        status.set_activity(f"{spec.title} done: {text}")
        amap = self.query_one(ArrayMap)
        self._load_history(*amap.cursor)
        return result

    def _action_stopped(self, spec: ActionSpec, why: str) -> None:
        self.query_one(LogPanel).write_line(f"{spec.title}: {why}, outputs off", logging.WARNING)
        self.query_one(StatusBar).set_activity(f"[b red]{why}[/b red]: {spec.title} aborted, outputs off"
                                               if self._estop else f"{spec.title} cancelled")
        self.busy = None

    def _action_failed(self, spec: ActionSpec, why: str) -> None:
        self.busy = None
        self.query_one(StatusBar).set_activity(f"{spec.title} failed")
        self._error(f"{spec.title} failed: {why}")

    @_while_mounted
    def on_live_batch(self, msg: LiveBatch) -> None:
        self.query_one(CellDetail).add_batch(msg.batch)

    @_while_mounted
    def on_action_progress(self, msg: ActionProgress) -> None:
        if self.busy is not None:
            pct = 100 * msg.done / msg.total if msg.total else 0
            self.query_one(StatusBar).set_activity(f"[b]{self.busy}[/b]: {pct:.0f} % {msg.text}  (c cancels)")

    def action_cancel(self) -> None:
        """Abort the running action through its run's control (stored as aborted, outputs off)."""
        control, loop = self._control, self.session.loop
        if self.busy is None or control is None or loop is None:
            self.notify("nothing to cancel")
            return
        loop.call_soon_threadsafe(control.abort_now, "cancelled from labctl tui")

    # ------------------------------------------------------------------ emergency stop
    def action_emergency_stop(self) -> None:
        """Abort whatever runs (action, campaign) and switch every output off."""
        self._estop = True
        self.workers.cancel_group(self, "action")
        self.campaigns.abort("emergency stop")  # straight to the campaign process; the session's hook does it too
        self.session.emergency_stop()
        self.query_one(StatusBar).set_activity("[b red]EMERGENCY STOP[/b red]: aborted, outputs off")
        self.query_one(LogPanel).write_line("EMERGENCY STOP: everything aborted, outputs off", logging.ERROR)
        self.notify("EMERGENCY STOP: aborted, outputs off", severity="error", timeout=10)

    def on_button_pressed(self, event: Any) -> None:
        if getattr(event.button, "id", None) == "estop":
            self.action_emergency_stop()

    # ------------------------------------------------------------------ campaigns
    def on_campaign_panel_request(self, msg: CampaignPanel.Request) -> None:
        self._campaign(msg.what, msg.path, msg.run_ref)

    def action_campaign(self, what: str) -> None:
        panel = self.query_one(CampaignPanel)
        path = panel.query_one("#campaign-path").value.strip()  # type: ignore[attr-defined]
        ref = panel.query_one("#campaign-run").value.strip() or "last"  # type: ignore[attr-defined]
        if what == "toggle":
            what = "resume" if self.campaigns.paused else "pause"
        self._campaign(what, path, ref)

    def action_open_campaign(self) -> None:
        self.query_one(TabbedContent).active = "tab-campaign"
        self.query_one("#campaign-path").focus()

    def _campaign(self, what: str, path: str, ref: str) -> None:
        panel = self.query_one(CampaignPanel)
        self.query_one(TabbedContent).active = "tab-campaign"
        if what == "validate":
            loaded, problems = validate(path)
            if loaded is None:
                panel.show_errors(problems)
                panel.show_status(f"[red]{len(problems)} problem(s)[/red]: nothing will run")
            else:
                panel.show_plan(loaded.step_names, len(loaded.units))
            return
        if what == "run":
            if self.campaigns.active or self.busy is not None:
                self._error("campaign: something runs already")
                return
            loaded, problems = validate(path)
            if loaded is None:
                panel.show_errors(problems)
                panel.show_status(f"[red]{len(problems)} problem(s)[/red]: nothing will run")
                return
            panel.show_plan(loaded.step_names, len(loaded.units))
            self._run_campaign(path, None)
        elif what == "resume":
            if self.campaigns.active:
                if self.campaigns.resume():
                    panel.show_status(f"run {self.campaigns.run_id}: [b]running[/b] (resumed)")
            elif self.busy is None:
                self._run_campaign(None, ref)
        elif what == "pause":
            if self.campaigns.pause():
                panel.show_status(f"run {self.campaigns.run_id}: [b]pausing[/b] at the next safe point")
            else:
                self.notify("no campaign runs")
        elif what == "abort":
            if not self.campaigns.abort():
                self.notify("no campaign runs")

    @work(exclusive=True, group="campaign")
    async def _run_campaign(self, path: str | None, ref: str | None) -> None:
        self._estop = False
        self.query_one(StatusBar).set_activity("campaign running")
        try:
            result = await self.campaigns.run(path, ref)
        except Exception as exc:
            self.query_one(CampaignPanel).show_errors([str(exc)])
            self._error(f"campaign: {exc}")
            self.query_one(StatusBar).set_activity("idle")
            return
        if self._estop and result.status == "aborted":  # the stop stays visible until the next thing runs
            self.query_one(StatusBar).set_activity(f"[b red]EMERGENCY STOP[/b red]: campaign {result.run_id} "
                                                   "aborted, outputs off")
        else:
            self.query_one(StatusBar).set_activity(f"campaign {result.run_id}: {result.status}")
        self.query_one(LogPanel).write_line(f"campaign {result.run_id}: {result.status}, "
                                            f"{result.measurements} measurements")

    @_while_mounted
    def on_campaign_event(self, msg: CampaignEvent) -> None:
        panel = self.query_one(CampaignPanel)
        e = msg.event
        if isinstance(e, RunBegan):
            panel.begin(e)
            self.query_one(StatusBar).set_station(None)  # shown again once a wafer run reaches a die
            self.query_one(LogPanel).write_line(f"campaign run {e.run_id} started: {', '.join(e.steps)}")
        elif isinstance(e, StepProgress):
            panel.progress(e)
            if e.station is not None:
                self.query_one(StatusBar).set_station(e.station)
            self.query_one(StatusBar).set_activity(
                f"campaign {e.run_id}: {e.overall * 100:.0f} % — {e.step_name} {e.fraction * 100:.0f} %")
        elif isinstance(e, RunEnded):
            panel.end(e)
            if e.status != "complete":
                self.notify(f"campaign {e.run_id}: {e.status}", severity="warning")

    # ------------------------------------------------------------------ misc
    def action_help(self) -> None:
        from labctl.tui.widgets.campaign_panel import CampaignPanel as _CP  # noqa: F401

        self.push_screen(HelpScreen([("anywhere", list(self.BINDINGS)),
                                     ("array map", list(ArrayMap.BINDINGS)),
                                     ("forms", list(ActionForm.BINDINGS))]))

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_focus_map(self) -> None:
        self.query_one(ArrayMap).focus()

    def action_focus_history(self) -> None:
        self.query_one("#cell-history").focus()

    def _error(self, text: str) -> None:
        self.last_error = text
        self.query_one(LogPanel).write_line(text, logging.ERROR)
        self.notify(text, severity="error", timeout=8)


class _ActionProgressView(SilentProgress):
    """The runner's ProgressView for an action: unit progress as ActionProgress messages (any thread)."""

    def __init__(self, post: Callable[[Message], Any]) -> None:
        self.post = post

    def unit_progress(self, unit: Any, fraction: float, message: str) -> None:
        self.post(ActionProgress(fraction, 1.0, message))


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else "nan"
    return str(v)

