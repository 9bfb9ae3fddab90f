"""How the store encodes a numeric array in a blob (docs/store.md, "Encoding").

A codec is a name of `+`-separated stages, applied left to right when encoding:

- `f8` / `f4`: the element type, little-endian float64 or float32 (read back as float64);
- `delta`: along the last axis, each element's bit pattern minus the previous one's (integer arithmetic,
  wrapping, so exactly reversible): a sweep's neighbouring points share their leading bits;
- `shuffle`: the bytes regrouped by significance (all first bytes, then all second bytes, ...), so the
  exponent bytes, which change little between cells, sit together;
- `zstd`: a Zstandard frame (level 1).

`f8` alone is the raw float64 of schema 2. Float32 is used only for per-cell traces (a sweep's readings,
docs/store.md); every other quantity is stored as float64, exactly.
"""
from __future__ import annotations

import threading

import numpy as np
import zstandard

#: Scalars and shared traces (the applied voltages): float64, exactly.
EXACT = "f8+shuffle+zstd"
#: Per-cell traces (a sweep's currents): float32, the resolution of the readings (docs/store.md).
READING = "f4+delta+shuffle+zstd"
#: Schema 2's uncompressed float64 (read-only opens of an older file).
RAW = "f8"
#: A batch's (row, col) int32 pairs in schema 3.
CELLS = "i4+zstd"

_LEVEL = 1  # measured: 2x faster than 3 for 15 % larger traces (docs/store.md)
_local = threading.local()
_INT = {4: np.int32, 8: np.int64}


def _zstd() -> tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor]:
    # One (de)compressor pair per thread: they are not safe to share, and cheap to keep.
    pair = getattr(_local, "pair", None)
    if pair is None:
        pair = _local.pair = (zstandard.ZstdCompressor(level=_LEVEL), zstandard.ZstdDecompressor())
    return pair


def _stages(codec: str) -> tuple[np.dtype, list[str]]:
    head, *rest = codec.split("+")
    if head not in ("f8", "f4", "i4") or any(s not in ("delta", "shuffle", "zstd") for s in rest):
        raise ValueError(f"store: unknown blob encoding {codec!r}")
    return np.dtype("<" + head), rest


def encode(a: np.ndarray, codec: str) -> bytes:
    """The blob of array `a` (any shape; delta runs along the last axis) in `codec`."""
    dtype, stages = _stages(codec)
    x = np.ascontiguousarray(a, dtype=dtype)
    if "delta" in stages and x.size:
        bits = x.view(_INT[dtype.itemsize]).reshape(-1, x.shape[-1] if x.ndim else 1)
        d = np.empty_like(bits)
        d[:, 0] = bits[:, 0]
        np.subtract(bits[:, 1:], bits[:, :-1], out=d[:, 1:])  # wraps: reversed exactly by a wrapping cumsum
        x = d.view(dtype)
    if "shuffle" in stages:
        data = x.view(np.uint8).reshape(-1, dtype.itemsize).T.tobytes()
    else:
        data = x.tobytes()
    return _zstd()[0].compress(data) if "zstd" in stages else data


def decode(blob: bytes, codec: str, row_length: int = 1) -> np.ndarray:
    """The values of a blob as a flat read-only float64 array (int64 for `i4`); `row_length`: the last
    axis's length for `delta` (a trace's points)."""
    dtype, stages = _stages(codec)
    data = _zstd()[1].decompress(blob) if "zstd" in stages else blob
    if "shuffle" in stages:
        x = np.frombuffer(data, np.uint8).reshape(dtype.itemsize, -1).T.copy().view(dtype).ravel()
    else:
        x = np.frombuffer(data, dtype)
    if "delta" in stages and x.size:
        bits = x.view(_INT[dtype.itemsize]).reshape(-1, row_length)
        x = np.cumsum(bits, axis=1, dtype=bits.dtype).view(dtype).ravel()
    if dtype.kind == "i":
        return x.astype(np.int64)
    out = x if dtype == np.float64 else x.astype(np.float64)
    out.flags.writeable = False
    return out
