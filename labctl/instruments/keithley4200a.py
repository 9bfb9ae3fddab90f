"""Keithley 4200A-SCS parameter analyzer through KXCI (4200A-SCS KXCI Remote Control Programming,
4200A-KXCI-907-01): SMUs in user mode and the 4225-PMU's segment ARB.

Channels (station files name them by number): SMU1 = 1, SMU2 = 2, ... ; 4225-PMU card 1
channel 1 = 101 (KXCI ``PMU1-1``). KXCI specifics this driver follows:

- over LAN every command is answered (``ACK`` or data), messages end in NUL;
- errors: the instrument keeps them; ``:ERROR:LAST:GET`` reports the newest as
  ``<message> (<code>)``, ``:ERROR:LAST:CLEAR`` forgets them. Settings are checked after each
  command, a PMU execution once after its data are read;
- ``DV<ch>,<range>,<V>,<Icomp>`` sets level and compliance in one command and turns the source on;
  ``DV<ch>`` alone takes it to 0 V and off; ``TI<ch>`` answers ``<status><channel>I<value>``;
- integration time ``IT4,<delay factor>,<filter factor>,<NPLC>``;
- sweeps in page mode: ``DE``, ``CH``, ``SS``, ``VL`` (list), ``DT`` (delay), ``SM``, ``DM2``,
  ``MD``, ``ME1``, then ``DO '<name>'`` for the data;
- segment ARB: ``:PMU:SARB:SEQ:TIME|STARTV|STOPV|MEAS:TYPE|MEAS:START|MEAS:STOP <ch>,<seq>,...``,
  ``:PMU:SARB:WFM:SEQ:LIST <ch>,<seq>,<loops>,...``, ``:PMU:EXECUTE``, ``:PMU:TEST:STATUS?``,
  ``:PMU:DATA:GET <ch>,<start>,<count>`` (points ``V,I,T,S`` separated by ``;``).

What was checked against what is in docs/instruments.md ("Keithley 4200A-SCS").
"""
from __future__ import annotations

import asyncio
import re
from typing import Any

import numpy as np

from labctl.core.limits import SafetyLimits

from .base import Instrument, channel_limits
from .errors import InstrumentError, LimitError
from .pulse_measure import Measured, Piece, PulseMeasureChannel
from .settings import Setting, boolean, in_range, num
from .smu import SourceMeterChannel, SweepResult

SMU_CHANNELS = (1, 2, 3, 4)  # SMU1..SMU4 (the emulated analyzer has SMU1, SMU2)
PMU_CHANNELS = {101: 1}  # station channel number -> KXCI pulse channel of card 1
#: :PMU:SARB:SEQ:MEAS:TYPE values.
MEAS_NONE, MEAS_SPOT_MEAN, MEAS_WAVEFORM = 0, 1, 2
#: Points :PMU:DATA:GET returns at most per call.
MAX_GET = 2048
#: Polls of :PMU:TEST:STATUS? before giving up (each waits POLL_INTERVAL s once the test runs).
MAX_POLLS, POLL_INTERVAL = 10_000, 1e-3
_ERROR = re.compile(r"\((-?\d+)\)\s*$")
_READING = re.compile(r"^([A-Z])([A-Z])([IV])([-+0-9.Ee]+)$")


def _dv(channel: Any, level: float | None = None, compliance: float | None = None,
        on: bool | None = None) -> str | None:
    """The DV command for ``channel`` with one value replaced; None while the output is off (the
    value waits for the command that turns it on)."""
    cache = channel.cache
    on = cache.get("output", False) if on is None else on
    if not on:
        return None
    level = cache.get("source_voltage", 0.0) if level is None else level
    compliance = cache.get("current_limit") if compliance is None else compliance
    return f"DV{channel.number}, 0, {num(level)}, {num(compliance)}"


class Keithley4200ASMUChannel(SourceMeterChannel):
    """One 4200-SMU in KXCI user mode (voltage source, current measure)."""

    source_voltage = Setting(
        "Voltage source level, V (200 V range with overrange).",
        validator=in_range(-210.0, 210.0, "V"), guard="voltage",
        command_for=lambda ch, v: _dv(ch, level=v),
    )
    current_limit = Setting(
        "Current compliance of the voltage source, A (1 pA .. 105 mA).",
        validator=in_range(1e-12, 0.105, "A"), guard="compliance",
        command_for=lambda ch, v: _dv(ch, compliance=v),
    )
    nplc = Setting(
        "A/D integration time, power-line cycles (IT4; applies to every SMU).",
        validator=in_range(0.01, 10.0), command_for=lambda ch, v: f"IT4, 0, 0, {num(v)}",
    )
    output = Setting(
        "Output on (DV with the cached level and compliance) or 0 V and off (DV<ch>).",
        validator=boolean, guard="output",
        command_for=lambda ch, v: _dv(ch, on=True) if v else f"DV{ch.number}",
    )

    async def measure_current(self) -> float:
        """``TI<ch>``: one current reading at the present level, A."""
        if not self.cache.get("output"):
            raise RuntimeError(f"{self.label}: turn the output on before measuring")
        reply = await self.ask(f"TI{self.number}")
        return self.instrument.reading(f"TI{self.number}", reply)  # type: ignore[attr-defined]

    async def _run_sweep(self, points: list[float], delay: float) -> SweepResult:
        """A page-mode list sweep of this SMU (VAR1), ``delay`` s before each reading."""
        n, limit = self.number, self.cache["current_limit"]
        inst: Keithley4200A = self.instrument  # type: ignore[assignment]
        for command in ("DE", f"CH{n}, 'V{n}', 'I{n}', 1, 1", "SS",
                        f"VL{n}, 0, {num(limit)}, " + ", ".join(num(v) for v in points),
                        f"DT {num(delay)}", "SM", "DM2", "MD"):
            await self.configure(command)
        nplc = self.cache.get("nplc") or 1.0
        expected = len(points) * (delay + nplc / 50.0)
        await inst.ask("ME1", timeout=inst.link.timeout + 2 * expected)
        voltages = await inst.values(f"DO 'V{n}'")
        currents = await inst.values(f"DO 'I{n}'")
        await inst.check("ME1")
        self.cache["output"] = False  # page mode leaves the source at 0 V
        self.cache.pop("source_voltage", None)
        return SweepResult(voltages=voltages, currents=currents)


class Keithley4200APMUChannel(PulseMeasureChannel):
    """Channel 1 of a 4225-PMU (through its 4225-RPM), driven by segment ARB."""

    voltage_range = 10.0  # V, the 10 V source range
    min_width = 20e-9  # s, the shortest segment
    max_width = 40.0  # s, the longest segment

    def __init__(self, instrument: Instrument, number: int, limits: SafetyLimits | None) -> None:
        super().__init__(instrument, number, limits)
        self.pulse_channel = PMU_CHANNELS[number]

    @property
    def label(self) -> str:
        return f"{self.instrument.label} PMU1-{self.pulse_channel}"

    async def _prepare(self) -> None:
        if self.cache.get("ready"):
            return
        ch = self.pulse_channel
        for command in (":PMU:INIT 1", f":PMU:RPM:CONFIGURE PMU1-{ch}, 0", f":PMU:SOURCE:RANGE {ch}, 10",
                        f":PMU:MEASURE:RANGE {ch}, 2, 0.01"):
            await self.configure(command)
        self.cache["ready"] = True

    async def _run(self, pieces: list[Piece]) -> Measured:
        await self._prepare()
        inst: Keithley4200A = self.instrument  # type: ignore[assignment]
        ch = self.pulse_channel
        rate = float(round(self.sample_rate(pieces, 1e3, 200e6, self.cache.get("rate"))))
        if self.cache.get("rate") != rate:
            await inst.send(f":PMU:SAMPLE:RATE {rate:.0f}")
            self.cache["rate"] = rate
        arrays = {
            "TIME": [p.duration for p in pieces], "STARTV": [p.start for p in pieces],
            "STOPV": [p.stop for p in pieces],
            "MEAS:TYPE": [{"none": MEAS_NONE, "spot": MEAS_SPOT_MEAN, "trace": MEAS_WAVEFORM}[p.measure] for p in pieces],
            "MEAS:START": [0.0] * len(pieces),
            "MEAS:STOP": [p.duration if p.measure != "none" else 0.0 for p in pieces],
        }
        # One sequence per distinct waveform (pulse, read, both), defined once per session.
        key = tuple((p.start, p.stop, p.duration, p.measure) for p in pieces)
        sequences: dict[Any, int] = self.cache.setdefault("sequences", {})
        seq = sequences.get(key)
        if seq is None:
            if len(sequences) >= 500:
                sequences.clear()
            seq = len(sequences) + 1
            for name, values in arrays.items():
                text = ", ".join(str(v) if name == "MEAS:TYPE" else num(v) for v in values)
                await inst.send(f":PMU:SARB:SEQ:{name} {ch}, {seq}, {text}")
            sequences[key] = seq
        if self.cache.get("list") != seq:
            await inst.send(f":PMU:SARB:WFM:SEQ:LIST {ch}, {seq}, 1")
            self.cache["list"] = seq
        if not self.cache.get("output"):
            await inst.send(f":PMU:OUTPUT:STATE {ch}, 1")
            self.cache["output"] = True
        await inst.send(":PMU:EXECUTE")
        for _ in range(MAX_POLLS):
            if int(await inst.ask(":PMU:TEST:STATUS?")) == 0:
                break
            await asyncio.sleep(POLL_INTERVAL)
        else:
            raise InstrumentError(self.label, ":PMU:TEST:STATUS?", "the test never finished")
        data = await inst.ask(f":PMU:DATA:GET {ch}, 0, {MAX_GET}")
        await inst.check(":PMU:EXECUTE")
        return self._parse(pieces, data)

    def _parse(self, pieces: list[Piece], data: str) -> Measured:
        try:
            rows = np.array([[float(x) for x in p.split(",")[:3]] for p in data.split(";") if p.strip()]).reshape(-1, 3)
        except ValueError:
            raise InstrumentError(self.label, ":PMU:DATA:GET", f"unexpected data {data[:80]!r}") from None
        traces: list[tuple[np.ndarray, np.ndarray]] = []
        spots: list[float] = []
        t0, at = 0.0, 0
        for p in pieces:
            t1 = t0 + p.duration
            if p.measure == "spot":
                if at >= len(rows):
                    raise InstrumentError(self.label, ":PMU:DATA:GET", "fewer points than measure windows")
                spots.append(float(rows[at, 1]))
                at += 1
            elif p.measure == "trace":
                inside = (rows[at:, 2] >= t0) & (rows[at:, 2] <= t1)
                count = int(np.argmin(inside)) if not inside.all() else int(inside.size)
                traces.append((rows[at:at + count, 2] - t0, rows[at:at + count, 1].copy()))
                at += count
            t0 = t1
        return Measured(traces, spots)

    async def off(self) -> None:
        """Output off (immediate on the PMU)."""
        await self.instrument.send(f":PMU:OUTPUT:STATE {self.pulse_channel}, 0")  # type: ignore[attr-defined]
        self.cache["output"] = False


class Keithley4200A(Instrument):
    """Keithley 4200A-SCS: ``sa[1]``, ``sa[2]`` SMUs; ``sa[101]`` the 4225-PMU's channel 1."""

    idn_pattern = re.compile(r"(?i)KEITHLEY INSTRUMENTS( INC\.?)?,\s*KI4200A?,")
    error_query = ":ERROR:LAST:GET"
    termination = "\0"
    kind = "parameter analyzer"

    def __init__(self, resource: str, *, name: str | None = None,
                 limits: SafetyLimits | dict[int, SafetyLimits] | None = None, timeout: float = 5.0) -> None:
        super().__init__(resource, name=name, limits=limits, timeout=timeout)
        for n in (*SMU_CHANNELS, *PMU_CHANNELS):
            cls = Keithley4200APMUChannel if n in PMU_CHANNELS else Keithley4200ASMUChannel
            self.channels[n] = cls(self, n, channel_limits(limits, n))

    async def open(self) -> None:
        """Connect, identify, user mode, no stale errors."""
        await self.link.open()
        await self.identify()
        await self.send(":ERROR:LAST:CLEAR")
        await self.configure("US")

    async def reconnect(self) -> None:
        await self.link.open()
        for channel in self.channels.values():
            channel.cache.clear()
        await self.identify()
        await self.send(":ERROR:LAST:CLEAR")
        await self.safe_off()

    # -- KXCI I/O: every command is answered --------------------------------------------------------
    async def send(self, command: str) -> None:
        """A command whose reply is ``ACK`` (anything else is an instrument fault)."""
        reply = await self.ask(command)
        if reply != "ACK":
            raise InstrumentError(self.label, command, f"expected ACK, got {reply[:80]!r}")

    async def write(self, command: str) -> None:
        await self.send(command)

    async def configure(self, command: str) -> None:
        """Send a setting, then read the last error; raise naming command and error."""
        await self.send(command)
        await self.check(command)

    async def check(self, command: str) -> None:
        """Raise InstrumentError if the instrument holds an error (and clear it)."""
        errors = await self.read_errors(command)
        if errors:
            raise InstrumentError(self.label, command, "; ".join(f"{c},{m}" for c, m in errors))

    async def read_errors(self, command: str = ":ERROR:LAST:GET") -> list[tuple[int, str]]:
        """The last error, as [(code, message)] (empty when none); clears it."""
        reply = await self.ask(self.error_query)
        m = _ERROR.search(reply)
        if m is None:
            raise InstrumentError(self.label, self.error_query, f"unexpected reply {reply[:80]!r}")
        code = int(m.group(1))
        if code == 0:
            return []
        await self.send(":ERROR:LAST:CLEAR")
        return [(code, reply[: m.start()].strip())]

    def reading(self, command: str, reply: str) -> float:
        """The value of a ``<status><channel><I|V><value>`` reply (status C: in compliance)."""
        m = _READING.match(reply.strip())
        if m is None:
            raise InstrumentError(self.label, command, f"unexpected reply {reply[:80]!r}")
        return float(m.group(4))

    async def values(self, command: str) -> np.ndarray:
        """A ``DO`` reply: comma-separated values, each with its status letter."""
        reply = await self.ask(command)
        try:
            return np.array([float(x.strip()[1:]) for x in reply.split(",") if x.strip()])
        except ValueError:
            raise InstrumentError(self.label, command, f"unexpected reply {reply[:80]!r}") from None

    async def safe_off(self) -> None:
        """Every SMU to 0 V and off (``CL``), every PMU output off."""
        await self.send("CL")
        for channel in self.channels.values():
            if isinstance(channel, Keithley4200ASMUChannel):
                channel.cache["output"] = False
            else:
                await channel.off()


__all__ = ["Keithley4200A", "Keithley4200APMUChannel", "Keithley4200ASMUChannel", "LimitError"]
