"""Faults: an instrument dies mid-sweep, a connection drops, a query goes unanswered."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from emulator.instruments import InstrumentBench
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
