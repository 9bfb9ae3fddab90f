"""The campaign step registry: which routine a step's `routine = "..."` names.

Adding a routine to campaigns is one line in STEPS: its name in campaign files, "module:function",
and whether its cells may be split into chunks run one after the other (a routine whose physics
depends on the shared virtual clock, such as retention, must see all its cells at once). The
routine's Params model is read from the type hint of its `params` argument, so it is not repeated here.
"""
from __future__ import annotations

import importlib
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from pydantic import BaseModel


@dataclass(frozen=True)
class StepKind:
    """One registered routine: `target` is "module:function"; `chunkable` allows cell chunks."""

    target: str
    chunkable: bool = True

    @cached_property
    def function(self) -> Callable[..., Any]:
        """The routine: async (backend, rows, cols, params, ctx) -> Result."""
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)

    @cached_property
    def params_model(self) -> type[BaseModel]:
        """The pydantic model of the routine's `params` argument."""
        fn = self.function
        hints = typing.get_type_hints(fn)
        model = hints.get("params")
        if model is None:  # fall back to the fourth positional parameter
            names = list(inspect.signature(fn).parameters)
            model = hints.get(names[3]) if len(names) > 3 else None
        # `params: FormingParams | None = None`: take the model out of the Optional.
        for arg in typing.get_args(model) or ():
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                model = arg
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"{self.target}: the `params` argument must be annotated with a pydantic model")
        return model

    def available(self) -> bool:
        """True if the routine's module imports (routines are added while campaigns exist)."""
        try:
            self.function  # noqa: B018 -- import for its side effect of failing
        except (ImportError, AttributeError):
            return False
        return True


# name in campaign files -> routine. One line per routine.
STEPS: dict[str, StepKind] = {
    "forming": StepKind("labctl.routines.forming:form"),
    "conditioning": StepKind("labctl.routines.forming:condition"),
    "iv_cycles": StepKind("labctl.routines.iv:iv_cycles"),
    "program": StepKind("labctl.routines.program:program"),
    "program_incremental": StepKind("labctl.routines.program:program_incremental"),
    "pulse_train": StepKind("labctl.routines.open_loop:pulse_train"),
    "symmetry_point": StepKind("labctl.routines.open_loop:symmetry_point"),
    "open_loop": StepKind("labctl.routines.open_loop:open_loop"),
    "programming_noise": StepKind("labctl.routines.noise:programming_noise"),
    "read_noise": StepKind("labctl.routines.noise:read_noise", chunkable=False),
    "relaxation": StepKind("labctl.routines.retention:relaxation", chunkable=False),
    "endurance": StepKind("labctl.routines.endurance:endurance"),
    "puf_enroll": StepKind("labctl.puf.steps:puf_enroll", chunkable=False),
    "puf_evaluate": StepKind("labctl.puf.steps:puf_evaluate", chunkable=False),
}


def available_steps() -> dict[str, StepKind]:
    """Registered routines whose modules import on this installation."""
    return {name: kind for name, kind in STEPS.items() if kind.available()}
