"""RemotePanel: another station's runs, live from its MQTT telemetry (labctl.tui.remote.watch)."""
from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Input, Label, Static

from labctl.tui.remote import RemoteRun, watch


def _eta(s: float | None) -> str:
    if s is None:
        return ""
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min"


class RemotePanel(Vertical):
    """Broker and station inputs, a Watch/Stop button, and one table row per run seen."""

    def __init__(self, broker: str | None = None, station: str = "+", prefix: str = "labctl",
                 **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.broker, self.station, self.prefix = broker or "", station, prefix
        self.runs: dict[tuple[str, str], RemoteRun] = {}

    def compose(self) -> ComposeResult:
        with Horizontal(classes="campaign-row"):
            yield Label("broker", classes="campaign-label")
            yield Input(self.broker, placeholder="mqtt://host:1883", id="remote-broker")
        with Horizontal(classes="campaign-row"):
            yield Label("station", classes="campaign-label")
            yield Input(self.station, placeholder="+ for every station", id="remote-station")
        with Horizontal(id="remote-buttons"):
            yield Button("Watch", id="remote-watch", variant="primary")
            yield Button("Stop", id="remote-stop")
        yield Static("not watching", id="remote-link")
        yield DataTable(id="remote-runs", cursor_type="row")

    def on_mount(self) -> None:
        self.query_one("#remote-runs", DataTable).add_columns("station", "run", "campaign", "status", "progress",
                                                               "step", "measurements", "ETA")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "remote-watch":
            self.start()
        elif event.button.id == "remote-stop":
            self.stop()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.start()

    def start(self) -> None:
        broker = self.query_one("#remote-broker", Input).value.strip()
        station = self.query_one("#remote-station", Input).value.strip() or "+"
        if not broker:
            self.notify("remote watch: give the broker, e.g. mqtt://host:1883", severity="error")
            return
        self.runs.clear()
        self.query_one("#remote-runs", DataTable).clear()
        self._watch(broker, station)

    def stop(self) -> None:
        self.workers.cancel_group(self, "remote")
        self.set_link("not watching")

    def set_link(self, text: str) -> None:
        self.query_one("#remote-link", Static).update(text)

    @work(exclusive=True, group="remote")
    async def _watch(self, broker: str, station: str) -> None:
        try:
            async for run in watch(broker, station, self.prefix, on_link=self.set_link):
                self.show_run(run)
        except ValueError as exc:
            self.set_link(f"[red]{exc}[/red]")
            self.notify(str(exc), severity="error")

    def show_run(self, run: RemoteRun) -> None:
        table = self.query_one("#remote-runs", DataTable)
        key = f"{run.station}/{run.run_id}"
        progress = f"{run.fraction * 100:.0f} %" if run.fraction is not None else ""
        cells = (run.station, run.run_id, run.campaign, run.status, progress, run.step,
                 "" if run.measurements is None else str(run.measurements), _eta(run.eta))
        if (run.station, run.run_id) in self.runs:
            for col, value in zip(table.columns, cells):
                table.update_cell(key, col, value)
        else:
            table.add_row(*cells, key=key)
        self.runs[(run.station, run.run_id)] = run
