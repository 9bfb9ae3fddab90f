"""Fuzz every emulated server on TCP (issue 20): seeded random bytes, truncated and oversized frames
or lines, invalid UTF-8, huge numbers, NaN/inf literals and unknown commands. Afterwards the server
still answers correctly through the normal driver or protocol client, and the resident memory of
the server process (a real `labctl emulate` subprocess) grew by less than the documented bound.

Each test is bounded in count (FUZZ_MESSAGES) and time (FUZZ_SECONDS); every draw is seeded.
"""
from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import emulator
from emulator.instruments import InstrumentBench
from labctl.instruments import Station
from labctl.protocols import messages as m
from labctl.protocols.cells import Cells
from labctl.protocols.client import ChipClient
from labctl.protocols.codec import Frame, crc32
from labctl.protocols.codes import SYNC, Command

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "station-emulated.toml"
FUZZ_MESSAGES = 400
FUZZ_SECONDS = 6.0
#: RSS growth allowed per fuzz run, B: one connection's bound (docs/instruments.md and
#: docs/protocol.md, "Bounds": about 3 MiB for an instrument, 18 MiB for the controller's
#: largest frame plus its unread replies) with room for the allocator keeping freed arenas.
RSS_GROWTH_BOUND = 48 * 1024 * 1024

INSTRUMENTS = ["smu_2450", "smu_b2902a", "pg_33522b", "pg_81160a", "matrix_707b"]
ODD_NUMBERS = ["NAN", "nan", "INF", "-INF", "inf", "9.9E37", "1e308", "-1e308", "1e99999",
               "9" * 400, "-0", "0x1F", "1e-400", "1,,2", "MAX", "MIN", "DEF", "1.5e", "+-1"]
PLAIN_ARGS = ["0", "1", "0.1", "-0.2", "ON", "OFF", "(@1)", "(@1,2)", "(@1:2)", '"defbuffer1"',
              "1A01", "IMM", "BUS", "VOLT", "CURR"]
INVALID_BYTES = [b"\xff\xfe", b"\xc3\x28", "µ".encode(), b"\xb5", b"\x00", b"\x1b[2J", b"\xe2\x82"]


@dataclass
class Emulate:
    """A `labctl emulate` subprocess: its pid and the addresses it printed."""

    process: subprocess.Popen[str]
    chip: str
    resources: dict[str, str]

    def rss(self) -> int:
        """Resident set size of the server process, B (Linux /proc)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS in /proc status")


@pytest.fixture(scope="module")
def served() -> Iterator[Emulate]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = subprocess.Popen(
        [sys.executable, "-m", "labctl.cli", "emulate", "--rows", "8", "--cols", "4", "--seed", "5",
         "--no-pty"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)
    chip, resources = "", {}
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        while len(resources) < len(INSTRUMENTS) and time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line, "labctl emulate ended before printing its addresses"
            kind, _, rest = line.strip().partition(" ")
            if kind == "chip" and rest.startswith("tcp://"):
                chip = rest
            elif kind == "instrument":
                name, resource = rest.split()
                resources[name] = resource
        assert chip and len(resources) == len(INSTRUMENTS)
        yield Emulate(process, chip, resources)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _drain(reader: asyncio.StreamReader, sink: bytearray) -> None:
    """Read replies as they come, so the fuzzer itself never stalls the server (the server's own
    back-pressure is tested in test_protocol_server and test_instruments_faults)."""
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(1 << 16):
            sink += data
            del sink[:-4096]  # keep only the tail; the content is checked after the fuzz


@contextlib.asynccontextmanager
async def _fuzz_connection(host: str, port: int) -> AsyncIterator[tuple[asyncio.StreamWriter, bytearray, Callable[[], bool]]]:
    """A connection whose replies are drained into a bytearray (its last 4 KiB), and a function
    saying whether the fuzz time is used up."""
    reader, writer = await asyncio.open_connection(host, port)
    sink = bytearray()
    drain = asyncio.create_task(_drain(reader, sink))
    t0 = time.monotonic()
    try:
        yield writer, sink, lambda: time.monotonic() - t0 > FUZZ_SECONDS
    finally:
        writer.close()
        drain.cancel()
        with contextlib.suppress(BaseException):
            await drain


# --- SCPI instruments ------------------------------------------------------------------------------


def _headers(name: str) -> list[str]:
    """Short-form headers (queries and commands) of the instrument's own command table."""
    bench = InstrumentBench(emulator.Array(8, 4, seed=0))
    inst = bench[name].instrument
    rng = random.Random(f"headers-{name}")
    out = ["*IDN?", "*RST", "*CLS", "*OPC?", "*TRG", "*ESR?", ":SYST:ERR?"]
    for command in inst.commands.commands:
        nodes = [n.short for n in command.nodes if not n.optional or rng.random() < 0.5]
        header = ":" + ":".join(nodes)
        if command.write is not None:
            out.append(header)
        if command.query is not None:
            out.append(header + "?")
    return out


def _scpi_message(rng: random.Random, headers: list[str]) -> bytes:
    kind = rng.randrange(8)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 120))) + b"\n"
    if kind == 1:  # invalid UTF-8 or a non-ASCII unit inside an otherwise valid message
        return (rng.choice(headers).encode() + b" 1" + rng.choice(INVALID_BYTES) + b"V\n")
    if kind == 2:
        return f":FROB{rng.randrange(99)}:NICATE{'?' if rng.random() < 0.5 else ''} 1\n".encode()
    if kind == 3:  # a line cut short, continued by the next message
        return rng.choice(headers).encode()[: rng.randrange(1, 8)]
    args = ",".join(rng.choice(ODD_NUMBERS if rng.random() < 0.6 else PLAIN_ARGS)
                    for _ in range(rng.randrange(0, 4)))
    chained = ";".join(f"{rng.choice(headers)} {args}".strip() for _ in range(rng.randrange(1, 3)))
    return chained.encode() + (b"\r\n" if rng.random() < 0.2 else b"\n")


@pytest.mark.parametrize("name", INSTRUMENTS)
async def test_instrument_survives_fuzz(served: Emulate, name: str) -> None:
    rng = random.Random(f"fuzz-{name}")
    headers = _headers(name)
    host, port = served.resources[name].split("::")[1:3]
    rss_before = served.rss()
    async with _fuzz_connection(host, int(port)) as (writer, sink, time_up):
        writer.write(b"Z" * (3 << 19) + b"\n")  # 1.5 MiB line: over MAX_MESSAGE
        for _ in range(FUZZ_MESSAGES):
            if time_up():
                break
            writer.write(_scpi_message(rng, headers))
            await writer.drain()
        writer.write(b"\n*CLS\n*IDN?\n")
        await writer.drain()
        idn = {"smu_2450": b"MODEL 2450,", "smu_b2902a": b",B2902A,", "pg_33522b": b",33522B,",
               "pg_81160a": b",81160A,", "matrix_707b": b"Model 707B,"}[name]
        for _ in range(500):
            if idn in sink:
                break
            await asyncio.sleep(0.02)
        assert idn in sink, "no *IDN? reply after the fuzz"
    assert served.process.poll() is None, "the emulator process died"
    # A real measurement through the normal drivers, every instrument involved.
    async with Station.from_file(EXAMPLE, served.resources) as station:
        g = await station.read(0, 0)
        for inst in station.instruments.values():
            assert await inst.read_errors() == []
    assert math.isfinite(g) and g > 0
    assert served.rss() - rss_before < RSS_GROWTH_BOUND


# --- chip controller -------------------------------------------------------------------------------

_HEADER = struct.Struct("<2sBBIBBHI")  # docs/protocol.md, "Frame"


def _valid_requests() -> list[Frame]:
    cells = Cells.region(0, 0, 2, 2)
    return [Frame(msg.command, 0, msg.pack()) for msg in (
        m.ReadRequest(cells), m.ReadArrayRequest(Cells.all()), m.PulseRequest(cells, 1.3, 1.4, 2.5e-6, 3),
        m.SetTargetGRequest(cells, np.full(4, 50e-6), tolerance=0.02, max_iterations=50),
        m.VerifyRequest(cells, np.full(4, 50e-6)), m.StatusRequest(), m.InfoRequest())]


def _chip_frame(rng: random.Random, valid: list[Frame], request_id: int) -> bytes:
    kind = rng.randrange(7)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
    if kind == 1:  # unknown or random command, random payload
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
        return Frame(rng.randrange(256), request_id, body).encode()
    base = rng.choice(valid)
    payload = bytearray(base.payload)
    if kind == 2 and len(payload) >= 8:  # NaN, inf or a huge float where a number goes
        at = rng.randrange(0, len(payload) - 7)
        payload[at:at + 8] = struct.pack("<d", rng.choice([math.nan, math.inf, -math.inf, 1e308, -1e308]))
    elif kind == 3 and payload:  # flipped bits
        for _ in range(rng.randrange(1, 4)):
            payload[rng.randrange(len(payload))] ^= 1 << rng.randrange(8)
    wire = Frame(base.command, request_id, bytes(payload)).encode()
    if kind == 4:  # truncated
        return wire[: rng.randrange(1, len(wire))]
    if kind == 5:  # a header announcing more than MAX_PAYLOAD, or a payload that never comes
        length = rng.choice([1 << 31, (16 << 20) + 1, 5000])
        head = _HEADER.pack(SYNC, 1, 0, request_id, int(Command.READ), 0, 0, length)
        return head + struct.pack("<I", crc32(head))
    return wire


async def test_chip_controller_survives_fuzz(served: Emulate) -> None:
    rng = random.Random("fuzz-chip")
    valid = _valid_requests()
    host, port = served.chip.removeprefix("tcp://").rsplit(":", 1)
    rss_before = served.rss()
    async with _fuzz_connection(host, int(port)) as (writer, _sink, time_up):
        writer.write(Frame(Command.HELLO, 1, m.HelloRequest(client="fuzz").pack()).encode())
        for k in range(FUZZ_MESSAGES):
            if time_up():
                break
            writer.write(_chip_frame(rng, valid, 2 + k % 40))
            await writer.drain()
            if rng.random() < 0.05:
                await asyncio.sleep(0.6)  # past the inter-byte timeout: a half frame is dropped
    assert served.process.poll() is None, "the emulator process died"
    await asyncio.sleep(0.2)  # the controller notices the disconnect and aborts any command
    async with await ChipClient.connect(served.chip, timeout=10.0) as client:
        info = client.info
        assert (info.rows, info.cols) == (8, 4)
        g = await client.read_array()
        assert g.shape == (8, 4) and np.all(np.isfinite(g))
    assert served.rss() - rss_before < RSS_GROWTH_BOUND
