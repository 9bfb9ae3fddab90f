"""BatchWriter: commits measurement batches on a thread of its own while the routine keeps measuring.

Each batch is still one transaction, committed in the order taken, through a second connection to the
same SQLite file. While units run, every write of the runner (a unit's start, its end, events) goes
through this queue as well: the order on disk is the order of events, and the runner's connection never
waits on the writer's lock (SQLite's busy handler sleeps in steps of milliseconds). A unit's end is queued
behind its batches, so a unit is never recorded as done before all of its measurements are, and the next
unit starts computing at once. A kill loses at most the batches still queued, which belong to an
unfinished unit: resume replays that unit from its start (docs/campaigns.md), so nothing committed is lost
and nothing is stored twice.

Why: on the emulator a measurement costs about as much to compute as to insert; overlapping the inserts
with the (GIL-free) C calls of the next measurements is what keeps the runner's overhead small.
"""
from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from labctl.campaigns.store import Store
from labctl.routines.base import Measurements

MAX_PENDING = 16  # batches queued before the routine waits for the oldest to commit


def _detached(m: Measurements) -> Measurements:
    """A copy that the routine can no longer change under the writer's feet."""
    return Measurements(kind=m.kind, rows=np.array(m.rows, copy=True), cols=np.array(m.cols, copy=True),
                        values={k: _copy(v) for k, v in m.values.items()}, t=m.t)


def _copy(v: np.ndarray) -> np.ndarray:
    a = np.asarray(v)
    if a.ndim >= 2 and a.strides[0] == 0:  # one trace broadcast to every cell (a sweep's voltages): copy it once
        return np.broadcast_to(np.array(a[0], copy=True), a.shape)
    return np.array(a, copy=True)


class BatchWriter:
    """Ordered background commits of measurement batches to the store at `path`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="labctl-store", initializer=self._open)
        self._pending: deque[Future[int]] = deque()

    def _open(self) -> None:
        self._local.store = Store(self.path)

    def _append(self, run_id: str, unit_index: int, attempt: int, seq: int, m: Measurements,
                wall_time: float) -> int:
        return self._local.store.append_batch(run_id, unit_index, attempt, seq, m, wall_time)

    def _close_store(self) -> None:
        store = getattr(self._local, "store", None)
        if store is not None:
            store.close()

    async def submit(self, run_id: str, unit_index: int, attempt: int, seq: int, m: Measurements) -> int:
        """Queue one batch; returns the measurements of batches that finished committing meanwhile.
        Waits for the oldest batch when MAX_PENDING are queued (bounded memory)."""
        # The batch's wall time is when it was taken, not when the writer got to it.
        self._pending.append(self._pool.submit(self._append, run_id, unit_index, attempt, seq, _detached(m),
                                               time.time()))
        written = 0
        while self._pending and (self._pending[0].done() or len(self._pending) > MAX_PENDING):
            written += await self._wait_oldest()
        return written

    def start_unit(self, run_id: str, unit_index: int, attempt: int) -> None:
        """Queue the unit's start (status running), in order with the batches before it."""
        self._pending.append(self._pool.submit(self._call, "start_unit", run_id, unit_index, attempt))

    def event(self, run_id: str, kind: str, message: str) -> None:
        """Queue an event for the run's log, in order with the batches before it."""
        self._pending.append(self._pool.submit(self._call, "event", run_id, kind, message))

    def call(self, method: str, *args: object) -> None:
        """Queue any Store write method (a die's status, units skipped), in order with the batches before it."""
        self._pending.append(self._pool.submit(self._call, method, *args))

    def _call(self, method: str, *args: object) -> int:
        getattr(self._local.store, method)(*args)
        return 0

    def finish_unit(self, run_id: str, unit_index: int, summary: object, backend_state: bytes | None) -> None:
        """Queue the unit's end (status done, summary, backend state) behind its batches, so the unit is
        recorded done only after all of them, without the routine waiting for the commits."""
        self._pending.append(self._pool.submit(self._call, "finish_unit", run_id, unit_index, summary,
                                               backend_state))

    async def _wait_oldest(self) -> int:
        # shield: cancelling the runner (abort at once) must not cancel a commit that has not started,
        # or the stored batches would have a gap that resume could not replay against.
        fut = self._pending[0]
        n = await asyncio.shield(asyncio.wrap_future(fut))
        self._pending.popleft()
        return n

    async def flush(self) -> int:
        """Wait until every queued batch is committed; returns their measurements."""
        written = 0
        while self._pending:
            written += await self._wait_oldest()
        return written

    def drain(self) -> tuple[int, Exception | None]:
        """flush() without suspending (for the runner's last words, which a second cancellation must not
        interrupt); blocks until every queued batch is committed. Returns the measurements committed and
        the first commit error (None if there was none), after waiting for all of them."""
        written, error = 0, None
        while self._pending:
            fut = self._pending.popleft()
            try:
                written += fut.result()
            except Exception as exc:
                error = error or exc
        return written, error

    def close(self) -> None:
        """Finish queued commits and close the writer's connection (blocking)."""
        for fut in self._pending:
            fut.exception()  # waits; errors were reported by drain() or are moot after a failure
        self._pending.clear()
        self._pool.submit(self._close_store).result()
        self._pool.shutdown(wait=True)
