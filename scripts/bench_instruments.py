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

Per station kind (STATIONS: the example station files), through StationBackend:
iteration_overhead_s.<station>: one closed-loop iteration (pulse + verify read, polarity as the loop
decides; labctl.backends.bench.iteration_overhead) beyond the modeled times (target <= 10 ms for
SMU + pulse generator + switch stations); program_32_s.<station>: the closed-loop programming
routine (REF: reset sweep of every cell, then identical pulses, 2 % acceptance) on a formed and
conditioned 32 x 32 array (formed in process, not timed) to uniform random targets in 10-90 uS.

    python scripts/bench_instruments.py            # readable table
    python scripts/bench_instruments.py --json     # one JSON object
    python scripts/bench_instruments.py --size 0   # skip the programming figures
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

import tomllib

import emulator
from emulator.instruments import InstrumentBench
from emulator.instruments.bench import LAYOUT_3706A, LAYOUT_707B, line_column
from labctl.backends.bench import iteration_overhead as loop_iteration_overhead
from labctl.backends.station import ArrayClock, ChipClock, StationBackend
from labctl.core import reference as ref
from labctl.emulated import prepared_array
from labctl.instruments import Keithley2450, Station, StationConfig
from labctl.routines import ClosedLoopParams, ConditionParams, FormingParams, RoutineContext, condition, form, program

from benchmarking import median_time, run_benchmark

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EXAMPLE = EXAMPLES / "station-emulated.toml"
#: Station kinds: name -> (example station file, columns per card of its matrix).
STATIONS: dict[str, tuple[Path, int]] = {
    "2450_33522b_707b": (EXAMPLE, LAYOUT_707B.columns_per_card),
    "2602b_afg31102_3706a": (EXAMPLES / "station-2602b.toml", LAYOUT_3706A.columns_per_card),
    "2400_afg31102_3706a": (EXAMPLES / "station-2400.toml", LAYOUT_3706A.columns_per_card),
}

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
            out[f"iteration_overhead_s.{name}"] = await loop_iteration_overhead(backend, iterations=iterations)
    small = prepared_array(8, 4, seed=0, step=0.05)  # formed and conditioned in process, untimed
    async with InstrumentBench(small) as bench:
        async with StationBackend(path, resources=dict(bench.resources()), clock=ArrayClock(small)) as backend:
            out[f"iteration_overhead_inprocess_s.{name}"] = await loop_iteration_overhead(
                backend, iterations=iterations)
    if size <= 0:
        return out
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


def sized_station(path: Path, per_card: int, rows: int, cols: int) -> StationConfig:
    """The example station file ``path`` for a rows x cols array: the matrix columns the emulated
    bench gives each line (``per_card`` columns per card)."""
    data = tomllib.loads(path.read_text())
    data["array"] = {"rows": rows, "cols": cols}

    def columns(kind: str, count: int) -> list[str]:
        return [f"{s}{c:02d}" for s, c in (line_column(kind, i, rows, cols, per_card) for i in range(count))]
    data["wiring"].update(bit_lines=columns("BL", cols), word_lines=columns("WL", rows),
                          source_lines=columns("SL", rows))
    return StationConfig.model_validate(data)


def form_and_condition(array: emulator.Array) -> None:
    """Every cell formed and conditioned in process (not timed): the REF forming sweep (50 mV
    steps) at its gate, then a reset sweep to -1.5 V."""
    r, c = np.divmod(np.arange(array.rows * array.cols), array.cols)
    array.sweep(r, c, np.linspace(0.0, ref.FORMING.v_stop, 73), vg=ref.FORMING.vg)
    array.sweep(r, c, np.linspace(0.0, -1.5, 31), vg=ref.VG_RESET)


async def station_figures(name: str, iterations: int, size: int) -> dict[str, float]:
    """iteration_overhead_s and program_<size>_s of one station kind (fresh arrays of seed 0)."""
    path, per_card = STATIONS[name]
    out: dict[str, float] = {}
    array = emulator.Array(8, 4, seed=0)
    form_and_condition(array)
    async with InstrumentBench(array) as bench:
        async with StationBackend(path, resources=dict(bench.resources()), clock=ArrayClock(array)) as b:
            out["iteration_overhead_s"] = await loop_iteration_overhead(b, iterations=iterations)
    if size > 0:
        array = emulator.Array(size, size, seed=0)
        form_and_condition(array)
        targets = np.random.default_rng(0).uniform(10e-6, 90e-6, size * size).tolist()
        r, c = np.divmod(np.arange(size * size), size)
        async with InstrumentBench(array) as bench:
            config = sized_station(path, per_card, size, size)
            async with StationBackend(config, resources=dict(bench.resources()), clock=ArrayClock(array)) as b:
                t0 = time.perf_counter()
                result = await program(b, r, c, ClosedLoopParams(targets=targets, tolerance=0.02),
                                       RoutineContext())
                out[f"program_{size}_s"] = time.perf_counter() - t0
        arrays = result.arrays()
        out[f"program_{size}_converged_fraction"] = float(np.mean(arrays["converged"]))
        out[f"program_{size}_iterations_mean"] = float(np.mean(arrays["iterations"]))
    return out


async def run(repeats: int, iterations: int, size: int) -> dict[str, object]:
    async with InstrumentBench(emulator.Array(8, 4, seed=0)) as bench:
        rtt = await query_roundtrip(bench, repeats)
        overhead, messages = await iteration_overhead(bench, iterations)
    result: dict[str, object] = {
        "scpi_query_roundtrip_s": rtt,
        "station_iteration_overhead_s": overhead,
        "station_messages_per_iteration": messages,
    }
    for name in STATIONS:
        for key, value in (await station_figures(name, iterations, size)).items():
            result.setdefault(key, {})[name] = value  # type: ignore[index]
    for name in ANALYZER_STATIONS:  # --size 0: the iteration figures only
        for key, value in (await analyzer_station(name, iterations, size)).items():
            figure, _, station = key.rpartition(".")
            result.setdefault(figure, {})[station] = value  # type: ignore[index]
    with open("/proc/loadavg") as f:
        result["loadavg"] = f.read().split()[0]
    return result


def table(result: dict[str, object]) -> None:
    print("instrument path (pyvisa-py, loopback TCP, emulated instruments)")
    print(f"  SCPI query round trip (*IDN?, median)        {result['scpi_query_roundtrip_s'] * 1e6:10.1f} us")  # type: ignore[operator]
    print(f"  closed-loop iteration, host time (median)    {result['station_iteration_overhead_s'] * 1e3:10.2f} ms")  # type: ignore[operator]
    print(f"  messages per iteration (pulse + read)        {result['station_messages_per_iteration']:10d}")
    for key, per_station in result.items():
        if isinstance(per_station, dict):
            for station, value in per_station.items():
                print(f"  {key + '.' + station:<58} {value:12.4g}")
    print(f"  load average (1 min)                         {result['loadavg']:>10}")


def main(argv: list[str] | None = None) -> int:
    return run_benchmark(argv, __doc__, lambda args: asyncio.run(run(args.repeats, args.iterations, args.size)),
                         table, repeats=(500, "queries timed"), iterations=(200, "loop iterations timed"),
                         size=(32, "array side of the programming figure (0: skip)"))


if __name__ == "__main__":
    raise SystemExit(main())
