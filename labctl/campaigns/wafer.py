"""The probe station side of a wafer campaign ([wafer], docs/campaigns.md "Wafers"): the prober (a real
one at its VISA address, or the emulated one this module serves on loopback TCP over an emulated
wafer), die transitions, the contact check, the dies' records, re-alignment on resume, and the safe end
(chuck separated; on abort or failure the chuck's set-point back to a safe temperature).

The runner calls, per unit of work, `enter(unit)` (True: the unit's die is under the probes and passed
its contact check; False: the die was skipped) and `unit_done(unit)`; `close(status)` at the end.
"""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from labctl.backends.base import ArrayBackend
from labctl.campaigns import dies as die_plan
from labctl.campaigns.plan import LoadedCampaign, Unit
from labctl.campaigns.problems import CampaignError
from labctl.campaigns.schema import WaferSpec
from labctl.campaigns.writer import BatchWriter

if TYPE_CHECKING:  # the drivers (pyvisa) load only when a wafer campaign runs
    from labctl.instruments import Prober
    from labctl.instruments.thermal import ThermalController

log = logging.getLogger(__name__)


class WaferError(RuntimeError):
    """The prober failed while stepping to, contacting or leaving a die (the message names the die)."""


def contact_cells(rows: int, cols: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` cells spread evenly over a rows x cols die (row-major positions, first and last included)."""
    flat = np.unique(np.linspace(0, rows * cols - 1, min(n, rows * cols)).round().astype(np.int64))
    return flat // cols, flat % cols


class WaferSession:
    """One wafer campaign's prober and dies. `emulated_backend`: the backend measuring the emulated
    wafer's contacted die (None for a real prober: the campaign's [backend] measures whatever is under
    the probes)."""

    def __init__(self, spec: WaferSpec, loaded: LoadedCampaign) -> None:
        self.spec = spec
        self.loaded = loaded
        self.wafer: Any = None
        self.server: Any = None
        self.emulated_backend: ArrayBackend | None = None
        if spec.is_emulated:
            self._make_emulated()
        self.prober: Prober | None = None
        self.thermal: ThermalController | None = None
        self.current: int | None = None  # die index under the probes, checked
        self.entering: int | None = None  # die index being stepped to and checked
        self.skipped: set[int] = set()
        self.touchdowns: dict[int, int] = {}
        self._resume: tuple[int | None, bytes | None] | None = None  # (die of the last unit done, its state)
        self._backend: ArrayBackend | None = None
        self._store: Any = None
        self._writer: BatchWriter | None = None
        self._run_id = ""
        self._state: Any = None  # () -> bytes | None: the backend state now
        self._restore: Any = None  # (bytes) -> None

    def _make_emulated(self) -> None:
        from emulator.wafer import Wafer, WaferVariation

        from labctl.backends.emulator import EmulatorBackend

        c = self.loaded.campaign
        e = self.spec.emulated
        self.wafer = Wafer(e.columns, e.rows, c.backend.rows, c.backend.cols, seed=c.backend.seed,
                           preset=c.backend.preset, round_wafer=e.round, variation=WaferVariation(**e.variation))
        for column, row, n in e.contact_faults:
            self.wafer.contact_faults[self.wafer.die_index((column, row))] = n
        self.emulated_backend = EmulatorBackend(array=self.wafer.probes)

    # -- setup
    async def open(self, backend: ArrayBackend) -> LoadedCampaign:
        """Connect the prober (serving the emulated one first); returns the plan, with the dies of a real
        prober's map if the campaign asked for them. Raises CampaignError for dies not on its map."""
        from labctl.instruments import PROBERS

        self._backend = backend
        address = self.spec.address
        if self.spec.is_emulated:
            from emulator.instruments import prober_server

            self.server = prober_server(self.wafer, self.spec.prober)
            await self.server.start()
            address = self.server.resource
        self.prober = PROBERS[self.spec.prober](address, name=f"prober ({self.spec.prober})", timeout=self.spec.timeout)
        await self.prober.open()
        sleep = backend.wait if backend.info.virtual_clock else None
        self.thermal = self.prober.chuck(sleep=sleep)
        if not self.spec.is_emulated:
            prober_map = [(d.column, d.row) for d in await self.prober.die_map()]
            if self.loaded.dies is None:
                self.loaded = self.loaded.with_dies(prober_map)
            else:
                problems = die_plan.check_dies(self.loaded.dies, prober_map, ("wafer", "dies"), {}, "the campaign")
                if problems:
                    raise CampaignError(problems, self.loaded.source)
        await self.prober.separate()
        return self.loaded

    def attach(self, store: Any, writer: BatchWriter, run_id: str, state: Any, restore: Any) -> None:
        """Where the dies are recorded, and how to take and restore the backend's state."""
        self._store, self._writer, self._run_id = store, writer, run_id
        self._state, self._restore = state, restore
        store.create_dies(run_id, self.die_rows())
        dies = store.dies(run_id)
        self.skipped = {d.die_index for d in dies if d.status == "skipped"}
        self.touchdowns = {d.die_index: d.touchdowns for d in dies}
        # A process killed after a die's last unit was committed but before the die was: record it done now.
        units = store.units(run_id)
        for d in dies:
            if d.status not in ("done", "skipped") and all(u.status == "done" for u in units[d.first_unit:d.last_unit + 1]):
                store.update_die(run_id, d.die_index, "done", None, None, None, self._die_summary(d.die_index))

    def die_rows(self) -> list[tuple[int, int, int, int, int]]:
        """(die_index, column, row, first_unit, last_unit) of every die."""
        assert self.loaded.dies is not None
        span: dict[int, list[int]] = {}
        for u in self.loaded.units:
            if u.die is not None:
                span.setdefault(u.die, []).append(u.index)
        return [(k, c, r, min(span[k]), max(span[k])) for k, (c, r) in enumerate(self.loaded.dies)]

    def resume_from(self, after_unit: int, state: bytes | None) -> None:
        """A resumed run: the state saved after unit `after_unit` is restored by `enter` (not before, so
        that re-aligning the prober cannot change what the restored die measures)."""
        die = self.loaded.units[after_unit].die if after_unit >= 0 else None
        self._resume = (die, state)

    # -- per unit
    def label(self, k: int) -> str:
        assert self.loaded.dies is not None
        c, r = self.loaded.dies[k]
        return f"die {k} ({c}, {r})"

    async def enter(self, unit: Unit) -> bool:
        """Bring the unit's die under the probes (checked); False if the die is skipped."""
        resume, self._resume = self._resume, None
        if resume is not None:
            die, state = resume
            if die is not None and die == unit.die and die not in self.skipped:
                # Mid-die: re-align and check, then return to the state saved after the last unit done.
                ok = await self._transition(unit.die)
                if ok and state is not None:
                    self._restore(state)
                return ok
            if state is not None:
                self._restore(state)
        if unit.die is None:
            if self.current is not None:
                await self._guarded(self.current, "separating", self._prober().separate())
                self.current = None
            return True
        if unit.die in self.skipped:
            return False
        if unit.die == self.current:
            return True
        return await self._transition(unit.die)

    def _prober(self) -> Prober:
        assert self.prober is not None
        return self.prober

    async def _guarded(self, k: int, doing: str, op: Any) -> Any:
        try:
            return await op
        except Exception as exc:
            raise WaferError(f"{self.label(k)}: prober failed while {doing}: {exc}") from exc

    async def _transition(self, k: int) -> bool:
        """Separate, step to die k, touch down and check (with retries); skip the die if it never passes."""
        assert self.loaded.dies is not None and self._writer is not None
        prober = self._prober()
        self.current = None
        self.entering = k
        self._writer.call("update_die", self._run_id, k, "measuring")
        from labctl.instruments import DieIndex

        column, row = self.loaded.dies[k]
        await self._guarded(k, "separating", prober.separate())
        at = await self._guarded(k, "stepping to it", prober.step_to_die(DieIndex(column, row)))
        if (at.column, at.row) != (column, row):
            raise WaferError(f"{self.label(k)}: the prober stepped to ({at.column}, {at.row}) instead")
        check = self.spec.contact_check
        median = float("nan")
        for attempt in range(check.retries + 1):
            await self._guarded(k, "moving to contact", prober.contact())
            self.touchdowns[k] = self.touchdowns.get(k, 0) + 1
            median = await self._contact_reading()
            if median >= check.threshold:
                self._writer.call("update_die", self._run_id, k, "measuring", self.touchdowns[k], median)
                self._writer.event(self._run_id, "contact", f"{self.label(k)}: contact (median {median:.3g} S,"
                                                            f" touchdown {attempt + 1})")
                self.current, self.entering = k, None
                return True
            self._writer.event(self._run_id, "contact", f"{self.label(k)}: no contact (median {median:.3g} S <"
                                                        f" {check.threshold:g} S, touchdown {attempt + 1})")
            await self._guarded(k, "separating", prober.separate())
        await self._skip(k, median)
        self.entering = None
        return False

    async def _contact_reading(self) -> float:
        assert self._backend is not None
        c = self.loaded.campaign
        rows, cols = contact_cells(c.backend.rows, c.backend.cols, self.spec.contact_check.cells)
        g = await self._backend.read(rows, cols, self.spec.contact_check.v_read, self.spec.contact_check.vg_read)
        await self._backend.outputs_off()
        return float(np.median(np.asarray(g, dtype=np.float64)))

    async def _skip(self, k: int, median: float) -> None:
        assert self._writer is not None
        self.skipped.add(k)
        message = (f"skipped: no contact after {self.spec.contact_check.retries + 1} touchdown(s) (median"
                   f" {median:.3g} S < {self.spec.contact_check.threshold:g} S)")
        units = [u.index for u in self.loaded.units if u.die == k]
        self._writer.call("skip_die", self._run_id, k, self.touchdowns.get(k, 0), median, message, units,
                          self._state())
        self._writer.event(self._run_id, "die", f"{self.label(k)} {message}")

    async def unit_done(self, unit: Unit) -> int:
        """After a unit: once a die's last unit is done, record the die done with its per-step summaries.
        Returns the measurements committed meanwhile (the batches waited for)."""
        if unit.die is None or unit.index != self._last_unit(unit.die):
            return 0
        assert self._writer is not None
        written = await self._writer.flush()  # the summaries read below are the units just committed
        self._writer.call("update_die", self._run_id, unit.die, "done", None, None, None, self._die_summary(unit.die))
        return written

    def _die_summary(self, k: int) -> dict[str, Any]:
        """Die k's summary: each step's units on the die combined by the run's own rule
        (runner.step_summaries: "<step>" what the step left, "<step>[k]" per sweep point)."""
        from labctl.campaigns.runner import step_summaries

        first, last = self._span(k)
        return step_summaries(self._store.units(self._run_id, first, last))

    def _span(self, k: int) -> tuple[int, int]:
        """(first, last) unit index of die k."""
        if not hasattr(self, "_spans"):
            self._spans = {d[0]: (d[3], d[4]) for d in self.die_rows()}
        return self._spans[k]

    def _last_unit(self, k: int) -> int:
        return self._span(k)[1]

    # -- the end
    async def close(self, status: str, failed_die: int | None) -> list[tuple[str, str, bool]]:
        """Separate the chuck; on abort or failure the chuck's set-point back to a safe temperature; close
        the prober. Returns (event kind, message, failed?) of each; never raises."""
        out: list[tuple[str, str, bool]] = []
        if failed_die is not None and self._writer is not None and status != "complete":
            self._writer.call("update_die", self._run_id, failed_die, "failed" if status == "failed" else "measuring",
                              None, None, f"run {status} while measuring this die")
        if self.prober is not None:
            steps: list[tuple[str, Any, str]] = [("separate", self.prober.separate, "chuck separated")]
            if status != "complete" and self.thermal is not None:
                steps.append(("thermal_safe", self.thermal.safe, "chuck set-point returned to a safe temperature"))
            for kind, action, done in steps:
                try:
                    await action()
                    out.append((kind, done, False))
                except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001 -- recorded, the next still tried
                    if isinstance(exc, asyncio.CancelledError):
                        task = asyncio.current_task()
                        if task is not None:
                            task.uncancel()
                    out.append((kind, f"{kind} failed: {type(exc).__name__}: {exc}", True))
            try:
                await self.prober.close()
            except Exception as exc:  # noqa: BLE001
                out.append(("close", f"prober close failed: {exc}", True))
        if self.server is not None:
            await self.server.stop()
        return out

    def status(self) -> dict[str, Any]:
        """What the TUI's status bar and the telemetry show: prober, die and chuck temperature (K)."""
        out: dict[str, Any] = {"prober": self.spec.prober + (" (emulated)" if self.spec.is_emulated else "")}
        if self.current is not None and self.loaded.dies is not None:
            out["die"] = list(self.loaded.dies[self.current])
        if self.wafer is not None:
            out["temperature_K"] = self.wafer.chuck.temperature
        return out
