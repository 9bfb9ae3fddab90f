"""Array backends: one async interface (ArrayBackend), three implementations, and `open_backend`.

    async with open_backend("emulator:8x4?seed=0") as backend:     # in-process C model
    async with open_backend("tcp://127.0.0.1:5000") as backend:    # chip controller over TCP
    async with open_backend("/dev/pts/5") as backend:              # ... or a serial line
    async with open_backend("station:station.toml") as backend:    # SMU + pulser + matrix
"""
from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from labctl.backends.base import (
    ArrayBackend,
    BackendInfo,
    ProgramOutcome,
    ProgramSettings,
)

__all__ = ["ArrayBackend", "BackendInfo", "ProgramOutcome", "ProgramSettings", "EmulatorBackend",
           "ChipBackend", "StationBackend", "open_backend"]


def open_backend(spec: str, **kwargs: Any) -> ArrayBackend:
    """The backend a spec names, not yet connected (use `async with`).

    Specs:
        "emulator[:ROWSxCOLS][?seed=N&preset=NAME]"  EmulatorBackend (default 8x4, seed 0, cmo-hfox)
        "tcp://HOST:PORT", "serial://DEVICE", "/dev/..."  ChipBackend (a chip controller)
        "station:PATH[?clock=tcp://HOST:PORT]"  StationBackend from a station file; `clock` names
            the chip controller of the emulator serving the instruments (its virtual clock)
    Extra keyword arguments go to the backend's constructor (e.g. resources= for a station).
    ValueError names the spec and what was expected.
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"spec: expected a backend address such as 'emulator:8x4', got {spec!r}")
    if spec == "emulator" or spec.startswith("emulator:") or spec.startswith("emulator?"):
        return _emulator(spec, kwargs)
    if spec.startswith("station:"):
        return _station(spec, kwargs)
    if spec.startswith(("tcp://", "serial://", "/")):
        from labctl.backends.chip import ChipBackend

        return ChipBackend(spec, **kwargs)
    raise ValueError(f"spec: {spec!r} is not a backend address (expected 'emulator[:RxC][?seed=N]', "
                     "'tcp://HOST:PORT', 'serial://DEVICE', a device path, or 'station:FILE')")


def _query(spec: str, query: str, allowed: set[str]) -> dict[str, str]:
    params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValueError(f"spec {spec!r}: unknown option(s) {unknown} (allowed: {sorted(allowed)})")
    return params


def _emulator(spec: str, kwargs: dict[str, Any]) -> ArrayBackend:
    from labctl.backends.emulator import EmulatorBackend

    body, _, query = spec.partition("?")
    shape = body[len("emulator:"):] if body.startswith("emulator:") else ""
    rows, cols = 8, 4
    if shape:
        try:
            rows, cols = (int(x) for x in shape.lower().split("x"))
        except ValueError:
            raise ValueError(f"spec {spec!r}: array size must be ROWSxCOLS, e.g. emulator:8x4") from None
    params = _query(spec, query, {"seed", "preset"})
    options: dict[str, Any] = {}
    if "seed" in params:
        try:
            options["seed"] = int(params["seed"])
        except ValueError:
            raise ValueError(f"spec {spec!r}: seed={params['seed']!r} is not an integer") from None
    if "preset" in params:
        options["preset"] = params["preset"]
    return EmulatorBackend(rows, cols, **{**options, **kwargs})


def _station(spec: str, kwargs: dict[str, Any]) -> ArrayBackend:
    from labctl.backends.station import ChipClock, StationBackend

    url = urlsplit(spec)
    path = spec[len("station:"):].partition("?")[0]
    if not path:
        raise ValueError(f"spec {spec!r}: expected station:PATH to a station file")
    params = _query(spec, url.query, {"clock"})
    if "clock" in params and "clock" not in kwargs:
        kwargs["clock"] = ChipClock(params["clock"])
    return StationBackend(path, **kwargs)


def __getattr__(name: str) -> Any:
    # Each backend pulls in what it talks to (the C core, asyncio transports, pyvisa): import on first
    # use, so that `import labctl.backends` (and the routines) load none of them.
    if name == "EmulatorBackend":
        from labctl.backends.emulator import EmulatorBackend

        return EmulatorBackend
    if name == "ChipBackend":
        from labctl.backends.chip import ChipBackend

        return ChipBackend
    if name == "StationBackend":
        from labctl.backends.station import StationBackend

        return StationBackend
    raise AttributeError(f"module 'labctl.backends' has no attribute {name!r}")
