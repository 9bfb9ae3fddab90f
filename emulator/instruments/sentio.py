"""Emulated MPI SENTIO prober: its native remote commands (after `*RCS 1`) over a raw socket
(docs/instruments.md, "Probers").

Commands are a name and comma-separated parameters ("map:step_die 3, 4"). Every reply is
"<code>,<command id>,<message>": the low 10 bits of code are the error code (0: none), the bits from
10 on are status flags (1 << 10: the end of the route is reached; SENTIO's StatusBits.EndOfRoute).
Error codes follow SENTIO's RemoteCommandError numbering where it has one: 2 ExecutionError,
3 CommandHandlerNotFound, 6 InvalidParameter, 7 InvalidNumberOfParameters, 8 ArgumentOutOfBounds,
11 EndOfRoute, 12 InvalidOperation; 1 InternalError. The subset emulated:

    map:step_first_die [site]           -> col, row, site
    map:step_next_die [site]            -> col, row, site     (error 11 past the last die)
    map:step_die col, row[, site]       -> col, row, site
    map:die:get_current_index           -> seq, col, row
    map:get_num_dies [Present|Selected|Total] -> n
    map:path:get_die seq                -> col, row
    move_chuck_contact                  -> contact height, µm
    move_chuck_separation               -> separation height, µm
    status:set_chuck_temp T[, lift]     -> (empty)      T in °C
    status:get_chuck_temp               -> T            °C
    status:get_chuck_temp_setpoint      -> T            °C
"""
from __future__ import annotations

from emulator.wafer import Wafer

from .prober import EmulatedProber, Handler, ProberFault

#: Status flag of a reply once the route's last die is reached (SENTIO StatusBits.EndOfRoute).
END_OF_ROUTE_STATUS = 1
CONTACT_HEIGHT_UM = 12000.0
SEPARATION_HEIGHT_UM = 11950.0


class EmulatedSentio(EmulatedProber):
    idn = "MPI Corporation,SENTIO (emulated),0,25.2"
    name = "prober_sentio"
    unknown_code = 3
    parameter_code = 6
    count_code = 7
    state_code = 12
    internal_code = 1
    malformed_code = 2
    out_of_map_code = 8
    end_of_route_code = 11

    def __init__(self, wafer: Wafer) -> None:
        self.native = False  # *RCS 1 switches to the native command set
        self._status = 0
        super().__init__(wafer)

    def split(self, message: str) -> tuple[str, list[str]]:
        name, _, rest = message.partition(" ")
        if not name:
            raise ProberFault(self.parameter_code, "empty command")
        args = [a.strip() for a in rest.split(",")] if rest.strip() else []
        return name.lower(), args

    def handle(self, message: str) -> str | None:
        self._status = 0
        if message.strip().upper() == "*RCS 1":
            with self.lock:
                self.native = True
            return None  # SENTIO answers *RCS with nothing
        return super().handle(message)

    def reply(self, payload: str) -> str:
        return f"{self._status << 10},0,{payload}"

    def error_reply(self, code: int, text: str) -> str:
        return f"{code},0,{text.replace(chr(10), ' ')}"

    def command_map(self) -> dict[str, Handler]:
        return {
            "map:step_first_die": self._step_first,
            "map:step_next_die": self._step_next,
            "map:step_die": self._step_die,
            "map:die:get_current_index": self._current,
            "map:get_num_dies": self._num_dies,
            "map:path:get_die": self._path_die,
            "move_chuck_contact": self._contact,
            "move_chuck_separation": self._separate,
            "status:set_chuck_temp": self._set_temp,
            "status:get_chuck_temp": self._get_temp,
            "status:get_chuck_temp_setpoint": self._get_setpoint,
        }

    def _die_reply(self, index: int) -> str:
        if self.last_in_route():
            self._status |= END_OF_ROUTE_STATUS
        column, row = self.wafer.dies[index]
        return f"{column}, {row}, 0"

    def _site(self, args: list[str], at: int) -> None:
        if len(args) > at and self.integer(args[at], "site") != 0:
            raise ProberFault(self.out_of_map_code, f"site {args[at]}: the emulated dies have one site (0)")

    def _step_first(self, args: list[str]) -> str:
        self.count(args, 0, 1, "map:step_first_die")
        self._site(args, 0)
        return self._die_reply(self.step_route(first=True))

    def _step_next(self, args: list[str]) -> str:
        self.count(args, 0, 1, "map:step_next_die")
        self._site(args, 0)
        return self._die_reply(self.step_route(first=False))

    def _step_die(self, args: list[str]) -> str:
        self.count(args, 2, 3, "map:step_die")
        self._site(args, 2)
        index = self.die_at(self.integer(args[0], "col"), self.integer(args[1], "row"))
        return self._die_reply(self.step_index(index))

    def _current(self, args: list[str]) -> str:
        self.count(args, 0, 0, "map:die:get_current_index")
        w = self.wafer
        if w.position is None or self.route_position is None:
            raise ProberFault(self.state_code, "no current die: step to a die first")
        column, row = w.dies[w.position]
        return f"{self.route_position}, {column}, {row}"

    def _num_dies(self, args: list[str]) -> str:
        self.count(args, 0, 1, "map:get_num_dies")
        if args and args[0].lower() not in ("present", "selected", "total"):
            raise ProberFault(self.parameter_code, f"selection {args[0]!r}: expected Present, Selected or Total")
        return str(len(self.wafer.dies))

    def _path_die(self, args: list[str]) -> str:
        self.count(args, 1, 1, "map:path:get_die")
        seq = self.integer(args[0], "seq")
        route = self.wafer.route()
        if not 0 <= seq < len(route):
            raise ProberFault(self.out_of_map_code, f"seq {seq} is outside the route (0..{len(route) - 1})")
        return f"{route[seq][0]}, {route[seq][1]}"

    def _contact(self, args: list[str]) -> str:
        self.count(args, 0, 0, "move_chuck_contact")
        self.wafer.move_contact()
        return f"{CONTACT_HEIGHT_UM:.1f}"

    def _separate(self, args: list[str]) -> str:
        self.count(args, 0, 0, "move_chuck_separation")
        self.wafer.separate()
        return f"{SEPARATION_HEIGHT_UM:.1f}"

    def _set_temp(self, args: list[str]) -> str:
        self.count(args, 1, 2, "status:set_chuck_temp")
        celsius = self.number(args[0], "temperature")
        try:
            self.wafer.set_chuck_temperature(self.to_kelvin(celsius, "C"))
        except ValueError as exc:
            raise ProberFault(self.out_of_map_code, str(exc)) from None
        return ""

    def _get_temp(self, args: list[str]) -> str:
        self.count(args, 0, 0, "status:get_chuck_temp")
        return f"{self.from_kelvin(self.wafer.chuck.temperature, 'C'):.3f}"

    def _get_setpoint(self, args: list[str]) -> str:
        self.count(args, 0, 0, "status:get_chuck_temp_setpoint")
        return f"{self.from_kelvin(self.wafer.chuck.set_point, 'C'):.3f}"
