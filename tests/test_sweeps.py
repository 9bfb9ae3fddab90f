"""Sweeps (docs/sweeps.md): planning and validation, a real Dask LocalCluster on loopback against the serial
reference, a worker killed mid-sweep, a killed client resumed, a task that raises, exports and the report."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from labctl.campaigns.store import Store
from labctl.sweeps.engine import SweepRunner
from labctl.sweeps.plan import SweepError, load_sweep, task_seed
from helpers import wait_for

CAMPAIGN = """\
[campaign]
name = "wt-small"

[backend]
rows = 12
cols = 12
seed = 1

[[steps]]
routine = "forming"
name = "form"

[[steps]]
routine = "program"
name = "transfer"
[steps.params]
levels = [20e-6, 40e-6, 60e-6, 80e-6]
"""


def sweep_text(repeats: int = 2, extra: str = "") -> str:
    return textwrap.dedent(f"""\
        [sweep]
        name = "small"
        task = "campaign"
        campaign = "camp.toml"
        seed = 3
        repeats = {repeats}
        figures = ["transfer.converged_fraction", "transfer.iterations_mean"]
        {extra}
        [axes]
        "steps.transfer.params.tolerance" = [0.02, 0.05]
        "backend.device.c2c_sigma" = [0.5, 0.85]

        [[plot]]
        x = "backend.device.c2c_sigma"
        y = ["transfer.iterations_mean"]
        group = "steps.transfer.params.tolerance"
        """)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "camp.toml").write_text(CAMPAIGN)
    return tmp_path


LONG = 5  # repeats of the kill tests' sweep: 20 tasks


@pytest.fixture(scope="module")
def serial_reference(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple]:
    """The kill tests' sweep run serially in this process: what every interrupted run must end up equal to."""
    folder = tmp_path_factory.mktemp("serial")
    (folder / "camp.toml").write_text(CAMPAIGN)
    store, sweep_id = run_sweep(folder, "serial.sqlite", sweep_text(repeats=LONG), workers=0)
    return results(store, sweep_id)


def run_sweep(folder: Path, store_name: str, text: str, **kw) -> tuple[Store, str]:
    (folder / "sweep.toml").write_text(text)
    store = Store(folder / store_name)
    runner = SweepRunner.new(store, text, str(folder / "sweep.toml"), **kw)
    result = runner.run()
    assert result.status == "complete", result
    return store, result.sweep_id


def results(store: Store, sweep_id: str) -> dict[int, tuple]:
    """Per task: its axes, figures and every stored measurement of its run (the run id aside)."""
    out = {}
    for t in store.sweep_tasks(sweep_id):
        rows = list(store.measurement_rows(t.run_id)) if t.run_id else []
        out[t.task_index] = (t.axes, t.figures, t.seed, rows)
    return out


def test_plan_seeds_axes_and_the_points_campaigns(folder: Path) -> None:
    loaded = load_sweep(sweep_text(repeats=3), str(folder / "sweep.toml"))
    assert len(loaded.tasks) == 2 * 2 * 3
    # Grid order: the last axis fastest, then repeats; seeds from the sweep's seed and the index only.
    t = loaded.tasks[4]
    assert t.axes == {"steps.transfer.params.tolerance": 0.02, "backend.device.c2c_sigma": 0.85, "repeat": 1}
    assert [x.seed for x in loaded.tasks] == [task_seed(3, i) for i in range(12)]
    assert len({x.seed for x in loaded.tasks}) == 12
    assert task_seed(3, 4) != task_seed(4, 4)
    # The campaign a task runs has the axis values and its seed written in (comments kept).
    assert "tolerance = 0.02" in t.campaign_toml and "c2c_sigma = 0.85" in t.campaign_toml
    assert f"seed = {t.seed}" in t.campaign_toml
    per_repeat = load_sweep(sweep_text(repeats=3, extra='seeds = "per_repeat"'), str(folder / "sweep.toml"))
    assert [x.seed for x in per_repeat.tasks[:3]] == [x.seed for x in per_repeat.tasks[3:6]]


@pytest.mark.parametrize(("axes", "expected"), [
    ('"steps.nosuch.params.tolerance" = [0.02]', "sweep.toml:10: axes.steps.nosuch.params.tolerance: "
                                               "steps.nosuch.params.tolerance: the campaign has no step 'nosuch'"),
    ('"backend.device.c2c_sigma" = [0.5, -0.5]', "point 1 {'backend.device.c2c_sigma': -0.5} makes a campaign that"
                                                " does not load"),
    ('"backend.device.not_a_parameter" = [1.0]', "unknown preset parameter(s) not_a_parameter"),
    ('"steps.transfer.params.tolerance" = []', "axes.steps.transfer.params.tolerance: an axis needs at least one value"),
])
def test_bad_axes_are_refused_naming_the_line(folder: Path, axes: str, expected: str) -> None:
    grid = '"steps.transfer.params.tolerance" = [0.02, 0.05]\n"backend.device.c2c_sigma" = [0.5, 0.85]\n'
    text = sweep_text().replace(grid, axes + "\n")
    assert text != sweep_text()
    with pytest.raises(SweepError) as exc:
        load_sweep(text, str(folder / "sweep.toml"))
    assert expected in str(exc.value).replace(str(folder) + "/", "")


def test_bad_sweep_files_are_refused(folder: Path) -> None:
    with pytest.raises(SweepError, match=r"sweep.toml: not valid TOML"):
        load_sweep('[sweep\nname = "x"\n', "sweep.toml")
    with pytest.raises(SweepError, match=r"sweep.toml:2: sweep.task: Input should be 'campaign', 'training'"):
        load_sweep('[sweep]\ntask = "nope"\nname = "x"\n', "sweep.toml")
    with pytest.raises(SweepError, match="plans 2,000,000 tasks"):
        load_sweep('[sweep]\nname = "x"\ntask = "mvm"\nrepeats = 1000000\n[axes]\nsize = [8, 16]\n', "sweep.toml")
    with pytest.raises(SweepError, match=r"mvm tasks report no figure 'rmse'; they report rmse_1s"):
        load_sweep('[sweep]\nname = "x"\ntask = "mvm"\nfigures = ["rmse"]\n', "sweep.toml")
    with pytest.raises(SweepError, match=r"axes.settings.lr.*lr: must be > 0"):
        load_sweep('[sweep]\nname = "x"\ntask = "training"\n[axes]\n"settings.lr" = [-1.0]\n', "sweep.toml")
    with pytest.raises(SweepError, match=r"sweep.campaign: no campaign file"):
        load_sweep('[sweep]\nname = "x"\ntask = "campaign"\ncampaign = "missing.toml"\n', str(folder / "s.toml"))


def test_two_workers_give_the_serial_results_and_store_each_task_once(folder: Path) -> None:
    serial, s_id = run_sweep(folder, "serial.sqlite", sweep_text(), workers=0)
    dask, d_id = run_sweep(folder, "dask.sqlite", sweep_text(), workers=2)
    a, b = results(serial, s_id), results(dask, d_id)
    assert sorted(a) == sorted(b) == list(range(8))
    assert a == b  # figures, seeds and every measurement of every run
    assert len({t.worker for t in dask.sweep_tasks(d_id)}) == 2  # both workers took tasks
    assert len(dask.runs()) == 8
    # The study's figures respond to its axes: noisier devices need more pulses.
    df = __import__("labctl.sweeps.report", fromlist=["table"]).table(dask, d_id)
    it = df.groupby("axis.backend.device.c2c_sigma")["figure.transfer.iterations_mean"].mean()
    assert it[0.85] > it[0.5]


def test_a_worker_killed_mid_sweep_loses_no_task_and_doubles_none(folder: Path, serial_reference: dict) -> None:
    from distributed import Client, LocalCluster

    text = sweep_text(repeats=LONG)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        pids = list(client.run(os.getpid).values())
        (folder / "sweep.toml").write_text(text)
        out: dict = {}

        def submit() -> None:  # the store's connection belongs to the thread that runs the sweep
            with Store(folder / "killed.sqlite") as s:
                out["r"] = SweepRunner.new(s, text, str(folder / "sweep.toml"),
                                           scheduler=cluster.scheduler_address).run()

        th = threading.Thread(target=submit)
        th.start()

        def stored() -> int:
            try:
                with Store(folder / "killed.sqlite", read_only=True) as w:
                    return len(w.sweep_tasks(w.sweeps()[0].sweep_id)) if w.sweeps() else 0
            except Exception:  # noqa: BLE001 -- the file is being created
                return 0
        assert wait_for(lambda: stored() >= 3, 60)
        assert stored() < 4 * LONG  # the kill lands mid-sweep
        os.kill(pids[0], signal.SIGKILL)
        th.join(120)
        assert not th.is_alive()
    store = Store(folder / "killed.sqlite")
    result = out["r"]
    assert result.status == "complete" and result.done == 4 * LONG
    assert results(store, result.sweep_id) == serial_reference
    assert {t.attempts for t in store.sweep_tasks(result.sweep_id)} == {1}  # a lost worker is not a task's failure
    (n_runs,) = store.db.execute("SELECT COUNT(*) FROM runs").fetchone()
    assert n_runs == 4 * LONG


def test_a_killed_client_resumes_with_only_the_missing_tasks(folder: Path, serial_reference: dict) -> None:
    text = sweep_text(repeats=LONG)
    (folder / "sweep.toml").write_text(text)
    db = folder / "client.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "labctl.cli", "sweep", str(folder / "sweep.toml"), "--store",
                             str(db), "--workers", "2", "--no-report"], cwd=folder, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def some_stored() -> bool:
            try:
                with Store(db, read_only=True) as s:
                    return bool(s.sweeps()) and len(s.sweep_tasks(s.sweeps()[0].sweep_id)) >= 4
            except Exception:  # noqa: BLE001 -- the file is being created
                return False
        assert wait_for(some_stored, 90)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the client and its cluster, at once
        proc.wait(30)
    with Store(db) as s:
        rec = s.sweeps()[0]
        before = len(s.sweep_tasks(rec.sweep_id))
        assert rec.shown_status == "interrupted" and 4 <= before
    done = subprocess.run([sys.executable, "-m", "labctl.cli", "sweep", "--resume", "last", "--store", str(db),
                           "--workers", "0", "--no-report"], cwd=folder, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{4 * LONG - before} run now" in done.stdout
    store = Store(db)
    assert results(store, rec.sweep_id) == serial_reference
    assert store.sweep(rec.sweep_id).resumes == 1


def test_a_task_that_raises_is_retried_on_another_worker_then_recorded(tmp_path: Path) -> None:
    text = ('[sweep]\nname = "raises"\ntask = "training"\nfigures = ["accuracy"]\n'
            '[params]\nalgorithm = "fp"\nepochs = 1\nmnist = "/nonexistent/mnist"\n')
    store = Store(tmp_path / "s.sqlite")
    result = SweepRunner.new(store, text, str(tmp_path / "sweep.toml"), workers=2).run()
    assert result.status == "failed" and result.failed == 1
    (task,) = store.sweep_tasks(result.sweep_id)
    assert task.status == "failed" and task.attempts == 2
    assert "/nonexistent/mnist" in task.error


def test_evaluation_tasks_and_the_report(tmp_path: Path) -> None:
    text = ('[sweep]\nname = "mvm"\ntask = "mvm"\nseed = 5\nrepeats = 2\n[axes]\nsize = [8, 16]\n'
            'tolerance = [0.02, 0.1]\n[[plot]]\nx = "size"\ny = ["rmse_1s", "rmse_10y"]\ngroup = "tolerance"\n')
    (tmp_path / "sweep.toml").write_text(text)
    store = Store(tmp_path / "s.sqlite")
    result = SweepRunner.new(store, text, str(tmp_path / "sweep.toml"), workers=0).run()
    assert result.status == "complete"
    tasks = store.sweep_tasks(result.sweep_id)
    assert len(tasks) == 8 and all(t.run_id is None for t in tasks)
    by_tol = {}
    for t in tasks:
        by_tol.setdefault(t.axes["tolerance"], []).append(t.figures)
        assert t.figures["rmse_10y"] > t.figures["rmse_1s"] > 0  # relaxation adds error
    assert np.mean([f["rmse_1s"] for f in by_tol[0.1]]) > np.mean([f["rmse_1s"] for f in by_tol[0.02]])
    from labctl.sweeps.report import export_table, plot_figure, table, write_report

    files = write_report(store, result.sweep_id, tmp_path / "report")
    assert sorted(f.name for f in files) == ["plot-0.png", "summary.json", "tasks.csv"]
    fig = plot_figure(table(store, result.sweep_id), store_plot(store, result.sweep_id))
    assert [ax.get_xlabel() for ax in fig.axes] == ["size", "size"]
    assert len(fig.axes[0].lines) >= 2  # one line per tolerance
    import xarray as xr

    assert export_table(store, result.sweep_id, tmp_path / "t.nc", "netcdf") == 8
    ds = xr.open_dataset(tmp_path / "t.nc", engine="h5netcdf")
    assert ds.sizes["task_index"] == 8 and "figure.rmse_1s" in ds


def store_plot(store: Store, sweep_id: str):
    from labctl.sweeps.schema import Sweep

    return Sweep.model_validate(store.sweep(sweep_id).sweep["sweep"]).plot[0]


def test_cli_check_list_show_export_and_refusals(folder: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from labctl.cli import main

    (folder / "sweep.toml").write_text(sweep_text())
    monkeypatch.chdir(folder)

    def labctl(*args: str) -> tuple[int, str, str]:
        status = main(list(args))
        out = capsys.readouterr()
        return status, out.out, out.err

    status, out, _ = labctl("sweep", "sweep.toml", "--check")
    assert status == 0 and "8 task(s) of kind campaign" in out
    status, _, err = labctl("sweep", "sweep.toml", "--workers", "0", "--store", "s.sqlite", "--report-dir", "rep")
    assert status == 0, err
    assert (folder / "rep" / "plot-0.png").stat().st_size > 1000
    status, out, _ = labctl("sweeps", "show", "last", "--store", "s.sqlite")
    assert "tasks: 8 done, 0 failed, 0 not run, of 8" in out
    assert labctl("sweeps", "list", "--store", "s.sqlite")[0] == 0
    assert labctl("sweeps", "export", "last", "--store", "s.sqlite", "-o", "t.csv")[0] == 0
    status, _, err = labctl("sweeps", "export", "last", "--store", "s.sqlite", "-o", "t.csv")
    assert status == 2 and "the file exists; give --force" in err
    status, _, err = labctl("sweeps", "export", "last", "--store", "s.sqlite", "-o", "s.sqlite", "--force")
    assert status == 2 and "an export never writes over the store" in err
    with pytest.raises(SystemExit) as bad:
        labctl("sweep", "sweep.toml", "--workers", "-1")
    assert bad.value.code == 2 and "outside [0, 4096]" in capsys.readouterr().err
    status, _, err = labctl("sweep", "sweep.toml", "--scheduler", "tcp://127.0.0.1:9", "--store", "x.sqlite")
    assert status == 2 and "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in err
    status, _, err = labctl("sweep", "--resume", "nosuch", "--store", "s.sqlite")
    assert status == 2 and "no sweep 'nosuch'" in err
    assert "Traceback" not in err


async def test_sweep_progress_reaches_a_real_broker(tmp_path: Path) -> None:
    import asyncio

    from labctl.campaigns.telemetry import TelemetryConfig
    from mqtt_broker import Broker, free_port
    from test_campaigns_telemetry import collect

    broker = Broker(tmp_path, free_port())
    broker.start()
    try:
        got: list = []
        stop, ready = asyncio.Event(), asyncio.Event()
        sub = asyncio.create_task(collect(broker.port, "lab/#", got, stop, ready))
        await asyncio.wait_for(ready.wait(), 10)
        config = TelemetryConfig(broker=f"mqtt://127.0.0.1:{broker.port}", station="farm", topic_prefix="lab",
                                 progress_interval=0.0)
        text = '[sweep]\nname = "mvm"\ntask = "mvm"\nrepeats = 3\n[params]\nsize = 4\n'

        def run() -> object:
            with Store(tmp_path / "s.sqlite") as store:
                return SweepRunner.new(store, text, "s.toml", workers=0, telemetry=config).run()
        result = await asyncio.to_thread(run)
        base = f"lab/farm/sweeps/{result.sweep_id}"
        deadline = time.monotonic() + 10
        while not any(t == f"{base}/status" and p["status"] == "complete" for t, p, _ in got):
            assert time.monotonic() < deadline, got
            await asyncio.sleep(0.05)
        stop.set()
        sub.cancel()
        assert [p["done"] for t, p, _ in got if t == f"{base}/progress"] == [1, 2, 3]
        assert [p["status"] for t, p, _ in got if t == f"{base}/status"] == ["running", "complete"]
    finally:
        broker.stop()
