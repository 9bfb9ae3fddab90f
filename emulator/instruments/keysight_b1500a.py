"""Emulated Keysight B1500A semiconductor device analyzer: FLEX commands (Programming Guide
B1500-90000) for two SMUs (slots 1, 2) and a B1525A SPGU (slot 3, channel 301 wired), and a B1530A
WGFMU (slot 4, channels 401 and 402) reached the way Keysight's WGFMU library reaches it. The RSU of
channel 402 also carries SMU2 (matrix row E): while 402 is connected in a WGFMU mode the row is the
WGFMU's, otherwise SMU2's.

FLEX messages end in LF; a command has no reply except ``XE`` (the measured data), queries (``ERR?``,
``EMG?``, ``SPST?``, ``*IDN?``) and ``*OPC?``. Errors queue as numbers; ``ERR?`` returns and clears
the oldest four (``0`` where there are none), ``EMG? <code>`` the message of a code.

    SMU     CN [ch...]  CL [ch...]  DV ch,range,V[,Icomp]  DI (refused)  MM 1,ch | MM 2,ch  WV ch,1,range,
            start,stop,steps[,Icomp]  WT hold,delay  AIT type,mode[,N]  AAD ch,type  RI ch,range
            FMT 1|2[,mode]  AV (accepted)  XE
    SPGU    SIM 0  SPRM 1,count  SPPER period  SPM ch,1  SPT ch,1,delay,width,leading[,trailing]
            SPV ch,1,base,peak  SER ch,load  ODSW ch,state[,...]  SPUPD [ch...]  SRP  SPP  SPST?
    WGFMU   WGFMU:CLEAR  WGFMU:MODE ch,mode  WGFMU:MEASMODE ch,mode  WGFMU:CONN ch  WGFMU:DISC ch
            WGFMU:WAVE ch,v0,dt1,v1,dt2,v2,...  WGFMU:EVENT ch,start,points,interval,average
            WGFMU:RUN  WGFMU:STATUS? [ch]  WGFMU:DATA? ch

The WGFMU lines are this emulator's own: the vendor library's wire protocol to the mainframe is
not documented, so the emulated library (labctl.instruments.wgfmu) sends these instead.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import waveform
from .analyzer import AnalyzerError, TranslatingErrorQueue, integer, level, need, number, reading, split_command
from .base import EmulatedInstrument
from .bench import Bench
from .scpi import SCPIError
from .pulse_channel import SOURCE_RESISTANCE
from .source_meter import LINE_FREQUENCY

# FLEX error numbers (B1500 Programming Guide, "Error codes"; emulator's choice where marked).
E_UNDEFINED = 100  # undefined GPIB command
E_PARAMETER = 120  # incorrect numeric parameter
E_CHANNEL = 150  # channel not enabled / not installed (emulator's choice)
E_STATE = 151  # command not allowed in the present state (emulator's choice)
E_WGFMU = 3000  # WGFMU sequence errors (emulator's choice)
E_CHARACTER, E_TOO_LONG, E_OVERFLOW = 101, 102, 103  # emulator's choice
#: The shared transport's SCPI codes in FLEX numbers.
TRANSPORT_CODES = {-101: E_CHARACTER, -223: E_TOO_LONG, -350: E_OVERFLOW, -200: E_STATE}
MESSAGES = {
    E_CHARACTER: "Invalid character in the program message",
    E_TOO_LONG: "Program message too long",
    E_OVERFLOW: "Error queue overflow",
    0: "No error",
    E_UNDEFINED: "Undefined GPIB command",
    E_PARAMETER: "Incorrect numeric parameter",
    E_CHANNEL: "Channel not enabled or not installed",
    E_STATE: "Command not allowed in this state",
    E_WGFMU: "WGFMU sequence error",
}

SMU_SLOTS = (1, 2)
SPGU_CHANNELS = (301,)
WGFMU_CHANNELS = (401, 402)
#: SMU slot -> WGFMU channel whose RSU carries it to the matrix.
SMU_THROUGH_RSU = {2: 402}
WGFMU_OPERATION_MODE_SMU = 2003
SMU_VOLTAGE = 100.0  # V, B1511B MPSMU 100 V range
SMU_CURRENT = 0.1  # A
WGFMU_VOLTAGE = 10.0  # V, force range +-10 V
WGFMU_STEP = 10e-9  # s, time resolution
MAX_SAMPLES = 65536  # per channel and run (the WGFMU holds 4 M; the emulator keeps fewer)
MAX_STEPS = 10001
WGFMU_STATUS_COMPLETED = 10000  # WGFMU_STATUS_COMPLETED


@dataclass
class SMU:
    terminal: str
    connected: bool = False
    forcing: bool = False  # DV since CN: the bench sees its level
    level: float = 0.0
    compliance: float = 1e-4


@dataclass
class SPGU:
    terminal: str
    connected: bool = False
    mode: int = 1
    delay: float = 0.0
    width: float = 1e-6
    leading: float = 2e-8
    trailing: float = 2e-8
    base: float = 0.0
    peak: float = 0.0
    load: float = 50.0  # ohm the SPGU compensates for


@dataclass
class WGFMU:
    terminal: str
    connected: bool = False
    mode: int = 2001  # WGFMU_OPERATION_MODE_FASTIV
    measure: int = 4001  # WGFMU_MEASURE_MODE_CURRENT
    wave: list[tuple[float, float]] = field(default_factory=list)  # (delta time s, V); the first (0, V0)
    events: list[tuple[float, int, float, float]] = field(default_factory=list)
    data: list[tuple[float, float]] = field(default_factory=list)  # (t s, value)


class KeysightB1500A(EmulatedInstrument):
    idn = "Keysight Technologies,B1500A,MY00001500,A.06.03.2022.0308"
    name = "analyzer_b1500a"

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.max_abs_voltage = float(getattr(bench.limits(), "v_max", 10.0))
        super().__init__()
        self.errors = TranslatingErrorQueue(TRANSPORT_CODES)
        self.commands.errors = self.errors

    def reset(self) -> None:
        self.smus = {slot: SMU(f"b1500.smu{slot}") for slot in SMU_SLOTS}
        self.spgus = {ch: SPGU("b1500.spgu") for ch in SPGU_CHANNELS}
        self.wgfmus = {ch: WGFMU("b1500.wgfmu" if ch == 401 else "b1500.wgfmu2") for ch in WGFMU_CHANNELS}
        self.format = 1
        self.nplc = 1.0
        self.measure_mode: tuple[int, int] | None = None  # (mode, channel)
        self.staircase: tuple[int, list[float], float] | None = None
        self.hold = self.delay = 0.0
        self.sim = 0
        self.pulse_count = 1
        self.period = 1e-5
        for smu in self.smus.values():
            self.bench.set_dc(smu.terminal, False, 0.0)

    def power_off(self) -> None:
        self.reset()

    # -- message entry point ----------------------------------------------------------------------
    def execute(self, message: str) -> str | None:
        """Run each ``;``-separated command; a refused one queues its code and the rest still run.
        Returns the reply of the last command that had one."""
        reply: str | None = None
        for command in message.split(";"):
            command = command.strip()
            if not command:
                continue
            try:
                out = self._dispatch(command)
            except (AnalyzerError, SCPIError) as exc:
                # SCPIError: the bench refused (the array's own limits), an execution error here.
                code = exc.code if isinstance(exc, AnalyzerError) else E_STATE
                self.errors.push(code, exc.text if isinstance(exc, AnalyzerError) else exc.detail or exc.text)
                query = "?" in command.split(" ", 1)[0] or command.upper() == "XE"
                out = "" if query else None
            if out is not None:
                reply = out
        return reply

    def _dispatch(self, text: str) -> str | None:
        header, args = split_command(text)
        if header.startswith("WGFMU:"):
            return self._wgfmu(header[6:], args)
        handler = {
            "*IDN?": lambda a: self.idn, "*RST": lambda a: self.reset(), "*OPC?": lambda a: "1",
            "*CLS": lambda a: self.errors.clear(), "ERR?": self._err, "EMG?": self._emg,
            "CN": self._cn, "CL": self._cl, "DV": self._dv, "DI": self._di, "MM": self._mm, "WV": self._wv,
            "WT": self._wt, "AIT": self._ait, "FMT": self._fmt, "XE": self._xe,
            "AAD": self._accept, "RI": self._accept, "AV": self._accept, "CMM": self._accept,
            "SIM": self._sim, "SPRM": self._sprm, "SPPER": self._spper, "SPM": self._spm, "SPT": self._spt,
            "SPV": self._spv, "SER": self._ser, "ODSW": self._accept, "SPUPD": self._accept,
            "SRP": self._srp, "SPP": self._accept, "SPST?": lambda a: "0",
        }.get(header)
        if handler is None:
            raise AnalyzerError(E_UNDEFINED, f"undefined command {header[:40]!r}")
        return handler(args)

    @staticmethod
    def _accept(args: list[str]) -> None:
        """Settings the emulator takes and ignores (ranges, ADC choice, averaging, pulse switch)."""

    def _err(self, args: list[str]) -> str:
        codes = [self.errors.pop()[0] for _ in range(4)]
        return ",".join(str(c) for c in codes)

    def _emg(self, args: list[str]) -> str:
        need(args, 1, "EMG?", E_PARAMETER)
        code = integer(args[0], "error code", -(10**6), 10**6, E_PARAMETER)
        return f'"{MESSAGES.get(code, "Unknown error")}"'

    # -- channels ---------------------------------------------------------------------------------
    def _channels(self, args: list[str]) -> list[object]:
        everything = [*self.smus.values(), *self.spgus.values()]
        if not args:
            return everything
        out: list[object] = []
        for a in args:
            ch = integer(a, "channel", 1, 10002, E_PARAMETER)
            target = self.smus.get(ch) or self.spgus.get(ch)
            if target is None:
                raise AnalyzerError(E_CHANNEL, f"channel {ch} is not installed (SMU 1, 2; SPGU 301)")
            out.append(target)
        return out

    def _cn(self, args: list[str]) -> None:
        for ch in self._channels(args):
            ch.connected = True  # type: ignore[attr-defined]

    def _cl(self, args: list[str]) -> None:
        for ch in self._channels(args):
            ch.connected = False  # type: ignore[attr-defined]
            if isinstance(ch, SMU):
                ch.level, ch.forcing = 0.0, False
                self._drive(ch)

    def _smu(self, text: str, connected: bool = True) -> SMU:
        slot = integer(text, "channel", 1, 10, E_PARAMETER)
        smu = self.smus.get(slot)
        if smu is None:
            raise AnalyzerError(E_CHANNEL, f"channel {slot} is not an installed SMU (1, 2)")
        if connected and not smu.connected:
            raise AnalyzerError(E_CHANNEL, f"channel {slot} is not enabled (send CN {slot})")
        return smu

    def _level(self, text: str, name: str, limit: float) -> float:
        return level(text, name, limit, self.max_abs_voltage, E_PARAMETER)

    def _dv(self, args: list[str]) -> None:
        need(args, 3, "DV", E_PARAMETER)
        smu = self._smu(args[0])
        integer(args[1], "range", 0, 20, E_PARAMETER)
        level = self._level(args[2], "DV output", SMU_VOLTAGE)
        if len(args) > 3:
            smu.compliance = number(args[3], "DV Icomp", 1e-12, SMU_CURRENT, E_PARAMETER)
        smu.level, smu.forcing = level, True
        self._drive(smu)

    def _drive(self, smu: SMU) -> None:
        """The bench sees a forcing SMU's level unless the RSU that carries it has given the row to
        its WGFMU channel (connected in a WGFMU mode)."""
        rsu = self.wgfmus.get(SMU_THROUGH_RSU.get(int(smu.terminal[-1]), 0))
        held = rsu is not None and rsu.connected and rsu.mode != WGFMU_OPERATION_MODE_SMU
        self.bench.set_dc(smu.terminal, smu.forcing and not held, smu.level)

    def _di(self, args: list[str]) -> None:
        raise AnalyzerError(E_STATE, "DI: current sourcing is not emulated (the array is driven by voltage)")

    def _mm(self, args: list[str]) -> None:
        need(args, 2, "MM", E_PARAMETER)
        mode = integer(args[0], "measurement mode", 1, 27, E_PARAMETER)
        if mode not in (1, 2):
            raise AnalyzerError(E_STATE, f"MM {mode}: only spot (1) and staircase sweep (2) are emulated")
        self._smu(args[1], connected=False)
        self.measure_mode = (mode, int(float(args[1])))

    def _wv(self, args: list[str]) -> None:
        need(args, 6, "WV", E_PARAMETER)
        slot = integer(args[0], "channel", 1, 2, E_CHANNEL)
        if integer(args[1], "sweep mode", 1, 4, E_PARAMETER) != 1:
            raise AnalyzerError(E_STATE, "WV: only linear single sweeps (mode 1) are emulated")
        integer(args[2], "range", 0, 20, E_PARAMETER)
        start = self._level(args[3], "start", SMU_VOLTAGE)
        stop = self._level(args[4], "stop", SMU_VOLTAGE)
        steps = integer(args[5], "steps", 1, MAX_STEPS, E_PARAMETER)
        compliance = number(args[6], "Icomp", 1e-12, SMU_CURRENT, E_PARAMETER) if len(args) > 6 else 1e-4
        points = [start] if steps == 1 else [start + (stop - start) * k / (steps - 1) for k in range(steps)]
        self.staircase = (slot, points, compliance)

    def _wt(self, args: list[str]) -> None:
        need(args, 2, "WT", E_PARAMETER)
        self.hold = number(args[0], "hold", 0.0, 655.35, E_PARAMETER)
        self.delay = number(args[1], "delay", 0.0, 65.535, E_PARAMETER)

    def _ait(self, args: list[str]) -> None:
        need(args, 2, "AIT", E_PARAMETER)
        integer(args[0], "ADC type", 0, 2, E_PARAMETER)
        mode = integer(args[1], "ADC mode", 0, 3, E_PARAMETER)
        if mode == 2:  # PLC mode: N power-line cycles
            need(args, 3, "AIT", E_PARAMETER)
            self.nplc = number(args[2], "NPLC", 1.0, 100.0, E_PARAMETER)
        elif mode == 3:  # time mode: integration time in s
            need(args, 3, "AIT", E_PARAMETER)
            self.nplc = number(args[2], "integration time", 2e-6, 0.02, E_PARAMETER) * LINE_FREQUENCY

    def _fmt(self, args: list[str]) -> None:
        need(args, 1, "FMT", E_PARAMETER)
        fmt = integer(args[0], "format", 1, 25, E_PARAMETER)
        if fmt not in (1, 2):
            raise AnalyzerError(E_STATE, f"FMT {fmt}: only ASCII with (1) or without (2) header is emulated")
        self.format = fmt

    def _value(self, slot: int, current: float, compliance: float) -> str:
        status = "C" if abs(current) >= compliance else "N"
        if status == "C":
            current = math.copysign(compliance, current)
        return (f"{status}{'ABCDEFGHIJ'[slot - 1]}I" if self.format == 1 else "") + reading(current)

    def _xe(self, args: list[str]) -> str:
        if self.measure_mode is None:
            raise AnalyzerError(E_STATE, "XE: no measurement mode (MM)")
        mode, slot = self.measure_mode
        smu = self._smu(str(slot))
        if mode == 1:
            current = self.bench.measure(smu.terminal, smu.level, self.nplc / LINE_FREQUENCY)
            return self._value(slot, current, smu.compliance)
        if self.staircase is None or self.staircase[0] != slot:
            raise AnalyzerError(E_STATE, f"XE: no staircase sweep (WV) on channel {slot}")
        _, points, compliance = self.staircase
        dwell = self.delay + self.nplc / LINE_FREQUENCY
        _applied, currents = self.bench.sweep(smu.terminal, points, dwell, compliance)
        smu.forcing = True
        self._drive(smu)  # back to its DV level after the sweep
        return ",".join(self._value(slot, i, compliance) for i in currents)

    # -- SPGU -------------------------------------------------------------------------------------
    def _spgu(self, text: str) -> SPGU:
        ch = integer(text, "channel", 101, 1002, E_PARAMETER)
        if ch not in self.spgus:
            raise AnalyzerError(E_CHANNEL, f"SPGU channel {ch} is not wired (301)")
        return self.spgus[ch]

    def _sim(self, args: list[str]) -> None:
        need(args, 1, "SIM", E_PARAMETER)
        if integer(args[0], "SPGU mode", 0, 1, E_PARAMETER) != 0:
            raise AnalyzerError(E_STATE, "SIM 1 (arbitrary linear waveform) is not emulated; use SIM 0")
        self.sim = 0

    def _sprm(self, args: list[str]) -> None:
        need(args, 1, "SPRM", E_PARAMETER)
        mode = integer(args[0], "operation mode", 0, 2, E_PARAMETER)
        if mode != 1:
            raise AnalyzerError(E_STATE, "SPRM: only the count mode (1) is emulated (a free run has no end)")
        need(args, 2, "SPRM", E_PARAMETER)
        self.pulse_count = integer(args[1], "pulse count", 1, 1_000_000, E_PARAMETER)

    def _spper(self, args: list[str]) -> None:
        need(args, 1, "SPPER", E_PARAMETER)
        self.period = number(args[0], "pulse period", 2e-8, 10.0, E_PARAMETER)

    def _spm(self, args: list[str]) -> None:
        need(args, 2, "SPM", E_PARAMETER)
        spgu = self._spgu(args[0])
        mode = integer(args[1], "output mode", 0, 3, E_PARAMETER)
        if mode != 1:
            raise AnalyzerError(E_STATE, "SPM: only the 2-level pulse mode (1) is emulated")
        spgu.mode = mode

    def _spt(self, args: list[str]) -> None:
        need(args, 5, "SPT", E_PARAMETER)
        spgu = self._spgu(args[0])
        integer(args[1], "source", 1, 1, E_PARAMETER)
        spgu.delay = number(args[2], "delay", 0.0, 10.0, E_PARAMETER)
        spgu.width = number(args[3], "width", 1e-8, 10.0, E_PARAMETER)
        spgu.leading = number(args[4], "leading", 8e-9, 0.4, E_PARAMETER)
        spgu.trailing = number(args[5], "trailing", 8e-9, 0.4, E_PARAMETER) if len(args) > 5 else spgu.leading

    def _spv(self, args: list[str]) -> None:
        need(args, 4, "SPV", E_PARAMETER)
        spgu = self._spgu(args[0])
        integer(args[1], "source", 1, 1, E_PARAMETER)
        base = number(args[2], "base", -40.0, 40.0, E_PARAMETER)
        peak = number(args[3], "peak", -40.0, 40.0, E_PARAMETER)
        factor = (spgu.load + SOURCE_RESISTANCE) / spgu.load
        for name, v in (("base", base), ("peak", peak)):
            if abs(v * factor) > self.max_abs_voltage:
                raise AnalyzerError(E_PARAMETER, f"{name} {v:g} V gives {v * factor:g} V at the cell, beyond "
                                    f"the bench limit {self.max_abs_voltage:g} V")
        spgu.base, spgu.peak = base, peak

    def _ser(self, args: list[str]) -> None:
        need(args, 2, "SER", E_PARAMETER)
        spgu = self._spgu(args[0])
        spgu.load = number(args[1], "load impedance", 0.1, 1e6, E_PARAMETER)

    def _srp(self, args: list[str]) -> None:
        """Start the pulse output: ``pulse_count`` pulses on every connected SPGU channel. The SPGU
        assumes the load SER declares; into the array's high impedance its open-circuit level is
        (load + 50) / load times the programmed one (docs/instruments.md)."""
        for spgu in self.spgus.values():
            if not spgu.connected:
                continue
            if spgu.width + spgu.delay >= self.period:
                raise AnalyzerError(E_STATE, f"SPT width {spgu.width:g} s does not fit the period {self.period:g} s")
            factor = (spgu.load + SOURCE_RESISTANCE) / spgu.load
            if abs(spgu.base * factor) > 1e-3:
                raise AnalyzerError(E_STATE, "SRP: the emulator models pulses on a 0 V base only")
            if spgu.peak != 0.0:
                self.bench.pulse(spgu.terminal, spgu.peak * factor, spgu.width, self.pulse_count, self.period)

    # -- WGFMU (emulator-private lines used by the emulated WGFMU library) ------------------------
    def _wg(self, text: str) -> WGFMU:
        ch = integer(text, "channel", 101, 1002, E_PARAMETER)
        if ch not in self.wgfmus:
            raise AnalyzerError(E_CHANNEL, f"WGFMU channel {ch} is not wired (401)")
        return self.wgfmus[ch]

    def _wgfmu(self, sub: str, args: list[str]) -> str | None:
        if sub == "CLEAR":
            for wg in self.wgfmus.values():
                wg.wave, wg.events, wg.data = [], [], []
            return None
        if sub == "RUN":
            running = [wg for wg in self.wgfmus.values() if wg.connected and wg.wave]
            compiled = [self._compile(wg) for wg in running]  # every channel checked before any runs
            gates = {wg.terminal: pieces for wg, (pieces, _t) in zip(running, compiled)}
            for wg, (pieces, times) in zip(running, compiled):
                self._run(wg, pieces, times, gates)
            return None
        if sub == "STATUS?" and not args:  # the whole module: completed (a run ends within RUN)
            return str(WGFMU_STATUS_COMPLETED)
        need(args, 1, f"WGFMU:{sub}", E_PARAMETER)
        wg = self._wg(args[0])
        if sub == "MODE":
            need(args, 2, "WGFMU:MODE", E_PARAMETER)
            wg.mode = integer(args[1], "operation mode", 2000, 2003, E_PARAMETER)
            self._rsu_changed(wg)
        elif sub == "MEASMODE":
            need(args, 2, "WGFMU:MEASMODE", E_PARAMETER)
            wg.measure = integer(args[1], "measure mode", 4000, 4001, E_PARAMETER)
        elif sub in ("CONN", "DISC"):
            wg.connected = sub == "CONN"
            self._rsu_changed(wg)
        elif sub == "WAVE":  # <initial V>, then (<delta time s>, <V>) per vector
            values = args[1:]
            if len(values) < 3 or len(values) % 2 == 0 or len(values) > 2 * MAX_SAMPLES:
                raise AnalyzerError(E_WGFMU, "WGFMU:WAVE: an initial voltage and 1 to 65535 (delta time, voltage) vectors")
            wave = [(0.0, self._level(values[0], "voltage", WGFMU_VOLTAGE))]
            for k in range(1, len(values), 2):
                wave.append((number(values[k], "delta time", WGFMU_STEP, 1e4, E_WGFMU),
                             self._level(values[k + 1], "voltage", WGFMU_VOLTAGE)))
            wg.wave = wave
        elif sub == "EVENT":
            need(args, 5, "WGFMU:EVENT", E_PARAMETER)
            start = number(args[1], "start", 0.0, 1e4, E_WGFMU)
            points = integer(args[2], "points", 1, MAX_SAMPLES, E_WGFMU)
            interval = number(args[3], "interval", WGFMU_STEP, 1e4, E_WGFMU)
            average = number(args[4], "average", 0.0, 1e4, E_WGFMU)
            if average > interval:
                raise AnalyzerError(E_WGFMU, f"WGFMU:EVENT: average {average:g} s exceeds the interval {interval:g} s")
            wg.events.append((start, points, interval, average))
        elif sub == "STATUS?":
            return str(WGFMU_STATUS_COMPLETED)
        elif sub == "DATA?":
            return ";".join(f"{reading(t)},{reading(v)}" for t, v in wg.data)
        else:
            raise AnalyzerError(E_UNDEFINED, f"undefined command WGFMU:{sub[:40]}")
        return None

    def _rsu_changed(self, wg: WGFMU) -> None:
        for slot, channel in SMU_THROUGH_RSU.items():
            if self.wgfmus[channel] is wg:
                self._drive(self.smus[slot])

    def _compile(self, wg: WGFMU) -> tuple[list[waveform.Piece], np.ndarray]:
        """The channel's waveform and the sample instants of its events, checked."""
        if wg.mode != 2001 or wg.measure != 4001:
            raise AnalyzerError(E_WGFMU, "WGFMU:RUN: the emulator runs the Fast IV mode with current measurement")
        pieces = [waveform.Piece(a[1], b[1], b[0]) for a, b in zip(wg.wave, wg.wave[1:])]
        end = math.fsum(p.duration for p in pieces)
        times: list[float] = []
        for start, points, interval, average in wg.events:
            for k in range(points):
                t = start + k * interval + average / 2  # the middle of each averaging window
                if t > end:
                    raise AnalyzerError(E_WGFMU, f"measure event at {t:g} s beyond the pattern's end {end:g} s")
                times.append(t)
        if len(times) > MAX_SAMPLES:
            raise AnalyzerError(E_WGFMU, f"{len(times)} samples exceed {MAX_SAMPLES}")
        return pieces, np.array(times)

    def _run(self, wg: WGFMU, pieces: list[waveform.Piece], t_arr: np.ndarray,
             gates: dict[str, list[waveform.Piece]]) -> None:
        """Apply the channel's waveform with the other running channels as gates; keep its samples."""
        order = np.argsort(t_arr, kind="stable")
        values = np.empty(t_arr.size)
        values[order] = waveform.run(self.bench, wg.terminal, pieces, t_arr[order], gates)
        wg.data = list(zip(t_arr.tolist(), values.tolist()))
