"""cffi (API mode) builder for the C array model; run by setuptools at `pip install`."""
from __future__ import annotations

import re
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
CORE = HERE / "c_core"


def _cdef_from_header() -> str:
    """The header is the contract: hand cffi its declarations, minus preprocessor lines and comments."""
    text = (CORE / "rram.h").read_text()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    consts = re.findall(r"#define (RRAM_\w+) \(?(-?\d+)\)?", (CORE / "rram.h").read_text())
    return "\n".join(lines) + "\n" + "\n".join(f"#define {name} {val}" for name, val in consts)


ffibuilder = FFI()
ffibuilder.cdef(_cdef_from_header())
ffibuilder.set_source(
    "emulator._core",
    '#include "rram.h"',
    sources=[str(p.relative_to(HERE.parent)) for p in sorted(CORE.glob("*.c"))],
    include_dirs=[str(CORE.relative_to(HERE.parent))],
    extra_compile_args=["-O3", "-std=c11", "-fno-math-errno"],
    libraries=["m"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
