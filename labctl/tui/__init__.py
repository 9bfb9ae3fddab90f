"""The probe-station TUI (`labctl tui`): array map, cell actions within the station limits, campaign
control and remote watching, built with Textual (docs/tui.md).

`backend_factory(args)` turns the command line into a backend factory; `main(args)` runs the app.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def backend_factory(emulator: str = "32x32", seed: int = 0, preset: str = "cmo-hfox", station: str | None = None,
                    chip: str | None = None) -> Callable[[], Any]:
    """A function that builds the (unopened) backend: the embedded emulator unless a station file or
    a chip controller address is given. ValueError names the option."""
    if station and chip:
        raise ValueError("tui: give --station FILE or --chip ADDR, not both")
    from labctl.backends import open_backend

    if station:
        spec = f"station:{station}"
    elif chip:
        spec = chip if chip.startswith(("tcp://", "serial://", "/")) else f"serial://{chip}"
    else:
        spec = f"emulator:{emulator}?seed={seed}&preset={preset}"
    open_backend(spec)  # validate the address now, on the command line, not later in the UI
    return lambda: open_backend(spec)


def main(args: argparse.Namespace) -> int:
    """Run the TUI until the operator quits; outputs are off and the backend closed on return."""
    from labctl.tui.app import ProbeStationApp

    factory = backend_factory(args.emulator, args.seed, args.preset, args.station, args.chip)
    app = ProbeStationApp(factory, store_path=args.store, refresh_interval=args.refresh, mqtt=args.mqtt,
                          watch_station=args.watch_station, campaign_path=args.campaign or "")
    app.run()
    return 0 if app.return_code in (None, 0) else int(app.return_code)
