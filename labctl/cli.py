"""The `labctl` command.

Each subcommand lives in its own small function; heavy imports happen inside them so that
`labctl --help` stays instant.

Exit statuses (docs/campaigns.md): 0 done, 1 a failed run or operation (a backend that cannot be
reached, a store that cannot be written), 2 bad input (a bad argument, file, path or value; usage
errors; a subcommand group without its action), 130 interrupted. `dispatch` is the one place that
turns errors into a message and a status: a known error is printed as `labctl: error: ...`, anything
else as one line naming the error; a traceback only with LABCTL_DEBUG=1.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from labctl import __version__

Handler = Callable[[argparse.Namespace], int]

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


class OperationFailed(RuntimeError):
    """An operation that could not be done although the input was good (exit status 1); its message
    says what failed."""


def usage_error(parser: argparse.ArgumentParser) -> Handler:
    """The handler of a subcommand group given without its action: its help on stderr, status 2."""
    def handler(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return EXIT_BAD_INPUT
    return handler


def _known(exc: Exception, args: argparse.Namespace) -> Exception:
    """An SQLite error from the run store as the StoreError naming its file; others as they are."""
    from labctl.campaigns.store import DEFAULT_STORE, as_store_error

    return as_store_error(exc, getattr(args, "store", None) or DEFAULT_STORE) or exc


def _status_of(exc: BaseException) -> int:
    """Exit status for an error a handler raised: bad input 2, a failed operation 1."""
    status = getattr(exc, "status", None)  # a StoreError says which it is
    if isinstance(status, int):
        return status
    if isinstance(exc, (ValueError, KeyError, FileNotFoundError, FileExistsError, IsADirectoryError,
                        NotADirectoryError, PermissionError)):
        return EXIT_BAD_INPUT
    return EXIT_FAILED


def _message(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc) or type(exc).__name__


def _quiet_stdout() -> None:
    """After a broken pipe (`labctl runs list | head -1`): send what is left to /dev/null, so that the
    interpreter's last flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def dispatch(handler: Handler, args: argparse.Namespace, prog: str = "labctl") -> int:
    """Run a subcommand's handler; every error becomes one line on stderr and an exit status."""
    try:
        status = handler(args)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return status
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_FAILED
    except Exception as exc:  # noqa: BLE001 -- the last resort: no traceback reaches the user
        if os.environ.get("LABCTL_DEBUG") == "1":
            raise
        exc = _known(exc, args)
        status = _status_of(exc)
        known = status == EXIT_BAD_INPUT or isinstance(exc, (OperationFailed, ConnectionError, OSError)) \
            or hasattr(exc, "status")
        text = _message(exc) if known else f"{type(exc).__name__}: {_message(exc)} (LABCTL_DEBUG=1 for details)"
        try:
            print(f"{prog}: error: {text}", file=sys.stderr)
        except BrokenPipeError:
            pass
        return status


def _cmd_demo(args: argparse.Namespace) -> int:
    from labctl.demo import run_demo

    return run_demo(rows=args.rows, cols=args.cols, seed=args.seed, out=args.out)


def _cmd_emulate(args: argparse.Namespace) -> int:
    from emulator.serve import main as serve_main

    return serve_main(args)


def tcp_port(text: str) -> int:
    """argparse type of a TCP port: an integer in [0, 65535] (0: any free port)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is outside [0, 65535]")
    return port


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
    emulate.add_argument("--port", type=tcp_port, default=0, help="chip-controller TCP port (0: any free port)")
    emulate.add_argument("--no-pty", action="store_true", help="do not open a pseudo-terminal")
    emulate.add_argument("--no-instruments", action="store_true", help="do not start the SCPI instruments")
    emulate.add_argument("--wafer", metavar="COLUMNSxROWS", default=None,
                         help="emulate a wafer of dies (each --rows x --cols) behind an emulated prober")
    emulate.add_argument("--prober", choices=("velox", "sentio"), default="velox",
                         help="the emulated prober's command set with --wafer (default velox)")
    emulate.add_argument("--prober-port", type=tcp_port, default=0, help="the prober's TCP port (0: any free port)")
    emulate.set_defaults(handler=_cmd_emulate)
    from labctl.evaluation.cli import add_eval_parser, add_export_parser  # eval inference|training, export

    add_eval_parser(sub)
    add_export_parser(sub)

    from labctl.campaigns.cli import add_commands as add_campaign_commands  # run, runs, report

    add_campaign_commands(sub)
    from labctl.sweeps.cli import add_commands as add_sweep_commands  # sweep, sweeps

    add_sweep_commands(sub)
    from labctl.puf.cli import add_parser as add_puf_parser  # puf enroll, reconstruct, evaluate

    add_puf_parser(sub)
    from labctl.tui.cli import add_commands as add_tui_commands  # tui

    add_tui_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = getattr(args, "handler", None) or usage_error(parser)
    return dispatch(handler, args)


if __name__ == "__main__":
    sys.exit(main())
