"""Keysight/Agilent 81160A-class pulse function arbitrary generators (81150A, 81160A; Programming
Guide). The output number sits where the manual puts it: ``:VOLT2:HIGH``, ``:PULS:WIDT2``,
``:OUTP2``, ``:ARM:SOUR2``, ``:TRIG:COUN2``. A triggered burst is ``:ARM:SOUR MAN`` with
``:TRIG:COUN <n>`` pulses per ``*TRG``.
"""
from __future__ import annotations

import math
import re

from .base import Instrument
from .pulse import PulseGeneratorChannel
from .settings import Setting, boolean, in_range, integer_in_range, num, on_off, one_of, parse_bool


def _impedance(name: str, value: object) -> float:
    """Expected load: 0.3 ohm .. 1 Mohm, or math.inf for high impedance (sent as 1 Mohm)."""
    if value == math.inf:
        return math.inf
    return in_range(0.3, 1e6, "ohm")(name, value)


class Keysight81160AChannel(PulseGeneratorChannel):
    function = Setting(
        "Output function (PULS for pulses).",
        get=":FUNC{ch}?", set=":FUNC{ch} {value}",
        validator=one_of("PULS", "SIN", "SQU", "RAMP", "DC"), parse=str.strip,
    )
    high = Setting(
        "High level, V (+-10 V into high impedance).",
        get=":VOLT{ch}:HIGH?", set=":VOLT{ch}:HIGH {value}",
        validator=in_range(-10.0, 10.0, "V"), guard="level",
    )
    low = Setting(
        "Low level, V.",
        get=":VOLT{ch}:LOW?", set=":VOLT{ch}:LOW {value}",
        validator=in_range(-10.0, 10.0, "V"), guard="level",
    )
    amplitude = Setting(
        "Amplitude (high - low), V.",
        get=":VOLT{ch}?", set=":VOLT{ch} {value}",
        validator=in_range(50e-3, 20.0, "V"), guard="amplitude",
    )
    offset = Setting(
        "Offset ((high + low) / 2), V.",
        get=":VOLT{ch}:OFFS?", set=":VOLT{ch}:OFFS {value}",
        validator=in_range(-10.0, 10.0, "V"), guard="offset",
    )
    width = Setting(
        "Pulse width, s (1.5 ns .. 1e6 s, below the period).",
        get=":PULS:WIDT{ch}?", set=":PULS:WIDT{ch} {value}",
        validator=in_range(1.5e-9, 1e6, "s"), guard="width",
    )
    period = Setting(
        "Pulse period, s.",
        get=":PULS:PER{ch}?", set=":PULS:PER{ch} {value}",
        validator=in_range(3.03e-9, 1e6, "s"),
    )
    arm_source = Setting(
        "Arming: IMM (continuous), EXT or MAN (*TRG fires a burst).",
        get=":ARM:SOUR{ch}?", set=":ARM:SOUR{ch} {value}",
        validator=one_of("IMM", "EXT", "MAN"), parse=str.strip,
    )
    burst_count = Setting(
        "Pulses per trigger (TRIGger:COUNt).",
        get=":TRIG:COUN{ch}?", set=":TRIG:COUN{ch} {value:d}",
        validator=integer_in_range(1, 2**31 - 1), parse=lambda s: int(float(s)),
    )
    polarity = Setting(
        "Output polarity: NORM or INV.",
        get=":OUTP{ch}:POL?", set=":OUTP{ch}:POL {value}",
        validator=one_of("NORM", "INV"), parse=str.strip,
    )
    load = Setting(
        "Expected load impedance, ohm; math.inf for high impedance.",
        get=":OUTP{ch}:IMP:EXT?", set=":OUTP{ch}:IMP:EXT {value}",
        validator=_impedance, encode=lambda v: "1E6" if v == math.inf else num(v),
        parse=lambda s: math.inf if float(s) >= 1e6 else float(s),
    )
    limit_high = Setting(
        "Output limit, upper, V.",
        get=":VOLT{ch}:LIM:HIGH?", set=":VOLT{ch}:LIM:HIGH {value}",
        validator=in_range(-10.0, 10.0, "V"),
    )
    limit_low = Setting(
        "Output limit, lower, V.",
        get=":VOLT{ch}:LIM:LOW?", set=":VOLT{ch}:LIM:LOW {value}",
        validator=in_range(-10.0, 10.0, "V"),
    )
    limit_enabled = Setting(
        "Output limits enforced by the instrument.",
        get=":VOLT{ch}:LIM?", set=":VOLT{ch}:LIM {value}",
        validator=boolean, parse=parse_bool, encode=on_off,
    )
    output = Setting(
        "Output on/off.",
        get=":OUTP{ch}?", set=":OUTP{ch} {value}",
        validator=boolean, guard="output", parse=parse_bool, encode=on_off,
    )

    async def _prepare_burst(self) -> None:
        await self.function.set("PULS")
        await self.arm_source.set("MAN")


class Keysight81160A(Instrument):
    """Keysight/Agilent 81150A/81160A; ``pg[1]``, ``pg[2]``."""

    idn_pattern = re.compile(r"(?i)(KEYSIGHT|AGILENT) TECHNOLOGIES,\s*81(150|160)A,")
    channel_class = Keysight81160AChannel
    channel_numbers = (1, 2)
    kind = "pulse_generator"
