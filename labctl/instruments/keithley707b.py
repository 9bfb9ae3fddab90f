"""Keithley 707B-class switching matrix (707B/708B Reference Manual). The 707B speaks TSP: each
call is the Lua statement the manual documents (:mod:`.switch`). Channels are ``<slot><row
A-H><column 01-12>`` (e.g. ``"1A01"``); lists are comma-separated.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

from .switch import SwitchMatrix

CHANNEL = re.compile(r"^[1-9][A-H](0[1-9]|1[0-2])$")


def channel_list(field: str, channels: Iterable[str]) -> str:
    """Validate 707B channel names and join them for TSP; raises LimitError before any I/O."""
    return Keithley707B.channel_list(field, channels)


class Keithley707B(SwitchMatrix):
    """Crosspoint switch matrix: close, open, exclusive close by channel list."""

    idn_pattern = re.compile(r"(?i)KEITHLEY INSTRUMENTS( INC\.?)?,\s*MODEL 70[78]B,")
    channel_pattern = CHANNEL
    channel_notation = "<slot 1-9><row A-H><column 01-12>, e.g. '1A01'"
