"""What the emulated two-output pulse generators (33522B, 81160A) share: channel selection, levels
(high/low or amplitude/offset), pulse timing, output state and load, voltage limits, polarity. Each
model adds its own headers, ranges, trigger/burst scheme and command table.
"""
from __future__ import annotations

import math
from collections.abc import Callable

from .base import EmulatedInstrument
from .bench import Bench
from .pulse_channel import PulseChannel
from .scpi import Command, Numeric, SCPIError, fmt, need_args, parse_bool, parse_choice

Handler = Callable[[list[int], list[str]], None]


class PulseGenerator(EmulatedInstrument):
    """Base of the emulated pulse generators. Subclasses set the ranges below and the error-text headers."""

    CHANNELS: tuple[int, ...] = (1, 2)
    LEVEL: Numeric
    AMPLITUDE: Numeric
    WIDTH: Numeric
    PERIOD: Numeric
    FREQUENCY: Numeric
    WIDTH_HEADER = "PULS:WIDT"
    PERIOD_HEADER = "PULS:PER"
    channels: dict[int, PulseChannel]

    def __init__(self, bench: Bench, max_abs_voltage: float | None = None) -> None:
        self.bench = bench
        limits = bench.limits()
        self.max_abs_voltage = max_abs_voltage if max_abs_voltage is not None else getattr(limits, "v_max", 10.0)
        super().__init__()

    def ch(self, suffixes: list[int]) -> PulseChannel:
        """The output a header's numeric suffix names (output 1 without one)."""
        return self.channels[next((x for x in suffixes if x in self.CHANNELS), 1)]

    def _levels(self, s: list[int], high: float, low: float) -> None:
        c = self.ch(s)
        c.check_levels(high, low, self.max_abs_voltage)
        c.high, c.low = high, low

    def set_high(self, s: list[int], a: list[str]) -> None:
        need_args(a, 1, "VOLT:HIGH")
        self._levels(s, self.LEVEL.parse(a[0], "VOLT:HIGH"), self.ch(s).low)

    def set_low(self, s: list[int], a: list[str]) -> None:
        need_args(a, 1, "VOLT:LOW")
        self._levels(s, self.ch(s).high, self.LEVEL.parse(a[0], "VOLT:LOW"))

    def set_amplitude(self, s: list[int], a: list[str]) -> None:
        need_args(a, 1, "VOLT")
        amp = self.AMPLITUDE.parse(a[0], "VOLT")
        off = self.ch(s).offset
        self._levels(s, off + amp / 2, off - amp / 2)

    def set_offset(self, s: list[int], a: list[str]) -> None:
        need_args(a, 1, "VOLT:OFFS")
        off = self.LEVEL.parse(a[0], "VOLT:OFFS")
        amp = self.ch(s).amplitude
        self._levels(s, off + amp / 2, off - amp / 2)

    def set_width(self, s: list[int], a: list[str]) -> None:
        need_args(a, 1, "PULS:WIDT")
        w = self.WIDTH.parse(a[0], self.WIDTH_HEADER)
        self.ch(s).check_timing(w, self.ch(s).period)
        self.ch(s).width = w

    def set_period(self, s: list[int], a: list[str]) -> None:
        need_args(a, 1, "PULS:PER")
        p = self.PERIOD.parse(a[0], self.PERIOD_HEADER)
        self.ch(s).check_timing(self.ch(s).width, p)
        self.ch(s).period = p

    def set_frequency(self, s: list[int], a: list[str]) -> None:
        need_args(a, 1, "FREQ")
        p = 1.0 / self.FREQUENCY.parse(a[0], "FREQ")
        self.ch(s).check_timing(self.ch(s).width, p)
        self.ch(s).period = p

    def set_output(self, s: list[int], a: list[str]) -> None:
        need_args(a, 1, "OUTP")
        on = parse_bool(a[0], "OUTP")
        if on:
            self.ch(s).check_output_on()
        self.ch(s).output = on

    def set_load(self, s: list[int], load: float) -> None:
        """Expected load (ohm, inf = high impedance); refused if the present levels would exceed the limit."""
        c = self.ch(s)
        old, c.load = c.load, load
        try:
            c.check_levels(c.high, c.low, self.max_abs_voltage)
        except SCPIError:
            c.load = old
            raise

    def set_limit(self, attr: str, name: str) -> Handler:
        def handler(s: list[int], a: list[str]) -> None:
            need_args(a, 1, name)
            setattr(self.ch(s), attr, self.LEVEL.parse(a[0], name))
        return handler

    def set_limit_state(self, s: list[int], a: list[str]) -> None:
        need_args(a, 1, "VOLT:LIM:STAT")
        c = self.ch(s)
        on = parse_bool(a[0], "VOLT:LIM:STAT")
        if on and (c.high > c.limit_high or c.low < c.limit_low):
            raise SCPIError(-221, "present levels lie outside the limits being enabled")
        c.limit_enabled = on

    def set_burst_state(self, s: list[int], a: list[str]) -> None:
        """Burst mode on/off (``BURSt:STATe``; 33500B and AFG31000)."""
        need_args(a, 1, "BURS:STAT")
        on = parse_bool(a[0], "BURS:STAT")
        if not on and self.ch(s).output:
            raise SCPIError(-221, "turn the output off before leaving burst mode")
        self.ch(s).burst_enabled = on

    def set_burst_mode(self, s: list[int], a: list[str]) -> None:
        """``BURSt:MODE``: triggered bursts only (gated is not emulated)."""
        need_args(a, 1, "BURS:MODE")
        if parse_choice(a[0], ("TRIGgered", "GATed"), "BURS:MODE") != "TRIG":
            raise SCPIError(-221, "gated burst is not emulated")

    def set_polarity(self, s: list[int], a: list[str]) -> None:
        self.ch(s).inverted = parse_choice(a[0] if a else "", ("NORMal", "INVerted"), "OUTP:POL") == "INV"

    def shared_commands(self, *, voltage: str, width: str, period: str, frequency: str,
                        limit_state: str | None) -> list[Command]:
        """The commands every model has, under the model's own headers: ``voltage`` is its VOLTage
        node (with the channel suffix where the manual puts it), ``width``/``period``/``frequency``
        its pulse-timing headers and ``limit_state`` the tail of its limit-state header (None for a
        model whose limits are always on)."""
        ch = self.ch
        state = [] if limit_state is None else [
            Command(f"{voltage}{limit_state}", write=self.set_limit_state,
                    query=lambda s, a: "1" if ch(s).limit_enabled else "0")]
        return state + [
            Command(f"{voltage}[:LEVel][:IMMediate][:AMPLitude]", write=self.set_amplitude,
                    query=lambda s, a: fmt(ch(s).amplitude)),
            Command(f"{voltage}[:LEVel][:IMMediate]:OFFSet", write=self.set_offset,
                    query=lambda s, a: fmt(ch(s).offset)),
            Command(f"{voltage}[:LEVel][:IMMediate]:HIGH", write=self.set_high, query=lambda s, a: fmt(ch(s).high)),
            Command(f"{voltage}[:LEVel][:IMMediate]:LOW", write=self.set_low, query=lambda s, a: fmt(ch(s).low)),
            Command(f"{voltage}:LIMit:HIGH", write=self.set_limit("limit_high", "VOLT:LIM:HIGH"),
                    query=lambda s, a: fmt(ch(s).limit_high)),
            Command(f"{voltage}:LIMit:LOW", write=self.set_limit("limit_low", "VOLT:LIM:LOW"),
                    query=lambda s, a: fmt(ch(s).limit_low)),
            Command(width, write=self.set_width, query=lambda s, a: fmt(ch(s).width)),
            Command(period, write=self.set_period, query=lambda s, a: fmt(ch(s).period)),
            Command(frequency, write=self.set_frequency, query=lambda s, a: fmt(1.0 / ch(s).period)),
            Command(":OUTPut[1|2][:STATe]", write=self.set_output, query=lambda s, a: "1" if ch(s).output else "0"),
            Command(":OUTPut[1|2]:POLarity", write=self.set_polarity,
                    query=lambda s, a: "INV" if ch(s).inverted else "NORM"),
        ]

    @staticmethod
    def load_word(word: str) -> float | None:
        """inf for INFinity, else None (a number to parse with the model's range)."""
        return math.inf if word.strip().upper() in ("INF", "INFINITY") else None
