"""Raw-socket SCPI transport for an emulated instrument (what VISA calls ``TCPIP::host::port::SOCKET``).

Program messages end in LF (a CR before it is dropped); responses end in LF. Each message runs in a
worker thread because the model may call into the shared Array, whose lock another thread (the chip
controller) may hold; the event loop never blocks on it.

For tests the server keeps a log of every received message, can die on command (``die_on``),
be killed (connections aborted, instrument powered off) and be restarted on the same port, or drop
its connections while the instrument keeps its state (a cable pulled).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging

from .base import EmulatedInstrument

log = logging.getLogger(__name__)

#: Longest program message accepted, bytes; longer input is a client bug, not a list sweep.
MAX_MESSAGE = 1 << 20


class InstrumentServer:
    """One emulated instrument listening on loopback TCP."""

    def __init__(self, instrument: EmulatedInstrument, host: str = "127.0.0.1", port: int = 0) -> None:
        self.instrument = instrument
        self.host = host
        self.port = port
        self.received: list[str] = []  # every program message, in arrival order
        self.die_on: str | None = None  # case-insensitive substring that kills the server
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def name(self) -> str:
        return self.instrument.name

    @property
    def resource(self) -> str:
        """The VISA resource string clients open."""
        return f"TCPIP::{self.host}::{self.port}::SOCKET"

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, limit=MAX_MESSAGE
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("%s listening on %s", self.name, self.resource)

    async def stop(self) -> None:
        """Orderly shutdown: outputs off, connections closed, port released."""
        await self.kill()

    async def kill(self) -> None:
        """The instrument dies: the port closes, clients see their connection reset, outputs drop."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        self._tasks.clear()
        await asyncio.to_thread(self._power_off)

    def _power_off(self) -> None:
        with self.instrument.lock:
            self.instrument.power_off()

    async def restart(self) -> None:
        """Power back on at the same port (state as after *RST)."""
        if self._server is None:
            await self.start()

    def drop_connections(self) -> None:
        """Abort every client connection but keep the instrument (and its outputs) as they are."""
        for writer in list(self._writers):
            writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            while True:
                try:
                    raw = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError:
                    break  # client closed
                except asyncio.LimitOverrunError:
                    await asyncio.to_thread(self._overrun)
                    break
                message = raw.decode("ascii", errors="replace").rstrip("\r\n")
                self.received.append(message)
                if self.die_on and self.die_on.lower() in message.lower():
                    # Not awaited here: kill() cancels this very task.
                    asyncio.get_running_loop().create_task(self.kill())
                    return
                if not message.strip():
                    continue
                reply = await asyncio.to_thread(self.instrument.handle, message)
                if reply is not None:
                    writer.write(reply.encode("ascii") + b"\n")
                    await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    def _overrun(self) -> None:
        with self.instrument.lock:
            self.instrument.errors.push(-223, "Too much data")
