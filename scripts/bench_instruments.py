"""Benchmark the instrument path: SCPI query round trip through pyvisa-py to an emulated
instrument on loopback, and host time per closed-loop iteration (set pulse + verify read through
the 707B matrix, the SMUs and the pulse generator) beyond the instruments' modeled times.

Per station kind of the analyzer bench (``<station>``: pmu_4200a, wgfmu_b1500a, spgu_b1500a):
``iteration_overhead_s.<station>``, one closed-loop iteration (pulse + verify read) on one cell
(labctl.backends.bench.iteration_overhead) against a `labctl emulate` process (the in-process
figure as ``iteration_overhead_inprocess_s.<station>``), and ``program_32_s.<station>``, the closed-loop
programming routine (reset sweep, then identical pulses, 2 % acceptance) of a formed 32 x 32 array
to uniform random targets in 10-90 uS through the station (its example file with the array and the
wiring resized).

The emulated instruments do not sleep for their modeled times (they go on the array's virtual
clock), so the wall time of an iteration is all host overhead: Python, pyvisa-py, TCP, parsing.

    python scripts/bench_instruments.py            # readable table
    python scripts/bench_instruments.py --json     # one JSON object
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

import emulator
from emulator.instruments import InstrumentBench
from labctl.backends.bench import iteration_overhead as backend_iteration_overhead
from labctl.backends.station import ArrayClock, ChipClock, StationBackend
from labctl.emulated import prepared_array
from labctl.instruments import Keithley2450, Station, StationConfig
from labctl.routines import ClosedLoopParams, ConditionParams, FormingParams, condition, form, program

from benchmarking import median_time, run_benchmark

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EXAMPLE = EXAMPLES / "station-emulated.toml"
#: Station kinds on the analyzer bench and their example files.
ANALYZER_STATIONS = {
    "pmu_4200a": EXAMPLES / "station-4200a-pmu.toml",
    "wgfmu_b1500a": EXAMPLES / "station-b1500a-wgfmu.toml",
    "spgu_b1500a": EXAMPLES / "station-b1500a-spgu.toml",
}


@contextlib.contextmanager
def emulate_process(rows: int, cols: int, seed: int) -> Iterator[tuple[str, dict[str, str]]]:
    """A `labctl emulate` subprocess: (its chip-controller address, instrument resources by name)."""
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    process = subprocess.Popen([sys.executable, "-m", "labctl.cli", "emulate", "--rows", str(rows), "--cols",
                                str(cols), "--seed", str(seed), "--no-pty"], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, env=env, cwd=root)
    try:
        chip, resources = "", {}
        assert process.stdout is not None
        while not ({"analyzer_4200a", "analyzer_b1500a", "matrix_707b_pa"} <= set(resources)):
            line = process.stdout.readline()
            if not line:
                raise RuntimeError("labctl emulate ended before printing its addresses")
            kind, _, rest = line.strip().partition(" ")
            if kind == "chip" and rest.startswith("tcp://"):
                chip = rest
            elif kind == "instrument":
                instrument, resource = rest.split()
                resources[instrument] = resource
        yield chip, resources
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def analyzer_station(name: str, iterations: int, size: int) -> dict[str, float]:
    """iteration_overhead_s and program_<size>_s of one analyzer station kind.

    The iteration is timed against a `labctl emulate` process, as a host sees an instrument: the
    emulated instrument's own computing is then not host time (in the same process it would be,
    and both would contend for one interpreter); the in-process figure is reported too
    (``iteration_overhead_inprocess_s.<station>``). Programming runs in process on a 32 x 32 array
    formed there (the emulated instruments' computing included)."""
    path = ANALYZER_STATIONS[name]
    out: dict[str, float] = {}
    with emulate_process(8, 4, 0) as (chip, resources):
        async with StationBackend(path, resources=resources, clock=ChipClock(chip)) as backend:
            one = (np.array([0]), np.array([0]))
            await form(backend, *one, FormingParams(step=0.05))
            await condition(backend, *one, ConditionParams(step=0.05))
            out[f"iteration_overhead_s.{name}"] = await backend_iteration_overhead(backend, iterations=iterations)
    small = prepared_array(8, 4, seed=0, step=0.05)  # formed and conditioned in process, untimed
    async with InstrumentBench(small) as bench:
        async with StationBackend(path, resources=dict(bench.resources()), clock=ArrayClock(small)) as backend:
            out[f"iteration_overhead_inprocess_s.{name}"] = await backend_iteration_overhead(
                backend, iterations=iterations)
    big = prepared_array(size, size, seed=0, step=0.05)
    targets = np.random.default_rng(0).uniform(10e-6, 90e-6, size * size).tolist()
    async with InstrumentBench(big) as bench:
        async with StationBackend(StationConfig.from_toml(path).with_array(size, size), resources=dict(bench.resources()),
                                  clock=ArrayClock(big)) as backend:
            t0 = time.perf_counter()
            result = await program(backend, None, None, ClosedLoopParams(targets=targets))
            out[f"program_{size}_s.{name}"] = time.perf_counter() - t0
            out[f"program_{size}_converged.{name}"] = float(np.mean(result.converged))
            out[f"program_{size}_pulses_mean.{name}"] = float(np.mean(result.iterations))
    return out


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


async def run(repeats: int, iterations: int, size: int = 32) -> dict[str, float]:
    async with InstrumentBench(emulator.Array(8, 4, seed=0)) as bench:
        rtt = await query_roundtrip(bench, repeats)
        overhead, messages = await iteration_overhead(bench, iterations)
    out: dict[str, float] = {
        "scpi_query_roundtrip_s": rtt,
        "station_iteration_overhead_s": overhead,
        "station_messages_per_iteration": messages,
    }
    if size > 0:
        for name in ANALYZER_STATIONS:
            out.update(await analyzer_station(name, iterations, size))
    return out


def table(result: dict[str, float]) -> None:
    print("instrument path (pyvisa-py, loopback TCP, emulated instruments)")
    print(f"  SCPI query round trip (*IDN?, median)        {result['scpi_query_roundtrip_s'] * 1e6:10.1f} us")
    print(f"  closed-loop iteration, host time (median)    {result['station_iteration_overhead_s'] * 1e3:10.2f} ms")
    print(f"  messages per iteration (pulse + read)        {result['station_messages_per_iteration']:10d}")
    for name in ANALYZER_STATIONS:
        if f"iteration_overhead_s.{name}" not in result:
            continue
        size = next(k for k in result if k.startswith("program_") and k.endswith(f"_s.{name}"))
        print(f"  {name}: iteration host time (median)  {result[f'iteration_overhead_s.{name}'] * 1e3:10.2f} ms"
              f"  (in process {result[f'iteration_overhead_inprocess_s.{name}'] * 1e3:.2f} ms)")
        print(f"  {name}: {size.split('_s.')[0]} (s)              {result[size]:10.1f} s"
              f"  (converged {result[size.replace('_s.', '_converged.')]:.3f})")


def main(argv: list[str] | None = None) -> int:
    return run_benchmark(argv, __doc__, lambda args: asyncio.run(run(args.repeats, args.iterations, args.size)),
                         table, repeats=(500, "queries timed"), iterations=(200, "loop iterations timed"),
                         size=(32, "array side programmed through each analyzer station (0: skip)"))


if __name__ == "__main__":
    raise SystemExit(main())
