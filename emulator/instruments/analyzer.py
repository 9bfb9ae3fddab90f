"""What the emulated parameter analyzers (Keithley 4200A-SCS over KXCI, Keysight B1500A over FLEX)
share: their command shape (a mnemonic, then comma-separated numbers), number parsing against an
instrument range, and an error type that carries the instrument's own error code.

Neither command set is SCPI: ``DV1,0,0.5,1E-3`` has no colon tree and no ``;`` chaining, so they do
not go through :class:`~.scpi.CommandSet`; their error models differ too (KXCI keeps the last error,
FLEX a queue of codes read with ``ERR?``), and each model formats its own.
"""
from __future__ import annotations

import math
import re

from .scpi import ErrorQueue

_HEADER = re.compile(r"^\s*(\*?[A-Za-z:]+\??)\s*(.*)$", re.S)


class AnalyzerError(Exception):
    """A refused command; ``code`` is the instrument's own error number."""

    def __init__(self, code: int, text: str) -> None:
        self.code = code
        self.text = text
        super().__init__(f"{code}: {text}")


def split_command(message: str) -> tuple[str, list[str]]:
    """``"DV1, 0, 0.5, 1e-3"`` -> ``("DV", ["1", "0", "0.5", "1e-3"])``; ``":PMU:DATA:GET 1, 0"`` ->
    ``(":PMU:DATA:GET", ["1", "0"])``. A channel number glued to a two-letter mnemonic (``TI1``)
    becomes the first argument. The header is upper-cased."""
    m = _HEADER.match(message)
    if m is None:
        raise AnalyzerError(-100, f"cannot parse {message[:40]!r}")
    header, rest = m.group(1).upper(), m.group(2).strip()
    args = [a.strip() for a in rest.split(",")] if rest else []
    return header, args


def glued_channel(message: str) -> tuple[str, list[str]]:
    """Like :func:`split_command`, for mnemonics that take the channel glued on (``DV1,...``,
    ``TI2``, ``IT4,...``): the digits after the letters become the first argument."""
    text = message.strip()
    m = re.match(r"^([A-Za-z]+)\s*(\d+)?\s*(?:,\s*(.*))?$", text, re.S)
    if m is None or not m.group(1):
        return split_command(message)
    header, number, rest = m.group(1).upper(), m.group(2), m.group(3)
    args = [number] if number is not None else []
    if rest is not None:
        args += [a.strip() for a in rest.split(",")]
    elif number is None and text[len(m.group(1)):].strip():
        args += [a.strip() for a in text[len(m.group(1)):].split(",")]
    return header, args


def number(text: str, name: str, low: float, high: float, code: int) -> float:
    """A finite number in [low, high]; AnalyzerError(code) naming the parameter otherwise."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise AnalyzerError(code, f"{name}: {text[:40]!r} is not a number") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise AnalyzerError(code, f"{name}={text[:40]} outside [{low:g}, {high:g}]")
    return value


def level(text: str, name: str, limit: float, bench_limit: float, code: int) -> float:
    """A source level (V): within the instrument's range ``limit``, then the bench's |V| limit."""
    v = number(text, name, -limit, limit, code)
    if abs(v) > bench_limit:
        raise AnalyzerError(code, f"{name}={v:g} V beyond the bench limit {bench_limit:g} V")
    return v


def integer(text: str, name: str, low: int, high: int, code: int) -> int:
    value = number(text, name, low, high, code)
    if value != int(value):
        raise AnalyzerError(code, f"{name}={text[:40]} is not an integer")
    return int(value)


def need(args: list[str], count: int, name: str, code: int) -> None:
    if len(args) < count:
        raise AnalyzerError(code, f"{name} needs {count} parameter(s), got {len(args)}")


def reading(value: float) -> str:
    """A measured value at full float64 precision (see :func:`.scpi.fmt_reading`)."""
    return f"{value:+.16E}"


def spot_mean(values: list[float]) -> float:
    """Mean of a measurement window; a window of equal samples (one read) is that value exactly."""
    if not values:
        return 0.0
    first = values[0]
    if all(v == first for v in values):
        return first
    return math.fsum(values) / len(values)


class TranslatingErrorQueue(ErrorQueue):
    """An error queue that stores the instrument family's own codes: what the shared transport and
    parser report in SCPI numbers (-101 invalid character, -223 message too long, -350 queue
    overflow, -200 internal error) becomes the code ``codes`` maps it to."""

    def __init__(self, codes: dict[int, int], size: int = 10) -> None:
        super().__init__(size)
        self.codes = codes

    def push(self, code: int, text: str) -> None:
        if len(self._items) >= self.size:
            self._items[-1] = (self.codes.get(-350, -350), "error queue overflow")
            return
        super().push(self.codes.get(code, code), text)
