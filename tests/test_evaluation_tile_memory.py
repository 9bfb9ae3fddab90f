"""Where a PulsedTile keeps its arrays: huge-page buffers for the large ones and the update's scratch kept
with the tile. Neither may change a single result."""
from __future__ import annotations

import numpy as np
import pytest

import emulator.train as et
from emulator._core import ffi, lib
from emulator.train import PulsedTile, huge_page_zeros

HUGE = 2 << 20


def test_huge_page_zeros_are_zero_writable_aligned_and_sized() -> None:
    for n, dtype in ((3, np.float64), (HUGE // 8 + 5, np.float64), (HUGE + 17, np.uint8), (HUGE, np.float32)):
        a = huge_page_zeros(n, dtype)
        assert a.shape == (n,) and a.dtype == np.dtype(dtype) and a.flags.writeable and a.flags.c_contiguous
        assert not a.any()
        a[-1] = 1
        assert a[-1] == 1 and a[:-1].sum() == 0
        if a.nbytes >= HUGE:  # the large ones start on a huge-page boundary
            assert a.ctypes.data % HUGE == 0
    # two buffers never share memory
    b, c = huge_page_zeros(HUGE, np.uint8), huge_page_zeros(HUGE, np.uint8)
    b[:] = 7
    assert not c.any()


def _tile(n: int, seed: int) -> PulsedTile:
    rng = np.random.default_rng(seed)
    return PulsedTile(n, n, w=rng.uniform(-0.3, 0.3, (n, n)), w_max=rng.uniform(0.6, 1.4, (n, n)),
                      w_min=rng.uniform(-1.4, -0.6, (n, n)), alpha_up=0.02, alpha_down=0.03,
                      gamma_up=rng.uniform(0.5, 2, (n, n)), gamma_down=1.2, c2c_sigma=0.6, seed=seed)


def test_scratch_and_huge_pages_change_no_result(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same updates (batches growing and shrinking, so the kept scratch grows and is reused) on a tile
    with huge-page buffers and kept scratch, and on one with plain numpy buffers and no scratch (its kernel
    allocates its own on every call): the same weights and pulse counts, bit for bit."""
    n = 512  # large enough that the weights (2 MiB), parameters and scratch are all huge-page buffers
    a = _tile(n, 5)
    monkeypatch.setattr(et, "huge_page_zeros", lambda k, dtype=np.float64: np.zeros(int(k), dtype))
    b = _tile(n, 5)
    monkeypatch.undo()
    monkeypatch.setattr(b, "_ensure_scratch", lambda batch, bl: None)  # b's kernel allocates per call
    assert a.w.ctypes.data % HUGE == 0 and b.w.ctypes.data % HUGE != 0
    rng = np.random.default_rng(9)
    for batch, bl in ((8, 31), (64, 31), (200, 8), (3, 64), (64, 1)):
        x = rng.uniform(0, 1, (batch, n)) * (rng.random((batch, n)) < 0.5)
        d = 0.1 * rng.standard_normal((batch, n))
        pa = a.update(x, d, lr=0.5, dw_min=0.05, bl=bl)
        pb = b.update(x, d, lr=0.5, dw_min=0.05, bl=bl)
        assert b._struct.scratch == ffi.NULL
        assert pa == pb > 0
        assert np.array_equal(a.w, b.w)
        assert a._struct.scratch_bytes >= lib.rram_train_update_scratch(a._struct, batch, bl) > 0
    assert a._scratch is not None and a._scratch.nbytes >= HUGE
    assert a._scratch.any()  # the kernel worked in the tile's scratch (huge_page_zeros hands it over zeroed)


def test_scratch_bytes_rejects_bad_arguments_and_grows_with_the_batch() -> None:
    t = _tile(64, 1)
    assert lib.rram_train_update_scratch(t._struct, -1, 31) == 0
    assert lib.rram_train_update_scratch(t._struct, 8, 0) == 0
    assert lib.rram_train_update_scratch(t._struct, 8, lib.RRAM_TRAIN_MAX_BL + 1) == 0
    small, large = (lib.rram_train_update_scratch(t._struct, b, 31) for b in (1, 64))
    assert 0 < small < large
