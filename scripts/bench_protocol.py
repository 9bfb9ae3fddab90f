#!/usr/bin/env python
"""Benchmark of the chip command protocol over TCP loopback (issue 3 targets).

- SET_TARGET_G of a formed 64 x 64 array to random targets (2 %), over TCP versus the same
  emulator.Array.program call in process (target: ratio <= 1.2). Both start from the same state
  (snapshot/restore) and produce identical results.
- READ_ARRAY of a 512 x 512 array over TCP, float64 (target <= 50 ms).
- Small request round trips per second (READ of one cell; STATUS for reference).
- ABORT latency of a SET_TARGET_G on a formed 64 x 64 array with max_iterations = 1e6 and a
  tolerance no cell reaches: ABORT sent -> ABORTED reply received (target <= 50 ms).

The controller runs in this process on the same event loop as the client, so every figure
includes both ends' Python work on one interpreter.

    python scripts/bench_protocol.py          # table
    python scripts/bench_protocol.py --json   # one JSON object
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import numpy as np

import emulator
from emulator.controller import ChipController, serve_tcp
from labctl.emulated import reference_pulses
from labctl.protocols.cells import Cells
from labctl.protocols.client import ChipClient
from labctl.protocols.codes import RunState, Status
from labctl.protocols.errors import CommandError

FORM_VOLTAGES = np.arange(361) * 0.01  # 0 -> 3.6 V at VG = 1.2 V, the reference forming sweep
CONDITION_VOLTAGES = np.linspace(0.0, -1.4, 141)  # then 0 -> -1.4 V at VG = 3.3 V (reference)


def formed_array(rows: int, cols: int, seed: int) -> emulator.Array:
    """A formed and conditioned array, as the reference prepares cells before programming."""
    array = emulator.Array(rows, cols, seed=seed)
    rr, cc = np.divmod(np.arange(rows * cols), cols)
    array.sweep(rr, cc, FORM_VOLTAGES, vg=1.2, dwell=1e-3)
    array.sweep(rr, cc, CONDITION_VOLTAGES, vg=3.3, dwell=1e-3)
    return array


async def serve(array: emulator.Array) -> tuple[ChipController, asyncio.Server, str]:
    controller = ChipController(array)
    server = await serve_tcp(controller, "127.0.0.1", 0)
    return controller, server, f"tcp://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def bench_set_target(repeats: int) -> dict[str, float]:
    array = formed_array(64, 64, seed=64)
    start = array.snapshot()
    rr, cc = np.divmod(np.arange(64 * 64), 64)
    targets = np.random.default_rng(1).uniform(10e-6, 90e-6, 64 * 64)
    inproc: list[float] = []
    for _ in range(repeats):
        array.restore(start)
        t0 = time.perf_counter()
        expected = array.program(rr, cc, targets, 0.02, max_iterations=500, **reference_pulses(targets))
        inproc.append(time.perf_counter() - t0)
    controller, server, address = await serve(array)
    tcp: list[float] = []
    async with await ChipClient.connect(address, timeout=10.0) as chip:
        for _ in range(repeats):
            array.restore(start)
            t0 = time.perf_counter()
            result = await chip.set_target_g(None, targets, tolerance=0.02)
            tcp.append(time.perf_counter() - t0)
            assert np.array_equal(result.g, expected.g), "TCP and in-process results differ"
    await server.close()
    await controller.aclose()
    t_in, t_tcp = statistics.median(inproc), statistics.median(tcp)
    return {"set_target_64_inproc_s": t_in, "set_target_64_tcp_s": t_tcp,
            "set_target_64_tcp_vs_inproc_ratio": t_tcp / t_in,
            "set_target_64_converged": float(expected.converged.mean())}


async def bench_read_array(repeats: int) -> dict[str, float]:
    array = emulator.Array(512, 512, seed=512)
    controller, server, address = await serve(array)
    times: list[float] = []
    inproc: list[float] = []
    async with await ChipClient.connect(address, timeout=10.0) as chip:
        for _ in range(repeats):
            t0 = time.perf_counter()
            g = await chip.read_array()
            times.append(time.perf_counter() - t0)
            assert g.shape == (512, 512)
    for _ in range(repeats):
        t0 = time.perf_counter()
        array.read_all()
        inproc.append(time.perf_counter() - t0)
    await server.close()
    await controller.aclose()
    return {"read_array_512_tcp_s": statistics.median(times),
            "read_array_512_inproc_s": statistics.median(inproc)}


async def bench_roundtrips(seconds: float) -> dict[str, float]:
    array = formed_array(8, 4, seed=8)
    controller, server, address = await serve(array)
    out: dict[str, float] = {}
    async with await ChipClient.connect(address) as chip:
        cell = Cells.single(0, 0)
        for key, call in (("roundtrips_per_s", lambda: chip.read(cell)),
                          ("status_roundtrips_per_s", chip.status)):
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                await call()
                n += 1
            out[key] = n / (time.perf_counter() - t0)
    await server.close()
    await controller.aclose()
    return out


async def bench_abort_latency(repeats: int) -> dict[str, float]:
    array = formed_array(64, 64, seed=64)
    controller, server, address = await serve(array)
    latencies: list[float] = []
    async with await ChipClient.connect(address, timeout=10.0) as chip:
        for _ in range(repeats):
            task = asyncio.create_task(chip.set_target_g(
                None, np.full(64 * 64, 50e-6), tolerance=1e-6, max_iterations=1_000_000, timeout=600.0))
            while (await chip.status()).state != RunState.RUNNING:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)  # well into the loop
            t0 = time.perf_counter()
            await chip.abort()
            try:
                await task
            except CommandError as exc:
                assert exc.status == Status.ABORTED, exc
            latencies.append(time.perf_counter() - t0)
    await server.close()
    await controller.aclose()
    return {"abort_latency_s": statistics.median(latencies), "abort_latency_max_s": max(latencies)}


async def run(repeats: int, seconds: float) -> dict[str, float]:
    results: dict[str, float] = {}
    results.update(await bench_set_target(repeats))
    results.update(await bench_read_array(repeats))
    results.update(await bench_roundtrips(seconds))
    results.update(await bench_abort_latency(min(repeats, 5)))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeats", type=int, default=15, help="timed repetitions (median reported)")
    parser.add_argument("--seconds", type=float, default=1.0, help="duration of the round-trip test, s")
    args = parser.parse_args()
    results = asyncio.run(run(args.repeats, args.seconds))
    if args.json:
        print(json.dumps(results))
        return 0
    rows = [
        ("SET_TARGET_G 64x64 (2 %), in process", f"{results['set_target_64_inproc_s'] * 1e3:.1f} ms", ""),
        ("SET_TARGET_G 64x64 (2 %), TCP", f"{results['set_target_64_tcp_s'] * 1e3:.1f} ms", ""),
        ("  ratio TCP / in process", f"{results['set_target_64_tcp_vs_inproc_ratio']:.3f}", "<= 1.2"),
        ("READ_ARRAY 512x512 float64, TCP", f"{results['read_array_512_tcp_s'] * 1e3:.1f} ms", "<= 50 ms"),
        ("  read_all 512x512 in process", f"{results['read_array_512_inproc_s'] * 1e3:.1f} ms", ""),
        ("READ one cell, round trips", f"{results['roundtrips_per_s']:.0f} /s", ""),
        ("STATUS, round trips", f"{results['status_roundtrips_per_s']:.0f} /s", ""),
        ("ABORT of SET_TARGET_G 64x64, 1e6 iterations", f"{results['abort_latency_s'] * 1e3:.1f} ms",
         "<= 50 ms"),
        ("  slowest of the repeats", f"{results['abort_latency_max_s'] * 1e3:.1f} ms", ""),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measurement':<{width}}  {'value':>10}  target")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>10}  {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
