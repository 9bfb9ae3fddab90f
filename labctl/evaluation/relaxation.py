"""Conductance relaxation after programming: the law, its fit to retention data, and sampling.

REF §Relaxation after programming: the mean and the standard deviation of G(t) - G_prog evolve
linearly in log time after programming (measured up to a week, extrapolated to 10 years), largest
change within the first second. With u(t) = log10(1 + t / tau):
    mean(t) = mean_offset + mean_per_decade * u(t)
    std(t)  = sqrt(std_floor^2 + (std_per_decade * u(t))^2)
std_floor absorbs what is there at every time (read noise of the retention reads); tau regularizes
t -> 0 (u(0) = 0). The emulator's preset uses the same law, so a fit to emulated retention data
recovers the preset's relax_mean_per_decade and relax_std_per_decade.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from emulator.presets import Preset, get_preset


def log_time(t: ArrayLike, tau: float) -> NDArray[np.float64]:
    """u(t) = log10(1 + t / tau), t and tau in s."""
    return np.log10(1.0 + np.asarray(t, dtype=np.float64) / tau)


@dataclass(frozen=True)
class RelaxationLaw:
    """Mean and spread of G(t) - G_prog linear in u = log10(1 + t/tau). S per unit of u; tau in s."""

    mean_per_decade: float
    std_per_decade: float
    tau: float = 1e-3
    mean_offset: float = 0.0
    std_floor: float = 0.0
    source: str = "preset"

    def __post_init__(self) -> None:
        if not (self.tau > 0 and np.isfinite(self.tau)):
            raise ValueError(f"tau: must be a positive time in s, got {self.tau!r}")
        if not (self.std_per_decade >= 0 and self.std_floor >= 0):
            raise ValueError(f"std_per_decade, std_floor: must be >= 0 S, got {self.std_per_decade!r}, "
                             f"{self.std_floor!r}")

    @classmethod
    def from_preset(cls, preset: str | Preset = "cmo-hfox") -> RelaxationLaw:
        """The law the emulator preset implements (used when no retention data exist)."""
        p = get_preset(preset)
        return cls(mean_per_decade=p.relax_mean_per_decade, std_per_decade=p.relax_std_per_decade,
                   tau=p.relax_tau, source=f"preset {p.name}")

    def mean(self, t: ArrayLike) -> NDArray[np.float64]:
        """Mean change of G at time t (s) after programming, S."""
        return self.mean_offset + self.mean_per_decade * log_time(t, self.tau)

    def std(self, t: ArrayLike) -> NDArray[np.float64]:
        """Spread of the change of G at time t (s) after programming, S."""
        return np.sqrt(self.std_floor ** 2 + (self.std_per_decade * log_time(t, self.tau)) ** 2)

    def sample(self, g0: ArrayLike, times: ArrayLike, rng: np.random.Generator) -> NDArray[np.float64]:
        """Conductances (S) at each of `times` (s after programming) of devices programmed to `g0` (S).

        Returns shape (len(times), *g0.shape). One device's path is a Brownian motion in u^2 (independent
        Gaussian increments), so the spread at every time is std_per_decade * u and later times are
        consistent with earlier ones. The offset and floor terms describe the measurement, not the
        device, and are not added. Conductances stay >= 0.
        """
        g = np.asarray(g0, dtype=np.float64)
        t = np.atleast_1d(np.asarray(times, dtype=np.float64))
        if np.any(t < 0) or not np.all(np.isfinite(t)):
            raise ValueError(f"times: must be finite and >= 0 s, got {times!r}")
        order = np.argsort(t)
        u = log_time(t[order], self.tau)
        var = (self.std_per_decade * u) ** 2
        steps = rng.standard_normal((t.size, *g.shape)) * np.sqrt(np.diff(var, prepend=0.0)).reshape(
            (-1,) + (1,) * g.ndim)
        walk = np.cumsum(steps, axis=0)
        out = np.empty((t.size, *g.shape))
        out[order] = g + self.mean_per_decade * u.reshape((-1,) + (1,) * g.ndim) + walk
        return np.maximum(out, 0.0)

    def to_dict(self) -> dict[str, float | str]:
        return asdict(self)


def fit_relaxation(times: ArrayLike, g: ArrayLike, g_prog: ArrayLike, *, tau: float | None = None,
                   taus: ArrayLike | None = None) -> RelaxationLaw:
    """Fit the relaxation law to retention data.

    times: (n_times,) s after programming; g: (n_cells, n_times) conductances read then, S;
    g_prog: (n_cells,) conductance at programming (last verify read or the target), S.
    The mean of G - G_prog is fitted by least squares as a line in u; the variance as a line in u^2
    (so read noise, present at every time, lands in std_floor). tau (s) is taken as given, or chosen
    from `taus` (default 1e-4 .. 10 s) as the one with the smallest residual of the mean line.
    """
    t = np.asarray(times, dtype=np.float64)
    ga = np.atleast_2d(np.asarray(g, dtype=np.float64))
    g0 = np.asarray(g_prog, dtype=np.float64).reshape(-1)
    if t.ndim != 1 or t.size < 2:
        raise ValueError(f"times: need at least two retention times, got shape {t.shape}")
    if ga.shape != (g0.size, t.size):
        raise ValueError(f"g: expected shape ({g0.size}, {t.size}) (cells, times), got {ga.shape}")
    if g0.size < 2:
        raise ValueError("g_prog: need at least two cells to estimate a spread")
    if np.any(t < 0) or not (np.all(np.isfinite(t)) and np.all(np.isfinite(ga)) and np.all(np.isfinite(g0))):
        raise ValueError("times, g, g_prog: must be finite, with times >= 0 s")
    dg = ga - g0[:, None]
    mean = dg.mean(axis=0)
    var = dg.var(axis=0, ddof=1)
    candidates = [float(tau)] if tau is not None else list(np.asarray(
        taus if taus is not None else np.logspace(-4, 1, 26), dtype=np.float64))
    best: tuple[float, float, float, float] | None = None
    for tc in candidates:
        u = log_time(t, tc)
        a = np.vstack([np.ones_like(u), u]).T
        coef, *_ = np.linalg.lstsq(a, mean, rcond=None)
        resid = float(np.sum((a @ coef - mean) ** 2))
        if best is None or resid < best[0]:
            best = (resid, tc, float(coef[0]), float(coef[1]))
    assert best is not None
    _, tc, offset, slope = best
    u = log_time(t, tc)
    a = np.vstack([np.ones_like(u), u ** 2]).T
    (v0, v1), *_ = np.linalg.lstsq(a, var, rcond=None)
    return RelaxationLaw(mean_per_decade=slope, std_per_decade=float(np.sqrt(max(v1, 0.0))), tau=tc,
                         mean_offset=offset, std_floor=float(np.sqrt(max(v0, 0.0))), source="fit")
