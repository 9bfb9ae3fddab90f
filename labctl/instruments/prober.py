"""The one interface to a wafer prober: `Prober` (step between dies, chuck to contact or separation, read
the map position and the prober's own die map) and `ProberChuck`, its thermal chuck as a
`ThermalController` (labctl.instruments.thermal).

A command set (labctl/instruments/velox.py, sentio.py) implements `_query` (one command, one reply,
the reply's error code turned into `ProberError`) and the abstract steps below. Leaving `async with`
for any reason separates the chuck: probes are never left down on a die.
"""
from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ClassVar

from .base import Instrument
from .errors import InstrumentError
from .thermal import ThermalController, ThermalError, ThermalLimits

log = logging.getLogger(__name__)


@dataclass(frozen=True, order=True)
class DieIndex:
    """A die by its place in the prober's grid: column and row index."""

    column: int
    row: int

    def __str__(self) -> str:
        return f"({self.column}, {self.row})"


class ProberError(InstrumentError):
    """The prober refused a command or reported a fault; `code` is its error number."""

    def __init__(self, instrument: str, command: str, code: int, detail: str) -> None:
        self.code = code
        super().__init__(instrument, command, f"error {code}: {detail}")


class EndOfRoute(ProberError):
    """Stepping went past the last die of the prober's route."""


class Prober(Instrument):
    """Base of the prober drivers. Use `async with Driver(resource) as prober:`."""

    kind: ClassVar[str] = "prober"
    #: Limits of the model's thermal chuck (tightened by a campaign's).
    chuck_limits: ClassVar[ThermalLimits] = ThermalLimits()

    async def open(self) -> None:
        """Connect and identify (probers have no IEEE 488.2 status to clear)."""
        await self.link.open()
        await self.identify()

    async def reconnect(self) -> None:
        await self.link.open()
        await self.identify()
        await self.safe_off()

    async def safe_off(self) -> None:
        """Separate the chuck (the prober's safe state), if the link is up."""
        if self.link.is_open:
            await self.separate()

    @abc.abstractmethod
    async def _query(self, command: str) -> str:
        """Send one command; return the reply's data, raising ProberError for an error reply."""

    # -- stepping
    @abc.abstractmethod
    async def step_first_die(self) -> DieIndex:
        """Step to the first die of the prober's route (the chuck ends separated)."""

    @abc.abstractmethod
    async def step_next_die(self) -> DieIndex | None:
        """Step to the next die of the route; None once the route is done."""

    @abc.abstractmethod
    async def step_to_die(self, die: DieIndex) -> DieIndex:
        """Step to the die at `die`'s column and row; returns where the prober says it is."""

    @abc.abstractmethod
    async def step_to_index(self, number: int) -> DieIndex:
        """Step to the `number`-th die of the prober's map (from 0)."""

    # -- chuck Z
    @abc.abstractmethod
    async def contact(self) -> None:
        """Raise the chuck to contact height."""

    @abc.abstractmethod
    async def separate(self) -> None:
        """Lower the chuck to separation height."""

    # -- the map
    @abc.abstractmethod
    async def position(self) -> DieIndex:
        """The die the prober is on."""

    @abc.abstractmethod
    async def die_map(self) -> list[DieIndex]:
        """The prober's own die map (its selected dies, in its route order)."""

    # -- thermal chuck (in °C or K on the wire; K here)
    async def _write_chuck_temperature(self, kelvin: float) -> None:
        raise ThermalError(f"{self.label}: this prober has no thermal chuck commands")

    async def _read_chuck_temperature(self) -> float:
        raise ThermalError(f"{self.label}: this prober has no thermal chuck commands")

    async def _read_chuck_set_point(self) -> float:
        raise ThermalError(f"{self.label}: this prober has no thermal chuck commands")

    def chuck(self, sleep: Callable[[float], Awaitable[None]] | None = None,
              limits: ThermalLimits | None = None) -> ProberChuck:
        """The thermal chuck as a ThermalController; `sleep` waits on the station's clock (the
        backend's `wait`: virtual on the emulator; default: wall-clock asyncio.sleep)."""
        return ProberChuck(self, sleep, self.chuck_limits.tightened(limits) if limits else self.chuck_limits)


class ProberChuck(ThermalController):
    """A prober's thermal chuck through the prober's own commands. Neither emulated command set has a
    ramp command: a ramp rate is refused (ThermalError) rather than silently ignored."""

    def __init__(self, prober: Prober, sleep: Callable[[float], Awaitable[None]] | None,
                 limits: ThermalLimits) -> None:
        self.prober = prober
        self.limits = limits
        self._sleep = sleep or asyncio.sleep

    async def _write_set_point(self, temperature: float, ramp_rate: float | None) -> None:
        if ramp_rate is not None:
            raise ThermalError(f"{self.prober.label}: the chuck has no ramp-rate command; omit ramp_rate"
                               f" (got {ramp_rate} K/s)")
        await self.prober._write_chuck_temperature(temperature)

    async def temperature(self) -> float:
        return await self.prober._read_chuck_temperature()

    async def set_point(self) -> float:
        return await self.prober._read_chuck_set_point()

    async def sleep(self, seconds: float) -> None:
        await self._sleep(seconds)


def parse_numbers(prober: Prober, command: str, data: str, n: int, sep: str | None = None) -> list[float]:
    """The first `n` numbers of a reply's data (split on `sep`, whitespace if None); InstrumentError
    naming the command if the reply has fewer or they are not numbers."""
    parts = [p for p in (data.split(sep) if sep else data.split()) if p.strip()]
    try:
        values = [float(p) for p in parts[:n]]
    except ValueError:
        values = []
    if len(values) < n:
        raise InstrumentError(prober.label, command, f"unexpected reply {data!r} (expected {n} numbers)")
    return values
