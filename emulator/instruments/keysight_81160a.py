"""Emulated Keysight 81160A-class pulse function arbitrary generator, two outputs
(81150A/81160A Programming Guide). The channel suffix sits on the node the manual puts it on:
``:VOLTage2:HIGH``, ``:PULSe:WIDTh2``, ``:OUTPut2``, ``:ARM:SOURce2``, ``:TRIGger:COUNt2``.

Triggered bursts: ``:ARM:SOURce MANual`` (or BUS) arms the output; ``*TRG`` or ``:TRIGger`` fires
``:TRIGger:COUNt`` pulses. ``:ARM:SOURce IMMediate`` is continuous operation, which the emulator
does not model (output on is refused). Output 1 is matrix row E, output 2 row H.
"""
from __future__ import annotations

import math

from .pulse_channel import PulseChannel
from .pulse_generator import PulseGenerator
from .scpi import Command, Numeric, SCPIError, fmt, need_args, parse_choice

LEVEL = Numeric(-10.0, 10.0, 0.0, "V")  # into high impedance (+-5 V into 50 ohm)
WIDTH = Numeric(1.5e-9, 1e6, 100e-6, "S")
PERIOD = Numeric(3.03e-9, 1e6, 1e-3, "S")
FREQUENCY = Numeric(1e-6, 330e6, 1e3, "HZ")
COUNT = Numeric(1, 2**31 - 1, 1, integer=True)
IMPEDANCE = Numeric(0.3, 1e6, 50.0, "OHM")


class Keysight81160A(PulseGenerator):
    idn = "Agilent Technologies,81160A,DE51681160,2.0.0.0-3.0"
    name = "pg_81160a"
    LEVEL, AMPLITUDE, WIDTH, PERIOD, FREQUENCY = LEVEL, Numeric(50e-3, 20.0, 0.5, "V"), WIDTH, PERIOD, FREQUENCY

    def reset(self) -> None:
        # *RST: continuous (ARM IMMediate) 1 MHz pulses, output off, 50 ohm expected load.
        self.channels = {
            n: PulseChannel(terminal=f"pg81160a.{n}", function="PULS", high=0.25, low=-0.25,
                            width=500e-9, period=1e-6, burst_enabled=False, trigger_source="IMM")
            for n in self.CHANNELS
        }

    def trigger(self) -> None:
        for ch in self.channels.values():
            if ch.burst_enabled:
                ch.fire(self.bench)

    def command_table(self) -> list[Command]:
        ch = self.ch

        def set_impedance(s: list[int], a: list[str]) -> None:
            need_args(a, 1, "OUTP:IMP:EXT")
            load = self.load_word(a[0])
            load = IMPEDANCE.parse(a[0], "OUTP:IMP:EXT") if load is None else load
            self.set_load(s, math.inf if load >= 1e6 else load)  # 1 MOhm is the manual's "high impedance"

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
            *self.shared_commands(voltage="[:SOURce]:VOLTage[1|2]", width="[:SOURce]:PULSe:WIDTh[1|2]",
                                  period="[:SOURce]:PULSe:PERiod[1|2]", frequency="[:SOURce]:FREQuency[1|2][:CW]",
                                  limit_state=":LIMit[:STATe]"),
            Command("[:SOURce]:PULSe:TRANsition[1|2][:LEADing]", write=lambda s, a: None),
            Command(":ARM:SOURce[1|2]", write=set_arm_source, query=arm_source),
            Command(":TRIGger:COUNt[1|2]", write=set_count, query=lambda s, a: str(ch(s).burst_count)),
            Command(":TRIGger[:IMMediate]", write=trigger_now),
            Command(":OUTPut[1|2]:IMPedance:EXTernal", write=set_impedance,
                    query=lambda s, a: fmt(1e6 if math.isinf(ch(s).load) else ch(s).load)),
        ]
