"""Safety limits of one instrument terminal (pydantic), checked by the drivers before any I/O.

The station file sets station-wide limits and may tighten them per terminal
(:mod:`labctl.instruments.station`); a driver opened on its own without limits still refuses to
turn an output on before a current limit (SMU) or pulse shape (generator) was set in the session.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from .errors import LimitError


class TerminalLimits(BaseModel):
    """Limits on what one output terminal may apply to the array. SI units."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_abs_voltage: float = Field(gt=0, description="largest |V| the terminal may source, V")
    max_current_limit: float = Field(
        default=1e-3, gt=0, description="largest current limit (compliance) an SMU may be given, A"
    )
    max_pulse_width: float = Field(default=1e-3, gt=0, description="longest pulse, s")
    max_pulse_energy: float | None = Field(
        default=None, gt=0, description="largest energy per pulse into the load, J (None: unchecked)"
    )
    min_load_resistance: float = Field(
        default=1e3, gt=0,
        description="smallest resistance the pulse can see (cell + selector), ohm; for the energy estimate",
    )

    def check_voltage(self, field: str, value: float) -> None:
        if abs(value) > self.max_abs_voltage:
            raise LimitError(field, value, f"|V| <= {self.max_abs_voltage:g} V (max_abs_voltage)")

    def check_current_limit(self, field: str, value: float) -> None:
        if not 0 < value <= self.max_current_limit:
            raise LimitError(field, value, f"(0, {self.max_current_limit:g}] A (max_current_limit)")

    def check_width(self, field: str, value: float) -> None:
        if value > self.max_pulse_width:
            raise LimitError(field, value, f"<= {self.max_pulse_width:g} s (max_pulse_width)")

    def pulse_energy(self, level: float, width: float) -> float:
        """Worst-case energy of one pulse of ``level`` V and ``width`` s, J."""
        return level * level / self.min_load_resistance * width

    def check_energy(self, field: str, value: float, level: float, width: float) -> None:
        if self.max_pulse_energy is None:
            return
        energy = self.pulse_energy(level, width)
        if energy > self.max_pulse_energy:
            raise LimitError(
                field,
                value,
                f"a pulse energy <= {self.max_pulse_energy:g} J (max_pulse_energy); "
                f"{abs(level):g} V for {width:g} s into {self.min_load_resistance:g} ohm is {energy:.3g} J",
            )
