"""Bringing an array into the state a PUF reads, through the ArrayBackend only.

- `form_and_set`: form every cell, reset and set it quasi-statically, so that each cell sits in its
  low-resistance state. The response is then the device-to-device spread of that state (REF: LRS
  sigma/mu 0.25), which relaxes by a fraction of a microsiemens only (REF: 0.6 uS spread at 10 min),
  unlike the state a cell forms into (a tenth of its window), where relaxation flips many pairs.
- `form_pairs`: the forming race of the "forming" method: both cells of each pair get the same
  rising staircase and the first to form wins; its partner is left pristine. The bit is then read
  as formed-versus-pristine (four orders of magnitude apart), which no relaxation or read bias
  changes. Pairs whose cells form at the same step (or neither by the last step) are ties and are
  masked at enrollment.

Neither helper stores or emits what it measures: forming voltages are the raw response.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from labctl.backends.base import ArrayBackend
from labctl.core import reference as ref
from labctl.puf.responses import Cells
from labctl.routines.base import RoutineContext


@dataclass(frozen=True)
class FormSetSettings:
    """Quasi-static staircases (V) and gates (V) of `form_and_set`. Values from REF
    (labctl.core.reference): forming sweeps reach 3.6 V at VG = 1.2 V; the -1.5 V reset at VG = 3.3 V
    gives the HRS; the set at VG = 1.1 V gives the LRS."""

    form_v_stop: float = ref.FORMING.v_stop
    form_vg: float = ref.FORMING.vg
    reset_v_stop: float = ref.RESET.v_stop
    reset_vg: float = ref.RESET.vg
    # chosen: above REF's 1.3 V set sweep, so that every cell, not only the typical one, reaches its LRS
    set_v_stop: float = 1.5
    set_vg: float = ref.SET.vg
    points: int = 3  # points per staircase; the cells' switching bounds, not the step count, set the state
    dwell: float = ref.QS_DWELL  # s per point


async def form_and_set(backend: ArrayBackend, cells: Cells, settings: FormSetSettings | None = None,
                       ctx: RoutineContext | None = None) -> None:
    """Form, reset and set every PUF cell (three quasi-static staircases)."""
    s = settings or FormSetSettings()
    if s.points < 1:
        raise ValueError(f"points: {s.points} must be >= 1")
    r, c = cells.rc()
    frac = np.arange(1, s.points + 1, dtype=np.float64) / s.points
    for i, (v_stop, vg) in enumerate(((s.form_v_stop, s.form_vg), (s.reset_v_stop, s.reset_vg),
                                      (s.set_v_stop, s.set_vg))):
        await backend.sweep(r, c, v_stop * frac, vg, dwell=s.dwell)
        if ctx is not None:
            ctx.progress(i + 1, 3, "preparing cells")
            await ctx.checkpoint()


@dataclass(frozen=True)
class FormingRaceSettings:
    """Staircase of the forming race (V), its gate (V), and the read that detects forming (REF values
    from labctl.core.reference; the race starts below the lowest forming voltage, chosen)."""

    v_start: float = 2.8
    v_stop: float = ref.FORMING.v_stop
    v_step: float = ref.QS_STEP
    vg: float = ref.FORMING.vg
    v_read: float = ref.V_READ
    vg_read: float = ref.VG_READ
    g_formed: float = 1e-6  # S: a formed cell reads >= 4 uS (REF HRS ~ 256 kOhm); pristine ~ 1 nS


@dataclass(frozen=True)
class RaceOutcome:
    """Per pair: 0 = cell a formed first, 1 = cell b first, 2 = tie, 3 = neither formed (public counts only)."""

    winner: NDArray[np.int8]
    steps: int

    def counts(self) -> dict[str, int]:
        w = self.winner
        return {"a_first": int(np.sum(w == 0)), "b_first": int(np.sum(w == 1)),
                "ties": int(np.sum(w == 2)), "unformed": int(np.sum(w == 3))}


async def form_pairs(backend: ArrayBackend, cells: Cells, settings: FormingRaceSettings | None = None,
                     ctx: RoutineContext | None = None) -> RaceOutcome:
    """Run the forming race on the pairs (cells 2j, 2j+1) of `cells`."""
    s = settings or FormingRaceSettings()
    if not (0 < s.v_step and s.v_start <= s.v_stop):
        raise ValueError(f"v_start, v_stop, v_step: need v_start <= v_stop and v_step > 0, got "
                         f"{s.v_start}, {s.v_stop}, {s.v_step}")
    r, c = cells.rc()
    n = (r.size // 2) * 2
    ra, ca, rb, cb = r[0:n:2], c[0:n:2], r[1:n:2], c[1:n:2]
    pairs = ra.size
    winner = np.full(pairs, 3, dtype=np.int8)

    async def formed(idx: NDArray[np.int64]) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
        rr = np.concatenate([ra[idx], rb[idx]])
        cc = np.concatenate([ca[idx], cb[idx]])
        g = await backend.read(rr, cc, s.v_read, s.vg_read)
        return g[:idx.size] > s.g_formed, g[idx.size:] > s.g_formed

    def decide(idx: NDArray[np.int64], fa: NDArray[np.bool_], fb: NDArray[np.bool_]) -> None:
        winner[idx[fa & ~fb]] = 0
        winner[idx[fb & ~fa]] = 1
        winner[idx[fa & fb]] = 2

    every = np.arange(pairs, dtype=np.int64)
    fa, fb = await formed(every)  # pairs formed before the race are decided as they stand
    decide(every, fa, fb)
    levels = np.arange(s.v_start, s.v_stop + s.v_step / 2, s.v_step)
    steps = 0
    for k, v in enumerate(levels):
        idx = np.flatnonzero(winner == 3)
        if idx.size == 0:
            break
        await backend.sweep(np.concatenate([ra[idx], rb[idx]]), np.concatenate([ca[idx], cb[idx]]),
                            np.array([v]), s.vg)
        fa, fb = await formed(idx)
        decide(idx, fa, fb)
        steps += 1
        if ctx is not None:
            ctx.progress(k + 1, levels.size, "forming race")
            await ctx.checkpoint()
    return RaceOutcome(winner=winner, steps=steps)
