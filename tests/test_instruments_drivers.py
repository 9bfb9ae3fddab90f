"""Every driver against its emulated server, through pyvisa-py on loopback TCP."""
from __future__ import annotations

import math

import numpy as np
import pytest
from emulator.instruments import InstrumentBench, line_column
from labctl.core.limits import SafetyLimits
from labctl.instruments import (
    InstrumentError,
    Keithley707B,
    Keithley2450,
    Keysight33500B,
    Keysight81160A,
    KeysightB2900,
    LimitError,
    open_instrument,
)

ROWS, COLS = 8, 4
SMU_LIMITS = SafetyLimits(max_abs_voltage=3.6, max_compliance=1e-3)
GATE_LIMITS = SafetyLimits(max_abs_voltage=3.3, max_compliance=1e-4)
PULSE_LIMITS = SafetyLimits(max_abs_voltage=2.0, max_pulse_width=1e-4)
BENCH_SEED = 5  # the conftest bench's array


def res(bench: InstrumentBench, name: str) -> str:
    return bench[name].resource


def crosspoint(kind: str, index: int, matrix_row: str) -> str:
    slot, column = line_column(kind, index, ROWS, COLS)
    return f"{slot}{matrix_row}{column:02d}"


def cell_route(row: int, col: int, terminal_row: str) -> list[str]:
    """Bit line to the terminal, word line to the B2902A channel 2 (row C), source line to ground."""
    return [crosspoint("BL", col, terminal_row), crosspoint("WL", row, "C"), crosspoint("SL", row, "F")]


async def gate_on(b29: KeysightB2900, vg: float) -> None:
    await b29[2].current_limit.set(1e-4)
    await b29[2].source_voltage.set(vg)
    await b29[2].output.set(True)


async def test_identification_picks_each_driver(bench: InstrumentBench) -> None:
    expected = {
        "smu_2450": Keithley2450, "smu_b2902a": KeysightB2900, "pg_33522b": Keysight33500B,
        "pg_81160a": Keysight81160A, "matrix_707b": Keithley707B,
    }
    for name, cls in expected.items():
        inst = await open_instrument(res(bench, name), name=name)
        try:
            assert type(inst) is cls
            assert inst.identity is not None and inst.identity.serial
        finally:
            await inst.close()


async def test_wrong_driver_is_refused(bench: InstrumentBench) -> None:
    with pytest.raises(InstrumentError, match="not a model Keithley2450 drives"):
        async with Keithley2450(res(bench, "pg_33522b"), name="smu"):
            pass


async def test_2450_configuration_readback_and_error_queue(bench: InstrumentBench) -> None:
    async with Keithley2450(res(bench, "smu_2450"), name="smu", limits=SMU_LIMITS) as smu:
        ch = smu.channel
        await ch.current_limit.set(2e-4)
        await ch.source_voltage.set(0.2)
        await ch.nplc.set(0.1)
        await ch.sense_function.set("CURR")
        assert await ch.current_limit.get() == pytest.approx(2e-4)
        assert await ch.source_voltage.get() == pytest.approx(0.2)
        assert await ch.nplc.get() == pytest.approx(0.1)
        assert await ch.output.get() is False
        # A command the instrument refuses is raised with instrument, command and error.
        with pytest.raises(InstrumentError) as info:
            await smu.configure(":SENS:CURR:NPLC 50")
        text = str(info.value)
        assert "smu" in text and ":SENS:CURR:NPLC 50" in text and "-222" in text
        assert await smu.read_errors() == []


async def test_2450_staircase_and_list_sweeps_form_a_cell(bench: InstrumentBench) -> None:
    arr = bench.array
    async with (
        Keithley707B(res(bench, "matrix_707b"), name="matrix") as matrix,
        KeysightB2900(res(bench, "smu_b2902a"), name="gate", limits={2: GATE_LIMITS}) as b29,
        Keithley2450(res(bench, "smu_2450"), name="smu", limits=SMU_LIMITS) as smu,
    ):
        await matrix.exclusive_close(cell_route(3, 2, "A"))
        await gate_on(b29, 1.2)
        ch = smu.channel
        await ch.current_limit.set(5e-4)
        await ch.nplc.set(0.01)
        result = await ch.staircase_sweep(0.0, 3.6, 91, delay=1e-3)
        assert len(result.voltages) == 91
        assert arr.formed()[3, 2] and arr.formed().sum() == 1
        # After forming the SMU runs into its 500 uA compliance: the current reads the limit and
        # the applied voltage stays below the programmed 3.6 V.
        assert np.max(np.abs(result.currents)) <= 5e-4 * (1 + 1e-6)
        assert result.currents[-1] == pytest.approx(5e-4)
        assert result.voltages[-1] < 3.6
        assert await ch.output.get() is False  # the sweep leaves the output off
        listed = await ch.sweep([0.1, 0.2, -0.1], delay=0.0)
        assert listed.voltages.tolist() == pytest.approx([0.1, 0.2, -0.1])
        assert listed.currents[1] > listed.currents[0] > 0 > listed.currents[2]
        await ch.source_voltage.set(0.2)
        await ch.output.set(True)
        i_read = await ch.measure_current()
        assert 0 < i_read < 5e-4


async def test_b2900_two_channels_sweep_and_measure(bench: InstrumentBench) -> None:
    async with (
        Keithley707B(res(bench, "matrix_707b"), name="matrix") as matrix,
        KeysightB2900(res(bench, "smu_b2902a"), name="b2902a",
                      limits={1: SMU_LIMITS, 2: GATE_LIMITS}) as b29,
    ):
        assert sorted(b29.channels) == [1, 2]
        await matrix.exclusive_close(cell_route(0, 0, "B"))
        await gate_on(b29, 1.2)
        ch1 = b29[1]
        await ch1.current_limit.set(5e-4)
        await ch1.nplc.set(0.01)
        result = await ch1.staircase_sweep(0.0, 3.6, 73)
        assert bench.array.formed()[0, 0]
        assert len(result.currents) == 73 and result.voltages[36] == pytest.approx(1.8)
        listed = await ch1.sweep([0.2, 0.1])
        assert listed.currents[0] > listed.currents[1] > 0
        await ch1.source_voltage.set(0.2)
        await ch1.output.set(True)
        assert await ch1.measure_current() > 0
        assert await b29[2].source_voltage.get() == pytest.approx(1.2)


async def _burst_test(bench: InstrumentBench, cls: type, name: str, row: str) -> None:
    arr = bench.array
    arr.sweep(1, 3, np.linspace(0, 3.6, 37), vg=1.2)  # form the cell directly
    before = arr.pulse_counts()[1, 3]
    g0 = arr.conductance_matrix()[1, 3]
    async with (
        Keithley707B(res(bench, "matrix_707b"), name="matrix") as matrix,
        KeysightB2900(res(bench, "smu_b2902a"), name="gate", limits={2: GATE_LIMITS}) as b29,
        cls(res(bench, name), name="pg", limits=PULSE_LIMITS) as pg,
    ):
        await matrix.exclusive_close(cell_route(1, 3, row))
        await gate_on(b29, 3.3)
        ch = pg[1]
        await ch.setup_pulse(-1.3, width=2.5e-6, period=10e-6, count=5)
        assert await ch.width.get() == pytest.approx(2.5e-6)
        assert await ch.period.get() == pytest.approx(10e-6)
        assert await ch.burst_count.get() == 5
        assert await ch.low.get() == pytest.approx(-1.3)
        assert await ch.polarity.get() == "INV"
        assert await ch.load.get() == math.inf
        await ch.output.set(True)
        await ch.trigger()
        assert arr.pulse_counts()[1, 3] == before + 5
        assert arr.pulse_counts().sum() == before + 5  # nothing else was hit
        assert arr.conductance_matrix()[1, 3] != g0
        with pytest.raises(InstrumentError, match="-221"):
            await pg.configure(f"{'SOUR1:' if cls is Keysight33500B else ':'}FUNC SIN;*TRG")
    assert bench[name].instrument.channels[1].output is False


async def test_33500b_burst_reaches_the_routed_cell(bench: InstrumentBench) -> None:
    await _burst_test(bench, Keysight33500B, "pg_33522b", "D")


async def test_81160a_burst_reaches_the_routed_cell(bench: InstrumentBench) -> None:
    await _burst_test(bench, Keysight81160A, "pg_81160a", "E")


async def test_pulse_generator_output_limits(bench: InstrumentBench) -> None:
    async with Keysight33500B(res(bench, "pg_33522b"), name="pg") as pg:
        ch = pg[1]
        await ch.load.set(math.inf)
        await ch.limit_high.set(1.0)
        await ch.limit_low.set(-1.0)
        await ch.set_levels(0.5, 0.0)
        await ch.limit_enabled.set(True)
        with pytest.raises(InstrumentError, match="-222"):
            await ch.high.set(1.5)
        assert await ch.high.get() == pytest.approx(0.5)
        await ch.amplitude.set(0.4)
        await ch.offset.set(0.1)
        assert await ch.high.get() == pytest.approx(0.3)


async def test_707b_close_open_and_errors(bench: InstrumentBench) -> None:
    async with Keithley707B(res(bench, "matrix_707b"), name="matrix") as matrix:
        await matrix.close_channels(["1A01", "1c05"])
        assert await matrix.closed_channels() == ["1A01", "1C05"]
        await matrix.open_channels(["1A01"])
        assert await matrix.closed_channels() == ["1C05"]
        await matrix.exclusive_close(["2F03", "1B02"])
        assert await matrix.closed_channels() == ["1B02", "2F03"]
        with pytest.raises(LimitError, match="channels"):
            await matrix.close_channels(["1I01"])
        with pytest.raises(InstrumentError, match="-222"):
            await matrix.configure('channel.close("9A01")')  # slot 9 is not installed
    assert bench.bench.closed == set()  # leaving the context opens every crosspoint


async def test_unknown_commands_are_answered_by_the_error_queue(bench: InstrumentBench) -> None:
    async with Keithley2450(res(bench, "smu_2450"), name="smu") as smu:
        await smu.write(":FROB:NICATE 1")
        await smu.write("*FOO")
        errors = await smu.read_errors()
        assert [code for code, _ in errors] == [-113, -113]
        assert "FROB" in errors[0][1]
        assert (await smu.ask("*IDN?")).startswith("KEITHLEY")  # still serving
    async with Keithley707B(res(bench, "matrix_707b"), name="matrix") as matrix:
        await matrix.write("display.frobnicate()")
        await matrix.write(":FROB?")
        codes = [code for code, _ in await matrix.read_errors()]
        assert codes == [-286, -113]
