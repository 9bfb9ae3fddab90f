"""An emulated thermal chuck: first-order response to a (ramped) set-point, on the array's virtual clock.

The chuck has no clock of its own. When an `Array` with a chuck (`Array.chuck`) advances its clock,
it asks the chuck for the temperature history of that interval (`Chuck.segments`) and relaxes its
cells piece by piece at each piece's temperature; the cells then sit at the chuck's temperature (no
self-heating). Everything is deterministic: the same commands and the same advances give the same
temperatures, bit for bit, whoever sends them (the in-process backend or the emulated Lake Shore
controller over TCP).

Model (docs/emulator.md, "Thermal chuck"): with the heater on, the loop follows a working set-point
that moves towards the set-point at the ramp rate (at once when the rate is 0), and the chuck follows
the working set-point as a first-order lag of time constant `time_constant`; with the heater off it
relaxes the same way towards `ambient`. Within a piece the working set-point is linear in time, so
the temperature at its end is exact: T(h) = s0 + r (h − τ) + (T0 − s0 + r τ) e^(−h/τ).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from labctl.core.temperature import ROOM_TEMPERATURE

#: Below this distance from its target (K) a chuck that is not ramping is at the target exactly:
#: the lag is then over, and a long hold is one piece instead of thousands.
SNAP = 1e-6
#: Pieces per time constant: the cells relax at each piece's mean temperature.
PIECES_PER_TAU = 10
#: Bound on the pieces of one advance before the chuck has settled (heating from the coldest to the
#: hottest rating with the slowest ramp stays far below it).
MAX_PIECES = 1_000_000


@dataclass
class Chuck:
    """Chuck state, SI (K, s) except the ramp rate, which is K/min as controllers take it (so that a
    rate sent over the wire and one set in process give the same float)."""

    temperature: float = ROOM_TEMPERATURE  # measured, K
    set_point: float = ROOM_TEMPERATURE  # target, K
    working_set_point: float = ROOM_TEMPERATURE  # what the loop follows now (ramps to set_point), K
    ramp_rate: float = 0.0  # K/min; 0: steps at once
    heater_on: bool = True
    ambient: float = ROOM_TEMPERATURE  # where the chuck drifts with the heater off, K
    time_constant: float = 60.0  # first-order lag, s (chosen: a probe-station chuck heats 25 -> 85 °C in ~5 min)
    min_temperature: float = ROOM_TEMPERATURE - 100.0  # rating, K: set-points beyond it are refused
    max_temperature: float = ROOM_TEMPERATURE + 175.0

    def command(self, set_point: float, ramp_rate: float = 0.0) -> None:
        """New set-point (K) reached at `ramp_rate` K/min (0: at once). ValueError outside the rating."""
        if not (math.isfinite(set_point) and self.min_temperature <= set_point <= self.max_temperature):
            raise ValueError(f"set_point: {set_point!r} K is outside the chuck's rating "
                             f"[{self.min_temperature:g}, {self.max_temperature:g}] K")
        if not (math.isfinite(ramp_rate) and ramp_rate >= 0):
            raise ValueError(f"ramp_rate: {ramp_rate!r} K/min must be finite and >= 0")
        self.ramp_rate = float(ramp_rate)
        if self.ramp_rate == 0.0:
            self.working_set_point = float(set_point)
        # else: the working set-point ramps from where it is now to the new one (REF of the 335/336
        # manuals: "ramp the current setpoint to the target setpoint").
        self.set_point = float(set_point)

    @property
    def ramping(self) -> bool:
        """True while the working set-point has not reached the set-point."""
        return self.heater_on and self.ramp_rate > 0.0 and self.working_set_point != self.set_point

    @property
    def target(self) -> float:
        """What the chuck relaxes towards now, K."""
        return self.working_set_point if self.heater_on else self.ambient

    @property
    def settled(self) -> bool:
        return not self.ramping and self.temperature == self.target

    def segments(self, seconds: float) -> list[tuple[float, float]]:
        """Let `seconds` pass; returns the pieces [(duration s, mean temperature K)] of that interval
        (their durations add up to `seconds`) and leaves the chuck in its state at the end."""
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"seconds: must be a finite time >= 0 s, got {seconds!r}")
        pieces: list[tuple[float, float]] = []
        remaining = float(seconds)
        longest = self.time_constant / PIECES_PER_TAU
        while remaining > 0.0:
            if self.settled:
                pieces.append((remaining, self.temperature))
                break
            if len(pieces) >= MAX_PIECES:
                raise RuntimeError("chuck: too many pieces in one advance (a model error)")
            h = min(remaining, longest)
            slope = 0.0  # K/s of the working set-point during this piece
            if self.ramping:
                rate = self.ramp_rate / 60.0
                gap = self.set_point - self.working_set_point
                slope = math.copysign(rate, gap)
                h = min(h, abs(gap) / rate)
            s0, t0, tau = self.target, self.temperature, self.time_constant
            decay = math.exp(-h / tau)
            t1 = s0 + slope * (h - tau) + (t0 - s0 + slope * tau) * decay
            if slope:
                reached = h >= abs(self.set_point - self.working_set_point) / (self.ramp_rate / 60.0)
                self.working_set_point = self.set_point if reached else self.working_set_point + slope * h
            if not self.ramping and abs(t1 - self.target) < SNAP:
                t1 = self.target
            pieces.append((h, 0.5 * (t0 + t1)))
            self.temperature = t1
            remaining = remaining - h if h < remaining else 0.0
        return pieces

    def heater_output(self) -> float:
        """Heater output, % of full scale: what holding the working set-point above ambient takes, plus
        the loop's proportional push (illustrative; the physics uses only the temperature)."""
        if not self.heater_on:
            return 0.0
        span = self.max_temperature - self.ambient
        hold = (self.working_set_point - self.ambient) / span if span > 0 else 0.0
        push = (self.working_set_point - self.temperature) / 10.0
        return 100.0 * min(max(hold + push, 0.0), 1.0)

    def state(self) -> tuple[float, float, float, float, bool]:
        """What a snapshot keeps: (temperature, set-point, working set-point, ramp K/min, heater on)."""
        return (self.temperature, self.set_point, self.working_set_point, self.ramp_rate, self.heater_on)

    def restore(self, state: tuple[float, float, float, float, bool]) -> None:
        self.temperature, self.set_point, self.working_set_point, self.ramp_rate, self.heater_on = state
