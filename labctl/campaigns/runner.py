"""The campaign runner: runs the planned units of work, stores every measurement as it is taken,
resumes after a crash, stops at safe points, publishes telemetry.

Unit of work (docs/campaigns.md): one routine call on one chunk of cells. Batches the routine emits are
committed one by one as they arrive; the unit's end (status, summary, backend state after it) is one
transaction. On resume the backend state saved after the last finished unit is restored and the
interrupted unit is run again from its start; its batches that are already stored are checked against
the replay (they must be identical: the emulator is deterministic) and not stored twice. A backend
without a saved state (hardware) cannot replay: the interrupted unit runs again as a new attempt and
the earlier attempt's batches stay in the store, marked by their attempt number.

Everything that measures runs here: `labctl run`, scripts, and the TUI's actions, which are one-step
campaigns run on the TUI's already open backend (`backend=`: the runner then neither opens nor closes
it, and still switches its outputs off when the run ends).
"""
from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from labctl.backends.base import ArrayBackend
from labctl.campaigns import backend as cbackend
from labctl.campaigns.plan import LoadedCampaign, Unit, load_campaign
from labctl.campaigns.pulse_traces import PulseTraceRecorder
from labctl.campaigns.schema import BackendSpec
from labctl.campaigns.store import Store, UnitPlan, UnitRecord, as_store_error, json_default, stored_form
from labctl.campaigns.telemetry import Telemetry, TelemetryConfig
from labctl.campaigns.wafer import WaferSession
from labctl.campaigns.writer import BatchWriter
from labctl.routines import registry
from labctl.routines.base import Aborted, Measurements, RoutineContext


class ReplayMismatch(RuntimeError):
    """A resumed unit did not reproduce the batches stored before the interruption."""


class ProgressView(Protocol):
    """What the runner tells a progress display (the CLI's rich bars, the TUI, nothing)."""

    def begin(self, run_id: str, units: list[Unit], done: set[int]) -> None: ...

    def unit_started(self, unit: Unit) -> None: ...

    def unit_progress(self, unit: Unit, fraction: float, message: str) -> None: ...

    def unit_done(self, unit: Unit) -> None: ...

    def end(self, status: str) -> None: ...


class SilentProgress:
    """A ProgressView that shows nothing; views that show only some of it override those methods."""

    def begin(self, run_id: str, units: list[Unit], done: set[int]) -> None:
        pass

    def unit_started(self, unit: Unit) -> None:
        pass

    def unit_progress(self, unit: Unit, fraction: float, message: str) -> None:
        pass

    def unit_done(self, unit: Unit) -> None:
        pass

    def end(self, status: str) -> None:
        pass


@dataclass
class RunControl:
    """Pause, stop and abort requests from outside (signal handlers, the TUI)."""

    stop_reason: str | None = None
    abort_reason: str | None = None
    _resume: asyncio.Event | None = None
    _task: asyncio.Task[Any] | None = None

    def request_stop(self, reason: str = "stop requested") -> None:
        """Stop at the next safe point."""
        if self.stop_reason is None:
            self.stop_reason = reason
        if self._resume is not None:
            self._resume.set()  # a paused run must wake up to stop

    def abort_now(self, reason: str = "aborted") -> None:
        """Cancel the running routine at once (outputs still go off)."""
        self.abort_reason = reason
        self.request_stop(reason)
        if self._task is not None:
            self._task.cancel()

    def pause(self) -> None:
        """Hold at the next safe point (outputs off) until resume()."""
        if self._resume is not None:
            self._resume.clear()

    def resume(self) -> None:
        if self._resume is not None:
            self._resume.set()

    @property
    def paused(self) -> bool:
        return self._resume is not None and not self._resume.is_set()


@dataclass
class RunResult:
    run_id: str
    status: str
    measurements: int
    elapsed: float  # s, wall time of this invocation
    errors: list[str] = field(default_factory=list)
    telemetry: dict[str, Any] | None = None


def _uncancel() -> None:
    """Take back a cancellation of the current task, so that the run's last words may still await."""
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


def error_chain(exc: BaseException) -> str:
    """The message of `exc` followed by those of its causes that it does not already repeat: the
    instrument or controller, the command and the link error, however deep the chain."""
    text = str(exc) or type(exc).__name__
    seen = {id(exc)}
    cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        message = str(cause)
        if message and message not in text:
            text += f" <- {type(cause).__name__}: {message}"
        cause = cause.__cause__ or (None if cause.__suppress_context__ else cause.__context__)
    return text


def new_run_id() -> str:
    """Sortable, unique run id: start time plus 4 random hex digits (not a physics draw)."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def combine_summaries(summaries: list[dict[str, Any]], weights: list[int], routine: str | None = None) -> dict[str, Any]:
    """One summary for the chunks of a step: integers (counts) add up, keys naming a min or max take
    the min or max, other numbers are cell-weighted means over the chunks that have them; anything else,
    and the settings the routine's result type declares (`summary_settings`: cycles per cell, say), is
    taken from the first chunk."""
    if len(summaries) == 1:
        return dict(summaries[0])
    settings = _summary_settings(routine)
    out: dict[str, Any] = {}
    for key in summaries[0]:
        if key in settings:
            out[key] = summaries[0][key]
            continue
        pairs = [(s.get(key), w) for s, w in zip(summaries, weights)]
        nums = [(v, w) for v, w in pairs if isinstance(v, (int, float)) and not isinstance(v, bool)
                and np.isfinite(v)]
        if not nums:
            out[key] = pairs[0][0]
        elif all(isinstance(v, int) for v, _ in nums):
            out[key] = sum(v for v, _ in nums)
        elif "min" in key.split("_"):
            out[key] = min(v for v, _ in nums)
        elif "max" in key.split("_"):
            out[key] = max(v for v, _ in nums)
        else:
            out[key] = sum(v * w for v, w in nums) / sum(w for _, w in nums)
    return out


def step_summaries(units: Sequence[UnitRecord]) -> dict[str, dict[str, Any]]:
    """Each finished step's combined summary, by step name: "<step>" is its last sweep point and repeat
    (what the step left), "<step>[k]" its sweep point k (last repeat). Units not done are left out."""
    groups: dict[tuple[str, int], list[UnitRecord]] = {}
    last: dict[str, tuple[int, int, int, int]] = {}
    for u in units:
        if u.status == "done" and u.summary is not None:
            groups.setdefault((u.step_name, u.sweep_index), [])
            g = groups[(u.step_name, u.sweep_index)]
            if g and g[-1].group != u.group:  # a later pass or repeat of this point replaces the earlier
                g.clear()
            g.append(u)
            last[u.step_name] = u.group
    out: dict[str, dict[str, Any]] = {}
    for (name, k), g in groups.items():
        s = combine_summaries([u.summary for u in g], [u.n_cells for u in g], g[-1].routine)
        out[f"{name}[{k}]"] = s
        if g[-1].group == last[name]:
            out[name] = s
    return out


def _summary_settings(routine: str | None) -> tuple[str, ...]:
    """The summary keys a routine's result type declares as settings (RoutineResult.summary_settings)."""
    if routine is None or routine not in registry.routines():
        return ()
    try:
        return tuple(getattr(registry.get(routine).result, "summary_settings", ()))
    except registry.RoutineLoadError:
        return ()


def _summary_of(result: Any) -> dict[str, Any]:
    fn = getattr(result, "summary", None)
    s = fn() if callable(fn) else {}
    if not isinstance(s, dict):
        s = {"summary": str(s)}
    return json.loads(json.dumps(s, default=json_default))


def _same_batch(a: Measurements, b: Measurements) -> bool:
    if a.kind != b.kind or a.t != b.t or not np.array_equal(a.rows, b.rows) or not np.array_equal(a.cols, b.cols):
        return False
    if set(a.values) != set(b.values):
        return False
    for k, v in a.values.items():
        x = np.asarray(v, dtype=np.float64).reshape(a.rows.size, -1)
        y = np.asarray(b.values[k], dtype=np.float64).reshape(a.rows.size, -1)
        if not np.array_equal(x, y, equal_nan=True):
            return False
    return True


def _check_dimensions(spec: BackendSpec, backend: ArrayBackend) -> None:
    """The campaign plans its cells from [backend] rows and cols; a chip or station of another size would
    get the wrong cells (or none of some), so refuse before anything is applied."""
    info = backend.info
    if (info.rows, info.cols) != (spec.rows, spec.cols):
        raise ValueError(f"backend.rows/cols: the campaign is planned for a {spec.rows}x{spec.cols} array but the "
                         f"{info.kind} backend has {info.rows}x{info.cols}; set rows = {info.rows} and "
                         f"cols = {info.cols} in [backend]")


class Runner:
    """Runs one campaign into one store. Create with `Runner.new(...)` or `Runner.resume(...)`.

    backend: an open backend owned by the caller (the TUI's session) instead of the one [backend] names;
    save_states: store the backend state after every unit (what a replaying resume needs; the TUI's
    single-unit actions on a large emulator skip it); on_batch: called with every batch once it is
    queued for storage (live plots); keep_results: keep each unit's routine result in `results`.
    """

    def __init__(self, store: Store, loaded: LoadedCampaign, run_id: str, *, resuming: bool,
                 telemetry: TelemetryConfig | None = None, view: ProgressView | None = None,
                 control: RunControl | None = None, campaign_path: str | None = None,
                 backend: ArrayBackend | None = None, save_states: bool = True,
                 on_batch: Callable[[Measurements], None] | None = None, keep_results: bool = False) -> None:
        self.store = store
        self.backend = backend
        self.save_states = save_states
        self.on_batch = on_batch
        self.results: list[Any] | None = [] if keep_results else None
        self.failure: BaseException | None = None  # the routine's or backend's exception that failed the run
        self.loaded = loaded
        self.run_id = run_id
        self.resuming = resuming
        self.telemetry_config = telemetry
        self.view = view
        self.control = control or RunControl()
        self.campaign_path = campaign_path
        self.telemetry: Telemetry | None = None
        self.measurements = 0
        self._unit: Unit | None = None
        self._attempt = 0
        self._seq = 0
        self._skip = 0
        self._done_cells = 0
        self._total_cells = sum(int(u.rows.size) for u in loaded.units)
        self._started = time.monotonic()
        self._resume_attempt: int | None = None  # attempt of the unit a resume continues
        self._ending: list[tuple[str, str]] = []  # (event kind, message) of switching off and closing
        self.wafer: WaferSession | None = None  # the prober and dies of a [wafer] campaign
        self._pulses = PulseTraceRecorder()  # the currents a pulse-and-measure station measured
        self._backend: ArrayBackend | None = None  # what the routines are given (the limited backend)

    # -- construction
    @classmethod
    def new(cls, store: Store, text: str, source: str = "campaign.toml", **kw: Any) -> Runner:
        """A fresh run of the campaign file `text` (validated here: CampaignError before anything runs)."""
        return cls(store, load_campaign(text, source), new_run_id(), resuming=False, campaign_path=source, **kw)

    @classmethod
    def resume(cls, store: Store, run_ref: str, **kw: Any) -> Runner:
        """Continue a stored run that did not complete."""
        run_id = store.find_run(run_ref)
        rec = store.run(run_id)
        if rec.status == "complete":
            raise ValueError(f"resume: run {run_id} is already complete")
        if rec.shown_status == "running" and rec.pid != os.getpid():
            raise ValueError(f"resume: run {run_id} is still running (pid {rec.pid} on {rec.host})")
        loaded = load_campaign(rec.campaign_toml, rec.campaign_path or "campaign.toml")
        # A wafer campaign on a real prober's own map is planned once the prober is connected (run()).
        if (loaded.campaign.wafer is None or loaded.dies is not None) and len(loaded.units) != rec.n_units:
            raise ValueError(f"resume: run {run_id} was planned as {rec.n_units} units, the campaign now plans "
                             f"{len(loaded.units)} (did the routines change?)")
        # The resume lock: take the run only if no other process took it since it was read.
        if not store.claim_run(run_id, rec.status, rec.pid):
            raise ValueError(f"resume: run {run_id} is being resumed by another process; "
                             f"see `labctl runs show {run_id}`")
        return cls(store, loaded, run_id, resuming=True, campaign_path=rec.campaign_path, **kw)

    def _campaign_dir(self) -> Path:
        """The folder paths in the campaign file are relative to."""
        return Path(self.campaign_path or self.loaded.source).expanduser().absolute().parent

    # -- the run
    async def run(self) -> RunResult:
        """Run (or continue) the campaign; returns how it ended. Never raises for a routine's failure:
        that ends the run with status `failed` and the error recorded."""
        self.control._resume = asyncio.Event()
        self.control._resume.set()
        self.control._task = asyncio.current_task()
        campaign = self.loaded.campaign
        owned = self.backend is None
        if campaign.wafer is not None:
            self.wafer = WaferSession(campaign.wafer, self.loaded)
        if owned and self.wafer is not None and self.wafer.emulated_backend is not None:
            backend = self.wafer.emulated_backend
        else:
            backend = cbackend.make_backend(campaign.backend) if owned else self.backend
        limited = cbackend.LimitedBackend(backend, campaign.limits)
        limited.after_pulse = self._store_pulse_traces
        self._backend = limited
        status, errors = "failed", []
        self._writer = BatchWriter(self.store.path)
        try:
            try:
                if owned:
                    await backend.open()
                _check_dimensions(campaign.backend, backend)
                if self.wafer is not None:
                    self.loaded = await self.wafer.open(limited)
                    self._total_cells = sum(int(u.rows.size) for u in self.loaded.units)
                units = self.loaded.units
                first = self._prepare(limited)
                refused = self.loaded.preflight(self._campaign_dir(), units[first:])
                if refused:
                    raise ValueError("; ".join(refused))
                self._start_telemetry()
                done = {u.unit_index for u in self.store.units(self.run_id) if u.status == "done"}
                self._done_cells = sum(int(units[i].rows.size) for i in done)
                if self.view is not None:
                    self.view.begin(self.run_id, units, done)
                self._publish_status("running")
                for unit in units[first:]:
                    await self._safe_point(limited)
                    if self.wafer is not None:
                        if not await self.wafer.enter(unit):
                            continue  # the die failed its contact check: skipped and recorded
                        self._show_station()
                    await self._run_unit(limited, unit)
                    if self.wafer is not None:
                        self.measurements += await self.wafer.unit_done(unit)
                status = "complete"
            except Aborted as exc:
                status = "aborted"
                errors.append(f"stopped at a safe point: {exc}")
            except asyncio.CancelledError:
                status = "aborted"
                errors.append(f"aborted at once: {self.control.abort_reason or 'cancelled'}")
                _uncancel()  # so that outputs_off below may still await
            except ReplayMismatch as exc:
                status = "failed"
                errors.append(str(exc))
            except Exception as exc:  # a routine or backend failure ends the run, recorded, outputs off
                status = "failed"
                self.failure = exc
                exc = as_store_error(exc, self.store.path) or exc  # a batch the store refused (a full disk)
                where = f" in unit {self._unit.index} ({self._unit.step_name})" if self._unit else ""
                errors.append(f"{type(exc).__name__}{where}: {error_chain(exc)}")
        finally:
            # Outputs off first, whatever happened: the array must not be left biased. Neither this, nor
            # closing the backend, nor the last commits may raise: each failure is recorded instead.
            ending = await self._end_backend(backend, owned, thermal_safe=status != "complete")
            if self.wafer is not None:
                ending += self._end_wafer(await self.wafer.close(status, self._failed_die(status)))
            if ending and status == "complete":
                status = "failed"
            errors += ending
            try:
                written, error = self._writer.drain()
                self.measurements += written
                if error is not None:  # a batch that could not be committed fails the run, recorded
                    status = "failed"
                    errors.append(str(as_store_error(error, self.store.path) or f"store {self.store.path}: {error}"))
            finally:
                self._writer.close()
        return self._finish(status, errors)

    def _show_station(self) -> None:
        """Tell a view that shows the probe station (the TUI's status bar) where the prober is."""
        station = getattr(self.view, "station", None)
        if callable(station) and self.wafer is not None:
            station(self.wafer.status())

    def _failed_die(self, status: str) -> int | None:
        """The die being measured when the run stopped short of complete."""
        if status == "complete" or self.wafer is None:
            return None
        if self._unit is not None and self._unit.die is not None:
            return self._unit.die
        return self.wafer.entering if self.wafer.entering is not None else self.wafer.current

    def _end_wafer(self, steps: list[tuple[str, str, bool]]) -> list[str]:
        """Record the wafer's last words (chuck separated, set-point safe) in the run's log; the errors."""
        self._ending += [(kind, message) for kind, message, _ in steps]
        return [message for _, message, failed in steps if failed]

    def _registered(self) -> bool:
        return self.store.has_run(self.run_id)

    def _uses_thermal(self) -> bool:
        """True when the campaign has temperature steps (their params models say `thermal`)."""
        names = {u.routine for u in self.loaded.units}
        try:
            return any(getattr(registry.get(n).params, "thermal", False) for n in names)
        except registry.RoutineLoadError:
            return False

    def _thermal_safe(self, backend: ArrayBackend) -> Callable[[], Any] | None:
        """ThermalController.safe of the backend's chuck, with the hardware's limits (not the
        campaign's), when the campaign drives it; else None."""
        if not self._uses_thermal():
            return None
        try:
            ctrl = backend.thermal_controller()
        except Exception:  # noqa: BLE001 -- a backend that never opened has no controller to return
            return None
        return ctrl.safe if ctrl is not None else None

    async def _end_backend(self, backend: ArrayBackend, owned: bool, thermal_safe: bool = False) -> list[str]:
        """Switch the outputs off, return the chuck's set-point to a safe value if the run was aborted or
        failed with temperature steps (`thermal_safe`), and (if the runner opened it) close the backend.
        Each attempt is kept for the run's log (`_ending`, stored by _finish); returns the errors of
        those that failed. Never raises: a dead instrument or controller must not hide why the run
        ended."""
        errors: list[str] = []
        attempts = [("outputs_off", backend.outputs_off, "outputs switched off")]
        safe = self._thermal_safe(backend) if thermal_safe else None
        if safe is not None:
            attempts.append(("thermal_safe", safe, "chuck set-point returned to room temperature"))
        if owned:
            attempts.append(("close", backend.close, "backend closed"))
        for kind, attempt, done in attempts:
            try:
                await attempt()
                self._ending.append((kind, done))
            except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001 -- recorded, the next one still tried
                if isinstance(exc, asyncio.CancelledError):
                    _uncancel()
                message = f"{kind} failed: {type(exc).__name__}: {error_chain(exc)}"
                self._ending.append((kind, message))
                errors.append(message)
        return errors

    def _register_unstarted(self) -> None:
        """Store a run that failed before it could be created (e.g. its backend did not open), so that
        it has a record, a report and can be resumed: no unit done, no backend state."""
        spec = self.loaded.campaign.backend
        campaign = self.loaded.campaign
        self.store.create_run(
            self.run_id, name=campaign.campaign.name, campaign_toml=self.loaded.text,
            campaign=campaign.model_dump(mode="json"), backend_kind=spec.kind,
            identity={} if spec.kind == "emulator" else {"address": spec.address_spec()},
            metadata=campaign.metadata.model_dump(mode="json"),
            units=[self._unit_plan(u) for u in self.loaded.units], seed=spec.seed, campaign_path=self.campaign_path)

    def _prepare(self, backend: ArrayBackend) -> int:
        """Create the run (or restore its state on resume); returns the index of the first unit to run."""
        campaign = self.loaded.campaign
        if not self.resuming:
            self.store.create_run(
                self.run_id, name=campaign.campaign.name, campaign_toml=self.loaded.text,
                campaign=campaign.model_dump(mode="json"), backend_kind=backend.info.kind,
                identity=backend.info.identity, metadata=campaign.metadata.model_dump(mode="json"),
                units=[self._unit_plan(u) for u in self.loaded.units], backend_state=self._state(backend),
                seed=campaign.backend.seed, campaign_path=self.campaign_path)
            self.store.event(self.run_id, "start", f"run started (pid {os.getpid()})")
            if self.wafer is not None:
                self._attach_wafer(backend)
            return 0
        after, state = self.store.state(self.run_id)
        rows = self.store.units(self.run_id)
        if len(rows) != len(self.loaded.units):
            raise ValueError(f"resume: run {self.run_id} was planned as {len(rows)} units, the campaign now plans "
                             f"{len(self.loaded.units)} (did the prober's map change?)")
        first = after + 1
        if self.wafer is not None:
            self._attach_wafer(backend)
            self.wafer.resume_from(after, state)  # restored once the prober is re-aligned
        elif state is not None:
            cbackend.restore_state(backend, state)
        if first < len(rows) and rows[first].status == "running":
            self._resume_attempt = rows[first].attempt if state is not None else rows[first].attempt + 1
        self.store.resume_run(self.run_id)
        self.store.event(self.run_id, "resume", f"resumed at unit {first} of {len(rows)} (pid {os.getpid()})")
        return first

    def _attach_wafer(self, backend: ArrayBackend) -> None:
        assert self.wafer is not None
        self.wafer.attach(self.store, self._writer, self.run_id, lambda: self._state(backend),
                          lambda blob: cbackend.restore_state(backend, blob))
        self.store.event(self.run_id, "wafer", f"prober {self.wafer.spec.prober} at {self.wafer.spec.address}, "
                                               f"{len(self.loaded.dies or [])} dies")

    def _state(self, backend: ArrayBackend) -> bytes | None:
        return cbackend.save_state(backend) if self.save_states else None

    def _unit_plan(self, u: Unit) -> UnitPlan:
        return UnitPlan(unit_index=u.index, step_index=u.step_index, step_name=u.step_name, routine=u.routine,
                        pass_index=u.pass_index, repeat_index=u.repeat_index, sweep_index=u.sweep_index,
                        chunk_index=u.chunk_index, n_cells=int(u.rows.size), params=u.params.model_dump(mode="json"))

    async def _safe_point(self, backend: ArrayBackend) -> None:
        """Between units and at the routines' checkpoints: hold while paused, raise Aborted on stop."""
        await asyncio.sleep(0)  # let pause / abort requests from the loop in
        if self.control.paused and self.control.stop_reason is None:
            await backend.outputs_off()
            self._publish_status("paused")
            assert self.control._resume is not None
            await self.control._resume.wait()
            if self.control.stop_reason is None:
                self._publish_status("running")
        if self.control.stop_reason is not None:
            where = f"unit {self._unit.index}" if self._unit else "the start"
            raise Aborted(f"{self.control.stop_reason} (at {where})")

    async def _run_unit(self, backend: ArrayBackend, unit: Unit) -> None:
        self._unit = unit
        attempt = self._resume_attempt
        self._resume_attempt = None
        self._attempt = attempt if attempt is not None else 0
        self._seq = 0
        self._skip = self.store.batch_count(self.run_id, unit.index, self._attempt) if attempt is not None else 0
        if attempt is not None and self._skip:
            self._writer.event(self.run_id, "replay", f"unit {unit.index}: replaying {self._skip} stored batch(es)")
        self._writer.start_unit(self.run_id, unit.index, self._attempt)
        self._pulses.start_unit(self.loaded.campaign.steps[unit.step_index].pulse_traces)
        backend.take_pulse_currents()  # pulses applied outside the run's units are not this unit's
        if self.view is not None:
            self.view.unit_started(unit)
        ctx = RoutineContext(sink=self._sink, on_progress=self._progress_cb(unit),
                             on_checkpoint=lambda: self._safe_point(backend),
                             campaign_dir=self._campaign_dir())
        result = await registry.get(unit.routine).function(backend, unit.rows, unit.cols, unit.params, ctx)
        await self._store_pulse_traces()
        pulses = self._pulses.summary(unit.index)
        if pulses is not None:
            self._writer.event(self.run_id, "pulse_traces", pulses)
        summary = _summary_of(result)
        # Committed by the writer behind the unit's batches; the snapshot is taken now, as the unit ends.
        self._writer.finish_unit(self.run_id, unit.index, summary, self._state(backend))
        if self.results is not None:
            self.results.append(result)
        self._done_cells += int(unit.rows.size)
        if self.view is not None:
            self.view.unit_done(unit)
        self._publish_progress(unit, 1.0, force=unit.index == len(self.loaded.units) - 1)
        if unit.chunk_index == unit.n_chunks - 1 and self.telemetry is not None:
            self.measurements += await self._writer.flush()  # the step summary reads the units just finished
            self._publish_step_summary(unit)
        self._unit = None

    async def _sink(self, m: Measurements) -> None:
        await self._store_pulse_traces()  # the pulses before this batch are stored before it
        await self._store(m)

    async def _store_pulse_traces(self) -> None:
        """Store the currents the backend measured during the pulses since the last take (none on
        most backends: then nothing is stored and the clock is not asked)."""
        if self._backend is None or self._unit is None:
            return
        taken = self._backend.take_pulse_currents()
        if not taken.pulses and not taken.lost:
            return
        t = await self._backend.now()
        for batch in self._pulses.batches(taken, t):
            await self._store(batch)

    async def _store(self, m: Measurements) -> None:
        assert self._unit is not None
        seq = self._seq
        self._seq += 1
        if seq < self._skip:
            stored = self.store.load_batch(self.run_id, self._unit.index, self._attempt, seq)
            # Compared as stored: per-cell traces are kept as float32 (docs/store.md).
            if stored is None or not _same_batch(stored, stored_form(m)):
                raise ReplayMismatch(f"resume: unit {self._unit.index} batch {seq} ({m.kind}) differs from the "
                                     "stored one; the backend did not replay deterministically")
        else:
            self.measurements += await self._writer.submit(self.run_id, self._unit.index, self._attempt, seq, m)
            if self.on_batch is not None:
                self.on_batch(m)
        # Yield to the event loop once per batch: an in-process backend never suspends by itself, and an
        # abort (task cancellation) is delivered only where the task suspends.
        await asyncio.sleep(0)

    def _progress_cb(self, unit: Unit) -> Callable[[float, float, str], None]:
        def on_progress(done: float, total: float, message: str) -> None:
            frac = min(max(done / total, 0.0), 1.0) if total > 0 else 0.0
            if self.view is not None:
                self.view.unit_progress(unit, frac, message)
            self._publish_progress(unit, frac)
        return on_progress

    # -- telemetry
    def _start_telemetry(self) -> None:
        if self.telemetry_config is None:
            return
        self.telemetry = Telemetry(self.telemetry_config, self.run_id)
        self.telemetry.start()

    def _status_payload(self, status: str) -> dict[str, Any]:
        c = self.loaded.campaign
        return {"status": status, "campaign": c.campaign.name, "metadata": c.metadata.model_dump(),
                "units": len(self.loaded.units), "measurements": self.measurements,
                "dropped": self.telemetry.dropped if self.telemetry else 0,
                **({"station": self.wafer.status()} if self.wafer is not None else {})}

    def _publish_status(self, status: str) -> None:
        if self.telemetry is not None:
            payload = self._status_payload(status)
            self.telemetry.publish("status", payload, retain=True)
            self.telemetry.publish_station(payload)

    def _publish_progress(self, unit: Unit, frac: float, force: bool = False) -> None:
        if self.telemetry is None:
            return
        done = self._done_cells + (frac * unit.rows.size if frac < 1.0 else 0)
        fraction = done / self._total_cells if self._total_cells else 1.0
        elapsed = time.monotonic() - self._started
        self.telemetry.progress({"fraction": fraction, "unit": unit.index, "units": len(self.loaded.units),
                                 "step": unit.step_name, "step_index": unit.step_index, "unit_fraction": frac,
                                 "measurements": self.measurements,
                                 "eta": elapsed * (1 - fraction) / fraction if fraction > 0 else None},
                                force=force)

    def _publish_step_summary(self, unit: Unit) -> None:
        if self.telemetry is None:
            return
        group = [u for u in self.store.units(self.run_id) if u.group == unit.group]
        sums = [u.summary for u in group if u.summary is not None]
        summary = combine_summaries(sums, [u.n_cells for u in group], unit.routine) if sums else {}
        self.telemetry.publish(f"steps/{unit.step_index}/summary", {
            "step": unit.step_name, "routine": unit.routine, "pass": unit.pass_index, "repeat": unit.repeat_index,
            "sweep": unit.sweep_values, "summary": summary})

    # -- the end
    def _record_failure(self, errors: list[str]) -> None:
        """Last words when the store refused the run's end: the smallest write that marks the run failed
        with its errors (it may fit where the full record did not, e.g. in a full WAL)."""
        try:
            if self._registered():
                self.store.mark_failed(self.run_id, errors)
        except Exception as exc:  # nothing more can be written: the caller still gets the errors
            errors.append(f"store {self.store.path}: the failure could not be recorded ({type(exc).__name__}: {exc})")

    def _finish(self, status: str, errors: list[str]) -> RunResult:
        telemetry_stats = None
        try:
            if not self._registered():
                self._register_unstarted()
            for kind, message in self._ending:
                self.store.event(self.run_id, kind, message)
            self.store.finish_run(self.run_id, status, errors)
        except Exception as exc:  # the store itself failed (disk full, ...): say so, keep what can be kept
            status = "failed"
            errors.append(str(as_store_error(exc, self.store.path) or f"store {self.store.path}: {exc}"))
            self._record_failure(errors)
        if self.telemetry is not None:
            self._publish_status(status)
            telemetry_stats = self.telemetry.close()
            if self._registered():
                self.store.set_telemetry(self.run_id, telemetry_stats)
                if telemetry_stats["dropped"]:
                    self.store.event(self.run_id, "telemetry",
                                     f"{telemetry_stats['dropped']} telemetry message(s) dropped")
        if self.view is not None:
            self.view.end(status)
        return RunResult(self.run_id, status, self.measurements, time.monotonic() - self._started, errors,
                         telemetry_stats)
