"""The emulated chip controller under abuse: garbage, half frames, disconnects, bad parameters,
lost replies and competing hosts. Real loopback sockets and pseudo-terminals, no mocks."""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np
import pytest

import emulator
from emulator.controller import ChipController, PtyServer, handlers, serve_tcp
from emulator.controller.core import OUTPUT_HIGH_WATER
from emulator.controller.tcp import MAX_CONNECTIONS
from labctl.emulated import reference_pulses
from labctl.protocols import messages as m
from labctl.protocols.cells import Cells
from labctl.protocols.client import ChipClient
from labctl.protocols.codec import Frame, FrameDecoder
from labctl.protocols.codes import Command, Flag, RunState, Status
from labctl.protocols.errors import CommandError

pytestmark = pytest.mark.timeout(60)


@dataclass
class Emu:
    array: emulator.Array
    controller: ChipController
    host: str
    port: int
    pty: PtyServer

    @property
    def address(self) -> str:
        return f"tcp://{self.host}:{self.port}"


@pytest.fixture
async def emu() -> AsyncIterator[Emu]:
    array = emulator.Array(8, 4, seed=11)
    controller = ChipController(array)
    server = await serve_tcp(controller, "127.0.0.1", 0)
    pty = PtyServer(controller)
    yield Emu(array, controller, "127.0.0.1", server.sockets[0].getsockname()[1], pty)
    await server.close()
    pty.close()
    await controller.aclose()


class Raw:
    """A bare TCP connection that speaks frames by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.decoder = FrameDecoder()
        self.frames: list[Frame] = []
        self.next_id = 100

    @classmethod
    async def open(cls, emu: Emu) -> Raw:
        return cls(*await asyncio.open_connection(emu.host, emu.port))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def request(self, msg: m.Message | None = None, *, command: int | None = None,
                      payload: bytes | None = None, request_id: int | None = None) -> Frame:
        if request_id is None:
            self.next_id += 1
            request_id = self.next_id
        cmd = command if command is not None else msg.command  # type: ignore[union-attr]
        body = payload if payload is not None else msg.pack()  # type: ignore[union-attr]
        await self.send(Frame(cmd, request_id, body).encode())
        return await self.reply(request_id)

    async def reply(self, request_id: int | None = None, timeout: float = 5.0) -> Frame:
        async def wait() -> Frame:
            while True:
                for k, frame in enumerate(self.frames):
                    if request_id is None or frame.request_id == request_id:
                        return self.frames.pop(k)
                data = await self.reader.read(1 << 16)
                assert data, "controller closed the connection"
                self.frames += [e for e in self.decoder.feed(data) if isinstance(e, Frame)]
        return await asyncio.wait_for(wait(), timeout)

    async def hello(self) -> Frame:
        return await self.request(m.HelloRequest(client="raw"))

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


async def test_garbage_is_answered_with_bad_frame_and_the_server_keeps_serving(emu: Emu) -> None:
    raw = await Raw.open(emu)
    garbage = np.random.default_rng(104).integers(0, 256, 3050, dtype=np.uint8).tobytes()
    await raw.send(garbage[:3000] + b"\xa5\x5a" + garbage[3000:])
    err = await raw.reply(0)
    assert err.status == Status.BAD_FRAME and err.flags & Flag.RESPONSE
    assert "did not form a valid frame" in m.unpack_error(err.payload)
    await asyncio.sleep(0.6)  # let the inter-byte timeout flush any half header in the junk
    raw.frames.clear()
    assert (await raw.hello()).status == Status.OK
    assert (await raw.request(m.InfoRequest())).status == Status.OK
    await raw.close()


async def test_bad_crc_gets_an_error_frame_with_the_request_id_and_no_pulse(emu: Emu) -> None:
    raw = await Raw.open(emu)
    await raw.hello()
    wire = bytearray(Frame(Command.PULSE, 7, m.PulseRequest(Cells.single(1, 1), 1.3, 1.4).pack()).encode())
    wire[25] ^= 0x10
    before = emu.array.pulse_counts()
    await raw.send(bytes(wire))
    err = await raw.reply(7)
    assert err.status == Status.BAD_CRC and err.command == Command.PULSE
    assert np.array_equal(emu.array.pulse_counts(), before)
    await raw.close()


async def test_half_frame_then_disconnect_leaves_the_server_usable(emu: Emu) -> None:
    before = emu.array.snapshot()
    raw = await Raw.open(emu)
    await raw.hello()
    wire = Frame(Command.PULSE, 9, m.PulseRequest(Cells.all(), 1.3, 1.4).pack()).encode()
    await raw.send(wire[: len(wire) // 2])
    raw.writer.transport.abort()  # vanish mid-frame, no FIN handshake
    await asyncio.sleep(0.05)
    async with await ChipClient.connect(emu.address) as client:  # ownership was released
        assert (await client.status()).state == RunState.IDLE
    assert emu.array.snapshot() == before


async def test_half_frame_times_out_and_the_next_frame_is_served(emu: Emu) -> None:
    raw = await Raw.open(emu)
    await raw.hello()
    wire = Frame(Command.INFO, 5).encode()
    await raw.send(wire[:10])
    err = await raw.reply(0, timeout=2.0)  # inter-byte timeout: 0.5 s
    assert err.status == Status.BAD_FRAME
    assert (await raw.request(m.InfoRequest())).status == Status.OK
    # A truncated frame with an intact header followed at once by a good frame: recovered.
    pulse = Frame(Command.PULSE, 6, m.PulseRequest(Cells.all(), 1.3, 1.4).pack()).encode()
    await raw.send(pulse[:30] + Frame(Command.INFO, 8).encode())
    assert (await raw.reply(8, timeout=2.0)).status == Status.OK
    assert int(emu.array.pulse_counts().sum()) == 0
    await raw.close()


@pytest.mark.parametrize(("command", "payload", "status"), [
    (Command.INFO, b"", Status.NO_SESSION),
])
async def test_commands_need_a_session(emu: Emu, command: int, payload: bytes, status: Status) -> None:
    raw = await Raw.open(emu)
    assert (await raw.request(command=command, payload=payload)).status == status
    await raw.close()


async def test_unknown_command_bad_payload_and_version(emu: Emu) -> None:
    raw = await Raw.open(emu)
    bad_version = await raw.request(m.HelloRequest(5, 7))
    assert bad_version.status == Status.UNSUPPORTED_VERSION
    assert "1..1" in m.unpack_error(bad_version.payload)
    await raw.hello()
    assert (await raw.request(command=0x7E, payload=b"")).status == Status.UNKNOWN_COMMAND
    short = await raw.request(command=Command.PULSE, payload=b"\x01\x00")
    assert short.status == Status.BAD_PAYLOAD and "cells.row" in m.unpack_error(short.payload)
    # Frames marked as replies are never answered (two controllers must not echo errors).
    await raw.send(Frame(Command.INFO, 55, flags=Flag.RESPONSE).encode())
    assert (await raw.request(m.StatusRequest())).status == Status.OK
    assert all(f.request_id != 55 for f in raw.frames)
    await raw.close()


OUT_OF_RANGE = [
    (m.PulseRequest(Cells.single(0, 0), 4.01, 1.4, 1e-6), Status.OUT_OF_RANGE, "v = 4.01 V"),
    (m.PulseRequest(Cells.single(0, 0), -4.5, 3.3, 1e-6), Status.OUT_OF_RANGE, "v = -4.5 V"),
    (m.PulseRequest(Cells.single(0, 0), 1.3, 1.4, 0.0), Status.OUT_OF_RANGE, "width = 0 s"),
    (m.PulseRequest(Cells.single(0, 0), 1.3, 1.4, -2e-6), Status.OUT_OF_RANGE, "width = -2e-06 s"),
    (m.PulseRequest(Cells.list([0, 8], [0, 0]), 1.3, 1.4, 1e-6), Status.BAD_CELLS, "(8, 0) outside"),
    (m.PulseRequest(Cells.region(6, 2, 3, 2), 1.3, 1.4, 1e-6), Status.BAD_CELLS, "outside the 8 x 4"),
    (m.FormRequest(Cells.all(), v_stop=4.2), Status.OUT_OF_RANGE, "v_stop = 4.2 V"),
    (m.SweepRequest(Cells.all(), 1.2, 1e-3, np.array([0.0, 1.0, 9.0])), Status.OUT_OF_RANGE, "voltages[2]"),
    (m.SetTargetGRequest(Cells.single(0, 0), np.array([2e-5]),
                         scheme=m.IdenticalPulse(np.array([0.0]), np.array([1.0]), np.array([4.5]),
                                                 np.array([-1.3]))), Status.OUT_OF_RANGE, "v_set"),
    (m.SetTargetGRequest(Cells.single(0, 0), np.array([2e-5]), width=0.0), Status.OUT_OF_RANGE, "width"),
    (m.SetTargetGRequest(Cells.single(9, 9), np.array([2e-5])), Status.BAD_CELLS, "outside"),
    (m.VerifyRequest(Cells.single(0, 0), np.array([2e-5]), 0.02, 0.0), Status.OUT_OF_RANGE, "v_read"),
]


@pytest.mark.parametrize(("msg", "status", "match"), OUT_OF_RANGE,
                         ids=[f"{type(x[0]).__name__}-{x[2]}" for x in OUT_OF_RANGE])
async def test_out_of_range_is_refused_before_any_pulse(emu: Emu, msg: m.Message, status: Status,
                                                        match: str) -> None:
    async with await ChipClient.connect(emu.address, validate=False) as client:
        counts, state = emu.array.pulse_counts(), emu.array.snapshot()
        with pytest.raises(CommandError) as err:
            await client.request(msg, m.REPLIES[msg.command])
        assert err.value.status == status
        assert match in err.value.message
        assert np.array_equal(emu.array.pulse_counts(), counts)
        assert emu.array.snapshot() == state


async def test_client_refuses_out_of_range_before_sending(emu: Emu) -> None:
    async with await ChipClient.connect(emu.address) as client:
        executed = emu.controller.executed
        with pytest.raises(ValueError, match=r"v = 5 V outside \[-4, 4\] V"):
            await client.pulse((0, 0), 5.0)
        assert emu.controller.executed == executed


async def test_retransmitted_request_is_answered_from_the_cache(emu: Emu) -> None:
    raw = await Raw.open(emu)
    await raw.hello()
    wire = Frame(Command.PULSE, 42, m.PulseRequest(Cells.list([0, 3], [1, 2]), 1.3, 1.4, 2.5e-6, 3).pack()).encode()
    await raw.send(wire)
    first = await raw.reply(42)
    await raw.send(wire)  # the host never saw `first`: it retransmits the same bytes
    second = await raw.reply(42)
    assert first.status == second.status == Status.OK
    assert first.payload == second.payload and second.flags & Flag.CACHED
    counts = emu.array.pulse_counts()
    assert counts[0, 1] == counts[3, 2] == 3 and counts.sum() == 6
    # Same id, different content: a new request, executed.
    again = Frame(Command.PULSE, 42, m.PulseRequest(Cells.single(5, 0), 1.3, 1.4).pack()).encode()
    await raw.send(again)
    assert not (await raw.reply(42)).flags & Flag.CACHED
    assert emu.array.pulse_counts().sum() == 7
    await raw.close()


class LossyProxy:
    """TCP proxy that drops the first reply frame of a given command (a lost reply)."""

    def __init__(self, target: Emu, drop: Command) -> None:
        self.target, self.drop, self.dropped = target, drop, 0
        self.requests: list[Frame] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"tcp://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _handle(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        s_reader, s_writer = await asyncio.open_connection(self.target.host, self.target.port)

        async def upstream() -> None:
            decoder = FrameDecoder()
            while data := await c_reader.read(1 << 16):
                self.requests += [e for e in decoder.feed(data) if isinstance(e, Frame)]
                s_writer.write(data)
            s_writer.close()

        async def downstream() -> None:
            decoder = FrameDecoder()
            while data := await s_reader.read(1 << 16):
                for event in decoder.feed(data):
                    assert isinstance(event, Frame)
                    if event.command == self.drop and not self.dropped:
                        self.dropped += 1
                        continue
                    c_writer.write(event.encode())
            c_writer.close()

        await asyncio.gather(upstream(), downstream(), return_exceptions=True)


async def test_dropped_reply_then_retransmit_applies_the_pulses_exactly_once(emu: Emu) -> None:
    proxy = LossyProxy(emu, Command.PULSE)
    address = await proxy.start()
    async with await ChipClient.connect(address, timeout=0.3) as client:
        applied = await client.pulse(Cells.region(2, 1, 2, 2), 1.3, vg=1.4, count=5)
    assert applied == 20 and proxy.dropped == 1
    pulses = [f for f in proxy.requests if f.command == Command.PULSE]
    assert len(pulses) == 2 and pulses[0] == pulses[1]  # retransmitted with the same request id
    counts = emu.array.pulse_counts()
    assert counts[2:4, 1:3].tolist() == [[5, 5], [5, 5]] and counts.sum() == 20
    assert proxy.server is not None
    proxy.server.close()


async def test_second_client_gets_busy_until_the_first_leaves(emu: Emu) -> None:
    first = await ChipClient.connect(emu.address)
    raw = await Raw.open(emu)
    busy = await raw.hello()
    assert busy.status == Status.BUSY and "owned by tcp" in m.unpack_error(busy.payload)
    assert (await raw.request(m.PulseRequest(Cells.all(), 1.3, 1.4))).status == Status.BUSY
    with pytest.raises(CommandError) as err:
        await ChipClient.connect(emu.pty.path)  # the serial line is a second client too
    assert err.value.status == Status.BUSY
    assert emu.array.pulse_counts().sum() == 0
    await first.close()  # BYE releases the controller
    assert (await raw.hello()).status == Status.OK
    await raw.close()


async def test_abort_stops_a_long_command_and_status_reports_progress(emu: Emu) -> None:
    async with await ChipClient.connect(emu.address) as client:
        task = asyncio.create_task(client.pulse(Cells.all(), 1.3, vg=1.4, count=100_000, timeout=5.0))
        for _ in range(200):
            status = await client.status()
            if status.state == RunState.RUNNING and status.done > 0:
                break
            await asyncio.sleep(0.01)
        assert status.running_command == Command.PULSE and status.total == 32 * 100_000
        raw = await Raw.open(emu)  # meanwhile another host is still refused
        assert (await raw.hello()).status == Status.BUSY
        await raw.close()
        aborted = await client.abort()
        assert aborted.aborted and aborted.aborted_command == Command.PULSE
        with pytest.raises(CommandError) as err:
            await task
        assert err.value.status == Status.ABORTED
        assert (await client.status()).state == RunState.IDLE
        n = int(emu.array.pulse_counts().sum())
        assert 0 < n < 32 * 100_000 and n % 32 == 0  # whole pulse rounds only
        assert (await client.abort()).aborted is False


async def test_commands_during_a_long_command_get_in_progress(emu: Emu) -> None:
    raw = await Raw.open(emu)
    await raw.hello()
    await raw.send(Frame(Command.PULSE, 1, m.PulseRequest(Cells.all(), 1.3, 1.4, 1e-6, 100_000).pack()).encode())
    await asyncio.sleep(0.05)
    busy = await raw.request(m.ReadRequest(Cells.single(0, 0)), request_id=2)
    assert busy.status == Status.IN_PROGRESS and "PULSE (request 1) is running" in m.unpack_error(busy.payload)
    assert (await raw.request(m.ResetRequest(), request_id=3)).status == Status.OK
    assert (await raw.reply(1)).status == Status.ABORTED
    assert (await raw.request(m.ReadRequest(Cells.single(0, 0)), request_id=2)).status == Status.OK
    await raw.close()


async def test_pty_hangup_releases_the_controller(emu: Emu) -> None:
    serial_client = await ChipClient.connect(emu.pty.path)
    assert serial_client.shape == (8, 4)
    await serial_client.close(bye=False)  # the host just closes the port
    for _ in range(50):
        raw = await Raw.open(emu)
        reply = await raw.hello()
        await raw.close()
        if reply.status == Status.OK:
            break
        await asyncio.sleep(0.05)
    assert reply.status == Status.OK


# --- bounded buffers (issue 20, item 10) ---------------------------------------------------------


async def test_unread_cached_replies_do_not_grow_the_controller() -> None:
    """500 retransmissions of a cached 128 KiB READ_ARRAY reply, never read: the controller acts on
    requests only while the host takes its replies, so it holds about OUTPUT_HIGH_WATER."""
    array = emulator.Array(128, 128, seed=5)
    controller = ChipController(array)
    server = await serve_tcp(controller, "127.0.0.1", 0)
    try:
        emu = Emu(array, controller, "127.0.0.1", server.sockets[0].getsockname()[1], None)  # type: ignore[arg-type]
        raw = await Raw.open(emu)
        await raw.hello()
        wire = Frame(Command.READ_ARRAY, 7, m.ReadArrayRequest(Cells.all()).pack()).encode()
        first = await raw.request(m.ReadArrayRequest(Cells.all()), request_id=7)
        reply_size = len(first.encode())
        await raw.send(wire * 500)  # the host stops reading now
        await asyncio.sleep(0.5)
        (writer,) = server._connections.values()
        (link,) = [controller.owner]
        held = writer.transport.get_write_buffer_size()
        assert held <= OUTPUT_HIGH_WATER + reply_size
        assert link is not None and len(link.backlog) > 0  # the rest waits, as requests
        assert controller.executed == 1
        replies = [await raw.reply(7, timeout=20.0) for _ in range(500)]  # now the host reads
        assert all(r.flags & Flag.CACHED and r.payload == first.payload for r in replies)
        assert not link.backlog
        assert (await raw.request(m.StatusRequest())).status == Status.OK
        await raw.close()
    finally:
        await server.close()
        await controller.aclose()


async def test_connections_beyond_the_bound_are_closed(emu: Emu) -> None:
    raws = [await Raw.open(emu) for _ in range(MAX_CONNECTIONS)]
    try:
        assert (await raws[0].hello()).status == Status.OK
        extra = await Raw.open(emu)
        assert await asyncio.wait_for(extra.reader.read(), 5.0) == b""
        await extra.close()
    finally:
        for raw in raws:
            await raw.close()
    await asyncio.sleep(0.05)
    again = await Raw.open(emu)
    assert (await again.hello()).status == Status.OK
    await again.close()


# --- ABORT latency (issue 20, item 10) -----------------------------------------------------------


def _formed(rows: int, cols: int, seed: int) -> emulator.Array:
    array = emulator.Array(rows, cols, seed=seed)
    rr, cc = np.divmod(np.arange(rows * cols), cols)
    array.sweep(rr, cc, np.arange(361) * 0.01, vg=1.2, dwell=1e-3)
    array.sweep(rr, cc, np.linspace(0.0, -1.4, 141), vg=3.3, dwell=1e-3)
    return array


@pytest.mark.parametrize("formed", [False, True])
async def test_abort_of_set_target_g_at_a_million_iterations_is_prompt(formed: bool) -> None:
    """Pristine cells never converge (pulses cannot switch them): every cell runs max_iterations
    verify reads, so one call on 64 cells used to keep the controller locked for seconds."""
    array = _formed(16, 16, seed=2) if formed else emulator.Array(16, 16, seed=2)
    controller = ChipController(array)
    server = await serve_tcp(controller, "127.0.0.1", 0)
    try:
        address = f"tcp://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        async with await ChipClient.connect(address) as client:
            task = asyncio.create_task(client.set_target_g(
                Cells.all(), 50e-6, tolerance=1e-6, max_iterations=1_000_000, timeout=120.0))
            for _ in range(500):
                if (await client.status()).state == RunState.RUNNING:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.3)
            t0 = time.perf_counter()
            assert (await client.abort()).aborted
            with pytest.raises(CommandError) as err:
                await task
            latency = time.perf_counter() - t0
            assert err.value.status == Status.ABORTED
            assert latency < 0.25  # s; docs/protocol.md promises about 50 ms (margin for CI load)
            assert (await client.status()).state == RunState.IDLE
            assert (await client.read(Cells.single(0, 0))).size == 1
    finally:
        await server.close()
        await controller.aclose()


async def test_set_target_g_in_read_chunks_is_bit_identical_to_one_program_call(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny chunks force every cell's loop into many calls with the loop's pulse in between."""
    monkeypatch.setattr(handlers, "VERIFY_CHUNK_SECONDS", 2e-5)
    monkeypatch.setattr(handlers, "FIRST_WORK", 64)
    array = _formed(8, 8, seed=4)
    start = array.snapshot()
    targets = np.random.default_rng(3).uniform(10e-6, 90e-6, 64)
    rr, cc = np.divmod(np.arange(64), 8)
    expected = array.program(rr, cc, targets, 0.001, max_iterations=300, **reference_pulses(targets))
    state = array.snapshot()  # every cell's conductance and random-stream position
    assert 0 < expected.converged.sum() < 64  # some cells converge, some run out of reads
    array.restore(start)
    controller = ChipController(array)
    server = await serve_tcp(controller, "127.0.0.1", 0)
    try:
        address = f"tcp://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        async with await ChipClient.connect(address) as client:
            got = await client.set_target_g(None, targets, tolerance=0.001, max_iterations=300)
    finally:
        await server.close()
        await controller.aclose()
    assert np.array_equal(got.g, expected.g)
    assert np.array_equal(got.iterations, expected.iterations)
    assert np.array_equal(got.converged, expected.converged)
    assert array.snapshot() == state
