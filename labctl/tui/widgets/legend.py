"""MapLegend: the colour bar of the array map, with its scale and the cursor's cell."""
from __future__ import annotations

import math

from rich.text import Text
from textual.widget import Widget

from labctl.tui import heatmap


class MapLegend(Widget):
    """One line: colour bar between the scale's ends; one line: cursor cell, selection, zoom."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.scale = heatmap.MapScale(True, 1e-6, 1e-4)
        self.cursor_text = ""

    def set_scale(self, scale: heatmap.MapScale) -> None:
        self.scale = scale
        self.refresh()

    def set_cursor(self, row: int, col: int, g: float, n_selected: int) -> None:
        value = heatmap.format_siemens(g) if math.isfinite(g) else "not read"
        sel = f"   selection: {n_selected} cells" if n_selected > 1 else ""
        self.cursor_text = f"cell ({row}, {col}): {value}{sel}"
        self.refresh()

    def render(self) -> Text:
        bar = Text()
        for seg in heatmap.legend_segments(self.scale, max(20, self.size.width)):
            bar.append(seg.text, seg.style)
        return Text("\n").join([bar, Text(self.cursor_text)])
