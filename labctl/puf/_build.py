"""cffi (API mode) builder for the SP 800-90B estimators in C (labctl/puf/c); run by setuptools at
`pip install` (setup.py names it next to the emulator's builder)."""
from __future__ import annotations

import re
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
SRC = HERE / "c"
ROOT = HERE.parent.parent


def _cdef() -> str:
    """The header is the contract: its declarations and integer constants, minus other preprocessor
    lines and comments."""
    text = re.sub(r"/\*.*?\*/", "", (SRC / "sp800.h").read_text(), flags=re.S)
    return "\n".join(ln for ln in text.splitlines()
                     if not ln.lstrip().startswith("#") or re.match(r"#define SP_\w+ \d+$", ln.strip()))


ffibuilder = FFI()
ffibuilder.cdef(_cdef())
ffibuilder.set_source(
    "labctl.puf._sp800",
    '#include "sp800.h"',
    sources=[str(p.relative_to(ROOT)) for p in sorted(SRC.glob("*.c"))],
    include_dirs=[str(SRC.relative_to(ROOT))],
    # Python's CFLAGS carry -fwrapv, which stops gcc vectorizing the lag scoreboard (3x slower);
    # nothing here relies on signed overflow wrapping
    extra_compile_args=["-O3", "-std=gnu11", "-fno-wrapv"],
    libraries=["m"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
