"""Emulated Keithley 2602B System SourceMeter (Series 2600B Reference Manual, 2600BS-901-01), TSP.

Two SMU channels, ``smua`` and ``smub``, programmed in TSP through :mod:`.tsp`. Supported:

    smuX.source.func / levelv / leveli / limiti / limitv / output / delay / rangev / autorangev ...
    smuX.measure.nplc / delay / rangei / autorangei / autozero ...
    smuX.measure.i([buffer]), smuX.measure.v([buffer]), smuX.measure.iv([ibuffer[, vbuffer]])
    smuX.nvbuffer1 / nvbuffer2: .n, .readings, .sourcevalues, .timestamps, [k], .clear()
    smuX.reset(), smuX.OUTPUT_ON / OUTPUT_OFF / OUTPUT_DCVOLTS / OUTPUT_DCAMPS / AUTORANGE_ON ...
    localnode.linefreq, format.asciiprecision, printbuffer(), print(), errorqueue.*, reset()
    the KIGeneral / KIPulse factory functions SweepVLinMeasureI(smu, startv, stopv, stime, points),
    SweepVListMeasureI(smu, vlist, stime, points), PulseVMeasureI(smu, bias, level, ton, toff, points)
    loadscript NAME ... endscript, NAME(), NAME.run()

Voltage source / current measure only (a current source queues -221 when it would drive a cell).
smua is matrix row 1 and smub row 2 of the 3706A bench (bench.py). The factory sweeps hold each
point ``stime`` s plus the aperture (NPLC / line frequency) and leave the output off, at the level it
had before; readings go to smuX.nvbuffer1 (cleared first).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .scpi import Numeric
from .source_meter import LINE_FREQUENCY, SourceMeter
from .tsp import MultipleValues, ReadingBuffer, TspError, TspInstrument, number, runtime_error

VOLTAGE = Numeric(-40.4, 40.4, 0.0, "V")  # 2602B: 40 V range with overrange
CURRENT = Numeric(-3.03, 3.03, 0.0, "A")
CURRENT_LIMIT = Numeric(10e-9, 3.03, 0.1, "A")  # *RST: 100 mA
VOLTAGE_LIMIT = Numeric(0.02, 40.4, 20.0, "V")  # *RST: 20 V
NPLC = Numeric(0.001, 25.0, 1.0)
DELAY = Numeric(0.0, 1e4, 0.0, "S")
POINTS = Numeric(1, 60_000, 1, integer=True)
#: Readings one dedicated buffer holds (the 2600B keeps >60 000 per nonvolatile buffer).
BUFFER_CAPACITY = 60_000
#: Constants of an SMU table, as the manual names them.
CONSTANTS = {"OUTPUT_ON": 1.0, "OUTPUT_OFF": 0.0, "OUTPUT_DCVOLTS": 1.0, "OUTPUT_DCAMPS": 0.0,
             "AUTORANGE_ON": 1.0, "AUTORANGE_OFF": 0.0, "AUTOZERO_OFF": 0.0, "AUTOZERO_ONCE": 1.0,
             "AUTOZERO_AUTO": 2.0, "SENSE_LOCAL": 0.0, "SENSE_REMOTE": 1.0}
#: Attributes accepted and kept without a model behind them (ranges, autorange, autozero, sense).
PLAIN = {("source", "rangev"), ("source", "rangei"), ("source", "autorangev"), ("source", "autorangei"),
         ("measure", "rangev"), ("measure", "rangei"), ("measure", "autorangev"),
         ("measure", "autorangei"), ("measure", "autozero"), ("sense",), ("source", "offmode"),
         ("nvbuffer1", "appendmode"), ("nvbuffer2", "appendmode"), ("nvbuffer1", "collectsourcevalues"),
         ("nvbuffer2", "collectsourcevalues"), ("nvbuffer1", "collecttimestamps"),
         ("nvbuffer2", "collecttimestamps")}


@dataclass
class Smu:
    """One SMU channel's settings."""

    terminal: str
    func: float = 1.0  # OUTPUT_DCVOLTS
    levelv: float = 0.0
    leveli: float = 0.0
    limiti: float = CURRENT_LIMIT.default
    limitv: float = VOLTAGE_LIMIT.default
    output: bool = False
    nplc: float = 1.0
    source_delay: float = 0.0
    measure_delay: float = 0.0
    plain: dict[tuple[str, ...], float] = field(default_factory=dict)
    nvbuffer1: ReadingBuffer = field(default_factory=lambda: ReadingBuffer(BUFFER_CAPACITY))
    nvbuffer2: ReadingBuffer = field(default_factory=lambda: ReadingBuffer(BUFFER_CAPACITY))

    @property
    def aperture(self) -> float:
        return self.nplc / LINE_FREQUENCY


class Keithley2602B(SourceMeter, TspInstrument):
    idn = "Keithley Instruments Inc., Model 2602B, 04512602, 3.3.5"
    name = "smu_2602b"
    VOLTAGE_RANGE = VOLTAGE

    def reset(self) -> None:
        self.smus = {"smua": Smu("smu2600b.a"), "smub": Smu("smu2600b.b")}
        for smu in self.smus.values():
            self._sync(smu)

    def _sync(self, smu: Smu) -> None:
        """What the array sees of a channel: a DC level while the voltage source is on."""
        if smu.terminal in self.bench.dc:
            self.bench.set_dc(smu.terminal, smu.output and smu.func == 1.0, smu.levelv)

    def _system_commands(self) -> list[Any]:
        return []  # TSP only: no :SYST subsystem (SourceMeter adds :SYST:LFR for SCPI models)

    # -- attribute table ----------------------------------------------------------------------------
    def _smu(self, value: Any, name: str) -> Smu:
        for smu in self.smus.values():
            if value is smu:
                return smu
        raise runtime_error(f"bad argument {name} (smua or smub expected)")

    def tsp_get(self, parts: tuple[str | int, ...], name: str) -> Any:
        if parts == ("localnode", "linefreq"):
            return LINE_FREQUENCY
        if parts and parts[0] in self.smus:
            smu = self.smus[str(parts[0])]
            rest = parts[1:]
            if not rest:
                return smu
            if len(rest) == 1 and rest[0] in CONSTANTS:
                return CONSTANTS[str(rest[0])]
            if rest[0] in ("nvbuffer1", "nvbuffer2"):
                return self._buffer_attribute(getattr(smu, str(rest[0])), rest[1:], name)
            value = self._attribute(smu, rest)
            if value is not None:
                return value
        return super().tsp_get(parts, name)

    def _buffer_attribute(self, buf: ReadingBuffer, rest: tuple[str | int, ...], name: str) -> Any:
        if not rest:
            return buf
        if rest == ("n",):
            return float(len(buf.readings))
        if len(rest) == 1 and rest[0] in ("readings", "sourcevalues", "timestamps"):
            return getattr(buf, str(rest[0]))
        if len(rest) == 1 and isinstance(rest[0], int):
            if not 1 <= rest[0] <= len(buf.readings):
                return None  # Lua: an index past the end is nil
            return buf.readings[rest[0] - 1]
        raise runtime_error(f"attempt to index a nil value ({name})")

    @staticmethod
    def _attribute(smu: Smu, rest: tuple[str | int, ...]) -> Any:
        table = {("source", "func"): smu.func, ("source", "levelv"): smu.levelv,
                 ("source", "leveli"): smu.leveli, ("source", "limiti"): smu.limiti,
                 ("source", "limitv"): smu.limitv, ("source", "output"): 1.0 if smu.output else 0.0,
                 ("source", "delay"): smu.source_delay, ("measure", "nplc"): smu.nplc,
                 ("measure", "delay"): smu.measure_delay}
        if rest in table:
            return table[rest]  # type: ignore[index]
        if rest in PLAIN:
            return smu.plain.get(rest, 0.0)  # type: ignore[arg-type]
        return None

    def tsp_set(self, parts: tuple[str | int, ...], value: Any, name: str) -> None:
        if not parts or parts[0] not in self.smus:
            return super().tsp_set(parts, value, name)
        smu = self.smus[str(parts[0])]
        rest = parts[1:]
        v = number(value, name)
        if rest == ("source", "func"):
            if v not in (0.0, 1.0):
                raise TspError(-222, f"{name}={v:g}: smuX.OUTPUT_DCAMPS (0) or smuX.OUTPUT_DCVOLTS (1)")
            smu.func = v
        elif rest == ("source", "levelv"):
            smu.levelv = self._check_voltage(v, name)
        elif rest == ("source", "leveli"):
            smu.leveli = CURRENT.check(v, name)
        elif rest == ("source", "limiti"):
            smu.limiti = CURRENT_LIMIT.check(abs(v), name)
        elif rest == ("source", "limitv"):
            smu.limitv = VOLTAGE_LIMIT.check(abs(v), name)
        elif rest == ("source", "output"):
            if v not in (0.0, 1.0):
                raise TspError(-222, f"{name}={v:g}: smuX.OUTPUT_OFF (0) or smuX.OUTPUT_ON (1)")
            if v == 1.0 and smu.func != 1.0:
                raise TspError(-221, f"{name}: the emulated 2602B sources voltage only (source.func)")
            smu.output = v == 1.0
        elif rest == ("source", "delay"):
            smu.source_delay = DELAY.check(v, name)
        elif rest == ("measure", "nplc"):
            smu.nplc = NPLC.check(v, name)
        elif rest == ("measure", "delay"):
            smu.measure_delay = DELAY.check(v, name)
        elif rest in PLAIN:
            smu.plain[rest] = v  # type: ignore[index]
        else:
            raise runtime_error(f"attempt to assign {name} (not a writable attribute)")
        self._sync(smu)

    def tsp_call(self, parts: tuple[str | int, ...], args: list[Any], name: str) -> Any:
        if name in ("SweepVLinMeasureI", "SweepVListMeasureI", "PulseVMeasureI"):
            return self._factory(name, args)
        if parts and parts[0] in self.smus:
            smu = self.smus[str(parts[0])]
            rest = parts[1:]
            if rest in (("measure", "i"), ("measure", "v"), ("measure", "iv")):
                return self._measure(smu, str(rest[1]), args, name)
            if rest in (("nvbuffer1", "clear"), ("nvbuffer2", "clear")):
                getattr(smu, str(rest[0])).clear()
                return None
            if rest == ("reset",):
                fresh = Smu(smu.terminal)
                self.smus[str(parts[0])] = fresh
                self._sync(fresh)
                return None
        return super().tsp_call(parts, args, name)

    # -- measurements ---------------------------------------------------------------------------------
    def _measure(self, smu: Smu, what: str, args: list[Any], name: str) -> Any:
        if not smu.output:
            raise TspError(-221, f"{name}: output off; turn smuX.source.output on to measure")
        current = self.bench.measure(smu.terminal, smu.levelv, smu.aperture)
        buffers = [a for a in args if a is not None]
        for k, buf in enumerate(buffers):
            if not isinstance(buf, ReadingBuffer):
                raise runtime_error(f"bad argument #{k + 1} to {name} (reading buffer expected)")
        interval = smu.aperture + smu.measure_delay
        if what == "iv":
            if buffers:
                buffers[0].append(current, smu.levelv, interval)
            if len(buffers) > 1:
                buffers[1].append(smu.levelv, smu.levelv, interval)
            return MultipleValues([current, smu.levelv])
        value = current if what == "i" else smu.levelv
        if buffers:
            buffers[0].append(value, smu.levelv, interval)
        return value

    def _factory(self, name: str, args: list[Any]) -> None:
        """The factory-script sweeps and pulse trains; readings into smuX.nvbuffer1."""
        if not args:
            raise runtime_error(f"bad argument #1 to {name} (smua or smub expected)")
        smu = self._smu(args[0], "#1")
        if smu.func != 1.0:
            raise TspError(-221, f"{name}: source.func must be smuX.OUTPUT_DCVOLTS")
        if name == "PulseVMeasureI":
            if len(args) != 6:
                raise runtime_error("PulseVMeasureI(smu, bias, level, ton, toff, points) takes 6 arguments")
            bias = self._check_voltage(number(args[1], "bias"), "bias")
            level = self._check_voltage(number(args[2], "level"), "level")
            ton = DELAY.check(number(args[3], "ton"), "ton")
            toff = DELAY.check(number(args[4], "toff"), "toff")
            points = int(POINTS.check(number(args[5], "points"), "points"))
            self._pulse_train(smu, bias, level, ton, toff, points)
            return
        if name == "SweepVLinMeasureI":
            if len(args) != 5:
                raise runtime_error("SweepVLinMeasureI(smu, startv, stopv, stime, points) takes 5 arguments")
            start = self._check_voltage(number(args[1], "startv"), "startv")
            stop = self._check_voltage(number(args[2], "stopv"), "stopv")
            stime = DELAY.check(number(args[3], "stime"), "stime")
            points = int(Numeric(2, BUFFER_CAPACITY, 2, integer=True).check(number(args[4], "points"), "points"))
            levels = [start + (stop - start) * k / (points - 1) for k in range(points)]
        else:
            if len(args) != 4 or not isinstance(args[1], list):
                raise runtime_error("SweepVListMeasureI(smu, vlist, stime, points) takes 4 arguments, vlist a table")
            stime = DELAY.check(number(args[2], "stime"), "stime")
            points = int(POINTS.check(number(args[3], "points"), "points"))
            if points > len(args[1]):
                raise TspError(-222, f"points={points} exceeds the {len(args[1])} entries of vlist")
            levels = [self._check_voltage(number(v, f"vlist[{k + 1}]"), f"vlist[{k + 1}]")
                      for k, v in enumerate(args[1][:points])]
        dwell = stime + smu.aperture
        smu.output = True
        self._sync(smu)
        try:
            applied, currents = self.bench.sweep(smu.terminal, levels, dwell, smu.limiti)
        finally:
            smu.output = False  # the factory sweeps end with the output off
            self._sync(smu)
        smu.nvbuffer1.clear()
        for v, i in zip(applied, currents):
            smu.nvbuffer1.append(i, v, dwell)

    def _pulse_train(self, smu: Smu, bias: float, level: float, ton: float, toff: float, points: int) -> None:
        """``points`` cycles of: ``bias`` for ``toff`` s, then ``level`` for ``ton`` s with the current
        measured at its end. A 0 V bias applies nothing to a cell (it is not put to the array)."""
        smu.nvbuffer1.clear()
        smu.output = True
        self._sync(smu)
        try:
            for _ in range(points):
                if bias != 0.0:
                    self.bench.sweep(smu.terminal, [bias], toff, smu.limiti)
                _, currents = self.bench.sweep(smu.terminal, [level], ton, smu.limiti)
                smu.nvbuffer1.append(currents[0], level, ton + toff)
        finally:
            smu.output = False
            self._sync(smu)
