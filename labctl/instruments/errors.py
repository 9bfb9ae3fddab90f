"""Exceptions of the instrument layer.

:class:`LimitError` is a ValueError: the request itself is bad and nothing was sent.
:class:`InstrumentError` means the instrument refused or failed; it names the instrument, the
command and what the instrument said. :class:`InstrumentConnectionError` is the link itself failing
(timeout, reset, refused); :meth:`Instrument.reconnect` recovers from it.
"""
from __future__ import annotations


class LimitError(ValueError):
    """A value outside the safety limits or the instrument's range; raised before any I/O."""

    def __init__(self, field: str, value: object, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{field}={value!r} refused: allowed {allowed}")


class InstrumentError(RuntimeError):
    """The instrument reported an error (or none of its replies made sense)."""

    def __init__(self, instrument: str, command: str, detail: str) -> None:
        self.instrument = instrument
        self.command = command
        self.detail = detail
        super().__init__(f"{instrument}: {command!r}: {detail}")


class InstrumentConnectionError(InstrumentError):
    """The link to the instrument failed: timeout, connection reset or refused."""
