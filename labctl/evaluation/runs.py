"""Load what evaluation needs from a stored run (labctl.campaigns.store, SQLite; schema in docs/store.md).

Measurement kinds read (emitted by labctl.routines):
  "program" / "eval_program"   quantities target, g (S): conductances measured after closed-loop programming
  "pulse_read" / "symmetry_read"  quantities g (S), direction (+1/-1): open-loop traces, one batch per pulse
  "relaxation_read"            quantities g (S), t_after (s), target (S): retention reads after programming
Per cell, batches are taken in the order they were stored.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

PROGRAM_KINDS = ("program", "eval_program")
OPEN_LOOP_KINDS = ("pulse_read", "symmetry_read")
RETENTION_KIND = "relaxation_read"


@dataclass
class StoredRun:
    """Evaluation inputs of one run; arrays empty where the run has no such measurements."""

    run_id: str
    cells: NDArray[np.int64] = field(default_factory=lambda: np.empty((0, 2), np.int64))  # programmed (row, col)
    targets: NDArray[np.float64] = field(default_factory=lambda: np.empty(0))  # S
    programmed: NDArray[np.float64] = field(default_factory=lambda: np.empty(0))  # S, last program read
    open_loop_cells: NDArray[np.int64] = field(default_factory=lambda: np.empty((0, 2), np.int64))
    open_loop_g: NDArray[np.float64] = field(default_factory=lambda: np.empty((0, 0)))  # (cells, pulses), S
    open_loop_direction: NDArray[np.int8] = field(default_factory=lambda: np.empty(0, np.int8))
    retention_cells: NDArray[np.int64] = field(default_factory=lambda: np.empty((0, 2), np.int64))
    retention_times: NDArray[np.float64] = field(default_factory=lambda: np.empty(0))  # s after programming
    retention_g: NDArray[np.float64] = field(default_factory=lambda: np.empty((0, 0)))  # (cells, times), S
    retention_g_prog: NDArray[np.float64] = field(default_factory=lambda: np.empty(0))  # S

    @property
    def has_open_loop(self) -> bool:
        return self.open_loop_g.size > 0

    @property
    def has_retention(self) -> bool:
        return self.retention_g.size > 0 and self.retention_times.size >= 2


def load_run(store_path: str | Path, run: str = "last") -> StoredRun:
    """Read a run (id, unique id prefix or 'last') from the store at `store_path`."""
    from labctl.campaigns.store import Store

    path = Path(store_path)
    if not path.is_file():
        raise ValueError(f"store: no run store at {path}")
    with Store(path) as store:
        try:
            run_id = store.find_run(run)
        except KeyError as exc:
            raise ValueError(str(exc.args[0])) from None
        program: dict[tuple[int, int], dict[str, float]] = {}
        pulses: dict[tuple[int, int], list[tuple[float, float]]] = {}
        relax: dict[tuple[int, int], list[tuple[float, float]]] = {}
        for b in store.batches(run_id, PROGRAM_KINDS + OPEN_LOOP_KINDS + (RETENTION_KIND,)):
            cells = list(zip(b.rows.tolist(), b.cols.tolist()))
            v = b.scalars
            if b.kind in PROGRAM_KINDS and "g" in v:
                target = v["target"].tolist() if "target" in v else [np.nan] * len(cells)
                for cell, g, tg in zip(cells, v["g"].tolist(), target):
                    program[cell] = {"g": g, "target": tg}
                    relax.pop(cell, None)  # retention reads refer to the latest programming
            elif b.kind in OPEN_LOOP_KINDS and "g" in v and "direction" in v:
                for cell, d, g in zip(cells, v["direction"].tolist(), v["g"].tolist()):
                    pulses.setdefault(cell, []).append((d, g))
            elif b.kind == RETENTION_KIND and "g" in v and "t_after" in v:
                for cell, ta, g in zip(cells, v["t_after"].tolist(), v["g"].tolist()):
                    relax.setdefault(cell, []).append((ta, g))
    out = StoredRun(run_id=run_id)
    if program:
        cells = sorted(program)
        out.cells = np.array(cells, dtype=np.int64)
        out.targets = np.array([program[k]["target"] for k in cells])
        out.programmed = np.array([program[k]["g"] for k in cells])
    if pulses:
        cells = sorted(pulses)
        n = min(len(pulses[k]) for k in cells)
        out.open_loop_cells = np.array(cells, dtype=np.int64)
        out.open_loop_g = np.array([[g for _, g in pulses[k][:n]] for k in cells])
        out.open_loop_direction = np.array([d for d, _ in pulses[cells[0]][:n]], dtype=np.int8)
    if relax:
        cells = sorted(k for k in relax if k in program)
        if cells:
            n = min(len(relax[k]) for k in cells)
            out.retention_cells = np.array(cells, dtype=np.int64)
            out.retention_g = np.array([[g for _, g in relax[k][:n]] for k in cells])
            out.retention_times = np.mean([[t for t, _ in relax[k][:n]] for k in cells], axis=0)
            out.retention_g_prog = np.array([program[k]["g"] for k in cells])
    return out
