"""Benchmark the instrument path: SCPI query round trip through pyvisa-py to an emulated
instrument on loopback, and host time per closed-loop iteration (set pulse + verify read through
the 707B matrix, the SMUs and the pulse generator) beyond the instruments' modeled times.

The emulated instruments do not sleep for their modeled times (they go on the array's virtual
clock), so the wall time of an iteration is all host overhead: Python, pyvisa-py, TCP, parsing.

    python scripts/bench_instruments.py            # readable table
    python scripts/bench_instruments.py --json     # one JSON object
"""
from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import numpy as np

import emulator
from emulator.instruments import InstrumentBench
from labctl.instruments import Keithley2450, Station

from benchmarking import median_time, run_benchmark

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "station-emulated.toml"


async def query_roundtrip(bench: InstrumentBench, repeats: int) -> float:
    """Median time of ``*IDN?`` through the async driver stack, s."""
    async with Keithley2450(bench["smu_2450"].resource, name="smu") as smu:
        return await median_time(lambda: smu.ask("*IDN?"), repeats, warmup=20)


async def iteration_overhead(bench: InstrumentBench, iterations: int) -> tuple[float, int]:
    """Median host time of one program-and-verify iteration on one cell, s; and queries sent."""
    arr = bench.array
    arr.sweep(0, 0, np.linspace(0, 3.6, 73), vg=1.2)
    arr.sweep(0, 0, np.linspace(0, -1.5, 31), vg=3.3)
    async with Station.from_file(EXAMPLE, dict(bench.resources())) as station:
        await station.smu.nplc.set(0.01)
        samples = []
        start = sum(len(s.received) for s in bench.servers.values())
        for k in range(iterations + 5):
            # Alternate polarity as a real loop near its target does: worst case for caching.
            v, vg = (1.35, 1.4) if k % 2 == 0 else (-1.3, 3.3)
            t0 = time.perf_counter()
            await station.pulse(0, 0, v, 2.5e-6, vg=vg)
            await station.read(0, 0)
            if k >= 5:
                samples.append(time.perf_counter() - t0)
        messages = sum(len(s.received) for s in bench.servers.values()) - start
    return statistics.median(samples), messages // (iterations + 5)


async def run(repeats: int, iterations: int) -> dict[str, float]:
    async with InstrumentBench(emulator.Array(8, 4, seed=0)) as bench:
        rtt = await query_roundtrip(bench, repeats)
        overhead, messages = await iteration_overhead(bench, iterations)
    return {
        "scpi_query_roundtrip_s": rtt,
        "station_iteration_overhead_s": overhead,
        "station_messages_per_iteration": messages,
    }


def table(result: dict[str, float]) -> None:
    print("instrument path (pyvisa-py, loopback TCP, emulated instruments)")
    print(f"  SCPI query round trip (*IDN?, median)        {result['scpi_query_roundtrip_s'] * 1e6:10.1f} us")
    print(f"  closed-loop iteration, host time (median)    {result['station_iteration_overhead_s'] * 1e3:10.2f} ms")
    print(f"  messages per iteration (pulse + read)        {result['station_messages_per_iteration']:10d}")


def main(argv: list[str] | None = None) -> int:
    return run_benchmark(argv, __doc__, lambda args: asyncio.run(run(args.repeats, args.iterations)), table,
                         repeats=(500, "queries timed"), iterations=(200, "loop iterations timed"))


if __name__ == "__main__":
    raise SystemExit(main())
