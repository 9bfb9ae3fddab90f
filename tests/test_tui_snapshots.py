"""Snapshots of the TUI's main screens (pytest-textual-snapshot; update with --snapshot-update after a
deliberate change, and look at the SVGs before committing them)."""
from __future__ import annotations

import time

import pytest

from labctl.backends.emulator import EmulatorBackend
from labctl.tui.app import ProbeStationApp
from labctl.tui.widgets.forms import ActionForm
from labctl.tui.widgets.log_panel import LogPanel

from helpers import BAD_CAMPAIGN

pytestmark = pytest.mark.timeout(60)
SIZE = (140, 44)

BAD = BAD_CAMPAIGN


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setattr(LogPanel, "clock", staticmethod(lambda: "12:00:00"))  # reproducible log lines
    monkeypatch.chdir(tmp_path)
    return ProbeStationApp(lambda: EmulatorBackend(12, 16, seed=0), store_path=str(tmp_path / "runs.sqlite"))


async def _connected(pilot) -> None:
    app = pilot.app
    deadline = time.monotonic() + 20
    while app.map_updates < 1:
        assert time.monotonic() < deadline
        await pilot.pause(0.02)
    await pilot.pause(0.1)


def test_main_screen(snap_compare, app) -> None:
    async def ready(pilot) -> None:
        await _connected(pilot)
        await pilot.press("down", "down", "right", "shift+down", "shift+right", "shift+right")

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def test_program_form_refusing_a_target(snap_compare, app) -> None:
    async def ready(pilot) -> None:
        await _connected(pilot)
        await pilot.press("p")
        while not isinstance(pilot.app.screen, ActionForm):
            await pilot.pause(0.02)
        pilot.app.screen.query_one("#field-targets").value = "200 uS"
        await pilot.press("enter")
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def test_help_screen(snap_compare, app) -> None:
    async def ready(pilot) -> None:
        await _connected(pilot)
        await pilot.press("question_mark")
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def test_campaign_panel_with_validation_errors(snap_compare, app, tmp_path) -> None:
    (tmp_path / "bad.toml").write_text(BAD)

    async def ready(pilot) -> None:
        await _connected(pilot)
        await pilot.press("o", *list("bad.toml"), "enter")
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)
