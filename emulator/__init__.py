"""The labctl array emulator: a C model of 1T1R ReRAM array physics and its emulated endpoints."""
import labctl  # noqa: F401  (first: it pins OpenBLAS's kernels before numpy loads them, labctl.core.blas)
from emulator.array import Array, Limits, ProgramResult, solve_crossbar
from emulator.presets import CMO_HFOX, PRESETS, Preset, get_preset

__all__ = ["Array", "Limits", "ProgramResult", "Preset", "PRESETS", "CMO_HFOX", "get_preset",
           "solve_crossbar"]
