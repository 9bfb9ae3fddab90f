"""Exact crossbar MVM at matmul speed: the transfer matrix of a linear crossbar, BLAS calls whose
results do not depend on the number of BLAS threads, and amplitude-encoded inputs through the cells'
non-linear read I–V.

Two input encodings. Pulse-width: every row is driven at ±v_read for a time proportional to |x|; the
cells see (nearly) the read bias, so they are their conductance at the read bias and the crossbar is
linear: the transfer matrix below (this is a linearization at the read bias, exact for that encoding
as the model states it). Amplitude: row i is driven at x_i·v_read for the whole read; every cell then
conducts at its own voltage through the non-linear I–V (`CellIV`, the emulator's read model), solved by
Newton on the nodal equations per vector (`amplitude_mvm`).

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

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spl
from numpy.typing import ArrayLike, NDArray

from emulator.presets import Preset, get_preset
from labctl.core.blas import single_blas

Key = tuple[int, int, int]  # (kind, row, col): kind 0 = row-wire node, 1 = column-wire node
Shape = tuple[int, int, bool, bool]  # (rows, cols, on the array's top edge, on its right edge)

MVM_BLOCK = 4096  # vectors per BLAS call in crossbar_currents: a fixed split, whatever the batch
# Below this many cells one C conjugate-gradient solve per row (8 at a time, to relative residual
# SMALL_TOL) builds T faster than the dissection's Python overhead (measured: 64x64 6 ms against 36 ms,
# 128x128 148 ms against 115 ms, 256x256 1.5 s against 0.43 s).
DISSECTION_MIN_CELLS = 128 * 128
SMALL_TOL = 1e-13


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


# ---------------------------------------------------------------------------------------- amplitude encoding
@dataclass(frozen=True)
class CellIV:
    """The emulator's read I–V of a formed 1T1R cell (rram.c `read_current`): the selector's triode
    conductance g_sel (S) in series with the ReRAM at its chord conductance g·chi(V), where
    chi(V) = v_ref sinh(nl |V|) / (sinh(nl v_ref) |V|) and g is the state conductance at v_ref:
        I(V) = V / (1 / (g chi(V)) + 1 / g_sel).
    A measured chord conductance G at bias v_meas fixes g (`state`)."""

    nl: float  # 1/V
    v_ref: float  # V
    g_sel: float  # S

    @classmethod
    def from_preset(cls, preset: str | Preset = "cmo-hfox", vg: float = 3.3) -> CellIV:
        """The preset's mean cell read at gate voltage `vg` (V)."""
        p = get_preset(preset)
        ov = vg - p.vt
        if ov <= 0:
            raise ValueError(f"vg: {vg:g} V is below the selector threshold {p.vt:g} V")
        return cls(nl=p.nl, v_ref=p.v_ref, g_sel=ov / ((p.vg_ref - p.vt) * p.rds_ref))

    def _h(self, g: NDArray[np.float64], v: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """ReRAM current h(V) = g v_ref sinh(nl V) / sinh(nl v_ref) and its derivative, A and S."""
        k = g * self.v_ref / np.sinh(self.nl * self.v_ref)
        return k * np.sinh(self.nl * v), k * self.nl * np.cosh(self.nl * v)

    def state(self, g_meas: ArrayLike, v_meas: float) -> NDArray[np.float64]:
        """State conductance g (S) of cells whose 1T1R chord conductance at `v_meas` (V) is `g_meas` (S)."""
        gm = np.asarray(g_meas, dtype=np.float64)
        if np.any(gm >= self.g_sel):
            raise ValueError(f"g_meas: conductances must stay below the selector's {self.g_sel:g} S")
        chi = self.v_ref * np.sinh(self.nl * abs(v_meas)) / (np.sinh(self.nl * self.v_ref) * abs(v_meas))
        return gm * self.g_sel / (self.g_sel - gm) / chi

    def current(self, g: NDArray[np.float64], v: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Current I(V) (A) and differential conductance dI/dV (S) of cells with state g (S) at V (V).
        I = g_sel V h / (h + g_sel V), dI/dV = g_sel (h^2 + g_sel V^2 h') / (h + g_sel V)^2, with the
        limit g_sel h'(0) / (h'(0) + g_sel) at V = 0 (h and I are odd in V)."""
        h, dh = self._h(g, v)
        gs = self.g_sel
        den = h + gs * v
        tiny = np.abs(v) < 1e-12
        with np.errstate(invalid="ignore", divide="ignore"):
            i = np.where(tiny, gs * dh * v / (dh + gs), gs * v * h / np.where(tiny, 1.0, den))
            di = np.where(tiny, gs * dh / (dh + gs), gs * (h * h + gs * v * v * dh) / np.where(tiny, 1.0, den) ** 2)
        return i, di


def _nodal_wires(rows: int, cols: int, g_row: float, g_col: float) -> tuple[sp.csc_matrix, sp.csr_matrix]:
    """Wire Laplacian of the crossbar (drivers and grounds on the diagonal), unknowns [row nodes, column
    nodes] in row-major order, and the incidence P with P x = (row node - column node) per cell."""
    n = rows * cols
    idx = np.arange(n).reshape(rows, cols)
    i_list, j_list, w_list = [], [], []
    for a, b, w in ((idx[:, :-1].ravel(), idx[:, 1:].ravel(), g_row),
                    (n + idx[:-1, :].ravel(), n + idx[1:, :].ravel(), g_col)):
        i_list += [a, b, a, b]
        j_list += [a, b, b, a]
        w_list += [np.full(a.size, w), np.full(a.size, w), np.full(a.size, -w), np.full(a.size, -w)]
    i_list += [idx[:, 0], n + idx[-1, :]]
    j_list += [idx[:, 0], n + idx[-1, :]]
    w_list += [np.full(rows, g_row), np.full(cols, g_col)]
    lap = sp.csc_matrix((np.concatenate(w_list), (np.concatenate(i_list), np.concatenate(j_list))),
                        shape=(2 * n, 2 * n))
    cells = np.arange(n)
    inc = sp.csr_matrix((np.r_[np.ones(n), -np.ones(n)], (np.r_[cells, cells], np.r_[cells, n + cells])),
                        shape=(n, 2 * n))
    return lap, inc


def amplitude_mvm(g_meas: ArrayLike, v_rows: ArrayLike, r_row: float, r_col: float, *, v_meas: float = 0.2,
                  cell: CellIV | None = None, tol: float = 1e-12, max_iterations: int = 50) -> NDArray[np.float64]:
    """Column currents (A) for amplitude-encoded row voltages `v_rows` (batch, rows; V): every cell conducts
    at its own voltage through the non-linear read I–V (`CellIV`; default the cmo-hfox preset at VG 3.3 V),
    its state fixed by the chord conductance `g_meas` (S) measured at `v_meas` (V).

    Wires of `r_row` / `r_col` ohm per segment (both > 0, or both 0: no IR drop, each cell at its row
    voltage). Newton on the full nodal equations of each vector, started
    from the linear crossbar at the measured conductances (steps by conjugate gradients preconditioned
    with its LU), until the largest node-voltage step is below `tol` times the largest row voltage.
    """
    gm = _check_g(g_meas)
    if gm.ndim != 2:
        raise ValueError(f"g_meas: expected one (rows, cols) matrix, got shape {gm.shape}")
    rows, cols = gm.shape
    v = np.atleast_2d(np.asarray(v_rows, dtype=np.float64))
    if v.ndim != 2 or v.shape[1] != rows:
        raise ValueError(f"v_rows: expected shape (batch, {rows}), got {np.shape(v_rows)}")
    cell = cell or CellIV.from_preset()
    g = cell.state(gm, v_meas).ravel()
    if r_row == 0.0 and r_col == 0.0:
        out = np.empty((v.shape[0], cols))
        for b in range(v.shape[0]):
            out[b] = cell.current(g.reshape(rows, cols), np.repeat(v[b][:, None], cols, axis=1))[0].sum(axis=0)
        return out
    if not (r_row > 0 and r_col > 0 and np.isfinite(r_row) and np.isfinite(r_col)):
        raise ValueError(f"r_row, r_col: amplitude encoding needs both > 0 ohm or both 0, got {r_row!r}, {r_col!r}")
    g_row, g_col = 1.0 / r_row, 1.0 / r_col
    n = rows * cols
    lap, inc = _nodal_wires(rows, cols, g_row, g_col)
    drive = np.arange(rows) * cols  # first node of each row
    out_nodes = n + (rows - 1) * cols + np.arange(cols)
    linear = spl.splu((lap + inc.T @ sp.diags(gm.ravel()) @ inc).tocsc())
    precond = spl.LinearOperator((2 * n, 2 * n), matvec=linear.solve)
    out = np.empty((v.shape[0], cols))
    for b in range(v.shape[0]):
        rhs = np.zeros(2 * n)
        rhs[drive] = g_row * v[b]
        x = linear.solve(rhs)
        scale = max(float(np.max(np.abs(v[b]))), 1e-300)
        for _ in range(max_iterations):
            i, di = cell.current(g, inc @ x)
            f = lap @ x - rhs + inc.T @ i
            # The Newton step J dx = f, J = wires + P^T diag(dI/dV) P (SPD), by conjugate gradients
            # preconditioned with the linear crossbar's LU: dI/dV is within ~10 % of the measured
            # conductances, so a few iterations reach the step to round-off.
            jac = (lap + inc.T @ sp.diags(di) @ inc).tocsr()
            dx, info = spl.cg(jac, f, rtol=1e-14, atol=0.0, maxiter=200, M=precond)
            if info != 0:
                dx = spl.spsolve(jac.tocsc(), f)
            x -= dx
            if np.max(np.abs(dx)) <= tol * scale:
                break
        else:
            raise RuntimeError(f"amplitude_mvm: Newton did not converge in {max_iterations} iterations")
        out[b] = g_col * x[out_nodes]
    return out
