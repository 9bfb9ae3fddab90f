"""Async host client of the chip command protocol.

    async with await ChipClient.connect("tcp://127.0.0.1:5025") as chip:
        chip_info = chip.info                      # array size and limits
        await chip.form()                          # whole array, reference sweep
        result = await chip.set_target_g(None, targets, tolerance=0.02)
        g = await chip.read_array()                # (rows, cols) S

One request is outstanding at a time (the controller runs commands one by one); STATUS, ABORT,
RESET and BYE may be sent while a long command runs. A request that gets no reply within
`timeout` s is retransmitted byte for byte (same request id), up to `retries` times; the
controller answers a retransmission from its reply cache, so nothing is applied twice. While a
long command is running, the client asks STATUS instead of retransmitting.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import numpy as np

from labctl.protocols import messages as m
from labctl.protocols.cells import Cells, CellsLike, as_cells
from labctl.protocols.codec import Frame, FrameDecoder, FramingError
from labctl.protocols.codes import (
    IMMEDIATE_COMMANDS,
    MAX_PAYLOAD,
    PROTOCOL_VERSION,
    RETRANSMIT_STATUSES,
    Command,
    DType,
    Fault,
    FormMode,
    RunState,
    Status,
    name_of,
)
from labctl.protocols.errors import (
    ChipTimeoutError,
    CommandError,
    ConnectionClosedError,
    ProtocolError,
)
from labctl.protocols.limits import check_request
from labctl.protocols.transports import SerialTransport, TcpTransport, Transport

log = logging.getLogger(__name__)

R = TypeVar("R", bound=m.Message)

#: Commands that may run long; on a timeout the client asks STATUS before retransmitting.
LONG_COMMANDS = frozenset({Command.FORM, Command.PULSE, Command.SWEEP, Command.SET_TARGET_G,
                           Command.VERIFY, Command.READ_ARRAY, Command.READ})


class ChipClient:
    """Client of one chip controller over one transport.

    Args:
        transport: an open TcpTransport or SerialTransport.
        timeout: seconds to wait for a reply before retransmitting (per attempt).
        retries: retransmissions before ChipTimeoutError.
        validate: check parameters against INFO limits before sending (recommended).
    """

    def __init__(self, transport: Transport, *, timeout: float = 1.0, retries: int = 3,
                 validate: bool = True) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout = {timeout} s must be > 0 s")
        if retries < 0:
            raise ValueError(f"retries = {retries} must be >= 0")
        self.transport = transport
        self.timeout = timeout
        self.retries = retries
        self.validate = validate
        self.info: m.InfoReply | None = None
        self.hello: m.HelloReply | None = None
        self._decoder = FrameDecoder()
        # request id -> (command, future of the reply frame)
        self._pending: dict[int, tuple[int, asyncio.Future[Frame]]] = {}
        self._next_id = 0
        self._lock = asyncio.Lock()
        self._reader_task: asyncio.Task[None] | None = None
        self._closed = False
        self.framing_errors = 0  # framing errors seen on replies (diagnostics)

    # ------------------------------------------------------------------ opening and closing

    @classmethod
    async def connect(cls, address: str, *, timeout: float = 1.0, retries: int = 3,
                      baudrate: int = 115200, validate: bool = True,
                      client_name: str = "labctl") -> ChipClient:
        """Open a link, say HELLO and fetch INFO.

        Args:
            address: "tcp://HOST:PORT", "serial:///dev/ttyUSB0" or a device path ("/dev/pts/5").
            timeout, retries, validate: see the class.
            baudrate: serial line rate, baud (ignored by pseudo-terminals).
            client_name: sent in HELLO, shown by the controller.
        """
        transport: Transport
        if address.startswith("tcp://"):
            url = urlsplit(address)
            if url.hostname is None or url.port is None:
                raise ValueError(f"address = {address!r}: expected tcp://HOST:PORT")
            transport = await TcpTransport.open(url.hostname, url.port)
        elif address.startswith("serial://"):
            transport = await SerialTransport.open(address[len("serial://"):], baudrate)
        elif address.startswith("/") or "://" not in address:
            transport = await SerialTransport.open(address, baudrate)
        else:
            raise ValueError(f"address = {address!r}: expected tcp://HOST:PORT, serial://DEVICE or a path")
        client = cls(transport, timeout=timeout, retries=retries, validate=validate)
        try:
            await client.start(client_name)
        except BaseException:
            await client.close(bye=False)
            raise
        return client

    async def start(self, client_name: str = "labctl") -> m.InfoReply:
        """Start reading, open the session (HELLO) and fetch INFO."""
        if self._reader_task is None:
            self._reader_task = asyncio.create_task(self._read_loop(), name=f"chip-reader {self.transport.name}")
        hello = await self.request(m.HelloRequest(PROTOCOL_VERSION, PROTOCOL_VERSION, MAX_PAYLOAD,
                                                  client_name), m.HelloReply)
        if hello.version != PROTOCOL_VERSION:
            raise ProtocolError(f"controller chose protocol version {hello.version}, "
                                f"this client speaks {PROTOCOL_VERSION}")
        self.hello = hello
        self.info = await self.request(m.InfoRequest(), m.InfoReply)
        return self.info

    async def close(self, bye: bool = True) -> None:
        """End the session (BYE, best effort) and close the link."""
        if self._closed:
            return
        if bye and self._reader_task is not None and not self._reader_task.done():
            with contextlib.suppress(ProtocolError, OSError):
                await self.request(m.ByeRequest(), m.ByeReply, timeout=0.5, retries=0)
        self._closed = True
        await self.transport.close()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader_task
        self._fail_pending(ConnectionClosedError(f"{self.transport.name}: client closed"))

    async def __aenter__(self) -> ChipClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    # ------------------------------------------------------------------ request machinery

    def _new_id(self) -> int:
        # Ids wrap within 32 bits and skip 0, which is reserved for unsolicited error frames.
        self._next_id = self._next_id % 0xFFFFFFFF + 1
        return self._next_id

    def _fail_pending(self, exc: Exception) -> None:
        for _, fut in self._pending.values():
            if not fut.done():
                fut.set_exception(exc)

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self.transport.read()
                if not data:
                    break
                self._dispatch(self._decoder.feed(data))
        finally:
            self._fail_pending(ConnectionClosedError(f"{self.transport.name}: link closed"))

    def _dispatch(self, events: list[Frame | FramingError]) -> None:
        """Hand replies to the requests waiting for them."""
        for event in events:
            if isinstance(event, FramingError):
                # A damaged reply: its request times out and is retransmitted.
                self.framing_errors += 1
                log.debug("%s: %s", self.transport.name, event.detail)
                continue
            command, fut = self._pending.get(event.request_id, (None, None))
            if fut is not None and not fut.done() and event.command == command:
                fut.set_result(event)
            elif event.request_id == 0:
                log.warning("%s: controller reports %s: %s", self.transport.name,
                            name_of(Status, event.status), m.unpack_error(event.payload))
            else:
                log.debug("%s: late or duplicate reply to request %d dropped",
                          self.transport.name, event.request_id)

    async def raw_request(self, command: int, payload: bytes, *, timeout: float | None = None,
                          retries: int | None = None) -> Frame:
        """Send one request frame and return the reply frame (any status).

        Retransmits the identical frame after `timeout` s without a reply, and at once after a
        BAD_CRC / BAD_FRAME reply. For long commands a timeout first asks STATUS and keeps waiting
        while the controller reports this request as running.
        """
        timeout = self.timeout if timeout is None else timeout
        retries = self.retries if retries is None else retries
        if self._closed:
            raise ConnectionClosedError(f"{self.transport.name}: client closed")
        immediate = command in IMMEDIATE_COMMANDS
        async with contextlib.nullcontext() if immediate else self._lock:
            rid = self._new_id()
            wire = Frame(command, rid, payload).encode()
            loop = asyncio.get_running_loop()
            attempts = 0
            try:
                while True:
                    fut: asyncio.Future[Frame] = loop.create_future()
                    self._pending[rid] = (command, fut)
                    await self.transport.write(wire)
                    reply = await self._await_reply(fut, rid, command, timeout)
                    if reply is not None and reply.status not in RETRANSMIT_STATUSES:
                        return reply
                    attempts += 1
                    if attempts > retries:
                        what = "no reply" if reply is None else f"reply {name_of(Status, reply.status)}"
                        raise ChipTimeoutError(
                            f"{name_of(Command, command)} (request {rid}): {what} after "
                            f"{attempts} attempt(s) of {timeout:g} s on {self.transport.name}")
                    log.info("%s: retransmitting %s request %d (attempt %d)", self.transport.name,
                             name_of(Command, command), rid, attempts + 1)
                    # A half-received reply would otherwise swallow the start of the next one.
                    self._dispatch(self._decoder.discard_partial())
            finally:
                self._pending.pop(rid, None)

    async def _await_reply(self, fut: asyncio.Future[Frame], rid: int, command: int,
                           timeout: float) -> Frame | None:
        """The reply, or None after a timeout during which the controller was not working on it."""
        while True:
            try:
                return await asyncio.wait_for(asyncio.shield(fut), timeout)
            except TimeoutError:
                if command not in LONG_COMMANDS:
                    return None
                try:
                    status = await self.request(m.StatusRequest(), m.StatusReply, timeout=timeout,
                                                retries=0)
                except ChipTimeoutError:
                    return None
                if fut.done():
                    return fut.result()
                if status.state == RunState.IDLE or status.request_id != rid:
                    return None
                log.debug("%s: request %d still running (%d/%d)", self.transport.name, rid,
                          status.done, status.total)

    async def request(self, msg: m.Message, reply_type: type[R], *, timeout: float | None = None,
                      retries: int | None = None) -> R:
        """Send a typed request and return the typed reply.

        Raises:
            LimitError: the request breaks the controller's INFO limits (nothing was sent).
            CommandError: the controller answered with a non-OK status.
            ChipTimeoutError: no reply after every retransmission.
        """
        if self.validate and self.info is not None:
            check_request(msg, self.info, MAX_PAYLOAD)
        reply = await self.raw_request(msg.command, msg.pack(), timeout=timeout, retries=retries)
        if reply.status != Status.OK:
            raise CommandError(reply.status, reply.command, m.unpack_error(reply.payload))
        result = reply_type.unpack(reply.payload)
        assert isinstance(result, reply_type)
        return result

    # ------------------------------------------------------------------ controller state

    def _require_info(self) -> m.InfoReply:
        if self.info is None:
            raise ProtocolError("no session: call start() or use ChipClient.connect()")
        return self.info

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of the array."""
        info = self._require_info()
        return info.rows, info.cols

    async def get_info(self) -> m.InfoReply:
        """Fetch INFO again (e.g. after VERIFY_LOOP_MAX changed)."""
        self.info = await self.request(m.InfoRequest(), m.InfoReply)
        return self.info

    async def status(self) -> m.StatusReply:
        """What the controller is running and how far it got."""
        return await self.request(m.StatusRequest(), m.StatusReply)

    async def abort(self) -> m.AbortReply:
        """Stop the running command at its next safe point (that command then fails with ABORTED)."""
        return await self.request(m.AbortRequest(), m.AbortReply)

    async def reset(self) -> None:
        """Abort anything running and return the controller settings to defaults."""
        await self.request(m.ResetRequest(), m.ResetReply)

    async def verify_loop_max(self, value: int | None = None) -> int:
        """Get, or set and return, the default bound on verify reads per cell of SET_TARGET_G."""
        reply = await self.request(m.VerifyLoopMaxRequest(value), m.VerifyLoopMaxReply)
        return reply.value

    # ------------------------------------------------------------------ array operations

    def _n_cells(self, cells: Cells) -> int:
        return cells.count(self.shape)

    # Request fields and their defaults are those of the messages (labctl.protocols.messages);
    # `**fields` are passed on by name, so each default is written once.

    async def form(self, cells: CellsLike = None, *, timeout: float | None = None,
                   **fields: Any) -> m.FormReply:
        """Form cells; returns per-cell v_form (V), i_form (A), g (S) and formed (bool).

        `fields` are FormRequest's (mode "sweep" / "pulse_ramp", v_start, v_stop, v_step, vg,
        duration, v_read, vg_read, g_formed); the defaults follow the reference: sweep
        0 -> 3.6 V in 10 mV steps with VG = 1.2 V compliance.
        """
        if isinstance(fields.get("mode"), str):
            fields["mode"] = FormMode[fields["mode"].upper()]
        return await self.request(m.FormRequest(as_cells(cells), **fields), m.FormReply, timeout=timeout)

    async def pulse(self, cells: CellsLike, v: float, *, timeout: float | None = None,
                    **fields: Any) -> int:
        """Apply `count` pulses of amplitude v (V), gate vg (V), width (s) to each cell (`fields`:
        PulseRequest's vg, width, count); returns the number of pulses applied."""
        reply = await self.request(m.PulseRequest(as_cells(cells), v, **fields), m.PulseReply,
                                   timeout=timeout)
        return reply.pulses

    async def _read(self, cells: CellsLike, v_read: float, vg: float, timeout: float | None) -> m.ReadReply:
        return await self.request(m.ReadRequest(as_cells(cells), v_read, vg), m.ReadReply, timeout=timeout)

    async def read(self, cells: CellsLike = None, v_read: float = m.ReadRequest.v_read,
                   vg: float = m.ReadRequest.vg, timeout: float | None = None) -> np.ndarray:
        """Conductance I/V of each cell at v_read (V) and gate vg (V), S (1-D, visiting order)."""
        return (await self._read(cells, v_read, vg, timeout)).g

    async def read_current(self, cells: CellsLike = None, v_read: float = m.ReadRequest.v_read,
                           vg: float = m.ReadRequest.vg, timeout: float | None = None) -> np.ndarray:
        """Current through each cell at v_read (V) and gate vg (V), A (1-D, visiting order)."""
        return (await self._read(cells, v_read, vg, timeout)).i

    async def read_array(self, region: Cells | None = None, v_read: float = m.ReadArrayRequest.v_read,
                         vg: float = m.ReadArrayRequest.vg, *, dtype: DType = DType.FLOAT64,
                         timeout: float | None = None) -> np.ndarray:
        """Conductance map, S, shape (rows, cols) of the array or of `region` (Cells.region)."""
        req = m.ReadArrayRequest(region or Cells.all(), v_read, vg, DType(dtype))
        reply = await self.request(req, m.ReadArrayReply, timeout=timeout)
        return reply.g

    async def sweep(self, cells: CellsLike, voltages: np.ndarray, *, timeout: float | None = None,
                    **fields: Any) -> np.ndarray:
        """Quasi-static sweep (`fields`: SweepRequest's vg, V, and dwell, s); currents, A, shape
        (cells, points)."""
        v = np.asarray(voltages, dtype=float).reshape(-1)
        return (await self.request(m.SweepRequest(as_cells(cells), voltages=v, **fields), m.SweepReply,
                                   timeout=timeout)).i

    async def set_target_g(self, cells: CellsLike, targets: np.ndarray | float, *,
                           scheme: m.SchemeParams | None = None, timeout: float | None = None,
                           **fields: Any) -> m.SetTargetGReply:
        """Program each cell to its target conductance (S) within `tolerance` (relative).

        Args:
            targets: one per cell in visiting order (a 2-D array for the whole array is
                flattened row-major), or one value for all.
            scheme: IdenticalPulse (default: the reference per-range voltages) or IncrementalStep.
            fields: SetTargetGRequest's tolerance, max_iterations (verify reads per cell; 0 uses
                the controller's VERIFY_LOOP_MAX), v_read, vg_read, width, vg_set, vg_reset.

        Returns:
            g (S, last verify read), iterations (pulses applied), converged (bool), per cell.
        """
        sel = as_cells(cells)
        req = m.SetTargetGRequest(sel, _per_cell_targets(targets, self._n_cells(sel)),
                                  scheme=scheme or m.IdenticalPulse(), **fields)
        return await self.request(req, m.SetTargetGReply, timeout=timeout)

    async def verify(self, cells: CellsLike, targets: np.ndarray | float, *,
                     timeout: float | None = None, **fields: Any) -> m.VerifyReply:
        """Read each cell (mean of `averages` reads) and compare with its target; passed, g (S).
        `fields`: VerifyRequest's tolerance, v_read, vg_read, averages."""
        sel = as_cells(cells)
        req = m.VerifyRequest(sel, _per_cell_targets(targets, self._n_cells(sel)), **fields)
        return await self.request(req, m.VerifyReply, timeout=timeout)

    # ------------------------------------------------------------------ emulator only

    async def emu_advance(self, seconds: float) -> float:
        """Move the emulator's virtual clock forward by `seconds` (s); returns the new time, s."""
        return (await self.request(m.EmuAdvanceRequest(seconds), m.EmuAdvanceReply)).time

    async def emu_inject_fault(self, cells: CellsLike, kind: Fault | str) -> None:
        """Make cells stuck_hrs / stuck_lrs / no_form, or clear the fault ("none")."""
        fault = Fault[kind.upper()] if isinstance(kind, str) else Fault(kind)
        await self.request(m.EmuInjectFaultRequest(as_cells(cells), fault), m.EmuInjectFaultReply)

    async def emu_reseed(self, seed: int) -> None:
        """New cycle-to-cycle random stream (device parameters kept)."""
        await self.request(m.EmuReseedRequest(seed), m.EmuReseedReply)

    async def emu_pulse_counts(self, cells: CellsLike = None) -> np.ndarray:
        """Pulses each cell has received since the emulator started (1-D, visiting order)."""
        return (await self.request(m.EmuPulseCountsRequest(as_cells(cells)), m.EmuPulseCountsReply)).counts


@contextlib.asynccontextmanager
async def open_chip(address: str, **kwargs: object) -> AsyncIterator[ChipClient]:
    """`async with open_chip("tcp://127.0.0.1:5025") as chip:` — connect, and close on exit."""
    client = await ChipClient.connect(address, **kwargs)  # type: ignore[arg-type]
    try:
        yield client
    finally:
        await client.close()


def _per_cell_targets(targets: np.ndarray | float, n: int) -> np.ndarray:
    t = np.asarray(targets, dtype=float)
    if t.ndim == 0:
        return np.full(n, float(t))
    t = t.reshape(-1)
    if t.size != n:
        raise ValueError(f"targets has {t.size} values for {n} selected cells")
    return t


