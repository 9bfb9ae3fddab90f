"""Evaluation benchmarks (issue 7). Prints a table, or one JSON object with --json.

Figures:
  tile64_six_times_s     a 64x64 tile (63 weights + offset reference per row) from closed-loop programming
                         on the emulator (cells already formed), read-back, through the MVM model (6-bit DAC,
                         8-bit ADC, read noise, exact IR drop, relaxation, drift compensation) at six times
                         (1 s .. 10 years), 100 input vectors per time; target < 2 s
  agad_digits_epoch_s    one epoch of a 64-32-10 analog MLP on digits (1,257 training images, mini-batch 10)
                         with AGAD and the tuned settings, devices drawn from the model fitted to an emulated
                         CMO/HfOx array; target < 0.2 s
  pulsed_updates_per_s   device updates per second of the C pulsed-update kernel on one core: a 256x256 tile,
                         batches of digits-like inputs (x in [0, 1], many zeros) and errors, BL 31; one device
                         update = one (sample, device) coincidence evaluation with its pulses; target >= 1e7
  pulses_per_s           pulses actually applied per second in the same run (each with soft bounds and noise)
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time

import numpy as np

from emulator.train import PulsedTile
from labctl.backends import EmulatorBackend
from labctl.evaluation.datasets import load_digits
from labctl.evaluation.devicefit import DevicePopulation, fit_devices, measure_open_loop
from labctl.evaluation.inference import EVALUATION_TIMES
from labctl.evaluation.mapping import map_layer
from labctl.evaluation.mvm import DriftingLayer, MVMConfig
from labctl.evaluation.programming import prepare_cells, program_layers
from labctl.evaluation.relaxation import RelaxationLaw
from labctl.evaluation.training import DIGITS_SETTINGS, AnalogTrainer, DeviceSource


def bench_tile64(repeat: int = 3) -> float:
    rng = np.random.default_rng(0)
    mapping = map_layer(rng.uniform(-1, 1, (64, 63)), scheme="offset")
    x = rng.uniform(0, 1, (100, 64))
    best = np.inf

    async def run() -> float:
        async with EmulatorBackend(64, 64, seed=0) as b:
            r, c = np.divmod(np.arange(64 * 64, dtype=np.int64), 64)
            await prepare_cells(b, r, c)  # forming is set-up, not measured
            t0 = time.perf_counter()
            layers = await program_layers(b, [mapping], prepare=False)
            dl = DriftingLayer(layers[0], EVALUATION_TIMES, RelaxationLaw.from_preset(), MVMConfig(), rng)
            for k in range(len(EVALUATION_TIMES)):
                dl.forward(x, k)
            return time.perf_counter() - t0

    for _ in range(repeat):
        best = min(best, asyncio.run(run()))
    return best


def fitted_population(seed: int = 0) -> DevicePopulation:
    async def traces():  # type: ignore[no-untyped-def]
        async with EmulatorBackend(4, 4, seed=seed) as b:
            r, c = np.divmod(np.arange(16, dtype=np.int64), 4)
            await prepare_cells(b, r, c)
            return await measure_open_loop(b, r, c)

    return DevicePopulation.from_devices(fit_devices(*asyncio.run(traces())))


def bench_agad_epoch(population: DevicePopulation, repeat: int = 3) -> float:
    data = load_digits()
    trainer = AnalogTrainer(data.n_inputs, data.n_classes, DIGITS_SETTINGS, DeviceSource(population=population))
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        trainer.epoch(data.x_train, data.y_train)
        best = min(best, time.perf_counter() - t0)
    return best


def bench_updates(population: DevicePopulation) -> tuple[float, float]:
    rng = np.random.default_rng(1)
    n = 256
    p = population.sample(n * n, rng)
    from labctl.evaluation.training import normalized_devices

    nd = normalized_devices(p)
    c2c = float(np.mean(nd.pop("c2c_sigma")))
    tile = PulsedTile(n, n, **{k: v.reshape(n, n) for k, v in nd.items()}, c2c_sigma=c2c, seed=2)
    data = load_digits()
    x = np.resize(data.x_train, (n, 64))  # digits-like rows
    x = np.hstack([x, x, x, x])[:, :n]
    d = 0.1 * rng.standard_normal((n, n))
    best, pulses = np.inf, 0
    for _ in range(3):
        t0 = time.perf_counter()
        pulses = tile.update(x, d, lr=0.5 / 10, dw_min=0.08, bl=31)
        best = min(best, time.perf_counter() - t0)
    return n * n * n / best, pulses / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    population = fitted_population()
    updates, pulses = bench_updates(population)
    out = {"tile64_six_times_s": bench_tile64(), "agad_digits_epoch_s": bench_agad_epoch(population),
           "pulsed_updates_per_s": updates, "pulses_per_s": pulses,
           "machine": f"{platform.machine()} {platform.python_implementation()} {platform.python_version()}, "
                      f"{os.cpu_count()} cpus"}
    if args.json:
        print(json.dumps(out))
        return
    targets = {"tile64_six_times_s": "< 2 s", "agad_digits_epoch_s": "< 0.2 s", "pulsed_updates_per_s": ">= 1e7",
               "pulses_per_s": ""}
    print(f"{'figure':<24}{'value':>14}  target")
    for k, t in targets.items():
        print(f"{k:<24}{out[k]:>14.4g}  {t}")


if __name__ == "__main__":
    main()
