"""The C crossbar solver against an independent scipy.sparse nodal solve."""
from __future__ import annotations

import numpy as np
import pytest

import emulator
from emulator.array import solve_crossbar
from helpers import nodal_solve
from labctl.emulated import prepared_array, reference_pulses
from labctl.routines.params import all_cells


@pytest.mark.parametrize("shape", [(16, 16), (8, 24), (24, 8)])
@pytest.mark.parametrize("wires", [(0.35, 0.35), (5.0, 1.0), (0.0, 0.35), (0.35, 0.0)])
def test_solver_matches_scipy(shape: tuple[int, int], wires: tuple[float, float]) -> None:
    rng = np.random.default_rng(sum(shape))
    g = rng.uniform(1e-6, 100e-6, shape)
    v = rng.uniform(-0.2, 0.2, shape[0])
    expected = nodal_solve(g, v, *wires)
    got = solve_crossbar(g, v[None], *wires)[0]
    assert np.max(np.abs(got - expected)) <= 1e-6 * np.max(np.abs(expected))


def test_large_wire_resistance_shows_ir_drop() -> None:
    rng = np.random.default_rng(0)
    g = rng.uniform(50e-6, 100e-6, (32, 32))
    v = np.full(32, 0.2)
    ideal = v @ g
    drop = solve_crossbar(g, v[None], 2.0, 2.0)[0]
    assert np.all(drop < ideal)  # every column loses current to the wires
    assert np.allclose(drop, nodal_solve(g, v, 2.0, 2.0), rtol=1e-6)


def test_array_mvm_uses_conductance_matrix() -> None:
    arr = prepared_array(16, 16, seed=4)
    r, c = all_cells(arr)
    targets = np.random.default_rng(1).uniform(10e-6, 90e-6, r.size)
    arr.program(r, c, targets, 0.02, **reference_pulses(targets))
    g = arr.conductance_matrix()
    v = np.random.default_rng(2).uniform(-0.2, 0.2, (3, 16))
    assert np.array_equal(arr.mvm(v, r_wire=0.0), v @ g)  # zero wire resistance is G·V
    ir = arr.mvm(v)  # preset wires, 0.35 ohm per segment
    for k in range(3):
        assert np.allclose(ir[k], nodal_solve(g, v[k], 0.35, 0.35), rtol=1e-6, atol=0)
    assert arr.mvm(v[0]).shape == (16,)


def test_solver_batch_equals_single() -> None:
    rng = np.random.default_rng(3)
    g = rng.uniform(1e-6, 100e-6, (20, 12))
    v = rng.uniform(-0.2, 0.2, (11, 20))  # more vectors than one interleaved block
    batch = solve_crossbar(g, v, 0.35, 0.35)
    for k in range(11):
        assert np.allclose(batch[k], solve_crossbar(g, v[k:k + 1], 0.35, 0.35)[0], rtol=1e-10, atol=0)
    assert np.array_equal(solve_crossbar(g, np.zeros((1, 20)), 0.35, 0.35), np.zeros((1, 12)))
