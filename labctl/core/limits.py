"""One type for safety limits, from the campaign file to the driver (SI units).

A campaign's ``[limits]``, a station file's station-wide and per-terminal limits, a backend's limits and
the limits a chip controller reports in its INFO reply are all `SafetyLimits`. Layers combine them with
`tightened` (a value can only become stricter on the way to the hardware) and check with the `check_*`
methods, which raise `LimitError` naming the field, the value and the allowed range before anything is
sent. Non-finite values are always refused.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class LimitError(ValueError):
    """A value outside the safety limits (or an instrument's range); raised before any I/O."""

    def __init__(self, field: str, value: object, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{field}={value!r} refused: allowed {allowed}")


class SafetyLimits(BaseModel):
    """What may be applied to the array. SI units; None: not limited at this level."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    max_abs_voltage: float = Field(3.6, gt=0, allow_inf_nan=False, description="largest |V| on a bit line / top electrode, V")
    max_gate_voltage: float = Field(3.3, gt=0, allow_inf_nan=False, description="largest gate (word line) voltage, V; the smallest is 0")
    min_pulse_width: float = Field(0.0, ge=0, allow_inf_nan=False, description="shortest pulse, s")
    max_pulse_width: float = Field(1e-3, gt=0, allow_inf_nan=False, description="longest pulse, s")
    max_compliance: float = Field(1e-3, gt=0, allow_inf_nan=False,
                                  description="largest current limit (compliance) of a sweep or SMU, A")
    max_read_voltage: float | None = Field(None, gt=0, allow_inf_nan=False, description="largest |V| of a read, V")
    max_pulse_energy: float | None = Field(None, gt=0, allow_inf_nan=False,
                                           description="largest energy per pulse into the load, J")
    min_load_resistance: float = Field(1e3, gt=0, allow_inf_nan=False,
                                       description="smallest resistance a pulse can see (cell + selector), ohm")

    def tightened(self, other: SafetyLimits | None = None, **values: Any) -> SafetyLimits:
        """These limits made no looser by `other` and by explicit `values` (None values are ignored):
        each value becomes the stricter of the two: the larger min_pulse_width, the smaller of every other
        (a smaller min_load_resistance makes the pulse-energy estimate more conservative)."""
        merged = self.model_dump()
        updates = dict(other.model_dump()) if other is not None else {}
        updates.update({k: v for k, v in values.items() if v is not None})
        for name, value in updates.items():
            if name not in merged:
                raise KeyError(f"{name}: not a safety limit (have {', '.join(merged)})")
            if value is None:
                continue
            if merged[name] is None:
                merged[name] = value
            elif name == "min_pulse_width":  # the only limit where larger is stricter
                merged[name] = max(merged[name], value)
            else:
                merged[name] = min(merged[name], value)
        return SafetyLimits(**merged)

    # -- checks: each raises LimitError naming the field, the value and the allowed range
    def check_voltage(self, field: str, value: float | np.ndarray, limit: float | None = None) -> None:
        """|value| <= max_abs_voltage (or `limit`), finite; V."""
        lim = self.max_abs_voltage if limit is None else limit
        _check(field, value, lambda a: np.abs(a) <= lim, f"|V| <= {lim:g} V (max_abs_voltage)")

    def check_gate(self, field: str, value: float | np.ndarray) -> None:
        """0 <= value <= max_gate_voltage, finite; V."""
        lim = self.max_gate_voltage
        _check(field, value, lambda a: (a >= 0) & (a <= lim), f"[0, {lim:g}] V (max_gate_voltage)")

    def check_width(self, field: str, value: float | np.ndarray) -> None:
        """min_pulse_width <= value <= max_pulse_width, finite; s."""
        lo, hi = self.min_pulse_width, self.max_pulse_width
        _check(field, value, lambda a: (a >= lo) & (a <= hi) & (a > 0),
               f"({lo:g}, {hi:g}] s (max_pulse_width)" if lo == 0 else f"[{lo:g}, {hi:g}] s (min/max_pulse_width)")

    def check_compliance(self, field: str, value: float | np.ndarray) -> None:
        """0 < value <= max_compliance, finite; A."""
        lim = self.max_compliance
        _check(field, value, lambda a: (a > 0) & (a <= lim), f"(0, {lim:g}] A (max_compliance)")

    def check_read_voltage(self, field: str, value: float) -> None:
        """value non-zero, finite, |value| <= max_read_voltage (or max_abs_voltage); V."""
        lim = self.max_read_voltage if self.max_read_voltage is not None else self.max_abs_voltage
        _check(field, value, lambda a: (a != 0) & (np.abs(a) <= lim), f"0 < |V| <= {lim:g} V (max_read_voltage)")

    def pulse_energy(self, level: float, width: float) -> float:
        """Worst-case energy of one pulse of `level` V and `width` s into min_load_resistance, J."""
        return level * level / self.min_load_resistance * width

    def check_energy(self, field: str, value: float, level: float, width: float) -> None:
        """pulse_energy(level, width) <= max_pulse_energy (when set)."""
        if self.max_pulse_energy is None:
            return
        energy = self.pulse_energy(level, width)
        if not math.isfinite(energy) or energy > self.max_pulse_energy:
            raise LimitError(field, value, f"a pulse energy <= {self.max_pulse_energy:g} J (max_pulse_energy); "
                                           f"{abs(level):g} V for {width:g} s into {self.min_load_resistance:g} ohm "
                                           f"is {energy:.3g} J")


def _check(field: str, value: float | np.ndarray, ok: Any, allowed: str) -> None:
    if isinstance(value, (float, int)):
        # One number (what drivers check, many times per loop iteration): no array round trip.
        v = float(value)
        if not (math.isfinite(v) and ok(v)):
            raise LimitError(field, v, allowed)
        return
    a = np.asarray(value, dtype=np.float64)
    bad = ~np.isfinite(a) | ~ok(np.where(np.isfinite(a), a, 0.0))
    if np.any(bad):
        if a.ndim == 0:
            raise LimitError(field, float(a), allowed)
        k = int(np.flatnonzero(bad.reshape(-1))[0])
        raise LimitError(f"{field}[{k}]", float(a.reshape(-1)[k]), allowed)
