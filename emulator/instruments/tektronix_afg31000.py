"""Emulated Tektronix AFG31102 (AFG31000 series) arbitrary function generator, two outputs, pulse
function (AFG31000 Series Programmer Manual; the AFG3000 command set it keeps).

Subsystems: [SOURce[1|2]:]FUNCtion[:SHAPe], PULSe (WIDTh, PERiod, TRANsition[:LEADing],
TRANsition:TRAiling, DELay), FREQuency, VOLTage (amplitude, OFFSet, HIGH, LOW, LIMit:HIGH/LOW, always
enforced), BURSt ([:STATe], MODE, NCYCles), TRIGger[:SEQuence] (SOURce TIMer|EXTernal, [:IMMediate]),
OUTPut[1|2] ([:STATe], IMPedance <ohm>|INFinity, POLarity), *TRG, SYSTem:ERRor. Output 1 is row 3 of
the 3706A bench; output 2 is not cabled. The edges are stored and checked (each at most 0.625 x the
width) but the array sees a rectangular pulse of the programmed width, as from the other generators.
"""
from __future__ import annotations

import math

from .pulse_channel import PulseChannel
from .pulse_generator import PulseGenerator
from .scpi import Command, Numeric, SCPIError, fmt, need_args, parse_choice

LEVEL = Numeric(-10.0, 10.0, 0.0, "V")  # into high impedance; +-5 V into 50 ohm
AMPLITUDE = Numeric(2e-3, 20.0, 1.0, "V")
WIDTH = Numeric(8e-9, 999.99, 500e-6, "S")
PERIOD = Numeric(20e-9, 1000.0, 1e-3, "S")
FREQUENCY = Numeric(1e-3, 50e6, 1e3, "HZ")  # pulse: up to 50 MHz on the AFG31102
EDGE = Numeric(2.5e-9, 625.0, 2.5e-9, "S")
NCYCLES = Numeric(1, 1e6, 1, integer=True)
IMPEDANCE = Numeric(1.0, 1e4, 50.0, "OHM")


class TektronixAFG31102(PulseGenerator):
    idn = "TEKTRONIX,AFG31102,C013102,SCPI:99.0 FV:1.6.4"
    name = "afg_31102"
    LEVEL, AMPLITUDE, WIDTH, PERIOD, FREQUENCY = LEVEL, AMPLITUDE, WIDTH, PERIOD, FREQUENCY
    WIDTH_HEADER, PERIOD_HEADER = "PULS:WIDT", "PULS:PER"

    def reset(self) -> None:
        # *RST: 1 MHz sine, 1 Vpp into 50 ohm, outputs off, continuous (no burst), trigger TIMer.
        self.channels = {
            n: PulseChannel(terminal=f"afg31000.{n}", function="SIN", high=0.5, low=-0.5, width=500e-6,
                            burst_enabled=False, trigger_source="TIM", limit_enabled=True,
                            limit_high=10.0, limit_low=-10.0)
            for n in self.CHANNELS
        }
        self.edges = {n: [EDGE.default, EDGE.default] for n in self.CHANNELS}  # leading, trailing

    def trigger(self) -> None:
        """*TRG and TRIG:IMM: a manual trigger event starts a burst on every output in burst mode."""
        for ch in self.channels.values():
            if ch.burst_enabled:
                ch.fire(self.bench)

    def set_width(self, s: list[int], a: list[str]) -> None:
        need_args(a, 1, "PULS:WIDT")
        self._check_edges(s, self.WIDTH.parse(a[0], "PULS:WIDT"), self.edges[self._n(s)])
        super().set_width(s, a)

    def _n(self, s: list[int]) -> int:
        return next((x for x in s if x in self.CHANNELS), 1)

    def _check_edges(self, s: list[int], width: float, edges: list[float]) -> None:
        if max(edges) > 0.625 * width:
            raise SCPIError(-221, f"edge {max(edges):g} s longer than 0.625 x width {width:g} s")

    def command_table(self) -> list[Command]:
        ch = self.ch

        def set_impedance(s: list[int], a: list[str]) -> None:
            need_args(a, 1, "OUTP:IMP")
            load = self.load_word(a[0])
            self.set_load(s, IMPEDANCE.parse(a[0], "OUTP:IMP") if load is None else load)

        def set_function(s: list[int], a: list[str]) -> None:
            need_args(a, 1, "FUNC")
            ch(s).function = parse_choice(
                a[0], ("SINusoid", "SQUare", "PULSe", "RAMP", "PRNoise", "DC", "SINC", "GAUSsian",
                       "LORentz", "ERISe", "EDECay", "HAVersine", "ARBitrary"), "FUNC")

        def set_edge(which: int, header: str):  # type: ignore[no-untyped-def]
            def handler(s: list[int], a: list[str]) -> None:
                need_args(a, 1, header)
                edges = list(self.edges[self._n(s)])
                edges[which] = EDGE.parse(a[0], header)
                self._check_edges(s, ch(s).width, edges)
                self.edges[self._n(s)] = edges
            return handler

        def set_ncycles(s: list[int], a: list[str]) -> None:
            need_args(a, 1, "BURS:NCYC")
            if a[0].strip().upper() in ("INF", "INFINITY"):
                raise SCPIError(-221, "an infinite burst is not emulated")
            ch(s).burst_count = int(NCYCLES.parse(a[0], "BURS:NCYC"))

        def set_trigger_source(s: list[int], a: list[str]) -> None:
            need_args(a, 1, "TRIG:SOUR")
            src = parse_choice(a[0], ("TIMer", "EXTernal"), "TRIG:SOUR")
            if src == "TIM" and any(c.output and c.burst_enabled for c in self.channels.values()):
                raise SCPIError(-221, "timer-triggered bursts with an output on are not emulated")
            for c in self.channels.values():  # one trigger system for both outputs
                c.trigger_source = src

        return [
            Command("[:SOURce[1|2]]:FUNCtion[:SHAPe]", write=set_function, query=lambda s, a: ch(s).function),
            *self.shared_commands(voltage="[:SOURce[1|2]]:VOLTage", width="[:SOURce[1|2]]:PULSe:WIDTh",
                                  period="[:SOURce[1|2]]:PULSe:PERiod",
                                  frequency="[:SOURce[1|2]]:FREQuency[:CW]", limit_state=None),
            Command("[:SOURce[1|2]]:PULSe:TRANsition[:LEADing]", write=set_edge(0, "PULS:TRAN:LEAD"),
                    query=lambda s, a: fmt(self.edges[self._n(s)][0])),
            Command("[:SOURce[1|2]]:PULSe:TRANsition:TRAiling", write=set_edge(1, "PULS:TRAN:TRA"),
                    query=lambda s, a: fmt(self.edges[self._n(s)][1])),
            Command("[:SOURce[1|2]]:PULSe:DELay", write=self.accept_delay, query=lambda s, a: fmt(0.0)),
            Command("[:SOURce[1|2]]:BURSt[:STATe]", write=self.set_burst_state,
                    query=lambda s, a: "1" if ch(s).burst_enabled else "0"),
            Command("[:SOURce[1|2]]:BURSt:MODE", write=self.set_burst_mode, query=lambda s, a: "TRIG"),
            Command("[:SOURce[1|2]]:BURSt:NCYCles", write=set_ncycles, query=lambda s, a: fmt(ch(s).burst_count)),
            Command(":TRIGger[:SEQuence]:SOURce", write=set_trigger_source,
                    query=lambda s, a: self.channels[1].trigger_source),
            Command(":TRIGger[:SEQuence][:IMMediate]", write=lambda s, a: self.trigger()),
            Command(":OUTPut[1|2]:IMPedance", write=set_impedance,
                    query=lambda s, a: "9.9E+37" if math.isinf(ch(s).load) else fmt(ch(s).load)),
        ]

    @staticmethod
    def accept_delay(_s: list[int], a: list[str]) -> None:
        need_args(a, 1, "PULS:DEL")
        Numeric(0.0, 1000.0, 0.0, "S").parse(a[0], "PULS:DEL")
