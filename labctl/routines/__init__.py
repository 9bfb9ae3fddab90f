"""Characterization and programming routines, written against the ArrayBackend interface.

Every routine is `async routine(backend, rows, cols, params, ctx) -> Result`: rows / cols are cell
index arrays (None, None: every cell), params a pydantic model validated before anything is sent,
ctx a RoutineContext (measurements emitted as taken, progress, safe points). `ROUTINES` maps the
names campaign files use to the routine, its parameter model and its result type.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from labctl.routines.base import Aborted, Measurements, RoutineContext
from labctl.routines.endurance import EnduranceParams, EnduranceResult, endurance
from labctl.routines.forming import ConditionParams, ConditionResult, FormingParams, FormingResult, condition, form
from labctl.routines.iv import IVParams, IVResult, iv_cycles
from labctl.routines.noise import (
    ProgrammingNoiseParams,
    ProgrammingNoiseResult,
    ReadNoiseParams,
    ReadNoiseResult,
    programming_noise,
    read_noise,
)
from labctl.routines.open_loop import (
    OpenLoopParams,
    OpenLoopResult,
    PulseTrainParams,
    PulseTrainResult,
    SymmetryPointParams,
    SymmetryPointResult,
    open_loop,
    pulse_train,
    symmetry_point,
)
from labctl.routines.params import RoutineParams, all_cells
from labctl.routines.program import (
    ClosedLoopParams,
    ClosedLoopResult,
    IncrementalParams,
    program,
    program_incremental,
)
from labctl.routines.results import RoutineResult
from labctl.routines.retention import RelaxationParams, RelaxationResult, relaxation


@dataclass(frozen=True)
class RoutineSpec:
    """A routine as campaign files name it."""

    name: str
    run: Callable[..., Awaitable[Any]]
    params: type[RoutineParams]
    result: type[RoutineResult]
    doc: str


def _spec(name: str, run: Callable[..., Awaitable[Any]], params: type[RoutineParams],
          result: type[RoutineResult]) -> RoutineSpec:
    return RoutineSpec(name, run, params, result, (run.__doc__ or "").strip().splitlines()[0])


ROUTINES: dict[str, RoutineSpec] = {s.name: s for s in (
    _spec("form", form, FormingParams, FormingResult),
    _spec("condition", condition, ConditionParams, ConditionResult),
    _spec("iv_cycles", iv_cycles, IVParams, IVResult),
    _spec("program", program, ClosedLoopParams, ClosedLoopResult),
    _spec("program_incremental", program_incremental, IncrementalParams, ClosedLoopResult),
    _spec("pulse_train", pulse_train, PulseTrainParams, PulseTrainResult),
    _spec("symmetry_point", symmetry_point, SymmetryPointParams, SymmetryPointResult),
    _spec("open_loop", open_loop, OpenLoopParams, OpenLoopResult),
    _spec("programming_noise", programming_noise, ProgrammingNoiseParams, ProgrammingNoiseResult),
    _spec("read_noise", read_noise, ReadNoiseParams, ReadNoiseResult),
    _spec("relaxation", relaxation, RelaxationParams, RelaxationResult),
    _spec("endurance", endurance, EnduranceParams, EnduranceResult),
)}

__all__ = [
    "ROUTINES", "Aborted", "Measurements", "RoutineContext", "RoutineParams", "RoutineResult", "RoutineSpec",
    "all_cells",
    "form", "FormingParams", "FormingResult", "condition", "ConditionParams", "ConditionResult",
    "iv_cycles", "IVParams", "IVResult",
    "program", "program_incremental", "ClosedLoopParams", "IncrementalParams", "ClosedLoopResult",
    "pulse_train", "PulseTrainParams", "PulseTrainResult", "symmetry_point", "SymmetryPointParams",
    "SymmetryPointResult", "open_loop", "OpenLoopParams", "OpenLoopResult",
    "programming_noise", "ProgrammingNoiseParams", "ProgrammingNoiseResult", "read_noise", "ReadNoiseParams",
    "ReadNoiseResult", "relaxation", "RelaxationParams", "RelaxationResult",
    "endurance", "EnduranceParams", "EnduranceResult",
]
