"""Careless and hostile campaign input (issue 20, items 4, 5, 10 and 11): refused while validating, in
bounded time and memory, before anything is sent to the array."""
from __future__ import annotations

import math
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import pytest

import emulator
from emulator.controller import ChipController, serve_tcp
from helpers import FORMING_STEP, campaign_text
from labctl.backends import ChipBackend, EmulatorBackend
from labctl.campaigns import CampaignError, Store, load_campaign
from labctl.campaigns.plan import MAX_SWEEP_POINTS, MAX_UNITS


def problems(text: str) -> dict[str, str]:
    """{path: message} of every problem load_campaign reports for `text`."""
    from labctl.campaigns.problems import format_path

    with pytest.raises(CampaignError) as info:
        load_campaign(text, "c.toml")
    return {format_path(p.path): p.message for p in info.value.problems}


def labctl(*args: str, cwd: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "labctl.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


# -- item 4: non-finite values -----------------------------------------------------------------------
NAN_AFTER_FORMING = campaign_text("nan", 8, 4, 0, FORMING_STEP + """
[[steps]]
routine = "conditioning"
[steps.params]
v_read = nan
""")


def test_nan_in_a_later_step_is_refused_by_check_and_nothing_is_formed(tmp_path) -> None:
    (tmp_path / "c.toml").write_text(NAN_AFTER_FORMING)
    got = labctl("run", "c.toml", "--check", cwd=tmp_path)
    assert got.returncode == 2 and "steps[1].params.v_read: must be a finite number, got nan" in got.stderr
    assert "Traceback" not in got.stderr
    got = labctl("run", "c.toml", "--store", "runs.sqlite", cwd=tmp_path)
    assert got.returncode == 2 and "v_read" in got.stderr
    # Refused before a run was created: no cell was formed, nothing stored.
    if (tmp_path / "runs.sqlite").exists():
        with Store(tmp_path / "runs.sqlite") as store:
            assert store.runs() == []


@pytest.mark.parametrize("field, value", [("v_stop", "inf"), ("compliance", "inf"), ("v_stop", "-inf"),
                                          ("dwell", "nan")])
def test_non_finite_forming_parameters_are_refused_once_with_their_line(field: str, value: str) -> None:
    text = campaign_text("inf", 8, 4, 0, FORMING_STEP + f"[steps.params]\n{field} = {value}\n")
    found = problems(text)
    assert list(found) == [f"steps[0].params.{field}"]
    assert found[f"steps[0].params.{field}"].startswith("must be a finite number")


def test_non_finite_limits_and_sweep_values_are_refused() -> None:
    text = campaign_text("inf", 8, 4, 0, "[limits]\nmax_abs_voltage = inf\n\n" + FORMING_STEP
                         + "[steps.sweep]\nv_stop = [3.0, nan]\n")
    found = problems(text)
    assert found["limits.max_abs_voltage"].startswith("must be a finite number")
    assert found["steps[0].sweep.v_stop[1]"].startswith("must be a finite number")


def test_limit_check_reports_a_non_finite_value_instead_of_skipping_it() -> None:
    from labctl.campaigns.param_limits import exceeds
    from labctl.campaigns.schema import Limits

    assert "finite" in exceeds("max_abs_voltage", math.inf, Limits())
    assert "finite" in exceeds("max_abs_voltage", [1.0, math.nan], Limits())
    assert exceeds("max_abs_voltage", 3.0, Limits()) is None
    assert "exceeds limits.max_abs_voltage" in exceeds("max_abs_voltage", 4.0, Limits())


# -- item 5 and 11: selections beyond the array, duplicate cells ---------------------------------------
@pytest.mark.parametrize("rows", ['"0:1000000000000"', '"-5:"', '"30:40"', '"5:2"', '[0, 32]'])
def test_ranges_beyond_the_array_are_refused_in_every_syntax(rows: str) -> None:
    text = campaign_text("r", 32, 32, 0, FORMING_STEP + f'cells = {{ kind = "ranges", rows = {rows} }}\n')
    found = problems(text)
    (path,) = [p for p in found if p.startswith("steps[0].cells")]
    assert "outside the array" in found[path] and "32 x 32" in found[path]


def test_ranges_inside_the_array_still_select_what_they_say() -> None:
    text = campaign_text("r", 32, 32, 0, FORMING_STEP + 'cells = { kind = "ranges", rows = "28:", cols = "0:32:8" }\n')
    (unit,) = load_campaign(text).units
    assert unit.rows.tolist() == [28] * 4 + [29] * 4 + [30] * 4 + [31] * 4
    assert unit.cols.tolist() == [0, 8, 16, 24] * 4


def test_duplicate_cells_are_refused_naming_the_repeat() -> None:
    text = campaign_text("d", 8, 4, 0, FORMING_STEP + 'cells = { kind = "list", cells = [[0, 0], [1, 1], [0, 0]] }\n')
    found = problems(text)
    assert "repeats cells[0]" in found["steps[0].cells.cells[2]"]
    text = campaign_text("d", 8, 4, 0, FORMING_STEP + 'cells = { kind = "ranges", rows = [1, 2, 1] }\n')
    assert "repeats rows[0]" in problems(text)["steps[0].cells.rows"]


# -- item 10: plans too large to validate -----------------------------------------------------------------
def _bounded(text: str) -> tuple[float, float, str]:
    """(seconds, peak MB traced, error text) of validating `text`, which must be refused."""
    t0 = time.perf_counter()
    with pytest.raises(CampaignError) as info:
        load_campaign(text)
    seconds = time.perf_counter() - t0
    tracemalloc.start()
    try:
        with pytest.raises(CampaignError):
            load_campaign(text)
        peak = tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()
    return seconds, peak, str(info.value)


def test_huge_repeats_are_refused_quickly_and_in_little_memory() -> None:
    text = campaign_text("big", 32, 32, 0, FORMING_STEP + "repeat = 100000\n").replace(
        'name = "big"', 'name = "big"\nrepeat = 100000')
    seconds, peak, message = _bounded(text)
    # Bounds from the issue: 1 s and 100 MB; the time gets a margin for a loaded CI machine.
    assert seconds < 5 and peak < 100, (seconds, peak)
    assert f"at most {MAX_UNITS:,}" in message


def test_a_huge_sweep_is_refused_quickly_and_in_little_memory() -> None:
    values = ", ".join(f"{3 + 0.001 * i:.3f}" for i in range(80))
    body = FORMING_STEP + f"[steps.sweep]\nv_stop = [{values}]\nvg = [{values.replace('3.', '1.')}]\n" \
                          f"step = [{', '.join(f'{0.01 + 1e-4 * i:.4f}' for i in range(80))}]\n"
    seconds, peak, message = _bounded(campaign_text("sweep", 8, 4, 0, body))
    assert seconds < 5 and peak < 100, (seconds, peak)
    assert "512,000 parameter combinations" in message and f"at most {MAX_SWEEP_POINTS:,}" in message


def test_the_largest_accepted_plan_validates_within_the_bounds() -> None:
    text = campaign_text("largest", 32, 32, 0, FORMING_STEP + "repeat = 48\nchunk_cells = 1\n")
    t0 = time.perf_counter()
    loaded = load_campaign(text)
    seconds = time.perf_counter() - t0
    assert MAX_UNITS - 1024 < len(loaded.units) <= MAX_UNITS
    tracemalloc.start()
    try:
        load_campaign(text)
        peak = tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()
    assert seconds < 5 and peak < 100, (seconds, peak)
    # One unit more is refused.
    with pytest.raises(CampaignError, match="units of work"):
        load_campaign(text.replace("repeat = 48", "repeat = 49"))


# -- item 11: summaries, telemetry credentials, the read bias ---------------------------------------------
def test_chunked_iv_cycles_summary_counts_cycles_once(tmp_path) -> None:
    (tmp_path / "c.toml").write_text(campaign_text("iv", 8, 4, 0, FORMING_STEP + """
[[steps]]
routine = "iv_cycles"
chunk_cells = 8
[steps.params]
cycles = 3
step = 0.05
"""))
    got = labctl("run", "c.toml", "--store", "runs.sqlite", "--no-report", cwd=tmp_path)
    assert got.returncode == 0, got.stderr
    line = next(x for x in got.stdout.splitlines() if "(iv_cycles)" in x)
    assert "cells=32" in line and "cycles=3" in line  # four chunks: cells add up, cycles do not


def test_combined_summaries_take_declared_settings_from_one_chunk() -> None:
    from labctl.campaigns.runner import combine_summaries

    chunks = [{"cells": 8, "cycles": 3}, {"cells": 8, "cycles": 3}]
    assert combine_summaries(chunks, [8, 8], "iv_cycles") == {"cells": 16, "cycles": 3}
    assert combine_summaries(chunks, [8, 8], "forming")["cycles"] == 6  # not declared there: a count


def test_a_broker_url_with_credentials_is_refused_and_never_shown(tmp_path) -> None:
    (tmp_path / "c.toml").write_text(campaign_text("mqtt", 8, 4, 0, FORMING_STEP))
    got = labctl("run", "c.toml", "--store", "runs.sqlite", "--mqtt", "mqtt://ada:s3cret@127.0.0.1:1883",
                 cwd=tmp_path)
    assert got.returncode != 0 and "password_env" in got.stderr
    assert "s3cret" not in got.stdout + got.stderr and "Traceback" not in got.stderr
    if (tmp_path / "runs.sqlite").exists():
        with Store(tmp_path / "runs.sqlite") as store:
            assert store.runs() == []


async def test_a_read_at_3_9_V_is_refused_before_it_reaches_a_cell() -> None:
    backend = EmulatorBackend(8, 4, seed=1)
    before = backend.array.snapshot()
    r, c = np.array([0]), np.array([0])
    with pytest.raises(ValueError, match="v_read: 3.9 V exceeds the limit"):
        await backend.read(r, c, 3.9)
    with pytest.raises(ValueError, match="v_read"):
        await backend.read_array(3.9)
    assert backend.array.snapshot() == before
    assert (await backend.read(r, c, 0.2)).shape == (1,)

    controller = ChipController(emulator.Array(8, 4, seed=1))
    server = await serve_tcp(controller, "127.0.0.1", 0)
    try:
        async with ChipBackend(f"tcp://127.0.0.1:{server.sockets[0].getsockname()[1]}") as chip:
            assert chip.limits.max_read_voltage == emulator.Limits().v_read_max
            with pytest.raises(ValueError, match="v_read"):
                await chip.read(r, c, 3.9)
    finally:
        await server.close()


def test_a_campaign_reading_above_the_read_limit_is_refused_at_validation() -> None:
    text = campaign_text("read", 8, 4, 0, '[[steps]]\nroutine = "read"\n[steps.params]\nv_read = 3.9\n')
    assert "exceeds limits.max_read_voltage = 1 V" in problems(text)["steps[0].params.v_read"]
    raised = text.replace("[[steps]]", "[limits]\nmax_read_voltage = 0.5\n\n[[steps]]").replace("3.9", "0.6")
    assert "max_read_voltage = 0.5 V" in problems(raised)["steps[0].params.v_read"]
