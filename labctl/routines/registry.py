"""The routine registry: which routine a campaign step's `routine = "..."` names.

Routines are found through the entry-point group `labctl.routines` (importlib.metadata), so a lab adds
its own in its own package without editing labctl; labctl's built-in routines are declared the same
way, in pyproject.toml `[project.entry-points."labctl.routines"]`. An entry point is

    name = "package.module:function"

where `name` is what campaign files write and `function` is an async routine
`routine(backend, rows, cols, params, ctx) -> Result` (docs/campaigns.md, "Writing a routine"): `params`
annotated with a pydantic model (a RoutineParams subclass, or any model that forbids unknown fields),
the return annotated with the result type (a RoutineResult with `summary()`).

Loading is lazy: listing the names reads only the installed metadata; a routine's module is imported
the first time a campaign names it. A broken plugin raises RoutineLoadError naming the entry point and
the distribution it comes from, when a campaign uses it; so does a name that two distributions register
for different functions (the other routines keep working).
"""
from __future__ import annotations

import importlib
import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from importlib import metadata
from typing import Any

GROUP = "labctl.routines"


class RoutineLoadError(RuntimeError):
    """A routine entry point that cannot be used: it does not import, is not an async routine, has no
    params model, or its name is registered twice."""


@dataclass(frozen=True)
class RoutineSpec:
    """One registered routine. `target` is "module:function"; `source` names the entry point and its
    distribution for error messages. Everything else is read from the function on first use."""

    name: str
    target: str
    source: str
    conflict: str | None = None  # set when another distribution registers the same name

    def _fail(self, what: str) -> RoutineLoadError:
        return RoutineLoadError(f"routine {self.name!r} ({self.source}): {what}")

    @cached_property
    def function(self) -> Callable[..., Any]:
        """The routine: async (backend, rows, cols, params, ctx) -> Result."""
        if self.conflict is not None:
            raise RoutineLoadError(self.conflict)
        module, _, attr = self.target.partition(":")
        if not module or not attr:
            raise self._fail(f"the entry point value must be 'module:function', got {self.target!r}")
        try:
            obj: Any = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except Exception as exc:  # ImportError, AttributeError or whatever the plugin's import raised
            raise self._fail(f"cannot load {self.target!r}: {type(exc).__name__}: {exc}") from exc
        if not inspect.iscoroutinefunction(obj):
            raise self._fail(f"{self.target!r} is not an async function (a routine is "
                             "`async def routine(backend, rows, cols, params, ctx)`)")
        return obj  # type: ignore[no-any-return]

    @cached_property
    def _hints(self) -> dict[str, Any]:
        function = self.function
        try:
            return typing.get_type_hints(function)
        except Exception as exc:  # an annotation that does not resolve
            raise self._fail(f"cannot resolve the type hints of {self.target!r}: {exc}") from exc

    @cached_property
    def params(self) -> type[Any]:
        """The pydantic model of the routine's `params` argument (taken out of `Model | None`)."""
        from pydantic import BaseModel

        model = self._hints.get("params")
        if model is None:  # the fourth positional parameter under another name
            names = list(inspect.signature(self.function).parameters)
            model = self._hints.get(names[3]) if len(names) > 3 else None
        for arg in typing.get_args(model) or ():
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                model = arg
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise self._fail("the `params` argument must be annotated with a pydantic model")
        return model

    @cached_property
    def result(self) -> type[Any] | None:
        """The result type from the return annotation (None if not annotated)."""
        ret = self._hints.get("return")
        return ret if isinstance(ret, type) else None

    @property
    def doc(self) -> str:
        """First line of the routine's docstring."""
        return ((self.function.__doc__ or "").strip().splitlines() or [""])[0]

    @property
    def chunkable(self) -> bool:
        """False when the routine must see all its cells at once (its params model says
        `chunkable = False`, e.g. a routine whose physics depends on the shared virtual clock)."""
        return bool(getattr(self.params, "chunkable", True))


def _source(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    where = f" of {dist.metadata['Name']} {dist.version}" if dist is not None else ""
    return f"entry point '{ep.name} = {ep.value}' in group {GROUP}{where}"


def discover() -> dict[str, RoutineSpec]:
    """Every routine the installed distributions declare, by name (nothing is imported)."""
    found: dict[str, RoutineSpec] = {}
    for ep in metadata.entry_points(group=GROUP):
        spec = RoutineSpec(ep.name, ep.value.strip(), _source(ep))
        other = found.get(ep.name)
        if other is not None and other.target != spec.target:
            sources = sorted((other.source.split("; ")[0], spec.source))
            spec = RoutineSpec(ep.name, other.target, other.source, conflict=(
                f"routine {ep.name!r} is registered twice: {sources[0]} and {sources[1]}; uninstall or rename one"))
        found[ep.name] = spec
    return dict(sorted(found.items()))


_CACHE: dict[str, RoutineSpec] | None = None


def routines(refresh: bool = False) -> Mapping[str, RoutineSpec]:
    """The registry (read once per process; `refresh` re-reads the metadata, e.g. after sys.path grew)."""
    global _CACHE
    if _CACHE is None or refresh:
        _CACHE = discover()
    return _CACHE


def get(name: str) -> RoutineSpec:
    """The routine registered as `name`; KeyError listing the registered names."""
    spec = routines().get(name)
    if spec is None:
        raise KeyError(f"unknown routine {name!r} (available: {', '.join(routines())})")
    return spec


def name_of(function: Callable[..., Any]) -> str | None:
    """The registered name of `function`, if it is registered."""
    target = f"{function.__module__}:{function.__qualname__}"
    return next((s.name for s in routines().values() if s.target == target), None)
