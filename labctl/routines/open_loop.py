"""Open-loop pulsed response (REF §Open-loop pulsed response, for on-chip training).

Identical pulses, V_set = 1.35 V (VG 1.4 V) and V_reset = −1.3 V (VG 3.3 V), 2.5 µs, each followed by a
read at 0.2 V:
  - `pulse_train`: batches of N up then N down pulses, alternating (REF: 400 and 400);
  - `symmetry_point`: pulses alternating 1 up / 1 down (REF: 500), where the device settles at its
    symmetry point; G_sp, ΔG_sp, σ(ΔG_sp);
  - `open_loop`: both in sequence and the per-device metrics G_max, G_min, G_sp, ΔG_sp, σ(ΔG_sp),
    N_states, SP skew and NSR (labctl.routines.metrics.open_loop_metrics);
  - `identical_pulses`: `count` pulses of one amplitude, a read after each (the probe station's
    "Pulses" action; the same train with every pulse in one direction).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from typing import ClassVar

import numpy as np
from numpy.typing import NDArray
from pydantic import Field, field_validator

from labctl.backends.base import ArrayBackend
from labctl.core import reference as ref
from labctl.routines.base import RoutineContext
from labctl.routines.cells import CellReads
from labctl.routines.metrics import OpenLoopMetrics, open_loop_metrics, swing_extremes, symmetry_point_metrics
from labctl.routines.params import RoutineParams, cell_arrays, chunks
from labctl.routines.results import RoutineResult, nanstat


class PulseParams(RoutineParams):
    """The identical open-loop pulses and the read after each (REF §Open-loop)."""

    v_set: float = Field(ref.OPEN_LOOP_V_SET, gt=0, description="set (up) amplitude, V (REF 1.35 V)")
    vg_set: float = Field(ref.OPEN_LOOP_VG_SET, ge=0, description="gate during set pulses, V (REF 1.4 V)")
    v_reset: float = Field(ref.OPEN_LOOP_V_RESET, lt=0, description="reset (down) amplitude, V (REF −1.3 V)")
    vg_reset: float = Field(ref.OPEN_LOOP_VG_RESET, ge=0, description="gate during reset pulses, V (REF 3.3 V)")
    width: float = Field(ref.PULSE_WIDTH, gt=0, description="pulse width, s (REF 2.5 µs)")
    v_read: float = Field(ref.V_READ, description="read bias, V (REF 0.2 V)")
    vg_read: float = Field(ref.VG_READ, ge=0, description="gate during reads, V")
    keep_traces: bool = Field(True, description="keep the read traces in the result (memory: 8 B per read)")

    voltage_fields = ("v_set", "v_reset", "v_read")
    gate_fields = ("vg_set", "vg_reset", "vg_read")
    width_fields = ("width",)


class PulseTrainParams(PulseParams):
    """`cycles` × (`batch` up pulses, then `batch` down pulses) (REF: 400 up / 400 down)."""

    batch: int = Field(ref.OPEN_LOOP_BATCH, ge=1, le=1_000_000, description="pulses per batch (REF 400)")
    cycles: int = Field(2, ge=1, le=10_000, description="up/down batch pairs")

    def swing_directions(self) -> NDArray[np.int8]:
        """+1 (up) / −1 (down) for every pulse of the train."""
        return np.tile(np.repeat(np.array([1, -1], dtype=np.int8), self.batch), self.cycles)


class SymmetryPointParams(PulseParams):
    """`pulses` pulses alternating 1 up / 1 down (REF 500); the first `settle` are discarded."""

    pulses: int = Field(ref.OPEN_LOOP_ALTERNATING, ge=3, le=1_000_000, description="alternating pulses (REF 500)")
    settle: int | None = Field(None, ge=0, description="pulses discarded while settling (None: first half)")

    def alternating_directions(self) -> NDArray[np.int8]:
        """+1, −1, +1, ... for every alternating pulse."""
        return np.resize(np.array([1, -1], dtype=np.int8), self.pulses)


class OpenLoopParams(PulseTrainParams, SymmetryPointParams):
    """REF §Open-loop: the batched train, then the alternating sequence, then the metrics."""

    keep_traces: bool = Field(False, description="keep the read traces in the result (memory: 8 B per read)")


async def _train(backend: ArrayBackend, r: NDArray[np.int64], c: NDArray[np.int64], directions: NDArray[np.int8],
                 p: PulseParams, ctx: RoutineContext, kind: str, progress: tuple[int, int],
                 safe_every: int) -> NDArray[np.float64]:
    """Pulse and read every cell of one chunk for each direction; (n, len(directions)) reads, S."""
    trace = np.empty((r.size, directions.size))
    up = (p.v_set, p.vg_set, p.width)
    down = (p.v_reset, p.vg_reset, p.width)
    done, total = progress
    for k, d in enumerate(directions):
        await backend.pulse(r, c, *(up if d > 0 else down))
        trace[:, k] = await backend.read(r, c, p.v_read, p.vg_read)
        await ctx.emit(kind, r, c, await backend.now(), g=trace[:, k], direction=np.full(r.size, d, dtype=np.int8),
                       pulse=np.full(r.size, k))
        if (k + 1) % safe_every == 0 or k + 1 == directions.size:
            ctx.progress(done + (k + 1) * r.size, total, kind)
            await ctx.checkpoint()
    return trace


# ----------------------------------------------------------------------------- pulse trains


@dataclass(frozen=True)
class PulseTrainResult(RoutineResult):
    """Reads after every pulse, shape (n, pulses), S (empty unless keep_traces); directions (pulses,);
    G_max / G_min per cell: means of the last 10 % of the up / down batches, S."""

    figures: ClassVar[str | None] = "labctl.routines.figures.open_loop:pulse_train_figures"

    summary_settings: ClassVar[tuple[str, ...]] = ("pulses",)

    rows: NDArray[np.int64]
    cols: NDArray[np.int64]
    directions: NDArray[np.int8]
    trace: NDArray[np.float64]
    g_max: NDArray[np.float64]
    g_min: NDArray[np.float64]

    def summary(self) -> dict[str, float | int | bool | str | None]:
        return {"cells": int(self.g_max.size), "pulses": int(self.directions.size),
                "g_max_mean_S": nanstat(np.mean, self.g_max), "g_min_mean_S": nanstat(np.mean, self.g_min),
                "window_mean_S": nanstat(np.mean, self.g_max - self.g_min)}


async def pulse_train(backend: ArrayBackend, rows: object, cols: object, params: PulseTrainParams | None = None,
                      ctx: RoutineContext | None = None) -> PulseTrainResult:
    """N-up / N-down batches on the listed cells, reading after every pulse.

    Emits a "pulse_read" batch per pulse (g S, direction ±1, pulse index); a safe point follows every batch.
    """
    p = params or PulseTrainParams()
    ctx = ctx or RoutineContext()
    p.check_limits(backend.limits)
    r, c = cell_arrays(backend, rows, cols)
    n = r.size
    d = p.swing_directions()
    total = n * d.size
    trace = np.empty((n, d.size)) if p.keep_traces else np.empty((n, 0))
    g_max, g_min = np.empty(n), np.empty(n)
    ctx.progress(0, total, "pulse train")
    for s in chunks(n, p.chunk):
        tr = await _train(backend, r[s], c[s], d, p, ctx, "pulse_read", (s.start * d.size, total), p.batch)
        g_max[s], g_min[s] = swing_extremes(tr, d)
        if p.keep_traces:
            trace[s] = tr
    return PulseTrainResult(rows=r, cols=c, directions=d, trace=trace, g_max=g_max, g_min=g_min)


# ----------------------------------------------------------------------------- symmetry point


@dataclass(frozen=True)
class SymmetryPointResult(RoutineResult):
    """Per cell: G_sp, ΔG_sp, σ(ΔG_sp) (S); the trace (n, pulses + 1) with the read before the first pulse
    (empty unless keep_traces)."""

    figures: ClassVar[str | None] = "labctl.routines.figures.open_loop:symmetry_point_figures"

    summary_settings: ClassVar[tuple[str, ...]] = ("pulses",)

    rows: NDArray[np.int64]
    cols: NDArray[np.int64]
    directions: NDArray[np.int8]
    trace: NDArray[np.float64]
    g_sp: NDArray[np.float64]
    dg_sp: NDArray[np.float64]
    dg_sp_std: NDArray[np.float64]

    def summary(self) -> dict[str, float | int | bool | str | None]:
        return {"cells": int(self.g_sp.size), "pulses": int(self.directions.size),
                "g_sp_mean_S": nanstat(np.mean, self.g_sp), "dg_sp_mean_S": nanstat(np.mean, self.dg_sp),
                "dg_sp_std_mean_S": nanstat(np.mean, self.dg_sp_std)}


async def symmetry_point(backend: ArrayBackend, rows: object, cols: object,
                         params: SymmetryPointParams | None = None,
                         ctx: RoutineContext | None = None) -> SymmetryPointResult:
    """1-up/1-down pulses on the listed cells: one read before, then a read after every pulse.

    Emits "read" (the first read) and "symmetry_read" batches (g, direction, pulse); a safe point
    follows every 100 pulses.
    """
    p = params or SymmetryPointParams()
    ctx = ctx or RoutineContext()
    p.check_limits(backend.limits)
    if p.settle is not None and p.settle >= p.pulses - 1:
        raise ValueError(f"settle: {p.settle} leaves fewer than two of {p.pulses} pulses (allowed 0..{p.pulses - 2})")
    r, c = cell_arrays(backend, rows, cols)
    n = r.size
    d = p.alternating_directions()
    total = n * d.size
    trace = np.empty((n, d.size + 1)) if p.keep_traces else np.empty((n, 0))
    g_sp, dg_sp, dg_std = np.empty(n), np.empty(n), np.empty(n)
    ctx.progress(0, total, "symmetry point")
    for s in chunks(n, p.chunk):
        first = await backend.read(r[s], c[s], p.v_read, p.vg_read)
        await ctx.emit("read", r[s], c[s], await backend.now(), g=first)
        tr = await _train(backend, r[s], c[s], d, p, ctx, "symmetry_read", (s.start * d.size, total), 100)
        alt = np.concatenate([first[:, None], tr], axis=1)
        m = symmetry_point_metrics(alt, d, p.settle)
        g_sp[s], dg_sp[s], dg_std[s] = m.g_sp, m.dg_sp, m.dg_sp_std
        if p.keep_traces:
            trace[s] = alt
    return SymmetryPointResult(rows=r, cols=c, directions=d, trace=trace, g_sp=g_sp, dg_sp=dg_sp, dg_sp_std=dg_std)


# ----------------------------------------------------------------------------- both, with metrics


@dataclass(frozen=True)
class OpenLoopResult(RoutineResult, OpenLoopMetrics):
    """Per cell (shape (n,)): REF §Open-loop metrics (OpenLoopMetrics: conductances in S, N_states / SP
    skew / NSR dimensionless), the cell; traces (n, pulses) and (n, alternating + 1) only when keep_traces."""

    figures: ClassVar[str | None] = "labctl.routines.figures.open_loop:open_loop_figures"

    rows: NDArray[np.int64]
    cols: NDArray[np.int64]
    swing_directions: NDArray[np.int8]
    swing: NDArray[np.float64]
    alternating_directions: NDArray[np.int8]
    alternating: NDArray[np.float64]

    def summary(self) -> dict[str, float | int | bool | str | None]:
        out: dict[str, float | int | bool | str | None] = {"cells": int(self.g_max.size)}
        for name in ("n_states", "sp_skew", "nsr"):
            a = getattr(self, name)
            out[f"{name}_mean"] = nanstat(np.mean, a)
            out[f"{name}_median"] = nanstat(np.median, a)
            out[f"{name}_min"] = nanstat(np.min, a)
            out[f"{name}_max"] = nanstat(np.max, a)
        for name in ("g_max", "g_min", "g_sp", "dg_sp"):
            out[f"{name}_mean_S"] = nanstat(np.mean, getattr(self, name))
        return out


async def open_loop(backend: ArrayBackend, rows: object, cols: object, params: OpenLoopParams | None = None,
                    ctx: RoutineContext | None = None) -> OpenLoopResult:
    """REF §Open-loop on the listed cells: the N-up/N-down train, then the 1-up/1-down sequence (its
    first conductance is the last read of the train, as in REF), then the metrics per device.

    Emits "pulse_read" and "symmetry_read" batches (g, direction, pulse) as measured; safe points after
    every batch of the train and every 100 alternating pulses.
    """
    p = params or OpenLoopParams()
    ctx = ctx or RoutineContext()
    p.check_limits(backend.limits)
    if p.settle is not None and p.settle >= p.pulses - 1:
        raise ValueError(f"settle: {p.settle} leaves fewer than two of {p.pulses} pulses (allowed 0..{p.pulses - 2})")
    r, c = cell_arrays(backend, rows, cols)
    n = r.size
    sd = p.swing_directions()
    ad = p.alternating_directions()
    per_cell = sd.size + ad.size
    total = n * per_cell
    fields = {f.name: np.empty(n) for f in dataclasses.fields(OpenLoopMetrics)}
    swing = np.empty((n, sd.size)) if p.keep_traces else np.empty((n, 0))
    alternating = np.empty((n, ad.size + 1)) if p.keep_traces else np.empty((n, 0))
    ctx.progress(0, total, "open loop")
    for s in chunks(n, p.chunk):
        sw = await _train(backend, r[s], c[s], sd, p, ctx, "pulse_read", (s.start * per_cell, total), p.batch)
        tr = await _train(backend, r[s], c[s], ad, p, ctx, "symmetry_read",
                          (s.start * per_cell + sd.size * (s.stop - s.start), total), 100)
        alt = np.concatenate([sw[:, -1:], tr], axis=1)
        m = open_loop_metrics(sw, sd, alt, ad, p.settle)
        for k in fields:
            fields[k][s] = getattr(m, k)
        if p.keep_traces:
            swing[s], alternating[s] = sw, alt
    return OpenLoopResult(rows=r, cols=c, swing_directions=sd, swing=swing, alternating_directions=ad,
                          alternating=alternating, **fields)


# ----------------------------------------------------------------------------- identical pulses


class IdenticalPulsesParams(RoutineParams):
    """`count` identical pulses of amplitude `v` on every listed cell, each followed by a read."""

    v: float = Field(1.35, description="pulse amplitude, V (> 0 set, < 0 reset; REF 1.35 V / −1.3 V)")
    vg: float = Field(1.4, ge=0, description="gate during the pulse, V (REF 1.4 V set, 3.3 V reset)")
    width: float = Field(2.5e-6, gt=0, description="pulse width, s (REF 2.5 µs)")
    count: int = Field(1, ge=1, le=100_000, description="pulses per cell")
    v_read: float = Field(0.2, description="read bias after each pulse, V")
    vg_read: float = Field(3.3, ge=0, description="gate during the reads, V")

    voltage_fields = ("v", "v_read")
    gate_fields = ("vg", "vg_read")
    width_fields = ("width",)

    @field_validator("v", "v_read")
    @classmethod
    def _nonzero(cls, v: float) -> float:
        if v == 0 or not np.isfinite(v):
            raise ValueError("must be a finite non-zero voltage (V)")
        return v

    def pulses(self) -> PulseParams:
        """The open-loop pulse settings with this pulse as the set (v > 0) or reset (v < 0) pulse."""
        common = {"width": self.width, "v_read": self.v_read, "vg_read": self.vg_read}
        if self.v > 0:
            return PulseParams(v_set=self.v, vg_set=self.vg, **common)
        return PulseParams(v_reset=self.v, vg_reset=self.vg, **common)


async def identical_pulses(backend: ArrayBackend, rows: object, cols: object,
                           params: IdenticalPulsesParams | None = None,
                           ctx: RoutineContext | None = None) -> CellReads:
    """`count` identical pulses on the listed cells, a read after each.

    Emits a "pulse_read" batch per pulse (g S, direction ±1, pulse index); a safe point follows every pulse.
    """
    p = params or IdenticalPulsesParams()
    ctx = ctx or RoutineContext()
    p.check_limits(backend.limits)
    r, c = cell_arrays(backend, rows, cols)
    d = np.full(p.count, 1 if p.v > 0 else -1, dtype=np.int8)
    total = r.size * d.size
    trace = np.empty((r.size, d.size))
    pulses = p.pulses()
    ctx.progress(0, total, "pulses")
    for s in chunks(r.size, p.chunk):
        trace[s] = await _train(backend, r[s], c[s], d, pulses, ctx, "pulse_read", (s.start * d.size, total), 1)
    return CellReads(r, c, trace[:, -1], trace)
