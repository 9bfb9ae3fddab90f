"""The parameter analyzers: Keithley 4200A-SCS (KXCI, 4225-PMU), Keysight B1500A (FLEX, SPGU, WGFMU
through its library), on the emulated analyzer bench over real sockets through pyvisa-py.

A pulse-and-measure station pulses and reads through one unit with no matrix command in between;
the routines (forming, program, read) run on every station kind; through the 4200A station the
results are bit-identical to the in-process emulator with the same seed.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import emulator
from emulator.instruments import InstrumentBench
from labctl.backends import EmulatorBackend
from labctl.backends.station import ArrayClock, StationBackend
from labctl.instruments import (InstrumentError, Keithley4200A, KeysightB1500A, LimitError, Station, StationConfig,
                               open_instrument)
from labctl.instruments import wgfmu as W
from labctl.routines import ClosedLoopParams, ConditionParams, FormingParams, condition, form, program

pytestmark = pytest.mark.timeout(120)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PMU_STATION = EXAMPLES / "station-4200a-pmu.toml"
WGFMU_STATION = EXAMPLES / "station-b1500a-wgfmu.toml"
SPGU_STATION = EXAMPLES / "station-b1500a-spgu.toml"
SEED = 7
CELLS = (np.array([5, 0, 2]), np.array([1, 0, 3]))
FORM = np.arange(73) * 0.05  # 0 -> 3.6 V, 50 mV steps: as good for forming as 10 mV, five times faster
CONDITION = np.linspace(0.0, -1.4, 29)


@contextlib.asynccontextmanager
async def station_backend(path: Path, rows: int = 8, cols: int = 4) -> AsyncIterator[tuple[StationBackend, InstrumentBench]]:
    array = emulator.Array(rows, cols, seed=SEED)
    config = StationConfig.from_toml(path).with_array(rows, cols)
    async with InstrumentBench(array) as bench:
        async with StationBackend(config, resources=dict(bench.resources()), clock=ArrayClock(array)) as backend:
            yield backend, bench


async def primitives(backend: Any) -> dict[str, np.ndarray]:
    r, c = CELLS
    out = {"form": await backend.sweep(r, c, FORM, vg=1.2, dwell=1e-3),
           "condition": await backend.sweep(r, c, CONDITION, vg=3.3, dwell=1e-3),
           "read0": await backend.read(r, c, 0.2, 3.3)}
    await backend.pulse(r, c, 1.3, 1.4, 2.5e-6)
    out["read1"] = await backend.read(r, c, 0.2, 3.3)
    await backend.pulse(r, c, -1.2, 3.3, 2.5e-6)
    out["read2"] = await backend.read(r, c, 0.2, 3.3)
    return out


async def test_pmu_station_is_bit_identical_and_keeps_the_pulse_transients() -> None:
    async with station_backend(PMU_STATION) as (backend, bench):
        assert backend.station is not None and backend.station.pulse_and_measure
        got = await primitives(backend)
        traces = list(backend.traces)
        log = list(bench.analyzer_bench.operations)
    async with EmulatorBackend(8, 4, seed=SEED) as reference:
        want = await primitives(reference)
    for key in want:
        assert np.array_equal(got[key], want[key]), key
    # One trace per pulse and cell, 25 samples inside the 2.5 us top; set pulses raise the current.
    assert [(t.row, t.col) for t in traces] == list(zip(*(a.tolist() for a in CELLS))) * 2
    for t in traces:
        assert t.trace.times.size == 25 and 0 < t.trace.times[0] and t.trace.times[-1] <= 2.5e-6
        assert np.all(np.sign(t.trace.currents) == np.sign(t.trace.voltage))
    # During one pulse the state moves one way (the switching grows with the time under the
    # pulse), so each trace is monotonic from its first sample to its last; set pulses move.
    for t in traces:
        steps = np.diff(t.trace.currents) * np.sign(t.trace.currents[-1] - t.trace.currents[0])
        assert np.all(steps >= 0)
    assert all(t.trace.currents[-1] != t.trace.currents[0] for t in traces[:3])
    # The array saw exactly one pulse per cell and pulse call through the PMU, of the asked width.
    pulses = [op for op in log if op[0] == "pulse"]
    assert len(pulses) == 6 and all(op[1]["width"] == 2.5e-6 for op in pulses)


async def test_pulse_and_read_need_no_matrix_command_between_them() -> None:
    async with station_backend(PMU_STATION) as (backend, bench):
        r, c = np.array([1]), np.array([2])
        await backend.sweep(r, c, FORM, vg=1.2)
        await backend.sweep(r, c, CONDITION, vg=3.3)
        await backend.read(r, c)
        matrix = bench["matrix_707b_pa"].received
        before = len(matrix)
        for v, vg in ((1.3, 1.4), (-1.2, 3.3), (1.3, 1.4)):
            await backend.pulse(r, c, v, vg, 2.5e-6)
            await backend.read(r, c)
        assert len(matrix) == before  # the route to the PMU stayed closed throughout


async def test_one_pmu_execution_pulses_and_reads() -> None:
    """PMU1-1 applies a 2.5 us pulse, samples the current during it and reads after it, in one
    segment-ARB execution; the read equals the in-process array's after the same pulse."""
    array = emulator.Array(8, 4, seed=SEED)
    twin = emulator.Array(8, 4, seed=SEED)
    for a in (array, twin):
        a.sweep([3], [1], FORM, vg=1.2)
        a.sweep([3], [1], CONDITION, vg=3.3)
    async with InstrumentBench(array) as bench:
        async with Station.from_file(PMU_STATION, dict(bench.resources())) as station:
            await station.route(3, 1, "pulse")
            await station.set_gate(1.4)
            executes = sum(1 for m in bench["analyzer_4200a"].received if m == ":PMU:EXECUTE")
            trace, current = await station.pulser.pulse_and_read(1.3, 2.5e-6, 0.2)
            assert sum(1 for m in bench["analyzer_4200a"].received if m == ":PMU:EXECUTE") == executes + 1
    twin_trace = twin.pulse_trace(3, 1, 1.3, 1.4, 2.5e-6, trace.times)
    twin.pulse(3, 1, 1.3, 1.4, 2.5e-6)
    assert np.array_equal(trace.currents, twin_trace)
    assert current == twin.read_current(3, 1, 0.2, vg=1.4)[0]


@pytest.mark.parametrize("path", [WGFMU_STATION, SPGU_STATION], ids=["wgfmu", "spgu"])
async def test_b1500a_stations_agree_with_the_emulator(path: Path) -> None:
    """Through the B1500A the SMU's staircases are the instrument's own (levels may differ from the
    requested list in the last bit), so results agree closely rather than bit for bit."""
    async with station_backend(path) as (backend, _bench):
        got = await primitives(backend)
        traces = list(backend.traces)
    async with EmulatorBackend(8, 4, seed=SEED) as reference:
        want = await primitives(reference)
    for key in want:
        assert np.allclose(got[key], want[key], rtol=1e-9, atol=1e-15), key
    assert len(traces) == (6 if path == WGFMU_STATION else 0)


@pytest.mark.parametrize("path", [PMU_STATION, WGFMU_STATION], ids=["pmu", "wgfmu"])
async def test_routines_run_on_pulse_and_measure_stations(path: Path) -> None:
    async with station_backend(path, 2, 2) as (backend, _bench):
        cells = (np.array([0, 1]), np.array([1, 0]))
        formed = await form(backend, *cells, FormingParams(step=0.05))
        assert formed.formed.all()
        await condition(backend, *cells, ConditionParams(step=0.05))
        targets = [30e-6, 60e-6]
        result = await program(backend, *cells, ClosedLoopParams(targets=targets, max_iterations=60))
        g = await backend.read(*cells, 0.2, 3.3)
        assert result.converged.all()
        assert np.all(np.abs(result.g - targets) <= 0.02 * np.array(targets))
        assert np.all(np.abs(g - targets) <= 0.1 * np.array(targets))  # one more noisy read
        assert len(backend.traces) == int(result.iterations.sum())


async def test_limits_are_refused_before_any_byte_and_errors_name_the_command() -> None:
    async with station_backend(PMU_STATION) as (backend, bench):
        station = backend.station
        assert station is not None
        received = bench["analyzer_4200a"].received
        before = len(received)
        with pytest.raises(LimitError, match="voltage"):
            await station.pulser.pulse(2.5, 2.5e-6)  # terminals.pulse max_abs_voltage = 2.0 V
        with pytest.raises(LimitError, match="width"):
            await station.pulser.pulse(1.0, 5e-4)  # max_pulse_width 1e-4 s
        with pytest.raises(LimitError):
            await station.smu.current_limit.set(5e-3)  # max_current_limit 1e-3 A
        with pytest.raises(ValueError, match="v"):
            await backend.pulse(np.array([0]), np.array([0]), 3.0, 1.4, 2.5e-6)
        assert len(received) == before
        # The instrument's own refusal comes back through KXCI's last-error query.
        inst = station.instruments["analyzer_4200a"]
        with pytest.raises(InstrumentError, match=r"DV7.*-110,SMU7 is not installed"):
            await inst.configure("DV7, 0, 1.0, 1e-4")
        assert await inst.read_errors() == []
        b1500 = KeysightB1500A(bench["analyzer_b1500a"].resource)
        async with b1500:
            with pytest.raises(InstrumentError, match=r"'XE'.*150"):
                await b1500.configure("MM 1,2")
                await b1500.data("XE")


async def test_outputs_go_off_on_exit_error_and_cancellation() -> None:
    async with station_backend(PMU_STATION) as (backend, bench):
        analyzer = bench["analyzer_4200a"].instrument
        r, c = np.array([0]), np.array([0])
        await backend.sweep(r, c, FORM, vg=1.2)
        await backend.sweep(r, c, CONDITION, vg=3.3)
        task = asyncio.create_task(backend.pulse(r, c, 1.3, 1.4, 2.5e-6))
        await asyncio.sleep(0)
        for _ in range(200):  # cancel while the exchange is in flight
            if analyzer.pmu[1].output or task.done():
                break
            await asyncio.sleep(0.001)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await backend.outputs_off()
        assert not analyzer.pmu[1].output
        assert not any(s.on for s in analyzer.smus.values())
        assert not bench.analyzer_bench.closed
    assert not analyzer.pmu[1].output and not any(s.on for s in analyzer.smus.values())


async def test_factory_identifies_the_analyzers() -> None:
    async with InstrumentBench(emulator.Array(8, 4, seed=0)) as bench:
        for name, cls in (("analyzer_4200a", Keithley4200A), ("analyzer_b1500a", KeysightB1500A)):
            inst = await open_instrument(bench[name].resource, name=name)
            try:
                assert type(inst) is cls
                assert await inst.read_errors() == []
            finally:
                await inst.safe_off()
                await inst.close()


async def test_wgfmu_api_runs_on_the_emulated_library() -> None:
    """A measurement written against the WGFMU C API (names, argument order, return codes) runs on
    the emulated library; its errors come back as the library's codes and text."""
    array = emulator.Array(4, 4, seed=SEED)
    array.sweep([1], [2], FORM, vg=1.2)
    array.sweep([1], [2], CONDITION, vg=3.3)
    async with InstrumentBench(array) as bench:
        async with Station(StationConfig.from_toml(WGFMU_STATION).with_array(4, 4), dict(bench.resources())) as station:
            await station.route(1, 2, "pulse")
            await station.set_gate(3.3)
            lib = W.EmulatedWGFMU()
            resource = bench["analyzer_b1500a"].resource

            def measure() -> tuple[list[float], list[float]]:
                assert lib.WGFMU_openSession(resource) == W.WGFMU_NO_ERROR
                assert lib.WGFMU_initialize() == W.WGFMU_NO_ERROR
                assert lib.WGFMU_setOperationMode(401, W.WGFMU_OPERATION_MODE_FASTIV) == 0
                assert lib.WGFMU_setMeasureMode(401, W.WGFMU_MEASURE_MODE_CURRENT) == 0
                assert lib.WGFMU_createPattern("read", 0.0) == 0
                assert lib.WGFMU_addVector("read", 1e-7, 0.2) == 0
                assert lib.WGFMU_addVectors("read", [1e-5, 1e-7], [0.2, 0.0], 2) == 0
                assert lib.WGFMU_setMeasureEvent("read", "i", 1e-7, 4, 2e-6, 1e-6,
                                                 W.WGFMU_MEASURE_EVENT_DATA_AVERAGED) == 0
                assert lib.WGFMU_addSequence(401, "read", 1) == 0
                assert lib.WGFMU_connect(401) == 0
                assert lib.WGFMU_execute() == 0
                assert lib.WGFMU_waitUntilCompleted() == 0
                status, measured, total = lib.WGFMU_getMeasureValueSize(401)
                assert (status, measured, total) == (0, 4, 4)
                status, times, values = lib.WGFMU_getMeasureValues(401, 0, measured)
                assert status == 0
                # Errors: the library's codes, and its text through getError.
                assert lib.WGFMU_createPattern("read", 0.0) == W.WGFMU_PATTERN_ALREADY_EXISTS_ERROR
                assert lib.WGFMU_setMeasureEvent("read", "late", 1.0, 1, 1e-6, 1e-6,
                                                 W.WGFMU_MEASURE_EVENT_DATA_AVERAGED) == W.WGFMU_PARAMETER_OUT_OF_RANGE_ERROR
                assert lib.WGFMU_addVector("nothing", 1e-6, 0.1) == W.WGFMU_PATTERN_NOT_FOUND_ERROR
                status, text = lib.WGFMU_getError()
                assert "already" in text.lower() or "read" in text and "after the pattern" in text
                assert lib.WGFMU_disconnect(401) == 0
                lib.WGFMU_closeSession()
                return times, values

            times, values = await asyncio.to_thread(measure)
    # Four averaged samples of one read: the same noisy read of the cell (one draw), 0.2 V / I.
    assert len(set(values)) == 1 and values[0] > 0
    assert np.allclose(times, [1e-7 + k * 2e-6 + 0.5e-6 for k in range(4)])
    twin = emulator.Array(4, 4, seed=SEED)
    twin.sweep([1], [2], FORM, vg=1.2)
    twin.sweep([1], [2], CONDITION, vg=3.3)
    assert values[0] == twin.read_current(1, 2, 0.2, vg=3.3)[0]


async def test_wgfmu_library_absent_or_wrong_instrument() -> None:
    with pytest.raises(W.WGFMUNotInstalled, match="not installed.*libwgfmu-missing"):
        W.VendorWGFMU(["libwgfmu-missing.so"])
    async with InstrumentBench(emulator.Array(4, 4, seed=0)) as bench:
        lib = W.EmulatedWGFMU()
        status = await asyncio.to_thread(lib.WGFMU_openSession, bench["smu_b2902a"].resource)
        assert status == W.WGFMU_COMMUNICATION_ERROR
        assert "not an emulated B1500A" in lib.WGFMU_getError()[1]
        assert lib.WGFMU_execute() == W.WGFMU_CONTEXT_ERROR


async def test_labctl_emulate_lists_the_analyzers(capsys: pytest.CaptureFixture[str]) -> None:
    from emulator.serve import serve

    args = argparse.Namespace(rows=4, cols=4, seed=0, preset="cmo-hfox", host="127.0.0.1", port=0,
                              no_pty=True, no_instruments=False)
    ready, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve(args, ready, stop))
    await asyncio.wait_for(ready.wait(), 30)
    stop.set()
    assert await task == 0
    lines = capsys.readouterr().out.splitlines()
    for name in ("analyzer_4200a", "analyzer_b1500a", "matrix_707b_pa"):
        assert any(line.startswith(f"instrument {name} TCPIP::127.0.0.1::") for line in lines), name


def test_pmu_trace_cannot_take_a_draw() -> None:
    """Array.pulse_trace changes nothing: the same pulse afterwards gives the same state as without
    the trace, and the trace's end is that state's current."""
    a, b = emulator.Array(2, 2, seed=3), emulator.Array(2, 2, seed=3)
    for arr in (a, b):
        arr.sweep([0], [0], FORM, vg=1.2)
        arr.sweep([0], [0], CONDITION, vg=3.3)
    trace = a.pulse_trace(0, 0, 1.3, 1.4, 2.5e-6, [1.25e-6, 2.5e-6])
    a.pulse(0, 0, 1.3, 1.4, 2.5e-6)
    b.pulse(0, 0, 1.3, 1.4, 2.5e-6)
    assert a.snapshot() == b.snapshot()
    after = a.pulse_trace(0, 0, 1.3, 1.4, 2.5e-6, [1e-15])
    assert math.isclose(trace[-1], after[0], rel_tol=1e-9)
    with pytest.raises(ValueError, match="times"):
        a.pulse_trace(0, 0, 1.3, 1.4, 2.5e-6, [3e-6])
