"""Raw-socket SCPI transport for an emulated instrument (what VISA calls ``TCPIP::host::port::SOCKET``).

Program messages end in LF (a CR before it is dropped); responses end in LF. Each message runs in the
instrument's own worker thread because the model may call into the shared Array, whose lock another
thread (the chip controller) may hold; the event loop never blocks on it.

Bounds (docs/instruments.md, "Bounds"): a program message is at most :data:`MAX_MESSAGE` bytes
(longer lines queue -223 "Too much data" and are discarded as they arrive, never buffered whole);
bytes outside printable 7-bit ASCII queue -101 "Invalid character" (:meth:`CommandSet.execute`);
at most :data:`MAX_CONNECTIONS` clients are served at once (a
further one is closed at once); a client that does not read its replies is not read from either
(TCP back-pressure), so each connection holds at most one message and one reply.

For tests the server keeps a log of the most recent received messages (:class:`ReceivedLog`), can die
on command (``die_on``), be killed (connections aborted, instrument powered off) and be restarted on
the same port, or drop its connections while the instrument keeps its state (a cable pulled).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Iterator

from .base import EmulatedInstrument
from .scpi import SCPIError

log = logging.getLogger(__name__)

#: Longest program message accepted, bytes (terminator excluded); longer input is a client bug,
#: not a list sweep (2500 list points take about 40 kB).
MAX_MESSAGE = 1 << 20
#: Clients served at once per instrument; a real LAN instrument accepts a handful of sockets.
MAX_CONNECTIONS = 8
#: Bytes read from the socket per call.
READ_CHUNK = 1 << 16
#: Messages kept by :class:`ReceivedLog`, and characters kept of each.
LOG_ENTRIES = 1000
LOG_ENTRY_CHARS = 256


class ReceivedLog:
    """The received-message log of a server: a ring of the newest :data:`LOG_ENTRIES` messages,
    each cut to :data:`LOG_ENTRY_CHARS` characters (about 0.3 MB at most).

    ``len()`` counts every message received since the server was created (tests compare counts to
    see whether anything was sent); iteration yields the messages still kept, oldest first.
    """

    def __init__(self, entries: int = LOG_ENTRIES, chars: int = LOG_ENTRY_CHARS) -> None:
        self._ring: deque[str] = deque(maxlen=entries)
        self._chars = chars
        self.total = 0

    def append(self, message: str) -> None:
        if len(message) > self._chars:
            message = f"{message[:self._chars]}... ({len(message)} characters)"
        self._ring.append(message)
        self.total += 1

    def __len__(self) -> int:
        return self.total

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._ring))

    def __getitem__(self, index: int) -> str:
        return self._ring[index]


class LineReader:
    """Splits a byte stream into program messages of at most ``limit`` bytes, sans I/O.

    :meth:`feed` returns complete lines (terminator removed) and, for a line that grew past the
    limit, ``None`` once: the rest of that line is dropped as it arrives, so at most ``limit``
    bytes are ever held.
    """

    def __init__(self, limit: int = MAX_MESSAGE) -> None:
        self.limit = limit
        self._buffer = bytearray()
        self._discarding = False

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes | None]:
        out: list[bytes | None] = []
        start = 0
        while start < len(data):
            end = data.find(b"\n", start)
            piece = data[start:] if end < 0 else data[start:end]
            if self._discarding:
                if end >= 0:
                    self._discarding = False
            elif len(self._buffer) + len(piece) > self.limit:
                self._buffer.clear()
                out.append(None)
                self._discarding = end < 0
            else:
                self._buffer += piece
                if end >= 0:
                    out.append(bytes(self._buffer))
                    self._buffer.clear()
            if end < 0:
                break
            start = end + 1
        return out


class InstrumentServer:
    """One emulated instrument listening on loopback TCP."""

    def __init__(self, instrument: EmulatedInstrument, host: str = "127.0.0.1", port: int = 0) -> None:
        self.instrument = instrument
        self.host = host
        self.port = port
        self.received = ReceivedLog()  # the newest program messages, in arrival order
        self.die_on: str | None = None  # case-insensitive substring that kills the server
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        # Messages are handled on the event loop, not in a worker thread: every handler is bounded
        # (the array's physics on the virtual clock, no sleeps), and a thread hand-off per message
        # would be most of a round trip (~0.1 ms of the ~0.16 ms a driver sees). Clients in the
        # same process wait for replies on the loop too (labctl.instruments.visa), or call from
        # their own threads (the WGFMU library, third-party drivers).

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
            self._serve, self.host, self.port, limit=READ_CHUNK
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
        self._power_off()

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
        if len(self._writers) >= MAX_CONNECTIONS:
            log.warning("%s: refusing a connection beyond %d", self.name, MAX_CONNECTIONS)
            writer.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        lines = LineReader()
        terminator = b"\n"
        nul_ok = getattr(self.instrument, "nul_terminated", False)
        try:
            while True:
                data = await reader.read(READ_CHUNK)
                if not data:
                    break  # client closed
                if nul_ok and b"\0" in data:
                    # KXCI over LAN: NUL ends a message; such a client gets NUL-terminated replies.
                    terminator = b"\0"
                    data = data.replace(b"\0", b"\n")
                for raw in lines.feed(data):
                    if not await self._message(raw, writer, terminator):
                        return
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _message(self, raw: bytes | None, writer: asyncio.StreamWriter, terminator: bytes = b"\n") -> bool:
        """Handle one received line (None: one that was too long); False once the server died."""
        if raw is None:
            self.received.append(f"<discarded: longer than {MAX_MESSAGE} B>")
            self._queue_error(-223, f"program message longer than {MAX_MESSAGE} B discarded")
            return True
        # Latin-1 maps every byte to one character, so CommandSet.execute sees (and refuses with
        # -101) exactly the bytes that were sent.
        message = raw.removesuffix(b"\r").decode("latin-1")
        self.received.append(message)
        if self.die_on and self.die_on.lower() in message.lower():
            # Not awaited here: kill() cancels this very task.
            asyncio.get_running_loop().create_task(self.kill())
            return False
        if not message.strip():
            return True
        reply = self.instrument.handle(message)
        if reply is not None:
            # Replies are ASCII by construction; a stray character must not end the connection.
            writer.write(reply.encode("ascii", errors="replace") + terminator)
            await writer.drain()  # a client that does not read is not read from either
        return True

    def _queue_error(self, code: int, detail: str) -> None:
        with self.instrument.lock:
            self.instrument.errors.push(code, SCPIError(code, detail).text)
