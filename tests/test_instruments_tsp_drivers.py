"""The Keithley 2600B, 2400, 3706A and Tektronix AFG31000 drivers against their emulated servers
(the 3706A bench of emulator.instruments), through pyvisa-py on loopback TCP. Physics is compared
with an in-process emulator.Array of the same seed driven with the same operations."""
from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
from pathlib import Path

import emulator
import numpy as np
import pytest
from emulator.instruments import DEFAULT_PORTS_3706A, InstrumentBench
from helpers import form_and_reset_cell as form_and_reset
from helpers import route_3706a as route
from labctl.core.limits import SafetyLimits
from labctl.instruments import (
    InstrumentError,
    Keithley2400,
    Keithley2600B,
    Keithley3706A,
    LimitError,
    TektronixAFG31000,
    open_instrument,
)
from labctl.instruments.smu import staircase

ROWS, COLS = 8, 4
BENCH_SEED = 5  # the conftest bench's array
SMU = SafetyLimits(max_abs_voltage=3.6, max_compliance=1e-3, max_pulse_width=1e-3)
GATE = SafetyLimits(max_abs_voltage=3.3, max_compliance=1e-4)
PULSE = SafetyLimits(max_abs_voltage=2.0, max_pulse_width=1e-4)


def res(bench: InstrumentBench, name: str) -> str:
    return bench[name].resource


def prepared(seed: int) -> emulator.Array:
    """A twin of the bench's array with cell (2, 1) formed and reset, as on the bench."""
    a = emulator.Array(ROWS, COLS, seed=seed)
    form_and_reset(a)
    return a


def received(bench: InstrumentBench) -> dict[str, int]:
    return {name: len(server.received) for name, server in bench.servers.items()}


async def test_identification_picks_each_new_driver(bench: InstrumentBench) -> None:
    expected = {"smu_2602b": Keithley2600B, "smu_2400": Keithley2400, "gate_2400": Keithley2400,
                "afg_31102": TektronixAFG31000, "switch_3706a": Keithley3706A}
    for name, cls in expected.items():
        inst = await open_instrument(res(bench, name), name=name)
        try:
            assert type(inst) is cls and inst.identity is not None and inst.identity.serial
        finally:
            await inst.close()


async def test_labctl_emulate_lists_and_serves_the_new_instruments() -> None:
    """A real `labctl emulate` process prints a VISA address per instrument; each one answers."""
    root = Path(__file__).resolve().parents[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "labctl.cli", "emulate", "--rows", "8", "--cols", "4", "--no-pty"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=root,
        env=dict(os.environ, PYTHONPATH=str(root)))
    resources: dict[str, str] = {}
    try:
        assert process.stdout is not None
        while len(set(DEFAULT_PORTS_3706A) - set(resources)) > 0:
            line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 30)
            assert line, "labctl emulate ended before printing its addresses"
            kind, _, rest = line.strip().partition(" ")
            if kind == "instrument":
                name, resource = rest.split()
                resources[name] = resource
        expected = {"smu_2602b": Keithley2600B, "smu_2400": Keithley2400, "gate_2400": Keithley2400,
                    "afg_31102": TektronixAFG31000, "switch_3706a": Keithley3706A}
        for name, cls in expected.items():
            assert resources[name].startswith("TCPIP::127.0.0.1::") and resources[name].endswith("::SOCKET")
            inst = await open_instrument(resources[name], name=name)
            try:
                assert type(inst) is cls
            finally:
                await inst.close()
    finally:
        process.terminate()
        process.wait(10)


async def test_2600b_source_measure_with_compliance_and_gate(bench: InstrumentBench) -> None:
    arr = bench.array
    form_and_reset(arr)
    ref = prepared(BENCH_SEED)
    async with Keithley2600B(res(bench, "smu_2602b"), limits={1: SMU, 2: GATE}) as smu, \
            Keithley3706A(res(bench, "switch_3706a")) as matrix:
        a, b = smu[1], smu[2]
        await b.source(3.3, 1e-4)
        await b.output.set(True)
        await matrix.exclusive_close(route(2, 1, "smua", "smub"))
        assert await matrix.closed_channels() == sorted(route(2, 1, "smua", "smub"))
        await a.nplc.set(0.1)
        assert await a.nplc.get() == pytest.approx(0.1)
        await a.source(0.2, 1e-4)
        assert await a.current_limit.get() == pytest.approx(1e-4)
        assert await a.source_voltage.get() == 0.2
        await a.output.set(True)
        assert await a.output.get() is True
        current = await a.measure_current()
        assert current == ref.read_current(2, 1, 0.2, vg=3.3)[0]
        # buffers: one reading into nvbuffer2, read back with its source value
        await a.clear_buffer(2)
        await a.measure_into_buffer(2)
        got = await a.buffer_readings(2)
        assert got.voltages.tolist() == [0.2]
        assert got.currents[0] == ref.read_current(2, 1, 0.2, vg=3.3)[0]
        assert await smu.read_errors() == []
    assert not bench.bench_3706a.dc["smu2600b.a"].on and not bench.bench_3706a.dc["smu2600b.b"].on
    assert bench.bench_3706a.closed == set()


async def test_2600b_factory_sweeps_and_pulse_measure_follow_the_array(bench: InstrumentBench) -> None:
    arr = bench.array
    ref = emulator.Array(ROWS, COLS, seed=BENCH_SEED)
    async with Keithley2600B(res(bench, "smu_2602b"), limits={1: SMU, 2: GATE}) as smu, \
            Keithley3706A(res(bench, "switch_3706a")) as matrix:
        a, b = smu[1], smu[2]
        await b.source(1.2, 1e-4)
        await b.output.set(True)
        await matrix.exclusive_close(route(5, 2, "smua", "smub"))
        await a.current_limit.set(1e-3)
        await a.nplc.set(0.05)
        form = staircase(0.0, 3.6, 73)  # a staircase: SweepVLinMeasureI
        result = await a.sweep(form, delay=1e-3)
        expected = ref.sweep(5, 2, form, vg=1.2, dwell=1e-3 + 0.05 / 50)[0]
        assert result.voltages.tolist() == form and result.currents.tolist() == expected.tolist()
        assert arr.formed()[5, 2]
        # a list that is no staircase: SweepVListMeasureI, at VG 3.3 V
        await b.source_voltage.set(3.3)
        reset = [0.0, -0.5, -1.0, -1.3, -1.5]
        result = await a.sweep(reset)
        assert result.currents.tolist() == ref.sweep(5, 2, reset, vg=3.3, dwell=0.05 / 50)[0].tolist()
        assert await a.output.get() is False
        # PulseVMeasureI: 3 cycles of 0 V bias / 1.4 V for 2.5 us, current measured during each
        await b.source_voltage.set(1.4)
        train = await a.pulse_measure(0.0, 1.4, 2.5e-6, 7.5e-6, 3)
        expected = [ref.sweep(5, 2, [1.4], vg=1.4, dwell=2.5e-6)[0][0] for _ in range(3)]
        assert train.currents.tolist() == expected and train.voltages.tolist() == [1.4] * 3
        assert np.array_equal(arr.conductance_matrix(), ref.conductance_matrix())
        assert await a.output.get() is False
        # limits refused before any byte is sent
        before = received(bench)
        with pytest.raises(LimitError, match="level"):
            await a.pulse_measure(0.0, 3.7, 2.5e-6, 7.5e-6, 3)
        with pytest.raises(LimitError, match="on_time"):
            await a.pulse_measure(0.0, 1.4, 2e-3, 7.5e-6, 3)
        with pytest.raises(LimitError, match="current_limit"):
            await a.current_limit.set(2e-3)
        with pytest.raises(LimitError, match=r"voltages\[1\]"):
            await a.sweep([0.0, 4.0])
        assert received(bench) == before


async def test_2600b_script_upload_run_and_errorqueue(bench: InstrumentBench) -> None:
    async with Keithley2600B(res(bench, "smu_2602b"), limits={1: SMU, 2: GATE}) as smu:
        await smu.upload_script("setup", ["smua.measure.nplc = 0.25", "smua.source.limiti = 5e-5"])
        assert await smu[1].nplc.get() == 1.0  # stored, not run yet
        await smu.run_script("setup")
        assert await smu[1].nplc.get() == 0.25 and await smu[1].current_limit.get() == 5e-5
        with pytest.raises(InstrumentError, match="-285"):  # compiled at endscript
            await smu.upload_script("broken", ["smua.measure.nplc = = 1"])
        with pytest.raises(InstrumentError, match="-286"):
            await smu.run_script("broken")  # never stored
        with pytest.raises(LimitError, match="name"):
            await smu.upload_script("2fast", ["x = 1"])
        with pytest.raises(LimitError, match=r"lines\[0\]"):
            await smu.upload_script("nested", ["endscript"])
        # a bad command, an out-of-range value and a call of nothing: errorqueue, and still serving
        await smu.write("smua.source.levelv = 1e3")
        await smu.write("os.execute('ls')")
        await smu.write("smua.source.levelv = ")
        errors = await smu.read_errors()
        assert [code for code, _ in errors] == [-222, -286, -285]
        assert "os.execute" in errors[1][1]
        assert await smu[1].source_voltage.get() == 0.0  # the refused value left the old one
        with pytest.raises(InstrumentError, match="-222"):
            await smu.configure("smua.measure.nplc = 30")


async def test_2400_reads_and_sweeps_like_the_array(bench: InstrumentBench) -> None:
    arr = bench.array
    form_and_reset(arr)
    ref = prepared(BENCH_SEED)
    async with Keithley2400(res(bench, "smu_2400"), limits=SMU) as smu, \
            Keithley2400(res(bench, "gate_2400"), limits=GATE) as gate, \
            Keithley3706A(res(bench, "switch_3706a")) as matrix:
        await gate.channel.source(3.3, 1e-4)
        await gate.channel.output.set(True)
        await matrix.exclusive_close(route(2, 1, "smu2400", "gate2400"))
        ch = smu.channel
        await ch.nplc.set(0.1)
        await ch.source(0.2, 1e-4)
        assert await ch.current_limit.get() == pytest.approx(1e-4)
        await ch.output.set(True)
        assert await ch.measure_current() == ref.read_current(2, 1, 0.2, vg=3.3)[0]
        assert await ch.elements.get() == "CURR"
        # a 150-point list (no staircase): :SOUR:LIST:VOLT + :APP, one trigger run
        points = (np.sin(np.arange(150) / 9.0) * 0.3).tolist()
        result = await ch.sweep(points, delay=1e-3)
        assert result.voltages.tolist() == points
        assert result.currents.tolist() == ref.sweep(2, 1, points, vg=3.3, dwell=1e-3 + 0.1 / 50)[0].tolist()
        assert await ch.output.get() is False
        # then a plain reading again (back to the fixed level)
        await ch.output.set(True)
        assert await ch.measure_current() == ref.read_current(2, 1, 0.2, vg=3.3)[0]
        before = received(bench)
        with pytest.raises(LimitError, match="voltages"):
            await ch.sweep([0.1] * 2501)
        with pytest.raises(LimitError, match="source_voltage"):
            await ch.source_voltage.set(3.7)
        assert received(bench) == before
        await smu.write(":SOUR:VOLT:FROB 1")
        await smu.write(":SENS:CURR:PROT 2")
        assert [c for c, _ in await smu.read_errors()] == [-113, -222]
    assert not bench.bench_3706a.dc["smu2400"].on and not bench.bench_3706a.dc["smu2400.gate"].on


async def test_afg31000_pulses_reach_the_routed_cell(bench: InstrumentBench) -> None:
    arr = bench.array
    form_and_reset(arr)
    ref = prepared(BENCH_SEED)
    async with TektronixAFG31000(res(bench, "afg_31102"), limits=PULSE) as afg, \
            Keithley2400(res(bench, "gate_2400"), limits=GATE) as gate, \
            Keithley3706A(res(bench, "switch_3706a")) as matrix:
        pg = afg[1]
        before = received(bench)
        with pytest.raises(LimitError, match="output"):
            await pg.output.set(True)  # no shape and no high-impedance load set yet
        with pytest.raises(LimitError, match="voltage"):
            await pg.setup_pulse(2.5, 2.5e-6, 10e-6)
        with pytest.raises(LimitError, match="width"):
            await pg.setup_pulse(1.3, 2e-4, 1e-3)
        assert received(bench) == before
        await gate.channel.source(1.4, 1e-4)
        await gate.channel.output.set(True)
        await matrix.exclusive_close(route(2, 1, "afg1", "gate2400"))
        await pg.setup_pulse(1.35, 2.5e-6, 10e-6, count=3)
        assert await pg.load.get() == math.inf
        assert await afg.trigger_source.get() == "EXT"
        await pg.leading_edge.set(5e-9)
        assert await pg.leading_edge.get() == pytest.approx(5e-9)
        await pg.output.set(True)
        await pg.trigger()
        ref.pulse(np.full(3, 2), np.full(3, 1), 1.35, 1.4, 2.5e-6)
        assert np.array_equal(arr.conductance_matrix(), ref.conductance_matrix())
        assert arr.pulse_counts()[2, 1] == 3
        # a negative pulse (inverted polarity on a 0 V high level)
        await pg.setup_pulse(-1.3, 2.5e-6, 10e-6)
        await pg.output.set(True)
        await pg.trigger()
        ref.pulse(2, 1, -1.3, 1.4, 2.5e-6)
        assert np.array_equal(arr.conductance_matrix(), ref.conductance_matrix())
        # the instrument's own refusals: a trailing edge longer than 0.625 x width, a bad header
        with pytest.raises(InstrumentError, match="-221"):
            await pg.trailing_edge.set(2e-6)
        await afg.write("SOUR1:PULS:FROB 1")
        assert [c for c, _ in await afg.read_errors()] == [-113]
    assert not any(c.output for c in bench["afg_31102"].instrument.channels.values())


async def test_3706a_close_open_and_errors(bench: InstrumentBench) -> None:
    async with Keithley3706A(res(bench, "switch_3706a"), name="switch") as matrix:
        await matrix.close_channels(["1101", "2204"])
        assert await matrix.closed_channels() == ["1101", "2204"]
        await matrix.open_channels(["1101"])
        assert await matrix.closed_channels() == ["2204"]
        await matrix.exclusive_close(["1316", "1102"])
        assert await matrix.closed_channels() == ["1102", "1316"]
        before = received(bench)
        for bad in (["1A01"], ["1701"], ["1117"], []):
            with pytest.raises(LimitError, match="channels"):
                await matrix.close_channels(bad)
        assert received(bench) == before
        with pytest.raises(InstrumentError, match="-222"):
            await matrix.configure('channel.close("3101")')  # slot 3 holds no card (8 x 4 array)
        assert await matrix.ask('print(channel.getclose("slot2"))') == "nil"
        await matrix.write("channel.frobnicate()")
        await matrix.write(":SYST:ERR?")  # SCPI is no TSP
        assert [c for c, _ in await matrix.read_errors()] == [-286, -285]
    assert bench.bench_3706a.closed == set()


async def test_outputs_off_after_an_exception_and_cancellation(bench: InstrumentBench) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with Keithley2600B(res(bench, "smu_2602b"), limits={1: SMU, 2: GATE}) as smu:
            await smu[2].source(1.0, 1e-4)
            await smu[2].output.set(True)
            assert bench.bench_3706a.dc["smu2600b.b"].on
            raise RuntimeError("boom")
    assert not bench.bench_3706a.dc["smu2600b.b"].on
    started = asyncio.Event()

    async def hold() -> None:
        async with Keithley2400(res(bench, "smu_2400"), limits=SMU) as smu:
            await smu.channel.source(0.5, 1e-4)
            await smu.channel.output.set(True)
            started.set()
            await asyncio.sleep(30)

    task = asyncio.create_task(hold())
    await asyncio.wait_for(started.wait(), 10)
    assert bench.bench_3706a.dc["smu2400"].on
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not bench.bench_3706a.dc["smu2400"].on


async def test_a_session_opens_after_another_died_during_a_script_upload(bench: InstrumentBench) -> None:
    host, port = res(bench, "smu_2602b").split("::")[1:3]
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"loadscript half\nsmua.source.levelv = 1\n")  # and never endscript
    await writer.drain()
    writer.close()
    for _ in range(100):  # the server has taken both lines
        if len(bench["smu_2602b"].received) >= 2:
            break
        await asyncio.sleep(0.01)
    async with Keithley2600B(res(bench, "smu_2602b"), limits={1: SMU, 2: GATE}) as smu:
        assert smu.identity is not None and smu.identity.model == "Model 2602B"
        assert await smu.read_errors() == []
        assert await smu[1].source_voltage.get() == 0.0  # the half script never ran
