"""The current during each pulse, as a pulse-and-measure station measured it, as stored batches of
kind "pulse_trace" (docs/store.md, "Pulse traces").

The runner takes the currents from the backend (`ArrayBackend.take_pulse_currents`) after every
pulse call a routine makes, before every batch a routine emits, and at the end of each unit of work,
so every routine that pulses stores them without knowing of them, and the backend holds at most one
pulse call's worth. A backend that does not measure during pulses (the emulator, a chip, an SMU +
pulse generator station) gives nothing: its runs store exactly the batches they stored before.

A take becomes batches in which each cell appears once (a cell pulsed twice between two takes gets
its second pulse in a second batch), in the order measured. Quantities per cell of a batch:

    pulse_current  (points,)  A, the samples during the pulse top (per-cell trace: float32)
    pulse_time     (points,)  s from the start of the pulse top (float64; one trace when every
                              cell of the batch has the same, as the pulses of one width do)
    pulse_voltage  V, pulse_width s, the pulse applied
    pulse          the cell's pulse number within the unit (0, 1, ...: every pulse measured,
                   stored or not)
    pulse_stride   how many pulses this trace stands for: 1 while every pulse is stored, 2^j
                   where only every 2^j-th is (the decimation below)

Cells whose pulses sampled different numbers of points are NaN-padded to the longest.

Bound: per unit and cell, pulse n is stored if n < keep (the step's `pulse_traces`), beyond that
only if n is a multiple of the stride 2^j, j = floor(log2(n / keep)) + 1: every pulse up to
keep, every 2nd up to 2 keep, every 4th up to 4 keep, ...: about keep / 2 traces per doubling of
the pulse count, so N pulses store about keep + keep/2 * log2(N / keep) traces. keep = 0 stores none.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from labctl.backends.base import PulseCurrent, PulseCurrents
from labctl.routines.base import PULSE_TRACE_KIND as KIND
from labctl.routines.base import Measurements


def stride(n: int, keep: int) -> int:
    """The decimation stride at a cell's pulse number n (0-based) with `keep` > 0: 1 below keep,
    then 2, 4, 8, ... per doubling."""
    return 1 if n < keep else 1 << (int(n) // int(keep)).bit_length()


def kept(n: int, keep: int) -> bool:
    """Whether pulse number n of a cell is stored."""
    return keep > 0 and n % stride(n, keep) == 0


def stored_count(n_pulses: int, keep: int) -> int:
    """Traces stored of a cell pulsed n_pulses times in one unit."""
    if keep <= 0:
        return 0
    total, n = min(n_pulses, keep), keep
    while n < n_pulses:  # one doubling [n, 2n) at a time, stride s = 2 n / keep
        s, end = stride(n, keep), min(2 * n, n_pulses)
        total += (end - 1) // s - (n - 1) // s
        n *= 2
    return total


@dataclass
class UnitTally:
    """What one unit's takes measured, stored and lost."""

    measured: int = 0
    stored: int = 0
    lost: int = 0
    max_stride: int = 1


class PulseTraceRecorder:
    """Numbers each cell's pulses within a unit and turns takes into pulse_trace batches."""

    def __init__(self, keep: int = 0) -> None:
        self.keep = keep
        self.counts: dict[tuple[int, int], int] = {}
        self.tally = UnitTally()

    def start_unit(self, keep: int) -> None:
        """A new unit: pulse numbers start again at 0; `keep` as the step's pulse_traces."""
        self.keep = keep
        self.counts = {}
        self.tally = UnitTally()

    def batches(self, taken: PulseCurrents, t: float) -> list[Measurements]:
        """The stored form of one take (batches taken at backend clock `t`, s), each cell once per batch."""
        self.tally.measured += len(taken.pulses) + taken.lost
        self.tally.lost += taken.lost
        rounds: list[list[tuple[PulseCurrent, int, int]]] = []
        seen: dict[tuple[int, int], int] = {}
        for p in taken.pulses:
            cell = (p.row, p.col)
            n = self.counts.get(cell, 0)
            self.counts[cell] = n + 1
            if not kept(n, self.keep):
                continue
            k = seen.get(cell, 0)
            seen[cell] = k + 1
            if k == len(rounds):
                rounds.append([])
            s = stride(n, self.keep)
            rounds[k].append((p, n, s))
            self.tally.stored += 1
            self.tally.max_stride = max(self.tally.max_stride, s)
        return [_batch(r, t) for r in rounds]

    def summary(self, unit_index: int) -> str | None:
        """The run-log line of the unit's pulse traces, or None when none was measured."""
        t = self.tally
        if t.measured == 0:
            return None
        text = f"unit {unit_index}: {t.measured} pulse(s) measured, {t.stored} trace(s) stored"
        if t.max_stride > 1:
            text += (f" (per cell every pulse up to {self.keep}, then every 2nd, 4th, ... up to every "
                     f"{t.max_stride}th: pulse_stride)")
        elif self.keep == 0:
            text += " (pulse_traces = 0)"
        if t.lost:
            text += f"; {t.lost} lost (the backend held at most its bounded number between two takes)"
        return text


def _batch(entries: Sequence[tuple[PulseCurrent, int, int]], t: float) -> Measurements:
    m = len(entries)
    k = max(p.currents.size for p, _, _ in entries)
    currents = np.full((m, k), np.nan)
    times = np.full((m, k), np.nan)
    for i, (p, _, _) in enumerate(entries):
        currents[i, :p.currents.size] = p.currents
        times[i, :p.times.size] = p.times
    if np.array_equal(times, np.broadcast_to(times[0], times.shape), equal_nan=True):
        times = np.broadcast_to(times[0], (m, k))  # one time axis: stored once, exactly
    return Measurements(
        kind=KIND, t=float(t),
        rows=np.array([p.row for p, _, _ in entries], dtype=np.int64),
        cols=np.array([p.col for p, _, _ in entries], dtype=np.int64),
        values={"pulse_current": currents, "pulse_time": times,
                "pulse_voltage": np.array([p.voltage for p, _, _ in entries], dtype=np.float64),
                "pulse_width": np.array([p.width for p, _, _ in entries], dtype=np.float64),
                "pulse": np.array([n for _, n, _ in entries], dtype=np.int64),
                "pulse_stride": np.array([s for _, _, s in entries], dtype=np.int64)})
