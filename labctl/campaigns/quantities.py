"""Quantities with units in campaign files: "2.5 us" -> 2.5e-6 (s), checked against the field's unit.

Campaign files are SI: a bare number is taken in V, A, S, s or ohm as the field says. For readability a
value may also be written as a string with a unit and an optional SI prefix ("2.5 us", "-1.3 V",
"30 uS", "1 mA"); it is converted to SI before validation, and a unit that is not the field's unit
("2.5 mV" for a pulse width) is an error naming the field.
"""
from __future__ import annotations

import re
from typing import Any

from labctl.core.temperature import ZERO_CELSIUS

# SI prefixes accepted in front of a unit; "u" stands for micro so files stay ASCII.
PREFIXES: dict[str, float] = {"p": 1e-12, "n": 1e-9, "u": 1e-6, "µ": 1e-6, "m": 1e-3, "": 1.0, "k": 1e3,
                              "M": 1e6, "G": 1e9}
UNITS: dict[str, str] = {"V": "V", "A": "A", "S": "S", "s": "s", "ohm": "ohm", "Ohm": "ohm", "Ω": "ohm",
                         "Hz": "Hz"}
# Non-SI time units people write for retention schedules, in seconds.
TIME_UNITS: dict[str, float] = {"min": 60.0, "h": 3600.0, "day": 86400.0, "days": 86400.0, "week": 604800.0,
                                "weeks": 604800.0}

# Temperatures are kelvin; Celsius is an offset unit ("85 °C" is 358.15 K). Rates of change are K/s,
# and a degree Celsius per minute is a kelvin per minute. No SI prefixes on either.
TEMPERATURE_UNITS: dict[str, float] = {"K": 0.0, "°C": ZERO_CELSIUS, "degC": ZERO_CELSIUS, "C": ZERO_CELSIUS}
RATE_UNITS: dict[str, float] = {f"{t}/{per}": 1.0 / seconds for t in ("K", "°C", "degC")
                                for per, seconds in (("s", 1.0), ("min", 60.0), ("h", 3600.0))}

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_QUANTITY = re.compile(rf"^\s*(?P<num>{_NUMBER})\s*(?P<unit>[a-zA-Zµ Ω°/]+)\s*$")


def parse_quantity(text: str) -> tuple[float, str] | None:
    """'2.5 us' -> (2.5e-6, 's'); None if `text` is not a number followed by a known unit."""
    m = _QUANTITY.match(text)
    if m is None:
        return None
    value = float(m.group("num"))
    unit = m.group("unit").strip()
    if unit in TIME_UNITS:
        return value * TIME_UNITS[unit], "s"
    if unit in TEMPERATURE_UNITS:
        return value + TEMPERATURE_UNITS[unit], "K"
    if unit in RATE_UNITS:
        return value * RATE_UNITS[unit], "K/s"
    # Longest unit suffix first so "ms" is milli-second and "mS" milli-siemens, "Ohm" is not "O"+"hm".
    for name in sorted(UNITS, key=len, reverse=True):
        if unit.endswith(name):
            prefix = unit[: -len(name)]
            if prefix in PREFIXES:
                return value * PREFIXES[prefix], UNITS[name]
    return None


def convert_quantities(data: Any, path: tuple[Any, ...] = ()) -> tuple[Any, dict[tuple[Any, ...], tuple[str, str]]]:
    """Replace quantity strings in a parsed TOML tree by SI floats.

    Returns the converted tree and {path: (original text, unit)} for every converted value, so the
    caller can check each unit against the field it landed in.
    """
    found: dict[tuple[Any, ...], tuple[str, str]] = {}
    if isinstance(data, dict):
        out: Any = {}
        for k, v in data.items():
            out[k], sub = convert_quantities(v, path + (k,))
            found.update(sub)
        return out, found
    if isinstance(data, list):
        out = []
        for i, v in enumerate(data):
            cv, sub = convert_quantities(v, path + (i,))
            out.append(cv)
            found.update(sub)
        return out, found
    if isinstance(data, str):
        q = parse_quantity(data)
        if q is not None:
            found[path] = (data, q[1])
            return q[0], found
    return data, found


# Field-name conventions of routine parameters (labctl's names carry no unit prefixes, so the name says
# what the quantity is): used when a Params field does not declare its unit.
_NAME_UNITS: tuple[tuple[str, str], ...] = (
    (r"(^|_)(width|duration|dwell|time|times|delay|wait|interval|period|t_\w+|t)$", "s"),
    (r"^(v|vg|v_\w+|vg_\w+|voltage|voltages|\w+_voltage|\w+_voltages)$", "V"),
    (r"^(g|g_\w+|target|targets|\w+_g|conductance|conductances|g_targets?)$", "S"),
    (r"^(i|i_\w+|compliance|current|\w+_current|\w+_compliance)$", "A"),
    (r"^(r|r_\w+|resistance)$", "ohm"),
)


def unit_of_field(name: str, field_info: Any = None) -> str | None:
    """The SI unit of a parameter: declared (json_schema_extra {"unit": ...}, or "(V)" etc. in the
    description), else inferred from lab naming conventions; None if dimensionless or unknown."""
    if field_info is not None:
        extra = getattr(field_info, "json_schema_extra", None)
        if isinstance(extra, dict) and isinstance(extra.get("unit"), str):
            return extra["unit"]
        desc = getattr(field_info, "description", None) or ""
        m = re.search(r"[,(]\s*(V|A|S|s|ohm)(?![\w/])", desc)
        if m:
            return m.group(1)
    for pattern, unit in _NAME_UNITS:
        if re.search(pattern, name):
            return unit
    return None
