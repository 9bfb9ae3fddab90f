"""Python face of the C array model: `emulator.Array`.

Every method validates its arguments before anything reaches C (so nothing in the core can be made
to read or write out of bounds), converts to contiguous float64/int64 buffers and calls the core with
the GIL released (cffi API mode does that for every call).
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from emulator._core import ffi, lib
from emulator.crossbar import crossbar_currents, transfer_matrices
from emulator.presets import Preset, get_preset
from emulator.thermal import Chuck

FaultKind = Literal["none", "stuck_hrs", "stuck_lrs", "no_form"]
_FAULTS: dict[str, int] = {
    "none": lib.RRAM_FAULT_NONE,
    "stuck_hrs": lib.RRAM_FAULT_STUCK_HRS,
    "stuck_lrs": lib.RRAM_FAULT_STUCK_LRS,
    "no_form": lib.RRAM_FAULT_NO_FORM,
}

@dataclass(frozen=True)
class Limits:
    """What the emulated array accepts; beyond these a call raises ValueError before touching a cell."""

    v_max: float = 4.0  # |V| on the top electrode, V (forming sweeps reach 3.6 V)
    vg_max: float = 3.6  # gate voltage, V (selector rated 3.3 V, REF "Cell and selector")
    width_min: float = 1e-9  # pulse width, s
    width_max: float = 1.0  # pulse width, s
    dwell_max: float = 10.0  # sweep dwell per point, s
    max_points: int = 100_000  # points per sweep
    # |V| of a read, V: a read must not switch the cell (REF: reads at 0.2 V; set and reset thresholds
    # lie above ~1 V), so the controller and the backends refuse reads above this (chosen: 1 V).
    v_read_max: float = 1.0
    # Cell temperature, K: a thermal chuck's range (−100 °C .. 300 °C); beyond it the hopping model is
    # not meant to be used.
    temperature_min: float = 173.15
    temperature_max: float = 573.15


@dataclass(frozen=True)
class ProgramResult:
    """Per-cell outcome of closed-loop programming: last verify read (S), pulses applied, converged."""

    g: NDArray[np.float64]
    iterations: NDArray[np.int32]
    converged: NDArray[np.bool_]


def _finite(name: str, value: ArrayLike) -> NDArray[np.float64]:
    arr = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: must be finite, got {value!r}" if arr.size < 8 else f"{name}: contains NaN or inf")
    return arr


def _within(name: str, arr: NDArray[np.float64], lo: float, hi: float, unit: str) -> None:
    if arr.size and (arr.min() < lo or arr.max() > hi):
        bad = arr[(arr < lo) | (arr > hi)].flat[0]
        raise ValueError(f"{name}: {bad:g} {unit} is outside the allowed range [{lo:g}, {hi:g}] {unit}")


class Array:
    """An emulated 1T1R ReRAM crossbar array (see docs/emulator.md). SI units throughout."""

    def __init__(self, rows: int, cols: int, preset: str | Preset = "cmo-hfox", seed: int = 0,
                 limits: Limits | None = None) -> None:
        if not (isinstance(rows, (int, np.integer)) and 0 < rows <= 1 << 15):
            raise ValueError(f"rows: must be an integer in [1, 32768], got {rows!r}")
        if not (isinstance(cols, (int, np.integer)) and 0 < cols <= 1 << 15):
            raise ValueError(f"cols: must be an integer in [1, 32768], got {cols!r}")
        if not (isinstance(seed, (int, np.integer)) and 0 <= seed < 1 << 64):
            raise ValueError(f"seed: must be an integer in [0, 2**64), got {seed!r}")
        self.preset: Preset = get_preset(preset)
        self.limits = limits or Limits()
        self.rows, self.cols, self.seed = int(rows), int(cols), int(seed)
        self.lock = threading.RLock()
        self._params = ffi.new("rram_params *", self.preset.c_params())
        ptr = lib.rram_create(self.rows, self.cols, self._params, self.seed)
        if ptr == ffi.NULL:
            raise MemoryError(f"cannot allocate a {rows}x{cols} array")
        self._a = ffi.gc(ptr, lib.rram_free)
        # State version: every call that changes a conductance (pulse, sweep, program, relaxation step,
        # fault, restore, and any future temperature change) must bump it; the caches below key on it.
        self._version = 0
        self._g_cache: tuple[int, float, float, NDArray[np.float64]] | None = None
        self._t_cache: tuple[tuple[int, float, float, float], NDArray[np.float64]] | None = None
        self._all_idx: NDArray[np.int64] | None = None
        #: The thermal chuck the array sits on (emulator.thermal.Chuck), or None: with one, every
        #: advance follows the chuck's temperature (the cells are at the chuck's temperature).
        self.chuck: Chuck | None = None

    # ------------------------------------------------------------------ helpers
    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows, self.cols)

    @property
    def time(self) -> float:
        """Virtual clock, s."""
        return float(self._a.time)

    @property
    def temperature(self) -> float:
        """Cell temperature, K (the chuck's: no self-heating). Starts at the preset's t_ref (298.15 K,
        where every calibration figure holds). Setting it changes how cells conduct and how fast they
        relax (docs/emulator.md, "Temperature"); it takes no random draw and is not in snapshots."""
        return float(self._a.temperature)

    @temperature.setter
    def temperature(self, kelvin: float) -> None:
        t = self._scalar("temperature", kelvin, self.limits.temperature_min, self.limits.temperature_max, "K")
        with self.lock:
            if t == self._a.temperature:
                return
            self._check(lib.rram_set_temperature(self._a, t), "temperature")
            self._version += 1  # the noise-free conductances changed

    def _index(self, rows: ArrayLike, cols: ArrayLike) -> NDArray[np.int64]:
        r = np.asarray(rows)
        c = np.asarray(cols)
        for name, arr, n in (("rows", r, self.rows), ("cols", c, self.cols)):
            if arr.dtype.kind not in "iu" and not (arr.dtype.kind == "f" and np.all(arr == np.round(arr))):
                raise ValueError(f"{name}: cell indices must be integers, got dtype {arr.dtype}")
            if arr.ndim > 1:
                raise ValueError(f"{name}: must be a scalar or a 1-D sequence, got shape {arr.shape}")
            if arr.size and (arr.min() < 0 or arr.max() >= n):
                bad = arr[(arr < 0) | (arr >= n)].flat[0]
                raise ValueError(f"{name}: index {bad} is outside the array (0..{n - 1})")
        try:
            r, c = np.broadcast_arrays(np.atleast_1d(r).astype(np.int64), np.atleast_1d(c).astype(np.int64))
        except ValueError:
            raise ValueError(f"rows, cols: shapes {np.shape(rows)} and {np.shape(cols)} do not broadcast") from None
        return np.ascontiguousarray(r * self.cols + c)

    def _scalar_cell(self, rows: object, cols: object) -> int | None:
        """Flat index for one cell given as two plain integers (the per-call fast path), else None."""
        if type(rows) is int and type(cols) is int:
            if not 0 <= rows < self.rows:
                raise ValueError(f"rows: index {rows} is outside the array (0..{self.rows - 1})")
            if not 0 <= cols < self.cols:
                raise ValueError(f"cols: index {cols} is outside the array (0..{self.cols - 1})")
            return rows * self.cols + cols
        return None

    def _scalar(self, name: str, value: object, lo: float, hi: float, unit: str) -> float:
        """A plain float checked for finiteness and range (fast path for one-cell calls)."""
        x = float(value)  # type: ignore[arg-type]
        if not math.isfinite(x):
            raise ValueError(f"{name}: must be finite, got {value!r}")
        if not lo <= x <= hi:
            raise ValueError(f"{name}: {x:g} {unit} is outside the allowed range [{lo:g}, {hi:g}] {unit}")
        return x

    def _per_cell(self, name: str, value: ArrayLike, n: int) -> tuple[NDArray[np.float64], int]:
        """A scalar (stride 0) or one value per cell (stride 1)."""
        arr = _finite(name, value)
        if arr.ndim == 0:
            return np.ascontiguousarray(arr.reshape(1)), 0
        if arr.shape != (n,):
            raise ValueError(f"{name}: expected a scalar or {n} values (one per cell), got shape {arr.shape}")
        return np.ascontiguousarray(arr), 1

    @staticmethod
    def _p(arr: np.ndarray, ctype: str) -> object:
        return ffi.cast(ctype, arr.ctypes.data)

    def _check(self, code: int, what: str) -> int:
        if code == lib.RRAM_E_ARG:
            raise ValueError(f"{what}: argument rejected by the array model")
        if code == lib.RRAM_E_NOMEM:
            raise MemoryError(f"{what}: out of memory")
        if code == lib.RRAM_E_SIZE:
            raise ValueError(f"{what}: snapshot does not belong to this array (size, version, shape or seed)")
        if code == lib.RRAM_E_NOCONV:
            raise RuntimeError(f"{what}: crossbar solver did not converge")
        return code

    def _check_v(self, name: str, v: NDArray[np.float64]) -> None:
        _within(name, v, -self.limits.v_max, self.limits.v_max, "V")

    def _check_vg(self, name: str, vg: NDArray[np.float64]) -> None:
        _within(name, vg, 0.0, self.limits.vg_max, "V")

    # ------------------------------------------------------------------ operations
    def sweep(self, rows: ArrayLike, cols: ArrayLike, voltages: ArrayLike, vg: float = 1.2,
              dwell: float = 1e-3) -> NDArray[np.float64]:
        """Quasi-static sweep of the top electrode (source grounded, gate at `vg` V) on each listed cell.

        `voltages` (V) are applied in order, each held `dwell` s. Pristine cells form when their forming
        voltage is crossed, under the selector's compliance; formed cells switch. Returns the current at
        every point, shape (n_cells, n_points), A.
        """
        idx = self._index(rows, cols)
        v = _finite("voltages", voltages)
        if v.ndim != 1 or v.size == 0 or v.size > self.limits.max_points:
            raise ValueError(f"voltages: expected a 1-D sequence of 1..{self.limits.max_points} points, got shape {v.shape}")
        self._check_v("voltages", v)
        vg_a = _finite("vg", vg)
        if vg_a.ndim:
            raise ValueError("vg: expected a scalar gate voltage")
        self._check_vg("vg", vg_a)
        d = _finite("dwell", dwell)
        _within("dwell", d, 1e-9, self.limits.dwell_max, "s")
        v = np.ascontiguousarray(v)
        out = np.empty((idx.size, v.size), dtype=np.float64)
        with self.lock:
            self._check(lib.rram_sweep(self._a, self._p(idx, "int64_t *"), idx.size, self._p(v, "double *"), v.size,
                                       float(vg_a), float(d), self._p(out, "double *")), "sweep")
            self._version += 1
        return out

    def pulse(self, rows: ArrayLike, cols: ArrayLike, v: ArrayLike, vg: ArrayLike, width: ArrayLike) -> None:
        """One rectangular pulse per listed cell: amplitude `v` (V), gate `vg` (V), `width` (s).

        Each of v, vg, width is a scalar or one value per cell.
        """
        k = self._scalar_cell(rows, cols)
        if k is not None and all(type(x) in (int, float) for x in (v, vg, width)):
            lim = self.limits
            va = self._scalar("v", v, -lim.v_max, lim.v_max, "V")
            ga = self._scalar("vg", vg, 0.0, lim.vg_max, "V")
            wa = self._scalar("width", width, lim.width_min, lim.width_max, "s")
            with self.lock:
                lib.rram_pulse(self._a, ffi.new("int64_t[1]", [k]), 1, ffi.new("double[1]", [va]), 0,
                               ffi.new("double[1]", [ga]), 0, ffi.new("double[1]", [wa]), 0)
                self._version += 1
            return
        idx = self._index(rows, cols)
        n = idx.size
        va, sv = self._per_cell("v", v, n)
        ga, sg = self._per_cell("vg", vg, n)
        wa, sw = self._per_cell("width", width, n)
        self._check_v("v", va)
        self._check_vg("vg", ga)
        _within("width", wa, self.limits.width_min, self.limits.width_max, "s")
        with self.lock:
            self._check(lib.rram_pulse(self._a, self._p(idx, "int64_t *"), n, self._p(va, "double *"), sv,
                                       self._p(ga, "double *"), sg, self._p(wa, "double *"), sw), "pulse")
            self._version += 1

    def pulse_trace(self, row: int, col: int, v: float, vg: float, width: float,
                    times: ArrayLike) -> NDArray[np.float64]:
        """Current (A) through cell (row, col) at `times` (s, each in (0, width]) during one pulse of `v` V,
        gate `vg` V, `width` s, from its present state (rram_pulse_trace). Changes nothing and draws
        nothing: call it before `pulse` with the same arguments; the last point at t = width is the
        current of the state that pulse leaves."""
        k = self._scalar_cell(int(row), int(col))
        assert k is not None
        lim = self.limits
        va = self._scalar("v", v, -lim.v_max, lim.v_max, "V")
        ga = self._scalar("vg", vg, 0.0, lim.vg_max, "V")
        wa = self._scalar("width", width, lim.width_min, lim.width_max, "s")
        t = np.ascontiguousarray(_finite("times", times), dtype=np.float64).reshape(-1)
        if t.size == 0 or t.size > self.limits.max_points or t.min() <= 0.0 or t.max() > wa:
            raise ValueError(f"times: expected 1..{self.limits.max_points} instants in (0, {wa:g}] s")
        out = np.empty(t.size, dtype=np.float64)
        with self.lock:
            self._check(lib.rram_pulse_trace(self._a, k, va, ga, wa, self._p(t, "double *"), t.size,
                                             self._p(out, "double *")), "pulse_trace")
        return out

    def read_current(self, rows: ArrayLike, cols: ArrayLike, v: float, vg: float = 3.3,
                     noisy: bool = True) -> NDArray[np.float64]:
        """Current (A) through each listed cell at bias `v` (V) and gate `vg` (V), with read noise."""
        k = self._scalar_cell(rows, cols)
        if k is not None and type(v) in (int, float) and type(vg) in (int, float):
            lim = self.limits
            va = self._scalar("v", v, -lim.v_max, lim.v_max, "V")
            ga = self._scalar("vg", vg, 0.0, lim.vg_max, "V")
            one = ffi.new("double[1]")
            with self.lock:
                lib.rram_read(self._a, ffi.new("int64_t[1]", [k]), 1, va, ga, int(bool(noisy)), one)
            return np.array([one[0]])
        idx = self._index(rows, cols)
        va = _finite("v", v)
        ga = _finite("vg", vg)
        if va.ndim or ga.ndim:
            raise ValueError("v, vg: expected scalars (one read bias per call)")
        self._check_v("v", va)
        self._check_vg("vg", ga)
        out = np.empty(idx.size, dtype=np.float64)
        with self.lock:
            self._check(lib.rram_read(self._a, self._p(idx, "int64_t *"), idx.size, float(va), float(ga),
                                      int(bool(noisy)), self._p(out, "double *")), "read")
        return out

    def read(self, rows: ArrayLike, cols: ArrayLike, v_read: float = 0.2, vg: float = 3.3,
             noisy: bool = True) -> NDArray[np.float64]:
        """Conductance I/V (S) of each listed cell measured at `v_read` (V, non-zero) with gate `vg` (V)."""
        if not np.isfinite(v_read) or v_read == 0.0:
            raise ValueError(f"v_read: must be a finite non-zero voltage, got {v_read!r}")
        return self.read_current(rows, cols, v_read, vg, noisy) / v_read

    def read_all(self, v_read: float = 0.2, vg: float = 3.3, noisy: bool = True) -> NDArray[np.float64]:
        """Conductance of every cell, shape (rows, cols), S (one noisy read each, row-major order)."""
        va = self._scalar("v_read", v_read, -self.limits.v_max, self.limits.v_max, "V")
        if va == 0.0:
            raise ValueError(f"v_read: must be a finite non-zero voltage, got {v_read!r}")
        ga = self._scalar("vg", vg, 0.0, self.limits.vg_max, "V")
        if self._all_idx is None:  # every cell in row-major order: valid by construction, built once
            self._all_idx = np.arange(self.rows * self.cols, dtype=np.int64)
        out = np.empty(self.shape, dtype=np.float64)
        with self.lock:
            self._check(lib.rram_read(self._a, self._p(self._all_idx, "int64_t *"), self._all_idx.size, va, ga,
                                      int(bool(noisy)), self._p(out, "double *")), "read_all")
        out /= va
        return out

    def conductance_matrix(self, v_read: float = 0.2, vg: float = 3.3) -> NDArray[np.float64]:
        """Noise-free 1T1R conductance at `v_read` (V), shape (rows, cols), S. Cached until the state changes."""
        va = _finite("v_read", v_read)
        if va.ndim or va == 0.0:
            raise ValueError(f"v_read: must be a finite non-zero scalar, got {v_read!r}")
        self._check_v("v_read", va)
        self._check_vg("vg", _finite("vg", vg))
        with self.lock:
            cache = self._g_cache
            if cache is not None and cache[:3] == (self._version, float(va), float(vg)):
                return cache[3].copy()
            out = np.empty(self.shape, dtype=np.float64)
            self._check(lib.rram_conductance_matrix(self._a, float(va), float(vg), self._p(out, "double *")),
                        "conductance_matrix")
            self._g_cache = (self._version, float(va), float(vg), out)
            return out.copy()

    def advance(self, seconds: float) -> None:
        """Move the virtual clock forward by `seconds` (s, >= 0); formed cells relax (on a chuck, at
        its temperature as it evolves over the interval)."""
        s = _finite("seconds", seconds)
        if s.ndim or s < 0:
            raise ValueError(f"seconds: must be a non-negative scalar, got {seconds!r}")
        with self.lock:
            if self.chuck is None:
                self._check(lib.rram_advance(self._a, float(s)), "advance")
            else:
                # Piece by piece at the chuck's temperature, then at the chuck's temperature now.
                for piece, kelvin in self.chuck.segments(float(s)):
                    self._check(lib.rram_set_temperature(self._a, kelvin), "advance")
                    self._check(lib.rram_advance(self._a, piece), "advance")
                self._check(lib.rram_set_temperature(self._a, self.chuck.temperature), "advance")
            self._version += 1

    def attach_chuck(self, chuck: Chuck | None = None) -> Chuck:
        """Put the array on a thermal chuck (a new one at the array's temperature unless given) and
        return it; an array already on a chuck keeps it. The cells take the chuck's temperature."""
        with self.lock:
            if self.chuck is None:
                t = self.temperature
                self.chuck = chuck or Chuck(temperature=t, set_point=t, working_set_point=t)
                self.temperature = self.chuck.temperature
            return self.chuck

    @staticmethod
    def _amplitudes(name: str, value: ArrayLike, n: int) -> NDArray[np.float64]:
        """Pulse amplitudes (V): a scalar or one per cell, as n contiguous values."""
        a = _finite(name, value)
        if a.ndim and a.shape not in ((n,), (1,)):
            raise ValueError(f"{name}: expected a scalar or {n} values (one per cell), got shape {a.shape}")
        return np.ascontiguousarray(np.broadcast_to(a.reshape(-1) if a.ndim else a, (n,)))

    def program(self, rows: ArrayLike, cols: ArrayLike, targets: ArrayLike, tolerance: float = 0.02, *,
                v_set: ArrayLike, v_reset: ArrayLike,
                scheme: Literal["identical", "incremental"] = "identical", max_iterations: int = 500,
                vg_set: float = 1.4, vg_reset: float = 3.3, width: float = 2.5e-6,
                v_read: float = 0.2, vg_read: float = 3.3,
                v_step_set: float | None = None, v_step_reset: float | None = None,
                v_stop_set: float | None = None, v_stop_reset: float | None = None,
                max_per_polarity: int | None = None, max_flips: int | None = None) -> ProgramResult:
        """Closed-loop program-and-verify of each listed cell to `targets` (S) within `tolerance` (relative).

        Runs in C, one cell after another: read at `v_read`; inside target ± tolerance·target stop;
        below, one set pulse; above, one reset pulse; at most `max_iterations` verify reads.
        v_set (V > 0) / v_reset (V < 0): the pulse amplitudes, a scalar or one per cell (the caller
        chooses them: the array knows no programming scheme's table).
        identical: every pulse has v_set / v_reset.
        incremental: amplitudes start at v_set / v_reset and step by v_step_* (V) per pulse up to
        v_stop_*, restarting on a polarity flip; at most `max_per_polarity` pulses in a row and
        `max_flips` flips (<= 0: unbounded). All six are required for this scheme.
        """
        idx = self._index(rows, cols)
        n = idx.size
        t = _finite("targets", targets)
        if t.ndim == 0:
            t = np.full(n, float(t))
        if t.shape != (n,):
            raise ValueError(f"targets: expected {n} values (one per cell), got shape {t.shape}")
        if n and (t.min() <= 0):
            raise ValueError(f"targets: conductances must be positive, got {t.min():g} S")
        tol = float(_finite("tolerance", tolerance))
        if not 0 < tol < 1:
            raise ValueError(f"tolerance: must be a fraction in (0, 1), got {tolerance!r}")
        if not (isinstance(max_iterations, (int, np.integer)) and 1 <= max_iterations <= 1_000_000):
            raise ValueError(f"max_iterations: must be an integer in [1, 1000000], got {max_iterations!r}")
        schemes = {"identical": lib.RRAM_SCHEME_IDENTICAL, "incremental": lib.RRAM_SCHEME_INCREMENTAL}
        if scheme not in schemes:
            raise ValueError(f"scheme: must be one of {sorted(schemes)}, got {scheme!r}")
        vs, vr = (self._amplitudes(name, value, n) for name, value in (("v_set", v_set), ("v_reset", v_reset)))
        # The identical loop never reads the incremental bounds; the C struct still wants numbers.
        bounds = {"v_step_set": v_step_set, "v_step_reset": v_step_reset, "v_stop_set": v_stop_set,
                  "v_stop_reset": v_stop_reset, "max_per_polarity": max_per_polarity, "max_flips": max_flips}
        missing = [name for name, value in bounds.items() if value is None]
        if scheme == "incremental" and missing:
            raise ValueError(f"{', '.join(missing)}: required by the incremental scheme")
        b = {name: 0 if value is None else value for name, value in bounds.items()}
        if n and (vs.min() <= 0 or vr.max() >= 0):
            raise ValueError("v_set, v_reset: set amplitudes must be positive and reset amplitudes negative")
        for name, val in (("v_set", vs), ("v_reset", vr), ("v_stop_set", np.float64(b["v_stop_set"])),
                          ("v_stop_reset", np.float64(b["v_stop_reset"])), ("v_read", np.float64(v_read))):
            self._check_v(name, _finite(name, val))
        for name, val in (("vg_set", vg_set), ("vg_reset", vg_reset), ("vg_read", vg_read)):
            self._check_vg(name, _finite(name, val))
        _within("width", _finite("width", width), self.limits.width_min, self.limits.width_max, "s")
        if v_read == 0:
            raise ValueError("v_read: must be non-zero")
        if b["v_step_set"] < 0 or b["v_step_reset"] < 0:
            raise ValueError("v_step_set, v_step_reset: steps must be non-negative magnitudes (V)")
        cfg = ffi.new("rram_program_cfg *", {
            "scheme": schemes[scheme], "tol": tol, "max_iter": int(max_iterations),
            "vg_set": float(vg_set), "vg_reset": float(vg_reset), "width": float(width),
            "v_read": float(v_read), "vg_read": float(vg_read),
            "v_step_set": float(b["v_step_set"]), "v_step_reset": float(b["v_step_reset"]),
            "v_stop_set": float(b["v_stop_set"]), "v_stop_reset": float(b["v_stop_reset"]),
            "max_per_polarity": int(b["max_per_polarity"]), "max_flips": int(b["max_flips"]),
        })
        t = np.ascontiguousarray(t)
        g = np.empty(n, dtype=np.float64)
        it = np.empty(n, dtype=np.int32)
        conv = np.empty(n, dtype=np.uint8)
        with self.lock:
            self._check(lib.rram_program(self._a, self._p(idx, "int64_t *"), n, self._p(t, "double *"),
                                         self._p(vs, "double *"), self._p(vr, "double *"), cfg,
                                         self._p(g, "double *"), self._p(it, "int32_t *"),
                                         self._p(conv, "uint8_t *")), "program")
            self._version += 1
        return ProgramResult(g=g, iterations=it, converged=conv.astype(bool))

    def transfer_matrix(self, r_wire: float | None = None, v_read: float = 0.2, vg: float = 3.3, *,
                        workers: int = 1) -> NDArray[np.float64]:
        """Transfer matrix T (rows, cols; S) of the crossbar in its present state: column currents
        I = v @ T (A) for row voltages v (V), cells linearized at `v_read` (V) with gate `vg` (V), wires
        `r_wire` ohm per segment (default: the preset's). Built once per conductance state and cached
        until any call changes a conductance (emulator.crossbar). workers: 1 or 2 threads, same result."""
        r = self._r_wire(r_wire)
        g = self.conductance_matrix(v_read, vg)
        key = (self._version, float(v_read), float(vg), r)
        with self.lock:
            if self._t_cache is not None and self._t_cache[0] == key:
                return self._t_cache[1]
        t = g if r == 0.0 else transfer_matrices(g, r, r, workers=workers)
        t.setflags(write=False)
        with self.lock:
            self._t_cache = (key, t)
        return t

    def _r_wire(self, r_wire: float | None) -> float:
        r = self.preset.r_wire if r_wire is None else float(_finite("r_wire", r_wire))
        if r < 0:
            raise ValueError(f"r_wire: must be >= 0 ohm, got {r_wire!r}")
        return r

    def mvm(self, v_rows: ArrayLike, r_wire: float | None = None, *,
            method: Literal["transfer", "solve"] = "transfer", tol: float = 1e-12,
            max_iterations: int = 10_000) -> NDArray[np.float64]:
        """Column currents (A) for row voltages `v_rows` (V), shape (rows,) or (batch, rows).

        Cells are their noise-free conductance at the read bias: the non-linear I–V linearized there,
        which is exact for pulse-width encoded inputs at the read bias (emulator.crossbar.amplitude_mvm
        solves amplitude-encoded inputs). Wires have `r_wire` ohm per segment (default: the preset's);
        r_wire = 0 is the ideal G^T v. method "transfer": the cached transfer matrix (exact, matmul
        speed after one build per state); "solve": the per-vector nodal solve in C (the reference, to
        relative residual `tol`).
        """
        v = np.asarray(v_rows, dtype=np.float64)
        single = v.ndim == 1
        v2 = np.atleast_2d(v)
        if v2.ndim != 2 or v2.shape[1] != self.rows:
            raise ValueError(f"v_rows: expected shape ({self.rows},) or (batch, {self.rows}), got {v.shape}")
        # Two passes (min, max) check finiteness and range: NaN and inf propagate into them.
        lo, hi = (float(v2.min()), float(v2.max())) if v2.size else (0.0, 0.0)
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError("v_rows: contains NaN or inf")
        if lo < -self.limits.v_max or hi > self.limits.v_max:
            self._check_v("v_rows", v2)  # names the first value out of range
        r = self._r_wire(r_wire)
        if method not in ("transfer", "solve"):
            raise ValueError(f"method: must be 'transfer' or 'solve', got {method!r}")
        if r == 0.0:
            out = v2 @ self.conductance_matrix()
        elif method == "transfer":
            out = crossbar_currents(v2, self.transfer_matrix(r))
        else:
            out = solve_crossbar(self.conductance_matrix(), v2, r, r, tol=tol, max_iterations=max_iterations)
        return out[0] if single else out

    # ------------------------------------------------------------------ state
    def snapshot(self) -> bytes:
        """The whole dynamic state (conductances, forming, faults, generator counters, clock)."""
        with self.lock:
            n = lib.rram_snapshot_size(self._a)
            buf = ffi.new("uint8_t[]", n)
            self._check(lib.rram_snapshot(self._a, buf, n), "snapshot")
            return bytes(ffi.buffer(buf, n))

    def restore(self, blob: bytes) -> None:
        """Return to a snapshot taken from an array of the same shape and seed."""
        if not isinstance(blob, (bytes, bytearray, memoryview)):
            raise ValueError(f"blob: expected bytes from snapshot(), got {type(blob).__name__}")
        data = bytes(blob)
        with self.lock:
            self._check(lib.rram_restore(self._a, ffi.from_buffer(data), len(data)), "restore")
            self._version += 1

    def inject_fault(self, rows: ArrayLike, cols: ArrayLike, kind: FaultKind) -> None:
        """Make cells stuck at HRS or LRS, never form, or clear the fault ("none")."""
        if kind not in _FAULTS:
            raise ValueError(f"kind: must be one of {sorted(_FAULTS)}, got {kind!r}")
        idx = self._index(rows, cols)
        with self.lock:
            self._check(lib.rram_set_fault(self._a, self._p(idx, "int64_t *"), idx.size, _FAULTS[kind]), "inject_fault")
            self._version += 1

    def reseed(self, seed: int) -> None:
        """Start a new cycle-to-cycle stream (device-to-device parameters are kept)."""
        if not (isinstance(seed, (int, np.integer)) and 0 <= seed < 1 << 64):
            raise ValueError(f"seed: must be an integer in [0, 2**64), got {seed!r}")
        with self.lock:
            lib.rram_reseed(self._a, int(seed))

    def pulse_counts(self) -> NDArray[np.int64]:
        """Pulses each cell has received, shape (rows, cols)."""
        with self.lock:
            return self._struct_field("pulses", np.uint64).astype(np.int64)

    def formed(self) -> NDArray[np.bool_]:
        """Which cells have formed, shape (rows, cols)."""
        with self.lock:
            return self._struct_field("formed", np.uint8).astype(bool)

    def state_conductance(self) -> NDArray[np.float64]:
        """Internal state conductance of every cell at the reference bias, before the selector, S."""
        with self.lock:
            return self._struct_field("g", np.float64).copy()

    def _struct_field(self, field: str, dtype: type) -> NDArray:
        """View one field of the C cell array without copying the structs one by one."""
        n = self.rows * self.cols
        size = ffi.sizeof("rram_cell")
        raw = np.frombuffer(ffi.buffer(self._a.cell, n * size), dtype=np.uint8).reshape(n, size)
        off = ffi.offsetof("rram_cell", field)
        width = np.dtype(dtype).itemsize
        return raw[:, off:off + width].copy().view(dtype).reshape(self.shape)

    def device_parameters(self) -> dict[str, NDArray[np.float64]]:
        """Device-to-device parameters drawn at creation, each shape (rows, cols), SI units."""
        n = self.rows * self.cols
        size = ffi.sizeof("rram_device")
        raw = np.frombuffer(ffi.buffer(self._a.dev, n * size), dtype=np.float64).reshape(n, size // 8)
        names = ["v_form", "i_form", "isat_scale", "g_max", "g_min", "a_up", "a_down",
                 "gamma_up", "gamma_down", "read_scale", "g_cc"]
        out = {name: raw[:, ffi.offsetof("rram_device", name) // 8].copy().reshape(self.shape) for name in names}
        faults = self._struct_field("fault", np.uint8)
        out["v_form"][faults == lib.RRAM_FAULT_NO_FORM] = np.inf
        return out


def solve_crossbar(g: ArrayLike, v_rows: ArrayLike, r_row: float, r_col: float, *, tol: float = 1e-12,
                   max_iterations: int = 10_000) -> NDArray[np.float64]:
    """Column currents (A) of a crossbar with conductances `g` (rows, cols; S) and wire resistance
    `r_row` / `r_col` ohm per segment for row voltages `v_rows` (batch, rows; V). Exact nodal solve in C."""
    gm = np.ascontiguousarray(_finite("g", g))
    if gm.ndim != 2 or gm.size == 0 or gm.min() < 0:
        raise ValueError(f"g: expected a non-negative 2-D conductance matrix, got shape {gm.shape}")
    rows, cols = gm.shape
    v = np.ascontiguousarray(np.atleast_2d(_finite("v_rows", v_rows)))
    if v.ndim != 2 or v.shape[1] != rows:
        raise ValueError(f"v_rows: expected shape (batch, {rows}), got {np.shape(v_rows)}")
    if r_row < 0 or r_col < 0 or not (np.isfinite(r_row) and np.isfinite(r_col)):
        raise ValueError(f"r_row, r_col: must be finite and >= 0 ohm, got {r_row!r}, {r_col!r}")
    out = np.empty((v.shape[0], cols), dtype=np.float64)
    code = lib.rram_mvm(rows, cols, ffi.cast("double *", gm.ctypes.data), ffi.cast("double *", v.ctypes.data),
                        v.shape[0], float(r_row), float(r_col), float(tol), int(max_iterations),
                        ffi.cast("double *", out.ctypes.data))
    if code == lib.RRAM_E_NOCONV:
        raise RuntimeError(f"crossbar solver did not converge in {max_iterations} iterations")
    if code < 0:
        raise ValueError("solve_crossbar: arguments rejected by the solver")
    return out
