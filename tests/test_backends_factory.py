"""open_backend specs, the station's virtual clock through the chip controller of the same emulator
(as `labctl emulate` serves them), and iteration_overhead on every backend."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import emulator
from emulator.controller import ChipController, PtyServer, serve_tcp
from emulator.instruments import InstrumentBench
from labctl.backends import ChipBackend, EmulatorBackend, StationBackend, open_backend
from labctl.backends.bench import iteration_overhead
from labctl.backends.station import ChipClock

pytestmark = pytest.mark.timeout(60)

STATION = Path(__file__).resolve().parents[1] / "examples" / "station-emulated.toml"


async def test_emulator_specs() -> None:
    default = open_backend("emulator")
    assert isinstance(default, EmulatorBackend) and (default.rows, default.cols) == (8, 4)
    b = open_backend("emulator:16x2?seed=5")
    assert (b.rows, b.cols) == (16, 2) and b.array.seed == 5
    # The spec's seed gives the same array as the constructor's.
    ref = EmulatorBackend(16, 2, seed=5)
    assert np.array_equal(b.array.device_parameters()["v_form"], ref.array.device_parameters()["v_form"])


@pytest.mark.parametrize(("spec", "words"), [
    ("", "spec"),
    ("emulator:8by4", "ROWSxCOLS"),
    ("emulator:8x4?seed=x", "seed"),
    ("emulator:8x4?sed=1", "unknown option"),
    ("http://example.org", "not a backend address"),
    ("station:", "station:PATH"),
    ("station:x.toml?clok=tcp://h:1", "unknown option"),
])
def test_bad_specs_are_named(spec: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        open_backend(spec)


async def test_chip_specs_over_tcp_and_pty() -> None:
    array = emulator.Array(8, 4, seed=1)
    controller = ChipController(array)
    server = await serve_tcp(controller, "127.0.0.1", 0)
    pty = PtyServer(controller)
    try:
        for spec in (f"tcp://127.0.0.1:{server.sockets[0].getsockname()[1]}", pty.path):
            backend = open_backend(spec)
            assert isinstance(backend, ChipBackend)
            async with backend:
                assert backend.info.kind == "chip" and backend.info.virtual_clock
                t0 = await backend.now()
                await backend.wait(2.5)
                assert await backend.now() == t0 + 2.5 == array.time
    finally:
        pty.close()
        await server.close()
        await controller.aclose()


async def test_station_spec_with_the_emulators_clock() -> None:
    """One array behind both the instruments and the chip controller, as `labctl emulate` runs:
    the station's wait moves that array's virtual clock through EMU_ADVANCE."""
    array = emulator.Array(8, 4, seed=1)
    controller = ChipController(array)
    server = await serve_tcp(controller, "127.0.0.1", 0)
    try:
        async with InstrumentBench(array) as bench:
            clock = f"tcp://127.0.0.1:{server.sockets[0].getsockname()[1]}"
            backend = open_backend(f"station:{STATION}?clock={clock}", resources=dict(bench.resources()))
            assert isinstance(backend, StationBackend) and isinstance(backend.clock, ChipClock)
            async with backend:
                assert backend.info.virtual_clock
                await backend.wait(60.0)
                assert await backend.now() == 60.0 == array.time
            assert controller.owner is None  # the clock's session ended with the backend
    finally:
        await server.close()
        await controller.aclose()


async def test_station_without_clock_sleeps() -> None:
    array = emulator.Array(8, 4, seed=1)
    async with InstrumentBench(array) as bench:
        async with open_backend(f"station:{STATION}", resources=dict(bench.resources())) as backend:
            assert not backend.info.virtual_clock
            t0 = await backend.now()
            await backend.wait(0.05)
            assert await backend.now() - t0 >= 0.05
        assert array.time == 0.0


async def test_iteration_overhead_runs_the_loop_on_every_backend() -> None:
    """Not a timing assertion: the function applies warmup + iterations pulses to the one cell
    and returns a finite host time."""
    array = emulator.Array(8, 4, seed=1)
    controller = ChipController(emulator.Array(8, 4, seed=1))
    server = await serve_tcp(controller, "127.0.0.1", 0)
    try:
        async with InstrumentBench(array) as bench:
            for backend, counts in (
                (EmulatorBackend(8, 4, seed=1), None),
                (ChipBackend(f"tcp://127.0.0.1:{server.sockets[0].getsockname()[1]}"), controller.array),
                (StationBackend(STATION, resources=dict(bench.resources())), array),
            ):
                async with backend:
                    seconds = await iteration_overhead(backend, iterations=6, warmup=2, row=3, col=2)
                pulses = (counts if counts is not None else backend.array).pulse_counts()  # type: ignore[attr-defined]
                assert np.isfinite(seconds) and seconds > 0
                assert pulses[3, 2] == 8 and pulses.sum() == 8
        with pytest.raises(ValueError, match="iterations"):
            await iteration_overhead(EmulatorBackend(), iterations=0)
    finally:
        await server.close()
        await controller.aclose()
