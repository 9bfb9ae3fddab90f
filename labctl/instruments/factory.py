"""Open an instrument by resource alone: ask ``*IDN?`` and pick the driver that recognizes it."""
from __future__ import annotations

from labctl.core.limits import SafetyLimits

from .base import Instrument
from .errors import InstrumentError
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
from .tektronix_afg31000 import TektronixAFG31000
from .visa import VisaLink

#: Every driver, tried in order against the ``*IDN?`` reply.
DRIVERS: tuple[type[Instrument], ...] = (
    Keithley2450,
    KeysightB2900,
    Keysight33500B,
    Keysight81160A,
    Keithley707B,
    LakeShore336,
    Keithley2600B,
    Keithley2400,
    TektronixAFG31000,
    Keithley3706A,
    Keithley4200A,
    KeysightB1500A,
)


def driver_for(idn: str) -> type[Instrument]:
    """The driver class whose pattern matches ``idn``; InstrumentError if none does."""
    for cls in DRIVERS:
        if cls.idn_pattern.match(idn):
            return cls
    known = ", ".join(c.__name__ for c in DRIVERS)
    raise InstrumentError("(unidentified)", "*IDN?", f"no driver for {idn!r} (drivers: {known})")


async def open_instrument(
    resource: str,
    *,
    name: str | None = None,
    limits: SafetyLimits | dict[int, SafetyLimits] | None = None,
    timeout: float = 5.0,
) -> Instrument:
    """Connect to ``resource``, identify it and return the opened driver (caller closes it;
    ``async with await open_instrument(...)`` is not needed: use :meth:`Instrument.close`)."""
    probe = VisaLink(resource, name or resource, timeout)
    await probe.open()
    try:
        idn = await probe.query("*IDN?")
    finally:
        await probe.close()
    cls = driver_for(idn)
    instrument = cls(resource, name=name, limits=limits, timeout=timeout)
    await instrument.open()
    return instrument
