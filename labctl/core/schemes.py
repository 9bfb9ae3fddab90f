"""Closed-loop programming schemes: one naming and one source of defaults (REF §Closed-loop programming).

The same names appear in campaign files (routine parameters), in `ProgramSettings`, in the chip
protocol's SET_TARGET_G payload (docs/protocol.md) and in the C core's `rram_program_cfg`:

| here              | protocol field   | C (rram_program_cfg / arguments) |
|-------------------|------------------|----------------------------------|
| v_set / v_reset (identical, per range: PulseTable) | IDENTICAL ranges | v_set[], v_reset[] per cell |
| v_start_set       | v_start_set      | v_set[] per cell                 |
| v_step_set        | v_step_set       | v_step_set                       |
| v_stop_set        | v_stop_set       | v_stop_set                       |
| v_start_reset     | v_start_reset    | v_reset[] per cell               |
| v_step_reset      | v_step_reset     | v_step_reset                     |
| v_stop_reset      | v_stop_reset     | v_stop_reset                     |
| max_per_polarity  | max_per_polarity | max_per_polarity                 |
| max_flips         | max_flips        | max_flips                        |
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

SchemeName = Literal["identical", "incremental"]


@dataclass(frozen=True)
class PulseTable:
    """Identical-pulse amplitudes chosen by target range: a target in [g_low[k], g_high[k]) gets
    v_set[k] (V > 0) and v_reset[k] (V < 0); a target outside every range gets the nearest range.
    Conductances in S."""

    g_low: tuple[float, ...]
    g_high: tuple[float, ...]
    v_set: tuple[float, ...]
    v_reset: tuple[float, ...]

    def __post_init__(self) -> None:
        n = len(self.g_low)
        if not (n and len(self.g_high) == n and len(self.v_set) == n and len(self.v_reset) == n):
            raise ValueError(f"pulse table: g_low, g_high, v_set, v_reset need the same non-zero length, got "
                             f"{len(self.g_low)}, {len(self.g_high)}, {len(self.v_set)}, {len(self.v_reset)}")
        values = np.array([self.g_low, self.g_high, self.v_set, self.v_reset], dtype=np.float64)
        if not np.all(np.isfinite(values)):
            raise ValueError("pulse table: every value must be finite")
        if np.any(values[0] >= values[1]) or np.any(values[0] <= 0):
            raise ValueError("pulse table: each range needs 0 < g_low < g_high")
        if np.any(values[2] <= 0) or np.any(values[3] >= 0):
            raise ValueError("pulse table: set amplitudes must be positive and reset amplitudes negative")

    def amplitudes(self, targets: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Per-target (v_set, v_reset), V: the range that holds the target, else the nearest range."""
        lo, hi = np.asarray(self.g_low, float), np.asarray(self.g_high, float)
        if np.all(lo[1:] == hi[:-1]):
            # Contiguous rising ranges (the reference table): the same rule as the general lookup below,
            # by one binary search per target instead of a distance to every range.
            t1 = np.atleast_1d(np.asarray(targets, float))
            k = np.minimum(np.searchsorted(hi, t1, side="right"), hi.size - 1)
            return np.asarray(self.v_set, float)[k], np.asarray(self.v_reset, float)[k]
        t = np.atleast_1d(np.asarray(targets, float))[:, None]
        distance = np.maximum(lo[None, :] - t, 0.0) + np.maximum(t - hi[None, :], 0.0)
        inside = (t >= lo[None, :]) & (t < hi[None, :])
        k = np.argmin(np.where(inside, -1.0, distance), axis=1)  # inside beats touching an upper edge
        return np.asarray(self.v_set, float)[k], np.asarray(self.v_reset, float)[k]


# REF "Closed-loop programming": identical pulses chosen by target range.
REFERENCE_PULSE_TABLE = PulseTable(
    g_low=(10e-6, 30e-6, 60e-6),
    g_high=(30e-6, 60e-6, 90e-6),
    v_set=(1.35, 1.35, 1.5),
    v_reset=(-1.5, -1.3, -1.3),
)


@dataclass(frozen=True)
class IdenticalScheme:
    """Fixed amplitudes per cell: v_set / v_reset for every cell, or (None) the table's per-range value."""

    name: Literal["identical"] = field(default="identical", init=False)
    v_set: float | None = None
    v_reset: float | None = None
    table: PulseTable = REFERENCE_PULSE_TABLE

    def start_amplitudes(self, targets: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Per-cell (set, reset) amplitudes, V."""
        vs, vr = self.table.amplitudes(targets)
        if self.v_set is not None:
            vs = np.full(vs.shape, self.v_set)
        if self.v_reset is not None:
            vr = np.full(vr.shape, self.v_reset)
        return vs, vr


@dataclass(frozen=True)
class IncrementalScheme:
    """Amplitudes start at v_start_* (None: the table's per-range value), grow in magnitude by v_step_*
    per consecutive pulse of one polarity up to v_stop_*, and restart on a polarity flip; at most
    max_per_polarity pulses in a row and max_flips flips per cell (0: unbounded). Reset voltages are
    negative.

    Defaults (chosen): start just above the reference device's switching threshold (REF: switching
    voltages <= 1.5 V), 50 mV steps, stop at 1.8 V / -1.8 V.
    """

    name: Literal["incremental"] = field(default="incremental", init=False)
    v_start_set: float | None = 1.0
    v_step_set: float = 0.05
    v_stop_set: float = 1.8
    v_start_reset: float | None = -1.0
    v_step_reset: float = 0.05
    v_stop_reset: float = -1.8
    max_per_polarity: int = 30
    max_flips: int = 20
    table: PulseTable = REFERENCE_PULSE_TABLE

    def start_amplitudes(self, targets: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Per-cell first (set, reset) amplitudes, V."""
        vs, vr = self.table.amplitudes(targets)
        if self.v_start_set is not None:
            vs = np.full(vs.shape, self.v_start_set)
        if self.v_start_reset is not None:
            vr = np.full(vr.shape, self.v_start_reset)
        return vs, vr


Scheme = IdenticalScheme | IncrementalScheme
