"""Benchmark of wafer campaigns at the emulated probe station (docs/campaigns.md, "Wafers").

die_overhead_s: host time per die of a wafer campaign beyond its measurements: the emulated prober's
  steps over TCP (separate, step, contact), the contact check read, the die's summary and its records in
  the store. Measured as (T_wafer - T_one_die) / dies, where T_wafer runs one read step on each of `dies`
  8 x 8 dies and T_one_die runs the same read step `dies` times on one die (same units, same stores);
  minimum of `repeats` runs each. The prober's modeled move times are virtual and cost no wall time
  (target <= 0.05 s).
wafer_36_forming_s: examples/wafer-forming.toml end to end (a 6 x 6-die wafer of 32 x 32 dies: step,
  contact check, REF forming sweep and a read on each die, every measurement stored), s.

Usage: python scripts/bench_wafer.py [--json] [--dies N] [--repeats N]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from benchmarking import run_benchmark

from labctl.campaigns import Runner, Store

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "wafer-forming.toml"


def _campaign(dies: int, wafer: bool) -> str:
    head = '[campaign]\nname = "bench-wafer"\n\n[backend]\nrows = 8\ncols = 8\nseed = 1\n\n'
    if wafer:
        return head + (f'[wafer]\nprober = "velox"\nemulated = {{ columns = {dies}, rows = 1 }}\n\n'
                       '[[steps]]\nroutine = "read"\n')
    return head + f'[[steps]]\nroutine = "read"\nrepeat = {dies}\n'


def _timed_run(text: str, source: str) -> float:
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "b.sqlite") as store:
        t0 = time.perf_counter()
        result = asyncio.run(Runner.new(store, text, source).run())
        elapsed = time.perf_counter() - t0
        if result.status != "complete":
            raise RuntimeError(f"benchmark run {result.status}: {result.errors}")
        return elapsed


def measure(args: argparse.Namespace) -> dict[str, float | int | str]:
    wafer = min(_timed_run(_campaign(args.dies, True), "bench.toml") for _ in range(args.repeats))
    one_die = min(_timed_run(_campaign(args.dies, False), "bench.toml") for _ in range(args.repeats))
    forming = _timed_run(EXAMPLE.read_text(), str(EXAMPLE))
    return {"die_overhead_s": (wafer - one_die) / args.dies, "dies": args.dies,
            "wafer_run_s": wafer, "one_die_run_s": one_die, "wafer_36_forming_s": forming,
            "load": " ".join(os.getloadavg().__repr__().strip("()").split(", "))}


def table(r: dict[str, float | int | str]) -> None:
    print(f"die_overhead_s      {r['die_overhead_s'] * 1e3:8.1f} ms per die ({r['dies']} dies: wafer run"
          f" {r['wafer_run_s']:.3f} s, same reads on one die {r['one_die_run_s']:.3f} s; target <= 50 ms)")
    print(f"wafer_36_forming_s  {r['wafer_36_forming_s']:8.2f} s (examples/wafer-forming.toml)")
    print(f"load                {r['load']}")


def main(argv: list[str] | None = None) -> int:
    return run_benchmark(argv, __doc__, measure, table, dies=(30, "dies of the overhead runs"),
                         repeats=(3, "runs of each, minimum taken"))


if __name__ == "__main__":
    raise SystemExit(main())
