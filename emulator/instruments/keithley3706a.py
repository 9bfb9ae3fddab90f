"""Emulated Keithley 3706A System Switch with 3730 6 x 16 matrix cards (Series 3700A Reference
Manual, 3700AS-901-01), TSP through :mod:`.tsp`::

    channel.close("1101,2103")     channel.open("1101")     channel.open("allslots")
    channel.exclusiveclose("1101,1305")                     channel.reset("allslots")
    print(channel.getclose("allslots"))                     reset()
    print(errorqueue.count)        print(errorqueue.next()) errorqueue.clear()

Matrix channels are ``<slot><row 1-6><column 01-16>`` ("SRCC"); a list separates items with
``,`` or ``;`` and may hold ranges (``1101:1116``), ``slotN`` and ``allslots`` (bench.Bench.parse_list).
``channel.getclose`` answers the closed channels separated by ``;``, or nil. The row map is
bench.TERMINAL_ROWS_3706A.
"""
from __future__ import annotations

from typing import Any

from .bench import Bench
from .tsp import TspError, TspInstrument, text


class Keithley3706A(TspInstrument):
    idn = "Keithley Instruments Inc., Model 3706A, 04370600, 01.56a"
    name = "switch_3706a"

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        super().__init__()

    def reset(self) -> None:
        self.bench.open_all()

    def power_off(self) -> None:
        self.bench.open_all()  # latching state is lost with power: every crosspoint opens

    # -- TSP ------------------------------------------------------------------------------------------
    def tsp_call(self, parts: tuple[str | int, ...], args: list[Any], name: str) -> Any:
        if name in ("channel.close", "channel.open", "channel.exclusiveclose", "channel.reset",
                    "channel.getclose"):
            if len(args) != 1:
                raise TspError(-286, f"TSP Runtime error at line 1: {name} takes one channel list")
            channels = self.bench.parse_list(text(args[0], "#1"), ",;")
            if name == "channel.close":
                self.bench.close(channels)
            elif name in ("channel.open", "channel.reset"):
                self.bench.open(channels)
            elif name == "channel.exclusiveclose":
                with self.bench.lock:  # break before make, one step for the array
                    self.bench.open_all()
                    self.bench.close(channels)
            else:
                return self.bench.closed_list(set(channels)) or None
            return None
        return super().tsp_call(parts, args, name)
