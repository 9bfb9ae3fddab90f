"""Conductance heat map: scaling, palette, block reduction and line rendering (no Textual state).

The array map widget keeps only a viewport and a cursor; everything that turns a conductance matrix
(S) into coloured terminal cells lives here so it can be timed and tested on its own.

Geometry: a map cell is `cell_width` characters wide and one line tall. Zooming out averages
`block` x `block` array cells into one map cell (NaN-aware mean, so unread cells do not darken
their neighbours); zooming in widens the cells. Colours come from a 64-level palette sampled from
viridis (perceptually uniform, readable for colour-blind operators); level 255 means "no data".
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from rich.color import Color
from rich.segment import Segment
from rich.style import Style

NO_DATA = 255
N_LEVELS = 64

# viridis anchor colours at 0, 0.25, 0.5, 0.75, 1 (matplotlib's _viridis_data sampled at these points).
_ANCHORS = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float64)

#: Smallest conductance shown on a log scale, S (a pristine cell reads ~1e-10 S; below this is noise).
LOG_FLOOR = 1e-10


def _palette() -> list[tuple[int, int, int]]:
    x = np.linspace(0.0, 1.0, N_LEVELS)
    xp = np.linspace(0.0, 1.0, len(_ANCHORS))
    rgb = np.stack([np.interp(x, xp, _ANCHORS[:, k]) for k in range(3)], axis=1)
    return [tuple(int(round(v)) for v in row) for row in rgb]  # type: ignore[misc]


PALETTE: list[tuple[int, int, int]] = _palette()


@dataclass(frozen=True)
class MapScale:
    """Colour scale of the map: conductances `low`..`high` (S) on a linear or log10 axis."""

    log: bool
    low: float
    high: float

    def describe(self) -> str:
        return f"{'log' if self.log else 'lin'} {format_siemens(self.low)} … {format_siemens(self.high)}"


def format_siemens(g: float) -> str:
    """A conductance (S) in the unit people read at the station: µS, nS or mS."""
    if g is None or not math.isfinite(g):
        return "—"
    a = abs(g)
    if a >= 1e-3:
        return f"{g * 1e3:.3g} mS"
    if a >= 1e-6 or a == 0:
        return f"{g * 1e6:.3g} µS"
    return f"{g * 1e9:.3g} nS"


def auto_scale(g: NDArray[np.float64], log: bool) -> MapScale:
    """Scale covering the finite values of `g` (S); degenerate ranges are widened so colours stay defined."""
    finite = g[np.isfinite(g)]
    if log:
        finite = finite[finite > 0]
    if finite.size == 0:
        return MapScale(log, 1e-6, 1e-4) if log else MapScale(log, 0.0, 1e-4)
    low, high = float(finite.min()), float(finite.max())
    if log:
        low = max(low, LOG_FLOOR)
        high = max(high, low * 1.01)
    elif high - low < 1e-12:
        low, high = low - 1e-9, high + 1e-9
    return MapScale(log, low, high)


def levels(g: NDArray[np.float64], scale: MapScale) -> NDArray[np.uint8]:
    """Palette level (0..N_LEVELS-1) of every conductance; NO_DATA where g is NaN."""
    g = np.asarray(g, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        if scale.log:
            x = (np.log10(np.maximum(g, LOG_FLOOR)) - math.log10(scale.low)) / (
                math.log10(scale.high) - math.log10(scale.low))
        else:
            x = (g - scale.low) / (scale.high - scale.low)
        idx = np.clip(np.nan_to_num(x, nan=0.0) * (N_LEVELS - 1) + 0.5, 0, N_LEVELS - 1).astype(np.uint8)
    idx[np.isnan(g)] = NO_DATA
    return idx


def block_mean(g: NDArray[np.float64], block: int) -> NDArray[np.float64]:
    """Mean over `block` x `block` tiles (NaN-aware; the last partial tiles are averaged over what exists)."""
    if block <= 1:
        return g
    rows, cols = g.shape
    pr, pc = -rows % block, -cols % block
    padded = np.pad(g, ((0, pr), (0, pc)), constant_values=np.nan) if (pr or pc) else g
    tiles = padded.reshape(padded.shape[0] // block, block, padded.shape[1] // block, block)
    valid = ~np.isnan(tiles)
    total = np.where(valid, tiles, 0.0).sum(axis=(1, 3))
    count = valid.sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


@lru_cache(maxsize=4096)
def cell_style(level: int, mark: str = "") -> Style:
    """Background colour of a level; `mark` "cursor" / "selected" picks a contrasting foreground."""
    if level == NO_DATA:
        bg = Color.from_rgb(40, 40, 40)
        fg = Color.from_rgb(200, 200, 200)
    else:
        r, g, b = PALETTE[level]
        bg = Color.from_rgb(r, g, b)
        fg = Color.from_rgb(0, 0, 0) if (0.299 * r + 0.587 * g + 0.114 * b) > 140 else Color.from_rgb(255, 255, 255)
    return Style(bgcolor=bg, color=fg, bold=mark == "cursor")


# Glyphs drawn over a map cell: the cursor, selected cells, and a tile that holds the cursor.
CURSOR_GLYPH = "◆"
SELECT_GLYPH = "·"


def render_row(row_levels: NDArray[np.uint8], cell_width: int, marks: dict[int, str] | None = None) -> list[Segment]:
    """Segments of one map line: runs of equal level merged into one segment each (fewer segments is
    what keeps a 512-wide redraw cheap); `marks` maps a map column to "cursor" or "selected"."""
    segments: list[Segment] = []
    n = row_levels.size
    if n == 0:
        return segments
    marks = marks or {}
    # Boundaries of runs of equal level, split further at marked columns.
    change = np.flatnonzero(np.diff(row_levels.astype(np.int16))) + 1
    cuts = set(change.tolist())
    for col in marks:
        if 0 <= col < n:
            cuts.add(col)
            cuts.add(col + 1)
    bounds = sorted(c for c in cuts if 0 < c < n)
    start = 0
    for stop in [*bounds, n]:
        level = int(row_levels[start])
        mark = marks.get(start, "") if stop - start == 1 else ""
        if mark == "cursor":
            text = CURSOR_GLYPH.center(cell_width)
        elif mark == "selected":
            text = SELECT_GLYPH.center(cell_width)
        else:
            text = " " * (cell_width * (stop - start))
        segments.append(Segment(text, cell_style(level, mark)))
        start = stop
    return segments


def legend_segments(scale: MapScale, width: int) -> list[Segment]:
    """A colour bar `width` characters wide with the scale's ends written around it."""
    left = f"{format_siemens(scale.low)} "
    right = f" {format_siemens(scale.high)} ({'log' if scale.log else 'linear'})"
    bar = max(4, width - len(left) - len(right))
    segs = [Segment(left)]
    for k in range(bar):
        level = int(round(k * (N_LEVELS - 1) / max(bar - 1, 1)))
        segs.append(Segment(" ", cell_style(level)))
    segs.append(Segment(right))
    return segs
