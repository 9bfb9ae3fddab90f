"""Forming and conditioning (REF §Forming, §Quasi-static switching).

`form`: a rising quasi-static sweep 0 → 3.6 V on the top electrode with the gate at 1.2 V (the selector
sets the compliance; the SMU limit only guards the instrument); per cell the 1T1R forming voltage and
current at the largest dI/dV, the ReRAM forming voltage V_1T1R − R_DS·I_form, and the yield.
`condition`: the negative sweep to −1.4 V (VG 3.3 V) that raises the conductance after forming, then one
reset (−1.5 V, VG 3.3 V) and one set (+1.3 V, VG 1.1 V) sweep; reads every cell at 0.2 V afterwards.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from labctl.backends.base import ArrayBackend
from labctl.core import reference as ref
from labctl.core.reference import QS_DWELL, QS_STEP, QuasiStaticSweep, ramp
from labctl.routines.base import RoutineContext
from labctl.routines.metrics import FormingMetrics, forming_metrics
from labctl.routines.params import RoutineParams, cell_arrays, chunks
from labctl.routines.results import RoutineResult, nanstat, scalar

# ----------------------------------------------------------------------------- forming


class FormingParams(RoutineParams):
    """REF §Forming: sweep 0 → v_stop with the gate at vg (compliance through the selector)."""

    v_stop: float = Field(ref.FORMING.v_stop, gt=0, description="end of the rising sweep, V (REF 3.6 V)")
    step: float = Field(QS_STEP, gt=0, le=0.5, description="sweep step, V")
    dwell: float = Field(QS_DWELL, gt=0, description="time per sweep point, s")
    vg: float = Field(ref.FORMING.vg, ge=0, description="gate voltage during forming, V (REF 1.2 V)")
    compliance: float = Field(ref.FORMING_COMPLIANCE, gt=0, description="SMU current limit, A")
    r_ds: float = Field(ref.R_DS, ge=0, description="selector triode resistance at vg, ohm (REF ≈ 0.8 kΩ)")
    min_jump: float = Field(ref.FORMING_MIN_JUMP, gt=0, description="smallest current step that counts as forming, A")

    voltage_fields = ("v_stop",)
    gate_fields = ("vg",)
    compliance_fields = ("compliance",)


@dataclass(frozen=True)
class FormingResult(RoutineResult, FormingMetrics):
    """Per cell (shape (n,)): the forming figures (FormingMetrics: forming voltage of the 1T1R cell V,
    forming current A, ReRAM forming voltage V, formed; NaN where it did not form) and the cell."""

    figures: ClassVar[str | None] = "labctl.routines.figures.forming:forming_figures"

    rows: NDArray[np.int64]
    cols: NDArray[np.int64]

    def summary(self) -> dict[str, float | int | bool | str | None]:
        return {
            "cells": int(self.formed.size),
            "formed": int(np.sum(self.formed)),
            "yield": scalar(self.yield_fraction),
            "v_form_1t1r_mean_V": nanstat(np.mean, self.v_form_1t1r),
            "v_form_1t1r_std_V": nanstat(np.std, self.v_form_1t1r),
            "i_form_mean_A": nanstat(np.mean, self.i_form),
            "i_form_min_A": nanstat(np.min, self.i_form),
            "i_form_max_A": nanstat(np.max, self.i_form),
            "v_form_reram_mean_V": nanstat(np.mean, self.v_form_reram),
            "v_form_reram_std_V": nanstat(np.std, self.v_form_reram),
        }


async def form(backend: ArrayBackend, rows: object, cols: object, params: FormingParams | None = None,
               ctx: RoutineContext | None = None) -> FormingResult:
    """Form the listed cells (None, None: all) and extract their forming figures (REF §Forming).

    Emits per chunk a "forming_sweep" batch (v, i: (n, points), V and A) as measured and a "forming"
    batch (v_form_1t1r V, i_form A, v_form_reram V, formed). A safe point follows every chunk.
    """
    p = params or FormingParams()
    ctx = ctx or RoutineContext()
    p.check_limits(backend.limits)
    r, c = cell_arrays(backend, rows, cols)
    v = ramp(p.v_stop, p.step, back=False)
    n = r.size
    out = {k: np.full(n, np.nan) for k in ("v_form_1t1r", "i_form", "v_form_reram")}
    formed = np.zeros(n, dtype=bool)
    ctx.progress(0, n, "forming")
    for s in chunks(n, p.chunk):
        i = await backend.sweep(r[s], c[s], v, p.vg, p.dwell, p.compliance)
        t = await backend.now()
        await ctx.emit("forming_sweep", r[s], c[s], t, v=np.broadcast_to(v, i.shape), i=i)
        m = forming_metrics(v, i, p.r_ds, p.min_jump)
        out["v_form_1t1r"][s], out["i_form"][s], out["v_form_reram"][s] = m.v_form_1t1r, m.i_form, m.v_form_reram
        formed[s] = m.formed
        await ctx.emit("forming", r[s], c[s], t, v_form_1t1r=m.v_form_1t1r, i_form=m.i_form,
                       v_form_reram=m.v_form_reram, formed=m.formed)
        ctx.progress(s.stop, n, "forming")
        await ctx.checkpoint()
    return FormingResult(rows=r, cols=c, formed=formed, **out)


# ----------------------------------------------------------------------------- conditioning


class ConditionParams(RoutineParams):
    """REF §Forming / §Quasi-static: negative sweep, then one reset and one set sweep (forward and back)."""

    v_negative: float = Field(ref.NEGATIVE.v_stop, lt=0, description="negative sweep after forming, V (REF −1.4 V)")
    vg_negative: float = Field(ref.NEGATIVE.vg, ge=0, description="gate during the negative sweep, V (REF 3.3 V)")
    v_reset: float = Field(ref.RESET.v_stop, lt=0, description="reset sweep end, V (REF −1.5 V)")
    vg_reset: float = Field(ref.RESET.vg, ge=0, description="gate during reset, V (REF 3.3 V)")
    v_set: float = Field(ref.SET.v_stop, gt=0, description="set sweep end, V (REF +1.3 V)")
    vg_set: float = Field(ref.SET.vg, ge=0, description="gate during set (compliance), V (REF 1.1 V)")
    step: float = Field(QS_STEP, gt=0, le=0.5, description="sweep step, V")
    dwell: float = Field(QS_DWELL, gt=0, description="time per sweep point, s")
    v_read: float = Field(ref.V_READ, description="read bias, V (REF 0.2 V)")
    vg_read: float = Field(ref.VG_READ, ge=0, description="gate during reads, V")

    voltage_fields = ("v_negative", "v_reset", "v_set", "v_read")
    gate_fields = ("vg_negative", "vg_reset", "vg_set", "vg_read")


@dataclass(frozen=True)
class ConditionResult(RoutineResult):
    """Per cell: conductance read at v_read after conditioning, S."""

    figures: ClassVar[str | None] = "labctl.routines.figures.iv:conditioning_figures"

    rows: NDArray[np.int64]
    cols: NDArray[np.int64]
    g: NDArray[np.float64]

    def summary(self) -> dict[str, float | int | bool | str | None]:
        return {"cells": int(self.g.size), "g_mean_S": nanstat(np.mean, self.g), "g_std_S": nanstat(np.std, self.g)}


async def sweep_stages(backend: ArrayBackend, rows: NDArray[np.int64], cols: NDArray[np.int64],
                       stages: Sequence[QuasiStaticSweep], step: float = QS_STEP, dwell: float = QS_DWELL,
                       ctx: RoutineContext | None = None) -> None:
    """Each stage's quasi-static sweep (`step` V per point, `dwell` s each) on the listed cells, in order.

    The conditioning of `condition` and of whoever prepares cells the same way (evaluation, emulated
    test arrays). Emits a "condition_sweep" batch (v, i, stage k) per stage to `ctx` when given."""
    for k, stage in enumerate(stages):
        v = stage.voltages(step)
        i = await backend.sweep(rows, cols, v, stage.vg, dwell)
        if ctx is not None:
            await ctx.emit("condition_sweep", rows, cols, await backend.now(), v=np.broadcast_to(v, i.shape), i=i,
                           stage=np.full(i.shape[0], k))


async def condition(backend: ArrayBackend, rows: object, cols: object, params: ConditionParams | None = None,
                    ctx: RoutineContext | None = None) -> ConditionResult:
    """Condition formed cells (negative, reset and set sweeps) and read them.

    Emits "condition_sweep" batches (v, i, stage 0/1/2 = negative/reset/set) and a "read" batch (g, S)."""
    p = params or ConditionParams()
    ctx = ctx or RoutineContext()
    p.check_limits(backend.limits)
    r, c = cell_arrays(backend, rows, cols)
    n = r.size
    g = np.empty(n)
    stages = (QuasiStaticSweep(p.v_negative, p.vg_negative), QuasiStaticSweep(p.v_reset, p.vg_reset),
              QuasiStaticSweep(p.v_set, p.vg_set))
    ctx.progress(0, n, "conditioning")
    for s in chunks(n, p.chunk):
        await sweep_stages(backend, r[s], c[s], stages, p.step, p.dwell, ctx)
        g[s] = await backend.read(r[s], c[s], p.v_read, p.vg_read)
        await ctx.emit("read", r[s], c[s], await backend.now(), g=g[s])
        ctx.progress(s.stop, n, "conditioning")
        await ctx.checkpoint()
    return ConditionResult(rows=r, cols=c, g=g)
