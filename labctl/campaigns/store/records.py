"""What the store's readers return: one frozen record per run, unit of work, event, batch and cell value.

Every field is in SI units (V, A, S, s); times are Unix seconds except `t`, the backend's clock. JSON
columns come back decoded (`campaign`, `identity`, `metadata`, `errors`, `telemetry`, a unit's `params`
and `summary`), so no caller parses the store's text.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any

import numpy as np


def shown_status(status: str, host: str, pid: int | None) -> str:
    """`status`, except that 'running' by a process of this host that is gone shows 'interrupted'."""
    if status == "running" and host == socket.gethostname() and pid is not None:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return "interrupted"
        except PermissionError:
            pass
    return status


@dataclass(frozen=True)
class RunRecord:
    """One run (table `runs`)."""

    run_id: str
    name: str
    status: str  # running | complete | aborted | failed
    created_at: float  # Unix time, s
    started_at: float | None
    stopped_at: float | None
    campaign_path: str | None
    campaign_toml: str  # the campaign file itself, as run
    campaign: dict[str, Any]  # the validated campaign, defaults filled in, SI
    package_version: str
    seed: int | None
    backend_kind: str
    identity: dict[str, str]
    metadata: dict[str, Any]
    host: str
    pid: int | None
    n_units: int
    resumes: int
    errors: list[str]
    telemetry: dict[str, Any] | None

    @property
    def shown_status(self) -> str:
        """Status as stored, except that a run marked running whose process is gone shows 'interrupted'."""
        return shown_status(self.status, self.host, self.pid)


@dataclass(frozen=True)
class UnitPlan:
    """One planned unit of work (docs/campaigns.md): what `Store.create_run` stores for each unit."""

    unit_index: int
    step_index: int
    step_name: str
    routine: str
    pass_index: int  # campaign repeat
    repeat_index: int  # step repeat
    sweep_index: int
    chunk_index: int
    n_cells: int
    params: dict[str, Any]  # the routine's validated parameters, SI

    @property
    def group(self) -> tuple[int, int, int, int]:
        """(pass, step, sweep point, repeat): the units whose summaries combine into one step summary."""
        return (self.pass_index, self.step_index, self.sweep_index, self.repeat_index)


@dataclass(frozen=True)
class UnitRecord(UnitPlan):
    """A stored unit of work (table `units`): its plan and how far it got."""

    status: str  # pending | running | done
    attempt: int
    started_at: float | None  # Unix time, s
    finished_at: float | None
    summary: dict[str, Any] | None  # the routine result's summary(); None until the unit is done


@dataclass(frozen=True)
class EventRecord:
    """One entry of a run's log (table `events`)."""

    at: float  # Unix time, s
    kind: str  # create | start | resume | replay | outputs_off | close | error | stop | telemetry
    message: str


@dataclass(frozen=True)
class StoredBatch:
    """One stored batch with its quantities decoded (Store.batches)."""

    batch_id: int
    unit_index: int
    attempt: int
    seq: int
    kind: str
    t: float  # backend clock, s
    rows: np.ndarray  # int64 (n_cells,)
    cols: np.ndarray
    scalars: dict[str, np.ndarray]  # quantity -> float64 (n_cells,), SI, NaN where none
    traces: dict[str, np.ndarray]  # quantity -> float64 (n_cells, n_points), SI; empty unless asked for


@dataclass(frozen=True)
class HistoryEntry:
    """One stored scalar measurement of a cell (Store.cell_history), SI units."""

    wall_time: float  # Unix time, s
    t: float  # backend clock, s
    run_name: str
    kind: str
    quantity: str
    value: float


@dataclass(frozen=True)
class DieRecord:
    """One die of a wafer campaign (docs/store.md, table `dies`)."""

    die_index: int
    column: int
    row: int
    first_unit: int
    last_unit: int
    status: str  # pending | measuring | done | skipped | failed
    touchdowns: int
    contact_g: float | None  # S
    message: str | None
    summary: dict[str, Any] | None  # step name -> summary
