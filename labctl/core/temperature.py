"""Temperatures: kelvin in every API and file value; these are the fixed points everyone shares."""
from __future__ import annotations

#: 0 °C in kelvin.
ZERO_CELSIUS = 273.15
#: Room temperature, 25 °C: where the reference figures hold (the emulator's t_ref) and the set-point
#: an aborted or failed campaign returns a chuck to.
ROOM_TEMPERATURE = ZERO_CELSIUS + 25.0


def celsius(kelvin: float) -> float:
    """`kelvin` K in °C (for messages and displays)."""
    return kelvin - ZERO_CELSIUS
