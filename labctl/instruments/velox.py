"""FormFactor (Cascade Microtech) Velox prober through its remote (SCI) commands, as text over a raw
socket or GPIB (docs/instruments.md, "Probers").

Reply format: "<code>: <data>", code 0 for success. Commands (FormFactor's Velox SCI command list):
StepFirstDie, StepNextDie [Column Row], StepToDie DieNumber, MoveChuckContact, MoveChuckSeparation,
ReadMapPosition, GetNumSelectedDies, GetDieDataAsNum, SetHeaterTemp T C, GetHeaterTemp C, GetTargetTemp C.
"""
from __future__ import annotations

import re
from typing import ClassVar

from .errors import InstrumentError
from .prober import DieIndex, EndOfRoute, Prober, ProberError, parse_numbers
from .thermal import ZERO_CELSIUS, ThermalLimits

#: Reply code of a step past the last die of the route.
END_OF_ROUTE = 703
_REPLY = re.compile(r"^\s*(-?\d+):\s?(.*)$", re.S)


class Velox(Prober):
    """A Velox-controlled probe station (semi- or fully-automatic, with or without a thermal chuck)."""

    idn_pattern: ClassVar[re.Pattern[str]] = re.compile(r"(?i).*(velox|cascade|formfactor).*")
    chuck_limits: ClassVar[ThermalLimits] = ThermalLimits(ZERO_CELSIUS - 60.0, ZERO_CELSIUS + 200.0, 1.0)

    async def _query(self, command: str) -> str:
        reply = await self.ask(command)
        match = _REPLY.match(reply)
        if match is None:
            raise InstrumentError(self.label, command, f"unexpected reply {reply!r} (expected '<code>: <data>')")
        code, data = int(match.group(1)), match.group(2).strip()
        if code == END_OF_ROUTE:
            raise EndOfRoute(self.label, command, code, data)
        if code != 0:
            raise ProberError(self.label, command, code, data)
        return data

    async def _die(self, command: str) -> DieIndex:
        column, row = parse_numbers(self, command, await self._query(command), 2)
        return DieIndex(int(column), int(row))

    async def step_first_die(self) -> DieIndex:
        return await self._die("StepFirstDie")

    async def step_next_die(self) -> DieIndex | None:
        try:
            return await self._die("StepNextDie")
        except EndOfRoute:
            return None

    async def step_to_die(self, die: DieIndex) -> DieIndex:
        return await self._die(f"StepNextDie {die.column} {die.row}")

    async def step_to_index(self, number: int) -> DieIndex:
        return await self._die(f"StepToDie {int(number)}")

    async def contact(self) -> None:
        await self._query("MoveChuckContact")

    async def separate(self) -> None:
        await self._query("MoveChuckSeparation")

    async def position(self) -> DieIndex:
        return await self._die("ReadMapPosition")

    async def die_map(self) -> list[DieIndex]:
        (n,) = parse_numbers(self, "GetNumSelectedDies", await self._query("GetNumSelectedDies"), 1)
        dies = []
        for number in range(int(n)):
            command = f"GetDieDataAsNum {number}"
            column, row = parse_numbers(self, command, await self._query(command), 2)
            dies.append(DieIndex(int(column), int(row)))
        return dies

    async def _write_chuck_temperature(self, kelvin: float) -> None:
        await self._query(f"SetHeaterTemp {kelvin - ZERO_CELSIUS:.2f} C")

    async def _read_chuck_temperature(self) -> float:
        (celsius,) = parse_numbers(self, "GetHeaterTemp C", await self._query("GetHeaterTemp C"), 1)
        return celsius + ZERO_CELSIUS

    async def _read_chuck_set_point(self) -> float:
        (celsius,) = parse_numbers(self, "GetTargetTemp C", await self._query("GetTargetTemp C"), 1)
        return celsius + ZERO_CELSIUS
