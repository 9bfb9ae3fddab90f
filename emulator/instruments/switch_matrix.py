"""What the emulated TSP switch matrices (707B, 3706A) share: the ``channel`` functions over their
bench's crosspoints, through the TSP interpreter (:mod:`.tsp`)::

    channel.close(list)     channel.open(list)     channel.exclusiveclose(list)
    channel.reset(list)     print(channel.getclose(list))      reset()

``channel.getclose`` answers the closed channels of the list separated by ``;``, or nil. Channel
lists are parsed by :meth:`.bench.Bench.parse_list` in the model's notation.
"""
from __future__ import annotations

from typing import Any

from .bench import Bench
from .tsp import TspInstrument, runtime_error, text

CHANNEL_FUNCTIONS = ("channel.close", "channel.open", "channel.exclusiveclose", "channel.reset",
                     "channel.getclose")


class TspSwitchMatrix(TspInstrument):
    """Base of the emulated matrices; ``separators`` are the list separators the model accepts."""

    separators = ","

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        super().__init__()

    def reset(self) -> None:
        self.bench.open_all()

    def power_off(self) -> None:
        self.bench.open_all()  # latching state is lost with power: every crosspoint opens

    def tsp_call(self, parts: tuple[str | int, ...], args: list[Any], name: str) -> Any:
        if name not in CHANNEL_FUNCTIONS:
            return super().tsp_call(parts, args, name)
        if len(args) != 1:
            raise runtime_error(f"{name} takes one channel list")
        channels = self.bench.parse_list(text(args[0], "#1"), self.separators)
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
