"""Rich progress bars for `labctl run`: one for the whole run and one for the current step, with ETA.

Progress is counted in cells: a unit of work on n cells is worth n, and a routine's own progress
reports move the bars inside its unit.
"""
from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from labctl.campaigns.plan import Unit


class RichProgress:
    """ProgressView that draws rich bars on stderr (nothing when stderr is not a terminal)."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.progress = Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("cells"), TimeElapsedColumn(), TextColumn("ETA"),
                                 TimeRemainingColumn(), console=self.console, transient=False,
                                 disable=not self.console.is_terminal)
        self.overall: TaskID | None = None
        self.step_task: TaskID | None = None
        self._step_key: tuple[int, int] | None = None
        self._units: list[Unit] = []
        self._done = 0.0
        self._step_done = 0.0

    def begin(self, run_id: str, units: list[Unit], done: set[int]) -> None:
        self._units = units
        total = sum(int(u.rows.size) for u in units)
        self._done = float(sum(int(units[i].rows.size) for i in done))
        self.progress.start()
        self.overall = self.progress.add_task(f"run {run_id}", total=total, completed=self._done)

    def _step_total(self, unit: Unit) -> int:
        return sum(int(u.rows.size) for u in self._units
                   if u.step_index == unit.step_index and u.pass_index == unit.pass_index)

    def unit_started(self, unit: Unit) -> None:
        key = (unit.pass_index, unit.step_index)
        if key != self._step_key:
            if self.step_task is not None:
                self.progress.remove_task(self.step_task)
            self._step_key = key
            done = sum(int(u.rows.size) for u in self._units[:unit.index]
                       if u.step_index == unit.step_index and u.pass_index == unit.pass_index)
            self._step_done = float(done)
            label = f"step {unit.step_index + 1}: {unit.step_name}"
            self.step_task = self.progress.add_task(label[:28], total=self._step_total(unit), completed=done)

    def unit_progress(self, unit: Unit, fraction: float, message: str) -> None:
        n = fraction * unit.rows.size
        if self.overall is not None:
            self.progress.update(self.overall, completed=self._done + n)
        if self.step_task is not None:
            self.progress.update(self.step_task, completed=self._step_done + n)

    def unit_done(self, unit: Unit) -> None:
        self._done += unit.rows.size
        self._step_done += unit.rows.size
        if self.overall is not None:
            self.progress.update(self.overall, completed=self._done)
        if self.step_task is not None:
            self.progress.update(self.step_task, completed=self._step_done)

    def end(self, status: str) -> None:
        self.progress.stop()
