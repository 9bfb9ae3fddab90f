"""Limits are refused before a byte is sent; the emulated instruments refuse again; outputs end
off on exceptions, cancellation and exit."""
from __future__ import annotations

import asyncio
import math
from pathlib import Path

import numpy as np
import pytest
from emulator.instruments import InstrumentBench
from labctl.core.limits import SafetyLimits
from labctl.instruments import (
    InstrumentError,
    Keithley2450,
    Keysight33500B,
    LimitError,
    Station,
)
from labctl.instruments.smu import staircase

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "station-emulated.toml"
LIMITS = SafetyLimits(max_abs_voltage=2.0, max_compliance=1e-3, max_pulse_width=1e-4,
                      max_pulse_energy=1e-8, min_load_resistance=1e3)
BENCH_SEED = 3  # the conftest bench's array


def received(bench: InstrumentBench) -> dict[str, int]:
    return {name: len(server.received) for name, server in bench.servers.items()}


async def test_smu_limits_refused_before_io(bench: InstrumentBench) -> None:
    async with Keithley2450(bench["smu_2450"].resource, name="smu", limits=LIMITS) as smu:
        ch = smu.channel
        before = received(bench)
        with pytest.raises(LimitError) as info:
            await ch.source_voltage.set(2.5)
        assert isinstance(info.value, ValueError)
        assert "source_voltage" in str(info.value) and "2.5" in str(info.value) and "2 V" in str(info.value)
        with pytest.raises(LimitError, match="current_limit=0.01"):
            await ch.current_limit.set(1e-2)
        with pytest.raises(LimitError, match="output.*only after current_limit"):
            await ch.output.set(True)  # no compliance set yet in this session
        with pytest.raises(LimitError, match="sweep.*current_limit"):
            await ch.sweep([0.0, 0.5])
        with pytest.raises(LimitError, match=r"voltages\[2\]"):
            await ch.sweep([0.0, 1.0, 3.0])
        with pytest.raises(LimitError, match="source_voltage"):
            await ch.source_voltage.set(float("nan"))
        assert received(bench) == before


async def test_pulse_limits_refused_before_io(bench: InstrumentBench) -> None:
    async with Keysight33500B(bench["pg_33522b"].resource, name="pg", limits=LIMITS) as pg:
        ch = pg[1]
        before = received(bench)
        with pytest.raises(LimitError, match="width=0.002"):
            await ch.width.set(2e-3)
        with pytest.raises(LimitError, match="high=3"):
            await ch.high.set(3.0)
        with pytest.raises(LimitError, match="max_pulse_energy"):
            await ch.setup_pulse(1.5, width=9e-5, period=1e-3)  # 2.25 V^2 / 1 kohm * 90 us = 200 nJ
        with pytest.raises(LimitError, match="output.*only after high, low, width"):
            await ch.output.set(True)
        with pytest.raises(LimitError, match="width"):
            await ch.setup_pulse(1.0, width=2e-6, period=1e-6)
        assert received(bench) == before
        await ch.setup_pulse(1.0, width=2.5e-6, period=1e-5)  # within every limit: accepted
        assert received(bench) != before


async def test_station_refuses_before_any_instrument_hears(bench: InstrumentBench) -> None:
    async with Station.from_file(EXAMPLE, dict(bench.resources())) as station:
        before = received(bench)
        with pytest.raises(LimitError, match="v=2.5"):
            await station.pulse(0, 0, v=2.5, width=2.5e-6, vg=1.4)  # pulse terminal: 2 V
        with pytest.raises(LimitError, match="vg=3.5"):
            await station.pulse(0, 0, v=1.0, width=2.5e-6, vg=3.5)  # gate terminal: 3.3 V
        with pytest.raises(LimitError, match="width"):
            await station.pulse(0, 0, v=1.0, width=5e-4, vg=1.4)  # pulse terminal: 100 us
        with pytest.raises(LimitError, match=r"voltages\[1\]"):
            await station.sweep(0, 0, [0.0, 3.9], vg=1.2, current_limit=1e-4)
        with pytest.raises(LimitError, match="current_limit"):
            await station.sweep(0, 0, staircase(0.0, 3.6, 181), vg=1.2, current_limit=5e-3)
        with pytest.raises(LimitError, match="row=8"):
            await station.read(8, 0)
        assert received(bench) == before
    assert bench.array.pulse_counts().sum() == 0 and not bench.array.formed().any()


async def test_emulated_instruments_enforce_limits_server_side(bench: InstrumentBench) -> None:
    """A client that skips the driver's checks still cannot exceed what the array tolerates."""
    async with Keysight33500B(bench["pg_33522b"].resource, name="pg") as pg:
        # Default 50 ohm load setting: 2.5 V programmed is 5 V at a high-impedance cell.
        await pg.configure("SOUR1:VOLT:LOW 0")
        with pytest.raises(InstrumentError, match="-222"):
            await pg.configure("SOUR1:VOLT:HIGH 2.5")
        with pytest.raises(InstrumentError, match="-221"):
            await pg.configure("OUTP1 ON")  # free-running output is refused
    async with Keithley2450(bench["smu_2450"].resource, name="smu") as smu:
        with pytest.raises(InstrumentError, match="-222"):
            await smu.configure(":SOUR:VOLT 12")  # beyond the array's 4 V


async def test_outputs_off_after_exception(bench: InstrumentBench) -> None:
    state = bench["smu_2450"].instrument
    with pytest.raises(RuntimeError, match="boom"):
        async with Keithley2450(bench["smu_2450"].resource, name="smu", limits=LIMITS) as smu:
            await smu.channel.current_limit.set(1e-4)
            await smu.channel.output.set(True)
            assert state.output is True
            raise RuntimeError("boom")
    assert state.output is False


async def test_outputs_off_after_cancellation(bench: InstrumentBench) -> None:
    smu_state = bench["smu_2450"].instrument
    pg_state = bench["pg_33522b"].instrument.channels[1]
    gate_state = bench["smu_b2902a"].instrument.channels[2]
    started = asyncio.Event()
    bench.array.sweep(1, 1, np.linspace(0, 3.6, 37), vg=1.2)

    async def loop() -> None:
        async with Station.from_file(EXAMPLE, dict(bench.resources())) as station:
            while True:
                await station.pulse(1, 1, 1.35, 2.5e-6, vg=1.4)
                started.set()
                await station.read(1, 1)

    task = asyncio.create_task(loop())
    await asyncio.wait_for(started.wait(), 10)
    assert pg_state.output and gate_state.output
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not smu_state.output and not pg_state.output and not gate_state.output
    assert bench.bench.closed == set()
    assert pg_state.load == math.inf
