"""`labctl tui`: the probe-station TUI's command line (labctl/cli.py registers it with add_commands)."""
from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `tui` subcommand."""
    tui = sub.add_parser("tui", help="probe-station terminal UI: array map, cell actions, campaigns, remote watch")
    where = tui.add_mutually_exclusive_group()
    where.add_argument("--station", metavar="FILE", help="instrument station file (SMU + pulser + matrix)")
    where.add_argument("--chip", metavar="ADDR", help="chip controller: tcp://HOST:PORT or a serial port")
    tui.add_argument("--emulator", default="32x32", metavar="ROWSxCOLS",
                     help="size of the embedded emulator used without --station/--chip (default 32x32)")
    tui.add_argument("--seed", type=int, default=0, help="embedded emulator seed (default 0)")
    tui.add_argument("--preset", default="cmo-hfox", help="embedded emulator preset (default cmo-hfox)")
    tui.add_argument("--store", default=None, metavar="PATH",
                     help="SQLite run store shared with `labctl run` (default ./labctl-runs.sqlite)")
    tui.add_argument("--refresh", type=float, default=0.0, metavar="SECONDS",
                     help="re-read the array map every SECONDS (default 0: on demand; `t` toggles)")
    tui.add_argument("--mqtt", metavar="URL", default=None,
                     help="broker for remote watch and for telemetry of campaigns started here")
    tui.add_argument("--watch-station", default="+", metavar="NAME",
                     help="station whose telemetry the Remote tab follows (default +: every station)")
    tui.add_argument("--campaign", metavar="FILE", default=None, help="campaign file to preload in the panel")
    tui.set_defaults(handler=_cmd_tui)


def _cmd_tui(args: argparse.Namespace) -> int:
    from labctl.tui import main

    return main(args)
