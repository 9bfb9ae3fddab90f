"""Declarative payload layouts: each field of a message is declared once, and packing, unpacking and
validation are derived from that declaration.

A layout is a dataclass whose fields are declared with the helpers below (`u16`, `f64`, `cells`,
`per_cell`, ...). The declaration order is the wire order (docs/protocol.md, section 8); each helper
names the wire type, the unit, the default and the checks (labctl.protocols.limits) that the field
must pass against the controller's INFO limits. Wire-only parts (reserved bytes, element counts,
grid dimensions) are written by the field they belong to, so they are not attributes.

    @layout
    class PulseRequest(Message):
        cells: Cells = cells()
        v: float = f64(0.0, "V", check=amplitude)

`unpack` raises only PayloadError naming the field that did not fit.
"""
from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from dataclasses import MISSING, dataclass
from typing import Any, ClassVar

import numpy as np

from labctl.protocols.cells import Cells
from labctl.protocols.codes import DType
from labctl.protocols.errors import PayloadError
from labctl.protocols.limits import nested
from labctl.protocols.wire import PayloadReader, PayloadWriter

#: A field check: (field name, value, unit, limits.Context) -> None, raising limits.LimitError.
Check = Callable[[str, Any, str, Any], None]

# Array elements on the wire.
F64 = "<f8"
F32 = "<f4"
U8 = "u1"
U16 = "<u2"
U32 = "<u4"
U64 = "<u8"
#: READ_ARRAY element types.
ELEMENTS = {DType.FLOAT64: F64, DType.FLOAT32: F32}


def member(kind: Any, value: int, r: PayloadReader, name: str) -> Any:
    """`kind(value)`, or PayloadError listing the allowed values: "0 (idle), 1 (running), ..."."""
    if value not in kind._value2member_map_:
        allowed = ", ".join(f"{int(e)} ({e.name.lower()})" for e in kind)
        raise PayloadError(f"{r.what}: {name} = {value}, allowed {allowed}")
    return kind(value)


# ----------------------------------------------------------------------------- wire kinds
# A wire kind writes one field (with the wire-only parts that belong to it) and reads it back;
# `fixed` is its encoded size in bytes (a grid adds its elements).


class Scalar:
    """An unsigned integer (u8..u64) or f64, optionally read back as an enum or bool."""

    def __init__(self, kind: str, convert: type | None = None) -> None:
        self.kind = kind
        self.convert = convert
        self.fixed = {"u8": 1, "u16": 2, "u32": 4, "u64": 8, "f64": 8}[kind]

    def pack(self, w: PayloadWriter, name: str, value: Any) -> None:
        getattr(w, self.kind)(name, value)

    def unpack(self, r: PayloadReader, name: str) -> Any:
        value = getattr(r, self.kind)(name)
        kind = self.convert
        if kind is None:
            return value
        return member(kind, value, r, name) if issubclass(kind, enum.IntEnum) else kind(value)


class Text:
    """u8 length + UTF-8, at most `max_bytes`."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.fixed = 1

    def pack(self, w: PayloadWriter, name: str, value: str) -> None:
        w.text(name, value, self.max_bytes)

    def unpack(self, r: PayloadReader, name: str) -> str:
        return r.text(name)


class Reserved:
    """`width` zero bytes (u8 or u16 fields a receiver ignores)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.fixed = {"u8": 1, "u16": 2}[kind]

    def pack(self, w: PayloadWriter, name: str, value: Any) -> None:
        getattr(w, self.kind)(name, 0)

    def unpack(self, r: PayloadReader, name: str) -> None:
        getattr(r, self.kind)(name)


class Selector:
    """A cell selector (docs/protocol.md, section 6)."""

    fixed = 1

    def pack(self, w: PayloadWriter, name: str, value: Cells) -> None:
        value.pack(w)

    def unpack(self, r: PayloadReader, name: str) -> Cells:
        return Cells.unpack(r)


class GetOrSet:
    """`u8 op` (0 get, 1 set) + `u32 value`; the attribute is None for get."""

    fixed = 5

    def pack(self, w: PayloadWriter, name: str, value: int | None) -> None:
        w.u8("op", 0 if value is None else 1).u32(name, value or 0)

    def unpack(self, r: PayloadReader, name: str) -> int | None:
        op, value = r.u8("op"), r.u32(name)
        if op not in (0, 1):
            raise PayloadError(f"{r.what}: op = {op}, allowed 0 (get) or 1 (set)")
        return None if op == 0 else value


@dataclass(frozen=True)
class Spec:
    """What the declaration of one field says: how it is encoded, its unit, its checks."""

    wire: Any
    unit: str = ""
    check: Check | None = None
    wire_name: str | None = None  # name in docs/protocol.md when it differs from the attribute
    limit: str | None = None      # the SafetyLimits field this INFO field reports
    element: str | None = None    # per-cell arrays: wire dtype
    native: Any = None            # per-cell arrays: dtype of the Python array
    count: str | None = None      # per-cell arrays: name of the count that starts a new group
    count_kind: str = "u32"
    rows: bool = False            # per-cell group packed row by row (a table) instead of array by array
    carried_by: str | None = None  # written by another field's wire kind (READ_ARRAY dtype)


def _field(spec: Spec, default: Any = MISSING, default_factory: Any = MISSING, **kw: Any) -> Any:
    return dataclasses.field(default=default, default_factory=default_factory, metadata={"spec": spec}, **kw)


def _scalar(kind: str) -> Callable[..., Any]:
    def declare(default: Any = 0, unit: str = "", *, check: Check | None = None, name: str | None = None,
                limit: str | None = None) -> Any:
        return _field(Spec(Scalar(kind), unit, check, name, limit), default)
    declare.__doc__ = f"A {kind} field: default, unit, checks (see Spec)."
    return declare


u8, u16, u32, u64, f64 = (_scalar(k) for k in ("u8", "u16", "u32", "u64", "f64"))


def enum8(default: enum.IntEnum, *, name: str | None = None) -> Any:
    """A u8 that must be one of the values of `type(default)`."""
    return _field(Spec(Scalar("u8", type(default)), wire_name=name), default)


def flag8(default: bool = False) -> Any:
    """A u8 read back as bool."""
    return _field(Spec(Scalar("u8", bool)), default)


def text(default: str = "", max_bytes: int = 255) -> Any:
    """A UTF-8 string of at most `max_bytes` bytes."""
    return _field(Spec(Text(max_bytes)), default)


def reserved(kind: str = "u16") -> Any:
    """Zero bytes on the wire; not an argument of the constructor."""
    return _field(Spec(Reserved(kind), wire_name="reserved"), 0, init=False, repr=False, compare=False)


def cells(*, check: Check | None = None) -> Any:
    """The cell selector, by default the whole array."""
    return _field(Spec(Selector(), check=check), default_factory=Cells.all)


def get_or_set(*, check: Check | None = None) -> Any:
    """An optional u32 (None: get), written as `u8 op` + `u32 value`."""
    return _field(Spec(GetOrSet(), check=check), None)


def per_cell(element: str, unit: str = "", *, native: Any = None, count: str | None = None,
             count_kind: str = "u32", rows: bool = False,
             check: Check | None = None) -> Any:
    """A 1-D array with one element per cell (or per range). `count` names the u32 (or `count_kind`)
    element count that starts a group of arrays of the same length; the arrays that follow without
    `count` belong to that group. `rows`: the group is packed as a table, row by row."""
    native = native or np.dtype(element).newbyteorder("=").name
    spec = Spec(None, unit, check, element=element, native=native, count=count,
                count_kind=count_kind, rows=rows)
    return _field(spec, default_factory=lambda: np.empty(0, dtype=native))


def carried(default: Any, by: str) -> Any:
    """A field the wire kind of field `by` writes (READ_ARRAY's dtype sits inside the grid)."""
    return _field(Spec(None, carried_by=by), default)


# ----------------------------------------------------------------------------- compound kinds


class Grid:
    """A 2-D float array behind its dimensions (u16 or u32 each), row by row. With `dtype_field`,
    that DType field follows the dimensions as u8 plus 3 reserved bytes and sets the element type."""

    def __init__(self, dims: tuple[str, str], dim_kind: str, dtype_field: str | None = None) -> None:
        self.dims, self.dim_kind, self.dtype_field = dims, dim_kind, dtype_field
        self.fixed = 2 * {"u16": 2, "u32": 4}[dim_kind] + (4 if dtype_field else 0)

    def itemsize(self, msg: Any) -> int:
        return np.dtype(ELEMENTS[getattr(msg, self.dtype_field)] if self.dtype_field else F64).itemsize

    def pack_grid(self, w: PayloadWriter, name: str, msg: Any, what: str) -> None:
        g = np.asarray(getattr(msg, name))
        if g.ndim != 2:
            raise PayloadError(f"{what} {name} must be 2-D, got shape {g.shape}")
        for dim, size in zip(self.dims, g.shape):
            getattr(w, self.dim_kind)(dim, size)
        element = F64
        if self.dtype_field:
            dtype = getattr(msg, self.dtype_field)
            w.u8(self.dtype_field, dtype).raw(bytes(3))
            element = ELEMENTS[dtype]
        w.array(name, g, element)

    def unpack_grid(self, r: PayloadReader, name: str, values: dict[str, Any]) -> None:
        shape = [getattr(r, self.dim_kind)(dim) for dim in self.dims]
        element = F64
        if self.dtype_field:
            dtype = values[self.dtype_field] = member(DType, r.u8(self.dtype_field), r, self.dtype_field)
            for k in range(3):
                r.u8(f"reserved[{k}]")
            element = ELEMENTS[dtype]
        values[name] = r.array(name, element, shape[0] * shape[1], "float64").reshape(shape)


def grid(dims: tuple[str, str], dim_kind: str = "u32", unit: str = "", *, dtype_field: str | None = None) -> Any:
    """A 2-D float array, S or A, written behind its dimensions (see Grid)."""
    return _field(Spec(Grid(dims, dim_kind, dtype_field), unit), default_factory=lambda: np.empty((0, 0)))


class OneOf:
    """A u8 tag naming which layout follows (SET_TARGET_G's scheme block)."""

    def __init__(self, members: dict[enum.IntEnum, type[Layout]]) -> None:
        self.members = members
        self.tag = type(next(iter(members)))
        self.fixed = 1

    def pack(self, w: PayloadWriter, name: str, value: Layout) -> None:
        for tag, kind in self.members.items():
            if isinstance(value, kind):
                w.u8(name, tag)
                value.pack_into(w)
                return
        raise PayloadError(f"{name}: {type(value).__name__} is not one of "
                           f"{', '.join(k.__name__ for k in self.members.values())}")

    def unpack(self, r: PayloadReader, name: str) -> Layout:
        return self.members[member(self.tag, r.u8(name), r, name)].unpack_from(r)


def one_of(members: dict[Any, type[Layout]], default_factory: Callable[[], Layout]) -> Any:
    """A tagged choice of layouts; its checks are the chosen layout's checks."""
    return _field(Spec(OneOf(members), check=nested), default_factory=default_factory)


# ----------------------------------------------------------------------------- compiled items


class _Item:
    """One step of packing or unpacking: a field, or a group of per-cell arrays with one count."""

    def __init__(self, name: str, spec: Spec) -> None:
        self.name, self.spec = name, spec
        self.wire_name = spec.wire_name or name

    def pack(self, w: PayloadWriter, msg: Any, what: str) -> None:
        if isinstance(self.spec.wire, Grid):
            self.spec.wire.pack_grid(w, self.name, msg, what)
        else:
            self.spec.wire.pack(w, self.wire_name, getattr(msg, self.name))

    def unpack(self, r: PayloadReader, values: dict[str, Any]) -> None:
        wire = self.spec.wire
        if isinstance(wire, Grid):
            wire.unpack_grid(r, self.name, values)
        elif isinstance(wire, Reserved):
            wire.unpack(r, self.wire_name)
        else:
            values[self.name] = wire.unpack(r, self.wire_name)

    def size(self, n: int, msg: Any) -> int:
        wire = self.spec.wire
        return wire.fixed + (n * wire.itemsize(msg) if isinstance(wire, Grid) else 0)


class _Group(_Item):
    """Per-cell arrays sharing one element count (written once, before the first array)."""

    def __init__(self, name: str, spec: Spec) -> None:
        super().__init__(name, spec)
        self.arrays: list[tuple[str, Spec]] = [(name, spec)]

    def pack(self, w: PayloadWriter, msg: Any, what: str) -> None:
        spec = self.spec
        first = np.asarray(getattr(msg, self.name)).reshape(-1)
        n = first.size
        getattr(w, spec.count_kind)(spec.count, n)
        if spec.rows:
            table = np.column_stack([np.asarray(getattr(msg, a), float).reshape(-1) for a, _ in self.arrays]) \
                if n else np.empty((0, len(self.arrays)))
            w.array(spec.count, table, spec.element, len(self.arrays) * n)  # type: ignore[arg-type]
            return
        for name, s in self.arrays:
            w.array(name, getattr(msg, name), s.element, n)  # type: ignore[arg-type]

    def unpack(self, r: PayloadReader, values: dict[str, Any]) -> None:
        spec = self.spec
        n = getattr(r, spec.count_kind)(spec.count)
        if spec.rows:
            k = len(self.arrays)
            table = r.array(spec.count, spec.element, k * n).reshape(n, k)  # type: ignore[arg-type]
            for j, (name, _) in enumerate(self.arrays):
                values[name] = table[:, j].copy()
            return
        for name, s in self.arrays:
            native = s.native
            if native is bool:
                values[name] = r.array(name, s.element, n).astype(bool)  # type: ignore[arg-type]
            else:
                values[name] = r.array(name, s.element, n, native)  # type: ignore[arg-type]

    def size(self, n: int, msg: Any) -> int:
        return {"u8": 1, "u32": 4}[self.spec.count_kind] + n * sum(
            np.dtype(s.element).itemsize for _, s in self.arrays)


def _compile(cls: type) -> tuple[_Item, ...]:
    items: list[_Item] = []
    for f in dataclasses.fields(cls):
        spec: Spec | None = f.metadata.get("spec")
        if spec is None:
            raise TypeError(f"{cls.__name__}.{f.name}: declare it with a layout helper (u8, f64, cells, ...)")
        if spec.carried_by:
            continue
        if spec.element is not None and spec.count is None:
            group = items[-1] if items else None
            if not isinstance(group, _Group):
                raise TypeError(f"{cls.__name__}.{f.name}: a per-cell array needs a count (count=...) "
                                "or must follow one that has it")
            group.arrays.append((f.name, spec))
        elif spec.element is not None:
            items.append(_Group(f.name, spec))
        else:
            items.append(_Item(f.name, spec))
    return tuple(items)


def _eq(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        x, y = np.asarray(a), np.asarray(b)
        return bool(np.array_equal(x, y, equal_nan=x.dtype.kind == "f"))
    return bool(a == b)


class Layout:
    """Base of every payload layout; subclasses are declared with the `layout` decorator."""

    _items: ClassVar[tuple[_Item, ...]] = ()
    #: Used in error messages ("PULSE request").
    what: ClassVar[str] = ""

    def pack_into(self, w: PayloadWriter) -> None:
        """Append the fields in wire order."""
        for item in self._items:
            item.pack(w, self, self.what)

    @classmethod
    def unpack_from(cls, r: PayloadReader) -> Any:
        """Read the fields in wire order (raises PayloadError naming the field)."""
        values: dict[str, Any] = {}
        for item in cls._items:
            item.unpack(r, values)
        return cls(**values)

    @classmethod
    def size(cls, n: int, msg: Any = None) -> int:
        """Encoded size, B, with n elements in the per-cell arrays or the grid (item size of a
        grid with a dtype field taken from `msg`)."""
        return sum(item.size(n, msg) for item in cls._items)

    @classmethod
    def per_cell(cls) -> bool:
        """True if the layout has per-cell arrays or a grid (its size grows with the cells)."""
        return any(isinstance(i, _Group) or isinstance(i.spec.wire, Grid) for i in cls._items)

    def rules(self, ctx: Any) -> None:
        """Checks that involve several fields (subclasses override); run after the field checks."""

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return NotImplemented
        return all(_eq(getattr(self, f.name), getattr(other, f.name))
                   for f in dataclasses.fields(self) if f.compare)  # type: ignore[arg-type]

    __hash__ = None  # type: ignore[assignment]


def layout(cls: type) -> type:
    """Class decorator: make `cls` a dataclass and compile its wire layout from the declarations."""
    cls = dataclass(eq=False)(cls)
    cls._items = _compile(cls)  # type: ignore[attr-defined]
    return cls


def specs(cls: type) -> list[tuple[str, Spec]]:
    """(attribute, Spec) of every declared field of a layout, in declaration order."""
    return [(f.name, f.metadata["spec"]) for f in dataclasses.fields(cls)]
