"""The C crossbar solver against an independent scipy.sparse nodal solve."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spl

import emulator
from emulator.array import solve_crossbar
from labctl.emulated import prepared_array, reference_pulses
from labctl.routines.params import all_cells


def nodal_solve(g: np.ndarray, v: np.ndarray, r_row: float, r_col: float) -> np.ndarray:
    """Column currents by assembling the full nodal conductance matrix (KCL at every wire node).

    Row i is driven at its column-0 end through one segment; column j is held at 0 V at its last-row
    end through one segment. A zero resistance makes that layer's nodes fixed (rows at v, columns at 0).
    """
    rows, cols = g.shape
    n = rows * cols
    entries: dict[tuple[int, int], float] = {}
    b = np.zeros(2 * n)

    def add(i: int, j: int, val: float) -> None:
        entries[(i, j)] = entries.get((i, j), 0.0) + val

    def link(a: int, bb: int, cond: float) -> None:
        add(a, a, cond), add(bb, bb, cond), add(a, bb, -cond), add(bb, a, -cond)

    row_node = lambda i, j: i * cols + j  # noqa: E731
    col_node = lambda i, j: n + i * cols + j  # noqa: E731
    for i in range(rows):
        for j in range(cols):
            link(row_node(i, j), col_node(i, j), g[i, j])
            if r_row > 0:
                if j == 0:
                    add(row_node(i, 0), row_node(i, 0), 1 / r_row)
                    b[row_node(i, 0)] += v[i] / r_row
                else:
                    link(row_node(i, j - 1), row_node(i, j), 1 / r_row)
            if r_col > 0:
                if i == rows - 1:
                    add(col_node(i, j), col_node(i, j), 1 / r_col)
                else:
                    link(col_node(i, j), col_node(i + 1, j), 1 / r_col)
    keys = np.array(list(entries))
    a = sp.csr_matrix((list(entries.values()), (keys[:, 0], keys[:, 1])), shape=(2 * n, 2 * n))
    fixed = np.zeros(2 * n, dtype=bool)
    x = np.zeros(2 * n)
    if r_row == 0:
        fixed[:n] = True
        x[:n] = np.repeat(v, cols)
    if r_col == 0:
        fixed[n:] = True
    free = ~fixed
    rhs = b[free] - a[free][:, fixed] @ x[fixed]
    x[free] = spl.spsolve(a[free][:, free].tocsc(), rhs)
    if r_col > 0:
        return x[n + (rows - 1) * cols: n + rows * cols] / r_col
    # columns at ground: the current out of a column is what its cells deliver
    return np.array([sum(g[i, j] * (x[row_node(i, j)]) for i in range(rows)) for j in range(cols)])


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
