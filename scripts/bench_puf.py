"""PUF benchmarks: batch enrollment + evaluation, one key reconstruction, SP 800-90B estimators.

    python scripts/bench_puf.py            # table
    python scripts/bench_puf.py --json     # one JSON object
    python scripts/bench_puf.py --arrays 100   # a quicker batch

Targets (issue 9): enroll_eval_1000_s < 60 s on one core (1,000 emulated 32x32 arrays, 5 re-reads
each, SP 800-90B assessment of the batch included), reconstruct_s < 10 ms, estimators_1e6_bits_s < 10 s (the six estimators of 6.3.1-6.3.6);
assessment_1e6_bits_s (all ten), assessment_1e6_bytes_s (8-bit samples), iid_track_1e6_bits_s.
"""
from __future__ import annotations

import asyncio
import time

import numpy as np

from labctl.backends.emulator import EmulatorBackend
from labctl.puf import entropy, iid
from labctl.puf.enroll import EnrollParams, enroll, reconstruct
from labctl.puf.evaluate import EvaluationParams, evaluate_batch

from benchmarking import median_time, run_benchmark


def bench_batch(arrays: int) -> tuple[float, dict]:
    t0 = time.perf_counter()
    ev = asyncio.run(evaluate_batch(EvaluationParams(arrays=arrays, rows=32, cols=32)))
    return time.perf_counter() - t0, ev.report


def bench_reconstruct(repeats: int = 200) -> float:
    async def run() -> float:
        backend = EmulatorBackend(32, 32, seed=100)
        e = await enroll(backend, EnrollParams(prepare="form_set"))

        async def once() -> None:
            out = await reconstruct(backend, e.helper)
            assert out.key == e.key

        return await median_time(once, repeats)

    return asyncio.run(run())


def bench_estimators(n_bits: int = 1_000_000) -> tuple[float, dict]:
    """The six estimators of 6.3.1-6.3.6 on random bits (the figure kept from earlier versions)."""
    bits = np.random.default_rng(2024).integers(0, 2, n_bits).astype(np.uint8)
    t0 = time.perf_counter()
    t_tup, lrs_est = entropy.tuple_estimates(bits)
    found = (entropy.most_common_value(bits), entropy.collision(bits), entropy.markov(bits),
             entropy.compression(bits), t_tup, lrs_est)
    return time.perf_counter() - t0, {e.name: e.min_entropy for e in found}


def bench_assessment(n: int = 1_000_000) -> dict:
    """All ten estimators on 1e6 random bits; the multi-bit assessment of 1e6 random bytes; the IID
    track (permutation tests with their early stop, chi-square tests) on 1e6 random bits."""
    rng = np.random.default_rng(2025)
    bits = rng.integers(0, 2, n).astype(np.uint8)
    t0 = time.perf_counter()
    a_bits = entropy.assess(bits)
    t_bits = time.perf_counter() - t0
    data = rng.integers(0, 256, n).astype(np.uint8)
    t0 = time.perf_counter()
    a_bytes = entropy.assess_samples(data, 8)
    t_bytes = time.perf_counter() - t0
    t0 = time.perf_counter()
    track = iid.assess_iid(bits, shuffles=iid.SHUFFLES, seed=1)
    t_iid = time.perf_counter() - t0
    return {"assessment_1e6_bits_s": t_bits, "assessment_1e6_bytes_s": t_bytes, "iid_track_1e6_bits_s": t_iid,
            "assessment_1e6_bits_min_entropy": a_bits.min_entropy,
            "assessment_1e6_bytes_min_entropy": a_bytes.min_entropy,
            "iid_track_1e6_bits_shuffles": track.permutation.shuffles, "iid_track_1e6_bits_iid": track.iid}


def measure(arrays: int) -> dict:
    """Every figure of the PUF benchmarks, as --json prints them."""
    t_batch, report = bench_batch(arrays)
    t_rec = bench_reconstruct()
    t_est, estimates = bench_estimators()
    assessment = bench_assessment()
    k = report["key_reconstruction"]
    return {
        "enroll_eval_1000_s" if arrays == 1000 else f"enroll_eval_{arrays}_s": t_batch,
        "reconstruct_s": t_rec,
        "estimators_1e6_bits_s": t_est,
        "batch_devices": report["devices_enrolled"],
        "batch_uniqueness": report["uniqueness"]["mean"],
        "batch_uniformity": report["uniformity"]["mean"],
        "batch_steadiness": report["steadiness_overall"]["mean"],
        "batch_min_entropy_per_bit": report["min_entropy_per_bit"]["mean"],
        "batch_key_failures": k["failures"],
        "batch_key_attempts": k["attempts"],
        "batch_wrong_keys": k["wrong_keys"],
        "batch_sp800_90b_min_entropy": report.get("sp800_90b", {}).get("min_entropy"),
        "estimates_1e6_random_bits": estimates,
        **assessment,
    }


def table(out: dict) -> None:
    batch = next(key for key in out if key.startswith("enroll_eval_"))
    arrays = batch.split("_")[2]
    print(f"{'benchmark':<44} {'measured':>12} {'target':>10}")
    print(f"{f'enrollment + evaluation, {arrays} arrays 32x32':<44} {out[batch]:>10.2f} s {'< 60 s':>10}")
    print(f"{'one key reconstruction (read + decode)':<44} {out['reconstruct_s'] * 1e3:>9.3f} ms {'< 10 ms':>10}")
    print(f"{'SP 800-90B estimators, 1e6 bits':<44} {out['estimators_1e6_bits_s']:>10.2f} s {'< 10 s':>10}")
    print(f"{'SP 800-90B assessment (all ten), 1e6 bits':<44} {out['assessment_1e6_bits_s']:>10.2f} s")
    print(f"{'SP 800-90B assessment, 1e6 8-bit samples':<44} {out['assessment_1e6_bytes_s']:>10.2f} s")
    print(f"{'SP 800-90B IID track, 1e6 bits':<44} {out['iid_track_1e6_bits_s']:>10.2f} s")
    print(f"batch: {out['batch_devices']} devices, uniqueness {out['batch_uniqueness']:.4f}, uniformity "
          f"{out['batch_uniformity']:.4f}, steadiness {out['batch_steadiness']:.4f}, key failures "
          f"{out['batch_key_failures']}/{out['batch_key_attempts']} (wrong keys {out['batch_wrong_keys']}), "
          f"SP 800-90B min-entropy {out['batch_sp800_90b_min_entropy']:.4f}")


def main(argv: list[str] | None = None) -> int:
    return run_benchmark(argv, __doc__, lambda args: measure(args.arrays), table,
                         arrays=(1000, "arrays in the batch benchmark"))


if __name__ == "__main__":
    raise SystemExit(main())
