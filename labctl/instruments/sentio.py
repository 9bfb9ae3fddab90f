"""MPI SENTIO prober through its native remote command set, as text over a raw socket (SENTIO listens on
port 35555 by default; docs/instruments.md, "Probers").

After `*RCS 1` (switch to the native command set, no reply) every reply is "<code>,<command id>,<message>":
the low 10 bits of code are the error (0 none; SENTIO's RemoteCommandError numbering, 11 EndOfRoute), the
bits from 10 on status flags (1: end of route). Commands: map:step_first_die, map:step_next_die,
map:step_die col, row, map:die:get_current_index, map:get_num_dies, map:path:get_die seq,
move_chuck_contact, move_chuck_separation, status:set_chuck_temp, status:get_chuck_temp,
status:get_chuck_temp_setpoint (°C).
"""
from __future__ import annotations

import re
from typing import ClassVar

from .errors import InstrumentError
from .prober import DieIndex, EndOfRoute, Prober, ProberError, parse_numbers
from .thermal import ZERO_CELSIUS, ThermalLimits

#: SENTIO's RemoteCommandError.EndOfRoute, and the error-code mask of a reply's first field.
END_OF_ROUTE = 11
ERROR_MASK = 1023


class Sentio(Prober):
    """An MPI probe station run by SENTIO."""

    idn_pattern: ClassVar[re.Pattern[str]] = re.compile(r"(?i).*(sentio|mpi corporation).*")
    chuck_limits: ClassVar[ThermalLimits] = ThermalLimits(ZERO_CELSIUS - 60.0, ZERO_CELSIUS + 300.0, 1.0)

    async def open(self) -> None:
        await super().open()
        await self.write("*RCS 1")  # the native command set; SENTIO answers nothing

    async def reconnect(self) -> None:
        await self.link.open()
        await self.identify()
        await self.write("*RCS 1")
        await self.safe_off()

    async def _query(self, command: str) -> str:
        reply = await self.ask(command)
        code_text, _, rest = reply.partition(",")
        _cmd_id, _, message = rest.partition(",")
        try:
            code = int(code_text)
        except ValueError:
            raise InstrumentError(self.label, command,
                                  f"unexpected reply {reply!r} (expected '<code>,<id>,<message>')") from None
        error = code & ERROR_MASK
        if error == END_OF_ROUTE:
            raise EndOfRoute(self.label, command, error, message.strip())
        if error != 0:
            raise ProberError(self.label, command, error, message.strip())
        return message.strip()

    async def _die(self, command: str) -> DieIndex:
        column, row = parse_numbers(self, command, await self._query(command), 2, sep=",")
        return DieIndex(int(column), int(row))

    async def step_first_die(self) -> DieIndex:
        return await self._die("map:step_first_die")

    async def step_next_die(self) -> DieIndex | None:
        try:
            return await self._die("map:step_next_die")
        except EndOfRoute:
            return None

    async def step_to_die(self, die: DieIndex) -> DieIndex:
        return await self._die(f"map:step_die {die.column}, {die.row}")

    async def step_to_index(self, number: int) -> DieIndex:
        command = f"map:path:get_die {int(number)}"
        column, row = parse_numbers(self, command, await self._query(command), 2, sep=",")
        return await self.step_to_die(DieIndex(int(column), int(row)))

    async def contact(self) -> None:
        await self._query("move_chuck_contact")

    async def separate(self) -> None:
        await self._query("move_chuck_separation")

    async def position(self) -> DieIndex:
        command = "map:die:get_current_index"
        _seq, column, row = parse_numbers(self, command, await self._query(command), 3, sep=",")
        return DieIndex(int(column), int(row))

    async def die_map(self) -> list[DieIndex]:
        (n,) = parse_numbers(self, "map:get_num_dies Selected", await self._query("map:get_num_dies Selected"), 1)
        dies = []
        for seq in range(int(n)):
            command = f"map:path:get_die {seq}"
            column, row = parse_numbers(self, command, await self._query(command), 2, sep=",")
            dies.append(DieIndex(int(column), int(row)))
        return dies

    async def _write_chuck_temperature(self, kelvin: float) -> None:
        await self._query(f"status:set_chuck_temp {kelvin - ZERO_CELSIUS:.2f}, False")

    async def _read_chuck_temperature(self) -> float:
        (celsius,) = parse_numbers(self, "status:get_chuck_temp", await self._query("status:get_chuck_temp"), 1, ",")
        return celsius + ZERO_CELSIUS

    async def _read_chuck_set_point(self) -> float:
        command = "status:get_chuck_temp_setpoint"
        (celsius,) = parse_numbers(self, command, await self._query(command), 1, ",")
        return celsius + ZERO_CELSIUS
