"""Typed request and reply payloads, one dataclass per layout in docs/protocol.md.

Each class has `pack() -> bytes` and `unpack(payload) -> instance`; `unpack` raises only
`PayloadError`, naming the field that did not fit. Per-cell arrays are numpy arrays in SI units
(V, A, S, s) in the visiting order of the request's cell selector.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from labctl.protocols.cells import Cells
from labctl.protocols.codes import (
    MAX_ERROR_MESSAGE,
    PROTOCOL_VERSION,
    Command,
    DType,
    Fault,
    FormMode,
    RunState,
    Scheme,
)
from labctl.protocols.errors import PayloadError
from labctl.protocols.wire import PayloadReader, PayloadWriter

# Array elements on the wire.
F64 = "<f8"
F32 = "<f4"
U32 = "<u4"
U64 = "<u8"
U8 = "u1"


class Message:
    """Base of all payload classes."""

    command: ClassVar[Command]
    reply: ClassVar[bool] = False

    def pack(self) -> bytes:
        w = PayloadWriter()
        self._pack(w)
        return w.bytes()

    def _pack(self, w: PayloadWriter) -> None:
        """Write the fields (subclasses with fields override)."""

    @classmethod
    def unpack(cls, payload: bytes) -> Message:
        r = PayloadReader(payload, f"{cls.command.name} {'reply' if cls.reply else 'request'}")
        msg = cls._unpack(r)
        r.done()
        return msg

    @classmethod
    def _unpack(cls, r: PayloadReader) -> Message:
        return cls()


def _eq_arrays(a: object, b: object, names: tuple[str, ...]) -> bool:
    """Field-wise equality where numpy arrays compare by content (NaN equal to NaN)."""
    if type(a) is not type(b):
        return False
    for name in names:
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            if not np.array_equal(np.asarray(x), np.asarray(y), equal_nan=np.asarray(x).dtype.kind == "f"):
                return False
        elif x != y:
            return False
    return True


class _ArrayEq:
    """Mixin: dataclass equality that understands numpy fields."""

    def __eq__(self, other: object) -> bool:
        return _eq_arrays(self, other, tuple(self.__dataclass_fields__))  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]


def _count(r: PayloadReader, field_name: str) -> int:
    return r.u32(field_name)


# ----------------------------------------------------------------------------- session


@dataclass(eq=True)
class HelloRequest(Message):
    """Opens a session. Versions are the command-set versions the host speaks."""

    command: ClassVar[Command] = Command.HELLO
    min_version: int = PROTOCOL_VERSION
    max_version: int = PROTOCOL_VERSION
    max_payload: int = 0  # largest reply payload the host accepts, B (0: no limit stated)
    client: str = "labctl"

    def _pack(self, w: PayloadWriter) -> None:
        w.u16("min_version", self.min_version).u16("max_version", self.max_version)
        w.u32("max_payload", self.max_payload).text("client", self.client, 64)

    @classmethod
    def _unpack(cls, r: PayloadReader) -> HelloRequest:
        return cls(r.u16("min_version"), r.u16("max_version"), r.u32("max_payload"), r.text("client"))


@dataclass(eq=True)
class HelloReply(Message):
    command: ClassVar[Command] = Command.HELLO
    reply: ClassVar[bool] = True
    version: int = PROTOCOL_VERSION
    max_payload: int = 0  # largest request payload the controller accepts, B
    controller: str = ""

    def _pack(self, w: PayloadWriter) -> None:
        w.u16("version", self.version).u16("reserved", 0).u32("max_payload", self.max_payload)
        w.text("controller", self.controller, 64)

    @classmethod
    def _unpack(cls, r: PayloadReader) -> HelloReply:
        version = r.u16("version")
        r.u16("reserved")
        return cls(version, r.u32("max_payload"), r.text("controller"))


@dataclass(eq=True)
class InfoRequest(Message):
    command: ClassVar[Command] = Command.INFO


#: INFO capability bits.
CAP_EMULATOR = 0x0001


@dataclass(eq=True)
class InfoReply(Message):
    """Array size, versions and the limits every command is validated against (SI units)."""

    command: ClassVar[Command] = Command.INFO
    reply: ClassVar[bool] = True
    protocol_version: int = PROTOCOL_VERSION
    rows: int = 0
    cols: int = 0
    capabilities: int = 0
    max_payload: int = 0          # B
    verify_loop_max: int = 0      # current SET_TARGET_G iteration bound
    v_max: float = 0.0            # max |V| on the top electrode, V
    vg_max: float = 0.0           # max gate voltage, V (min is 0)
    width_min: float = 0.0        # shortest pulse, s
    width_max: float = 0.0        # longest pulse, s
    dwell_min: float = 0.0        # shortest sweep dwell per point, s
    dwell_max: float = 0.0        # longest sweep dwell per point, s
    v_read_max: float = 0.0       # max |V| of a read, V
    compliance_min: float = 0.0   # lowest compliance current the gate can set, A
    compliance_max: float = 0.0   # highest compliance current the gate can set, A
    max_pulse_count: int = 0      # largest PULSE count
    max_sweep_points: int = 0     # largest SWEEP / FORM sweep length
    firmware: str = ""
    model: str = ""

    @property
    def emulator(self) -> bool:
        return bool(self.capabilities & CAP_EMULATOR)

    def _pack(self, w: PayloadWriter) -> None:
        w.u16("protocol_version", self.protocol_version).u16("rows", self.rows)
        w.u16("cols", self.cols).u16("capabilities", self.capabilities)
        w.u32("max_payload", self.max_payload).u32("verify_loop_max", self.verify_loop_max)
        for name in ("v_max", "vg_max", "width_min", "width_max", "dwell_min", "dwell_max",
                     "v_read_max", "compliance_min", "compliance_max"):
            w.f64(name, getattr(self, name))
        w.u32("max_pulse_count", self.max_pulse_count).u32("max_sweep_points", self.max_sweep_points)
        w.text("firmware", self.firmware).text("model", self.model)

    @classmethod
    def _unpack(cls, r: PayloadReader) -> InfoReply:
        head = [r.u16("protocol_version"), r.u16("rows"), r.u16("cols"), r.u16("capabilities"),
                r.u32("max_payload"), r.u32("verify_loop_max")]
        floats = [r.f64(name) for name in ("v_max", "vg_max", "width_min", "width_max", "dwell_min",
                                           "dwell_max", "v_read_max", "compliance_min",
                                           "compliance_max")]
        counts = [r.u32("max_pulse_count"), r.u32("max_sweep_points")]
        return cls(*head, *floats, *counts, r.text("firmware"), r.text("model"))


@dataclass(eq=True)
class StatusRequest(Message):
    command: ClassVar[Command] = Command.STATUS


@dataclass(eq=True)
class StatusReply(Message):
    """Progress of the running command (done/total in the command's own units, usually cells)."""

    command: ClassVar[Command] = Command.STATUS
    reply: ClassVar[bool] = True
    state: RunState = RunState.IDLE
    running_command: int = 0
    request_id: int = 0
    done: int = 0
    total: int = 0
    elapsed: float = 0.0  # s since the running command started

    def _pack(self, w: PayloadWriter) -> None:
        w.u8("state", self.state).u8("command", self.running_command).u16("reserved", 0)
        w.u32("request_id", self.request_id).u32("done", self.done).u32("total", self.total)
        w.f64("elapsed", self.elapsed)

    @classmethod
    def _unpack(cls, r: PayloadReader) -> StatusReply:
        state = r.u8("state")
        if state not in RunState._value2member_map_:
            raise PayloadError(f"{r.what}: state = {state}, allowed 0 (idle), 1 (running), 2 (aborting)")
        command = r.u8("command")
        r.u16("reserved")
        return cls(RunState(state), command, r.u32("request_id"), r.u32("done"), r.u32("total"),
                   r.f64("elapsed"))


@dataclass(eq=True)
class AbortRequest(Message):
    command: ClassVar[Command] = Command.ABORT


@dataclass(eq=True)
class AbortReply(Message):
    command: ClassVar[Command] = Command.ABORT
    reply: ClassVar[bool] = True
    aborted: bool = False
    aborted_command: int = 0
    request_id: int = 0

    def _pack(self, w: PayloadWriter) -> None:
        w.u8("aborted", int(self.aborted)).u8("command", self.aborted_command).u16("reserved", 0)
        w.u32("request_id", self.request_id)

    @classmethod
    def _unpack(cls, r: PayloadReader) -> AbortReply:
        aborted, command = r.u8("aborted"), r.u8("command")
        r.u16("reserved")
        return cls(bool(aborted), command, r.u32("request_id"))


@dataclass(eq=True)
class ResetRequest(Message):
    command: ClassVar[Command] = Command.RESET


@dataclass(eq=True)
class ResetReply(Message):
    command: ClassVar[Command] = Command.RESET
    reply: ClassVar[bool] = True


@dataclass(eq=True)
class ByeRequest(Message):
    command: ClassVar[Command] = Command.BYE


@dataclass(eq=True)
class ByeReply(Message):
    command: ClassVar[Command] = Command.BYE
    reply: ClassVar[bool] = True


@dataclass(eq=True)
class VerifyLoopMaxRequest(Message):
    """Get (value None) or set the SET_TARGET_G iteration bound."""

    command: ClassVar[Command] = Command.VERIFY_LOOP_MAX
    value: int | None = None

    def _pack(self, w: PayloadWriter) -> None:
        w.u8("op", 0 if self.value is None else 1).u32("value", self.value or 0)

    @classmethod
    def _unpack(cls, r: PayloadReader) -> VerifyLoopMaxRequest:
        op, value = r.u8("op"), r.u32("value")
        if op not in (0, 1):
            raise PayloadError(f"{r.what}: op = {op}, allowed 0 (get) or 1 (set)")
        return cls(None if op == 0 else value)


@dataclass(eq=True)
class VerifyLoopMaxReply(Message):
    command: ClassVar[Command] = Command.VERIFY_LOOP_MAX
    reply: ClassVar[bool] = True
    value: int = 0

    def _pack(self, w: PayloadWriter) -> None:
        w.u32("value", self.value)

    @classmethod
    def _unpack(cls, r: PayloadReader) -> VerifyLoopMaxReply:
        return cls(r.u32("value"))


# ----------------------------------------------------------------------------- array operations


@dataclass(eq=False)
class FormRequest(_ArrayEq, Message):
    """Forming by a quasi-static sweep or a ramp of pulses; compliance set by the gate `vg`.

    SWEEP: v_start, v_start + v_step, ... up to v_stop, `duration` s per point.
    PULSE_RAMP: one pulse of `duration` s per step, same amplitudes, until the cell reads formed.
    A cell counts as formed when its conductance read at (v_read, vg_read) is at least g_formed.
    """

    command: ClassVar[Command] = Command.FORM
    cells: Cells = field(default_factory=Cells.all)
    mode: FormMode = FormMode.SWEEP
    v_start: float = 0.0      # V
    v_stop: float = 3.6       # V
    v_step: float = 0.01      # V
    vg: float = 1.2           # V (compliance)
    duration: float = 1e-3    # s: dwell per point (SWEEP) or pulse width (PULSE_RAMP)
    v_read: float = 0.2       # V
    vg_read: float = 3.3      # V
    g_formed: float = 5e-6    # S

    def _pack(self, w: PayloadWriter) -> None:
        self.cells.pack(w)
        w.u8("mode", self.mode)
        for name in ("v_start", "v_stop", "v_step", "vg", "duration", "v_read", "vg_read", "g_formed"):
            w.f64(name, getattr(self, name))

    @classmethod
    def _unpack(cls, r: PayloadReader) -> FormRequest:
        cells = Cells.unpack(r)
        mode = r.u8("mode")
        if mode not in FormMode._value2member_map_:
            raise PayloadError(f"{r.what}: mode = {mode}, allowed 0 (sweep) or 1 (pulse ramp)")
        values = [r.f64(n) for n in ("v_start", "v_stop", "v_step", "vg", "duration", "v_read",
                                     "vg_read", "g_formed")]
        return cls(cells, FormMode(mode), *values)


@dataclass(eq=False)
class FormReply(_ArrayEq, Message):
    """Per cell: forming voltage (V) and current (A) (NaN if not formed or not measured),
    conductance after forming (S), and whether the cell formed."""

    command: ClassVar[Command] = Command.FORM
    reply: ClassVar[bool] = True
    v_form: np.ndarray = field(default_factory=lambda: np.empty(0))
    i_form: np.ndarray = field(default_factory=lambda: np.empty(0))
    g: np.ndarray = field(default_factory=lambda: np.empty(0))
    formed: np.ndarray = field(default_factory=lambda: np.empty(0, bool))

    def _pack(self, w: PayloadWriter) -> None:
        n = np.asarray(self.g).size
        w.u32("count", n)
        w.array("v_form", self.v_form, F64, n).array("i_form", self.i_form, F64, n)
        w.array("g", self.g, F64, n).array("formed", self.formed, U8, n)

    @classmethod
    def _unpack(cls, r: PayloadReader) -> FormReply:
        n = _count(r, "count")
        return cls(r.array("v_form", F64, n), r.array("i_form", F64, n), r.array("g", F64, n),
                   r.array("formed", U8, n).astype(bool))


@dataclass(eq=False)
class PulseRequest(_ArrayEq, Message):
    """`count` identical rectangular pulses to every listed cell (v < 0 resets)."""

    command: ClassVar[Command] = Command.PULSE
    cells: Cells = field(default_factory=Cells.all)
    v: float = 0.0       # top-electrode amplitude, V
    vg: float = 3.3      # gate, V
    width: float = 2.5e-6  # s
    count: int = 1

    def _pack(self, w: PayloadWriter) -> None:
        self.cells.pack(w)
        w.f64("v", self.v).f64("vg", self.vg).f64("width", self.width).u32("count", self.count)

    @classmethod
    def _unpack(cls, r: PayloadReader) -> PulseRequest:
        return cls(Cells.unpack(r), r.f64("v"), r.f64("vg"), r.f64("width"), r.u32("count"))


@dataclass(eq=True)
class PulseReply(Message):
    command: ClassVar[Command] = Command.PULSE
    reply: ClassVar[bool] = True
    pulses: int = 0  # pulses applied in total (cells x count)

    def _pack(self, w: PayloadWriter) -> None:
        w.u64("pulses", self.pulses)

    @classmethod
    def _unpack(cls, r: PayloadReader) -> PulseReply:
        return cls(r.u64("pulses"))


@dataclass(eq=False)
class ReadRequest(_ArrayEq, Message):
    command: ClassVar[Command] = Command.READ
    cells: Cells = field(default_factory=Cells.all)
    v_read: float = 0.2  # V
    vg: float = 3.3      # V

    def _pack(self, w: PayloadWriter) -> None:
        self.cells.pack(w)
        w.f64("v_read", self.v_read).f64("vg", self.vg)

    @classmethod
    def _unpack(cls, r: PayloadReader) -> ReadRequest:
        return cls(Cells.unpack(r), r.f64("v_read"), r.f64("vg"))


@dataclass(eq=False)
class ReadReply(_ArrayEq, Message):
    """Per cell: conductance I/V (S) and current (A) at the read bias."""

    command: ClassVar[Command] = Command.READ
    reply: ClassVar[bool] = True
    g: np.ndarray = field(default_factory=lambda: np.empty(0))
    i: np.ndarray = field(default_factory=lambda: np.empty(0))

    def _pack(self, w: PayloadWriter) -> None:
        n = np.asarray(self.g).size
        w.u32("count", n).array("g", self.g, F64, n).array("i", self.i, F64, n)

    @classmethod
    def _unpack(cls, r: PayloadReader) -> ReadReply:
        n = _count(r, "count")
        return cls(r.array("g", F64, n), r.array("i", F64, n))


@dataclass(eq=False)
class ReadArrayRequest(_ArrayEq, Message):
    """Conductance map of the whole array or a region (selector ALL, SINGLE or REGION)."""

    command: ClassVar[Command] = Command.READ_ARRAY
    cells: Cells = field(default_factory=Cells.all)
    v_read: float = 0.2
    vg: float = 3.3
    dtype: DType = DType.FLOAT64

    def _pack(self, w: PayloadWriter) -> None:
        self.cells.pack(w)
        w.f64("v_read", self.v_read).f64("vg", self.vg).u8("dtype", self.dtype)

    @classmethod
    def _unpack(cls, r: PayloadReader) -> ReadArrayRequest:
        cells, v_read, vg, dtype = Cells.unpack(r), r.f64("v_read"), r.f64("vg"), r.u8("dtype")
        if dtype not in DType._value2member_map_:
            raise PayloadError(f"{r.what}: dtype = {dtype}, allowed 0 (float64) or 1 (float32)")
        return cls(cells, v_read, vg, DType(dtype))


@dataclass(eq=False)
class ReadArrayReply(_ArrayEq, Message):
    """Conductances (S), shape (nrows, ncols), of the block starting at (row0, col0)."""

    command: ClassVar[Command] = Command.READ_ARRAY
    reply: ClassVar[bool] = True
    row0: int = 0
    col0: int = 0
    g: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    dtype: DType = DType.FLOAT64

    def _pack(self, w: PayloadWriter) -> None:
        g = np.asarray(self.g)
        if g.ndim != 2:
            raise PayloadError(f"READ_ARRAY reply g must be 2-D, got shape {g.shape}")
        w.u16("row0", self.row0).u16("col0", self.col0).u16("nrows", g.shape[0])
        w.u16("ncols", g.shape[1]).u8("dtype", self.dtype).raw(b"\0\0\0")
        w.array("g", g, F64 if self.dtype == DType.FLOAT64 else F32)

    @classmethod
    def _unpack(cls, r: PayloadReader) -> ReadArrayReply:
        row0, col0, nrows, ncols = r.u16("row0"), r.u16("col0"), r.u16("nrows"), r.u16("ncols")
        dtype = r.u8("dtype")
        if dtype not in DType._value2member_map_:
            raise PayloadError(f"{r.what}: dtype = {dtype}, allowed 0 (float64) or 1 (float32)")
        for k in range(3):
            r.u8(f"reserved[{k}]")
        wire = F64 if dtype == DType.FLOAT64 else F32
        g = r.array("g", wire, nrows * ncols, "float64").reshape(nrows, ncols)
        return cls(row0, col0, g, DType(dtype))


@dataclass(eq=False)
class SweepRequest(_ArrayEq, Message):
    """Quasi-static sweep: every listed cell sees voltages[0..n-1] (V), `dwell` s each."""

    command: ClassVar[Command] = Command.SWEEP
    cells: Cells = field(default_factory=Cells.all)
    vg: float = 3.3      # V
    dwell: float = 1e-3  # s
    voltages: np.ndarray = field(default_factory=lambda: np.empty(0))

    def _pack(self, w: PayloadWriter) -> None:
        self.cells.pack(w)
        v = np.asarray(self.voltages, dtype=float).reshape(-1)
        w.f64("vg", self.vg).f64("dwell", self.dwell).u32("points", v.size).array("voltages", v, F64)

    @classmethod
    def _unpack(cls, r: PayloadReader) -> SweepRequest:
        cells, vg, dwell = Cells.unpack(r), r.f64("vg"), r.f64("dwell")
        n = r.u32("points")
        return cls(cells, vg, dwell, r.array("voltages", F64, n))


@dataclass(eq=False)
class SweepReply(_ArrayEq, Message):
    """Currents (A), shape (cells, points)."""

    command: ClassVar[Command] = Command.SWEEP
    reply: ClassVar[bool] = True
    i: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))

    def _pack(self, w: PayloadWriter) -> None:
        i = np.asarray(self.i)
        if i.ndim != 2:
            raise PayloadError(f"SWEEP reply i must be 2-D, got shape {i.shape}")
        w.u32("cells", i.shape[0]).u32("points", i.shape[1]).array("i", i, F64)

    @classmethod
    def _unpack(cls, r: PayloadReader) -> SweepReply:
        n, points = r.u32("cells"), r.u32("points")
        if n and points > r.remaining // 8 // n:
            raise PayloadError(f"{r.what}: {n} cells x {points} points exceed the payload")
        return cls(r.array("i", F64, n * points).reshape(n, points))


# ----------------------------------------------------------------------------- program and verify


@dataclass(eq=False)
class IdenticalPulse(_ArrayEq):
    """Fixed set/reset amplitudes chosen by target range: targets in [g_low[k], g_high[k]) use
    v_set[k], v_reset[k]. A target outside every range uses the nearest range. No ranges: the
    controller's default table (the reference's per-range voltages)."""

    g_low: np.ndarray = field(default_factory=lambda: np.empty(0))    # S
    g_high: np.ndarray = field(default_factory=lambda: np.empty(0))   # S
    v_set: np.ndarray = field(default_factory=lambda: np.empty(0))    # V > 0
    v_reset: np.ndarray = field(default_factory=lambda: np.empty(0))  # V < 0

    @classmethod
    def reference(cls) -> IdenticalPulse:
        """The published table (10-30, 30-60, 60-90 uS; reference/cmo-hfox-1t1r.md)."""
        return cls(np.array([10e-6, 30e-6, 60e-6]), np.array([30e-6, 60e-6, 90e-6]),
                   np.array([1.35, 1.35, 1.5]), np.array([-1.5, -1.3, -1.3]))

    def voltages_for(self, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-target (v_set, v_reset), V, by range lookup (nearest range outside the table)."""
        lo, hi = np.asarray(self.g_low, float), np.asarray(self.g_high, float)
        t = np.asarray(targets, float)[:, None]
        distance = np.maximum(lo[None, :] - t, 0.0) + np.maximum(t - hi[None, :], 0.0)
        inside = (t >= lo[None, :]) & (t < hi[None, :])
        distance = np.where(inside, -1.0, distance)  # inside beats touching the upper bound
        k = np.argmin(distance, axis=1)
        return np.asarray(self.v_set, float)[k], np.asarray(self.v_reset, float)[k]


@dataclass(eq=True)
class IncrementalStep:
    """Amplitude starts at *_start, grows by *_step (magnitude) per consecutive pulse of one
    polarity up to *_stop, restarts on a polarity flip. Reset voltages are negative."""

    v_set_start: float = 0.9
    v_set_step: float = 0.05
    v_set_stop: float = 1.6
    v_reset_start: float = -0.9
    v_reset_step: float = 0.05
    v_reset_stop: float = -1.8
    max_per_polarity: int = 0  # pulses in a row of one polarity, 0: unbounded
    max_flips: int = 0         # polarity flips per cell, 0: unbounded


SchemeParams = IdenticalPulse | IncrementalStep


@dataclass(eq=False)
class SetTargetGRequest(_ArrayEq, Message):
    """Closed-loop program-and-verify of each listed cell to its target conductance."""

    command: ClassVar[Command] = Command.SET_TARGET_G
    cells: Cells = field(default_factory=Cells.all)
    targets: np.ndarray = field(default_factory=lambda: np.empty(0))  # S
    tolerance: float = 0.02   # relative acceptance |g - target| <= tolerance * target
    max_iterations: int = 0   # verify reads per cell; 0: use VERIFY_LOOP_MAX
    v_read: float = 0.2       # V
    vg_read: float = 3.3      # V
    width: float = 2.5e-6     # s
    vg_set: float = 1.4       # V
    vg_reset: float = 3.3     # V
    scheme: SchemeParams = field(default_factory=IdenticalPulse)

    def _pack(self, w: PayloadWriter) -> None:
        self.cells.pack(w)
        t = np.asarray(self.targets, dtype=float).reshape(-1)
        w.u32("count", t.size).array("targets", t, F64)
        w.f64("tolerance", self.tolerance).u32("max_iterations", self.max_iterations)
        for name in ("v_read", "vg_read", "width", "vg_set", "vg_reset"):
            w.f64(name, getattr(self, name))
        s = self.scheme
        if isinstance(s, IdenticalPulse):
            n = np.asarray(s.g_low).size
            w.u8("scheme", Scheme.IDENTICAL).u8("ranges", n)
            table = np.column_stack([np.asarray(a, float).reshape(-1) for a in
                                     (s.g_low, s.g_high, s.v_set, s.v_reset)]) if n else np.empty((0, 4))
            w.array("ranges", table, F64, 4 * n)
        else:
            w.u8("scheme", Scheme.INCREMENTAL)
            for name in ("v_set_start", "v_set_step", "v_set_stop", "v_reset_start", "v_reset_step",
                         "v_reset_stop"):
                w.f64(name, getattr(s, name))
            w.u16("max_per_polarity", s.max_per_polarity).u16("max_flips", s.max_flips)

    @classmethod
    def _unpack(cls, r: PayloadReader) -> SetTargetGRequest:
        cells = Cells.unpack(r)
        n = _count(r, "count")
        targets = r.array("targets", F64, n)
        tolerance, max_iterations = r.f64("tolerance"), r.u32("max_iterations")
        v_read, vg_read, width, vg_set, vg_reset = (r.f64(x) for x in
                                                    ("v_read", "vg_read", "width", "vg_set", "vg_reset"))
        scheme = r.u8("scheme")
        params: SchemeParams
        if scheme == Scheme.IDENTICAL:
            k = r.u8("ranges")
            table = r.array("ranges", F64, 4 * k).reshape(k, 4)
            params = IdenticalPulse(*(table[:, j].copy() for j in range(4)))
        elif scheme == Scheme.INCREMENTAL:
            values = [r.f64(x) for x in ("v_set_start", "v_set_step", "v_set_stop", "v_reset_start",
                                         "v_reset_step", "v_reset_stop")]
            params = IncrementalStep(*values, r.u16("max_per_polarity"), r.u16("max_flips"))
        else:
            raise PayloadError(f"{r.what}: scheme = {scheme}, allowed 0 (identical) or 1 (incremental)")
        return cls(cells, targets, tolerance, max_iterations, v_read, vg_read, width, vg_set,
                   vg_reset, params)


@dataclass(eq=False)
class SetTargetGReply(_ArrayEq, Message):
    """Per cell: last verify read (S), pulses applied, and whether it converged."""

    command: ClassVar[Command] = Command.SET_TARGET_G
    reply: ClassVar[bool] = True
    g: np.ndarray = field(default_factory=lambda: np.empty(0))
    iterations: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    converged: np.ndarray = field(default_factory=lambda: np.empty(0, bool))

    def _pack(self, w: PayloadWriter) -> None:
        n = np.asarray(self.g).size
        w.u32("count", n).array("g", self.g, F64, n).array("iterations", self.iterations, U32, n)
        w.array("converged", self.converged, U8, n)

    @classmethod
    def _unpack(cls, r: PayloadReader) -> SetTargetGReply:
        n = _count(r, "count")
        return cls(r.array("g", F64, n), r.array("iterations", U32, n, "int64"),
                   r.array("converged", U8, n).astype(bool))


@dataclass(eq=False)
class VerifyRequest(_ArrayEq, Message):
    """Read each listed cell `averages` times and compare the mean with its target."""

    command: ClassVar[Command] = Command.VERIFY
    cells: Cells = field(default_factory=Cells.all)
    targets: np.ndarray = field(default_factory=lambda: np.empty(0))  # S
    tolerance: float = 0.02
    v_read: float = 0.2
    vg_read: float = 3.3
    averages: int = 1

    def _pack(self, w: PayloadWriter) -> None:
        self.cells.pack(w)
        t = np.asarray(self.targets, dtype=float).reshape(-1)
        w.u32("count", t.size).array("targets", t, F64).f64("tolerance", self.tolerance)
        w.f64("v_read", self.v_read).f64("vg_read", self.vg_read).u16("averages", self.averages)

    @classmethod
    def _unpack(cls, r: PayloadReader) -> VerifyRequest:
        cells = Cells.unpack(r)
        n = _count(r, "count")
        return cls(cells, r.array("targets", F64, n), r.f64("tolerance"), r.f64("v_read"),
                   r.f64("vg_read"), r.u16("averages"))


@dataclass(eq=False)
class VerifyReply(_ArrayEq, Message):
    command: ClassVar[Command] = Command.VERIFY
    reply: ClassVar[bool] = True
    passed: np.ndarray = field(default_factory=lambda: np.empty(0, bool))
    g: np.ndarray = field(default_factory=lambda: np.empty(0))

    def _pack(self, w: PayloadWriter) -> None:
        n = np.asarray(self.g).size
        w.u32("count", n).array("passed", self.passed, U8, n).array("g", self.g, F64, n)

    @classmethod
    def _unpack(cls, r: PayloadReader) -> VerifyReply:
        n = _count(r, "count")
        return cls(r.array("passed", U8, n).astype(bool), r.array("g", F64, n))


# ----------------------------------------------------------------------------- emulator only


@dataclass(eq=True)
class EmuAdvanceRequest(Message):
    command: ClassVar[Command] = Command.EMU_ADVANCE
    seconds: float = 0.0

    def _pack(self, w: PayloadWriter) -> None:
        w.f64("seconds", self.seconds)

    @classmethod
    def _unpack(cls, r: PayloadReader) -> EmuAdvanceRequest:
        return cls(r.f64("seconds"))


@dataclass(eq=True)
class EmuAdvanceReply(Message):
    command: ClassVar[Command] = Command.EMU_ADVANCE
    reply: ClassVar[bool] = True
    time: float = 0.0  # virtual clock after advancing, s

    def _pack(self, w: PayloadWriter) -> None:
        w.f64("time", self.time)

    @classmethod
    def _unpack(cls, r: PayloadReader) -> EmuAdvanceReply:
        return cls(r.f64("time"))


@dataclass(eq=False)
class EmuInjectFaultRequest(_ArrayEq, Message):
    command: ClassVar[Command] = Command.EMU_INJECT_FAULT
    cells: Cells = field(default_factory=Cells.all)
    kind: Fault = Fault.NONE

    def _pack(self, w: PayloadWriter) -> None:
        self.cells.pack(w)
        w.u8("kind", self.kind)

    @classmethod
    def _unpack(cls, r: PayloadReader) -> EmuInjectFaultRequest:
        cells, kind = Cells.unpack(r), r.u8("kind")
        if kind not in Fault._value2member_map_:
            raise PayloadError(f"{r.what}: kind = {kind}, allowed 0 (none), 1 (stuck_hrs), "
                               "2 (stuck_lrs), 3 (no_form)")
        return cls(cells, Fault(kind))


@dataclass(eq=True)
class EmuInjectFaultReply(Message):
    command: ClassVar[Command] = Command.EMU_INJECT_FAULT
    reply: ClassVar[bool] = True


@dataclass(eq=True)
class EmuReseedRequest(Message):
    command: ClassVar[Command] = Command.EMU_RESEED
    seed: int = 0

    def _pack(self, w: PayloadWriter) -> None:
        w.u64("seed", self.seed)

    @classmethod
    def _unpack(cls, r: PayloadReader) -> EmuReseedRequest:
        return cls(r.u64("seed"))


@dataclass(eq=True)
class EmuReseedReply(Message):
    command: ClassVar[Command] = Command.EMU_RESEED
    reply: ClassVar[bool] = True


@dataclass(eq=False)
class EmuPulseCountsRequest(_ArrayEq, Message):
    command: ClassVar[Command] = Command.EMU_PULSE_COUNTS
    cells: Cells = field(default_factory=Cells.all)

    def _pack(self, w: PayloadWriter) -> None:
        self.cells.pack(w)

    @classmethod
    def _unpack(cls, r: PayloadReader) -> EmuPulseCountsRequest:
        return cls(Cells.unpack(r))


@dataclass(eq=False)
class EmuPulseCountsReply(_ArrayEq, Message):
    command: ClassVar[Command] = Command.EMU_PULSE_COUNTS
    reply: ClassVar[bool] = True
    counts: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))

    def _pack(self, w: PayloadWriter) -> None:
        n = np.asarray(self.counts).size
        w.u32("count", n).array("counts", self.counts, U64, n)

    @classmethod
    def _unpack(cls, r: PayloadReader) -> EmuPulseCountsReply:
        n = _count(r, "count")
        return cls(r.array("counts", U64, n, "int64"))


# ----------------------------------------------------------------------------- registry and errors

REQUESTS: dict[Command, type[Message]] = {}
REPLIES: dict[Command, type[Message]] = {}
for _cls in list(globals().values()):
    if isinstance(_cls, type) and issubclass(_cls, Message) and _cls is not Message:
        (REPLIES if _cls.reply else REQUESTS)[_cls.command] = _cls
assert set(REQUESTS) == set(REPLIES) == set(Command), "every command needs a request and a reply"


def decode_request(command: int, payload: bytes) -> Message:
    """Parse a request payload (raises PayloadError; KeyError never escapes)."""
    try:
        cls = REQUESTS[Command(command)]
    except ValueError:
        raise PayloadError(f"command = 0x{command:02x} is not defined") from None
    return cls.unpack(payload)


def decode_reply(command: int, payload: bytes) -> Message:
    """Parse the payload of an OK reply."""
    try:
        cls = REPLIES[Command(command)]
    except ValueError:
        raise PayloadError(f"command = 0x{command:02x} is not defined") from None
    return cls.unpack(payload)


def pack_error(message: str) -> bytes:
    """Payload of a non-OK reply: the UTF-8 message, cut at MAX_ERROR_MESSAGE bytes."""
    raw = message.encode("utf-8")[:MAX_ERROR_MESSAGE]
    return raw.decode("utf-8", errors="ignore").encode("utf-8")


def unpack_error(payload: bytes) -> str:
    """Message of a non-OK reply (undecodable bytes replaced, never raises)."""
    return payload.decode("utf-8", errors="replace")

