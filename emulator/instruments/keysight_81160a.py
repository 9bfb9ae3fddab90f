"""Emulated Keysight 81160A-class pulse function arbitrary generator, two outputs
(81150A/81160A Programming Guide). The channel suffix sits on the node the manual puts it on:
``:VOLTage2:HIGH``, ``:PULSe:WIDTh2``, ``:OUTPut2``, ``:ARM:SOURce2``, ``:TRIGger:COUNt2``.

Triggered bursts: ``:ARM:SOURce MANual`` (or BUS) arms the output; ``*TRG`` or ``:TRIGger`` fires
``:TRIGger:COUNt`` pulses. ``:ARM:SOURce IMMediate`` is continuous operation, which the emulator
does not model (output on is refused). Output 1 is matrix row E, output 2 row H.
"""
from __future__ import annotations

import math

from .base import EmulatedInstrument
from .bench import Bench
from .pulse_channel import PulseChannel
from .scpi import Command, Numeric, SCPIError, fmt, need_args, parse_bool, parse_choice

LEVEL = Numeric(-10.0, 10.0, 0.0, "V")  # into high impedance (+-5 V into 50 ohm)
WIDTH = Numeric(1.5e-9, 1e6, 100e-6, "S")
PERIOD = Numeric(3.03e-9, 1e6, 1e-3, "S")
FREQUENCY = Numeric(1e-6, 330e6, 1e3, "HZ")
COUNT = Numeric(1, 2**31 - 1, 1, integer=True)
IMPEDANCE = Numeric(0.3, 1e6, 50.0, "OHM")
CHANNELS = (1, 2)


class Keysight81160A(EmulatedInstrument):
    idn = "Agilent Technologies,81160A,DE51681160,2.0.0.0-3.0"
    name = "pg_81160a"

    def __init__(self, bench: Bench, max_abs_voltage: float | None = None) -> None:
        self.bench = bench
        limits = bench.limits()
        self.max_abs_voltage = max_abs_voltage if max_abs_voltage is not None else getattr(limits, "v_max", 10.0)
        super().__init__()

    def reset(self) -> None:
        # *RST: continuous (ARM IMMediate) 1 MHz pulses, output off, 50 ohm expected load.
        self.channels = {
            n: PulseChannel(terminal=f"pg81160a.{n}", function="PULS", high=0.25, low=-0.25,
                            width=500e-9, period=1e-6, burst_enabled=False, trigger_source="IMM")
            for n in CHANNELS
        }

    def trigger(self) -> None:
        for ch in self.channels.values():
            if ch.burst_enabled:
                ch.fire(self.bench)

    def command_table(self) -> list[Command]:
        def ch(s: list[int]) -> PulseChannel:
            return self.channels[next((x for x in s if x in CHANNELS), 1)]

        def levels(s: list[int], high: float, low: float) -> None:
            c = ch(s)
            c.check_levels(high, low, self.max_abs_voltage)
            c.high, c.low = high, low

        def set_high(s: list[int], a: list[str]) -> None:
            need_args(a, 1, "VOLT:HIGH")
            levels(s, LEVEL.parse(a[0], "VOLT:HIGH"), ch(s).low)

        def set_low(s: list[int], a: list[str]) -> None:
            need_args(a, 1, "VOLT:LOW")
            levels(s, ch(s).high, LEVEL.parse(a[0], "VOLT:LOW"))

        def set_amplitude(s: list[int], a: list[str]) -> None:
            need_args(a, 1, "VOLT")
            amp = Numeric(50e-3, 20.0, 0.5, "V").parse(a[0], "VOLT")
            off = ch(s).offset
            levels(s, off + amp / 2, off - amp / 2)

        def set_offset(s: list[int], a: list[str]) -> None:
            need_args(a, 1, "VOLT:OFFS")
            off = LEVEL.parse(a[0], "VOLT:OFFS")
            amp = ch(s).amplitude
            levels(s, off + amp / 2, off - amp / 2)

        def set_width(s: list[int], a: list[str]) -> None:
            need_args(a, 1, "PULS:WIDT")
            w = WIDTH.parse(a[0], "PULS:WIDT")
            ch(s).check_timing(w, ch(s).period)
            ch(s).width = w

        def set_period(s: list[int], a: list[str]) -> None:
            need_args(a, 1, "PULS:PER")
            p = PERIOD.parse(a[0], "PULS:PER")
            ch(s).check_timing(ch(s).width, p)
            ch(s).period = p

        def set_frequency(s: list[int], a: list[str]) -> None:
            need_args(a, 1, "FREQ")
            p = 1.0 / FREQUENCY.parse(a[0], "FREQ")
            ch(s).check_timing(ch(s).width, p)
            ch(s).period = p

        def set_output(s: list[int], a: list[str]) -> None:
            need_args(a, 1, "OUTP")
            on = parse_bool(a[0], "OUTP")
            if on:
                ch(s).check_output_on()
            ch(s).output = on

        def set_impedance(s: list[int], a: list[str]) -> None:
            need_args(a, 1, "OUTP:IMP:EXT")
            word = a[0].strip().upper()
            load = math.inf if word in ("INF", "INFINITY") else IMPEDANCE.parse(a[0], "OUTP:IMP:EXT")
            if load >= 1e6:
                load = math.inf  # 1 MOhm is the manual's "high impedance" setting
            c = ch(s)
            old, c.load = c.load, load
            try:
                c.check_levels(c.high, c.low, self.max_abs_voltage)
            except SCPIError:
                c.load = old
                raise

        def set_limit(attr: str, name: str):  # type: ignore[no-untyped-def]
            def handler(s: list[int], a: list[str]) -> None:
                need_args(a, 1, name)
                setattr(ch(s), attr, LEVEL.parse(a[0], name))
            return handler

        def set_limit_state(s: list[int], a: list[str]) -> None:
            need_args(a, 1, "VOLT:LIM:STAT")
            c = ch(s)
            on = parse_bool(a[0], "VOLT:LIM:STAT")
            if on and (c.high > c.limit_high or c.low < c.limit_low):
                raise SCPIError(-221, "present levels lie outside the limits being enabled")
            c.limit_enabled = on

        def set_function(s: list[int], a: list[str]) -> None:
            need_args(a, 1, "FUNC")
            ch(s).function = parse_choice(
                a[0], ("SINusoid", "SQUare", "RAMP", "PULSe", "NOISe", "DC", "USER"), "FUNC"
            )

        def set_arm_source(s: list[int], a: list[str]) -> None:
            need_args(a, 1, "ARM:SOUR")
            src = parse_choice(a[0], ("IMMediate", "EXTernal", "MANual", "BUS"), "ARM:SOUR")
            c = ch(s)
            if c.output and src == "IMM":
                raise SCPIError(-221, "continuous mode with the output on is not emulated")
            c.burst_enabled = src != "IMM"
            c.trigger_source = "BUS" if src in ("MAN", "BUS") else src

        def set_count(s: list[int], a: list[str]) -> None:
            need_args(a, 1, "TRIG:COUN")
            ch(s).burst_count = int(COUNT.parse(a[0], "TRIG:COUN"))

        def trigger_now(s: list[int], a: list[str]) -> None:
            self.trigger()

        def arm_source(s: list[int], a: list[str]) -> str:
            c = ch(s)
            return "IMM" if not c.burst_enabled else ("MAN" if c.trigger_source == "BUS" else c.trigger_source)

        return [
            Command("[:SOURce]:FUNCtion[1|2][:SHAPe]", write=set_function, query=lambda s, a: ch(s).function),
            Command("[:SOURce]:VOLTage[1|2][:LEVel][:IMMediate][:AMPLitude]", write=set_amplitude,
                    query=lambda s, a: fmt(ch(s).amplitude)),
            Command("[:SOURce]:VOLTage[1|2][:LEVel][:IMMediate]:OFFSet", write=set_offset,
                    query=lambda s, a: fmt(ch(s).offset)),
            Command("[:SOURce]:VOLTage[1|2][:LEVel][:IMMediate]:HIGH", write=set_high,
                    query=lambda s, a: fmt(ch(s).high)),
            Command("[:SOURce]:VOLTage[1|2][:LEVel][:IMMediate]:LOW", write=set_low,
                    query=lambda s, a: fmt(ch(s).low)),
            Command("[:SOURce]:VOLTage[1|2]:LIMit:HIGH", write=set_limit("limit_high", "VOLT:LIM:HIGH"),
                    query=lambda s, a: fmt(ch(s).limit_high)),
            Command("[:SOURce]:VOLTage[1|2]:LIMit:LOW", write=set_limit("limit_low", "VOLT:LIM:LOW"),
                    query=lambda s, a: fmt(ch(s).limit_low)),
            Command("[:SOURce]:VOLTage[1|2]:LIMit[:STATe]", write=set_limit_state,
                    query=lambda s, a: "1" if ch(s).limit_enabled else "0"),
            Command("[:SOURce]:PULSe:WIDTh[1|2]", write=set_width, query=lambda s, a: fmt(ch(s).width)),
            Command("[:SOURce]:PULSe:PERiod[1|2]", write=set_period, query=lambda s, a: fmt(ch(s).period)),
            Command("[:SOURce]:PULSe:TRANsition[1|2][:LEADing]", write=lambda s, a: None),
            Command("[:SOURce]:FREQuency[1|2][:CW]", write=set_frequency,
                    query=lambda s, a: fmt(1.0 / ch(s).period)),
            Command(":ARM:SOURce[1|2]", write=set_arm_source, query=arm_source),
            Command(":TRIGger:COUNt[1|2]", write=set_count, query=lambda s, a: str(ch(s).burst_count)),
            Command(":TRIGger[:IMMediate]", write=trigger_now),
            Command(":OUTPut[1|2][:STATe]", write=set_output, query=lambda s, a: "1" if ch(s).output else "0"),
            Command(":OUTPut[1|2]:IMPedance:EXTernal", write=set_impedance,
                    query=lambda s, a: fmt(1e6 if math.isinf(ch(s).load) else ch(s).load)),
            Command(":OUTPut[1|2]:POLarity", write=lambda s, a: setattr(
                ch(s), "inverted", parse_choice(a[0] if a else "", ("NORMal", "INVerted"), "OUTP:POL") == "INV"),
                query=lambda s, a: "INV" if ch(s).inverted else "NORM"),
        ]
