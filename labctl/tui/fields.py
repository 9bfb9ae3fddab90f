"""Form fields of a params model: formatting defaults with units, parsing what the operator typed,
and the safety limit that applies to each field (shown next to it). No Textual here."""
from __future__ import annotations

import re
import math
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from labctl.campaigns.quantities import parse_quantity, unit_of_field
from labctl.core.limits import SafetyLimits

_PREFIXES = ((1e-12, "p"), (1e-9, "n"), (1e-6, "u"), (1e-3, "m"), (1.0, ""), (1e3, "k"), (1e6, "M"))


def format_quantity(value: Any, unit: str | None) -> str:
    """A number with its unit and an SI prefix parse_quantity reads back ('2.5 us', '50 uS', '-1.5 V')."""
    if value is None:
        return ""
    if isinstance(value, bool) or isinstance(value, str):
        return str(value).lower() if isinstance(value, bool) else value
    if isinstance(value, (list, tuple)):
        return ", ".join(format_quantity(v, unit) for v in value)
    if not isinstance(value, (int, float)):
        return str(value)
    if unit is None or unit in ("ohm", "Hz") or value == 0 or not math.isfinite(value):
        return f"{value:g}" + (f" {unit}" if unit and value == 0 else "")
    a = abs(value)
    scale, prefix = 1.0, ""
    for s, p in _PREFIXES:
        if a >= s * 0.9999999:
            scale, prefix = s, p
    if unit == "V":  # volts read best without a prefix at the probe station
        scale, prefix = 1.0, ""
    return f"{value / scale:.6g} {prefix}{unit}"


def field_unit(model: type[BaseModel], name: str) -> str | None:
    """SI unit of a params field (declared or from lab naming conventions)."""
    if name in getattr(model, "voltage_fields", ()) or name in getattr(model, "gate_fields", ()):
        return "V"
    if name in getattr(model, "width_fields", ()):
        return "s"
    if name in getattr(model, "compliance_fields", ()):
        return "A"
    if name in ("targets", "levels"):
        return "S"
    if name == "times":
        return "s"
    return unit_of_field(name, model.model_fields[name])


def field_limit(model: type[BaseModel], name: str, limits: SafetyLimits | None) -> str:
    """The station limit that applies to a field, as text ('' if none)."""
    if limits is None:
        return ""
    if name in getattr(model, "voltage_fields", ()):
        return f"|V| ≤ {limits.max_abs_voltage:g} V"
    if name in getattr(model, "gate_fields", ()):
        return f"0 … {limits.max_gate_voltage:g} V"
    if name in getattr(model, "width_fields", ()):
        return f"{format_quantity(limits.min_pulse_width, 's')} … {format_quantity(limits.max_pulse_width, 's')}"
    if name in getattr(model, "compliance_fields", ()):
        return f"≤ {format_quantity(limits.max_compliance, 'A')}"
    # Voltage-like fields the model does not list (e.g. a set amplitude that may be None) are still
    # held to |V| <= max_abs_voltage by the backend: say so.
    if field_unit(model, name) == "V":
        return f"|V| ≤ {limits.max_abs_voltage:g} V"
    return ""


def default_text(model: type[BaseModel], name: str, initial: dict[str, Any]) -> str:
    info = model.model_fields[name]
    if name in initial:
        value = initial[name]
    elif info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
    else:
        value = info.default
    if value is None or repr(value) == "PydanticUndefined":
        return ""
    return format_quantity(value, field_unit(model, name))


def _is_list(model: type[BaseModel], name: str) -> bool:
    ann = model.model_fields[name].annotation
    origins = {typing.get_origin(a) for a in (typing.get_args(ann) or (ann,))} | {typing.get_origin(ann)}
    return list in origins


def parse_value(model: type[BaseModel], name: str, text: str) -> Any:
    """What the operator typed, in SI. Blank: the model's default (returns ...). A list field takes
    comma-separated values. ValueError names the field."""
    text = text.strip()
    if text == "":
        return ...
    if "," in text or (_is_list(model, name) and name != "targets"):
        return [_parse_scalar(model, name, part) for part in text.split(",") if part.strip()]
    return _parse_scalar(model, name, text)


def _parse_scalar(model: type[BaseModel], name: str, text: str) -> Any:
    text = text.strip()
    unit = field_unit(model, name)
    if text.lower() in ("none", "per-range", "default"):
        return None
    if text.lower() in ("true", "yes", "on"):
        return True
    if text.lower() in ("false", "no", "off"):
        return False
    q = parse_quantity(text)
    if q is not None:
        value, got = q
        if unit is not None and got != unit:
            raise ValueError(f"{name}: {text!r} is in {got}, expected {unit}")
        return value
    try:
        return float(text) if re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", text) and "." in text \
            or "e" in text.lower() else int(text)
    except ValueError:
        return text  # a choice such as "host"; the model says whether it is allowed


def build_params(model: type[BaseModel], texts: dict[str, str], limits: SafetyLimits | None,
                 initial: dict[str, Any] | None = None) -> tuple[BaseModel | None, dict[str, str]]:
    """The params model from the form's texts, or the errors per field ('' for model-wide errors).

    Values beyond the station limits are refused here, before anything is sent.
    """
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    for k, v in (initial or {}).items():
        if k not in texts:
            values[k] = v
    for name, text in texts.items():
        try:
            v = parse_value(model, name, text)
        except ValueError as exc:
            errors[name] = str(exc)
            continue
        if v is not ...:
            values[name] = v
    if errors:
        return None, errors
    try:
        params = model(**values)
    except ValidationError as exc:
        for e in exc.errors():
            loc = e.get("loc") or ("",)
            key = str(loc[0]) if loc and str(loc[0]) in texts else ""
            msg = e.get("msg", "invalid")
            got = e.get("input")
            errors[key] = f"{'.'.join(str(x) for x in loc) or 'params'}: {msg}" + (
                f" (got {got!r})" if key and not isinstance(got, dict) else "")
        return None, errors
    except ValueError as exc:
        return None, {"": str(exc)}
    if limits is not None:
        try:
            params.check_limits(limits)  # type: ignore[attr-defined]
        except ValueError as exc:
            msg = str(exc)
            key = msg.split(":", 1)[0]
            return None, {key if key in texts else "": msg}
        # Fields the model does not list as voltages but that are voltages (None = per-range default).
        for name in texts:
            v = getattr(params, name, None)
            if field_unit(model, name) == "V" and isinstance(v, (int, float)) and not isinstance(v, bool) \
                    and abs(v) > limits.max_abs_voltage and name not in getattr(model, "gate_fields", ()):
                return None, {name: f"{name}: {v:g} V exceeds the station limit |V| <= {limits.max_abs_voltage:g} V"}
    return params, {}
