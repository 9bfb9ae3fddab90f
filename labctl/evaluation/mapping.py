"""Weight mapping: a layer's weights -> normalized weights -> target conductances on tiles.

REF (../shared/reference/cmo-hfox-1t1r.md §Matrix-vector multiplication): weights normalized to
[-1, 1] are mapped linearly to conductances in ≈ [9, 89] µS.

A layer computes y = x @ W with W of shape (inputs, outputs). Each output column j gets a digital
output scale s_j = max_i |W_ij| (or one scale for the whole layer), so W = Wn * s with |Wn| <= 1.
Physical layout of a tile (rows = inputs, physical columns):
  - "offset": one device per weight, G = g_mid + Wn * g_half (g_mid = (g_min + g_max)/2,
    g_half = (g_max - g_min)/2), plus one reference column at the end programmed to g_mid; the
    output is (I_j - I_ref) / (v * g_half).
  - "differential": a pair per weight, G+ at physical column 2j, G- at 2j + 1,
    G± = g_min + max(±Wn, 0) * (g_max - g_min); the output is (I+ - I-) / (v * (g_max - g_min)).
Layers larger than a tile are split into a grid of tiles; the partial outputs of the tiles in one
column of the grid are summed digitally.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

Scheme = Literal["offset", "differential"]
SCHEMES: tuple[str, ...] = ("offset", "differential")


@dataclass(frozen=True)
class ConductanceRange:
    """Conductance window the normalized range [-1, 1] maps onto, S (REF: ≈ [9, 89] µS)."""

    g_min: float = 9e-6
    g_max: float = 89e-6

    def __post_init__(self) -> None:
        if not (np.isfinite(self.g_min) and np.isfinite(self.g_max) and 0 < self.g_min < self.g_max):
            raise ValueError(f"g_min, g_max: need 0 < g_min < g_max (S), got {self.g_min!r}, {self.g_max!r}")

    @property
    def g_mid(self) -> float:
        return 0.5 * (self.g_min + self.g_max)

    @property
    def g_half(self) -> float:
        return 0.5 * (self.g_max - self.g_min)


@dataclass(frozen=True)
class TileShape:
    """Physical rows and columns available to one tile (e.g. one 64x64 array)."""

    rows: int = 64
    cols: int = 64

    def __post_init__(self) -> None:
        for name, n in (("rows", self.rows), ("cols", self.cols)):
            if not (isinstance(n, (int, np.integer)) and n >= 1):
                raise ValueError(f"tile {name}: must be a positive integer, got {n!r}")


@dataclass(frozen=True)
class Tile:
    """One tile of a mapped layer: logical inputs [in_start, in_stop) x outputs [out_start, out_stop),
    and the target conductances of its physical cells, shape (in_stop - in_start, physical columns), S."""

    in_start: int
    in_stop: int
    out_start: int
    out_stop: int
    targets: NDArray[np.float64]

    @property
    def shape(self) -> tuple[int, int]:
        """Physical (rows, columns) used."""
        return self.targets.shape  # type: ignore[return-value]

    @property
    def n_outputs(self) -> int:
        return self.out_stop - self.out_start


def outputs_per_tile(scheme: Scheme, tile_cols: int) -> int:
    """Logical outputs that fit in `tile_cols` physical columns."""
    n = tile_cols - 1 if scheme == "offset" else tile_cols // 2
    if n < 1:
        raise ValueError(f"tile cols: {tile_cols} columns hold no output with the {scheme} scheme")
    return n


def weights_to_conductances(wn: ArrayLike, scheme: Scheme, g_range: ConductanceRange) -> NDArray[np.float64]:
    """Targets (S) of one tile for normalized weights `wn` (rows, outputs), |wn| <= 1, in the physical layout."""
    w = np.clip(np.asarray(wn, dtype=np.float64), -1.0, 1.0)
    if w.ndim != 2:
        raise ValueError(f"wn: expected a 2-D (inputs, outputs) matrix, got shape {w.shape}")
    if scheme == "offset":
        g = np.empty((w.shape[0], w.shape[1] + 1))
        g[:, :-1] = g_range.g_mid + w * g_range.g_half
        g[:, -1] = g_range.g_mid
        return g
    if scheme == "differential":
        g = np.empty((w.shape[0], 2 * w.shape[1]))
        span = g_range.g_max - g_range.g_min
        g[:, 0::2] = g_range.g_min + np.maximum(w, 0.0) * span
        g[:, 1::2] = g_range.g_min + np.maximum(-w, 0.0) * span
        return g
    raise ValueError(f"scheme: must be one of {SCHEMES}, got {scheme!r}")


def conductances_to_weights(g: ArrayLike, scheme: Scheme, g_range: ConductanceRange) -> NDArray[np.float64]:
    """Effective normalized weights (rows, outputs) of one tile's conductances (S) — what an ideal
    (no wire resistance) read-out of the tile computes; the inverse of weights_to_conductances."""
    ga = np.asarray(g, dtype=np.float64)
    if scheme == "offset":
        return (ga[:, :-1] - ga[:, -1:]) / g_range.g_half
    if scheme == "differential":
        return (ga[:, 0::2] - ga[:, 1::2]) / (g_range.g_max - g_range.g_min)
    raise ValueError(f"scheme: must be one of {SCHEMES}, got {scheme!r}")


def decode_currents(currents: NDArray[np.float64], scheme: Scheme, g_range: ConductanceRange,
                    v_full_scale: float) -> NDArray[np.float64]:
    """Normalized outputs from a tile's column currents (batch, physical columns) in A, where an
    input of 1 drives `v_full_scale` V."""
    if scheme == "offset":
        return (currents[:, :-1] - currents[:, -1:]) / (v_full_scale * g_range.g_half)
    return (currents[:, 0::2] - currents[:, 1::2]) / (v_full_scale * (g_range.g_max - g_range.g_min))


@dataclass(frozen=True)
class LayerMapping:
    """A layer's weights split into tiles: normalized weights, digital output scales and targets."""

    scheme: Scheme
    g_range: ConductanceRange
    tile_shape: TileShape
    weights: NDArray[np.float64]  # original W (inputs, outputs)
    normalized: NDArray[np.float64]  # Wn = W / scales, |Wn| <= 1
    scales: NDArray[np.float64]  # (outputs,) digital output scales, weight units
    tiles: list[Tile] = field(default_factory=list)

    @property
    def n_inputs(self) -> int:
        return int(self.weights.shape[0])

    @property
    def n_outputs(self) -> int:
        return int(self.weights.shape[1])

    def effective_weights(self, conductances: list[NDArray[np.float64]]) -> NDArray[np.float64]:
        """Weights W (weight units) realised by one conductance matrix per tile (S), ideal read-out."""
        if len(conductances) != len(self.tiles):
            raise ValueError(f"conductances: expected {len(self.tiles)} tile matrices, got {len(conductances)}")
        wn = np.zeros_like(self.normalized)
        for tile, g in zip(self.tiles, conductances):
            if np.shape(g) != tile.shape:
                raise ValueError(f"conductances: tile at inputs {tile.in_start}, outputs {tile.out_start} "
                                 f"expects shape {tile.shape}, got {np.shape(g)}")
            wn[tile.in_start:tile.in_stop, tile.out_start:tile.out_stop] = conductances_to_weights(
                g, self.scheme, self.g_range)
        return wn * self.scales


def map_layer(weights: ArrayLike, *, scheme: Scheme = "offset", g_range: ConductanceRange | None = None,
              tile_shape: TileShape | None = None, scale: Literal["column", "layer"] = "column") -> LayerMapping:
    """Map W (inputs, outputs) onto tiles: output scales, normalized weights, target conductances (S).

    scale "column": one digital scale per output (max |W| of the column); "layer": one for all.
    An all-zero column gets scale 1 (its targets are the zero weight).
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.size == 0:
        raise ValueError(f"weights: expected a non-empty 2-D (inputs, outputs) matrix, got shape {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError("weights: contains NaN or inf")
    if scheme not in SCHEMES:
        raise ValueError(f"scheme: must be one of {SCHEMES}, got {scheme!r}")
    g_range = g_range or ConductanceRange()
    tile_shape = tile_shape or TileShape()
    if scale == "column":
        s = np.max(np.abs(w), axis=0)
    elif scale == "layer":
        s = np.full(w.shape[1], np.max(np.abs(w)))
    else:
        raise ValueError(f"scale: must be 'column' or 'layer', got {scale!r}")
    s = np.where(s > 0, s, 1.0)
    wn = w / s
    per_tile = outputs_per_tile(scheme, tile_shape.cols)
    tiles: list[Tile] = []
    for i0 in range(0, w.shape[0], tile_shape.rows):
        i1 = min(i0 + tile_shape.rows, w.shape[0])
        for j0 in range(0, w.shape[1], per_tile):
            j1 = min(j0 + per_tile, w.shape[1])
            tiles.append(Tile(i0, i1, j0, j1, weights_to_conductances(wn[i0:i1, j0:j1], scheme, g_range)))
    return LayerMapping(scheme=scheme, g_range=g_range, tile_shape=tile_shape, weights=w, normalized=wn,
                        scales=s, tiles=tiles)
