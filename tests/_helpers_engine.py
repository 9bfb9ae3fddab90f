"""Pilot helpers for the TUI tests (tests/test_tui_actions.py, test_tui_rerun.py, test_tui_remote.py)."""
from __future__ import annotations

import time

from labctl.tui.widgets.forms import ActionForm

SIZE = (150, 48)


async def until(pilot, cond, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        await pilot.pause(0.02)


async def connected(pilot, app) -> None:
    await until(pilot, lambda: app.map_updates >= 1)


async def run_form(pilot, app, key: str, values: dict[str, str] | None = None) -> None:
    """Open the action's form with its key, fill fields, submit, wait for the action to finish."""
    app.last_result = None
    await pilot.press(key)
    await until(pilot, lambda: isinstance(app.screen, ActionForm))
    form = app.screen
    for name, text in (values or {}).items():
        form.query_one(f"#field-{name}").value = text
    await pilot.press("enter")
    await until(pilot, lambda: not isinstance(app.screen, ActionForm))
    await until(pilot, lambda: app.busy is None and (app.last_result is not None or app.last_error is not None))
