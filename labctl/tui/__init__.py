"""The probe-station TUI (`labctl tui`): array map, cell actions within the station limits, campaign
control and remote watching, built with Textual (docs/tui.md).

`backend_factory(args)` turns the command line into a backend factory, `backend_table(args)` into the
campaign [backend] table of the same array (recorded with every action); `main(args)` runs the app.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _chip_address(chip: str) -> str:
    """--chip as an address: tcp://HOST:PORT, serial://DEVICE or a device path (a bare name is a serial port)."""
    return chip if chip.startswith(("tcp://", "serial://", "/")) else f"serial://{chip}"


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
        spec = _chip_address(chip)
    else:
        spec = f"emulator:{emulator}?seed={seed}&preset={preset}"
    open_backend(spec)  # validate the address now, on the command line, not later in the UI
    return lambda: open_backend(spec)


def backend_table(emulator: str = "32x32", seed: int = 0, preset: str = "cmo-hfox", station: str | None = None,
                  chip: str | None = None) -> dict[str, Any]:
    """The campaign [backend] table (labctl.campaigns.schema.BackendSpec) of the array the options name,
    without rows and cols (the connected backend says those)."""
    if station:
        return {"kind": "station", "station": str(Path(station).expanduser().resolve())}
    if chip:
        return {"kind": "chip", "address": _chip_address(chip)}
    return {"kind": "emulator", "seed": seed, "preset": preset}


def main(args: argparse.Namespace) -> int:
    """Run the TUI until the operator quits; outputs are off and the backend closed on return."""
    from labctl.tui.app import ProbeStationApp

    where = (args.emulator, args.seed, args.preset, args.station, args.chip)
    app = ProbeStationApp(backend_factory(*where), store_path=args.store, refresh_interval=args.refresh,
                          mqtt=args.mqtt, watch_station=args.watch_station, campaign_path=args.campaign or "",
                          backend_table=backend_table(*where))
    app.run()
    return 0 if app.return_code in (None, 0) else int(app.return_code)
