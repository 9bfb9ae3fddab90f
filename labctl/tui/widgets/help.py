"""HelpScreen: every key binding of the app and its widgets, generated from their BINDINGS."""
from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


def bindings_table(sections: list[tuple[str, list[Binding]]]) -> Table:
    table = Table(show_header=True, header_style="bold", expand=True, box=None)
    table.add_column("where")
    table.add_column("key")
    table.add_column("does")
    for where, bindings in sections:
        for b in bindings:
            if not b.description:
                continue
            keys = ", ".join(k.replace("_", " ") for k in b.key.split(","))
            table.add_row(where, keys, b.description)
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark,f1", "close", "Close help")]

    def __init__(self, sections: list[tuple[str, list[Binding]]]) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static("[b]labctl tui — keys[/b]   (Esc closes)")
            yield Static(bindings_table(self.sections))

    def action_close(self) -> None:
        self.dismiss(None)
