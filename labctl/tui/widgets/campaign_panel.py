"""CampaignPanel: pick a campaign file, see its validation errors inline, run / pause / resume / abort
it, and follow each step's progress. The panel only shows and asks: the app carries requests to the
CampaignController (labctl.tui.campaign), which drives labctl.campaigns' runner."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Input, Label, ProgressBar, Static

from labctl.tui.campaign import RunBegan, RunEnded, StepProgress


class CampaignPanel(Vertical):
    """File input, buttons, validation errors, per-step progress bars."""

    class Request(Message):
        """The operator asks for `what` ("validate", "run", "pause", "resume", "abort")."""

        def __init__(self, what: str, path: str, run_ref: str) -> None:
            super().__init__()
            self.what, self.path, self.run_ref = what, path, run_ref

    def compose(self) -> ComposeResult:
        with Horizontal(classes="campaign-row"):
            yield Label("file", classes="campaign-label")
            yield Input(placeholder="campaign.toml", id="campaign-path")
        with Horizontal(classes="campaign-row"):
            yield Label("resume", classes="campaign-label")
            yield Input("last", id="campaign-run", placeholder="run id, prefix or 'last'")
        with Horizontal(id="campaign-buttons"):
            yield Button("Check", id="campaign-validate")
            yield Button("Run", id="campaign-run-button", variant="primary")
            yield Button("Pause", id="campaign-pause")
            yield Button("Resume", id="campaign-resume")
            yield Button("Abort", id="campaign-abort", variant="warning")
        yield Static("", id="campaign-status")
        yield Static("", id="campaign-errors")
        yield ProgressBar(total=1.0, show_eta=False, id="campaign-overall")
        yield VerticalScroll(id="campaign-steps")

    def _request(self, what: str) -> None:
        self.post_message(self.Request(what, self.query_one("#campaign-path", Input).value.strip(),
                                       self.query_one("#campaign-run", Input).value.strip() or "last"))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        what = {"campaign-validate": "validate", "campaign-run-button": "run", "campaign-pause": "pause",
                "campaign-resume": "resume", "campaign-abort": "abort"}.get(event.button.id or "")
        if what:
            self._request(what)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._request("validate" if event.input.id == "campaign-path" else "resume")

    # -- what the app tells the panel
    def show_errors(self, problems: list[str]) -> None:
        self.query_one("#campaign-errors", Static).update("\n".join(f"[red]✗[/red] {p}" for p in problems))
        self.query_one("#campaign-path", Input).set_class(bool(problems), "-refused")

    def show_status(self, text: str) -> None:
        self.query_one("#campaign-status", Static).update(text)

    def show_plan(self, steps: list[str], units: int) -> None:
        self.show_errors([])
        self.show_status(f"[green]✓ valid[/green]: {len(steps)} step(s), {units} unit(s) of work: "
                         + ", ".join(steps))

    def begin(self, msg: RunBegan) -> None:
        box = self.query_one("#campaign-steps", VerticalScroll)
        box.remove_children()
        for i, name in enumerate(msg.steps):
            box.mount(Horizontal(Label(name, classes="step-name"),
                                 ProgressBar(total=1.0, show_eta=False, id=f"step-{i}", classes="step-bar"),
                                 Label("", id=f"step-msg-{i}", classes="step-msg"), classes="step-row"))
        self.query_one("#campaign-overall", ProgressBar).update(progress=0.0)
        self.show_status(f"run {msg.run_id}: [b]running[/b]")

    def progress(self, msg: StepProgress) -> None:
        try:
            self.query_one(f"#step-{msg.step_index}", ProgressBar).update(progress=msg.fraction)
            self.query_one(f"#step-msg-{msg.step_index}", Label).update(msg.message)
        except Exception:  # the rows are mounted asynchronously; the next update lands
            pass
        self.query_one("#campaign-overall", ProgressBar).update(progress=msg.overall)

    def end(self, msg: RunEnded) -> None:
        colour = {"complete": "green", "aborted": "yellow"}.get(msg.status, "red")
        self.show_status(f"run {msg.run_id}: [b][{colour}]{msg.status}[/{colour}][/b], "
                         f"{msg.measurements} measurements stored")
        if msg.errors:
            self.query_one("#campaign-errors", Static).update("\n".join(msg.errors))
