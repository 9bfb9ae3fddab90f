"""Parameter models shared by every routine: validation, backend limits, cell lists and chunks.

Every routine takes a pydantic `Params` model (a subclass of `RoutineParams`). Validation happens in
two places, both before anything is sent to the array:
  - when the model is built: ranges that do not depend on the backend (a tolerance must be a positive
    fraction, targets must lie in the conductance window, ...). pydantic's ValidationError is a
    ValueError and names the field, the value and the constraint;
  - when the routine starts: `check_limits(backend.limits)` refuses voltages, gate voltages, widths
    and compliances beyond what the backend accepts, naming the field and the limit.
All values are SI (V, A, S, s).
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator

from labctl.core.reference import WINDOW

from labctl.core.limits import SafetyLimits

if TYPE_CHECKING:
    from labctl.backends.base import ArrayBackend

#: Conductance window the reference device is programmed in (labctl.core.reference.WINDOW), S.
REFERENCE_WINDOW: tuple[float, float] = WINDOW

#: Default number of cells handled between two safe points (chosen: large enough that vectorized
#: backends keep their speed, small enough that a sweep's currents of one chunk stay ~10 MB).
DEFAULT_CHUNK = 4096


class RoutineParams(BaseModel):
    """Base of every routine's parameters: frozen, unknown fields refused.

    Subclasses list which of their fields are top-electrode voltages, gate voltages, pulse widths and
    current compliances, so `check_limits` can hold them against the backend's limits.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    chunk: int = Field(DEFAULT_CHUNK, ge=1, description="cells per chunk between safe points")

    voltage_fields: ClassVar[tuple[str, ...]] = ()
    gate_fields: ClassVar[tuple[str, ...]] = ()
    width_fields: ClassVar[tuple[str, ...]] = ()
    compliance_fields: ClassVar[tuple[str, ...]] = ()
    #: Read biases (where the model has them): a conductance is I / V, so 0 V reads nothing.
    read_bias_fields: ClassVar[tuple[str, ...]] = ("v_read",)
    #: False: the routine must see every cell of its selection at once (a campaign never splits it
    #: into chunks; e.g. physics that depends on the shared virtual clock).
    chunkable: ClassVar[bool] = True

    @model_validator(mode="after")
    def _read_bias_not_zero(self) -> RoutineParams:
        for name in self.read_bias_fields:
            if getattr(self, name, None) == 0:
                raise ValueError(f"{name}: must be a non-zero bias, got 0 V")
        return self

    def check_limits(self, limits: SafetyLimits) -> None:
        """Refuse values beyond the backend's safety limits (ValueError naming the field and limit).

        Nested parameter models (e.g. the programming step of a relaxation) are checked too.
        """
        for name in self.voltage_fields:
            v = getattr(self, name)
            if v is not None and not abs(v) <= limits.max_abs_voltage:
                raise ValueError(f"{name}: {v:g} V exceeds the backend limit |V| <= {limits.max_abs_voltage:g} V")
        read_max = limits.max_read_voltage if limits.max_read_voltage is not None else limits.max_abs_voltage
        for name in self.read_bias_fields:
            v = getattr(self, name, None)
            if v is not None and not abs(v) <= read_max:
                raise ValueError(f"{name}: {v:g} V exceeds the backend's read limit |V| <= {read_max:g} V")
        for name in self.gate_fields:
            v = getattr(self, name)
            if v is not None and not 0.0 <= v <= limits.max_gate_voltage:
                raise ValueError(f"{name}: {v:g} V is outside the backend's gate range "
                                 f"[0, {limits.max_gate_voltage:g}] V")
        for name in self.width_fields:
            w = getattr(self, name)
            if w is not None and not limits.min_pulse_width <= w <= limits.max_pulse_width:
                raise ValueError(f"{name}: {w:g} s is outside the backend's pulse widths "
                                 f"[{limits.min_pulse_width:g}, {limits.max_pulse_width:g}] s")
        for name in self.compliance_fields:
            c = getattr(self, name)
            if c is not None and not 0.0 < c <= limits.max_compliance:
                raise ValueError(f"{name}: {c:g} A is outside the backend's compliance range "
                                 f"(0, {limits.max_compliance:g}] A")
        for name in type(self).model_fields:
            sub = getattr(self, name)
            if isinstance(sub, RoutineParams):
                try:
                    sub.check_limits(limits)
                except ValueError as exc:
                    raise ValueError(f"{name}.{exc}") from None


def finite(name: str, value: float) -> float:
    """`value` if finite, else ValueError naming `name`."""
    if not math.isfinite(value):
        raise ValueError(f"{name}: must be finite, got {value!r}")
    return value


def check_window(name: str, values: NDArray[np.float64], window: tuple[float, float]) -> None:
    """ValueError unless every conductance (S) lies inside `window` (inclusive, 1 ppb slack for
    levels computed in floating point)."""
    lo, hi = window
    if not 0.0 < lo < hi:
        raise ValueError(f"window: expected 0 < g_low < g_high S, got {window!r}")
    if values.size == 0:
        return
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name}: must be finite conductances (S)")
    bad = (values < lo * (1 - 1e-9)) | (values > hi * (1 + 1e-9))
    if np.any(bad):
        v = float(values[bad][0])
        raise ValueError(f"{name}: {v:g} S is outside the conductance window [{lo:g}, {hi:g}] S")


# ----------------------------------------------------------------------------- cells


def all_cells(backend: ArrayBackend) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Row and column index of every cell of the backend's array, row-major."""
    r, c = np.divmod(np.arange(backend.rows * backend.cols, dtype=np.int64), backend.cols)
    return r, c


def cell_arrays(backend: ArrayBackend, rows: object, cols: object) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Validated 1-D cell index arrays (None, None: every cell)."""
    if rows is None and cols is None:
        return all_cells(backend)
    return backend.check_cells(np.asarray(rows), np.asarray(cols))


def chunks(n: int, size: int) -> Iterator[slice]:
    """Consecutive slices of at most `size` cells covering range(n)."""
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))

