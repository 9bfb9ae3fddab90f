"""`labctl sweep FILE` and `labctl sweeps list|show|export` (docs/sweeps.md)."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from labctl.campaigns.cli import DEFAULT_REPORTS, open_store, store_option

DEFAULT_SWEEP_REPORTS = f"{DEFAULT_REPORTS}/sweeps"


def _workers(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 0 <= n <= 4096:
        raise argparse.ArgumentTypeError(f"{n} is outside [0, 4096] (0: serial, in this process)")
    return n


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add sweep and sweeps to the labctl parser."""
    sw = sub.add_parser("sweep", help="run a sweep file's tasks on Dask (or resume a sweep) into the store")
    sw.add_argument("file", nargs="?", help="sweep file (TOML, see docs/sweeps.md)")
    store_option(sw)
    sw.add_argument("--workers", type=_workers, default=None,
                    help="local worker processes (default: one per core; 0: serial in this process)")
    sw.add_argument("--scheduler", metavar="ADDRESS", default=None,
                    help="an existing Dask scheduler, e.g. tcp://host:8786 (a cluster of dask-jobqueue too)")
    sw.add_argument("--resume", metavar="SWEEP", help="continue this sweep (id, unique prefix, or 'last')")
    sw.add_argument("--retry-failed", action="store_true", help="with --resume: run the failed tasks again")
    sw.add_argument("--mqtt", metavar="URL", help="publish the sweep's progress to this MQTT broker")
    sw.add_argument("--report-dir", metavar="DIR", default=None,
                    help=f"where the sweep's plots and table go (default ./{DEFAULT_SWEEP_REPORTS}/SWEEP)")
    sw.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    sw.add_argument("--check", action="store_true", help="validate the file and print the plan; run nothing")
    sw.set_defaults(handler=_cmd_sweep)

    sws = sub.add_parser("sweeps", help="list, show and export stored sweeps")
    ssub = sws.add_subparsers(dest="sweeps_command", metavar="ACTION", required=True)
    lst = ssub.add_parser("list", help="sweep ids, names, statuses and task counts")
    store_option(lst)
    lst.set_defaults(handler=_cmd_list)
    show = ssub.add_parser("show", help="one sweep: its tasks, their axes, figures and errors")
    show.add_argument("sweep", help="sweep id, unique prefix, or 'last'")
    store_option(show)
    show.add_argument("--file", action="store_true", help="print the stored sweep file")
    show.set_defaults(handler=_cmd_show)
    exp = ssub.add_parser("export", help="the tidy table: one row per task, axes and figures as columns")
    exp.add_argument("sweep", help="sweep id, unique prefix, or 'last'")
    store_option(exp)
    exp.add_argument("--format", choices=("csv", "parquet", "netcdf"), default="csv")
    exp.add_argument("--out", "-o", default=None, help="output file (default SWEEP.<format>); never the store")
    exp.add_argument("--force", action="store_true", help="replace an existing output file")
    exp.set_defaults(handler=_cmd_export)
    rep = ssub.add_parser("report", help="the sweep's plots (its [[plot]] tables) and its table")
    rep.add_argument("sweep", help="sweep id, unique prefix, or 'last'")
    store_option(rep)
    rep.add_argument("--out", "-o", default=None, help=f"folder (default ./{DEFAULT_SWEEP_REPORTS}/SWEEP)")
    rep.set_defaults(handler=_cmd_report)


def _open(args: argparse.Namespace, read_only: bool = False) -> Any:
    return open_store(args, read_only=read_only)


class RichSweepProgress:
    """A rich bar of tasks with ETA on stderr (nothing when stderr is not a terminal)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.console = Console(stderr=True)
        self.progress = Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("tasks"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                 TextColumn("{task.fields[failed]} failed"), console=self.console,
                                 disable=not self.console.is_terminal)
        self.task: Any = None
        self.failed = 0

    def begin(self, sweep_id: str, total: int, done: int, dashboard: str | None) -> None:
        if dashboard:
            print(f"sweep {sweep_id}: Dask dashboard {dashboard}", file=sys.stderr)
        self.progress.start()
        self.task = self.progress.add_task(f"sweep {sweep_id}", total=total, completed=done, failed=0)

    def task_done(self, outcome: Any) -> None:
        self.failed += outcome.status == "failed"
        self.progress.update(self.task, advance=1, failed=self.failed)

    def end(self) -> None:
        self.progress.stop()


def _cmd_sweep(args: argparse.Namespace) -> int:
    from labctl.campaigns.telemetry import telemetry_config
    from labctl.sweeps.engine import SweepRunner
    from labctl.sweeps.plan import SweepError, load_sweep

    if (args.file is None) == (args.resume is None):
        raise ValueError("sweep: give a sweep FILE or --resume SWEEP (not both)")
    if args.retry_failed and args.resume is None:
        raise ValueError("--retry-failed: only with --resume SWEEP")
    kw: dict[str, Any] = {"workers": args.workers, "scheduler": args.scheduler, "view": RichSweepProgress(),
                          "retry_failed": args.retry_failed}
    if args.file is not None:
        path = Path(args.file)
        if not path.is_file():
            raise ValueError(f"sweep: no sweep file {args.file!r}")
        try:
            loaded = load_sweep(path.read_text(), str(path))
        except SweepError as exc:
            print(f"labctl: {exc}", file=sys.stderr)
            return 2
        if args.check:
            axes = loaded.sweep.axis_names()
            print(f"{path}: OK, {len(loaded.tasks)} task(s) of kind {loaded.sweep.sweep.task}"
                  + (f" over {', '.join(axes)}" if axes else "") + f", {loaded.sweep.sweep.repeats} repeat(s) each")
            for t in loaded.tasks[:10]:
                print(f"  task {t.index}: seed {t.seed} {json.dumps(t.axes)}")
            if len(loaded.tasks) > 10:
                print(f"  ... {len(loaded.tasks) - 10} more")
            return 0
    store = _open(args)
    if args.resume is not None:
        runner = SweepRunner.resume(store, args.resume, **kw)
    else:
        from labctl.sweeps.engine import new_sweep_id

        runner = SweepRunner(store, loaded, new_sweep_id(), resuming=False, sweep_path=str(path), **kw)
    runner.telemetry_config = telemetry_config(runner.loaded.sweep, args.mqtt, runner.sweep_path)
    result = runner.run()
    print(f"sweep {result.sweep_id}: {result.status}, {result.done} of {result.total} tasks done, {result.failed}"
          f" failed ({result.submitted} run now, {result.elapsed:.1f} s) -> {store.path}")
    for t in store.sweep_tasks(result.sweep_id):
        if t.status == "failed":
            print(f"  task {t.task_index} {json.dumps(t.axes)}: {t.error}")
    status = {"complete": 0, "interrupted": 130}.get(result.status, 1)
    if not args.no_report:
        from labctl.sweeps.report import write_report

        out = Path(args.report_dir) if args.report_dir else Path(DEFAULT_SWEEP_REPORTS) / result.sweep_id
        try:
            files = write_report(store, result.sweep_id, out)
        except OSError as exc:
            print(f"labctl: error: report: cannot write {exc.filename or out}: {exc.strerror or exc} (the sweep is"
                  f" stored; `labctl sweeps report {result.sweep_id} --out DIR` writes it elsewhere)", file=sys.stderr)
            return 2 if status == 0 else status
        print(f"  report: {len(files)} file(s) in {out}")
    store.close()
    return status


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"


def _cmd_list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    store = _open(args, read_only=True)
    table = Table(title=f"sweeps in {store.path}")
    table.add_column("sweep", no_wrap=True, min_width=24)
    for col in ("name", "status", "created", "tasks done", "failed", "resumes"):
        table.add_column(col, no_wrap=col in ("status", "created"))
    for rec in store.sweeps():
        tasks = store.sweep_tasks(rec.sweep_id)
        table.add_row(rec.sweep_id, rec.name, rec.shown_status, _when(rec.created_at),
                      f"{sum(t.status == 'done' for t in tasks)}/{rec.n_tasks}",
                      str(sum(t.status == "failed" for t in tasks)), str(rec.resumes))
    Console(width=max(120, Console().width)).print(table)
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    store = _open(args, read_only=True)
    rec = store.sweep(store.find_sweep(args.sweep))
    if args.file:
        print(rec.sweep_toml, end="")
        return 0
    tasks = store.sweep_tasks(rec.sweep_id)
    print(f"sweep {rec.sweep_id}  {rec.name}  status {rec.shown_status}  seed {rec.seed}")
    print(f"  created {_when(rec.created_at)}  stopped {_when(rec.stopped_at)}  resumes {rec.resumes}"
          f"  scheduler {rec.scheduler or '-'}")
    print(f"  tasks: {sum(t.status == 'done' for t in tasks)} done, {sum(t.status == 'failed' for t in tasks)}"
          f" failed, {rec.n_tasks - len(tasks)} not run, of {rec.n_tasks}")
    for t in tasks:
        figures = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.figures.items())
        print(f"  task {t.task_index} {t.status} {json.dumps(t.axes)}"
              + (f" run {t.run_id}" if t.run_id else "") + (f": {figures}" if figures else "")
              + (f"  error: {t.error}" if t.error else ""))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from labctl.campaigns.export import check_output
    from labctl.sweeps.report import export_table

    store = _open(args, read_only=True)
    sweep_id = store.find_sweep(args.sweep)
    suffix = {"csv": "csv", "parquet": "parquet", "netcdf": "nc"}[args.format]
    out = check_output(args.out or f"{sweep_id}.{suffix}", store.path, force=args.force)
    n = export_table(store, sweep_id, out, args.format)
    print(f"sweep {sweep_id}: {n} task(s) -> {out}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from labctl.sweeps.report import write_report

    store = _open(args, read_only=True)
    sweep_id = store.find_sweep(args.sweep)
    out = Path(args.out) if args.out else Path(DEFAULT_SWEEP_REPORTS) / sweep_id
    try:
        files = write_report(store, sweep_id, out)
    except OSError as exc:
        raise ValueError(f"report: cannot write {exc.filename or out}: {exc.strerror or exc}") from exc
    print(f"sweep {sweep_id}: {len(files)} file(s) in {out}")
    return 0
