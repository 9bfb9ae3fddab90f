"""Exact crossbar MVM at matmul speed: the transfer matrix of a linear crossbar, and BLAS calls whose
results do not depend on the number of BLAS threads.

With linear cells (every cell its conductance at the read bias) a crossbar with wire resistance is a
linear network: the column currents are a fixed matrix T (rows, cols) times the row voltages,
I = v @ T. `transfer_matrices` computes T once per conductance state; `solve_crossbar` (C, conjugate
gradients per vector) stays the reference it is tested against.

Method: nested dissection with dense Dirichlet-to-Neumann maps. The array of cells is split in halves
(the longer side first) down to single cells; a block's map is the Schur complement of its nodal
Laplacian onto the wire nodes that connect it to the rest (its left and right row nodes, its top and
bottom column nodes; no right rows on the array's right edge and no top columns on its top edge, where
the wires end). A single cell's map is g·[[1, -1], [-1, 1]]; two neighbouring blocks merge by adding the
wire segments between them and eliminating the nodes that no longer touch the outside (Cholesky on the
interface). Blocks of the same shape and position class are merged in one batch. The last map, on the
left row nodes and bottom column nodes, gets the row drivers (one segment each) and the column
grounds (one segment each); T_ij = g_row g_col [M^-1]_ij with M that map plus the segment conductances.

Accuracy: every block is a floating network, so its map's rows sum to zero; diagonals are recomputed
from the off-diagonal sums after every merge (off-diagonals are sums of same-sign terms, so no
cancellation), which keeps the small cell conductances (~1e-5 S) exact next to the wire conductances
(~3 S). Equal to the per-vector nodal solve to ~1e-12 relative (tests/test_crossbar_transfer.py).
Small arrays (below DISSECTION_MIN_CELLS) are built with the C solver instead, one unit vector per row.

Threads: every BLAS call here runs with one BLAS thread (OpenBLAS splits some products differently
with more threads, which changes the last bits). `workers=2` builds the two halves of the array in
two threads, and `crossbar_currents` multiplies fixed blocks of vectors, so the numbers are the same
for any number of workers or cores.
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Literal

import numpy as np
import scipy.linalg as sla
from numpy.typing import ArrayLike, NDArray

Key = tuple[int, int, int]  # (kind, row, col): kind 0 = row-wire node, 1 = column-wire node
Shape = tuple[int, int, bool, bool]  # (rows, cols, on the array's top edge, on its right edge)

MVM_BLOCK = 4096  # vectors per BLAS call in crossbar_currents: a fixed split, whatever the batch
# Below this many cells one C conjugate-gradient solve per row (8 at a time, to relative residual
# SMALL_TOL) builds T faster than the dissection's Python overhead (measured: 64x64 6 ms against 36 ms,
# 128x128 148 ms against 115 ms, 256x256 1.5 s against 0.43 s).
DISSECTION_MIN_CELLS = 128 * 128
SMALL_TOL = 1e-13

_controller_lock = threading.Lock()
_controller: object | None = None


@contextlib.contextmanager
def single_blas() -> Iterator[None]:
    """Run the enclosed BLAS/LAPACK calls with one thread (bit-identical results on any core count)."""
    global _controller
    with _controller_lock:
        if _controller is None:
            from threadpoolctl import ThreadpoolController

            _controller = ThreadpoolController()
    with _controller.limit(limits=1, user_api="blas"):  # type: ignore[attr-defined]
        yield


def _boundary(h: int, w: int, top: bool, right: bool) -> set[Key]:
    """Wire nodes of an h x w block that connect to something outside it."""
    keys = {(0, i, 0) for i in range(h)} | {(1, h - 1, j) for j in range(w)}
    if not right:
        keys |= {(0, i, w - 1) for i in range(h)}
    if not top:
        keys |= {(1, 0, j) for j in range(w)}
    return keys


def _split(shape: Shape) -> tuple[bool, Shape, Shape, tuple[int, int]]:
    """(vertical cut?, first child, second child, offset of the second child)."""
    h, w, top, right = shape
    if w >= h:
        w1 = w - w // 2
        return True, (h, w1, top, False), (h, w // 2, top, right), (0, w1)
    h1 = h - h // 2
    return False, (h1, w, top, right), (h // 2, w, False, right), (h1, 0)


@lru_cache(maxsize=4096)
def _layout(shape: Shape) -> tuple[tuple[Key, ...], dict | None]:
    """Boundary nodes of a block in the order its map stores them, and how it is merged from its halves."""
    h, w = shape[:2]
    if h == 1 and w == 1:
        return ((0, 0, 0), (1, 0, 0)), None
    vertical, c1, c2, off = _split(shape)
    k1 = _layout(c1)[0]
    k2 = tuple((t, i + off[0], j + off[1]) for t, i, j in _layout(c2)[0])
    need = _boundary(*shape)
    parts = {}
    for name, keys in (("1", k1), ("2", k2)):
        parts[name] = ([n for n, k in enumerate(keys) if k not in need], [n for n, k in enumerate(keys) if k in need])
    (e1, kk1), (e2, kk2) = parts["1"], parts["2"]
    where: dict[tuple[str, int], tuple[str, int]] = {}
    for p, n in enumerate(e1):
        where[("1", n)] = ("e", p)
    for p, n in enumerate(e2):
        where[("2", n)] = ("e", len(e1) + p)
    for p, n in enumerate(kk1):
        where[("1", n)] = ("k", p)
    for p, n in enumerate(kk2):
        where[("2", n)] = ("k", len(kk1) + p)
    pos1 = {k: n for n, k in enumerate(k1)}
    pos2 = {k: n for n, k in enumerate(k2)}
    if vertical:  # row-wire segments across the cut
        pairs = [(pos1[(0, i, off[1] - 1)], pos2[(0, i, off[1])]) for i in range(h)]
    else:  # column-wire segments across the cut
        pairs = [(pos1[(1, off[0] - 1, j)], pos2[(1, off[0], j)]) for j in range(w)]
    edges = [(where[("1", a)], where[("2", b)]) for a, b in pairs]
    keys = tuple([k1[n] for n in kk1] + [k2[n] for n in kk2])
    plan = {"vertical": vertical, "c1": c1, "c2": c2, "off": off, "edges": edges,
            "e1": np.array(e1, dtype=np.intp), "k1": np.array(kk1, dtype=np.intp),
            "e2": np.array(e2, dtype=np.intp), "k2": np.array(kk2, dtype=np.intp)}
    return keys, plan


def _merge(s1: NDArray[np.float64], s2: NDArray[np.float64], plan: dict, g_seg: float) -> NDArray[np.float64]:
    """Map of the merged block from its halves' maps (batch, n, n), g_seg S per wire segment across the cut."""
    batch = s1.shape[0]
    e1, k1, e2, k2 = plan["e1"], plan["k1"], plan["e2"], plan["k2"]
    ne1, nk1 = e1.size, k1.size
    ne, nk = ne1 + e2.size, nk1 + k2.size
    see = np.zeros((batch, ne, ne))
    sek = np.zeros((batch, ne, nk))
    skk = np.zeros((batch, nk, nk))
    see[:, :ne1, :ne1] = s1[:, e1[:, None], e1]
    see[:, ne1:, ne1:] = s2[:, e2[:, None], e2]
    sek[:, :ne1, :nk1] = s1[:, e1[:, None], k1]
    sek[:, ne1:, nk1:] = s2[:, e2[:, None], k2]
    skk[:, :nk1, :nk1] = s1[:, k1[:, None], k1]
    skk[:, nk1:, nk1:] = s2[:, k2[:, None], k2]
    for (pa, a), (pb, b) in plan["edges"]:
        (see if pa == "e" else skk)[:, a, a] += g_seg
        (see if pb == "e" else skk)[:, b, b] += g_seg
        if pa == pb:
            m = see if pa == "e" else skk
            m[:, a, b] -= g_seg
            m[:, b, a] -= g_seg
        elif pa == "e":
            sek[:, a, b] -= g_seg
        else:
            sek[:, b, a] -= g_seg
    if ne and (ne < 48 or batch > 8):  # many small interfaces: LAPACK through numpy's batched solve
        skk -= np.matmul(sek.transpose(0, 2, 1), np.linalg.solve(see, sek))
    elif ne:  # few large interfaces: Cholesky, triangular solve, symmetric rank-k update
        for b in range(batch):
            chol = sla.cholesky(see[b], lower=True, overwrite_a=True, check_finite=False)
            y = sla.solve_triangular(chol, sek[b], lower=True, overwrite_b=True, check_finite=False)
            skk[b] -= y.T @ y
    d = np.arange(nk)
    skk[:, d, d] = 0.0
    skk[:, d, d] = -skk.sum(axis=-1)  # a floating network's map: rows sum to zero
    return skk


def _build(g: NDArray[np.float64], shape: Shape, origins: NDArray[np.intp], g_row: float, g_col: float,
           pool: ThreadPoolExecutor | None = None) -> NDArray[np.float64]:
    """Maps of the blocks of `shape` at `origins` (n, 3: array, row, col)."""
    if shape[0] == 1 and shape[1] == 1:
        gv = g[origins[:, 0], origins[:, 1], origins[:, 2]]
        s = np.empty((gv.size, 2, 2))
        s[:, 0, 0] = s[:, 1, 1] = gv
        s[:, 0, 1] = s[:, 1, 0] = -gv
        return s
    _, plan = _layout(shape)
    c1, c2 = plan["c1"], plan["c2"]
    o2 = origins + np.array([0, *plan["off"]])
    n = origins.shape[0]
    if c1 == c2:
        s = _build(g, c1, np.concatenate([origins, o2]), g_row, g_col)
        s1, s2 = s[:n], s[n:]
    elif pool is not None:  # the two halves in two threads; each is computed exactly as in one
        f1 = pool.submit(_build, g, c1, origins, g_row, g_col)
        s2 = _build(g, c2, o2, g_row, g_col)
        s1 = f1.result()
    else:
        s1 = _build(g, c1, origins, g_row, g_col)
        s2 = _build(g, c2, o2, g_row, g_col)
    return _merge(s1, s2, plan, g_row if plan["vertical"] else g_col)


def _check_g(g: ArrayLike) -> NDArray[np.float64]:
    gm = np.asarray(g, dtype=np.float64)
    if gm.ndim not in (2, 3) or gm.size == 0:
        raise ValueError(f"g: expected a (rows, cols) or (arrays, rows, cols) conductance matrix, got shape {gm.shape}")
    if not np.all(np.isfinite(gm)) or gm.min() < 0:
        raise ValueError("g: conductances must be finite and >= 0 S")
    return gm


def transfer_matrices(g: ArrayLike, r_row: float, r_col: float, *, workers: int = 1,
                      method: Literal["auto", "dissection", "solve"] = "auto") -> NDArray[np.float64]:
    """Transfer matrix T (S) of crossbars with conductances `g` (S; (rows, cols) or a stack (n, rows, cols))
    and `r_row` / `r_col` ohm per wire segment: column currents I = v @ T (A) for row voltages v (V).

    Rows are driven at their column-0 end and columns held at 0 V at their last-row end, each through one
    segment, as in `solve_crossbar`. r_row = r_col = 0 gives T = g. workers: 1 or 2 threads (same result).
    method: "dissection" (nested dissection), "solve" (one C solve per row), "auto" (by size, the faster).
    """
    gm = _check_g(g)
    single = gm.ndim == 2
    gs = gm[None] if single else gm
    if not (np.isfinite(r_row) and np.isfinite(r_col) and r_row >= 0 and r_col >= 0):
        raise ValueError(f"r_row, r_col: must be finite and >= 0 ohm, got {r_row!r}, {r_col!r}")
    if workers not in (1, 2):
        raise ValueError(f"workers: must be 1 or 2, got {workers!r}")
    if method not in ("auto", "dissection", "solve"):
        raise ValueError(f"method: must be 'auto', 'dissection' or 'solve', got {method!r}")
    n, rows, cols = gs.shape
    small = method == "solve" or (method == "auto" and rows * cols < DISSECTION_MIN_CELLS)
    if r_row == 0.0 or r_col == 0.0 or small:
        # Ideal rows or columns: the C solver is direct (one tridiagonal solve per line), exact.
        # Small arrays: one C solve per unit row voltage (the C core runs single-threaded).
        from emulator.array import solve_crossbar

        eye = np.eye(rows)
        out = np.stack([solve_crossbar(gk, eye, r_row, r_col, tol=SMALL_TOL) for gk in gs])
        return out[0] if single else out
    g_row, g_col = 1.0 / r_row, 1.0 / r_col
    gs = np.ascontiguousarray(gs)
    origins = np.zeros((n, 3), dtype=np.intp)
    origins[:, 0] = np.arange(n)
    shape: Shape = (rows, cols, True, True)
    with single_blas():
        if workers == 2 and rows * cols > 1:
            with ThreadPoolExecutor(1) as pool:
                s = _build(gs, shape, origins, g_row, g_col, pool)
        else:
            s = _build(gs, shape, origins, g_row, g_col)
        keys = _layout(shape)[0]
        pos = {k: p for p, k in enumerate(keys)}
        left = np.array([pos[(0, i, 0)] for i in range(rows)])
        bottom = np.array([pos[(1, rows - 1, j)] for j in range(cols)])
        ground = np.zeros(len(keys))
        ground[left] += g_row
        ground[bottom] += g_col
        out = np.empty((n, rows, cols))
        rhs0 = np.zeros((len(keys), cols))
        rhs0[bottom, np.arange(cols)] = g_col
        for k in range(n):
            m = s[k] + np.diag(ground)  # the drivers and grounds: every kept node has its own segment
            y = sla.cho_solve(sla.cho_factor(m, lower=True, check_finite=False), rhs0, check_finite=False)
            out[k] = g_row * y[left]
    return out[0] if single else out


def crossbar_currents(v: ArrayLike, transfer: NDArray[np.float64]) -> NDArray[np.float64]:
    """Column currents (A) v @ T for row voltages v (batch, rows; V) and a transfer matrix T (S), computed in
    fixed blocks of MVM_BLOCK vectors with one BLAS thread, so the result is the same on any core count."""
    va = np.atleast_2d(np.asarray(v, dtype=np.float64))
    if va.shape[0] <= MVM_BLOCK:
        with single_blas():
            return va @ transfer
    out = np.empty((va.shape[0], transfer.shape[1]))
    with single_blas():
        for s in range(0, va.shape[0], MVM_BLOCK):
            np.matmul(va[s:s + MVM_BLOCK], transfer, out=out[s:s + MVM_BLOCK])
    return out
