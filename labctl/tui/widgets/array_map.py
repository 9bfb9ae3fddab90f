"""ArrayMap: the whole array's conductance as a heat map, with cursor, region selection, zoom and pan."""
from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from labctl.tui import heatmap

GUTTER = 5  # characters of row numbers left of the map
RULER = 1  # lines of column numbers above the map
ZOOM_MIN, ZOOM_MAX = -8, 3  # zoom < 0: 2**-zoom cells per map cell; zoom >= 0: cells 1 + zoom chars wide
_RULER_STYLE = Style(color="grey62")


class ArrayMap(Widget, can_focus=True):
    """Heat map of a (rows, cols) conductance matrix in S. NaN cells are "not read yet"."""

    BINDINGS = [
        Binding("up", "move(-1, 0)", "Cursor", show=False),
        Binding("down", "move(1, 0)", "Cursor", show=False),
        Binding("left", "move(0, -1)", "Cursor", show=False),
        Binding("right", "move(0, 1)", "Cursor", show=False),
        Binding("shift+up", "move(-1, 0, True)", "Extend selection", show=False),
        Binding("shift+down", "move(1, 0, True)", "Extend selection", show=False),
        Binding("shift+left", "move(0, -1, True)", "Extend selection", show=False),
        Binding("shift+right", "move(0, 1, True)", "Extend selection", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "jump(0)", "First column", show=False),
        Binding("end", "jump(1)", "Last column", show=False),
        Binding("plus,equals_sign", "zoom(1)", "Zoom in"),
        Binding("minus", "zoom(-1)", "Zoom out"),
        Binding("0", "fit", "Fit", show=False),
        Binding("s", "toggle_scale", "Lin/log"),
        Binding("ctrl+a", "select_all", "Select all", show=False),
        Binding("escape", "clear_selection", "Clear selection", show=False),
    ]

    class CursorMoved(Message):
        """The cursor is on cell (row, col), whose last known conductance is g (S, NaN if unread)."""

        def __init__(self, row: int, col: int, g: float) -> None:
            super().__init__()
            self.row, self.col, self.g = row, col, g

    class SelectionChanged(Message):
        """The selection is the rectangle rows r0..r1, cols c0..c1 (inclusive)."""

        def __init__(self, r0: int, r1: int, c0: int, c1: int) -> None:
            super().__init__()
            self.r0, self.r1, self.c0, self.c1 = r0, r1, c0, c1

        @property
        def n_cells(self) -> int:
            return (self.r1 - self.r0 + 1) * (self.c1 - self.c0 + 1)

    class ScaleChanged(Message):
        def __init__(self, scale: heatmap.MapScale) -> None:
            super().__init__()
            self.scale = scale

    def __init__(self, rows: int = 1, cols: int = 1, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.log_scale = True
        self.zoom: int | None = None  # None: fit on the next layout
        self.cursor = (0, 0)
        self.anchor: tuple[int, int] | None = None
        self.origin = (0, 0)  # top-left map cell shown
        self.scale = heatmap.MapScale(True, 1e-6, 1e-4)
        self._levels: NDArray[np.uint8] = np.zeros((0, 0), dtype=np.uint8)
        self.resize_array(rows, cols)

    # ------------------------------------------------------------------ data
    def resize_array(self, rows: int, cols: int) -> None:
        """A new array size: everything unread, cursor at (0, 0), zoom to fit."""
        self.data = np.full((rows, cols), np.nan)
        self.cursor, self.anchor, self.origin = (0, 0), None, (0, 0)
        # Fit now if the widget has been laid out; otherwise on_resize fits when it is. (Waiting for a
        # resize that already happened would leave the map unzoomed, depending on which came first.)
        self.zoom = self.fit_zoom() if self.size.width > GUTTER else None
        self._recompute()

    def show(self, g: NDArray[np.float64]) -> None:
        """Show a whole-array conductance matrix (S) — the result of READ_ARRAY."""
        g = np.asarray(g, dtype=np.float64)
        if g.shape != self.data.shape:
            self.resize_array(*g.shape)
        self.data = g.copy()
        self._recompute()

    def set_cells(self, rows: NDArray[np.int64], cols: NDArray[np.int64], g: NDArray[np.float64]) -> None:
        """Update the conductance of some cells (S), e.g. after an action read them."""
        self.data[np.asarray(rows), np.asarray(cols)] = np.asarray(g, dtype=np.float64)
        self._recompute()
        self._post_cursor()

    def value(self, row: int, col: int) -> float:
        return float(self.data[row, col])

    # ------------------------------------------------------------------ geometry
    @property
    def block(self) -> int:
        z = self.zoom or 0
        return 2 ** (-z) if z < 0 else 1

    @property
    def cell_width(self) -> int:
        z = self.zoom or 0
        return 1 + z if z > 0 else 1

    @property
    def map_shape(self) -> tuple[int, int]:
        b = self.block
        return math.ceil(self.data.shape[0] / b), math.ceil(self.data.shape[1] / b)

    def _view(self) -> tuple[int, int]:
        """Map cells that fit: (lines, columns)."""
        w = max(1, self.size.width - GUTTER)
        h = max(1, self.size.height - RULER)
        return h, max(1, w // self.cell_width)

    def fit_zoom(self) -> int:
        """The largest zoom at which the whole array fits (square-ish cells preferred)."""
        rows, cols = self.data.shape
        w = max(1, self.size.width - GUTTER)
        h = max(1, self.size.height - RULER)
        for z in range(ZOOM_MAX, ZOOM_MIN - 1, -1):
            b = 2 ** (-z) if z < 0 else 1
            cw = 1 + z if z > 0 else 1
            if math.ceil(rows / b) <= h and math.ceil(cols / b) * cw <= w:
                return z
        return ZOOM_MIN

    def _recompute(self) -> None:
        self.scale = heatmap.auto_scale(self.data, self.log_scale)
        self._levels = heatmap.levels(heatmap.block_mean(self.data, self.block), self.scale)
        self.post_message(self.ScaleChanged(self.scale))
        self.refresh()

    def on_resize(self) -> None:
        if self.zoom is None and self.size.width > GUTTER:
            self.zoom = self.fit_zoom()
            self._recompute()
        self._follow_cursor()

    def _follow_cursor(self) -> None:
        """Pan so that the cursor's map cell is visible."""
        b = self.block
        mr, mc = self.cursor[0] // b, self.cursor[1] // b
        h, w = self._view()
        r0, c0 = self.origin
        if mr < r0:
            r0 = mr
        elif mr >= r0 + h:
            r0 = mr - h + 1
        if mc < c0:
            c0 = mc
        elif mc >= c0 + w:
            c0 = mc - w + 1
        rows, cols = self.map_shape
        r0 = max(0, min(r0, max(0, rows - h)))
        c0 = max(0, min(c0, max(0, cols - w)))
        if (r0, c0) != self.origin:
            self.origin = (r0, c0)
            self.refresh()

    # ------------------------------------------------------------------ selection
    def selection(self) -> tuple[int, int, int, int]:
        """(r0, r1, c0, c1) inclusive: the rectangle between anchor and cursor, or the cursor cell."""
        (r, c), a = self.cursor, self.anchor or self.cursor
        return min(r, a[0]), max(r, a[0]), min(c, a[1]), max(c, a[1])

    def selected_cells(self) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Row and column index of every selected cell, row-major."""
        r0, r1, c0, c1 = self.selection()
        rr, cc = np.meshgrid(np.arange(r0, r1 + 1), np.arange(c0, c1 + 1), indexing="ij")
        return rr.ravel().astype(np.int64), cc.ravel().astype(np.int64)

    def move_to(self, row: int, col: int, extend: bool = False) -> None:
        rows, cols = self.data.shape
        if extend and self.anchor is None:
            self.anchor = self.cursor
        elif not extend:
            self.anchor = None
        self.cursor = (max(0, min(rows - 1, row)), max(0, min(cols - 1, col)))
        self._follow_cursor()
        self.refresh()
        self._post_cursor()

    def _post_cursor(self) -> None:
        r, c = self.cursor
        self.post_message(self.CursorMoved(r, c, self.value(r, c)))
        self.post_message(self.SelectionChanged(*self.selection()))

    # ------------------------------------------------------------------ actions
    def action_move(self, dr: int, dc: int, extend: bool = False) -> None:
        b = self.block
        self.move_to(self.cursor[0] + dr * b, self.cursor[1] + dc * b, extend)

    def action_page(self, direction: int) -> None:
        h, _ = self._view()
        self.move_to(self.cursor[0] + direction * h * self.block, self.cursor[1])

    def action_jump(self, end: int) -> None:
        self.move_to(self.cursor[0], (self.data.shape[1] - 1) if end else 0)

    def action_zoom(self, step: int) -> None:
        z = (self.zoom or 0) + step
        self.zoom = max(ZOOM_MIN, min(ZOOM_MAX, z))
        self.origin = (0, 0)
        self._recompute()
        self._follow_cursor()

    def action_fit(self) -> None:
        self.zoom = self.fit_zoom()
        self.origin = (0, 0)
        self._recompute()

    def action_toggle_scale(self) -> None:
        self.log_scale = not self.log_scale
        self._recompute()

    def action_select_all(self) -> None:
        self.anchor = (0, 0)
        self.move_to(self.data.shape[0] - 1, self.data.shape[1] - 1, extend=True)

    def action_clear_selection(self) -> None:
        self.move_to(*self.cursor)

    # ------------------------------------------------------------------ rendering
    def render_line(self, y: int) -> Strip:
        width = self.size.width
        b, cw = self.block, self.cell_width
        h, w = self._view()
        r0, c0 = self.origin
        mrows, mcols = self.map_shape
        ncols = min(w, mcols - c0)
        if y == 0:
            return self._ruler(c0, ncols, width)
        mr = r0 + y - RULER
        if mr >= mrows or ncols <= 0:
            return Strip.blank(width)
        row_levels = self._levels[mr, c0:c0 + ncols]
        marks: dict[int, str] = {}
        sr0, sr1, sc0, sc1 = self.selection()
        if self.anchor is not None and sr0 // b <= mr <= sr1 // b:
            for mc in range(max(sc0 // b, c0), min(sc1 // b, c0 + ncols - 1) + 1):
                marks[mc - c0] = "selected"
        cr, cc = self.cursor
        if cr // b == mr and c0 <= cc // b < c0 + ncols:
            marks[cc // b - c0] = "cursor"
        label = f"{mr * b:>{GUTTER - 1}} " if (mr * b) % (5 * b if b > 1 else 5) == 0 or mr == r0 else " " * GUTTER
        segs = [Segment(label[-GUTTER:], _RULER_STYLE), *heatmap.render_row(row_levels, cw, marks)]
        return Strip(segs).adjust_cell_length(width)

    def _ruler(self, c0: int, ncols: int, width: int) -> Strip:
        b, cw = self.block, self.cell_width
        chars = [" "] * (ncols * cw)
        step = max(1, math.ceil(6 / cw))  # a label every `step` map columns, at least 6 characters apart
        mc = c0 + (-c0 % step)
        while mc < c0 + ncols:
            text = str(mc * b)
            pos = (mc - c0) * cw
            if pos + len(text) <= len(chars):
                chars[pos:pos + len(text)] = list(text)
            mc += step
        return Strip([Segment(" " * GUTTER), Segment("".join(chars), _RULER_STYLE)]).adjust_cell_length(width)
