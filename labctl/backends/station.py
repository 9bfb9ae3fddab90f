"""StationBackend: an array on a probe station, cell by cell through switch matrix, SMU and pulser.

Built on :class:`labctl.instruments.Station` (docs/instruments.md): each operation routes one cell
(exclusive close on the matrix), drives its word line from the gate supply and then sweeps or reads
with the SMU or fires the pulse generator. There is no native closed loop: routines run
program-and-verify on the host, each pulse and its verify read as one `pulse_and_read` (on a
pulse-and-measure station one execution of the pulse unit per cell). Every argument of a call is checked for every cell before the first
command goes out; outputs go off and the matrix opens when the backend is left for any reason.

The clock: on hardware `wait` sleeps. Emulated instruments cannot move the emulator's virtual clock
(only the host's wait may, so that every backend draws the same random numbers), so a station on
emulated instruments is given a clock that can: :class:`ArrayClock` for an in-process
`emulator.Array`, or :class:`ChipClock` for the chip controller that `labctl emulate` serves on the
same array (EMU_ADVANCE).

Sweeps hold each point for `dwell` s: the SMU integrates for NPLC / line frequency and waits a
source delay before each reading, and the two are chosen so that delay + aperture is `dwell`
exactly (both the 2450 and the B2900 hold a point for their sum). The SMU's current limit is a real
limit: if a sweep reaches it, the SMU holds its voltage (the cell sees less than asked), where the
chip and in-process backends only clip the reported current. In a 1T1R cell the selector's gate
sets the forming compliance, and results agree across backends as long as the SMU limit is not
reached; `compliance=None` uses the station's largest SMU limit.
"""
from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from labctl.backends.base import ArrayBackend, BackendInfo, FloatArray, IntArray, PulseCurrent, PulseCurrents
from labctl.core.limits import SafetyLimits
from labctl.instruments import PulseMeasureChannel, PulseTrace, Station, StationConfig
from labctl.instruments.errors import InstrumentError
from labctl.instruments.thermal import ThermalController

#: Line frequency assumed when the SMU cannot be asked, Hz.
DEFAULT_LINE_FREQUENCY = 50.0
#: Pulse traces a StationBackend keeps (a 32 x 32 array programmed at 2 % takes ~10 000 pulses).
MAX_TRACES = 100_000


@dataclass(frozen=True)
class CellTrace:
    """The current during one pulse on cell (row, col), measured by the pulse-and-measure unit."""

    row: int
    col: int
    trace: PulseTrace


class TraceLog(deque[CellTrace]):
    """A bounded deque of CellTrace (the oldest fall off) that counts what was appended, so that
    a take can say how many fell off before it."""

    def __init__(self, maxlen: int) -> None:
        super().__init__(maxlen=maxlen)
        self.appended = 0

    def append(self, item: CellTrace) -> None:
        self.appended += 1
        super().append(item)

    def extend(self, items: Iterable[CellTrace]) -> None:
        for item in items:
            self.append(item)

    def clear(self) -> None:
        super().clear()
        self.appended = 0

    def take(self) -> PulseCurrents:
        """Every trace held, as PulseCurrents (oldest first), and how many fell off since the last
        take; the log is empty after it."""
        held = tuple(PulseCurrent(t.row, t.col, t.trace.voltage, t.trace.width, np.asarray(t.trace.times),
                                  np.asarray(t.trace.currents)) for t in self)
        lost = max(self.appended - len(held), 0)
        self.clear()
        return PulseCurrents(held, lost)


class Clock(Protocol):
    """What StationBackend needs to let time pass."""

    virtual: bool

    async def advance(self, seconds: float) -> None: ...

    async def now(self) -> float: ...

    async def close(self) -> None: ...


class WallClock:
    """Real time: `advance` sleeps, `now` is seconds since creation (host monotonic clock)."""

    virtual = False

    def __init__(self) -> None:
        self._t0 = time.monotonic()

    async def advance(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def now(self) -> float:
        return time.monotonic() - self._t0

    async def close(self) -> None:
        return None


class ArrayClock:
    """The virtual clock of an in-process emulated array (any object with `advance(s)`, `time`
    and `lock`, i.e. `emulator.Array`), e.g. the one an `InstrumentBench` serves."""

    virtual = True

    def __init__(self, array: Any) -> None:
        self.array = array

    async def advance(self, seconds: float) -> None:
        # In a thread: an instrument's worker may hold the array's lock for a while.
        await asyncio.to_thread(self.array.advance, seconds)

    async def now(self) -> float:
        return float(self.array.time)

    async def close(self) -> None:
        return None


class ChipClock:
    """The virtual clock of an emulator reached through its chip controller (EMU_ADVANCE).

    `labctl emulate` serves the chip controller and the instruments on the same array, so a
    station on its instruments uses the controller's address for the clock.
    """

    virtual = True

    def __init__(self, address: str) -> None:
        self.address = address
        self._client: Any = None

    async def _chip(self) -> Any:
        if self._client is None:
            from labctl.protocols.client import ChipClient

            try:
                client = await ChipClient.connect(self.address, client_name="labctl StationBackend clock")
            except Exception as exc:
                raise ConnectionError(f"station clock: chip controller {self.address}: cannot open a "
                                      f"session ({type(exc).__name__}: {exc})") from exc
            if not client.info.emulator:
                await client.close()
                raise ValueError(f"clock={self.address!r}: the controller is not an emulator, it has no "
                                 "virtual clock (leave clock unset on hardware)")
            self._client = client
        return self._client

    async def advance(self, seconds: float) -> None:
        await (await self._chip()).emu_advance(seconds)

    async def now(self) -> float:
        return float(await (await self._chip()).emu_advance(0.0))  # 0 s: no cell changes

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()


class StationBackend(ArrayBackend):
    """An array driven by the instruments of a station file, one cell at a time.

    Args:
        station: path of a station file, or a validated StationConfig.
        resources: instrument resources overriding the file's, by instrument name (e.g. the
            ports an emulator chose).
        clock: how time passes (default WallClock; ArrayClock / ChipClock on emulated instruments).
        read_nplc: SMU integration time of reads, power-line cycles.
        read_current_limit: SMU current limit during reads, A (default: the SMU terminal's limit).
    """

    def __init__(self, station: str | Path | StationConfig, *, resources: Mapping[str, str] | None = None,
                 clock: Clock | None = None, read_nplc: float = 1.0,
                 read_current_limit: float | None = None) -> None:
        self.source = str(station) if not isinstance(station, StationConfig) else "(config)"
        self.config = station if isinstance(station, StationConfig) else StationConfig.from_toml(station)
        self.resources = dict(resources or {})
        self.clock: Clock = clock or WallClock()
        self.read_nplc = read_nplc
        self.station: Station | None = None
        cfg = self.config
        smu, gate, pulse = (cfg.terminal_limits(t) for t in ("smu", "gate", "pulse"))
        #: Pulse amplitudes are limited by the pulse terminal, sweeps and reads by the SMU's.
        self.pulse_v_max = pulse.max_abs_voltage
        vg_max = gate.max_abs_voltage
        if "pulse_gate" in cfg.terminals:  # the word line is driven by either: both limits hold
            vg_max = min(vg_max, cfg.terminal_limits("pulse_gate").max_abs_voltage)
        self.limits = SafetyLimits(max_abs_voltage=smu.max_abs_voltage, max_gate_voltage=vg_max,
                                   min_pulse_width=0.0, max_pulse_width=pulse.max_pulse_width,
                                   max_compliance=smu.max_compliance)
        self.read_current_limit = read_current_limit or smu.max_compliance
        if not 0 < self.read_current_limit <= smu.max_compliance:
            raise ValueError(f"read_current_limit: {read_current_limit!r} A is outside "
                             f"(0, {smu.max_compliance:g}] A (terminals.smu)")
        self.info = BackendInfo(kind="station", rows=cfg.array.rows, cols=cfg.array.cols,
                                identity={"station": self.source}, native_program=False,
                                virtual_clock=self.clock.virtual)
        self.line_frequency = DEFAULT_LINE_FREQUENCY
        #: On a pulse-and-measure station: the current during each pulse, newest last (bounded).
        self.traces: TraceLog = TraceLog(MAX_TRACES)

    # ------------------------------------------------------------------ lifecycle
    async def open(self) -> None:
        """Open and identify every instrument, outputs off (idempotent). A dead instrument raises
        InstrumentConnectionError naming it."""
        if self.station is not None:
            return
        station = Station(self.config, self.resources)
        await station.open()
        self.station = station
        identity = {"station": self.source}
        for name, inst in station.instruments.items():
            idn = inst.identity
            identity[name] = (f"{idn.manufacturer},{idn.model},{idn.serial},{idn.firmware}"
                              if idn is not None else inst.label)
        pulser = station.pulser
        if isinstance(pulser, PulseMeasureChannel):
            low, high = pulser.min_width, pulser.max_width
        else:
            width = pulser.width.setting.validator
            low, high = float(getattr(width, "low", 0.0)), float(getattr(width, "high", math.inf))
        self.limits = self.limits.tightened(min_pulse_width=low, max_pulse_width=high)
        self.info = BackendInfo(kind="station", rows=self.info.rows, cols=self.info.cols, identity=identity,
                                native_program=False, virtual_clock=self.clock.virtual)
        smu_instrument = station.smu.instrument
        if smu_instrument.line_frequency_query is not None:
            try:
                self.line_frequency = float(await smu_instrument.ask(smu_instrument.line_frequency_query))
            except (InstrumentError, ValueError):
                self.line_frequency = DEFAULT_LINE_FREQUENCY

    async def close(self) -> None:
        station, self.station = self.station, None
        try:
            if station is not None:
                await station.close()
        finally:
            await self.clock.close()

    async def outputs_off(self) -> None:
        """Every output off, every crosspoint open (tries every instrument)."""
        if self.station is not None:
            await self.station.safe_off()

    # ------------------------------------------------------------------ operations
    async def sweep(self, rows: IntArray, cols: IntArray, voltages: FloatArray, vg: float,
                    dwell: float = 1e-3, compliance: float | None = None) -> FloatArray:
        r, c = self.check_cells(rows, cols)
        v = np.asarray(voltages, dtype=np.float64).reshape(-1)
        if v.size == 0:
            raise ValueError("voltages: expected at least one point")
        self.check_voltage("voltages", v)
        self.check_gate("vg", vg)
        self.check_compliance(compliance)
        station = self._require()
        nplc, delay = self.sweep_timing(dwell)
        limit = self.limits.max_compliance if compliance is None else compliance
        points = v.tolist()
        out = np.empty((r.size, v.size))
        for k, (row, col) in enumerate(zip(r.tolist(), c.tolist())):
            await station.smu.nplc.ensure(nplc)
            result = await station.sweep(row, col, points, float(vg), limit, delay)
            out[k] = result.currents
        return out

    async def pulse(self, rows: IntArray, cols: IntArray, v: float | FloatArray, vg: float | FloatArray,
                    width: float | FloatArray) -> None:
        r, c = self.check_pulse(rows, cols, v, vg, width, self.pulse_v_max)
        vs, gs, ws = self._per_cell(r.size, v, vg, width)
        station = self._require()
        self._check_pulser(station, vs, gs, ws)
        for row, col, vk, gk, wk in zip(r.tolist(), c.tolist(), vs, gs, ws):
            if vk == 0.0:
                continue  # a 0 V pulse applies nothing (the emulator's switching has a threshold)
            trace = await station.pulse(row, col, vk, wk, gk)
            if trace is not None:
                self.traces.append(CellTrace(row, col, trace))

    async def pulse_and_read(self, rows: IntArray, cols: IntArray, v: float | FloatArray, vg: float | FloatArray,
                             width: float | FloatArray, v_read: float = 0.2, vg_read: float = 3.3) -> FloatArray:
        """Per cell one pulse and its verify read; on a pulse-and-measure station one execution of
        the pulse unit per cell (Station.pulse_and_read), the pulse's current kept in `traces`."""
        station = self._require()
        if not station.pulse_and_measure:
            return await super().pulse_and_read(rows, cols, v, vg, width, v_read, vg_read)
        r, c = self.check_pulse(rows, cols, v, vg, width, self.pulse_v_max)
        self.check_read_bias(v_read)
        self.check_gate("vg_read", vg_read)
        vs, gs, ws = self._per_cell(r.size, v, vg, width)
        self._check_pulser(station, vs, gs, ws)
        station.pulser.check_read(float(v_read))
        out = np.empty(r.size)
        for k, (row, col, vk, gk, wk) in enumerate(zip(r.tolist(), c.tolist(), vs, gs, ws)):
            if vk == 0.0:  # no pulse (as `pulse`), only the read
                out[k] = await station.read(row, col, float(v_read), float(vg_read), self.read_current_limit)
                continue
            trace, out[k] = await station.pulse_and_read(row, col, vk, wk, gk, float(v_read), float(vg_read),
                                                         self.read_current_limit)
            if trace is not None:
                self.traces.append(CellTrace(row, col, trace))
        return out

    @staticmethod
    def _per_cell(n: int, v: float | FloatArray, vg: float | FloatArray,
                  width: float | FloatArray) -> tuple[list[float], list[float], list[float]]:
        """v (V), vg (V), width (s) as one value per cell of the n listed."""
        try:
            vs, gs, ws = (np.broadcast_to(np.asarray(x, dtype=np.float64), (n,)).tolist() for x in (v, vg, width))
        except ValueError:
            raise ValueError(f"v, vg, width: expected scalars or {n} values (one per cell)") from None
        return vs, gs, ws

    @staticmethod
    def _check_pulser(station: Station, vs: list[float], gs: list[float], ws: list[float]) -> None:
        """The pulser's own checks (energy, period; the pulse gate's levels) for every cell first."""
        measures = station.pulse_and_measure
        pulse_gate = station.pulse_gate
        for vk, gk, wk in zip(vs, gs, ws):
            if vk != 0.0:
                if measures:
                    station.pulser.check_pulse(vk, wk)
                else:
                    station.pulser.check_pulse(vk, wk, 2 * wk)
                if pulse_gate is not None:
                    pulse_gate.check_gate("vg", gk)

    async def read(self, rows: IntArray, cols: IntArray, v_read: float = 0.2, vg: float = 3.3) -> FloatArray:
        r, c = self.check_cells(rows, cols)
        self.check_read_bias(v_read)
        self.check_gate("vg", vg)
        station = self._require()
        out = np.empty(r.size)
        for k, (row, col) in enumerate(zip(r.tolist(), c.tolist())):
            await station.smu.nplc.ensure(self.read_nplc)
            out[k] = await station.read(row, col, float(v_read), float(vg), self.read_current_limit)
        return out

    def take_pulse_currents(self) -> PulseCurrents:
        """The currents measured during the pulses since the last take (`traces`, which is then
        empty); nothing on a station whose pulser does not measure."""
        return self.traces.take()

    async def wait(self, seconds: float) -> None:
        self.check_seconds(seconds)
        await self.clock.advance(float(seconds))

    def thermal_controller(self) -> ThermalController | None:
        """The chuck's controller the station file's [thermal] names (waiting on this backend's
        clock), or None."""
        return self._require().thermal(self.wait)

    async def now(self) -> float:
        return await self.clock.now()

    # ------------------------------------------------------------------ helpers
    def sweep_timing(self, dwell: float) -> tuple[float, float]:
        """(NPLC, source delay s) whose sum delay + NPLC / line frequency is `dwell` s exactly.

        The aperture is chosen in [dwell / 2, dwell], where dwell - aperture is exact in floating
        point (Sterbenz), so the SMU holds each point for exactly the dwell asked for.
        """
        station = self._require()
        nplc_range = station.smu.nplc.setting.validator
        lo, hi = float(getattr(nplc_range, "low", 0.01)), float(getattr(nplc_range, "high", 10.0))
        lf = self.line_frequency
        if not (math.isfinite(dwell) and lo / lf <= dwell <= 1e4):
            raise ValueError(f"dwell: {dwell!r} s is outside the allowed range [{lo / lf:g}, 10000] s "
                             f"(the SMU's shortest aperture is {lo:g} NPLC at {lf:g} Hz)")
        nplc = min(max(0.75 * dwell * lf, lo), hi)
        aperture = nplc / lf
        delay = dwell - aperture
        for _ in range(64):  # outside [dwell / 2, dwell] (long dwells): nudge by ulps
            if delay + aperture == dwell:
                break
            delay = math.nextafter(delay, math.inf if delay + aperture < dwell else -math.inf)
        return nplc, max(delay, 0.0)

    def _require(self) -> Station:
        if self.station is None:
            raise RuntimeError(f"station {self.source}: not open (use `async with` or open())")
        return self.station
