"""The one interface every routine is written against: `ArrayBackend`.

Cells are addressed by two equal-length integer arrays (rows, cols). All values are SI (V, A, S, s).
A backend validates arguments against its `limits` (labctl.core.limits.SafetyLimits) before anything
reaches hardware and raises ValueError naming the argument. Backends are async context managers:
leaving the context (normally, on an exception or on cancellation) switches every output off and
releases the hardware.

Random draws: on the emulator a cell's noise depends only on the seed and the operations applied to
that cell, so the same routine gives identical results through every backend with the same seed,
whether the backend addresses cells one at a time (station) or in vectors (chip, in-process).
"""
from __future__ import annotations

import abc
import logging
import math
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from labctl.core import reference as ref
from labctl.core.limits import SafetyLimits
from labctl.core.schemes import IdenticalScheme, IncrementalScheme, Scheme

if TYPE_CHECKING:  # the drivers (pyvisa) load only where a backend has a controller
    from labctl.instruments.thermal import ThermalController

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackendInfo:
    """What a backend is: kind, array size, identities of what it talks to."""

    kind: str  # "emulator" | "chip" | "station"
    rows: int
    cols: int
    identity: dict[str, str] = field(default_factory=dict)  # e.g. instrument *IDN? strings
    native_program: bool = False  # runs the program-verify loop itself (SET_TARGET_G)
    virtual_clock: bool = False  # wait() advances a virtual clock instead of sleeping


@dataclass(frozen=True)
class ProgramSettings:
    """Closed-loop program-and-verify settings (REF §Closed-loop programming). SI units.

    The loop: read at v_read (gate vg_read); inside target ± tolerance·target stop; below, one set
    pulse (gate vg_set), above, one reset pulse (gate vg_reset), each `width` s; at most
    max_iterations verify reads. `scheme` says which amplitudes the pulses have
    (labctl.core.schemes: identical per-range pulses, or incremental steps). Defaults: REF
    (labctl.core.reference).
    """

    tolerance: float = ref.TOLERANCE  # relative acceptance range
    max_iterations: int = ref.MAX_ITERATIONS  # verify reads per cell
    vg_set: float = ref.VG_SET
    vg_reset: float = ref.VG_RESET
    width: float = ref.PULSE_WIDTH
    v_read: float = ref.V_READ
    vg_read: float = ref.VG_READ
    scheme: Scheme = field(default_factory=IdenticalScheme)

    def __post_init__(self) -> None:
        if not isinstance(self.scheme, (IdenticalScheme, IncrementalScheme)):
            raise ValueError(f"scheme: expected an IdenticalScheme or IncrementalScheme, got {self.scheme!r}")


@dataclass(frozen=True)
class ProgramOutcome:
    """Per cell: last verify read (S), pulses applied, converged."""

    g: FloatArray
    iterations: NDArray[np.int32]
    converged: NDArray[np.bool_]


@dataclass(frozen=True)
class PulseCurrent:
    """The current measured during one pulse on cell (row, col) by a pulse-and-measure unit: `times`
    s from the start of the pulse top, `currents` A (same shape), at `voltage` V for `width` s."""

    row: int
    col: int
    voltage: float
    width: float
    times: FloatArray
    currents: FloatArray


@dataclass(frozen=True)
class PulseCurrents:
    """What `ArrayBackend.take_pulse_currents` hands over: the pulses measured since the last take,
    oldest first; `lost`: pulses measured in that time whose currents the backend's bounded memory no
    longer held (the oldest ones)."""

    pulses: tuple[PulseCurrent, ...] = ()
    lost: int = 0


NO_PULSE_CURRENTS = PulseCurrents()


class ArrayBackend(abc.ABC):
    """Async access to one 1T1R array: sweeps, pulses, reads, the clock, and (optionally) a native loop."""

    info: BackendInfo
    limits: SafetyLimits

    @property
    def rows(self) -> int:
        return self.info.rows

    @property
    def cols(self) -> int:
        return self.info.cols

    # -- lifecycle
    async def __aenter__(self) -> ArrayBackend:
        await self.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        try:
            await self.outputs_off()
        except Exception as off_error:
            # After a failure (a dead link, say) switching off may fail too: keep the original
            # exception, which says what went wrong first, and log this one.
            if exc is None:
                raise
            log.error("%s backend: outputs could not be switched off after %r: %s", self.info.kind, exc, off_error)
        finally:
            await self.close()

    async def open(self) -> None:
        """Connect (idempotent)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the hardware (outputs must already be off)."""

    @abc.abstractmethod
    async def outputs_off(self) -> None:
        """Switch every source output off, whatever state the backend is in."""

    # -- operations
    @abc.abstractmethod
    async def sweep(self, rows: IntArray, cols: IntArray, voltages: FloatArray, vg: float,
                    dwell: float = 1e-3, compliance: float | None = None) -> FloatArray:
        """Quasi-static sweep of each listed cell (bit line at each voltage, source grounded, gate vg);
        returns currents, shape (n_cells, n_points), A."""

    @abc.abstractmethod
    async def pulse(self, rows: IntArray, cols: IntArray, v: float | FloatArray, vg: float | FloatArray,
                    width: float | FloatArray) -> None:
        """One pulse per listed cell."""

    @abc.abstractmethod
    async def read(self, rows: IntArray, cols: IntArray, v_read: float = 0.2, vg: float = 3.3) -> FloatArray:
        """Measured conductance I/V of each listed cell, S."""

    async def pulse_and_read(self, rows: IntArray, cols: IntArray, v: float | FloatArray, vg: float | FloatArray,
                             width: float | FloatArray, v_read: float = 0.2, vg_read: float = 3.3) -> FloatArray:
        """One program-and-verify step per listed cell: a pulse (v V, gate vg V, width s; as
        `pulse`), then the cell's conductance at v_read V, gate vg_read V (as `read`), S. This
        default is exactly `pulse` then `read`; a backend that can do both in one operation (a
        pulse-and-measure station: one execution per cell) overrides it with the same results."""
        await self.pulse(rows, cols, v, vg, width)
        return await self.read(rows, cols, v_read, vg_read)

    async def read_array(self, v_read: float = 0.2, vg: float = 3.3) -> FloatArray:
        """Conductance of every cell, shape (rows, cols), S (row-major reads)."""
        r, c = np.divmod(np.arange(self.rows * self.cols, dtype=np.int64), self.cols)
        return (await self.read(r, c, v_read, vg)).reshape(self.rows, self.cols)

    @abc.abstractmethod
    async def wait(self, seconds: float) -> None:
        """Let `seconds` pass (advances the virtual clock on the emulator, sleeps on hardware)."""

    @abc.abstractmethod
    async def now(self) -> float:
        """Backend clock, s (virtual time on the emulator)."""

    def thermal_controller(self) -> ThermalController | None:
        """The temperature controller of the chuck the array sits on, or None when the backend has
        none (temperature steps then fail, naming themselves). Its `sleep` is this backend's clock.
        Only valid while the backend is open."""
        return None

    def take_pulse_currents(self) -> PulseCurrents:
        """The currents measured during the pulses applied since the last call (oldest first), which
        the backend then forgets. Empty on backends that do not measure during pulses (the default:
        emulator, chip, SMU + pulse generator stations); a pulse-and-measure station (4225-PMU,
        WGFMU) gives one PulseCurrent per pulse and cell. The campaign runner stores them
        (docs/store.md, "pulse_trace")."""
        return NO_PULSE_CURRENTS

    async def program(self, rows: IntArray, cols: IntArray, targets: FloatArray,
                      settings: ProgramSettings) -> ProgramOutcome:
        """Native closed loop (SET_TARGET_G). Only where info.native_program; routines run the host
        loop otherwise."""
        raise NotImplementedError(f"{self.info.kind} backend has no native program-verify loop")

    # -- helpers shared by implementations
    def check_cells(self, rows: IntArray, cols: IntArray) -> tuple[IntArray, IntArray]:
        """Validate and normalize cell indices; ValueError names the bad index."""
        r = np.atleast_1d(np.asarray(rows, dtype=np.int64))
        c = np.atleast_1d(np.asarray(cols, dtype=np.int64))
        if r.shape != c.shape or r.ndim != 1:
            raise ValueError(f"rows, cols: expected two 1-D arrays of equal length, got {r.shape} and {c.shape}")
        for name, a, n in (("rows", r, self.rows), ("cols", c, self.cols)):
            if a.size and (a.min() < 0 or a.max() >= n):
                bad = a[(a < 0) | (a >= n)][0]
                raise ValueError(f"{name}: index {bad} is outside the array (0..{n - 1})")
        return r, c

    def check_voltage(self, name: str, v: float | FloatArray, v_max: float | None = None) -> None:
        """ValueError unless every |v| <= v_max (default: limits.max_abs_voltage) and finite; V."""
        lim = self.limits.max_abs_voltage if v_max is None else v_max
        a = np.asarray(v, dtype=np.float64)
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name}: must be finite")
        if a.size and np.max(np.abs(a)) > lim:
            raise ValueError(f"{name}: {float(np.max(np.abs(a))):g} V exceeds the limit |V| <= {lim:g} V")

    def check_gate(self, name: str, vg: float | FloatArray) -> None:
        """ValueError unless every gate voltage is finite and in [0, limits.max_gate_voltage] V."""
        a = np.asarray(vg, dtype=np.float64)
        lim = self.limits.max_gate_voltage
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name}: must be finite")
        if a.size and (a.min() < 0 or a.max() > lim):
            bad = a[(a < 0) | (a > lim)].flat[0]
            raise ValueError(f"{name}: {bad:g} V is outside the allowed gate range [0, {lim:g}] V")

    def check_read_bias(self, v_read: float) -> None:
        """ValueError unless v_read is finite, non-zero and within limits.max_read_voltage (or
        max_abs_voltage), V."""
        if not math.isfinite(v_read) or v_read == 0.0:
            raise ValueError(f"v_read: must be a finite non-zero voltage, got {v_read!r}")
        self.check_voltage("v_read", v_read, self.limits.max_read_voltage)

    def check_compliance(self, compliance: float | None) -> None:
        """ValueError unless compliance is None or in (0, limits.max_compliance] A."""
        if compliance is not None and not (0 < compliance <= self.limits.max_compliance):
            raise ValueError(f"compliance: {compliance!r} A is outside the allowed range "
                             f"(0, {self.limits.max_compliance:g}] A")

    def check_seconds(self, seconds: float) -> None:
        """ValueError unless seconds is finite and >= 0."""
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"seconds: must be a finite time >= 0 s, got {seconds!r}")

    def check_pulse(self, rows: IntArray, cols: IntArray, v: float | FloatArray, vg: float | FloatArray,
                    width: float | FloatArray, v_max: float | None = None) -> tuple[IntArray, IntArray]:
        """Every check a pulse call needs before anything is sent: cells, amplitude (|v| <= v_max,
        default limits.max_abs_voltage), gate and width. Returns the normalized cell indices."""
        r, c = self.check_cells(rows, cols)
        self.check_voltage("v", v, v_max)
        self.check_gate("vg", vg)
        self.check_width(width)
        return r, c

    @staticmethod
    def clip_to_compliance(currents: FloatArray, compliance: float | None) -> FloatArray:
        """Currents as a meter with that current limit reports them (A). In a 1T1R cell the selector's
        gate is what limits the current the cell sees; the meter's limit only clips the reading."""
        return currents if compliance is None else np.clip(currents, -compliance, compliance)

    def check_width(self, width: float | FloatArray) -> None:
        """ValueError unless every pulse width is finite and in [min_pulse_width, max_pulse_width] s."""
        lo, hi = self.limits.min_pulse_width, self.limits.max_pulse_width
        a = np.asarray(width, dtype=np.float64)
        if not np.all(np.isfinite(a)) or (a.size and (a.min() < lo or a.max() > hi)):
            raise ValueError(f"width: must lie in [{lo:g}, {hi:g}] s, got {width!r}")
