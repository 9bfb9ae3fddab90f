"""Lake Shore Model 335 / 336 temperature controllers (User's Manuals, chapter 6 "Computer Interface
Operation"), as the station's stand-alone chuck controller: a :class:`ThermalController`.

The command set is Lake Shore's, not a SCPI tree: ``SETP <output>,<value>`` / ``SETP? <output>``
(set-point in the control input's units, kelvin here), ``KRDG? <input>`` (kelvin reading),
``RAMP <output>,<off/on>,<rate>`` (K/min, 0.1 to 100; off: the set-point steps) and ``RAMPST?``,
``RANGE <output>,<range>`` (0 off, 1 low, 2 medium, 3 high) and ``RANGE?``, ``HTR? <output>``
(heater output, %), ``HTRST? <output>`` (heater error: 0 none, 1 open load, 2 short), ``TLIMIT
<input>,<K>`` (all outputs off beyond it), the common ``*IDN?``, ``*CLS``, ``*RST``, ``*OPC?``.
There is no error queue: an error sets a bit of the standard event status register, read (and
cleared) by ``*ESR?``: bit 5 command error (32), bit 4 execution error (16), bit 2 query error (4).
"""
from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

from .base import Channel, Instrument
from .errors import InstrumentError, LimitError
from .settings import Setting, in_range, integer_in_range, num, parse_float
from .thermal import ThermalController, ThermalError, ThermalLimits

#: Standard event status register bits that mean an error, and what the manual calls them.
ESR_ERRORS = ((32, "command error (CME): the controller did not recognize the command"),
              (16, "execution error (EXE): a parameter out of range or not allowed now"),
              (4, "query error (QYE): the output queue was read with nothing in it"))
#: Heater ranges of outputs 1 and 2 (``RANGE``).
HEATER_RANGES = {0: "off", 1: "low", 2: "medium", 3: "high"}
#: Setpoint ramp rates the controllers accept, K/min (``RAMP``).
RAMP_MIN, RAMP_MAX = 0.1, 100.0
INPUTS = ("A", "B", "C", "D")


class HeaterOutput(Channel):
    """One heater output (control loop) of the controller."""

    set_point = Setting("Control set-point, K (the control input's units).",
                        get="SETP? {ch}", set="SETP {ch},{value}", validator=in_range(0.0, 1500.0, "K"))
    heater_range = Setting("Heater range: 0 off, 1 low, 2 medium, 3 high.",
                           get="RANGE? {ch}", set="RANGE {ch},{value}", validator=integer_in_range(0, 3),
                           parse=lambda text: int(float(text)))
    heater_output = Setting("Heater output, % of the range's full scale.", get="HTR? {ch}")

    async def ramp(self, rate: float | None) -> None:
        """``RAMP <output>,<off/on>,<rate>``: ramp the set-point at `rate` K/min, or step (None)."""
        if rate is None:
            await self.configure(f"RAMP {self.number},0,0")
            return
        if not RAMP_MIN <= rate <= RAMP_MAX:
            raise LimitError("ramp_rate", rate, f"[{RAMP_MIN:g}, {RAMP_MAX:g}] K/min ({RAMP_MIN / 60:.4g}"
                                                f" .. {RAMP_MAX / 60:.4g} K/s)")
        await self.configure(f"RAMP {self.number},1,{num(rate)}")

    async def ramping(self) -> bool:
        """``RAMPST?``: True while the set-point is ramping."""
        return int(float(await self.ask(f"RAMPST? {self.number}"))) == 1

    async def heater_status(self) -> int:
        """``HTRST?``: 0 no error, 1 open load, 2 short."""
        return int(float(await self.ask(f"HTRST? {self.number}")))

    async def off(self) -> None:
        """Nothing: a heater does not bias the array, and switching it off on every pause would end a
        bake. The chuck's safe state is a set-point (ThermalController.safe), set by the runner."""


class LakeShore336(Instrument, ThermalController):
    """A Lake Shore 335/336 holding the chuck: `output` heats it, `input` reads it.

    `limits` (ThermalLimits) bound every set-point and ramp before anything is sent; `sleep` waits
    on the station's clock (asyncio.sleep on hardware; the station backend gives its own).
    """

    idn_pattern = re.compile(r"(?i)LSCI,\s*MODEL33[56],")
    channel_class = HeaterOutput
    channel_numbers = (1, 2)
    kind = "temperature_controller"
    error_query = "*ESR?"
    # Two messages per command, as the thermal driver was checked against the manual: its status bits are
    # read after the command, never appended to it.
    error_query_in_message = False

    def __init__(self, resource: str, *, name: str | None = None, limits: Any = None, timeout: float = 5.0,
                 output: int = 1, input: str = "A", heater_range: int = 3,  # noqa: A002 - the manual's word
                 thermal_limits: ThermalLimits | None = None,
                 clock: Callable[[float], Awaitable[None]] | None = None) -> None:
        super().__init__(resource, name=name, limits=limits, timeout=timeout)
        self.output, self.input, self.range_on = 1, "A", 3
        self.limits = ThermalLimits(max_ramp_rate=RAMP_MAX / 60.0)
        self.clock: Callable[[float], Awaitable[None]] = asyncio.sleep
        self.use(output=output, input=input, heater_range=heater_range, thermal_limits=thermal_limits, clock=clock)

    def use(self, *, output: int = 1, input: str = "A", heater_range: int = 3,  # noqa: A002
            thermal_limits: ThermalLimits | None = None,
            clock: Callable[[float], Awaitable[None]] | None = None) -> None:
        """Which output heats the chuck and which input reads it, the heater range used, the limits
        (tightened by the controller's own ramp range) and the clock to wait on. No I/O."""
        if output not in self.channel_numbers:
            raise LimitError("output", output, f"one of {self.channel_numbers}")
        if input not in INPUTS:
            raise LimitError("input", input, f"one of {', '.join(INPUTS)}")
        if heater_range not in (1, 2, 3):
            raise LimitError("heater_range", heater_range, "1 (low), 2 (medium) or 3 (high)")
        self.output, self.input, self.range_on = output, input, heater_range
        own = ThermalLimits(max_ramp_rate=RAMP_MAX / 60.0)
        self.limits = own.tightened(thermal_limits) if thermal_limits is not None else own
        if clock is not None:
            self.clock = clock

    @property
    def loop(self) -> HeaterOutput:
        """The heater output that controls the chuck."""
        return self.channels[self.output]  # type: ignore[return-value]

    # -- ThermalController ------------------------------------------------------------------------
    async def _write_set_point(self, temperature: float, ramp_rate: float | None) -> None:
        loop = self.loop
        await loop.ramp(None if ramp_rate is None else ramp_rate * 60.0)  # K/s -> K/min
        await loop.set_point.set(temperature)
        # Always sent: the controller may have switched its heater off since (TLIMIT, *RST, front panel).
        await loop.heater_range.set(self.range_on)

    async def temperature(self) -> float:
        """``KRDG? <input>``, K; ThermalError if the controller reports no valid reading."""
        reply = await self.ask(f"KRDG? {self.input}")
        try:
            kelvin = parse_float(reply)
        except ValueError:
            raise InstrumentError(self.label, f"KRDG? {self.input}", f"unexpected reply {reply!r}") from None
        if kelvin <= 0.0:
            status = await self.ask(f"RDGST? {self.input}")
            raise ThermalError(f"{self.label}: input {self.input} has no valid reading (KRDG? {reply!r},"
                               f" RDGST? {status!r})")
        return kelvin

    async def set_point(self) -> float:
        return float(await self.loop.set_point.get())

    async def sleep(self, seconds: float) -> None:
        await self.clock(seconds)

    # -- errors ------------------------------------------------------------------------------------
    async def read_errors(self, command: str = "*ESR?") -> list[tuple[int, str]]:
        """The standard event status register (``*ESR?``, cleared by reading) as errors."""
        reply = await self.ask("*ESR?")
        try:
            status = int(float(reply))
        except ValueError:
            raise InstrumentError(self.label, "*ESR?", f"unexpected reply {reply!r}") from None
        return [(bit, text) for bit, text in ESR_ERRORS if status & bit]
