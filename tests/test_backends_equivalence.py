"""The same seed and the same operations give bit-identical results through every backend.

Four arrays with one seed: one called in process (EmulatorBackend), one behind the chip controller
over TCP, one behind it over a pseudo-terminal (ChipBackend), one behind the emulated instruments
of the example station file over pyvisa (StationBackend). Each backend runs the same sequence of
primitives; every float must be equal, not close. The emulator draws noise per cell from a counter,
so this holds only if no backend adds an operation on a cell (instruments do not move the clock)
and every value crosses the wire at full precision.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import numpy as np
import pytest

import emulator
from emulator.controller import ChipController, PtyServer, serve_tcp
from emulator.instruments import InstrumentBench
from labctl.backends import ArrayBackend, EmulatorBackend, ProgramOutcome, ProgramSettings
from labctl.backends.chip import ChipBackend
from labctl.backends.station import ArrayClock, StationBackend
from labctl.core.schemes import IdenticalScheme, IncrementalScheme

pytestmark = pytest.mark.timeout(120)

STATION = Path(__file__).resolve().parents[1] / "examples" / "station-emulated.toml"
SEED = 7
ROWS, COLS = 8, 4
FORM = np.arange(361) * 0.01  # 0 -> 3.6 V in 10 mV steps (reference forming sweep)
CONDITION = np.linspace(0.0, -1.4, 141)  # reference: negative sweep to -1.4 V at VG 3.3 V
# Cells in an order that is not row-major, with rows and columns shared.
CELLS_R = np.array([5, 0, 2, 7, 2, 3])
CELLS_C = np.array([1, 0, 3, 2, 0, 3])

@pytest.fixture
async def backends() -> AsyncIterator[dict[str, ArrayBackend]]:
    """Four open backends, each on its own array of seed SEED."""
    async with AsyncExitStack() as stack:
        out: dict[str, ArrayBackend] = {}
        out["emulator"] = await stack.enter_async_context(EmulatorBackend(ROWS, COLS, seed=SEED))
        out["emulator-host"] = await stack.enter_async_context(EmulatorBackend(ROWS, COLS, seed=SEED))
        for transport in ("tcp", "pty"):
            controller = ChipController(emulator.Array(ROWS, COLS, seed=SEED))
            stack.push_async_callback(controller.aclose)
            if transport == "tcp":
                server = await serve_tcp(controller, "127.0.0.1", 0)
                stack.push_async_callback(server.close)
                address = f"tcp://127.0.0.1:{server.sockets[0].getsockname()[1]}"
            else:
                pty = PtyServer(controller)
                stack.callback(pty.close)
                address = pty.path
            out[f"chip-{transport}"] = await stack.enter_async_context(ChipBackend(address, timeout=2.0))
        array = emulator.Array(ROWS, COLS, seed=SEED)
        bench = await stack.enter_async_context(InstrumentBench(array))
        out["station"] = await stack.enter_async_context(
            StationBackend(STATION, resources=dict(bench.resources()), clock=ArrayClock(array)))
        yield out


async def host_program(backend: ArrayBackend, rows: np.ndarray, cols: np.ndarray, targets: np.ndarray,
                       s: ProgramSettings) -> ProgramOutcome:
    """Program-and-verify run on the host, step for step as the controller runs it: read; inside
    target ± tolerance·target stop; below, one set pulse; above, one reset pulse; at most
    max_iterations verify reads, the last not followed by a pulse. Incremental: the amplitude
    grows by the step with each pulse of one polarity up to the stop, restarts on a flip."""
    scheme = s.scheme
    ref_set, ref_reset = scheme.start_amplitudes(targets)
    incremental = isinstance(scheme, IncrementalScheme)
    n = rows.size
    g = np.empty(n)
    iterations = np.zeros(n, dtype=np.int32)
    converged = np.zeros(n, dtype=bool)
    for k in range(n):
        cell = (rows[k:k + 1], cols[k:k + 1])
        amp_set, amp_reset = ref_set[k], ref_reset[k]
        run = flips = last = 0
        for it in range(s.max_iterations):
            g[k] = (await backend.read(*cell, s.v_read, s.vg_read))[0]
            if abs(g[k] - targets[k]) <= s.tolerance * targets[k]:
                converged[k] = True
                break
            if it == s.max_iterations - 1:
                break
            direction = 1 if g[k] < targets[k] else -1
            if incremental:
                if last != 0 and direction != last:
                    flips += 1
                    if scheme.max_flips > 0 and flips > scheme.max_flips:
                        break
                    run = 0
                    amp_set, amp_reset = ref_set[k], ref_reset[k]
                elif run > 0:
                    if direction > 0:
                        amp_set = min(amp_set + scheme.v_step_set, scheme.v_stop_set)
                    else:
                        amp_reset = max(amp_reset - scheme.v_step_reset, scheme.v_stop_reset)
                if scheme.max_per_polarity > 0 and run >= scheme.max_per_polarity:
                    break
            if direction > 0:
                await backend.pulse(*cell, amp_set, s.vg_set, s.width)
            else:
                await backend.pulse(*cell, amp_reset, s.vg_reset, s.width)
            iterations[k] += 1
            run = run + 1 if direction == last else 1
            last = direction
    return ProgramOutcome(g=g, iterations=iterations, converged=converged)


async def form_and_condition(backend: ArrayBackend) -> dict[str, np.ndarray]:
    return {
        "form": await backend.sweep(CELLS_R, CELLS_C, FORM, vg=1.2, dwell=1e-3),
        "condition": await backend.sweep(CELLS_R, CELLS_C, CONDITION, vg=3.3, dwell=1e-3),
    }


async def primitives(backend: ArrayBackend) -> dict[str, np.ndarray]:
    """Every primitive, in one sequence (a cell listed twice gets two operations, in order)."""
    out = await form_and_condition(backend)
    out["read"] = await backend.read(CELLS_R, CELLS_C, 0.2, 3.3)
    # Per-cell amplitudes, gates and widths; cell (2, 3) pulsed twice, set then reset.
    pr = np.array([5, 2, 0, 2, 7])
    pc = np.array([1, 3, 0, 3, 2])
    await backend.pulse(pr, pc, np.array([1.35, 1.5, 1.35, -1.3, -1.5]), np.array([1.4, 1.4, 1.2, 3.3, 3.3]),
                        np.array([2.5e-6, 2.5e-6, 5e-6, 2.5e-6, 1e-6]))
    out["read_twice"] = await backend.read(np.array([2, 5, 2]), np.array([3, 1, 3]), 0.2, 3.3)
    out["read_array"] = await backend.read_array(0.2, 3.3)
    out["t0"] = np.array([await backend.now()])
    await backend.wait(3600.0)
    out["t1"] = np.array([await backend.now()])
    out["read_relaxed"] = await backend.read(CELLS_R, CELLS_C, 0.2, 3.3)
    out["iv"] = await backend.sweep(CELLS_R[:2], CELLS_C[:2], np.linspace(0.0, 0.5, 11), vg=3.3, dwell=5e-4)
    return out


def assert_identical(results: dict[str, dict[str, np.ndarray]]) -> None:
    ref_name, ref = next(iter(results.items()))
    for name, res in results.items():
        assert res.keys() == ref.keys()
        for key in ref:
            a, b = np.asarray(ref[key]), np.asarray(res[key])
            assert a.shape == b.shape, f"{key}: {name} shape {b.shape} != {ref_name} {a.shape}"
            assert a.dtype.kind == b.dtype.kind and np.array_equal(a, b), (
                f"{key}: {name} differs from {ref_name} (max |diff| {np.max(np.abs(a - b)):g})")


async def test_every_primitive_bit_identical(backends: dict[str, ArrayBackend]) -> None:
    results = {name: await primitives(b) for name, b in backends.items()}
    assert_identical(results)
    ref = results["emulator"]
    # The sequence exercised what it claims to: cells formed, the pulses changed (2, 3) and the
    # hour of relaxation moved the clock and the conductances.
    assert np.all(np.max(ref["form"], axis=1) > 10e-6)
    assert ref["read_twice"][0] != ref["read"][2]  # (2, 3) was set, then reset
    assert ref["read_twice"][0] != ref["read_twice"][2]  # each read draws its own noise
    assert ref["t1"][0] - ref["t0"][0] == 3600.0
    assert not np.array_equal(ref["read_relaxed"], ref["read"])


SCHEMES = {
    "identical-reference": ProgramSettings(tolerance=0.05, max_iterations=40),
    "identical-fixed": ProgramSettings(tolerance=0.05, max_iterations=40,
                                       scheme=IdenticalScheme(v_set=1.4, v_reset=-1.35)),
    "incremental-reference": ProgramSettings(tolerance=0.05, max_iterations=40, scheme=IncrementalScheme(
        v_start_set=None, v_start_reset=None, v_step_set=0.1, v_step_reset=0.1, v_stop_set=2.0, v_stop_reset=-2.0)),
    "incremental-fixed": ProgramSettings(tolerance=0.03, max_iterations=60, scheme=IncrementalScheme(
        v_start_set=1.0, v_start_reset=-1.0, v_step_set=0.05, v_stop_set=1.6, v_step_reset=0.05, v_stop_reset=-1.6,
        max_per_polarity=12, max_flips=6)),
}


@pytest.mark.parametrize("scheme", list(SCHEMES))
async def test_host_loop_matches_native_loop(backends: dict[str, ArrayBackend], scheme: str) -> None:
    """Program-and-verify run natively (in-process C loop, chip controller's SET_TARGET_G) and on
    the host (read, compare, pulse) gives the same final conductances, pulse counts and
    convergence per cell, and leaves the arrays in the same state."""
    targets = np.array([20e-6, 45e-6, 70e-6, 35e-6, 60e-6, 85e-6])
    settings = SCHEMES[scheme]
    native = {"emulator", "chip-tcp"}
    results: dict[str, dict[str, np.ndarray]] = {}
    for name, backend in backends.items():
        await form_and_condition(backend)
        if name in native:
            outcome = await backend.program(CELLS_R, CELLS_C, targets, settings)
        else:
            outcome = await host_program(backend, CELLS_R, CELLS_C, targets, settings)
        results[name] = {"g": outcome.g, "iterations": outcome.iterations.astype(np.int64),
                         "converged": outcome.converged, "after": await backend.read_array()}
    assert_identical(results)
    ref = results["emulator"]
    assert ref["iterations"].max() > 1 and ref["converged"].sum() >= 2
    inside = np.abs(ref["g"] - targets) <= settings.tolerance * targets
    assert np.array_equal(inside, ref["converged"])
