"""Emulated SCPI instruments wired through an emulated switch matrix to one shared Array.

``await start_instruments(array)`` starts one loopback TCP server per model and returns
``[(name, VISA resource), ...]``; ``await stop_instruments(array)`` stops them. Tests and tools that
need the servers themselves (received-command logs, fault injection) use :class:`InstrumentBench`.
The terminal map is in :mod:`emulator.instruments.bench` and docs/instruments.md.

This package must not import labctl: the emulator stands in for hardware.
"""
from __future__ import annotations

from typing import Any

from .base import EmulatedInstrument
from .bench import (ANALYZER_TERMINAL_ROWS, LAYOUT_3706A, LAYOUT_ANALYZER, TERMINAL_ROWS, TERMINAL_ROWS_3706A, Bench,
                    MatrixLayout, line_column)
from .keithley707b import Keithley707B
from .keithley2400 import Keithley2400
from .keithley2450 import Keithley2450
from .keithley2600b import Keithley2602B
from .keithley3706a import Keithley3706A
from .keithley4200a import Keithley4200A
from .keysight_b1500a import KeysightB1500A
from .keysight_33500b import Keysight33522B
from .keysight_81160a import Keysight81160A
from .keysight_b2900 import KeysightB2902A
from .lakeshore336 import LakeShore336
from .prober import EmulatedProber, ProberServer
from .sentio import EmulatedSentio
from .server import InstrumentServer
from .tektronix_afg31000 import TektronixAFG31102
from .velox import EmulatedVelox

__all__ = [
    "ANALYZER_PORTS",
    "Bench",
    "DEFAULT_PORTS",
    "DEFAULT_PORTS_3706A",
    "EmulatedInstrument",
    "EmulatedProber",
    "PROBER_MODELS",
    "ProberServer",
    "InstrumentBench",
    "InstrumentServer",
    "LAYOUT_3706A",
    "MatrixLayout",
    "TERMINAL_ROWS",
    "TERMINAL_ROWS_3706A",
    "line_column",
    "prober_server",
    "running_bench",
    "start_instruments",
    "stop_instruments",
]


class InstrumentBench:
    """The emulated instruments of one Array, each on its own loopback port, behind three matrices.

    ``servers`` maps names to :class:`InstrumentServer`: behind the 707B (``bench``): ``smu_2450``,
    ``smu_b2902a``, ``pg_33522b``, ``pg_81160a``, ``matrix_707b``; behind the 3706A
    (``bench_3706a``): ``smu_2602b``, ``smu_2400``, ``gate_2400``, ``afg_31102``, ``switch_3706a``; the
    analyzer bench's (``analyzer_bench``, its own 707B): ``analyzer_4200a``, ``analyzer_b1500a``,
    ``matrix_707b_pa``; and ``tc_336``: the Lake Shore 336 holding the array's thermal chuck.
    Use as ``async with InstrumentBench(arr) as b:``.
    """

    def __init__(self, array: Any, host: str = "127.0.0.1", ports: dict[str, int] | None = None) -> None:
        """``ports``: fixed port per instrument name; missing or 0 means any free port."""
        self.array = array
        self.host = host
        self.ports = ports or {}
        self.bench = Bench(array)
        #: The parameter analyzers' bench: their own 707B on the same array (bench.py).
        self.analyzer_bench = Bench(array, LAYOUT_ANALYZER)
        analyzer_matrix = Keithley707B(self.analyzer_bench)
        analyzer_matrix.name = "matrix_707b_pa"
        instruments: list[EmulatedInstrument] = [
            Keithley2450(self.bench),
            KeysightB2902A(self.bench),
            Keysight33522B(self.bench),
            Keysight81160A(self.bench),
            Keithley707B(self.bench),
            LakeShore336(array),
        ]
        self.bench_3706a = Bench(array, LAYOUT_3706A)
        instruments += [
            Keithley2602B(self.bench_3706a),
            Keithley2400(self.bench_3706a),
            Keithley2400(self.bench_3706a, name="gate_2400", terminal="smu2400.gate"),
            TektronixAFG31102(self.bench_3706a),
            Keithley3706A(self.bench_3706a),
            Keithley4200A(self.analyzer_bench),
            KeysightB1500A(self.analyzer_bench),
            analyzer_matrix,
        ]
        self.servers: dict[str, InstrumentServer] = {
            inst.name: InstrumentServer(inst, host, self.ports.get(inst.name, 0)) for inst in instruments
        }

    async def start(self) -> list[tuple[str, str]]:
        for server in self.servers.values():
            try:
                await server.start()
            except OSError:
                if server.port == 0:
                    raise
                server.port = 0  # the well-known port is taken (another emulator): any free one
                await server.start()
        return self.resources()

    def resources(self) -> list[tuple[str, str]]:
        return [(name, server.resource) for name, server in self.servers.items()]

    async def stop(self) -> None:
        for server in self.servers.values():
            await server.stop()

    def __getitem__(self, name: str) -> InstrumentServer:
        return self.servers[name]

    async def __aenter__(self) -> InstrumentBench:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


#: Ports tried first by :func:`start_instruments` for the 707B bench (raw-socket SCPI uses 5025 by
#: convention), so that examples/station-emulated.toml works as written; taken ports fall back to
#: free ones.
DEFAULT_PORTS: dict[str, int] = {
    "smu_2450": 5025,
    "smu_b2902a": 5026,
    "pg_33522b": 5027,
    "pg_81160a": 5028,
    "matrix_707b": 5029,
    "tc_336": 7777,  # the Lake Shore 336's own Ethernet port (User's Manual, chapter 6)
}
#: The same for the 3706A bench (examples/station-2602b.toml and station-2400.toml).
DEFAULT_PORTS_3706A: dict[str, int] = {
    "smu_2602b": 5040,
    "smu_2400": 5041,
    "gate_2400": 5042,
    "afg_31102": 5043,
    "switch_3706a": 5044,
}
#: Ports tried first for the analyzer bench, so that examples/station-4200a-pmu.toml and
#: station-b1500a-*.toml work as written.
ANALYZER_PORTS: dict[str, int] = {
    "analyzer_4200a": 5050,
    "analyzer_b1500a": 5051,
    "matrix_707b_pa": 5052,
}

_running: dict[int, InstrumentBench] = {}


async def start_instruments(array: Any, host: str = "127.0.0.1") -> list[tuple[str, str]]:
    """Start the emulated instruments for ``array``; returns (name, VISA resource) per server."""
    if id(array) in _running:
        return _running[id(array)].resources()
    bench = InstrumentBench(array, host, {**DEFAULT_PORTS, **DEFAULT_PORTS_3706A, **ANALYZER_PORTS})
    resources = await bench.start()
    _running[id(array)] = bench
    return resources


def running_bench(array: Any) -> InstrumentBench | None:
    """The :class:`InstrumentBench` started for ``array`` by :func:`start_instruments`, if any."""
    return _running.get(id(array))


async def stop_instruments(array: Any | None = None) -> None:
    """Stop the instruments of ``array`` (all started ones when None)."""
    keys = list(_running) if array is None else [id(array)]
    for key in keys:
        bench = _running.pop(key, None)
        if bench is not None:
            await bench.stop()


#: The emulated prober command sets, by the name campaign files and `labctl emulate` use.
PROBER_MODELS: dict[str, type[EmulatedProber]] = {"velox": EmulatedVelox, "sentio": EmulatedSentio}


def prober_server(wafer: Any, command_set: str, host: str = "127.0.0.1", port: int = 0) -> ProberServer:
    """A (not yet started) server of the emulated prober speaking `command_set` for `wafer`
    (an emulator.wafer.Wafer); `await server.start()`, then open `server.resource`."""
    try:
        model = PROBER_MODELS[command_set]
    except KeyError:
        raise ValueError(f"command_set: unknown prober {command_set!r}; known: {', '.join(PROBER_MODELS)}") from None
    return ProberServer(model(wafer), host, port)
