"""End to end: form and program emulated arrays through the chip protocol, over TCP and over a
pseudo-terminal with pyserial, and check every number against the same operations run
in-process on a twin array with the same seed (the protocol must carry them bit for bit)."""
from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest

import emulator
from emulator.controller import ChipController, PtyServer, serve_tcp
from labctl.emulated import reference_pulses
from labctl.protocols.cells import Cells
from labctl.protocols.client import ChipClient
from labctl.protocols.messages import IncrementalStep

pytestmark = pytest.mark.timeout(120)

FORM_VOLTAGES = np.arange(361) * 0.01  # 0 -> 3.6 V, 10 mV steps (the client's FORM defaults)
CONDITION_VOLTAGES = np.linspace(0.0, -1.4, 141)  # reference: negative sweep to -1.4 V, VG 3.3 V


@pytest.fixture
async def served(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, emulator.Array, emulator.Array]]:
    rows, cols, transport = request.param
    seed = rows * 1000 + cols
    array = emulator.Array(rows, cols, seed=seed)
    twin = emulator.Array(rows, cols, seed=seed)
    controller = ChipController(array)
    server = await serve_tcp(controller, "127.0.0.1", 0)
    pty = PtyServer(controller)
    address = f"tcp://127.0.0.1:{server.sockets[0].getsockname()[1]}" if transport == "tcp" else pty.path
    yield address, array, twin
    await server.close()
    pty.close()
    await controller.aclose()


CASES = [(8, 4, "tcp"), (8, 4, "pty"), (64, 64, "tcp"), (64, 64, "pty")]


@pytest.mark.parametrize("served", CASES, indirect=True, ids=[f"{r}x{c}-{t}" for r, c, t in CASES])
async def test_form_and_program_to_random_targets(served: tuple[str, emulator.Array, emulator.Array]) -> None:
    address, array, twin = served
    rows, cols = array.shape
    rr, cc = np.divmod(np.arange(rows * cols), cols)
    targets = np.random.default_rng(rows).uniform(10e-6, 90e-6, rows * cols)
    async with await ChipClient.connect(address, timeout=2.0) as chip:
        assert chip.shape == (rows, cols)
        formed = await chip.form()
        conditioning = await chip.sweep(None, CONDITION_VOLTAGES, vg=3.3)
        program = await chip.set_target_g(None, targets, tolerance=0.02)
        verify = await chip.verify(None, targets, tolerance=0.02)
        g_map = await chip.read_array()
        counts = await chip.emu_pulse_counts()

    # The same operations, in process, on the twin.
    currents = twin.sweep(rr, cc, FORM_VOLTAGES, vg=1.2, dwell=1e-3)
    g_formed = twin.read(rr, cc, 0.2, 3.3)
    k = np.argmax(np.diff(currents, axis=1), axis=1) + 1
    assert formed.formed.all() == (g_formed >= 5e-6).all()
    np.testing.assert_array_equal(formed.g, g_formed)
    np.testing.assert_array_equal(formed.v_form[formed.formed], FORM_VOLTAGES[k][formed.formed])
    np.testing.assert_array_equal(formed.i_form[formed.formed],
                                  currents[np.arange(rows * cols), k][formed.formed])
    assert formed.formed.mean() > 0.9 and np.all((formed.v_form[formed.formed] > 2.5))

    np.testing.assert_array_equal(conditioning, twin.sweep(rr, cc, CONDITION_VOLTAGES, vg=3.3))
    expected = twin.program(rr, cc, targets, 0.02, max_iterations=500, **reference_pulses(targets))
    np.testing.assert_array_equal(program.g, expected.g)
    np.testing.assert_array_equal(program.iterations, expected.iterations)
    np.testing.assert_array_equal(program.converged, expected.converged)
    ok = program.converged
    assert ok.mean() > 0.9, f"only {ok.mean():.0%} of the cells reached their targets"
    assert np.all(np.abs(program.g[ok] - targets[ok]) <= 0.02 * targets[ok] * (1 + 1e-12))

    g_verify = twin.read(rr, cc, 0.2, 3.3)
    np.testing.assert_array_equal(verify.g, g_verify)
    np.testing.assert_array_equal(verify.passed, np.abs(g_verify - targets) <= 0.02 * targets)
    np.testing.assert_array_equal(g_map, twin.read_all(0.2, 3.3))
    np.testing.assert_array_equal(counts, twin.pulse_counts().reshape(-1))
    np.testing.assert_array_equal(array.pulse_counts(), twin.pulse_counts())


@pytest.mark.parametrize("served", [(8, 4, "pty")], indirect=True, ids=["8x4-pty"])
async def test_every_command_over_the_serial_line(served: tuple[str, emulator.Array, emulator.Array]) -> None:
    address, array, twin = served
    async with await ChipClient.connect(address) as chip:
        await chip.form(Cells.region(0, 0, 2, 2), mode="pulse_ramp", v_start=2.0, v_step=0.1,
                        duration=1e-4)
        sweep = await chip.sweep(Cells.single(0, 0), np.linspace(0, -1.5, 31), vg=3.3)
        assert sweep.shape == (1, 31)
        assert await chip.pulse(Cells.list([0, 1], [0, 1]), -1.3, vg=3.3, count=4) == 8
        g = await chip.read(Cells.list([0, 1], [0, 1]))
        i = await chip.read_current(Cells.list([0, 1], [0, 1]))
        assert g.shape == i.shape == (2,)
        assert await chip.verify_loop_max() == 500
        assert await chip.verify_loop_max(50) == 50
        result = await chip.set_target_g(Cells.region(0, 0, 2, 2), 30e-6,
                                         scheme=IncrementalStep(1.0, 0.05, 1.6, -1.0, 0.05, -1.8, 30, 10))
        assert result.iterations.max() <= 50 * 2  # pulses are bounded by the verify reads
        region = await chip.read_array(Cells.region(1, 1, 3, 2))
        assert region.shape == (3, 2)
        assert await chip.emu_advance(3600.0) == pytest.approx(3600.0)
        await chip.emu_inject_fault((7, 3), "stuck_hrs")
        await chip.emu_reseed(99)
        await chip.reset()
        assert await chip.verify_loop_max() == 500
        assert array.time == pytest.approx(3600.0)
