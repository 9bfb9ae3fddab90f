"""What the benchmark scripts (scripts/bench_*.py) share: their main() (a command line with --json and
integer options, the result printed as a table or as one JSON object) and the median time of a
repeated operation.

The scripts run as `python scripts/bench_x.py`, so this module is found next to them.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any


def run_benchmark(argv: list[str] | None, doc: str | None, measure: Callable[[argparse.Namespace], dict[str, Any]],
                  table: Callable[[dict[str, Any]], None],
                  options: Callable[[argparse.ArgumentParser], None] | None = None,
                  **counts: tuple[int, str]) -> int:
    """A benchmark script's main(): parse `argv` (--json, one integer option per `counts` entry,
    name=(default, help), and whatever `options` adds to the parser), `measure` with the parsed
    arguments, print the result as one JSON object (--json) or as the script's `table`; returns the
    exit status (0)."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    if options is not None:
        options(p)
    for name, (default, text) in counts.items():
        p.add_argument(f"--{name}", type=int, default=default, help=f"{text} (default {default})")
    args = p.parse_args(argv)
    result = measure(args)
    if args.json:
        print(json.dumps(result))
    else:
        table(result)
    return 0


async def median_time(operation: Callable[[], Awaitable[object]], repeats: int, warmup: int = 0) -> float:
    """Median wall time of `repeats` awaited calls of `operation` after `warmup` untimed ones, s."""
    for _ in range(warmup):
        await operation()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        await operation()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)
