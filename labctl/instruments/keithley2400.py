"""Keithley 2400 SourceMeter (2400 Series User's Manual 2400S-900-01, SCPI reference), with the
2400's own subsystem names: ``:SOUR:FUNC``, ``:SOUR:VOLT``, ``:SENS:CURR:PROT`` (the compliance),
``:SENS:FUNC``, ``:FORM:ELEM``, ``:OUTP``, ``:READ?``, ``:SYST:ERR?``.

A reading is one trigger run of ``:READ?`` returning the ``:FORM:ELEM`` elements; a sweep is
``:SOUR:VOLT:MODE SWE`` (staircase) or ``LIST`` with ``:TRIG:COUN`` points (at most 2500; a list
command carries at most 100 values, longer lists go on with ``:SOUR:LIST:VOLT:APP``).
"""
from __future__ import annotations

import re

import numpy as np

from .base import Instrument
from .errors import InstrumentError
from .settings import Setting, boolean, in_range, integer_in_range, num, number_list, on_off, one_of, parse_bool
from .smu import SourceMeterChannel, SweepResult, is_staircase

#: Readings one trigger run may take (the 2400's buffer), and values per list command.
MAX_POINTS = 2500
LIST_PER_COMMAND = 100


class Keithley2400Channel(SourceMeterChannel):
    """The single source-measure channel of the 2400."""

    max_sweep_points = MAX_POINTS

    source_function = Setting(
        "Source function: VOLT or CURR.",
        get=":SOUR:FUNC?", set=":SOUR:FUNC {value}",
        validator=one_of("VOLT", "CURR"), parse=str.strip,
    )
    source_mode = Setting(
        "Voltage source mode: FIX (one level), SWE (staircase sweep) or LIST.",
        get=":SOUR:VOLT:MODE?", set=":SOUR:VOLT:MODE {value}",
        validator=one_of("FIX", "SWE", "LIST"), parse=str.strip,
    )
    source_voltage = Setting(
        "Voltage source level, V (+-210 V).",
        get=":SOUR:VOLT?", set=":SOUR:VOLT {value}",
        validator=in_range(-210.0, 210.0, "V"), guard="voltage",
    )
    current_limit = Setting(
        "Current compliance, A (:SENS:CURR:PROT; 1 nA .. 1.05 A).",
        get=":SENS:CURR:PROT?", set=":SENS:CURR:PROT {value}",
        validator=in_range(1e-9, 1.05, "A"), guard="compliance",
    )
    source_delay = Setting(
        "Source delay before each measurement, s (0 .. 999.9999).",
        get=":SOUR:DEL?", set=":SOUR:DEL {value}",
        validator=in_range(0.0, 999.9999, "s"),
    )
    sense_function = Setting(
        'Measure function ("CURR").',
        get=":SENS:FUNC?", set=':SENS:FUNC "{value}"',
        validator=one_of("CURR", "VOLT", "RES"), parse=lambda s: s.strip().strip('"'),
    )
    nplc = Setting(
        "Current measurement integration time, power-line cycles (0.01 .. 10).",
        get=":SENS:CURR:NPLC?", set=":SENS:CURR:NPLC {value}",
        validator=in_range(0.01, 10.0),
    )
    elements = Setting(
        "Elements of each reading (:FORM:ELEM), e.g. CURR or VOLT,CURR.",
        get=":FORM:ELEM?", set=":FORM:ELEM {value}",
        validator=one_of("CURR", "VOLT,CURR"), parse=str.strip,
    )
    trigger_count = Setting(
        "Readings per trigger run (:TRIG:COUN, 1 .. 2500).",
        get=":TRIG:COUN?", set=":TRIG:COUN {value:d}",
        validator=integer_in_range(1, MAX_POINTS), parse=lambda s: int(float(s)),
    )
    auto_output_off = Setting(
        "Output switched off after each reading (:SOUR:CLE:AUTO).",
        get=":SOUR:CLE:AUTO?", set=":SOUR:CLE:AUTO {value}",
        validator=boolean, parse=parse_bool, encode=on_off,
    )
    output = Setting(
        "Output on/off.",
        get=":OUTP?", set=":OUTP {value}",
        validator=boolean, guard="output", parse=parse_bool, encode=on_off,
    )

    async def measure_current(self) -> float:
        """``:READ?`` of one current reading at the fixed level, A."""
        if not self.cache.get("output"):
            raise RuntimeError(f"{self.label}: turn the output on before measuring")
        await self.source_function.ensure("VOLT")
        await self.source_mode.ensure("FIX")
        await self.trigger_count.ensure(1)
        await self.elements.ensure("CURR")
        return float(await self.ask(":READ?"))

    async def _run_sweep(self, points: list[float], delay: float) -> SweepResult:
        n = len(points)
        if is_staircase(points):
            shape = (f":SOUR:VOLT:MODE SWE;:SOUR:VOLT:STAR {num(points[0])};"
                     f":SOUR:VOLT:STOP {num(points[-1])};:SOUR:SWE:POIN {n}")
            mode = "SWE"
        else:
            chunks = [points[k:k + LIST_PER_COMMAND] for k in range(0, n, LIST_PER_COMMAND)]
            lists = ";".join(f":SOUR:LIST:VOLT{':APP' if k else ''} {number_list(c)}"
                             for k, c in enumerate(chunks))
            shape = f":SOUR:VOLT:MODE LIST;{lists}"
            mode = "LIST"
        await self.source_function.ensure("VOLT")
        await self.configure(f"{shape};:TRIG:COUN {n};:SOUR:DEL {num(delay)};:FORM:ELEM VOLT,CURR")
        self.cache.update(source_mode=mode, trigger_count=n, elements="VOLT,CURR", source_delay=delay)
        await self.output.set(True)
        nplc = self.cache.get("nplc") or 1.0
        expected = n * (delay + nplc / 50.0)
        data = await self.instrument.ask(":READ?", timeout=self.instrument.link.timeout + 2 * expected)
        errors = await self.instrument.read_errors(":READ?")
        if errors:
            raise InstrumentError(self.label, ":READ?", "; ".join(f"{c},{m}" for c, m in errors))
        values = np.array([float(x) for x in data.split(",")], dtype=float)
        return SweepResult(voltages=values[0::2], currents=values[1::2])


class Keithley2400(Instrument):
    """Keithley 2400 (and 2401/2410/2420/2425/2430/2440) SourceMeter; ``smu[1]`` is its channel."""

    idn_pattern = re.compile(r"(?i)KEITHLEY INSTRUMENTS( INC\.?)?,\s*MODEL 24[0-4][0-9],")
    channel_class = Keithley2400Channel
    channel_numbers = (1,)
    kind = "smu"
    line_frequency_query = ":SYST:LFR?"

    @property
    def channel(self) -> Keithley2400Channel:
        return self.channels[1]  # type: ignore[return-value]
