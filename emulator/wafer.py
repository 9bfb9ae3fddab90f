"""An emulated wafer on a probe station's chuck: die map, one Array per die, chuck contact, move times,
chuck temperature, and die-to-die variation across the wafer (docs/emulator.md, "Wafers").

`Wafer` holds the state of the station: which die is under the probes, whether the chuck is up (contact)
or down (separated), the chuck's temperature and the station's virtual clock. Its `probes` attribute is
what the measuring instruments see (`ProbedArray`, the methods of an `emulator.Array`): the array of the
die in contact, or an open circuit when the chuck is separated or the touchdown made no electrical
contact, so a read measures only the meter's noise and a pulse changes nothing.

Every die's array has its own seed, derived from the wafer seed and the die index, and its own preset:
the wafer's systematic variation (radial and a tilt drawn per wafer) plus a per-die offset, applied to
the base preset. A die whose variation is zero has exactly the base preset, so a single die at default
settings is today's calibrated array.

Clocks: the wafer's clock is the station's (moves take virtual time on it). A die's array clock catches
up with the wafer's at each touchdown (relaxation while away happens then, at the chuck temperature of
that moment) and runs with it while the die is contacted.
"""
from __future__ import annotations

import json
import math
import struct
import threading
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from emulator.array import Array, Limits, ProgramResult
from emulator.presets import Preset, get_preset

#: 0 °C and 25 °C in kelvin (the emulator does not import labctl.instruments.thermal).
ZERO_CELSIUS = 273.15
ROOM_TEMPERATURE = ZERO_CELSIUS + 25.0
#: Current noise of the meter on an open circuit, A (chosen: a good SMU's 100 nA range reads ~1 pA rms).
OPEN_CURRENT_NOISE = 1e-12

Die = tuple[int, int]  # (column, row) of the die in the wafer's grid


@dataclass(frozen=True)
class WaferVariation:
    """Die-to-die variation across the wafer, on top of the device-to-device spread of each die's array.

    r is the die centre's distance from the wafer centre divided by the farthest die's (0 centre, 1 edge);
    (x, y) the same along the grid axes. Chosen values (no reference figure pins them down): a deposited
    oxide typically varies by a few per cent centre to edge, which moves the forming voltage by tens of mV.
    """

    v_form_edge: float = 0.06  # V added to v_form_mean at r = 1, growing as r^2 (radial bowl)
    g_window_edge: float = -0.08  # relative change of g_max_mean and g_min_mean at r = 1, as r^2
    tilt_sigma: float = 0.02  # V: std of a linear v_form_mean gradient (per unit of r), direction drawn per wafer
    die_sigma: float = 0.01  # V: std of a per-die random offset of v_form_mean

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not math.isfinite(value):
                raise ValueError(f"variation.{name}: must be finite, got {value!r}")
        for name in ("tilt_sigma", "die_sigma"):
            if getattr(self, name) < 0:
                raise ValueError(f"variation.{name}: must be >= 0, got {getattr(self, name)!r}")
        if not -0.5 <= self.g_window_edge <= 0.5:
            raise ValueError(f"variation.g_window_edge: must be in [-0.5, 0.5], got {self.g_window_edge!r}")
        if abs(self.v_form_edge) > 0.5:
            raise ValueError(f"variation.v_form_edge: must be within ±0.5 V, got {self.v_form_edge!r}")

    def die_preset(self, base: Preset, x: float, y: float, tilt: tuple[float, float], offset: float) -> Preset:
        """The preset of the die at normalized position (x, y); `tilt` the wafer's (gx, gy) gradient in V,
        `offset` the die's own v_form offset in V. All zero: `base` itself."""
        r2 = x * x + y * y
        dv = self.v_form_edge * r2 + tilt[0] * x + tilt[1] * y + offset
        dg = self.g_window_edge * r2
        if dv == 0.0 and dg == 0.0:
            return base
        return base.with_(v_form_mean=base.v_form_mean + dv, g_max_mean=base.g_max_mean * (1 + dg),
                          g_min_mean=base.g_min_mean * (1 + dg))


NO_VARIATION = WaferVariation(0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Motion:
    """The station's modeled move times (chosen: a semi-automatic prober's typical figures)."""

    pitch_x: float = 5e-3  # die pitch, m
    pitch_y: float = 5e-3
    xy_speed: float = 50e-3  # m/s
    xy_settle: float = 0.1  # s after every XY move
    z_time: float = 0.2  # s for a move to contact or to separation

    def step_time(self, a: tuple[float, float], b: tuple[float, float]) -> float:
        """Seconds to move the chuck between grid positions a and b (in die pitches)."""
        dist = math.hypot((a[0] - b[0]) * self.pitch_x, (a[1] - b[1]) * self.pitch_y)
        return self.xy_settle + dist / self.xy_speed


@dataclass
class Chuck:
    """A thermal chuck with a first-order response to its set-point (K, s)."""

    temperature: float = ROOM_TEMPERATURE
    set_point: float = ROOM_TEMPERATURE
    tau: float = 60.0  # s, chosen: a 200 mm hot chuck settles to 1 % in ~5 min
    min_temperature: float = ZERO_CELSIUS - 60.0
    max_temperature: float = ZERO_CELSIUS + 200.0

    def advance(self, seconds: float) -> None:
        self.temperature = self.set_point + (self.temperature - self.set_point) * math.exp(-seconds / self.tau)

    @property
    def settled(self) -> bool:
        return abs(self.temperature - self.set_point) < 1e-3


def _mix64(x: int) -> int:
    """splitmix64's finalizer: a well-spread 64-bit value from any integer."""
    x &= (1 << 64) - 1
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & ((1 << 64) - 1)
    return x ^ (x >> 31)


def die_seed(wafer_seed: int, index: int) -> int:
    """The seed of die `index`'s array: a hash of the wafer seed and the index (distinct for every die)."""
    return _mix64(wafer_seed * 0x9E3779B97F4A7C15 + index + 1)


def _set_temperature(array: Array, kelvin: float) -> None:
    """Hand the chuck temperature to a die's array if its model takes one (temperature physics lives in
    emulator.array; an array without it is at room temperature whatever the chuck does)."""
    setter = getattr(array, "set_temperature", None)
    if callable(setter):
        setter(kelvin)
        return
    prop = getattr(type(array), "temperature", None)
    if isinstance(prop, property) and prop.fset is not None:
        array.temperature = kelvin  # type: ignore[attr-defined]


class WaferError(ValueError):
    """A request the station refuses (a die outside the wafer, a step while in contact...)."""


class Wafer:
    """An emulated wafer of `columns` x `rows` dies (a round wafer drops the grid corners outside the
    circle), each die an `die_rows` x `die_cols` Array. Thread-safe through `lock` (shared by `probes`)."""

    def __init__(self, columns: int, rows: int, die_rows: int, die_cols: int, *, seed: int = 0,
                 preset: str | Preset = "cmo-hfox", round_wafer: bool = False,
                 variation: WaferVariation | None = None, motion: Motion | None = None,
                 limits: Limits | None = None) -> None:
        if not (isinstance(columns, int) and isinstance(rows, int) and 1 <= columns <= 100 and 1 <= rows <= 100):
            raise WaferError(f"wafer: columns and rows must be integers in [1, 100], got {columns!r} x {rows!r}")
        if not (isinstance(seed, (int, np.integer)) and 0 <= seed < 1 << 64):
            raise WaferError(f"seed: must be an integer in [0, 2**64), got {seed!r}")
        self.columns, self.rows = columns, rows
        self.die_rows, self.die_cols = int(die_rows), int(die_cols)
        self.seed = int(seed)
        self.preset = get_preset(preset)
        self.variation = variation if variation is not None else WaferVariation()
        self.motion = motion or Motion()
        self.limits = limits or Limits()
        self.lock = threading.RLock()
        cx, cy = (columns - 1) / 2, (rows - 1) / 2
        radius = min(columns, rows) / 2
        present = [(c, r) for r in range(rows) for c in range(columns)
                   if not round_wafer or math.hypot(c - cx, r - cy) <= radius + 1e-9]
        #: Present dies in index order (row-major); `index[die]` is a die's index.
        self.dies: list[Die] = present
        self.index: dict[Die, int] = {d: i for i, d in enumerate(present)}
        far = max((math.hypot(c - cx, r - cy) for c, r in present), default=0.0) or 1.0
        self._xy = {d: ((d[0] - cx) / far, (d[1] - cy) / far) for d in present}
        rng = np.random.default_rng([self.seed, 0x57AFE5])
        angle, slope = rng.uniform(0, 2 * math.pi), rng.normal(0.0, 1.0) * self.variation.tilt_sigma
        self._tilt = (slope * math.cos(angle), slope * math.sin(angle))
        self._arrays: dict[int, Array] = {}
        self.chuck = Chuck()
        self.clock = 0.0
        self.position: int | None = None  # die index under the probes; None: at home, off the map
        self.contact = False
        self.touchdown_open = False  # this touchdown made no electrical contact (a contact fault)
        self.contact_faults: dict[int, int] = {}  # die index -> touchdowns left that make no contact
        self.open_reads = 0  # open-circuit reads so far (counter of their noise draws)
        self.probes = ProbedArray(self)

    # -- the map
    def route(self) -> list[Die]:
        """The prober's own test order: rows from the first, alternating direction (serpentine)."""
        out: list[Die] = []
        for r in range(self.rows):
            row = [d for d in self.dies if d[1] == r]
            out += row if r % 2 == 0 else row[::-1]
        return out

    def die_index(self, die: Die) -> int:
        try:
            return self.index[(int(die[0]), int(die[1]))]
        except KeyError:
            raise WaferError(f"die ({die[0]}, {die[1]}) is not on the wafer ({self.columns} x {self.rows} dies)") from None

    def die_preset(self, index: int) -> Preset:
        """The preset of die `index`: the base preset with the wafer's variation at its position."""
        x, y = self._xy[self.dies[index]]
        offset = float(np.random.default_rng([self.seed, 0xD1E, index]).normal(0.0, 1.0)) * self.variation.die_sigma
        return self.variation.die_preset(self.preset, x, y, self._tilt, offset)

    def array(self, index: int) -> Array:
        """Die `index`'s array (created on first use)."""
        with self.lock:
            arr = self._arrays.get(index)
            if arr is None:
                arr = Array(self.die_rows, self.die_cols, preset=self.die_preset(index),
                            seed=die_seed(self.seed, index), limits=self.limits)
                self._arrays[index] = arr
            return arr

    def contacted(self) -> Array | None:
        """The array the probes touch electrically, or None (separated, or no electrical contact)."""
        if self.contact and not self.touchdown_open and self.position is not None:
            return self.array(self.position)
        return None

    # -- motion (each returns the modeled seconds, already added to the clock)
    def _grid(self, index: int | None) -> tuple[float, float]:
        if index is None:
            return ((self.columns - 1) / 2, (self.rows - 1) / 2)  # home: the wafer centre
        return (float(self.dies[index][0]), float(self.dies[index][1]))

    def step(self, index: int) -> float:
        """Separate (if in contact) and move to die `index`. The chuck ends separated."""
        with self.lock:
            if not 0 <= index < len(self.dies):
                raise WaferError(f"die index {index} is not on the wafer (0..{len(self.dies) - 1})")
            t_z = self.separate()
            t_xy = self.motion.step_time(self._grid(self.position), self._grid(index))
            self.advance(t_xy)
            self.position = index
            return t_z + t_xy

    def move_contact(self) -> float:
        """Raise the chuck to contact on the die under the probes."""
        with self.lock:
            if self.position is None:
                raise WaferError("no die under the probes: step to a die first")
            if self.contact:
                return 0.0
            self.advance(self.motion.z_time)
            left = self.contact_faults.get(self.position, 0)
            self.touchdown_open = left != 0
            if left > 0:
                self.contact_faults[self.position] = left - 1
            self.contact = True
            arr = self.contacted()
            if arr is not None:  # the die's clock catches up with the station's
                _set_temperature(arr, self.chuck.temperature)
                if self.clock > arr.time:
                    arr.advance(self.clock - arr.time)
            return self.motion.z_time

    def separate(self) -> float:
        """Lower the chuck to separation height."""
        with self.lock:
            if not self.contact:
                return 0.0
            self.contact = False
            self.touchdown_open = False
            self.advance(self.motion.z_time)
            return self.motion.z_time

    def set_chuck_temperature(self, kelvin: float) -> None:
        with self.lock:
            if not (math.isfinite(kelvin) and self.chuck.min_temperature <= kelvin <= self.chuck.max_temperature):
                raise WaferError(f"chuck temperature {kelvin:.2f} K is outside "
                                 f"{self.chuck.min_temperature:.2f}..{self.chuck.max_temperature:.2f} K")
            self.chuck.set_point = float(kelvin)

    # -- time
    def advance(self, seconds: float) -> None:
        """Move the station's clock (and the contacted die's, and the chuck's temperature) on."""
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"seconds: must be finite and >= 0, got {seconds!r}")
        with self.lock:
            arr = self.contacted()
            # While the chuck is still heating or cooling, hand the die its temperature in steps.
            n = 1 if self.chuck.settled else min(200, max(1, math.ceil(seconds / (self.chuck.tau / 4))))
            for _ in range(n):
                dt = seconds / n
                self.chuck.advance(dt)
                self.clock += dt
                if arr is not None:
                    _set_temperature(arr, self.chuck.temperature)
                    arr.advance(dt)

    # -- state (what a resume restores)
    def snapshot(self) -> bytes:
        """The station's state and the array of the die under the probes (bytes)."""
        with self.lock:
            head = {"clock": self.clock, "position": self.position, "contact": self.contact,
                    "touchdown_open": self.touchdown_open, "open_reads": self.open_reads,
                    "chuck": [self.chuck.temperature, self.chuck.set_point],
                    "faults": sorted(self.contact_faults.items())}
            blob = b"" if self.position is None else self.array(self.position).snapshot()
            text = json.dumps(head).encode()
            return b"WAFR" + struct.pack("<I", len(text)) + text + blob

    def restore(self, data: bytes) -> None:
        """Return to a snapshot() of this wafer."""
        data = bytes(data)
        if data[:4] != b"WAFR" or len(data) < 8:
            raise ValueError("restore: not a wafer snapshot")
        (n,) = struct.unpack("<I", data[4:8])
        head: dict[str, Any] = json.loads(data[8:8 + n])
        with self.lock:
            self.clock = float(head["clock"])
            self.position = head["position"]
            self.contact = bool(head["contact"])
            self.touchdown_open = bool(head["touchdown_open"])
            self.open_reads = int(head["open_reads"])
            self.chuck.temperature, self.chuck.set_point = head["chuck"]
            self.contact_faults = {int(k): int(v) for k, v in head["faults"]}
            if self.position is not None and len(data) > 8 + n:
                self.array(self.position).restore(data[8 + n:])

    def open_noise(self, shape: tuple[int, ...]) -> NDArray[np.float64]:
        """Current noise of an open circuit, A (seeded by the wafer and a counter kept in the snapshot)."""
        rng = np.random.default_rng([self.seed, 0x0FE2, self.open_reads])
        self.open_reads += 1
        return rng.normal(0.0, OPEN_CURRENT_NOISE, shape)


class ProbedArray:
    """What the instruments measure through the probe card: the `emulator.Array` methods, answered by the
    contacted die's array, or by an open circuit (noise, no effect) when there is no electrical contact.
    Arguments are checked as the array checks them either way."""

    #: No array chuck of its own: the dies sit on the prober's chuck (the emulated prober's thermal commands).
    chuck: None = None

    def attach_chuck(self, chuck: object = None) -> object:
        raise ValueError("a wafer's dies sit on the prober's chuck: temperature is the prober's (its thermal"
                         " commands), not the die's")

    def __init__(self, wafer: Wafer) -> None:
        self.wafer = wafer
        self.rows, self.cols = wafer.die_rows, wafer.die_cols
        self.seed = wafer.seed
        self.preset = wafer.preset
        self.limits = wafer.limits
        self.lock = wafer.lock

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows, self.cols)

    @property
    def time(self) -> float:
        """The station's virtual clock, s."""
        return self.wafer.clock

    def _reference(self) -> Array:
        """An array to check arguments with (the die under the probes, else die 0: all dies share limits and size)."""
        w = self.wafer
        return w.array(w.position if w.position is not None else 0)

    def _n(self, rows: ArrayLike, cols: ArrayLike) -> int:
        return int(self._reference()._index(rows, cols).size)

    def read_current(self, rows: ArrayLike, cols: ArrayLike, v: float, vg: float = 3.3,
                     noisy: bool = True) -> NDArray[np.float64]:
        with self.lock:
            arr = self.wafer.contacted()
            if arr is not None:
                return arr.read_current(rows, cols, v, vg, noisy)
            self._reference()._scalar("v", v, -self.limits.v_max, self.limits.v_max, "V")
            return self.wafer.open_noise((self._n(rows, cols),))

    def read(self, rows: ArrayLike, cols: ArrayLike, v_read: float = 0.2, vg: float = 3.3,
             noisy: bool = True) -> NDArray[np.float64]:
        with self.lock:
            arr = self.wafer.contacted()
            if arr is not None:
                return arr.read(rows, cols, v_read, vg, noisy)
            if v_read == 0:
                raise ValueError("v_read: must be non-zero to compute a conductance")
            return self.read_current(rows, cols, v_read, vg, noisy) / v_read

    def read_all(self, v_read: float = 0.2, vg: float = 3.3, noisy: bool = True) -> NDArray[np.float64]:
        with self.lock:
            arr = self.wafer.contacted()
            if arr is not None:
                return arr.read_all(v_read, vg, noisy)
            return self.wafer.open_noise((self.rows, self.cols)) / v_read

    def conductance_matrix(self, v_read: float = 0.2, vg: float = 3.3) -> NDArray[np.float64]:
        with self.lock:
            arr = self.wafer.contacted()
            return arr.conductance_matrix(v_read, vg) if arr is not None else np.zeros((self.rows, self.cols))

    def sweep(self, rows: ArrayLike, cols: ArrayLike, voltages: ArrayLike, vg: float = 1.2,
              dwell: float = 1e-3) -> NDArray[np.float64]:
        with self.lock:
            arr = self.wafer.contacted()
            if arr is not None:
                return arr.sweep(rows, cols, voltages, vg=vg, dwell=dwell)
            v = np.atleast_1d(np.asarray(voltages, dtype=np.float64))
            self._reference()._check_v("voltages", v)
            return self.wafer.open_noise((self._n(rows, cols), v.size))

    def pulse(self, rows: ArrayLike, cols: ArrayLike, v: ArrayLike, vg: ArrayLike, width: ArrayLike) -> None:
        with self.lock:
            arr = self.wafer.contacted()
            if arr is not None:
                arr.pulse(rows, cols, v, vg, width)
                return
            n = self._n(rows, cols)
            ref = self._reference()
            ref._check_v("v", ref._per_cell("v", v, n)[0])
            ref._check_vg("vg", ref._per_cell("vg", vg, n)[0])

    def program(self, rows: ArrayLike, cols: ArrayLike, targets: ArrayLike, tolerance: float = 0.02,
                **kw: Any) -> ProgramResult:
        with self.lock:
            arr = self.wafer.contacted()
            if arr is not None:
                return arr.program(rows, cols, targets, tolerance, **kw)
            n = self._n(rows, cols)
            iterations = int(kw.get("max_iterations", 500))
            g = self.wafer.open_noise((n,)) / float(kw.get("v_read", 0.2))
            return ProgramResult(g=g, iterations=np.full(n, iterations, np.int32), converged=np.zeros(n, bool))

    def mvm(self, v_rows: ArrayLike, r_wire: float | None = None, **kw: Any) -> NDArray[np.float64]:
        with self.lock:
            arr = self.wafer.contacted()
            if arr is not None:
                return arr.mvm(v_rows, r_wire, **kw)
            v = np.asarray(v_rows, dtype=np.float64)
            return np.zeros(v.shape[:-1] + (self.cols,))

    def advance(self, seconds: float) -> None:
        self.wafer.advance(seconds)

    def snapshot(self) -> bytes:
        return self.wafer.snapshot()

    def restore(self, blob: bytes) -> None:
        self.wafer.restore(blob)

    def reseed(self, seed: int) -> None:
        raise ValueError("reseed: a wafer's dies are seeded from the wafer's seed and their index; "
                         "start the emulator with another --seed")

    # Introspection and faults act on the die under the probes, contacted or not.
    def inject_fault(self, rows: ArrayLike, cols: ArrayLike, kind: Any) -> None:
        self._reference().inject_fault(rows, cols, kind)

    def pulse_counts(self) -> NDArray[np.int64]:
        return self._reference().pulse_counts()

    def formed(self) -> NDArray[np.bool_]:
        return self._reference().formed()

    def state_conductance(self) -> NDArray[np.float64]:
        return self._reference().state_conductance()

    def device_parameters(self) -> dict[str, NDArray[np.float64]]:
        return self._reference().device_parameters()


__all__ = ["Chuck", "Die", "Motion", "NO_VARIATION", "ProbedArray", "Wafer", "WaferError", "WaferVariation",
           "die_seed"]
