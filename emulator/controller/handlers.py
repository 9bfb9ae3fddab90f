"""What the emulated controller does for each array command, run in its worker thread.

Every function takes the validated request and its resolved cell indices, holds `array.lock`
around each call into the array, and checks `job` between chunks so that ABORT and RESET take
effect at the next safe point (a finished chunk) and STATUS sees progress.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any
from dataclasses import dataclass, field

import numpy as np

from labctl.protocols import messages as m
from labctl.protocols.codes import DType, FormMode

Indices = tuple[np.ndarray, np.ndarray]

#: Aim for chunks of about this many seconds of array work: short enough that ABORT and STATUS
#: respond promptly, long enough that per-call overhead (about 0.2 ms) stays below 1 %.
CHUNK_SECONDS = 0.05
#: Cells in the first chunk, used to measure the time per cell.
FIRST_CHUNK = 64
#: Verify reads in SET_TARGET_G's first call, used to measure the time per read (about 15 ms at
#: the reference machine's 60 ns per read; most cells converge within it).
FIRST_WORK = 1 << 18
#: SET_TARGET_G's pieces of work, s: ABORT waits for at most one, so this is its latency bound.
VERIFY_CHUNK_SECONDS = 0.02


class Aborted(Exception):
    """The job was stopped by ABORT or RESET at a safe point."""


@dataclass
class Job:
    """One running command: progress for STATUS and the abort flag for ABORT.

    Attributes:
        command, request_id: what is running.
        total: units of work (cells, or pulses for PULSE).
        done: units finished so far (written by the worker, read by the event loop).
    """

    command: int
    request_id: int
    total: int
    done: int = 0
    started: float = field(default_factory=time.monotonic)
    abort_event: threading.Event = field(default_factory=threading.Event)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def check(self) -> None:
        """Raise Aborted if ABORT or RESET asked this job to stop."""
        if self.abort_event.is_set():
            raise Aborted(f"aborted after {self.done} of {self.total}")


def _in_chunks(n: int, job: Job, work: Callable[[slice], None]) -> None:
    """Run work(slice) over [0, n) in adaptive chunks, updating job.done and checking abort."""
    size = min(n, FIRST_CHUNK)
    start = 0
    while start < n:
        job.check()
        stop = min(n, start + size)
        t0 = time.perf_counter()
        work(slice(start, stop))
        per_cell = (time.perf_counter() - t0) / (stop - start)
        if per_cell > 0:
            size = max(1, int(CHUNK_SECONDS / per_cell))
        start = stop
        job.done = stop


@dataclass
class Settings:
    """Controller settings a command may read (VERIFY_LOOP_MAX)."""

    verify_loop_max: int


def form(array, req: m.FormRequest, idx: Indices, job: Job, settings: Settings) -> m.FormReply:
    rows, cols = idx
    n = rows.size
    volts = req.voltages()
    v_form = np.full(n, np.nan)
    i_form = np.full(n, np.nan)
    g = np.empty(n)
    if req.mode == FormMode.SWEEP:
        def sweep_chunk(s: slice) -> None:
            with array.lock:
                currents = array.sweep(rows[s], cols[s], volts, vg=req.vg, dwell=req.duration)
                g[s] = array.read(rows[s], cols[s], req.v_read, req.vg_read)
            # Forming point: the largest dI/dV of the sweep (reference: "voltage of the largest
            # dI/dV"); the current is taken at the upper point of that step.
            if volts.size > 1:
                k = np.argmax(np.diff(currents, axis=1), axis=1) + 1
            else:
                k = np.zeros(currents.shape[0], dtype=np.int64)
            v_form[s] = volts[k]
            i_form[s] = currents[np.arange(currents.shape[0]), k]

        _in_chunks(n, job, sweep_chunk)
    else:
        # Pulse ramp (ArC FormFinder style): pulse the cells not yet formed, read, repeat higher.
        pending = np.arange(n)
        with array.lock:
            g[:] = array.read(rows, cols, req.v_read, req.vg_read)
        pending = pending[g[pending] < req.g_formed]
        job.done = n - pending.size
        for v in volts:
            if pending.size == 0:
                break
            job.check()
            with array.lock:
                array.pulse(rows[pending], cols[pending], v, req.vg, req.duration)
                g[pending] = array.read(rows[pending], cols[pending], req.v_read, req.vg_read)
            now = g[pending] >= req.g_formed
            v_form[pending[now]] = v
            pending = pending[~now]
            job.done = n - pending.size
        job.done = n
    formed = g >= req.g_formed
    v_form[~formed] = np.nan
    i_form[~formed] = np.nan
    return m.FormReply(v_form, i_form, g, formed)


def pulse(array, req: m.PulseRequest, idx: Indices, job: Job, settings: Settings) -> m.PulseReply:
    rows, cols = idx
    # Per-cell random streams make pulse-major order equivalent to cell-major order.
    for k in range(req.count):
        job.check()
        with array.lock:
            array.pulse(rows, cols, req.v, req.vg, req.width)
        job.done = (k + 1) * rows.size
    return m.PulseReply(req.count * rows.size)


def read(array, req: m.ReadRequest, idx: Indices, job: Job, settings: Settings) -> m.ReadReply:
    with array.lock:
        i = array.read_current(idx[0], idx[1], req.v_read, req.vg)
    job.done = job.total
    return m.ReadReply(i / req.v_read, i)


def read_array(array, req: m.ReadArrayRequest, idx: Indices | None, job: Job,
               settings: Settings) -> m.ReadArrayReply:
    r0, c0, nrows, ncols = req.cells.block(array.shape)
    with array.lock:
        if (nrows, ncols) == array.shape:
            g = array.read_all(req.v_read, req.vg)
        else:
            rr, cc = np.meshgrid(np.arange(r0, r0 + nrows), np.arange(c0, c0 + ncols), indexing="ij")
            g = array.read(rr.reshape(-1), cc.reshape(-1), req.v_read, req.vg).reshape(nrows, ncols)
    job.done = job.total
    return m.ReadArrayReply(r0, c0, g, DType(req.dtype))


def sweep(array, req: m.SweepRequest, idx: Indices, job: Job, settings: Settings) -> m.SweepReply:
    rows, cols = idx
    out = np.empty((rows.size, req.voltages.size))

    def chunk(s: slice) -> None:
        with array.lock:
            out[s] = array.sweep(rows[s], cols[s], req.voltages, vg=req.vg, dwell=req.dwell)

    _in_chunks(rows.size, job, chunk)
    return m.SweepReply(out)


def set_target_g(array, req: m.SetTargetGRequest, idx: Indices, job: Job,
                 settings: Settings) -> m.SetTargetGReply:
    rows, cols = idx
    n = rows.size
    targets = np.asarray(req.targets, dtype=float)
    s = req.scheme
    kwargs: dict[str, object] = dict(
        max_iterations=req.max_iterations or settings.verify_loop_max,
        vg_set=req.vg_set, vg_reset=req.vg_reset, width=req.width, v_read=req.v_read,
        vg_read=req.vg_read)
    if isinstance(s, m.IdenticalPulse):
        table = s if np.asarray(s.g_low).size else m.IdenticalPulse.reference()
        v_set, v_reset = table.voltages_for(targets)
        kwargs.update(scheme="identical")
    else:
        v_set = np.full(n, s.v_start_set)
        v_reset = np.full(n, s.v_start_reset)
        kwargs.update(scheme="incremental", v_step_set=s.v_step_set, v_step_reset=s.v_step_reset,
                      v_stop_set=s.v_stop_set, v_stop_reset=s.v_stop_reset,
                      max_per_polarity=s.max_per_polarity, max_flips=s.max_flips)
    g = np.empty(n)
    iterations = np.zeros(n, dtype=np.int64)
    converged = np.zeros(n, dtype=bool)
    loop = _VerifyLoop(array, rows, cols, targets, req.tolerance, v_set, v_reset, kwargs, g,
                       iterations, converged)
    if isinstance(s, m.IdenticalPulse):
        loop.run_in_rounds(job)
    else:
        loop.run_whole_cells(job, _incremental_reads_bound(s, int(kwargs["max_iterations"])))
    return m.SetTargetGReply(g, iterations, converged)


def _incremental_reads_bound(s: m.IncrementalStep, max_iterations: int) -> int:
    """Most verify reads one cell of the incremental scheme can take: at most max_per_polarity
    pulses per run and max_flips flips end its loop early (<= 0: unbounded)."""
    if s.max_per_polarity > 0 and s.max_flips > 0:
        return min(max_iterations, (s.max_flips + 1) * s.max_per_polarity + 1)
    return max_iterations


@dataclass
class _VerifyLoop:
    """SET_TARGET_G's program-and-verify loop (which runs in C, Array.program), cut into pieces of
    about VERIFY_CHUNK_SECONDS of work so that ABORT takes effect within that time whatever
    max_iterations is: the unit is verify reads (cells x iterations), not cells.

    Identical pulses carry no state from one iteration to the next but the cell itself, so a
    cell's loop of M reads is run as calls of k reads each: a call that ends unconverged at its
    k-th read is followed by the one pulse the whole loop would have applied there (set below the
    target, reset above), and the next call starts with the next read. Every cell has its own
    random stream, so the cells' operations may interleave: the result is the same, bit for bit,
    as one Array.program call. The incremental scheme's amplitude, run and flip counters live
    only inside the C loop, so its unit is a whole cell (bounded by max_per_polarity and
    max_flips; docs/protocol.md, "Bounds").
    """

    array: Any  # emulator.Array
    rows: np.ndarray
    cols: np.ndarray
    targets: np.ndarray
    tolerance: float
    v_set: np.ndarray
    v_reset: np.ndarray
    kwargs: dict[str, Any]
    g: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray
    seconds_per_read: float = 0.0

    def _program(self, cells: np.ndarray, reads: int) -> int:
        """Run the C loop on `cells` for at most `reads` verify reads each; returns reads done."""
        kw = dict(self.kwargs, max_iterations=reads)
        t0 = time.perf_counter()
        with self.array.lock:
            res = self.array.program(self.rows[cells], self.cols[cells], self.targets[cells],
                                     self.tolerance, v_set=self.v_set[cells],
                                     v_reset=self.v_reset[cells], **kw)
        self.g[cells] = res.g
        self.iterations[cells] += res.iterations
        self.converged[cells] = res.converged
        done = int(res.iterations.sum()) + cells.size  # every call reads once more than it pulses
        self.seconds_per_read = (time.perf_counter() - t0) / done  # the latest: loads change
        return done

    def _budget(self, reads_per_cell: int) -> int:
        """Cells per call so that each call takes about VERIFY_CHUNK_SECONDS (FIRST_WORK reads at first,
        to measure the time per read)."""
        if self.seconds_per_read <= 0:
            return max(1, FIRST_WORK // reads_per_cell)
        return max(1, int(VERIFY_CHUNK_SECONDS / (self.seconds_per_read * reads_per_cell)))

    def run_in_rounds(self, job: Job) -> None:
        """Identical scheme: all cells advance k reads per round, k sized by the work left."""
        left = int(self.kwargs["max_iterations"])
        active = np.arange(self.rows.size)
        while active.size and left > 0:
            k = max(1, min(left, self._budget(active.size)))
            start = 0
            while start < active.size:
                job.check()
                stop = start + self._budget(k)
                self._program(active[start:stop], k)
                start = stop
            left -= k
            active = active[~self.converged[active]]
            if left > 0 and active.size:
                job.check()
                self._pulse_towards_target(active)
            job.done = self.rows.size - active.size if left > 0 else self.rows.size

    def _pulse_towards_target(self, cells: np.ndarray) -> None:
        """The pulse the C loop applies after an unconverged verify read (rram_program)."""
        up = self.g[cells] - self.targets[cells] < 0.0
        width = self.kwargs["width"]
        with self.array.lock:
            for sel, amps, gate in ((cells[up], self.v_set, self.kwargs["vg_set"]),
                                    (cells[~up], self.v_reset, self.kwargs["vg_reset"])):
                if sel.size:
                    self.array.pulse(self.rows[sel], self.cols[sel], amps[sel], gate, width)
        self.iterations[cells] += 1

    def run_whole_cells(self, job: Job, reads_per_cell: int) -> None:
        """Incremental scheme: calls on whole cells, as many as fit VERIFY_CHUNK_SECONDS at the worst
        case of `reads_per_cell` reads each."""
        n = self.rows.size
        start = 0
        while start < n:
            job.check()
            stop = min(n, start + self._budget(reads_per_cell))
            self._program(np.arange(start, stop), int(self.kwargs["max_iterations"]))
            start = stop
            job.done = stop


def verify(array, req: m.VerifyRequest, idx: Indices, job: Job, settings: Settings) -> m.VerifyReply:
    rows, cols = idx
    total = np.zeros(rows.size)
    for k in range(req.averages):
        job.check()
        with array.lock:
            total += array.read(rows, cols, req.v_read, req.vg_read)
        job.done = (k + 1) * job.total // req.averages
    g = total / req.averages
    targets = np.asarray(req.targets, dtype=float)
    return m.VerifyReply(np.abs(g - targets) <= req.tolerance * targets, g)


def emu_advance(array, req: m.EmuAdvanceRequest, idx: None, job: Job,
                settings: Settings) -> m.EmuAdvanceReply:
    with array.lock:
        array.advance(req.seconds)
        return m.EmuAdvanceReply(array.time)


def emu_inject_fault(array, req: m.EmuInjectFaultRequest, idx: Indices, job: Job,
                     settings: Settings) -> m.EmuInjectFaultReply:
    with array.lock:
        array.inject_fault(idx[0], idx[1], req.kind.name.lower())
    return m.EmuInjectFaultReply()


def emu_reseed(array, req: m.EmuReseedRequest, idx: None, job: Job,
               settings: Settings) -> m.EmuReseedReply:
    with array.lock:
        array.reseed(req.seed)
    return m.EmuReseedReply()


def emu_pulse_counts(array, req: m.EmuPulseCountsRequest, idx: Indices, job: Job,
                     settings: Settings) -> m.EmuPulseCountsReply:
    with array.lock:
        counts = array.pulse_counts()
    return m.EmuPulseCountsReply(counts[idx[0], idx[1]])


Handler = Callable[..., m.Message]

#: Commands that run in the worker thread, and how.
HANDLERS: dict[type[m.Message], Handler] = {
    m.FormRequest: form,
    m.PulseRequest: pulse,
    m.ReadRequest: read,
    m.ReadArrayRequest: read_array,
    m.SweepRequest: sweep,
    m.SetTargetGRequest: set_target_g,
    m.VerifyRequest: verify,
    m.EmuAdvanceRequest: emu_advance,
    m.EmuInjectFaultRequest: emu_inject_fault,
    m.EmuReseedRequest: emu_reseed,
    m.EmuPulseCountsRequest: emu_pulse_counts,
}


def work_units(req: m.Message, idx: Indices | None) -> int:
    """STATUS total of a request: cells, or pulses for PULSE."""
    n = 0 if idx is None else int(idx[0].size)
    if isinstance(req, m.PulseRequest):
        return n * req.count
    return n or 1
