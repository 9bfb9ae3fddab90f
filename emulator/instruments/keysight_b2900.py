"""Emulated Keysight B2902A Precision Source/Measure Unit, two channels (B2900 SCPI Command Reference).

Per channel: SOURce:FUNCtion:MODE, VOLTage level / MODE FIXed|SWEep|LIST / STARt / STOP / POINts,
SWEep:POINts, LIST:VOLTage, SENSe:FUNCtion, CURRent:PROTection (compliance), CURRent:NPLCycles,
OUTPut, TRIGger:COUNt / SOURce / TIMer, INITiate, FETCh:ARRay, MEASure, FORMat:ELEMents:SENSe.
Channel 1 HIGH is matrix row B, channel 2 HIGH row C (the gate supply in the default station).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .scpi import (
    Command,
    Numeric,
    SCPIError,
    channel_list,
    fmt,
    fmt_reading,
    need_args,
    parse_bool,
    parse_choice,
)
from .source_meter import LINE_FREQUENCY, SourceMeter

COMPLIANCE = Numeric(1e-9, 3.03, 1e-4, "A")  # default 100 uA
NPLC = Numeric(4e-4, 100.0, 1.0)
POINTS = Numeric(1, 100_000, 1, integer=True)
COUNT = Numeric(1, 100_000, 1, integer=True)
TIMER = Numeric(1e-5, 1e5, 1e-3, "S")
DELAY = Numeric(0.0, 100.0, 0.0, "S")
CHANNELS = (1, 2)


@dataclass
class Channel:
    """Settings and results of one SMU channel."""

    terminal: str
    function: str = "VOLT"
    level: float = 0.0
    mode: str = "FIX"  # FIXed | SWEep | LIST
    start: float = 0.0
    stop: float = 0.0
    points: int = 1
    source_list: list[float] = field(default_factory=list)
    compliance: float = COMPLIANCE.default
    nplc: float = NPLC.default
    output: bool = False
    trigger_count: int = 1
    trigger_source: str = "AINT"
    timer: float = TIMER.default
    delay: float = 0.0
    currents: list[float] = field(default_factory=list)
    voltages: list[float] = field(default_factory=list)

    @property
    def aperture(self) -> float:
        return self.nplc / LINE_FREQUENCY


class KeysightB2902A(SourceMeter):
    idn = "Keysight Technologies,B2902A,MY51140290,3.4.2011.5100"
    name = "smu_b2902a"
    signed_error_codes = True

    def reset(self) -> None:
        self.channels = {n: Channel(terminal=f"b2900.{n}") for n in CHANNELS}
        self.elements = ["VOLT", "CURR"]
        for n in CHANNELS:
            self._sync(n)

    def _sync(self, n: int) -> None:
        ch = self.channels[n]
        self.bench.set_dc(ch.terminal, ch.output, ch.level)

    def _chans(self, args: list[str], default: int = 1) -> list[int]:
        return channel_list(args[0], CHANNELS, "channel list") if args else [default]

    # -- actions ----------------------------------------------------------------------------------
    def _points(self, ch: Channel) -> list[float]:
        if ch.mode == "SWE":
            if ch.points == 1:
                return [ch.start] * ch.trigger_count
            # Level k of a linear staircase, computed as labctl's driver does, so that a sweep
            # sent as a staircase applies bit for bit the voltages the host asked for.
            base = [ch.start + (ch.stop - ch.start) * k / (ch.points - 1) for k in range(ch.points)]
        elif ch.mode == "LIST":
            if not ch.source_list:
                raise SCPIError(-221, "LIST mode with an empty source list")
            base = list(ch.source_list)
        else:
            base = [ch.level]
        # Each trigger advances one point; a count beyond the points repeats the sequence.
        count = max(ch.trigger_count, 1)
        return [base[k % len(base)] for k in range(max(count, 1))]

    def _initiate(self, n: int) -> None:
        ch = self.channels[n]
        if ch.function != "VOLT":
            raise SCPIError(-221, "emulated B2902A measures the array with a voltage source only")
        points = self._points(ch)
        dwell = ch.delay + max(ch.aperture, ch.timer if ch.trigger_source == "TIM" else 0.0)
        # Automatic output-on at INIT (OUTPut:ON:AUTO is ON by default).
        ch.output = True
        self._sync(n)
        applied, currents = self.bench.sweep(ch.terminal, points, dwell, ch.compliance)
        ch.voltages, ch.currents = applied, currents

    def _measure(self, n: int) -> tuple[float, float]:
        ch = self.channels[n]
        if not ch.output:
            raise SCPIError(-200, f"channel {n} output off; turn it on to measure")
        if ch.function != "VOLT":
            raise SCPIError(-221, "emulated B2902A measures the array with a voltage source only")
        i = self.bench.measure(ch.terminal, ch.level, ch.aperture)
        if abs(i) > ch.compliance:
            i = ch.compliance if i > 0 else -ch.compliance
        ch.voltages, ch.currents = [ch.level], [i]
        return ch.level, i

    # -- command table ----------------------------------------------------------------------------
    def command_table(self) -> list[Command]:
        def setter(attr: str, parse):  # type: ignore[no-untyped-def]
            def handler(s: list[int], a: list[str]) -> None:
                need_args(a, 1, attr)
                setattr(c_of(s), attr, parse(a[0]))
            return handler

        def c_of(s: list[int]) -> Channel:
            n = next((x for x in s if x in CHANNELS), 1)
            return self.channels[n]

        def n_of(s: list[int]) -> int:
            return next((x for x in s if x in CHANNELS), 1)

        def set_level(s: list[int], a: list[str]) -> None:
            need_args(a, 1, "SOUR:VOLT")
            c_of(s).level = self._voltage(a[0], "SOUR:VOLT")
            self._sync(n_of(s))

        def set_output(s: list[int], a: list[str]) -> None:
            need_args(a, 1, "OUTP")
            c_of(s).output = parse_bool(a[0], "OUTP")
            self._sync(n_of(s))

        def set_list(s: list[int], a: list[str]) -> None:
            if not a:
                raise SCPIError(-109, "SOUR:LIST:VOLT needs at least one value")
            c_of(s).source_list = [self._voltage(x, "SOUR:LIST:VOLT") for x in a]

        def initiate(s: list[int], a: list[str]) -> None:
            for n in self._chans(a, n_of(s)):
                self._initiate(n)

        def fetch_current(s: list[int], a: list[str]) -> str:
            out = []
            for n in self._chans(a):
                out += [fmt_reading(i) for i in self.channels[n].currents]
            if not out:
                raise SCPIError(-230, "no data; run INIT first")
            return ",".join(out)

        def fetch_voltage(s: list[int], a: list[str]) -> str:
            return ",".join(fmt_reading(v) for n in self._chans(a) for v in self.channels[n].voltages)

        def measure_current(s: list[int], a: list[str]) -> str:
            return ",".join(fmt_reading(self._measure(n)[1]) for n in self._chans(a))

        def measure(s: list[int], a: list[str]) -> str:
            out = []
            for n in self._chans(a):
                v, i = self._measure(n)
                values = {"VOLT": v, "CURR": i, "RES": v / i if i else 9.91e37,
                          "TIME": self.bench.array.time, "STAT": 0.0, "SOUR": v}
                out += [fmt_reading(values[e]) for e in self.elements]
            return ",".join(out)

        def set_elements(s: list[int], a: list[str]) -> None:
            choices = ("VOLTage", "CURRent", "RESistance", "TIME", "STATus", "SOURce")
            self.elements = [parse_choice(x, choices, "FORM:ELEM:SENS") for x in a]

        accept = self.accept
        volt = lambda name: (lambda t: self._voltage(t, name))  # noqa: E731
        func = lambda t: parse_choice(t, ("VOLTage", "CURRent"), "SOUR:FUNC:MODE")  # noqa: E731
        mode = lambda t: parse_choice(t, ("FIXed", "SWEep", "LIST"), "SOUR:VOLT:MODE")  # noqa: E731
        tsrc = lambda t: parse_choice(  # noqa: E731
            t, ("AINT", "BUS", "TIMer", "INT1", "INT2", "EXT1", "LAN"), "TRIG:SOUR")

        return [
            Command(":SOURce[1|2]:FUNCtion:MODE", write=setter("function", func),
                    query=lambda s, a: c_of(s).function),
            Command("[:SOURce[1|2]]:VOLTage[:LEVel][:IMMediate][:AMPLitude]", write=set_level,
                    query=lambda s, a: fmt(c_of(s).level)),
            Command("[:SOURce[1|2]]:VOLTage:MODE", write=setter("mode", mode), query=lambda s, a: c_of(s).mode),
            Command("[:SOURce[1|2]]:VOLTage:STARt", write=setter("start", volt("SOUR:VOLT:STAR")),
                    query=lambda s, a: fmt(c_of(s).start)),
            Command("[:SOURce[1|2]]:VOLTage:STOP", write=setter("stop", volt("SOUR:VOLT:STOP")),
                    query=lambda s, a: fmt(c_of(s).stop)),
            Command("[:SOURce[1|2]]:VOLTage:POINts", write=setter("points", lambda t: int(POINTS.parse(t, "POIN"))),
                    query=lambda s, a: str(c_of(s).points)),
            Command("[:SOURce[1|2]]:SWEep:POINts", write=setter("points", lambda t: int(POINTS.parse(t, "POIN"))),
                    query=lambda s, a: str(c_of(s).points)),
            Command("[:SOURce[1|2]]:SWEep:SPACing", write=accept, query=lambda s, a: "LIN"),
            Command("[:SOURce[1|2]]:VOLTage:RANGe[:AUTO]", write=accept),
            Command("[:SOURce[1|2]]:LIST:VOLTage", write=set_list,
                    query=lambda s, a: ",".join(fmt(v) for v in c_of(s).source_list)),
            Command("[:SOURce[1|2]]:LIST:VOLTage:POINts", query=lambda s, a: str(len(c_of(s).source_list))),
            Command(":SENSe[1|2]:FUNCtion[:ON]", write=accept, query=lambda s, a: '"CURR"'),
            Command(":SENSe[1|2]:CURRent[:DC]:PROTection[:LEVel]",
                    write=setter("compliance", lambda t: COMPLIANCE.parse(t, "SENS:CURR:PROT")),
                    query=lambda s, a: fmt(c_of(s).compliance)),
            Command(":SENSe[1|2]:CURRent[:DC]:NPLCycles", write=setter("nplc", lambda t: NPLC.parse(t, "NPLC")),
                    query=lambda s, a: fmt(c_of(s).nplc)),
            Command(":SENSe[1|2]:CURRent[:DC]:RANGe[:UPPer]", write=accept),
            Command(":SENSe[1|2]:CURRent[:DC]:RANGe:AUTO", write=accept),
            Command(":OUTPut[1|2][:STATe]", write=set_output, query=lambda s, a: "1" if c_of(s).output else "0"),
            Command(":TRIGger[1|2][:ALL]:COUNt",
                    write=setter("trigger_count", lambda t: int(COUNT.parse(t, "TRIG:COUN"))),
                    query=lambda s, a: str(c_of(s).trigger_count)),
            Command(":TRIGger[1|2]:ACQuire:COUNt",
                    write=setter("trigger_count", lambda t: int(COUNT.parse(t, "TRIG:ACQ:COUN")))),
            Command(":TRIGger[1|2]:TRANsient:COUNt",
                    write=setter("trigger_count", lambda t: int(COUNT.parse(t, "TRIG:TRAN:COUN")))),
            Command(":TRIGger[1|2][:ALL]:SOURce", write=setter("trigger_source", tsrc),
                    query=lambda s, a: c_of(s).trigger_source),
            Command(":TRIGger[1|2][:ALL]:TIMer", write=setter("timer", lambda t: TIMER.parse(t, "TRIG:TIM")),
                    query=lambda s, a: fmt(c_of(s).timer)),
            Command(":TRIGger[1|2][:ALL]:DELay", write=setter("delay", lambda t: DELAY.parse(t, "TRIG:DEL")),
                    query=lambda s, a: fmt(c_of(s).delay)),
            Command(":INITiate[:IMMediate][:ALL]", write=initiate),
            Command(":INITiate[:IMMediate]:ACQuire", write=initiate),
            Command(":INITiate[:IMMediate]:TRANsient", write=accept),
            Command(":FETCh:ARRay[:CURRent]", query=fetch_current),
            Command(":FETCh:ARRay:VOLTage", query=fetch_voltage),
            Command(":MEASure:CURRent[:DC]", query=measure_current),
            Command(":MEASure", query=measure),
            Command(":FORMat:ELEMents:SENSe", write=set_elements, query=lambda s, a: ",".join(self.elements)),
        ]
