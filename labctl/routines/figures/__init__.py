"""Figures of routines, drawn from a stored step (labctl.routines.figures.base.StepData).

Each routine declares its figures next to its result type: `RoutineResult.figures` is a
"module:function" reference (imported only when a report draws them), e.g. ClosedLoopResult's
"labctl.routines.figures.program:program_figures". A plugin routine's result names its own function
the same way. A step kind without a result type (a wafer map of a wafer step) registers its function
by name with `register(name, function)`. A figure function takes a StepData and returns a list of
Figure / Table / Note items (labctl.routines.figures.base).

`figures_for(routine, result_type)` finds the function: registered by routine name first, then the
result type's declaration (inherited), then `generic_figures` (a panel per measured quantity).
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from labctl.routines.figures.base import Figure, Item, KindData, Note, StepData, StepGroup, Table, TraceBatch

FigureFunction = Callable[[StepData], list[Item]]

_REGISTERED: dict[str, FigureFunction] = {}

__all__ = ["Figure", "FigureFunction", "Item", "KindData", "Note", "StepData", "StepGroup", "Table", "TraceBatch",
           "figures_for", "register", "resolve"]


def register(name: str, function: FigureFunction) -> None:
    """Draw the steps named `name` (a routine or step kind) with `function` (replaces a declaration)."""
    _REGISTERED[name] = function


def resolve(target: str | FigureFunction) -> FigureFunction:
    """A figure function from its "module:function" reference (or the function itself); ValueError
    naming the reference if it does not import."""
    if callable(target):
        return target
    module, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except Exception as exc:  # ImportError, AttributeError or whatever the plugin's import raised
        raise ValueError(f"figures {target!r}: cannot load: {type(exc).__name__}: {exc}") from exc
    if not callable(obj):
        raise ValueError(f"figures {target!r}: not a function")
    return obj  # type: ignore[no-any-return]


def figures_for(routine: str, result_type: type | None) -> FigureFunction:
    """The figure function of a step running `routine` whose result type is `result_type`."""
    if routine in _REGISTERED:
        return _REGISTERED[routine]
    target = getattr(result_type, "figures", None) if result_type is not None else None
    if target:
        return resolve(target)
    from labctl.routines.figures.generic import generic_figures

    return generic_figures
