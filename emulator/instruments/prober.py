"""What the emulated probers share: a wafer (emulator.wafer.Wafer) on the chuck, one command per line,
one reply line per command, errors answered in the prober's own reply format (never an SCPI error
queue), and a server that answers an over-long line with an error reply instead of dropping it.

A command set subclasses :class:`EmulatedProber`: `commands` maps a lower-case command name to a
handler taking the argument strings and returning the reply payload; a handler raises
:class:`ProberFault` (its code in the command set's numbering) to refuse. Any other exception becomes
the command set's internal-error reply: the connection stays up and the next command is served.
"""
from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable

from emulator.wafer import ZERO_CELSIUS, Wafer, WaferError

from .base import EmulatedInstrument
from .scpi import SCPIError, check_characters
from .server import MAX_MESSAGE, InstrumentServer

log = logging.getLogger(__name__)

Handler = Callable[[list[str]], str]


class ProberFault(Exception):
    """A refused command: `code` in the prober's numbering, `text` what the reply says."""

    def __init__(self, code: int, text: str) -> None:
        self.code = code
        self.text = text
        super().__init__(f"{code}: {text}")


class EmulatedProber(EmulatedInstrument):
    """Base of the emulated prober command sets. `wafer` is the wafer on the chuck."""

    name = "prober"
    #: Codes of the command set for: unknown command, bad parameter, wrong parameter count, refused in
    #: this state, internal error, malformed message.
    unknown_code = 1
    parameter_code = 2
    count_code = 3
    state_code = 4
    internal_code = 5
    malformed_code = 6

    def __init__(self, wafer: Wafer) -> None:
        self.wafer = wafer
        self.route_position: int | None = None  # position in wafer.route() of the last route step
        super().__init__()

    # -- to be provided by command sets
    def split(self, message: str) -> tuple[str, list[str]]:
        """(command name, argument strings) of one message."""
        raise NotImplementedError

    def command_map(self) -> dict[str, Handler]:
        raise NotImplementedError

    def reply(self, payload: str) -> str:
        raise NotImplementedError

    def error_reply(self, code: int, text: str) -> str:
        raise NotImplementedError

    # -- the message loop
    def reset(self) -> None:
        self.route_position = None

    def power_off(self) -> None:
        # The wafer stays on the chuck; a prober that lost power leaves the chuck where it was, but the
        # probes no longer touch anything once it comes back up (it homes the Z axis).
        self.wafer.separate()
        self.reset()

    def handle(self, message: str) -> str | None:
        with self.lock:
            try:
                check_characters(message)
            except SCPIError as exc:
                return self.error_reply(self.malformed_code, exc.detail)
            try:
                name, args = self.split(message.strip())
                if name == "*idn?":
                    return self.idn
                handler = self.command_map().get(name)
                if handler is None:
                    raise ProberFault(self.unknown_code, f"unknown command {name!r}")
                return self.reply(handler(args))
            except ProberFault as exc:
                return self.error_reply(exc.code, exc.text)
            except WaferError as exc:
                return self.error_reply(self.state_code, str(exc))
            except Exception as exc:  # noqa: BLE001 - a model bug must not end the connection
                log.exception("%s: internal error executing %r", self.name, message[:200])
                return self.error_reply(self.internal_code, f"internal error: {exc!r}")

    # -- helpers for handlers
    def count(self, args: list[str], lo: int, hi: int, command: str) -> None:
        if not lo <= len(args) <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}"
            raise ProberFault(self.count_code, f"{command} takes {want} parameter(s), got {len(args)}")

    def integer(self, text: str, what: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise ProberFault(self.parameter_code, f"{what}: {text!r} is not an integer") from None

    def number(self, text: str, what: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ProberFault(self.parameter_code, f"{what}: {text!r} is not a number") from None
        if not math.isfinite(value):
            raise ProberFault(self.parameter_code, f"{what}: {text!r} is not finite")
        return value

    def die_at(self, column: int, row: int) -> int:
        """Index of the die at (column, row); a fault naming it if the wafer has none there."""
        try:
            return self.wafer.die_index((column, row))
        except WaferError as exc:
            raise ProberFault(self.out_of_map_code, str(exc)) from None

    out_of_map_code = 7
    end_of_route_code = 8

    def step_route(self, first: bool) -> int:
        """Step to the first (or next) die of the wafer's route; returns its index."""
        route = self.wafer.route()
        position = 0 if first or self.route_position is None else self.route_position + 1
        if position >= len(route):
            raise ProberFault(self.end_of_route_code, "end of wafer: no die left in the route")
        index = self.wafer.index[route[position]]
        self.wafer.step(index)
        self.route_position = position
        return index

    def step_index(self, index: int) -> int:
        self.wafer.step(index)
        route = self.wafer.route()
        self.route_position = route.index(self.wafer.dies[index])
        return index

    def last_in_route(self) -> bool:
        return self.route_position is not None and self.route_position == len(self.wafer.route()) - 1

    @staticmethod
    def to_kelvin(value: float, unit: str) -> float:
        unit = unit.upper()
        if unit == "C":
            return value + ZERO_CELSIUS
        if unit == "K":
            return value
        if unit == "F":
            return (value - 32.0) * 5.0 / 9.0 + ZERO_CELSIUS
        raise ValueError(unit)

    @staticmethod
    def from_kelvin(kelvin: float, unit: str) -> float:
        unit = unit.upper()
        if unit == "C":
            return kelvin - ZERO_CELSIUS
        if unit == "K":
            return kelvin
        return (kelvin - ZERO_CELSIUS) * 9.0 / 5.0 + 32.0


class ProberServer(InstrumentServer):
    """An InstrumentServer for a prober: a line longer than MAX_MESSAGE gets an error reply in the
    prober's format (the prober has no error queue to put it on)."""

    instrument: EmulatedProber

    async def _message(self, raw: bytes | None, writer: asyncio.StreamWriter, terminator: bytes = b"\n") -> bool:
        if raw is not None:
            return await super()._message(raw, writer, terminator)
        self.received.append(f"<discarded: longer than {MAX_MESSAGE} B>")
        reply = self.instrument.error_reply(self.instrument.malformed_code,
                                            f"message longer than {MAX_MESSAGE} B discarded")
        writer.write(reply.encode("ascii", errors="replace") + terminator)
        await writer.drain()
        return True
