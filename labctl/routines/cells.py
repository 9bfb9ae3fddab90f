"""Reads of selected cells as they are: a plain read, and a retention follow-up (reads at times after now).

These are the probe station's quick looks at a few cells (the TUI's "Read" and "Retention follow-up"
actions), and campaign steps like any other (`routine = "read"`, `routine = "retention"`). Relaxation
after programming, with its log-time fits, is labctl.routines.retention.relaxation; repeated reads for
read noise are labctl.routines.noise.read_noise.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray
from pydantic import Field, field_validator

from labctl.backends.base import ArrayBackend
from labctl.routines.base import RoutineContext
from labctl.routines.params import RoutineParams, cell_arrays
from labctl.routines.results import RoutineResult, nanstat

#: Longest single wait on a real clock between two safe points, s: an abort lands within it.
WAIT_SLICE = 1.0


async def wait_until(backend: ArrayBackend, t0: float, t: float, ctx: RoutineContext) -> None:
    """Let the backend clock reach `t` s after `t0` (s): one wait on a virtual clock, waits of at most
    WAIT_SLICE with a safe point after each on a real one (an abort or pause lands within a second)."""
    remaining = t - (await backend.now() - t0)
    while remaining > 0:
        step = remaining if backend.info.virtual_clock else min(remaining, WAIT_SLICE)
        await backend.wait(step)
        remaining -= step
        await ctx.checkpoint()


@dataclass(frozen=True)
class CellReads(RoutineResult):
    """Per cell: the last conductance read, S; `trace` keeps every read, shape (n_cells, n_reads), S."""

    figures: ClassVar[str | None] = "labctl.routines.figures.cells:cell_reads_figures"

    rows: NDArray[np.int64]
    cols: NDArray[np.int64]
    g: NDArray[np.float64]
    trace: NDArray[np.float64]

    def summary(self) -> dict[str, float | int | bool | str | None]:
        return {"cells": int(self.g.size), "g_mean_S": nanstat(np.mean, self.g),
                "g_min_S": nanstat(np.min, self.g), "g_max_S": nanstat(np.max, self.g)}


class ReadParams(RoutineParams):
    """One read of every listed cell."""

    v_read: float = Field(0.2, allow_inf_nan=False, description="read bias, V (REF 0.2 V)")
    vg_read: float = Field(3.3, ge=0, description="gate during the read, V (REF 3.3 V)")

    voltage_fields = ("v_read",)
    gate_fields = ("vg_read",)


async def read_cells(backend: ArrayBackend, rows: object, cols: object, params: ReadParams | None = None,
                     ctx: RoutineContext | None = None) -> CellReads:
    """Read the listed cells once; emits a "read" batch (g, S)."""
    p = params or ReadParams()
    ctx = ctx or RoutineContext()
    p.check_limits(backend.limits)
    r, c = cell_arrays(backend, rows, cols)
    g = await backend.read(r, c, p.v_read, p.vg_read)
    await ctx.emit("read", r, c, await backend.now(), g=g)
    ctx.progress(1, 1, "read")
    return CellReads(r, c, g, g[:, None])


class RetentionReadsParams(RoutineParams):
    """Reads of the listed cells at times after now (a follow-up of cells just programmed)."""

    times: list[float] = Field(default_factory=lambda: [1.0, 10.0, 100.0, 1000.0, 3600.0],
                               description="read times after the start, s (rising)")
    v_read: float = Field(0.2, allow_inf_nan=False, description="read bias, V")
    vg_read: float = Field(3.3, ge=0, description="gate during the reads, V")

    voltage_fields = ("v_read",)
    gate_fields = ("vg_read",)
    chunkable = False  # the read times are on the shared clock: all cells at once

    @field_validator("times")
    @classmethod
    def _rising(cls, t: list[float]) -> list[float]:
        if not t:
            raise ValueError("needs at least one time (s)")
        a = np.asarray(t, dtype=np.float64)
        if not np.all(np.isfinite(a)) or a.min() < 0 or np.any(np.diff(a) <= 0):
            raise ValueError(f"must be finite, >= 0 s and strictly rising, got {t}")
        return t


async def retention_reads(backend: ArrayBackend, rows: object, cols: object,
                          params: RetentionReadsParams | None = None,
                          ctx: RoutineContext | None = None) -> CellReads:
    """Read the listed cells at each of `times` after the start (virtual time on the emulator, real
    waiting on hardware, in slices of at most WAIT_SLICE s with a safe point after each); emits one
    "retention" batch per time (g S, elapsed s)."""
    p = params or RetentionReadsParams()
    ctx = ctx or RoutineContext()
    p.check_limits(backend.limits)
    r, c = cell_arrays(backend, rows, cols)
    t0 = await backend.now()
    trace = np.empty((r.size, len(p.times)))
    for k, t in enumerate(p.times):
        await wait_until(backend, t0, t, ctx)
        g = await backend.read(r, c, p.v_read, p.vg_read)
        trace[:, k] = g
        elapsed = await backend.now() - t0
        await ctx.emit("retention", r, c, t0 + elapsed, g=g, elapsed=np.full(r.size, elapsed))
        ctx.progress(k + 1, len(p.times), f"read at {t:g} s")
        await ctx.checkpoint()
    return CellReads(r, c, trace[:, -1], trace)
