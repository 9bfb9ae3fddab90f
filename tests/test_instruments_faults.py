"""Faults: an instrument dies mid-sweep, a connection drops, a query goes unanswered."""
from __future__ import annotations

import asyncio
import contextlib
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from emulator.instruments import InstrumentBench, InstrumentServer
from emulator.instruments.keithley2450 import MAX_READINGS
from emulator.instruments.server import (
    LOG_ENTRIES,
    LOG_ENTRY_CHARS,
    MAX_CONNECTIONS,
    MAX_MESSAGE,
    LineReader,
)
from labctl.core.limits import SafetyLimits
from labctl.instruments import (
    InstrumentConnectionError,
    Keithley2450,
    KeysightB2900,
    Station,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "station-emulated.toml"
LIMITS = SafetyLimits(max_abs_voltage=3.6, max_compliance=1e-3)
BENCH_SEED = 9  # the conftest bench's array


async def test_server_dies_mid_sweep_then_reconnect(bench: InstrumentBench) -> None:
    server = bench["smu_2450"]
    async with Keithley2450(server.resource, name="smu_bitline", limits=LIMITS, timeout=2.0) as smu:
        ch = smu.channel
        await ch.current_limit.set(1e-4)
        server.die_on = ":INIT"
        with pytest.raises(InstrumentConnectionError) as info:
            await ch.staircase_sweep(0.0, 1.0, 11)
        message = str(info.value)
        assert "smu_bitline" in message and server.resource in message
        assert not server.running
        # Calls fail fast and clearly until the link is rebuilt.
        with pytest.raises(InstrumentConnectionError, match="reconnect"):
            await ch.source_voltage.get()
        server.die_on = None
        await server.restart()
        await smu.reconnect()
        assert await ch.output.get() is False
        with pytest.raises(Exception, match="only after current_limit"):
            await ch.output.set(True)  # the cache was dropped: compliance must be set again
        await ch.current_limit.set(1e-4)
        result = await ch.staircase_sweep(0.0, 0.5, 6)
        assert len(result.currents) == 6
    assert server.instrument.output is False


async def test_dropped_connection_reconnect_switches_output_off(bench: InstrumentBench) -> None:
    server = bench["smu_b2902a"]
    async with KeysightB2900(server.resource, name="smu", limits=LIMITS, timeout=2.0) as smu:
        await smu[1].current_limit.set(1e-4)
        await smu[1].source_voltage.set(0.2)
        await smu[1].output.set(True)
        state = server.instrument.channels[1]
        assert state.output is True
        server.drop_connections()  # cable pulled: the instrument keeps sourcing
        with pytest.raises(InstrumentConnectionError, match="smu"):
            await smu[1].measure_current()
        assert state.output is True
        await smu.reconnect()
        assert state.output is False  # reconnect puts every output in its safe state
        assert server.instrument.channels[2].output is False


async def test_unanswered_query_times_out_naming_instrument(bench: InstrumentBench) -> None:
    server = bench["smu_2450"]
    async with Keithley2450(server.resource, name="smu", timeout=0.3) as smu:
        with pytest.raises(InstrumentConnectionError, match=r"smu.*':FROB\?'.*timeout"):
            await smu.ask(":FROB?")
        await smu.reconnect()  # a late reply cannot be told from the next one: start afresh
        assert (await smu.ask("*IDN?")).startswith("KEITHLEY")
    assert any(":FROB?" in m for m in server.received)


async def test_unknown_query_is_in_the_error_queue(bench: InstrumentBench) -> None:
    server = bench["smu_2450"]
    async with Keithley2450(server.resource, name="smu", timeout=0.3) as smu:
        # The unknown query gets no reply of its own; the error query in the same message
        # answers, with the error the unknown header queued.
        reply = await smu.ask(":FROB?;:SYST:ERR?")
        assert reply.startswith('-113,"Undefined header')
        assert await smu.read_errors() == []


async def test_station_exit_after_instrument_death_turns_the_rest_off(bench: InstrumentBench) -> None:
    arr = bench.array
    arr.sweep(0, 0, np.linspace(0, 3.6, 37), vg=1.2)
    with pytest.raises(InstrumentConnectionError, match="pg_33522b"):
        async with Station.from_file(EXAMPLE, dict(bench.resources())) as station:
            await station.pulse(0, 0, 1.35, 2.5e-6, vg=1.4)
            gate = bench["smu_b2902a"].instrument.channels[2]
            assert gate.output is True
            bench["pg_33522b"].die_on = "*TRG"
            await station.pulse(0, 0, 1.35, 2.5e-6, vg=1.4)
    assert gate.output is False
    assert bench["smu_2450"].instrument.output is False
    assert bench.bench.closed == set()


# --- careless and hostile input (issue 20, items 9 and 10) ---------------------------------------

INSTRUMENTS = ["smu_2450", "smu_b2902a", "pg_33522b", "pg_81160a", "matrix_707b"]


class RawSocket:
    """A bare TCP client that sends bytes as given and reads LF-terminated replies."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, server: InstrumentServer) -> RawSocket:
        return cls(*await asyncio.open_connection(server.host, server.port))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def ask(self, query: str) -> str:
        await self.send(query.encode() + b"\n")
        return (await asyncio.wait_for(self.reader.readline(), 5.0)).decode().rstrip("\n")

    async def error(self, server: InstrumentServer) -> str:
        """The next queued error, through the instrument's own error query."""
        tsp = server.name == "matrix_707b"
        return await self.ask("print(errorqueue.next())" if tsp else ":SYST:ERR?")

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


@pytest.mark.parametrize("name", INSTRUMENTS)
@pytest.mark.parametrize("payload", [b"*IDN?\xff\xfe\n", b":SOUR:VOLT 1 \xb5V\n",
                                     ":SOUR:VOLT 1 µV\n".encode(), b"\x00\x01*RST\r\n"])
async def test_invalid_characters_answered_through_error_queue(bench: InstrumentBench, name: str,
                                                               payload: bytes) -> None:
    server = bench[name]
    client = await RawSocket.open(server)
    try:
        await client.send(payload)
        assert "Invalid character" in await client.error(server)
        assert (await client.ask("*IDN?")).startswith(server.instrument.idn.split(",")[0])
    finally:
        await client.close()


@pytest.mark.parametrize("name", INSTRUMENTS)
async def test_over_long_line_discarded_with_too_much_data(bench: InstrumentBench, name: str) -> None:
    server = bench[name]
    client = await RawSocket.open(server)
    try:
        chunk = b"A" * (1 << 16)
        for _ in range(3 * MAX_MESSAGE // len(chunk)):  # 3 MiB without a terminator
            await client.send(chunk)
        await client.send(b"\n")
        assert "Too much data" in await client.error(server)
        assert (await client.ask("*IDN?")) == server.instrument.idn
    finally:
        await client.close()


def test_line_reader_never_holds_more_than_its_limit() -> None:
    lines = LineReader(limit=10)
    assert lines.feed(b"abc\nde") == [b"abc"]
    assert lines.feed(b"f" * 20) == [None]  # reported once, as soon as it is too long
    assert lines.buffered == 0
    assert lines.feed(b"ggg\nok\n") == [b"ok"]  # the rest of the long line is dropped
    assert lines.feed(b"0123456789\n") == [b"0123456789"]  # exactly the limit is accepted


async def test_received_log_is_bounded(bench: InstrumentBench) -> None:
    server = bench["matrix_707b"]
    client = await RawSocket.open(server)
    try:
        message = b"print(" + b"x" * 1_000_000 + b")\n"  # a 1 MB message is within MAX_MESSAGE
        for _ in range(20):
            await client.send(message)
        for _ in range(LOG_ENTRIES + 10):
            await client.send(b"*CLS\n")
        assert (await client.ask("*IDN?")) == server.instrument.idn
    finally:
        await client.close()
    kept = list(server.received)
    assert len(kept) == LOG_ENTRIES
    assert len(server.received) == 20 + LOG_ENTRIES + 10 + 1  # len() counts every message
    assert sum(map(len, kept)) <= LOG_ENTRIES * (LOG_ENTRY_CHARS + 40)
    assert kept[-1] == "*IDN?"


async def test_connections_beyond_the_bound_are_refused(bench: InstrumentBench) -> None:
    server = bench["smu_2450"]
    clients = [await RawSocket.open(server) for _ in range(MAX_CONNECTIONS)]
    try:
        assert (await clients[-1].ask("*IDN?")).startswith("KEITHLEY")
        extra = await RawSocket.open(server)
        assert await asyncio.wait_for(extra.reader.read(), 5.0) == b""  # closed at once
        await extra.close()
        await clients[0].close()
        await asyncio.sleep(0.05)
        again = await RawSocket.open(server)
        assert (await again.ask("*IDN?")).startswith("KEITHLEY")
        clients[0] = again
    finally:
        for client in clients:
            await client.close()


def test_2450_sweep_beyond_its_buffer_refused_before_allocating(bench: InstrumentBench) -> None:
    inst = bench["smu_2450"].instrument
    tracemalloc.start()
    try:
        inst.handle(":SOUR:SWE:VOLT:LIN 0,0.1,1000000,0,100")
        inst.handle(":SOUR:SWE:VOLT:LIN:STEP 0,1,1e-9")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000  # B: nothing of the sweep was built
    assert inst.handle(":SYST:ERR?").startswith('-225,"Out of memory')
    assert inst.handle(":SYST:ERR?").startswith('-222,"Data out of range')
    assert inst.sweep_points is None
    inst.handle(f":SOUR:SWE:VOLT:LIN 0,0.1,{MAX_READINGS}")  # the buffer's capacity is accepted
    assert inst.handle(":SYST:ERR?").startswith("0,")
    assert len(inst.sweep_points) == MAX_READINGS
