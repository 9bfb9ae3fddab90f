"""Array-shaped access to stored runs (labctl.open_run): labelled coordinates, units, tidy frames,
reading only what is asked, and reading a run that another thread is still writing."""
from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

import labctl
from labctl.campaigns import Runner, Store
from helpers import campaign_text, stored_run

CAMPAIGN = campaign_text("arrays", 6, 5, 11, """
[[steps]]
routine = "forming"
name = "form"
params = { step = 0.1, chunk = 16 }
[[steps]]
routine = "program"
name = "transfer"
params = { levels = [20e-6, 40e-6, 60e-6], loop = "host", chunk = 16 }
[steps.sweep]
tolerance = [0.05, 0.01]
[[steps]]
routine = "read_noise"
name = "noise"
params = { repeats = 4 }
""")


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    path = tmp_path_factory.mktemp("arrays") / "runs.sqlite"
    return path, stored_run(path, CAMPAIGN, "arrays.toml")


def test_steps_and_kinds_are_listed_without_reading_measurements(stored):
    path, run_id = stored
    run = labctl.open_run(path, run_id[:12])
    assert run.run_id == run_id
    steps = run.steps()
    assert [(s.index, s.name, s.routine) for s in steps] == [(0, "form", "forming"), (1, "transfer", "program"),
                                                             (2, "noise", "read_noise")]
    assert steps[0].kinds == {"forming_sweep": ([], ["v", "i"]),
                              "forming": (["v_form_1t1r", "i_form", "v_form_reram", "formed"], [])}
    assert "verify_read" in steps[1].kinds and "program" in steps[1].kinds
    with pytest.raises(KeyError, match="no step 'nope'"):
        run.dataset("nope")
    with pytest.raises(KeyError, match="no batches of kind 'absent'; it holds reset_sweep, verify_read, program"):
        run.dataset(1, "absent")


def test_a_program_step_is_a_grid_over_sweep_row_col_with_units(stored):
    path, run_id = stored
    ds = labctl.open_run(path).dataset("transfer")
    assert dict(ds.sizes) == {"sweep_index": 2, "row": 6, "col": 5}
    assert ds["tolerance"].values.tolist() == [0.05, 0.01] and ds["tolerance"].dims == ("sweep_index",)
    assert ds["g"].attrs["units"] == "S" and ds["target"].attrs["units"] == "S" and ds["t"].attrs["units"] == "s"
    assert ds["iterations"].attrs["units"] == "1" and ds.attrs["kind"] == "program"
    with Store(path, read_only=True) as s:
        batches = list(s.batches(run_id, ["program"], step_index=1))
        units = {u.unit_index: u for u in s.units(run_id)}
    assert batches
    for b in batches:  # every stored value lands at its labelled place, exactly
        sweep = units[b.unit_index].sweep_index
        got = ds["g"].sel(sweep_index=sweep).values[b.rows, b.cols]
        assert got.tolist() == b.scalars["g"].tolist()
        assert (ds["t"].sel(sweep_index=sweep).values[b.rows, b.cols] == b.t).all()
    # the host loop's verify reads: one per iteration, labelled by the routine's own iteration index
    vr = labctl.open_run(path).dataset("transfer", "verify_read", ["g", "iteration"])
    assert vr["iteration"].values.tolist() == list(range(vr.sizes["iteration"])) and "target" not in vr
    first = vr["g"].isel(sweep_index=0, iteration=0)
    assert np.isfinite(first.values).all()  # every cell is read at iteration 0
    last = vr["g"].isel(sweep_index=0, iteration=-1)
    assert np.isnan(last.values).any()  # cells that converged earlier have no later reads


def test_sweeps_and_repeated_reads_come_with_their_axes(stored):
    path, run_id = stored
    run = labctl.open_run(path, run_id)
    sweep = run.dataset("form", "forming_sweep")
    assert sweep["i"].dims == ("row", "col", "point") and sweep["v"].dims == ("point",)
    assert sweep["i"].attrs["units"] == "A" and sweep["v"].attrs["units"] == "V"
    assert sweep["v"].values[0] == 0.0 and np.all(np.diff(sweep["v"].values) > 0)  # the applied ramp
    with Store(path, read_only=True) as s:
        (b, *_) = s.batches(run_id, ["forming_sweep"], traces=True)
    np.testing.assert_array_equal(sweep["i"].values[b.rows, b.cols], b.traces["i"])
    noise = run.dataset("noise")
    assert dict(noise.sizes) == {"repeat": 4, "row": 6, "col": 5} and noise["repeat"].values.tolist() == [0, 1, 2, 3]
    assert "repeat" not in noise.data_vars and np.isfinite(noise["g"].values).all()
    frame = run.frame("noise")
    assert len(frame) == 4 * 30 and list(frame.columns[:9]) == ["unit_index", "pass_index", "sweep_index",
                                                                "repeat_index", "attempt", "seq", "t", "row", "col"]
    assert frame.attrs["units"]["g"] == "S"
    pivot = frame.set_index(["repeat", "row", "col"])["g"].to_xarray()
    np.testing.assert_array_equal(pivot.values, noise["g"].values)
    tidy = run.frame("form", "forming_sweep", traces=True)
    assert len(tidy) == 30 * sweep.sizes["point"] and set(tidy.columns) >= {"point", "v", "i"}


def test_a_run_can_be_read_while_another_thread_writes_it(tmp_path):
    path = tmp_path / "live.sqlite"
    text = campaign_text("live", 6, 5, 11, '[[steps]]\nroutine = "read_noise"\nname = "noise"\nparams = { repeats = 40 }\n')
    reached, release = threading.Event(), threading.Event()
    seen = {"batches": 0}

    def on_batch(m) -> None:
        seen["batches"] += 1
        if seen["batches"] == 10:  # hold the run in the middle until the reader has looked
            reached.set()
            assert release.wait(30)

    result = {}

    def writer() -> None:
        with Store(path) as s:
            result["r"] = asyncio.run(Runner.new(s, text, "live.toml", on_batch=on_batch).run())

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert reached.wait(30)
        run = labctl.open_run(path)
        assert run.record.status == "running"
        for _ in range(200):  # the writer thread commits behind the routine: wait for the first reads
            partial = run.dataset("noise") if "noise" in [s.name for s in run.steps() if s.kinds] else None
            if partial is not None and partial.sizes.get("repeat", 1) >= 2:
                break
            threading.Event().wait(0.01)
        assert partial is not None and 2 <= partial.sizes["repeat"] <= 10
        assert np.isfinite(partial["g"].values).all()
    finally:
        release.set()
        thread.join(60)
    assert result["r"].status == "complete"
    done = labctl.open_run(path).dataset("noise")
    assert done.sizes["repeat"] == 40
    np.testing.assert_array_equal(done["g"].values[: partial.sizes["repeat"]], partial["g"].values)
