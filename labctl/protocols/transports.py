"""Byte transports for the host client: TCP (asyncio streams) and serial (pyserial in a thread).

A transport moves bytes and nothing else; framing lives in the codec. `read()` returns at least one
byte, or b"" once the link has closed.
"""
from __future__ import annotations

import asyncio
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from labctl.protocols.errors import ConnectionClosedError

#: Bytes asked for per read; large replies (READ_ARRAY) arrive in few chunks.
READ_CHUNK = 1 << 20


class Transport(Protocol):
    """What ChipClient needs from a link."""

    name: str

    async def read(self) -> bytes: ...

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


class TcpTransport:
    """A TCP connection (Nagle off: requests are small and latency-bound)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str) -> None:
        self._reader = reader
        self._writer = writer
        self.name = name

    @classmethod
    async def open(cls, host: str, port: int, timeout: float = 5.0) -> TcpTransport:
        """Connect to host:port within `timeout` s."""
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, limit=READ_CHUNK), timeout)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer, f"tcp://{host}:{port}")

    async def read(self) -> bytes:
        try:
            return await self._reader.read(READ_CHUNK)
        except (ConnectionError, OSError):
            return b""

    async def write(self, data: bytes) -> None:
        try:
            self._writer.write(data)
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            raise ConnectionClosedError(f"{self.name}: write failed ({exc})") from exc

    async def close(self) -> None:
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except (ConnectionError, OSError):
            pass


class SerialTransport:
    """A serial port or pseudo-terminal through pyserial; blocking calls run in two worker threads
    (one reading, one writing) so the event loop never waits on the port."""

    #: Seconds a blocking read waits before checking whether the transport was closed.
    POLL = 0.05

    def __init__(self, port: object, name: str) -> None:
        self._port = port  # serial.Serial
        self._closed = False
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="chip-serial")
        self.name = name

    @classmethod
    async def open(cls, device: str, baudrate: int = 115200) -> SerialTransport:
        """Open `device` (e.g. /dev/ttyUSB0, /dev/pts/5, or a pyserial URL) in raw 8N1 mode."""
        import serial  # pyserial; imported here so TCP-only users need not have it

        loop = asyncio.get_running_loop()
        try:
            port = await loop.run_in_executor(
                None, lambda: serial.serial_for_url(device, baudrate=baudrate, timeout=cls.POLL,
                                                    write_timeout=10.0))
        except (serial.SerialException, OSError) as exc:
            raise ConnectionClosedError(f"serial {device}: cannot open ({exc})") from exc
        return cls(port, f"serial://{device}")

    def _read_blocking(self) -> bytes:
        import serial

        port = self._port
        while not self._closed:
            try:
                data = port.read(max(1, port.in_waiting))  # type: ignore[attr-defined]
            except (serial.SerialException, OSError, TypeError, AttributeError):
                return b""  # port vanished (device unplugged, pty master closed) or closed under us
            if data:
                return bytes(data)
        return b""

    async def read(self) -> bytes:
        if self._closed:
            return b""
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._read_blocking)

    def _write_blocking(self, data: bytes) -> None:
        self._port.write(data)  # type: ignore[attr-defined]
        self._port.flush()  # type: ignore[attr-defined]

    async def write(self, data: bytes) -> None:
        import serial

        if self._closed:
            raise ConnectionClosedError(f"{self.name}: closed")
        try:
            await asyncio.get_running_loop().run_in_executor(self._pool, self._write_blocking, data)
        except (serial.SerialException, OSError) as exc:
            raise ConnectionClosedError(f"{self.name}: write failed ({exc})") from exc

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        # The reader thread notices _closed within POLL s; close the port after it has left read().
        await loop.run_in_executor(None, self._pool.shutdown, True)
        await loop.run_in_executor(None, self._port.close)  # type: ignore[attr-defined]
