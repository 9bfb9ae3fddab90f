"""The reference measurement procedures (REF = ../shared/reference/cmo-hfox-1t1r.md), run directly on
an emulated array. They are what the preset is calibrated against (tests/test_emulator_calibration.py)
and what `scripts/calibrate_emulator.py` prints; they return raw traces, metrics are extracted by
labctl.routines.metrics.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from emulator.array import Array

QS_STEP = 0.01  # V per point of a quasi-static sweep (chosen: 10 mV resolves the forming jump)
QS_DWELL = 1e-3  # s per point (chosen: quasi-static = much longer than the 2.5 µs pulses)


def ramp(v_stop: float, step: float = QS_STEP, back: bool = True) -> NDArray[np.float64]:
    """0 → v_stop (→ 0 if `back`) in steps of `step` V, sign taken from v_stop."""
    n = int(round(abs(v_stop) / step))
    up = np.linspace(0.0, v_stop, n + 1)
    return np.concatenate([up, up[-2::-1]]) if back else up


def all_cells(arr: Array) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Row and column index of every cell, row-major."""
    r, c = np.divmod(np.arange(arr.rows * arr.cols, dtype=np.int64), arr.cols)
    return r, c


def forming_sweep(arr: Array, rows: NDArray[np.int64], cols: NDArray[np.int64], v_stop: float = 3.6,
                  vg: float = 1.2, step: float = QS_STEP) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """REF §Forming: rising sweep 0 → 3.6 V, source grounded, VG = 1.2 V. Returns (voltages V, currents A)."""
    v = ramp(v_stop, step, back=False)
    return v, arr.sweep(rows, cols, v, vg=vg, dwell=QS_DWELL)


def condition(arr: Array, rows: NDArray[np.int64], cols: NDArray[np.int64], step: float = QS_STEP) -> None:
    """REF §Forming/§Quasi-static: negative sweep to −1.4 V at VG = 3.3 V, then one reset (−1.5 V, VG 3.3 V)
    and one set (+1.3 V, VG 1.1 V) forward-and-backward sweep."""
    arr.sweep(rows, cols, ramp(-1.4, step), vg=3.3, dwell=QS_DWELL)
    arr.sweep(rows, cols, ramp(-1.5, step), vg=3.3, dwell=QS_DWELL)
    arr.sweep(rows, cols, ramp(1.3, step), vg=1.1, dwell=QS_DWELL)


def qs_cycles(arr: Array, rows: NDArray[np.int64], cols: NDArray[np.int64],
              n: int = 5) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """REF §Quasi-static: n cycles of reset (−1.5 V, VG 3.3 V) and set (+1.3 V, VG 1.1 V), read at 0.2 V.
    Returns (HRS, LRS) conductances, each shape (n, n_cells), S."""
    hrs = np.empty((n, rows.size))
    lrs = np.empty((n, rows.size))
    for k in range(n):
        arr.sweep(rows, cols, ramp(-1.5), vg=3.3, dwell=QS_DWELL)
        hrs[k] = arr.read(rows, cols, 0.2)
        arr.sweep(rows, cols, ramp(1.3), vg=1.1, dwell=QS_DWELL)
        lrs[k] = arr.read(rows, cols, 0.2)
    return hrs, lrs


@dataclass(frozen=True)
class OpenLoopTrace:
    swing: NDArray[np.float64]
    swing_direction: NDArray[np.int8]
    alternating: NDArray[np.float64]
    alternating_direction: NDArray[np.int8]


# REF §Open-loop: identical pulses, V_set = 1.35 V (VG 1.4 V), V_reset = −1.3 V (VG 3.3 V), 2.5 µs.
OPEN_LOOP_SET = (1.35, 1.4, 2.5e-6)
OPEN_LOOP_RESET = (-1.3, 3.3, 2.5e-6)


def open_loop(arr: Array, rows: NDArray[np.int64], cols: NDArray[np.int64], batch: int = 400,
              cycles: int = 2, alternating: int = 500) -> OpenLoopTrace:
    """REF §Open-loop: `cycles` × (batch up, batch down), then `alternating` pulses 1-up/1-down,
    reading at 0.2 V after every pulse."""
    directions = np.tile(np.repeat(np.array([1, -1], dtype=np.int8), batch), cycles)
    swing = np.empty((rows.size, directions.size))
    for k, d in enumerate(directions):
        arr.pulse(rows, cols, *(OPEN_LOOP_SET if d > 0 else OPEN_LOOP_RESET))
        swing[:, k] = arr.read(rows, cols, 0.2)
    alt_dir = np.resize(np.array([1, -1], dtype=np.int8), alternating)
    alt = np.empty((rows.size, alternating + 1))
    alt[:, 0] = swing[:, -1]
    for k, d in enumerate(alt_dir):
        arr.pulse(rows, cols, *(OPEN_LOOP_SET if d > 0 else OPEN_LOOP_RESET))
        alt[:, k + 1] = arr.read(rows, cols, 0.2)
    return OpenLoopTrace(swing, directions, alt, alt_dir)


def prepared_array(rows: int, cols: int, seed: int = 0, step: float = QS_STEP) -> Array:
    """A formed and conditioned array, as after REF §Forming and the conditioning sweeps
    (`step`: V per sweep point; coarser is faster for large arrays)."""
    arr = Array(rows, cols, seed=seed)
    r, c = all_cells(arr)
    forming_sweep(arr, r, c, step=step)
    condition(arr, r, c, step=step)
    return arr
