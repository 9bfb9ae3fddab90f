"""Host overhead of the closed loop on a backend (used by scripts/bench_routines.py)."""
from __future__ import annotations

import time

import numpy as np

from labctl.backends.base import ArrayBackend
from labctl.core import reference as ref


async def iteration_overhead(backend: ArrayBackend, *, iterations: int = 50, warmup: int = 5,
                             row: int = 0, col: int = 0, v_set: float = ref.OPEN_LOOP_V_SET,
                             v_reset: float = ref.OPEN_LOOP_V_RESET, vg_set: float = ref.VG_SET,
                             vg_reset: float = ref.VG_RESET, width: float = ref.PULSE_WIDTH,
                             v_read: float = ref.V_READ, vg_read: float = ref.VG_READ) -> float:
    """Median host time of one closed-loop iteration on one cell, s: one pulse (set if the last
    read is below the target, else reset) and its verify read (`backend.pulse_and_read`, as the
    host loop does), minus the pulse width.

    The target is the cell's first reading, so the loop dithers around it and the polarity
    changes often (the case that costs a station reconfiguration). The emulators (in-process,
    chip controller, instruments) put no modeled time into host time, so there everything
    measured is overhead; on hardware the SMU's read aperture is included. The backend must be
    open; the cell is pulsed `warmup + iterations` times.
    """
    if iterations < 1 or warmup < 0:
        raise ValueError(f"iterations: {iterations!r} must be >= 1 and warmup: {warmup!r} >= 0")
    r = np.array([row], dtype=np.int64)
    c = np.array([col], dtype=np.int64)
    target = float((await backend.read(r, c, v_read, vg_read))[0])
    g = target
    times: list[float] = []
    for k in range(warmup + iterations):
        t0 = time.perf_counter()
        v, vg = (v_set, vg_set) if g < target else (v_reset, vg_reset)
        # As the host loop does (labctl.routines.program.host_loop): the pulse and its verify read
        # as one operation.
        g = float((await backend.pulse_and_read(r, c, v, vg, width, v_read, vg_read))[0])
        if k >= warmup:
            times.append(time.perf_counter() - t0 - width)
    return float(np.median(times))
