"""Program mapped layers onto any ArrayBackend and read back the measured conductances.

Tiles are placed side by side on the backend's array (shelf packing from column 0); when the array is
full, the placed tiles are programmed and read back, and the next round reuses the array. Each round:
  1. prepare: cells that read as pristine (< `pristine_below` S) are formed and conditioned with the
     reference procedure (labctl.routines `form`, REF §Forming: 0 → 3.6 V at VG = 1.2 V; then the
     negative sweep to −1.4 V at VG = 3.3 V that raises the CMO conductance);
  2. closed-loop program-and-verify to the targets (REF §Closed-loop programming), with the backend's
     native loop when it has one, else the routines' host loop;
  3. one read of every programmed cell: the measured conductances the MVM model starts from.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray

from labctl.backends.base import ArrayBackend, ProgramOutcome, ProgramSettings
from labctl.core import reference as ref
from labctl.evaluation.mapping import LayerMapping
from labctl.evaluation.mvm import ProgrammedLayer
from labctl.routines.base import RoutineContext
from labctl.routines.forming import FormingParams, form, sweep_stages
from labctl.routines.program import program_and_verify

SWEEP_STEP = 0.05  # V per point (chosen: coarse enough to be quick, fine enough to form every cell)


@dataclass(frozen=True)
class Placement:
    """Where a tile sits on the backend array: round, first row, first column."""

    layer: int
    tile: int
    round: int
    row: int
    col: int


def place_tiles(mappings: Sequence[LayerMapping], rows: int, cols: int) -> list[Placement]:
    """Shelf packing: tiles left to right from (0, 0); a tile that does not fit starts a new round."""
    out: list[Placement] = []
    rnd, col = 0, 0
    for li, m in enumerate(mappings):
        for ti, tile in enumerate(m.tiles):
            h, w = tile.shape
            if h > rows or w > cols:
                raise ValueError(f"tile_shape: tile {ti} of layer {li} needs {h}x{w} cells, the backend array "
                                 f"has {rows}x{cols}")
            if col + w > cols:
                rnd, col = rnd + 1, 0
            out.append(Placement(li, ti, rnd, 0, col))
            col += w
    return out


async def prepare_cells(backend: ArrayBackend, rows: NDArray[np.int64], cols: NDArray[np.int64],
                        pristine_below: float = 0.1e-6) -> int:
    """Form and condition the listed cells that read as pristine (below `pristine_below` S).
    Returns how many cells were formed."""
    g = await backend.read(rows, cols)
    pristine = g < pristine_below
    if not np.any(pristine):
        return 0
    r, c = rows[pristine], cols[pristine]
    await form(backend, r, c, FormingParams(step=SWEEP_STEP, chunk=r.size))
    await sweep_stages(backend, r, c, (ref.NEGATIVE,), SWEEP_STEP)
    return int(pristine.sum())


async def program_cells(backend: ArrayBackend, rows: NDArray[np.int64], cols: NDArray[np.int64],
                        targets: NDArray[np.float64], settings: ProgramSettings,
                        ctx: RoutineContext | None = None) -> ProgramOutcome:
    """Closed-loop program-and-verify (labctl.routines.program): the backend's native loop, else the
    routines' host loop."""
    return await program_and_verify(backend, rows, cols, targets, settings, ctx or RoutineContext())


async def program_layers(backend: ArrayBackend, mappings: Sequence[LayerMapping],
                         settings: ProgramSettings | None = None, *, prepare: bool = True,
                         ctx: RoutineContext | None = None) -> list[ProgrammedLayer]:
    """Program every tile of `mappings` on `backend` and read back the measured conductances (S)."""
    settings = settings or ProgramSettings()
    placements = place_tiles(mappings, backend.rows, backend.cols)
    measured: list[list[NDArray[np.float64]]] = [[np.empty(0)] * len(m.tiles) for m in mappings]
    iters: list[list[NDArray[np.int32]]] = [[np.empty(0, np.int32)] * len(m.tiles) for m in mappings]
    conv: list[list[NDArray[np.bool_]]] = [[np.empty(0, bool)] * len(m.tiles) for m in mappings]
    n_rounds = max(p.round for p in placements) + 1
    for rnd in range(n_rounds):
        here = [p for p in placements if p.round == rnd]
        cells_r, cells_c, tgt, spans = [], [], [], []
        for p in here:
            tile = mappings[p.layer].tiles[p.tile]
            h, w = tile.shape
            rr, cc = np.meshgrid(np.arange(h) + p.row, np.arange(w) + p.col, indexing="ij")
            spans.append((p, sum(a.size for a in cells_r), h * w))
            cells_r.append(rr.ravel())
            cells_c.append(cc.ravel())
            tgt.append(tile.targets.ravel())
        r = np.concatenate(cells_r).astype(np.int64)
        c = np.concatenate(cells_c).astype(np.int64)
        t = np.concatenate(tgt)
        if prepare:
            await prepare_cells(backend, r, c)
        outcome = await program_cells(backend, r, c, t, settings, ctx)
        g = await backend.read(r, c, settings.v_read, settings.vg_read)
        if ctx is not None:
            await ctx.emit("eval_program", r, c, await backend.now(), target=t, g=g,
                           iterations=outcome.iterations, converged=outcome.converged)
            ctx.progress(rnd + 1, n_rounds, f"programmed round {rnd + 1} of {n_rounds}")
        for p, start, size in spans:
            shape = mappings[p.layer].tiles[p.tile].shape
            measured[p.layer][p.tile] = g[start:start + size].reshape(shape)
            iters[p.layer][p.tile] = np.asarray(outcome.iterations[start:start + size]).reshape(shape)
            conv[p.layer][p.tile] = np.asarray(outcome.converged[start:start + size]).reshape(shape)
    return [ProgrammedLayer(m, measured[i], iters[i], conv[i]) for i, m in enumerate(mappings)]


@dataclass(frozen=True)
class ProgrammingNoiseLaw:
    """Statistical shortcut for programming: measured = target + mean + sigma(target) * xi, with
    sigma = sigma_floor + sigma_slope * target (S; xi standard normal), fitted to programmed cells.
    Used instead of programming every tile on a backend, and labelled as such in results."""

    mean: float
    sigma_floor: float
    sigma_slope: float
    cells: int = 0  # cells the fit saw
    source: str = "fit"

    @classmethod
    def fit(cls, layers: Sequence[ProgrammedLayer], bins: int = 8) -> ProgrammingNoiseLaw:
        """Fit to the measured-minus-target errors of programmed layers: the spread per quantile bin of
        the targets, then a line through the bins' spreads (least squares, floor kept >= 0)."""
        targets = np.concatenate([t.targets.ravel() for layer in layers for t in layer.mapping.tiles])
        errors = np.concatenate([layer.programming_error() for layer in layers])
        if targets.size < 4 * bins:
            raise ValueError(f"layers: need at least {4 * bins} programmed cells to fit a noise law, got {targets.size}")
        edges = np.quantile(targets, np.linspace(0, 1, bins + 1))
        which = np.clip(np.searchsorted(edges, targets, side="right") - 1, 0, bins - 1)
        centre, spread = [], []
        for b in range(bins):
            sel = which == b
            if sel.sum() >= 2:
                centre.append(float(np.mean(targets[sel])))
                spread.append(float(np.std(errors[sel], ddof=1)))
        a = np.vstack([np.ones(len(centre)), centre]).T
        (floor, slope), *_ = np.linalg.lstsq(a, np.asarray(spread), rcond=None)
        if floor < 0:  # a spread proportional to G through the origin
            floor, slope = 0.0, float(np.dot(centre, spread) / np.dot(centre, centre))
        return cls(mean=float(np.mean(errors)), sigma_floor=float(floor), sigma_slope=float(slope),
                   cells=int(targets.size))

    def sigma(self, targets: NDArray[np.float64]) -> NDArray[np.float64]:
        """Spread of the programming error at target conductances (S), S."""
        return np.maximum(self.sigma_floor + self.sigma_slope * np.asarray(targets), 0.0)

    def program(self, mappings: Sequence[LayerMapping], rng: np.random.Generator) -> list[ProgrammedLayer]:
        """Layers 'programmed' by drawing every cell from the law (the statistical shortcut), S."""
        out = []
        for m in mappings:
            measured = [np.maximum(t.targets + self.mean + self.sigma(t.targets) * rng.standard_normal(t.shape), 0.0)
                        for t in m.tiles]
            out.append(ProgrammedLayer(m, measured))
        return out

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)
