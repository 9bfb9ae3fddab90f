#!/usr/bin/env python3
"""Benchmark of the routines.

program_512_inproc_s: the whole closed-loop programming routine (REF: quasi-static reset sweep of every
cell first, then identical pulses with the REF per-range amplitudes, 2 % acceptance) on a formed and
conditioned 512x512 emulated array, to uniform random targets in 10–90 µS, through the in-process
backend (native loop); its reset sweep alone is reset_sweep_512_inproc_s; the same routine with the
loop run on the host (vectorized over the unconverged cells) is program_512_inproc_host_s.
iteration_overhead_s: host time per closed-loop iteration (one pulse + one verify read) on each backend:
in-process emulator, chip controller over TCP, instrument station (emulated instruments), measured with
labctl.backends.bench.iteration_overhead.

Prints a table, or one JSON object with --json. Times are wall-clock on a shared machine: noisy.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import numpy as np

import emulator
from labctl.backends import ArrayBackend, EmulatorBackend
from labctl.core import reference as ref
from labctl.routines import ClosedLoopParams, ConditionParams, FormingParams, condition, form, program
from labctl.routines.params import all_cells

STATION = Path(__file__).resolve().parents[1] / "examples" / "station-emulated.toml"


async def bench_program(size: int, seed: int) -> dict[str, float | int]:
    b = EmulatorBackend(size, size, seed=seed)
    # Preparation is not timed; coarse 50 mV sweeps form and condition the cells as well as 10 mV ones.
    await form(b, None, None, FormingParams(step=0.05, chunk=1 << 16))
    await condition(b, None, None, ConditionParams(step=0.05, chunk=1 << 16))
    r, c = all_cells(b)
    targets = np.random.default_rng(seed).uniform(10e-6, 90e-6, r.size).tolist()
    snap = b.array.snapshot()
    out: dict[str, float | int] = {}
    reset = ClosedLoopParams(targets=targets)  # the routine's own reset sweep
    t0 = time.perf_counter()
    await b.sweep(r, c, np.linspace(0.0, reset.reset_v, int(round(-reset.reset_v / reset.sweep_step)) + 1),
                  reset.reset_vg, reset.sweep_dwell)
    out["reset_sweep_512_inproc_s"] = time.perf_counter() - t0
    for loop in ("native", "host"):
        b.array.restore(snap)
        params = ClosedLoopParams(targets=targets, tolerance=ref.TOLERANCE, loop=loop, chunk=r.size)
        t0 = time.perf_counter()
        res = await program(b, r, c, params)
        key = "program_512_inproc_s" if loop == "native" else "program_512_inproc_host_s"
        out[key] = time.perf_counter() - t0
        out[f"{loop}_iterations_mean"] = float(res.iterations.mean())
        out[f"{loop}_converged_fraction"] = float(res.converged.mean())
    return out


async def bench_overhead(iterations: int) -> dict[str, float]:
    from emulator.controller import ChipController, serve_tcp
    from emulator.instruments import InstrumentBench
    from labctl.backends.bench import iteration_overhead
    from labctl.backends.chip import ChipBackend
    from labctl.backends.station import ArrayClock, StationBackend

    out: dict[str, float] = {}
    async with AsyncExitStack() as stack:
        backends: dict[str, ArrayBackend] = {}
        backends["emulator"] = await stack.enter_async_context(EmulatorBackend(8, 4, seed=0))
        controller = ChipController(emulator.Array(8, 4, seed=0))
        stack.push_async_callback(controller.aclose)
        server = await serve_tcp(controller, "127.0.0.1", 0)
        stack.push_async_callback(server.close)
        backends["chip_tcp"] = await stack.enter_async_context(
            ChipBackend(f"tcp://127.0.0.1:{server.sockets[0].getsockname()[1]}"))
        array = emulator.Array(8, 4, seed=0)
        bench = await stack.enter_async_context(InstrumentBench(array))
        backends["station"] = await stack.enter_async_context(
            StationBackend(STATION, resources=dict(bench.resources()), clock=ArrayClock(array)))
        for name, b in backends.items():
            one = (np.array([0]), np.array([0]))
            await form(b, *one, FormingParams(step=0.05))
            await condition(b, *one, ConditionParams(step=0.05))
            out[name] = await iteration_overhead(b, iterations=iterations)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--size", type=int, default=512, help="array side for the programming benchmark (default 512)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--iterations", type=int, default=200, help="closed-loop iterations timed per backend")
    args = p.parse_args(argv)
    result: dict[str, Any] = asyncio.run(bench_program(args.size, args.seed))
    result["iteration_overhead_s"] = asyncio.run(bench_overhead(args.iterations))
    result["array"] = f"{args.size}x{args.size}"
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{'figure':<34} {'value':>12}")
    for k, v in result.items():
        if isinstance(v, dict):
            for kk, vv in v.items():
                print(f"{'iteration_overhead_s.' + kk:<34} {vv:>12.3g}")
        else:
            print(f"{k:<34} {v:>12.4g}" if isinstance(v, float) else f"{k:<34} {v!s:>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
