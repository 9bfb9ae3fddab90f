"""Campaign files: broken files are rejected before anything runs, with the field and the line."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from labctl.campaigns import CampaignError, Store, load_campaign
from labctl.campaigns.quantities import parse_quantity
from labctl.campaigns.toml_lines import key_lines

GOOD = textwrap.dedent("""\
    [campaign]
    name = "ok"

    [metadata]
    operator = "ada"
    wafer = "W7"
    die = "D12"

    [backend]
    rows = 8
    cols = 4
    seed = 3

    [selections.left]
    kind = "region"
    rows = [0, 8]
    cols = [0, 2]

    [[steps]]
    routine = "forming"
    cells = "left"
    [steps.params]
    v_stop = "3.6 V"
    dwell = "1 ms"

    [[steps]]
    routine = "program"
    cells = { kind = "checkerboard", parity = 1 }
    repeat = 2
    [steps.params]
    levels = ["20 uS", "40 uS"]
    width = "2.5 us"
    [steps.sweep]
    tolerance = [0.02, 0.002]
    """)


def line_of(text: str, needle: str, start: int = 0) -> int:
    """1-based line of the first line containing `needle` at or after line `start` (test-side search)."""
    for i, line in enumerate(text.splitlines(), start=1):
        if i > start and needle in line:
            return i
    raise AssertionError(f"{needle!r} not in the test file")


def problems(text: str) -> list[tuple[str, int | None, str]]:
    with pytest.raises(CampaignError) as info:
        load_campaign(text, "c.toml")
    from labctl.campaigns.model import format_path

    return [(format_path(p.path), p.line, p.message) for p in info.value.problems]


def problems_by_path(text: str) -> dict[str, tuple[int | None, str]]:
    """problems(text) as {path: (line, message)}."""
    return {path: (line, msg) for path, line, msg in problems(text)}


def message_at(path: str, old: str, new: str) -> str:
    """The problem message at `path` of GOOD with `old` replaced by `new`."""
    assert old in GOOD
    return problems_by_path(GOOD.replace(old, new))[path][1]


def test_good_file_loads_with_units_converted_and_plan():
    lc = load_campaign(GOOD, "c.toml")
    forming, program = lc.campaign.steps
    assert lc.units[0].params.v_stop == 3.6 and lc.units[0].params.dwell == pytest.approx(1e-3)
    assert lc.units[0].rows.size == 16  # the 8 x 2 region
    # program: 2 sweep points x 2 repeats, each on the 16 odd-parity cells
    prog = [u for u in lc.units if u.routine == "program"]
    assert [(u.sweep_index, u.repeat_index) for u in prog] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert [u.params.tolerance for u in prog] == [0.02, 0.02, 0.002, 0.002]
    assert prog[0].params.levels == pytest.approx([20e-6, 40e-6]) and prog[0].params.width == pytest.approx(2.5e-6)
    assert all(((u.rows + u.cols) % 2 == 1).all() and u.rows.size == 16 for u in prog)
    assert lc.campaign.metadata.die == "D12"


def test_missing_fields_name_the_field_and_the_table_line():
    text = GOOD.replace('name = "ok"\n', "")
    found = problems(text)
    assert ("campaign.name", line_of(text, "[campaign]"), "Field required") in found
    text = GOOD.split("[[steps]]")[0]
    found = problems(text)
    assert any(path == "steps" and "required" in msg for path, _, msg in found)


def test_unknown_routine_and_misspelt_field_name_their_lines():
    text = GOOD.replace('routine = "forming"', 'routine = "formin"').replace("seed = 3", "sed = 3")
    found = problems_by_path(text)
    assert found["steps[0].routine"][0] == line_of(text, '"formin"')
    assert "unknown routine 'formin'" in found["steps[0].routine"][1] and "forming" in found["steps[0].routine"][1]
    assert found["backend.sed"] == (line_of(text, "sed = 3"), found["backend.sed"][1])
    assert "unknown field" in found["backend.sed"][1]


def test_wrong_units_are_rejected_with_the_expected_unit():
    text = GOOD.replace('width = "2.5 us"', 'width = "2.5 mV"').replace('dwell = "1 ms"', 'dwell = "1 mA"')
    found = problems_by_path(text)
    line, msg = found["steps[1].params.width"]
    assert line == line_of(text, "width =") and "in V" in msg and "in s" in msg
    line, msg = found["steps[0].params.dwell"]
    assert line == line_of(text, "dwell =") and "in A" in msg
    # a unit where the field is a plain number
    text = GOOD.replace("repeat = 2", 'repeat = "2 V"')
    assert any(p == "steps[1].repeat" for p, _, _ in problems(text))
    # a unit inside a list parameter
    text = GOOD.replace('levels = ["20 uS", "40 uS"]', 'levels = ["20 uS", "40 us"]')
    assert any(p == "steps[1].params.levels[1]" and "in s" in m for p, _, m in problems(text))


def test_limits_violated_by_parameters_defaults_and_sweeps():
    text = GOOD.replace('v_stop = "3.6 V"', "v_stop = 4.2") + "\n[limits]\nmax_abs_voltage = 4.0\n"
    found = problems_by_path(text)
    line, msg = found["steps[0].params.v_stop"]
    assert line == line_of(text, "v_stop = 4.2")
    assert "4.2 V exceeds limits.max_abs_voltage = 4 V" in msg
    # a default that breaks a tightened limit is reported at the step's routine line
    text = GOOD.replace('v_stop = "3.6 V"\n', "") + "\n[limits]\nmax_abs_voltage = 3.0\n"
    found = problems_by_path(text)
    assert "default v_stop" in found["steps[0].routine"][1]
    assert found["steps[0].routine"][0] == line_of(text, 'routine = "forming"')
    # a sweep value beyond a limit: the line of the sweep, the index of the value
    text = GOOD.replace("tolerance = [0.02, 0.002]", 'width = ["2.5 us", "2 ms"]')
    found = problems_by_path(text)
    assert "limits.max_pulse_width" in found["steps[1].sweep.width[1]"][1]
    assert found["steps[1].sweep.width[1]"][0] == line_of(text, "width = [")


def test_routine_constraints_and_sweep_names_are_checked_per_point():
    tolerance = "tolerance = [0.02, 0.002]"
    assert "less than 1" in message_at("steps[1].sweep.tolerance[1]", tolerance, "tolerance = [0.02, 1.5]")
    assert "no parameter 'tolerence'" in message_at("steps[1].sweep.tolerence", tolerance, "tolerence = [0.02]")


def test_selections_outside_the_array_name_the_field():
    text = GOOD.replace("cols = [0, 2]", "cols = [0, 6]")
    found = problems_by_path(text)
    line, msg = found["selections.left.cols"]
    assert line == line_of(text, "cols = [0, 6]") and "8 x 4" in msg
    cells = 'cells = "left"'
    assert "no selection named 'right'" in message_at("steps[0].cells", cells, 'cells = "right"')
    listed = 'cells = { kind = "list", cells = [[0, 0], [9, 1]] }'
    assert "row 9 is outside" in message_at("steps[0].cells.cells[1]", cells, listed)


def test_every_problem_is_reported_in_one_pass():
    text = (GOOD.replace("rows = 8\ncols = 4", "rows = 0\ncols = 4").replace('width = "2.5 us"', "width = -1")
            .replace('operator = "ada"', 'operator = "ada"\ntelemetry = 3'))
    found = problems(text)
    paths = {p for p, _, _ in found}
    assert {"backend.rows", "steps[1].params.width"} <= paths
    assert all(line is not None for _, line, _ in found)


def test_line_scanner_follows_arrays_of_tables_and_multiline_values():
    text = 'a = 1\nlist = [\n  1,\n  2,\n]\n[[steps]]\nx = """\nk = 2\n"""\n[steps.params]\ny = 1\n[[steps]]\n' \
           '[steps.params]\ny = 2\n'
    lines = key_lines(text)
    assert lines[("list",)] == 2
    assert ("k",) not in lines and ("steps", 0, "k") not in lines
    assert lines[("steps", 0, "params", "y")] == 11
    assert lines[("steps", 1, "params", "y")] == 14


@pytest.mark.parametrize("text, value", [("2.5 us", 2.5e-6), ("-1.3 V", -1.3), ("30 uS", 30e-6), ("1 mA", 1e-3),
                                         ("10 ms", 1e-2), ("2 h", 7200.0), ("0.8 kohm", 800.0)])
def test_quantities(text, value):
    v, _ = parse_quantity(text)
    assert v == pytest.approx(value)


def test_cli_rejects_a_broken_file_before_creating_a_run(tmp_path):
    bad = tmp_path / "bad.toml"
    text = GOOD.replace('width = "2.5 us"', 'width = "2.5 mV"')
    bad.write_text(text)
    store = tmp_path / "runs.sqlite"
    proc = subprocess.run([sys.executable, "-m", "labctl.cli", "run", str(bad), "--store", str(store)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert f"bad.toml:{line_of(text, 'width =')}: steps[1].params.width" in proc.stderr
    assert not store.exists() or Store(store).runs() == []
