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

Gate channels: another output of the same instrument running its own waveform in the same
execution (the 4225-PMU's second channel, the B1530A's second WGFMU channel) may drive word lines
(``gates``: terminal -> pieces, on the same time base). A word line closed to such a terminal has
that waveform's level as its VG; while the bit line is biased on a flat piece the gate must hold
one level (a selector gate moving during a pulse or a read is not modeled: refused), and on ramps
its level at each sample is used.
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


def run(bench: Bench, terminal: str, pieces: list[Piece], times: np.ndarray,
        gates: dict[str, list[Piece]] | None = None) -> np.ndarray:
    """Apply ``pieces`` from ``terminal`` in order; the summed current (A) of the addressed cells at
    each of ``times`` (s from the start of the waveform, ascending). A sample at a boundary
    belongs to the piece that ends there. ``gates``: waveforms of gate channels running at the
    same time (module docstring)."""
    times = np.asarray(times, dtype=np.float64)
    out = np.zeros(times.size)
    threshold = switch_threshold(bench)
    with bench.lock, _array_errors():
        # Only outputs closed onto a word line are gates (the bit-line channel is not the gate
        # channel's gate).
        gates = {t: g for t, g in (gates or {}).items() if t != terminal and bench.word_lines_of(t)}
        rows, cols, vgs = bench.addressed(terminal)
        t0 = 0.0
        for piece in pieces:
            t1 = t0 + piece.duration
            first = 0 if t0 == 0.0 else int(np.searchsorted(times, t0, side="right"))
            last = int(np.searchsorted(times, t1, side="right"))
            inside = slice(first, last)
            local = times[inside] - t0
            if gates and piece.start == piece.stop and piece.start != 0.0:
                held = {t: _held(g, t0, t1) for t, g in gates.items()}
                rows, cols, vgs = bench.addressed(terminal, held)
            elif gates and local.size:  # a measured ramp: the gate at each sample
                for k, tk in enumerate(times[inside].tolist()):
                    at = {t: _level(g, tk) for t, g in gates.items()}
                    r, c, g = bench.addressed(terminal, at)
                    if r.size:
                        one = slice(inside.start + k, inside.start + k + 1)
                        _piece(bench, piece, threshold, r, c, g, local[k:k + 1], out, one)
                t0 = t1
                continue
            if rows.size:
                _piece(bench, piece, threshold, rows, cols, vgs, local, out, inside)
            t0 = t1
    return out


def _level(pieces: list[Piece], t: float) -> float:
    """A waveform's level at ``t`` s (its last level after its end), V."""
    t0 = 0.0
    for p in pieces:
        t1 = t0 + p.duration
        if t <= t1:
            if p.start == p.stop or t >= t1:  # exact at the ends: a held level is the level itself
                return p.stop
            if t <= t0:
                return p.start
            return p.start + (p.stop - p.start) * (t - t0) / p.duration
        t0 = t1
    return pieces[-1].stop if pieces else 0.0


def _held(pieces: list[Piece], start: float, stop: float) -> float:
    """The one level a waveform holds over [start, stop] s, V; ValueError if it moves there."""
    levels = [_level(pieces, start), _level(pieces, stop)]
    t0 = 0.0
    for p in pieces:
        if start < t0 < stop:
            levels.append(p.start)
        t0 += p.duration
        if start < t0 < stop:
            levels.append(p.stop)
    tolerance = 1e-12 * max(1.0, max(abs(v) for v in levels))
    if max(levels) - min(levels) > tolerance:
        raise ValueError(f"the gate moves ({min(levels):g} to {max(levels):g} V) while the bit line is biased "
                         f"({start:g} to {stop:g} s): not emulated")
    return levels[0]


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
