"""Async SCPI instrument drivers (pyvisa + pyvisa-py) and the station.

Drivers: :class:`Keithley2450`, :class:`KeysightB2900` (SMUs), :class:`Keysight33500B`,
:class:`Keysight81160A` (pulse generators), :class:`Keithley707B` (switch matrix).
:func:`open_instrument` picks the driver from ``*IDN?``. :class:`Station` opens a station file. Each
output is limited by a :class:`labctl.core.limits.SafetyLimits`.
See docs/instruments.md.
"""
from .base import Channel, Identity, Instrument
from .errors import InstrumentConnectionError, InstrumentError, LimitError
from .factory import DRIVERS, driver_for, open_instrument
from .keithley707b import Keithley707B
from .keithley2450 import Keithley2450
from .keysight_33500b import Keysight33500B
from .keysight_81160a import Keysight81160A
from .keysight_b2900 import KeysightB2900
from .prober import DieIndex, EndOfRoute, Prober, ProberChuck, ProberError
from .pulse import PulseGeneratorChannel
from .sentio import Sentio
from .smu import SourceMeterChannel, SweepResult
from .station import Station, StationConfig
from .velox import Velox

#: The prober drivers, by the command-set name campaign files use ([wafer] prober).
PROBERS: dict[str, type[Prober]] = {"velox": Velox, "sentio": Sentio}

__all__ = [
    "DRIVERS", "PROBERS", "Channel", "DieIndex", "EndOfRoute", "Prober", "ProberChuck", "ProberError", "Sentio",
    "Velox", "Identity", "Instrument", "InstrumentConnectionError", "InstrumentError",
    "Keithley2450", "Keithley707B", "Keysight33500B", "Keysight81160A", "KeysightB2900",
    "LimitError", "PulseGeneratorChannel", "SourceMeterChannel", "Station", "StationConfig",
    "SweepResult", "driver_for", "open_instrument",
]
