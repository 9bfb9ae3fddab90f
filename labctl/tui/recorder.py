"""Manual actions into the run store.

Every action the operator takes at the TUI is stored as a run of its own in the same SQLite store
`labctl run` writes (labctl.campaigns.store, schema in docs/store.md): one run of one unit, named
"tui: <action>", whose campaign text is the one-step campaign file that would repeat the action.
Batches are committed as the routine emits them, so a crash of the TUI keeps what was measured;
the run ends complete, aborted or failed like a campaign run.

A cell's measurements come back through `Store.cell_history` (labctl.campaigns.store).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel

from labctl.backends.base import ArrayBackend
from labctl.routines.base import Measurements


def campaign_text(action: str, routine: str, rows: np.ndarray, cols: np.ndarray, params: BaseModel,
                  info: Any) -> str:
    """The one-step campaign file equivalent to a manual action (stored as the run's campaign text)."""
    cells = ", ".join(f"[{int(r)}, {int(c)}]" for r, c in zip(rows[:4096], cols[:4096]))
    lines = [
        "# Recorded by `labctl tui`: one manual action as the campaign that repeats it.",
        "[campaign]", f'name = "tui: {action}"', "",
        "[backend]", f'kind = "{info.kind}"', f"rows = {info.rows}", f"cols = {info.cols}", "",
        "[[steps]]", f'routine = "{routine}"', f'name = "{action}"', f"cells = {{ list = [{cells}] }}",
        "[steps.params]",
    ]
    for k, v in params.model_dump(exclude_defaults=True).items():
        lines.append(f"{k} = {json.dumps(v)}")
    return "\n".join(lines) + "\n"


@dataclass
class ManualRun:
    """One manual action being recorded. Use on the thread that owns `store`."""

    store: Any  # labctl.campaigns.store.Store
    run_id: str
    seq: int = 0
    measurements: int = 0

    @classmethod
    def begin(cls, store: Any, backend: ArrayBackend, action: str, routine: str, rows: np.ndarray,
              cols: np.ndarray, params: BaseModel) -> ManualRun:
        """Create the run (status running) and its single unit."""
        from labctl.campaigns.runner import new_run_id
        from labctl.campaigns.store import UnitPlan

        run_id = new_run_id()
        info = backend.info
        unit = UnitPlan(unit_index=0, step_index=0, step_name=action, routine=routine, pass_index=0, repeat_index=0,
                        sweep_index=0, chunk_index=0, n_cells=int(rows.size), params=params.model_dump(mode="json"))
        store.create_run(run_id, name=f"tui: {action}",
                         campaign_toml=campaign_text(action, routine, rows, cols, params, info),
                         campaign={"action": action, "routine": routine, "params": params.model_dump(mode="json")},
                         backend_kind=info.kind, identity=info.identity, metadata={"source": "labctl tui"},
                         units=[unit])
        store.event(run_id, "start", "manual action started from labctl tui")
        store.start_unit(run_id, 0, 0)
        return cls(store, run_id)

    def sink(self, m: Measurements) -> None:
        """Commit one emitted batch (the RoutineContext sink)."""
        self.measurements += self.store.append_batch(self.run_id, 0, 0, self.seq, m)
        self.seq += 1

    def finish(self, status: str, summary: dict[str, Any] | None = None, error: str | None = None) -> None:
        """End the run: complete (unit done with its summary), aborted or failed (error recorded)."""
        if status == "complete":
            self.store.finish_unit(self.run_id, 0, summary or {}, None)
        self.store.finish_run(self.run_id, status, [error] if error else [])
