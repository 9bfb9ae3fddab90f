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

Gate channel: a second channel of the same unit (4225-PMU channel 2, the B1530A's second WGFMU
channel) may drive the cell's word line in the same execution (``gate=``): the bit line then rests
at 0 V for one edge before and after, while the gate rises to its level, and the gate holds ``vg``
through the pulse and ``vg_read`` through the read, moving only while the bit line is at 0 V (in
the edges and the gap). Both waveforms have the same pieces' durations, so one time base.
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
    def check_gate(self, name: str, level: float) -> None:
        """A gate level this channel may drive, V (finite, within its range and |V| limit)."""
        if not math.isfinite(level):
            raise LimitError(name, level, "a finite gate level")
        if not abs(level) <= self.voltage_range:
            raise LimitError(name, level, f"|V| <= {self.voltage_range:g} V ({self.label} range)")
        if self.limits is not None:
            self.limits.check_voltage(name, level)

    def check_gate_channel(self, gate: PulseMeasureChannel) -> None:
        """``gate`` runs in this channel's executions: another channel of the same unit."""
        if gate is self or gate.instrument is not self.instrument or type(gate) is not type(self):
            raise LimitError("gate", gate.label, f"another pulse channel of {self.instrument.label}")

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

    @staticmethod
    def gated(pieces: list[Piece], held: list[float | None]) -> tuple[list[Piece], list[Piece]]:
        """(bit-line pieces, gate pieces) on one time base: ``pieces`` framed by one 0 V edge each
        side; the gate holds ``held[k]`` through piece k and, where that is None (the bit line at
        0 V), moves from the level before to the level after (0 V at both ends)."""
        rest = Piece(0.0, 0.0, EDGE)
        bit = [rest, *pieces, rest]
        levels: list[float | None] = [None, *held, None]
        gate: list[Piece] = []
        for k, (p, level) in enumerate(zip(bit, levels)):
            if level is not None:
                gate.append(Piece(level, level, p.duration))
                continue
            before = gate[-1].stop if gate else 0.0
            after = next((x for x in levels[k + 1:] if x is not None), 0.0)
            gate.append(Piece(before, after, p.duration))
        return bit, gate

    # -- behaviour --------------------------------------------------------------------------------
    async def pulse(self, voltage: float, width: float, *, gate: PulseMeasureChannel | None = None,
                    vg: float = 0.0) -> PulseTrace:
        """One pulse of ``voltage`` V (either sign) and ``width`` s; the current during it. With a
        ``gate`` channel, the word line is at ``vg`` V through the pulse."""
        self.check_pulse(voltage, width)
        measured = await self._gated_run(self.pulse_pieces(voltage, width), gate, [("vg", vg)] * 3)
        times, currents = measured.traces[0]
        return PulseTrace(voltage, width, times, currents)

    async def read(self, v_read: float, *, gate: PulseMeasureChannel | None = None, vg: float = 0.0) -> float:
        """The cell current at ``v_read`` V (one spot mean over :attr:`read_time`), A; with a
        ``gate`` channel, the word line at ``vg`` V."""
        self.check_read(v_read)
        measured = await self._gated_run(self.read_pieces(v_read), gate, [("vg", vg)] * 3)
        return measured.spots[0]

    async def pulse_and_read(self, voltage: float, width: float, v_read: float, *,
                             gate: PulseMeasureChannel | None = None, vg: float = 0.0,
                             vg_read: float | None = None) -> tuple[PulseTrace, float]:
        """A pulse and the read after it in one execution: (the current during the pulse, the
        read current in A). With a ``gate`` channel the word line is at ``vg`` V through the
        pulse and ``vg_read`` V (default ``vg``) through the read, moving in the gap."""
        self.check_pulse(voltage, width)
        self.check_read(v_read)
        pieces = [*self.pulse_pieces(voltage, width), Piece(0.0, 0.0, GAP), *self.read_pieces(v_read)]
        held = [("vg", vg)] * 3 + [None] + [("vg_read", vg if vg_read is None else vg_read)] * 3
        measured = await self._gated_run(pieces, gate, held)
        times, currents = measured.traces[0]
        return PulseTrace(voltage, width, times, currents), measured.spots[0]

    async def _gated_run(self, pieces: list[Piece], gate: PulseMeasureChannel | None,
                         held: list[tuple[str, float] | None]) -> Measured:
        """``pieces`` alone, or with ``gate`` holding (name, level V) per piece (:meth:`gated`),
        every gate level checked first."""
        if gate is None:
            return await self.run(pieces)
        self.check_gate_channel(gate)
        for item in held:
            if item is not None:
                gate.check_gate(*item)
        return await self.run(*self.gated(pieces, [None if x is None else x[1] for x in held]), gate=gate)

    async def run(self, pieces: list[Piece], gate_pieces: list[Piece] | None = None, *,
                  gate: PulseMeasureChannel | None = None) -> Measured:
        """Run ``pieces`` as one waveform (and ``gate_pieces`` on the ``gate`` channel in the same
        execution); whatever goes wrong (cancellation included) every output involved is switched
        off before the exception propagates."""
        try:
            return await self._run(pieces, None if gate is None else (gate, gate_pieces or []))
        except BaseException:
            for channel in (self, gate):
                if channel is None:
                    continue
                try:
                    await channel.off()
                except Exception:  # noqa: BLE001 - the link may be what failed
                    pass
            raise

    async def _run(self, pieces: list[Piece], gate: tuple[PulseMeasureChannel, list[Piece]] | None) -> Measured:
        raise NotImplementedError

    async def release(self) -> None:
        """Give the output this channel shares with an SMU (its RPM / RSU) back to the SMU, output
        off; the next run takes it again. Models send nothing when it is already released."""
        await self.off()

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
