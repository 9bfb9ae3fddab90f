"""cffi (API mode) builder for the C array model; run by setuptools at `pip install`."""
from __future__ import annotations

import re
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
CORE = HERE / "c_core"


def _public_headers() -> list[Path]:
    """Headers that declare the C API; internal headers (static inline helpers) are not exported."""
    return [h for h in sorted(CORE.glob("*.h")) if "static inline" not in h.read_text()]


def _cdef_from_headers() -> str:
    """The headers are the contract: hand cffi their declarations, minus preprocessor lines and comments."""
    parts: list[str] = []
    for header in _public_headers():
        raw = header.read_text()
        text = re.sub(r"/\*.*?\*/", "", raw, flags=re.S)
        parts.extend(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
        parts.extend(f"#define {name} {val}" for name, val in re.findall(r"#define (RRAM_\w+) \(?(-?\d+)\)?", raw))
    return "\n".join(parts)


ffibuilder = FFI()
ffibuilder.cdef(_cdef_from_headers())
ffibuilder.set_source(
    "emulator._core",
    "\n".join(f'#include "{h.name}"' for h in _public_headers()),
    sources=[str(p.relative_to(HERE.parent)) for p in sorted(CORE.glob("*.c"))],
    include_dirs=[str(CORE.relative_to(HERE.parent))],
    # -fno-wrapv: Python's own CFLAGS (which setuptools passes first) carry -fwrapv, which keeps GCC from treating
    # the kernels' int32 lane and loop indices as non-overflowing (a sign extension per address, weaker
    # vectorization): 3-6 % of a sparse pulsed update. The core relies on no signed overflow (the whole suite
    # passes with it built under -fsanitize=signed-integer-overflow).
    extra_compile_args=["-O3", "-std=c11", "-fno-math-errno", "-fno-wrapv"],
    libraries=["m"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
