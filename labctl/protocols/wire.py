"""Little-endian payload readers and writers shared by every message layout.

Arrays are packed with numpy in one call (no per-cell Python loops), so a 512 x 512 float64
payload costs one memory copy each way.
"""
from __future__ import annotations

import struct

import numpy as np

from labctl.protocols.errors import PayloadError

_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_F64 = struct.Struct("<d")

_LIMITS = {"u8": 0xFF, "u16": 0xFFFF, "u32": 0xFFFFFFFF, "u64": 0xFFFFFFFFFFFFFFFF}


class PayloadWriter:
    """Builds a payload; each method validates the value against the field width."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def _int(self, kind: str, packer: struct.Struct, field: str, value: int) -> PayloadWriter:
        value = int(value)
        if not 0 <= value <= _LIMITS[kind]:
            raise PayloadError(f"{field} = {value} does not fit {kind} [0, {_LIMITS[kind]}]")
        self._parts.append(packer.pack(value))
        return self

    def u8(self, field: str, value: int) -> PayloadWriter:
        return self._int("u8", _U8, field, value)

    def u16(self, field: str, value: int) -> PayloadWriter:
        return self._int("u16", _U16, field, value)

    def u32(self, field: str, value: int) -> PayloadWriter:
        return self._int("u32", _U32, field, value)

    def u64(self, field: str, value: int) -> PayloadWriter:
        return self._int("u64", _U64, field, value)

    def f64(self, field: str, value: float) -> PayloadWriter:
        self._parts.append(_F64.pack(float(value)))
        return self

    def text(self, field: str, value: str, max_bytes: int = 255) -> PayloadWriter:
        """u8 length + UTF-8 bytes."""
        raw = value.encode("utf-8")
        if len(raw) > max_bytes:
            raise PayloadError(f"{field} is {len(raw)} B of UTF-8, at most {max_bytes} B allowed")
        self._parts.append(_U8.pack(len(raw)) + raw)
        return self

    def array(self, field: str, values: np.ndarray, dtype: str, count: int | None = None) -> PayloadWriter:
        """Packed little-endian elements of `dtype` ('<f8', '<f4', '<u2', '<u4', '<u8', 'u1')."""
        arr = np.ascontiguousarray(values, dtype=np.dtype(dtype)).reshape(-1)
        if count is not None and arr.size != count:
            raise PayloadError(f"{field} has {arr.size} elements, expected {count}")
        self._parts.append(arr.tobytes())
        return self

    def raw(self, data: bytes) -> PayloadWriter:
        self._parts.append(bytes(data))
        return self

    def bytes(self) -> bytes:
        return b"".join(self._parts)


class PayloadReader:
    """Reads a payload front to back; every shortfall raises PayloadError naming the field.

    Args:
        payload: the bytes to parse.
        what: message name used in error messages (e.g. "PULSE request").
    """

    def __init__(self, payload: bytes, what: str) -> None:
        self._data = payload
        self._pos = 0
        self.what = what

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def _take(self, field: str, size: int) -> int:
        if size < 0 or self._pos + size > len(self._data):
            raise PayloadError(f"{self.what}: payload ends before {field} "
                               f"(needs {size} B at offset {self._pos}, has {self.remaining} B)")
        pos = self._pos
        self._pos += size
        return pos

    def _unpack(self, packer: struct.Struct, field: str) -> int | float:
        return packer.unpack_from(self._data, self._take(field, packer.size))[0]

    def u8(self, field: str) -> int:
        return int(self._unpack(_U8, field))

    def u16(self, field: str) -> int:
        return int(self._unpack(_U16, field))

    def u32(self, field: str) -> int:
        return int(self._unpack(_U32, field))

    def u64(self, field: str) -> int:
        return int(self._unpack(_U64, field))

    def f64(self, field: str) -> float:
        return float(self._unpack(_F64, field))

    def text(self, field: str) -> str:
        size = self.u8(f"{field} length")
        pos = self._take(field, size)
        try:
            return self._data[pos:pos + size].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PayloadError(f"{self.what}: {field} is not UTF-8 ({exc.reason})") from None

    def array(self, field: str, dtype: str, count: int, native: str | None = None) -> np.ndarray:
        """`count` packed elements of `dtype`, returned as a writable native array of `native`."""
        wire = np.dtype(dtype)
        if count < 0 or count > self.remaining // max(wire.itemsize, 1):
            raise PayloadError(f"{self.what}: {field} needs {count} x {wire.itemsize} B, "
                               f"payload has {self.remaining} B left")
        pos = self._take(field, count * wire.itemsize)
        view = np.frombuffer(self._data, dtype=wire, count=count, offset=pos)
        return view.astype(native or wire.newbyteorder("="), copy=True)

    def rest(self) -> bytes:
        pos = self._take("rest", self.remaining)
        return bytes(self._data[pos:])

    def done(self) -> None:
        """Raise PayloadError if bytes are left over (a layout mismatch, not padding)."""
        if self.remaining:
            raise PayloadError(f"{self.what}: {self.remaining} B left after the last field")
