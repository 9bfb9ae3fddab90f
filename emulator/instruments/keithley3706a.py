"""Emulated Keithley 3706A System Switch with 3730 6 x 16 matrix cards (Series 3700A Reference
Manual, 3700AS-901-01), TSP: the ``channel`` functions of :mod:`.switch_matrix`, plus
``errorqueue.*``, ``print``, ``reset()`` and scripts (:mod:`.tsp`)::

    channel.close("1101,2103")     channel.open("1101")     channel.open("allslots")
    channel.exclusiveclose("1101,1305")                     print(channel.getclose("allslots"))

Matrix channels are ``<slot><row 1-6><column 01-16>`` ("SRCC"); a list separates items with
``,`` or ``;`` and may hold ranges (``1101:1116``), ``slotN`` and ``allslots``. The row map is
bench.TERMINAL_ROWS_3706A.
"""
from __future__ import annotations

from .switch_matrix import TspSwitchMatrix


class Keithley3706A(TspSwitchMatrix):
    idn = "Keithley Instruments Inc., Model 3706A, 04370600, 01.56a"
    name = "switch_3706a"
    separators = ",;"
