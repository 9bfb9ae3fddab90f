"""Emulated Keithley 2450 SourceMeter, SCPI command set (Reference Manual 2450-901-01).

Voltage source / current measure, which is what array work needs. Supported subsystems: SOURce
(function, level, current limit ILIMit, range, delay, LIST, SWEep:VOLTage:LINear/LINear:STEP/LIST),
SENSe (function, NPLCycles, range), OUTPut, READ?, MEASure?, INITiate, ABORt, TRACe (ACTual?, DATA?,
CLEar), SYSTem (ERRor, CLEar, LFRequency?). Its FORCE HI is matrix row A (see bench.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from .scpi import (
    Command,
    Numeric,
    SCPIError,
    fmt,
    fmt_reading,
    need_args,
    parse_bool,
    parse_choice,
    unquote,
)
from .source_meter import LINE_FREQUENCY, SourceMeter

CURRENT_LIMIT = Numeric(1e-9, 1.05, 1.05e-4, "A")  # default ILIM 105 uA
NPLC = Numeric(0.01, 10.0, 1.0)
DELAY = Numeric(0.0, 1e4, 0.0, "S")
POINTS = Numeric(2, 1e6, 2, integer=True)  # reference manual: <points> 2 to 1e6
COUNT = Numeric(1, 1e6, 1, integer=True)
#: Readings one trigger model may produce (points x count x 2 for a dual sweep), and source-list
#: length: the capacity of defbuffer1 after *RST (100 000 readings). The instrument refuses a
#: sweep its buffer cannot hold (-225 "Out of memory") before anything is allocated.
MAX_READINGS = 100_000


@dataclass
class Reading:
    current: float  # A
    source: float  # V
    time: float  # s, relative to the first reading in the buffer


class Keithley2450(SourceMeter):
    idn = "KEITHLEY INSTRUMENTS,MODEL 2450,04512450,1.7.12b"
    name = "smu_2450"
    terminal = "smu2450"

    # -- state ------------------------------------------------------------------------------------
    def reset(self) -> None:
        self.source_function = "VOLT"
        self.level = 0.0
        self.ilim = CURRENT_LIMIT.default
        self.nplc = NPLC.default
        self.delay = 0.0
        self.output = False
        self.sense_function = "CURR"
        self.source_list: list[float] = []
        self.sweep_points: list[float] | None = None  # armed trigger model, if any
        self.buffer: list[Reading] = []
        self._sync_bench()

    def power_off(self) -> None:
        self.reset()

    def _sync_bench(self) -> None:
        self.bench.set_dc(self.terminal, self.output, self.level)

    @property
    def aperture(self) -> float:
        """Integration time of one reading, s."""
        return self.nplc / LINE_FREQUENCY

    def _need_voltage_source(self) -> None:
        if self.source_function != "VOLT":
            raise SCPIError(-221, "emulated 2450 measures the array with a voltage source only")

    # -- measurement --------------------------------------------------------------------------------
    def _measure(self) -> float:
        self._need_voltage_source()
        if not self.output:
            raise SCPIError(-200, "output off; turn the output on to measure")
        current = self.bench.measure(self.terminal, self.level, self.aperture)
        # Buffer time stamps count the modeled reading times; the array's virtual clock is not
        # moved by instruments (only the host's wait does), so it cannot serve here.
        t = self.buffer[-1].time + self.aperture if self.buffer else 0.0
        self.buffer.append(Reading(current, self.level, t))
        return current

    def _run_sweep(self) -> None:
        self._need_voltage_source()
        points = self.sweep_points if self.sweep_points is not None else [self.level]
        dwell = max(self.delay, 0.0) + self.aperture
        applied, currents = self.bench.sweep(self.terminal, points, dwell, self.ilim)
        t0 = self.buffer[-1].time + dwell if self.buffer else 0.0
        for k, (v, i) in enumerate(zip(applied, currents)):
            self.buffer.append(Reading(i, v, t0 + k * dwell))
        # The trigger model leaves the output on at the bias level, as the instrument does.
        self.output = True
        self._sync_bench()

    # -- command table ------------------------------------------------------------------------------
    def command_table(self) -> list[Command]:
        def set_func(_s: list[int], a: list[str]) -> None:
            need_args(a, 1, "SOUR:FUNC")
            self.source_function = parse_choice(a[0], ("VOLTage", "CURRent"), "SOUR:FUNC")

        def set_level(_s: list[int], a: list[str]) -> None:
            need_args(a, 1, "SOUR:VOLT")
            self.level = self._voltage(a[0], "SOUR:VOLT")
            self._sync_bench()

        def set_ilim(_s: list[int], a: list[str]) -> None:
            need_args(a, 1, "SOUR:VOLT:ILIM")
            self.ilim = CURRENT_LIMIT.parse(a[0], "SOUR:VOLT:ILIM")

        def set_nplc(_s: list[int], a: list[str]) -> None:
            need_args(a, 1, "SENS:CURR:NPLC")
            self.nplc = NPLC.parse(a[0], "SENS:CURR:NPLC")

        def set_delay(_s: list[int], a: list[str]) -> None:
            need_args(a, 1, "SOUR:VOLT:DEL")
            self.delay = DELAY.parse(a[0], "SOUR:VOLT:DEL")

        def set_output(_s: list[int], a: list[str]) -> None:
            need_args(a, 1, "OUTP")
            self.output = parse_bool(a[0], "OUTP")
            self._sync_bench()

        def set_sense(_s: list[int], a: list[str]) -> None:
            need_args(a, 1, "SENS:FUNC")
            self.sense_function = parse_choice(
                unquote(a[0]).split(":")[0], ("CURRent", "VOLTage", "RESistance"), "SENS:FUNC"
            )

        def set_list(_s: list[int], a: list[str]) -> None:
            _check_readings(len(a), "SOUR:LIST:VOLT")
            self.source_list = [self._voltage(x, "SOUR:LIST:VOLT") for x in a]
            if not self.source_list:
                raise SCPIError(-109, "SOUR:LIST:VOLT needs at least one value")

        def append_list(_s: list[int], a: list[str]) -> None:
            _check_readings(len(self.source_list) + len(a), "SOUR:LIST:VOLT:APP")
            self.source_list += [self._voltage(x, "SOUR:LIST:VOLT:APP") for x in a]

        def sweep_linear(_s: list[int], a: list[str]) -> None:
            need_args(a, 3, "SOUR:SWE:VOLT:LIN")
            start = self._voltage(a[0], "start")
            stop = self._voltage(a[1], "stop")
            n = int(POINTS.parse(a[2], "points"))
            self._check_sweep_size(n, a[3:])
            self._arm_sweep([start + (stop - start) * k / (n - 1) for k in range(n)], a[3:])

        def sweep_step(_s: list[int], a: list[str]) -> None:
            need_args(a, 3, "SOUR:SWE:VOLT:LIN:STEP")
            start = self._voltage(a[0], "start")
            stop = self._voltage(a[1], "stop")
            step = float(Numeric(-420.0, 420.0, 0.0, "V").parse(a[2], "step"))
            if step == 0 or (stop - start) * step < 0:
                raise SCPIError(-222, f"step={step:g} V does not lead from {start:g} to {stop:g} V")
            n = int(abs(stop - start) / abs(step) + 1e-9) + 1
            if n > POINTS.maximum:
                raise SCPIError(-222, f"{n} points (step={step:g} V) outside [2, {POINTS.maximum:g}]")
            self._check_sweep_size(n, a[3:])
            self._arm_sweep([start + k * step for k in range(n)], a[3:])

        def sweep_list(_s: list[int], a: list[str]) -> None:
            need_args(a, 1, "SOUR:SWE:VOLT:LIST")
            if not self.source_list:
                raise SCPIError(-221, "source list is empty; send :SOUR:LIST:VOLT first")
            first = int(Numeric(1, len(self.source_list), 1, integer=True).parse(a[0], "startIndex"))
            # LIST takes <startIndex>, <delay>, <count>, <failAbort>: no rangeType or dual.
            self._check_sweep_size(len(self.source_list) - first + 1, a[1:3])
            self._arm_sweep(self.source_list[first - 1:], a[1:3])

        def read(_s: list[int], a: list[str]) -> str:
            return fmt_reading(self._measure())

        def measure_current(_s: list[int], a: list[str]) -> str:
            self.sense_function = "CURR"
            return fmt_reading(self._measure())

        def initiate(_s: list[int], a: list[str]) -> None:
            self._run_sweep()

        def trace_actual(_s: list[int], a: list[str]) -> str:
            self._buffer_name(a[:1])
            return str(len(self.buffer))

        def trace_data(_s: list[int], a: list[str]) -> str:
            need_args(a, 2, "TRAC:DATA?")
            n = len(self.buffer)
            if n == 0:
                raise SCPIError(-222, "TRAC:DATA?: buffer is empty")
            index = Numeric(1, n, 1, integer=True)
            first = int(index.parse(a[0], "start"))
            last = int(index.parse(a[1], "end"))
            if last < first:
                raise SCPIError(-222, f"TRAC:DATA?: end {last} before start {first}")
            self._buffer_name(a[2:3])
            elements = [parse_choice(e, ("READing", "SOURce", "RELative"), "element") for e in a[3:]]
            elements = elements or ["READ"]
            values: list[str] = []
            for reading in self.buffer[first - 1:last]:
                for e in elements:
                    values.append(fmt_reading(
                        {"READ": reading.current, "SOUR": reading.source, "REL": reading.time}[e]))
            return ",".join(values)

        def trace_clear(_s: list[int], a: list[str]) -> None:
            self._buffer_name(a[:1])
            self.buffer.clear()

        accept = self.accept
        return [
            Command("[:SOURce[1]]:FUNCtion[:MODE]", write=set_func, query=lambda s, a: self.source_function),
            Command("[:SOURce[1]]:VOLTage[:LEVel][:IMMediate][:AMPLitude]", write=set_level,
                    query=lambda s, a: fmt(self.level)),
            Command("[:SOURce[1]]:VOLTage:ILIMit[:LEVel]", write=set_ilim, query=lambda s, a: fmt(self.ilim)),
            Command("[:SOURce[1]]:VOLTage:DELay", write=set_delay, query=lambda s, a: fmt(self.delay)),
            Command("[:SOURce[1]]:VOLTage:RANGe", write=accept, query=lambda s, a: fmt(20.0)),
            Command("[:SOURce[1]]:VOLTage:RANGe:AUTO", write=accept, query=lambda s, a: "1"),
            Command("[:SOURce[1]]:LIST:VOLTage", write=set_list,
                    query=lambda s, a: ",".join(fmt(v) for v in self.source_list)),
            Command("[:SOURce[1]]:LIST:VOLTage:APPend", write=append_list),
            Command("[:SOURce[1]]:LIST:VOLTage:POINts", query=lambda s, a: str(len(self.source_list))),
            Command("[:SOURce[1]]:SWEep:VOLTage:LINear", write=sweep_linear),
            Command("[:SOURce[1]]:SWEep:VOLTage:LINear:STEP", write=sweep_step),
            Command("[:SOURce[1]]:SWEep:VOLTage:LIST", write=sweep_list),
            Command("[:SENSe[1]]:FUNCtion[:ON]", write=set_sense, query=lambda s, a: f'"{self.sense_function}:DC"'),
            Command("[:SENSe[1]]:CURRent[:DC]:NPLCycles", write=set_nplc, query=lambda s, a: fmt(self.nplc)),
            Command("[:SENSe[1]]:CURRent[:DC]:RANGe[:UPPer]", write=accept, query=lambda s, a: fmt(1e-4)),
            Command("[:SENSe[1]]:CURRent[:DC]:RANGe:AUTO", write=accept, query=lambda s, a: "1"),
            Command("[:SENSe[1]]:CURRent[:DC]:RSENse", write=accept, query=lambda s, a: "0"),
            Command(":OUTPut[1][:STATe]", write=set_output, query=lambda s, a: "1" if self.output else "0"),
            Command(":READ", query=read),
            Command(":MEASure:CURRent[:DC]", query=measure_current),
            Command(":MEASure", query=read),
            Command(":INITiate[:IMMediate]", write=initiate),
            Command(":ABORt", write=accept),
            Command(":TRACe:ACTual", query=trace_actual),
            Command(":TRACe:DATA", query=trace_data),
            Command(":TRACe:CLEar", write=trace_clear),
            Command(":FORMat[:DATA]", write=accept, query=lambda s, a: "ASC"),
        ]

    def _buffer_name(self, args: list[str]) -> None:
        if args and unquote(args[0]).lower() not in ("defbuffer1", "defbuffer2"):
            raise SCPIError(-222, f"reading buffer {args[0]} does not exist (defbuffer1, defbuffer2)")

    @staticmethod
    def _check_sweep_size(points: int, extra: list[str]) -> None:
        """Refuse a sweep of ``points`` with <delay>, <count>, ..., <dual> ``extra`` whose readings
        would not fit defbuffer1 (:data:`MAX_READINGS`)."""
        count = int(COUNT.parse(extra[1], "count")) if len(extra) > 1 else 1
        dual = len(extra) > 4 and parse_bool(extra[4], "dual")
        _check_readings(points * count * (2 if dual else 1), "sweep")

    def _arm_sweep(self, points: list[float], extra: list[str]) -> None:
        """Store a sweep trigger model; ``extra`` are <delay>[, <count>[, ...]]."""
        delay = DELAY.parse(extra[0], "delay") if extra and extra[0].strip() else self.delay
        count = int(COUNT.parse(extra[1], "count")) if len(extra) > 1 else 1
        # LINear and LINear:STEP: <rangeType>, <failAbort>, <dual> follow; dual ON sweeps back.
        if len(extra) > 4 and parse_bool(extra[4], "dual"):
            points = points + points[::-1]
        self.delay = delay
        self.sweep_points = points * count
        self.buffer.clear()  # configuring a sweep clears the default buffer


def _check_readings(readings: int, name: str) -> None:
    if readings > MAX_READINGS:
        raise SCPIError(-225, f"{name}: {readings} readings exceed the buffer of {MAX_READINGS}")
