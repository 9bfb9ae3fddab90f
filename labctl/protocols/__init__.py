"""The chip command protocol (docs/protocol.md): codec, typed messages and the async client.

The codec modules (codes, codec, wire, cells, messages, limits, errors) are pure and import no
I/O; the emulated controller uses exactly these. `ChipClient` (asyncio, pyserial) is imported on
first use so that importing the codec stays light.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labctl.protocols.cells import Cells
from labctl.protocols.codec import Frame, FrameDecoder, FramingError, FramingErrorKind
from labctl.protocols.codes import Command, Status
from labctl.protocols.errors import (
    ChipTimeoutError,
    CommandError,
    ConnectionClosedError,
    PayloadError,
    ProtocolError,
)

if TYPE_CHECKING:
    from labctl.protocols.client import ChipClient, open_chip

__all__ = ["Cells", "ChipClient", "ChipTimeoutError", "Command", "CommandError",
           "ConnectionClosedError", "Frame", "FrameDecoder", "FramingError", "FramingErrorKind",
           "PayloadError", "ProtocolError", "Status", "open_chip"]


def __getattr__(name: str) -> Any:
    if name in ("ChipClient", "open_chip"):
        from labctl.protocols import client

        return getattr(client, name)
    raise AttributeError(f"module 'labctl.protocols' has no attribute {name!r}")
