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
  mvm_irdrop_64_vs_matmul, mvm_irdrop_512_vs_matmul
                         exact IR-drop MVM after the transfer-matrix build (emulator.Array.mvm, 0.35 ohm per
                         segment, 10,000 / 4,096 vectors) divided by numpy float64 matmul of the same shapes
                         in the same run, both on one BLAS thread: a throughput ratio; target >= 0.5
  transfer_build_512_s   build of the 512x512 transfer matrix (nested dissection), one core; target <= 3 s
  transfer_build_512_cpu_s  CPU time of that build (the machine is shared: wall time grows with the load)
  transfer_build_512_2workers_s  the same with workers=2 (two threads; bit-identical result)
  network_784_programming_s  the 784-256-128-10 network on 64x64 tiles (79 tiles) programmed closed-loop on an
                         emulated 64x64 array, 79 rounds, cells formed in the first
  network_784_inference_s  the same network: transfer matrices of 79 tiles at programming and six times,
                         drift compensation, 10,000 inputs at six times (6-bit DAC, 8-bit ADC, read noise,
                         exact IR drop); target <= 30 s; network_784_inference_cpu_s its CPU time
  encoding_difference_64 RMS difference between amplitude- and pulse-width-encoded outputs of a programmed
                         64x64 tile (63 weights + reference, 0.35 ohm), relative to the outputs' RMS; 100
                         digits inputs
  pulsed_updates_sparse_per_s, pulsed_updates_dense_per_s
                         issue 18: device updates per second (rows x cols x batch / update time) of one update of a
                         512x512 tile, batch 64, BL 31 with update management, dw_min 0.08, devices from the fitted
                         CMO/HfOx population (c2c ~0.86), one core; targets >= 7.8e9 and >= 5.16e7 (2x aihwkit 1.2.0).
                         sparse: digit-like x (the 8x8 digits tiled to 512 inputs, in [0, 1], ~half zero),
                         d = 0.1 N(0, 1), lr 0.05 (largest firing probability ~0.09, ~0.015 pulses per device update);
                         dense: x, d ~ U(-1, 1) (all non-zero), lr 0.5 (largest firing probability ~0.45, ~1.55 pulses
                         per device update)
  pulses_applied_per_s   pulses applied per second in the dense regime (each with soft bounds and its own noise draw)
  agad_digits_gap_points FP minus AGAD final test accuracy (points) on digits, seeds 0-4 (fresh emulated 8x8 array,
                         device fit, split and training per seed, scripts/agad_seeds.py): mean and max; targets
                         <= 0.5 and <= 1.0. Slow (five device fits); --skip-agad leaves it out.
"""
from __future__ import annotations

import labctl  # noqa: F401  (first: its OpenBLAS kernels are pinned before numpy loads them, labctl.core.blas)

import argparse
import asyncio
import json
import os
import platform
import time

import numpy as np

import emulator
from bench_emulator import best_of
from labctl.core.blas import single_blas
from emulator.train import PulsedTile
from labctl.backends import EmulatorBackend
from labctl.evaluation.datasets import load_digits
from labctl.evaluation.devicefit import DevicePopulation, fit_devices, measure_open_loop
from labctl.evaluation.inference import (EVALUATION_TIMES, MLP, AnalogNetwork, calibrate_input_scales,
                                         inference_over_time, map_network)
from labctl.evaluation.mapping import TileShape, map_layer
from labctl.evaluation.mvm import DriftingLayer, MVMConfig, tile_mvm
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


def bench_irdrop_vs_matmul(n: int, batch: int) -> float:
    """Throughput of Array.mvm (exact IR drop, transfer matrix built) over numpy matmul, one BLAS thread."""
    rng = np.random.default_rng(n)
    arr = emulator.Array(n, n, seed=n)
    r, c = np.divmod(np.arange(n * n, dtype=np.int64), n)
    arr.pulse(r, c, 3.4, 1.2, 1e-3)  # formed cells at varied conductances (no full programming: set-up only)
    arr.transfer_matrix()  # the build, measured separately
    g = arr.conductance_matrix()
    v = rng.uniform(-0.2, 0.2, (batch, n))
    t_mvm = best_of(lambda: arr.mvm(v), 5)
    with single_blas():
        t_mm = best_of(lambda: v @ g, 5)
    return t_mm / t_mvm


def bench_transfer_build(n: int = 512) -> tuple[float, float, float]:
    """(wall s, CPU s of the same single-worker build, wall s with two workers)."""
    g = np.random.default_rng(5).uniform(9e-6, 89e-6, (n, n))
    from emulator.crossbar import transfer_matrices

    c0 = time.process_time()
    wall = best_of(lambda: transfer_matrices(g, 0.35, 0.35), 2)
    cpu = (time.process_time() - c0) / 2
    return wall, cpu, best_of(lambda: transfer_matrices(g, 0.35, 0.35, workers=2), 2)


def bench_network_784() -> tuple[float, float, float]:
    rng = np.random.default_rng(7)
    mlp = MLP.init([784, 256, 128, 10], seed=7)
    maps = map_network(mlp, tile_shape=TileShape(64, 64))
    x = rng.uniform(0, 1, (10_000, 784))

    async def program() -> list:  # type: ignore[type-arg]
        async with EmulatorBackend(64, 64, seed=7) as b:
            return await program_layers(b, maps)

    t0 = time.perf_counter()
    layers = asyncio.run(program())
    t_prog = time.perf_counter() - t0
    net = AnalogNetwork(mlp, layers, calibrate_input_scales(mlp, x[:2000]))
    t0, c0 = time.perf_counter(), time.process_time()
    inference_over_time(net, x, mlp.predict(x), seed=7)
    return t_prog, time.perf_counter() - t0, time.process_time() - c0


def bench_encodings() -> float:
    rng = np.random.default_rng(9)
    mapping = map_layer(rng.uniform(-1, 1, (64, 63)), scheme="offset")

    async def run() -> list:  # type: ignore[type-arg]
        async with EmulatorBackend(64, 64, seed=9) as b:
            return await program_layers(b, [mapping])

    g = asyncio.run(run())[0].measured[0]
    x = load_digits().x_test[:100]
    cfg = MVMConfig(dac_bits=None, adc_bits=None, read_noise=False, drift_compensation=False, output_bound=1e9)
    pw = tile_mvm(g, x, "offset", mapping, cfg)
    amp = tile_mvm(g, x, "offset", mapping, MVMConfig(**{**cfg.to_dict(), "encoding": "amplitude"}))
    return float(np.sqrt(np.mean((amp - pw) ** 2)) / np.sqrt(np.mean(pw ** 2)))


PULSED_REGIMES = {
    "sparse": {"x": "digits tiled to 512 inputs", "d": "0.1 N(0, 1)", "lr": 0.05},
    "dense": {"x": "U(-1, 1)", "d": "U(-1, 1)", "lr": 0.5},
}
#: Issue 18's update: tile rows = cols, batch, pulse-train length, nominal step of one pulse (weight units).
PULSED_SIZE, PULSED_BATCH, PULSED_BL, PULSED_DW_MIN = 512, 64, 31, 0.08


def pulsed_regime_setup(population: DevicePopulation) -> tuple[PulsedTile, dict[str, tuple[np.ndarray, np.ndarray, float]]]:
    """Issue 18's update benchmark set-up: a 512x512 tile of devices from `population` and, per regime, (x, d, lr):
    x (64, 512) layer inputs, d (64, 512) errors (see the module docstring and PULSED_REGIMES)."""
    from labctl.evaluation.training import normalized_devices

    n, batch = PULSED_SIZE, PULSED_BATCH
    rng = np.random.default_rng(18)
    nd = normalized_devices(population.sample(n * n, rng))
    c2c = float(np.mean(nd.pop("c2c_sigma")))
    tile = PulsedTile(n, n, **{k: v.reshape(n, n) for k, v in nd.items()}, c2c_sigma=c2c, seed=18)
    digits = load_digits().x_train
    xd = {"sparse": (np.hstack([np.resize(digits, (batch, 64))] * (n // 64)), 0.1 * rng.standard_normal((batch, n))),
          "dense": (rng.uniform(-1, 1, (batch, n)), rng.uniform(-1, 1, (batch, n)))}
    return tile, {name: (x, d, float(PULSED_REGIMES[name]["lr"])) for name, (x, d) in xd.items()}  # type: ignore[arg-type]


def bench_pulsed_regimes(population: DevicePopulation, repeat: int = 20) -> dict[str, object]:
    """Issue 18: one update of a 512x512 tile with batch 64 in the sparse and the dense regime (see the module
    docstring); best of `repeat` (sparse) or of 3 (dense) on one core, in thread CPU time. The sparse update
    takes ~2 ms: best of 5 spread 7.6-9.6e9 over five runs at a quiet hour (cache and TLB state left by the
    other sessions), best of 20 costs 40 ms more."""
    n, batch, bl, dw_min = PULSED_SIZE, PULSED_BATCH, PULSED_BL, PULSED_DW_MIN
    tile, inputs = pulsed_regime_setup(population)
    out: dict[str, object] = {"pulsed_update_regimes": {}}
    for name, (x, d, lr) in inputs.items():
        best, wall, pulses = np.inf, np.inf, 0
        for _ in range(repeat if name == "sparse" else 3):
            # CPU time of this thread (the kernel runs in it): on the shared machine wall time mostly
            # measures the other sessions; the wall time is kept next to it.
            t0, w0 = time.thread_time(), time.perf_counter()
            pulses = tile.update(x, d, lr=lr, dw_min=dw_min, bl=bl)
            best = min(best, time.thread_time() - t0)
            wall = min(wall, time.perf_counter() - w0)
        k = lr / (bl * dw_min)
        pmax = float(np.sqrt(k * np.abs(x).max(axis=1) * np.abs(d).max(axis=1)).max())
        out[f"pulsed_updates_{name}_per_s"] = n * n * batch / best
        out["pulsed_update_regimes"][name] = {  # type: ignore[index]
            **PULSED_REGIMES[name], "rows": n, "cols": n, "batch": batch, "bl": bl, "dw_min": dw_min,
            "max_firing_probability": pmax, "pulses": pulses, "pulses_per_device_update": pulses / (n * n * batch),
            "cpu_seconds": best, "wall_seconds": wall}
        if name == "dense":
            out["pulses_applied_per_s"] = pulses / best
    return out


def bench_agad_gap(seeds: range = range(5), workers: int = 1) -> dict[str, object]:
    """Issue 18: FP minus AGAD (points) on digits for the per-seed cases of scripts/agad_seeds.py."""
    import sys
    from concurrent.futures import ProcessPoolExecutor
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import agad_seeds

    with ProcessPoolExecutor(max(1, workers)) as ex:
        pops = list(ex.map(agad_seeds._fit, [(8, s) for s in seeds]))
        rows = list(ex.map(agad_seeds._case, [(f"seed {s}", s, s, s, pops[i]) for i, s in enumerate(seeds)]))
    gaps = [float(r["gap_points"]) for r in rows]  # type: ignore[arg-type]
    return {"agad_digits_gap_points": {"mean": float(np.mean(gaps)), "max": float(np.max(gaps)), "per_seed": gaps}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--skip-agad", action="store_true", help="leave out agad_digits_gap_points (five device fits)")
    ap.add_argument("--workers", type=int, default=1, help="processes for agad_digits_gap_points (default 1)")
    args = ap.parse_args()
    population = fitted_population()
    updates, pulses = bench_updates(population)
    build1, build1_cpu, build2 = bench_transfer_build()
    prog784, inf784, inf784_cpu = bench_network_784()
    out: dict[str, object] = {
           "tile64_six_times_s": bench_tile64(), "agad_digits_epoch_s": bench_agad_epoch(population),
           "pulsed_updates_per_s": updates, "pulses_per_s": pulses, **bench_pulsed_regimes(population),
           **({} if args.skip_agad else bench_agad_gap(workers=args.workers)),
           "mvm_irdrop_64_vs_matmul": bench_irdrop_vs_matmul(64, 10_000),
           "mvm_irdrop_512_vs_matmul": bench_irdrop_vs_matmul(512, 4096),
           "transfer_build_512_s": build1, "transfer_build_512_cpu_s": build1_cpu,
           "transfer_build_512_2workers_s": build2,
           "network_784_programming_s": prog784, "network_784_inference_s": inf784,
           "network_784_inference_cpu_s": inf784_cpu,
           "encoding_difference_64": bench_encodings(),
           "load_average": os.getloadavg(),
           "machine": f"{platform.machine()} {platform.python_implementation()} {platform.python_version()}, "
                      f"{os.cpu_count()} cpus"}
    if args.json:
        print(json.dumps(out))
        return
    targets = {"tile64_six_times_s": "< 2 s", "agad_digits_epoch_s": "< 0.2 s", "pulsed_updates_per_s": ">= 1e7",
               "pulses_per_s": "", "pulsed_updates_sparse_per_s": ">= 7.8e9", "pulsed_updates_dense_per_s": ">= 5.16e7",
               "pulses_applied_per_s": "", "mvm_irdrop_64_vs_matmul": ">= 0.5", "mvm_irdrop_512_vs_matmul": ">= 0.5",
               "transfer_build_512_s": "<= 3 s", "transfer_build_512_cpu_s": "(CPU time: load-independent)",
               "transfer_build_512_2workers_s": "", "network_784_programming_s": "",
               "network_784_inference_s": "<= 30 s", "network_784_inference_cpu_s": "(CPU time)",
               "encoding_difference_64": ""}
    print(f"{'figure':<32}{'value':>14}  target")
    for k, t in targets.items():
        print(f"{k:<32}{out[k]:>14.4g}  {t}")
    if "agad_digits_gap_points" in out:
        g = out["agad_digits_gap_points"]
        print(f"{'agad_digits_gap_points':<32}{g['mean']:>9.2f} mean, {g['max']:.2f} max  <= 0.5 mean, <= 1.0 max")  # type: ignore[index]
    print(f"load average {out['load_average']}")


if __name__ == "__main__":
    main()
