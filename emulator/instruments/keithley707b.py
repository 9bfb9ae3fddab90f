"""Emulated Keithley 707B-class switching matrix mainframe (707B Reference Manual).

The 707B is programmed in TSP (Lua statements); the emulator understands the statements a
switching program needs::

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
from .bench import Bench
from .scpi import Command, SCPIError, need_args, split_outside_quotes

_TSP_CALL = re.compile(r"^\s*[A-Za-z_][\w.]*\s*\(")
_STRING = r"\s*[\"']([^\"']*)[\"']\s*"


def _call(function: str, argument: str = r"\s*") -> str:
    """Pattern of a TSP call ``function(argument)``."""
    return rf"{re.escape(function)}\({argument}\)"


def _printed(expression: str) -> str:
    return _call("print", rf"\s*{expression}\s*")


# Statement kinds by the shape of their call: one string argument, none, or a printed value.
_WITH_STRING = {"close": "channel.close", "open": "channel.open", "exclusiveclose": "channel.exclusiveclose",
                "reset_channels": "channel.reset", "print_string": "print"}
_WITHOUT_ARGUMENT = {"error_clear": "errorqueue.clear", "reset": "reset", "waitcomplete": "waitcomplete", "opc": "opc"}
_PRINTED = {"getclose": _call("channel.getclose", _STRING), "error_count": r"errorqueue\.count",
            "error_next": _call("errorqueue.next")}
_STATEMENTS: list[tuple[str, re.Pattern[str]]] = [
    *((kind, re.compile(f"^{_call(f, _STRING)}$")) for kind, f in _WITH_STRING.items()),
    *((kind, re.compile(f"^{_call(f)}$")) for kind, f in _WITHOUT_ARGUMENT.items()),
    *((kind, re.compile(f"^{_printed(e)}$")) for kind, e in _PRINTED.items()),
]


def tsp_number(value: float) -> str:
    """How TSP prints a number by default (format.asciiprecision 6)."""
    return f"{value:.5e}"


class Keithley707B(EmulatedInstrument):
    idn = "Keithley Instruments Inc., Model 707B, 04707070, 1.6.0"
    name = "matrix_707b"

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        super().__init__()

    def reset(self) -> None:
        self.bench.open_all()

    def power_off(self) -> None:
        # Latching state is lost with power: every crosspoint opens.
        self.bench.open_all()

    # -- channel lists ----------------------------------------------------------------------------
    def parse_list(self, text: str) -> list[tuple[int, str, int]]:
        return self.bench.parse_list(text)

    def closed_list(self) -> str:
        return self.bench.closed_list()

    # -- message entry point ----------------------------------------------------------------------
    def execute(self, message: str) -> str | None:
        if not _TSP_CALL.match(message):
            return super().execute(message)
        replies: list[str] = []
        for statement in split_outside_quotes(message, ";"):
            statement = statement.strip()
            if not statement:
                continue
            try:
                reply = self._tsp(statement)
            except SCPIError as exc:
                self.errors.push(exc.code, exc.text)
                break  # a Lua chunk stops at its first error
            if reply is not None:
                replies.append(reply)
        return "\n".join(replies) if replies else None

    def _tsp(self, statement: str) -> str | None:
        for kind, pattern in _STATEMENTS:
            m = pattern.match(statement)
            if m is None:
                continue
            arg = m.group(1) if m.groups() else ""
            if kind == "close":
                self.bench.close(self.parse_list(arg))
            elif kind == "open":
                channels = self.parse_list(arg)
                self.bench.open(channels)
            elif kind == "exclusiveclose":
                channels = self.parse_list(arg)
                with self.bench.lock:  # break before make, one step for the array
                    self.bench.open_all()
                    self.bench.close(channels)
            elif kind == "reset_channels":
                self.bench.open(self.parse_list(arg))
            elif kind == "getclose":
                self.parse_list(arg)
                return self.closed_list() or "nil"
            elif kind == "error_count":
                return tsp_number(len(self.errors))
            elif kind == "error_next":
                code, text = self.errors.pop()
                if code == 0:
                    text = "Queue Is Empty"
                severity = 0 if code == 0 else 2
                return "\t".join([tsp_number(code), text, tsp_number(severity), tsp_number(0)])
            elif kind == "error_clear":
                self.errors.clear()
            elif kind == "reset":
                self.reset()
            elif kind == "opc":
                return None
            elif kind == "print_string":
                return arg
            return None
        if statement.startswith(("channel.", "errorqueue.", "print(")) or "(" in statement:
            raise SCPIError(-286, f"TSP Runtime error at line 1: attempt to call {statement!r} (a nil value)")
        raise SCPIError(-285, f"TSP Syntax error at line 1: unexpected symbol near {statement!r}")

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

