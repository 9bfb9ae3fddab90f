"""Metric extraction from measured traces: pure functions on numpy arrays, SI units.

Formulas follow ../shared/reference/cmo-hfox-1t1r.md (REF): forming extraction at the largest dI/dV
(§Forming), the open-loop pulsed-response metrics N_states, SP_skew and NSR (§Open-loop), the
programming noise σ_prog against G_target (§Closed-loop) and the log-time fits of relaxation (§Relaxation).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray


@dataclass(frozen=True)
class FormingMetrics:
    """Per cell: 1T1R forming voltage (V), forming current (A), ReRAM forming voltage (V), formed flag."""

    v_form_1t1r: NDArray[np.float64]
    i_form: NDArray[np.float64]
    v_form_reram: NDArray[np.float64]
    formed: NDArray[np.bool_]

    @property
    def yield_fraction(self) -> float:
        """Fraction of cells that formed."""
        return float(np.mean(self.formed)) if self.formed.size else 0.0


def forming_metrics(voltages: ArrayLike, currents: ArrayLike, r_ds: float,
                    min_jump: float = 20e-6) -> FormingMetrics:
    """Forming extraction of REF §Forming from a rising quasi-static sweep.

    voltages: applied top-electrode voltages (V), shape (n_points,), rising.
    currents: currents (A), shape (n_cells, n_points).
    r_ds: selector triode resistance at the forming gate voltage (ohm).
    The forming point is where dI/dV is largest; the forming voltage and current are taken at the
    last point before that jump (the breakdown point), and V_reram = V_1T1R - r_ds * I_form.
    A cell whose largest current step is below `min_jump` (A) did not form (NaN results).
    """
    v = np.asarray(voltages, dtype=np.float64)
    i = np.atleast_2d(np.asarray(currents, dtype=np.float64))
    if v.ndim != 1 or i.shape[1] != v.size or v.size < 2:
        raise ValueError(f"currents: expected shape (n_cells, {v.size}) matching voltages, got {i.shape}")
    if np.any(np.diff(v) <= 0):
        raise ValueError("voltages: the forming sweep must be strictly rising")
    di = np.diff(i, axis=1)
    slope = di / np.diff(v)
    k = np.argmax(slope, axis=1)
    rows = np.arange(i.shape[0])
    formed = di[rows, k] >= min_jump
    v1 = np.where(formed, v[k], np.nan)
    i1 = np.where(formed, i[rows, k], np.nan)
    return FormingMetrics(v_form_1t1r=v1, i_form=i1, v_form_reram=v1 - r_ds * i1, formed=formed)


@dataclass(frozen=True)
class OpenLoopMetrics:
    """Per device (arrays of shape (n_cells,)): REF §Open-loop metrics; conductances in S."""

    g_max: NDArray[np.float64]
    g_min: NDArray[np.float64]
    g_sp: NDArray[np.float64]
    dg_sp: NDArray[np.float64]
    dg_sp_std: NDArray[np.float64]
    n_states: NDArray[np.float64]
    sp_skew: NDArray[np.float64]
    nsr: NDArray[np.float64]


def swing_extremes(swing: ArrayLike, swing_direction: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """G_max and G_min per cell (S) of full swings: the means of the last 10 % of every up / down batch.

    swing: (n_cells, n_swing) conductances read after every pulse; swing_direction: (n_swing,) ±1.
    """
    sw = np.atleast_2d(np.asarray(swing, dtype=np.float64))
    sd = np.asarray(swing_direction)
    if sd.shape != (sw.shape[1],):
        raise ValueError(f"swing_direction: expected {sw.shape[1]} entries, got shape {sd.shape}")
    # Ends of each batch: runs of equal direction.
    edges = np.flatnonzero(np.diff(sd) != 0) + 1
    starts = np.concatenate([[0], edges])
    ends = np.concatenate([edges, [sd.size]])
    up_tail, down_tail = [], []
    for s, e in zip(starts, ends):
        tail = sw[:, e - max(1, (e - s) // 10):e]
        (up_tail if sd[s] > 0 else down_tail).append(tail)
    if not up_tail or not down_tail:
        raise ValueError("swing_direction: needs at least one up batch and one down batch")
    return np.concatenate(up_tail, axis=1).mean(axis=1), np.concatenate(down_tail, axis=1).mean(axis=1)


def open_loop_metrics(swing: ArrayLike, swing_direction: ArrayLike, alternating: ArrayLike,
                      alternating_direction: ArrayLike, settle: int | None = None) -> OpenLoopMetrics:
    """Open-loop metrics of REF §Open-loop from conductance traces read after every pulse.

    swing: (n_cells, n_swing) conductances (S) during the N-up/N-down batches;
    swing_direction: (n_swing,) +1 for an up (set) pulse, -1 for down (reset);
    alternating: (n_cells, n_alt + 1) conductances during the 1-up/1-down sequence, the first column
      read before its first pulse; alternating_direction: (n_alt,) +1/-1 per pulse.
    settle: alternating pulses discarded while the conductance walks to the symmetry point
      (default: the first half).
    G_max / G_min are the means of the last 10 % of each up / down batch (the saturated ends of the
    full swings); G_sp is the mean conductance over the settled alternating sequence and ΔG_sp the mean
    of the direction-signed steps there; N_states = (G_max - G_min)/ΔG_sp,
    SP_skew = (G_max - G_sp)/(G_max - G_min), NSR = σ(ΔG_sp)/ΔG_sp.
    """
    alt = np.atleast_2d(np.asarray(alternating, dtype=np.float64))
    ad = np.asarray(alternating_direction, dtype=np.float64)
    if ad.shape != (alt.shape[1] - 1,):
        raise ValueError(f"alternating_direction: expected {alt.shape[1] - 1} entries, got shape {ad.shape}")
    g_max, g_min = swing_extremes(swing, swing_direction)
    sp = symmetry_point_metrics(alt, ad, settle)
    g_sp, dg, dg_std = sp.g_sp, sp.dg_sp, sp.dg_sp_std
    window = g_max - g_min
    with np.errstate(divide="ignore", invalid="ignore"):
        return OpenLoopMetrics(g_max=g_max, g_min=g_min, g_sp=g_sp, dg_sp=dg, dg_sp_std=dg_std,
                               n_states=window / dg, sp_skew=(g_max - g_sp) / window, nsr=dg_std / dg)


@dataclass(frozen=True)
class SymmetryPointMetrics:
    """Per device: conductance at the symmetry point (S), mean and std of its signed step (S)."""

    g_sp: NDArray[np.float64]
    dg_sp: NDArray[np.float64]
    dg_sp_std: NDArray[np.float64]


def symmetry_point_metrics(alternating: ArrayLike, alternating_direction: ArrayLike,
                           settle: int | None = None) -> SymmetryPointMetrics:
    """G_sp, ΔG_sp and σ(ΔG_sp) of REF §Open-loop from a 1-up/1-down sequence.

    alternating: (n_cells, n_alt + 1) conductances (S), the first column read before the first pulse;
    alternating_direction: (n_alt,) +1 (set) / -1 (reset) per pulse;
    settle: pulses discarded while the conductance walks to the symmetry point (default: first half).
    G_sp is the mean conductance after the settled pulses; a step is the conductance change of one
    pulse times its direction (so both up and down steps count positive when the device moves the
    way it is pushed); ΔG_sp and σ(ΔG_sp) are their mean and sample std.
    """
    alt = np.atleast_2d(np.asarray(alternating, dtype=np.float64))
    ad = np.asarray(alternating_direction, dtype=np.float64)
    if ad.shape != (alt.shape[1] - 1,):
        raise ValueError(f"alternating_direction: expected {alt.shape[1] - 1} entries, got shape {ad.shape}")
    n0 = ad.size // 2 if settle is None else settle
    if not 0 <= n0 < ad.size - 1:
        raise ValueError(f"settle: must leave at least two alternating pulses, got {settle}")
    steps = np.diff(alt, axis=1)[:, n0:] * ad[n0:]
    return SymmetryPointMetrics(g_sp=alt[:, n0 + 1:].mean(axis=1), dg_sp=steps.mean(axis=1),
                                dg_sp_std=steps.std(axis=1, ddof=1))


# ----------------------------------------------------------------------------- fits


@dataclass(frozen=True)
class LinearFit:
    """y = slope * x + intercept, least squares; r is the correlation coefficient, n the points used."""

    slope: float
    intercept: float
    r: float
    n: int

    def __call__(self, x: ArrayLike) -> NDArray[np.float64]:
        return self.slope * np.asarray(x, dtype=np.float64) + self.intercept


def linear_fit(x: ArrayLike, y: ArrayLike) -> LinearFit:
    """Least-squares line through the finite (x, y) pairs: scipy.stats.linregress's slope, intercept
    and r, computed with its very operations in numpy (the same bits; importing scipy.stats costs
    about a second, more than a run report's figures).

    Fewer than two distinct x: NaN slope and intercept (nothing to fit, reported as such).
    """
    xa = np.asarray(x, dtype=np.float64).ravel()
    ya = np.asarray(y, dtype=np.float64).ravel()
    if xa.shape != ya.shape:
        raise ValueError(f"x, y: expected equal lengths, got {xa.size} and {ya.size}")
    ok = np.isfinite(xa) & np.isfinite(ya)
    xa, ya = xa[ok], ya[ok]
    if xa.size < 2 or np.ptp(xa) == 0:
        return LinearFit(math.nan, math.nan, math.nan, int(xa.size))
    ssxm, ssxym, _, ssym = np.cov(xa, ya, bias=1).flat
    if ssym == 0.0:  # a flat line (linregress: NaN, or 0 where rounding left a covariance)
        r = math.nan if ssxym == 0 else 0.0
    else:
        r = float(min(1.0, max(-1.0, ssxym / np.sqrt(ssxm * ssym))))
    slope = ssxym / ssxm
    return LinearFit(float(slope), float(np.mean(ya, None) - slope * np.mean(xa, None)), r, int(xa.size))


def log_time_fit(times: ArrayLike, values: ArrayLike) -> LinearFit:
    """Line in log10(time): values = slope * log10(t / 1 s) + intercept (REF §Relaxation: mean and std
    evolve linearly in log time). times in s, > 0."""
    t = np.asarray(times, dtype=np.float64)
    if np.any(~(t > 0)):
        raise ValueError("times: must be positive (s) for a log-time fit")
    return linear_fit(np.log10(t), values)


# ----------------------------------------------------------------------------- programming noise


@dataclass(frozen=True)
class ProgrammingNoise:
    """Per target level (arrays of shape (n_levels,)): the programmed distribution, S.

    sigma_fit: σ_prog = slope · G_target + intercept over the levels with at least two cells
    (REF §Closed-loop: σ_prog is linear in G_target).
    """

    levels: NDArray[np.float64]
    count: NDArray[np.int64]
    mean: NDArray[np.float64]
    sigma: NDArray[np.float64]
    sigma_fit: LinearFit


def programming_noise(targets: ArrayLike, g: ArrayLike, mask: ArrayLike | None = None) -> ProgrammingNoise:
    """σ_prog against G_target: group the programmed conductances `g` (S) by their exact target (S).

    mask: cells to include (e.g. only the converged ones); default all finite values.
    σ is the sample std (ddof 1) of each level; levels with one cell get NaN and stay out of the fit.
    """
    t = np.asarray(targets, dtype=np.float64).ravel()
    ga = np.asarray(g, dtype=np.float64).ravel()
    if t.shape != ga.shape:
        raise ValueError(f"targets, g: expected equal lengths, got {t.size} and {ga.size}")
    keep = np.isfinite(ga) & np.isfinite(t)
    if mask is not None:
        keep &= np.asarray(mask, dtype=bool).ravel()
    levels, inverse = np.unique(t, return_inverse=True)
    count = np.bincount(inverse, weights=keep, minlength=levels.size).astype(np.int64)
    mean = np.full(levels.size, np.nan)
    sigma = np.full(levels.size, np.nan)
    for k in range(levels.size):
        sel = keep & (inverse == k)
        if count[k] >= 1:
            mean[k] = ga[sel].mean()
        if count[k] >= 2:
            sigma[k] = ga[sel].std(ddof=1)
    return ProgrammingNoise(levels=levels, count=count, mean=mean, sigma=sigma,
                            sigma_fit=linear_fit(levels, sigma))
