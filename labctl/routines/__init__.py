"""Characterization and programming routines, written against the ArrayBackend interface.

Every routine is `async routine(backend, rows, cols, params, ctx) -> Result`: rows / cols are cell
index arrays (None, None: every cell), params a pydantic model validated before anything is sent,
ctx a RoutineContext (measurements emitted as taken, progress, safe points). Campaigns find routines by
name through the entry-point group `labctl.routines` (labctl.routines.registry; `ROUTINES` is that
registry), so labs add their own without editing labctl.

Importing this package imports no routine (nor the C core): each name below is loaded from its module
on first use.
"""
from __future__ import annotations

import importlib
import sys
import types
from typing import Any

# public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(("Aborted", "Measurements", "RoutineContext"), "labctl.routines.base"),
    **dict.fromkeys(("RoutineParams", "all_cells"), "labctl.routines.params"),
    "RoutineResult": "labctl.routines.results",
    **dict.fromkeys(("RoutineSpec", "RoutineLoadError"), "labctl.routines.registry"),
    **dict.fromkeys(("form", "FormingParams", "FormingResult", "condition", "ConditionParams", "ConditionResult"),
                    "labctl.routines.forming"),
    **dict.fromkeys(("iv_cycles", "IVParams", "IVResult"), "labctl.routines.iv"),
    **dict.fromkeys(("program", "program_incremental", "ClosedLoopParams", "IncrementalParams", "ClosedLoopResult"),
                    "labctl.routines.program"),
    **dict.fromkeys(("pulse_train", "PulseTrainParams", "PulseTrainResult", "symmetry_point", "SymmetryPointParams",
                     "SymmetryPointResult", "open_loop", "OpenLoopParams", "OpenLoopResult", "identical_pulses",
                     "IdenticalPulsesParams"), "labctl.routines.open_loop"),
    **dict.fromkeys(("programming_noise", "ProgrammingNoiseParams", "ProgrammingNoiseResult", "read_noise",
                     "ReadNoiseParams", "ReadNoiseResult"), "labctl.routines.noise"),
    **dict.fromkeys(("relaxation", "RelaxationParams", "RelaxationResult"), "labctl.routines.retention"),
    **dict.fromkeys(("endurance", "EnduranceParams", "EnduranceResult"), "labctl.routines.endurance"),
    **dict.fromkeys(("read_cells", "ReadParams", "CellReads", "retention_reads", "RetentionReadsParams"),
                    "labctl.routines.cells"),
}

__all__ = ["ROUTINES", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name == "ROUTINES":
        from labctl.routines.registry import routines

        return routines()
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'labctl.routines' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


class _Package(types.ModuleType):
    """Three routines share their module's name (program, open_loop, endurance). Importing the module
    sets the package attribute to it; keep the routine there instead, as `from labctl.routines import
    program` has always meant the function."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _EXPORTS.get(name) == value.__name__:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
