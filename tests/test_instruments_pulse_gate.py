"""The realistic 1T1R pulse-measure wiring: the word line driven by the second channel of the pulse
unit (4225-PMU channel 2 through the RPM that also carries SMU2; the B1530A's WGFMU 402 through the
RSU that also carries SMU2), so a set pulse and its verify read are one execution, and the fused
program-and-verify operation (`ArrayBackend.pulse_and_read`). Real sockets through pyvisa-py to the
emulated analyzers; the WGFMU through its emulated library."""
from __future__ import annotations

import asyncio
import contextlib
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import emulator
from emulator.instruments import InstrumentBench
from labctl.backends import EmulatorBackend
from labctl.backends.station import ArrayClock, StationBackend
from labctl.instruments import InstrumentError, LimitError, StationConfig
from labctl.instruments.wgfmu import WGFMUError

pytestmark = pytest.mark.timeout(120)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PMU_STATION = EXAMPLES / "station-4200a-pmu.toml"
WGFMU_STATION = EXAMPLES / "station-b1500a-wgfmu.toml"
ANALYZER = {PMU_STATION: "analyzer_4200a", WGFMU_STATION: "analyzer_b1500a"}
SEED = 11
CELLS = (np.array([2, 0, 5]), np.array([1, 3, 0]))


def formed(seed: int = SEED) -> emulator.Array:
    """An 8 x 4 array whose CELLS are formed and reset in process (the same ops on every twin)."""
    array = emulator.Array(8, 4, seed=seed)
    r, c = CELLS
    array.sweep(r, c, np.arange(73) * 0.05, vg=1.2)
    array.sweep(r, c, np.linspace(0.0, -1.4, 29), vg=3.3)
    return array


@contextlib.asynccontextmanager
async def station(path: Path | StationConfig, array: emulator.Array) -> AsyncIterator[tuple[StationBackend, InstrumentBench]]:
    async with InstrumentBench(array) as bench:
        async with StationBackend(path, resources=dict(bench.resources()), clock=ArrayClock(array)) as backend:
            yield backend, bench


def without_pulse_gate(path: Path) -> StationConfig:
    """The example station wired the older way: the gate SMU drives the word line for pulses too."""
    data = tomllib.loads(path.read_text())
    del data["terminals"]["pulse_gate"]
    return StationConfig.model_validate(data)


@pytest.mark.parametrize("path", [PMU_STATION, WGFMU_STATION], ids=["pmu", "wgfmu"])
async def test_set_pulse_and_read_at_another_gate_is_one_execution_bit_for_bit(path: Path) -> None:
    """A set pulse at VG 1.4 V then the read at VG 3.3 V, one execution of the unit with its second
    channel on the word line: no DC gate command and no matrix command in between, and the cell
    sees exactly what the in-process array sees (a read at the pulse's gate would differ)."""
    twin = formed()
    async with station(path, formed()) as (backend, bench):
        st = backend.station
        assert st is not None and st.pulse_gate is not None
        await st.read(2, 1)  # route and set up once
        analyzer, matrix = bench[ANALYZER[path]].received, bench["matrix_707b_pa"].received
        a0, m0 = len(analyzer), len(matrix)
        trace, g = await st.pulse_and_read(2, 1, 1.3, 2.5e-6, 1.4, 0.2, 3.3)
        sent = list(analyzer)[a0:]
        assert len(matrix) == m0
        assert not any(m.startswith(("DV", "CN", "CL")) or ";DV" in m for m in sent), sent
        runs = [m for m in sent if m == ":PMU:EXECUTE" or m.startswith("WGFMU:CLEAR;")]
        assert len(runs) == 1
        if path == WGFMU_STATION:  # both channels' waveforms went in the one execution
            waves = bench["analyzer_b1500a"].instrument.wgfmus
            assert [v for _dt, v in waves[402].wave][1:7] == [1.4, 1.4, 1.4, 1.4, 3.3, 3.3]
            assert max(v for _dt, v in waves[401].wave) == 1.3
        ops = list(bench.analyzer_bench.operations)[-2:]
    first = twin.read(2, 1, 0.2, 3.3)  # the setup read above, on the twin
    assert trace is not None
    want_trace = twin.pulse_trace(2, 1, 1.3, 1.4, 2.5e-6, trace.times)
    twin.pulse(2, 1, 1.3, 1.4, 2.5e-6)
    want = twin.read_current(2, 1, 0.2, vg=3.3)[0] / 0.2
    assert np.array_equal(trace.currents, want_trace)
    assert g == want and g != first[0]
    assert [op[0] for op in ops] == ["pulse", "read_current"]
    assert ops[0][1]["vg"] == [1.4] and ops[1][1]["vg"] == 3.3


@pytest.mark.parametrize("path", [PMU_STATION, WGFMU_STATION], ids=["pmu", "wgfmu"])
async def test_fused_operation_equals_pulse_then_read_on_the_emulator(path: Path) -> None:
    """StationBackend.pulse_and_read (one execution per cell) gives bit for bit what the in-process
    backend's pulse then read gives, set and reset cells mixed, a 0 V cell only read; the old
    wiring (gate on the SMU) too; each pulse's transient is kept."""
    r, c = CELLS
    v, vg = np.array([1.3, -1.2, 0.0]), np.array([1.4, 3.3, 1.4])
    async with EmulatorBackend(array=formed()) as reference:
        await reference.pulse(r, c, v, vg, 2.5e-6)
        want1 = await reference.read(r, c, 0.2, 3.3)
        want2 = await reference.pulse_and_read(r, c, -v, vg[::-1], 2.5e-6, 0.2, 3.3)  # the default: pulse, read
    for config in (path, without_pulse_gate(path)):
        async with station(config, formed()) as (backend, _bench):
            got1 = await backend.pulse_and_read(r, c, v, vg, 2.5e-6, 0.2, 3.3)
            got2 = await backend.pulse_and_read(r, c, -v, vg[::-1], 2.5e-6, 0.2, 3.3)
            traces = list(backend.traces)
        assert np.array_equal(got1, want1) and np.array_equal(got2, want2)
        assert [(t.row, t.col) for t in traces] == [(2, 1), (0, 3), (2, 1), (0, 3)]
        assert [t.trace.voltage for t in traces] == [1.3, -1.2, -1.3, 1.2]


async def test_gate_limits_are_refused_before_anything_is_sent() -> None:
    async with station(PMU_STATION, formed()) as (backend, bench):
        st = backend.station
        assert st is not None and st.pulse_gate is not None
        await st.read(2, 1)
        received = [s.received for s in bench.servers.values()]
        before = [len(x) for x in received]
        r, c = np.array([2]), np.array([1])
        with pytest.raises(ValueError, match="vg"):
            await backend.pulse_and_read(r, c, 1.3, 3.5, 2.5e-6, 0.2, 3.3)  # pulse_gate / gate |V| <= 3.3
        with pytest.raises(ValueError, match="vg_read"):
            await backend.pulse_and_read(r, c, 1.3, 1.4, 2.5e-6, 0.2, 3.4)
        with pytest.raises(ValueError, match="v"):
            await backend.pulse_and_read(r, c, 2.5, 1.4, 2.5e-6, 0.2, 3.3)  # terminals.pulse 2.0 V
        with pytest.raises(LimitError, match="vg_read"):
            await st.pulse_and_read(2, 1, 1.3, 2.5e-6, 1.4, 0.2, 3.6)
        with pytest.raises(LimitError, match="vg"):
            await st.pulser.pulse(1.3, 2.5e-6, gate=st.pulse_gate, vg=-3.5)
        with pytest.raises(LimitError, match="gate"):  # the gate must be another channel of the unit
            await st.pulser.read(0.2, gate=st.pulser, vg=3.3)
        assert [len(x) for x in received] == before


async def test_both_outputs_go_off_when_an_execution_fails_and_the_error_is_reported() -> None:
    async with station(PMU_STATION, formed()) as (backend, bench):
        st = backend.station
        assert st is not None
        analyzer = bench["analyzer_4200a"].instrument
        r, c = np.array([2]), np.array([1])
        await backend.pulse_and_read(r, c, 1.3, 1.4, 2.5e-6, 0.2, 3.3)
        assert analyzer.pmu[1].output and analyzer.pmu[2].output
        # Behind the driver's back (a front-panel reset of channel 2's sequences): the execution
        # is refused, leaves no data, and the driver reports the instrument's own error.
        analyzer.pmu[2].sequences.clear()
        with pytest.raises(InstrumentError, match=r":PMU:EXECUTE.*-111.*sequence \d+ is not defined"):
            await backend.pulse_and_read(r, c, 1.3, 1.4, 2.5e-6, 0.2, 3.3)
        assert not analyzer.pmu[1].output and not analyzer.pmu[2].output
        assert await st.instruments["analyzer_4200a"].read_errors() == []  # read and cleared
        # A point whose status word flags a current overflow is a fault too (10 nA... range).
        await backend.read(r, c)
        analyzer.pmu[1].current_range = 100e-9
        with pytest.raises(InstrumentError, match="fault"):
            await backend.pulse_and_read(r, c, 1.3, 1.4, 2.5e-6, 0.2, 3.3)
        assert not analyzer.pmu[1].output and not analyzer.pmu[2].output


async def test_both_outputs_go_off_on_cancellation() -> None:
    async with station(PMU_STATION, formed()) as (backend, bench):
        analyzer = bench["analyzer_4200a"].instrument
        r, c = np.array([2]), np.array([1])
        cancelled = 0
        for attempt in range(20):  # bounded: until one cancellation lands mid-exchange
            await backend.read(r, c)  # both channels on (the read ran with its gate)
            assert analyzer.pmu[1].output and analyzer.pmu[2].output
            task = asyncio.create_task(backend.pulse_and_read(r, c, 1.3 + 0.01 * attempt, 1.4, 2.5e-6, 0.2, 3.3))
            for _ in range(attempt + 1):  # a new waveform each time: its definition is in flight
                await asyncio.sleep(0)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                cancelled += 1
                assert not analyzer.pmu[1].output and not analyzer.pmu[2].output
                break
        assert cancelled == 1


async def test_wgfmu_channels_disconnect_on_error() -> None:
    async with station(WGFMU_STATION, formed()) as (backend, bench):
        b1500 = bench["analyzer_b1500a"].instrument
        r, c = np.array([2]), np.array([1])
        await backend.pulse_and_read(r, c, 1.3, 1.4, 2.5e-6, 0.2, 3.3)
        assert b1500.wgfmus[401].connected and b1500.wgfmus[402].connected
        b1500.max_abs_voltage = 1.0  # the bench now refuses the 1.3 V level: the library reports it
        with pytest.raises(WGFMUError, match="WGFMU_execute"):
            await backend.pulse_and_read(r, c, 1.3, 1.4, 2.5e-6, 0.2, 3.3)
        assert not b1500.wgfmus[401].connected and not b1500.wgfmus[402].connected


async def test_the_gate_smu_gets_its_row_back_for_sweeps() -> None:
    """SMU2 and PMU1-2 share one RPM output: a sweep after pulses gives it back to SMU2 (the sweep
    then forms the cell as the in-process array does), and pulses take it again."""
    twin = formed()
    async with station(PMU_STATION, formed()) as (backend, bench):
        r, c = np.array([2]), np.array([1])
        await backend.pulse_and_read(r, c, 1.3, 1.4, 2.5e-6, 0.2, 3.3)
        got = await backend.sweep(r, c, np.linspace(0.0, -1.2, 13), vg=3.3)
        analyzer = bench["analyzer_4200a"].instrument
        assert analyzer.pmu[2].rpm == 3 and bench.analyzer_bench.dc["k4200.smu2"].on
        after = await backend.pulse_and_read(r, c, 1.3, 1.4, 2.5e-6, 0.2, 3.3)
        assert analyzer.pmu[2].rpm == 0 and not bench.analyzer_bench.dc["k4200.smu2"].on
    twin.pulse(2, 1, 1.3, 1.4, 2.5e-6)
    twin.read(2, 1, 0.2, 3.3)
    want = twin.sweep([2], [1], np.linspace(0.0, -1.2, 13), vg=3.3)
    twin.pulse(2, 1, 1.3, 1.4, 2.5e-6)
    assert np.array_equal(got, want) and after[0] == twin.read(2, 1, 0.2, 3.3)[0]


def test_pulse_gate_shares_only_its_own_gate_supplys_row() -> None:
    data: dict[str, Any] = tomllib.loads(PMU_STATION.read_text())
    StationConfig.model_validate(data)
    data["terminals"]["pulse_gate"]["matrix_row"] = "A"  # the bit-line SMU's row
    with pytest.raises(ValueError, match=r"terminals.pulse_gate.matrix_row='A': already used by terminals.smu"):
        StationConfig.model_validate(data)
    data = tomllib.loads(PMU_STATION.read_text())
    data["instruments"]["other"] = {"resource": "TCPIP::127.0.0.1::1::SOCKET"}
    data["terminals"]["pulse_gate"]["instrument"] = "other"  # another instrument's output on SMU2's row
    with pytest.raises(ValueError, match="already used by terminals.gate"):
        StationConfig.model_validate(data)


async def test_the_gate_is_the_channel_closed_onto_the_word_line() -> None:
    """The emulated bench takes a cell's gate from the output its word line is closed to: with the
    word line on another row, the gate channel's waveform reaches no selector and the read is 0."""
    async with station(PMU_STATION, formed()) as (backend, _bench):
        st = backend.station
        assert st is not None and st.pulse_gate is not None
        await st.route(2, 1, "pulse", "smu")  # word line to SMU1's row (off), not to PMU1-2's
        assert await st.pulser.read(0.2, gate=st.pulse_gate, vg=3.3) == 0.0
        await st.route(2, 1, "pulse", "pulse_gate")
        assert await st.pulser.read(0.2, gate=st.pulse_gate, vg=3.3) > 1e-7
