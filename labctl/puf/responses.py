"""PUF responses from conductances read through any ArrayBackend.

Methods (the response has one bit per *position*):
  - "pairs":   differential comparison of cell pairs; position j compares cells 2j and 2j+1 of the
               cell list (horizontal neighbours for a whole array in row-major order, so that slow
               spatial gradients cancel); bit = G_a > G_b.
  - "median":  each cell against the median conductance of the same read; bit = G > median.
  - "forming": pairs as above after a forming race (labctl.puf.prepare.form_pairs) has formed exactly
               one cell of each pair, the one with the lower forming voltage; bit = G_a > G_b, and a
               position counts only if exactly one of its cells reads above `g_formed`.
Each position also has a margin (relative conductance difference) used to mask unstable bits.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from labctl.backends.base import ArrayBackend

METHODS: tuple[str, ...] = ("pairs", "median", "forming")


@dataclass(frozen=True)
class Cells:
    """The cells of a PUF: flat indices (row * cols + col) in response order."""

    rows: int
    cols: int
    flat: NDArray[np.int64]

    @classmethod
    def whole_array(cls, rows: int, cols: int) -> Cells:
        return cls(rows, cols, np.arange(rows * cols, dtype=np.int64))

    @classmethod
    def from_lists(cls, rows: int, cols: int, r: NDArray[np.int64], c: NDArray[np.int64]) -> Cells:
        r = np.asarray(r, dtype=np.int64)
        c = np.asarray(c, dtype=np.int64)
        if r.shape != c.shape or r.ndim != 1:
            raise ValueError(f"cells: rows and cols must be 1-D of equal length, got {r.shape} and {c.shape}")
        if r.size and (r.min() < 0 or r.max() >= rows or c.min() < 0 or c.max() >= cols):
            raise ValueError(f"cells: a cell lies outside the {rows}x{cols} array")
        flat = r * cols + c
        if np.unique(flat).size != flat.size:
            raise ValueError("cells: a cell is listed twice")
        return cls(rows, cols, flat)

    @property
    def is_whole_array(self) -> bool:
        return self.flat.size == self.rows * self.cols and bool(np.all(self.flat == np.arange(self.flat.size)))

    def rc(self) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        r, c = np.divmod(self.flat, self.cols)
        return r, c


def n_positions(method: str, n_cells: int) -> int:
    """Response bits a method gives from n_cells cells."""
    check_method(method)
    return n_cells if method == "median" else n_cells // 2


def check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"method: {method!r} is not one of {', '.join(METHODS)}")


async def read_cells(backend: ArrayBackend, cells: Cells, v_read: float, vg: float) -> NDArray[np.float64]:
    """Conductance of each PUF cell in response order, S (one read)."""
    if cells.is_whole_array and (backend.rows, backend.cols) == (cells.rows, cells.cols):
        return np.asarray(await backend.read_array(v_read, vg), dtype=np.float64).ravel()
    r, c = cells.rc()
    return np.asarray(await backend.read(r, c, v_read, vg), dtype=np.float64)


def bits_and_margins(method: str, g: NDArray[np.float64],
                     g_formed: float = 1e-6) -> tuple[NDArray[np.uint8], NDArray[np.float64], NDArray[np.bool_]]:
    """Response bits, relative margins and validity of each position from conductances.

    g: conductances in response order, shape (..., n_cells), S; leading axes are reads.
    g_formed: conductance above which a cell counts as formed (method "forming"), S.
    Returns bits (uint8), margins (dimensionless, >= 0) and valid (forming: exactly one cell of the
    pair formed; other methods: all True), each of shape (..., n_positions).
    """
    check_method(method)
    g = np.asarray(g, dtype=np.float64)
    if method == "median":
        med = np.median(g, axis=-1, keepdims=True)
        bits = (g > med).astype(np.uint8)
        margins = np.abs(g - med) / np.where(med > 0, med, 1.0)
        return bits, margins, np.ones(bits.shape, dtype=bool)
    n = (g.shape[-1] // 2) * 2
    ga, gb = g[..., 0:n:2], g[..., 1:n:2]
    bits = (ga > gb).astype(np.uint8)
    mean = (ga + gb) / 2.0
    margins = np.abs(ga - gb) / np.where(mean > 0, mean, 1.0)
    if method == "forming":
        valid = (ga > g_formed) != (gb > g_formed)
    else:
        valid = np.ones(bits.shape, dtype=bool)
    return bits, margins, valid


@dataclass(frozen=True)
class Stability:
    """Outcome of repeated enrollment reads (kept in memory only: `reference` is the raw response)."""

    reference: NDArray[np.uint8]  # majority response over the reads, per position
    stable: NDArray[np.bool_]  # the mask: positions used for the key
    raw_ber: float  # mean fraction of positions where a read differs from the reference
    reads: int


def stability(method: str, g_reads: NDArray[np.float64], min_margin: float,
              g_formed: float = 1e-6) -> Stability:
    """Mask unstable positions from repeated reads.

    g_reads: conductances, shape (reads, n_cells), S.
    A position is stable if every read gives the same bit, the margin of the mean conductances is
    at least `min_margin` (relative), and (forming) exactly one cell of the pair formed in every read.
    """
    g_reads = np.atleast_2d(np.asarray(g_reads, dtype=np.float64))
    if not (0.0 <= min_margin < 10.0):
        raise ValueError(f"min_margin: {min_margin!r} is outside the allowed range [0, 10)")
    bits, _, valid = bits_and_margins(method, g_reads, g_formed)
    _, mean_margin, _ = bits_and_margins(method, g_reads.mean(axis=0), g_formed)
    t = bits.shape[0]
    ones = bits.sum(axis=0, dtype=np.int64)
    reference = np.where(ones * 2 == t, bits[0], (ones * 2 > t)).astype(np.uint8)
    agree = (ones == 0) | (ones == t)
    stable = agree & (mean_margin >= min_margin) & np.all(valid, axis=0)
    raw_ber = float(np.mean(bits != reference))
    return Stability(reference=reference, stable=stable, raw_ber=raw_ber, reads=t)
