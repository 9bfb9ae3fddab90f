"""What every pulse-and-measure channel offers (Keithley 4225-PMU channel, Keysight B1530A WGFMU
channel), whatever the model: one output that applies a programming pulse, samples the current
during it, and reads the cell after it, with no switch in between.

A model builds one waveform from :class:`Piece` objects (start and stop voltage over a duration)
with measurement windows, runs it and returns the samples (:meth:`PulseMeasureChannel._run`). The
shapes and the safety rules live here, once: every level within the terminal's |V| limit, the
pulse width within the width limits, the pulse energy within the maximum, the read level within
the read limit, all checked before anything is sent.

The waveforms (edges :data:`EDGE` s; a 0 V gap of :data:`GAP` s between pulse and read)::

    pulse           0 -> v (edge), v for width (sampled), v -> 0 (edge)
    read            0 -> v_read (edge), v_read for read_time (one spot mean), v_read -> 0 (edge)
    pulse_and_read  pulse, gap, read, in one execution
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .base import Channel
from .errors import LimitError

#: Rise and fall time of every pulse and read, s (the 4225-PMU's shortest segment is 20 ns).
EDGE = 20e-9
#: 0 V between the end of a pulse and the start of the read that follows it, s.
GAP = 1e-6
#: Samples of the current during a pulse (the sample rate follows from the width).
TRACE_POINTS = 25


@dataclass(frozen=True)
class Piece:
    """One piece of a waveform: ``start`` to ``stop`` V over ``duration`` s; ``measure`` is
    "none", "spot" (one mean over the piece) or "trace" (samples across it)."""

    start: float
    stop: float
    duration: float
    measure: str = "none"


@dataclass(frozen=True)
class PulseTrace:
    """The current during one pulse: ``times`` s from the start of the pulse top, ``currents`` A,
    at ``voltage`` V for ``width`` s."""

    voltage: float
    width: float
    times: np.ndarray
    currents: np.ndarray


@dataclass(frozen=True)
class Measured:
    """What one waveform measured: per "trace" piece (times s from the piece start, currents A),
    per "spot" piece one mean current, A; in waveform order."""

    traces: list[tuple[np.ndarray, np.ndarray]]
    spots: list[float]


class PulseMeasureChannel(Channel):
    """A pulse-and-measure output with the station's safety rules."""

    #: Levels the output can force, V (its range), and the shortest and longest flat piece, s.
    voltage_range: ClassVar[float] = 10.0
    min_width: ClassVar[float] = 20e-9
    max_width: ClassVar[float] = 1.0
    #: How long a read holds its level, s.
    read_time: float = 10e-6

    # -- checks -----------------------------------------------------------------------------------
    def check_pulse(self, voltage: float, width: float) -> None:
        """Every check a pulse makes, without I/O; LimitError names the argument."""
        if not math.isfinite(voltage) or voltage == 0.0:
            raise LimitError("voltage", voltage, "a finite non-zero pulse level")
        if not abs(voltage) <= self.voltage_range:
            raise LimitError("voltage", voltage, f"|V| <= {self.voltage_range:g} V ({self.label} range)")
        if not (math.isfinite(width) and self.min_width <= width <= self.max_width):
            raise LimitError("width", width, f"[{self.min_width:g}, {self.max_width:g}] s ({self.label})")
        if self.limits is not None:
            self.limits.check_voltage("voltage", voltage)
            self.limits.check_width("width", width)
            self.limits.check_energy("voltage", voltage, voltage, width)

    def check_read(self, v_read: float) -> None:
        if not math.isfinite(v_read) or v_read == 0.0:
            raise LimitError("v_read", v_read, "a finite non-zero read level")
        if not abs(v_read) <= self.voltage_range:
            raise LimitError("v_read", v_read, f"|V| <= {self.voltage_range:g} V ({self.label} range)")
        if self.limits is not None:
            self.limits.check_read_voltage("v_read", v_read)

    def guard(self, setting: str, kind: str, value: object) -> None:
        if kind == "voltage" and self.limits is not None:
            self.limits.check_voltage(setting, value)  # type: ignore[arg-type]
        else:
            super().guard(setting, kind, value)

    # -- shapes -----------------------------------------------------------------------------------
    @staticmethod
    def pulse_pieces(voltage: float, width: float) -> list[Piece]:
        return [Piece(0.0, voltage, EDGE), Piece(voltage, voltage, width, "trace"), Piece(voltage, 0.0, EDGE)]

    def read_pieces(self, v_read: float) -> list[Piece]:
        return [Piece(0.0, v_read, EDGE), Piece(v_read, v_read, self.read_time, "spot"), Piece(v_read, 0.0, EDGE)]

    # -- behaviour --------------------------------------------------------------------------------
    async def pulse(self, voltage: float, width: float) -> PulseTrace:
        """One pulse of ``voltage`` V (either sign) and ``width`` s; the current during it."""
        self.check_pulse(voltage, width)
        measured = await self.run(self.pulse_pieces(voltage, width))
        times, currents = measured.traces[0]
        return PulseTrace(voltage, width, times, currents)

    async def read(self, v_read: float) -> float:
        """The cell current at ``v_read`` V (one spot mean over :attr:`read_time`), A."""
        self.check_read(v_read)
        measured = await self.run(self.read_pieces(v_read))
        return measured.spots[0]

    async def pulse_and_read(self, voltage: float, width: float, v_read: float) -> tuple[PulseTrace, float]:
        """A pulse and the read after it in one execution: (the current during the pulse, the
        read current in A)."""
        self.check_pulse(voltage, width)
        self.check_read(v_read)
        pieces = [*self.pulse_pieces(voltage, width), Piece(0.0, 0.0, GAP), *self.read_pieces(v_read)]
        measured = await self.run(pieces)
        times, currents = measured.traces[0]
        return PulseTrace(voltage, width, times, currents), measured.spots[0]

    async def run(self, pieces: list[Piece]) -> Measured:
        """Run ``pieces`` as one waveform; whatever goes wrong (cancellation included) the output
        is switched off before the exception propagates."""
        try:
            return await self._run(pieces)
        except BaseException:
            try:
                await self.off()
            except Exception:  # noqa: BLE001 - the link may be what failed
                pass
            raise

    async def _run(self, pieces: list[Piece]) -> Measured:
        raise NotImplementedError

    @staticmethod
    def sample_rate(pieces: list[Piece], low: float, high: float, current: float | None = None) -> float:
        """A sample rate (S/s, within [low, high]) giving :data:`TRACE_POINTS` samples on the
        shortest traced piece; a waveform with no trace keeps ``current`` (no reprogramming
        between a pulse and its read) or gets TRACE_POINTS on its shortest measured piece."""
        traced = [p.duration for p in pieces if p.measure == "trace"]
        if not traced:
            if current is not None:
                return current
            traced = [p.duration for p in pieces if p.measure != "none"] or [min(p.duration for p in pieces)]
        return min(max(TRACE_POINTS / min(traced), low), high)
