"""Emulated Keysight 33522B (33500B series) waveform generator, two outputs, pulse function
(33500 Series Operating and Service Guide, SCPI reference).

Subsystems: [SOURce[1|2]:]FUNCtion (PULSe:WIDTh, PULSe:PERiod), FREQuency, VOLTage (amplitude,
OFFSet, HIGH, LOW, LIMit:HIGH/LOW/STATe), BURSt (STATe, MODE, NCYCles), TRIGger[1|2] (SOURce,
immediate), OUTPut[1|2] (state, LOAD, POLarity), *TRG. Output 1 is matrix row D, output 2 row G.
"""
from __future__ import annotations

import math

from .pulse_channel import PulseChannel
from .pulse_generator import PulseGenerator
from .scpi import Command, Numeric, SCPIError, fmt, need_args, parse_choice

LEVEL = Numeric(-10.0, 10.0, 0.0, "V")  # into high impedance; +-5 V into 50 ohm
WIDTH = Numeric(16e-9, 1e6, 100e-6, "S")
PERIOD = Numeric(33e-9, 1e6, 1e-3, "S")
FREQUENCY = Numeric(1e-6, 30e6, 1e3, "HZ")
NCYCLES = Numeric(1, 1e8, 1, integer=True)
LOAD = Numeric(1.0, 1e4, 50.0, "OHM")


class Keysight33522B(PulseGenerator):
    idn = "Keysight Technologies,33522B,MY52333522,4.00-1.19-2.00-52-00"
    name = "pg_33522b"
    signed_error_codes = True
    LEVEL, AMPLITUDE, WIDTH, PERIOD, FREQUENCY = LEVEL, Numeric(1e-3, 20.0, 0.1, "V"), WIDTH, PERIOD, FREQUENCY
    WIDTH_HEADER, PERIOD_HEADER = "FUNC:PULS:WIDT", "FUNC:PULS:PER"

    def reset(self) -> None:
        # *RST: 1 kHz sine, 100 mVpp into 50 ohm, output off, burst off, trigger IMMediate.
        self.channels = {
            n: PulseChannel(terminal=f"fg33500b.{n}", function="SIN", high=0.05, low=-0.05,
                            burst_enabled=False, trigger_source="IMM")
            for n in self.CHANNELS
        }

    def trigger(self) -> None:
        """*TRG: fires every output whose trigger source is BUS."""
        for ch in self.channels.values():
            if ch.trigger_source == "BUS" and ch.burst_enabled:
                ch.fire(self.bench)

    def command_table(self) -> list[Command]:
        ch = self.ch

        def set_load(s: list[int], a: list[str]) -> None:
            need_args(a, 1, "OUTP:LOAD")
            load = self.load_word(a[0])
            self.set_load(s, LOAD.parse(a[0], "OUTP:LOAD") if load is None else load)

        def set_function(s: list[int], a: list[str]) -> None:
            need_args(a, 1, "FUNC")
            ch(s).function = parse_choice(
                a[0], ("SINusoid", "SQUare", "TRIangle", "RAMP", "PULSe", "PRBS", "NOISe", "ARB", "DC"), "FUNC"
            )

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
            *self.shared_commands(voltage="[:SOURce[1|2]]:VOLTage", width="[:SOURce[1|2]][:FUNCtion]:PULSe:WIDTh",
                                  period="[:SOURce[1|2]][:FUNCtion]:PULSe:PERiod",
                                  frequency="[:SOURce[1|2]]:FREQuency[:CW]", limit_state=":LIMit:STATe"),
            Command("[:SOURce[1|2]][:FUNCtion]:PULSe:TRANsition[:BOTH]", write=lambda s, a: None),
            Command("[:SOURce[1|2]]:BURSt:STATe", write=self.set_burst_state,
                    query=lambda s, a: "1" if ch(s).burst_enabled else "0"),
            Command("[:SOURce[1|2]]:BURSt:MODE", write=self.set_burst_mode, query=lambda s, a: "TRIG"),
            Command("[:SOURce[1|2]]:BURSt:NCYCles", write=set_ncycles,
                    query=lambda s, a: fmt(ch(s).burst_count)),
            Command(":TRIGger[1|2]:SOURce", write=set_trigger_source, query=lambda s, a: ch(s).trigger_source),
            Command(":TRIGger[1|2][:IMMediate]", write=trigger_now),
            Command(":OUTPut[1|2]:LOAD", write=set_load,
                    query=lambda s, a: "9.9E+37" if math.isinf(ch(s).load) else fmt(ch(s).load)),
        ]
