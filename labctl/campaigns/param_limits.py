"""Step parameters held against the campaign's [limits] before anything runs.

Which limit binds a parameter: a RoutineParams model lists its voltage, gate, width and compliance
fields; for other models the field's unit and name decide (a voltage with "vg" or "gate" in its name is a
gate voltage). Nested parameter models ([steps.params.program]) are followed. During the run the same
limits are enforced on every backend call (labctl.campaigns.backend.LimitedBackend).
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np
from pydantic import BaseModel

from labctl.campaigns.unit_checks import LIMIT_LISTS, param_unit
from labctl.core.limits import SafetyLimits
from labctl.core.temperature import ZERO_CELSIUS

#: The [limits] field behind each RoutineParams limit list.
_LIST_LIMIT = dict(zip((attr for attr, _ in LIMIT_LISTS),
                       ("max_abs_voltage", "max_gate_voltage", "max_pulse_width", "max_compliance")))
_LIMIT_UNIT = {"max_abs_voltage": "V", "max_gate_voltage": "V", "max_pulse_width": "s", "max_compliance": "A",
               "max_read_voltage": "V"}


def _declares_lists(model: type[BaseModel]) -> bool:
    return any(hasattr(model, attr) for attr, _ in LIMIT_LISTS)


@lru_cache(maxsize=4096)  # per (model, field): a sweep asks the same question at every point
def limit_field(model: type[BaseModel], name: str) -> str | None:
    """The [limits] field that bounds parameter `name` of `model`, or None."""
    if name in getattr(model, "read_bias_fields", ()) or (not _declares_lists(model) and name == "v_read"):
        return "max_read_voltage"  # a read must not disturb the cell: its own, lower limit
    if _declares_lists(model):
        return next((lim for attr, lim in _LIST_LIMIT.items() if name in getattr(model, attr, ())), None)
    unit = param_unit(model, name)
    if unit == "V":
        return "max_gate_voltage" if "vg" in name or "gate" in name else "max_abs_voltage"
    if unit == "s" and "width" in name:
        return "max_pulse_width"
    if unit == "A" and "compliance" in name:
        return "max_compliance"
    return None


def exceeds(field: str, value: Any, limits: SafetyLimits) -> str | None:
    """Message if the largest |value| (a number or a list) is beyond limits.`field`, or is not finite
    (no limit holds NaN or inf), else None."""
    if value is None:  # "not set": the routine's own default rule applies (e.g. the pulse table)
        return None
    lim = getattr(limits, field)
    if lim is None:  # no read limit of its own: the bit-line limit
        field, lim = "max_abs_voltage", limits.max_abs_voltage
    unit = _LIMIT_UNIT[field]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        worst = abs(float(value))  # the common case, without a numpy round trip
    else:
        try:
            a = np.abs(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError):
            return None
        if not a.size:
            return None
        worst = float(a.max()) if np.all(np.isfinite(a)) else math.inf
        if np.any(np.isnan(a)):
            worst = math.nan
    if not math.isfinite(worst):
        return f"must be a finite number, got {value!r} (limits.{field} = {lim:g} {unit})"
    if worst > lim:
        return f"{worst:g} {unit} exceeds limits.{field} = {lim:g} {unit} (allowed |value| <= {lim:g} {unit})"
    return None


def temperature_problem(name: str, value: Any, limits: SafetyLimits, ramp: bool) -> str | None:
    """Message if a set-point (K) is outside [limits] min_temperature..max_temperature, or a ramp rate
    (K/s, `ramp`) beyond max_ramp_rate; None when within or when the file sets no such limit."""
    if value is None:
        return None
    v = float(value)
    if ramp:
        hi = getattr(limits, "max_ramp_rate", None)
        return (f"{v:g} K/s exceeds limits.max_ramp_rate = {hi:g} K/s" if hi is not None and v > hi else None)
    lo, hi = getattr(limits, "min_temperature", None), getattr(limits, "max_temperature", None)
    if lo is not None and v < lo:
        return f"{v:g} K ({v - ZERO_CELSIUS:.2f} °C) is below limits.min_temperature = {lo:g} K"
    if hi is not None and v > hi:
        return f"{v:g} K ({v - ZERO_CELSIUS:.2f} °C) exceeds limits.max_temperature = {hi:g} K"
    return None


def limit_problems(params: BaseModel, limits: SafetyLimits) -> list[tuple[str, str]]:
    """(field, message) for every parameter of `params` beyond the campaign [limits]; a nested model's
    problems read "field: sub: message"."""
    model = type(params)
    out = []
    for name in model.model_fields:
        value = getattr(params, name)
        if isinstance(value, BaseModel):
            out += [(name, f"{sub}: {msg}") for sub, msg in limit_problems(value, limits)]
            continue
        if name in getattr(model, "temperature_fields", ()) or name in getattr(model, "ramp_fields", ()):
            msg = temperature_problem(name, value, limits, ramp=name in getattr(model, "ramp_fields", ()))
            if msg:
                out.append((name, msg))
            continue
        field = limit_field(model, name)
        msg = exceeds(field, value, limits) if field else None
        if msg:
            out.append((name, msg))
    return out
