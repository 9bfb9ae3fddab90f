"""Exact IR drop at matmul speed: the crossbar transfer matrix against the per-vector nodal solves, its
cache in emulator.Array, and results independent of the number of workers."""
from __future__ import annotations

import numpy as np
import pytest

from emulator.array import solve_crossbar
from emulator.crossbar import crossbar_currents, transfer_matrices
from helpers import nodal_solve
from labctl.emulated import prepared_array, reference_pulses
from labctl.routines.params import all_cells


def rel_err(got: np.ndarray, expected: np.ndarray) -> float:
    return float(np.max(np.abs(got - expected)) / np.max(np.abs(expected)))


@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (6, 1), (7, 3), (9, 12), (16, 16)])
@pytest.mark.parametrize("wires", [(0.35, 0.35), (5.0, 1.0), (0.0, 0.35), (0.35, 0.0)])
def test_dissection_equals_the_nodal_solve_on_random_conductances(shape: tuple[int, int],
                                                                  wires: tuple[float, float]) -> None:
    rng = np.random.default_rng(sum(shape) + int(10 * wires[0]))
    g = rng.uniform(1e-6, 100e-6, shape)
    v = rng.uniform(-0.2, 0.2, (3, shape[0]))
    t = transfer_matrices(g, *wires, method="dissection")
    for k in range(3):
        assert rel_err(v[k] @ t, nodal_solve(g, v[k], *wires)) <= 1e-9


def test_both_builds_equal_the_per_vector_solve_on_programmed_conductances() -> None:
    arr = prepared_array(12, 12, seed=3)
    r, c = all_cells(arr)
    targets = np.random.default_rng(3).uniform(9e-6, 89e-6, r.size)
    arr.program(r, c, targets, 0.02, **reference_pulses(targets))
    g = arr.conductance_matrix()
    v = np.random.default_rng(4).uniform(-0.2, 0.2, (5, 12))
    reference = solve_crossbar(g, v, 2.0, 2.0, tol=1e-14)  # strong wires: IR drop of several per cent
    assert rel_err(reference, v @ g) > 0.01
    for method in ("dissection", "solve"):
        t = transfer_matrices(g, 2.0, 2.0, method=method)
        assert rel_err(crossbar_currents(v, t), reference) <= 1e-9
        assert rel_err(v[0] @ t, nodal_solve(g, v[0], 2.0, 2.0)) <= 1e-9
    # the array's own MVM goes through the cached transfer matrix and equals its reference path
    assert rel_err(arr.mvm(v), arr.mvm(v, method="solve", tol=1e-14)) <= 1e-9


def test_transfer_matrix_is_cached_until_the_state_changes() -> None:
    arr = prepared_array(6, 5, seed=8)
    t0 = arr.transfer_matrix()
    assert arr.transfer_matrix() is t0  # no rebuild for the same state
    v = np.full((1, 6), 0.2)
    r, c = all_cells(arr)
    changes = [lambda: arr.pulse(2, 3, 1.35, 1.4, 2.5e-6), lambda: arr.advance(3600.0),
               lambda: arr.inject_fault([0], [0], "stuck_hrs"),
               lambda: arr.program(r[:3], c[:3], 40e-6, 0.02, **reference_pulses(np.full(3, 40e-6)))]
    previous = t0
    for change in changes:
        change()
        t = arr.transfer_matrix()
        assert t is not previous and not np.array_equal(t, previous)
        np.testing.assert_array_equal(t, transfer_matrices(arr.conductance_matrix(), 0.35, 0.35))
        assert rel_err(arr.mvm(v), solve_crossbar(arr.conductance_matrix(), v, 0.35, 0.35, tol=1e-14)) <= 1e-9
        previous = t
    assert not np.array_equal(arr.transfer_matrix(r_wire=1.0), previous)  # other wires, other matrix


def test_workers_and_batching_give_bit_identical_matrices() -> None:
    rng = np.random.default_rng(11)
    g = rng.uniform(9e-6, 89e-6, (3, 20, 24))
    one = transfer_matrices(g, 0.35, 0.35, method="dissection")
    np.testing.assert_array_equal(transfer_matrices(g, 0.35, 0.35, method="dissection", workers=2), one)
    for k in range(3):
        np.testing.assert_array_equal(transfer_matrices(g[k], 0.35, 0.35, method="dissection"), one[k])
    with pytest.raises(ValueError, match="workers"):
        transfer_matrices(g, 0.35, 0.35, workers=3)
    with pytest.raises(ValueError, match="g:"):
        transfer_matrices(-g, 0.35, 0.35)
