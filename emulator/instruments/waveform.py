"""An arbitrary piecewise-linear waveform on one bench terminal, sampled where the instrument
measures: what the 4225-PMU's segment ARB and the B1530A WGFMU do to the cells they drive.

The waveform is a list of :class:`Piece` (start and stop voltage over a duration). Its physics, on
every cell the terminal addresses (bench.py):

- a flat piece at or above the switching threshold (|V| >= the smaller of the preset's set and
  reset thresholds) is one rectangular pulse of its duration (``Array.pulse``); samples inside it
  are the transient cell current from ``Array.pulse_trace`` (the state evolving under that pulse,
  nothing drawn);
- a flat, non-zero piece below the threshold cannot switch a cell: if it is sampled it is one
  read (``Array.read_current``, one noise draw per cell, the same as an SMU's read) and every
  sample in it has that value; unsampled, it does nothing;
- ramps and 0 V pieces switch nothing (the edges of a 2.5 us pulse are 20 to 100 ns); samples in
  them are the noise-free current at the instantaneous voltage.

So a pulse through the PMU or WGFMU acts on a cell exactly as a pulse generator's does, and a read
exactly as an SMU's, with the same random draws; only the edges are idealized.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .bench import Bench, _array_errors

#: Threshold used for a stand-in array without a preset, V.
DEFAULT_SWITCH_THRESHOLD = 0.9


@dataclass(frozen=True)
class Piece:
    """One piece of a waveform: ``start`` to ``stop`` V, linearly, over ``duration`` s."""

    start: float
    stop: float
    duration: float


def switch_threshold(bench: Bench) -> float:
    """|V| below which no cell of the bench's array can switch (cell voltage <= applied), V."""
    preset = getattr(bench.array, "preset", None)
    if preset is None:
        return DEFAULT_SWITCH_THRESHOLD
    return float(min(preset.v_th_set, preset.v_th_reset))


def run(bench: Bench, terminal: str, pieces: list[Piece], times: np.ndarray) -> np.ndarray:
    """Apply ``pieces`` from ``terminal`` in order; the summed current (A) of the addressed cells at
    each of ``times`` (s from the start of the waveform, ascending). A sample at a boundary
    belongs to the piece that ends there."""
    times = np.asarray(times, dtype=np.float64)
    out = np.zeros(times.size)
    threshold = switch_threshold(bench)
    with bench.lock, _array_errors():
        rows, cols, vgs = bench.addressed(terminal)
        t0 = 0.0
        for piece in pieces:
            t1 = t0 + piece.duration
            first = 0 if t0 == 0.0 else int(np.searchsorted(times, t0, side="right"))
            last = int(np.searchsorted(times, t1, side="right"))
            inside = slice(first, last)
            if rows.size:
                _piece(bench, piece, threshold, rows, cols, vgs, times[inside] - t0, out, inside)
            t0 = t1
    return out


def _piece(bench: Bench, piece: Piece, threshold: float, rows: np.ndarray, cols: np.ndarray,
           vgs: np.ndarray, local: np.ndarray, out: np.ndarray, inside: slice) -> None:
    """One piece on the addressed cells (lock held); samples at ``local`` s into the piece go to
    ``out[inside]``."""
    array = bench.array
    flat = piece.start == piece.stop
    v = piece.start
    if flat and abs(v) >= threshold:
        if local.size:
            t = np.clip(local, piece.duration * 1e-9, piece.duration)  # t = 0: the pre-pulse state
            total = np.zeros(local.size)
            for r, c, vg in zip(rows.tolist(), cols.tolist(), vgs.tolist()):
                total += array.pulse_trace(r, c, v, vg, piece.duration, t)
            out[inside] = total
        array.pulse(rows, cols, v, vgs, piece.duration)
        bench._log("pulse", rows=rows.tolist(), cols=cols.tolist(), v=v, vg=vgs.tolist(),
                   width=piece.duration, count=1)
    elif flat and v != 0.0:
        if local.size:
            total = 0.0
            for vg in np.unique(vgs):
                sel = vgs == vg
                i = array.read_current(rows[sel], cols[sel], v, vg=float(vg))
                bench._log("read_current", rows=rows[sel].tolist(), cols=cols[sel].tolist(), v=v,
                           vg=float(vg))
                total += float(np.sum(i))
            out[inside] = total
    elif local.size:
        level = piece.start + (piece.stop - piece.start) * local / piece.duration
        for k, vk in enumerate(level.tolist()):
            if vk == 0.0:
                continue
            total = 0.0
            for vg in np.unique(vgs):
                sel = vgs == vg
                total += float(np.sum(array.read_current(rows[sel], cols[sel], vk, vg=float(vg), noisy=False)))
            out[inside.start + k] = total
