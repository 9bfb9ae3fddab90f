"""Quasi-static I–V cycling with HRS/LRS extraction (REF §Quasi-static switching).

Each cycle: a reset sweep 0 → −1.5 V → 0 (VG 3.3 V), read at 0.2 V (HRS), a set sweep 0 → +1.3 V → 0
(VG 1.1 V: the gate limits the set current), read at 0.2 V (LRS). Five cycles per cell in REF.
"""
from __future__ import annotations

from dataclasses import dataclass

from typing import ClassVar

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from labctl.backends.base import ArrayBackend
from labctl.core import reference as ref
from labctl.core.reference import QS_DWELL, QS_STEP, ramp
from labctl.routines.base import RoutineContext
from labctl.routines.params import RoutineParams, cell_arrays, chunks
from labctl.routines.results import RoutineResult, nanstat, scalar


class IVParams(RoutineParams):
    """REF §Quasi-static switching: cycles of reset and set sweeps, each followed by a read."""

    cycles: int = Field(ref.QS_CYCLES, ge=1, le=100_000, description="set/reset cycles per cell (REF 5)")
    v_reset: float = Field(ref.RESET.v_stop, lt=0, description="reset sweep end, V (REF −1.5 V)")
    vg_reset: float = Field(ref.RESET.vg, ge=0, description="gate during reset, V (REF 3.3 V)")
    v_set: float = Field(ref.SET.v_stop, gt=0, description="set sweep end, V (REF +1.3 V)")
    vg_set: float = Field(ref.SET.vg, ge=0, description="gate during set, V (REF 1.1 V)")
    step: float = Field(QS_STEP, gt=0, le=0.5, description="sweep step, V")
    dwell: float = Field(QS_DWELL, gt=0, description="time per sweep point, s")
    compliance: float | None = Field(None, gt=0, description="SMU current limit, A (None: backend maximum)")
    v_read: float = Field(ref.V_READ, description="read bias of the HRS/LRS extraction, V (REF 0.2 V)")
    vg_read: float = Field(ref.VG_READ, ge=0, description="gate during reads, V")

    voltage_fields = ("v_reset", "v_set", "v_read")
    gate_fields = ("vg_reset", "vg_set", "vg_read")
    compliance_fields = ("compliance",)


@dataclass(frozen=True)
class IVResult(RoutineResult):
    """HRS and LRS conductances read at v_read after each reset / set sweep, shape (cycles, n), S."""

    figures: ClassVar[str | None] = "labctl.routines.figures.iv:iv_figures"

    summary_settings: ClassVar[tuple[str, ...]] = ("cycles",)

    rows: NDArray[np.int64]
    cols: NDArray[np.int64]
    g_hrs: NDArray[np.float64]
    g_lrs: NDArray[np.float64]

    def summary(self) -> dict[str, float | int | bool | str | None]:
        r_hrs = 1.0 / self.g_hrs
        r_lrs = 1.0 / self.g_lrs
        # Device-to-device spread: per-cell means over cycles, then σ/µ across cells (REF quotes σ/µ ≈ 0.25).
        cell_hrs = r_hrs.mean(axis=0)
        cell_lrs = r_lrs.mean(axis=0)
        return {
            "cells": int(self.g_hrs.shape[1]),
            "cycles": int(self.g_hrs.shape[0]),
            "r_hrs_mean_ohm": nanstat(np.mean, r_hrs),
            "r_lrs_mean_ohm": nanstat(np.mean, r_lrs),
            "r_hrs_cv": scalar(np.std(cell_hrs) / np.mean(cell_hrs)) if cell_hrs.size else None,
            "r_lrs_cv": scalar(np.std(cell_lrs) / np.mean(cell_lrs)) if cell_lrs.size else None,
            "hrs_lrs_ratio_mean": nanstat(np.mean, r_hrs / r_lrs),
        }


async def iv_cycles(backend: ArrayBackend, rows: object, cols: object, params: IVParams | None = None,
                    ctx: RoutineContext | None = None) -> IVResult:
    """Cycle the listed cells between HRS and LRS with quasi-static sweeps, reading each state at v_read.

    Emits "iv_sweep" batches (v, i: (n, points); polarity −1 reset / +1 set; cycle) and "iv_read" batches
    (g S; state 0 = HRS, 1 = LRS; cycle). A safe point follows every cycle of every chunk.
    """
    p = params or IVParams()
    ctx = ctx or RoutineContext()
    p.check_limits(backend.limits)
    r, c = cell_arrays(backend, rows, cols)
    n = r.size
    hrs = np.empty((p.cycles, n))
    lrs = np.empty((p.cycles, n))
    v_reset, v_set = ramp(p.v_reset, p.step), ramp(p.v_set, p.step)
    total = n * p.cycles
    ctx.progress(0, total, "I–V cycling")
    for s in chunks(n, p.chunk):
        m = s.stop - s.start
        for k in range(p.cycles):
            for state, (v, vg, out) in enumerate(((v_reset, p.vg_reset, hrs), (v_set, p.vg_set, lrs))):
                i = await backend.sweep(r[s], c[s], v, vg, p.dwell, p.compliance)
                await ctx.emit("iv_sweep", r[s], c[s], await backend.now(), v=np.broadcast_to(v, i.shape), i=i,
                               polarity=np.full(m, 1 if state else -1), cycle=np.full(m, k))
                out[k, s] = await backend.read(r[s], c[s], p.v_read, p.vg_read)
                await ctx.emit("iv_read", r[s], c[s], await backend.now(), g=out[k, s], state=np.full(m, state),
                               cycle=np.full(m, k))
            ctx.progress(s.start * p.cycles + (k + 1) * m, total, "I–V cycling")
            await ctx.checkpoint()
    return IVResult(rows=r, cols=c, g_hrs=hrs, g_lrs=lrs)
