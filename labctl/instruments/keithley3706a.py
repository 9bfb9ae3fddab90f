"""Keithley 3706A System Switch with matrix cards (Series 3700A Reference Manual, 3700AS-901-01),
TSP: the ``channel`` functions of :mod:`.switch`. Matrix channels are written ``SRCC``: slot 1-6,
row 1-6, column 01-16 (the 3730 6 x 16 card; e.g. ``"1305"`` = slot 1, row 3, column 05); lists
are comma-separated (``"1101,2103"``).
"""
from __future__ import annotations

import re

from .switch import SwitchMatrix

CHANNEL = re.compile(r"^[1-6][1-6](0[1-9]|1[0-6])$")


class Keithley3706A(SwitchMatrix):
    """3706A mainframe with 3730 matrix cards: close, open, exclusive close by channel list."""

    idn_pattern = re.compile(r"(?i)KEITHLEY INSTRUMENTS( INC\.?)?,\s*MODEL 3706A?,")
    channel_pattern = CHANNEL
    channel_notation = "<slot 1-6><row 1-6><column 01-16>, e.g. '1305'"
