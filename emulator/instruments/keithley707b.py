"""Emulated Keithley 707B-class switching matrix mainframe (707B Reference Manual).

The 707B is programmed in TSP (Lua statements, run by the interpreter of :mod:`.tsp` with the
``channel`` functions of :mod:`.switch_matrix`); a switching program needs::

    channel.close("1A01,1C05")       channel.open("1A01")      channel.open("allslots")
    channel.exclusiveclose("1A01,1C05")                         channel.reset("allslots")
    print(channel.getclose("allslots"))                         reset()
    print(errorqueue.count)          print(errorqueue.next())   errorqueue.clear()
    waitcomplete()                   opc()

plus IEEE 488.2 common commands and, for SCPI-style clients of 707B-class matrices, ``:ROUTe:CLOSe
(@1A01,...)``, ``:ROUTe:OPEN (@...)``, ``:ROUTe:OPEN:ALL``, ``:ROUTe:CLOSe:STATe?`` and
``:SYSTem:ERRor?``. Channels are ``<slot><row A-H><column 01-12>``; a list may hold ranges
(``1A01:1A04``), ``slotN`` and ``allslots``.
"""
from __future__ import annotations

import re

from .base import EmulatedInstrument
from .scpi import Command, SCPIError, need_args
from .switch_matrix import TspSwitchMatrix

#: A TSP statement (a call, an assignment or a script keyword); anything else is SCPI.
_TSP = re.compile(r"^\s*(loadscript\b|endscript\b|[A-Za-z_][\w.\[\]]*\s*[(=])")


class Keithley707B(TspSwitchMatrix):
    idn = "Keithley Instruments Inc., Model 707B, 04707070, 1.6.0"
    name = "matrix_707b"

    def parse_list(self, text: str) -> list[tuple[int, str, int]]:
        return self.bench.parse_list(text)

    def closed_list(self) -> str:
        return self.bench.closed_list()

    def execute(self, message: str) -> str | None:
        if self._loading is None and not _TSP.match(message):
            return EmulatedInstrument.execute(self, message)  # SCPI clients of 707B-class matrices
        return super().execute(message)

    def _system_commands(self) -> list[Command]:
        return EmulatedInstrument._system_commands(self)  # :SYST:ERR? for the SCPI side

    # -- SCPI side ----------------------------------------------------------------------------------
    def command_table(self) -> list[Command]:
        def unwrap(args: list[str]) -> str:
            need_args(args, 1, "channel list")
            text = ",".join(args).strip()
            if not (text.startswith("(@") and text.endswith(")")):
                raise SCPIError(-104, f"expected (@<channels>), got {text!r}")
            return text[2:-1]

        def close(_s: list[int], a: list[str]) -> None:
            self.bench.close(self.parse_list(unwrap(a)))

        def open_(_s: list[int], a: list[str]) -> None:
            self.bench.open(self.parse_list(unwrap(a)))

        def open_all(_s: list[int], a: list[str]) -> None:
            self.bench.open_all()

        return [
            Command(":ROUTe:CLOSe", write=close),
            Command(":ROUTe:OPEN", write=open_),
            Command(":ROUTe:OPEN:ALL", write=open_all),
            Command(":ROUTe:CLOSe:STATe", query=lambda s, a: f"(@{self.closed_list().replace(';', ',')})"),
        ]

