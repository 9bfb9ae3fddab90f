"""What the emulated source-measure units (2450, B2902A) share: the bench they drive, the
server-side |V| limit and the parsing of a source level against it. Each model adds its own
subsystems, ranges and trigger model.
"""
from __future__ import annotations

from .base import EmulatedInstrument
from .bench import Bench
from .scpi import Command, Numeric, SCPIError

#: Source range of both models: the 200 V range with overrange, V.
VOLTAGE = Numeric(-210.0, 210.0, 0.0, "V")
#: Mains frequency the emulated SMUs report (:SYST:LFR?) and integrate over (NPLC), Hz.
LINE_FREQUENCY = 50.0


class SourceMeter(EmulatedInstrument):
    """Base of the emulated SMUs. ``max_abs_voltage`` (V) defaults to the most the array tolerates
    on any line (bit line or gate), so no client can exceed it whatever it asks."""

    #: The model's voltage source range, V.
    VOLTAGE_RANGE: Numeric = VOLTAGE

    def __init__(self, bench: Bench, max_abs_voltage: float | None = None) -> None:
        self.bench = bench
        limits = bench.limits()
        self.max_abs_voltage = max_abs_voltage if max_abs_voltage is not None else max(
            getattr(limits, "v_max", 210.0), getattr(limits, "vg_max", 0.0)
        )
        super().__init__()

    def _voltage(self, text: str, name: str) -> float:
        """A source level (V) from a command argument: the instrument's range, then the bench limit."""
        return self._check_voltage(self.VOLTAGE_RANGE.parse(text, name), name)

    def _check_voltage(self, v: float, name: str) -> float:
        """A source level (V) already parsed: the instrument's range, then the bench limit."""
        v = self.VOLTAGE_RANGE.check(v, name)
        if abs(v) > self.max_abs_voltage:
            raise SCPIError(-222, f"{name}={v:g} V beyond the bench limit {self.max_abs_voltage:g} V")
        return v

    @staticmethod
    def accept(_s: list[int], a: list[str]) -> None:
        """Handler of settings the emulator accepts and ignores (ranges, autorange, sense mode, spacing)."""

    def _system_commands(self) -> list[Command]:
        return super()._system_commands() + [
            Command(":SYSTem:LFRequency", query=lambda s, a: f"{LINE_FREQUENCY:g}"),
        ]
