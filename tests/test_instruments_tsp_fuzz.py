"""Malformed input to the 2602B, 2400, AFG31102 and 3706A emulations, and the TSP interpreter.

The interpreter part is sans I/O: statements are parsed, never evaluated as Python; syntax errors
run nothing, runtime errors stop the chunk, scripts are bounded. The fuzz part sends each emulated
instrument seeded, bounded random input on TCP (bad bytes, unknown commands, out-of-range values,
over-long lines, unbalanced Lua) and then checks that it still serves: *IDN?, its own error model,
and a real read through the normal drivers of the station that uses it.
"""
from __future__ import annotations

import asyncio
import contextlib
import math
import random
from pathlib import Path

import emulator
import pytest
from emulator.instruments import InstrumentBench
from emulator.instruments.keithley2600b import Keithley2602B
from emulator.instruments.bench import LAYOUT_3706A, Bench
from emulator.instruments.tsp import MAX_SCRIPT_LINES, MAX_SCRIPTS, TspError, parse
from labctl.instruments import Station

pytestmark = pytest.mark.timeout(120)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FUZZ_MESSAGES = 500
STATION_OF = {"smu_2602b": "station-2602b.toml", "smu_2400": "station-2400.toml",
              "gate_2400": "station-2400.toml", "afg_31102": "station-2602b.toml",
              "switch_3706a": "station-2602b.toml"}
IDN = {"smu_2602b": b"Model 2602B,", "smu_2400": b"MODEL 2400,", "gate_2400": b"MODEL 2400,",
       "afg_31102": b"AFG31102,", "switch_3706a": b"Model 3706A,"}
TSP_WORDS = ["smua", "smub", ".", "source", "measure", "levelv", "limiti", "output", "nplc", "=", "(", ")",
             "{", "}", ",", "[", "]", "print", "printbuffer", "channel", "close", "open", "exclusiveclose",
             "getclose", "errorqueue", "next", "count", "nvbuffer1", "readings", "n", "OUTPUT_ON", "nil",
             "true", "-", ";", "'1101'", '"allslots"', '"1A01"', "'", '"', "loadscript", "endscript",
             "SweepVLinMeasureI", "PulseVMeasureI", "os", "execute", "require", "__import__", "dofile"]
ODD_NUMBERS = ["NAN", "nan", "INF", "-INF", "9.9E37", "1e308", "-1e308", "1e99999", "9" * 400, "-0",
               "0x1F", "1e-400", "1,,2", "MAX", "MIN", "1.5e", "+-1", "60000", "2501", "0", "-1"]
SCPI_HEADERS = ["*IDN?", "*RST", "*CLS", "*OPC?", "*TRG", ":SYST:ERR?", ":SOUR:VOLT", ":SOUR:VOLT:MODE",
                ":SENS:CURR:PROT", ":SOUR:LIST:VOLT", ":SOUR:LIST:VOLT:APP", ":TRIG:COUN", ":READ?",
                ":MEAS:CURR?", ":FORM:ELEM", ":OUTP", "SOUR1:PULS:WIDT", "SOUR2:PULS:PER", "OUTP1:IMP",
                "SOUR1:BURS:NCYC", "TRIG:SEQ:SOUR", "SOUR1:PULS:TRAN:LEAD", "SOUR1:VOLT:HIGH", "OUTP1"]
#: Well-formed statements with odd arguments (``{}`` gets a number or a word from ODD_NUMBERS).
TSP_TEMPLATES = ["smua.source.levelv = {}", "smub.source.limiti = {}", "smua.measure.nplc = {}",
                 "smua.source.output = {}", "format.asciiprecision = {}", "print(smua.nvbuffer1[{}])",
                 "PulseVMeasureI(smua, 0, {}, 1e-6, 1e-6, 3)", "SweepVLinMeasureI(smua, 0, 1, 0, {})",
                 "SweepVListMeasureI(smua, {{{}, 1}}, 0, 2)", "printbuffer(1, {}, smua.nvbuffer1)",
                 "channel.close('1{}01')", "channel.exclusiveclose(\"{}\")", "print(channel.getclose('slot{}'))"]
INVALID_BYTES = [b"\xff\xfe", b"\xc3\x28", "µ".encode(), b"\x00", b"\x1b[2J", b"\xe2\x82"]


# --- the interpreter, sans I/O ------------------------------------------------------------------


def smu() -> Keithley2602B:
    return Keithley2602B(Bench(emulator.Array(8, 4, seed=0), LAYOUT_3706A))


def errors(inst: Keithley2602B) -> list[int]:
    out = []
    while len(inst.errors):
        out.append(inst.errors.pop()[0])
    return out


def test_parser_accepts_the_supported_statements_and_refuses_the_rest() -> None:
    statements = parse("smua.source.levelv = -0.2 smua.measure.i(smua.nvbuffer1); print(smua.nvbuffer1[1])")
    assert len(statements) == 3
    for bad in ("smua.source.levelv = = 1", "x = (1", "print(", "1 = x", "smua..x = 1", "x = 'open",
                "import os", "x = 1 + 2", "x = " + "(" * 40 + "1" + ")" * 40):
        with pytest.raises(TspError) as info:
            parse(bad)
        assert info.value.code == -285, bad


def test_a_syntax_error_runs_nothing_and_a_runtime_error_stops_the_chunk() -> None:
    inst = smu()
    assert inst.handle("smua.measure.nplc = 0.5 smua.source.levelv = = 1") is None
    assert inst.smus["smua"].nplc == 1.0 and errors(inst) == [-285]
    inst.handle("smua.measure.nplc = 0.5 os.execute('rm -rf /') smua.measure.nplc = 2")
    assert inst.smus["smua"].nplc == 0.5 and errors(inst) == [-286]  # stopped at the call
    assert inst.handle("print(smua.measure.nplc, nil, true, 'x')") == \
        "5.0000000000000000e-01\tnil\ttrue\tx"
    inst.handle("format.asciiprecision = 6")
    assert inst.handle("print(smua.measure.nplc)") == "5.00000e-01"


def test_scripts_are_compiled_at_endscript_and_bounded() -> None:
    inst = smu()
    for line in ("loadscript again", "smua.measure.nplc = 0.25", "again()", "endscript"):
        assert inst.handle(line) is None
    assert errors(inst) == []
    inst.handle("again.run()")  # runs itself until the depth bound: a runtime error, no crash
    assert inst.smus["smua"].nplc == 0.25 and errors(inst) == [-286]
    inst.handle("loadscript long")
    for _ in range(MAX_SCRIPT_LINES + 5):
        inst.handle("smua.measure.nplc = 1")
    assert "long" not in inst.scripts and -225 in errors(inst)
    assert inst.handle("print(1)") == "1.0000000000000000e+00"  # out of loading mode again
    for k in range(MAX_SCRIPTS + 3):
        for line in (f"loadscript s{k}", "smua.measure.nplc = 1", "endscript"):
            inst.handle(line)
    assert len(inst.scripts) == MAX_SCRIPTS and -225 in errors(inst)


# --- every emulated instrument on TCP ------------------------------------------------------------


def tsp_message(rng: random.Random) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 100))) + b"\n"
    if kind == 1:
        return b"smua.source.levelv = 1" + rng.choice(INVALID_BYTES) + b"\n"
    if kind == 2:
        return rng.choice(TSP_TEMPLATES).format(rng.choice(ODD_NUMBERS)).encode() + b"\n"
    words = [rng.choice(TSP_WORDS if rng.random() < 0.7 else ODD_NUMBERS) for _ in range(rng.randrange(1, 16))]
    return " ".join(words).encode() + (b"\r\n" if rng.random() < 0.2 else b"\n")


def scpi_message(rng: random.Random) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 100))) + b"\n"
    if kind == 1:
        return rng.choice(SCPI_HEADERS).encode() + b" 1" + rng.choice(INVALID_BYTES) + b"V\n"
    if kind == 2:
        return f":FROB{rng.randrange(99)}:NICATE{'?' if rng.random() < 0.5 else ''} 1\n".encode()
    args = ",".join(rng.choice(ODD_NUMBERS) for _ in range(rng.randrange(0, 5)))
    return f"{rng.choice(SCPI_HEADERS)} {args}".strip().encode() + b"\n"


async def _drain(reader: asyncio.StreamReader, sink: bytearray) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(1 << 16):
            sink += data
            del sink[:-4096]


@pytest.mark.parametrize("name", list(STATION_OF))
async def test_instrument_survives_fuzz_and_keeps_serving(name: str, caplog: pytest.LogCaptureFixture) -> None:
    rng = random.Random(f"fuzz-3706a-bench-{name}")
    tsp = name in ("smu_2602b", "switch_3706a")
    async with InstrumentBench(emulator.Array(8, 4, seed=3)) as bench:
        server = bench[name]
        host, port = server.resource.split("::")[1:3]
        reader, writer = await asyncio.open_connection(host, int(port))
        sink = bytearray()
        drain = asyncio.create_task(_drain(reader, sink))
        try:
            writer.write(b"Z" * (3 << 19) + b"\n")  # 1.5 MiB: over the server's line bound
            for _ in range(FUZZ_MESSAGES):
                writer.write(tsp_message(rng) if tsp and rng.random() < 0.8 else scpi_message(rng))
                await writer.drain()
            writer.write(b"\nendscript\n*CLS\n*IDN?\n")
            await writer.drain()
            # The fuzz holds *IDN? too: wait for the last message's reply, the end of the stream.
            last = server.instrument.idn.encode() + b"\n"
            for _ in range(500):
                if len(server.received) and server.received[-1] == "*IDN?" and sink.endswith(last):
                    break
                await asyncio.sleep(0.02)
            assert sink.endswith(last) and IDN[name] in last, "no *IDN? reply after the fuzz"
        finally:
            writer.close()
            drain.cancel()
            with contextlib.suppress(BaseException):
                await drain
        inst = server.instrument
        assert len(inst.errors) <= inst.errors.size
        # every input went through the instrument's error model, none through a model bug (-200)
        assert not [r for r in caplog.records if "internal error" in r.getMessage()]
        if tsp:
            assert inst._loading is None and len(inst.scripts) <= MAX_SCRIPTS
        # a real measurement through the normal drivers of the station that uses it
        async with Station.from_file(EXAMPLES / STATION_OF[name], dict(bench.resources())) as station:
            await station.smu.nplc.set(0.1)
            g = await station.read(0, 0)
            for instrument in station.instruments.values():
                assert await instrument.read_errors() == []
        assert math.isfinite(g) and g > 0
