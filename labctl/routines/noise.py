"""Programming noise and read noise.

`programming_noise` (REF §Closed-loop programming): program the listed cells to a set of levels with the
identical-pulse loop, read them once more right after, and give per level the mean and std of the
programmed conductances (σ_prog) with a linear fit σ_prog = a·G_target + b — both for the accepted
verify reads and for the fresh read (which adds one read's noise).
`read_noise` (REF: read noise 0.2–2 % of G_target): repeated reads of the same cells.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from labctl.backends.base import ArrayBackend
from labctl.core import reference as ref
from labctl.routines.base import RoutineContext
from labctl.routines.metrics import ProgrammingNoise, programming_noise as noise_by_level
from labctl.routines.params import REFERENCE_WINDOW, RoutineParams, cell_arrays, chunks
from labctl.routines.program import ClosedLoopParams, ClosedLoopResult, program
from labctl.routines.results import RoutineResult, nanstat, scalar

#: REF §Closed-loop: "35 levels between ≈10 and ≈90 µS", S.
REFERENCE_LEVELS: list[float] = np.linspace(*REFERENCE_WINDOW, ref.LEVELS).tolist()


class ProgrammingNoiseParams(RoutineParams):
    """The programming step (levels assigned to the cells in turn) and the read after it."""

    program: ClosedLoopParams = Field(default_factory=lambda: ClosedLoopParams(levels=REFERENCE_LEVELS),
                                      description="closed-loop programming (default: REF 35 levels, 2 %)")
    converged_only: bool = Field(True, description="leave cells that did not converge out of the statistics")


def _noise_summary(prefix: str, noise: ProgrammingNoise) -> dict[str, float | int | bool | str | None]:
    f = noise.sigma_fit
    return {f"{prefix}sigma_slope": scalar(f.slope), f"{prefix}sigma_intercept_S": scalar(f.intercept),
            f"{prefix}sigma_fit_r": scalar(f.r), f"{prefix}sigma_max_S": nanstat(np.max, noise.sigma),
            f"{prefix}sigma_min_S": nanstat(np.min, noise.sigma)}


@dataclass(frozen=True)
class ProgrammingNoiseResult(RoutineResult):
    """The programming outcome, the read right after it (S, per cell) and σ_prog per level for both."""

    figures: ClassVar[str | None] = "labctl.routines.figures.program:program_figures"

    programmed: ClosedLoopResult
    g_after: NDArray[np.float64]
    verify: ProgrammingNoise
    after: ProgrammingNoise

    def arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        out = self.programmed.arrays(f"{prefix}programmed.")
        out[f"{prefix}g_after"] = self.g_after
        for name, noise in (("verify", self.verify), ("after", self.after)):
            for k in ("levels", "count", "mean", "sigma"):
                out[f"{prefix}{name}.{k}"] = getattr(noise, k)
        return out

    def summary(self) -> dict[str, float | int | bool | str | None]:
        out = dict(self.programmed.summary())
        out["levels"] = int(self.verify.levels.size)
        out.update(_noise_summary("verify_", self.verify))
        out.update(_noise_summary("after_", self.after))
        return out


async def programming_noise(backend: ArrayBackend, rows: object, cols: object,
                            params: ProgrammingNoiseParams | None = None,
                            ctx: RoutineContext | None = None) -> ProgrammingNoiseResult:
    """Program the listed cells (levels in turn), read them once more, and fit σ_prog against G_target.

    Emits what `program` emits and an "after_program_read" batch (g, target) per chunk.
    """
    p = params or ProgrammingNoiseParams()
    ctx = ctx or RoutineContext()
    p.check_limits(backend.limits)
    r, c = cell_arrays(backend, rows, cols)
    res = await program(backend, r, c, p.program, ctx)
    g_after = np.empty(r.size)
    for s in chunks(r.size, p.program.chunk):
        g_after[s] = await backend.read(r[s], c[s], p.program.v_read, p.program.vg_read)
        await ctx.emit("after_program_read", r[s], c[s], await backend.now(), g=g_after[s], target=res.targets[s])
        await ctx.checkpoint()
    mask = res.converged if p.converged_only else None
    return ProgrammingNoiseResult(programmed=res, g_after=g_after, verify=noise_by_level(res.targets, res.g, mask),
                                  after=noise_by_level(res.targets, g_after, mask))


# ----------------------------------------------------------------------------- read noise


class ReadNoiseParams(RoutineParams):
    """Repeated reads of the same cells."""

    chunkable = False  # every cell of a round is read at the same virtual time

    repeats: int = Field(100, ge=2, le=1_000_000, description="reads per cell")
    interval: float = Field(0.0, ge=0, description="time between two reads of a cell, s (0: back to back)")
    v_read: float = Field(ref.V_READ, description="read bias, V (REF 0.2 V)")
    vg_read: float = Field(ref.VG_READ, ge=0, description="gate during reads, V")

    voltage_fields = ("v_read",)
    gate_fields = ("vg_read",)


@dataclass(frozen=True)
class ReadNoiseResult(RoutineResult):
    """Per cell: mean and sample std of the repeated reads, S; relative noise std/mean."""

    figures: ClassVar[str | None] = "labctl.routines.figures.noise:read_noise_figures"

    rows: NDArray[np.int64]
    cols: NDArray[np.int64]
    mean: NDArray[np.float64]
    std: NDArray[np.float64]

    @property
    def relative(self) -> NDArray[np.float64]:
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.std / self.mean

    def summary(self) -> dict[str, float | int | bool | str | None]:
        rel = self.relative
        return {"cells": int(self.mean.size), "std_mean_S": nanstat(np.mean, self.std),
                "relative_median": nanstat(np.median, rel), "relative_min": nanstat(np.min, rel),
                "relative_max": nanstat(np.max, rel)}


async def read_noise(backend: ArrayBackend, rows: object, cols: object, params: ReadNoiseParams | None = None,
                     ctx: RoutineContext | None = None) -> ReadNoiseResult:
    """Read the listed cells `repeats` times (waiting `interval` s between rounds).

    Emits a "read" batch (g S, repeat) per round; a safe point follows every 10 rounds.
    """
    p = params or ReadNoiseParams()
    ctx = ctx or RoutineContext()
    p.check_limits(backend.limits)
    r, c = cell_arrays(backend, rows, cols)
    n = r.size
    total = n * p.repeats
    # Running sums (Welford) so the reads of a large array need no (repeats, n) buffer.
    mean = np.zeros(n)
    m2 = np.zeros(n)
    ctx.progress(0, total, "read noise")
    for s in chunks(n, p.chunk):
        for k in range(p.repeats):
            if k and p.interval > 0:
                await backend.wait(p.interval)
            g = await backend.read(r[s], c[s], p.v_read, p.vg_read)
            await ctx.emit("read", r[s], c[s], await backend.now(), g=g, repeat=np.full(g.size, k))
            delta = g - mean[s]
            mean[s] += delta / (k + 1)
            m2[s] += delta * (g - mean[s])
            if (k + 1) % 10 == 0 or k + 1 == p.repeats:
                ctx.progress(s.start * p.repeats + (k + 1) * g.size, total, "read noise")
                await ctx.checkpoint()
    return ReadNoiseResult(rows=r, cols=c, mean=mean, std=np.sqrt(m2 / (p.repeats - 1)))
