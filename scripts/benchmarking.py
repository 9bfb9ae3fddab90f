"""What the benchmark scripts (scripts/bench_*.py) share: their command line with --json, printing a
result as a table or as one JSON object, and the median time of a repeated operation.

The scripts run as `python scripts/bench_x.py`, so this module is found next to them.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any


def parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser described by the script's docstring, with --json."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def emit(result: dict[str, Any], as_json: bool, table: Callable[[dict[str, Any]], None]) -> int:
    """Print `result` as one JSON object (--json) or as the script's `table`; the exit status (0)."""
    if as_json:
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
