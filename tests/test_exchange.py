"""Exports to NetCDF and ArC TWO files, imports of ArC TWO files, and their bad input."""
from __future__ import annotations

import hashlib
import os
import resource
import signal
import subprocess
import sys

import h5py
import numpy as np
import pytest
import xarray as xr

import labctl
from labctl.campaigns import Store
from labctl.campaigns.arc_hdf5 import TIMESERIES_DTYPE, import_arc_hdf5
from labctl.campaigns.netcdf import group_name
from helpers import campaign_text, stored_run

CAMPAIGN = campaign_text("exchange", 4, 3, 5, """
[metadata]
wafer = "W07"
[[steps]]
routine = "forming"
name = "form"
params = { step = 0.1 }
[[steps]]
routine = "program"
name = "transfer"
params = { levels = [20e-6, 50e-6], v_read = 0.25 }
[[steps]]
routine = "read_noise"
name = "noise"
params = { repeats = 3 }
""")


class Result:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def cli(capsys):
    """`labctl ...` in this process (the dispatcher and exit statuses of the real command line)."""
    from labctl.cli import main

    def run(*args) -> Result:
        capsys.readouterr()
        status = main(list(args))
        out = capsys.readouterr()
        return Result(status, out.out, out.err)
    return run


def cli_limited(*args, limit_bytes: int):
    """`labctl ...` in a process that may write at most limit_bytes per file (a disk that fills up)."""
    def limited() -> None:  # a full disk: writes beyond the limit fail with EFBIG instead of killing us
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run([sys.executable, "-m", "labctl.cli", *args], capture_output=True, text=True, timeout=120,
                          preexec_fn=limited)


def digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    path = tmp_path_factory.mktemp("exchange") / "runs.sqlite"
    return path, stored_run(path, CAMPAIGN, "exchange.toml")


def test_netcdf_holds_every_step_and_kind_as_open_run_gives_it(stored, tmp_path, cli):
    path, run_id = stored
    out = tmp_path / "run.nc"
    r = cli("runs", "export", run_id, "--store", str(path), "--format", "netcdf", "--out", str(out))
    assert r.returncode == 0, r.stderr
    run = labctl.open_run(path, run_id)
    with h5py.File(out, "r") as f:
        assert f.attrs["run_id"] == run_id and "W07" in f.attrs["metadata"] and f.attrs["Conventions"] == "CF-1.8"
        i = f[group_name(0, "form", "forming_sweep") + "/i"]
        assert i.compression == "gzip" and i.shuffle and i.dtype == np.float32  # per-cell traces as stored
        assert f[group_name(1, "transfer", "program") + "/g"].compression == "gzip"
    for step in run.steps():
        for kind in step.kinds:
            expected = run.dataset(step.index, kind)
            got = xr.open_dataset(out, group=group_name(step.index, step.name, kind), engine="h5netcdf").load()
            assert set(got.data_vars) == set(expected.data_vars)
            for name, var in expected.variables.items():
                np.testing.assert_array_equal(got[name].values, var.values)  # exactly, NaN for NaN
                assert got[name].attrs.get("units") == var.attrs.get("units")
    assert xr.open_dataset(out, group=group_name(1, "transfer", "program"), engine="h5netcdf")["g"].attrs["units"] == "S"


def test_arc_export_has_arc2controls_layout_and_imports_back(stored, tmp_path, cli):
    path, run_id = stored
    out = tmp_path / "run.h5"
    r = cli("runs", "export", run_id, "--store", str(path), "--format", "arc-hdf5", "--out", str(out))
    assert r.returncode == 0, r.stderr
    with Store(path, read_only=True) as s:
        reads = [b for b in s.batches(run_id) if "g" in b.scalars]
        units = {u.unit_index: u for u in s.units(run_id)}
    with h5py.File(out, "r") as f:
        assert (f.attrs["H5DS_VERSION_MAJOR"], f.attrs["H5DS_VERSION_MINOR"], f.attrs["words"], f.attrs["bits"]) \
            == (0, 2, 4, 3)
        assert set(f) == {"crossbar", "crosspoints", "synthetics", "sequences"}
        assert f["crossbar/current"].shape == (3, 4) and f["crossbar/current"].dtype == np.float32
        ts = f["crosspoints/W02B01/timeseries"]
        assert ts.dtype == TIMESERIES_DTYPE and ts.attrs["CLASS"] == "TABLE"
        rows = ts[: ts.attrs["NROWS"]]
        last_current = f["crossbar/current"][1, 2]  # (bit, word)
        assert len(f["synthetics"]) == 2  # the forming sweep and the reset sweep before programming
    # the crosspoint's history: every conductance read of cell (2, 1), in the order taken, as current = g * v_read
    expect = [(b.scalars["g"][k] * units[b.unit_index].params.get("v_read", 0.2), units[b.unit_index].params.get(
        "v_read", 0.2)) for b in reads for k in np.flatnonzero((b.rows == 2) & (b.cols == 1))]
    assert rows["current"].tolist() == np.array([e[0] for e in expect], np.float32).tolist()
    assert rows["read_voltage"].tolist() == np.array([e[1] for e in expect], np.float32).tolist()
    assert set(rows["op_type"].tolist()) == {1} and rows.size == 4  # programmed, then three noise reads
    assert rows["read_voltage"].tolist() == [np.float32(0.25)] + [np.float32(0.2)] * 3
    assert last_current == rows["current"][-1]
    # and back into a store as a run of its own
    target = tmp_path / "imported.sqlite"
    r = cli("runs", "import", str(out), "--store", str(target))
    assert r.returncode == 0, r.stderr
    run = labctl.open_run(target)
    ds = run.dataset("timeseries", "read")
    assert ds["current"].sel(row=2, col=1).values[: rows.size].tolist() == rows["current"].astype(float).tolist()
    assert ds["current"].attrs["units"] == "A" and ds["g"].attrs["units"] == "S"
    np.testing.assert_allclose(ds["g"].sel(row=2, col=1).values[: rows.size], [e[0] / e[1] for e in expect],
                               rtol=1e-6)  # g = current / read voltage, both float32 in the file
    sweep = run.dataset("sweeps", "forming_sweep")
    original = labctl.open_run(path, run_id).dataset("form", "forming_sweep")
    np.testing.assert_array_equal(sweep["i"].values, original["i"].values)  # float32 in both
    assert sweep["v"].values.tolist() == original["v"].astype(np.float32).values.tolist()


def _arc_file(path, *, experiment: bool = False, units: str | None = None, shape=(3, 2)) -> None:
    """A file laid out the way arc2control's H5DataStore writes one (2 words x 3 bits)."""
    with h5py.File(path, "w") as f:
        f.attrs.update({"CLASS": "GROUP", "PYTABLES_FORMAT_VERSION": "2.1", "H5DS_VERSION_MAJOR": 0,
                        "H5DS_VERSION_MINOR": 2, "TITLE": "bench", "words": 2, "bits": 3})
        for g in ("crossbar", "crosspoints", "synthetics", "sequences"):
            f.create_group(g).attrs["CLASS"] = "GROUP"
        f["crossbar"].attrs.update({"words": 2, "bits": 3})
        f["crossbar"].create_dataset("current", shape=shape, dtype=np.float32)
        f["crossbar"].create_dataset("voltage", shape=(3, 2), dtype=np.float32)
        ts = f["crosspoints"].create_group("W01B02").create_dataset("timeseries", shape=(1000,), dtype=TIMESERIES_DTYPE,
                                                                   maxshape=(None,), chunks=True)
        ts[:3] = np.array([(2e-6, 0.2, 0.0, 0.2, 1), (4e-6, 1.3, 1e-6, 0.2, 3), (0.0, -1.2, 1e-6, 0.0, 2)],
                          TIMESERIES_DTYPE)
        ts.attrs.update({"NROWS": 3, "TITLE": "W01B02", "CLASS": "TABLE", "BASE_SIZE": 1000})
        if units:
            ts.attrs["current_units"] = units
        if experiment:
            f["crosspoints/W01B02"].create_group("experiments").create_dataset(
                "RET_1700000000", data=np.zeros(4, [("voltage", "<f4"), ("current", "<f4")]))


def test_an_arc_two_file_from_arc2control_is_imported_by_operation_type(tmp_path):
    src = tmp_path / "arc.h5"
    _arc_file(src)
    with Store(tmp_path / "s.sqlite") as s:
        run_id = import_arc_hdf5(s, src)
        batches = {b.kind: b for b in s.batches(run_id)}
        assert s.run(run_id).status == "complete" and s.run(run_id).backend_kind == "import"
    assert set(batches) == {"read", "pulse_read", "pulse"}
    read, pulse_read, pulse = batches["read"], batches["pulse_read"], batches["pulse"]
    assert (read.rows.tolist(), read.cols.tolist()) == ([1], [2])
    assert read.scalars["g"][0] == pytest.approx(1e-5, rel=1e-6) and read.scalars["entry"].tolist() == [0]
    assert pulse_read.scalars["voltage"].tolist() == [np.float32(1.3)] and pulse_read.scalars["entry"].tolist() == [1]
    assert pulse_read.scalars["pulse_width"][0] == np.float32(1e-6)
    assert np.isnan(pulse.scalars["g"][0]) and pulse.scalars["read_voltage"].tolist() == [0.0]
    assert pulse_read.scalars["direction"].tolist() == [1.0] and pulse.scalars["direction"].tolist() == [-1.0]
    assert "direction" not in read.scalars


@pytest.mark.parametrize("make, flags, says", [
    (lambda p: p.write_text("not hdf5 at all\n"), (), r"arc\.h5: not a readable HDF5 file"),
    (lambda p: h5py.File(p, "w").close(), (), r"arc\.h5: /: no root attribute H5DS_VERSION_MAJOR"),
    (lambda p: _arc_file(p, shape=(2, 3)), (), r"arc\.h5: /crossbar/current: shape \(2, 3\), expected \(bits, words\)"),
    (lambda p: _arc_file(p, units="mA"), (), r"arc\.h5: /crosspoints/W01B02/timeseries field current: unit 'mA'"),
    (lambda p: _arc_file(p, experiment=True), (), r"/crosspoints/W01B02/experiments/RET_1700000000: a module's"),
    (lambda p: p.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 4), (), r"arc\.h5: not a readable HDF5"),
])
def test_an_import_that_cannot_be_mapped_is_refused_by_name_and_the_store_is_untouched(tmp_path, make, flags, says,
                                                                                      cli):
    src = tmp_path / "arc.h5"
    make(src)
    store = tmp_path / "s.sqlite"
    with Store(store) as s:
        s.event("none", "create", "a store that already exists")
    before = digest(store)
    r = cli("runs", "import", str(src), "--store", str(store), *flags)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert __import__("re").search(says, r.stderr), r.stderr
    assert digest(store) == before


def test_an_experiment_table_is_left_out_only_when_asked(tmp_path, cli):
    src = tmp_path / "arc.h5"
    _arc_file(src, experiment=True)
    r = cli("runs", "import", str(src), "--store", str(tmp_path / "s.sqlite"), "--timeseries-only")
    assert r.returncode == 0, r.stderr
    assert "imported as run" in r.stdout


@pytest.mark.parametrize("fmt", ["netcdf", "arc-hdf5"])
def test_exports_never_overwrite_silently_and_fail_cleanly(stored, tmp_path, fmt, cli):
    path, run_id = stored
    out = tmp_path / "out.file"
    out.write_text("keep me")
    base = ("runs", "export", run_id, "--store", str(path), "--format", fmt)
    store_before = digest(path)
    r = cli(*base, "--out", str(out))
    assert r.returncode == 2 and "the file exists; give --force" in r.stderr and out.read_text() == "keep me"
    for target in (path, str(path) + "-wal"):
        r = cli(*base, "--out", str(target), "--force")
        assert r.returncode == 2 and "an export never writes over the store" in r.stderr
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.geteuid() != 0:  # root writes anywhere; the size limit below covers the failed write for it
            r = cli(*base, "--out", str(locked / "x"))
            assert r.returncode == 2 and str(locked) in r.stderr and "Traceback" not in r.stderr
    finally:
        locked.chmod(0o700)
    # a disk that fills up during the export: exit 1 naming the file, nothing half-written, old file kept
    r = cli_limited(*base, "--out", str(out), "--force", limit_bytes=64_000)  # above the store's 32 KiB -shm
    assert r.returncode == 1 and f"{out}: cannot write" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert out.read_text() == "keep me" and [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []
    assert digest(path) == store_before
    r = cli(*base, "--out", str(out), "--force")
    assert r.returncode == 0 and out.stat().st_size > 64_000 and out.stat().st_mode & 0o044


def test_a_sweep_over_more_cells_than_an_hdf5_attribute_holds_round_trips(tmp_path):
    from labctl.campaigns.arc_hdf5 import export_arc_hdf5
    from labctl.campaigns.store import UnitPlan
    from labctl.routines.base import Measurements

    n = 9000  # (row, col) int32 pairs: 72 kB, over HDF5's 64 kB attribute limit
    rows, cols = np.divmod(np.arange(n), 100)
    rng = np.random.default_rng(3)
    i = rng.normal(1e-6, 1e-7, (n, 3))
    with Store(tmp_path / "s.sqlite") as s:
        s.create_run("r", name="big sweep", campaign_toml="", campaign={"backend": {"rows": 90, "cols": 100}},
                     backend_kind="emulator", identity={}, metadata={}, units=[UnitPlan(0, 0, "form", "forming", 0, 0,
                                                                                         0, 0, n, {})])
        s.append_batch("r", 0, 0, 0, Measurements(kind="forming_sweep", rows=rows, cols=cols, t=0.5, values={
            "v": np.broadcast_to(np.array([0.0, 1.0, 2.0]), (n, 3)), "i": i}))
        export_arc_hdf5(s, "r", tmp_path / "big.h5")
        run_id = import_arc_hdf5(s, tmp_path / "big.h5")
        (back,) = s.batches(run_id, ["forming_sweep"], traces=True)
    with h5py.File(tmp_path / "big.h5", "r") as f:
        assert f["synthetics/forming_sweep_0000_0000/crosspoints"].shape == (n, 2)
    assert back.rows.tolist() == rows.tolist() and back.t == 0.5
    np.testing.assert_array_equal(back.traces["i"], i.astype(np.float32))
