"""Keithley 4200A-SCS parameter analyzer through KXCI (4200A-SCS KXCI Remote Control Programming,
4200A-KXCI-907-01): SMUs in user mode and the 4225-PMU's segment ARB.

Channels (station files name them by number): SMU1 = 1, SMU2 = 2, ... ; 4225-PMU card 1
channel 1 = 101 (KXCI ``PMU1-1``), channel 2 = 102 (``PMU1-2``). KXCI specifics this driver follows:

- over LAN every command is answered (``ACK`` or data), messages end in NUL;
- errors: the instrument keeps them; ``:ERROR:LAST:GET`` reports the newest as
  ``<message> (<code>)``, ``:ERROR:LAST:CLEAR`` forgets them. Settings are checked after each
  command; a PMU execution by its data (Keithley4200APMUChannel);
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
PMU_CHANNELS = {101: 1, 102: 2}  # station channel number -> KXCI pulse channel of card 1
#: :PMU:RPM:CONFIGURE pathways (numbered as the LPT library's KI_RPM_PULSE .. KI_RPM_SMU).
RPM_PULSE, RPM_SMU = 0, 3
#: Status-word bits of a :PMU:DATA:GET point that flag a fault: compliance / thresholds (15-12)
#: and voltage / current overflow (11-8), per the 4200A's pulse_fetch status bit map.
STATUS_FAULTS = 0xFF00
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
    """A channel of a 4225-PMU (through its 4225-RPM), driven by segment ARB: channel 1 (101)
    drives the bit line, channel 2 (102) may drive the word line in the same executions (gate=).

    Answered commands per execution, once the waveforms are defined: the sequence lists that
    change, ``:PMU:EXECUTE``, ``:PMU:TEST:STATUS?``, ``:PMU:DATA:GET``. Errors: a setting whose
    failure the data would not show (a sequence definition, the sample rate, output state, RPM
    pathway) is followed by ``:ERROR:LAST:GET``; a sequence list names only sequences defined
    and checked before, with valid numbers, so nothing it could be refused for is left; an
    execution is judged by its data: every measure window's points present, no point whose
    status word flags an overflow or compliance (pulse_fetch bit map) -- otherwise the last error
    is read and raised (the emulated 4200A starts every test with no data, so a refused
    execution shows as missing points)."""

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
        """Segment-ARB mode (once per instrument: ``:PMU:INIT`` clears every channel), this
        channel's RPM to the pulse pathway, its source and measure ranges."""
        inst: Keithley4200A = self.instrument  # type: ignore[assignment]
        if not inst.cache.get("pmu_init"):
            await self.configure(":PMU:INIT 1")
            inst.cache["pmu_init"] = True
            for channel in inst.channels.values():
                if isinstance(channel, Keithley4200APMUChannel):
                    channel.cache.pop("ready", None)
                    for key in ("sequences", "list", "output"):
                        channel.cache.pop(key, None)
        if self.cache.get("ready"):
            return
        ch = self.pulse_channel
        for command in (f":PMU:RPM:CONFIGURE PMU1-{ch}, {RPM_PULSE}", f":PMU:SOURCE:RANGE {ch}, 10",
                        f":PMU:MEASURE:RANGE {ch}, 2, 0.01"):
            await self.configure(command)
        self.cache["ready"] = True
        self.cache["rpm"] = RPM_PULSE

    async def _sequence(self, pieces: list[Piece]) -> int:
        """This channel's sequence number for ``pieces``: defined (and checked) on first use."""
        inst: Keithley4200A = self.instrument  # type: ignore[assignment]
        key = tuple((p.start, p.stop, p.duration, p.measure) for p in pieces)
        sequences: dict[Any, int] = self.cache.setdefault("sequences", {})
        seq = sequences.get(key)
        if seq is not None:
            return seq
        if len(sequences) >= 500:
            sequences.clear()
        seq = len(sequences) + 1
        arrays = {
            "TIME": [p.duration for p in pieces], "STARTV": [p.start for p in pieces],
            "STOPV": [p.stop for p in pieces],
            "MEAS:TYPE": [{"none": MEAS_NONE, "spot": MEAS_SPOT_MEAN, "trace": MEAS_WAVEFORM}[p.measure] for p in pieces],
            "MEAS:START": [0.0] * len(pieces),
            "MEAS:STOP": [p.duration if p.measure != "none" else 0.0 for p in pieces],
        }
        ch = self.pulse_channel
        for name, values in arrays.items():
            text = ", ".join(str(v) if name == "MEAS:TYPE" else num(v) for v in values)
            await inst.send(f":PMU:SARB:SEQ:{name} {ch}, {seq}, {text}")
        await inst.check(f":PMU:SARB:SEQ {ch}, {seq}")
        sequences[key] = seq
        return seq

    async def _load(self, pieces: list[Piece]) -> None:
        """This channel's sequence list set to ``pieces``' sequence and its output on."""
        inst: Keithley4200A = self.instrument  # type: ignore[assignment]
        seq = await self._sequence(pieces)
        if self.cache.get("list") != seq:
            await inst.send(f":PMU:SARB:WFM:SEQ:LIST {self.pulse_channel}, {seq}, 1")
            self.cache["list"] = seq
        if not self.cache.get("output"):
            await self.configure(f":PMU:OUTPUT:STATE {self.pulse_channel}, 1")
            self.cache["output"] = True

    async def _run(self, pieces: list[Piece], gate: tuple[PulseMeasureChannel, list[Piece]] | None) -> Measured:
        inst: Keithley4200A = self.instrument  # type: ignore[assignment]
        channels: list[tuple[Keithley4200APMUChannel, list[Piece]]] = [(self, pieces)]
        if gate is not None:
            channels.append((gate[0], gate[1]))  # type: ignore[arg-type]
        else:
            for other in inst.channels.values():  # a gate channel left on would run too: off
                if isinstance(other, Keithley4200APMUChannel) and other is not self and other.cache.get("output"):
                    await other.off()
        for channel, _p in channels:
            await channel._prepare()
        rate = float(round(self.sample_rate(pieces, 1e3, 200e6, inst.cache.get("rate"))))
        if inst.cache.get("rate") != rate:
            await self.configure(f":PMU:SAMPLE:RATE {rate:.0f}")
            inst.cache["rate"] = rate
        for channel, channel_pieces in channels:
            await channel._load(channel_pieces)
        await inst.send(":PMU:EXECUTE")
        for _ in range(MAX_POLLS):
            if int(await inst.ask(":PMU:TEST:STATUS?")) == 0:
                break
            await asyncio.sleep(POLL_INTERVAL)
        else:
            raise InstrumentError(self.label, ":PMU:TEST:STATUS?", "the test never finished")
        data = await inst.ask(f":PMU:DATA:GET {self.pulse_channel}, 0, {MAX_GET}")
        try:
            return self._parse(pieces, data)
        except InstrumentError as bad:
            for channel, _p in channels:  # the unit is not as cached: define everything again next time
                for key in ("sequences", "list"):
                    channel.cache.pop(key, None)
            errors = await inst.read_errors(":PMU:EXECUTE")
            if errors:
                raise InstrumentError(self.label, ":PMU:EXECUTE", "; ".join(f"{c},{m}" for c, m in errors)) from None
            raise bad

    def _parse(self, pieces: list[Piece], data: str) -> Measured:
        try:
            points = [p.split(",") for p in data.split(";") if p.strip()]
            rows = np.array([[float(x) for x in p[:3]] for p in points]).reshape(-1, 3)
            status = [int(float(p[3])) if len(p) > 3 else 0 for p in points]
        except ValueError:
            raise InstrumentError(self.label, ":PMU:DATA:GET", f"unexpected data {data[:80]!r}") from None
        faults = [s for s in status if s & STATUS_FAULTS]
        if faults:
            raise InstrumentError(self.label, ":PMU:DATA:GET", f"{len(faults)} point(s) flag a fault (status "
                                  f"{faults[0]:#010x}: compliance or threshold bits 15-12, overflow bits 11-8)")
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
                if count == 0:
                    raise InstrumentError(self.label, ":PMU:DATA:GET", "no points in a waveform measure window")
                traces.append((rows[at:at + count, 2] - t0, rows[at:at + count, 1].copy()))
                at += count
            t0 = t1
        if at != len(rows):
            raise InstrumentError(self.label, ":PMU:DATA:GET", f"{len(rows)} points for {at} samples")
        return Measured(traces, spots)

    async def off(self) -> None:
        """Output off (immediate on the PMU)."""
        await self.instrument.send(f":PMU:OUTPUT:STATE {self.pulse_channel}, 0")  # type: ignore[attr-defined]
        self.cache["output"] = False

    async def release(self) -> None:
        """Output off and this channel's RPM back to its SMU pathway (the SMU it carries reaches
        the device again); the next run takes the pulse pathway again."""
        if self.cache.get("output") is not False:
            await self.off()
        if self.cache.get("rpm") != RPM_SMU:
            await self.configure(f":PMU:RPM:CONFIGURE PMU1-{self.pulse_channel}, {RPM_SMU}")
            self.cache["rpm"] = RPM_SMU
        self.cache.pop("ready", None)


class Keithley4200A(Instrument):
    """Keithley 4200A-SCS: ``sa[1]``, ``sa[2]`` SMUs; ``sa[101]``, ``sa[102]`` the 4225-PMU's
    channels 1 and 2."""

    idn_pattern = re.compile(r"(?i)KEITHLEY INSTRUMENTS( INC\.?)?,\s*KI4200A?,")
    error_query = ":ERROR:LAST:GET"
    termination = "\0"
    kind = "parameter analyzer"

    def __init__(self, resource: str, *, name: str | None = None,
                 limits: SafetyLimits | dict[int, SafetyLimits] | None = None, timeout: float = 5.0) -> None:
        super().__init__(resource, name=name, limits=limits, timeout=timeout)
        self.cache: dict[str, Any] = {}  # instrument-wide settings of this session (PMU mode, sample rate)
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
        self.cache.clear()
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
