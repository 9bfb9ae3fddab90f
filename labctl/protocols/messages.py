"""Typed request and reply payloads, one layout per table of docs/protocol.md, section 8.

Each field is declared once (labctl.protocols.layout): its wire type, unit, default and checks
against the INFO limits (labctl.protocols.limits). Declaration order is wire order. Every class has
`pack() -> bytes` and `unpack(payload) -> instance`; `unpack` raises only `PayloadError`, naming the
field that did not fit. Per-cell arrays are numpy arrays in SI units (V, A, S, s) in the visiting
order of the request's cell selector.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import numpy as np

from labctl.core.limits import SafetyLimits
from labctl.core.schemes import REFERENCE_PULSE_TABLE, IncrementalScheme, PulseTable
from labctl.protocols import limits as lim
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
from labctl.protocols.layout import (
    F64,
    U8,
    U32,
    U64,
    Layout,
    carried,
    cells,
    enum8,
    f64,
    flag8,
    get_or_set,
    grid,
    layout,
    one_of,
    per_cell,
    reserved,
    specs,
    text,
    u8,
    u16,
    u32,
    u64,
)
from labctl.protocols.limits import (
    amplitude,
    cells_in_array,
    counted,
    dwell,
    fraction,
    gate,
    magnitude,
    read_bias,
    reset_amplitude,
    set_amplitude,
    width,
)
from labctl.protocols.wire import PayloadReader, PayloadWriter

T = TypeVar("T", bound="Message")


class Message(Layout):
    """Base of all payload classes; subclasses are declared with `message`."""

    command: ClassVar[Command]
    reply: ClassVar[bool] = False

    def pack(self) -> bytes:
        w = PayloadWriter()
        self.pack_into(w)
        return w.bytes()

    @classmethod
    def unpack(cls, payload: bytes) -> Any:
        r = PayloadReader(payload, cls.what)
        msg = cls.unpack_from(r)
        r.done()
        return msg

    def reply_size(self, n: int) -> int | None:
        """Payload size of the OK reply for n selected cells, B; None if it does not grow with n."""
        reply = REPLIES[self.command]
        return reply.size(n, self) if reply.per_cell() else None


def message(command: Command, reply: bool = False) -> Callable[[type[T]], type[T]]:
    """Class decorator: the request (or reply) payload of `command`, laid out as declared."""
    def declare(cls: type[T]) -> type[T]:
        cls.command, cls.reply = command, reply  # type: ignore[attr-defined]
        cls.what = f"{command.name} {'reply' if reply else 'request'}"  # type: ignore[attr-defined]
        return layout(cls)
    return declare


def empty(command: Command, reply: bool = False) -> type[Message]:
    """A payload with no fields, named like the others (ResetRequest, ByeReply, ...)."""
    name = "".join(part.capitalize() for part in command.name.split("_")) + ("Reply" if reply else "Request")
    cls = type(name, (Message,), {"__doc__": f"{command.name} {'reply' if reply else 'request'}: empty.",
                                  "__module__": __name__, "__qualname__": name})
    return message(command, reply)(cls)


# ----------------------------------------------------------------------------- session


@message(Command.HELLO)
class HelloRequest(Message):
    """Opens a session. Versions are the command-set versions the host speaks."""

    min_version: int = u16(PROTOCOL_VERSION)
    max_version: int = u16(PROTOCOL_VERSION)
    max_payload: int = u32(0, "B")  # largest reply payload the host accepts (0: no limit stated)
    client: str = text("labctl", 64)


@message(Command.HELLO, reply=True)
class HelloReply(Message):
    version: int = u16(PROTOCOL_VERSION)
    _reserved: int = reserved()
    max_payload: int = u32(0, "B")  # largest request payload the controller accepts
    controller: str = text("", 64)


InfoRequest = empty(Command.INFO)


#: INFO capability bits.
CAP_EMULATOR = 0x0001


@message(Command.INFO, reply=True)
class InfoReply(Message):
    """Array size, versions and the limits every command is validated against (SI units)."""

    protocol_version: int = u16(PROTOCOL_VERSION)
    rows: int = u16()
    cols: int = u16()
    capabilities: int = u16()
    max_payload: int = u32(0, "B")
    verify_loop_max: int = u32()  # current SET_TARGET_G iteration bound
    v_max: float = f64(0.0, "V", limit="max_abs_voltage")  # max |V| on the top electrode
    vg_max: float = f64(0.0, "V", limit="max_gate_voltage")  # max gate voltage (min is 0)
    width_min: float = f64(0.0, "s", limit="min_pulse_width")
    width_max: float = f64(0.0, "s", limit="max_pulse_width")
    dwell_min: float = f64(0.0, "s")  # sweep dwell per point
    dwell_max: float = f64(0.0, "s")
    v_read_max: float = f64(0.0, "V", limit="max_read_voltage")  # max |V| of a read
    compliance_min: float = f64(0.0, "A")  # lowest compliance current the gate can set
    compliance_max: float = f64(0.0, "A", limit="max_compliance")
    max_pulse_count: int = u32()  # largest PULSE count
    max_sweep_points: int = u32()  # largest SWEEP / FORM sweep length
    firmware: str = text()
    model: str = text()

    @property
    def emulator(self) -> bool:
        return bool(self.capabilities & CAP_EMULATOR)

    @property
    def safety_limits(self) -> SafetyLimits:
        """The controller's limits as the one limits type of labctl (fields marked `limit=`)."""
        return SafetyLimits(**{spec.limit: getattr(self, name)
                               for name, spec in specs(InfoReply) if spec.limit})


StatusRequest = empty(Command.STATUS)


@message(Command.STATUS, reply=True)
class StatusReply(Message):
    """Progress of the running command (done/total in the command's own units, usually cells)."""

    state: RunState = enum8(RunState.IDLE)
    running_command: int = u8(name="command")
    _reserved: int = reserved()
    request_id: int = u32()
    done: int = u32()
    total: int = u32()
    elapsed: float = f64(0.0, "s")  # since the running command started


AbortRequest = empty(Command.ABORT)


@message(Command.ABORT, reply=True)
class AbortReply(Message):
    aborted: bool = flag8()
    aborted_command: int = u8(name="command")
    _reserved: int = reserved()
    request_id: int = u32()


ResetRequest = empty(Command.RESET)
ResetReply = empty(Command.RESET, reply=True)
ByeRequest = empty(Command.BYE)
ByeReply = empty(Command.BYE, reply=True)


@message(Command.VERIFY_LOOP_MAX)
class VerifyLoopMaxRequest(Message):
    """Get (value None) or set the SET_TARGET_G iteration bound."""

    value: int | None = get_or_set(check=lim.optional_counted(1, lim.MAX_ITERATIONS))


@message(Command.VERIFY_LOOP_MAX, reply=True)
class VerifyLoopMaxReply(Message):
    value: int = u32()


# ----------------------------------------------------------------------------- array operations


@message(Command.FORM)
class FormRequest(Message):
    """Forming by a quasi-static sweep or a ramp of pulses; compliance set by the gate `vg`.

    SWEEP: v_start, v_start + v_step, ... up to v_stop, `duration` s per point.
    PULSE_RAMP: one pulse of `duration` s per step, same amplitudes, until the cell reads formed.
    A cell counts as formed when its conductance read at (v_read, vg_read) is at least g_formed.
    """

    cells: Cells = cells(check=cells_in_array)
    mode: FormMode = enum8(FormMode.SWEEP)
    v_start: float = f64(0.0, "V", check=amplitude)
    v_stop: float = f64(3.6, "V", check=amplitude)
    v_step: float = f64(0.01, "V", check=magnitude)
    vg: float = f64(1.2, "V", check=gate)  # sets the compliance
    duration: float = f64(1e-3, "s")  # dwell per point (SWEEP) or pulse width (PULSE_RAMP): see rules
    v_read: float = f64(0.2, "V", check=read_bias)
    vg_read: float = f64(3.3, "V", check=gate)
    g_formed: float = f64(5e-6, "S", check=lim.positive)

    def points(self) -> int:
        """Number of ramp amplitudes (v_stop included when it lies on the grid within 1e-9 V)."""
        return int(math.floor((self.v_stop - self.v_start) / self.v_step + 1e-9)) + 1

    def voltages(self) -> np.ndarray:
        """Amplitudes of the ramp, V: v_start, v_start + v_step, ... <= v_stop."""
        return self.v_start + self.v_step * np.arange(self.points(), dtype=float)

    def rules(self, ctx: lim.Context) -> None:
        lim.not_below("v_stop", self.v_stop, "v_start", self.v_start, "V", ": forming ramps up")
        lim.count_in("number of ramp points (v_stop - v_start) / v_step + 1", self.points(), 1,
                     ctx.info.max_sweep_points)
        if self.mode == FormMode.SWEEP:
            dwell("duration (dwell per point)", self.duration, "s", ctx)
        else:
            width("duration (pulse width)", self.duration, "s", ctx)


@message(Command.FORM, reply=True)
class FormReply(Message):
    """Per cell: forming voltage (V) and current (A) (NaN if not formed or not measured),
    conductance after forming (S), and whether the cell formed."""

    v_form: np.ndarray = per_cell(F64, "V", count="count")
    i_form: np.ndarray = per_cell(F64, "A")
    g: np.ndarray = per_cell(F64, "S")
    formed: np.ndarray = per_cell(U8, native=bool)


@message(Command.PULSE)
class PulseRequest(Message):
    """`count` identical rectangular pulses to every listed cell (v < 0 resets)."""

    cells: Cells = cells(check=cells_in_array)
    v: float = f64(0.0, "V", check=amplitude)  # top-electrode amplitude
    vg: float = f64(3.3, "V", check=gate)
    width: float = f64(2.5e-6, "s", check=width)
    count: int = u32(1, check=counted(1, "max_pulse_count"))


@message(Command.PULSE, reply=True)
class PulseReply(Message):
    pulses: int = u64()  # pulses applied in total (cells x count)


@message(Command.READ)
class ReadRequest(Message):
    cells: Cells = cells(check=cells_in_array)
    v_read: float = f64(0.2, "V", check=read_bias)
    vg: float = f64(3.3, "V", check=gate)


@message(Command.READ, reply=True)
class ReadReply(Message):
    """Per cell: conductance I/V (S) and current (A) at the read bias."""

    g: np.ndarray = per_cell(F64, "S", count="count")
    i: np.ndarray = per_cell(F64, "A")


@message(Command.READ_ARRAY)
class ReadArrayRequest(Message):
    """Conductance map of the whole array or a region (selector ALL, SINGLE or REGION)."""

    cells: Cells = cells(check=lim.block_in_array)
    v_read: float = f64(0.2, "V", check=read_bias)
    vg: float = f64(3.3, "V", check=gate)
    dtype: DType = enum8(DType.FLOAT64)


@message(Command.READ_ARRAY, reply=True)
class ReadArrayReply(Message):
    """Conductances (S), shape (nrows, ncols), of the block starting at (row0, col0)."""

    row0: int = u16()
    col0: int = u16()
    g: np.ndarray = grid(("nrows", "ncols"), "u16", "S", dtype_field="dtype")
    dtype: DType = carried(DType.FLOAT64, by="g")


@message(Command.SWEEP)
class SweepRequest(Message):
    """Quasi-static sweep: every listed cell sees voltages[0..n-1] (V), `dwell` s each."""

    cells: Cells = cells(check=cells_in_array)
    vg: float = f64(3.3, "V", check=gate)
    dwell: float = f64(1e-3, "s", check=dwell)
    voltages: np.ndarray = per_cell(F64, "V", count="points", check=lim.sweep_voltages)

    def reply_size(self, n: int) -> int | None:
        return SweepReply.size(n * int(np.asarray(self.voltages).size))


@message(Command.SWEEP, reply=True)
class SweepReply(Message):
    """Currents (A), shape (cells, points)."""

    i: np.ndarray = grid(("cells", "points"), "u32", "A")


# ----------------------------------------------------------------------------- program and verify


@layout
class IdenticalPulse(Layout):
    """Fixed set/reset amplitudes chosen by target range: targets in [g_low[k], g_high[k]) use
    v_set[k], v_reset[k], by the one lookup rule of labctl.core.schemes.PulseTable (a target outside
    every range uses the nearest range). No ranges: the controller's default table (the reference's
    per-range voltages, REFERENCE_PULSE_TABLE). On the wire: u8 ranges, then one row per range."""

    g_low: np.ndarray = per_cell(F64, "S", count="ranges", count_kind="u8", rows=True,
                                 check=lim.conductances)
    g_high: np.ndarray = per_cell(F64, "S", check=lim.conductances)
    v_set: np.ndarray = per_cell(F64, "V", check=lim.set_amplitudes)  # > 0
    v_reset: np.ndarray = per_cell(F64, "V", check=lim.reset_amplitudes)  # < 0

    @classmethod
    def reference(cls) -> IdenticalPulse:
        """The published table (labctl.core.schemes.REFERENCE_PULSE_TABLE)."""
        t = REFERENCE_PULSE_TABLE
        return cls(np.array(t.g_low), np.array(t.g_high), np.array(t.v_set), np.array(t.v_reset))

    def voltages_for(self, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-target (v_set, v_reset), V, by PulseTable's range lookup."""
        # The rule, not the table's construction checks: a controller accepts any table the
        # limits let through (g_low = 0 included).
        return PulseTable.amplitudes(self, targets)  # type: ignore[arg-type]

    def rules(self, ctx: lim.Context) -> None:
        bad = np.flatnonzero(np.asarray(self.g_high) <= np.asarray(self.g_low))
        if bad.size:
            k = int(bad[0])
            raise lim.LimitError(f"ranges[{k}]: g_high = {self.g_high[k]:g} S not above g_low = "
                                 f"{self.g_low[k]:g} S")


_INC = IncrementalScheme()  # the one set of defaults


@layout
class IncrementalStep(Layout):
    """Amplitude starts at v_start_*, grows by v_step_* (magnitude) per consecutive pulse of one
    polarity up to v_stop_*, restarts on a polarity flip. Reset voltages are negative. Names and
    defaults are labctl.core.schemes.IncrementalScheme's; 0 bounds: unbounded."""

    v_start_set: float = f64(_INC.v_start_set, "V", check=set_amplitude)
    v_step_set: float = f64(_INC.v_step_set, "V", check=magnitude)
    v_stop_set: float = f64(_INC.v_stop_set, "V", check=set_amplitude)
    v_start_reset: float = f64(_INC.v_start_reset, "V", check=reset_amplitude)
    v_step_reset: float = f64(_INC.v_step_reset, "V", check=magnitude)
    v_stop_reset: float = f64(_INC.v_stop_reset, "V", check=reset_amplitude)
    max_per_polarity: int = u16(_INC.max_per_polarity)  # pulses in a row of one polarity
    max_flips: int = u16(_INC.max_flips)  # polarity flips per cell

    def rules(self, ctx: lim.Context) -> None:
        lim.not_below("v_stop_set", self.v_stop_set, "v_start_set", self.v_start_set, "V")
        if self.v_stop_reset > self.v_start_reset:
            raise lim.LimitError(f"v_stop_reset = {self.v_stop_reset:g} V above v_start_reset = "
                                 f"{self.v_start_reset:g} V (reset amplitudes grow more negative)")


SchemeParams = IdenticalPulse | IncrementalStep


@message(Command.SET_TARGET_G)
class SetTargetGRequest(Message):
    """Closed-loop program-and-verify of each listed cell to its target conductance."""

    cells: Cells = cells(check=cells_in_array)
    targets: np.ndarray = per_cell(F64, "S", count="count", check=lim.per_cell_targets)
    tolerance: float = f64(0.02, check=fraction)  # relative: |g - target| <= tolerance * target
    max_iterations: int = u32(0, check=counted(0, lim.MAX_ITERATIONS))  # verify reads; 0: VERIFY_LOOP_MAX
    v_read: float = f64(0.2, "V", check=read_bias)
    vg_read: float = f64(3.3, "V", check=gate)
    width: float = f64(2.5e-6, "s", check=width)
    vg_set: float = f64(1.4, "V", check=gate)
    vg_reset: float = f64(3.3, "V", check=gate)
    scheme: SchemeParams = one_of({Scheme.IDENTICAL: IdenticalPulse, Scheme.INCREMENTAL: IncrementalStep},
                                  IdenticalPulse)


@message(Command.SET_TARGET_G, reply=True)
class SetTargetGReply(Message):
    """Per cell: last verify read (S), pulses applied, and whether it converged."""

    g: np.ndarray = per_cell(F64, "S", count="count")
    iterations: np.ndarray = per_cell(U32, native="int64")
    converged: np.ndarray = per_cell(U8, native=bool)


@message(Command.VERIFY)
class VerifyRequest(Message):
    """Read each listed cell `averages` times and compare the mean with its target."""

    cells: Cells = cells(check=cells_in_array)
    targets: np.ndarray = per_cell(F64, "S", count="count", check=lim.per_cell_targets)
    tolerance: float = f64(0.02, check=fraction)
    v_read: float = f64(0.2, "V", check=read_bias)
    vg_read: float = f64(3.3, "V", check=gate)
    averages: int = u16(1, check=counted(1, lim.MAX_AVERAGES))


@message(Command.VERIFY, reply=True)
class VerifyReply(Message):
    passed: np.ndarray = per_cell(U8, native=bool, count="count")
    g: np.ndarray = per_cell(F64, "S")


# ----------------------------------------------------------------------------- emulator only


@message(Command.EMU_ADVANCE)
class EmuAdvanceRequest(Message):
    seconds: float = f64(0.0, "s", check=lim.not_negative)  # the clock only moves forward


@message(Command.EMU_ADVANCE, reply=True)
class EmuAdvanceReply(Message):
    time: float = f64(0.0, "s")  # virtual clock after advancing


@message(Command.EMU_INJECT_FAULT)
class EmuInjectFaultRequest(Message):
    cells: Cells = cells(check=cells_in_array)
    kind: Fault = enum8(Fault.NONE)


EmuInjectFaultReply = empty(Command.EMU_INJECT_FAULT, reply=True)


@message(Command.EMU_RESEED)
class EmuReseedRequest(Message):
    seed: int = u64()


EmuReseedReply = empty(Command.EMU_RESEED, reply=True)


@message(Command.EMU_PULSE_COUNTS)
class EmuPulseCountsRequest(Message):
    cells: Cells = cells(check=cells_in_array)


@message(Command.EMU_PULSE_COUNTS, reply=True)
class EmuPulseCountsReply(Message):
    counts: np.ndarray = per_cell(U64, native="int64", count="count")


# ----------------------------------------------------------------------------- registry and errors

REQUESTS: dict[Command, type[Message]] = {}
REPLIES: dict[Command, type[Message]] = {}
for _cls in list(globals().values()):
    if isinstance(_cls, type) and issubclass(_cls, Message) and _cls is not Message:
        (REPLIES if _cls.reply else REQUESTS)[_cls.command] = _cls
assert set(REQUESTS) == set(REPLIES) == set(Command), "every command needs a request and a reply"


def _decode(table: dict[Command, type[Message]], command: int, payload: bytes) -> Message:
    try:
        cls = table[Command(command)]
    except ValueError:
        raise PayloadError(f"command = 0x{command:02x} is not defined") from None
    return cls.unpack(payload)


def decode_request(command: int, payload: bytes) -> Message:
    """Parse a request payload (raises PayloadError; KeyError never escapes)."""
    return _decode(REQUESTS, command, payload)


def decode_reply(command: int, payload: bytes) -> Message:
    """Parse the payload of an OK reply."""
    return _decode(REPLIES, command, payload)


def pack_error(message: str) -> bytes:
    """Payload of a non-OK reply: the UTF-8 message, cut at MAX_ERROR_MESSAGE bytes."""
    raw = message.encode("utf-8")[:MAX_ERROR_MESSAGE]
    return raw.decode("utf-8", errors="ignore").encode("utf-8")


def unpack_error(payload: bytes) -> str:
    """Message of a non-OK reply (undecodable bytes replaced, never raises)."""
    return payload.decode("utf-8", errors="replace")
