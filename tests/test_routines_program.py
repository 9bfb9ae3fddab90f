"""Closed-loop programming: convergence, bounds, reported failures, the REF sequence, host == native."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from labctl.backends import EmulatorBackend, ProgramSettings
from labctl.core.reference import PULSE_TABLE
from labctl.core.schemes import IncrementalScheme
from labctl.emulated import prepared_array
from labctl.routines import (
    ClosedLoopParams,
    IncrementalParams,
    RoutineContext,
    program,
    program_incremental,
)
from labctl.routines.program import program_and_verify

from helpers import abort_at

pytestmark = pytest.mark.timeout(120)

LEVELS = np.linspace(10e-6, 90e-6, 35).tolist()


class HostOnly(EmulatorBackend):
    """The in-process emulator without its native loop (as a station is), recording every operation."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.info = dataclasses.replace(self.info, native_program=False)
        self.log: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    async def read(self, rows, cols, v_read=0.2, vg=3.3):  # type: ignore[no-untyped-def]
        g = await super().read(rows, cols, v_read, vg)
        self.log.append(("read", np.asarray(rows), np.asarray(cols), np.full(len(g), v_read), np.full(len(g), vg)))
        return g

    async def pulse(self, rows, cols, v, vg, width):  # type: ignore[no-untyped-def]
        await super().pulse(rows, cols, v, vg, width)
        n = len(rows)
        self.log.append(("pulse", np.asarray(rows), np.asarray(cols), np.broadcast_to(v, (n,)).copy(),
                         np.broadcast_to(vg, (n,)).copy()))

    def per_cell(self, row: int, col: int) -> list[tuple[str, float, float]]:
        """The operations one cell received, in order: (kind, voltage, gate)."""
        out = []
        for kind, r, c, v, vg in self.log:
            for k in np.flatnonzero((r == row) & (c == col)):
                out.append((kind, float(v[k]), float(vg[k])))
        return out


def prepared(rows: int, cols: int, seed: int, host: bool = False) -> EmulatorBackend:
    """A formed and conditioned emulated array (the reference procedures) behind a backend."""
    arr = prepared_array(rows, cols, seed)
    return HostOnly(array=arr) if host else EmulatorBackend(array=arr)


def assert_same(a: object, b: object) -> None:
    for name in ("g", "iterations", "converged", "targets"):
        x, y = getattr(a, name), getattr(b, name)
        assert np.array_equal(x, y), f"{name} differs"


CASES = {
    "identical-2%": ClosedLoopParams(levels=LEVELS, tolerance=0.02),
    "identical-0.2%-bounded": ClosedLoopParams(levels=LEVELS, tolerance=0.002, max_iterations=15),
    "identical-fixed-amplitudes": ClosedLoopParams(levels=LEVELS, tolerance=0.02, v_set=1.4, v_reset=-1.4,
                                                   max_iterations=60),
    "incremental-default": IncrementalParams(levels=LEVELS, tolerance=0.02),
    "incremental-tight-bounds": IncrementalParams(levels=LEVELS, tolerance=0.005, max_per_polarity=4, max_flips=2,
                                                  v_step_set=0.1, v_stop_set=1.5, max_iterations=80),
    "incremental-reference-start": IncrementalParams(levels=LEVELS, tolerance=0.02, v_start_set=None,
                                                     v_start_reset=None, max_iterations=60),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_host_loop_bit_identical_to_native(case: str) -> None:
    params = CASES[case]
    fn = program_incremental if isinstance(params, IncrementalParams) else program
    native_backend, host_backend = prepared(16, 8, seed=3), prepared(16, 8, seed=3, host=True)
    native = await fn(native_backend, None, None, params)
    host = await fn(host_backend, None, None, params)
    assert (native.loop, host.loop) == ("native", "host")
    assert_same(native, host)
    # The arrays are left in the same state too (same pulses, same noise draws).
    assert np.array_equal(native_backend.array.read_all(), host_backend.array.read_all())
    assert np.array_equal(native_backend.array.pulse_counts(), host_backend.array.pulse_counts())


async def test_converges_within_acceptance_and_reports_the_rest() -> None:
    b = prepared(8, 4, seed=1)
    res = await program(b, None, None, ClosedLoopParams(levels=LEVELS, tolerance=0.02))
    inside = np.abs(res.g - res.targets) <= 0.02 * res.targets
    assert np.array_equal(inside, res.converged)  # converged means the last verify read was accepted
    assert res.converged.mean() > 0.9
    s = res.summary()
    assert s["converged"] + s["not_converged"] == 32 and s["not_converged"] == int((~res.converged).sum())


async def test_iteration_bound_respected_and_non_convergence_reported() -> None:
    bound = 4
    for backend in (prepared(8, 4, seed=2), prepared(8, 4, seed=2, host=True)):
        res = await program(backend, None, None, ClosedLoopParams(levels=LEVELS, tolerance=0.002,
                                                                  max_iterations=bound))
        # `iterations` counts pulses: at most one fewer than the verify reads allowed.
        assert res.iterations.max() <= bound - 1
        assert (~res.converged).any()
        failed = ~res.converged
        assert np.all(res.iterations[failed] == bound - 1)
        assert np.all(np.abs(res.g[failed] - res.targets[failed]) > 0.002 * res.targets[failed])
        assert res.summary()["not_converged"] == int(failed.sum())


@pytest.mark.parametrize("host", [False, True])
async def test_stuck_cell_is_reported_not_hidden(host: bool) -> None:
    b = prepared(8, 4, seed=4, host=host)
    b.array.inject_fault(2, 1, "stuck_hrs")
    res = await program(b, None, None, ClosedLoopParams(targets=60e-6, max_iterations=50))
    k = 2 * 4 + 1
    assert not res.converged[k]
    assert res.iterations[k] == 49
    assert res.converged.sum() >= 28  # the healthy cells are not held back by the stuck one
    assert res.summary()["not_converged"] == int((~res.converged).sum()) >= 1


async def test_host_sequence_follows_the_reference_procedure() -> None:
    """Per cell: reset sweep, then read / one pulse / read ... with REF's per-range amplitudes and gates,
    and no pulse after an accepted read or after the last allowed one."""
    b = prepared(8, 4, seed=5, host=True)
    targets = np.array(LEVELS[:32])
    ctx = RoutineContext(collect=True)
    res = await program(b, None, None, ClosedLoopParams(targets=targets.tolist(), max_iterations=30), ctx)
    assert ctx.collected[0].kind == "reset_sweep" and ctx.collected[0].values["v"].min() == pytest.approx(-1.5)
    v_set, v_reset = PULSE_TABLE.amplitudes(targets)
    for k in range(32):
        ops = b.per_cell(k // 4, k % 4)
        kinds = [o[0] for o in ops]
        assert kinds[0] == "read" and kinds[-1] == "read"
        assert all(a != b for a, b in zip(kinds, kinds[1:]))  # strictly read, pulse, read, ...
        pulses = [o for o in ops if o[0] == "pulse"]
        assert len(pulses) == res.iterations[k]
        for _, v, vg in pulses:
            assert (v, vg) in ((v_set[k], 1.4), (v_reset[k], 3.3))
    # The verify reads handed to the context are the ones the loop decided on.
    last = {}
    for m in ctx.collected:
        if m.kind == "verify_read":
            for r, c, g in zip(m.rows, m.cols, m.values["g"]):
                last[(int(r), int(c))] = g
    assert np.array_equal([last[(k // 4, k % 4)] for k in range(32)], res.g)


async def test_reset_first_is_the_reference_reset_sweep() -> None:
    """reset_first = an explicit one-way 0 → −1.5 V sweep in 20 mV steps at VG 3.3 V, then the loop."""
    a, b = prepared(8, 4, seed=6), prepared(8, 4, seed=6)
    ra = await program(a, None, None, ClosedLoopParams(levels=LEVELS))
    r, c = np.divmod(np.arange(32), 4)
    steps = int(round(1.5 / 0.02))
    await b.sweep(r, c, np.linspace(0.0, -1.5, steps + 1), 3.3, 1e-3)
    rb = await program(b, None, None, ClosedLoopParams(levels=LEVELS, reset_first=False))
    assert_same(ra, rb)


async def test_program_and_verify_with_backend_settings() -> None:
    """The bare loop (for callers holding ProgramSettings) is the same loop on both paths."""
    settings = ProgramSettings(tolerance=0.01, max_iterations=60, scheme=IncrementalScheme(
        v_start_set=1.1, v_start_reset=-1.1, v_step_set=0.05, v_step_reset=0.05, v_stop_set=1.6, v_stop_reset=-1.6,
        max_per_polarity=10, max_flips=5))
    targets = np.array(LEVELS[:32])
    r, c = np.divmod(np.arange(32), 4)
    native = await program_and_verify(prepared(8, 4, seed=8), r, c, targets, settings)
    host = await program_and_verify(prepared(8, 4, seed=8, host=True), r, c, targets, settings)
    for name in ("g", "iterations", "converged"):
        assert np.array_equal(getattr(native, name), getattr(host, name))


async def test_checkpoints_between_chunks_and_abort() -> None:
    from labctl.routines import Aborted

    ctx = RoutineContext(collect=True, on_checkpoint=abort_at(2))
    with pytest.raises(Aborted):
        await program(prepared(8, 4, seed=9), None, None, ClosedLoopParams(levels=LEVELS, chunk=8), ctx)
    done = [m for m in ctx.collected if m.kind == "program"]
    assert len(done) == 2 and sum(m.rows.size for m in done) == 16  # two chunks emitted, then stopped
