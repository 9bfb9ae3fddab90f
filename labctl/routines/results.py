"""Typed routine results: frozen dataclasses of per-cell arrays with a JSON-able `summary()`."""
from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np


def scalar(x: Any) -> float | int | bool | str | None:
    """A JSON-able scalar: numpy scalars to Python, NaN and inf to None."""
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        f = float(x)
        return f if math.isfinite(f) else None
    if x is None or isinstance(x, str):
        return x
    raise TypeError(f"not a scalar: {type(x).__name__}")


def nanstat(fn: Any, a: Any) -> float | None:
    """fn (np.nanmean, np.nanstd, ...) over the finite part of `a`; None when nothing is finite."""
    arr = np.asarray(a, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    return scalar(fn(arr)) if arr.size else None


@dataclasses.dataclass(frozen=True)
class RoutineResult:
    """Base of every routine result. Subclasses are frozen dataclasses whose fields are per-cell numpy
    arrays (SI units) or nested results, and implement `summary()`."""

    #: Summary keys that are settings of the call (cycles per cell, pulses per train), the same for every
    #: chunk of a step: combined summaries take them from one chunk instead of adding them up as counts.
    summary_settings: ClassVar[tuple[str, ...]] = ()

    #: The figures of this result's routine in a run report: "module:function" of a figure function
    #: (labctl.routines.figures: StepData -> list of Figure / Table / Note), imported only by a report.
    #: None: the report draws a panel per measured quantity (labctl.routines.figures.generic).
    figures: ClassVar[str | None] = None

    def summary(self) -> dict[str, float | int | bool | str | None]:
        """JSON-able scalars for reports and telemetry."""
        raise NotImplementedError

    def arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        """Every array field (nested results flattened as "outer.inner"), for storage and comparison."""
        out: dict[str, np.ndarray] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, RoutineResult):
                out.update(value.arrays(f"{prefix}{f.name}."))
            elif isinstance(value, np.ndarray):
                out[prefix + f.name] = value
            elif isinstance(value, (int, float, bool, np.generic)):
                out[prefix + f.name] = np.asarray(value)
        return out
