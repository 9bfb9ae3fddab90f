"""Chip and station backends: bad parameters refused before any I/O, outputs off after an exception
and after cancellation (checked on the emulated controller and instruments), dead endpoints named.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import emulator
from emulator.controller import ChipController, serve_tcp
from emulator.instruments import InstrumentBench
from labctl.backends import ArrayBackend, EmulatorBackend, ProgramSettings, open_backend
from labctl.backends.chip import ChipBackend
from labctl.backends.station import ArrayClock, StationBackend
from labctl.instruments import InstrumentConnectionError

from helpers import free_port

pytestmark = pytest.mark.timeout(60)

STATION = Path(__file__).resolve().parents[1] / "examples" / "station-emulated.toml"
ONE = np.array([0])


@dataclass
class Served:
    """A backend and a way to see what reached the emulated endpoint."""

    backend: ArrayBackend
    array: emulator.Array
    traffic: Any  # () -> int: messages or commands the endpoint has handled so far
    endpoint: Any  # ChipController or InstrumentBench


@pytest.fixture
async def chip() -> AsyncIterator[Served]:
    async for served in _chip():
        yield served


@pytest.fixture
async def station() -> AsyncIterator[Served]:
    async for served in _station():
        yield served


@pytest.fixture
async def served(request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    async for s in (_chip() if request.param == "chip" else _station()):
        yield s


async def _chip() -> AsyncIterator[Served]:
    array = emulator.Array(8, 4, seed=3)
    controller = ChipController(array)
    server = await serve_tcp(controller, "127.0.0.1", 0)
    backend = ChipBackend(f"tcp://127.0.0.1:{server.sockets[0].getsockname()[1]}", timeout=0.5, retries=1)
    try:
        async with backend:
            yield Served(backend, array, lambda: controller.executed, controller)
    finally:
        await server.close()
        await controller.aclose()


async def _station() -> AsyncIterator[Served]:
    array = emulator.Array(8, 4, seed=3)
    async with InstrumentBench(array) as bench:
        backend = StationBackend(STATION, resources=dict(bench.resources()), clock=ArrayClock(array))
        async with backend:
            yield Served(backend, array, lambda: sum(len(s.received) for s in bench.servers.values()), bench)


BAD_CALLS = [
    # (description, call, words the message must contain)
    ("cell outside", lambda b: b.read(np.array([8]), np.array([0])), ["rows", "8", "0..7"]),
    ("col outside", lambda b: b.pulse(np.array([0]), np.array([-1]), 1.0, 1.4, 2.5e-6), ["cols", "-1"]),
    ("pulse too high", lambda b: b.pulse(ONE, ONE, 4.5, 1.4, 2.5e-6), ["v", "4.5"]),
    ("width too long", lambda b: b.pulse(ONE, ONE, 1.0, 1.4, 10.0), ["width", "10"]),
    ("width zero", lambda b: b.pulse(ONE, ONE, 1.0, 1.4, 0.0), ["width"]),
    ("gate too high", lambda b: b.pulse(ONE, ONE, 1.0, 5.0, 2.5e-6), ["vg", "5"]),
    ("sweep too high", lambda b: b.sweep(ONE, ONE, np.array([0.0, 4.2]), 1.2), ["voltages", "4.2"]),
    ("compliance", lambda b: b.sweep(ONE, ONE, np.array([0.0, 1.0]), 1.2, compliance=1.0), ["compliance", "1"]),
    ("zero read bias", lambda b: b.read(ONE, ONE, 0.0), ["v_read"]),
    ("negative wait", lambda b: b.wait(-1.0), ["seconds", "-1"]),
    ("second cell bad", lambda b: b.pulse(np.array([0, 0]), np.array([0, 0]), np.array([1.0, 9.0]), 1.4, 2.5e-6),
     ["v", "9"]),
]


@pytest.mark.parametrize(("what", "call", "words"), BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
@pytest.mark.parametrize("served", ["chip", "station"], indirect=True)
async def test_bad_parameters_refused_before_io(served: Served, what: str, call: Any, words: list[str]) -> None:
    s = served
    before_traffic, before_state = s.traffic(), s.array.snapshot()
    with pytest.raises(ValueError) as info:
        await call(s.backend)
    for word in words:
        assert word in str(info.value), f"{what}: {word!r} not in {info.value}"
    assert s.traffic() == before_traffic, f"{what}: something was sent"
    assert s.array.snapshot() == before_state


async def test_station_limits_come_from_the_station_file(station: Served) -> None:
    lim = station.backend.limits
    # examples/station-emulated.toml: smu 3.6 V, gate 3.3 V, pulse 1e-4 s, station 1 mA.
    assert (lim.max_abs_voltage, lim.max_gate_voltage, lim.max_pulse_width, lim.max_compliance) == (
        3.6, 3.3, 1e-4, 1e-3)
    assert lim.min_pulse_width > 0  # the generator's shortest pulse
    with pytest.raises(ValueError, match="v: 2.5 V exceeds the limit"):  # pulse terminal: 2 V
        await station.backend.pulse(ONE, ONE, 2.5, 1.4, 2.5e-6)
    with pytest.raises(ValueError, match="dwell"):  # below the SMU's shortest aperture
        await station.backend.sweep(ONE, ONE, np.array([0.0, 0.1]), 1.2, dwell=1e-6)
    ids = station.backend.info.identity
    assert ids["smu_2450"].startswith("KEITHLEY INSTRUMENTS,MODEL 2450")
    assert "33522B" in ids["pg_33522b"] and "707B" in ids["matrix_707b"]
    assert not station.backend.info.native_program
    with pytest.raises(NotImplementedError, match="station"):
        await station.backend.program(ONE, ONE, np.array([50e-6]), ProgramSettings())


async def test_chip_limits_and_identity_come_from_info(chip: Served) -> None:
    info, lim = chip.backend.info, chip.backend.limits
    arr_lim = chip.array.limits
    assert (lim.max_abs_voltage, lim.max_gate_voltage, lim.min_pulse_width, lim.max_pulse_width) == (
        arr_lim.v_max, arr_lim.vg_max, arr_lim.width_min, arr_lim.width_max)
    assert info.native_program and info.virtual_clock and (info.rows, info.cols) == (8, 4)
    assert "labctl-emulator" in info.identity["controller"]


def pulser_output(bench: InstrumentBench) -> bool:
    return bool(bench["pg_33522b"].instrument.channels[1].output)


def station_idle(bench: InstrumentBench) -> bool:
    """Every DC output off, every pulse output off, every crosspoint open."""
    b = bench.bench
    pulses = [ch.output for name in ("pg_33522b", "pg_81160a") for ch in bench[name].instrument.channels.values()]
    return not b.closed and not any(state.on for state in b.dc.values()) and not any(pulses)


async def test_station_outputs_off_after_exception() -> None:
    array = emulator.Array(8, 4, seed=3)
    async with InstrumentBench(array) as bench:
        backend = StationBackend(STATION, resources=dict(bench.resources()))
        with pytest.raises(RuntimeError, match="boom"):
            async with backend:
                await backend.pulse(ONE, ONE, 1.35, 1.4, 2.5e-6)
                assert pulser_output(bench) and bench.bench.closed  # on while in use
                raise RuntimeError("boom")
        assert station_idle(bench)


async def test_station_outputs_off_after_cancellation() -> None:
    array = emulator.Array(8, 4, seed=3)
    async with InstrumentBench(array) as bench:
        backend = StationBackend(STATION, resources=dict(bench.resources()))
        started = asyncio.Event()

        async def work() -> None:
            async with backend:
                r, c = np.divmod(np.arange(32), 4)
                for _ in range(100):
                    await backend.pulse(r, c, 1.35, 1.4, 2.5e-6)
                    started.set()

        task = asyncio.create_task(work())
        await asyncio.wait_for(started.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert station_idle(bench)
        assert 32 <= array.pulse_counts().sum() < 3200  # stopped part way


async def test_chip_command_aborted_after_cancellation() -> None:
    array = emulator.Array(64, 64, seed=3)
    controller = ChipController(array)
    server = await serve_tcp(controller, "127.0.0.1", 0)
    address = f"tcp://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        backend = ChipBackend(address, timeout=0.5)
        started = asyncio.Event()

        async def work() -> None:
            async with backend:
                r, c = np.divmod(np.arange(64 * 64), 64)
                started.set()
                # Pristine cells never reach 50 uS: each runs its whole iteration bound.
                await backend.program(r, c, np.full(r.size, 50e-6), ProgramSettings(max_iterations=20_000))

        task = asyncio.create_task(work())
        await asyncio.wait_for(started.wait(), 10)
        await asyncio.sleep(0.2)
        assert controller.job is not None  # SET_TARGET_G is running
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(100):  # ABORT stops it at the next safe point (about 50 ms of work)
            if controller.job is None and controller.owner is None:
                break
            await asyncio.sleep(0.02)
        assert controller.job is None and controller.owner is None
        done = array.pulse_counts().sum()
        assert 0 < done < 64 * 64 * 20_000
        await asyncio.sleep(0.2)
        assert array.pulse_counts().sum() == done  # nothing more is applied
        async with ChipBackend(address) as again:  # the controller is free for the next host
            assert again.info.rows == 64
    finally:
        await server.close()
        await controller.aclose()


async def test_dead_chip_controller_is_named() -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(ConnectionError, match=f"chip controller {address}"):
        async with open_backend(address):
            pass
    # A controller that dies during a session.
    array = emulator.Array(8, 4, seed=3)
    controller = ChipController(array)
    server = await serve_tcp(controller, "127.0.0.1", 0)
    address = f"tcp://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    backend = ChipBackend(address, timeout=0.2, retries=1)
    # The error that says what happened first is the one that comes out, not the failed ABORT
    # on leaving the context.
    with pytest.raises(ConnectionError, match=f"chip controller {address}: READ failed"):
        async with backend:
            await backend.read(ONE, ONE)
            await server.close()
            await controller.aclose()
            await backend.read(ONE, ONE)
    assert backend.client is None  # closed all the same


async def test_dead_instrument_is_named() -> None:
    array = emulator.Array(8, 4, seed=3)
    async with InstrumentBench(array) as bench:
        resources = dict(bench.resources())
        resources["pg_33522b"] = f"TCPIP::127.0.0.1::{free_port()}::SOCKET"
        with pytest.raises(InstrumentConnectionError, match="pg_33522b"):
            async with StationBackend(STATION, resources=resources):
                pass
        assert station_idle(bench)  # the instruments that did open were switched off again
        backend = StationBackend(STATION, resources=dict(bench.resources()))
        with pytest.raises(InstrumentConnectionError, match="smu_2450"):
            async with backend:
                await backend.read(ONE, ONE)
                await bench["smu_2450"].kill()
                await backend.read(ONE, ONE)
        assert not pulser_output(bench) and not bench.bench.closed


async def test_emulator_backend_refuses_the_same_bad_parameters() -> None:
    """The in-process backend refuses what the others refuse (the routines see one contract)."""
    async with EmulatorBackend(8, 4, seed=3) as b:
        for what, call, words in BAD_CALLS:
            before = b.array.snapshot()
            with pytest.raises(ValueError) as info:
                await call(b)
            assert all(w in str(info.value) for w in words[:1]), f"{what}: {info.value}"
            assert b.array.snapshot() == before
