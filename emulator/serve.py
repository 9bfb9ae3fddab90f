"""`labctl emulate`: one emulated array behind the chip controller (TCP and a pseudo-terminal)
and, when available, the emulated SCPI instruments.

Prints one line per endpoint, e.g.

    chip tcp://127.0.0.1:40123
    chip serial /dev/pts/5
    instrument smu TCPIP::127.0.0.1::40125::SOCKET
    prober velox TCPIP::127.0.0.1::40131::SOCKET     (with --wafer 6x6: the chip and the instruments
                                                     then measure the die under the probes)

and serves until SIGINT or SIGTERM.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.util
import logging
import signal
import sys

from emulator.array import Array
from emulator.controller import ChipController, PtyServer, serve_tcp

log = logging.getLogger(__name__)


def main(args: argparse.Namespace) -> int:
    """Run the emulator until interrupted. Returns the process exit code."""
    return asyncio.run(serve(args))


async def serve(args: argparse.Namespace, ready: asyncio.Event | None = None,
                stop: asyncio.Event | None = None) -> int:
    """Serve as `main` does; `ready` is set once every address is printed, `stop` ends it."""
    if not 0 <= args.port <= 65535:
        print(f"labctl emulate: --port {args.port} is outside [0, 65535]", file=sys.stderr)
        return 2
    wafer = _wafer(args)
    if wafer is False:
        return 2
    array = Array(rows=args.rows, cols=args.cols, preset=args.preset, seed=args.seed) if wafer is None else wafer.probes
    controller = ChipController(array)
    try:
        server = await serve_tcp(controller, args.host, args.port)
    except OSError as exc:
        print(f"labctl emulate: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
              file=sys.stderr)
        await controller.aclose()
        return 1
    port = server.sockets[0].getsockname()[1]
    print(f"chip tcp://{args.host}:{port}", flush=True)
    pty: PtyServer | None = None
    instruments = None
    prober = None
    try:
        if not args.no_pty:
            pty = PtyServer(controller)
            print(f"chip serial {pty.path}", flush=True)
        if wafer is not None:
            from emulator.instruments import prober_server

            prober = prober_server(wafer, args.prober, args.host, getattr(args, "prober_port", 0))
            await prober.start()
            print(f"prober {args.prober} {prober.resource}", flush=True)
        if not args.no_instruments:
            instruments = _instruments_module()
            if instruments is not None:
                for name, resource in await instruments.start_instruments(array, args.host):
                    print(f"instrument {name} {resource}", flush=True)
        print(f"emulating a {args.rows} x {args.cols} {args.preset} array (seed {args.seed}); "
              "Ctrl-C to stop", file=sys.stderr, flush=True)
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
        if ready is not None:
            ready.set()
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                asyncio.get_running_loop().remove_signal_handler(sig)
        await server.close()
        if pty is not None:
            pty.close()
        await controller.aclose()
        if prober is not None:
            await prober.stop()
        stop_instruments = getattr(instruments, "stop_instruments", None)
        if stop_instruments is not None:
            await stop_instruments(array)
    return 0


def _wafer(args: argparse.Namespace) -> object:
    """The emulated wafer of `--wafer COLUMNSxROWS` (None without it; False, after saying why, if bad)."""
    spec = getattr(args, "wafer", None)
    if spec is None:
        return None
    from emulator.wafer import Wafer

    columns, _, rows = spec.lower().partition("x")
    try:
        return Wafer(int(columns), int(rows), args.rows, args.cols, seed=args.seed, preset=args.preset)
    except ValueError as exc:
        print(f"labctl emulate: --wafer {spec!r}: expected COLUMNSxROWS, e.g. 6x6 ({exc})", file=sys.stderr)
        return False


def _instruments_module() -> object | None:
    """emulator.instruments if it exists and offers start_instruments, else None."""
    if importlib.util.find_spec("emulator.instruments") is None:
        return None
    module = importlib.import_module("emulator.instruments")
    return module if hasattr(module, "start_instruments") else None
