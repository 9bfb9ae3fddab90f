"""What every pulse-generator channel offers, whatever the model.

Model drivers (Keysight 33500B, 81160A) declare ``high``, ``low``, ``amplitude``, ``offset``,
``width``, ``period``, ``burst_count``, ``polarity``, ``load``, the output limits and ``output``
with their SCPI strings, and say how to arm a triggered burst. Safety rules live here, once: every
level within the terminal's |V| limit, width within the maximum, the energy of one pulse within
the maximum (worst case into ``min_load_resistance``), and no output on before levels and width
were set in this session with a high-impedance load declared.
"""
from __future__ import annotations

import math
from typing import Any

from .base import Channel
from .errors import InstrumentError, LimitError


class PulseGeneratorChannel(Channel):
    """A pulse output with the station's safety rules."""

    high: Any
    low: Any
    amplitude: Any
    offset: Any
    width: Any
    period: Any
    burst_count: Any
    polarity: Any
    load: Any
    output: Any

    # -- guards -----------------------------------------------------------------------------------
    #: While :meth:`setup_pulse` reshapes the pulse, (level, width) it has already checked: the
    #: intermediate states would otherwise be judged with a stale level or width.
    _planned: tuple[float, float] | None = None

    def guard(self, setting: str, kind: str, value: Any) -> None:
        lim = self.limits
        if kind == "level":
            if lim is not None:
                lim.check_voltage(setting, value)
                width = self.cache.get("width")
                if width is not None and self._planned is None:
                    lim.check_energy(setting, value, value, width)
        elif kind == "amplitude" or kind == "offset":
            # Both move the two levels; check the levels they would produce.
            amp = value if kind == "amplitude" else self.cache.get("amplitude")
            off = value if kind == "offset" else self.cache.get("offset", 0.0)
            if amp is not None and lim is not None:
                for level in (off + amp / 2, off - amp / 2):
                    lim.check_voltage(setting, level)
        elif kind == "width":
            if lim is not None:
                lim.check_width(setting, value)
                if self._planned is None:
                    lim.check_energy(setting, value, self._largest_level(), value)
        elif kind == "output":
            if value:
                self.require_shape(setting)
                if lim is not None:
                    level, width = self._largest_level(), self.cache["width"]
                    lim.check_voltage(setting, level)
                    lim.check_width(setting, width)
                    lim.check_energy(setting, value, level, width)
        else:
            super().guard(setting, kind, value)

    def _largest_level(self) -> float:
        levels = [abs(self.cache[k]) for k in ("high", "low") if self.cache.get(k) is not None]
        return max(levels, default=0.0)

    def require_shape(self, field: str) -> None:
        """Output on only with levels, width and a high-impedance load set in this session: the
        instrument's defaults (and a 50 ohm load setting, which doubles the level at a
        high-impedance cell) are not what the limits were checked against."""
        missing = [k for k in ("high", "low", "width") if self.cache.get(k) is None]
        if missing:
            raise LimitError(field, True, f"only after {', '.join(missing)} set on {self.label}")
        if self.cache.get("load") != math.inf:
            raise LimitError(field, True, f"only after load is set to inf (high impedance) on {self.label}")

    # -- behaviour --------------------------------------------------------------------------------
    async def set_levels(self, high: float, low: float) -> None:
        """Set both levels (V), in the order that keeps high > low at every step."""
        if not high > low:
            raise LimitError("high", high, f"> low ({low:g} V)")
        self.guard("high", "level", high)
        self.guard("low", "level", low)
        old_high = self.cache.get("high")
        if old_high is None:
            old_high = float(await self.high.get())
        if low < old_high:
            await self.low.set(low)
            await self.high.set(high)
        else:
            await self.high.set(high)
            await self.low.set(low)

    async def setup_pulse(self, voltage: float, width: float, period: float, count: int = 1) -> None:
        """Configure triggered bursts of ``count`` pulses of ``voltage`` V (either sign) on a 0 V
        baseline, ``width`` s wide, one per ``period`` s; the output stays as it is.

        A negative pulse is a 0 V high level with the low level at ``voltage`` and inverted
        polarity, so the idle level is 0 V either way. Everything is checked before the first
        command is sent."""
        self.check_pulse(voltage, width, period, count)
        high, low = (voltage, 0.0) if voltage > 0 else (0.0, voltage)
        self._planned = (voltage, width)
        try:
            await self._shape(voltage, width, period, count, high, low)
        finally:
            self._planned = None

    def check_pulse(self, voltage: float, width: float, period: float, count: int = 1) -> None:
        """Every check :meth:`setup_pulse` makes, without I/O; raises LimitError."""
        if voltage == 0 or not math.isfinite(voltage):
            raise LimitError("voltage", voltage, "a finite non-zero pulse level")
        if self.limits is not None:
            self.limits.check_voltage("voltage", voltage)
            self.limits.check_width("width", width)
            self.limits.check_energy("voltage", voltage, voltage, width)
        for setting, value in ((self.width, width), (self.period, period), (self.burst_count, count)):
            validator = setting.setting.validator
            if validator is not None:
                validator(setting.name, value)  # the instrument's own ranges
        if not width < period:
            raise LimitError("width", width, f"< period ({period:g} s)")

    async def _shape(self, voltage: float, width: float, period: float, count: int,
                     high: float, low: float) -> None:
        polarity = "NORM" if voltage > 0 else "INV"
        wanted = {"width": width, "period": period, "high": high, "low": low,
                  "polarity": polarity, "burst_count": count}
        if self.cache.get("burst_ready") and all(self.cache.get(k) == v for k, v in wanted.items()):
            return  # already shaped like this: nothing to send
        if self.cache.get("output"):
            await self.off()  # reshape with the output off: no half-configured pulse reaches a cell
        if not self.cache.get("burst_ready"):
            await self.load.set(math.inf)
            await self._prepare_burst()
            self.cache["burst_ready"] = True
        # width < period must hold after each command: set the period first if it clears the
        # present width, else the width first (it then clears the present period).
        old_width = self.cache.get("width")
        if old_width is None:
            old_width = float(await self.width.get())
        if period > old_width:
            await self.period.ensure(period)
            await self.width.ensure(width)
        else:
            await self.width.ensure(width)
            await self.period.ensure(period)
        if self.cache.get("high") != high or self.cache.get("low") != low:
            await self.set_levels(high, low)
        await self.polarity.ensure(polarity)
        await self.burst_count.ensure(count)

    async def _prepare_burst(self) -> None:
        """Pulse function, triggered burst mode, software trigger (model-specific commands)."""
        raise NotImplementedError

    async def trigger(self) -> None:
        """Fire one burst (``*TRG``) and wait until the instrument has delivered it."""
        if not self.cache.get("output"):
            raise RuntimeError(f"{self.label}: turn the output on before triggering")
        await self.instrument.write("*TRG")
        await self.instrument.ask("*OPC?")
        errors = await self.instrument.read_errors("*TRG")
        if errors:
            raise InstrumentError(self.label, "*TRG", "; ".join(f"{c},{m}" for c, m in errors))

    async def off(self) -> None:
        await self.output.set(False)
