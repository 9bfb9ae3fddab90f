"""Closed-loop program-and-verify (REF §Closed-loop programming).

`program`: the identical-pulse scheme of REF. Every listed cell is first reset by a quasi-static sweep
0 → −1.5 V → 0 (VG 3.3 V); then, per cell, until the verify read is inside target ± tolerance·target:
read at 0.2 V; below the range one SET pulse, above it one RESET pulse, with fixed amplitudes chosen by
target range (labctl.core.reference.PULSE_TABLE: 10–30 µS 1.35 / −1.5 V, 30–60 µS 1.35 / −1.3 V,
60–90 µS 1.5 / −1.3 V), gates 1.4 V (set) and 3.3 V (reset), 2.5 µs. At most `max_iterations` verify
reads per cell; the last one is not followed by a pulse.

`program_incremental`: the older alternative: amplitudes start at v_start_* and grow by v_step_* per
pulse of one polarity up to v_stop_*, restarting on a polarity flip; at most `max_per_polarity`
pulses in a row and `max_flips` flips per cell (labctl.core.schemes.IncrementalScheme, whose
defaults these are).

The loop runs natively where the backend has one (`backend.program`, SET_TARGET_G). Otherwise the host
runs it, vectorized over all unconverged cells at each iteration, issuing per cell exactly the
operation sequence of the C loop (emulator/c_core/rram.c, rram_program): on the emulator, whose noise is
per cell and independent of call order, both give bit-identical results.

Per cell the result holds the last verify read (S), the pulses applied ("iterations") and whether it
converged; cells that did not converge are reported as such, never dropped.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import Field, model_validator

from labctl.backends.base import ArrayBackend, ProgramOutcome, ProgramSettings
from labctl.core import reference as ref
from labctl.core.reference import QS_DWELL, ramp
from labctl.core.schemes import IdenticalScheme, IncrementalScheme, Scheme
from labctl.routines.base import RoutineContext
from labctl.routines.params import REFERENCE_WINDOW, RoutineParams, cell_arrays, check_window, chunks
from labctl.routines.results import RoutineResult, nanstat, scalar

LoopChoice = Literal["auto", "native", "host"]


class _ClosedLoopBase(RoutineParams):
    """Fields every closed-loop scheme shares (REF §Closed-loop programming)."""

    targets: float | list[float] | None = Field(
        None, description="target conductance(s), S: one for every cell, or one per listed cell")
    levels: list[float] | None = Field(
        None, description="target levels, S, assigned to the listed cells in turn (cell k gets level k mod L)")
    window: tuple[float, float] = Field(REFERENCE_WINDOW, description="programmable conductance window, S")
    tolerance: float = Field(ref.TOLERANCE, gt=0, lt=1,
                             description="acceptance range, fraction of the target (REF 2 %, 0.2 %)")
    max_iterations: int = Field(ref.MAX_ITERATIONS, ge=1, le=1_000_000, description="verify reads per cell")
    vg_set: float = Field(ref.VG_SET, ge=0, description="gate during set pulses, V (REF 1.4 V)")
    vg_reset: float = Field(ref.VG_RESET, ge=0, description="gate during reset pulses, V (REF 3.3 V)")
    width: float = Field(ref.PULSE_WIDTH, gt=0, description="pulse width, s (REF 2.5 µs)")
    v_read: float = Field(ref.V_READ, description="verify read bias, V (REF 0.2 V)")
    vg_read: float = Field(ref.VG_READ, ge=0, description="gate during verify reads, V (REF 3.3 V)")
    reset_first: bool = Field(True, description="reset sweep of the listed cells before programming (REF)")
    reset_v: float = Field(ref.PROGRAM_RESET.v_stop, lt=0, description="end of the reset sweep, V (REF −1.5 V)")
    reset_vg: float = Field(ref.PROGRAM_RESET.vg, ge=0, description="gate during the reset sweep, V")
    sweep_step: float = Field(ref.PROGRAM_RESET_STEP, gt=0, le=0.5, description="reset sweep step, V")
    sweep_dwell: float = Field(QS_DWELL, gt=0, description="time per reset sweep point, s")
    loop: LoopChoice = Field("auto", description="native (SET_TARGET_G), host, or native where available")

    voltage_fields = ("v_read", "reset_v")
    gate_fields = ("vg_set", "vg_reset", "vg_read", "reset_vg")
    width_fields = ("width",)

    @model_validator(mode="after")
    def _targets(self) -> _ClosedLoopBase:
        if (self.targets is None) == (self.levels is None):
            raise ValueError("targets, levels: give exactly one of them (target conductances in S)")
        if self.levels is not None and not self.levels:
            raise ValueError("levels: needs at least one level (S)")
        if isinstance(self.targets, list) and not self.targets:
            raise ValueError("targets: needs at least one target (S)")
        name = "targets" if self.targets is not None else "levels"
        values = np.atleast_1d(np.asarray(self.targets if self.targets is not None else self.levels, dtype=np.float64))
        check_window(name, values, self.window)
        return self

    def cell_targets(self, n: int) -> NDArray[np.float64]:
        """Per-cell targets (S) for `n` listed cells; ValueError if an explicit list has another length."""
        if self.levels is not None:
            lv = np.asarray(self.levels, dtype=np.float64)
            return lv[np.arange(n) % lv.size]
        t = np.asarray(self.targets, dtype=np.float64)
        if t.ndim == 0:
            return np.full(n, float(t))
        if t.size != n:
            raise ValueError(f"targets: {t.size} values given for {n} cells (give one per cell, or one for all)")
        return t.copy()

    def scheme(self) -> Scheme:  # pragma: no cover - each scheme defines it
        raise NotImplementedError

    def settings(self) -> ProgramSettings:
        """The same loop as backend settings (for a native SET_TARGET_G)."""
        return ProgramSettings(tolerance=self.tolerance, max_iterations=self.max_iterations, vg_set=self.vg_set,
                               vg_reset=self.vg_reset, width=self.width, v_read=self.v_read, vg_read=self.vg_read,
                               scheme=self.scheme())


class ClosedLoopParams(_ClosedLoopBase):
    """Identical-pulse program-and-verify (REF). v_set / v_reset None: the reference per-range table."""

    v_set: float | None = Field(None, gt=0, description="set amplitude, V (None: REF per-range)")
    v_reset: float | None = Field(None, lt=0, description="reset amplitude, V (None: REF per-range)")

    voltage_fields = _ClosedLoopBase.voltage_fields + ("v_set", "v_reset")

    def scheme(self) -> IdenticalScheme:
        """The pulse amplitudes of this loop (labctl.core.schemes)."""
        return IdenticalScheme(v_set=self.v_set, v_reset=self.v_reset)


_INCREMENTAL = IncrementalScheme()  # the one source of the incremental scheme's defaults


class IncrementalParams(_ClosedLoopBase):
    """Incremental-step program-and-verify: start / step / maximum amplitude per polarity.

    Defaults: labctl.core.schemes.IncrementalScheme; v_start_* None: the REF per-range amplitudes.
    """

    v_start_set: float | None = Field(_INCREMENTAL.v_start_set, gt=0,
                                      description="first set amplitude, V (None: REF per-range)")
    v_step_set: float = Field(_INCREMENTAL.v_step_set, ge=0, description="set amplitude increment per pulse, V")
    v_stop_set: float = Field(_INCREMENTAL.v_stop_set, gt=0, description="largest set amplitude, V")
    v_start_reset: float | None = Field(_INCREMENTAL.v_start_reset, lt=0,
                                        description="first reset amplitude, V (None: REF per-range)")
    v_step_reset: float = Field(_INCREMENTAL.v_step_reset, ge=0,
                                description="reset amplitude increment (magnitude) per pulse, V")
    v_stop_reset: float = Field(_INCREMENTAL.v_stop_reset, lt=0,
                                description="largest reset amplitude (most negative), V")
    max_per_polarity: int = Field(_INCREMENTAL.max_per_polarity, ge=0,
                                  description="pulses in a row of one polarity (0: unbounded)")
    max_flips: int = Field(_INCREMENTAL.max_flips, ge=0, description="polarity flips per cell (0: unbounded)")

    voltage_fields = _ClosedLoopBase.voltage_fields + ("v_start_set", "v_stop_set", "v_start_reset", "v_stop_reset")

    @model_validator(mode="after")
    def _ramps(self) -> IncrementalParams:
        if self.v_start_set is not None and self.v_stop_set < self.v_start_set:
            raise ValueError(f"v_stop_set: {self.v_stop_set:g} V is below v_start_set {self.v_start_set:g} V")
        if self.v_start_reset is not None and self.v_stop_reset > self.v_start_reset:
            raise ValueError(f"v_stop_reset: {self.v_stop_reset:g} V is above v_start_reset {self.v_start_reset:g} V "
                             "(reset amplitudes are negative and grow in magnitude)")
        return self

    def scheme(self) -> IncrementalScheme:
        """The pulse amplitudes of this loop (labctl.core.schemes), field for field."""
        return IncrementalScheme(v_start_set=self.v_start_set, v_step_set=self.v_step_set, v_stop_set=self.v_stop_set,
                                 v_start_reset=self.v_start_reset, v_step_reset=self.v_step_reset,
                                 v_stop_reset=self.v_stop_reset, max_per_polarity=self.max_per_polarity,
                                 max_flips=self.max_flips)


@dataclass(frozen=True)
class ClosedLoopResult(RoutineResult):
    """Per cell (shape (n,)): target (S), last verify read (S), pulses applied, converged.

    `loop` says where the loop ran ("native" or "host"); `tolerance` is the acceptance range used.
    """

    figures: ClassVar[str | None] = "labctl.routines.figures.program:program_figures"

    rows: NDArray[np.int64]
    cols: NDArray[np.int64]
    targets: NDArray[np.float64]
    g: NDArray[np.float64]
    iterations: NDArray[np.int32]
    converged: NDArray[np.bool_]
    tolerance: float
    loop: str

    def summary(self) -> dict[str, float | int | bool | str | None]:
        n = int(self.g.size)
        rel = (self.g - self.targets) / self.targets
        conv = self.converged
        return {
            "cells": n,
            "converged": int(conv.sum()),
            "not_converged": int(n - conv.sum()),
            "converged_fraction": scalar(conv.mean()) if n else None,
            "tolerance": scalar(self.tolerance),
            "iterations_mean": nanstat(np.mean, self.iterations),
            "iterations_median": nanstat(np.median, self.iterations),
            "iterations_max": int(self.iterations.max()) if n else None,
            "rel_error_mean": nanstat(np.mean, rel[conv]),
            "rel_error_std": nanstat(np.std, rel[conv]),
            "loop": self.loop,
        }


async def program(backend: ArrayBackend, rows: object, cols: object, params: ClosedLoopParams,
                  ctx: RoutineContext | None = None) -> ClosedLoopResult:
    """Identical-pulse program-and-verify of the listed cells (None, None: all) to params' targets.

    Emits, per chunk, the reset sweep ("reset_sweep": v, i), on the host loop every verify read
    ("verify_read": g S, target S, iteration), and the outcome ("program": target, g, iterations,
    converged). A safe point follows every chunk.
    """
    return await _closed_loop(backend, rows, cols, params, ctx)


async def program_incremental(backend: ArrayBackend, rows: object, cols: object, params: IncrementalParams,
                              ctx: RoutineContext | None = None) -> ClosedLoopResult:
    """Incremental-step program-and-verify of the listed cells; emits and pauses like `program`."""
    return await _closed_loop(backend, rows, cols, params, ctx)


def use_native(backend: ArrayBackend, loop: LoopChoice) -> bool:
    """Whether the loop runs on the backend (ValueError if "native" is asked of a backend without one)."""
    if loop == "native" and not backend.info.native_program:
        raise ValueError(f"loop: 'native' asked, but the {backend.info.kind} backend has no native "
                         "program-verify loop (use 'auto' or 'host')")
    return loop != "host" and backend.info.native_program


async def _closed_loop(backend: ArrayBackend, rows: object, cols: object, p: _ClosedLoopBase,
                       ctx: RoutineContext | None) -> ClosedLoopResult:
    ctx = ctx or RoutineContext()
    p.check_limits(backend.limits)
    r, c = cell_arrays(backend, rows, cols)
    n = r.size
    targets = p.cell_targets(n)
    settings = p.settings()
    v_set, v_reset = settings.scheme.start_amplitudes(targets)
    native = use_native(backend, p.loop)
    g = np.empty(n)
    iterations = np.empty(n, dtype=np.int32)
    converged = np.empty(n, dtype=bool)
    sweep = ramp(p.reset_v, p.sweep_step, back=False)
    ctx.progress(0, n, "programming")
    for s in chunks(n, p.chunk):
        if p.reset_first:
            i = await backend.sweep(r[s], c[s], sweep, p.reset_vg, p.sweep_dwell)
            await ctx.emit("reset_sweep", r[s], c[s], await backend.now(), v=np.broadcast_to(sweep, i.shape), i=i)
        if native:
            out = await backend.program(r[s], c[s], targets[s], settings)
            g[s], iterations[s], converged[s] = out.g, out.iterations, out.converged
        else:
            g[s], iterations[s], converged[s] = await host_loop(backend, r[s], c[s], targets[s], v_set[s],
                                                                v_reset[s], settings, ctx)
        await ctx.emit("program", r[s], c[s], await backend.now(), target=targets[s], g=g[s],
                       iterations=iterations[s], converged=converged[s])
        ctx.progress(s.stop, n, "programming")
        await ctx.checkpoint()
    return ClosedLoopResult(rows=r, cols=c, targets=targets, g=g, iterations=iterations, converged=converged,
                            tolerance=p.tolerance, loop="native" if native else "host")


async def host_loop(backend: ArrayBackend, rows: NDArray[np.int64], cols: NDArray[np.int64],
                    targets: NDArray[np.float64], v_set: NDArray[np.float64], v_reset: NDArray[np.float64],
                    s: ProgramSettings, ctx: RoutineContext | None = None,
                    ) -> tuple[NDArray[np.float64], NDArray[np.int32], NDArray[np.bool_]]:
    """The program-and-verify loop run on the host, all unconverged cells at once.

    Per cell it issues exactly the sequence of rram_program (emulator/c_core/rram.c): at iteration k
    read at v_read; stop if |g − target| <= tolerance·target; stop after the last allowed read; else
    one set pulse below the target or one reset pulse above it (incremental scheme: amplitude stepped
    within a run of one polarity, restarted on a flip, bounded runs and flips). Returns the last read
    (S), the pulses applied and whether each cell converged. Emits "verify_read" batches to `ctx`.
    Each pulse and the verify read after it go as one `backend.pulse_and_read` (one execution per
    cell on a pulse-and-measure station; pulse then read elsewhere).
    """
    n = rows.size
    g = np.zeros(n)
    pulses = np.zeros(n, dtype=np.int32)
    conv = np.zeros(n, dtype=bool)
    scheme = s.scheme
    incremental = isinstance(scheme, IncrementalScheme)
    run = np.zeros(n, dtype=np.int64)
    flips = np.zeros(n, dtype=np.int64)
    last = np.zeros(n, dtype=np.int8)
    amp_set = np.array(v_set, dtype=np.float64)
    amp_reset = np.array(v_reset, dtype=np.float64)
    active = np.arange(n)
    ga = await backend.read(rows, cols, s.v_read, s.vg_read) if n and s.max_iterations > 0 else np.zeros(0)
    for it in range(s.max_iterations):
        if active.size == 0:
            break
        g[active] = ga
        ta = targets[active]
        if ctx is not None:
            await ctx.emit("verify_read", rows[active], cols[active], await backend.now(), g=ga, target=ta,
                           iteration=np.full(active.size, it))
        err = ga - ta
        ok = np.abs(err) <= s.tolerance * ta
        conv[active[ok]] = True
        if it == s.max_iterations - 1:
            break  # the last verify read is not followed by a pulse
        act = active[~ok]
        direction = np.where(err[~ok] < 0.0, 1, -1).astype(np.int8)
        if incremental:
            prev = last[act]
            flip = (prev != 0) & (direction != prev)
            stop = np.zeros(act.size, dtype=bool)
            if scheme.max_flips > 0:
                flips[act[flip]] += 1
                stop = flip & (flips[act] > scheme.max_flips)
            restart = act[flip & ~stop]
            run[restart] = 0
            amp_set[restart] = v_set[restart]
            amp_reset[restart] = v_reset[restart]
            step = ~flip & (run[act] > 0)
            up = act[step & (direction > 0)]
            amp_set[up] = np.minimum(amp_set[up] + scheme.v_step_set, scheme.v_stop_set)
            down = act[step & (direction < 0)]
            amp_reset[down] = np.maximum(amp_reset[down] - scheme.v_step_reset, scheme.v_stop_reset)
            if scheme.max_per_polarity > 0:
                stop |= run[act] >= scheme.max_per_polarity
            act, direction = act[~stop], direction[~stop]
        if act.size:
            up = direction > 0
            amp = np.where(up, amp_set[act], amp_reset[act])
            gate = np.where(up, s.vg_set, s.vg_reset)
            # The pulse and the next iteration's verify read of the same cells, as one operation.
            ga = await backend.pulse_and_read(rows[act], cols[act], amp, gate, s.width, s.v_read, s.vg_read)
            pulses[act] += 1
            run[act] = np.where(direction == last[act], run[act] + 1, 1)
            last[act] = direction
        active = act
    return g, pulses, conv


async def program_and_verify(backend: ArrayBackend, rows: NDArray[np.int64], cols: NDArray[np.int64],
                             targets: NDArray[np.float64], settings: ProgramSettings,
                             ctx: RoutineContext | None = None) -> ProgramOutcome:
    """The bare loop for callers that hold backend `ProgramSettings` (no reset sweep, no chunks, no
    parameter model): `backend.program` where the backend has a native loop, else `host_loop`.
    targets in S, one per listed cell; the amplitudes are settings.scheme's."""
    r, c = backend.check_cells(rows, cols)
    t = np.asarray(targets, dtype=np.float64).reshape(-1)
    if t.size != r.size:
        raise ValueError(f"targets: {t.size} values given for {r.size} cells")
    if backend.info.native_program:
        return await backend.program(r, c, t, settings)
    vs, vr = settings.scheme.start_amplitudes(t)
    g, it, conv = await host_loop(backend, r, c, t, vs, vr, settings, ctx)
    return ProgramOutcome(g=g, iterations=it, converged=conv)
