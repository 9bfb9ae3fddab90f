"""Keysight 33500B-series waveform generators (33509B..33522B), pulse function
(33500 Series Operating and Service Guide, SCPI programming reference).
One channel class serves both outputs: ``{ch}`` is the output number.
"""
from __future__ import annotations

import math
import re

from .base import Instrument
from .pulse import PulseGeneratorChannel
from .settings import Setting, boolean, in_range, integer_in_range, num, on_off, one_of, parse_bool


def _load(name: str, value: object) -> float:
    """Expected load: 1 ohm .. 10 kohm, or math.inf for high impedance ("INF")."""
    if value == math.inf:
        return math.inf
    return in_range(1.0, 1e4, "ohm")(name, value)


class Keysight33500BChannel(PulseGeneratorChannel):
    function = Setting(
        "Output function (PULS for pulses).",
        get="SOUR{ch}:FUNC?", set="SOUR{ch}:FUNC {value}",
        validator=one_of("PULS", "SIN", "SQU", "RAMP", "DC"), parse=str.strip,
    )
    high = Setting(
        "High level, V (+-10 V into high impedance).",
        get="SOUR{ch}:VOLT:HIGH?", set="SOUR{ch}:VOLT:HIGH {value}",
        validator=in_range(-10.0, 10.0, "V"), guard="level",
    )
    low = Setting(
        "Low level, V.",
        get="SOUR{ch}:VOLT:LOW?", set="SOUR{ch}:VOLT:LOW {value}",
        validator=in_range(-10.0, 10.0, "V"), guard="level",
    )
    amplitude = Setting(
        "Amplitude (high - low), V.",
        get="SOUR{ch}:VOLT?", set="SOUR{ch}:VOLT {value}",
        validator=in_range(1e-3, 20.0, "V"), guard="amplitude",
    )
    offset = Setting(
        "Offset ((high + low) / 2), V.",
        get="SOUR{ch}:VOLT:OFFS?", set="SOUR{ch}:VOLT:OFFS {value}",
        validator=in_range(-10.0, 10.0, "V"), guard="offset",
    )
    width = Setting(
        "Pulse width, s (16 ns .. 1e6 s, below the period).",
        get="SOUR{ch}:FUNC:PULS:WIDT?", set="SOUR{ch}:FUNC:PULS:WIDT {value}",
        validator=in_range(16e-9, 1e6, "s"), guard="width",
    )
    period = Setting(
        "Pulse period, s (33 ns .. 1e6 s).",
        get="SOUR{ch}:FUNC:PULS:PER?", set="SOUR{ch}:FUNC:PULS:PER {value}",
        validator=in_range(33e-9, 1e6, "s"),
    )
    burst_enabled = Setting(
        "Burst mode on/off.",
        get="SOUR{ch}:BURS:STAT?", set="SOUR{ch}:BURS:STAT {value}",
        validator=boolean, parse=parse_bool, encode=on_off,
    )
    burst_count = Setting(
        "Pulses per trigger (BURSt:NCYCles).",
        get="SOUR{ch}:BURS:NCYC?", set="SOUR{ch}:BURS:NCYC {value:d}",
        validator=integer_in_range(1, 100_000_000), parse=lambda s: int(float(s)),
    )
    trigger_source = Setting(
        "Trigger source: IMM, EXT, TIM or BUS (*TRG).",
        get="TRIG{ch}:SOUR?", set="TRIG{ch}:SOUR {value}",
        validator=one_of("IMM", "EXT", "TIM", "BUS"), parse=str.strip,
    )
    polarity = Setting(
        "Output polarity: NORM or INV (inverted about the offset).",
        get="OUTP{ch}:POL?", set="OUTP{ch}:POL {value}",
        validator=one_of("NORM", "INV"), parse=str.strip,
    )
    load = Setting(
        "Load the levels refer to, ohm; math.inf for high impedance.",
        get="OUTP{ch}:LOAD?", set="OUTP{ch}:LOAD {value}",
        validator=_load, encode=lambda v: "INF" if v == math.inf else num(v),
        parse=lambda s: math.inf if float(s) > 1e30 else float(s),
    )
    limit_high = Setting(
        "Output limit, upper, V.",
        get="SOUR{ch}:VOLT:LIM:HIGH?", set="SOUR{ch}:VOLT:LIM:HIGH {value}",
        validator=in_range(-10.0, 10.0, "V"),
    )
    limit_low = Setting(
        "Output limit, lower, V.",
        get="SOUR{ch}:VOLT:LIM:LOW?", set="SOUR{ch}:VOLT:LIM:LOW {value}",
        validator=in_range(-10.0, 10.0, "V"),
    )
    limit_enabled = Setting(
        "Output limits enforced by the instrument.",
        get="SOUR{ch}:VOLT:LIM:STAT?", set="SOUR{ch}:VOLT:LIM:STAT {value}",
        validator=boolean, parse=parse_bool, encode=on_off,
    )
    output = Setting(
        "Output on/off.",
        get="OUTP{ch}?", set="OUTP{ch} {value}",
        validator=boolean, guard="output", parse=parse_bool, encode=on_off,
    )

    async def _prepare_burst(self) -> None:
        await self.function.set("PULS")
        await self.burst_enabled.set(True)
        await self.configure(f"SOUR{self.number}:BURS:MODE TRIG")
        await self.trigger_source.set("BUS")


class Keysight33500B(Instrument):
    """Keysight/Agilent 33500B-series generator; ``pg[1]``, ``pg[2]``."""

    idn_pattern = re.compile(r"(?i)(KEYSIGHT|AGILENT) TECHNOLOGIES,\s*335\d\d[AB],")
    channel_class = Keysight33500BChannel
    channel_numbers = (1, 2)
    kind = "pulse_generator"

    async def identify(self):  # type: ignore[no-untyped-def]
        identity = await super().identify()
        # 335x1B models have one output.
        if re.match(r"335\d1", identity.model):
            self.channels.pop(2, None)
        return identity
