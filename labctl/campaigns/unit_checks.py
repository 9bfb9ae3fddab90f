"""Units of a campaign file's quantities: which unit each parameter takes, and problems for quantity
strings ("2.5 us") given in another unit than their field's (SI: V, A, S, s, ohm)."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from labctl.campaigns import quantities
from labctl.campaigns.problems import Problem, problem

#: The limit lists of a RoutineParams model and the unit of the fields they name.
LIMIT_LISTS: tuple[tuple[str, str], ...] = (("voltage_fields", "V"), ("gate_fields", "V"), ("width_fields", "s"),
                                            ("compliance_fields", "A"))


def param_unit(model: type[BaseModel], name: str) -> str | None:
    """Unit of a routine parameter: from the model's limit field lists, its declaration, or its name."""
    for attr, unit in LIMIT_LISTS:
        if name in getattr(model, attr, ()):
            return unit
    return quantities.unit_of_field(name, model.model_fields.get(name))


def register_units(model: type[BaseModel], values: dict[str, Any], path: tuple[Any, ...],
                   expected: dict[tuple[Any, ...], str | None]) -> None:
    """Expected unit of every given parameter, following nested parameter models ([steps.params.program])."""
    for name, value in values.items():
        field = model.model_fields.get(name)
        sub = field.annotation if field is not None else None
        if isinstance(value, dict) and isinstance(sub, type) and issubclass(sub, BaseModel):
            register_units(sub, value, path + (name,), expected)
        else:
            expected[path + (name,)] = param_unit(model, name)


def check_units(converted: dict[tuple[Any, ...], tuple[str, str]], expected: dict[tuple[Any, ...], str | None],
                lines: dict[tuple[Any, ...], int]) -> list[Problem]:
    """A problem for every quantity string whose unit is not its field's."""
    problems = []
    for path, (text, unit) in converted.items():
        want = expected.get(path, "?")
        if want == "?":
            # Inside a parameter whose value is a list (e.g. targets = ["10 uS", "20 uS"]).
            for k in range(len(path) - 1, 0, -1):
                if path[:k] in expected:
                    want = expected[path[:k]]
                    break
        if want == unit:
            continue
        if want in (None, "?"):
            msg = f"{text!r} has a unit ({unit}) but this field takes a plain number"
        else:
            msg = f"{text!r} is in {unit}, this field is in {want} (SI; e.g. 2.5e-6 or \"2.5 us\" for a width)"
        problems.append(problem(path, lines, msg))
    return problems
