"""What the reference experiment scripts (scripts/weight_transfer.py, relaxation.py, open_loop.py) share:
their command line, the backend they open, the preparation of a fresh emulated array, progress on the
terminal, and writing JSON and PNG files. Nothing here compares against expected outcomes.

Every routine call of a script is a one-step campaign run by the campaign Runner (`measure`), stored in
the run store (--store, default OUT/runs.sqlite) as it is measured, exactly like `labctl run` and the
TUI's actions. It lives with the campaigns, not the routines: routines only measure and return results;
printing, storing and files are the business of whoever runs them.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import numpy as np
from pydantic import BaseModel

from labctl.backends import ArrayBackend, EmulatorBackend, open_backend
from labctl.campaigns import oneshot
from labctl.campaigns.plan import Unit
from labctl.campaigns.runner import SilentProgress
from labctl.campaigns.store import Store
from labctl.routines import registry
from labctl.routines.forming import ConditionParams, FormingParams, condition, form


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
    parser.add_argument("--store", type=Path, default=None,
                        help="run store every measurement goes to (default OUT/runs.sqlite)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(experiment=Path(out).name)


@asynccontextmanager
async def experiment_backend(args: argparse.Namespace) -> AsyncIterator[ArrayBackend]:
    """The backend the command line names, open; a fresh emulator is formed and conditioned first
    (a one-time step real arrays have had already; --prepare yes forces it, no skips it)."""
    backend = (EmulatorBackend(args.rows, args.cols, seed=args.seed) if args.backend is None
               else open_backend(args.backend))
    async with backend:
        if args.prepare == "yes" or (args.prepare == "auto" and args.backend is None):
            f = await measure(args, backend, form, None, None, FormingParams())
            await measure(args, backend, condition, None, None, ConditionParams())
            report("forming", f.summary())
        yield backend


def backend_table(args: argparse.Namespace, backend: ArrayBackend) -> dict[str, Any]:
    """The campaign [backend] table of the array the command line names (rows and cols from the backend)."""
    spec = args.backend or f"emulator:{args.rows}x{args.cols}?seed={args.seed}"
    table: dict[str, Any] = {"kind": backend.info.kind}
    if spec.startswith("emulator:"):
        query = parse_qs(spec.partition("?")[2])
        table.update({k: (int(v[0]) if k == "seed" else v[0]) for k, v in query.items() if k in ("seed", "preset")})
    elif spec.startswith("station:"):
        table.update(kind="station", station=spec.removeprefix("station:").partition("?")[0])
    elif backend.info.kind == "chip":
        table["address"] = spec
    return {**table, "rows": backend.rows, "cols": backend.cols}


class _PrintedProgress(SilentProgress):
    """The runner's ProgressView for a script: a progress line at most twice a second (none with --quiet)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.last = 0.0

    def unit_progress(self, unit: Unit, fraction: float, message: str) -> None:
        now = time.monotonic()
        if self.quiet or (now - self.last < 0.5 and fraction < 1.0):
            return
        self.last = now
        print(f"  {message}: {100 * fraction:.0f} %", file=sys.stderr, flush=True)


async def measure(args: argparse.Namespace, backend: ArrayBackend, routine: Any, rows: Any, cols: Any,
                  params: BaseModel) -> Any:
    """Run one routine (a registered one, given as its function) on the cells (None, None: all) as a
    one-step campaign through the Runner, stored in the run store; returns the routine's result.
    RuntimeError if the run does not complete (its errors are stored with it)."""
    name = registry.name_of(routine)
    if name is None:
        raise ValueError(f"{routine.__name__}: not a registered routine (see labctl.routines.registry)")
    text = oneshot.campaign_text(f"{args.experiment}: {name}", name, name, rows, cols, params,
                                 backend_table(args, backend), backend.limits,
                                 metadata={"source": f"scripts/{args.experiment}.py"})
    loaded = oneshot.load_one_step(text, f"{args.experiment}: {name}", params)
    path = args.store or args.out / "runs.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    with Store(path) as store:
        done = await oneshot.run_one_step(store, loaded, backend, view=_PrintedProgress(args.quiet))
    if done.run.status != "complete":
        raise RuntimeError(f"{name}: run {done.run.run_id} {done.run.status}: {'; '.join(done.run.errors)}") \
            from done.failure
    return done.result


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


def script_main(argv: list[str] | None, name: str, parse: Callable[[list[str] | None], argparse.Namespace],
                run: Callable[[argparse.Namespace], Awaitable[dict[str, Any]]],
                plot: Callable[[dict[str, Any], Path], None]) -> int:
    """The main() of an experiment script: parse `argv`, run the experiment, write <--out>/<name>.json
    and the script's plots into --out; returns the exit status."""
    args = parse(argv)
    data = asyncio.run(run(args))
    write_json(args.out / f"{name}.json", data)
    plot(data, args.out)
    return 0
