"""VisaLink on a raw socket: replies waited for on the event loop, in pieces, late, cancelled."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from labctl.instruments import InstrumentConnectionError
from labctl.instruments.visa import PEEK_MAX, VisaLink


class Replier:
    """A loopback server answering ``<delay> <pieces> <text>`` with ``text`` after ``delay`` s,
    split into ``pieces`` parts 20 ms apart; ``long <n>`` answers n characters; ``mute`` nothing."""

    def __init__(self) -> None:
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    async def __aenter__(self) -> Replier:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def resource(self) -> str:
        return f"TCPIP::127.0.0.1::{self.port}::SOCKET"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            words = line.decode().split()
            if words[0] == "mute":
                continue
            if words[0] == "long":
                writer.write(b"x" * int(words[1]) + b"\n")
                await writer.drain()
                continue
            delay, pieces, text = float(words[0]), int(words[1]), words[2].encode() + b"\n"
            await asyncio.sleep(delay)
            step = max(1, len(text) // pieces)
            for k in range(0, len(text), step):
                writer.write(text[k:k + step])
                await writer.drain()
                await asyncio.sleep(0.02)


@pytest.fixture
async def link() -> AsyncIterator[VisaLink]:
    async with Replier() as server:
        link = VisaLink(server.resource, "replier", timeout=1.0)
        await link.open()
        try:
            yield link
        finally:
            await link.close()


async def test_replies_on_time_in_pieces_and_long(link: VisaLink) -> None:
    assert await link.query("0 1 hello") == "hello"
    assert await link.query("0.05 1 late") == "late"
    assert await link.query("0 4 in-four-pieces-of-text") == "in-four-pieces-of-text"
    assert await link.query(f"long {PEEK_MAX + 10}") == "x" * (PEEK_MAX + 10)
    assert await link.query("0 1 after") == "after"  # nothing of the earlier replies left over


async def test_the_loop_runs_while_a_reply_is_awaited(link: VisaLink) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.ensure_future(ticker())
    assert await link.query("0.3 1 slow") == "slow"
    task.cancel()
    assert ticks >= 10


async def test_cancelled_query_leaves_no_reply_for_the_next(link: VisaLink) -> None:
    query = asyncio.ensure_future(link.query("0.2 1 first"))
    await asyncio.sleep(0.05)
    query.cancel()
    with pytest.raises(asyncio.CancelledError):
        await query
    assert await link.query("0 1 second") == "second"


async def test_unanswered_query_times_out_naming_the_instrument(link: VisaLink) -> None:
    with pytest.raises(InstrumentConnectionError) as info:
        await link.query("mute")
    assert "replier" in str(info.value) and "timeout" in str(info.value)
    assert not link.is_open  # unusable until reopened


async def test_instrument_that_closes_the_connection_is_a_clear_error() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    link = VisaLink(f"TCPIP::127.0.0.1::{port}::SOCKET", "hangs-up", timeout=2.0)
    await link.open()
    try:
        with pytest.raises(InstrumentConnectionError) as info:
            await link.query("*IDN?")
        assert "hangs-up" in str(info.value) and "connection" in str(info.value)
    finally:
        await link.close()
        server.close()
