"""Emulated Keithley 2400 SourceMeter, SCPI with the 2400's own subsystems (2400 Series
SourceMeter User's Manual, 2400S-900-01, sections 17-18).

Voltage source / current measure. Supported: :SOURce (FUNCtion[:MODE], VOLTage[:LEVel], VOLTage:MODE
FIXed|SWEep|LIST, VOLTage:STARt/STOP, SWEep:POINts, LIST:VOLTage[:APPend], DELay, DELay:AUTO,
CLEar:AUTO, VOLTage:RANGe[:AUTO]), :SENSe (FUNCtion[:ON], FUNCtion:CONCurrent, CURRent:PROTection,
CURRent:NPLCycles, CURRent:RANGe[:AUTO], VOLTage:PROTection, VOLTage:NPLCycles), :FORMat:ELEMents,
:OUTPut[:STATe], :READ?, :FETCh?, :MEASure[:<function>]?, :INITiate, :TRIGger:COUNt, :TRIGger:DELay,
:ARM:COUNt, :ABORt, :SYSTem (ERRor, CLEar, LFRequency?, AZERo). Readings hold the :FORMat:ELEMents
in the manual's fixed order VOLT, CURR, RES, TIME, STAT; elements not measured read 9.91E37 (NaN).

A trigger run (:READ?, :INITiate) takes :TRIGger:COUNt points: the fixed level, or the sweep's
points (start + (stop - start) k / (points - 1)), or the source list; each held :SOURce:DELay plus
the aperture. It goes to the array as one sweep, with the compliance (:SENSe:CURRent:PROTection)
acting as on the 2450. Lists hold at most 100 values per command and 2500 in all (:APPend).
"""
from __future__ import annotations

from .bench import Bench
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

VOLTAGE = Numeric(-210.0, 210.0, 0.0, "V")
COMPLIANCE = Numeric(1e-9, 1.05, 105e-6, "A")  # *RST: 105 uA
VOLTAGE_COMPLIANCE = Numeric(0.0, 210.0, 21.0, "V")
NPLC = Numeric(0.01, 10.0, 1.0)
DELAY = Numeric(0.0, 999.9999, 0.0, "S")
#: Trigger count and buffer: 2500 readings; a list command takes 100 values at most.
MAX_POINTS = 2500
LIST_PER_COMMAND = 100
COUNT = Numeric(1, MAX_POINTS, 1, integer=True)
POINTS = Numeric(2, MAX_POINTS, 2500, integer=True)
ELEMENTS = ("VOLTage", "CURRent", "RESistance", "TIME", "STATus")
NOT_MEASURED = 9.91e37


class Keithley2400(SourceMeter):
    idn = "KEITHLEY INSTRUMENTS INC.,MODEL 2400,4024000,C32   Oct  4 2010 14:20:11/A02  /S/K"
    name = "smu_2400"
    VOLTAGE_RANGE = VOLTAGE

    def __init__(self, bench: Bench, name: str = "smu_2400", terminal: str = "smu2400") -> None:
        self.name = name
        self.terminal = terminal
        super().__init__(bench)

    # -- state ------------------------------------------------------------------------------------
    def reset(self) -> None:
        self.source_function = "VOLT"
        self.mode = "FIX"
        self.level = 0.0
        self.start = 0.0
        self.stop = 0.0
        self.points = 2500
        self.source_list: list[float] = []
        self.compliance = COMPLIANCE.default
        self.nplc = NPLC.default
        self.delay = 0.0
        self.auto_off = False
        self.output = False
        self.sense = "CURR"
        self.elements = ["VOLT", "CURR", "RES", "TIME", "STAT"]  # *RST: all five
        self.trigger_count = 1
        self.readings: list[tuple[float, float, float]] = []  # (V, A, t) of the last run
        self._sync()

    def power_off(self) -> None:
        self.reset()

    def _sync(self) -> None:
        self.bench.set_dc(self.terminal, self.output, self.level)

    @property
    def aperture(self) -> float:
        return self.nplc / LINE_FREQUENCY

    # -- trigger run ----------------------------------------------------------------------------------
    def _levels(self) -> list[float]:
        n = self.trigger_count
        if self.mode == "FIX":
            return [self.level] * n
        if self.mode == "SWE":
            p = self.points
            sweep = [self.start + (self.stop - self.start) * k / (p - 1) for k in range(p)]
        else:
            if not self.source_list:
                raise SCPIError(-221, "source list is empty; send :SOUR:LIST:VOLT first")
            sweep = self.source_list
        # The trigger count takes points from the sweep, repeating it if the count is larger.
        return [sweep[k % len(sweep)] for k in range(n)]

    def _run(self) -> None:
        if self.source_function != "VOLT":
            raise SCPIError(-221, "emulated 2400 measures the array with a voltage source only")
        if not self.output and not self.auto_off:
            raise SCPIError(-221, "output off; turn the output on (or :SOUR:CLE:AUTO ON) to measure")
        levels = self._levels()
        dwell = self.delay + self.aperture
        self.output = True
        self._sync()
        try:
            if self.mode == "FIX" and len(levels) == 1:
                applied, currents = [self.level], [self.bench.measure(self.terminal, self.level, self.aperture)]
            else:
                applied, currents = self.bench.sweep(self.terminal, levels, dwell, self.compliance)
        finally:
            if self.auto_off:
                self.output = False
            self._sync()
        self.readings = [(v, i, k * dwell) for k, (v, i) in enumerate(zip(applied, currents))]

    def _format(self) -> str:
        values: list[str] = []
        for v, i, t in self.readings:
            element = {"VOLT": v, "CURR": i, "RES": NOT_MEASURED, "TIME": t, "STAT": 0.0}
            values += [fmt_reading(element[e]) for e in self.elements]
        return ",".join(values)

    # -- command table ------------------------------------------------------------------------------
    def command_table(self) -> list[Command]:
        def set_func(_s: list[int], a: list[str]) -> None:
            need_args(a, 1, "SOUR:FUNC")
            self.source_function = parse_choice(a[0], ("VOLTage", "CURRent", "MEMory"), "SOUR:FUNC")

        def set_level(_s: list[int], a: list[str]) -> None:
            need_args(a, 1, "SOUR:VOLT")
            self.level = self._voltage(a[0], "SOUR:VOLT")
            self._sync()

        def set_mode(_s: list[int], a: list[str]) -> None:
            need_args(a, 1, "SOUR:VOLT:MODE")
            self.mode = parse_choice(a[0], ("FIXed", "SWEep", "LIST"), "SOUR:VOLT:MODE")

        def set_start(_s: list[int], a: list[str]) -> None:
            need_args(a, 1, "SOUR:VOLT:STAR")
            self.start = self._voltage(a[0], "SOUR:VOLT:STAR")

        def set_stop(_s: list[int], a: list[str]) -> None:
            need_args(a, 1, "SOUR:VOLT:STOP")
            self.stop = self._voltage(a[0], "SOUR:VOLT:STOP")

        def set_points(_s: list[int], a: list[str]) -> None:
            need_args(a, 1, "SOUR:SWE:POIN")
            self.points = int(POINTS.parse(a[0], "SOUR:SWE:POIN"))

        def set_list(_s: list[int], a: list[str]) -> None:
            need_args(a, 1, "SOUR:LIST:VOLT")
            self.source_list = self._list(a, [], "SOUR:LIST:VOLT")

        def append_list(_s: list[int], a: list[str]) -> None:
            need_args(a, 1, "SOUR:LIST:VOLT:APP")
            self.source_list = self._list(a, self.source_list, "SOUR:LIST:VOLT:APP")

        def set_compliance(_s: list[int], a: list[str]) -> None:
            need_args(a, 1, "SENS:CURR:PROT")
            self.compliance = COMPLIANCE.parse(a[0], "SENS:CURR:PROT")

        def set_nplc(_s: list[int], a: list[str]) -> None:
            need_args(a, 1, "SENS:CURR:NPLC")
            self.nplc = NPLC.parse(a[0], "SENS:CURR:NPLC")

        def set_delay(_s: list[int], a: list[str]) -> None:
            need_args(a, 1, "SOUR:DEL")
            self.delay = DELAY.parse(a[0], "SOUR:DEL")

        def set_auto_off(_s: list[int], a: list[str]) -> None:
            need_args(a, 1, "SOUR:CLE:AUTO")
            self.auto_off = parse_bool(a[0], "SOUR:CLE:AUTO")

        def set_output(_s: list[int], a: list[str]) -> None:
            need_args(a, 1, "OUTP")
            self.output = parse_bool(a[0], "OUTP")
            self._sync()

        def set_sense(_s: list[int], a: list[str]) -> None:
            need_args(a, 1, "SENS:FUNC")
            for item in a:
                parse_choice(unquote(item).split(":")[0], ("CURRent", "VOLTage", "RESistance"), "SENS:FUNC")
            self.sense = ",".join(unquote(x).upper() for x in a)

        def set_elements(_s: list[int], a: list[str]) -> None:
            need_args(a, 1, "FORM:ELEM")
            chosen = {parse_choice(e, ELEMENTS, "FORM:ELEM") for e in a}
            # The 2400 sends the chosen elements in its own fixed order, whatever the order asked.
            self.elements = [e for e in ("VOLT", "CURR", "RES", "TIME", "STAT") if e in chosen]

        def set_count(_s: list[int], a: list[str]) -> None:
            need_args(a, 1, "TRIG:COUN")
            self.trigger_count = int(COUNT.parse(a[0], "TRIG:COUN"))

        def read(_s: list[int], a: list[str]) -> str:
            self._run()
            return self._format()

        def measure(_s: list[int], a: list[str]) -> str:
            # :MEASure? is :CONFigure + :READ?; it switches the output on and leaves it so
            # (unless auto output-off is on).
            if not self.auto_off:
                self.output = True
                self._sync()
            self._run()
            return self._format()

        def fetch(_s: list[int], a: list[str]) -> str:
            if not self.readings:
                raise SCPIError(-230, "no readings to fetch")
            return self._format()

        def initiate(_s: list[int], a: list[str]) -> None:
            self._run()

        accept = self.accept
        return [
            Command("[:SOURce[1]]:FUNCtion[:MODE]", write=set_func, query=lambda s, a: self.source_function),
            Command("[:SOURce[1]]:VOLTage[:LEVel][:IMMediate][:AMPLitude]", write=set_level,
                    query=lambda s, a: fmt(self.level)),
            Command("[:SOURce[1]]:VOLTage:MODE", write=set_mode, query=lambda s, a: self.mode),
            Command("[:SOURce[1]]:VOLTage:STARt", write=set_start, query=lambda s, a: fmt(self.start)),
            Command("[:SOURce[1]]:VOLTage:STOP", write=set_stop, query=lambda s, a: fmt(self.stop)),
            Command("[:SOURce[1]]:VOLTage:RANGe[:UPPer]", write=accept, query=lambda s, a: fmt(21.0)),
            Command("[:SOURce[1]]:VOLTage:RANGe:AUTO", write=accept, query=lambda s, a: "1"),
            Command("[:SOURce[1]]:SWEep:POINts", write=set_points, query=lambda s, a: str(self.points)),
            Command("[:SOURce[1]]:SWEep:SPACing", write=accept, query=lambda s, a: "LIN"),
            Command("[:SOURce[1]]:LIST:VOLTage", write=set_list,
                    query=lambda s, a: ",".join(fmt(v) for v in self.source_list)),
            Command("[:SOURce[1]]:LIST:VOLTage:APPend", write=append_list),
            Command("[:SOURce[1]]:LIST:VOLTage:POINts", query=lambda s, a: str(len(self.source_list))),
            Command("[:SOURce[1]]:DELay", write=set_delay, query=lambda s, a: fmt(self.delay)),
            Command("[:SOURce[1]]:DELay:AUTO", write=accept, query=lambda s, a: "0"),
            Command("[:SOURce[1]]:CLEar:AUTO", write=set_auto_off, query=lambda s, a: "1" if self.auto_off else "0"),
            Command("[:SENSe[1]]:FUNCtion[:ON]", write=set_sense, query=lambda s, a: f'"{self.sense}"'),
            Command("[:SENSe[1]]:FUNCtion:CONCurrent", write=accept, query=lambda s, a: "1"),
            Command("[:SENSe[1]]:CURRent[:DC]:PROTection[:LEVel]", write=set_compliance,
                    query=lambda s, a: fmt(self.compliance)),
            Command("[:SENSe[1]]:CURRent[:DC]:NPLCycles", write=set_nplc, query=lambda s, a: fmt(self.nplc)),
            Command("[:SENSe[1]]:CURRent[:DC]:RANGe[:UPPer]", write=accept, query=lambda s, a: fmt(1.05e-4)),
            Command("[:SENSe[1]]:CURRent[:DC]:RANGe:AUTO", write=accept, query=lambda s, a: "1"),
            Command("[:SENSe[1]]:VOLTage[:DC]:PROTection[:LEVel]", write=accept, query=lambda s, a: fmt(21.0)),
            Command("[:SENSe[1]]:VOLTage[:DC]:NPLCycles", write=set_nplc, query=lambda s, a: fmt(self.nplc)),
            Command("[:SENSe[1]]:VOLTage[:DC]:RANGe[:UPPer]", write=accept, query=lambda s, a: fmt(21.0)),
            Command("[:SENSe[1]]:VOLTage[:DC]:RANGe:AUTO", write=accept, query=lambda s, a: "1"),
            Command(":FORMat:ELEMents[:SENSe[1]]", write=set_elements, query=lambda s, a: ",".join(self.elements)),
            Command(":FORMat[:DATA]", write=accept, query=lambda s, a: "ASC"),
            Command(":OUTPut[1][:STATe]", write=set_output, query=lambda s, a: "1" if self.output else "0"),
            Command(":OUTPut[1]:SMODe", write=accept, query=lambda s, a: "NORM"),
            Command(":READ", query=read),
            Command(":FETCh", query=fetch),
            Command(":MEASure", query=measure),
            Command(":MEASure:CURRent[:DC]", query=measure),
            Command(":MEASure:VOLTage[:DC]", query=measure),
            Command(":INITiate[:IMMediate]", write=initiate),
            Command(":TRIGger:COUNt", write=set_count, query=lambda s, a: str(self.trigger_count)),
            Command(":TRIGger:DELay", write=accept, query=lambda s, a: fmt(0.0)),
            Command(":ARM:COUNt", write=accept, query=lambda s, a: "1"),
            Command(":ABORt", write=accept),
            Command(":SYSTem:AZERo[:STATe]", write=accept, query=lambda s, a: "1"),
        ]

    def _list(self, args: list[str], present: list[float], name: str) -> list[float]:
        if len(args) > LIST_PER_COMMAND:
            raise SCPIError(-223, f"{name}: {len(args)} values; at most {LIST_PER_COMMAND} per command")
        if len(present) + len(args) > MAX_POINTS:
            raise SCPIError(-225, f"{name}: source list longer than {MAX_POINTS} points")
        return present + [self._voltage(x, name) for x in args]
