"""Parameter checks every request must pass before anything is applied to a cell.

Pure functions of a request and the controller's INFO limits. The host client runs them before
sending (so a bad value never leaves the host) and the controller runs them again before acting
(so a host that skipped them cannot hurt the chip). An error names the field, the value and the
allowed range.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from labctl.protocols import messages as m
from labctl.protocols.cells import CellAddressError
from labctl.protocols.codes import CellsKind, DType, FormMode, Status
from labctl.protocols.errors import ProtocolError

#: Largest accepted SET_TARGET_G max_iterations and VERIFY_LOOP_MAX value.
MAX_ITERATIONS = 1_000_000
#: Largest VERIFY averages.
MAX_AVERAGES = 1000

Indices = tuple[np.ndarray, np.ndarray]


class LimitError(ProtocolError, ValueError):
    """A parameter outside the controller's limits. `status` is the code the controller sends."""

    def __init__(self, message: str, status: Status = Status.OUT_OF_RANGE) -> None:
        self.status = status
        super().__init__(message)


def _finite(field: str, value: float) -> float:
    if not math.isfinite(value):
        raise LimitError(f"{field} = {value} must be a finite number")
    return value


def _range(field: str, value: float, lo: float, hi: float, unit: str) -> None:
    _finite(field, value)
    if not lo <= value <= hi:
        raise LimitError(f"{field} = {value:g} {unit} outside [{lo:g}, {hi:g}] {unit}")


def _amplitude(field: str, value: float, info: m.InfoReply) -> None:
    _range(field, value, -info.v_max, info.v_max, "V")


def _gate(field: str, value: float, info: m.InfoReply) -> None:
    _range(field, value, 0.0, info.vg_max, "V")


def _width(field: str, value: float, info: m.InfoReply) -> None:
    _finite(field, value)
    if value <= 0:
        raise LimitError(f"{field} = {value:g} s must be > 0 s (allowed [{info.width_min:g}, "
                         f"{info.width_max:g}] s)")
    _range(field, value, info.width_min, info.width_max, "s")


def _read_bias(field: str, value: float, info: m.InfoReply) -> None:
    _range(field, value, -info.v_read_max, info.v_read_max, "V")
    if value == 0.0:
        raise LimitError(f"{field} = 0 V: a read needs a non-zero bias (|{field}| <= {info.v_read_max:g} V)")


def _count(field: str, value: int, lo: int, hi: int) -> None:
    if not lo <= value <= hi:
        raise LimitError(f"{field} = {value} outside [{lo}, {hi}]")


def _array_values(field: str, values: np.ndarray, lo: float, hi: float, unit: str) -> None:
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return
    if not np.all(np.isfinite(values)):
        k = int(np.flatnonzero(~np.isfinite(values))[0])
        raise LimitError(f"{field}[{k}] = {values[k]} must be a finite number")
    bad = (values < lo) | (values > hi)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise LimitError(f"{field}[{k}] = {values[k]:g} {unit} outside [{lo:g}, {hi:g}] {unit}")


def _cells(msg: m.Message, info: m.InfoReply) -> Indices:
    try:
        return msg.cells.indices((info.rows, info.cols))  # type: ignore[attr-defined]
    except CellAddressError as exc:
        raise LimitError(str(exc), Status.BAD_CELLS) from None


def _reply_size(what: str, size: int, max_payload: int) -> None:
    if max_payload and size > max_payload:
        raise LimitError(f"{what}: the reply would be {size} B, above the maximum payload "
                         f"{max_payload} B; split the request into smaller cell sets")


def form_sweep_voltages(req: m.FormRequest) -> np.ndarray:
    """Amplitudes of a FORM ramp, V: v_start, v_start + v_step, ... <= v_stop (v_stop included
    when it lies on the grid within 1e-9 V)."""
    n = int(math.floor((req.v_stop - req.v_start) / req.v_step + 1e-9)) + 1
    return req.v_start + req.v_step * np.arange(n, dtype=float)


def _check_form(req: m.FormRequest, info: m.InfoReply, max_reply: int) -> Indices:
    for name in ("v_start", "v_stop"):
        _amplitude(name, getattr(req, name), info)
    _finite("v_step", req.v_step)
    if not 0 < req.v_step <= info.v_max:
        raise LimitError(f"v_step = {req.v_step:g} V outside (0, {info.v_max:g}] V")
    if req.v_stop < req.v_start:
        raise LimitError(f"v_stop = {req.v_stop:g} V below v_start = {req.v_start:g} V: forming ramps up")
    points = int(math.floor((req.v_stop - req.v_start) / req.v_step + 1e-9)) + 1
    _count("number of ramp points (v_stop - v_start) / v_step + 1", points, 1, info.max_sweep_points)
    _gate("vg", req.vg, info)
    if req.mode == FormMode.SWEEP:
        _range("duration (dwell per point)", req.duration, info.dwell_min, info.dwell_max, "s")
    else:
        _width("duration (pulse width)", req.duration, info)
    _read_bias("v_read", req.v_read, info)
    _gate("vg_read", req.vg_read, info)
    _finite("g_formed", req.g_formed)
    if req.g_formed <= 0:
        raise LimitError(f"g_formed = {req.g_formed:g} S must be > 0 S")
    idx = _cells(req, info)
    _reply_size("FORM", 4 + 25 * idx[0].size, max_reply)
    return idx


def _check_pulse(req: m.PulseRequest, info: m.InfoReply, max_reply: int) -> Indices:
    _amplitude("v", req.v, info)
    _gate("vg", req.vg, info)
    _width("width", req.width, info)
    _count("count", req.count, 1, info.max_pulse_count)
    return _cells(req, info)


def _check_read(req: m.ReadRequest, info: m.InfoReply, max_reply: int) -> Indices:
    _read_bias("v_read", req.v_read, info)
    _gate("vg", req.vg, info)
    idx = _cells(req, info)
    _reply_size("READ", 4 + 16 * idx[0].size, max_reply)
    return idx


def _check_read_array(req: m.ReadArrayRequest, info: m.InfoReply, max_reply: int) -> None:
    _read_bias("v_read", req.v_read, info)
    _gate("vg", req.vg, info)
    if req.cells.kind == CellsKind.LIST:
        raise LimitError("cells: READ_ARRAY takes the whole array, a single cell or a region, "
                         "not a cell list (use READ)", Status.BAD_CELLS)
    try:
        _, _, nrows, ncols = req.cells.block((info.rows, info.cols))
    except CellAddressError as exc:
        raise LimitError(str(exc), Status.BAD_CELLS) from None
    item = 8 if req.dtype == DType.FLOAT64 else 4
    _reply_size("READ_ARRAY", 12 + item * nrows * ncols, max_reply)
    return None  # the block is the selection; no per-cell index arrays needed


def _check_sweep(req: m.SweepRequest, info: m.InfoReply, max_reply: int) -> Indices:
    _count("number of sweep points", int(np.asarray(req.voltages).size), 1, info.max_sweep_points)
    _array_values("voltages", req.voltages, -info.v_max, info.v_max, "V")
    _gate("vg", req.vg, info)
    _range("dwell", req.dwell, info.dwell_min, info.dwell_max, "s")
    idx = _cells(req, info)
    _reply_size("SWEEP", 8 + 8 * idx[0].size * int(np.asarray(req.voltages).size), max_reply)
    return idx


def _check_targets(req: m.SetTargetGRequest | m.VerifyRequest, n_cells: int) -> None:
    t = np.asarray(req.targets, dtype=float)
    if t.size != n_cells:
        raise LimitError(f"targets: {t.size} values for {n_cells} selected cells", Status.BAD_PAYLOAD)
    _array_values("targets", t, np.nextafter(0.0, 1.0), np.inf, "S")
    _finite("tolerance", req.tolerance)
    if not 0 < req.tolerance < 1:
        raise LimitError(f"tolerance = {req.tolerance:g} outside (0, 1) (relative, 0.02 = 2 %)")


def _check_set_target(req: m.SetTargetGRequest, info: m.InfoReply, max_reply: int) -> Indices:
    idx = _cells(req, info)
    _check_targets(req, idx[0].size)
    _count("max_iterations", req.max_iterations, 0, MAX_ITERATIONS)
    _read_bias("v_read", req.v_read, info)
    for name in ("vg_read", "vg_set", "vg_reset"):
        _gate(name, getattr(req, name), info)
    _width("width", req.width, info)
    s = req.scheme
    if isinstance(s, m.IdenticalPulse):
        _array_values("ranges.g_low", s.g_low, 0.0, np.inf, "S")
        _array_values("ranges.g_high", s.g_high, 0.0, np.inf, "S")
        if np.any(np.asarray(s.g_high) <= np.asarray(s.g_low)):
            k = int(np.flatnonzero(np.asarray(s.g_high) <= np.asarray(s.g_low))[0])
            raise LimitError(f"ranges[{k}]: g_high = {s.g_high[k]:g} S not above g_low = {s.g_low[k]:g} S")
        _array_values("ranges.v_set", s.v_set, np.nextafter(0.0, 1.0), info.v_max, "V")
        _array_values("ranges.v_reset", s.v_reset, -info.v_max, -np.nextafter(0.0, 1.0), "V")
    else:
        for name, sign in (("v_set_start", 1), ("v_set_stop", 1), ("v_reset_start", -1),
                           ("v_reset_stop", -1)):
            value = getattr(s, name)
            _amplitude(name, value, info)
            if value * sign <= 0:
                raise LimitError(f"{name} = {value:g} V must be {'positive' if sign > 0 else 'negative'}")
        for name in ("v_set_step", "v_reset_step"):
            value = _finite(name, getattr(s, name))
            if not 0 < value <= info.v_max:
                raise LimitError(f"{name} = {value:g} V outside (0, {info.v_max:g}] V (a magnitude)")
        if s.v_set_stop < s.v_set_start:
            raise LimitError(f"v_set_stop = {s.v_set_stop:g} V below v_set_start = {s.v_set_start:g} V")
        if s.v_reset_stop > s.v_reset_start:
            raise LimitError(f"v_reset_stop = {s.v_reset_stop:g} V above v_reset_start = "
                             f"{s.v_reset_start:g} V (reset amplitudes grow more negative)")
    _reply_size("SET_TARGET_G", 4 + 13 * idx[0].size, max_reply)
    return idx


def _check_verify(req: m.VerifyRequest, info: m.InfoReply, max_reply: int) -> Indices:
    idx = _cells(req, info)
    _check_targets(req, idx[0].size)
    _read_bias("v_read", req.v_read, info)
    _gate("vg_read", req.vg_read, info)
    _count("averages", req.averages, 1, MAX_AVERAGES)
    _reply_size("VERIFY", 4 + 9 * idx[0].size, max_reply)
    return idx


def _check_verify_loop_max(req: m.VerifyLoopMaxRequest, info: m.InfoReply, max_reply: int) -> None:
    if req.value is not None:
        _count("value", req.value, 1, MAX_ITERATIONS)


def _check_advance(req: m.EmuAdvanceRequest, info: m.InfoReply, max_reply: int) -> None:
    _finite("seconds", req.seconds)
    if req.seconds < 0:
        raise LimitError(f"seconds = {req.seconds:g} s must be >= 0 s (the clock only moves forward)")


def _check_cells_only(req: m.Message, info: m.InfoReply, max_reply: int) -> Indices:
    idx = _cells(req, info)
    if isinstance(req, m.EmuPulseCountsRequest):
        _reply_size("EMU_PULSE_COUNTS", 4 + 8 * idx[0].size, max_reply)
    return idx


_CHECKS: dict[type[m.Message], Callable[..., Indices | None]] = {
    m.FormRequest: _check_form,
    m.PulseRequest: _check_pulse,
    m.ReadRequest: _check_read,
    m.ReadArrayRequest: _check_read_array,
    m.SweepRequest: _check_sweep,
    m.SetTargetGRequest: _check_set_target,
    m.VerifyRequest: _check_verify,
    m.VerifyLoopMaxRequest: _check_verify_loop_max,
    m.EmuAdvanceRequest: _check_advance,
    m.EmuInjectFaultRequest: _check_cells_only,
    m.EmuPulseCountsRequest: _check_cells_only,
}


def check_request(msg: m.Message, info: m.InfoReply, max_reply: int = 0) -> Indices | None:
    """Validate `msg` against the limits in `info`.

    Args:
        msg: a request message.
        info: the controller's INFO reply (array size and limits).
        max_reply: largest reply payload the receiver accepts, B (0: no check).

    Returns:
        (rows, cols) int64 index arrays of the selected cells in visiting order, or None for
        commands without cells.

    Raises:
        LimitError: with `status` OUT_OF_RANGE, BAD_CELLS or BAD_PAYLOAD and a message naming
            the field, its value and the allowed range.
    """
    check = _CHECKS.get(type(msg))
    return None if check is None else check(msg, info, max_reply)
