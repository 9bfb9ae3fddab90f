"""The reference procedures (labctl.routines) on an in-process emulated array, without an event loop.

Tests, benchmarks, scripts/calibrate_emulator.py and `labctl demo` need arrays in the state the
reference procedures leave them in (REF §Forming, §Quasi-static switching). They get them here, from
the one implementation of those procedures (labctl.routines), run through the in-process
EmulatorBackend, so that the emulator itself knows only its physics.
"""
from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

import emulator
from labctl.backends.emulator import EmulatorBackend
from labctl.core import reference as ref
from labctl.routines.forming import FormingParams, FormingResult, form, sweep_stages
from labctl.routines.params import all_cells

T = TypeVar("T")


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """The result of a routine run on the in-process EmulatorBackend, called from plain code.

    That backend never waits for anything, so the coroutine finishes in one step; this works inside a
    running event loop too (unlike asyncio.run). RuntimeError if the coroutine does suspend (a backend
    or context that waits for I/O: run it with `await` instead)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coroutine.close()
    raise RuntimeError("run_sync: the routine waited for I/O; await it in an event loop instead")


def prepare(array: emulator.Array, step: float = ref.QS_STEP) -> FormingResult:
    """Form every cell (REF §Forming, `step` V per sweep point) and condition it with the negative,
    reset and set sweeps (REF §Quasi-static switching), as labctl.routines form and condition do
    (without condition's closing read). Returns the forming figures."""
    backend = EmulatorBackend(array=array)
    cells = array.rows * array.cols
    formed = run_sync(form(backend, None, None, FormingParams(step=step, r_ds=array.preset.rds_ref, chunk=cells)))
    r, c = all_cells(backend)
    run_sync(sweep_stages(backend, r, c, ref.CONDITIONING, step))
    return formed


def prepared_array(rows: int, cols: int, seed: int = 0, step: float = ref.QS_STEP,
                   preset: str = "cmo-hfox") -> emulator.Array:
    """A formed and conditioned emulated array of rows x cols cells (`prepare`); a coarser `step` (V)
    is faster for large arrays."""
    array = emulator.Array(rows, cols, preset=preset, seed=seed)
    prepare(array, step)
    return array


def reference_pulses(targets: ArrayLike) -> dict[str, NDArray[np.float64]]:
    """The REF identical-pulse amplitudes for `targets` (S), as emulator.Array.program's v_set / v_reset
    keywords (V): the array knows no scheme, its caller chooses the pulses."""
    v_set, v_reset = ref.PULSE_TABLE.amplitudes(targets)
    return {"v_set": v_set, "v_reset": v_reset}
