"""Every routine gives identical results, to the last bit, through the three backends.

Three 8x4 arrays of one seed: one called in process (EmulatorBackend, native closed loop), one behind
the emulated chip controller over TCP (ChipBackend, SET_TARGET_G), one behind the emulated instruments
of the example station file (StationBackend: one cell at a time, the closed loop on the host). Each runs
the same sequence of routines — forming to endurance, with small parameters to keep the test short —
and every result array must be equal, not close.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import emulator
from emulator.controller import ChipController, serve_tcp
from emulator.instruments import InstrumentBench
from labctl.backends import ArrayBackend, EmulatorBackend
from labctl.backends.chip import ChipBackend
from labctl.backends.station import ArrayClock, StationBackend
from labctl.routines import (
    ClosedLoopParams,
    ConditionParams,
    EnduranceParams,
    FormingParams,
    IncrementalParams,
    IVParams,
    OpenLoopParams,
    ProgrammingNoiseParams,
    PulseTrainParams,
    ReadNoiseParams,
    RelaxationParams,
    RoutineContext,
    SymmetryPointParams,
    condition,
    endurance,
    form,
    iv_cycles,
    open_loop,
    program,
    program_incremental,
    programming_noise,
    pulse_train,
    read_noise,
    relaxation,
    symmetry_point,
)

pytestmark = pytest.mark.timeout(240)

STATION = Path(__file__).resolve().parents[1] / "examples" / "station-emulated.toml"
SEED = 11
ROWS, COLS = 8, 4
# Cells in an order that is not row-major, so the backends' cell addressing is exercised too.
ORDER = np.random.default_rng(5).permutation(ROWS * COLS)
R, C = np.divmod(ORDER, COLS)

LEVELS = [15e-6, 30e-6, 45e-6, 60e-6, 75e-6, 88e-6]
SEQUENCE: list[tuple[str, Any, Any]] = [
    ("form", form, FormingParams(step=0.02)),
    ("condition", condition, ConditionParams(step=0.05)),
    ("iv", iv_cycles, IVParams(cycles=1, step=0.05)),
    ("program", program, ClosedLoopParams(levels=LEVELS, tolerance=0.03, max_iterations=25, sweep_step=0.05)),
    ("incremental", program_incremental,
     IncrementalParams(levels=LEVELS[::-1], tolerance=0.03, max_iterations=25, max_per_polarity=8, max_flips=3,
                       sweep_step=0.05)),
    ("train", pulse_train, PulseTrainParams(batch=4, cycles=1)),
    ("symmetry", symmetry_point, SymmetryPointParams(pulses=5)),
    ("open_loop", open_loop, OpenLoopParams(batch=4, cycles=1, pulses=4, keep_traces=True)),
    ("noise", programming_noise, ProgrammingNoiseParams(
        program=ClosedLoopParams(levels=[25e-6, 65e-6], tolerance=0.08, max_iterations=12, sweep_step=0.05))),
    ("read_noise", read_noise, ReadNoiseParams(repeats=2, interval=0.5)),
    ("relaxation", relaxation, RelaxationParams(
        program=ClosedLoopParams(targets=50e-6, tolerance=0.1, max_iterations=12, reset_first=False),
        t_first=1.0, t_last=1000.0, points_per_decade=1)),
    ("endurance", endurance, EnduranceParams(max_cycles=4, check_every=2, pulses_per_switch=2)),
]


@pytest.fixture
async def backends() -> AsyncIterator[dict[str, ArrayBackend]]:
    """Three open backends, each on its own array of seed SEED."""
    async with AsyncExitStack() as stack:
        out: dict[str, ArrayBackend] = {}
        out["emulator"] = await stack.enter_async_context(EmulatorBackend(ROWS, COLS, seed=SEED))
        controller = ChipController(emulator.Array(ROWS, COLS, seed=SEED))
        stack.push_async_callback(controller.aclose)
        server = await serve_tcp(controller, "127.0.0.1", 0)
        stack.push_async_callback(server.close)
        out["chip"] = await stack.enter_async_context(
            ChipBackend(f"tcp://127.0.0.1:{server.sockets[0].getsockname()[1]}", timeout=5.0))
        array = emulator.Array(ROWS, COLS, seed=SEED)
        bench = await stack.enter_async_context(InstrumentBench(array))
        out["station"] = await stack.enter_async_context(
            StationBackend(STATION, resources=dict(bench.resources()), clock=ArrayClock(array)))
        yield out


async def run_sequence(backend: ArrayBackend) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Every routine in SEQUENCE; all result arrays (prefixed by step) and the summaries."""
    arrays: dict[str, np.ndarray] = {}
    summaries: dict[str, Any] = {}
    for name, routine, params in SEQUENCE:
        res = await routine(backend, R, C, params, RoutineContext())
        arrays.update({f"{name}.{k}": v for k, v in res.arrays().items()})
        summaries[name] = res.summary()
    arrays["final"] = await backend.read_array()
    return arrays, summaries


async def test_every_routine_identical_on_three_backends(backends: dict[str, ArrayBackend]) -> None:
    results = {name: await run_sequence(b) for name, b in backends.items()}
    ref, ref_summary = results["emulator"]
    for name, (arrays, summary) in results.items():
        assert arrays.keys() == ref.keys()
        for key, a in ref.items():
            b = arrays[key]
            assert a.shape == b.shape, f"{key}: {name} shape {b.shape} != emulator {a.shape}"
            assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), f"{key}: {name} differs from the emulator"
        for step in ref_summary:
            s, r = dict(summary[step]), dict(ref_summary[step])
            # Where the closed loop ran is the one thing allowed to differ.
            for d in (s, r):
                d.pop("loop", None)
                d.pop("program_loop", None)
            assert s == r, f"{step}: {name} summary differs"
    # Both ways of running the closed loop were exercised, and the sequence measured something.
    assert backends["station"].info.native_program is False and backends["chip"].info.native_program is True
    assert ref_summary["program"]["converged"] >= 1 and ref_summary["program"]["iterations_max"] > 1
    assert ref_summary["form"]["formed"] == ROWS * COLS
