"""What every source-measure unit channel offers, whatever the model.

Model drivers (Keithley 2450, Keysight B2900) declare the settings ``source_voltage``,
``current_limit``, ``nplc`` and ``output`` with their own SCPI strings and implement
:meth:`SourceMeterChannel.measure_current` and :meth:`SourceMeterChannel._run_sweep`. The safety
rules live here, once: |V| within the terminal limit, a current limit within the terminal limit,
and no output on (and no sweep) before a current limit was set in this session.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import Channel
from .errors import InstrumentError, LimitError

#: Relative tolerance when deciding whether a list of voltages is a linear staircase. Zero: a list
#: goes as the instrument's staircase only when the staircase formula reproduces it bit for bit, so
#: the points applied are exactly the ones asked for (an almost-staircase goes as a list).
STAIRCASE_RTOL = 0.0


@dataclass(frozen=True)
class SweepResult:
    """Per point: the source voltage the instrument reports (V) and the current measured (A)."""

    voltages: np.ndarray
    currents: np.ndarray


def staircase(start: float, stop: float, points: int) -> list[float]:
    """Voltages of a linear staircase from ``start`` to ``stop`` V, ``points`` levels."""
    if points < 2:
        raise LimitError("points", points, "an integer >= 2")
    return [start + (stop - start) * k / (points - 1) for k in range(points)]


def is_staircase(voltages: Sequence[float]) -> bool:
    if len(voltages) < 2:
        return False
    expected = staircase(voltages[0], voltages[-1], len(voltages))
    scale = max(abs(v) for v in voltages) or 1.0
    return all(abs(a - b) <= STAIRCASE_RTOL * scale for a, b in zip(voltages, expected))


class SourceMeterChannel(Channel):
    """Voltage source / current measure channel with the station's safety rules."""

    # Declared by each model: source_voltage, current_limit, nplc, output (Settings).
    #: Most points one sweep may have on this model (None: no limit below the instrument's own).
    max_sweep_points: int | None = None
    source_voltage: Any
    current_limit: Any
    nplc: Any
    output: Any

    def guard(self, setting: str, kind: str, value: Any) -> None:
        lim = self.limits
        if kind == "voltage":
            if lim is not None:
                lim.check_voltage(setting, value)
        elif kind == "compliance":
            if lim is not None:
                lim.check_compliance(setting, value)
        elif kind == "output":
            if value:
                self.require_compliance(setting)
        else:
            super().guard(setting, kind, value)

    def require_compliance(self, field: str) -> None:
        """No output before a current limit was set through this driver (the instrument's own
        default may be far above what a cell survives)."""
        if self.cache.get("current_limit") is None:
            raise LimitError(field, True, f"only after current_limit is set on {self.label}")

    async def measure_current(self) -> float:
        """One current reading at the present source level, A (output must be on)."""
        raise NotImplementedError

    async def off(self) -> None:
        await self.output.set(False)

    async def source(self, voltage: float, current_limit: float) -> None:
        """Configure a DC voltage source with its current limit (output state unchanged)."""
        await self.current_limit.set(current_limit)
        await self.source_voltage.set(voltage)

    async def sweep(self, voltages: Sequence[float], delay: float = 0.0,
                    keep_output: bool = False) -> SweepResult:
        """Apply ``voltages`` (V) in order, holding each ``delay`` s plus the measurement aperture,
        and measure the current at each (A). A linear staircase is sent as the instrument's own
        staircase sweep, anything else as a list sweep. Every point is checked against the
        limits and a current limit must have been set, before anything is sent. The output is
        off afterwards unless ``keep_output``."""
        points = [float(v) for v in voltages]
        if not points:
            raise LimitError("voltages", voltages, "at least one point")
        if self.max_sweep_points is not None and len(points) > self.max_sweep_points:
            raise LimitError("voltages", f"{len(points)} points", f"at most {self.max_sweep_points} on {self.label}")
        for k, v in enumerate(points):
            self.guard(f"voltages[{k}]", "voltage", v)
        if not 0 <= delay <= 1e4:
            raise LimitError("delay", delay, "[0, 10000] s")
        self.require_compliance("sweep")
        try:
            result = await self._run_sweep(points, delay)
        except BaseException:
            # Whatever went wrong (including cancellation) the output must not stay on.
            await self._off_after_failure()
            raise
        if not keep_output:
            await self.off()
        if len(result.currents) != len(points):
            raise InstrumentError(self.label, "sweep", f"{len(result.currents)} readings for {len(points)} points")
        return result

    async def staircase_sweep(self, start: float, stop: float, points: int, delay: float = 0.0,
                              keep_output: bool = False) -> SweepResult:
        """Linear staircase from ``start`` to ``stop`` V in ``points`` steps; see :meth:`sweep`."""
        return await self.sweep(staircase(start, stop, points), delay, keep_output)

    async def _off_after_failure(self) -> None:
        try:
            await self.off()
        except Exception:  # noqa: BLE001 - the link may be the thing that failed
            pass

    async def _run_sweep(self, points: list[float], delay: float) -> SweepResult:
        raise NotImplementedError
