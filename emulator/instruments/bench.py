"""The emulated bench: a 707B-class switch matrix between instrument terminals and array lines.

Matrix rows are instrument terminals, matrix columns are array lines (see docs/instruments.md)::

    row A  Keithley 2450 FORCE HI             row E  81160A output 1
    row B  B2902A channel 1 HIGH              row F  ground (all instruments' LO)
    row C  B2902A channel 2 HIGH (gate)       row G  33500B output 2
    row D  33500B output 1                    row H  81160A output 2

    columns: bit lines BL0..BL{cols-1}, then word lines WL0..WL{rows-1}, then source lines
    SL0..SL{rows-1}, twelve per card: array line k sits on slot k // 12 + 1, column k % 12 + 1.

A cell (r, c) takes part in an operation driven from terminal T when bit line c is closed to T's
row, word line r is closed to a DC terminal whose output is on (its level is the gate voltage VG)
and source line r is closed to ground. Everything that reads or changes the array holds
``array.lock``, because the chip controller may share the same Array from another thread.
"""
from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .scpi import SCPIError

#: Matrix row of each instrument terminal.
TERMINAL_ROWS: dict[str, str] = {
    "smu2450": "A",
    "b2900.1": "B",
    "b2900.2": "C",
    "fg33500b.1": "D",
    "pg81160a.1": "E",
    "ground": "F",
    "fg33500b.2": "G",
    "pg81160a.2": "H",
}
#: Matrix rows of the analyzer bench: a second 707B-class matrix between the parameter analyzers'
#: terminals (Keithley 4200A-SCS SMUs and 4225-PMU channels, Keysight B1500A SMUs, SPGU and WGFMU
#: channels) and the same array (docs/instruments.md, "The analyzer bench"). Two outputs share a
#: row where one remote module carries both, as on the real instruments: SMU2 of the 4200A reaches
#: row B through the 4225-RPM of PMU channel 2, SMU2 of the B1500A row E through the RSU of WGFMU
#: channel 402; the instrument gives that row to one of the two at a time.
ANALYZER_TERMINAL_ROWS: dict[str, str] = {
    "k4200.smu1": "A",
    "k4200.smu2": "B",
    "k4200.pmu2": "B",
    "k4200.pmu1": "C",
    "b1500.smu1": "D",
    "b1500.smu2": "E",
    "b1500.wgfmu2": "E",
    "ground": "F",
    "b1500.spgu": "G",
    "b1500.wgfmu": "H",
}
MATRIX_ROWS = "ABCDEFGH"
COLUMNS_PER_CARD = 12
#: A 707B mainframe holds six cards; the emulator allows up to nine so that a 32 x 32 array
#: (96 lines) still fits one-digit slot numbers. Documented in docs/instruments.md.
MAX_SLOTS = 9

_CHANNEL_RE = re.compile(r"^([1-9])([A-Ha-h])(\d{2})$")


@dataclass(frozen=True)
class MatrixLayout:
    """How one emulated switch matrix ties instrument terminals to array lines: its row names,
    which terminal is cabled to which row, columns per card, slots, and its channel notation
    (``<slot><row><column 2 digits>``: "1A01" on the 707B, "1301" on a 3706A matrix card)."""

    terminal_rows: dict[str, str]
    rows: str
    columns_per_card: int
    max_slots: int
    channel_re: re.Pattern[str] = field(default=_CHANNEL_RE)
    notation: str = "<slot><row A-H><column 01-12>"


#: The 707B bench (matrix rows A-H, 12 columns per card).
LAYOUT_707B = MatrixLayout(TERMINAL_ROWS, MATRIX_ROWS, COLUMNS_PER_CARD, MAX_SLOTS)

#: The analyzer bench: a second 707B-class matrix for the parameter analyzers (ANALYZER_TERMINAL_ROWS).
LAYOUT_ANALYZER = MatrixLayout(ANALYZER_TERMINAL_ROWS, MATRIX_ROWS, COLUMNS_PER_CARD, MAX_SLOTS)

#: The 3706A bench: 3730 6 x 16 matrix cards (channels ``<slot><row 1-6><column 01-16>``, e.g.
#: "1305"), six slots. Its rows carry the 2602B's two SMUs, the AFG31102's output 1, the two
#: 2400s (bit-line SMU and gate supply) and ground; the AFG's output 2 is not cabled.
TERMINAL_ROWS_3706A: dict[str, str] = {
    "smu2600b.a": "1",
    "smu2600b.b": "2",
    "afg31000.1": "3",
    "smu2400": "4",
    "smu2400.gate": "5",
    "ground": "6",
}
LAYOUT_3706A = MatrixLayout(TERMINAL_ROWS_3706A, "123456", 16, 6,
                            re.compile(r"^([1-6])([1-6])(\d{2})$"), "<slot 1-6><row 1-6><column 01-16>")

#: Pulses (cells x repeats) per Array.pulse call of a burst: bounds the index arrays to ~1.5 MB.
PULSE_BATCH = 1 << 16


def line_column(kind: str, index: int, rows: int, cols: int,
                per_card: int = COLUMNS_PER_CARD) -> tuple[int, int]:
    """Matrix (slot, column) of array line ``kind`` ("BL", "WL", "SL") number ``index``."""
    offset = {"BL": 0, "WL": cols, "SL": cols + rows}[kind]
    k = offset + index
    return k // per_card + 1, k % per_card + 1


@dataclass
class DCState:
    """A DC terminal as the array sees it (SMU channel, used as gate supply or as a source)."""

    on: bool = False
    voltage: float = 0.0  # V


class Bench:
    """Shared wiring state for all emulated instruments of one Array behind one matrix.

    Several benches may share one Array (each its own matrix and instruments, e.g. the 707B bench
    and the 3706A bench): only the terminals routed through a bench's own crosspoints drive cells.
    """

    def __init__(self, array: Any, layout: MatrixLayout = LAYOUT_707B) -> None:
        self.array = array
        self.lock: threading.RLock = array.lock
        self.layout = layout
        self.terminal_rows = layout.terminal_rows
        per_card = layout.columns_per_card
        rows, cols = array.rows, array.cols
        slots = -(-(cols + 2 * rows) // per_card)
        if slots > layout.max_slots:
            raise ValueError(
                f"array {rows}x{cols} needs {cols + 2 * rows} matrix columns, "
                f"more than {layout.max_slots} cards x {per_card}"
            )
        self.slots = slots
        self.column_line: dict[tuple[int, int], tuple[str, int]] = {}
        for kind, count in (("BL", cols), ("WL", rows), ("SL", rows)):
            for i in range(count):
                self.column_line[line_column(kind, i, rows, cols, per_card)] = (kind, i)
        self.closed: set[tuple[int, str, int]] = set()  # (slot, row name, column)
        self.dc: dict[str, DCState] = {t: DCState() for t in self.terminal_rows if t != "ground"}
        #: Every array call made by the instruments, oldest first (bounded): for tests and debugging.
        self.operations: deque[tuple[str, dict[str, Any]]] = deque(maxlen=10_000)

    # -- switch matrix ----------------------------------------------------------------------------
    def parse_channel(self, text: str) -> tuple[int, str, int]:
        """``"1A01"`` -> (1, "A", 1); SCPIError -222 when outside the installed cards."""
        per_card = self.layout.columns_per_card
        m = self.layout.channel_re.match(text.strip())
        if m is None:
            raise SCPIError(-224, f"channel {text!r} is not {self.layout.notation}")
        slot, row, col = int(m.group(1)), m.group(2).upper(), int(m.group(3))
        if not 1 <= slot <= self.slots or not 1 <= col <= per_card:
            raise SCPIError(
                -222, f"channel {text!r}: slot 1..{self.slots}, column 01..{per_card:02d}"
            )
        return slot, row, col

    def parse_list(self, text: str, separators: str = ",") -> list[tuple[int, str, int]]:
        """A channel list: channels, ranges ``first:last`` (every row and column between them, on
        one card), ``slotN`` and ``allslots``, separated by any of ``separators``."""
        out: list[tuple[int, str, int]] = []
        rows = self.layout.rows
        for item in (p.strip() for p in re.split(f"[{re.escape(separators)}]", text)):
            if not item:
                continue
            low = item.lower()
            if low == "allslots":
                out += self.all_channels()
            elif low.startswith("slot"):
                try:
                    slot = int(low[4:])
                except ValueError as exc:
                    raise SCPIError(-224, f"bad slot {item!r}") from exc
                if not 1 <= slot <= self.slots:
                    raise SCPIError(-222, f"slot {slot} not installed (1..{self.slots})")
                out += [c for c in self.all_channels() if c[0] == slot]
            elif ":" in item:
                first, _, last = item.partition(":")
                s1, r1, c1 = self.parse_channel(first)
                s2, r2, c2 = self.parse_channel(last)
                if s1 != s2:
                    raise SCPIError(-224, f"range {item!r} spans slots")
                span = rows[rows.index(min(r1, r2)): rows.index(max(r1, r2)) + 1]
                out += [(s1, r, c) for r in span for c in range(min(c1, c2), max(c1, c2) + 1)]
            else:
                out.append(self.parse_channel(item))
        if not out:
            raise SCPIError(-109, "empty channel list")
        return out

    def closed_list(self, within: set[tuple[int, str, int]] | None = None) -> str:
        """The closed channels (of ``within``, if given) as ``;``-separated names, sorted."""
        closed = self.closed if within is None else self.closed & within
        return ";".join(f"{s}{r}{c:02d}" for s, r, c in sorted(closed))

    def all_channels(self) -> list[tuple[int, str, int]]:
        return [
            (s, r, c)
            for s in range(1, self.slots + 1)
            for r in self.layout.rows
            for c in range(1, self.layout.columns_per_card + 1)
        ]

    def close(self, channels: list[tuple[int, str, int]]) -> None:
        with self.lock:
            self.closed.update(channels)

    def open(self, channels: list[tuple[int, str, int]]) -> None:
        with self.lock:
            self.closed.difference_update(channels)

    def open_all(self) -> None:
        with self.lock:
            self.closed.clear()

    # -- terminal states --------------------------------------------------------------------------
    def set_dc(self, terminal: str, on: bool, voltage: float) -> None:
        with self.lock:
            state = self.dc[terminal]
            state.on, state.voltage = on, voltage

    def _lines_on_row(self, row: str, kind: str) -> list[int]:
        out = []
        for slot, r, col in self.closed:
            if r == row:
                line = self.column_line.get((slot, col))
                if line is not None and line[0] == kind:
                    out.append(line[1])
        return sorted(out)

    def word_lines_of(self, terminal: str) -> list[int]:
        """Word lines closed to ``terminal``'s matrix row (none for a terminal not cabled here)."""
        row = self.terminal_rows.get(terminal)
        return [] if row is None else self._lines_on_row(row, "WL")

    def _gate_voltages(self, held: dict[str, float] | None = None) -> dict[int, float]:
        """Word line -> VG from the terminal closed onto it: a waveform output's present level
        (``held``: terminal -> V, while an analyzer runs it) or a DC terminal whose output is on."""
        gates: dict[int, float] = {}
        for terminal, level in (held or {}).items():
            for wl in self._lines_on_row(self.terminal_rows[terminal], "WL"):
                gates.setdefault(wl, level)
        for terminal, state in self.dc.items():
            if not state.on:
                continue
            for wl in self._lines_on_row(self.terminal_rows[terminal], "WL"):
                gates.setdefault(wl, state.voltage)
        return gates

    def addressed(self, terminal: str, held: dict[str, float] | None = None,
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cells driven from ``terminal``: row indices, column indices and each cell's VG (V);
        ``held``: levels (V) of waveform outputs running at the same time (gate channels)."""
        if terminal not in self.terminal_rows:  # an output no cable ties to this matrix
            return np.zeros(0, dtype=int), np.zeros(0, dtype=int), np.zeros(0)
        row_letter = self.terminal_rows[terminal]
        bit_lines = self._lines_on_row(row_letter, "BL")
        grounded = set(self._lines_on_row(self.terminal_rows["ground"], "SL"))
        gates = self._gate_voltages({t: v for t, v in (held or {}).items() if t in self.terminal_rows})
        rows, cols, vgs = [], [], []
        for r in sorted(grounded):
            vg = gates.get(r, 0.0)
            if vg <= 0.0:
                continue  # selector off: the cell conducts nothing and cannot switch
            for c in bit_lines:
                rows.append(r)
                cols.append(c)
                vgs.append(vg)
        return np.array(rows, dtype=int), np.array(cols, dtype=int), np.array(vgs, dtype=float)

    def _log(self, op: str, **kwargs: Any) -> None:
        self.operations.append((op, kwargs))

    # -- operations on the array ------------------------------------------------------------------
    # Instruments never move the Array's virtual clock: the modeled reading apertures, sweep dwells
    # and burst periods are far shorter than any relaxation the model resolves, and a clock moved
    # behind the host's back would draw relaxation noise that the in-process and chip backends do
    # not draw. Time passes only when the host says so (EmulatorBackend.wait, EMU_ADVANCE), which
    # keeps every backend's operation sequence per cell, and so its random draws, identical.

    def measure(self, terminal: str, voltage: float, aperture: float) -> float:
        """DC measurement from ``terminal`` at ``voltage`` (V): summed cell current, A.

        ``aperture`` (s) is the instrument's integration time; it is not put on the virtual clock.
        """
        with self.lock, _array_errors():
            rows, cols, vgs = self.addressed(terminal)
            total = 0.0
            for vg in np.unique(vgs):
                sel = vgs == vg
                i = self.array.read_current(rows[sel], cols[sel], voltage, vg=float(vg))
                self._log("read_current", rows=rows[sel].tolist(), cols=cols[sel].tolist(),
                          v=voltage, vg=float(vg))
                total += float(np.sum(i))
            return total

    def sweep(
        self, terminal: str, voltages: list[float], dwell: float, compliance: float
    ) -> tuple[list[float], list[float]]:
        """Staircase/list sweep from ``terminal``; returns (applied V, measured A) per point.

        Each point is held ``dwell`` s (the switching model sees it; the clock does not move). The
        SMU's current limit acts on top of the selector's: once the summed current exceeds
        ``compliance`` the source cannot raise its voltage further, so later points are applied
        at the last level that stayed within the limit and the reading shows the limit itself.

        The whole list goes to the Array in one call, exactly as a chip controller or the
        in-process backend sends it (the model warm-starts each point's solve from the previous
        one, so point-by-point calls would differ in the last bits). Only when the limit engages
        is the Array put back to its state before the sweep and the sweep replayed point by point
        with the held levels.
        """
        with self.lock, _array_errors():
            rows, cols, vgs = self.addressed(terminal)
            points = [float(v) for v in voltages]
            if rows.size == 0:
                return points, [0.0] * len(points)
            before = self.array.snapshot()
            totals = np.zeros(len(points))
            calls = []
            for vg in np.unique(vgs):
                sel = vgs == vg
                i = self.array.sweep(rows[sel], cols[sel], points, vg=float(vg), dwell=dwell)
                calls.append(dict(rows=rows[sel].tolist(), cols=cols[sel].tolist(), voltages=points,
                                  vg=float(vg), dwell=dwell))
                totals += i.sum(axis=0)
            if np.all(np.abs(totals) <= compliance):
                for call in calls:
                    self._log("sweep", **call)
                return points, totals.tolist()
            self.array.restore(before)
            return self._sweep_limited(rows, cols, vgs, points, dwell, compliance)

    def _sweep_limited(self, rows: np.ndarray, cols: np.ndarray, vgs: np.ndarray, voltages: list[float],
                       dwell: float, compliance: float) -> tuple[list[float], list[float]]:
        """A sweep in which the SMU's current limit engages, point by point (lock held)."""
        applied: list[float] = []
        currents: list[float] = []
        v_ok: float | None = None  # level the source is held at once in compliance
        last_within: float | None = None  # last applied level whose current was in limit
        for v in voltages:
            v_apply = v
            if v_ok is not None and abs(v) > abs(v_ok):
                v_apply = v_ok
            total = 0.0
            for vg in np.unique(vgs):
                sel = vgs == vg
                i = self.array.sweep(rows[sel], cols[sel], [v_apply], vg=float(vg), dwell=dwell)
                self._log("sweep", rows=rows[sel].tolist(), cols=cols[sel].tolist(),
                          voltages=[v_apply], vg=float(vg), dwell=dwell)
                total += float(np.sum(i))
            if abs(total) > compliance:
                total = float(np.copysign(compliance, total))
                if v_ok is None:
                    v_ok = last_within if last_within is not None else v_apply
            else:
                last_within = v_apply
            applied.append(v_apply)
            currents.append(total)
        return applied, currents

    def pulse(self, terminal: str, voltage: float, width: float, count: int, period: float) -> int:
        """A burst of ``count`` rectangular pulses of ``voltage`` (V) and ``width`` (s) from
        ``terminal``, one per ``period`` (s; not put on the virtual clock). Returns the cells hit."""
        with self.lock, _array_errors():
            rows, cols, vgs = self.addressed(terminal)
            if rows.size == 0:
                return 0
            # Many pulses per Array.pulse call (the cells repeated in burst order): each cell
            # sees the same pulses in the same order as one call per pulse, so the same draws,
            # and a 1e8-pulse burst costs C time, not 1e8 Python calls.
            per_call = max(1, PULSE_BATCH // rows.size)
            done = 0
            while done < count:
                k = min(per_call, count - done)
                self.array.pulse(np.tile(rows, k), np.tile(cols, k), voltage, np.tile(vgs, k), width)
                self._log("pulse", rows=rows.tolist(), cols=cols.tolist(), v=voltage,
                          vg=vgs.tolist(), width=width, count=k)
                done += k
            return int(rows.size)

    def limits(self) -> Any:
        """The Array's own limits (emulator.Limits), or None for a stand-in array."""
        return getattr(self.array, "limits", None)


@contextlib.contextmanager
def _array_errors() -> Iterator[None]:
    """The Array refuses out-of-limit input with ValueError; an instrument reports -200."""
    try:
        yield
    except ValueError as exc:
        raise SCPIError(-200, str(exc)) from exc
