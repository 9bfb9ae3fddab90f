"""Temperature steps, usable anywhere in a campaign: `set_temperature`, `wait_settled` and `bake`.

They act on the chuck through the backend's thermal controller (`ArrayBackend.thermal_controller()`:
the in-process emulator's own chuck, or the controller a station file names in [thermal]); a backend
without one fails the step with an error naming it. Temperatures are K (campaign files may write
"85 °C", "85 degC" or "358.15 K"), ramp rates K/s ("2 K/min"), times s. Set-points are held against
the campaign's [limits] (min_temperature, max_temperature, max_ramp_rate) before the run and against
the controller's limits, tightened by them, when the step runs. When a run that has these steps is
aborted or fails, the runner returns the set-point to room temperature (ThermalController.safe).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from pydantic import Field, field_validator, model_validator

from labctl.backends.base import ArrayBackend
from labctl.core.temperature import celsius
from labctl.instruments.thermal import ThermalController, ThermalError
from labctl.routines.base import RoutineContext
from labctl.routines.cells import wait_until
from labctl.routines.params import RoutineParams, cell_arrays
from labctl.routines.results import RoutineResult, nanstat

#: Widest settling band accepted, K: a band is a temperature difference, not a temperature.
MAX_BAND = 50.0


def controller(backend: ArrayBackend, step: str) -> ThermalController:
    """The backend's thermal controller; ThermalError naming `step` when it has none."""
    found = backend.thermal_controller()
    if found is None:
        raise ThermalError(f"{step}: the {backend.info.kind} backend has no thermal controller (a station "
                           "file names one in [thermal]; the in-process emulator has its own chuck)")
    return found


class ThermalParams(RoutineParams):
    """Base of the temperature steps: they act on the shared chuck, so never in chunks."""

    chunkable = False
    #: Marks a step that drives the chuck: the runner returns it to a safe set-point on abort or failure.
    thermal: ClassVar[bool] = True
    #: Set-points (K) and ramp rates (K/s) held against the campaign's temperature limits.
    temperature_fields: ClassVar[tuple[str, ...]] = ()
    ramp_fields: ClassVar[tuple[str, ...]] = ()


class SettleFields(ThermalParams):
    """The settling rule: every reading over `hold` s within ±`band` K of the set-point."""

    band: float = Field(0.5, gt=0, le=MAX_BAND, json_schema_extra={"unit": "K"},
                        description="half-width of the settling band, K (a difference)")
    hold: float = Field(60.0, ge=0, json_schema_extra={"unit": "s"}, description="time inside the band, s")
    timeout: float = Field(3600.0, gt=0, json_schema_extra={"unit": "s"}, description="give up after, s")
    poll: float = Field(1.0, gt=0, json_schema_extra={"unit": "s"}, description="between readings, s")


class SetTemperatureParams(ThermalParams):
    """A new chuck set-point, reached at `ramp_rate` (None: as fast as the controller goes)."""

    temperature: float = Field(gt=0, json_schema_extra={"unit": "K"}, description="set-point, K")
    ramp_rate: float | None = Field(None, gt=0, json_schema_extra={"unit": "K/s"}, description="ramp, K/s")

    temperature_fields = ("temperature",)
    ramp_fields = ("ramp_rate",)


class WaitSettledParams(SettleFields):
    """Wait until the chuck has settled at its set-point."""


class BakeParams(SettleFields):
    """Hold the chuck at `temperature` for `duration` s (after settling), reading the step's cells at
    `read_times` s after the hold began."""

    temperature: float = Field(gt=0, json_schema_extra={"unit": "K"}, description="bake temperature, K")
    duration: float = Field(gt=0, json_schema_extra={"unit": "s"}, description="hold time, s")
    ramp_rate: float | None = Field(None, gt=0, json_schema_extra={"unit": "K/s"}, description="ramp, K/s")
    settle: bool = Field(True, description="wait until settled before the hold starts")
    read_times: list[float] = Field(default_factory=list, json_schema_extra={"unit": "s"},
                                    description="reads during the hold, s after its start (rising)")
    v_read: float = Field(0.2, allow_inf_nan=False, description="read bias, V (REF 0.2 V)")
    vg_read: float = Field(3.3, ge=0, description="gate during the reads, V (REF 3.3 V)")

    voltage_fields = ("v_read",)
    gate_fields = ("vg_read",)
    temperature_fields = ("temperature",)
    ramp_fields = ("ramp_rate",)

    @field_validator("read_times")
    @classmethod
    def _rising(cls, t: list[float]) -> list[float]:
        a = np.asarray(t, dtype=np.float64)
        if a.size and (not np.all(np.isfinite(a)) or a.min() < 0 or np.any(np.diff(a) <= 0)):
            raise ValueError(f"must be finite, >= 0 s and strictly rising, got {t}")
        return t

    @model_validator(mode="after")
    def _within_duration(self) -> BakeParams:
        if self.read_times and self.read_times[-1] > self.duration:
            raise ValueError(f"read_times: the last read ({self.read_times[-1]:g} s) is after the end of the "
                             f"hold (duration = {self.duration:g} s)")
        return self


@dataclass(frozen=True)
class ThermalResult(RoutineResult):
    """Where the chuck is after a temperature step: set-point and reading, K; the step's time, s."""

    set_point: float
    temperature: float
    elapsed: float

    def summary(self) -> dict[str, float | int | bool | str | None]:
        return {"set_point_K": self.set_point, "temperature_K": self.temperature,
                "temperature_C": celsius(self.temperature), "elapsed_s": self.elapsed}


@dataclass(frozen=True)
class BakeResult(ThermalResult):
    """A bake, with the reads taken during the hold: g shape (n_cells, n_reads), S."""

    rows: np.ndarray
    cols: np.ndarray
    g: np.ndarray

    def summary(self) -> dict[str, float | int | bool | str | None]:
        out = super().summary()
        out.update(cells=int(self.rows.size), reads=int(self.g.shape[1]) if self.g.ndim == 2 else 0,
                   g_mean_last_S=nanstat(np.mean, self.g[:, -1]) if self.g.size else None)
        return out


async def _result(ctrl: ThermalController, backend: ArrayBackend, t0: float) -> ThermalResult:
    return ThermalResult(await ctrl.set_point(), await ctrl.temperature(), await backend.now() - t0)


async def set_temperature(backend: ArrayBackend, rows: object, cols: object, params: SetTemperatureParams,
                          ctx: RoutineContext | None = None) -> ThermalResult:
    """Give the chuck a new set-point (K), ramped at `ramp_rate` K/s if given; does not wait for it."""
    ctx = ctx or RoutineContext()
    ctrl = controller(backend, "set_temperature")
    t0 = await backend.now()
    await ctrl.set_temperature(params.temperature, params.ramp_rate)
    ctx.progress(1, 1, f"set-point {params.temperature:.2f} K ({celsius(params.temperature):.1f} °C)")
    return await _result(ctrl, backend, t0)


async def wait_settled(backend: ArrayBackend, rows: object, cols: object, params: WaitSettledParams,
                       ctx: RoutineContext | None = None) -> ThermalResult:
    """Wait until every reading over `hold` s lies within ±`band` K of the set-point (ThermalError
    after `timeout` s)."""
    ctx = ctx or RoutineContext()
    ctrl = controller(backend, "wait_settled")
    t0 = await backend.now()
    await ctrl.wait_settled(params.band, params.hold, params.timeout, params.poll)
    ctx.progress(1, 1, "settled")
    return await _result(ctrl, backend, t0)


async def bake(backend: ArrayBackend, rows: object, cols: object, params: BakeParams,
               ctx: RoutineContext | None = None) -> BakeResult:
    """Bake: set-point `temperature`, settle (unless `settle` is false), hold `duration` s reading the
    listed cells at each of `read_times` after the hold began; emits one "bake" batch per read
    (g S, temperature K, elapsed s since the hold began). Leaves the chuck at the bake temperature:
    a campaign cools it with set_temperature and wait_settled."""
    p = params
    ctx = ctx or RoutineContext()
    ctrl = controller(backend, "bake")
    p.check_limits(backend.limits)
    r, c = cell_arrays(backend, rows, cols)
    start = await backend.now()
    await ctrl.set_temperature(p.temperature, p.ramp_rate)
    if p.settle:
        await ctrl.wait_settled(p.band, p.hold, p.timeout, p.poll)
    await ctx.checkpoint()
    t0 = await backend.now()
    g = np.empty((r.size, len(p.read_times)))
    for k, t in enumerate(p.read_times):
        await wait_until(backend, t0, t, ctx)
        g[:, k] = await backend.read(r, c, p.v_read, p.vg_read)
        now = await backend.now()
        kelvin = await ctrl.temperature()
        await ctx.emit("bake", r, c, now, g=g[:, k], temperature=np.full(r.size, kelvin),
                       elapsed=np.full(r.size, now - t0))
        ctx.progress(k + 1, len(p.read_times) + 1, f"read at {t:g} s of {p.duration:g} s")
    await wait_until(backend, t0, p.duration, ctx)
    ctx.progress(1, 1, "bake done")
    return BakeResult(await ctrl.set_point(), await ctrl.temperature(), await backend.now() - start, r, c, g)
