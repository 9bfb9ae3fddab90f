"""Keithley 707B-class switching matrix (707B/708B Reference Manual). The 707B speaks TSP: each
call below is the Lua statement the manual documents. Channels are ``<slot><row A-H><column
01-12>`` (e.g. ``"1A01"``); lists are comma-separated.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

from .base import Instrument
from .errors import InstrumentError, LimitError

CHANNEL = re.compile(r"^[1-9][A-H](0[1-9]|1[0-2])$")


def channel_list(field: str, channels: Iterable[str]) -> str:
    """Validate channel names and join them for TSP; raises LimitError before any I/O."""
    names = [c.strip().upper() for c in channels]
    if not names:
        raise LimitError(field, [], "at least one channel like '1A01'")
    for name in names:
        if not CHANNEL.match(name):
            raise LimitError(field, name, "<slot 1-9><row A-H><column 01-12>, e.g. '1A01'")
    return ",".join(names)


class Keithley707B(Instrument):
    """Crosspoint switch matrix: close, open, exclusive close by channel list."""

    idn_pattern = re.compile(r"(?i)KEITHLEY INSTRUMENTS( INC\.?)?,\s*MODEL 70[78]B,")
    kind = "switch_matrix"
    error_query = "print(errorqueue.next())"

    async def close_channels(self, channels: Iterable[str]) -> None:
        """``channel.close(list)``: close these crosspoints, others unchanged."""
        await self.configure(f'channel.close("{channel_list("channels", channels)}")')

    async def open_channels(self, channels: Iterable[str]) -> None:
        """``channel.open(list)``."""
        await self.configure(f'channel.open("{channel_list("channels", channels)}")')

    async def exclusive_close(self, channels: Iterable[str]) -> None:
        """``channel.exclusiveclose(list)``: exactly these crosspoints closed, all others open."""
        await self.configure(f'channel.exclusiveclose("{channel_list("channels", channels)}")')

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

    async def read_errors(self, command: str = "errorqueue") -> list[tuple[int, str]]:
        """TSP error queue: ``errorqueue.count`` entries of ``errorqueue.next()`` (code, message,
        severity, node, tab-separated)."""
        count = int(float(await self.ask("print(errorqueue.count)")))
        errors = []
        for _ in range(count):
            reply = await self.ask(self.error_query)
            fields = reply.split("\t")
            try:
                errors.append((int(float(fields[0])), fields[1] if len(fields) > 1 else ""))
            except ValueError:
                raise InstrumentError(self.label, self.error_query, f"unexpected reply {reply!r}") from None
        return errors
