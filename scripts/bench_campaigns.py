"""Benchmark of the campaign engine: store throughput and runner overhead.

store_rows_per_s: measurements (one per cell and quantity) committed per second by Store.append_batch,
  batches of 1024 cells x 4 scalar quantities, one transaction per batch, WAL mode (target >= 100,000/s).
  The store keeps scalars per batch and quantity (docs/store.md), so this is ~4096 measurements per commit.
store_small_batches_per_s: batches of 16 cells x 1 quantity committed per second (one commit each).
runner_overhead_ratio: (campaign time - direct time) / direct time for the same routines on the same
  emulated array: a campaign run (validation, plan, store of every measurement, snapshots, safe points)
  versus calling the routines directly with a context that keeps nothing (target < 0.05).
validate_largest_plan_s: load_campaign of the largest plan the bounds accept (a 32x32 forming step split
  into one-cell chunks, repeated 48 times: 49,152 units; labctl.campaigns.plan.MAX_UNITS), median
  (target <= 1 s, issue 20).
report_main_s: `labctl report RUN` (the whole command: start-up, figures, PNG files, report.html) on the
  main job (examples/weight-transfer.toml, 32x32), median (target <= 3 s, issue 17).
report_256_s: the same on the main job run on a 256x256 array (65,536 cells; scatter plots subsampled),
  median (target <= 20 s); --no-256 skips it (the run itself takes minutes).

Usage: python scripts/bench_campaigns.py [--json] [--repeats N]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from labctl.backends.emulator import EmulatorBackend
from labctl.campaigns import Runner, Store
from labctl.routines.base import Measurements, RoutineContext
from labctl.routines.forming import FormingParams, form
from labctl.routines.program import ClosedLoopParams, program

ROWS = COLS = 64
SEED = 3
LEVELS = [15e-6, 35e-6, 55e-6, 75e-6]
CAMPAIGN = f"""
[campaign]
name = "bench"
[backend]
rows = {ROWS}
cols = {COLS}
seed = {SEED}
[[steps]]
routine = "forming"
params = {{ step = 0.05 }}
[[steps]]
routine = "program"
params = {{ levels = {LEVELS}, tolerance = 0.002 }}
"""


def bench_store(tmp: Path, batches: int = 200, cells: int = 1024) -> dict[str, float]:
    rng = np.random.default_rng(0)
    r, c = np.divmod(np.arange(cells, dtype=np.int64), COLS)
    batch = Measurements(kind="program", rows=r, cols=c, t=1.0,
                         values={"g": rng.uniform(1e-5, 9e-5, cells), "target": np.full(cells, 5e-5),
                                 "iterations": rng.integers(1, 50, cells), "converged": np.ones(cells, bool)})
    small = Measurements(kind="read", rows=r[:16], cols=c[:16], t=1.0, values={"g": rng.uniform(1e-5, 9e-5, 16)})
    with Store(tmp / "store.sqlite") as store:
        t0 = time.perf_counter()
        rows = sum(store.append_batch("bench", 0, 0, k, batch) for k in range(batches))
        dt = time.perf_counter() - t0
        t0 = time.perf_counter()
        for k in range(1000):
            store.append_batch("bench", 1, 0, k, small)
        dt_small = time.perf_counter() - t0
    return {"store_rows_per_s": rows / dt, "store_small_batches_per_s": 1000 / dt_small}


async def direct() -> float:
    backend = EmulatorBackend(ROWS, COLS, seed=SEED)
    t0 = time.perf_counter()
    ctx = RoutineContext()
    await form(backend, None, None, FormingParams(step=0.05), ctx)
    await program(backend, None, None, ClosedLoopParams(levels=LEVELS, tolerance=0.002), ctx)
    return time.perf_counter() - t0


async def campaign(tmp: Path, k: int) -> tuple[float, int]:
    with Store(tmp / f"runs-{k}.sqlite") as store:
        t0 = time.perf_counter()
        result = await Runner.new(store, CAMPAIGN, "bench.toml").run()
        dt = time.perf_counter() - t0
    assert result.status == "complete", result.errors
    return dt, result.measurements


def bench_validation(repeats: int) -> float:
    """Median seconds to validate and plan the largest accepted plan."""
    from labctl.campaigns import load_campaign

    text = ('[campaign]\nname = "largest"\n[backend]\nrows = 32\ncols = 32\n'
            '[[steps]]\nroutine = "forming"\nrepeat = 48\nchunk_cells = 1\n')
    load_campaign(text)  # warm-up: the routine registry, pydantic schemas
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        load_campaign(text)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


MAIN_JOB = Path(__file__).resolve().parents[1] / "examples" / "weight-transfer.toml"


def bench_report(tmp: Path, size: int, repeats: int) -> float:
    """Median seconds of `labctl report` (a subprocess: the command as users run it) on the main job
    run on a size x size array."""
    import subprocess
    import sys

    text = MAIN_JOB.read_text().replace("rows = 32", f"rows = {size}").replace("cols = 32", f"cols = {size}")
    path = tmp / f"main-{size}.sqlite"
    with Store(path) as store:
        result = asyncio.run(Runner.new(store, text, str(MAIN_JOB)).run())
    assert result.status == "complete", result.errors
    times = []
    for k in range(repeats):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "labctl.cli", "report", result.run_id, "--store", str(path),
                               "--out", str(tmp / f"report-{size}-{k}")], capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        assert proc.returncode == 0, proc.stderr
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--repeats", type=int, default=5, help="timed repetitions (median reported)")
    ap.add_argument("--no-256", action="store_true", help="skip report_256_s (its run takes minutes)")
    ap.add_argument("--only-reports", action="store_true", help="only report_main_s and report_256_s")
    args = ap.parse_args()
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?"
    if args.only_reports:
        with tempfile.TemporaryDirectory() as d:
            out: dict[str, object] = {"report_main_s": bench_report(Path(d), 32, args.repeats)}
            if not args.no_256:
                out["report_256_s"] = bench_report(Path(d), 256, min(args.repeats, 3))
        _print({**out, "load_before": load}, args.json)
        return
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        store = bench_store(tmp)
        asyncio.run(direct())  # warm-up: imports, caches
        t_direct, t_campaign, n = [], [], 0
        for k in range(args.repeats):  # interleaved, so load changes hit both alike
            t_direct.append(asyncio.run(direct()))
            dt, n = asyncio.run(campaign(tmp, k))
            t_campaign.append(dt)
    td, tc = statistics.median(t_direct), statistics.median(t_campaign)
    out = {**store, "runner_overhead_ratio": (tc - td) / td, "direct_s": td, "campaign_s": tc,
           "campaign_measurements": n, "cells": ROWS * COLS,
           "validate_largest_plan_s": bench_validation(args.repeats)}
    with tempfile.TemporaryDirectory() as d:
        out["report_main_s"] = bench_report(Path(d), 32, args.repeats)
        if not args.no_256:
            out["report_256_s"] = bench_report(Path(d), 256, min(args.repeats, 3))
    _print({**out, "load_before": load}, args.json)


def _print(out: dict[str, object], as_json: bool) -> None:
    if as_json:
        print(json.dumps(out))
        return
    print(f"{'quantity':<32}{'value':>16}")
    for k, v in out.items():
        print(f"{k:<32}{v:>16.4g}" if isinstance(v, float) else f"{k:<32}{v:>16}")


if __name__ == "__main__":
    main()
