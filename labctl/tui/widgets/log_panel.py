"""LogPanel: what happened, newest last — the app's own messages and the labctl loggers'."""
from __future__ import annotations

import logging
import time

from textual.message import Message
from textual.widgets import RichLog


class LogPanel(RichLog):
    """A RichLog fed by `write_line` and by a logging handler on the 'labctl' logger (any thread)."""

    class Record(Message):
        def __init__(self, level: int, text: str) -> None:
            super().__init__()
            self.level, self.text = level, text

    #: Time stamp of a line (tests replace it to get reproducible screens).
    clock = staticmethod(lambda: time.strftime("%H:%M:%S"))

    def __init__(self, **kwargs: object) -> None:
        super().__init__(markup=True, wrap=True, max_lines=2000, **kwargs)  # type: ignore[arg-type]

    def write_line(self, text: str, level: int = logging.INFO) -> None:
        colour = {logging.ERROR: "red", logging.WARNING: "yellow"}.get(level, "")
        stamp = self.clock()
        body = f"[{colour}]{text}[/{colour}]" if colour else text
        self.write(f"[dim]{stamp}[/dim] {body}")

    def on_log_panel_record(self, msg: Record) -> None:
        self.write_line(msg.text, msg.level)


class PanelHandler(logging.Handler):
    """Forwards log records to a LogPanel with a thread-safe message."""

    def __init__(self, panel: LogPanel) -> None:
        super().__init__(logging.INFO)
        self.panel = panel

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.panel.post_message(LogPanel.Record(record.levelno, f"{record.name}: {record.getMessage()}"))
        except Exception:  # a closed app: nothing to show it on
            pass
