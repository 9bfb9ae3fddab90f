"""Endurance: set/reset cycles until the memory window closes.

A cycle is `pulses_per_switch` set pulses then as many reset pulses. Every `check_every` cycles both
states are read (after the set half and after the reset half); a cell's window is closed when
G_on / G_off falls below `min_ratio`, and that cell is cycled no further. The routine stops when every
cell has closed or after `max_cycles`; cells still open are reported as such.
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
from labctl.routines.params import RoutineParams, cell_arrays, chunks
from labctl.routines.results import RoutineResult, nanstat, scalar


class EnduranceParams(RoutineParams):
    """Cycling pulses and the window criterion. Default pulses: REF's strongest closed-loop amplitudes
    (set 1.5 V at VG 1.4 V, reset −1.5 V at VG 3.3 V, 2.5 µs); 10 of each per half cycle (chosen: on the
    reference device that moves a cell from near G_min to near G_max and back)."""

    max_cycles: int = Field(1000, ge=1, le=10**9, description="cycles at most")
    check_every: int = Field(10, ge=1, description="cycles between two window checks")
    pulses_per_switch: int = Field(10, ge=1, le=10_000, description="pulses per set or reset half cycle")
    v_set: float = Field(1.5, gt=0, description="set amplitude, V")
    vg_set: float = Field(ref.VG_SET, ge=0, description="gate during set pulses, V")
    v_reset: float = Field(-1.5, lt=0, description="reset amplitude, V")
    vg_reset: float = Field(ref.VG_RESET, ge=0, description="gate during reset pulses, V")
    width: float = Field(ref.PULSE_WIDTH, gt=0, description="pulse width, s")
    v_read: float = Field(ref.V_READ, description="read bias, V")
    vg_read: float = Field(ref.VG_READ, ge=0, description="gate during reads, V")
    # chosen: a 2× window is about the least a one-bit read separates given device-to-device spread
    min_ratio: float = Field(2.0, gt=1, description="window closed when G_on / G_off < min_ratio")

    voltage_fields = ("v_set", "v_reset", "v_read")
    gate_fields = ("vg_set", "vg_reset", "vg_read")
    width_fields = ("width",)


@dataclass(frozen=True)
class EnduranceResult(RoutineResult):
    """Per cell: `cycles` survived with the window open (the cycle count at the check that found it
    closed, or the cycles run if it never closed), `closed`, and the first and last G_on / G_off, S."""

    figures: ClassVar[str | None] = "labctl.routines.figures.endurance:endurance_figures"

    summary_settings: ClassVar[tuple[str, ...]] = ("max_cycles",)

    rows: NDArray[np.int64]
    cols: NDArray[np.int64]
    cycles: NDArray[np.int64]
    closed: NDArray[np.bool_]
    g_on_first: NDArray[np.float64]
    g_off_first: NDArray[np.float64]
    g_on_last: NDArray[np.float64]
    g_off_last: NDArray[np.float64]
    max_cycles: int

    def summary(self) -> dict[str, float | int | bool | str | None]:
        return {"cells": int(self.cycles.size), "closed": int(self.closed.sum()),
                "still_open": int((~self.closed).sum()), "max_cycles": int(self.max_cycles),
                "cycles_min": int(self.cycles.min()) if self.cycles.size else None,
                "cycles_median": nanstat(np.median, self.cycles),
                "ratio_first_median": nanstat(np.median, self.g_on_first / self.g_off_first),
                "ratio_last_median": nanstat(np.median, self.g_on_last / self.g_off_last),
                "closed_fraction": scalar(self.closed.mean()) if self.closed.size else None}


async def endurance(backend: ArrayBackend, rows: object, cols: object, params: EnduranceParams | None = None,
                    ctx: RoutineContext | None = None) -> EnduranceResult:
    """Cycle the listed cells until their window closes (or max_cycles).

    Emits an "endurance_read" batch per check (g_on, g_off S, cycle); a safe point follows every check.
    """
    p = params or EnduranceParams()
    ctx = ctx or RoutineContext()
    p.check_limits(backend.limits)
    r, c = cell_arrays(backend, rows, cols)
    n = r.size
    cycles = np.zeros(n, dtype=np.int64)
    closed = np.zeros(n, dtype=bool)
    first = np.full((2, n), np.nan)
    last = np.full((2, n), np.nan)
    ctx.progress(0, n * p.max_cycles, "endurance")
    for s in chunks(n, p.chunk):
        active = np.arange(s.start, s.stop)
        done = 0
        while done < p.max_cycles and active.size:
            block = min(p.check_every, p.max_cycles - done)
            g = np.empty((2, active.size))
            for k in range(block):
                for half, (v, vg) in enumerate(((p.v_set, p.vg_set), (p.v_reset, p.vg_reset))):
                    for _ in range(p.pulses_per_switch):
                        await backend.pulse(r[active], c[active], v, vg, p.width)
                    if k == block - 1:  # the check reads each state right after its half cycle
                        g[half] = await backend.read(r[active], c[active], p.v_read, p.vg_read)
            done += block
            cycles[active] = done
            await ctx.emit("endurance_read", r[active], c[active], await backend.now(), g_on=g[0], g_off=g[1],
                           cycle=np.full(active.size, done))
            fresh = np.isnan(first[0, active])
            first[:, active[fresh]] = g[:, fresh]
            last[:, active] = g
            with np.errstate(divide="ignore", invalid="ignore"):
                shut = ~(g[0] / g[1] >= p.min_ratio)
            closed[active[shut]] = True
            active = active[~shut]
            ctx.progress(s.start * p.max_cycles + done * (s.stop - s.start), n * p.max_cycles, "endurance")
            await ctx.checkpoint()
    return EnduranceResult(rows=r, cols=c, cycles=cycles, closed=closed, g_on_first=first[0], g_off_first=first[1],
                           g_on_last=last[0], g_off_last=last[1], max_cycles=p.max_cycles)
