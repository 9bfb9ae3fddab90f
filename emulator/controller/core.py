"""The emulated chip controller: sessions, ownership, reply cache and command dispatch.

Transport-independent: a transport (TCP connection, pseudo-terminal) creates a `Link`, feeds it
the bytes it receives and gives it a `send` function. Everything here runs on the event loop
except the array work, which runs in one worker thread so that STATUS and ABORT stay responsive
while SET_TARGET_G's loop runs in C.

Rules (docs/protocol.md, "Sessions"): one link owns the controller from its HELLO until BYE or
disconnect; any frame from another link gets BUSY. Each session keeps a reply cache by request id,
so a retransmitted request is answered from the cache and never executed twice.
"""
from __future__ import annotations

import asyncio
import dataclasses
import importlib.metadata
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from labctl.protocols import messages as m
from labctl.protocols.codec import Frame, FrameDecoder, FramingError, FramingErrorKind
from labctl.protocols.codes import (
    INTER_BYTE_TIMEOUT,
    MAX_PAYLOAD,
    PROTOCOL_VERSION,
    UNSOLICITED_ID,
    Command,
    Flag,
    RunState,
    Status,
)
from labctl.protocols.errors import PayloadError
from labctl.protocols.limits import LimitError, check_request

from emulator.controller.cache import Fingerprint, ReplyCache
from emulator.controller.handlers import HANDLERS, Aborted, Job, Settings, work_units

log = logging.getLogger(__name__)

#: Reply bytes a link may have waiting for its host before the controller stops acting on that
#: link's requests (back-pressure, docs/protocol.md "Bounds"): requests already received wait, and
#: the transport stops reading, so a host that never reads its replies costs at most this plus one
#: reply plus one read of requests.
OUTPUT_HIGH_WATER = 1 << 20

#: Default bound on verify reads per cell (same as emulator.Array.program's default).
DEFAULT_VERIFY_LOOP_MAX = 500
#: Largest PULSE count accepted.
MAX_PULSE_COUNT = 100_000
#: Shortest sweep dwell the emulated array accepts, s (emulator.Array.sweep).
DWELL_MIN = 1e-9

_FRAMING_STATUS = {
    FramingErrorKind.GARBAGE: Status.BAD_FRAME,
    FramingErrorKind.HEADER_CRC: Status.BAD_FRAME,
    FramingErrorKind.TRUNCATED: Status.BAD_FRAME,
    FramingErrorKind.BAD_CRC: Status.BAD_CRC,
    FramingErrorKind.TOO_LARGE: Status.TOO_LARGE,
    FramingErrorKind.UNSUPPORTED_VERSION: Status.UNSUPPORTED_VERSION,
}


class Link:
    """One way in to the controller: a TCP connection or the serial line.

    Args:
        controller: the controller this link talks to.
        name: for messages ("tcp 127.0.0.1:50312", "pty /dev/pts/4").
        send: writes bytes to the host without blocking.
        pending: reply bytes the transport still holds for the host; above OUTPUT_HIGH_WATER the
            link stops acting on requests until the transport calls `resume`.
    """

    def __init__(self, controller: ChipController, name: str, send: Callable[[bytes], None],
                 pending: Callable[[], int] = lambda: 0) -> None:
        self.controller = controller
        self.name = name
        self.send = send
        self.pending = pending
        self.backlog: deque[Frame | FramingError] = deque()  # received, not yet acted on
        self.decoder = FrameDecoder(controller.max_payload)
        self.cache = ReplyCache()
        self.session = False
        self.generation = 0  # bumped by every HELLO; a reply is only delivered to its own session
        self.client = ""
        self.host_max_payload = MAX_PAYLOAD
        self._idle: asyncio.TimerHandle | None = None

    @property
    def blocked(self) -> bool:
        """True while the host has not read OUTPUT_HIGH_WATER bytes of replies: the transport
        should stop reading from it, wait until its output drains, then call `resume`."""
        return self.pending() > OUTPUT_HIGH_WATER

    def feed(self, data: bytes) -> None:
        """Bytes received from the host."""
        self._process(self.decoder.feed(data))

    def resume(self) -> None:
        """The transport's output drained: act on the requests that waited."""
        self._process([])

    def _process(self, events: list[Frame | FramingError]) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        self.backlog.extend(events)
        self.controller.handle_events(self, self.backlog, lambda: self.blocked)
        if self.decoder.buffered:
            # Inter-byte timeout: a half frame must not swallow the next host's first frame.
            self._idle = asyncio.get_running_loop().call_later(INTER_BYTE_TIMEOUT, self._on_idle)

    def _on_idle(self) -> None:
        self._idle = None
        self._process(self.decoder.discard_partial())

    def reset(self) -> None:
        """Forget the session and any partial frame (link lost or hung up)."""
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        self.decoder.discard_partial()
        self.backlog.clear()
        self.session = False
        self.client = ""
        self.cache.clear()

    def lost(self) -> None:
        """The transport closed: release ownership and stop this link's command."""
        self.controller.link_lost(self)


class ChipController:
    """Serves the chip protocol for one emulator.Array.

    Args:
        array: the emulated array (its `lock` is held around every call).
        verify_loop_max: default bound on verify reads per cell of SET_TARGET_G.
        max_payload: largest request payload accepted, B.
    """

    def __init__(self, array, *, verify_loop_max: int = DEFAULT_VERIFY_LOOP_MAX,
                 max_payload: int = MAX_PAYLOAD) -> None:
        self.array = array
        self.max_payload = max_payload
        self.default_verify_loop_max = verify_loop_max
        self.settings = Settings(verify_loop_max)
        self.owner: Link | None = None
        self.job: Job | None = None
        self._job_link: Link | None = None
        self._job_fingerprint: Fingerprint | None = None
        self._job_future: asyncio.Future[tuple[Frame, bytes]] | None = None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chip-controller")
        self.executed = 0  # commands run (not counting cache replays); for tests and logs
        try:
            version = importlib.metadata.version("labctl")
        except importlib.metadata.PackageNotFoundError:
            version = "0"
        self.firmware = f"labctl-emulator {version}"

    # ------------------------------------------------------------------ INFO

    @property
    def info(self) -> m.InfoReply:
        """INFO as currently reported (limits from array.limits and the preset)."""
        arr = self.array
        lim = arr.limits
        p = arr.preset
        # Selector saturation current at the highest gate voltage (alpha-power law, presets.py):
        # the largest compliance the gate can set. The gate can also turn the cell off (0 A).
        isat_max = p.isat_ref * (max(lim.vg_max - p.vt, 0.0) / (p.vg_ref - p.vt)) ** p.alpha_sat
        return m.InfoReply(
            protocol_version=PROTOCOL_VERSION, rows=arr.rows, cols=arr.cols,
            capabilities=m.CAP_EMULATOR, max_payload=self.max_payload,
            verify_loop_max=self.settings.verify_loop_max, v_max=lim.v_max, vg_max=lim.vg_max,
            width_min=lim.width_min, width_max=lim.width_max, dwell_min=DWELL_MIN,
            dwell_max=lim.dwell_max,
            # Reads never disturb an emulated cell, so any bias within v_max is a read.
            v_read_max=lim.v_read_max, compliance_min=0.0, compliance_max=isat_max,
            max_pulse_count=MAX_PULSE_COUNT, max_sweep_points=lim.max_points,
            firmware=self.firmware, model=f"{p.name} {arr.rows}x{arr.cols} seed {arr.seed}")

    # ------------------------------------------------------------------ links

    def new_link(self, name: str, send: Callable[[bytes], None],
                 pending: Callable[[], int] = lambda: 0) -> Link:
        return Link(self, name, send, pending)

    def link_lost(self, link: Link) -> None:
        if self.job is not None and self._job_link is link:
            self.job.abort_event.set()  # the host is gone: stop pulsing at the next safe point
        if self.owner is link:
            self.owner = None
            log.info("%s released the controller", link.name)
        link.reset()

    async def aclose(self) -> None:
        """Stop any running command and the worker thread."""
        if self.job is not None:
            self.job.abort_event.set()
        if self._job_future is not None:
            try:
                await self._job_future
            except Exception:  # noqa: BLE001 - shutting down; the outcome no longer matters
                pass
        self._worker.shutdown(wait=True)

    # ------------------------------------------------------------------ replies

    @staticmethod
    def _reply(frame: Frame | FramingError, status: Status, payload: bytes = b"",
               command: int | None = None, request_id: int | None = None) -> Frame:
        cmd = command if command is not None else getattr(frame, "command", 0) or 0
        rid = request_id if request_id is not None else getattr(frame, "request_id", 0) or 0
        return Frame(cmd, rid, payload, status, Flag.RESPONSE)

    def _refuse(self, link: Link, frame: Frame, status: Status, message: str,
                fingerprint: Fingerprint | None = None) -> None:
        reply = self._reply(frame, status, m.pack_error(message))
        if fingerprint is not None:
            link.cache.store(frame.request_id, fingerprint, reply)
        link.send(reply.encode())

    def _answer(self, link: Link, frame: Frame, msg: m.Message, fingerprint: Fingerprint) -> None:
        reply = self._reply(frame, Status.OK, msg.pack())
        link.cache.store(frame.request_id, fingerprint, reply)
        link.send(reply.encode())

    # ------------------------------------------------------------------ dispatch

    def handle_events(self, link: Link, events: deque[Frame | FramingError],
                      blocked: Callable[[], bool] = lambda: False) -> None:
        """Act on what a link's decoder produced, taking events from the left of `events` until
        it is empty or `blocked()` (the host is not reading its replies)."""
        unsolicited = 0
        while events and not blocked():
            event = events.popleft()
            if isinstance(event, FramingError):
                status = _FRAMING_STATUS[event.kind]
                if event.request_id is None:
                    unsolicited += event.skipped  # one BAD_FRAME per batch, not per byte run
                else:
                    link.send(self._reply(event, status, m.pack_error(event.detail)).encode())
                continue
            try:
                self._handle_frame(link, event)
            except Exception as exc:  # noqa: BLE001 - a bug must not take the server down
                log.exception("%s: internal error handling %r", link.name, event)
                link.send(self._reply(event, Status.INTERNAL, m.pack_error(f"internal error: {exc}")).encode())
        if unsolicited:
            link.send(Frame(0, UNSOLICITED_ID, m.pack_error(
                f"discarded {unsolicited} B that did not form a valid frame"),
                Status.BAD_FRAME, Flag.RESPONSE).encode())

    def _handle_frame(self, link: Link, frame: Frame) -> None:
        if frame.flags & Flag.RESPONSE:
            return  # never answer a reply: two controllers would echo errors forever
        if self.owner is not None and self.owner is not link:
            owner = self.owner
            self._refuse(link, frame, Status.BUSY,
                         f"controller is owned by {owner.name} ({owner.client or 'unnamed'}); "
                         "try again after it sends BYE or disconnects")
            return
        fingerprint = Fingerprint.of(frame.command, frame.payload)
        if link.session:
            cached = link.cache.lookup(frame.request_id, fingerprint)
            if cached is not None:  # flagged so that hosts and tests can tell a replay
                link.send(dataclasses.replace(cached, flags=cached.flags | Flag.CACHED).encode())
                return
            if (self.job is not None and self._job_link is link
                    and self.job.request_id == frame.request_id
                    and self._job_fingerprint == fingerprint):
                return  # retransmission of the running command: its reply follows when it ends
        if frame.command == Command.HELLO:
            self._hello(link, frame, fingerprint)
            return
        if not link.session:
            self._refuse(link, frame, Status.NO_SESSION,
                         "no session: send HELLO first (command set version "
                         f"{PROTOCOL_VERSION})")
            return
        if frame.command == Command.STATUS:
            link.send(self._reply(frame, Status.OK, self._status().pack()).encode())
            return
        if frame.command in (Command.ABORT, Command.RESET, Command.BYE):
            self._immediate(link, frame, fingerprint)
            return
        if self.job is not None:
            self._refuse(link, frame, Status.IN_PROGRESS,
                         f"{Command(self.job.command).name} (request {self.job.request_id}) is "
                         f"running, {self.job.done}/{self.job.total} done; wait for its reply, "
                         "or send ABORT")
            return
        try:
            command = Command(frame.command)
        except ValueError:
            command = None
        if command is None or command not in m.REQUESTS:
            self._refuse(link, frame, Status.UNKNOWN_COMMAND,
                         f"command = 0x{frame.command:02x} is not defined", fingerprint)
            return
        try:
            req = m.decode_request(command, frame.payload)
        except PayloadError as exc:
            self._refuse(link, frame, Status.BAD_PAYLOAD, str(exc), fingerprint)
            return
        if command == Command.INFO:
            self._answer(link, frame, self.info, fingerprint)
            return
        try:
            idx = check_request(req, self.info, link.host_max_payload)
        except LimitError as exc:
            self._refuse(link, frame, exc.status, f"{command.name}: {exc}", fingerprint)
            return
        if command == Command.VERIFY_LOOP_MAX:
            assert isinstance(req, m.VerifyLoopMaxRequest)
            if req.value is not None:
                self.settings.verify_loop_max = req.value
            self._answer(link, frame, m.VerifyLoopMaxReply(self.settings.verify_loop_max), fingerprint)
            return
        self._start_job(link, frame, fingerprint, req, idx)

    def _hello(self, link: Link, frame: Frame, fingerprint: Fingerprint) -> None:
        try:
            req = m.HelloRequest.unpack(frame.payload)
        except PayloadError as exc:
            self._refuse(link, frame, Status.BAD_PAYLOAD, str(exc))
            return
        assert isinstance(req, m.HelloRequest)
        if not req.min_version <= PROTOCOL_VERSION <= req.max_version:
            self._refuse(link, frame, Status.UNSUPPORTED_VERSION,
                         f"host speaks versions {req.min_version}..{req.max_version}, controller "
                         f"speaks {PROTOCOL_VERSION}..{PROTOCOL_VERSION}")
            return
        if self.job is not None:
            self._refuse(link, frame, Status.IN_PROGRESS,
                         f"{Command(self.job.command).name} is still running; ABORT it first")
            return
        link.cache.clear()  # a new session: request ids start over
        link.session = True
        link.generation += 1
        link.client = req.client
        link.host_max_payload = req.max_payload or MAX_PAYLOAD
        self.owner = link
        log.info("%s: session opened by %r", link.name, req.client)
        self._answer(link, frame, m.HelloReply(PROTOCOL_VERSION, self.max_payload, self.firmware),
                     fingerprint)

    def _status(self) -> m.StatusReply:
        job = self.job
        if job is None:
            return m.StatusReply(RunState.IDLE)
        state = RunState.ABORTING if job.abort_event.is_set() else RunState.RUNNING
        return m.StatusReply(state, job.command, job.request_id, min(job.done, job.total),
                             job.total, job.elapsed)

    def _immediate(self, link: Link, frame: Frame, fingerprint: Fingerprint) -> None:
        job = self.job
        if frame.command == Command.ABORT:
            if job is None:
                reply: m.Message = m.AbortReply(False)
            else:
                job.abort_event.set()
                reply = m.AbortReply(True, job.command, job.request_id)
            self._answer(link, frame, reply, fingerprint)
        elif frame.command == Command.RESET:
            if job is not None:
                job.abort_event.set()
            self.settings.verify_loop_max = self.default_verify_loop_max
            self._answer(link, frame, m.ResetReply(), fingerprint)
        else:  # BYE
            if job is not None and self._job_link is link:
                job.abort_event.set()
            link.send(self._reply(frame, Status.OK).encode())
            log.info("%s: session closed by %r", link.name, link.client)
            link.session = False
            link.client = ""
            link.cache.clear()
            if self.owner is link:
                self.owner = None

    def _start_job(self, link: Link, frame: Frame, fingerprint: Fingerprint, req: m.Message,
                   idx: tuple | None) -> None:
        handler = HANDLERS[type(req)]
        job = Job(frame.command, frame.request_id, work_units(req, idx))
        self.job, self._job_link, self._job_fingerprint = job, link, fingerprint
        self.executed += 1
        array, settings = self.array, self.settings

        def run() -> tuple[Frame, bytes]:
            """In the worker thread: execute and encode (a 2 MiB reply costs ~1 ms to frame)."""
            try:
                msg = handler(array, req, idx, job, settings)
                reply = self._reply(frame, Status.OK, msg.pack())
            except Aborted as exc:
                reply = self._reply(frame, Status.ABORTED, m.pack_error(
                    f"{Command(frame.command).name} {exc}; the work done so far stays applied"))
            except ValueError as exc:  # the array refused an argument the limits let through
                reply = self._reply(frame, Status.OUT_OF_RANGE, m.pack_error(
                    f"{Command(frame.command).name}: {exc}"))
            except Exception as exc:  # noqa: BLE001 - reported to the host, logged here
                log.exception("%s failed", Command(frame.command).name)
                reply = self._reply(frame, Status.INTERNAL, m.pack_error(
                    f"{Command(frame.command).name}: internal error: {exc!r}"))
            return reply, reply.encode()

        future = asyncio.get_running_loop().run_in_executor(self._worker, run)
        self._job_future = future
        generation = link.generation
        future.add_done_callback(
            lambda f: self._job_finished(link, generation, frame, fingerprint, job, f))

    def _job_finished(self, link: Link, generation: int, frame: Frame, fingerprint: Fingerprint,
                      job: Job, future: asyncio.Future[tuple[Frame, bytes]]) -> None:
        if self.job is job:
            self.job = self._job_link = self._job_fingerprint = None
            self._job_future = None
        if future.cancelled():
            return
        reply, wire = future.result()
        if link.session and link.generation == generation:  # else the host that asked is gone
            link.cache.store(frame.request_id, fingerprint, reply)
            link.send(wire)

