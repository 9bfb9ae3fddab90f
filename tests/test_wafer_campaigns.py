"""Wafer campaigns against the emulated prober over TCP: a whole wafer, contact loss, bad input, a prober
that stops answering, abort, and SIGKILL at random moments with die-level resume."""
from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers import started_count as _started
from helpers import stored_run_id as _run_id

from labctl.campaigns import CampaignError, Runner, RunControl, Store, load_campaign
from labctl.campaigns.wafer import WaferSession

WAFER = """\
[campaign]
name = "wafer"

[backend]
rows = 8
cols = 8
seed = 5

[wafer]
prober = "{prober}"
{extra}

[[steps]]
routine = "forming"

[[steps]]
routine = "read"
name = "check"
"""


def wafer_campaign(prober: str = "velox", extra: str = "emulated = { columns = 3, rows = 2 }") -> str:
    return WAFER.format(prober=prober, extra=extra)


def run(store_path, text: str, source: str = "wafer.toml", **kw):  # noqa: ANN001, ANN201
    with Store(store_path) as store:
        runner = Runner.new(store, text, source, **kw)
        result = asyncio.run(runner.run())
        return result, store.dies(result.run_id), store.events(result.run_id)


@pytest.mark.parametrize("prober", ["velox", "sentio"])
def test_a_whole_emulated_wafer_is_formed_die_by_die(tmp_path, prober: str) -> None:
    result, dies, events = run(tmp_path / "s.sqlite", wafer_campaign(prober))
    assert result.status == "complete", result.errors
    assert [(d.column, d.row) for d in dies] == [(0, 0), (1, 0), (2, 0), (2, 1), (1, 1), (0, 1)]  # its route
    assert all(d.status == "done" and d.touchdowns == 1 and d.contact_g > 1e-10 for d in dies)
    for d in dies:
        assert d.summary["forming-0"]["yield"] == 1.0 and d.summary["check"]["cells"] == 64
    # Each die is its own array: the forming voltages differ from die to die.
    means = {d.summary["forming-0"]["v_form_1t1r_mean_V"] for d in dies}
    assert len(means) == len(dies)
    assert [e.kind for e in events][-2:] == ["separate", "stop"]


def test_contact_loss_retries_once_then_skips_the_die_and_keeps_the_rest(tmp_path) -> None:
    extra = "emulated = { columns = 2, rows = 2, contact_faults = [[1, 0, 1], [1, 1, -1]] }"
    result, dies, events = run(tmp_path / "s.sqlite", wafer_campaign(extra=extra))
    assert result.status == "complete", result.errors
    by_die = {(d.column, d.row): d for d in dies}
    assert by_die[(1, 0)].status == "done" and by_die[(1, 0)].touchdowns == 2  # retried once, then measured
    lost = by_die[(1, 1)]
    assert lost.status == "skipped" and lost.touchdowns == 2 and lost.contact_g < 1e-10
    assert "no contact after 2 touchdown(s)" in lost.message
    with Store(tmp_path / "s.sqlite") as store:
        units = store.units(result.run_id)
        statuses = [units[i].status for i in range(lost.first_unit, lost.last_unit + 1)]
        assert statuses == ["skipped", "skipped"]
        assert all(units[i].status == "done" for d in dies if d.status == "done"
                   for i in range(d.first_unit, d.last_unit + 1))
        # Nothing was stored for the skipped die.
        stored_units = {b.unit_index for b in store.batches(result.run_id)}
        assert not stored_units & {lost.first_unit, lost.last_unit}
    assert any("skipped" in e.message for e in events if e.kind == "die")


@pytest.mark.parametrize(("extra", "expected"), [
    ("dies = [[0, 0], [1, 0], [0, 0]]\nemulated = { columns = 2, rows = 2 }",
     r"wafer\.dies\[2\]: die \(0, 0\) is listed twice"),
    ("dies = [[0, 0], [7, 3]]\nemulated = { columns = 2, rows = 2 }",
     r"wafer\.dies\[1\]: die \(7, 3\) is not on the wafer"),
    ('steps = ["forming-0", "nope"]', r"wafer\.steps\[1\]: no step named 'nope'"),
    ("emulated = { columns = 2, rows = 2, contact_faults = [[5, 5, 1]] }",
     r"contact_faults\[0\]: die \(5, 5\) is not on the emulated wafer"),
    ("emulated = { variation = { bowl = 1.0 } }", r"variation\.bowl: unknown variation parameter"),
    ('die_file = "missing.txt"', r"wafer\.die_file: cannot read"),
    ('prober = "cascade9000"', r"wafer\.prober"),
])
def test_bad_die_maps_and_wafer_fields_are_refused_naming_the_field(tmp_path, extra: str, expected: str) -> None:
    text = wafer_campaign(extra=extra)
    if extra.startswith("prober"):
        text = text.replace('prober = "velox"\n', "")
    with pytest.raises(CampaignError, match=expected):
        load_campaign(text, str(tmp_path / "wafer.toml"))


def test_a_die_file_is_read_and_its_bad_line_named(tmp_path) -> None:
    (tmp_path / "dies.txt").write_text("# column, row\n1, 1\n0 0\n")
    loaded = load_campaign(wafer_campaign(extra='die_file = "dies.txt"\norder = "rows"\n'
                                                 "emulated = { columns = 2, rows = 2 }"), str(tmp_path / "w.toml"))
    assert loaded.dies == [(0, 0), (1, 1)]
    (tmp_path / "dies.txt").write_text("1, 1\n1, x\n")
    with pytest.raises(CampaignError, match=r"dies\.txt:2: expected 'column, row'"):
        load_campaign(wafer_campaign(extra='die_file = "dies.txt"'), str(tmp_path / "w.toml"))


def test_an_emulated_prober_needs_the_emulator_backend(tmp_path) -> None:
    text = wafer_campaign().replace("seed = 5\n", 'seed = 5\nkind = "station"\nstation = "s.toml"\n')
    with pytest.raises(CampaignError, match=r"wafer\.address: an emulated prober measures the emulated wafer"):
        load_campaign(text)


async def _start_with(store: Store, text: str, act) -> object:  # noqa: ANN001
    """Run `text`, calling `act(runner)` once the emulated prober is serving; returns the RunResult."""
    runner = Runner.new(store, text, "wafer.toml")
    task = asyncio.create_task(runner.run())
    deadline = time.monotonic() + 20
    while not (runner.wafer is not None and runner.wafer.server is not None and runner.wafer.server.running):
        assert time.monotonic() < deadline and not task.done()
        await asyncio.sleep(0)
    act(runner)
    return await task


def test_a_prober_that_stops_answering_mid_wafer_fails_the_run_naming_the_die(tmp_path) -> None:
    path = tmp_path / "s.sqlite"

    def kill_on_second_die(runner: Runner) -> None:
        runner.wafer.server.die_on = "StepNextDie 1 0"  # the prober dies when asked for the second die

    with Store(path) as store:
        text = wafer_campaign(extra="timeout = 1.0\nemulated = { columns = 3, rows = 2 }")
        result = asyncio.run(_start_with(store, text, kill_on_second_die))
        assert result.status == "failed"
        assert any("die 1 (1, 0): prober failed while stepping to it" in e for e in result.errors), result.errors
        dies = store.dies(result.run_id)
        assert dies[0].status == "done" and dies[1].status == "failed"
        # The first die's measurements stay in the store.
        assert {b.unit_index for b in store.batches(result.run_id)} == {0, 1}
        kinds = [e.kind for e in store.events(result.run_id)]
        assert "separate" in kinds and "thermal_safe" in kinds  # both tried (and failed: recorded)


def test_abort_leaves_the_chuck_separated_and_its_set_point_safe(tmp_path) -> None:
    control = RunControl()
    path = tmp_path / "s.sqlite"
    seen: dict[str, object] = {}

    def heat_then_abort(runner: Runner) -> None:
        session: WaferSession = runner.wafer
        session.wafer.set_chuck_temperature(358.15)  # a bake in progress
        seen["wafer"] = session.wafer
        runner.on_batch = lambda m: control.request_stop("operator abort")

    with Store(path) as store:
        runner_text = wafer_campaign()
        runner = Runner.new(store, runner_text, "wafer.toml", control=control)

        async def go() -> object:
            task = asyncio.create_task(runner.run())
            while not (runner.wafer is not None and runner.wafer.server is not None and runner.wafer.server.running):
                await asyncio.sleep(0)
            heat_then_abort(runner)
            return await task

        result = asyncio.run(go())
        assert result.status == "aborted"
        wafer = seen["wafer"]
        assert not wafer.contact
        assert wafer.chuck.set_point == pytest.approx(298.15)
        assert store.measurement_count(result.run_id) > 0


# -- SIGKILL and resume ----------------------------------------------------------------------------
KILL_CAMPAIGN = """\
[campaign]
name = "wafer-kill"

[backend]
rows = 8
cols = 8
seed = 21

[wafer]
prober = "sentio"
order = "serpentine"
emulated = { columns = 2, rows = 2, contact_faults = [[1, 1, 1]] }

[[steps]]
routine = "forming"
chunk_cells = 32
params = { chunk = 16 }

[[steps]]
routine = "program"
params = { levels = [20e-6, 40e-6, 60e-6, 80e-6], loop = "host", tolerance = 0.005, chunk = 16 }

[[steps]]
routine = "read"
name = "check"
"""
KILLS = 4


def _content(path) -> dict:
    db = sqlite3.connect(path)
    (run_id,) = db.execute("SELECT run_id FROM runs").fetchone()
    with Store(path) as store:
        meas = list(store.measurement_rows(run_id))
        dies = [(d.die_index, d.column, d.row, d.status, d.contact_g, d.summary) for d in store.dies(run_id)]
    units = db.execute("SELECT unit_index, status, summary_json FROM units WHERE run_id = ? ORDER BY unit_index",
                       (run_id,)).fetchall()
    attempts = db.execute("SELECT MAX(attempt) FROM batches").fetchone()[0]
    status = db.execute("SELECT status FROM runs").fetchone()[0]
    db.close()
    return {"measurements": meas, "units": units, "dies": dies, "status": status, "attempts": attempts}


@pytest.fixture(scope="module")
def kill_reference(tmp_path_factory) -> dict:
    """KILL_CAMPAIGN run once without interruption, in-process: its store content and duration (s)."""
    ref_path = tmp_path_factory.mktemp("wafer-ref") / "ref.sqlite"
    t0 = time.monotonic()
    with Store(ref_path) as store:
        assert asyncio.run(Runner.new(store, KILL_CAMPAIGN, "kill.toml").run()).status == "complete"
    return {**_content(ref_path), "duration": time.monotonic() - t0}


def test_sigkill_at_random_moments_then_resume_measures_every_die_once_as_an_uninterrupted_run(
        tmp_path, kill_reference) -> None:
    (tmp_path / "kill.toml").write_text(KILL_CAMPAIGN)
    duration = kill_reference["duration"]
    reference = kill_reference
    rng = np.random.default_rng(20261201)
    kills = stores = 0
    while kills < KILLS and stores < 4:  # bounded: a fast machine finishes a run between kills
        path = tmp_path / f"runs-{stores}.sqlite"
        stores += 1
        cmd = [sys.executable, "-m", "labctl.campaigns.cli", "run", "--store", str(path), "--no-report"]
        for _ in range(KILLS):
            run_id = _run_id(path)
            if run_id is not None and _content(path)["status"] == "complete":
                break  # finished just before its kill
            before = _started(path)
            proc = subprocess.Popen(cmd + (["--resume", run_id] if run_id else [str(tmp_path / "kill.toml")]),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            deadline = time.monotonic() + 30
            while _started(path) == before and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.6 * duration))  # a moment inside the (re)started run
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                kills += 1
            proc.wait(timeout=30)
            assert proc.returncode in (-signal.SIGKILL, 0), proc.stderr.read().decode()
            proc.stderr.close()
            if proc.returncode == 0 or kills >= KILLS:
                break
        run_id = _run_id(path)
        if _content(path)["status"] != "complete":
            done = subprocess.run(cmd + ["--resume", run_id], capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stdout + done.stderr
        got = _content(path)
        assert got["status"] == "complete"
        assert got["dies"] == reference["dies"]  # every die done once, same contact readings and summaries
        assert got["units"] == reference["units"]
        assert got["measurements"] == reference["measurements"]  # none lost, none measured twice, same values
    assert kills >= KILLS


def test_runs_show_lists_the_dies_and_the_report_draws_the_wafer_map(tmp_path, capsys) -> None:
    import json

    from labctl.campaigns.cli import main
    from labctl.campaigns.wafermap import die_value, wafer_map_figure

    extra = "emulated = { columns = 2, rows = 2, contact_faults = [[0, 1, -1]] }"
    result, dies, _ = run(tmp_path / "s.sqlite", wafer_campaign(extra=extra))
    assert main(["runs", "show", result.run_id, "--store", str(tmp_path / "s.sqlite")]) == 0
    out = capsys.readouterr().out
    assert "dies 4: 3 done, 1 skipped" in out
    assert "die 3 (0, 1) skipped  touchdowns 2" in out
    assert main(["report", result.run_id, "--store", str(tmp_path / "s.sqlite"), "--out", str(tmp_path / "r")]) == 0
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["wafer"]["plot"] == "wafer-map.png" and (tmp_path / "r" / "wafer-map.png").stat().st_size > 0
    assert [d["status"] for d in summary["wafer"]["dies"]] == [d.status for d in dies]
    fig = wafer_map_figure(dies, ["forming-0.v_form_1t1r_mean_V"])
    grid = fig.axes[0].images[0].get_array()
    for d in dies:
        expected = die_value(d, "forming-0.v_form_1t1r_mean_V")
        assert (np.isnan(expected) and np.ma.is_masked(grid[d.row, d.column])) or grid[d.row, d.column] == expected
    assert np.isnan(die_value(dies[3], "forming-0.v_form_1t1r_mean_V"))  # the skipped die has no value


def test_the_wafer_forming_example_plans_every_die_of_the_6x6_wafer() -> None:
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "examples" / "wafer-forming.toml"
    loaded = load_campaign(path.read_text(), str(path))
    assert len(loaded.dies) == 36 and len(set(loaded.dies)) == 36
    assert [u.die for u in loaded.units] == [k for k in range(36) for _ in range(2)]


def test_the_tui_is_told_the_prober_die_and_temperature_as_plain_data(tmp_path) -> None:
    from labctl.tui.campaign import StepProgress, TuiProgress
    from labctl.tui.widgets.status import StatusBar

    events: list = []
    result, dies, _ = run(tmp_path / "s.sqlite", wafer_campaign(), view=TuiProgress(events.append))
    assert result.status == "complete"
    shown = [e.station for e in events if isinstance(e, StepProgress) and e.station is not None]
    assert {tuple(s["die"]) for s in shown} == {(d.column, d.row) for d in dies}
    assert all(s["prober"] == "velox (emulated)" and s["temperature_K"] == pytest.approx(298.15) for s in shown)
    from textual.app import App

    class Bar(App):
        def compose(self):  # noqa: ANN202
            yield StatusBar(id="status")

    async def show() -> str:
        app = Bar()
        async with app.run_test() as pilot:
            bar = app.query_one(StatusBar)
            bar.set_station(shown[-1])
            await pilot.pause()
            return str(bar.content)

    assert "prober velox (emulated) · die (0, 1) · chuck 25.0 °C" in asyncio.run(show())


def test_a_real_prober_address_reads_its_map_then_measures_through_the_chip_backend(tmp_path) -> None:
    """What `labctl emulate --wafer 2x2` serves: a chip controller on the die under the probes and a prober
    at its own address; the campaign names the prober's address as for real hardware."""
    from emulator.controller import ChipController, serve_tcp
    from emulator.instruments import prober_server
    from emulator.wafer import Wafer

    async def go(dies: str) -> tuple:
        wafer = Wafer(2, 2, 8, 4, seed=9)
        controller = ChipController(wafer.probes)
        chip = await serve_tcp(controller, "127.0.0.1", 0)
        prober = prober_server(wafer, "sentio")
        await prober.start()
        text = (f'[campaign]\nname = "real"\n\n[backend]\nkind = "chip"\naddress = "{chip.address}"\n'
                f'rows = 8\ncols = 4\n\n[wafer]\nprober = "sentio"\naddress = "{prober.resource}"\ndies = {dies}\n\n'
                '[[steps]]\nroutine = "read"\n')
        try:
            loaded = load_campaign(text)
            assert loaded.dies is None if dies == '"prober"' else loaded.dies is not None
            with Store(tmp_path / f"s{len(dies)}.sqlite") as store:
                result = await Runner.new(store, text).run()
                return result, store.dies(result.run_id), wafer.contact
        finally:
            await prober.stop()
            await chip.close()
            await controller.aclose()

    result, dies, contact = asyncio.run(go('"prober"'))
    assert result.status == "complete", result.errors
    assert [(d.column, d.row, d.status) for d in dies] == [(0, 0, "done"), (1, 0, "done"), (1, 1, "done"),
                                                            (0, 1, "done")]  # the prober's route
    assert not contact
    result, dies, _ = asyncio.run(go("[[0, 0], [3, 3]]"))
    assert result.status == "failed"
    assert any("wafer.dies[1]: die (3, 3) is not on the wafer" in e for e in result.errors), result.errors


def test_steps_not_listed_in_wafer_steps_run_once_before_or_after_the_dies() -> None:
    text = wafer_campaign(extra='steps = ["check"]\nemulated = { columns = 2, rows = 1 }') + \
        '\n[[steps]]\nroutine = "read"\nname = "final"\n'
    loaded = load_campaign(text)
    assert [(u.step_name, u.die) for u in loaded.units] == [("forming-0", None), ("check", 0), ("check", 1),
                                                            ("final", None)]
    assert [u.index for u in loaded.units] == [0, 1, 2, 3]
    middle = wafer_campaign(extra='steps = ["forming-0", "final"]') + '\n[[steps]]\nroutine = "read"\nname = "final"\n'
    with pytest.raises(CampaignError, match=r"steps\[1\]: step 'check' lies between steps run on each die"):
        load_campaign(middle)


@pytest.mark.parametrize("stop_after", [3, 40, 95])  # batches: inside die 0, around die 1, inside die 3
def test_a_run_stopped_inside_a_die_resumes_there_and_stores_what_an_uninterrupted_run_stores(
        tmp_path, kill_reference, stop_after) -> None:
    path = tmp_path / "stopped.sqlite"
    control = RunControl()
    seen = [0]

    def count(_batch) -> None:  # noqa: ANN001
        seen[0] += 1
        if seen[0] == stop_after:
            control.request_stop("test stop")

    with Store(path) as store:
        first = asyncio.run(Runner.new(store, KILL_CAMPAIGN, "kill.toml", control=control, on_batch=count).run())
        assert first.status == "aborted"
        interrupted = [d.status for d in store.dies(first.run_id)]
        assert "measuring" in interrupted or "pending" in interrupted
        second = asyncio.run(Runner.resume(store, first.run_id).run())
        assert second.status == "complete", second.errors
    got, want = _content(path), kill_reference
    assert got["dies"] == want["dies"] and got["units"] == want["units"]
    assert got["measurements"] == want["measurements"]


def test_a_die_whose_units_were_committed_but_not_its_end_is_recorded_done_on_resume(tmp_path) -> None:
    """The window a SIGKILL can hit: the die's last unit committed, the die's own record not yet."""
    reference, ref_dies, _ = run(tmp_path / "ref.sqlite", wafer_campaign())
    with Store(tmp_path / "ref.sqlite") as store:
        die0_batches = sum(1 for b in store.batches(reference.run_id) if b.unit_index <= ref_dies[0].last_unit)
    control = RunControl()
    seen = [0]

    def count(_batch) -> None:  # noqa: ANN001
        seen[0] += 1
        if seen[0] == die0_batches + 1:
            control.request_stop("test stop")  # in die 1's first unit: die 0 is done

    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        first = asyncio.run(Runner.new(store, wafer_campaign(), "wafer.toml", control=control, on_batch=count).run())
        assert first.status == "aborted" and store.dies(first.run_id)[0].status == "done"
        store.update_die(first.run_id, 0, "measuring")  # as if killed before the die's record was committed
        assert asyncio.run(Runner.resume(store, first.run_id).run()).status == "complete"
        dies = store.dies(first.run_id)
    assert [(d.status, d.summary) for d in dies] == [(d.status, d.summary) for d in ref_dies]


def test_a_die_summary_keeps_a_swept_step_apart_by_sweep_point(tmp_path) -> None:
    """A die's summary follows the run's rule (runner.step_summaries): each sweep point on its own,
    "<step>" what the step left (its last point), never all points averaged together."""
    text = wafer_campaign(extra="emulated = { columns = 2, rows = 1 }") + """
[steps.sweep]
v_read = [0.1, 0.3]
"""
    result, dies, _ = run(tmp_path / "s.sqlite", text)
    assert result.status == "complete", result.errors
    for d in dies:
        low, high = d.summary["check[0]"], d.summary["check[1]"]
        assert low["cells"] == high["cells"] == 64
        assert d.summary["check"] == high
        assert low != high  # the two read biases read differently
