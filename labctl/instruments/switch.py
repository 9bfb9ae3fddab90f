"""What every TSP switch matrix offers (Keithley 707B/708B, 3706A): close, open and exclusive close
by channel list, the closed channels, and the safe state (every crosspoint open). Each model says
how its channels are written; names are checked before any byte is sent.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import ClassVar

from .errors import LimitError
from .tsp import TspInstrument


class SwitchMatrix(TspInstrument):
    """A crosspoint matrix programmed with the TSP ``channel`` functions."""

    kind = "switch_matrix"
    #: One channel name of this model, and how to say it in an error message.
    channel_pattern: ClassVar[re.Pattern[str]] = re.compile(r"^$")
    channel_notation: ClassVar[str] = ""

    @classmethod
    def channel_name(cls, slot: str, row: str, column: str) -> str:
        """The channel at matrix ``row`` of card ``slot``, ``column`` (two digits), in this model's
        notation (``<slot><row><column>`` on every model here)."""
        return f"{slot}{row}{column}"

    @classmethod
    def channel_list(cls, field: str, channels: Iterable[str]) -> str:
        """Validate channel names and join them for TSP; raises LimitError before any I/O."""
        names = [c.strip().upper() for c in channels]
        if not names:
            raise LimitError(field, [], f"at least one channel, {cls.channel_notation}")
        for name in names:
            if not cls.channel_pattern.match(name):
                raise LimitError(field, name, cls.channel_notation)
        return ",".join(names)

    async def close_channels(self, channels: Iterable[str]) -> None:
        """``channel.close(list)``: close these crosspoints, others unchanged."""
        await self.configure(f'channel.close("{self.channel_list("channels", channels)}")')

    async def open_channels(self, channels: Iterable[str]) -> None:
        """``channel.open(list)``."""
        await self.configure(f'channel.open("{self.channel_list("channels", channels)}")')

    async def exclusive_close(self, channels: Iterable[str]) -> None:
        """``channel.exclusiveclose(list)``: exactly these crosspoints closed, all others open."""
        await self.configure(f'channel.exclusiveclose("{self.channel_list("channels", channels)}")')

    async def open_all(self) -> None:
        """``channel.open("allslots")``."""
        await self.configure('channel.open("allslots")')

    async def closed_channels(self) -> list[str]:
        """``channel.getclose("allslots")``: the closed crosspoints."""
        reply = await self.ask('print(channel.getclose("allslots"))')
        return [] if reply.strip() in ("nil", "") else reply.strip().split(";")

    async def safe_off(self) -> None:
        """A matrix has no output; its safe state is every crosspoint open."""
        await self.open_all()
