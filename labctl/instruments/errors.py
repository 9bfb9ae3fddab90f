"""Exceptions of the instrument layer.

:class:`LimitError` (the one of :mod:`labctl.core.limits`, re-exported) is a ValueError: the request
itself is bad and nothing was sent.
:class:`InstrumentError` means the instrument refused or failed; it names the instrument, the
command and what the instrument said. :class:`InstrumentConnectionError` is the link itself failing
(timeout, reset, refused); :meth:`Instrument.reconnect` recovers from it.
"""
from __future__ import annotations

from labctl.core.limits import LimitError

__all__ = ["InstrumentConnectionError", "InstrumentError", "LimitError"]


class InstrumentError(RuntimeError):
    """The instrument reported an error (or none of its replies made sense)."""

    def __init__(self, instrument: str, command: str, detail: str) -> None:
        self.instrument = instrument
        self.command = command
        self.detail = detail
        super().__init__(f"{instrument}: {command!r}: {detail}")


class InstrumentConnectionError(InstrumentError):
    """The link to the instrument failed: timeout, connection reset or refused."""


class SafeOffError(InstrumentError):
    """Switching a station safe failed on one or more instruments: every failure is named (an operator
    must know which outputs may still be on), not only the first."""

    def __init__(self, failures: list[tuple[str, BaseException]], total: int) -> None:
        self.failures = failures
        names = "; ".join(f"{label}: {exc}" for label, exc in failures)
        RuntimeError.__init__(self, f"outputs off failed on {len(failures)} of {total} instrument(s): {names}")
        self.instrument, self.command, self.detail = ", ".join(l for l, _ in failures), "safe_off", names
