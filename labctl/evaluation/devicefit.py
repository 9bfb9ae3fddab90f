"""Device-model fitting from open-loop traces and sampling of new device populations.

REF §Open-loop pulsed response: identical set/reset pulses, the conductance read after every pulse;
the potentiation/depression curves follow a generalized soft-bounds model with an exponent per
direction. Model used here (the same law as the emulator's rram.c and the training kernel
rram_train.c): with span = G_max - G_min, one up pulse moves y = (G_max - G)/span along
dy/dm = -y^gamma_up over a pulse of strength m = a_up; one down pulse moves y = (G - G_min)/span with
a_down, gamma_down. For weak pulses the step is a * span * y^gamma. Each step carries cycle-to-cycle
noise (1 + c2c_sigma * xi).

Reported per device, in REF's terms: G_max, G_min, dG_sp (mean step at the symmetry point G_sp),
up_down = (a_up - a_down)/(a_up + a_down), gamma = (gamma_up + gamma_down)/2 and
gamma_up_down = (gamma_up - gamma_down)/(gamma_up + gamma_down).

Populations (REF: device-to-device variability from multivariate Gaussians): the window and step
block (G_max, G_min, ln a, up_down), which fixes N_states and the symmetry point together with the
exponents, is drawn from one multivariate Gaussian, and (gamma, gamma_up_down) from an independent one.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import sparse
from scipy.optimize import least_squares

from labctl.backends.base import ArrayBackend
from labctl.core import reference as ref
from labctl.core.blas import single_blas
from labctl.routines.open_loop import OpenLoopParams, open_loop

FloatArray = NDArray[np.float64]


def bound_after(y: ArrayLike, gamma: ArrayLike, m: ArrayLike) -> FloatArray:
    """Normalized distance to the bound after one pulse of strength m (integral of dy/dm = -y^gamma)."""
    y = np.maximum(np.asarray(y, dtype=np.float64), 0.0)
    g = np.asarray(gamma, dtype=np.float64)
    m = np.asarray(m, dtype=np.float64)
    gm1 = g - 1.0
    small = np.abs(gm1) < 1e-9
    safe = np.where(small, 1.0, gm1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        base = 1.0 + safe * m * np.where(y > 0, y, 1.0) ** safe
        pw = np.where(base > 0, np.where(base > 0, base, 1.0) ** (-1.0 / safe), 0.0)
        out = np.where(small, y * np.exp(-m), y * pw)
    return np.where(y > 0, out, 0.0)


@dataclass(frozen=True)
class DeviceParameters:
    """Per-device soft-bounds parameters (arrays of one shape; conductances in S)."""

    g_max: FloatArray
    g_min: FloatArray
    a_up: FloatArray
    a_down: FloatArray
    gamma_up: FloatArray
    gamma_down: FloatArray
    c2c_sigma: FloatArray

    def __post_init__(self) -> None:
        for name in ("g_max", "g_min", "a_up", "a_down", "gamma_up", "gamma_down", "c2c_sigma"):
            object.__setattr__(self, name, np.atleast_1d(np.asarray(getattr(self, name), dtype=np.float64)))

    @property
    def n(self) -> int:
        return int(self.g_max.size)

    def step_up(self, g: ArrayLike) -> FloatArray:
        """Expected (noise-free) conductance step of one up pulse at conductance g, S."""
        span = self.g_max - self.g_min
        y = (self.g_max - np.asarray(g)) / span
        return (np.maximum(y, 0) - bound_after(y, self.gamma_up, self.a_up)) * span

    def step_down(self, g: ArrayLike) -> FloatArray:
        """Expected magnitude of the step of one down pulse at conductance g, S."""
        span = self.g_max - self.g_min
        y = (np.asarray(g) - self.g_min) / span
        return (np.maximum(y, 0) - bound_after(y, self.gamma_down, self.a_down)) * span

    def symmetry_point(self, iterations: int = 60) -> FloatArray:
        """G_sp: conductance where the expected up and down steps are equal (bisection), S."""
        lo, hi = self.g_min.copy(), self.g_max.copy()
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            above = self.step_up(mid) < self.step_down(mid)
            hi = np.where(above, mid, hi)
            lo = np.where(above, lo, mid)
        return 0.5 * (lo + hi)

    @property
    def dg_sp(self) -> FloatArray:
        """Mean step at the symmetry point, S."""
        return self.step_up(self.symmetry_point())

    @property
    def up_down(self) -> FloatArray:
        return (self.a_up - self.a_down) / (self.a_up + self.a_down)

    @property
    def gamma(self) -> FloatArray:
        return 0.5 * (self.gamma_up + self.gamma_down)

    @property
    def gamma_up_down(self) -> FloatArray:
        return (self.gamma_up - self.gamma_down) / (self.gamma_up + self.gamma_down)

    @property
    def n_states(self) -> FloatArray:
        """REF N_states = (G_max - G_min) / dG_sp."""
        return (self.g_max - self.g_min) / self.dg_sp

    @property
    def sp_skew(self) -> FloatArray:
        """REF SP_skew = (G_max - G_sp) / (G_max - G_min)."""
        return (self.g_max - self.symmetry_point()) / (self.g_max - self.g_min)

    def summary(self) -> dict[str, dict[str, float]]:
        """Mean and std over devices of every REF parameter (SI units)."""
        values = {"g_max": self.g_max, "g_min": self.g_min, "dg_sp": self.dg_sp, "up_down": self.up_down,
                  "gamma": self.gamma, "gamma_up_down": self.gamma_up_down, "n_states": self.n_states,
                  "sp_skew": self.sp_skew, "c2c_sigma": self.c2c_sigma}
        return {k: {"mean": float(np.mean(v)), "std": float(np.std(v))} for k, v in values.items()}

    def to_dict(self) -> dict[str, list[float]]:
        return {k: np.asarray(v).tolist() for k, v in asdict(self).items()}

    def select(self, index: ArrayLike) -> DeviceParameters:
        i = np.asarray(index)
        return DeviceParameters(**{k: np.asarray(v)[i] for k, v in asdict(self).items()})


def pulse_sequence(swing: ArrayLike, swing_direction: ArrayLike, alternating: ArrayLike | None = None,
                   alternating_direction: ArrayLike | None = None) -> tuple[FloatArray, NDArray[np.int8]]:
    """Reads (n_cells, n) and pulse directions (n,) of REF open-loop traces (layout of
    labctl.routines.metrics.open_loop_metrics) as one sequence: read k was taken after pulse k."""
    sw = np.atleast_2d(np.asarray(swing, dtype=np.float64))
    sd = np.asarray(swing_direction, dtype=np.int8)
    if sd.shape != (sw.shape[1],):
        raise ValueError(f"swing_direction: expected {sw.shape[1]} entries, got shape {sd.shape}")
    reads, dirs = [sw], [sd]
    if alternating is not None:
        alt = np.atleast_2d(np.asarray(alternating, dtype=np.float64))
        ad = np.asarray(alternating_direction, dtype=np.int8)
        if alt.shape[0] != sw.shape[0] or ad.shape != (alt.shape[1] - 1,):
            raise ValueError(f"alternating: expected shape ({sw.shape[0]}, n + 1) with n directions, got "
                             f"{alt.shape} and {ad.shape}")
        reads.append(alt[:, 1:])  # alt[:, 0] is the last swing read
        dirs.append(ad)
    return np.concatenate(reads, axis=1), np.concatenate(dirs)


def _fit_all(g: FloatArray, d: NDArray[np.int8]) -> tuple[FloatArray, FloatArray]:
    """Least-squares fit of every device's read sequence g (n_cells, n) after pulses d (n,):
    params (n_cells, 6) = (g_max, g_min, ln a_up, ln a_down, gamma_up, gamma_down) and c2c_sigma.

    Pulse k moves the cell from read k-1 to read k. Regressing that step on read k-1 would bias the fit
    (the read noise of read k-1 enters both: regression to the mean), strongly where steps are as small
    as the read noise, near the bounds. The state before pulse k is instead predicted from read k-2 and
    the model's step of pulse k-1, whose errors are independent of the step's own noise.
    Devices are fitted together as one sparse problem (each residual depends on its own device's six
    parameters only), which lets finite differences cost six evaluations per Jacobian for any array size.
    """
    n_dev = g.shape[0]
    scale = np.maximum(np.percentile(g, 99.5, axis=1) - np.percentile(g, 0.5, axis=1), 1e-12)[:, None]
    x = g / scale  # each device in units of its own observed window, for conditioning
    x_prev, step = x[:, :-2], x[:, 2:] - x[:, 1:-1]
    up_prev = (d[1:-1] > 0)[None, :]
    up = (d[2:] > 0)[None, :]
    hi0 = np.percentile(x, 99.5, axis=1)
    lo0 = np.percentile(x, 0.5, axis=1)
    mean_up = np.maximum(np.mean(np.where(up, step, 0), axis=1) / max(up.mean(), 1e-9), 1e-3)
    mean_dn = np.maximum(-np.mean(np.where(~up, step, 0), axis=1) / max((~up).mean(), 1e-9), 1e-3)

    def steps(xx: FloatArray, is_up: NDArray[np.bool_], p: FloatArray) -> FloatArray:
        gmax, gmin, la_u, la_d, gu, gd = (p[:, i:i + 1] for i in range(6))
        span = gmax - gmin
        yu = (gmax - xx) / span
        yd = (xx - gmin) / span
        su = (np.maximum(yu, 0) - bound_after(yu, gu, np.exp(la_u))) * span
        sd = (np.maximum(yd, 0) - bound_after(yd, gd, np.exp(la_d))) * span
        return np.where(is_up, su, -sd)

    def model(flat: FloatArray) -> FloatArray:
        p = flat.reshape(n_dev, 6)
        return steps(x_prev + steps(x_prev, up_prev, p), up, p)

    p0 = np.column_stack([hi0 + 0.02, lo0 - 0.02, np.log(2.0 * mean_up), np.log(2.0 * mean_dn),
                          np.ones(n_dev), np.ones(n_dev)])
    lb = np.column_stack([hi0 - 0.5, np.zeros(n_dev), np.full(n_dev, np.log(1e-5)), np.full(n_dev, np.log(1e-5)),
                          np.full(n_dev, 0.1), np.full(n_dev, 0.1)])
    ub = np.column_stack([hi0 + 2.0, lo0 + 0.5, np.full(n_dev, np.log(5.0)), np.full(n_dev, np.log(5.0)),
                          np.full(n_dev, 6.0), np.full(n_dev, 6.0)])
    p0 = np.clip(p0, lb + 1e-9, ub - 1e-9)
    m = step.shape[1]
    sparsity = sparse.kron(sparse.identity(n_dev, format="csr"), np.ones((m, 6)), format="csr")
    weight = np.ones_like(step)

    def resid(flat: FloatArray) -> FloatArray:
        return ((model(flat) - step) * weight).ravel()

    res = least_squares(resid, p0.ravel(), bounds=(lb.ravel(), ub.ravel()), x_scale="jac",
                        jac_sparsity=sparsity, max_nfev=200)
    # Cycle-to-cycle noise is multiplicative: refit with weights 1/sigma(step), where the step's std is
    # c2c * |predicted step| plus a floor for the reads (estimated where the predicted step is smallest).
    pred = model(res.x)
    r2 = (pred - step) ** 2
    small = np.abs(pred) <= np.percentile(np.abs(pred), 10, axis=1, keepdims=True)
    floor2 = np.maximum(np.sum(r2 * small, axis=1) / np.maximum(small.sum(axis=1), 1), 1e-10)
    c2c2 = np.maximum((r2.mean(axis=1) - floor2) / np.maximum((pred ** 2).mean(axis=1), 1e-300), 1e-4)
    weight = 1.0 / np.sqrt(c2c2[:, None] * pred ** 2 + floor2[:, None])
    res = least_squares(resid, res.x, bounds=(lb.ravel(), ub.ravel()), x_scale="jac", jac_sparsity=sparsity,
                        max_nfev=200)
    p = res.x.reshape(n_dev, 6).copy()
    pred = model(res.x)
    r2 = (pred - step) ** 2
    floor2 = np.sum(r2 * small, axis=1) / np.maximum(small.sum(axis=1), 1)
    # Step noise relative to the step, without the read-noise floor; the previous step's noise also
    # enters through the predicted state, which this ratio slightly overstates.
    noise = np.sqrt(np.maximum(r2.mean(axis=1) - floor2, 0.0) / np.maximum((pred ** 2).mean(axis=1), 1e-300))
    p[:, 0] *= scale[:, 0]
    p[:, 1] *= scale[:, 0]
    return p, noise


def fit_devices(swing: ArrayLike, swing_direction: ArrayLike, alternating: ArrayLike | None = None,
                alternating_direction: ArrayLike | None = None) -> DeviceParameters:
    """Fit the generalized soft-bounds model to every device's open-loop trace (REF §Open-loop).

    Conductances in S. The mean step as a function of the conductance before the pulse is fitted by
    least squares per device; c2c_sigma is the residual step std relative to the predicted step
    (read noise included, which is small against the step for the reference devices)."""
    g, d = pulse_sequence(swing, swing_direction, alternating, alternating_direction)
    return fit_sequences(g, d)


@single_blas()
def fit_sequences(g: ArrayLike, directions: ArrayLike) -> DeviceParameters:
    """fit_devices on one read sequence per device: g (n_cells, n) read after pulse k of directions (n,) (+1 up).

    Runs with BLAS on one thread (labctl.core.blas): the same traces give the same fit on any core count."""
    g = np.atleast_2d(np.asarray(g, dtype=np.float64))
    d = np.asarray(directions, dtype=np.int8)
    if d.shape != (g.shape[1],):
        raise ValueError(f"directions: expected {g.shape[1]} entries, got shape {d.shape}")
    if not np.all(np.isfinite(g)):
        raise ValueError("swing, alternating: traces contain NaN or inf")
    if g.shape[1] < 20:
        raise ValueError(f"swing: need at least 20 pulses per device to fit 6 parameters, got {g.shape[1]}")
    out, sig = _fit_all(g, d)
    return DeviceParameters(g_max=out[:, 0], g_min=out[:, 1], a_up=np.exp(out[:, 2]), a_down=np.exp(out[:, 3]),
                            gamma_up=out[:, 4], gamma_down=out[:, 5], c2c_sigma=sig)


@dataclass(frozen=True)
class DevicePopulation:
    """Multivariate Gaussians of fitted device parameters, to draw new devices from (REF §Open-loop).

    block_a: (G_max S, G_min S, ln a, up_down); block_b: (gamma, gamma_up_down); independent blocks.
    """

    mean_a: FloatArray
    cov_a: FloatArray
    mean_b: FloatArray
    cov_b: FloatArray
    c2c_sigma: float

    @classmethod
    def from_devices(cls, params: DeviceParameters) -> DevicePopulation:
        if params.n < 2:
            raise ValueError(f"params: need at least two fitted devices for a covariance, got {params.n}")
        a = np.column_stack([params.g_max, params.g_min, np.log(np.sqrt(params.a_up * params.a_down)),
                             params.up_down])
        b = np.column_stack([params.gamma, params.gamma_up_down])
        return cls(mean_a=a.mean(axis=0), cov_a=np.atleast_2d(np.cov(a, rowvar=False)), mean_b=b.mean(axis=0),
                   cov_b=np.atleast_2d(np.cov(b, rowvar=False)), c2c_sigma=float(np.mean(params.c2c_sigma)))

    def sample(self, n: int, rng: np.random.Generator, *, dtod: float = 1.0) -> DeviceParameters:
        """n new devices; dtod scales the device-to-device spread (0: every device is the mean device)."""
        if n < 1:
            raise ValueError(f"n: must be >= 1, got {n}")
        a = rng.multivariate_normal(self.mean_a, self.cov_a * dtod ** 2, size=n, method="eigh")
        b = rng.multivariate_normal(self.mean_b, self.cov_b * dtod ** 2, size=n, method="eigh")
        g_max = a[:, 0]
        g_min = np.clip(a[:, 1], 0.0, None)
        bad = g_min >= 0.9 * g_max  # keep a usable window
        g_min = np.where(bad, 0.9 * g_max, g_min)
        a_mid = np.exp(a[:, 2])
        ud = np.clip(a[:, 3], -0.95, 0.95)
        gamma = np.clip(b[:, 0], 0.1, None)
        gud = np.clip(b[:, 1], -0.9, 0.9)
        return DeviceParameters(g_max=g_max, g_min=g_min, a_up=a_mid * np.sqrt((1 + ud) / (1 - ud)),
                                a_down=a_mid * np.sqrt((1 - ud) / (1 + ud)), gamma_up=gamma * (1 + gud),
                                gamma_down=gamma * (1 - gud), c2c_sigma=np.full(n, self.c2c_sigma))

    def to_dict(self) -> dict[str, object]:
        return {k: (np.asarray(v).tolist() if isinstance(v, np.ndarray) else v) for k, v in asdict(self).items()}


async def measure_open_loop(backend: ArrayBackend, rows: ArrayLike, cols: ArrayLike, *,
                            batch: int = ref.OPEN_LOOP_BATCH, cycles: int = 2,
                            alternating: int = ref.OPEN_LOOP_ALTERNATING,
                            v_read: float = ref.V_READ,
                            ) -> tuple[FloatArray, NDArray[np.int8], FloatArray, NDArray[np.int8]]:
    """REF §Open-loop on formed cells of an ArrayBackend (the routine labctl.routines.open_loop):
    `cycles` x (batch up, batch down), then `alternating` 1-up/1-down pulses, reading after every
    pulse. Returns (swing, swing_direction, alternating, alternating_direction) in the layout
    fit_devices takes (conductances in S)."""
    res = await open_loop(backend, np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64),
                          OpenLoopParams(batch=batch, cycles=cycles, pulses=alternating, v_read=v_read,
                                         keep_traces=True))
    return res.swing, res.swing_directions, res.alternating, res.alternating_directions
