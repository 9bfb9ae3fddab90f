"""Emulated Keithley 3706A System Switch with 3730 6 x 16 matrix cards (Series 3700A Reference
Manual, 3700AS-901-01), TSP through :mod:`.tsp`::

    channel.close("1101,2103")     channel.open("1101")     channel.open("allslots")
    channel.exclusiveclose("1101,1305")                     channel.reset("allslots")
    print(channel.getclose("allslots"))                     reset()
    print(errorqueue.count)        print(errorqueue.next()) errorqueue.clear()

Matrix channels are ``<slot><row 1-6><column 01-16>`` ("SRCC"); a list separates items with
``,`` or ``;`` and may hold ranges (``1101:1116``, the lowest first), ``slotN`` and ``allslots``.
``channel.getclose`` answers the closed channels separated by ``;``, or nil. The row map is
bench.TERMINAL_ROWS_3706A.
"""
from __future__ import annotations

import re
from typing import Any

from .bench import Bench
from .scpi import SCPIError
from .tsp import TspError, TspInstrument, text

_ITEM_SPLIT = re.compile(r"[,;]")


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

    # -- channel lists ----------------------------------------------------------------------------
    def _channel(self, item: str) -> tuple[int, str, int]:
        try:
            return self.bench.parse_channel(item)
        except SCPIError as exc:  # the same refusal, in this instrument's error model
            raise TspError(exc.code, exc.detail) from None

    def parse_list(self, spec: str) -> list[tuple[int, str, int]]:
        out: list[tuple[int, str, int]] = []
        rows = self.bench.layout.rows
        for item in (p.strip() for p in _ITEM_SPLIT.split(spec)):
            if not item:
                continue
            low = item.lower()
            if low == "allslots":
                out += self.bench.all_channels()
            elif low.startswith("slot"):
                try:
                    slot = int(low[4:])
                except ValueError:
                    raise TspError(-224, f"bad slot {item!r}") from None
                if not 1 <= slot <= self.bench.slots:
                    raise TspError(-222, f"slot {slot} not installed (1..{self.bench.slots})")
                out += [c for c in self.bench.all_channels() if c[0] == slot]
            elif ":" in item:
                first, _, last = item.partition(":")
                s1, r1, c1 = self._channel(first)
                s2, r2, c2 = self._channel(last)
                if s1 != s2 or (r1, c1) > (r2, c2):
                    raise TspError(-224, f"range {item!r}: one slot, lowest channel first")
                span = rows[rows.index(r1): rows.index(r2) + 1]
                out += [(s1, r, c) for r in span for c in range(min(c1, c2), max(c1, c2) + 1)]
            else:
                out.append(self._channel(item))
        if not out:
            raise TspError(-109, "empty channel list")
        return out

    def closed_list(self) -> str:
        return ";".join(f"{s}{r}{c:02d}" for s, r, c in sorted(self.bench.closed))

    # -- TSP ------------------------------------------------------------------------------------------
    def tsp_call(self, parts: tuple[str | int, ...], args: list[Any], name: str) -> Any:
        if name in ("channel.close", "channel.open", "channel.exclusiveclose", "channel.reset",
                    "channel.getclose"):
            if len(args) != 1:
                raise TspError(-286, f"TSP Runtime error at line 1: {name} takes one channel list")
            channels = self.parse_list(text(args[0], "#1"))
            if name == "channel.close":
                self.bench.close(channels)
            elif name in ("channel.open", "channel.reset"):
                self.bench.open(channels)
            elif name == "channel.exclusiveclose":
                with self.bench.lock:  # break before make, one step for the array
                    self.bench.open_all()
                    self.bench.close(channels)
            else:
                wanted = set(channels)
                closed = ";".join(f"{s}{r}{c:02d}" for s, r, c in sorted(self.bench.closed & wanted))
                return closed or None
            return None
        return super().tsp_call(parts, args, name)
