"""Tektronix AFG31000-series arbitrary function generators (AFG31021..AFG31252; AFG31000 Series
Programmer Manual, which keeps the AFG3000 commands), pulse function. ``{ch}`` is the output.

A triggered burst is ``SOUR:BURS:STAT ON``, ``SOUR:BURS:MODE TRIG``, ``SOUR:BURS:NCYC <n>`` with the
trigger source ``EXT``ernal (so the internal timer fires nothing) and ``*TRG`` firing one burst.
The output limits (``SOUR:VOLT:LIM:HIGH/LOW``) are always enforced by the instrument.
"""
from __future__ import annotations

import math
import re

from .base import Instrument
from .pulse import PulseGeneratorChannel
from .settings import Setting, boolean, in_range, integer_in_range, num, on_off, one_of, parse_bool


def _impedance(name: str, value: object) -> float:
    """Load impedance: 1 ohm .. 10 kohm, or math.inf for high impedance (INFinity)."""
    if value == math.inf:
        return math.inf
    return in_range(1.0, 1e4, "ohm")(name, value)


class TektronixAFG31000Channel(PulseGeneratorChannel):
    function = Setting(
        "Output function (PULS for pulses).",
        get="SOUR{ch}:FUNC:SHAP?", set="SOUR{ch}:FUNC:SHAP {value}",
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
        "Amplitude (high - low), V (2 mV .. 20 V into high impedance).",
        get="SOUR{ch}:VOLT?", set="SOUR{ch}:VOLT {value}",
        validator=in_range(2e-3, 20.0, "V"), guard="amplitude",
    )
    offset = Setting(
        "Offset ((high + low) / 2), V.",
        get="SOUR{ch}:VOLT:OFFS?", set="SOUR{ch}:VOLT:OFFS {value}",
        validator=in_range(-10.0, 10.0, "V"), guard="offset",
    )
    width = Setting(
        "Pulse width, s (8 ns .. 999.99 s, below the period).",
        get="SOUR{ch}:PULS:WIDT?", set="SOUR{ch}:PULS:WIDT {value}",
        validator=in_range(8e-9, 999.99, "s"), guard="width",
    )
    period = Setting(
        "Pulse period, s (20 ns .. 1000 s).",
        get="SOUR{ch}:PULS:PER?", set="SOUR{ch}:PULS:PER {value}",
        validator=in_range(20e-9, 1000.0, "s"),
    )
    leading_edge = Setting(
        "Leading-edge time, s (at most 0.625 x the width).",
        get="SOUR{ch}:PULS:TRAN:LEAD?", set="SOUR{ch}:PULS:TRAN:LEAD {value}",
        validator=in_range(2.5e-9, 625.0, "s"),
    )
    trailing_edge = Setting(
        "Trailing-edge time, s (at most 0.625 x the width).",
        get="SOUR{ch}:PULS:TRAN:TRA?", set="SOUR{ch}:PULS:TRAN:TRA {value}",
        validator=in_range(2.5e-9, 625.0, "s"),
    )
    burst_enabled = Setting(
        "Burst mode on/off.",
        get="SOUR{ch}:BURS:STAT?", set="SOUR{ch}:BURS:STAT {value}",
        validator=boolean, parse=parse_bool, encode=on_off,
    )
    burst_mode = Setting(
        "Burst mode: TRIG (n cycles per trigger) or GAT.",
        get="SOUR{ch}:BURS:MODE?", set="SOUR{ch}:BURS:MODE {value}",
        validator=one_of("TRIG", "GAT"), parse=str.strip,
    )
    burst_count = Setting(
        "Pulses per trigger (BURSt:NCYCles, 1 .. 1e6).",
        get="SOUR{ch}:BURS:NCYC?", set="SOUR{ch}:BURS:NCYC {value:d}",
        validator=integer_in_range(1, 1_000_000), parse=lambda s: int(float(s)),
    )
    polarity = Setting(
        "Output polarity: NORM or INV.",
        get="OUTP{ch}:POL?", set="OUTP{ch}:POL {value}",
        validator=one_of("NORM", "INV"), parse=str.strip,
    )
    load = Setting(
        "Load impedance the levels refer to, ohm (OUTPut:IMPedance); math.inf for high impedance.",
        get="OUTP{ch}:IMP?", set="OUTP{ch}:IMP {value}",
        validator=_impedance, encode=lambda v: "INF" if v == math.inf else num(v),
        parse=lambda s: math.inf if float(s) > 1e30 else float(s),
    )
    limit_high = Setting(
        "Output limit, upper, V (always enforced).",
        get="SOUR{ch}:VOLT:LIM:HIGH?", set="SOUR{ch}:VOLT:LIM:HIGH {value}",
        validator=in_range(-10.0, 10.0, "V"),
    )
    limit_low = Setting(
        "Output limit, lower, V (always enforced).",
        get="SOUR{ch}:VOLT:LIM:LOW?", set="SOUR{ch}:VOLT:LIM:LOW {value}",
        validator=in_range(-10.0, 10.0, "V"),
    )
    output = Setting(
        "Output on/off.",
        get="OUTP{ch}:STAT?", set="OUTP{ch}:STAT {value}",
        validator=boolean, guard="output", parse=parse_bool, encode=on_off,
    )

    async def _prepare_burst(self) -> None:
        await self.function.set("PULS")
        await self.burst_enabled.set(True)
        await self.burst_mode.set("TRIG")
        await self.instrument.trigger_source.set("EXT")  # type: ignore[attr-defined]


class TektronixAFG31000(Instrument):
    """Tektronix AFG31000-series generator; ``pg[1]``, ``pg[2]`` (one output on AFG31xx1 models)."""

    idn_pattern = re.compile(r"(?i)TEKTRONIX,\s*AFG31\d\d\d,")
    channel_class = TektronixAFG31000Channel
    channel_numbers = (1, 2)
    kind = "pulse_generator"
    number = 0  # instrument-level settings have no channel suffix
    cache: dict[str, object]

    trigger_source = Setting(
        "Trigger source of both outputs: TIM (internal timer) or EXT (external, and *TRG).",
        get="TRIG:SEQ:SOUR?", set="TRIG:SEQ:SOUR {value}",
        validator=one_of("TIM", "EXT"), parse=str.strip,
    )

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.cache = {}

    def guard(self, setting: str, kind: str, value: object) -> None:
        raise NotImplementedError(f"{type(self).__name__} has no guard {kind!r} (setting {setting})")

    async def identify(self):  # type: ignore[no-untyped-def]
        identity = await super().identify()
        # AFG31xx1 models (AFG31021, AFG31051, AFG31101, AFG31151, AFG31251) have one output.
        if re.match(r"(?i)AFG31\d\d1", identity.model):
            self.channels.pop(2, None)
        return identity

    async def reconnect(self) -> None:
        self.cache.clear()
        await super().reconnect()
