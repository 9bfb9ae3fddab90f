"""Python face of the pulsed-update training kernel (emulator/c_core/rram_train.h): `PulsedTile`.

A tile is rows x cols soft-bounds devices in normalized weight units (rows = layer outputs, cols =
layer inputs). Device parameters are per device; weights are updated in place by the C kernel with
the GIL released. Every random draw comes from the tile's seeded counter-based stream.
"""
from __future__ import annotations

import mmap
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from emulator._core import ffi, lib

DEVICE_FIELDS = ("w_max", "w_min", "alpha_up", "alpha_down", "gamma_up", "gamma_down")


_HUGE_PAGE = 2 << 20  # bytes of one x86-64 huge page


def huge_page_zeros(n: int, dtype: DTypeLike = np.float64) -> NDArray[Any]:
    """n zeros of dtype on 2 MiB-aligned anonymous memory advised for huge pages (madvise MADV_HUGEPAGE before
    the first touch), so that a tile's device, weight and scratch arrays (touched at random by the pulsed update)
    cost one TLB entry per 2 MiB instead of per 4 KiB: 2-4 % of a sparse 512 x 512 update. Below 2 MiB, or where
    the platform has no such advice, plain np.zeros. numpy's own hint for large arrays did not give huge pages
    here (smaps showed none)."""
    nbytes = int(n) * np.dtype(dtype).itemsize
    if nbytes < _HUGE_PAGE or not hasattr(mmap, "MADV_HUGEPAGE"):
        return np.zeros(int(n), dtype)
    # private: shared anonymous memory (mmap's default) is shmem, which gets no transparent huge pages
    m = mmap.mmap(-1, nbytes + _HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    m.madvise(mmap.MADV_HUGEPAGE)
    raw = np.frombuffer(m, dtype=np.uint8)  # keeps m alive; anonymous memory is zero-filled
    start = -raw.ctypes.data % _HUGE_PAGE
    return raw[start:start + nbytes].view(dtype)


class PulsedTile:
    """rows x cols pulsed devices: weights `w` (normalized units) and per-device model parameters.

    Each device parameter is a scalar (same for every device) or an array of shape (rows, cols):
    w_max > w_min (bounds), alpha_up / alpha_down >= 0 (normalized pulse strengths), gamma_up /
    gamma_down > 0 (soft-bounds exponents); c2c_sigma >= 0 is the relative cycle-to-cycle std of a step.
    """

    def __init__(self, rows: int, cols: int, *, w_max: ArrayLike, w_min: ArrayLike, alpha_up: ArrayLike,
                 alpha_down: ArrayLike, gamma_up: ArrayLike = 1.0, gamma_down: ArrayLike = 1.0,
                 c2c_sigma: float = 0.0, seed: int = 0, stream: int = 0, w: ArrayLike | None = None) -> None:
        for name, n in (("rows", rows), ("cols", cols)):
            if not (isinstance(n, (int, np.integer)) and 1 <= n <= lib.RRAM_TRAIN_MAX_DIM):
                raise ValueError(f"{name}: must be an integer in [1, {lib.RRAM_TRAIN_MAX_DIM}], got {n!r}")
        if not (isinstance(seed, (int, np.integer)) and 0 <= seed < 1 << 64):
            raise ValueError(f"seed: must be an integer in [0, 2**64), got {seed!r}")
        if not (np.isfinite(c2c_sigma) and c2c_sigma >= 0):
            raise ValueError(f"c2c_sigma: must be >= 0, got {c2c_sigma!r}")
        self.rows, self.cols = int(rows), int(cols)
        shape = (self.rows, self.cols)
        values = {"w_max": w_max, "w_min": w_min, "alpha_up": alpha_up, "alpha_down": alpha_down,
                  "gamma_up": gamma_up, "gamma_down": gamma_down}
        self.params: dict[str, NDArray[np.float64]] = {}
        for name, value in values.items():
            arr = np.asarray(value, dtype=np.float64)
            try:
                arr = np.ascontiguousarray(np.broadcast_to(arr, shape)).copy()
            except ValueError:
                raise ValueError(f"{name}: expected a scalar or shape {shape}, got {arr.shape}") from None
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{name}: contains NaN or inf")
            arr.setflags(write=False)  # packed into the kernel's device lines once (see _bind)
            self.params[name] = arr
        if np.any(self.params["w_max"] <= self.params["w_min"]):
            raise ValueError("w_max, w_min: every device needs w_max > w_min")
        for name in ("alpha_up", "alpha_down"):
            if np.any(self.params[name] < 0):
                raise ValueError(f"{name}: pulse strengths must be >= 0")
        for name in ("gamma_up", "gamma_down"):
            if np.any(self.params[name] <= 0):
                raise ValueError(f"{name}: exponents must be > 0")
        self.w = huge_page_zeros(self.rows * self.cols).reshape(shape)
        if w is not None:
            self.w[...] = np.broadcast_to(np.asarray(w, np.float64), shape)
        self.clip()
        self._struct = ffi.new("rram_train_tile *")
        self._struct.rows, self._struct.cols = self.rows, self.cols
        self._struct.c2c_sigma = float(c2c_sigma)
        self._struct.key = lib.rram_train_key(int(seed), int(stream))
        self._struct.counter = 0
        self._scratch: NDArray[np.uint8] | None = None  # the update's working memory (_ensure_scratch)
        self._bind()

    def _bind(self) -> None:
        """Point the C struct at the current buffers (after `w` was replaced) and pack the device
        parameters in float32, 32 bytes per device (the kernel's working precision; `w` stays float64)."""
        self.w = np.ascontiguousarray(self.w, dtype=np.float64)
        self._struct.w = ffi.cast("double *", self.w.ctypes.data)
        for name in DEVICE_FIELDS:
            setattr(self._struct, name, ffi.cast("double *", self.params[name].ctypes.data))
        stride = lib.RRAM_TRAIN_DEV_STRIDE
        raw = huge_page_zeros(self.rows * self.cols * stride + 16, np.float32)
        start = (-raw.ctypes.data % 64) // 4  # first 64-byte aligned element
        self._dev = raw[start:start + self.rows * self.cols * stride]
        if lib.rram_train_pack(self._struct, ffi.cast("float *", self._dev.ctypes.data)) != 0:
            raise ValueError("w_max, w_min: every device needs w_max > w_min in float32 (the kernel's precision)")
        self._struct.dev = ffi.cast("float *", self._dev.ctypes.data)

    @property
    def c2c_sigma(self) -> float:
        return float(self._struct.c2c_sigma)

    @property
    def counter(self) -> int:
        """Position in the tile's random stream: one draw per update or pulse call keys all of that call's draws."""
        return int(self._struct.counter)

    def set_weights(self, w: ArrayLike) -> None:
        """Overwrite the weights (normalized units), clipped into each device's bounds."""
        arr = np.asarray(w, dtype=np.float64)
        if arr.shape != self.w.shape:
            raise ValueError(f"w: expected shape {self.w.shape}, got {arr.shape}")
        self.w[...] = arr
        self.clip()

    def clip(self) -> None:
        np.clip(self.w, self.params["w_min"], self.params["w_max"], out=self.w)

    def update(self, x: ArrayLike, d: ArrayLike, lr: float, dw_min: float, *, bl: int = 31,
               update_management: bool = True) -> int:
        """Stochastic-pulse update w -= lr * sum_b d_b x_b^T (x: (batch, cols), d: (batch, rows)).

        lr in weight units per unit |x d|; dw_min is the nominal step of one pulse (weight units)
        used to turn lr into firing probabilities; bl is the pulse-train length. Returns pulses applied.
        """
        xa = np.ascontiguousarray(np.atleast_2d(x), dtype=np.float64)
        da = np.ascontiguousarray(np.atleast_2d(d), dtype=np.float64)
        if xa.ndim != 2 or xa.shape[1] != self.cols:
            raise ValueError(f"x: expected shape (batch, {self.cols}), got {np.shape(x)}")
        if da.shape != (xa.shape[0], self.rows):
            raise ValueError(f"d: expected shape ({xa.shape[0]}, {self.rows}), got {np.shape(d)}")
        if not (1 <= bl <= lib.RRAM_TRAIN_MAX_BL):
            raise ValueError(f"bl: must be in [1, {lib.RRAM_TRAIN_MAX_BL}], got {bl!r}")
        if not (lr > 0 and dw_min > 0):
            raise ValueError(f"lr, dw_min: must be > 0, got {lr!r}, {dw_min!r}")
        self._ensure_scratch(xa.shape[0], int(bl))
        cfg = ffi.new("rram_train_update_cfg *", {"bl": int(bl), "lr": float(lr), "dw_min": float(dw_min),
                                                  "update_management": int(bool(update_management))})
        pulses = ffi.new("int64_t *")
        code = lib.rram_train_update(self._struct, ffi.cast("double *", xa.ctypes.data),
                                     ffi.cast("double *", da.ctypes.data), xa.shape[0], cfg, pulses)
        if code == lib.RRAM_E_NOMEM:
            raise MemoryError("update: the training kernel could not allocate its scratch")
        if code != 0:
            raise ValueError("update: arguments rejected by the training kernel")
        return int(pulses[0])

    def _ensure_scratch(self, batch: int, bl: int) -> None:
        """Keep the update's working memory (rram_train_update_scratch bytes) with the tile, grown when a call needs
        more, on huge pages where it is large (huge_page_zeros): the walk reads it at random."""
        need = int(lib.rram_train_update_scratch(self._struct, batch, bl))
        if need <= self._struct.scratch_bytes:
            return
        raw = huge_page_zeros(need + 64, np.uint8)
        self._scratch = raw
        self._struct.scratch = ffi.cast("void *", raw.ctypes.data + (-raw.ctypes.data % 64))
        self._struct.scratch_bytes = need

    def pulse(self, flat_index: ArrayLike, n_pulses: ArrayLike) -> None:
        """Signed pulse counts (> 0 up, < 0 down) on devices given by flat index row * cols + col."""
        idx = np.ascontiguousarray(np.atleast_1d(flat_index), dtype=np.int64)
        n = np.ascontiguousarray(np.broadcast_to(np.asarray(n_pulses), idx.shape), dtype=np.int32)
        if idx.size and (idx.min() < 0 or idx.max() >= self.rows * self.cols):
            raise ValueError(f"flat_index: must lie in [0, {self.rows * self.cols - 1}]")
        code = lib.rram_train_pulse(self._struct, ffi.cast("int64_t *", idx.ctypes.data),
                                    ffi.cast("int32_t *", n.ctypes.data), idx.size)
        if code != 0:
            raise ValueError("pulse: arguments rejected by the training kernel")

    def expected_steps(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Noise-free (up, down) step of one pulse at the current weights, each (rows, cols), >= 0."""
        up = np.empty_like(self.w)
        down = np.empty_like(self.w)
        lib.rram_train_steps(self._struct, ffi.cast("double *", up.ctypes.data), ffi.cast("double *", down.ctypes.data))
        return up, down

    def symmetry_point(self, iterations: int = 60) -> NDArray[np.float64]:
        """Weight of each device where the expected up and down steps are equal (bisection)."""
        lo = self.params["w_min"].copy()
        hi = self.params["w_max"].copy()
        saved = self.w.copy()
        try:
            for _ in range(iterations):
                mid = 0.5 * (lo + hi)
                self.w[...] = mid
                up, down = self.expected_steps()
                above = up < down  # past the symmetry point: down steps dominate
                hi = np.where(above, mid, hi)
                lo = np.where(above, lo, mid)
            return 0.5 * (lo + hi)
        finally:
            self.w[...] = saved
