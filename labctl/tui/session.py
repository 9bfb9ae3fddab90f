"""The backend session: one backend, owned by one thread with its own event loop.

Why a thread: the in-process emulator computes in C inside `await backend.read(...)` without yielding,
and instrument drivers may block; run on the UI's event loop either would freeze the screen. Every
backend call of the TUI is therefore a coroutine submitted to the session loop
(`await session.call(fn)` from the UI loop). The run store lives on the same thread (SQLite
connections are bound to their thread), so measurements are committed where they are taken.

The session reports its connection state through a callback (called on the session thread: the
TUI forwards it with a thread-safe message). A call that fails on the link (ConnectionError,
OSError, timeouts; the chip backend reports protocol failures as ConnectionError) marks the session
disconnected and starts reconnecting with exponential backoff (0.2 s up to 5 s); calls made meanwhile
wait for the connection for up to `connect_timeout` seconds.

Emergency stop (`emergency_stop`) runs the registered stop hooks (the campaign runner's abort),
cancels every call in flight and then switches every output off, in that order, on the session
loop; it is safe to call from any thread at any time.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from labctl.backends.base import ArrayBackend, BackendInfo
from labctl.core.limits import SafetyLimits

log = logging.getLogger(__name__)

T = TypeVar("T")

CONNECTING, CONNECTED, RECONNECTING, FAILED, CLOSED = "connecting", "connected", "reconnecting", "failed", "closed"


@dataclass(frozen=True)
class SessionState:
    """What the status bar shows about the link."""

    state: str
    info: BackendInfo | None = None
    limits: SafetyLimits | None = None
    reconnects: int = 0  # completed reconnections since start
    attempt: int = 0  # current reconnection attempt (0 when connected)
    message: str = ""


#: Failures of the link, not of the request. The chip backend turns protocol failures into
#: ConnectionError naming the controller (a refusal keeps its own type: it is an answer, not a lost link).
LINK_ERRORS: tuple[type[BaseException], ...] = (ConnectionError, OSError, TimeoutError, asyncio.TimeoutError,
                                                EOFError)


def is_link_error(exc: BaseException) -> bool:
    """True for failures of the connection, not of the request (a refused value is a ValueError)."""
    return isinstance(exc, LINK_ERRORS) and not isinstance(exc, ValueError)


@dataclass
class BackendSession:
    """Owns `backend` on a private thread. Build with a factory so opening happens on that thread."""

    factory: Callable[[], ArrayBackend]
    on_state: Callable[[SessionState], None] = lambda s: None
    connect_timeout: float = 10.0
    backoff: tuple[float, float] = (0.2, 5.0)
    store_path: str | None = None

    backend: ArrayBackend | None = field(default=None, init=False)
    loop: asyncio.AbstractEventLoop | None = field(default=None, init=False)
    state: SessionState = field(default_factory=lambda: SessionState(CONNECTING), init=False)
    _thread: threading.Thread | None = field(default=None, init=False)
    _ready: threading.Event = field(default_factory=threading.Event, init=False)
    _connected: asyncio.Event | None = field(default=None, init=False)
    _inflight: set[concurrent.futures.Future[Any]] = field(default_factory=set, init=False)
    _stop_hooks: list[Callable[[], None]] = field(default_factory=list, init=False)
    _reconnecting: asyncio.Task[None] | None = field(default=None, init=False)
    _store: Any = field(default=None, init=False)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the thread and begin connecting (returns at once; watch on_state)."""
        self._thread = threading.Thread(target=self._thread_main, name="labctl-tui-backend", daemon=True)
        self._thread.start()
        self._ready.wait(5.0)

    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        asyncio.set_event_loop(loop)
        self._connected = asyncio.Event()
        loop.call_soon(self._ready.set)
        loop.create_task(self._connect_first())
        try:
            loop.run_forever()
        finally:
            loop.close()

    def _set_state(self, **changes: Any) -> None:
        s = self.state
        self.state = SessionState(**{**s.__dict__, **changes})
        try:
            self.on_state(self.state)
        except Exception:  # a display problem must not take the session down
            log.exception("session state callback failed")

    async def _connect_first(self) -> None:
        try:
            self.backend = self.factory()
            await self.backend.open()
        except Exception as exc:
            log.error("backend: cannot connect: %s", exc)
            self._set_state(state=FAILED, message=f"{type(exc).__name__}: {exc}")
            if self.backend is not None and is_link_error(exc):
                self._reconnecting = asyncio.get_running_loop().create_task(self._reconnect())
            return
        assert self._connected is not None
        self._connected.set()
        self._set_state(state=CONNECTED, info=self.backend.info, limits=self.backend.limits, message="")

    async def _reconnect(self) -> None:
        assert self._connected is not None and self.backend is not None
        self._connected.clear()
        delay, attempt = self.backoff[0], 0
        while True:
            attempt += 1
            self._set_state(state=RECONNECTING, attempt=attempt)
            try:
                await self.backend.close()
            except Exception:  # the link is already gone; closing is best effort
                pass
            try:
                await self.backend.open()
            except Exception as exc:
                self._set_state(message=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff[1])
                continue
            break
        self._connected.set()
        log.warning("backend: reconnected after %d attempt(s)", attempt)
        self._set_state(state=CONNECTED, info=self.backend.info, limits=self.backend.limits,
                        reconnects=self.state.reconnects + 1, attempt=0, message="")
        self._reconnecting = None

    def close(self, timeout: float = 5.0) -> None:
        """Outputs off, close the backend and the store, stop the thread (idempotent)."""
        loop = self.loop
        if loop is None or not loop.is_running():
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout)
        except Exception as exc:
            log.error("backend: shutdown: %s", exc)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout)
        self._set_state(state=CLOSED)

    async def _shutdown(self) -> None:
        for fut in list(self._inflight):
            fut.cancel()
        if self._reconnecting is not None:
            self._reconnecting.cancel()
        if self.backend is not None:
            try:
                await self.backend.outputs_off()
            finally:
                await self.backend.close()
        if self._store is not None:
            self._store.close()
            self._store = None

    # ------------------------------------------------------------------ calls
    def submit(self, fn: Callable[[ArrayBackend], Awaitable[T]]) -> concurrent.futures.Future[T]:
        """Run `fn(backend)` on the session loop; returns a concurrent future (any thread)."""
        if self.loop is None:
            raise RuntimeError("backend session: not started")
        fut = asyncio.run_coroutine_threadsafe(self._guarded(fn), self.loop)
        self._inflight.add(fut)
        fut.add_done_callback(self._inflight.discard)
        return fut

    async def call(self, fn: Callable[[ArrayBackend], Awaitable[T]]) -> T:
        """Await `fn(backend)` from another event loop (the UI's); cancelling the caller cancels the call."""
        fut = self.submit(fn)
        try:
            return await asyncio.wrap_future(fut)
        except asyncio.CancelledError:
            fut.cancel()
            raise

    async def _guarded(self, fn: Callable[[ArrayBackend], Awaitable[T]]) -> T:
        assert self._connected is not None
        if not self._connected.is_set():
            try:
                await asyncio.wait_for(self._connected.wait(), self.connect_timeout)
            except asyncio.TimeoutError:
                raise ConnectionError(f"backend: not connected ({self.state.state}: {self.state.message})") from None
        assert self.backend is not None
        try:
            return await fn(self.backend)
        except Exception as exc:
            if is_link_error(exc) and self._reconnecting is None and self.state.state == CONNECTED:
                log.error("backend: link lost (%s: %s); reconnecting", type(exc).__name__, exc)
                self._set_state(message=f"link lost: {exc}")
                self._reconnecting = asyncio.get_running_loop().create_task(self._reconnect())
            raise

    def store(self) -> Any:
        """The run store, opened on the session thread on first use (call only from the session loop)."""
        if self._store is None:
            from labctl.campaigns.store import DEFAULT_STORE, Store

            self._store = Store(self.store_path or DEFAULT_STORE)
        return self._store

    # ------------------------------------------------------------------ emergency stop
    def add_stop_hook(self, hook: Callable[[], None]) -> Callable[[], None]:
        """`hook()` runs on the session loop at every emergency stop (e.g. a runner's abort); returns
        a function that removes it."""
        self._stop_hooks.append(hook)
        return lambda: self._stop_hooks.remove(hook) if hook in self._stop_hooks else None

    def emergency_stop(self) -> concurrent.futures.Future[None]:
        """Abort whatever runs and switch every output off. Any thread; returns when scheduled."""
        if self.loop is None:
            raise RuntimeError("backend session: not started")
        return asyncio.run_coroutine_threadsafe(self._emergency_stop(), self.loop)

    async def _emergency_stop(self) -> None:
        for hook in list(self._stop_hooks):
            try:
                hook()
            except Exception:
                log.exception("emergency stop hook failed")
        for fut in list(self._inflight):
            fut.cancel()
        # Let the cancelled tasks unwind (their own finally blocks switch off too) before the last word.
        await asyncio.sleep(0)
        if self.backend is not None:
            await self.backend.outputs_off()
        log.warning("EMERGENCY STOP: calls cancelled, outputs off")
