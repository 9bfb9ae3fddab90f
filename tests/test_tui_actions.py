"""The TUI's cell actions, driven with Textual's Pilot against the embedded emulator.

Every action goes through its form and must (a) reach the array — checked on the emulator's own
state (formed cells, pulse counts, conductances, virtual clock), (b) be stored as a run in the same
SQLite store `labctl run` uses, and (c) refuse out-of-limit values without sending anything.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from labctl.backends.emulator import EmulatorBackend
from labctl.campaigns.store import Store
from labctl.tui.app import ProbeStationApp
from labctl.tui.widgets.array_map import ArrayMap
from labctl.tui.widgets.forms import ActionForm

from helpers import SIZE, connected, run_form, until

pytestmark = pytest.mark.timeout(60)


def make_app(tmp_path, rows: int = 8, cols: int = 8, seed: int = 3) -> ProbeStationApp:
    return ProbeStationApp(lambda: EmulatorBackend(rows, cols, seed=seed), store_path=str(tmp_path / "runs.sqlite"))


def emulator_array(app):
    return app.session.backend.array


async def start_long_pulse_train(pilot, app):
    """Once connected, start a 100000-pulse train on the cursor cell (key u); returns the emulated array."""
    await connected(pilot, app)
    arr = emulator_array(app)
    await pilot.press("u")
    await until(pilot, lambda: isinstance(app.screen, ActionForm))
    app.screen.query_one("#field-count").value = "100000"
    await pilot.press("enter")
    return arr


def stored_runs(tmp_path) -> list:
    with Store(tmp_path / "runs.sqlite") as store:
        return [(r.name, r.status, store.measurement_count(r.run_id)) for r in store.runs()]


async def test_read_form_program_pulse_iv_retention_reach_the_array_and_the_store(tmp_path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot, app)
        arr = emulator_array(app)
        amap = app.query_one(ArrayMap)
        # Select the 2x2 block (1..2, 1..2) with the keyboard.
        await pilot.press("down", "right", "shift+down", "shift+right")
        assert amap.selection() == (1, 2, 1, 2)
        rows, cols = amap.selected_cells()

        await run_form(pilot, app, "f")
        assert app.last_error is None, app.last_error
        assert arr.formed()[rows, cols].all() and not arr.formed()[0, 0]

        await run_form(pilot, app, "p", {"targets": "40 uS", "tolerance": "0.02"})
        assert app.last_error is None, app.last_error
        g_true = arr.conductance_matrix()[rows, cols]
        assert np.all(np.abs(g_true - 40e-6) < 0.1 * 40e-6)  # verified reads at 2 %, read noise aside
        shown = np.array([amap.value(r, c) for r, c in zip(rows, cols)])
        assert np.array_equal(shown, app.last_result.g)  # the map shows the verify reads

        before = arr.pulse_counts()[rows, cols].copy()
        await run_form(pilot, app, "u", {"v": "1.35 V", "count": "3"})
        assert app.last_error is None, app.last_error
        assert np.array_equal(arr.pulse_counts()[rows, cols] - before, [3, 3, 3, 3])
        assert app.last_result.trace.shape == (4, 3)

        await run_form(pilot, app, "r")
        assert app.last_error is None
        assert np.allclose(app.last_result.g, arr.conductance_matrix()[rows, cols], rtol=0.05)

        await run_form(pilot, app, "i", {"cycles": "1", "step": "0.05 V"})
        assert app.last_error is None, app.last_error
        assert np.all(app.last_result.g_lrs > app.last_result.g_hrs)

        t0 = arr.time
        await run_form(pilot, app, "e", {"times": "1 s, 10 s, 100 s"})
        assert app.last_error is None, app.last_error
        assert arr.time - t0 >= 100.0  # the virtual clock moved to the last read time
        assert app.last_result.trace.shape == (4, 3)

    runs = stored_runs(tmp_path)
    names = [r[0] for r in runs]
    assert names == ["tui: form", "tui: program", "tui: pulse", "tui: read", "tui: iv", "tui: retention"]
    assert all(status == "complete" and n > 0 for _, status, n in runs)


async def test_out_of_limit_values_are_refused_in_the_form_and_nothing_is_sent(tmp_path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot, app)
        arr = emulator_array(app)
        limits = app.session.backend.limits
        counts = arr.pulse_counts().copy()
        await pilot.press("u")
        await until(pilot, lambda: isinstance(app.screen, ActionForm))
        form = app.screen
        # The form shows the station limits next to the fields they bind.
        assert f"{limits.max_abs_voltage:g} V" in str(form.query_one("#form-limits").render())
        too_high = limits.max_abs_voltage + 0.5
        form.query_one("#field-v").value = f"{too_high} V"
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert isinstance(app.screen, ActionForm)  # still open: refused
        errors = str(form.query_one("#form-errors").render())
        assert "v:" in errors and f"{too_high:g} V" in errors and f"{limits.max_abs_voltage:g}" in errors
        assert form.query_one("#field-v").has_class("-refused")
        # Gate above the limit, width beyond it, a width given in volts: each refused, naming the field.
        for field, text, expect in (("vg", f"{limits.max_gate_voltage + 1} V", "vg:"),
                                    ("width", f"{limits.max_pulse_width * 10} s", "width:"),
                                    ("width", "2.5 mV", "expected s")):
            form.query_one("#field-v").value = "1.35 V"
            form.query_one("#field-vg").value = "1.4 V"
            form.query_one("#field-width").value = "2.5 us"
            form.query_one(f"#field-{field}").value = text
            await pilot.press("enter")
            await pilot.pause(0.05)
            assert isinstance(app.screen, ActionForm)
            assert expect in str(form.query_one("#form-errors").render())
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, ActionForm))
        assert app.busy is None
        assert np.array_equal(arr.pulse_counts(), counts)  # nothing reached the array
    assert stored_runs(tmp_path) == []


async def test_a_long_action_shows_progress_and_can_be_cancelled(tmp_path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        arr = await start_long_pulse_train(pilot, app)
        await until(pilot, lambda: app.busy is not None and arr.pulse_counts()[0, 0] > 10)
        await until(pilot, lambda: "%" in str(app.query_one("#status").render()))  # progress shown
        await pilot.press("c")
        await until(pilot, lambda: app.busy is None)
        n = int(arr.pulse_counts()[0, 0])
        assert 10 < n < 100000
        await pilot.pause(0.2)
        assert int(arr.pulse_counts()[0, 0]) == n  # it really stopped
    runs = stored_runs(tmp_path)
    assert runs[0][:2] == ("tui: pulse", "aborted") and runs[0][2] > 0  # what was measured is kept


async def test_emergency_stop_aborts_a_running_action_and_switches_outputs_off(tmp_path) -> None:
    off_calls = []

    class Watched(EmulatorBackend):
        async def outputs_off(self) -> None:
            off_calls.append(time.monotonic())

    app = ProbeStationApp(lambda: Watched(8, 8, seed=1), store_path=str(tmp_path / "runs.sqlite"))
    async with app.run_test(size=SIZE) as pilot:
        arr = await start_long_pulse_train(pilot, app)
        await until(pilot, lambda: arr.pulse_counts()[0, 0] > 10)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.busy is None and off_calls)
        n = int(arr.pulse_counts()[0, 0])
        await pilot.pause(0.2)
        assert int(arr.pulse_counts()[0, 0]) == n
        assert "EMERGENCY STOP" in str(app.query_one("#status").render())
    assert stored_runs(tmp_path)[0][1] == "aborted"


async def test_cell_history_comes_from_the_store(tmp_path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot, app)
        await run_form(pilot, app, "r")
        await run_form(pilot, app, "r")
        table = app.query_one("#cell-history")
        await until(pilot, lambda: table.row_count >= 2)
        quantities = [table.get_row_at(i)[3] for i in range(table.row_count)]
        values = [table.get_row_at(i)[4] for i in range(table.row_count)]
        assert quantities == ["g", "g"]
        assert all(v.endswith("S") for v in values)  # conductances with their unit
        # Moving to a cell never read shows an empty history.
        await pilot.press("right")
        await until(pilot, lambda: table.row_count == 0)


async def test_an_action_that_loses_the_link_is_stored_failed_and_the_session_reconnects(tmp_path) -> None:
    class Flaky(EmulatorBackend):
        lost = False

        async def pulse(self, *args, **kwargs) -> None:
            if not Flaky.lost:
                Flaky.lost = True
                raise ConnectionError("link dropped")
            await super().pulse(*args, **kwargs)

    app = ProbeStationApp(lambda: Flaky(8, 8, seed=1), store_path=str(tmp_path / "runs.sqlite"))
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot, app)
        await run_form(pilot, app, "u")
        assert app.last_error is not None and "link dropped" in app.last_error
        await until(pilot, lambda: app.session.state.reconnects == 1 and app.session.state.state == "connected")
        await run_form(pilot, app, "u")  # and actions work again
        assert app.last_error is None, app.last_error
    assert [r[:2] for r in stored_runs(tmp_path)] == [("tui: pulse", "failed"), ("tui: pulse", "complete")]
