"""Async access to one VISA resource through pyvisa and its pure-Python backend (``@py``).

pyvisa is blocking. On a pyvisa-py raw-socket session (``TCPIP::host::port::SOCKET``, what LAN
instruments and the emulated ones are) an exchange is a short write through pyvisa, a wait for the
reply's termination on the event loop (the socket is only watched and peeked, never read behind
pyvisa's back), then pyvisa's read, which finds the whole reply waiting: no thread hand-off, about
half the host time of a round trip (scripts/bench_instruments.py ``query_roundtrip_s``). Every
other resource (USB, GPIB, serial, VXI-11), a long message, a reply that arrives in pieces, or an
event loop that cannot watch sockets runs the exchange in a worker thread
(:func:`asyncio.to_thread`). An :class:`asyncio.Lock` per instrument keeps command/response pairs
from interleaving, and a cancelled caller never leaves a reply unread for the next command:
cancellation waits for the exchange to finish (bounded by the VISA timeout) before it propagates.
"""
from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import pyvisa
import pyvisa.errors

from .errors import InstrumentConnectionError

T = TypeVar("T")

#: Longest command written from the event loop (a longer one, e.g. a script upload, is written from
#: a worker thread: a full socket buffer must not stall the loop), bytes.
LOOP_WRITE_MAX = 4096
#: Bytes peeked while waiting for a reply's termination; a longer reply is read from a worker thread.
PEEK_MAX = 1 << 16

_rm: pyvisa.ResourceManager | None = None
_rm_lock = threading.Lock()


def resource_manager() -> pyvisa.ResourceManager:
    """The process-wide pyvisa-py resource manager (no vendor VISA library needed)."""
    global _rm
    with _rm_lock:
        if _rm is None:
            _rm = pyvisa.ResourceManager("@py")
        return _rm


def _set_nodelay(session: Any) -> None:
    """Turn off Nagle's algorithm on a raw-socket session.

    Without TCP_NODELAY a command followed at once by a query (the error-queue check) waits for
    the peer's delayed ACK, ~40 ms per configuration command on Linux. pyvisa-py 0.8 reads
    VI_ATTR_TCPIP_NODELAY but cannot set it, so the socket is reached through the backend's
    session object; other backends and resource kinds are left as they are.
    """
    try:
        session.set_visa_attribute(pyvisa.constants.VI_ATTR_TCPIP_NODELAY, True)
        return
    except Exception:  # noqa: BLE001 - backend-specific "unknown attribute" exceptions
        pass
    sock = _raw_socket(session)
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _raw_socket(session: Any) -> socket.socket | None:
    """The TCP socket under a pyvisa-py SOCKET session, if there is one."""
    try:
        sock = getattr(session.visalib.sessions[session.session], "interface", None)
    except Exception:  # noqa: BLE001 - other backends keep their sockets to themselves
        return None
    return sock if isinstance(sock, socket.socket) else None


def _check_peer(session: Any) -> None:
    """Raise ConnectionResetError if the instrument has closed the connection.

    pyvisa-py keeps polling a socket the peer has closed until its timeout expires; peeking first
    turns a dead instrument into an immediate, clear error instead of a timeout.
    """
    sock = _raw_socket(session)
    if sock is None:
        return
    try:
        data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return  # alive, nothing pending
    if data == b"":
        raise ConnectionResetError("connection closed by the instrument")


class VisaLink:
    """One open VISA session: ``await write(...)``, ``await query(...)``; reopen after failures.

    ``timeout`` is in seconds (pyvisa counts milliseconds). Line termination is LF both ways by
    default, which SOCKET resources need and INSTR, USB, GPIB and serial resources accept.
    """

    def __init__(self, resource: str, name: str, timeout: float = 5.0, termination: str = "\n") -> None:
        """``termination`` ends messages both ways (KXCI over LAN: NUL)."""
        if not timeout > 0:
            raise ValueError(f"timeout={timeout!r} refused: allowed > 0 s")
        self.resource = resource
        self.name = name
        self.timeout = timeout
        self.termination = termination
        self.lock = asyncio.Lock()
        self._session: Any = None
        self._broken: str | None = None  # why the session is unusable, if it is

    @property
    def is_open(self) -> bool:
        return self._session is not None and self._broken is None

    async def open(self) -> None:
        async with self.lock:
            await self._run("(open)", self._open_blocking)

    def _open_blocking(self) -> None:
        self._close_blocking()
        rm = resource_manager()
        with _rm_lock:  # pyvisa-py's session table is not safe to grow from two threads at once
            session = rm.open_resource(
                self.resource,
                read_termination=self.termination,
                write_termination=self.termination,
                timeout=int(self.timeout * 1000),
            )
        if self.resource.upper().startswith("TCPIP"):
            _set_nodelay(session)
        self._session = session
        self._broken = None

    def _close_blocking(self) -> None:
        if self._session is not None:
            try:
                self._session.close()
            except Exception:  # noqa: BLE001 - closing a dead socket may fail; it is gone either way
                pass
            self._session = None

    async def close(self) -> None:
        async with self.lock:
            await asyncio.to_thread(self._close_blocking)

    async def write(self, command: str) -> None:
        async with self.lock:
            if self._loop_socket(command) is not None:
                self._guarded(command, lambda: self._write_blocking(command))  # a short send
            else:
                await self._run(command, lambda: self._write_blocking(command))

    async def query(self, command: str, timeout: float | None = None) -> str:
        """Send ``command`` and read one reply line; ``timeout`` (s) overrides the default once,
        for operations the instrument takes long over (a sweep behind ``*OPC?``)."""
        async with self.lock:
            sock = self._loop_socket(command)
            if sock is None:
                reply: str = await self._run(command, lambda: self._query_blocking(command, timeout))
            else:
                reply = await self._query_on_loop(sock, command, max(timeout or 0.0, self.timeout))
            return reply.strip()

    def _loop_socket(self, command: str) -> socket.socket | None:
        """The raw socket when this exchange can wait on the event loop, else None (thread path)."""
        if self._session is None or self._broken is not None or len(command) > LOOP_WRITE_MAX:
            return None
        sock = _raw_socket(self._session)
        if sock is None:
            return None
        try:
            pending = self._session.visalib.sessions[self._session.session]._pending_buffer
        except Exception:  # noqa: BLE001 - another pyvisa-py version: keep to the thread path
            return None
        return sock if not pending else None  # a reply pyvisa already holds is read by pyvisa

    async def _query_on_loop(self, sock: socket.socket, command: str, timeout: float) -> str:
        session = self._session_or_raise(command)
        self._guarded(command, lambda: self._write_blocking(command))  # a short send
        try:
            return await self._reply_on_loop(sock, session, command, timeout)
        except asyncio.CancelledError:
            # Cancelled while waiting: read the reply anyway, so the next command gets its own.
            task = asyncio.ensure_future(self._reply_on_loop(sock, session, command, timeout))
            await asyncio.wait([task])
            raise

    async def _reply_on_loop(self, sock: socket.socket, session: Any, command: str, timeout: float) -> str:
        """Wait (on the loop) until the reply's termination has arrived, then let pyvisa read it."""
        loop = asyncio.get_running_loop()
        term = self.termination.encode("ascii")
        deadline = loop.time() + timeout
        while True:
            try:
                seen = sock.recv(PEEK_MAX, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except BlockingIOError:
                seen = None
            except OSError as exc:
                return self._guarded(command, lambda failure=exc: _raise(failure))
            if seen == b"":
                return self._guarded(command, lambda: _raise(ConnectionResetError("connection closed by the instrument")))
            if seen is not None:
                if term in seen:
                    return self._guarded(command, lambda: str(session.read()))
                break  # a reply in pieces (or a long one): pyvisa reads the rest in a worker thread
            remaining = deadline - loop.time()
            try:
                arrived = remaining > 0 and await _readable(loop, sock, remaining)
            except NotImplementedError:  # a loop that cannot watch sockets (Windows' proactor)
                break
            if not arrived:
                return self._guarded(command, lambda: _raise(pyvisa.errors.VisaIOError(
                    pyvisa.constants.StatusCode.error_timeout)))
        return await self._run(command, lambda: str(session.read()))

    def _write_blocking(self, command: str) -> None:
        session = self._session_or_raise(command)
        _check_peer(session)
        session.write(command)

    def _query_blocking(self, command: str, timeout: float | None) -> str:
        session = self._session_or_raise(command)
        _check_peer(session)
        if timeout is None:
            return str(session.query(command))
        session.timeout = int(max(timeout, self.timeout) * 1000)
        try:
            return str(session.query(command))
        finally:
            session.timeout = int(self.timeout * 1000)

    def _session_or_raise(self, command: str) -> Any:
        if self._session is None or self._broken is not None:
            raise InstrumentConnectionError(
                self.name, command, f"not connected ({self._broken or 'never opened'}); call reconnect()"
            )
        return self._session

    async def _run(self, command: str, fn: Callable[[], T]) -> T:
        task = asyncio.ensure_future(asyncio.to_thread(self._guarded, command, fn))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            # Let the exchange finish so the stream stays aligned, then honour the cancel.
            await asyncio.wait([task])
            raise

    def _guarded(self, command: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except InstrumentConnectionError:
            raise
        except pyvisa.errors.VisaIOError as exc:
            self._broken = f"{exc.abbreviation}"
            if exc.error_code == pyvisa.constants.StatusCode.error_timeout:
                detail = f"no reply within {self.timeout:g} s (timeout)"
            else:
                detail = f"connection lost ({exc.abbreviation})"
            raise InstrumentConnectionError(self.name, command, f"{detail} at {self.resource}") from exc
        except (OSError, EOFError, ValueError, pyvisa.errors.Error) as exc:
            self._broken = type(exc).__name__
            raise InstrumentConnectionError(
                self.name, command, f"connection lost ({exc}) at {self.resource}"
            ) from exc


def _raise(exc: BaseException) -> Any:
    raise exc


async def _readable(loop: asyncio.AbstractEventLoop, sock: socket.socket, timeout: float) -> bool:
    """True once ``sock`` has data (or is closed), False after ``timeout`` s. A loop that cannot
    watch sockets raises NotImplementedError (not on Linux)."""
    ready: asyncio.Future[bool] = loop.create_future()

    def wake(value: bool) -> None:
        if not ready.done():
            ready.set_result(value)

    fd = sock.fileno()
    loop.add_reader(fd, wake, True)
    timer = loop.call_later(timeout, wake, False)
    try:
        return await ready
    finally:
        timer.cancel()
        loop.remove_reader(fd)
