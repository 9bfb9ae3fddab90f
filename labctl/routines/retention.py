"""Relaxation / retention after programming (REF §Relaxation after programming).

Program the listed cells (closed loop), then read them at log-spaced times after the end of
programming, letting time pass with `backend.wait` (the virtual clock on the emulator). Per read time:
the mean relaxation error G(t) − G_prog over the cells and the spread of each level (pooled std of the
cells sharing a target); both are fitted linearly in log10(t) (REF: mean and std evolve linearly in
log time) and the fits extrapolated (REF: to 10 years).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from typing import ClassVar

import numpy as np
from numpy.typing import NDArray
from pydantic import Field, model_validator

from labctl.backends.base import ArrayBackend
from labctl.routines.base import RoutineContext
from labctl.routines.cells import wait_until
from labctl.routines.metrics import LinearFit, log_time_fit, programming_noise
from labctl.routines.params import RoutineParams, cell_arrays, chunks
from labctl.routines.program import ClosedLoopParams, ClosedLoopResult, program
from labctl.routines.results import RoutineResult, scalar

YEAR = 365.25 * 86400.0  # s
HOUR = 3600.0  # s


class RelaxationParams(RoutineParams):
    """Programming, then reads at `times` after it (or log-spaced from t_first to t_last)."""

    chunkable = False  # the read times are on the shared virtual clock: all cells at once

    program: ClosedLoopParams = Field(default_factory=lambda: ClosedLoopParams(targets=50e-6),
                                      description="closed-loop programming before the reads")
    times: list[float] | None = Field(None, description="read times after programming, s (rising, > 0)")
    t_first: float = Field(1.0, gt=0, description="first read time after programming, s")
    t_last: float = Field(HOUR, gt=0, description="last read time after programming, s")
    points_per_decade: int = Field(3, ge=1, le=100, description="read times per decade of time")
    extrapolate_to: float = Field(10 * YEAR, gt=0, description="time the fits are extrapolated to, s (REF 10 years)")

    @model_validator(mode="after")
    def _times(self) -> RelaxationParams:
        if self.times is not None:
            t = np.asarray(self.times, dtype=np.float64)
            if t.size == 0 or np.any(~np.isfinite(t)) or np.any(t <= 0) or np.any(np.diff(t) <= 0):
                raise ValueError(f"times: expected rising positive times (s), got {self.times!r}")
        elif self.t_last <= self.t_first:
            raise ValueError(f"t_last: {self.t_last:g} s must be after t_first {self.t_first:g} s")
        return self

    def read_times(self) -> NDArray[np.float64]:
        """Read times after programming, s."""
        if self.times is not None:
            return np.asarray(self.times, dtype=np.float64)
        decades = math.log10(self.t_last / self.t_first)
        n = max(2, int(math.ceil(decades * self.points_per_decade - 1e-9)) + 1)
        return np.geomspace(self.t_first, self.t_last, n)


@dataclass(frozen=True)
class RelaxationResult(RoutineResult):
    """times (k,): nominal read times after programming, s; t_read (k,): when each read round started,
    s after programming; g (k, n): reads, S; mean_error (k,): mean of G(t) − G_prog, S; level_std (k,):
    pooled std of the levels, S; fits in log10(t_read / 1 s); extrapolated mean error and std at
    `extrapolate_to` s."""

    figures: ClassVar[str | None] = "labctl.routines.figures.retention:relaxation_figures"

    summary_settings: ClassVar[tuple[str, ...]] = ("read_times",)

    programmed: ClosedLoopResult
    times: NDArray[np.float64]
    t_read: NDArray[np.float64]
    g: NDArray[np.float64]
    mean_error: NDArray[np.float64]
    level_std: NDArray[np.float64]
    mean_fit: LinearFit
    std_fit: LinearFit
    extrapolate_to: float

    @property
    def extrapolated_mean_error(self) -> float:
        """Mean relaxation error at `extrapolate_to`, S (the log-time fit)."""
        return float(self.mean_fit(math.log10(self.extrapolate_to)))

    @property
    def extrapolated_std(self) -> float:
        """Level spread at `extrapolate_to`, S (the log-time fit)."""
        return float(self.std_fit(math.log10(self.extrapolate_to)))

    def arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        out = super().arrays(prefix)
        for name in ("mean_fit", "std_fit"):
            f = getattr(self, name)
            out[f"{prefix}{name}"] = np.array([f.slope, f.intercept])
        return out

    def summary(self) -> dict[str, float | int | bool | str | None]:
        out = {f"program_{k}": v for k, v in self.programmed.summary().items()}
        out.update({
            "read_times": int(self.times.size),
            "t_first_s": scalar(self.times[0]),
            "t_last_s": scalar(self.times[-1]),
            "mean_error_first_S": scalar(self.mean_error[0]),
            "mean_error_last_S": scalar(self.mean_error[-1]),
            "level_std_first_S": scalar(self.level_std[0]),
            "level_std_last_S": scalar(self.level_std[-1]),
            "mean_error_per_decade_S": scalar(self.mean_fit.slope),
            "level_std_per_decade_S": scalar(self.std_fit.slope),
            "extrapolate_to_s": scalar(self.extrapolate_to),
            "extrapolated_mean_error_S": scalar(self.extrapolated_mean_error),
            "extrapolated_level_std_S": scalar(self.extrapolated_std),
        })
        return out


async def relaxation(backend: ArrayBackend, rows: object, cols: object, params: RelaxationParams | None = None,
                     ctx: RoutineContext | None = None) -> RelaxationResult:
    """Program the listed cells, then read them at each read time after programming.

    Statistics use the cells that converged. Emits what `program` emits and a "relaxation_read" batch
    (g S, t_after s, target S) per chunk and read time; a safe point follows every read round, and every
    second of a wait on a real clock (labctl.routines.cells.wait_until).
    """
    p = params or RelaxationParams()
    ctx = ctx or RoutineContext()
    p.check_limits(backend.limits)
    r, c = cell_arrays(backend, rows, cols)
    n = r.size
    prog = await program(backend, r, c, p.program, ctx)
    t0 = await backend.now()
    times = p.read_times()
    g = np.empty((times.size, n))
    t_read = np.empty(times.size)
    mean_error = np.full(times.size, np.nan)
    level_std = np.full(times.size, np.nan)
    ok = prog.converged
    for k, t in enumerate(times):
        await wait_until(backend, t0, float(t), ctx)
        t_read[k] = await backend.now() - t0
        for s in chunks(n, p.program.chunk):
            g[k, s] = await backend.read(r[s], c[s], p.program.v_read, p.program.vg_read)
            await ctx.emit("relaxation_read", r[s], c[s], await backend.now(), g=g[k, s],
                           t_after=np.full(s.stop - s.start, t_read[k]), target=prog.targets[s])
        if ok.any():
            mean_error[k] = float(np.mean(g[k, ok] - prog.g[ok]))
            sig = programming_noise(prog.targets, g[k], ok).sigma
            if np.isfinite(sig).any():
                level_std[k] = float(np.sqrt(np.nanmean(sig**2)))
        ctx.progress(k + 1, times.size, "relaxation")
        await ctx.checkpoint()
    return RelaxationResult(programmed=prog, times=times, t_read=t_read, g=g, mean_error=mean_error,
                            level_std=level_std, mean_fit=log_time_fit(t_read, mean_error),
                            std_fit=log_time_fit(t_read, level_std), extrapolate_to=p.extrapolate_to)
