"""Backends for campaigns: build one from the [backend] table, enforce [limits] on every call, and save
or restore the state a resume needs."""
from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

from labctl.backends.base import (ArrayBackend, BackendInfo, FloatArray, IntArray, ProgramOutcome, ProgramSettings,
                                  PulseCurrents)
from labctl.campaigns.schema import BackendSpec, Limits
from labctl.core.limits import SafetyLimits
from labctl.instruments.thermal import ThermalController, ThermalLimits


def make_backend(spec: BackendSpec) -> ArrayBackend:
    """The backend a campaign's [backend] table names: the in-process emulator, or the chip or station
    backend labctl.backends.open_backend builds from its address."""
    if spec.kind == "emulator":
        from labctl.backends.emulator import EmulatorBackend

        return EmulatorBackend(spec.rows, spec.cols, seed=spec.seed, preset=device_preset(spec.preset, spec.device))
    from labctl.backends import open_backend

    return open_backend(spec.address_spec())


def device_preset(name: str, device: dict[str, float]) -> Any:
    """The emulator preset `name` with the `device` parameters changed; its name records the changes (it is
    the backend's identity in the store)."""
    if not device:
        return name
    from emulator.presets import get_preset

    changes = ",".join(f"{k}={v:g}" for k, v in sorted(device.items()))
    return get_preset(name).with_(name=f"{name}({changes})", **device)


def _unwrap(backend: ArrayBackend) -> ArrayBackend:
    while isinstance(backend, LimitedBackend):
        backend = backend.inner
    return backend


def save_state(backend: ArrayBackend) -> bytes | None:
    """Backend state to resume from (the emulator's snapshot), or None if the backend keeps its state
    itself (real hardware: the array is where it was)."""
    b = _unwrap(backend)
    fn = getattr(b, "snapshot", None)
    if callable(fn):
        return fn()
    array = getattr(b, "array", None)
    if array is not None and callable(getattr(array, "snapshot", None)):
        return array.snapshot()
    return None


def restore_state(backend: ArrayBackend, blob: bytes) -> None:
    b = _unwrap(backend)
    fn = getattr(b, "restore", None)
    if callable(fn):
        fn(blob)
        return
    array = getattr(b, "array", None)
    if array is not None and callable(getattr(array, "restore", None)):
        array.restore(blob)
        return
    raise ValueError(f"backend: a {b.info.kind} backend cannot restore a saved state")


class LimitedBackend(ArrayBackend):
    """Wraps a backend and refuses any call beyond the campaign's [limits] before it reaches the
    backend (ValueError naming the argument, the value and the limit). `after_pulse`, if set, is
    awaited after every pulse and pulse_and_read call (the runner stores the currents measured during
    it)."""

    def __init__(self, inner: ArrayBackend, limits: Limits) -> None:
        self.inner = inner
        self.campaign_limits = limits
        self.after_pulse: Callable[[], Awaitable[None]] | None = None
        self._tightened: tuple[SafetyLimits, SafetyLimits] | None = None  # (inner limits, combined)

    # A hardware backend knows its size and limits only once open: read them from it when asked.
    @property  # type: ignore[override]
    def info(self) -> BackendInfo:
        return self.inner.info

    @property  # type: ignore[override]
    def limits(self) -> SafetyLimits:
        inner = self.inner.limits
        if self._tightened is None or self._tightened[0] is not inner:  # combined once per inner limits
            cl = self.campaign_limits
            self._tightened = (inner, inner.tightened(
                max_abs_voltage=cl.max_abs_voltage, max_gate_voltage=cl.max_gate_voltage,
                max_pulse_width=cl.max_pulse_width, max_compliance=cl.max_compliance,
                max_read_voltage=cl.max_read_voltage))
        return self._tightened[1]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _check_vg(self, vg: float | FloatArray) -> None:
        self.check_voltage("vg", vg, self.limits.max_gate_voltage)

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def outputs_off(self) -> None:
        await self.inner.outputs_off()

    async def sweep(self, rows: IntArray, cols: IntArray, voltages: FloatArray, vg: float,
                    dwell: float = 1e-3, compliance: float | None = None) -> FloatArray:
        self.check_voltage("voltages", voltages)
        self._check_vg(vg)
        if compliance is not None and compliance > self.limits.max_compliance:
            raise ValueError(f"compliance: {compliance:g} A exceeds the limit {self.limits.max_compliance:g} A")
        return await self.inner.sweep(rows, cols, voltages, vg, dwell, compliance)

    async def pulse(self, rows: IntArray, cols: IntArray, v: float | FloatArray, vg: float | FloatArray,
                    width: float | FloatArray) -> None:
        self.check_voltage("v", v)
        self._check_vg(vg)
        self.check_width(width)
        await self.inner.pulse(rows, cols, v, vg, width)
        if self.after_pulse is not None:
            await self.after_pulse()

    def take_pulse_currents(self) -> PulseCurrents:
        return self.inner.take_pulse_currents()

    async def pulse_and_read(self, rows: IntArray, cols: IntArray, v: float | FloatArray, vg: float | FloatArray,
                             width: float | FloatArray, v_read: float = 0.2, vg_read: float = 3.3) -> FloatArray:
        self.check_voltage("v", v)
        self._check_vg(vg)
        self.check_width(width)
        self.check_read_bias(v_read)
        self._check_vg(vg_read)
        g = await self.inner.pulse_and_read(rows, cols, v, vg, width, v_read, vg_read)
        if self.after_pulse is not None:
            await self.after_pulse()
        return g

    async def read(self, rows: IntArray, cols: IntArray, v_read: float = 0.2, vg: float = 3.3) -> FloatArray:
        self.check_read_bias(v_read)
        self._check_vg(vg)
        return await self.inner.read(rows, cols, v_read, vg)

    async def read_array(self, v_read: float = 0.2, vg: float = 3.3) -> FloatArray:
        self.check_read_bias(v_read)
        self._check_vg(vg)
        return await self.inner.read_array(v_read, vg)

    async def wait(self, seconds: float) -> None:
        await self.inner.wait(seconds)

    def thermal_controller(self) -> ThermalController | None:
        """The inner backend's controller, held to the campaign's temperature limits as well."""
        inner = self.inner.thermal_controller()
        if inner is None:
            return None
        cl = self.campaign_limits
        return inner.tightened(ThermalLimits(
            min_temperature=cl.min_temperature if cl.min_temperature is not None else 0.0,
            max_temperature=cl.max_temperature if cl.max_temperature is not None else math.inf,
            max_ramp_rate=cl.max_ramp_rate if cl.max_ramp_rate is not None else math.inf))

    async def now(self) -> float:
        return await self.inner.now()

    async def program(self, rows: IntArray, cols: IntArray, targets: FloatArray,
                      settings: ProgramSettings) -> ProgramOutcome:
        s = settings
        self.check_voltage("v_read", s.v_read)
        for name in ("v_set", "v_reset", "v_start_set", "v_start_reset", "v_stop_set", "v_stop_reset"):
            value = getattr(s.scheme, name, None)
            if value is not None:
                self.check_voltage(name, value)
        for name in ("vg_set", "vg_reset", "vg_read"):
            self.check_voltage(name, getattr(s, name), self.limits.max_gate_voltage)
        self.check_width(s.width)
        return await self.inner.program(rows, cols, targets, settings)
