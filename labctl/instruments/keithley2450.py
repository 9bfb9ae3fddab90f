"""Keithley 2450 SourceMeter, SCPI command set (Reference Manual 2450-901-01, section 6).

Check against the manual line by line: each setting names its query and its command.
"""
from __future__ import annotations

import re

import numpy as np

from .base import Instrument
from .errors import InstrumentError
from .settings import Setting, boolean, in_range, num, number_list, on_off, one_of, parse_bool
from .smu import SourceMeterChannel, SweepResult, is_staircase

#: Buffer the sweeps write into (the instrument's default).
BUFFER = '"defbuffer1"'


class Keithley2450Channel(SourceMeterChannel):
    """The single source-measure channel of the 2450 (FORCE HI / LO)."""

    source_function = Setting(
        "Source function: VOLT or CURR.",
        get=":SOUR:FUNC?", set=":SOUR:FUNC {value}",
        validator=one_of("VOLT", "CURR"), parse=str.strip,
    )
    source_voltage = Setting(
        "Voltage source level, V (range +-210 V).",
        get=":SOUR:VOLT?", set=":SOUR:VOLT {value}",
        validator=in_range(-210.0, 210.0, "V"), guard="voltage",
    )
    current_limit = Setting(
        "Current limit (compliance) of the voltage source, A (1 nA .. 1.05 A).",
        get=":SOUR:VOLT:ILIM?", set=":SOUR:VOLT:ILIM {value}",
        validator=in_range(1e-9, 1.05, "A"), guard="compliance",
    )
    source_delay = Setting(
        "Delay between setting the source and measuring, s.",
        get=":SOUR:VOLT:DEL?", set=":SOUR:VOLT:DEL {value}",
        validator=in_range(0.0, 1e4, "s"),
    )
    sense_function = Setting(
        'Measure function ("CURR" for current).',
        get=":SENS:FUNC?", set=':SENS:FUNC "{value}"',
        validator=one_of("CURR", "VOLT", "RES"), parse=lambda s: s.strip().strip('"'),
    )
    nplc = Setting(
        "Current measurement integration time, power-line cycles (0.01 .. 10).",
        get=":SENS:CURR:NPLC?", set=":SENS:CURR:NPLC {value}",
        validator=in_range(0.01, 10.0),
    )
    output = Setting(
        "Output on/off.",
        get=":OUTP?", set=":OUTP {value}",
        validator=boolean, guard="output", parse=parse_bool, encode=on_off,
    )

    async def measure_current(self) -> float:
        """``:READ?``: one reading into defbuffer1, A."""
        if not self.cache.get("output"):
            raise RuntimeError(f"{self.label}: turn the output on before measuring")
        return float(await self.ask(":READ?"))

    async def _run_sweep(self, points: list[float], delay: float) -> SweepResult:
        if is_staircase(points):
            # :SOUR:SWE:VOLT:LIN <start>, <stop>, <points>, <delay>, <count>
            setup = f":SOUR:SWE:VOLT:LIN {num(points[0])},{num(points[-1])},{len(points)},{num(delay)},1"
        else:
            # :SOUR:LIST:VOLT <list>, then :SOUR:SWE:VOLT:LIST <startIndex>, <delay>, <count>
            setup = f":SOUR:LIST:VOLT {number_list(points)};:SOUR:SWE:VOLT:LIST 1,{num(delay)},1"
        await self.configure(f":SOUR:FUNC VOLT;{setup}")
        await self.instrument.write(":INIT")
        # *OPC? answers when the trigger model has finished: allow for the modeled sweep time.
        nplc = self.cache.get("nplc") or 1.0
        expected = len(points) * (delay + nplc / 50.0)
        await self.instrument.ask("*OPC?", timeout=self.instrument.link.timeout + 2 * expected)
        count = int(float(await self.ask(f":TRAC:ACT? {BUFFER}")))
        data = await self.ask(f":TRAC:DATA? 1,{count},{BUFFER},SOUR,READ")
        values = np.array([float(x) for x in data.split(",")], dtype=float)
        errors = await self.instrument.read_errors(":INIT")
        if errors:
            raise InstrumentError(self.label, ":INIT", "; ".join(f"{c},{m}" for c, m in errors))
        self.cache["output"] = True  # the trigger model leaves the output on
        return SweepResult(voltages=values[0::2], currents=values[1::2])


class Keithley2450(Instrument):
    """Keithley 2450 SourceMeter. ``smu[1]`` (or ``smu.channel``) is its channel."""

    idn_pattern = re.compile(r"(?i)KEITHLEY INSTRUMENTS( INC\.?)?,\s*MODEL 2450,")
    channel_class = Keithley2450Channel
    channel_numbers = (1,)
    kind = "smu"
    line_frequency_query = ":SYST:LFR?"

    @property
    def channel(self) -> Keithley2450Channel:
        return self.channels[1]  # type: ignore[return-value]
