"""State and firing of one pulse-generator output, shared by the 33500B and 81160A models.

The generator is modeled as a triggered-burst pulse source into a high-impedance cell: a trigger
fires ``burst_count`` rectangular pulses, one per period. What reaches the cell is the programmed
level scaled by the load setting: a generator set for a 50 ohm load doubles its level into a
high-impedance device (its 50 ohm source resistance no longer divides it), which is exactly the
trap the driver avoids by declaring a high-impedance load.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .bench import Bench
from .scpi import SCPIError

SOURCE_RESISTANCE = 50.0  # ohm, output impedance of both generator families
BASELINE_TOLERANCE = 1e-3  # V; the emulator models pulse tops on a 0 V baseline only


@dataclass
class PulseChannel:
    terminal: str
    function: str = "PULS"
    high: float = 0.1  # V, as programmed (into the declared load)
    low: float = 0.0  # V
    width: float = 100e-6  # s
    period: float = 1e-3  # s
    burst_count: int = 1
    burst_enabled: bool = True  # 81160A: triggered mode; 33500B: BURSt:STATe
    trigger_source: str = "BUS"
    output: bool = False
    inverted: bool = False
    load: float = 50.0  # ohm the generator assumes; math.inf = high impedance
    limit_enabled: bool = False
    limit_high: float = 5.0  # V
    limit_low: float = -5.0  # V
    fired: int = 0  # pulses delivered since reset (for tests and status)

    @property
    def load_factor(self) -> float:
        """Open-circuit level / programmed level."""
        if math.isinf(self.load):
            return 1.0
        return (self.load + SOURCE_RESISTANCE) / self.load

    @property
    def amplitude(self) -> float:
        return self.high - self.low

    @property
    def offset(self) -> float:
        return (self.high + self.low) / 2

    def check_levels(self, high: float, low: float, max_abs: float) -> None:
        """Refuse a level pair (as programmed) that violates ordering, the output's own limits or
        the bench limit on what reaches the cell."""
        if high <= low:
            raise SCPIError(-221, f"high level {high:g} V must exceed low level {low:g} V")
        if self.limit_enabled and (high > self.limit_high or low < self.limit_low):
            raise SCPIError(
                -222,
                f"levels [{low:g}, {high:g}] V outside output limits "
                f"[{self.limit_low:g}, {self.limit_high:g}] V",
            )
        for name, v in (("high", high), ("low", low)):
            if abs(v * self.load_factor) > max_abs:
                raise SCPIError(
                    -222,
                    f"{name} level {v:g} V gives {v * self.load_factor:g} V at the cell, "
                    f"beyond the bench limit {max_abs:g} V",
                )

    def check_timing(self, width: float, period: float) -> None:
        if width >= period:
            raise SCPIError(-221, f"pulse width {width:g} s must be shorter than period {period:g} s")

    def check_output_on(self) -> None:
        """The emulator delivers triggered bursts; a free-running train has no end to model."""
        if not self.burst_enabled or self.trigger_source in ("IMM", "TIM", "INT", "INT2"):
            raise SCPIError(
                -221,
                "free-running output is not emulated; use triggered burst mode "
                "with a BUS or MANual trigger source",
            )

    def fire(self, bench: Bench) -> None:
        """One trigger: the burst reaches every cell routed to this output."""
        if not self.output:
            return  # a trigger with the output off delivers nothing, as on the instrument
        if self.function != "PULS":
            raise SCPIError(-221, f"function {self.function} is not emulated; use PULSe")
        top, base = (self.low, self.high) if self.inverted else (self.high, self.low)
        if abs(base * self.load_factor) > BASELINE_TOLERANCE:
            raise SCPIError(
                -221, f"baseline {base * self.load_factor:g} V: the emulator models 0 V baselines only"
            )
        bench.pulse(self.terminal, top * self.load_factor, self.width, self.burst_count, self.period)
        self.fired += self.burst_count
