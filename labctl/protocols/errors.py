"""Exceptions of the chip command protocol.

The frame decoder never raises: framing problems come out of it as `FramingError` values.
Everything that can raise in this package raises a subclass of `ProtocolError`.
"""
from __future__ import annotations

from labctl.protocols.codes import Command, Status, name_of


class ProtocolError(Exception):
    """Base class of every error raised by labctl.protocols."""


class PayloadError(ProtocolError, ValueError):
    """A payload does not match the layout its command defines (names the field)."""


class CommandError(ProtocolError):
    """The controller answered a request with a non-OK status.

    Attributes:
        status: the status code from the reply header.
        command: the command that was refused.
        message: the controller's UTF-8 explanation.
    """

    def __init__(self, status: int, command: int, message: str) -> None:
        self.status = status
        self.command = command
        self.message = message
        super().__init__(f"{name_of(Command, command)} refused with {name_of(Status, status)}: {message}")


class ChipTimeoutError(ProtocolError, TimeoutError):
    """No reply arrived after every retransmission."""


class ConnectionClosedError(ProtocolError, ConnectionError):
    """The link to the controller closed while a request was outstanding."""
