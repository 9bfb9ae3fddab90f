"""The pulsed-update kernel applies exactly the coincidences of its pulse trains (issue 18): the trains are
rebuilt here from the documented counter-based draws (rram_rng.h, rram_train.c), independently of the
kernel's drawing, slot transposition, slot lists, row bands and chunks, and every device's net pulse
count of an update is compared with what the kernel applied."""
from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from emulator._core import lib
from emulator.train import PulsedTile

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
TIE_SALT = np.uint64(0x71E5A1D0C0FFEE01)
MAX_DIM = 4096  # RRAM_TRAIN_MAX_DIM: train numbers are 2 b MAX_DIM + j (columns), (2 b + 1) MAX_DIM + i (rows)
ALPHA = 1e-5    # pulse strength: with gamma = 1 and |w| << 1 every step is ALPHA (1 - ALPHA / 2) to within 1e-3


def _mix64(z: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """splitmix64 finalizer (wrapping uint64 arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _draw(key: np.uint64, counter: NDArray[np.uint64]) -> NDArray[np.uint64]:
    return _mix64(key + (counter + np.uint64(1)) * GOLDEN)


def _thresholds(v: NDArray[np.float64], scale: float) -> NDArray[np.uint64]:
    """floor(p 2^32) for p = |v| scale clamped to [0, 1]; NaN fires never."""
    p = np.abs(v) * scale
    p = np.where(p > 0.0, p, 0.0)
    p = np.where(p < 1.0, p, 1.0)
    return (p * 4294967296.0).astype(np.int64).astype(np.uint64)


def _trains(train_key: np.uint64, tie_key: np.uint64, ids: NDArray[np.uint64], th: NDArray[np.uint64],
            bl: int) -> NDArray[np.uint64]:
    """Slot s of train id fires when byte s % 8 of draw (8 id + s // 8) is below the threshold's top byte,
    or equals it and 24 bits of the slot's tie draw (64 id + s) fall below the threshold's low 24 bits."""
    hi, lo = th >> np.uint64(24), th & np.uint64(0xFFFFFF)
    out = np.zeros(ids.shape, np.uint64)
    for s in range(bl):
        byte = (_draw(train_key, np.uint64(8) * ids + np.uint64(s // 8)) >> np.uint64(8 * (s % 8))) & np.uint64(0xFF)
        tie = (_draw(tie_key, np.uint64(64) * ids + np.uint64(s)) & np.uint64(0xFFFFFF)) < lo
        fire = (byte < hi) | ((byte == hi) & tie)
        out |= fire.astype(np.uint64) << np.uint64(s)
    return out


def _net_pulses(key: int, counter: int, x: NDArray[np.float64], d: NDArray[np.float64], lr: float, dw_min: float,
                bl: int, update_management: bool) -> tuple[NDArray[np.int64], int]:
    """Per device (rows, cols): pulses up minus pulses down of one update, and the pulses in all."""
    ukey = _draw(np.uint64(key), np.array([counter], np.uint64))[0]
    tie_key = _mix64(np.array([ukey ^ TIE_SALT], np.uint64))[0]
    k = lr / (float(bl) * dw_min)
    net = np.zeros((d.shape[1], x.shape[1]), np.int64)
    total = 0
    for b in range(x.shape[0]):
        xb, db = x[b], d[b]
        xmax = np.max(np.abs(np.nan_to_num(xb, nan=0.0)))
        dmax = np.max(np.abs(np.nan_to_num(db, nan=0.0)))
        if not (0.0 < xmax < np.inf and 0.0 < dmax < np.inf):
            continue
        if update_management:
            cx, cd = float(np.sqrt(k * dmax / xmax)), float(np.sqrt(k * xmax / dmax))
        else:
            cx = cd = float(np.sqrt(k))
        cols = np.arange(xb.size, dtype=np.uint64) + np.uint64(2 * b * MAX_DIM)
        rows = np.arange(db.size, dtype=np.uint64) + np.uint64((2 * b + 1) * MAX_DIM)
        xt = _trains(ukey, tie_key, cols, _thresholds(xb, cx), bl)
        dt = _trains(ukey, tie_key, rows, _thresholds(db, cd), bl)
        count = np.bitwise_count(dt[:, None] & xt[None, :]).astype(np.int64)
        up = (xb[None, :] < 0.0) ^ (db[:, None] < 0.0)  # gradient descent: up where d x < 0
        net += np.where(up, count, -count)
        total += int(count.sum())
    return net, total


def _check(rows: int, cols: int, x: NDArray[np.float64], d: NDArray[np.float64], lr: float, bl: int,
           update_management: bool, seed: int) -> int:
    tile = PulsedTile(rows, cols, w_max=1.0, w_min=-1.0, alpha_up=ALPHA, alpha_down=ALPHA, gamma_up=1.0,
                      gamma_down=1.0, seed=seed)
    net, total = _net_pulses(lib.rram_train_key(seed, 0), 0, x, d, lr, 0.08, bl, update_management)
    applied = tile.update(x, d, lr=lr, dw_min=0.08, bl=bl, update_management=update_management)
    assert applied == total
    # A step is (1 -/+ w) (1 - e^-ALPHA) ~ ALPHA (1 - ALPHA / 2): the net count is w over that to well within 0.5.
    measured = tile.w / (ALPHA * (1.0 - ALPHA / 2))
    np.testing.assert_array_equal(np.rint(measured).astype(np.int64), net)
    assert np.max(np.abs(measured - net)) < 0.1
    return total


def test_sparse_update_applies_exactly_the_coincidences_over_several_bands() -> None:
    # The benchmark's sparse regime on a tile of 60 x 700 (rows in bands of 18: four bands; 11 words per
    # slot bitmap): digit-like inputs (half zero), small errors; rows firing in one or several slots, the
    # few columns sharing two of a row's slots queued with their counts.
    rng = np.random.default_rng(31)
    x = rng.uniform(0, 1, (12, 700)) * (rng.random((12, 700)) < 0.5)
    d = 0.1 * rng.standard_normal((12, 60))
    assert _check(60, 700, x, d, 0.05, 31, True, seed=3) > 1000


def test_dense_update_applies_exactly_the_coincidences_with_many_pulses_per_device() -> None:
    # Every input and error non-zero, high firing rates: long slot lists (the bitmap path), most devices
    # with several pulses in a sample, chunks filled and flushed within a sample.
    rng = np.random.default_rng(32)
    x = rng.uniform(-1, 1, (6, 130))
    d = rng.uniform(-1, 1, (6, 40))
    assert _check(40, 130, x, d, 0.5, 31, True, seed=4) > 5 * 40 * 130


def test_wide_rows_zero_nan_and_negative_inputs_and_long_trains() -> None:
    # 3 x 4096 (one row's pulses of a sample fill several chunks), BL 64 (the whole 64-bit train),
    # zeros, NaNs (never fire) and negatives in both x and d, no update management; and BL 1.
    rng = np.random.default_rng(33)
    x = rng.uniform(-1, 1, (4, 4096))
    x[:, ::5] = 0.0
    x[:, 3::7] = np.nan
    d = rng.uniform(-1, 1, (4, 3))
    d[1] = 0.0  # a sample whose error is zero: no pulse at all
    assert _check(3, 4096, x, d, 2.0, 64, False, seed=5) > 4096
    x2 = rng.uniform(-1, 1, (9, 65))
    d2 = rng.uniform(-1, 1, (9, 7))
    assert _check(7, 65, x2, d2, 0.3, 1, True, seed=6) > 0


def test_each_pulse_of_a_device_draws_its_own_noise_in_sample_order() -> None:
    # Certain trains (a few rows and columns fire in every slot, the rest never): each coincident device gets bl
    # pulses in a sample, and consecutive samples often pulse the same device. Pulse p of device k in sample b
    # must draw its cycle-to-cycle noise at counter 64 k + p of the sample's key (rram_train.h): rebuilt here;
    # with gamma = 1 and a tiny step each pulse moves w by ALPHA (1 - ALPHA / 2) (1 + c2c xi) to within ~1e-4
    # of itself, xi = Phi^-1 of the draw's top 23 bits (a draw used twice, or skipped, changes a sum by ~c2c).
    from scipy.special import ndtri

    noise_salt = np.uint64(0x0D15EA5E5EED1234)
    rng = np.random.default_rng(37)
    rows, cols, batch, bl, c2c, seed = 6, 50, 30, 3, 0.5, 8
    x = np.zeros((batch, cols))
    d = np.zeros((batch, rows))
    for b in range(batch):
        x[b, rng.choice(cols, 3, replace=False)] = rng.choice([-1.0, 1.0], 3)
        d[b, rng.choice(rows, 2, replace=False)] = rng.choice([-1.0, 1.0], 2)
    tile = PulsedTile(rows, cols, w_max=1.0, w_min=-1.0, alpha_up=ALPHA, alpha_down=ALPHA, gamma_up=1.0,
                      gamma_down=1.0, c2c_sigma=c2c, seed=seed)
    assert tile.update(x, d, lr=100.0, dw_min=1e-3, bl=bl, update_management=False) == batch * 2 * 3 * bl
    ukey = _draw(np.uint64(lib.rram_train_key(seed, 0)), np.array([0], np.uint64))[0]
    noise = _mix64(np.array([ukey ^ noise_salt], np.uint64))[0]
    expected = np.zeros((rows, cols))
    for b in range(batch):
        skey = _draw(noise, np.array([b], np.uint64))[0]
        i, j = np.nonzero(d[b][:, None] * x[b][None, :])
        k = (i * cols + j).astype(np.uint64)
        for p in range(bl):
            u = ((_draw(skey, np.uint64(64) * k + np.uint64(p)) >> np.uint64(41)).astype(np.float64) + 0.5) * 2.0 ** -23
            up = d[b, i] * x[b, j] < 0
            expected[i, j] += np.where(up, 1.0, -1.0) * (1.0 + c2c * ndtri(u))
    measured = tile.w / (ALPHA * (1.0 - ALPHA / 2))
    touched = expected != 0
    assert touched.sum() > 40 and np.ptp(expected[touched]) > 2.0
    np.testing.assert_allclose(measured, expected, rtol=0, atol=2e-3)
