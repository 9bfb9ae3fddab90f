"""Keysight B2900-series Precision Source/Measure Units (B2901A/B2902A and the B/BL variants),
SCPI Command Reference. One channel class serves both channels: ``{ch}`` is the channel number.
"""
from __future__ import annotations

import re

import numpy as np

from .base import Instrument
from .errors import InstrumentError
from .settings import Setting, boolean, in_range, num, number_list, on_off, one_of, parse_bool
from .smu import SourceMeterChannel, SweepResult, is_staircase


class KeysightB2900Channel(SourceMeterChannel):
    """One B2900 SMU channel."""

    source_function = Setting(
        "Source function: VOLT or CURR.",
        get=":SOUR{ch}:FUNC:MODE?", set=":SOUR{ch}:FUNC:MODE {value}",
        validator=one_of("VOLT", "CURR"), parse=str.strip,
    )
    source_voltage = Setting(
        "Voltage source level, V (range +-210 V).",
        get=":SOUR{ch}:VOLT?", set=":SOUR{ch}:VOLT {value}",
        validator=in_range(-210.0, 210.0, "V"), guard="voltage",
    )
    current_limit = Setting(
        "Current compliance of the voltage source, A (1 nA .. 3.03 A).",
        get=":SENS{ch}:CURR:PROT?", set=":SENS{ch}:CURR:PROT {value}",
        validator=in_range(1e-9, 3.03, "A"), guard="compliance",
    )
    nplc = Setting(
        "Current measurement integration time, power-line cycles (4e-4 .. 100).",
        get=":SENS{ch}:CURR:NPLC?", set=":SENS{ch}:CURR:NPLC {value}",
        validator=in_range(4e-4, 100.0),
    )
    output = Setting(
        "Output on/off.",
        get=":OUTP{ch}?", set=":OUTP{ch} {value}",
        validator=boolean, guard="output", parse=parse_bool, encode=on_off,
    )

    async def measure_current(self) -> float:
        """``:MEAS:CURR? (@n)``: one spot measurement, A."""
        if not self.cache.get("output"):
            raise RuntimeError(f"{self.label}: turn the output on before measuring")
        return float(await self.ask(f":MEAS:CURR? (@{self.number})"))

    async def _run_sweep(self, points: list[float], delay: float) -> SweepResult:
        n, count = self.number, len(points)
        if is_staircase(points):
            shape = (f":SOUR{n}:VOLT:MODE SWE;:SOUR{n}:VOLT:STAR {num(points[0])};"
                     f":SOUR{n}:VOLT:STOP {num(points[-1])};:SOUR{n}:SWE:POIN {count}")
        else:
            shape = f":SOUR{n}:VOLT:MODE LIST;:SOUR{n}:LIST:VOLT {number_list(points)}"
        await self.configure(f":SOUR{n}:FUNC:MODE VOLT;{shape};:TRIG{n}:COUN {count};"
                             f":TRIG{n}:DEL {num(delay)}")
        await self.instrument.write(f":INIT (@{n})")
        nplc = self.cache.get("nplc") or 1.0
        expected = count * (delay + nplc / 50.0)
        await self.instrument.ask("*OPC?", timeout=self.instrument.link.timeout + 2 * expected)
        currents = await self.ask(f":FETC:ARR:CURR? (@{n})")
        voltages = await self.ask(f":FETC:ARR:VOLT? (@{n})")
        errors = await self.instrument.read_errors(":INIT")
        if errors:
            raise InstrumentError(self.label, f":INIT (@{n})", "; ".join(f"{c},{m}" for c, m in errors))
        # Back to a fixed level so later reads source the DC level, not the sweep.
        await self.configure(f":SOUR{n}:VOLT:MODE FIX")
        self.cache["output"] = True  # INIT turns the output on automatically
        return SweepResult(
            voltages=np.array([float(x) for x in voltages.split(",")]),
            currents=np.array([float(x) for x in currents.split(",")]),
        )


class KeysightB2900(Instrument):
    """Keysight B2901A (one channel) / B2902A (two channels); ``smu[1]``, ``smu[2]``."""

    idn_pattern = re.compile(r"(?i)(KEYSIGHT|AGILENT) TECHNOLOGIES,\s*B29[01][0-9][AB]?,")
    channel_class = KeysightB2900Channel
    channel_numbers = (1, 2)
    kind = "smu"

    async def identify(self):  # type: ignore[no-untyped-def]
        identity = await super().identify()
        # Single-channel models (B2901A, B2911A) have no channel 2.
        if not re.match(r"(?i)B29\d2", identity.model):
            self.channels.pop(2, None)
        return identity
