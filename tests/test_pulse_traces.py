"""The current during each pulse, measured by a pulse-and-measure station (the emulated 4200A-SCS
with its 4225-PMU, over real sockets through pyvisa-py), stored by the campaign runner as
"pulse_trace" batches in the real SQLite store and read back through open_run, the exports and the
report; the same campaign on the in-process emulator stores no trace and the same other batches;
the per-cell bound (decimation beyond a step's pulse_traces) and what a take says when the
backend's bounded memory overflowed."""
from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import emulator
import numpy as np
import pytest
import xarray as xr
from emulator.instruments import InstrumentBench

import labctl
from labctl.backends import EmulatorBackend
from labctl.backends.base import PulseCurrents
from labctl.backends.station import CellTrace, ArrayClock, StationBackend, TraceLog
from labctl.campaigns import Runner, Store
from labctl.campaigns.export import export_csv, export_parquet, read_csv
from labctl.campaigns.pulse_traces import kept, stored_count
from labctl.instruments import PulseTrace, StationConfig

pytestmark = pytest.mark.timeout(120)

PMU_STATION = Path(__file__).resolve().parents[1] / "examples" / "station-4200a-pmu.toml"
SEED = 7
CAP = 3  # the endurance step's pulse_traces: decimated beyond 3 pulses per cell
CAMPAIGN = f"""[campaign]
name = "pmu transients"

[backend]
rows = 2
cols = 2
seed = {SEED}

[[steps]]
routine = "forming"
params = {{ step = 0.05 }}

[[steps]]
routine = "conditioning"
params = {{ step = 0.05 }}

[[steps]]
name = "transfer"
routine = "program"
params = {{ targets = [30e-6, 60e-6, 40e-6, 50e-6], max_iterations = 60, loop = "host" }}

[[steps]]
name = "train"
routine = "pulse_train"
params = {{ batch = 3, cycles = 1 }}

[[steps]]
name = "identical"
routine = "pulses"
params = {{ count = 2 }}

[[steps]]
name = "cycling"
routine = "endurance"
pulse_traces = {CAP}
params = {{ max_cycles = 4, check_every = 4, pulses_per_switch = 2 }}
"""


class RecordedStation(StationBackend):
    """The real StationBackend, keeping a copy of every take it hands to the runner."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.taken: list[PulseCurrents] = []

    def take_pulse_currents(self) -> PulseCurrents:
        taken = super().take_pulse_currents()
        self.taken.append(taken)
        return taken


async def _station_run(store_path: Path) -> tuple[str, RecordedStation, list[tuple[str, dict]]]:
    array = emulator.Array(2, 2, seed=SEED)
    config = StationConfig.from_toml(PMU_STATION).with_array(2, 2)
    async with InstrumentBench(array) as bench:
        async with RecordedStation(config, resources=dict(bench.resources()), clock=ArrayClock(array)) as backend:
            with Store(store_path) as store:
                result = await Runner.new(store, CAMPAIGN, "c.toml", backend=backend).run()
        log = list(bench.analyzer_bench.operations)
    assert result.status == "complete", result.errors
    return result.run_id, backend, log


@pytest.fixture(scope="module")
def station_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, RecordedStation, list]:
    path = tmp_path_factory.mktemp("pmu") / "runs.sqlite"
    run_id, backend, log = asyncio.run(_station_run(path))
    return path, run_id, backend, log


def _measured(backend: RecordedStation) -> list:
    return [p for take in backend.taken for p in take.pulses]


def test_every_pulse_is_stored_as_the_backend_measured_it(station_run) -> None:
    path, run_id, backend, log = station_run
    measured = _measured(backend)
    # One measured pulse per pulse the array saw through the PMU; nothing fell off the bounded log.
    assert len(measured) == sum(1 for op in log if op[0] == "pulse") > 50
    assert sum(t.lost for t in backend.taken) == 0
    with Store(path, read_only=True) as s:
        units = {u.unit_index: u for u in s.units(run_id)}
        batches = list(s.batches(run_id, ["pulse_trace"], traces=True))
        events = [e.message for e in s.events(run_id) if e.kind == "pulse_traces"]
    # The steps that pulse store traces; forming and conditioning sweep with the SMU and store none.
    step = [units[b.unit_index].step_name for b in batches]
    assert list(dict.fromkeys(step)) == ["transfer", "train", "identical", "cycling"]
    # Every pulse is stored in the order measured, except those the cycling step's bound decimates.
    first = step.index("cycling")
    before = sum(b.rows.size for b in batches[:first])
    counts: dict[tuple[int, int], int] = {}
    expected = list(measured[:before])
    for p in measured[before:]:
        n = counts.get((p.row, p.col), 0)
        counts[(p.row, p.col)] = n + 1
        if kept(n, CAP):
            expected.append(p)
    stored = [(b, k) for b in batches for k in range(b.rows.size)]
    assert len(stored) == len(expected) < len(measured)
    for (b, k), p in zip(stored, expected, strict=True):
        assert (int(b.rows[k]), int(b.cols[k])) == (p.row, p.col)
        n = p.currents.size
        # bit for bit after the store's rule for per-cell traces (float32)
        assert np.array_equal(b.traces["pulse_current"][k, :n], p.currents.astype(np.float32).astype(np.float64))
        assert np.array_equal(b.traces["pulse_time"][k, :n], p.times)  # one time axis per batch: exact
        assert b.scalars["pulse_voltage"][k] == p.voltage and b.scalars["pulse_width"][k] == p.width
    for b in batches:  # each cell once per batch
        assert len(set(zip(b.rows.tolist(), b.cols.tolist()))) == b.rows.size
    assert len(events) == 4 and sum(int(e.split()[2]) for e in events) == len(measured)


def test_open_run_gives_the_currents_with_units_and_their_time_axis(station_run) -> None:
    path, run_id, backend, log = station_run
    run = labctl.open_run(path, run_id)
    ds = run.dataset("transfer", "pulse_trace")
    assert ds["pulse_current"].dims == ("pulse", "row", "col", "point")
    assert ds["pulse_current"].attrs["units"] == "A" and ds["pulse_voltage"].attrs["units"] == "V"
    assert ds["pulse_width"].attrs["units"] == "s" and ds["pulse_time"].attrs["units"] == "s"
    assert "pulse_time" in ds.coords and ds["pulse_time"].dims == ("point",)
    assert np.all(np.diff(ds["pulse_time"].values) > 0) and ds["pulse_time"].values[-1] <= 2.5e-6
    # Pulse n of a cell follows its verify read n: the cells pulsed k times are those read k + 1 times.
    reads = run.dataset("transfer", "verify_read", ["g", "iteration"])
    program = run.dataset("transfer", "program")
    n_pulses = np.isfinite(ds["pulse_voltage"]).sum("pulse")
    assert np.array_equal(n_pulses.values, program["iterations"].values)
    assert np.array_equal(n_pulses.values + 1, np.isfinite(reads["g"]).sum("iteration").values)
    # Set pulses (positive) draw current in the direction of the pulse.
    sign = np.sign(ds["pulse_voltage"]).values[..., None]
    finite = np.isfinite(ds["pulse_current"].values)
    assert np.all((np.sign(ds["pulse_current"].values) == sign)[finite])


def test_exports_round_trip_the_pulse_currents(station_run, tmp_path: Path) -> None:
    path, run_id, backend, log = station_run
    run = labctl.open_run(path, run_id)
    want = run.dataset("train", "pulse_trace")
    # NetCDF through the CLI in a subprocess: the group holds exactly the dataset open_run gives.
    nc = tmp_path / "run.nc"
    proc = subprocess.run([sys.executable, "-m", "labctl.cli", "runs", "export", run_id, "--format", "netcdf",
                           "--out", str(nc), "--store", str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    got = xr.open_dataset(nc, group="3-train/pulse_trace", engine="h5netcdf").load()
    assert got["pulse_current"].dtype == np.float32 and got["pulse_current"].attrs["units"] == "A"
    assert np.array_equal(got["pulse_current"].values.astype(np.float64), want["pulse_current"].values, equal_nan=True)
    assert np.array_equal(got["pulse_time"].values, want["pulse_time"].values) and "pulse_time" in got.coords
    # CSV and Parquet: one row per cell and quantity, the trace as its list of samples.
    with Store(path, read_only=True) as s:
        export_csv(s, run_id, tmp_path / "run.csv")
        export_parquet(s, run_id, tmp_path / "run.parquet")
        stored = [b for b in s.batches(run_id, ["pulse_trace"], traces=True)]
    rows = [r for r in read_csv(tmp_path / "run.csv") if r["kind"] == "pulse_trace" and r["quantity"] == "pulse_current"]
    assert len(rows) == sum(b.rows.size for b in stored)
    by_cell = {(b.seq, b.unit_index, int(r), int(c)): b.traces["pulse_current"][k]
               for b in stored for k, (r, c) in enumerate(zip(b.rows, b.cols))}
    for r in rows:
        assert np.array_equal(r["trace"], by_cell[(r["seq"], r["unit_index"], r["cell_row"], r["cell_col"])],
                              equal_nan=True)
    # ArC TWO files have no place for them: its synthetics keep the sweeps only (docs/store.md).
    import h5py

    from labctl.campaigns.arc_hdf5 import export_arc_hdf5

    with Store(path, read_only=True) as s:
        export_arc_hdf5(s, run_id, tmp_path / "run.h5")
    with h5py.File(tmp_path / "run.h5") as f:
        kinds = {f["synthetics"][g].attrs["labctl_kind"] for g in f["synthetics"]}
    assert kinds == {"forming_sweep", "condition_sweep", "reset_sweep"}
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "run.parquet").to_pandas()
    currents = table[(table.kind == "pulse_trace") & (table.quantity == "pulse_current")]
    assert len(currents) == len(rows)
    assert all(np.array_equal(np.asarray(t), by_cell[(q, u, rr, cc)], equal_nan=True) for t, q, u, rr, cc in
               zip(currents.trace, currents.seq, currents.unit_index, currents.cell_row, currents.cell_col))


def test_decimation_beyond_the_steps_pulse_traces(station_run) -> None:
    path, run_id, backend, log = station_run
    run = labctl.open_run(path, run_id)
    ds = run.dataset("cycling", "pulse_trace")
    assert ds.attrs["pulse_traces"] == CAP and "every 2nd" in ds.attrs["decimation"]
    # Every pulse up to 3 per cell, then every 2nd, every 4th...: pulse numbers 0 1 2 4 8 ..., each
    # trace saying how many pulses it stands for.
    numbers = ds["pulse"].values
    assert numbers.tolist() == [0, 1, 2, 4, 8]  # of 16 pulses per cell
    stride = ds["pulse_stride"].values
    assert np.nanmax(stride[numbers < CAP]) == 1 and np.nanmin(stride[numbers >= 2 * CAP]) == 4
    reads = run.frame("cycling", "endurance_read")
    with Store(path, read_only=True) as s:
        units = {u.unit_index: u for u in s.units(run_id)}
        step = [u for u in units.values() if u.step_name == "cycling"]
        event = next(e.message for e in s.events(run_id) if e.kind == "pulse_traces" and
                     e.message.startswith(f"unit {step[0].unit_index}:"))
    # Per cell: 2 pulses x 2 halves per cycle, its last cycle from the stored reads.
    last = reads.groupby(["row", "col"])["cycle"].max()
    per_cell = np.array([4 * int(last[(r, c)]) for r in ds.row.values for c in ds.col.values]).reshape(2, 2)
    stored = np.isfinite(ds["pulse_voltage"]).sum("pulse").values
    assert np.array_equal(stored, [[stored_count(n, CAP) for n in row] for row in per_cell])
    assert f"{int(per_cell.sum())} pulse(s) measured, {int(stored.sum())} trace(s) stored" in event
    assert "then every 2nd" in event


def test_the_emulator_stores_no_trace_and_the_same_other_batches(station_run, tmp_path: Path) -> None:
    path, run_id, backend, log = station_run
    with Store(tmp_path / "emulator.sqlite") as store:
        result = asyncio.run(Runner.new(store, CAMPAIGN, "c.toml").run())
        assert result.status == "complete", result.errors
        emulated = list(store.batches(result.run_id, traces=True))
        assert not [e for e in store.events(result.run_id) if e.kind == "pulse_traces"]
    with Store(path, read_only=True) as s:
        station = [b for b in s.batches(run_id, traces=True) if b.kind != "pulse_trace"]
    assert {b.kind for b in emulated}.isdisjoint({"pulse_trace"})
    assert len(emulated) == len(station)
    for e, b in zip(emulated, station):
        assert (e.kind, e.unit_index, e.t) == (b.kind, b.unit_index, b.t)
        assert np.array_equal(e.rows, b.rows) and np.array_equal(e.cols, b.cols)
        assert e.scalars.keys() == b.scalars.keys() and e.traces.keys() == b.traces.keys()
        for q in e.scalars:
            assert np.array_equal(e.scalars[q], b.scalars[q], equal_nan=True), (e.kind, q)
        for q in e.traces:
            assert np.array_equal(e.traces[q], b.traces[q], equal_nan=True), (e.kind, q)
    # On the emulator the seq numbers are what they were (0, 1, ... per unit, no gaps for traces).
    for u in {e.unit_index for e in emulated}:
        assert [e.seq for e in emulated if e.unit_index == u] == list(range(sum(e.unit_index == u for e in emulated)))


def test_the_report_draws_the_transient_currents(station_run, tmp_path: Path) -> None:
    path, run_id, backend, log = station_run
    from labctl.campaigns.report import write_report

    with Store(path, read_only=True) as s:
        write_report(s, run_id, tmp_path)
    names = sorted(p.name for p in tmp_path.glob("*pulse-currents*.png"))
    assert names == ["step-02-transfer-pulse-currents.png", "step-03-train-pulse-currents.png",
                     "step-04-identical-pulse-currents.png", "step-05-cycling-pulse-currents.png"]
    page = (tmp_path / "report.html").read_text()
    assert page.count("Current during the pulses") == 4


def test_decimation_rule_and_the_bounded_log() -> None:
    # stored_count is the count of kept pulse numbers, for small and uneven bounds.
    for keep in (1, 2, 3, 5, 8):
        for n in range(0, 300, 7):
            assert stored_count(n, keep) == sum(kept(k, keep) for k in range(n)), (keep, n)
    assert stored_count(100, 0) == 0 and not kept(0, 0)
    # A long endurance run: 10^6 cycles of 2 pulses, at the default bound, stores ~ 2000 + 1000 per doubling.
    assert stored_count(1300, 2000) == 1300  # the REF open-loop sequence: every pulse
    assert stored_count(2_000_000, 2000) == 11_954  # 10^6 cycles: 2000 + ~1000 per doubling
    # The station's log keeps its newest traces; a take says how many fell off before it.
    log = TraceLog(3)
    trace = PulseTrace(1.3, 2.5e-6, np.array([1e-6, 2e-6]), np.array([1e-5, 2e-5]))
    for k in range(5):
        log.append(CellTrace(0, k, trace))
    taken = log.take()
    assert [p.col for p in taken.pulses] == [2, 3, 4] and taken.lost == 2 and len(log) == 0
    assert log.take() == PulseCurrents((), 0)


async def test_backends_that_do_not_measure_during_pulses_give_nothing() -> None:
    async with EmulatorBackend(2, 2, seed=SEED) as b:
        await b.pulse(np.array([0]), np.array([0]), 1.3, 1.4, 2.5e-6)
        assert b.take_pulse_currents() == PulseCurrents()


CLI_CAMPAIGN = """[campaign]
name = "pmu transients through labctl run"

[backend]
kind = "station"
station = "{station}"
clock = "tcp://127.0.0.1:{port}"
rows = 8
cols = 4
seed = {seed}

[selections.two]
kind = "list"
cells = [[5, 1], [0, 3]]

[[steps]]
routine = "forming"
cells = "two"
params = {{ step = 0.05 }}

[[steps]]
routine = "conditioning"
cells = "two"
params = {{ step = 0.05 }}

[[steps]]
name = "transfer"
routine = "program"
cells = "two"
params = {{ targets = [30e-6, 50e-6], max_iterations = 40 }}
"""


def test_labctl_run_on_labctl_emulate_stores_the_pulse_currents(tmp_path: Path) -> None:
    """`labctl run` (a subprocess) on the instruments `labctl emulate` serves (another one), the
    station's clock through the chip controller: the traces stored are those of the same campaign
    run in this process on an emulated bench of the same seed, bit for bit."""
    import re

    from helpers import free_port

    port = free_port()
    emulate = subprocess.Popen([sys.executable, "-m", "labctl.cli", "emulate", "--no-pty", "--rows", "8", "--cols",
                                "4", "--seed", str(SEED), "--port", str(port)], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    try:
        resources: dict[str, str] = {}
        assert emulate.stdout is not None
        while not {"analyzer_4200a", "matrix_707b_pa"} <= resources.keys():
            line = emulate.stdout.readline()
            assert line, "labctl emulate ended before it served its instruments"
            if line.startswith("instrument "):
                _, name, resource = line.split()
                resources[name] = resource
        text = PMU_STATION.read_text()
        for name in ("analyzer_4200a", "matrix_707b_pa"):
            text = re.sub(rf'(\[instruments\.{name}\]\nresource = )"[^"]*"', rf'\g<1>"{resources[name]}"', text)
        (tmp_path / "station.toml").write_text(text)
        campaign = CLI_CAMPAIGN.format(station=tmp_path / "station.toml", port=port, seed=SEED)
        (tmp_path / "c.toml").write_text(campaign)
        proc = subprocess.run([sys.executable, "-m", "labctl.cli", "run", "c.toml", "--store", "runs.sqlite"],
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    finally:
        emulate.terminate()
        emulate.wait(30)
    with Store(tmp_path / "runs.sqlite", read_only=True) as s:
        (rec,) = s.runs()
        got = list(s.batches(rec.run_id, ["pulse_trace"], traces=True))
        program = next(b for b in s.batches(rec.run_id, ["program"]))

    async def here() -> list:
        array = emulator.Array(8, 4, seed=SEED)
        async with InstrumentBench(array) as bench:
            async with StationBackend(PMU_STATION, resources=dict(bench.resources()), clock=ArrayClock(array)) as b:
                with Store(tmp_path / "here.sqlite") as store:
                    result = await Runner.new(store, campaign, "c.toml", backend=b).run()
                    assert result.status == "complete", result.errors
                    return list(store.batches(result.run_id, ["pulse_trace"], traces=True))

    want = asyncio.run(here())
    assert sum(b.rows.size for b in got) == int(program.scalars["iterations"].sum()) > 0
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert (a.seq, a.t) == (b.seq, b.t) and np.array_equal(a.rows, b.rows) and np.array_equal(a.cols, b.cols)
        for q in ("pulse_current", "pulse_time"):
            assert np.array_equal(a.traces[q], b.traces[q]), q
        for q in ("pulse_voltage", "pulse_width", "pulse", "pulse_stride"):
            assert np.array_equal(a.scalars[q], b.scalars[q]), q


async def test_the_tui_stores_the_pulse_currents_and_lists_each_pulse_once(tmp_path: Path) -> None:
    """A TUI pulse action on the PMU station is a run like any other: its pulses' currents are
    stored, and the cell's history lists each measured pulse as one row (its voltage)."""
    from helpers import SIZE, connected, run_form, until

    from labctl.tui.app import ProbeStationApp

    array = emulator.Array(8, 4, seed=SEED)
    async with InstrumentBench(array) as bench:
        app = ProbeStationApp(lambda: StationBackend(PMU_STATION, resources=dict(bench.resources()),
                                                     clock=ArrayClock(array)), store_path=str(tmp_path / "runs.sqlite"),
                              backend_table={"kind": "station", "station": str(PMU_STATION)})
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot, app)
            await run_form(pilot, app, "u", {"v": "1.35 V", "count": "3"})
            assert app.last_error is None, app.last_error
            table = app.query_one("#cell-history")
            await until(pilot, lambda: table.row_count >= 6)
            rows = [table.get_row_at(i) for i in range(table.row_count)]
    pulses = [r for r in rows if r[2] == "pulse_trace"]
    assert [r[3] for r in pulses] == ["pulse_voltage"] * 3 and all(r[4] == "1.35 V" for r in pulses)
    assert sum(r[3] == "g" for r in rows) == 3
    with Store(tmp_path / "runs.sqlite", read_only=True) as s:
        (rec,) = s.runs()
        stored = list(s.batches(rec.run_id, ["pulse_trace"], traces=True))
    assert [b.scalars["pulse"].tolist() for b in stored] == [[0], [1], [2]]
    assert all(np.all(b.traces["pulse_current"] > 0) for b in stored)


@pytest.mark.parametrize("file", ["station-b1500a-wgfmu.toml", "station-b1500a-spgu.toml"], ids=["wgfmu", "spgu"])
async def test_the_wgfmu_station_stores_its_pulse_currents_and_the_spgu_station_none(file: str, tmp_path: Path) -> None:
    """The B1500A's WGFMU measures during its pulses like the PMU; its SPGU (a pulse generator, the
    SMU reading after) does not: that station stores no trace and logs nothing about them."""
    text = CAMPAIGN.split("[[steps]]")[0] + '[[steps]]\nroutine = "pulses"\nparams = { count = 2 }\n'
    array = emulator.Array(2, 2, seed=SEED)
    config = StationConfig.from_toml(PMU_STATION.with_name(file)).with_array(2, 2)
    async with InstrumentBench(array) as bench:
        async with RecordedStation(config, resources=dict(bench.resources()), clock=ArrayClock(array)) as backend:
            with Store(tmp_path / "runs.sqlite") as store:
                result = await Runner.new(store, text, "c.toml", backend=backend).run()
                assert result.status == "complete", result.errors
                stored = list(store.batches(result.run_id, ["pulse_trace"], traces=True))
                kinds = [b.kind for b in store.batches(result.run_id)]
                logged = [e for e in store.events(result.run_id) if e.kind == "pulse_traces"]
    measured = _measured(backend)
    if "spgu" in file:
        assert measured == [] and stored == [] and logged == [] and kinds == ["pulse_read", "pulse_read"]
        return
    assert len(measured) == 8 and [b.scalars["pulse"].tolist() for b in stored] == [[0] * 4, [1] * 4]
    got = np.concatenate([b.traces["pulse_current"] for b in stored])
    assert np.array_equal(got, np.stack([p.currents for p in measured]).astype(np.float32).astype(np.float64))
    assert kinds == ["pulse_trace", "pulse_read", "pulse_trace", "pulse_read"] and len(logged) == 1
