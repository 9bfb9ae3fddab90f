"""Cell selections: which cells of the array a step addresses.

Kinds (campaign file `cells = "name"` of a [selections.name] table, or an inline table):
  all                          every cell, row-major
  region        rows = [r0, r1], cols = [c0, c1]      the rectangle r0 <= row < r1, c0 <= col < c1
  list          cells = [[r, c], ...]                  exactly these cells, in this order
  checkerboard  parity = 0 | 1 (+ optional rows/cols)  cells with (row + col) % 2 == parity
  ranges        rows = "0:8:2" | [0, 3, 5], cols = ... every listed row x every listed column
Cells are always returned row-major (except `list`, which keeps the file's order).
"""
from __future__ import annotations

import re
from typing import Annotated, Literal, Union

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, field_validator

IndexSpec = Union[list[int], str]
_RANGE = re.compile(r"^\s*(-?\d+)?\s*:\s*(-?\d+)?\s*(?::\s*(\d+))?\s*$")


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AllCells(_Base):
    kind: Literal["all"] = "all"


class Region(_Base):
    kind: Literal["region"]
    rows: tuple[int, int] = Field(description="first row and one past the last row")
    cols: tuple[int, int] = Field(description="first column and one past the last column")

    @field_validator("rows", "cols")
    @classmethod
    def _ordered(cls, v: tuple[int, int]) -> tuple[int, int]:
        if v[0] < 0 or v[1] <= v[0]:
            raise ValueError(f"expected [start, stop] with 0 <= start < stop, got {list(v)}")
        return v


class CellList(_Base):
    kind: Literal["list"]
    cells: list[tuple[int, int]] = Field(min_length=1)


class Checkerboard(_Base):
    kind: Literal["checkerboard"]
    parity: Literal[0, 1] = 0
    rows: IndexSpec | None = None
    cols: IndexSpec | None = None


class Ranges(_Base):
    kind: Literal["ranges"]
    rows: IndexSpec | None = None
    cols: IndexSpec | None = None


Selection = Annotated[Union[AllCells, Region, CellList, Checkerboard, Ranges], Field(discriminator="kind")]


def _indices(spec: IndexSpec | None, n: int, name: str) -> NDArray[np.int64]:
    """Rows or columns named by a list or a "start:stop[:step]" string; ValueError names the bad one.

    A range means start <= index < stop within the array: no negative indices (they would count from
    the end) and no start or stop beyond it (Python slices would silently clip them), as for lists and
    regions. An index named twice would address its cells twice and is refused."""
    if spec is None:
        return np.arange(n, dtype=np.int64)
    if isinstance(spec, str):
        m = _RANGE.match(spec)
        if m is None:
            raise ValueError(f"{name}: expected 'start:stop[:step]' or a list of indices, got {spec!r}")
        start, stop, step = (int(g) if g is not None else None for g in m.groups())
        if step == 0:
            raise ValueError(f"{name}: step must be >= 1, got {spec!r}")
        start = 0 if start is None else start
        stop = n if stop is None else stop
        if not 0 <= start < n or not start < stop <= n:
            raise ValueError(f"{name}: {spec!r} is outside the array: need 0 <= start < stop <= {n} "
                             f"({name} 0..{n - 1})")
        return np.arange(start, stop, step or 1, dtype=np.int64)
    idx = np.asarray(spec, dtype=np.int64)
    bad = idx[(idx < 0) | (idx >= n)]
    if bad.size:
        raise ValueError(f"{name}: index {int(bad[0])} is outside the array (0..{n - 1})")
    _refuse_repeats(name, idx)
    return idx


def _refuse_repeats(name: str, idx: NDArray[np.int64]) -> None:
    """ValueError naming the first index (or cell key) that appears twice."""
    _, first, counts = np.unique(idx, return_index=True, return_counts=True)
    if np.any(counts > 1):
        k = int(np.min(first[counts > 1]))
        later = int(np.flatnonzero(idx == idx[k])[1])
        raise ValueError(f"{name}[{later}]: repeats {name}[{k}]; every cell may be selected once")


def resolve(sel: AllCells | Region | CellList | Checkerboard | Ranges, n_rows: int,
            n_cols: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(rows, cols) index arrays of the selected cells; ValueError names the field out of range."""
    if isinstance(sel, AllCells):
        r, c = np.divmod(np.arange(n_rows * n_cols, dtype=np.int64), n_cols)
        return r, c
    if isinstance(sel, Region):
        for name, (lo, hi), n in (("rows", sel.rows, n_rows), ("cols", sel.cols, n_cols)):
            if hi > n:
                raise ValueError(f"{name}: [{lo}, {hi}] reaches past the array ({name} 0..{n - 1}, stop <= {n})")
        rr, cc = np.meshgrid(np.arange(*sel.rows), np.arange(*sel.cols), indexing="ij")
        return rr.ravel().astype(np.int64), cc.ravel().astype(np.int64)
    if isinstance(sel, CellList):
        a = np.asarray(sel.cells, dtype=np.int64)
        for k, name, n in ((0, "row", n_rows), (1, "col", n_cols)):
            bad = np.flatnonzero((a[:, k] < 0) | (a[:, k] >= n))
            if bad.size:
                raise ValueError(f"cells[{int(bad[0])}]: {name} {int(a[bad[0], k])} is outside the array (0..{n - 1})")
        _refuse_repeats("cells", a[:, 0] * n_cols + a[:, 1])
        return a[:, 0].copy(), a[:, 1].copy()
    rows = _indices(sel.rows, n_rows, "rows")
    cols = _indices(sel.cols, n_cols, "cols")
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    r, c = rr.ravel().astype(np.int64), cc.ravel().astype(np.int64)
    if isinstance(sel, Checkerboard):
        keep = (r + c) % 2 == sel.parity
        r, c = r[keep], c[keep]
        if r.size == 0:
            raise ValueError("parity: the checkerboard selects no cell here")
    return r, c
