"""The emulated parameter analyzers answer malformed input (bad bytes, unknown commands,
out-of-range values, over-long lines, NUL terminators) through their own error models and keep
serving: bounded, seeded input over real sockets; afterwards they identify themselves, report the
errors the KXCI or FLEX way, and a measurement through the drivers still works."""
from __future__ import annotations

import asyncio
import contextlib
import random
from pathlib import Path

import numpy as np
import pytest

import emulator
from emulator.instruments import InstrumentBench
from emulator.instruments.server import MAX_MESSAGE
from labctl.instruments import Keithley4200A, KeysightB1500A, Station, StationConfig

pytestmark = pytest.mark.timeout(120)

MESSAGES = 400
ODD = ["nan", "inf", "-inf", "1e308", "-1e308", "-0", "", "abc", "1e-400", "99999999999", "0x10", "'", "1,2",
       "0", "1", "2", "101", "401", "-5", "3.3", "1e-7", "2.5e-6", "40", "1e12"]
KXCI = ["US", "DV1", "DV2", "DV9", "DI1", "CL", "TI1", "TI2", "TV1", "IT1", "IT4", "RI1", "DE", "CH1", "CH2", "SS",
        "VL1", "VR1", "VC2", "DT", "SM", "DM2", "MD", "ME1", "ME4", "DO 'I1'", "DO 'V9'", "*IDN?", "*RST",
        ":ERROR:LAST:GET", ":ERROR:LAST:CLEAR", ":PMU:INIT", ":PMU:RPM:CONFIGURE", ":PMU:SOURCE:RANGE",
        ":PMU:SAMPLE:RATE", ":PMU:SARB:SEQ:TIME", ":PMU:SARB:SEQ:STARTV", ":PMU:SARB:SEQ:STOPV",
        ":PMU:SARB:SEQ:MEAS:TYPE", ":PMU:SARB:SEQ:MEAS:START", ":PMU:SARB:SEQ:MEAS:STOP", ":PMU:SARB:WFM:SEQ:LIST",
        ":PMU:OUTPUT:STATE", ":PMU:EXECUTE", ":PMU:ABORT", ":PMU:TEST:STATUS?", ":PMU:DATA:COUNT?", ":PMU:DATA:GET"]
FLEX = ["CN", "CL", "DV", "DI", "MM", "WV", "WT", "AIT", "AAD", "RI", "FMT", "XE", "ERR?", "EMG?", "*IDN?", "*RST",
        "*OPC?", "SIM", "SPRM", "SPPER", "SPM", "SPT", "SPV", "SER", "ODSW", "SPUPD", "SRP", "SPP", "SPST?",
        "WGFMU:CLEAR", "WGFMU:MODE", "WGFMU:MEASMODE", "WGFMU:CONN", "WGFMU:DISC", "WGFMU:WAVE", "WGFMU:EVENT",
        "WGFMU:RUN", "WGFMU:STATUS?", "WGFMU:DATA?"]
IDN = {"analyzer_4200a": b"KI4200A", "analyzer_b1500a": b",B1500A,"}


def message(rng: random.Random, headers: list[str]) -> bytes:
    kind = rng.randrange(7)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80))) + b"\n"
    if kind == 1:
        return f"FROB{rng.randrange(99)} 1,2\n".encode()
    if kind == 2:  # a non-ASCII byte inside an otherwise valid command
        return rng.choice(headers).encode() + b" 1,\xb5\xff\n"
    if kind == 3:  # NUL-terminated, as KXCI clients send
        return rng.choice(headers).encode() + b" " + ",".join(rng.choice(ODD) for _ in range(3)).encode() + b"\0"
    args = ",".join(rng.choice(ODD) for _ in range(rng.randrange(0, 9)))
    separator = ";" if rng.random() < 0.2 else ""
    return f"{rng.choice(headers)} {args}{separator}\n".encode()


async def _drain(reader: asyncio.StreamReader, sink: bytearray) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(1 << 16):
            sink += data
            del sink[:-4096]


@pytest.mark.parametrize("name", ["analyzer_4200a", "analyzer_b1500a"])
async def test_analyzer_survives_fuzz(name: str) -> None:
    rng = random.Random(f"analyzer-fuzz-{name}")
    headers = KXCI if name == "analyzer_4200a" else FLEX
    array = emulator.Array(8, 4, seed=0)
    async with InstrumentBench(array) as bench:
        server = bench[name]
        host, port = server.resource.split("::")[1:3]
        reader, writer = await asyncio.open_connection(host, int(port))
        sink = bytearray()
        drain = asyncio.create_task(_drain(reader, sink))
        try:
            writer.write(b"Z" * (MAX_MESSAGE + (1 << 19)) + b"\n")  # over-long: discarded as it arrives
            for _ in range(MESSAGES):
                writer.write(message(rng, headers))
                await writer.drain()
            writer.write(b"\n*IDN?\n")
            await writer.drain()
            for _ in range(500):
                if IDN[name] in sink:
                    break
                await asyncio.sleep(0.01)
            assert IDN[name] in sink, "no *IDN? reply after the fuzz"
        finally:
            writer.close()
            drain.cancel()
            with contextlib.suppress(BaseException):
                await drain
        assert server.running
        inst = server.instrument
        assert len(inst.errors) <= inst.errors.size  # bounded, however much was refused
        assert len(bench.analyzer_bench.operations) <= bench.analyzer_bench.operations.maxlen
        # The errors are reported in the instrument's own way, then a real measurement works.
        if name == "analyzer_4200a":
            async with Keithley4200A(server.resource) as k:
                await k.send(":ERROR:LAST:CLEAR")
                await k.send("FROB")
                assert (await k.read_errors())[0][0] == -100
        else:
            async with KeysightB1500A(server.resource) as b:
                await b.write("FROB")
                assert (await b.read_errors())[0][0] == 100
        array.sweep([0], [0], np.arange(73) * 0.05, vg=1.2)
        array.sweep([0], [0], np.linspace(0, -1.4, 29), vg=3.3)
        path = Path(__file__).resolve().parents[1] / "examples" / (
            "station-4200a-pmu.toml" if name == "analyzer_4200a" else "station-b1500a-wgfmu.toml")
        async with Station(StationConfig.from_toml(path), dict(bench.resources())) as station:
            g = await station.read(0, 0)
            for instrument in station.instruments.values():
                assert await instrument.read_errors() == []
        assert 1e-6 < g < 1e-3
