"""Async SCPI instrument drivers (pyvisa + pyvisa-py) and the station.

Drivers: :class:`Keithley2450`, :class:`KeysightB2900`, :class:`Keithley2400`, :class:`Keithley2600B`
(SMUs), :class:`Keysight33500B`, :class:`Keysight81160A`, :class:`TektronixAFG31000` (pulse generators),
:class:`Keithley707B`, :class:`Keithley3706A` (switch matrices, :class:`SwitchMatrix`),
:class:`Keithley4200A` (KXCI: SMUs and 4225-PMU), :class:`KeysightB1500A` (FLEX: SMUs, SPGU; WGFMU through its
library), :class:`LakeShore336` (Lake Shore 335/336 temperature controller: the chuck's ThermalController).
:func:`open_instrument` picks the driver from ``*IDN?``. :class:`Station` opens a station file. Each
output is limited by a :class:`labctl.core.limits.SafetyLimits`.
See docs/instruments.md.
"""
from .base import Channel, Identity, Instrument
from .errors import InstrumentConnectionError, InstrumentError, LimitError
from .factory import DRIVERS, driver_for, open_instrument
from .keithley707b import Keithley707B
from .keithley2400 import Keithley2400
from .keithley2450 import Keithley2450
from .keithley2600b import Keithley2600B
from .keithley3706a import Keithley3706A
from .keithley4200a import Keithley4200A
from .keysight_33500b import Keysight33500B
from .keysight_81160a import Keysight81160A
from .keysight_b1500a import KeysightB1500A
from .keysight_b2900 import KeysightB2900
from .lakeshore336 import LakeShore336
from .prober import DieIndex, EndOfRoute, Prober, ProberChuck, ProberError
from .pulse import PulseGeneratorChannel
from .sentio import Sentio
from .pulse_measure import PulseMeasureChannel, PulseTrace
from .smu import SourceMeterChannel, SweepResult
from .station import Station, StationConfig
from .switch import SwitchMatrix
from .tektronix_afg31000 import TektronixAFG31000
from .tsp import TspInstrument
from .velox import Velox

#: The prober drivers, by the command-set name campaign files use ([wafer] prober).
PROBERS: dict[str, type[Prober]] = {"velox": Velox, "sentio": Sentio}

__all__ = [
    "DRIVERS", "PROBERS", "Channel", "DieIndex", "EndOfRoute", "Identity", "Instrument", "InstrumentConnectionError",
    "InstrumentError", "Keithley2400", "Keithley2450", "Keithley2600B", "Keithley3706A", "Keithley4200A", "Keithley707B",
    "Keysight33500B", "Keysight81160A", "KeysightB1500A", "KeysightB2900", "LakeShore336", "LimitError", "Prober", "ProberChuck",
    "ProberError", "PulseGeneratorChannel", "PulseMeasureChannel", "PulseTrace", "Sentio", "SourceMeterChannel", "Station", "StationConfig", "SweepResult",
    "SwitchMatrix", "TektronixAFG31000", "TspInstrument", "Velox", "driver_for", "open_instrument",
]
