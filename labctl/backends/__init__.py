"""Array backends: one async interface (ArrayBackend), three implementations."""
from labctl.backends.base import (
    ArrayBackend,
    BackendInfo,
    BackendLimits,
    ProgramOutcome,
    ProgramSettings,
)
from labctl.backends.emulator import EmulatorBackend

__all__ = ["ArrayBackend", "BackendInfo", "BackendLimits", "ProgramOutcome", "ProgramSettings", "EmulatorBackend"]
