"""The pulsed-update kernel is unbiased (issue 18, item 4): applied pulses against their exact
expectation, with the spread the shared pulse trains give (not Poisson)."""
from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from emulator.train import PulsedTile

BL = 31


def _probabilities(x: NDArray[np.float64], d: NDArray[np.float64], lr: float, dw_min: float,
                   bl: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Firing probabilities (batch, cols) and (batch, rows) of the kernel's update management."""
    k = lr / (bl * dw_min)
    xm = np.abs(x).max(axis=1, keepdims=True)
    dm = np.abs(d).max(axis=1, keepdims=True)
    return np.abs(x) * np.sqrt(k * dm / xm), np.abs(d) * np.sqrt(k * xm / dm)


def _moments(px: NDArray[np.float64], pd: NDArray[np.float64], bl: int) -> tuple[float, float]:
    """Exact mean and variance of the pulses of one update: per slot the count is D * X, D and X
    independent sums of Bernoulli draws (firing rows, firing columns), independent across slots."""
    mx, vx = px.sum(axis=1), (px * (1 - px)).sum(axis=1)
    md, vd = pd.sum(axis=1), (pd * (1 - pd)).sum(axis=1)
    return float(bl * np.sum(mx * md)), float(bl * np.sum((vd + md ** 2) * (vx + mx ** 2) - md ** 2 * mx ** 2))


def _tile(rows: int, cols: int, seed: int) -> PulsedTile:
    return PulsedTile(rows, cols, w_max=1.0, w_min=-1.0, alpha_up=0.02, alpha_down=0.03, gamma_up=1.3,
                      gamma_down=1.1, c2c_sigma=0.5, seed=seed)


def test_applied_pulses_equal_their_expectation_in_sparse_and_dense_regimes() -> None:
    rng = np.random.default_rng(11)
    rows, cols, batch, reps = 24, 40, 64, 60
    # sparse: digit-like inputs (half zero), small errors; dense: every input and error non-zero
    regimes = {
        "sparse": (rng.uniform(0, 1, (batch, cols)) * (rng.random((batch, cols)) < 0.5),
                   0.1 * rng.standard_normal((batch, rows)), 0.05),
        "dense": (rng.uniform(-1, 1, (batch, cols)), rng.uniform(-1, 1, (batch, rows)), 0.5),
    }
    for seed, (name, (x, d, lr)) in enumerate(regimes.items()):
        px, pd = _probabilities(x, d, lr, 0.08, BL)
        assert px.max() <= 1 and pd.max() <= 1  # the regime where the kernel must be unbiased
        mean, var = _moments(px, pd, BL)
        tile = _tile(rows, cols, seed)
        counts = np.array([tile.update(x, d, lr=lr, dw_min=0.08, bl=BL) for _ in range(reps)], dtype=np.float64)
        z = (counts.mean() - mean) / np.sqrt(var / reps)
        assert abs(z) < 3.0, (name, counts.mean(), mean, z)
        # The spread is the shared-train one, several times the Poisson spread sqrt(mean) that
        # made a -1.1 % deviation look like 7 sigma (issue 18); the sample variance agrees with it.
        assert var > 2.0 * mean
        assert 0.6 < counts.var(ddof=1) / var < 1.6, (name, counts.var(ddof=1), var)


def test_slot_probabilities_are_exact_through_the_tie_refinement() -> None:
    # One row firing in every slot (p_d clipped at 1), columns with chosen probabilities, among them
    # ones decided only by the 24-bit refinement of a tied top byte (p < 1/256) and ones just below 1:
    # the pulses of each column are Binomial(bl, p_j) draws.
    p = np.array([0.3 / 256, 1.5 / 256, 0.1, 0.5, 0.9, 255.5 / 256, 1e-3, 200.25 / 256])
    cols = p.size
    lr, dw_min = 1.0, 1.0 / BL  # k = lr / (bl dw_min) = 1: p_x = |x|, p_d = |d| (no update management)
    x = np.tile(p, (4000, 1))
    d = np.full((4000, 1), 2.0)
    tile = PulsedTile(1, cols, w_max=1e9, w_min=-1e9, alpha_up=0.0, alpha_down=0.0, seed=5)
    total = 0
    per_col = np.zeros(cols)
    for j in range(cols):  # one column at a time: the count of that column alone
        xj = np.zeros_like(x)
        xj[:, j] = x[:, j]
        per_col[j] = tile.update(xj, d, lr=lr, dw_min=dw_min, bl=BL, update_management=False)
        total += per_col[j]
    n = x.shape[0] * BL
    z = (per_col - n * p) / np.sqrt(n * p * (1 - p))
    assert np.all(np.abs(z) < 3.5), z
    assert per_col[0] > 0  # the refinement fires: a top-byte-only comparison would never set it
