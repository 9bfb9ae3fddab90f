"""The reference procedures' steps and values (REF = ../shared/reference/cmo-hfox-1t1r.md), in one place.

Routines take their defaults from here; evaluation, PUF preparation and the TUI use the same values
(through the routines). The emulator does not import this: a device knows its physics, not the
paper's procedures. SI units: V, A, S, s, ohm.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from labctl.core.schemes import REFERENCE_PULSE_TABLE

# ----------------------------------------------------------------------------- quasi-static sweeps

QS_STEP = 0.01  # V per point of a quasi-static sweep (chosen: 10 mV resolves the forming jump)
QS_DWELL = 1e-3  # s per point (chosen: quasi-static = much longer than the 2.5 µs pulses)


def ramp(v_stop: float, step: float = QS_STEP, back: bool = True) -> NDArray[np.float64]:
    """Sweep points 0 → v_stop (→ 0 if `back`) in steps of `step` V, sign taken from v_stop; V."""
    n = int(round(abs(v_stop) / step))
    up = np.linspace(0.0, v_stop, n + 1)
    return np.concatenate([up, up[-2::-1]]) if back else up


@dataclass(frozen=True)
class QuasiStaticSweep:
    """One quasi-static sweep of the top electrode: 0 → v_stop (→ 0 if `back`), gate at vg. V."""

    v_stop: float
    vg: float
    back: bool = True

    def voltages(self, step: float = QS_STEP) -> NDArray[np.float64]:
        """The sweep's points at `step` V per point, V."""
        return ramp(self.v_stop, step, self.back)


# REF §Forming: "Quasi-static sweep of the top electrode 0 → 3.6 V, source grounded, VG = 1.2 V".
FORMING = QuasiStaticSweep(v_stop=3.6, vg=1.2, back=False)
# chosen: above the selector's saturation current at VG 1.2 V (~0.8 mA), so the gate and not the SMU
# limits the cell, as in REF; the SMU limit only protects against a shorted selector.
FORMING_COMPLIANCE = 1e-3  # A
R_DS = 800.0  # ohm, REF §Cell and selector: "R_DS ≈ 0.8 kΩ" at VG = 1.2 V
FORMING_MIN_JUMP = 20e-6  # A (chosen: smallest current step that counts as forming)
# REF §Forming: "Then a negative sweep to −1.4 V with VG = 3.3 V raises the conductance".
NEGATIVE = QuasiStaticSweep(v_stop=-1.4, vg=3.3)
# REF §Quasi-static switching: conditioning and cycling "reset V_reset = −1.5 V with VG = 3.3 V" and
# "set V_set = 1.3 V with VG = 1.1 V", each forward and backward.
RESET = QuasiStaticSweep(v_stop=-1.5, vg=3.3)
SET = QuasiStaticSweep(v_stop=1.3, vg=1.1)
CONDITIONING = (NEGATIVE, RESET, SET)  # after forming: negative sweep, one reset, one set
QS_CYCLES = 5  # REF §Quasi-static switching: "5 cycles per cell"
# REF §Closed-loop programming: "Start: quasi-static sweep 0 → −1.5 V resets every cell to HRS" (one way).
PROGRAM_RESET = QuasiStaticSweep(v_stop=-1.5, vg=3.3, back=False)
# The programming reset only has to reach −1.5 V slowly, one way: 20 mV points keep it quasi-static
# at a quarter of the points of a 10 mV there-and-back sweep (chosen).
PROGRAM_RESET_STEP = 0.02  # V

# ----------------------------------------------------------------------------- reads and pulses

V_READ = 0.2  # V, REF: "Read at 0.2 V" / "Read pulse 0.2 V, 300 µs"
VG_READ = 3.3  # V, REF §Closed-loop: "3.3 V for read"
READ_WIDTH = 300e-6  # s, REF §Closed-loop: "Read pulse 0.2 V, 300 µs"
PULSE_WIDTH = 2.5e-6  # s, REF: "Set/reset pulse width 2.5 µs"
VG_SET = 1.4  # V, REF §Closed-loop: "VG = 1.4 V for set"
VG_RESET = 3.3  # V, REF §Closed-loop: "3.3 V for reset"

# ----------------------------------------------------------------------------- closed-loop programming

PULSE_TABLE = REFERENCE_PULSE_TABLE  # REF "Closed-loop programming": per-range identical pulses
WINDOW: tuple[float, float] = (10e-6, 90e-6)  # S, REF: "35 levels between ≈10 and ≈90 µS"
LEVELS = 35  # REF: "35 levels between ≈10 and ≈90 µS"
TOLERANCE = 0.02  # REF: acceptance ranges "2 % and 0.2 % of G_target"
TOLERANCE_FINE = 0.002
MAX_ITERATIONS = 500  # verify reads per cell (chosen: ample for 2 %, bounded for a stuck cell)

# ----------------------------------------------------------------------------- open-loop pulses

# REF §Open-loop: "identical pulses, V_set = 1.35 V (VG = 1.4 V), V_reset = −1.3 V (VG = 3.3 V), 2.5 µs".
OPEN_LOOP_V_SET = 1.35  # V
OPEN_LOOP_VG_SET = 1.4  # V
OPEN_LOOP_V_RESET = -1.3  # V
OPEN_LOOP_VG_RESET = 3.3  # V
OPEN_LOOP_BATCH = 400  # REF: "batches of 400 up then 400 down"
OPEN_LOOP_ALTERNATING = 500  # REF: "then 500 pulses alternating 1-up / 1-down"
