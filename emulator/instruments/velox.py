"""Emulated FormFactor (Cascade Microtech) Velox prober: its remote (SCI) commands as a raw-socket text
protocol (docs/instruments.md, "Probers").

Commands are a name followed by space-separated parameters; every reply is "<code>: <data>", code 0 for
success (data may be empty: "0:"), otherwise the code and a message. The subset emulated:

    StepFirstDie [ClearBins RecalcRoute]   -> 0: Column Row CurSite LastSiteIndex
    StepNextDie [Column Row [Site]]        -> same (without arguments: the next die of the route)
    StepToDie DieNumber [Site]             -> same (DieNumber: the die's place in the route, from 0)
    ReadMapPosition                        -> 0: Column Row XFromHome YFromHome CurSite LastSiteIndex (µm)
    MoveChuckContact [Velocity]            -> 0:
    MoveChuckSeparation [Velocity]         -> 0:
    GetNumSelectedDies                     -> 0: N
    GetDieDataAsNum DieNumber              -> 0: Column Row
    SetHeaterTemp Temperature [Unit]       -> 0: Temperature       (Unit C (default), F or K)
    GetHeaterTemp [Unit]                   -> 0: Temperature
    GetTargetTemp [Unit]                   -> 0: Temperature

Stepping separates first (the chuck ends separated). The error numbers are the emulator's (listed in
docs/instruments.md); the driver treats every non-zero code as an error, and 703 as the end of the route.
"""
from __future__ import annotations

from .prober import EmulatedProber, Handler, ProberFault


class EmulatedVelox(EmulatedProber):
    idn = "Cascade Microtech,Velox (emulated),0,2.0"
    name = "prober_velox"
    # unknown 1, parameter 2, count 3, state 4, internal 5, malformed 6: the base class's numbering
    out_of_map_code = 704
    end_of_route_code = 703

    def split(self, message: str) -> tuple[str, list[str]]:
        parts = message.split()
        if not parts:
            raise ProberFault(self.parameter_code, "empty command")
        return parts[0].lower(), parts[1:]

    def reply(self, payload: str) -> str:
        return f"0: {payload}" if payload else "0:"

    def error_reply(self, code: int, text: str) -> str:
        return f"{code}: {text}"

    def command_map(self) -> dict[str, Handler]:
        return {
            "stepfirstdie": self._step_first,
            "stepnextdie": self._step_next,
            "steptodie": self._step_to,
            "readmapposition": self._position,
            "movechuckcontact": self._contact,
            "movechuckseparation": self._separate,
            "getnumselecteddies": self._num_dies,
            "getdiedataasnum": self._die_data,
            "setheatertemp": self._set_temp,
            "getheatertemp": self._get_temp,
            "gettargettemp": self._target_temp,
        }

    def _die_reply(self, index: int) -> str:
        column, row = self.wafer.dies[index]
        return f"{column} {row} 0 0"

    def _step_first(self, args: list[str]) -> str:
        self.count(args, 0, 2, "StepFirstDie")
        return self._die_reply(self.step_route(first=True))

    def _step_next(self, args: list[str]) -> str:
        self.count(args, 0, 3, "StepNextDie")
        if not args:
            return self._die_reply(self.step_route(first=False))
        if len(args) == 1:
            raise ProberFault(self.count_code, "StepNextDie takes no parameter or Column Row [Site]")
        index = self.die_at(self.integer(args[0], "Column"), self.integer(args[1], "Row"))
        return self._die_reply(self.step_index(index))

    def _step_to(self, args: list[str]) -> str:
        self.count(args, 1, 2, "StepToDie")
        number = self.integer(args[0], "DieNumber")
        route = self.wafer.route()
        if not 0 <= number < len(route):
            raise ProberFault(self.out_of_map_code, f"DieNumber {number} is not in the wafer map "
                                                    f"(0..{len(route) - 1})")
        return self._die_reply(self.step_index(self.wafer.index[route[number]]))

    def _position(self, args: list[str]) -> str:
        self.count(args, 0, 1, "ReadMapPosition")
        w = self.wafer
        if w.position is None:
            raise ProberFault(self.state_code, "no die position: step to a die first")
        column, row = w.dies[w.position]
        x = (column - (w.columns - 1) / 2) * w.motion.pitch_x * 1e6
        y = (row - (w.rows - 1) / 2) * w.motion.pitch_y * 1e6
        return f"{column} {row} {x:.1f} {y:.1f} 0 0"

    def _contact(self, args: list[str]) -> str:
        self.count(args, 0, 1, "MoveChuckContact")
        self.wafer.move_contact()
        return ""

    def _separate(self, args: list[str]) -> str:
        self.count(args, 0, 1, "MoveChuckSeparation")
        self.wafer.separate()
        return ""

    def _num_dies(self, args: list[str]) -> str:
        self.count(args, 0, 0, "GetNumSelectedDies")
        return str(len(self.wafer.dies))

    def _die_data(self, args: list[str]) -> str:
        self.count(args, 1, 1, "GetDieDataAsNum")
        number = self.integer(args[0], "DieNumber")
        route = self.wafer.route()
        if not 0 <= number < len(route):
            raise ProberFault(self.out_of_map_code, f"DieNumber {number} is not in the wafer map")
        column, row = route[number]
        return f"{column} {row}"

    def _unit(self, args: list[str], at: int) -> str:
        unit = args[at].upper() if len(args) > at else "C"
        if unit not in ("C", "F", "K"):
            raise ProberFault(self.parameter_code, f"Unit {args[at]!r}: expected C, F or K")
        return unit

    def _set_temp(self, args: list[str]) -> str:
        self.count(args, 1, 2, "SetHeaterTemp")
        unit = self._unit(args, 1)
        value = self.number(args[0], "Temperature")
        try:
            self.wafer.set_chuck_temperature(self.to_kelvin(value, unit))
        except ValueError as exc:
            raise ProberFault(self.parameter_code, str(exc)) from None
        return f"{value:.2f}"

    def _get_temp(self, args: list[str]) -> str:
        self.count(args, 0, 1, "GetHeaterTemp")
        return f"{self.from_kelvin(self.wafer.chuck.temperature, self._unit(args, 0)):.3f}"

    def _target_temp(self, args: list[str]) -> str:
        self.count(args, 0, 1, "GetTargetTemp")
        return f"{self.from_kelvin(self.wafer.chuck.set_point, self._unit(args, 0)):.3f}"
