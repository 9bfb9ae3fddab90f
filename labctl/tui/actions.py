"""What the TUI can do to selected cells: one ActionSpec per action, each a routine.

An action is a routine `async (backend, rows, cols, params, ctx) -> result` with a pydantic params
model. Where labctl.routines has the routine (forming, closed-loop program-and-verify with
SET_TARGET_G on native backends and the host loop elsewhere, I–V cycling) the TUI calls it; the
actions the routines package does not cover in the shape an operator wants at the probe station —
a plain read, single or repeated pulses with a read after each, and a retention follow-up of the
selection — are small routines here, written against the same interface and emitting the same
kind of measurement batches, so they are stored exactly like campaign steps.

Parameters are validated twice before anything is sent: by the params model (ranges that do not
depend on the backend) and by `check_limits(backend.limits)` (the station's safety limits); the
backends check again on every call.
"""
from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import Field, field_validator

from labctl.backends.base import ArrayBackend
from labctl.routines.base import RoutineContext
from labctl.routines.params import RoutineParams, cell_arrays

Routine = Callable[[ArrayBackend, Any, Any, Any, RoutineContext], Awaitable[Any]]


# ----------------------------------------------------------------------------- local routines


class ReadParams(RoutineParams):
    """One read of every listed cell."""

    v_read: float = Field(0.2, description="read bias, V (REF 0.2 V)")
    vg_read: float = Field(3.3, ge=0, description="gate during the read, V (REF 3.3 V)")

    voltage_fields = ("v_read",)
    gate_fields = ("vg_read",)

    @field_validator("v_read")
    @classmethod
    def _nonzero(cls, v: float) -> float:
        if v == 0 or not math.isfinite(v):
            raise ValueError("must be a finite non-zero bias (V)")
        return v


@dataclass(frozen=True)
class CellsResult:
    """Per cell: the last conductance read, S; `trace` keeps every read (n_cells, n_points)."""

    rows: NDArray[np.int64]
    cols: NDArray[np.int64]
    g: NDArray[np.float64]
    trace: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 0)))

    def summary(self) -> dict[str, Any]:
        g = self.g[np.isfinite(self.g)]
        return {"cells": int(self.g.size), "g_mean_S": float(g.mean()) if g.size else None,
                "g_min_S": float(g.min()) if g.size else None, "g_max_S": float(g.max()) if g.size else None}


async def read_cells(backend: ArrayBackend, rows: object, cols: object, params: ReadParams,
                     ctx: RoutineContext | None = None) -> CellsResult:
    """Read the listed cells once; emits a "read" batch (g, S)."""
    ctx = ctx or RoutineContext()
    params.check_limits(backend.limits)
    r, c = cell_arrays(backend, rows, cols)
    g = await backend.read(r, c, params.v_read, params.vg_read)
    await ctx.emit("read", r, c, await backend.now(), g=g)
    ctx.progress(1, 1, "read")
    return CellsResult(r, c, g)


class PulseParams(RoutineParams):
    """Identical pulses applied to every listed cell, each followed by a read (REF pulse and read)."""

    v: float = Field(1.35, description="pulse amplitude, V (> 0 set, < 0 reset; REF 1.35 V / −1.5 V)")
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
        if v == 0 or not math.isfinite(v):
            raise ValueError("must be a finite non-zero voltage (V)")
        return v


async def pulse_train(backend: ArrayBackend, rows: object, cols: object, params: PulseParams,
                      ctx: RoutineContext | None = None) -> CellsResult:
    """`count` identical pulses on the listed cells, a read after each; emits one "pulse_read" batch
    per pulse (g S, pulse index) and a safe point after it."""
    ctx = ctx or RoutineContext()
    params.check_limits(backend.limits)
    r, c = cell_arrays(backend, rows, cols)
    trace = np.empty((r.size, params.count))
    for k in range(params.count):
        await backend.pulse(r, c, params.v, params.vg, params.width)
        g = await backend.read(r, c, params.v_read, params.vg_read)
        trace[:, k] = g
        await ctx.emit("pulse_read", r, c, await backend.now(), g=g, pulse=np.full(r.size, k + 1), v=params.v)
        ctx.progress(k + 1, params.count, f"pulse {k + 1}/{params.count}")
        await ctx.checkpoint()
    return CellsResult(r, c, trace[:, -1], trace)


class RetentionParams(RoutineParams):
    """Reads of the listed cells at times after now (a follow-up of cells just programmed)."""

    times: list[float] = Field(default_factory=lambda: [1.0, 10.0, 100.0, 1000.0, 3600.0],
                               description="read times after the start, s (rising)")
    v_read: float = Field(0.2, description="read bias, V")
    vg_read: float = Field(3.3, ge=0, description="gate during the reads, V")

    voltage_fields = ("v_read",)
    gate_fields = ("vg_read",)

    @field_validator("times")
    @classmethod
    def _rising(cls, t: list[float]) -> list[float]:
        if not t:
            raise ValueError("needs at least one time (s)")
        a = np.asarray(t, dtype=np.float64)
        if not np.all(np.isfinite(a)) or a.min() < 0 or np.any(np.diff(a) <= 0):
            raise ValueError(f"must be finite, >= 0 s and strictly rising, got {t}")
        return t


async def retention(backend: ArrayBackend, rows: object, cols: object, params: RetentionParams,
                    ctx: RoutineContext | None = None) -> CellsResult:
    """Read the listed cells at each of `times` after the start (virtual time on the emulator, real
    waiting on hardware); emits one "retention" batch per time (g S, elapsed s)."""
    ctx = ctx or RoutineContext()
    params.check_limits(backend.limits)
    r, c = cell_arrays(backend, rows, cols)
    t0 = await backend.now()
    trace = np.empty((r.size, len(params.times)))
    for k, t in enumerate(params.times):
        now = await backend.now()
        if t0 + t > now:
            # Wait in slices so a cancel or emergency stop lands within a second on hardware.
            remaining = t0 + t - now
            while remaining > 0:
                step = remaining if backend.info.virtual_clock else min(remaining, 1.0)
                await backend.wait(step)
                remaining -= step
                await ctx.checkpoint()
        g = await backend.read(r, c, params.v_read, params.vg_read)
        trace[:, k] = g
        elapsed = await backend.now() - t0
        await ctx.emit("retention", r, c, t0 + elapsed, g=g, elapsed=np.full(r.size, elapsed))
        ctx.progress(k + 1, len(params.times), f"read at {t:g} s")
        await ctx.checkpoint()
    return CellsResult(r, c, trace[:, -1], trace)


# ----------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class ActionSpec:
    """One action of the TUI: the routine it runs and the fields its form shows."""

    key: str  # internal name, also the step name in the store
    title: str
    binding: str  # the key that opens its form
    function: Routine
    params_model: type[RoutineParams]
    fields: tuple[str, ...]  # shown in the form, in order; the rest keep their defaults
    initial: dict[str, Any] = field(default_factory=dict)  # values for fields without a default
    plot: str = ""  # live plot: "iv", "pulse", "retention" or ""
    description: str = ""

    @property
    def routine(self) -> str:
        """The name campaign files use for this routine where it is registered, else the action key."""
        target = f"{self.function.__module__}:{self.function.__name__}"
        from labctl.campaigns.steps import STEPS

        for name, kind in STEPS.items():
            if kind.target == target:
                return name
        return self.key


def _optional(module: str, names: tuple[str, ...]) -> tuple[Any, ...] | None:
    try:
        mod = __import__(module, fromlist=list(names))
        return tuple(getattr(mod, n) for n in names)
    except (ImportError, AttributeError):
        return None


def action_specs() -> dict[str, ActionSpec]:
    """Every action, keyed by its `key`, built from the routines this installation has."""
    specs = [ActionSpec("read", "Read", "r", read_cells, ReadParams, ("v_read", "vg_read"),
                        description="one read of the selection")]
    forming = _optional("labctl.routines.forming", ("form", "FormingParams"))
    if forming:
        specs.append(ActionSpec("form", "Form", "f", forming[0], forming[1], ("v_stop", "step", "vg", "compliance"),
                                plot="iv", description="forming sweep with compliance (REF §Forming)"))
    program = _optional("labctl.routines.program", ("program", "ClosedLoopParams"))
    if program:
        specs.append(ActionSpec("program", "Program to target G", "p", program[0], program[1],
                                ("targets", "tolerance", "max_iterations", "loop", "reset_first"),
                                initial={"targets": 50e-6}, plot="pulse",
                                description="closed-loop program-and-verify (SET_TARGET_G where native)"))
    specs.append(ActionSpec("pulse", "Pulses", "u", pulse_train, PulseParams,
                            ("v", "vg", "width", "count", "v_read"), plot="pulse",
                            description="single or repeated identical pulses, a read after each"))
    iv = _optional("labctl.routines.iv", ("iv_cycles", "IVParams"))
    if iv:
        specs.append(ActionSpec("iv", "I–V sweep", "i", iv[0], iv[1],
                                ("cycles", "v_set", "vg_set", "v_reset", "vg_reset", "step"), plot="iv",
                                description="quasi-static set/reset cycles with HRS/LRS at 0.2 V"))
    specs.append(ActionSpec("retention", "Retention follow-up", "e", retention, RetentionParams,
                            ("times", "v_read", "vg_read"), plot="retention",
                            description="reads at times after now (virtual clock on the emulator)"))
    return {s.key: s for s in specs}


async def yield_point() -> None:
    """A real suspension: the emulator's awaits never suspend, so cancellation lands only here."""
    await asyncio.sleep(0)
