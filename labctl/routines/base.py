"""What a routine receives from whoever runs it (a script, the campaign runner, the TUI).

A routine is an async function `routine(backend, rows, cols, params, ctx) -> Result` that talks only to
the ArrayBackend interface. Through `ctx` it
  - emits every measurement as it is taken (`await ctx.emit(...)`): the campaign runner stores them
    immediately, a script may collect them or ignore them;
  - reports progress (`ctx.progress(done, total, message)`);
  - marks safe points (`await ctx.checkpoint()`), where pausing or aborting leaves the array in a
    defined state; the runner raises `Aborted` from there when asked to stop.
Routines never persist, print or handle interruption themselves.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray


#: The kind of the batches that hold the current measured during each pulse (stored by the campaign
#: runner from a pulse-and-measure station, not emitted by routines: labctl.campaigns.pulse_traces).
PULSE_TRACE_KIND = "pulse_trace"


class Aborted(Exception):
    """Raised at a safe point when the runner was asked to stop."""


@dataclass(frozen=True)
class Measurements:
    """A batch of measurements of one kind, one entry per cell (SI units).

    kind: what was measured ("read", "sweep", "pulse_read", "program", ...).
    rows, cols: cell indices, shape (n,).
    values: name -> array of shape (n,) or (n, k) (e.g. a sweep's currents), SI units.
    t: backend clock when taken, s.
    """

    kind: str
    rows: NDArray[np.int64]
    cols: NDArray[np.int64]
    values: dict[str, NDArray[Any]]
    t: float


Sink = Callable[[Measurements], Awaitable[None] | None]
ProgressFn = Callable[[float, float, str], None]
CheckpointFn = Callable[[], Awaitable[None]]


@dataclass
class RoutineContext:
    """Measurement sink, progress callback and safe-point hook for one routine call."""

    sink: Sink | None = None
    on_progress: ProgressFn | None = None
    on_checkpoint: CheckpointFn | None = None
    collected: list[Measurements] = field(default_factory=list)
    collect: bool = False  # keep every batch in `collected` (for scripts and tests)
    # Directory of the campaign file being run (None outside a campaign): file paths in a step's
    # parameters are resolved against it and may not leave it.
    campaign_dir: Path | None = None

    async def emit(self, kind: str, rows: NDArray[np.int64], cols: NDArray[np.int64], t: float,
                   **values: NDArray[Any]) -> None:
        """Hand one batch of measurements to the sink (stored as taken by the campaign runner)."""
        batch = Measurements(kind=kind, rows=np.asarray(rows, dtype=np.int64), cols=np.asarray(cols, dtype=np.int64),
                             values={k: np.asarray(v) for k, v in values.items()}, t=float(t))
        if self.collect:
            self.collected.append(batch)
        if self.sink is not None:
            result = self.sink(batch)
            if result is not None:
                await result

    def progress(self, done: float, total: float, message: str = "") -> None:
        """Report progress: `done` out of `total` units of work."""
        if self.on_progress is not None:
            self.on_progress(done, total, message)

    async def checkpoint(self) -> None:
        """A safe point: the runner may pause here, or raise Aborted."""
        if self.on_checkpoint is not None:
            await self.on_checkpoint()
