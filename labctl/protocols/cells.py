"""Cell selectors: the whole array, one cell, a list of cells, or a rectangular region.

On the wire (docs/protocol.md, "Cell selectors") a selector is a kind byte followed by its fields.
Cells are always visited in a defined order: a list in the order given, a region and the whole
array row by row (row-major). Every per-cell array in a payload follows that order.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from labctl.protocols.codes import CellsKind
from labctl.protocols.errors import PayloadError, ProtocolError
from labctl.protocols.wire import PayloadReader, PayloadWriter

#: Largest row or column index a selector can carry (u16).
MAX_INDEX = 0xFFFF


class CellAddressError(ProtocolError, ValueError):
    """A selector names a cell outside the array, or names a cell twice."""


@dataclass(frozen=True, eq=False)
class Cells:
    """Which cells a command applies to. Build with `all()`, `single()`, `list()` or `region()`.

    Attributes:
        kind: selector kind.
        row0, col0: first row/column of SINGLE and REGION.
        nrows, ncols: REGION size (1 x 1 for SINGLE).
        rows, cols: LIST indices (int64, same length), None otherwise.
    """

    kind: CellsKind
    row0: int = 0
    col0: int = 0
    nrows: int = 0
    ncols: int = 0
    rows: np.ndarray | None = field(default=None, repr=False)
    cols: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def all(cls) -> Cells:
        return cls(CellsKind.ALL)

    @classmethod
    def single(cls, row: int, col: int) -> Cells:
        _check_index("row", row)
        _check_index("col", col)
        return cls(CellsKind.SINGLE, int(row), int(col), 1, 1)

    @classmethod
    def list(cls, rows: np.ndarray | list[int], cols: np.ndarray | list[int]) -> Cells:
        """Cells (rows[k], cols[k]); scalars broadcast against arrays."""
        r, c = np.broadcast_arrays(np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64))
        r, c = r.reshape(-1).copy(), c.reshape(-1).copy()
        for name, idx in (("rows", r), ("cols", c)):
            if idx.size and (idx.min() < 0 or idx.max() > MAX_INDEX):
                raise CellAddressError(f"cell list {name} must lie in [0, {MAX_INDEX}], "
                                       f"got [{idx.min()}, {idx.max()}]")
        return cls(CellsKind.LIST, rows=r, cols=c)

    @classmethod
    def region(cls, row0: int, col0: int, nrows: int, ncols: int) -> Cells:
        _check_index("row0", row0)
        _check_index("col0", col0)
        _check_index("nrows", nrows)
        _check_index("ncols", ncols)
        return cls(CellsKind.REGION, int(row0), int(col0), int(nrows), int(ncols))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Cells):
            return NotImplemented
        if self.kind != other.kind:
            return False
        if self.kind == CellsKind.LIST:
            return bool(np.array_equal(self.rows, other.rows) and np.array_equal(self.cols, other.cols))
        return (self.row0, self.col0, self.nrows, self.ncols) == (
            other.row0, other.col0, other.nrows, other.ncols)

    def count(self, shape: tuple[int, int] | None = None) -> int:
        """Number of cells selected; ALL needs the array `shape` (rows, cols)."""
        if self.kind == CellsKind.ALL:
            if shape is None:
                raise ValueError("Cells.all() needs the array shape to count its cells")
            return shape[0] * shape[1]
        if self.kind == CellsKind.LIST:
            assert self.rows is not None
            return int(self.rows.size)
        return self.nrows * self.ncols

    def indices(self, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Row and column index arrays (int64) in visiting order, validated against `shape`.

        Raises:
            CellAddressError: a cell outside [0, rows) x [0, cols), an empty selection, or a cell
                listed twice.
        """
        n_rows, n_cols = shape
        if self.kind == CellsKind.LIST:
            assert self.rows is not None and self.cols is not None
            rows, cols = self.rows, self.cols
            if rows.size == 0:
                raise CellAddressError("cell list is empty")
            if rows.max() >= n_rows or cols.max() >= n_cols:
                bad = int(np.flatnonzero((rows >= n_rows) | (cols >= n_cols))[0])
                raise CellAddressError(
                    f"cell list entry {bad} = ({rows[bad]}, {cols[bad]}) outside the "
                    f"{n_rows} x {n_cols} array (rows 0..{n_rows - 1}, cols 0..{n_cols - 1})")
            flat = rows * n_cols + cols
            if np.unique(flat).size != flat.size:
                raise CellAddressError("cell list names a cell more than once")
            return rows, cols
        r0, c0, nr, nc = self.block(shape)
        rr, cc = np.meshgrid(np.arange(r0, r0 + nr, dtype=np.int64),
                             np.arange(c0, c0 + nc, dtype=np.int64), indexing="ij")
        return rr.reshape(-1), cc.reshape(-1)

    def block(self, shape: tuple[int, int]) -> tuple[int, int, int, int]:
        """(row0, col0, nrows, ncols) of ALL, SINGLE or REGION, validated against `shape`.

        Raises:
            CellAddressError: a LIST selector, an empty region, or a region outside the array.
        """
        n_rows, n_cols = shape
        if self.kind == CellsKind.ALL:
            return 0, 0, n_rows, n_cols
        if self.kind == CellsKind.LIST:
            raise CellAddressError("a cell list has no rectangular block; use ALL or REGION")
        r0, c0, nr, nc = self.row0, self.col0, self.nrows, self.ncols
        if nr == 0 or nc == 0:
            raise CellAddressError(f"region {nr} x {nc} selects no cell")
        if r0 + nr > n_rows or c0 + nc > n_cols:
            raise CellAddressError(
                f"cells rows {r0}..{r0 + nr - 1}, cols {c0}..{c0 + nc - 1} outside the "
                f"{n_rows} x {n_cols} array (rows 0..{n_rows - 1}, cols 0..{n_cols - 1})")
        return r0, c0, nr, nc

    def pack(self, w: PayloadWriter) -> None:
        """Append this selector to a payload."""
        w.u8("cells.kind", self.kind)
        if self.kind == CellsKind.SINGLE:
            w.u16("cells.row", self.row0).u16("cells.col", self.col0)
        elif self.kind == CellsKind.LIST:
            assert self.rows is not None and self.cols is not None
            w.u32("cells.count", self.rows.size)
            w.array("cells.rows", self.rows, "<u2").array("cells.cols", self.cols, "<u2")
        elif self.kind == CellsKind.REGION:
            w.u16("cells.row0", self.row0).u16("cells.col0", self.col0)
            w.u16("cells.nrows", self.nrows).u16("cells.ncols", self.ncols)

    @classmethod
    def unpack(cls, r: PayloadReader) -> Cells:
        """Read a selector from a payload (raises PayloadError on a malformed one)."""
        kind = r.u8("cells.kind")
        if kind == CellsKind.ALL:
            return cls.all()
        if kind == CellsKind.SINGLE:
            return cls(CellsKind.SINGLE, r.u16("cells.row"), r.u16("cells.col"), 1, 1)
        if kind == CellsKind.LIST:
            n = r.u32("cells.count")
            rows = r.array("cells.rows", "<u2", n, "int64")
            cols = r.array("cells.cols", "<u2", n, "int64")
            return cls(CellsKind.LIST, rows=rows, cols=cols)
        if kind == CellsKind.REGION:
            return cls(CellsKind.REGION, r.u16("cells.row0"), r.u16("cells.col0"),
                       r.u16("cells.nrows"), r.u16("cells.ncols"))
        raise PayloadError(f"{r.what}: cells.kind = {kind}, allowed 0 (all), 1 (single), "
                           "2 (list), 3 (region)")


CellsLike = Cells | tuple[int, int] | tuple[np.ndarray, np.ndarray] | None


def as_cells(cells: CellsLike) -> Cells:
    """Accept a Cells, None (whole array), (row, col) ints or (rows, cols) index arrays."""
    if cells is None:
        return Cells.all()
    if isinstance(cells, Cells):
        return cells
    rows, cols = cells
    if np.ndim(rows) == 0 and np.ndim(cols) == 0:
        return Cells.single(int(rows), int(cols))
    return Cells.list(rows, cols)


def _check_index(name: str, value: int) -> None:
    if not 0 <= int(value) <= MAX_INDEX:
        raise CellAddressError(f"{name} = {value} outside [0, {MAX_INDEX}]")
