"""Benchmark of the data side (issue 16): store size, store throughput, array access, NetCDF export.

bytes_per_measurement: the store's file size (after the run, WAL checkpointed) per measurement (cell x
  quantity) of the README's main job, examples/weight-transfer.toml scaled to 256 x 256 (form, program 35
  levels at two acceptance ranges, 50 read-noise rounds: 7.7 M measurements) (target <= 15).
store_rows_per_s: measurements committed per second by Store.append_batch, batches of 1024 cells x 4 scalar
  quantities, one transaction each (as scripts/bench_campaigns.py) (target >= 1e6).
open_run_dataset_s: labctl.open_run(...).dataset("transfer") of that run: the program step, 2 x 65,536 cells
  x 4 quantities, median of --repeats after one warm-up (target <= 1 s); open_run_dataset_first_s: the first
  call in the process (after xarray has imported its optional array libraries).
netcdf_export_mb_per_s: MB of array data (as float64/float32 in memory, before compression) written per
  second by `labctl runs export --format netcdf` of the whole run.

Usage: python scripts/bench_data.py [--json] [--repeats N] [--size N]
"""
from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import labctl
from labctl.campaigns import Runner, Store
from labctl.campaigns.netcdf import export_netcdf
from labctl.routines.base import Measurements

from benchmarking import run_benchmark

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "weight-transfer.toml"


def main_job(size: int) -> str:
    """examples/weight-transfer.toml with the array scaled to size x size."""
    return EXAMPLE.read_text().replace("rows = 32", f"rows = {size}").replace("cols = 32", f"cols = {size}")


def bench_store(tmp: Path, batches: int = 200, cells: int = 1024) -> float:
    rng = np.random.default_rng(0)
    r, c = np.divmod(np.arange(cells, dtype=np.int64), 64)
    batch = Measurements(kind="program", rows=r, cols=c, t=1.0,
                         values={"g": rng.uniform(1e-5, 9e-5, cells), "target": np.full(cells, 5e-5),
                                 "iterations": rng.integers(1, 50, cells), "converged": np.ones(cells, bool)})
    with Store(tmp / "throughput.sqlite") as store:
        t0 = time.perf_counter()
        rows = sum(store.append_batch("bench", 0, 0, k, batch) for k in range(batches))
        return rows / (time.perf_counter() - t0)


def measure(size: int, repeats: int) -> dict[str, float | int]:
    import xarray

    # xarray imports its optional array libraries (dask) when it builds its first Dataset: done here, so
    # the timings below are of the reads
    xarray.Dataset({"x": ("a", np.zeros(1))})
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        store_path = tmp / "main.sqlite"
        with Store(store_path) as store:
            t0 = time.perf_counter()
            result = asyncio.run(Runner.new(store, main_job(size), "weight-transfer.toml").run())
            run_s = time.perf_counter() - t0
            assert result.status == "complete", result.errors
            measurements = store.measurement_count(result.run_id)
        file_size = store_path.stat().st_size  # closed: the WAL is checkpointed into the file and removed
        run = labctl.open_run(store_path, result.run_id)
        t0 = time.perf_counter()
        run.dataset("transfer")
        first = time.perf_counter() - t0
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            run.dataset("transfer")
            times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        exported = export_netcdf(run, tmp / "run.nc")
        export_s = time.perf_counter() - t0
        return {"bytes_per_measurement": file_size / measurements, "store_bytes": file_size,
                "measurements": measurements, "main_job_s": run_s, "store_rows_per_s": bench_store(tmp),
                "open_run_dataset_s": statistics.median(times), "open_run_dataset_first_s": first,
                "netcdf_export_mb_per_s": exported / 1e6 / export_s,
                "netcdf_file_mb": (tmp / "run.nc").stat().st_size / 1e6, "netcdf_array_mb": exported / 1e6,
                "cells": size ** 2}


def table(out: dict[str, float | int]) -> None:
    print(f"{'quantity':<32}{'value':>16}")
    for k, v in out.items():
        print(f"{k:<32}{v:>16.4g}" if isinstance(v, float) else f"{k:<32}{v:>16}")


def main(argv: list[str] | None = None) -> int:
    return run_benchmark(argv, __doc__, lambda args: measure(args.size, args.repeats), table,
                         repeats=(5, "timed repetitions of the dataset read (median reported)"),
                         size=(256, "array side of the main job"))


if __name__ == "__main__":
    raise SystemExit(main())
