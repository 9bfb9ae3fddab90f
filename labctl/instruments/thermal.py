"""The one interface to a temperature-controlled chuck or stage: `ThermalController`.

A prober's thermal chuck (commanded through the prober's own command set) and a stand-alone controller
(Lake Shore 335/336 class) both implement it, so temperature steps in a campaign do not care which one
the station has. Temperatures are kelvin everywhere in code (campaign files may say °C; they are
converted at parsing); rates are K/s, times are s.

Settling is decided here once, for every controller: the temperature is settled when every reading over
`hold` seconds lies within ±`band` of the set-point. Readings are taken through the controller's own
clock (`sleep`/`now`), which is the backend's virtual clock on the emulator, so an overnight bake costs
no wall-clock time there.
"""
from __future__ import annotations

import abc
import math
from dataclasses import dataclass

from labctl.core.temperature import ROOM_TEMPERATURE, ZERO_CELSIUS

__all__ = ["ROOM_TEMPERATURE", "ZERO_CELSIUS", "ThermalController", "ThermalError", "ThermalLimits"]


class ThermalError(RuntimeError):
    """A thermal controller refused a request, reported a fault, or did not settle in time."""


@dataclass(frozen=True)
class ThermalLimits:
    """What the controller (or the campaign, tightened) allows: set-point range in K, ramp rate in K/s."""

    min_temperature: float = ZERO_CELSIUS - 60.0
    max_temperature: float = ZERO_CELSIUS + 200.0
    max_ramp_rate: float = 1.0

    def check(self, temperature: float, ramp_rate: float | None = None) -> None:
        """Raise ThermalError naming the value if the set-point or ramp rate is outside the limits."""
        if not math.isfinite(temperature) or not self.min_temperature <= temperature <= self.max_temperature:
            raise ThermalError(
                f"temperature set-point {temperature:.2f} K ({temperature - ZERO_CELSIUS:.1f} °C) is outside"
                f" the allowed {self.min_temperature:.2f}..{self.max_temperature:.2f} K")
        if ramp_rate is not None and (not math.isfinite(ramp_rate) or not 0 < ramp_rate <= self.max_ramp_rate):
            raise ThermalError(f"ramp rate {ramp_rate} K/s is outside the allowed (0, {self.max_ramp_rate}] K/s")

    def tightened(self, other: ThermalLimits) -> ThermalLimits:
        """The stricter of two limit sets (a campaign can only narrow what the hardware allows)."""
        return ThermalLimits(max(self.min_temperature, other.min_temperature),
                             min(self.max_temperature, other.max_temperature),
                             min(self.max_ramp_rate, other.max_ramp_rate))


class ThermalController(abc.ABC):
    """Async access to one chuck's temperature. Subclasses implement the four abstract methods."""

    limits: ThermalLimits = ThermalLimits()

    @abc.abstractmethod
    async def _write_set_point(self, temperature: float, ramp_rate: float | None) -> None:
        """Send the set-point (K) and ramp rate (K/s, None: as fast as the controller goes)."""

    @abc.abstractmethod
    async def temperature(self) -> float:
        """The measured chuck temperature, K."""

    @abc.abstractmethod
    async def set_point(self) -> float:
        """The set-point the controller holds now, K."""

    @abc.abstractmethod
    async def sleep(self, seconds: float) -> None:
        """Wait on the controller's clock (the backend's clock: virtual on the emulator)."""

    async def set_temperature(self, temperature: float, ramp_rate: float | None = None) -> None:
        """Ask for `temperature` K at `ramp_rate` K/s, refused (ThermalError) outside `limits`."""
        self.limits.check(temperature, ramp_rate)
        await self._write_set_point(temperature, ramp_rate)

    async def wait_settled(self, band: float = 0.5, hold: float = 60.0, timeout: float = 3600.0,
                           poll: float = 1.0) -> float:
        """Wait until every reading over `hold` s is within ±`band` K of the set-point; return the last
        reading (K). Raises ThermalError after `timeout` s without settling, naming the temperatures."""
        if not (band > 0 and hold >= 0 and timeout > 0 and poll > 0) or not all(
                math.isfinite(x) for x in (band, hold, timeout, poll)):
            raise ThermalError(f"wait_settled: band, hold, timeout and poll must be finite and positive"
                               f" (got band={band}, hold={hold}, timeout={timeout}, poll={poll})")
        target = await self.set_point()
        waited = 0.0
        inside_for: float | None = None  # seconds since the first of the current run of readings in band
        reading = await self.temperature()
        while True:
            if abs(reading - target) <= band:
                inside_for = 0.0 if inside_for is None else inside_for
                if inside_for >= hold:
                    return reading
            else:
                inside_for = None
            if waited >= timeout:
                raise ThermalError(f"chuck did not settle at {target:.2f} K within ±{band} K for {hold} s in"
                                   f" {timeout} s (last reading {reading:.2f} K)")
            await self.sleep(poll)
            waited += poll
            if inside_for is not None:
                inside_for += poll
            reading = await self.temperature()

    async def safe(self) -> None:
        """Return the set-point to room temperature (clamped into the limits), at the fastest rate the
        limits allow: what the campaign runner does when a run with temperature steps is aborted or
        fails (a run that completes leaves the chuck where its last step put it)."""
        safe = min(max(ROOM_TEMPERATURE, self.limits.min_temperature), self.limits.max_temperature)
        await self._write_set_point(safe, None)

    def tightened(self, limits: ThermalLimits) -> ThermalController:
        """This controller seen through stricter limits (this one's tightened by `limits`): what a
        campaign's [limits] make of the station's chuck. Shares the hardware, not the limits."""
        return _Tightened(self, self.limits.tightened(limits))


class _Tightened(ThermalController):
    """A ThermalController that checks narrower limits, then drives the one it wraps."""

    def __init__(self, inner: ThermalController, limits: ThermalLimits) -> None:
        self.inner = inner
        self.limits = limits

    async def _write_set_point(self, temperature: float, ramp_rate: float | None) -> None:
        await self.inner._write_set_point(temperature, ramp_rate)

    async def temperature(self) -> float:
        return await self.inner.temperature()

    async def set_point(self) -> float:
        return await self.inner.set_point()

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)

