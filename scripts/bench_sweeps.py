"""Sweep benchmarks (issue 19): Dask speed-up, per-task overhead, and what the one writer can take.

    python scripts/bench_sweeps.py            # table
    python scripts/bench_sweeps.py --json     # one JSON object
    python scripts/bench_sweeps.py --tasks 20 # a quicker speed-up figure

speedup_2_workers: a `tasks`-task sweep of 64x64 weight transfers (examples/weight-transfer.toml at 64x64,
one seed per task), serial in one process (workers=0) / on a LocalCluster of 2 worker processes started
before the timing (target >= 1.7 on 2 cores); speedup_2_workers_with_start counts the cluster's start too.
overhead_per_task_s: the smallest campaign task (one read of a 1x1 array): 2 workers x wall time / tasks
minus the mean time the task itself took on its worker (target <= 0.02 s).
store_tasks_per_s: outcomes the writer stores per second, for evaluation tasks (figures only) and for
64x64 weight-transfer tasks (their runs copied in): the ceiling of the task rate a cluster of any size
can deliver to one store.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from labctl.campaigns.store import Store, TaskRecord
from labctl.sweeps.engine import SweepRunner

from benchmarking import run_benchmark

ROOT = Path(__file__).resolve().parent.parent


def _weight_transfer_sweep(folder: Path, tasks: int) -> str:
    text = (ROOT / "examples" / "weight-transfer.toml").read_text()
    text = text.replace("rows = 32", "rows = 64").replace("cols = 32", "cols = 64")
    (folder / "wt64.toml").write_text(text)
    return (f'[sweep]\nname = "bench"\ntask = "campaign"\ncampaign = "wt64.toml"\nrepeats = {tasks}\n'
            'figures = ["transfer.converged_fraction"]\n')


def _tiny_sweep(folder: Path, tasks: int) -> str:
    (folder / "tiny.toml").write_text('[campaign]\nname = "tiny"\n[backend]\nrows = 1\ncols = 1\n'
                                      '[[steps]]\nroutine = "read"\n')
    return f'[sweep]\nname = "tiny"\ntask = "campaign"\ncampaign = "tiny.toml"\nrepeats = {tasks}\n'


def _run(folder: Path, text: str, name: str, **kw: Any) -> tuple[float, Store, str]:
    (folder / f"{name}.sweep.toml").write_text(text)
    store = Store(folder / f"{name}.sqlite")
    runner = SweepRunner.new(store, text, str(folder / f"{name}.sweep.toml"), **kw)
    t0 = time.perf_counter()
    result = runner.run()
    wall = time.perf_counter() - t0
    assert result.status == "complete", result
    return wall, store, result.sweep_id


def measure(args: Any) -> dict[str, Any]:
    from distributed import Client, LocalCluster

    out: dict[str, Any] = {"load_before": os.getloadavg()[0], "cores": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        wt = _weight_transfer_sweep(folder, args.tasks)
        serial, s_store, s_id = _run(folder, wt, "serial", workers=0)
        t0 = time.perf_counter()
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None) as cluster, Client(cluster):
            start = time.perf_counter() - t0
            parallel, p_store, p_id = _run(folder, wt, "parallel", scheduler=cluster.scheduler_address)
            tiny_n = args.tiny
            tiny_wall, t_store, t_id = _run(folder, _tiny_sweep(folder, tiny_n), "tiny",
                                            scheduler=cluster.scheduler_address)
        same = all(a.figures == b.figures for a, b in zip(s_store.sweep_tasks(s_id), p_store.sweep_tasks(p_id)))
        tiny_tasks = t_store.sweep_tasks(t_id)
        own = sum(t.elapsed or 0.0 for t in tiny_tasks) / len(tiny_tasks)
        out.update({
            "tasks": args.tasks,
            "serial_s": serial, "two_workers_s": parallel, "cluster_start_s": start,
            "speedup_2_workers": serial / parallel, "speedup_2_workers_with_start": serial / (parallel + start),
            "serial_equals_parallel": same,
            "overhead_per_task_s": 2 * tiny_wall / tiny_n - own, "tiny_task_own_s": own,
        })
        # The writer alone: store outcomes as fast as it can (figures only; then with a run copied in).
        run_id = p_store.sweep_tasks(p_id)[0].run_id
        runs_file = folder / "one-run.sqlite"
        sink = Store(folder / "sink.sqlite")
        sink.create_sweep("sink", name="sink", sweep_toml="", sweep={}, seed=0, n_tasks=10**6)
        n = args.writes
        t0 = time.perf_counter()
        for i in range(n):
            sink.record_task("sink", TaskRecord(i, i, {"x": i}, "done", None, {"y": 1.0}, None, 1, "w", 0.1, 0.0))
        out["store_tasks_per_s.figures"] = n / (time.perf_counter() - t0)
        m = max(5, n // 200)
        _single_run_file(p_store, run_id, runs_file)
        sinks = []  # one store per copy (a run id is stored once per store), opened before the timing
        for i in range(m):
            sk = Store(folder / f"sink-{i}.sqlite")
            sk.create_sweep("sink", name="sink", sweep_toml="", sweep={}, seed=0, n_tasks=1)
            sinks.append(sk)
        t0 = time.perf_counter()
        for sk in sinks:
            sk.record_task("sink", TaskRecord(0, 0, {}, "done", run_id, {}, None, 1, "w", 0.1, 0.0), runs_file)
        out["store_tasks_per_s.weight_transfer_64"] = m / (time.perf_counter() - t0)
        out["weight_transfer_64_run_bytes"] = runs_file.stat().st_size
    out["load_after"] = os.getloadavg()[0]
    return out


def _single_run_file(store: Store, run_id: str, path: Path) -> None:
    """A store file holding only `run_id`, as a worker hands one back."""
    for p in (path, Path(str(path) + "-wal"), Path(str(path) + "-shm")):
        p.unlink(missing_ok=True)
    with Store(path) as one:
        one.create_sweep("x", name="x", sweep_toml="", sweep={}, seed=0, n_tasks=1)
        one.record_task("x", TaskRecord(0, 0, {}, "done", run_id, {}, None, 1, "w", 0.0, 0.0), store.path)


def table(r: dict[str, Any]) -> None:
    print(f"cores {r['cores']}, load {r['load_before']:.2f} -> {r['load_after']:.2f}")
    print(f"{r['tasks']} 64x64 weight transfers: serial {r['serial_s']:.1f} s, 2 workers {r['two_workers_s']:.1f} s"
          f" (+{r['cluster_start_s']:.1f} s cluster start)")
    print(f"  speedup_2_workers          {r['speedup_2_workers']:.2f}  (with start {r['speedup_2_workers_with_start']:.2f})"
          f"  same figures: {r['serial_equals_parallel']}")
    print(f"  overhead_per_task_s        {r['overhead_per_task_s'] * 1e3:.1f} ms  (the task itself"
          f" {r['tiny_task_own_s'] * 1e3:.1f} ms)")
    print(f"  store_tasks_per_s          {r['store_tasks_per_s.figures']:.0f} (figures),"
          f" {r['store_tasks_per_s.weight_transfer_64']:.1f} (64x64 weight-transfer runs,"
          f" {r['weight_transfer_64_run_bytes'] / 1e6:.1f} MB each)")


if __name__ == "__main__":
    raise SystemExit(run_benchmark(None, __doc__, measure, table, tasks=(40, "weight-transfer tasks"),
                                   tiny=(200, "smallest tasks for the overhead"),
                                   writes=(2000, "outcomes stored by the writer benchmark")))
