"""`labctl run`, `labctl runs list|show|export` and `labctl report`: the campaign commands.

labctl/cli.py registers them with `add_commands(sub)`; heavy imports happen inside the handlers.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported lazily in the handlers (start-up time)
    from labctl.campaigns.store import UnitRecord

DEFAULT_REPORTS = "labctl-reports"


def store_option(p: argparse.ArgumentParser) -> None:
    """The one --store option of every command that reads or writes the run store."""
    p.add_argument("--store", default=None, metavar="PATH",
                   help="SQLite run store (default ./labctl-runs.sqlite)")


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add run, runs and report to the labctl parser."""
    run = sub.add_parser("run", help="run a campaign file (or resume a run) into the run store")
    run.add_argument("file", nargs="?", help="campaign file (TOML, see docs/campaigns.md)")
    store_option(run)
    run.add_argument("--mqtt", metavar="URL", help="publish telemetry to mqtt://host:port or mqtts://host:port "
                                                   "(overrides the file's [telemetry] broker)")
    run.add_argument("--resume", metavar="RUN", help="continue this run (id, unique prefix, or 'last')")
    run.add_argument("--report-dir", metavar="DIR", default=None,
                     help=f"where the report goes (default ./{DEFAULT_REPORTS}/RUN)")
    run.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    run.add_argument("--check", action="store_true", help="validate the file and print the plan; run nothing")
    run.set_defaults(handler=_cmd_run)

    runs = sub.add_parser("runs", help="list, show and export stored runs")
    rsub = runs.add_subparsers(dest="runs_command", metavar="ACTION", required=True)
    lst = rsub.add_parser("list", help="run ids, names, statuses and sizes")
    store_option(lst)
    lst.set_defaults(handler=_cmd_runs_list)
    show = rsub.add_parser("show", help="one run: metadata, steps, errors, events")
    show.add_argument("run", help="run id, unique prefix, or 'last'")
    store_option(show)
    show.add_argument("--campaign", action="store_true", help="print the stored campaign file")
    show.set_defaults(handler=_cmd_runs_show)
    exp = rsub.add_parser("export", help="write a run's measurements as CSV, Parquet, NetCDF or an ArC TWO file")
    exp.add_argument("run", help="run id, unique prefix, or 'last'")
    store_option(exp)
    exp.add_argument("--format", choices=tuple(EXPORT_SUFFIXES), default="csv",
                     help="csv/parquet: one row per measurement; netcdf: one group per step and kind (xarray);"
                     " arc-hdf5: the ArC TWO data file layout (docs/store.md)")
    exp.add_argument("--out", "-o", default=None, help="output file (default RUN.csv, .parquet, .nc, .h5); never the store")
    exp.add_argument("--force", action="store_true", help="replace an existing output file")
    exp.set_defaults(handler=_cmd_runs_export)
    imp = rsub.add_parser("import", help="bring an ArC TWO data file (.h5) into the store as a run")
    imp.add_argument("file", help="the ArC TWO data file")
    store_option(imp)
    imp.add_argument("--timeseries-only", action="store_true",
                     help="import the per-crosspoint time series and leave out experiment tables labctl cannot map")
    imp.set_defaults(handler=_cmd_runs_import)

    rep = sub.add_parser("report", help="a run's figures on one self-contained HTML page (with PNGs and JSON)")
    rep.add_argument("run", help="run id, unique prefix, or 'last'")
    store_option(rep)
    rep.add_argument("--out", "-o", default=None, help=f"folder (default ./{DEFAULT_REPORTS}/RUN)")
    rep.add_argument("--open", action="store_true", help="open report.html in the default browser")
    rep.set_defaults(handler=_cmd_report)


def open_store(args: argparse.Namespace, *, read_only: bool = False):  # noqa: ANN202 -- Store, imported lazily
    """The run store --store names (default ./labctl-runs.sqlite). read_only: for the commands that only
    read (runs list/show/export, report), which never create a store (a typo is an error, not a new file)."""
    from labctl.campaigns.store import DEFAULT_STORE, Store

    return Store(args.store or DEFAULT_STORE, read_only=read_only)


def _find(store, ref: str) -> str:  # noqa: ANN001
    try:
        return store.find_run(ref)
    except KeyError as exc:
        raise ValueError(exc.args[0]) from None


def _cmd_run(args: argparse.Namespace) -> int:
    from labctl.campaigns.model import CampaignError, load_campaign
    from labctl.campaigns.progress import RichProgress
    from labctl.campaigns.runner import RunControl, Runner
    from labctl.campaigns.telemetry import telemetry_config

    if (args.file is None) == (args.resume is None):
        raise ValueError("run: give a campaign FILE or --resume RUN (not both)")
    if args.file is not None:
        path = Path(args.file)
        if not path.is_file():
            raise ValueError(f"run: no campaign file {args.file!r}")
        try:
            loaded = load_campaign(path.read_text(), str(path))
        except CampaignError as exc:
            print(f"labctl: {exc}", file=sys.stderr)
            return 2
        refused = loaded.preflight(path.expanduser().absolute().parent)
        if refused:
            print(f"labctl: {path}: " + "; ".join(refused), file=sys.stderr)
            return 2
        if args.check:
            print(f"{path}: OK, {len(loaded.units)} unit(s) of work in {len(loaded.campaign.steps)} step(s)")
            for u in loaded.units:
                print(f"  unit {u.index}: {u.step_name} ({u.routine}) {u.rows.size} cells"
                      + (f" sweep {u.sweep_values}" if u.sweep_values else "")
                      + (f" repeat {u.repeat_index}" if u.repeat_index else ""))
            return 0
    store = open_store(args)
    control = RunControl()
    view = RichProgress()
    if args.resume is not None:
        runner = Runner.resume(store, _find(store, args.resume), control=control, view=view)
    else:
        runner = Runner(store, loaded, _new_id(), resuming=False, campaign_path=str(path), control=control,
                        view=view)
    runner.telemetry_config = telemetry_config(runner.loaded.campaign, args.mqtt, runner.campaign_path)
    result = asyncio.run(_run_with_signals(runner, control))
    print(f"run {result.run_id}: {result.status}, {result.measurements} measurements stored in "
          f"{result.elapsed:.1f} s -> {store.path}")
    _print_step_summaries(store, result.run_id)
    for e in result.errors:
        print(f"  {e}")
    if result.telemetry is not None:
        t = result.telemetry
        print(f"  telemetry {t['broker']}: {t['sent']} sent, {t['dropped']} dropped")
    status = {"complete": 0, "aborted": 130}.get(result.status, 1)
    if not args.no_report:
        out = Path(args.report_dir) if args.report_dir else Path(DEFAULT_REPORTS) / result.run_id
        try:
            page = _report(store, result.run_id, out)
        except Exception as exc:  # noqa: BLE001 -- the run stays as it ended; only its report is missing
            store.close()
            print(f"labctl: error: {exc} (the run is stored {result.status}; `labctl report {result.run_id}"
                  " --out DIR` writes it elsewhere)", file=sys.stderr)
            return 2 if status == 0 else status
        print(f"  report: {page} ({len(list(out.glob('*.png')))} figure(s) in {out})")
    store.close()
    return status


def _report(store, run_id: str, out: Path) -> Path:  # noqa: ANN001
    """write_report, returning the page; a folder that cannot be written is bad input (ValueError naming it)."""
    from labctl.campaigns.report import write_report

    try:
        return write_report(store, run_id, out)
    except OSError as exc:
        raise ValueError(f"report: cannot write {exc.filename or out}: {exc.strerror or exc}") from exc


def open_in_browser(page: Path) -> bool:
    """Open the page in the default browser (webbrowser); False when there is none to open it with."""
    import webbrowser

    try:
        browser = webbrowser.get()
    except webbrowser.Error:
        return False
    return bool(browser.open(page.resolve().as_uri()))


def _print_step_summaries(store, run_id: str, keys: int = 4) -> None:  # noqa: ANN001
    """One line per finished step: the first few numbers of its (combined) summary."""
    from labctl.campaigns.runner import step_summaries

    units = store.units(run_id)
    routines = {u.step_name: u.routine for u in units}
    for name, s in step_summaries(units).items():
        if name not in routines:
            continue  # "<step>[k]": a sweep point; the line shows what the step left
        shown = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in s.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool)][:keys]
        print(f"  {name} ({routines[name]}): " + ", ".join(shown))


def _new_id() -> str:
    from labctl.campaigns.runner import new_run_id

    return new_run_id()


async def _run_with_signals(runner, control):  # noqa: ANN001, ANN202
    """SIGINT once: stop at the next safe point; twice: abort at once (at the routine's next measurement
    or safe point). SIGTERM: abort at once. Outputs go off either way (the runner's finally).

    Plain signal handlers, not loop.add_signal_handler: those run only when the loop gets control,
    and an in-process backend may keep it busy for a whole step."""
    count = {"n": 0}

    def on_sigint(signum, frame) -> None:  # noqa: ANN001
        count["n"] += 1
        if count["n"] == 1:
            print("\nlabctl: stopping at the next safe point (Ctrl-C again to abort now)", file=sys.stderr)
            control.request_stop("SIGINT")
        else:
            control.abort_now("second SIGINT")

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, on_sigint)
    signal.signal(signal.SIGTERM, lambda signum, frame: control.abort_now("SIGTERM"))
    try:
        return await runner.run()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _when(t: float | None) -> str:
    return datetime.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S") if t else "-"


def _cmd_runs_list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    store = open_store(args, read_only=True)
    table = Table(title=f"runs in {store.path}")
    table.add_column("run", no_wrap=True, min_width=20)  # ids are typed back in: never cut them
    for col in ("name", "status", "started", "stopped", "units done", "measurements", "resumes"):
        table.add_column(col, no_wrap=col in ("status", "started", "stopped"))
    for rec in store.runs():
        table.add_row(rec.run_id, rec.name, rec.shown_status, _when(rec.started_at), _when(rec.stopped_at),
                      f"{store.units_done(rec.run_id)}/{rec.n_units}", str(store.measurement_count(rec.run_id)),
                      str(rec.resumes))
    Console(width=max(120, Console().width)).print(table)
    return 0


def _cmd_runs_show(args: argparse.Namespace) -> int:
    store = open_store(args, read_only=True)
    rec = store.run(_find(store, args.run))
    if args.campaign:
        print(rec.campaign_toml, end="")
        return 0
    print(f"run {rec.run_id}  {rec.name}  status {rec.shown_status}")
    print(f"  started {_when(rec.started_at)}  stopped {_when(rec.stopped_at)}  resumes {rec.resumes}")
    print(f"  labctl {rec.package_version}  backend {rec.backend_kind}  seed {rec.seed}  host {rec.host}")
    print(f"  campaign file {rec.campaign_path}")
    for k, v in rec.identity.items():
        print(f"  identity {k}: {v}")
    meta = {k: v for k, v in rec.metadata.items() if v}
    if meta:
        print("  metadata " + ", ".join(f"{k}={v}" for k, v in meta.items()))
    units = store.units(rec.run_id)
    steps: dict[int, list[UnitRecord]] = {}
    for u in units:
        steps.setdefault(u.step_index, []).append(u)
    print(f"  measurements {store.measurement_count(rec.run_id)}")
    for i, us in steps.items():
        done = sum(u.status == "done" for u in us)
        last = next((u.summary for u in reversed(us) if u.summary is not None), None)
        print(f"  step {i} {us[0].step_name} ({us[0].routine}): {done}/{len(us)} units done"
              + (f"; last summary {json.dumps(last)}" if last else ""))
    dies = store.dies(rec.run_id)
    if dies:
        counts = {s: sum(d.status == s for d in dies) for s in ("done", "skipped", "failed", "measuring", "pending")}
        print(f"  dies {len(dies)}: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
        for d in dies:
            contact = f"  contact {d.contact_g:.3g} S" if d.contact_g is not None else ""
            print(f"    die {d.die_index} ({d.column}, {d.row}) {d.status}  touchdowns {d.touchdowns}{contact}"
                  + (f"  {d.message}" if d.message else ""))
    if rec.telemetry:
        print(f"  telemetry {json.dumps(rec.telemetry)}")
    for e in rec.errors:
        print(f"  error: {e}")
    for e in store.events(rec.run_id):
        print(f"  {_when(e.at)} {e.kind}: {e.message}")
    return 0


EXPORT_SUFFIXES = {"csv": "csv", "parquet": "parquet", "netcdf": "nc", "arc-hdf5": "h5"}


def _cmd_runs_export(args: argparse.Namespace) -> int:
    from labctl.campaigns.export import check_output, export_csv, export_parquet

    store = open_store(args, read_only=True)
    run_id = _find(store, args.run)
    out = check_output(args.out or f"{run_id}.{EXPORT_SUFFIXES[args.format]}", store.path, force=args.force)
    if args.format == "netcdf":
        from labctl.campaigns.arrays import RunData
        from labctl.campaigns.netcdf import export_netcdf

        size = export_netcdf(RunData(store.path, run_id), out)
        print(f"run {run_id}: {size / 1e6:.1f} MB of arrays -> {out}")
        return 0
    if args.format == "arc-hdf5":
        from labctl.campaigns.arc_hdf5 import export_arc_hdf5

        n = export_arc_hdf5(store, run_id, out)
        print(f"run {run_id}: {n} time-series entries -> {out}")
        return 0
    n = (export_csv if args.format == "csv" else export_parquet)(store, run_id, out)
    print(f"run {run_id}: {n} measurements -> {out}")
    return 0


def _cmd_runs_import(args: argparse.Namespace) -> int:
    from labctl.campaigns.arc_hdf5 import import_arc_hdf5, read_arc_hdf5

    data = read_arc_hdf5(args.file, timeseries_only=args.timeseries_only)  # refused before the store is opened
    with open_store(args) as store:
        run_id = import_arc_hdf5(store, args.file, data=data)
        print(f"{args.file}: imported as run {run_id} ({store.measurement_count(run_id)} measurements)")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    store = open_store(args, read_only=True)
    run_id = _find(store, args.run)
    out = Path(args.out) if args.out else Path(DEFAULT_REPORTS) / run_id
    page = _report(store, run_id, out)
    print(f"run {run_id}: report {page} ({len(list(out.glob('*.png')))} figure(s) in {out})")
    if args.open and not open_in_browser(page):
        print(f"labctl: error: report: no browser to open {page} with (none found by Python's webbrowser "
              "module; set BROWSER, or open the file by hand)", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """The campaign commands alone (`python -m labctl.campaigns.cli run ...`): the same handlers as
    `labctl run/runs/report`, without importing the other layers' commands (faster start-up, which the
    kill-and-resume trials repeat many times)."""
    parser = argparse.ArgumentParser(prog="labctl", description="campaign commands of labctl")
    add_commands(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    from labctl.cli import dispatch

    return dispatch(args.handler, args)


if __name__ == "__main__":
    sys.exit(main())
