"""Emulator benchmarks (issue 2). Prints a table, or one JSON object with --json.

Figures:
  pulse_read_ops_per_s          cell operations per second (a pulse and a read each count as one) on a
                                512x512 array, batches of random cells, each pulsed once and read once
  single_cell_calls_per_s       the same with one cell per call (pulse call + read call = 2 calls)
  read_all_512_s                read_all of 512x512, s
  mvm_irdrop_64_vectors_per_s   exact IR-drop MVM (0.35 ohm/segment), 64x64, input vectors per second
  mvm_irdrop_512_vectors_per_s  the same at 512x512
  mvm_ideal_vs_matmul_ratio     Array.mvm(r_wire=0) throughput / numpy matmul on the same batch
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable

import numpy as np

import emulator
from labctl.emulated import prepared_array


def best_of(fn: Callable[[], object], repeat: int = 5) -> float:
    """Shortest wall time of `repeat` runs, s."""
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def prepared(n: int, seed: int = 0) -> emulator.Array:
    """An n x n array with every cell formed and conditioned (50 mV sweep steps: set-up is not measured)."""
    return prepared_array(n, n, seed, step=0.05)


def bench(quick: bool = False) -> dict[str, float]:
    n = 512
    arr = prepared(n)
    rng = np.random.default_rng(1)
    batch = 65_536
    cells = rng.integers(0, n * n, size=batch)
    rr, cc = np.divmod(cells, n)
    v = np.where(rng.random(batch) < 0.5, 1.35, -1.3)

    def batched() -> None:
        arr.pulse(rr, cc, v, 1.4, 2.5e-6)
        arr.read(rr, cc, 0.2)

    t = best_of(batched)
    out: dict[str, float] = {"pulse_read_ops_per_s": 2 * batch / t}

    m = 2_000
    r1, c1, v1 = rr[:m].tolist(), cc[:m].tolist(), v[:m].tolist()

    def single() -> None:
        for k in range(m):
            arr.pulse(r1[k], c1[k], v1[k], 1.4, 2.5e-6)
            arr.read(r1[k], c1[k], 0.2)

    out["single_cell_calls_per_s"] = 2 * m / best_of(single, 3)
    out["read_all_512_s"] = best_of(lambda: arr.read_all(), 5)

    g64 = prepared(64, 2)
    vb64 = rng.uniform(-0.2, 0.2, size=(64, 64))
    out["mvm_irdrop_64_vectors_per_s"] = vb64.shape[0] / best_of(lambda: g64.mvm(vb64), 3)
    nb = 8 if quick else 32
    vb512 = rng.uniform(-0.2, 0.2, size=(nb, n))
    out["mvm_irdrop_512_vectors_per_s"] = nb / best_of(lambda: arr.mvm(vb512), 1 if quick else 2)

    vb = rng.uniform(-0.2, 0.2, size=(4096, n))
    gm = arr.conductance_matrix()
    arr.mvm(vb, r_wire=0.0)  # warm the conductance cache, as a steady-state MVM loop would
    t_ideal = best_of(lambda: arr.mvm(vb, r_wire=0.0))
    t_matmul = best_of(lambda: vb @ gm)
    out["mvm_ideal_vs_matmul_ratio"] = t_matmul / t_ideal
    return out


def machine() -> dict[str, str]:
    return {"machine": platform.machine(), "processor": platform.processor() or "unknown",
            "cpus": str(os.cpu_count()), "python": platform.python_version()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--quick", action="store_true", help="fewer 512x512 MVM vectors")
    args = ap.parse_args()
    out = bench(args.quick)
    if args.json:
        print(json.dumps(out))
        return
    for key, val in out.items():
        print(f"{key:32s} {val:14.6g}")
    print("machine: " + ", ".join(f"{k}={v}" for k, v in machine().items()))


if __name__ == "__main__":
    main()
