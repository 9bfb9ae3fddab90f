"""The reference procedures' values (REF = ../shared/reference/cmo-hfox-1t1r.md), in one place.

Routines take their defaults from here; evaluation, PUF preparation and the TUI use the same values.
The emulator does not import this: a device knows its physics, not the paper's procedures.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from labctl.core.schemes import REFERENCE_PULSE_TABLE

QS_STEP = 0.01  # V per point of a quasi-static sweep (chosen: 10 mV resolves the forming jump)
QS_DWELL = 1e-3  # s per point (chosen: quasi-static = much longer than the 2.5 µs pulses)

PULSE_TABLE = REFERENCE_PULSE_TABLE  # REF "Closed-loop programming": per-range identical pulses


def ramp(v_stop: float, step: float = QS_STEP, back: bool = True) -> NDArray[np.float64]:
    """Sweep points 0 → v_stop (→ 0 if `back`) in steps of `step` V, sign taken from v_stop; V."""
    n = int(round(abs(v_stop) / step))
    up = np.linspace(0.0, v_stop, n + 1)
    return np.concatenate([up, up[-2::-1]]) if back else up
