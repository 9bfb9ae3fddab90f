"""The `labctl` command.

Each subcommand lives in its own small function; heavy imports happen inside them so that
`labctl --help` stays instant.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from labctl import __version__

Handler = Callable[[argparse.Namespace], int]


def _cmd_demo(args: argparse.Namespace) -> int:
    from labctl.demo import run_demo

    return run_demo(rows=args.rows, cols=args.cols, seed=args.seed, out=args.out)


def _cmd_emulate(args: argparse.Namespace) -> int:
    from emulator.serve import main as serve_main

    return serve_main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labctl",
        description="Control and emulation of 1T1R ReRAM crossbar arrays.",
    )
    parser.add_argument("--version", action="version", version=f"labctl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="form, program and read an emulated array; print what was done")
    demo.add_argument("--rows", type=int, default=32, help="array rows (default 32)")
    demo.add_argument("--cols", type=int, default=32, help="array columns (default 32)")
    demo.add_argument("--seed", type=int, default=0, help="emulator seed (default 0)")
    demo.add_argument("--out", default="out/demo", help="folder for the JSON summary (default out/demo)")
    demo.set_defaults(handler=_cmd_demo)

    emulate = sub.add_parser("emulate", help="serve an emulated array over TCP and a pseudo-terminal")
    emulate.add_argument("--rows", type=int, default=8, help="array rows (default 8)")
    emulate.add_argument("--cols", type=int, default=4, help="array columns (default 4)")
    emulate.add_argument("--seed", type=int, default=0, help="emulator seed (default 0)")
    emulate.add_argument("--preset", default="cmo-hfox", help="device preset (default cmo-hfox)")
    emulate.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    emulate.add_argument("--port", type=int, default=0, help="chip-controller TCP port (0: any free port)")
    emulate.add_argument("--no-pty", action="store_true", help="do not open a pseudo-terminal")
    emulate.add_argument("--no-instruments", action="store_true", help="do not start the SCPI instruments")
    emulate.set_defaults(handler=_cmd_emulate)
    from labctl.evaluation.cli import add_eval_parser  # eval inference, eval training

    add_eval_parser(sub)

    from labctl.campaigns.cli import add_commands as add_campaign_commands  # run, runs, report

    add_campaign_commands(sub)
    from labctl.puf.cli import add_parser as add_puf_parser  # puf enroll, reconstruct, evaluate

    add_puf_parser(sub)
    from labctl.tui.cli import add_commands as add_tui_commands  # tui

    add_tui_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except ValueError as exc:  # bad input: say what was wrong, no traceback
        print(f"labctl: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
