"""What a routine's figures are drawn from and what they give back, and the drawing helpers they share.

A figure function receives a `StepData`: one campaign step as stored, its units grouped by pass, sweep
point and repeat (`StepGroup`, each with its parameters, combined summary and measurements by kind). It
returns a list of `Figure` (a matplotlib figure with a caption), `Table` and `Note` items; the report
saves the figures and places all of them on the run's page. Nothing here reads the store: whoever builds
the StepData does (labctl.campaigns.report), so the same functions draw a script's in-memory results.

Axes: `si_axis` is the one formatter of every axis and colour bar: the quantity's name with its SI unit
and one engineering prefix for the axis ("G target (µS)"), or, on a log axis, prefixed ticks ("1 µA").
Scatter plots show at most MAX_SCATTER cells (a seeded subsample, said in the caption).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

#: Most cells a scatter plot draws; above it a seeded subsample is drawn and the caption says so.
MAX_SCATTER = 4096
#: Most single-cell curves (I–V sweeps, pulse traces) drawn in one panel.
MAX_CURVES = 12
#: Most listed cells in a table (e.g. the cells that did not converge); the count is always given.
MAX_LISTED = 50

_PREFIXES = {-18: "a", -15: "f", -12: "p", -9: "n", -6: "µ", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T"}


@dataclass
class Figure:
    """A drawn figure (matplotlib.figure.Figure, not yet saved), its file stem and its caption."""

    name: str
    figure: Any
    caption: str


@dataclass
class Table:
    """A table for the report page: title, column names, rows of already formatted cells."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    note: str = ""


@dataclass
class Note:
    """A sentence for the report page (e.g. why a figure is not there)."""

    text: str


Item = Figure | Table | Note


@dataclass
class KindData:
    """The measurements of one kind in one group, batches concatenated in the order taken.

    rows, cols, t (backend clock, s), batch (ordinal of the batch within the group): shape (n,);
    values: quantity -> float64 (n,), SI units, NaN where none."""

    rows: NDArray[np.int64]
    cols: NDArray[np.int64]
    t: NDArray[np.float64]
    batch: NDArray[np.int64]
    values: dict[str, NDArray[np.float64]]

    def __getitem__(self, quantity: str) -> NDArray[np.float64]:
        return self.values[quantity]

    def __contains__(self, quantity: str) -> bool:
        return quantity in self.values

    @property
    def size(self) -> int:
        return int(self.rows.size)

    def where(self, mask: NDArray[np.bool_]) -> KindData:
        """The entries where `mask` (n,) holds."""
        return KindData(self.rows[mask], self.cols[mask], self.t[mask], self.batch[mask],
                        {q: v[mask] for q, v in self.values.items()})


@dataclass
class TraceBatch:
    """The vector quantities of one batch: rows, cols (n,); values: quantity -> (n, points), SI."""

    rows: NDArray[np.int64]
    cols: NDArray[np.int64]
    values: dict[str, NDArray[np.float64]]
    scalars: dict[str, NDArray[np.float64]] = field(default_factory=dict)


@dataclass
class StepGroup:
    """The units of one step that belong together: one pass, sweep point and repeat.

    label: what distinguishes it ("tolerance = 0.02", "repeat 2"; "" when the step has one group);
    params: the routine's validated parameters (SI); summary: the combined summary of its finished
    units (None if none finished); complete: every unit done."""

    label: str
    params: dict[str, Any]
    summary: dict[str, Any] | None
    complete: bool
    kinds: dict[str, KindData]
    key: tuple[int, int, int] = (0, 0, 0)  # (pass, sweep point, repeat) indices
    trace_loader: Callable[[str, int | None], list[TraceBatch]] | None = None

    def get(self, kind: str) -> KindData | None:
        """The measurements of `kind`, or None when the group has none."""
        return self.kinds.get(kind)

    def traces(self, kind: str, max_batches: int | None = 1) -> list[TraceBatch]:
        """Vector quantities of the first `max_batches` batches of `kind` (None: all), read on demand."""
        return self.trace_loader(kind, max_batches) if self.trace_loader is not None else []


@dataclass
class StepData:
    """One step of a run as stored: its name, routine, the array's shape and its groups in plan order."""

    name: str
    routine: str
    n_rows: int
    n_cols: int
    groups: list[StepGroup]

    def with_kind(self, kind: str) -> list[StepGroup]:
        """The groups that have measurements of `kind`."""
        return [g for g in self.groups if kind in g.kinds]

    def title(self, group: StepGroup) -> str:
        return f"{self.name}" + (f", {group.label}" if group.label else "")


# ----------------------------------------------------------------------------- drawing helpers


def pyplot() -> Any:
    """matplotlib.pyplot on the file-only Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def subplots(n: int, *, ncol: int = 3, size: tuple[float, float] = (4.4, 3.4)) -> tuple[Any, list[Any]]:
    """A figure with n panels, at most `ncol` per row; the axes as a flat list (unused ones hidden)."""
    plt = pyplot()
    ncol = max(1, min(ncol, n))
    nrow = math.ceil(n / ncol)
    w, h = size[0] * ncol, size[1] * nrow
    # Fixed margins in inches (room for tick labels, axis labels and a colour bar's label) instead of a
    # layout engine: tight and constrained layouts cost a second drawing, most of a report's time.
    left, right, bottom, top, wgap, hgap = 0.85, 0.8, 0.6, 0.35, 1.25, 0.8
    fig, axes = plt.subplots(nrow, ncol, figsize=(w, h), squeeze=False, gridspec_kw={
        "left": left / w, "right": 1 - right / w, "bottom": bottom / h, "top": 1 - top / h,
        "wspace": wgap / ((w - left - right - wgap * (ncol - 1)) / ncol),
        "hspace": hgap / ((h - bottom - top - hgap * (nrow - 1)) / nrow)})
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def prefix_of(value: float) -> tuple[str, float]:
    """Engineering prefix and its scale for a magnitude: 4.2e-5 -> ("µ", 1e-6); 0 -> ("", 1)."""
    if not math.isfinite(value) or value == 0:
        return "", 1.0
    exp = int(math.floor(math.log10(abs(value)) / 3) * 3)
    exp = max(min(exp, 12), -18)
    return _PREFIXES[exp], 10.0 ** exp


def si_axis(ax: Any, which: str, name: str, unit: str = "") -> str:
    """Label and format one axis of `ax` ("x", "y", or "cbar" for a colour bar's axes): `name` with
    `unit` (SI symbol: V, A, S, Ω, s) and one engineering prefix chosen from the axis range, ticks
    scaled to it; a log axis gets prefixed ticks instead ("10 µA"). Call after the data is drawn.
    Returns the label set. A dimensionless quantity (unit "") is labelled by its name alone."""
    from matplotlib.ticker import EngFormatter, FuncFormatter, LogLocator, NullFormatter

    axis = ax.yaxis if which in ("y", "cbar") else ax.xaxis
    lo, hi = (ax.get_ylim() if which in ("y", "cbar") else ax.get_xlim())
    if not unit:
        label = name
    elif axis.get_scale() == "log" and unit == "s":
        label = name if _time_ticks(axis, lo, hi) else f"{name} (s)"
    elif axis.get_scale() == "log":
        # Ticks at 1, 2 and 5 of every decade, so that even a short range has labelled ticks.
        span = abs(math.log10(hi / lo)) if lo > 0 and hi > 0 else 10.0
        axis.set_major_locator(LogLocator(subs=(1.0,) if span > 4 else (1.0, 2.0, 5.0)))
        axis.set_major_formatter(EngFormatter(unit=unit, sep=" "))
        axis.set_minor_formatter(NullFormatter())
        label = f"{name} ({unit})"
    else:
        prefix, scale = prefix_of(max(abs(lo), abs(hi)))
        if scale != 1.0:
            axis.set_major_formatter(FuncFormatter(lambda v, _pos, s=scale: f"{v / s:.6g}"))
        label = f"{name} ({prefix}{unit})"
    axis.set_label_text(label)
    return label


#: Tick marks of a log time axis: the durations people read (s).
_TIME_TICKS = ((1e-6, "1 µs"), (1e-3, "1 ms"), (1.0, "1 s"), (10.0, "10 s"), (60.0, "1 min"), (600.0, "10 min"),
               (3600.0, "1 h"), (86400.0, "1 day"), (604800.0, "1 week"), (2629800.0, "1 month"),
               (31557600.0, "1 year"), (315576000.0, "10 years"), (3155760000.0, "100 years"))


def _time_ticks(axis: Any, lo: float, hi: float) -> bool:
    """Ticks of a log time axis at 1 s, 1 min, 1 h, 1 day, ... 10 years inside (lo, hi) (s), True; where
    fewer than three of those fall inside, prefixed ticks in s, False."""
    from matplotlib.ticker import EngFormatter, FixedFormatter, FixedLocator, NullFormatter

    inside = []
    for t, text in _TIME_TICKS:  # at least 1/8 of the axis apart, so the labels do not run together
        if lo <= t <= hi and (not inside or math.log10(t / inside[-1][0]) >= math.log10(hi / lo) / 8):
            inside.append((t, text))
    if len(inside) >= 3:
        axis.set_major_locator(FixedLocator([t for t, _ in inside]))
        axis.set_major_formatter(FixedFormatter([text for _, text in inside]))
    else:
        axis.set_major_formatter(EngFormatter(unit="s", sep=" "))
    axis.set_minor_formatter(NullFormatter())
    return len(inside) >= 3


def eng(value: float | None, unit: str = "", digits: int = 3) -> str:
    """A number with an engineering prefix and unit: eng(4.21e-5, "S") -> "42.1 µS"; None -> "–"."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    prefix, scale = prefix_of(float(value))
    return f"{float(value) / scale:.{digits}g} {prefix}{unit}".rstrip()


def subsample(n: int, limit: int = MAX_SCATTER, seed: int = 0) -> NDArray[np.int64]:
    """Indices of at most `limit` of n items (all of them, in order, when n <= limit; else a seeded
    random choice, sorted)."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def shown(n_shown: int, n: int, what: str = "cells") -> str:
    """Caption fragment: "all 1024 cells" or "a random 4096 of 65536 cells (subsampled above 4096)"."""
    if n_shown >= n:
        return f"all {n} {what}"
    return f"a random {n_shown} of {n} {what} (scatter plots are subsampled above {MAX_SCATTER})"


def finite(a: NDArray[Any]) -> NDArray[np.float64]:
    a = np.asarray(a, dtype=np.float64)
    return a[np.isfinite(a)]


def bins_for(a: NDArray[Any], most: int = 60) -> int:
    return int(min(most, max(8, math.sqrt(max(a.size, 1)))))


def cdf(ax: Any, values: NDArray[Any], **kw: Any) -> Any:
    """Cumulative distribution of the finite values (a step line from 0 to 1); returns the line."""
    x = np.sort(finite(values))
    if x.size == 0:
        return None
    return ax.plot(x, np.arange(1, x.size + 1) / x.size, drawstyle="steps-post", **kw)[0]


def gaussian_hist(ax: Any, values: NDArray[Any], label: str = "", unit: str = "V") -> tuple[float, float]:
    """Histogram (density) of the finite values with the Gaussian of their mean and std drawn over
    it; returns (µ, σ)."""
    v = finite(values)
    if v.size == 0:
        return math.nan, math.nan
    mu, sigma = float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0
    patches = ax.hist(v, bins=bins_for(v), density=True, alpha=0.45, label=label or None)[2]
    if sigma > 0:
        x = np.linspace(v.min() - sigma, v.max() + sigma, 200)
        color = patches[0].get_facecolor() if len(patches) else None
        ax.plot(x, np.exp(-0.5 * ((x - mu) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi)), color=color,
                alpha=1.0, lw=1.2, label=f"Gaussian µ = {eng(mu, unit)}, σ = {eng(sigma, unit)}")
    return mu, sigma


def cell_map(ax: Any, step: StepData, rows: NDArray[Any], cols: NDArray[Any], values: NDArray[Any],
             name: str, unit: str = "", **kw: Any) -> Any:
    """Values over the array (the last value per cell; cells without one blank) with a labelled colour
    bar; returns the image."""
    grid = np.full((step.n_rows, step.n_cols), np.nan)
    grid[np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)] = np.asarray(values, dtype=np.float64)
    im = ax.imshow(grid, aspect="auto", interpolation="nearest", **kw)
    bar = ax.figure.colorbar(im, ax=ax)
    si_axis(bar.ax, "cbar", name, unit)
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    return im


def iv_panel(ax: Any, batch: TraceBatch, title: str, n: int = MAX_CURVES) -> int:
    """|I| against V (log current axis) of the first `n` cells of a batch with traces v (V) and i (A);
    the cells are labelled when few. Returns the number of curves drawn."""
    v, i = batch.values.get("v"), batch.values["i"]
    n = min(n, i.shape[0])
    for k in range(n):
        ax.plot(v[k] if v is not None else np.arange(i.shape[1]), np.abs(i[k]), lw=0.8,
                label=f"cell ({batch.rows[k]}, {batch.cols[k]})" if n <= 6 else None)
    ax.set_yscale("log")
    si_axis(ax, "x", "V" if v is not None else "point", "V" if v is not None else "")
    si_axis(ax, "y", "|I|", "A")
    ax.set_title(title, fontsize=9)
    legend(ax)
    return n


def per_cell(step: StepData, d: KindData, quantity: str) -> tuple[NDArray[np.int64], NDArray[np.float64],
                                                                    NDArray[np.float64], NDArray[np.int64]]:
    """Per cell of `d` (cells in first-seen order): cell index row*n_cols+col, mean and sample std of
    `quantity` over its repeated measurements (NaN std with one), and the count."""
    idx = d.rows * step.n_cols + d.cols
    cells, inverse = np.unique(idx, return_inverse=True)
    v = np.asarray(d[quantity], dtype=np.float64)
    ok = np.isfinite(v)
    n = np.bincount(inverse, weights=ok, minlength=cells.size)
    s1 = np.bincount(inverse, weights=np.where(ok, v, 0.0), minlength=cells.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / n
        dev = np.where(ok, v - mean[inverse], 0.0)
        var = np.bincount(inverse, weights=dev * dev, minlength=cells.size) / (n - 1)
    return cells, mean, np.sqrt(var), n.astype(np.int64)


def stack_by(d: KindData, index: str, step: StepData, quantity: str = "g") -> tuple[NDArray[np.int64],
                                                                                      NDArray[np.float64]]:
    """The measurements of `quantity` as a (cells, k) matrix by the integer `index` quantity (pulse,
    cycle, repeat): cell indices (row*n_cols+col, sorted) and the matrix (NaN where none)."""
    idx = d.rows * step.n_cols + d.cols
    cells, inverse = np.unique(idx, return_inverse=True)
    k = np.asarray(d[index]).astype(np.int64)
    k -= k.min() if k.size else 0
    out = np.full((cells.size, int(k.max()) + 1 if k.size else 0), np.nan)
    out[inverse, k] = d[quantity]
    return cells, out


def legend(ax: Any, **kw: Any) -> None:
    """A legend if anything on the axes is labelled."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, **kw)


def group_colors(n: int) -> Sequence[Any]:
    plt = pyplot()
    return [plt.get_cmap("tab10")(k % 10) for k in range(n)]
