"""Async SCPI instrument drivers (pyvisa + pyvisa-py) and the station.

Drivers: :class:`Keithley2450`, :class:`KeysightB2900` (SMUs), :class:`Keysight33500B`,
:class:`Keysight81160A` (pulse generators), :class:`Keithley707B` (switch matrix), :class:`Keithley4200A`
(KXCI: SMUs and 4225-PMU), :class:`KeysightB1500A` (FLEX: SMUs, SPGU; WGFMU through its library).
:func:`open_instrument` picks the driver from ``*IDN?``. :class:`Station` opens a station file. Each
output is limited by a :class:`labctl.core.limits.SafetyLimits`.
See docs/instruments.md.
"""
from .base import Channel, Identity, Instrument
from .errors import InstrumentConnectionError, InstrumentError, LimitError
from .factory import DRIVERS, driver_for, open_instrument
from .keithley707b import Keithley707B
from .keithley2450 import Keithley2450
from .keithley4200a import Keithley4200A
from .keysight_33500b import Keysight33500B
from .keysight_81160a import Keysight81160A
from .keysight_b1500a import KeysightB1500A
from .keysight_b2900 import KeysightB2900
from .pulse import PulseGeneratorChannel
from .pulse_measure import PulseMeasureChannel, PulseTrace
from .smu import SourceMeterChannel, SweepResult
from .station import Station, StationConfig

__all__ = [
    "DRIVERS", "Channel", "Identity", "Instrument", "InstrumentConnectionError", "InstrumentError",
    "Keithley2450", "Keithley4200A", "Keithley707B", "Keysight33500B", "Keysight81160A", "KeysightB1500A",
    "KeysightB2900", "LimitError", "PulseGeneratorChannel", "PulseMeasureChannel", "PulseTrace",
    "SourceMeterChannel", "Station", "StationConfig",
    "SweepResult", "driver_for", "open_instrument",
]
