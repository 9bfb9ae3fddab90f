"""Emulated Keysight 33522B (33500B series) waveform generator, two outputs, pulse function
(33500 Series Operating and Service Guide, SCPI reference).

Subsystems: [SOURce[1|2]:]FUNCtion (PULSe:WIDTh, PULSe:PERiod), FREQuency, VOLTage (amplitude,
OFFSet, HIGH, LOW, LIMit:HIGH/LOW/STATe), BURSt (STATe, MODE, NCYCles), TRIGger[1|2] (SOURce,
immediate), OUTPut[1|2] (state, LOAD, POLarity), *TRG. Output 1 is matrix row D, output 2 row G.
"""
from __future__ import annotations

import math

from .base import EmulatedInstrument
from .bench import Bench
from .pulse_channel import PulseChannel
from .scpi import Command, Numeric, SCPIError, fmt, need_args, parse_bool, parse_choice

LEVEL = Numeric(-10.0, 10.0, 0.0, "V")  # into high impedance; +-5 V into 50 ohm
WIDTH = Numeric(16e-9, 1e6, 100e-6, "S")
PERIOD = Numeric(33e-9, 1e6, 1e-3, "S")
FREQUENCY = Numeric(1e-6, 30e6, 1e3, "HZ")
NCYCLES = Numeric(1, 1e8, 1, integer=True)
LOAD = Numeric(1.0, 1e4, 50.0, "OHM")
CHANNELS = (1, 2)


class Keysight33522B(EmulatedInstrument):
    idn = "Keysight Technologies,33522B,MY52333522,4.00-1.19-2.00-52-00"
    name = "pg_33522b"
    signed_error_codes = True

    def __init__(self, bench: Bench, max_abs_voltage: float | None = None) -> None:
        self.bench = bench
        limits = bench.limits()
        self.max_abs_voltage = max_abs_voltage if max_abs_voltage is not None else getattr(limits, "v_max", 10.0)
        super().__init__()

    def reset(self) -> None:
        # *RST: 1 kHz sine, 100 mVpp into 50 ohm, output off, burst off, trigger IMMediate.
        self.channels = {
            n: PulseChannel(terminal=f"fg33500b.{n}", function="SIN", high=0.05, low=-0.05,
                            burst_enabled=False, trigger_source="IMM")
            for n in CHANNELS
        }

    def trigger(self) -> None:
        """*TRG: fires every output whose trigger source is BUS."""
        for ch in self.channels.values():
            if ch.trigger_source == "BUS" and ch.burst_enabled:
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
            amp = Numeric(1e-3, 20.0, 0.1, "V").parse(a[0], "VOLT")
            off = ch(s).offset
            levels(s, off + amp / 2, off - amp / 2)

        def set_offset(s: list[int], a: list[str]) -> None:
            need_args(a, 1, "VOLT:OFFS")
            off = LEVEL.parse(a[0], "VOLT:OFFS")
            amp = ch(s).amplitude
            levels(s, off + amp / 2, off - amp / 2)

        def set_width(s: list[int], a: list[str]) -> None:
            need_args(a, 1, "PULS:WIDT")
            w = WIDTH.parse(a[0], "FUNC:PULS:WIDT")
            ch(s).check_timing(w, ch(s).period)
            ch(s).width = w

        def set_period(s: list[int], a: list[str]) -> None:
            need_args(a, 1, "PULS:PER")
            p = PERIOD.parse(a[0], "FUNC:PULS:PER")
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

        def set_load(s: list[int], a: list[str]) -> None:
            need_args(a, 1, "OUTP:LOAD")
            word = a[0].strip().upper()
            load = math.inf if word in ("INF", "INFINITY") else LOAD.parse(a[0], "OUTP:LOAD")
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
                a[0], ("SINusoid", "SQUare", "TRIangle", "RAMP", "PULSe", "PRBS", "NOISe", "ARB", "DC"), "FUNC"
            )

        def set_burst_state(s: list[int], a: list[str]) -> None:
            need_args(a, 1, "BURS:STAT")
            on = parse_bool(a[0], "BURS:STAT")
            if not on and ch(s).output:
                raise SCPIError(-221, "turn the output off before leaving burst mode")
            ch(s).burst_enabled = on

        def set_burst_mode(s: list[int], a: list[str]) -> None:
            need_args(a, 1, "BURS:MODE")
            if parse_choice(a[0], ("TRIGgered", "GATed"), "BURS:MODE") != "TRIG":
                raise SCPIError(-221, "gated burst is not emulated")

        def set_ncycles(s: list[int], a: list[str]) -> None:
            need_args(a, 1, "BURS:NCYC")
            ch(s).burst_count = int(NCYCLES.parse(a[0], "BURS:NCYC"))

        def set_trigger_source(s: list[int], a: list[str]) -> None:
            need_args(a, 1, "TRIG:SOUR")
            src = parse_choice(a[0], ("IMMediate", "EXTernal", "TIMer", "BUS"), "TRIG:SOUR")
            if ch(s).output and src in ("IMM", "TIM"):
                raise SCPIError(-221, "free-running trigger with the output on is not emulated")
            ch(s).trigger_source = src

        def trigger_now(s: list[int], a: list[str]) -> None:
            c = ch(s)
            if c.burst_enabled:
                c.fire(self.bench)

        return [
            Command("[:SOURce[1|2]]:FUNCtion[:SHAPe]", write=set_function, query=lambda s, a: ch(s).function),
            Command("[:SOURce[1|2]][:FUNCtion]:PULSe:WIDTh", write=set_width, query=lambda s, a: fmt(ch(s).width)),
            Command("[:SOURce[1|2]][:FUNCtion]:PULSe:PERiod", write=set_period,
                    query=lambda s, a: fmt(ch(s).period)),
            Command("[:SOURce[1|2]][:FUNCtion]:PULSe:TRANsition[:BOTH]", write=lambda s, a: None),
            Command("[:SOURce[1|2]]:FREQuency[:CW]", write=set_frequency,
                    query=lambda s, a: fmt(1.0 / ch(s).period)),
            Command("[:SOURce[1|2]]:VOLTage[:LEVel][:IMMediate][:AMPLitude]", write=set_amplitude,
                    query=lambda s, a: fmt(ch(s).amplitude)),
            Command("[:SOURce[1|2]]:VOLTage[:LEVel][:IMMediate]:OFFSet", write=set_offset,
                    query=lambda s, a: fmt(ch(s).offset)),
            Command("[:SOURce[1|2]]:VOLTage[:LEVel][:IMMediate]:HIGH", write=set_high,
                    query=lambda s, a: fmt(ch(s).high)),
            Command("[:SOURce[1|2]]:VOLTage[:LEVel][:IMMediate]:LOW", write=set_low,
                    query=lambda s, a: fmt(ch(s).low)),
            Command("[:SOURce[1|2]]:VOLTage:LIMit:HIGH", write=set_limit("limit_high", "VOLT:LIM:HIGH"),
                    query=lambda s, a: fmt(ch(s).limit_high)),
            Command("[:SOURce[1|2]]:VOLTage:LIMit:LOW", write=set_limit("limit_low", "VOLT:LIM:LOW"),
                    query=lambda s, a: fmt(ch(s).limit_low)),
            Command("[:SOURce[1|2]]:VOLTage:LIMit:STATe", write=set_limit_state,
                    query=lambda s, a: "1" if ch(s).limit_enabled else "0"),
            Command("[:SOURce[1|2]]:BURSt:STATe", write=set_burst_state,
                    query=lambda s, a: "1" if ch(s).burst_enabled else "0"),
            Command("[:SOURce[1|2]]:BURSt:MODE", write=set_burst_mode, query=lambda s, a: "TRIG"),
            Command("[:SOURce[1|2]]:BURSt:NCYCles", write=set_ncycles,
                    query=lambda s, a: fmt(ch(s).burst_count)),
            Command(":TRIGger[1|2]:SOURce", write=set_trigger_source, query=lambda s, a: ch(s).trigger_source),
            Command(":TRIGger[1|2][:IMMediate]", write=trigger_now),
            Command(":OUTPut[1|2][:STATe]", write=set_output, query=lambda s, a: "1" if ch(s).output else "0"),
            Command(":OUTPut[1|2]:LOAD", write=set_load,
                    query=lambda s, a: "9.9E+37" if math.isinf(ch(s).load) else fmt(ch(s).load)),
            Command(":OUTPut[1|2]:POLarity", write=lambda s, a: setattr(
                ch(s), "inverted", parse_choice(a[0] if a else "", ("NORMal", "INVerted"), "OUTP:POL") == "INV"),
                query=lambda s, a: "INV" if ch(s).inverted else "NORM"),
        ]
