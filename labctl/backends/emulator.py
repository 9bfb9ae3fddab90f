"""EmulatorBackend: the C array model called in-process."""
from __future__ import annotations

import struct

import emulator
from labctl.backends.base import ArrayBackend, BackendInfo, FloatArray, IntArray, ProgramOutcome, ProgramSettings
from labctl.core.limits import SafetyLimits
from labctl.core.schemes import IncrementalScheme
from labctl.instruments.thermal import ThermalController, ThermalLimits

#: Marks the chuck's state appended to an array snapshot (EmulatorBackend.snapshot).
_CHUCK_TRAILER = b"CHUCK1"
_CHUCK_STATE = struct.Struct("<ddddB")
#: Fastest set-point ramp of the emulated chuck, K/s: a Lake Shore 335/336's 100 K/min.
EMULATED_MAX_RAMP = 100.0 / 60.0


class ArrayChuck(ThermalController):
    """The thermal chuck of an in-process emulated array (emulator.thermal.Chuck), commanded directly
    and waited on through the backend's virtual clock: the same chuck, the same commands and the same
    waits as the emulated Lake Shore 336 of a station, so the same temperatures bit for bit."""

    def __init__(self, backend: EmulatorBackend) -> None:
        self.backend = backend
        self.chuck = backend.array.attach_chuck()
        self.limits = ThermalLimits(self.chuck.min_temperature, self.chuck.max_temperature, EMULATED_MAX_RAMP)

    async def _write_set_point(self, temperature: float, ramp_rate: float | None) -> None:
        with self.backend.array.lock:
            # K/s -> K/min as a controller takes it (the Lake Shore driver sends ramp_rate * 60.0).
            self.chuck.command(temperature, 0.0 if ramp_rate is None else ramp_rate * 60.0)
            self.chuck.heater_on = True

    async def temperature(self) -> float:
        return float(self.chuck.temperature)

    async def set_point(self) -> float:
        return float(self.chuck.set_point)

    async def sleep(self, seconds: float) -> None:
        await self.backend.wait(seconds)


def device_limits(limits: emulator.Limits) -> SafetyLimits:
    """The emulated array's rating (emulator.Limits) as safety limits. Its compliance is not rated:
    the selector limits the current, a meter's limit only clips the reading (10 mA: an SMU's range)."""
    return SafetyLimits(max_abs_voltage=limits.v_max, max_gate_voltage=limits.vg_max,
                        min_pulse_width=limits.width_min, max_pulse_width=limits.width_max, max_compliance=10e-3,
                        max_read_voltage=limits.v_read_max)


class EmulatorBackend(ArrayBackend):
    """In-process emulated array. `array` may be shared (e.g. with emulated servers); calls hold its lock."""

    def __init__(self, rows: int = 8, cols: int = 4, *, seed: int = 0, preset: str | emulator.Preset = "cmo-hfox",
                 array: emulator.Array | None = None) -> None:
        self.array = array if array is not None else emulator.Array(rows, cols, preset=preset, seed=seed)
        self.limits = device_limits(self.array.limits)
        self.info = BackendInfo(kind="emulator", rows=self.array.rows, cols=self.array.cols,
                                identity={"emulator": f"labctl emulator preset={self.array.preset.name} "
                                                      f"seed={self.array.seed}"},
                                native_program=True, virtual_clock=True)
        self._thermal: ArrayChuck | None = None

    def thermal_controller(self) -> ArrayChuck:
        """The array's chuck (attached on first use; at the array's temperature until commanded)."""
        if self._thermal is None:
            self._thermal = ArrayChuck(self)
        return self._thermal

    def snapshot(self) -> bytes:
        """The array's snapshot, followed by its chuck's state when it has one (what a resumed run
        needs to continue a bake where it was)."""
        blob = self.array.snapshot()
        chuck = self.array.chuck
        if chuck is None:
            return blob
        t, sp, working, ramp, heater = chuck.state()
        return blob + _CHUCK_TRAILER + _CHUCK_STATE.pack(t, sp, working, ramp, int(heater))

    def restore(self, blob: bytes) -> None:
        """Return to a `snapshot` (an array snapshot with or without the chuck's state)."""
        tail = len(_CHUCK_TRAILER) + _CHUCK_STATE.size
        if len(blob) > tail and blob[-tail:-_CHUCK_STATE.size] == _CHUCK_TRAILER:
            self.array.restore(blob[:-tail])
            t, sp, working, ramp, heater = _CHUCK_STATE.unpack(blob[-_CHUCK_STATE.size:])
            chuck = self.array.attach_chuck()
            with self.array.lock:
                chuck.restore((t, sp, working, ramp, bool(heater)))
            self.array.temperature = t
            return
        self.array.restore(blob)

    async def close(self) -> None:
        return None

    async def outputs_off(self) -> None:
        return None  # nothing is sourcing between calls

    async def sweep(self, rows: IntArray, cols: IntArray, voltages: FloatArray, vg: float,
                    dwell: float = 1e-3, compliance: float | None = None) -> FloatArray:
        r, c = self.check_cells(rows, cols)
        self.check_voltage("voltages", voltages)
        self.check_gate("vg", vg)
        self.check_compliance(compliance)
        return self.clip_to_compliance(self.array.sweep(r, c, voltages, vg=vg, dwell=dwell), compliance)

    async def pulse(self, rows: IntArray, cols: IntArray, v: float | FloatArray, vg: float | FloatArray,
                    width: float | FloatArray) -> None:
        r, c = self.check_pulse(rows, cols, v, vg, width)
        self.array.pulse(r, c, v, vg, width)

    async def read(self, rows: IntArray, cols: IntArray, v_read: float = 0.2, vg: float = 3.3) -> FloatArray:
        r, c = self.check_cells(rows, cols)
        self.check_read_bias(v_read)
        return self.array.read(r, c, v_read, vg)

    async def read_array(self, v_read: float = 0.2, vg: float = 3.3) -> FloatArray:
        self.check_read_bias(v_read)
        return self.array.read_all(v_read, vg)

    async def wait(self, seconds: float) -> None:
        self.array.advance(seconds)

    async def now(self) -> float:
        return self.array.time

    async def program(self, rows: IntArray, cols: IntArray, targets: FloatArray,
                      settings: ProgramSettings) -> ProgramOutcome:
        r, c = self.check_cells(rows, cols)
        s = settings
        scheme = s.scheme
        v_set, v_reset = scheme.start_amplitudes(targets)
        steps: dict[str, float | int] = {}
        if isinstance(scheme, IncrementalScheme):
            steps = dict(v_step_set=scheme.v_step_set, v_step_reset=scheme.v_step_reset,
                         v_stop_set=scheme.v_stop_set, v_stop_reset=scheme.v_stop_reset,
                         max_per_polarity=scheme.max_per_polarity, max_flips=scheme.max_flips)
        res = self.array.program(r, c, targets, s.tolerance, scheme=scheme.name, max_iterations=s.max_iterations,
                                 v_set=v_set, v_reset=v_reset, vg_set=s.vg_set, vg_reset=s.vg_reset, width=s.width,
                                 v_read=s.v_read, vg_read=s.vg_read, **steps)
        return ProgramOutcome(g=res.g, iterations=res.iterations, converged=res.converged)
