"""What the reference experiment scripts (scripts/weight_transfer.py, relaxation.py, open_loop.py) share:
their command line, the backend they open, the preparation of a fresh emulated array, progress on the
terminal, and writing JSON and PNG files. Nothing here compares against expected outcomes.

It lives with the campaigns, not the routines: routines only measure and return results; printing and
files are the business of whoever runs them.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np

from labctl.backends import ArrayBackend, EmulatorBackend, open_backend
from labctl.routines.base import RoutineContext
from labctl.routines.forming import condition, form


def add_arguments(parser: argparse.ArgumentParser, *, rows: int, cols: int, out: str) -> None:
    """--backend, --rows/--cols/--seed (built-in emulator), --prepare, --out."""
    parser.add_argument("--backend", metavar="SPEC", default=None,
                        help="backend address (labctl.backends.open_backend: tcp://HOST:PORT, "
                             "station:FILE, emulator:RxC?seed=N); default: a fresh in-process emulator")
    parser.add_argument("--rows", type=int, default=rows, help=f"emulated array rows (default {rows})")
    parser.add_argument("--cols", type=int, default=cols, help=f"emulated array columns (default {cols})")
    parser.add_argument("--seed", type=int, default=0, help="emulator seed (default 0)")
    parser.add_argument("--prepare", choices=("auto", "yes", "no"), default="auto",
                        help="form and condition the array first (auto: only a fresh built-in emulator)")
    parser.add_argument("--out", type=Path, default=Path(out), help=f"output directory (default {out})")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


@asynccontextmanager
async def experiment_backend(args: argparse.Namespace) -> AsyncIterator[ArrayBackend]:
    """The backend the command line names, open; a fresh emulator is formed and conditioned first
    (a one-time step real arrays have had already; --prepare yes forces it, no skips it)."""
    backend = (EmulatorBackend(args.rows, args.cols, seed=args.seed) if args.backend is None
               else open_backend(args.backend))
    async with backend:
        if args.prepare == "yes" or (args.prepare == "auto" and args.backend is None):
            ctx = context(args)
            f = await form(backend, None, None, ctx=ctx)
            await condition(backend, None, None, ctx=ctx)
            report("forming", f.summary())
        yield backend


def context(args: argparse.Namespace) -> RoutineContext:
    """A routine context that prints progress at most twice a second (none with --quiet)."""
    last = [0.0]

    def progress(done: float, total: float, message: str) -> None:
        now = time.monotonic()
        if args.quiet or (now - last[0] < 0.5 and done < total):
            return
        last[0] = now
        print(f"  {message}: {done:.0f}/{total:.0f}", file=sys.stderr, flush=True)

    return RoutineContext(on_progress=progress)


def report(title: str, summary: dict[str, Any]) -> None:
    """Print a routine's summary as aligned `key value` lines."""
    print(f"[{title}]")
    width = max((len(k) for k in summary), default=0)
    for k, v in summary.items():
        print(f"  {k:<{width}}  {v:.6g}" if isinstance(v, float) else f"  {k:<{width}}  {v}")


def jsonable(x: Any) -> Any:
    """numpy arrays and scalars to lists and Python numbers; NaN and inf to None."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, (np.integer, int)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(float(x)) else None
    return x


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(jsonable(data), indent=1))
    print(f"wrote {path}")


def pyplot() -> Any:
    """matplotlib.pyplot on the file-only Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    import matplotlib.pyplot as plt

    plt.close(fig)
    print(f"wrote {path}")


def run_info(args: argparse.Namespace, backend: ArrayBackend) -> dict[str, Any]:
    """What ran where, for the JSON file."""
    return {"backend": args.backend or f"emulator:{args.rows}x{args.cols}?seed={args.seed}",
            "kind": backend.info.kind, "rows": backend.rows, "cols": backend.cols,
            "identity": dict(backend.info.identity), "native_program": backend.info.native_program,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
