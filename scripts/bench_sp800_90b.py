"""SP 800-90B non-IID assessment: labctl against NIST's ea_non_iid on the same files, same session.

    python scripts/bench_sp800_90b.py                          # labctl only, table
    python scripts/bench_sp800_90b.py --nist /path/ea_non_iid --json
    SP800_90B_NIST=/path/ea_non_iid python scripts/bench_sp800_90b.py --files truerand_8bit

For each sample file (default: two 1-bit and two 8-bit files of ~10^6 samples from the reference
directory, --data or SP800_90B_DATA), the wall time of `entropy.assess_samples` (the initial entropy
estimate: ten estimators on bits; seven on the samples plus ten on their bit string for multi-bit
samples) and its assessed min-entropy; when the tool is given (--nist or SP800_90B_NIST) the wall time
of `ea_non_iid -i -a -v -v -v FILE` (its full printout, whose last line is the assessed value to 17
digits) with OMP_NUM_THREADS=--nist-threads (default 1; its non-IID path is single-threaded anyway), its
assessed value, and ratio.<file> = nist_s / labctl_s (> 1: labctl is faster). The machine load
(/proc/loadavg, 1 min) before and after is part of the result: compare ratios from one run.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from labctl.puf import entropy

from benchmarking import run_benchmark

DEFAULT_DATA = "/work/shared/reference/sp800-90b"
DEFAULT_FILES = "truerand_1bit,data.pi,truerand_8bit,normal"
ASSESSED = re.compile(r"Assessed min entropy: (\S+)")


def _load() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except OSError:
        return float("nan")


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nist", default=os.environ.get("SP800_90B_NIST"),
                   help="path of NIST's ea_non_iid (default $SP800_90B_NIST; not run if unset)")
    p.add_argument("--data", default=os.environ.get("SP800_90B_DATA", DEFAULT_DATA),
                   help=f"directory of the sample files (default $SP800_90B_DATA or {DEFAULT_DATA})")
    p.add_argument("--files", default=DEFAULT_FILES, help=f"comma-separated file stems (default {DEFAULT_FILES})")


def _nist(tool: str, path: Path, threads: int) -> tuple[float, float | None]:
    """Wall time (s) of the tool on one file and the assessed min-entropy it prints."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    done = subprocess.run([tool, "-i", "-a", "-v", "-v", "-v", path.name], cwd=path.parent, env=env, capture_output=True,
                          text=True, check=False)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"bench_sp800_90b: {tool} failed on {path} (exit {done.returncode}): "
                         f"{done.stderr.strip()[:200]}")
    found = ASSESSED.search(done.stdout)
    return elapsed, float(found.group(1)) if found else None


def measure(args: argparse.Namespace) -> dict[str, Any]:
    data = Path(args.data)
    out: dict[str, Any] = {"load_before": _load(), "nist_tool": args.nist, "nist_threads": args.nist_threads}
    for name in [f for f in args.files.split(",") if f]:
        path = data / f"{name}.bin"
        if not path.is_file():
            raise SystemExit(f"bench_sp800_90b: no sample file {path}")
        samples = np.fromfile(path, dtype=np.uint8)
        t0 = time.perf_counter()
        a = entropy.assess_samples(samples)
        out[f"labctl_s.{name}"] = time.perf_counter() - t0
        out[f"labctl_h.{name}"] = a.min_entropy
        out[f"width.{name}"] = a.bits_per_symbol
        if args.nist:
            seconds, h = _nist(args.nist, path, args.nist_threads)
            out[f"nist_s.{name}"] = seconds
            out[f"nist_h.{name}"] = h
            out[f"ratio.{name}"] = seconds / out[f"labctl_s.{name}"]
            out[f"agree.{name}"] = h is not None and abs(h - a.min_entropy) <= 1e-9 * max(1.0, abs(h))
    out["load_after"] = _load()
    return out


def table(r: dict[str, Any]) -> None:
    tool = f"{r['nist_tool']} ({r['nist_threads']} thread(s))" if r["nist_tool"] else "not given"
    print(f"load {r['load_before']:.2f} -> {r['load_after']:.2f}; NIST tool: {tool}")
    print(f"{'file':<22}{'bits':>5}{'labctl s':>10}{'NIST s':>10}{'ratio':>8}  assessed (labctl / NIST)")
    for key in r:
        if not key.startswith("labctl_s."):
            continue
        name = key.split(".", 1)[1]
        nist = r.get(f"nist_s.{name}")
        cols = (f"{r[key]:>10.2f}" + (f"{nist:>10.2f}{r[f'ratio.{name}']:>8.2f}" if nist is not None else f"{'-':>10}{'-':>8}"))
        theirs = r.get(f"nist_h.{name}")
        print(f"{name:<22}{r[f'width.{name}']:>5}{cols}  {r[f'labctl_h.{name}']:.6f}"
              + (f" / {theirs:.6f}" if theirs is not None else ""))


def main(argv: list[str] | None = None) -> int:
    return run_benchmark(argv, __doc__, measure, table, options=_options,
                         nist_threads=(1, "OpenMP threads of the NIST tool"))


if __name__ == "__main__":
    raise SystemExit(main())
