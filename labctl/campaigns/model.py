"""Campaign files: the pydantic model, loading with line-numbered errors, and the unit-of-work plan.

A campaign file is TOML (docs/campaigns.md). `load_campaign(text)` parses it, converts quantity
strings ("2.5 us") to SI, validates every table and every step's parameters against its routine's
Params model (each point of a sweep separately), resolves cell selections against the array size and
checks every voltage, width and compliance against [limits] -- all before anything runs. All problems
are collected and raised together as one CampaignError whose lines read
`campaign.toml:14: steps[2].params.v_set: 4.2 V exceeds limits.max_abs_voltage = 3.6 V`.
"""
from __future__ import annotations

import itertools
import json
import socket
import tomllib
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from labctl.campaigns import quantities, selection, toml_lines
from labctl.campaigns.steps import STEPS, StepKind


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CampaignInfo(_Strict):
    name: str = Field(min_length=1)
    description: str = ""
    repeat: int = Field(1, ge=1, le=100_000, description="times the whole list of steps runs")


class Metadata(BaseModel):
    """Who and what: operator, wafer, die, notes; further string fields are kept as given."""

    model_config = ConfigDict(extra="allow")
    operator: str = ""
    wafer: str = ""
    die: str = ""
    notes: str = ""


class BackendSpec(_Strict):
    """The array to run on.

    kind "emulator": the embedded emulator (rows, cols, seed, preset).
    kind "chip": a chip controller at `address` (tcp://HOST:PORT, serial://DEVICE or a device path).
    kind "station": bench instruments from the station file `station` (docs/instruments.md); `clock`
    optionally names the chip controller of an emulator serving the instruments (its virtual clock).
    """

    kind: Literal["emulator", "chip", "station"] = "emulator"
    rows: int = Field(8, ge=1, le=4096)
    cols: int = Field(4, ge=1, le=4096)
    seed: int = Field(0, ge=0, le=2**63 - 1)
    preset: str = "cmo-hfox"
    address: str | None = Field(None, pattern=r"^(tcp://[^/]+:\d+|serial://.+|/.+)$")
    station: str | None = None
    clock: str | None = Field(None, pattern=r"^tcp://[^/]+:\d+$")

    @model_validator(mode="after")
    def _needs(self) -> BackendSpec:
        if self.kind == "chip" and not self.address:
            raise ValueError("address: a chip backend needs the controller's address (tcp://HOST:PORT or a serial port)")
        if self.kind == "station" and not self.station:
            raise ValueError("station: a station backend needs the station file's path")
        return self

    def address_spec(self) -> str:
        """The labctl.backends.open_backend address of a chip or station backend."""
        if self.kind == "chip":
            return str(self.address)
        if self.kind == "station":
            return f"station:{self.station}" + (f"?clock={self.clock}" if self.clock else "")
        raise ValueError(f"kind: {self.kind!r} has no address")


class Limits(_Strict):
    """Campaign-wide safety limits, checked on every step's parameters before the run and on every
    backend call during it (SI units)."""

    max_abs_voltage: float = Field(3.6, gt=0, le=10.0, json_schema_extra={"unit": "V"})
    max_gate_voltage: float = Field(3.3, gt=0, le=5.0, json_schema_extra={"unit": "V"})
    max_pulse_width: float = Field(1e-3, gt=0, le=10.0, json_schema_extra={"unit": "s"})
    max_compliance: float = Field(1e-3, gt=0, le=0.1, json_schema_extra={"unit": "A"})


class TelemetrySpec(_Strict):
    """MQTT telemetry (docs/telemetry.md). The password is read from the environment variable named by
    password_env so that campaign files hold no secrets."""

    broker: str = Field(pattern=r"^mqtts?://[^/:]+(:\d+)?/?$")
    station: str = Field(default_factory=socket.gethostname, pattern=r"^[^/#+]+$")
    topic_prefix: str = Field("labctl", pattern=r"^[^#+]+$")
    username: str | None = None
    password_env: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    tls_insecure: bool = False
    buffer: int = Field(1000, ge=10, le=1_000_000, description="messages held while the broker is away")
    progress_interval: float = Field(0.5, ge=0.0, le=3600.0, json_schema_extra={"unit": "s"})


class Step(_Strict):
    routine: str
    name: str | None = None
    cells: str | selection.Selection = "all"
    params: dict[str, Any] = Field(default_factory=dict)
    sweep: dict[str, list[Any]] = Field(default_factory=dict,
                                        description="parameter -> values; steps run once per combination")
    repeat: int = Field(1, ge=1, le=100_000)
    chunk_cells: int | None = Field(None, ge=1, description="cells per unit of work (default: the whole "
                                                            "selection; routines that need all cells at once "
                                                            "ignore it)")


class Campaign(_Strict):
    campaign: CampaignInfo
    metadata: Metadata = Field(default_factory=Metadata)
    backend: BackendSpec = Field(default_factory=BackendSpec)
    limits: Limits = Field(default_factory=Limits)
    selections: dict[str, selection.Selection] = Field(default_factory=dict)
    steps: list[Step] = Field(min_length=1)
    telemetry: TelemetrySpec | None = None


@dataclass(frozen=True)
class Problem:
    path: tuple[Any, ...]
    line: int | None
    message: str

    def format(self, source: str) -> str:
        where = f"{source}:{self.line}" if self.line else source
        return f"{where}: {format_path(self.path)}: {self.message}" if self.path else f"{where}: {self.message}"


class CampaignError(ValueError):
    """A campaign file that cannot run; `problems` lists every field that is wrong, with its line."""

    def __init__(self, problems: list[Problem], source: str) -> None:
        self.problems = problems
        self.source = source
        super().__init__(f"{source}: {len(problems)} problem(s) in the campaign file\n"
                         + "\n".join("  " + p.format(source) for p in problems))


def format_path(path: tuple[Any, ...]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


@dataclass(frozen=True)
class Unit:
    """One unit of work: one routine call on one chunk of cells (docs/campaigns.md)."""

    index: int
    step_index: int
    step_name: str
    routine: str
    pass_index: int  # campaign-level repeat
    repeat_index: int  # step-level repeat
    sweep_index: int
    sweep_values: dict[str, Any]
    chunk_index: int
    n_chunks: int
    rows: NDArray[np.int64]
    cols: NDArray[np.int64]
    params: BaseModel

    @property
    def group(self) -> tuple[int, int, int, int]:
        """Units of one (pass, step, sweep point, repeat): their summaries are published together."""
        return (self.pass_index, self.step_index, self.sweep_index, self.repeat_index)


@dataclass(frozen=True)
class LoadedCampaign:
    campaign: Campaign
    text: str
    source: str
    units: list[Unit]

    @property
    def step_names(self) -> list[str]:
        return [step_name(s, i) for i, s in enumerate(self.campaign.steps)]


def step_name(step: Step, index: int) -> str:
    return step.name or f"{step.routine}-{index}"


def _strip_loc(loc: tuple[Any, ...], data: Any) -> tuple[Any, ...]:
    """Drop pydantic's union tags and other non-data elements from an error location."""
    out: list[Any] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            out.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            out.append(part)
            node = node[part]
        elif isinstance(part, str) and (part in {"region", "list", "checkerboard", "ranges", "all", "str"}
                                        or "[" in part or "-" in part):
            continue  # a discriminator tag or validator name, not a key of the file
        else:
            out.append(part)  # a missing key: keep it, the line is its table's
            node = None
    return tuple(out)


def _pydantic_problems(exc: ValidationError, data: Any, prefix: tuple[Any, ...],
                       lines: dict[tuple[Any, ...], int]) -> list[Problem]:
    problems = []
    for err in exc.errors(include_url=False):
        path = prefix + _strip_loc(tuple(err["loc"]), _get(data, prefix) if prefix else data)
        msg = err["msg"]
        if err["type"] not in ("missing", "extra_forbidden") and "input" in err:
            msg += f" (got {err['input']!r})"
        if err["type"] == "extra_forbidden":
            msg = "unknown field (misspelt? see docs/campaigns.md)"
        problems.append(Problem(path, toml_lines.line_of(lines, path), msg))
    return problems


def _get(data: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        data = data[p]
    return data


_LIMIT_RULES = (  # (unit, name test, limits field, what)
    ("V", lambda n: "vg" in n or "gate" in n, "max_gate_voltage"),
    ("V", lambda n: True, "max_abs_voltage"),
    ("s", lambda n: "width" in n, "max_pulse_width"),
    ("A", lambda n: "compliance" in n, "max_compliance"),
)


def _limit_problem(name: str, unit: str | None, value: Any, limits: Limits) -> str | None:
    """Message if a parameter value breaks a campaign limit, else None."""
    if unit is None:
        return None
    try:
        a = np.abs(np.asarray(value, dtype=np.float64))
    except (TypeError, ValueError):
        return None
    if a.size == 0 or not np.all(np.isfinite(a)):
        return None
    for rule_unit, test, field in _LIMIT_RULES:
        if rule_unit == unit and test(name):
            lim = getattr(limits, field)
            worst = float(a.max())
            if worst > lim:
                return f"{worst:g} {unit} exceeds limits.{field} = {lim:g} {unit} (allowed |value| <= {lim:g} {unit})"
            return None
    return None


def _param_unit(model: type[BaseModel], name: str) -> str | None:
    """Unit of a routine parameter: from the model's limit field lists, its declaration, or its name."""
    for attr, unit in (("voltage_fields", "V"), ("gate_fields", "V"), ("width_fields", "s"),
                       ("compliance_fields", "A")):
        if name in getattr(model, attr, ()):
            return unit
    return quantities.unit_of_field(name, model.model_fields.get(name))


def _register_units(model: type[BaseModel], values: dict[str, Any], path: tuple[Any, ...],
                    expected: dict[tuple[Any, ...], str | None]) -> None:
    """Expected unit of every given parameter, following nested parameter models ([steps.params.program])."""
    for name, value in values.items():
        field = model.model_fields.get(name)
        sub = field.annotation if field is not None else None
        if isinstance(value, dict) and isinstance(sub, type) and issubclass(sub, BaseModel):
            _register_units(sub, value, path + (name,), expected)
        else:
            expected[path + (name,)] = _param_unit(model, name)


def _param_limit_problems(model: type[BaseModel], p: BaseModel, limits: Limits) -> list[tuple[str, str]]:
    """(field, message) for every parameter beyond the campaign [limits]. Models that list their
    voltage / gate / width / compliance fields (RoutineParams) are checked by those lists, others by the
    field's unit and name."""
    out = []
    declared = any(hasattr(model, a) for a in ("voltage_fields", "gate_fields", "width_fields", "compliance_fields"))
    for name in model.model_fields:
        value = getattr(p, name)
        if isinstance(value, BaseModel):
            for sub, msg in _param_limit_problems(type(value), value, limits):
                out.append((name, f"{sub}: {msg}"))
            continue
        if declared:
            rule = ("max_abs_voltage" if name in getattr(model, "voltage_fields", ()) else
                    "max_gate_voltage" if name in getattr(model, "gate_fields", ()) else
                    "max_pulse_width" if name in getattr(model, "width_fields", ()) else
                    "max_compliance" if name in getattr(model, "compliance_fields", ()) else None)
            msg = _limit_check(rule, value, limits) if rule else None
        else:
            msg = _limit_problem(name, _param_unit(model, name), value, limits)
        if msg:
            out.append((name, msg))
    return out


def _limit_check(field: str, value: Any, limits: Limits) -> str | None:
    unit = {"max_abs_voltage": "V", "max_gate_voltage": "V", "max_pulse_width": "s", "max_compliance": "A"}[field]
    try:
        a = np.abs(np.asarray(value, dtype=np.float64))
    except (TypeError, ValueError):
        return None
    lim = getattr(limits, field)
    if a.size and np.all(np.isfinite(a)) and float(a.max()) > lim:
        return f"{float(a.max()):g} {unit} exceeds limits.{field} = {lim:g} {unit} (allowed |value| <= {lim:g} {unit})"
    return None


def _check_units(converted: dict[tuple[Any, ...], tuple[str, str]], expected: dict[tuple[Any, ...], str | None],
                 lines: dict[tuple[Any, ...], int]) -> list[Problem]:
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
        problems.append(Problem(path, toml_lines.line_of(lines, path), msg))
    return problems


def load_campaign(text: str, source: str = "campaign.toml") -> LoadedCampaign:
    """Parse and validate a campaign file; raise CampaignError listing every problem with its line."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CampaignError([Problem((), None, f"not valid TOML: {exc}")], source) from None
    lines = toml_lines.key_lines(text)
    data, converted = quantities.convert_quantities(raw)
    problems: list[Problem] = []
    expected_units: dict[tuple[Any, ...], str | None] = {}
    for name, field in Limits.model_fields.items():
        expected_units[("limits", name)] = quantities.unit_of_field(name, field)
    expected_units[("telemetry", "progress_interval")] = "s"

    try:
        campaign = Campaign.model_validate(data)
    except ValidationError as exc:
        problems += _pydantic_problems(exc, data, (), lines)
        campaign = None
    if campaign is None:
        # Still check the steps' routines and parameters so one pass reports as much as possible.
        for i, s in enumerate(data.get("steps", []) if isinstance(data.get("steps"), list) else []):
            if isinstance(s, dict):
                problems += _check_step_params(i, s, data, Limits(), expected_units, lines)[0]
        problems += _check_units(converted, expected_units, lines)
        raise CampaignError(_dedupe(problems), source)

    units: list[Unit] = []
    step_plans = []
    for i, s in enumerate(campaign.steps):
        step_problems, points = _check_step_params(i, s.model_dump(), data, campaign.limits, expected_units, lines)
        problems += step_problems
        cells = _resolve_cells(i, s, campaign, lines, problems)
        step_plans.append((s, points, cells))
    problems += _check_units(converted, expected_units, lines)
    if problems:
        raise CampaignError(_dedupe(problems), source)

    for p in range(campaign.campaign.repeat):
        for i, (s, points, (rows, cols)) in enumerate(step_plans):
            kind = STEPS[s.routine]
            chunk = s.chunk_cells if (kind.chunkable and s.chunk_cells) else max(int(rows.size), 1)
            starts = list(range(0, rows.size, chunk))
            for k, (values, params) in enumerate(points):
                for r in range(s.repeat):
                    for c, start in enumerate(starts):
                        units.append(Unit(index=len(units), step_index=i, step_name=step_name(s, i),
                                          routine=s.routine, pass_index=p, repeat_index=r, sweep_index=k,
                                          sweep_values=values, chunk_index=c, n_chunks=len(starts),
                                          rows=rows[start:start + chunk], cols=cols[start:start + chunk],
                                          params=params))
    return LoadedCampaign(campaign=campaign, text=text, source=source, units=units)


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen, out = set(), []
    for p in problems:
        key = (p.path, p.message)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return sorted(out, key=lambda p: (p.line or 0))


def _resolve_cells(i: int, s: Step, campaign: Campaign, lines: dict[tuple[Any, ...], int],
                   problems: list[Problem]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    path: tuple[Any, ...] = ("steps", i, "cells")
    sel = s.cells
    if isinstance(sel, str):
        if sel == "all":
            sel = selection.AllCells()
        elif sel in campaign.selections:
            path, sel = ("selections", sel), campaign.selections[sel]
        else:
            names = ", ".join(["all", *campaign.selections]) or "all"
            problems.append(Problem(path, toml_lines.line_of(lines, path),
                                    f"no selection named {sel!r} (defined: {names})"))
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
    try:
        return selection.resolve(sel, campaign.backend.rows, campaign.backend.cols)
    except ValueError as exc:
        field, _, msg = str(exc).partition(": ")
        sub = path
        if field in ("rows", "cols", "parity"):
            sub = path + (field,)
        elif field.startswith("cells["):  # "cells[3]": the fourth cell of a list
            sub = path + ("cells", int(field[6:-1]))
        problems.append(Problem(sub, toml_lines.line_of(lines, sub),
                                f"{msg} (array is {campaign.backend.rows} x {campaign.backend.cols})"))
        return np.zeros(0, np.int64), np.zeros(0, np.int64)


def _check_step_params(i: int, step: dict[str, Any], data: dict[str, Any], limits: Limits,
                       expected_units: dict[tuple[Any, ...], str | None],
                       lines: dict[tuple[Any, ...], int]) -> tuple[list[Problem], list[tuple[dict[str, Any], BaseModel]]]:
    """Validate a step's parameters at every sweep point; returns problems and (sweep values, Params)."""
    problems: list[Problem] = []
    base: tuple[Any, ...] = ("steps", i)
    routine = step.get("routine")
    kind: StepKind | None = STEPS.get(routine) if isinstance(routine, str) else None
    if kind is None or not kind.available():
        if isinstance(routine, str):
            known = ", ".join(sorted(n for n, k in STEPS.items() if k.available()))
            problems.append(Problem(base + ("routine",), toml_lines.line_of(lines, base + ("routine",)),
                                    f"unknown routine {routine!r} (available: {known})"))
        return problems, []
    model = kind.params_model
    params = step.get("params") or {}
    sweep = step.get("sweep") or {}
    _register_units(model, params, base + ("params",), expected_units)
    for name, values in sweep.items():
        unit = _param_unit(model, name)
        for j in range(len(values) if isinstance(values, list) else 0):
            expected_units[base + ("sweep", name, j)] = unit
        if name not in model.model_fields:
            problems.append(Problem(base + ("sweep", name), toml_lines.line_of(lines, base + ("sweep", name)),
                                    f"{routine} has no parameter {name!r} to sweep (parameters: "
                                    f"{', '.join(model.model_fields)})"))
    if problems:
        return problems, []
    names = list(sweep)
    points: list[tuple[dict[str, Any], BaseModel]] = []
    combos = list(itertools.product(*(range(len(sweep[n])) for n in names))) if names else [()]
    for combo in combos:
        values = {n: sweep[n][j] for n, j in zip(names, combo)}
        where = {n: base + ("sweep", n, j) for n, j in zip(names, combo)}
        merged = {**params, **values}
        try:
            p = model.model_validate(merged)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                loc = tuple(err["loc"])
                head = loc[0] if loc else None
                path = (where[head] + loc[1:]) if head in where else base + ("params",) + loc
                msg = err["msg"] if err["type"] == "missing" else f"{err['msg']} (got {err.get('input')!r})"
                if err["type"] == "extra_forbidden":
                    msg = f"{routine} has no parameter {head!r} (parameters: {', '.join(model.model_fields)})"
                problems.append(Problem(path, toml_lines.line_of(lines, path), msg))
            continue
        for name, msg in _param_limit_problems(model, p, limits):
            if msg:
                path = where.get(name) or (base + ("params", name) if name in params else base + ("routine",))
                if path == base + ("routine",):
                    msg = f"default {name} of {routine}: {msg}"
                problems.append(Problem(path, toml_lines.line_of(lines, path), msg))
        points.append((values, p))
    return problems, points


def params_json(params: BaseModel) -> str:
    """Parameters as stored with each unit (JSON, SI)."""
    return json.dumps(params.model_dump(mode="json"), sort_keys=True)
