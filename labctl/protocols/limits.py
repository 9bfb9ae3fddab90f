"""Parameter checks every request must pass before anything is applied to a cell.

The checks are declared with the fields they apply to (labctl.protocols.messages: `check=...`) and
run here against the controller's INFO limits, field by field in wire order, then each layout's
cross-field `rules`, then the size of the reply. The host client runs them before sending (so a
bad value never leaves the host) and the controller runs them again before acting (so a host that
skipped them cannot hurt the chip). An error names the field, the value and the allowed range.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from labctl.core.limits import LimitError as CoreLimitError
from labctl.protocols.cells import CellAddressError, Cells
from labctl.protocols.codes import CellsKind, Status
from labctl.protocols.errors import ProtocolError

if TYPE_CHECKING:
    from labctl.protocols.layout import Layout, Spec
    from labctl.protocols.messages import InfoReply, Message

#: Largest accepted SET_TARGET_G max_iterations and VERIFY_LOOP_MAX value.
MAX_ITERATIONS = 1_000_000
#: Largest VERIFY averages.
MAX_AVERAGES = 1000
#: Smallest positive float: the lower bound of "> 0" for arrays checked against [lo, hi].
TINY = float(np.nextafter(0.0, 1.0))

Indices = tuple[np.ndarray, np.ndarray]


class LimitError(ProtocolError, CoreLimitError):
    """A parameter outside the controller's limits. `status` is the code the controller sends.

    A `labctl.core.limits.LimitError` too, so a caller catches one type for every refused limit."""

    def __init__(self, message: str, status: Status = Status.OUT_OF_RANGE) -> None:
        self.status = status
        # The message starts with the field name ("v = 4.5 V outside [-4, 4] V", "cells: ...").
        self.field, self.value, self.allowed = message.split(" ", 1)[0].rstrip(":"), None, message
        Exception.__init__(self, message)


@dataclass
class Context:
    """What a field check sees: the INFO limits, the reply budget, and (once the selector has been
    checked) the number of selected cells and their indices in visiting order."""

    info: InfoReply
    max_reply: int = 0
    n: int | None = None
    indices: Indices | None = None


# ----------------------------------------------------------------------------- primitives


def finite(field: str, value: float) -> float:
    """Raise unless value is a finite number."""
    if not math.isfinite(value):
        raise LimitError(f"{field} = {value} must be a finite number")
    return value


def in_range(field: str, value: float, lo: float, hi: float, unit: str) -> None:
    """Raise unless lo <= value <= hi (finite)."""
    finite(field, value)
    if not lo <= value <= hi:
        raise LimitError(f"{field} = {value:g} {unit} outside [{lo:g}, {hi:g}] {unit}")


def count_in(field: str, value: int, lo: int, hi: int) -> None:
    """Raise unless the integer lo <= value <= hi."""
    if not lo <= value <= hi:
        raise LimitError(f"{field} = {value} outside [{lo}, {hi}]")


def array_in(field: str, values: np.ndarray, lo: float, hi: float, unit: str) -> None:
    """Raise naming the first element that is not finite or not in [lo, hi]."""
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


def not_below(field: str, value: float, other_field: str, other: float, unit: str, why: str = "") -> None:
    """Raise if value < other (a ramp or a range that must not run backwards)."""
    if value < other:
        raise LimitError(f"{field} = {value:g} {unit} below {other_field} = {other:g} {unit}{why}")


# ----------------------------------------------------------------------------- field checks
# Each has the signature of layout.Check: (field, value, unit, ctx).


def amplitude(field: str, value: float, unit: str, ctx: Context) -> None:
    """Top-electrode voltage: |value| <= INFO v_max."""
    in_range(field, value, -ctx.info.v_max, ctx.info.v_max, unit)


def gate(field: str, value: float, unit: str, ctx: Context) -> None:
    """Gate voltage: 0 <= value <= INFO vg_max."""
    in_range(field, value, 0.0, ctx.info.vg_max, unit)


def width(field: str, value: float, unit: str, ctx: Context) -> None:
    """Pulse width: > 0 and within INFO width_min..width_max."""
    info = ctx.info
    finite(field, value)
    if value <= 0:
        raise LimitError(f"{field} = {value:g} s must be > 0 s (allowed [{info.width_min:g}, "
                         f"{info.width_max:g}] s)")
    in_range(field, value, info.width_min, info.width_max, unit)


def dwell(field: str, value: float, unit: str, ctx: Context) -> None:
    """Sweep dwell per point: within INFO dwell_min..dwell_max."""
    in_range(field, value, ctx.info.dwell_min, ctx.info.dwell_max, unit)


def read_bias(field: str, value: float, unit: str, ctx: Context) -> None:
    """Read voltage: non-zero, |value| <= INFO v_read_max."""
    lim = ctx.info.v_read_max
    in_range(field, value, -lim, lim, unit)
    if value == 0.0:
        raise LimitError(f"{field} = 0 V: a read needs a non-zero bias (|{field}| <= {lim:g} V)")


def magnitude(field: str, value: float, unit: str, ctx: Context) -> None:
    """A voltage step: 0 < value <= INFO v_max."""
    finite(field, value)
    if not 0 < value <= ctx.info.v_max:
        raise LimitError(f"{field} = {value:g} {unit} outside (0, {ctx.info.v_max:g}] {unit} (a magnitude)")


def positive(field: str, value: float, unit: str, ctx: Context) -> None:
    """value > 0 (finite)."""
    finite(field, value)
    if value <= 0:
        raise LimitError(f"{field} = {value:g} {unit} must be > 0 {unit}")


def not_negative(field: str, value: float, unit: str, ctx: Context) -> None:
    """value >= 0 (finite)."""
    finite(field, value)
    if value < 0:
        raise LimitError(f"{field} = {value:g} {unit} must be >= 0 {unit}")


def set_amplitude(field: str, value: float, unit: str, ctx: Context) -> None:
    """A SET amplitude: 0 < value <= INFO v_max."""
    amplitude(field, value, unit, ctx)
    if value <= 0:
        raise LimitError(f"{field} = {value:g} V must be positive")


def reset_amplitude(field: str, value: float, unit: str, ctx: Context) -> None:
    """A RESET amplitude: -INFO v_max <= value < 0."""
    amplitude(field, value, unit, ctx)
    if value >= 0:
        raise LimitError(f"{field} = {value:g} V must be negative")


def fraction(field: str, value: float, unit: str, ctx: Context) -> None:
    """A relative tolerance: 0 < value < 1."""
    finite(field, value)
    if not 0 < value < 1:
        raise LimitError(f"{field} = {value:g} outside (0, 1) (relative, 0.02 = 2 %)")


def counted(lo: int, hi: int | str) -> Any:
    """Integer check lo <= value <= hi; hi an int or the name of an INFO field."""
    def check(field: str, value: int, unit: str, ctx: Context) -> None:
        count_in(field, value, lo, getattr(ctx.info, hi) if isinstance(hi, str) else hi)
    return check


def optional_counted(lo: int, hi: int) -> Any:
    """Like `counted`, for a value that may be None (VERIFY_LOOP_MAX get)."""
    def check(field: str, value: int | None, unit: str, ctx: Context) -> None:
        if value is not None:
            count_in(field, value, lo, hi)
    return check


def per_cell_targets(field: str, values: np.ndarray, unit: str, ctx: Context) -> None:
    """One target > 0 per selected cell (needs the selector checked first)."""
    t = np.asarray(values, dtype=float)
    if ctx.n is not None and t.size != ctx.n:
        raise LimitError(f"{field}: {t.size} values for {ctx.n} selected cells", Status.BAD_PAYLOAD)
    array_in(field, t, TINY, np.inf, unit)


def conductances(field: str, values: np.ndarray, unit: str, ctx: Context) -> None:
    """Table bounds: every value >= 0."""
    array_in(field, values, 0.0, np.inf, unit)


def set_amplitudes(field: str, values: np.ndarray, unit: str, ctx: Context) -> None:
    """Every value in (0, INFO v_max]."""
    array_in(field, values, TINY, ctx.info.v_max, unit)


def reset_amplitudes(field: str, values: np.ndarray, unit: str, ctx: Context) -> None:
    """Every value in [-INFO v_max, 0)."""
    array_in(field, values, -ctx.info.v_max, -TINY, unit)


def sweep_voltages(field: str, values: np.ndarray, unit: str, ctx: Context) -> None:
    """1..INFO max_sweep_points voltages, each within |V| <= INFO v_max."""
    count_in("number of sweep points", int(np.asarray(values).size), 1, ctx.info.max_sweep_points)
    array_in(field, values, -ctx.info.v_max, ctx.info.v_max, unit)


def cells_in_array(field: str, cells: Cells, unit: str, ctx: Context) -> None:
    """Every cell inside the array, none twice; sets ctx.n and ctx.indices."""
    try:
        ctx.indices = cells.indices((ctx.info.rows, ctx.info.cols))
    except CellAddressError as exc:
        raise LimitError(str(exc), Status.BAD_CELLS) from None
    ctx.n = int(ctx.indices[0].size)


def block_in_array(field: str, cells: Cells, unit: str, ctx: Context) -> None:
    """ALL, SINGLE or REGION inside the array (no list); sets ctx.n."""
    if cells.kind == CellsKind.LIST:
        raise LimitError("cells: READ_ARRAY takes the whole array, a single cell or a region, "
                         "not a cell list (use READ)", Status.BAD_CELLS)
    try:
        _, _, nrows, ncols = cells.block((ctx.info.rows, ctx.info.cols))
    except CellAddressError as exc:
        raise LimitError(str(exc), Status.BAD_CELLS) from None
    ctx.n = nrows * ncols


# ----------------------------------------------------------------------------- running them


def check_layout(obj: Layout, ctx: Context) -> None:
    """Run the declared checks of every field of `obj` in wire order, then its cross-field rules.

    The cell selector is checked last (a bad value is OUT_OF_RANGE even if the cells are bad too),
    or first when a field holds one value per selected cell."""
    before, after = _check_order(type(obj))
    for name, spec in before:
        spec.check(name, getattr(obj, name), spec.unit, ctx)
    obj.rules(ctx)
    for name, spec in after:
        spec.check(name, getattr(obj, name), spec.unit, ctx)


def nested(field: str, value: Layout, unit: str, ctx: Context) -> None:
    """A field that is itself a layout (SET_TARGET_G's scheme block): its own checks."""
    check_layout(value, ctx)


@functools.cache
def _check_order(kind: type[Layout]) -> tuple[list[tuple[str, Spec]], list[tuple[str, Spec]]]:
    """(checks before the rules, checks after them) of a layout."""
    checks = [(f.name, f.metadata["spec"]) for f in dataclasses.fields(kind) if f.metadata["spec"].check]
    selector = [c for c in checks if c[1].check in (cells_in_array, block_in_array)]
    others = [c for c in checks if c not in selector]
    if any(spec.check is per_cell_targets for _, spec in others):
        return selector + others, []
    return others, selector


def check_request(msg: Message, info: InfoReply, max_reply: int = 0) -> Indices | None:
    """Validate `msg` against the limits in `info`.

    Args:
        msg: a request message.
        info: the controller's INFO reply (array size and limits).
        max_reply: largest reply payload the receiver accepts, B (0: no check).

    Returns:
        (rows, cols) int64 index arrays of the selected cells in visiting order, or None for
        commands without cells and for READ_ARRAY (whose selection is a block).

    Raises:
        LimitError: with `status` OUT_OF_RANGE, BAD_CELLS or BAD_PAYLOAD and a message naming
            the field, its value and the allowed range.
    """
    ctx = Context(info, max_reply)
    check_layout(msg, ctx)
    if ctx.n is not None and max_reply:
        size = msg.reply_size(ctx.n)
        if size is not None and size > max_reply:
            raise LimitError(f"{msg.command.name}: the reply would be {size} B, above the maximum payload "
                             f"{max_reply} B; split the request into smaller cell sets")
    return ctx.indices
