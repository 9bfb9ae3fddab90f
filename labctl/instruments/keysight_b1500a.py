"""Keysight B1500A semiconductor device analyzer: FLEX commands (B1500 Programming Guide) for its
SMUs and the B1525A SPGU, and the B1530A WGFMU through Keysight's WGFMU library
(:mod:`labctl.instruments.wgfmu`).

Channels are FLEX channel numbers: SMUs by slot (1, 2, ...), SPGU outputs 301/302 (slot 3), WGFMU
channels 401/402 (slot 4). FLEX specifics this driver follows:

- ``CN <ch>`` connects (enables) a channel, ``CL <ch>`` disconnects it (0 V, relay open);
  ``DV <ch>,<range>,<V>,<Icomp>`` forces a voltage with its current compliance;
- ``MM 1,<ch>`` (spot) or ``MM 2,<ch>`` (staircase sweep, ``WV``/``WT``) then ``XE`` executes and
  returns the data, in the format ``FMT 2`` chooses (ASCII, no header);
- ``AIT 0,3,<s>``: integration time of the high-speed ADC in seconds;
- errors: ``ERR?`` returns and clears up to four codes (``0`` when none), ``EMG? <code>`` its text;
- SPGU: ``SIM 0`` (PG mode), ``SPM <ch>,1`` (2-level pulse), ``SPT``, ``SPV``, ``SPPER``, ``SPRM 1,<n>``
  (count mode), ``SER <ch>,<load>``, ``ODSW <ch>,0`` (pulse switch off), ``SRP`` start, ``SPST?`` status.
"""
from __future__ import annotations

import asyncio
import re
from typing import Any

import numpy as np

from labctl.core.limits import SafetyLimits

from .base import Instrument, channel_limits
from .errors import InstrumentError, LimitError
from .pulse import PulseGeneratorChannel
from .pulse_measure import TRACE_POINTS, Measured, Piece, PulseMeasureChannel
from .settings import Setting, boolean, in_range, integer_in_range, num
from .smu import SourceMeterChannel, SweepResult, staircase
from .wgfmu import (
    WGFMU_MEASURE_CURRENT_RANGE_10MA,
    WGFMU_MEASURE_EVENT_DATA_AVERAGED,
    WGFMU_MEASURE_MODE_CURRENT,
    WGFMU_OPERATION_MODE_FASTIV,
    WGFMULibrary,
    check,
    open_library,
)

SMU_SLOTS = (1, 2)
SPGU_CHANNELS = (301,)
WGFMU_CHANNELS = (401, 402)
#: Mains frequency the ADC's PLC numbers refer to, Hz (the emulator's; see docs/instruments.md).
LINE_FREQUENCY = 50.0
#: The SPGU's output impedance, ohm: into a load it was not told about its level changes by
#: (load + 50) / load, which the driver corrects for.
SPGU_SOURCE_RESISTANCE = 50.0
#: Load the SPGU is told (SER), ohm: its largest setting, the closest to the cell's high impedance.
SPGU_LOAD = 1e6


def _dv(channel: Any, level: float | None = None, compliance: float | None = None) -> str | None:
    cache = channel.cache
    if not cache.get("output"):
        return None
    level = cache.get("source_voltage", 0.0) if level is None else level
    compliance = cache.get("current_limit") if compliance is None else compliance
    return f"DV {channel.number},0,{num(level)},{num(compliance)}"


#: A list whose levels lie within this of a linear staircase goes as the staircase, V.
STAIRCASE_TOLERANCE = 1e-9


def _near_staircase(points: list[float]) -> bool:
    if len(points) < 2:
        return False
    exact = staircase(points[0], points[-1], len(points))
    return all(abs(a - b) <= STAIRCASE_TOLERANCE for a, b in zip(points, exact))


class KeysightB1500ASMUChannel(SourceMeterChannel):
    """One B1500A SMU (e.g. B1511B MPSMU), voltage source and current measure."""

    source_voltage = Setting("Voltage output, V (100 V range).", validator=in_range(-100.0, 100.0, "V"),
                             guard="voltage", command_for=lambda ch, v: _dv(ch, level=v))
    current_limit = Setting("Current compliance, A (1 pA .. 100 mA).", validator=in_range(1e-12, 0.1, "A"),
                            guard="compliance", command_for=lambda ch, v: _dv(ch, compliance=v))
    nplc = Setting(
        "Integration time of the high-speed ADC, power-line cycles at 50 Hz (AIT 0,3,<s>; every SMU).",
        validator=in_range(1e-4, 1.0), command_for=lambda ch, v: f"AIT 0,3,{num(v / LINE_FREQUENCY)}",
    )
    output = Setting(
        "Connected and forcing the cached level (CN then DV), or disconnected (CL).",
        validator=boolean, guard="output",
        command_for=lambda ch, v: f"CN {ch.number};DV {ch.number},0,{num(ch.cache.get('source_voltage', 0.0))},"
        f"{num(ch.cache['current_limit'])}" if v else f"CL {ch.number}",
    )

    async def measure_current(self) -> float:
        """Spot measurement (``MM 1,<ch>``, ``XE``), A."""
        if not self.cache.get("output"):
            raise RuntimeError(f"{self.label}: turn the output on before measuring")
        inst: KeysightB1500A = self.instrument  # type: ignore[assignment]
        if inst.cache.get("mm") != (1, self.number):
            await inst.configure(f"MM 1,{self.number}")
            inst.cache["mm"] = (1, self.number)
        values = await inst.data("XE")
        return float(values[0])

    async def _run_sweep(self, points: list[float], delay: float) -> SweepResult:
        """A staircase (``WV``, one execution: the instrument computes its levels, which may differ
        from a requested list by rounding, :data:`STAIRCASE_TOLERANCE`); any other list point by
        point, each a one-step staircase (this driver uses no list sweep)."""
        n, limit = self.number, self.cache["current_limit"]
        inst: KeysightB1500A = self.instrument  # type: ignore[assignment]
        await inst.configure(f"CN {n};MM 2,{n};WT 0,{num(delay)}")
        self.cache["output"] = True  # XE forces the sweep on the connected channel
        inst.cache["mm"] = (2, n)
        nplc = self.cache.get("nplc") or 1.0
        timeout = inst.link.timeout + 2 * len(points) * (delay + nplc / LINE_FREQUENCY)
        steps = [points] if _near_staircase(points) else [[v] for v in points]
        currents: list[float] = []
        for part in steps:
            await inst.configure(f"WV {n},1,0,{num(part[0])},{num(part[-1])},{len(part)},{num(limit)}")
            currents += (await inst.data("XE", timeout)).tolist()
        return SweepResult(voltages=np.array(points), currents=np.array(currents))


class KeysightB1500ASPGUChannel(PulseGeneratorChannel):
    """One B1525A SPGU output as a pulse generator: 2-level pulses on a 0 V base, bursts of a
    counted number of pulses (``SPRM 1,<count>``), started by ``SRP``."""

    width = Setting("Pulse width, s (10 ns .. 10 s).", validator=in_range(1e-8, 10.0, "s"), guard="width",
                    command_for=lambda ch, v: f"SPT {ch.number},1,0,{num(v)},2e-08")
    period = Setting("Pulse period, s (20 ns .. 10 s).", validator=in_range(2e-8, 10.0, "s"),
                     command_for=lambda ch, v: f"SPPER {num(v)}")
    burst_count = Setting("Pulses per start (count mode).", validator=integer_in_range(1, 1_000_000),
                          command_for=lambda ch, v: f"SPRM 1,{v}")
    output = Setting("Output connected (CN) or disconnected (CL).", validator=boolean, guard="output",
                     command_for=lambda ch, v: f"CN {ch.number}" if v else f"SPP;CL {ch.number}")

    def require_shape(self, field: str) -> None:
        missing = [k for k in ("peak", "width") if self.cache.get(k) is None]
        if missing:
            raise LimitError(field, True, f"only after {', '.join(missing)} set on {self.label}")

    def _largest_level(self) -> float:
        return abs(self.cache.get("peak") or 0.0)

    async def setup_pulse(self, voltage: float, width: float, period: float, count: int = 1) -> None:
        """``count`` pulses of ``voltage`` V on a 0 V base, ``width`` s, one per ``period`` s. The
        programmed peak is corrected for the SPGU's 50 ohm source into the cell's high impedance."""
        self.check_pulse(voltage, width, period, count)
        if not self.cache.get("ready"):
            for command in ("SIM 0", f"SPM {self.number},1", f"SER {self.number},{num(SPGU_LOAD)}",
                            f"ODSW {self.number},0"):
                await self.configure(command)
            self.cache["ready"] = True
        self._planned = (voltage, width)
        try:
            await self.period.ensure(period)
            await self.width.ensure(width)
            await self.burst_count.ensure(count)
            if self.cache.get("peak") != voltage:
                factor = (SPGU_LOAD + SPGU_SOURCE_RESISTANCE) / SPGU_LOAD
                await self.configure(f"SPV {self.number},1,0,{num(voltage / factor)}")
                self.cache["peak"] = voltage
        finally:
            self._planned = None

    async def trigger(self) -> None:
        """``SRP``, wait until ``SPST?`` says stopped, then read the error queue."""
        if not self.cache.get("output"):
            raise RuntimeError(f"{self.label}: turn the output on before triggering")
        inst: KeysightB1500A = self.instrument  # type: ignore[assignment]
        await inst.write("SRP")
        for _ in range(10_000):
            if int(await inst.ask("SPST?")) == 0:
                break
            await asyncio.sleep(1e-3)
        errors = await inst.read_errors("SRP")
        if errors:
            raise InstrumentError(self.label, "SRP", "; ".join(f"{c},{m}" for c, m in errors))


class KeysightB1500AWGFMUChannel(PulseMeasureChannel):
    """One B1530A WGFMU channel in Fast IV mode (force voltage, measure current), programmed
    through the WGFMU library: a pattern of vectors, measure events, one sequence, execute."""

    voltage_range = 10.0
    min_width = 1e-8
    max_width = 1e4

    async def _run(self, pieces: list[Piece], gate: tuple[PulseMeasureChannel, list[Piece]] | None) -> Measured:
        inst: KeysightB1500A = self.instrument  # type: ignore[assignment]
        return await asyncio.to_thread(lambda: self._run_blocking(inst.wgfmu_session(), pieces, gate))

    def _setup(self, lib: WGFMULibrary) -> None:
        """Fast IV, current measurement on the 10 mA range, connected (once per session)."""
        if self.cache.get("ready"):
            return
        ch = self.number
        for name, status in (
            ("WGFMU_setOperationMode", lib.WGFMU_setOperationMode(ch, WGFMU_OPERATION_MODE_FASTIV)),
            ("WGFMU_setMeasureMode", lib.WGFMU_setMeasureMode(ch, WGFMU_MEASURE_MODE_CURRENT)),
            ("WGFMU_setMeasureCurrentRange", lib.WGFMU_setMeasureCurrentRange(ch, WGFMU_MEASURE_CURRENT_RANGE_10MA)),
            ("WGFMU_connect", lib.WGFMU_connect(ch)),
        ):
            check(lib, name, status)
        self.cache["ready"] = True

    @staticmethod
    def _pattern(lib: WGFMULibrary, name: str, pieces: list[Piece]) -> list[float]:
        """Pattern ``name`` of ``pieces`` with one measure event per measured piece; the start time
        of each piece, s."""
        check(lib, "WGFMU_createPattern", lib.WGFMU_createPattern(name, pieces[0].start))
        check(lib, "WGFMU_addVectors", lib.WGFMU_addVectors(name, [p.duration for p in pieces],
                                                           [p.stop for p in pieces], len(pieces)))
        t0 = 0.0
        starts: list[float] = []
        for k, p in enumerate(pieces):
            starts.append(t0)
            if p.measure == "trace":
                interval = p.duration / TRACE_POINTS
                check(lib, "WGFMU_setMeasureEvent", lib.WGFMU_setMeasureEvent(
                    name, f"e{k}", t0, TRACE_POINTS, interval, interval, WGFMU_MEASURE_EVENT_DATA_AVERAGED))
            elif p.measure == "spot":
                check(lib, "WGFMU_setMeasureEvent", lib.WGFMU_setMeasureEvent(
                    name, f"e{k}", t0, 1, p.duration, p.duration, WGFMU_MEASURE_EVENT_DATA_AVERAGED))
            t0 += p.duration
        return starts

    def _run_blocking(self, lib: WGFMULibrary, pieces: list[Piece],
                      gate: tuple[PulseMeasureChannel, list[Piece]] | None) -> Measured:
        ch = self.number
        self._setup(lib)
        if gate is not None:
            gate[0]._setup(lib)  # type: ignore[attr-defined]
        check(lib, "WGFMU_clear", lib.WGFMU_clear())
        starts = self._pattern(lib, "p", pieces)
        check(lib, "WGFMU_addSequence", lib.WGFMU_addSequence(ch, "p", 1))
        if gate is not None:
            self._pattern(lib, "g", gate[1])
            check(lib, "WGFMU_addSequence", lib.WGFMU_addSequence(gate[0].number, "g", 1))
        check(lib, "WGFMU_execute", lib.WGFMU_execute())
        check(lib, "WGFMU_waitUntilCompleted", lib.WGFMU_waitUntilCompleted())
        status, measured, _total = lib.WGFMU_getMeasureValueSize(ch)
        check(lib, "WGFMU_getMeasureValueSize", status)
        status, times, values = lib.WGFMU_getMeasureValues(ch, 0, measured)
        check(lib, "WGFMU_getMeasureValues", status)
        t = np.array(times)
        i = np.array(values)
        traces: list[tuple[np.ndarray, np.ndarray]] = []
        spots: list[float] = []
        at = 0
        for p, start in zip(pieces, starts):
            if p.measure == "trace":
                traces.append((t[at:at + TRACE_POINTS] - start, i[at:at + TRACE_POINTS]))
                at += TRACE_POINTS
            elif p.measure == "spot":
                spots.append(float(i[at]))
                at += 1
        if at != t.size:
            raise InstrumentError(self.label, "WGFMU_getMeasureValues", f"{t.size} values for {at} samples")
        return Measured(traces, spots)

    async def off(self) -> None:
        """Disconnect the channel (its output relay opens)."""
        inst: KeysightB1500A = self.instrument  # type: ignore[assignment]
        if inst.wgfmu_library is not None and self.cache.get("ready"):
            lib = inst.wgfmu_library
            await asyncio.to_thread(lambda: check(lib, "WGFMU_disconnect", lib.WGFMU_disconnect(self.number)))
        self.cache.pop("ready", None)


class KeysightB1500A(Instrument):
    """Keysight B1500A: ``ba[1]``, ``ba[2]`` SMUs, ``ba[301]`` the SPGU, ``ba[401]``, ``ba[402]``
    the WGFMU channels.

    ``wgfmu``: which WGFMU library to use: "auto" (Keysight's where installed, else the emulated
    one), "vendor" or "emulated" (labctl.instruments.wgfmu)."""

    idn_pattern = re.compile(r"(?i)(KEYSIGHT|AGILENT) TECHNOLOGIES,\s*B1500A,")
    error_query = "ERR?"
    kind = "parameter analyzer"

    def __init__(self, resource: str, *, name: str | None = None,
                 limits: SafetyLimits | dict[int, SafetyLimits] | None = None, timeout: float = 5.0,
                 wgfmu: str = "auto") -> None:
        super().__init__(resource, name=name, limits=limits, timeout=timeout)
        self.cache: dict[str, Any] = {}
        self.wgfmu_kind = wgfmu
        self.wgfmu_library: WGFMULibrary | None = None
        kinds = ((SMU_SLOTS, KeysightB1500ASMUChannel), (SPGU_CHANNELS, KeysightB1500ASPGUChannel),
                 (WGFMU_CHANNELS, KeysightB1500AWGFMUChannel))
        for numbers, cls in kinds:
            for n in numbers:
                self.channels[n] = cls(self, n, channel_limits(limits, n))

    async def open(self) -> None:
        """Connect, identify, forget errors left from before, ASCII data without header."""
        await self.link.open()
        await self.identify()
        await self.read_errors("(open)")
        await self.configure("FMT 2,0")

    async def reconnect(self) -> None:
        self.cache.clear()
        await super().reconnect()
        await self.configure("FMT 2,0")

    def wgfmu_session(self) -> WGFMULibrary:
        """The WGFMU library with a session open on this instrument (blocking; call in a thread)."""
        if self.wgfmu_library is None:
            lib = open_library(self.wgfmu_kind)
            check(lib, "WGFMU_openSession", lib.WGFMU_openSession(self.resource))
            check(lib, "WGFMU_initialize", lib.WGFMU_initialize())
            self.wgfmu_library = lib
        return self.wgfmu_library

    async def close(self) -> None:
        lib, self.wgfmu_library = self.wgfmu_library, None
        if lib is not None:
            await asyncio.to_thread(lib.WGFMU_closeSession)
        await super().close()

    async def configure(self, command: str) -> None:
        """Send a command and its error query in one program message (FLEX runs ';'-separated
        commands in order); raise naming command and error."""
        errors = self._error_codes(await self.ask(f"{command};ERR?"))
        if errors:
            texts = [(c, (await self.ask(f"EMG? {c}")).strip('"')) for c in errors]
            more = await self.read_errors(command) if len(errors) == 4 else []
            raise InstrumentError(self.label, command, "; ".join(f"{c},{m}" for c, m in texts + more))

    def _error_codes(self, reply: str) -> list[int]:
        try:
            return [c for c in (int(x) for x in reply.split(",") if x.strip()) if c != 0]
        except ValueError:
            raise InstrumentError(self.label, "ERR?", f"unexpected reply {reply[:80]!r}") from None

    async def data(self, command: str, timeout: float | None = None) -> np.ndarray:
        """``XE`` (or another data command): the values it returns, then the error queue."""
        reply = await self.ask(command, timeout)
        errors = await self.read_errors(command)
        if errors:
            raise InstrumentError(self.label, command, "; ".join(f"{c},{m}" for c, m in errors))
        try:
            return np.array([float(x) for x in reply.split(",") if x.strip()])
        except ValueError:
            raise InstrumentError(self.label, command, f"unexpected reply {reply[:80]!r}") from None

    async def read_errors(self, command: str = "ERR?") -> list[tuple[int, str]]:
        """``ERR?`` (four codes, 0 = none) and ``EMG?`` for each code's text."""
        errors: list[tuple[int, str]] = []
        for _ in range(8):
            bad = self._error_codes(await self.ask("ERR?"))
            for code in bad:
                errors.append((code, (await self.ask(f"EMG? {code}")).strip('"')))
            if len(bad) < 4:
                return errors
        raise InstrumentError(self.label, command, f"error queue never emptied: {errors}")

    async def safe_off(self) -> None:
        """Every SMU and SPGU output disconnected (``CL``), the WGFMU disconnected."""
        await self.write("CL")
        for channel in self.channels.values():
            if isinstance(channel, KeysightB1500AWGFMUChannel):
                await channel.off()
            else:
                channel.cache["output"] = False


__all__ = ["KeysightB1500A", "KeysightB1500ASMUChannel", "KeysightB1500ASPGUChannel", "KeysightB1500AWGFMUChannel"]
