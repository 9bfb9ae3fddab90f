"""The campaign panel: inline validation errors, run / pause / resume / abort, emergency stop during a
running campaign, and a resume that ends where an uninterrupted `labctl run` of the same file ends."""
from __future__ import annotations

import contextlib
import functools

import numpy as np
import pytest

from labctl.backends.emulator import EmulatorBackend
from labctl.campaigns.runner import Runner
from labctl.campaigns.store import Store
from labctl.tui.app import ProbeStationApp
from labctl.tui.campaign import RunEnded, StepProgress

import helpers
from helpers import BAD_CAMPAIGN, FORMING_STEP, campaign_text

pytestmark = pytest.mark.timeout(90)
SIZE = (150, 48)

CAMPAIGN = campaign_text("tui-campaign", 8, 8, 5, FORMING_STEP + """chunk_cells = 16

[[steps]]
routine = "program"
repeat = 6
chunk_cells = 8
params = { levels = [15e-6, 45e-6, 75e-6], tolerance = 0.005, loop = "host" }
""")

BAD = BAD_CAMPAIGN + """
[[steps]]
routine = "no_such_routine"
"""


until = functools.partial(helpers.until, timeout=30.0)  # a campaign takes longer than one action


class Recorder:
    """Keeps every campaign event the app receives."""

    def __init__(self, app: ProbeStationApp) -> None:
        self.events: list = []
        post = app.campaigns.post

        def tee(e) -> None:
            self.events.append(e)
            post(e)

        app.campaigns.post = tee

    def progress(self) -> float:
        p = [e.overall for e in self.events if isinstance(e, StepProgress)]
        return p[-1] if p else 0.0

    def ended(self) -> list[RunEnded]:
        return [e for e in self.events if isinstance(e, RunEnded)]


def make_app(tmp_path) -> ProbeStationApp:
    return ProbeStationApp(lambda: EmulatorBackend(4, 4, seed=0), store_path=str(tmp_path / "runs.sqlite"))


async def type_path(pilot, app, path: str) -> None:
    await pilot.press("o")  # focuses the campaign file input
    inp = app.query_one("#campaign-path")
    await until(pilot, lambda: inp.has_focus)
    inp.value = ""
    await pilot.press(*list(path))
    await pilot.press("enter")  # validates


@contextlib.asynccontextmanager
async def campaign_typed_in(tmp_path, monkeypatch):
    """The running app with CAMPAIGN (as c.toml) typed into its campaign panel: (app, Recorder, pilot)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.toml").write_text(CAMPAIGN)
    app = make_app(tmp_path)
    rec = Recorder(app)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.map_updates >= 1)
        await type_path(pilot, app, "c.toml")
        yield app, rec, pilot


async def test_validation_errors_show_inline_with_their_lines(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.toml").write_text(BAD)
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.map_updates >= 1)
        await type_path(pilot, app, "bad.toml")
        errors = str(app.query_one("#campaign-errors").render())
        assert "bad.toml:6" in errors and "v_stop" in errors  # the line of the bad field
        assert "no_such_routine" in errors
        assert "nothing will run" in str(app.query_one("#campaign-status").render())
        # Run refuses the same file; nothing is stored.
        await pilot.click("#campaign-run-button")
        await pilot.pause(0.2)
        assert not app.campaigns.active
    with Store(tmp_path / "runs.sqlite") as store:
        assert store.runs() == []


async def test_run_pause_emergency_stop_and_resume_match_an_uninterrupted_run(tmp_path, monkeypatch) -> None:
    async with campaign_typed_in(tmp_path, monkeypatch) as (app, rec, pilot):
        assert "valid" in str(app.query_one("#campaign-status").render())
        await pilot.click("#map")
        await pilot.press("g")  # run
        await until(pilot, lambda: rec.progress() > 0.3)

        await pilot.press("space")  # pause at the next safe point
        await until(pilot, lambda: app.campaigns.paused)
        await pilot.pause(0.3)
        held = rec.progress()
        await pilot.pause(0.3)
        assert rec.progress() == held < 1.0  # paused: nothing moves
        # While a campaign holds the array, cell actions are refused.
        await pilot.press("r")
        assert "campaign" in (app.last_error or "")
        await pilot.press("space")  # resume
        await until(pilot, lambda: rec.progress() > held)

        await pilot.press("ctrl+s")  # emergency stop during the running campaign
        await until(pilot, lambda: rec.ended())
        assert rec.ended()[0].status == "aborted"
        await until(pilot, lambda: "EMERGENCY STOP" in str(app.query_one("#status").render()))
        run_id = rec.ended()[0].run_id
        with Store(tmp_path / "runs.sqlite") as store:
            assert store.run(run_id).status == "aborted"
            assert "emergency stop" in " ".join(store.run(run_id).errors)
            assert any(e.kind == "outputs_off" for e in store.events(run_id))

        # Resume the stored run from the panel (run reference 'last'), to completion.
        await pilot.click("#campaign-resume")
        await until(pilot, lambda: len(rec.ended()) == 2, timeout=60)
        assert rec.ended()[1].status == "complete" and rec.ended()[1].run_id == run_id
        # The recorder sees the event as it is posted; the panel shows it once the app has handled it.
        await until(pilot, lambda: "complete" in str(app.query_one("#campaign-status").render()))

    # The same campaign run without interruption, as `labctl run` does it.
    with Store(tmp_path / "reference.sqlite") as ref_store:
        result = await Runner.new(ref_store, CAMPAIGN, "c.toml").run()
        assert result.status == "complete"
        reference = _program_results(ref_store, result.run_id)
    with Store(tmp_path / "runs.sqlite") as store:
        resumed = _program_results(store, run_id)
        assert store.measurement_count(run_id) == ref_store_count(tmp_path, result.run_id)
    assert np.array_equal(resumed, reference)


def ref_store_count(tmp_path, run_id: str) -> int:
    with Store(tmp_path / "reference.sqlite") as store:
        return store.measurement_count(run_id)


def _program_results(store: Store, run_id: str) -> np.ndarray:
    rows = [r for r in store.measurement_rows(run_id) if r[10] == "program" and r[14] == "g"]
    return np.array([(r[0], r[12], r[13], r[15]) for r in rows])


async def test_quitting_during_a_campaign_ends_its_process_with_the_run_stored_aborted(tmp_path, monkeypatch) -> None:
    async with campaign_typed_in(tmp_path, monkeypatch) as (app, rec, pilot):
        await pilot.click("#map")
        await pilot.press("g")
        await until(pilot, lambda: rec.progress() > 0.05)
        proc = app.campaigns._proc
        assert proc is not None and proc.poll() is None  # the run is in its own process
        run_id = app.campaigns.run_id
        await pilot.press("q")
    assert proc.poll() is not None  # the app does not leave the campaign running behind it
    with Store(tmp_path / "runs.sqlite") as store:
        rec_ = store.run(run_id)
        assert rec_.status == "aborted" and "labctl tui closed" in " ".join(rec_.errors)
        assert any(e.kind == "outputs_off" for e in store.events(run_id))
