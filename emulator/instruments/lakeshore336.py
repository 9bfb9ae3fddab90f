"""Emulated Lake Shore Model 336 temperature controller holding the array's thermal chuck.

Output 1 heats the chuck (emulator.thermal.Chuck, attached to the Array), input A reads it; outputs
and inputs beyond those exist but drive and read nothing (input B..D: no sensor, reading 0, RDGST?
bit 0 "invalid reading"). Commands (Model 336 User's Manual, chapter 6)::

    SETP <out>,<K>   SETP? <out>     KRDG? <in>   CRDG? <in>   RDGST? <in>
    RAMP <out>,<0|1>,<K/min>         RAMP? <out>  RAMPST? <out>
    RANGE <out>,<0..3>               RANGE? <out> HTR? <out>   HTRST? <out>
    TLIMIT <in>,<K>  TLIMIT? <in>    *IDN? *RST *CLS *OPC? *ESR?

Errors follow the controller's own model: no error queue, but bits of the standard event status
register, read and cleared by ``*ESR?``: command error (32: unknown command, wrong parameter type),
execution error (16: value out of range, e.g. a set-point beyond the chuck's rating), query error
(4). A malformed message is answered that way and the controller keeps serving.

The chuck moves only when the array's virtual clock does (the host's wait); readings and set-points
cross the wire at full float precision, so the temperature a station reads is bit-identical to the
one an in-process controller sees. A TLIMIT is checked whenever the controller is spoken to: once the
input exceeds it, every heater output goes off (range 0), as the manual says.
"""
from __future__ import annotations

from typing import Any

from emulator.thermal import Chuck

from .base import EmulatedInstrument
from .scpi import Command, Numeric, SCPIError, fmt_reading, need_args, no_args

INPUTS = ("A", "B", "C", "D")
OUTPUTS = (1, 2, 3, 4)
#: Standard event status register bits (IEEE 488.2) and which SCPI error classes set them.
ESR_COMMAND, ESR_EXECUTION, ESR_DEVICE, ESR_QUERY = 32, 16, 8, 4

_SETP = Numeric(0.0, 1500.0, 298.15, "K")
_RATE = Numeric(0.0, 100.0, 0.0, "")  # K/min; 0 = as fast as possible (manual: "interpreted as infinite")
_TLIMIT = Numeric(0.0, 2000.0, 0.0, "K")


def _number(value: float) -> str:
    """Settings and readings at full float precision (docs: bit-identical across backends)."""
    return fmt_reading(value)


class LakeShore336(EmulatedInstrument):
    idn = "LSCI,MODEL336,EMU0336/EMU0336,2.9"
    name = "tc_336"

    def __init__(self, array: Any) -> None:
        self.array = array
        attach = getattr(array, "attach_chuck", None)
        self.chuck: Chuck = attach() if callable(attach) else Chuck()
        super().__init__()

    def reset(self) -> None:
        """Power-up settings: heaters off, set-points at the chuck's temperature, no ramps, no limits."""
        self.ramp_on = {n: False for n in OUTPUTS}
        self.ramp_rate = {n: 0.0 for n in OUTPUTS}  # K/min
        self.ranges = {n: 0 for n in OUTPUTS}
        self.set_points = {n: 298.15 for n in OUTPUTS}
        self.tlimits = {i: 0.0 for i in INPUTS}
        with self.array.lock:
            self.set_points[1] = self.chuck.set_point
            self.chuck.heater_on = False

    # -- the error model: *ESR? bits instead of a queue --------------------------------------------
    def _system_commands(self) -> list[Command]:
        return []  # no SYSTem:ERRor subsystem on a Lake Shore

    def _common(self, header: str, args: list[str]) -> str | None:
        if header == "*ESR?":
            no_args(args, header)
            return str(self._event_status())
        return super()._common(header, args)

    def _event_status(self) -> int:
        """The register as bits of the errors queued since the last read (then cleared)."""
        bits = 0
        while len(self.errors):
            code, _ = self.errors.pop()
            if -199 <= code <= -100:
                bits |= ESR_COMMAND
            elif -299 <= code <= -200:
                bits |= ESR_EXECUTION
            elif -499 <= code <= -400:
                bits |= ESR_QUERY
            else:
                bits |= ESR_DEVICE
        return bits

    def execute(self, message: str) -> str | None:
        self._check_tlimit()
        return super().execute(message)

    def _check_tlimit(self) -> None:
        limit = self.tlimits["A"]
        with self.array.lock:
            if limit > 0.0 and self.chuck.temperature > limit:
                for n in OUTPUTS:
                    self.ranges[n] = 0
                self.chuck.heater_on = False

    # -- commands ------------------------------------------------------------------------------------
    def command_table(self) -> list[Command]:
        def output(args: list[str], name: str) -> int:
            need_args(args, 1, name)
            try:
                n = int(args[0])
            except ValueError:
                raise SCPIError(-104, f"{name}: output must be 1-4, got {args[0]!r}") from None
            if n not in OUTPUTS:
                raise SCPIError(-222, f"{name}: output {n} is not 1-4")
            return n

        def input_(args: list[str], name: str) -> str:
            need_args(args, 1, name)
            letter = args[0].strip().upper()
            if letter not in INPUTS:
                raise SCPIError(-224, f"{name}: input must be A-D, got {args[0]!r}")
            return letter

        def exactly(args: list[str], count: int, name: str) -> None:
            need_args(args, count, name)
            if len(args) > count:
                raise SCPIError(-108, f"{name} takes {count} parameter(s)")

        def kelvin(letter: str) -> float:
            with self.array.lock:
                return self.chuck.temperature if letter == "A" else 0.0

        def setp(_s: list[int], a: list[str]) -> None:
            exactly(a, 2, "SETP")
            n = output(a, "SETP")
            value = _SETP.parse(a[1], "SETP")
            if n == 1:
                self._drive(value)
            self.set_points[n] = value

        def ramp(_s: list[int], a: list[str]) -> None:
            exactly(a, 3, "RAMP")
            n = output(a, "RAMP")
            on = a[1].strip()
            if on not in ("0", "1"):
                raise SCPIError(-224, f"RAMP: off/on must be 0 or 1, got {a[1]!r}")
            rate = _RATE.parse(a[2], "RAMP")
            if on == "1" and 0.0 < rate < 0.1:
                raise SCPIError(-222, f"RAMP: rate {rate:g} K/min is below 0.1 K/min")
            self.ramp_on[n], self.ramp_rate[n] = on == "1", rate

        def range_(_s: list[int], a: list[str]) -> None:
            exactly(a, 2, "RANGE")
            n = output(a, "RANGE")
            try:
                r = int(a[1])
            except ValueError:
                raise SCPIError(-104, f"RANGE: range must be 0-3, got {a[1]!r}") from None
            if not 0 <= r <= 3:
                raise SCPIError(-222, f"RANGE: range {r} is not 0-3")
            self.ranges[n] = r
            if n == 1:
                with self.array.lock:
                    self.chuck.heater_on = r > 0

        def tlimit(_s: list[int], a: list[str]) -> None:
            exactly(a, 2, "TLIMIT")
            self.tlimits[input_(a, "TLIMIT")] = _TLIMIT.parse(a[1], "TLIMIT")

        def one(name: str, fn: Any, kind: Any) -> Any:
            def query(_s: list[int], a: list[str]) -> str:
                exactly(a, 1, name)
                return fn(kind(a, name))
            return query

        def heater_percent(n: int) -> str:
            with self.array.lock:
                return f"{self.chuck.heater_output() if n == 1 and self.ranges[1] else 0.0:+.2f}"

        def ramping(n: int) -> str:
            with self.array.lock:
                return "1" if n == 1 and self.ranges[1] and self.chuck.ramping else "0"

        return [
            Command("SETP", write=setp, query=one("SETP?", lambda n: _number(self.set_points[n]), output)),
            Command("KRDG", query=one("KRDG?", lambda i: _number(kelvin(i)), input_)),
            Command("CRDG", query=one("CRDG?", lambda i: _number(kelvin(i) - 273.15 if i == "A" else 0.0), input_)),
            Command("RDGST", query=one("RDGST?", lambda i: "000" if i == "A" else "001", input_)),
            Command("RAMP", write=ramp, query=one("RAMP?", lambda n: f"{int(self.ramp_on[n])},{self.ramp_rate[n]!r}",
                                                   output)),
            Command("RAMPST", query=one("RAMPST?", ramping, output)),
            Command("RANGE", write=range_, query=one("RANGE?", lambda n: str(self.ranges[n]), output)),
            Command("HTR", query=one("HTR?", heater_percent, output)),
            Command("HTRST", query=one("HTRST?", lambda n: "0", output)),
            Command("TLIMIT", write=tlimit, query=one("TLIMIT?", lambda i: _number(self.tlimits[i]), input_)),
        ]

    def _drive(self, set_point: float) -> None:
        """Output 1's new set-point goes to the chuck, ramped when RAMP 1 is on."""
        rate = self.ramp_rate[1] if self.ramp_on[1] else 0.0
        with self.array.lock:
            try:
                self.chuck.command(set_point, rate)
            except ValueError as exc:
                raise SCPIError(-222, f"SETP: {exc}") from None
