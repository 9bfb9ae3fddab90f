"""Loading a campaign file: parse, validate everything, and plan the units of work.

`load_campaign(text)` parses the TOML, converts quantity strings ("2.5 us") to SI, validates every table
(labctl.campaigns.schema) and every step's parameters against its routine's Params model (each point of
a sweep separately), resolves cell selections against the array size and holds every voltage, width and
compliance against [limits] (labctl.campaigns.param_limits) -- all before anything runs. All problems are
collected and raised together as one CampaignError (labctl.campaigns.problems) whose lines read
`campaign.toml:14: steps[2].params.v_set: 4.2 V exceeds limits.max_abs_voltage = 3.6 V`.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import json
import tomllib
from pathlib import Path
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ValidationError

from labctl.campaigns import dies as die_plan
from labctl.campaigns import quantities, selection, toml_lines
from labctl.campaigns.param_limits import limit_problems
from labctl.campaigns.problems import CampaignError, Problem, dedupe, problem, pydantic_problems
from labctl.campaigns.schema import Campaign, ContactCheck, Limits, Step, step_name
from labctl.campaigns.unit_checks import check_units, param_unit, register_units
from labctl.core.limits import SafetyLimits
from labctl.routines import registry


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
    die: int | None = None  # index into LoadedCampaign.dies of a wafer campaign's per-die unit

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
    #: A wafer campaign's dies (column, row) in measuring order; None for a one-die campaign, and for a
    #: wafer campaign whose dies are a real prober's map until the runner read it (`with_dies`).
    dies: list[tuple[int, int]] | None = None
    #: A wafer campaign's units planned for one die, from which `units` is expanded.
    templates: list[Unit] | None = None

    @property
    def step_names(self) -> list[str]:
        return [step_name(s, i) for i, s in enumerate(self.campaign.steps)]

    def preflight(self, campaign_dir: Path, units: list[Unit] | None = None) -> list[str]:
        """What the file system says against the plan before anything runs: each step whose parameters
        have a `preflight(campaign_dir)` check (e.g. puf_enroll's helper file that exists already) is asked
        once; the problems name the step. `units`: only these (a resume skips the finished ones)."""
        problems: list[str] = []
        seen: set[tuple[int, int]] = set()
        for u in self.units if units is None else units:
            check = getattr(u.params, "preflight", None)
            if check is None or (u.step_index, u.sweep_index) in seen:
                continue
            seen.add((u.step_index, u.sweep_index))
            try:
                check(campaign_dir)
            except (ValueError, OSError) as exc:
                problems.append(f"step {u.step_index} ({u.step_name}): {exc}")
        return problems

    def with_dies(self, prober_map: list[tuple[int, int]]) -> LoadedCampaign:
        """The plan for the dies of a real prober's map (read once connected); CampaignError naming the
        dies the file lists that the map does not have."""
        assert self.templates is not None
        dies, problems = die_plan.resolve(self.campaign, Path(self.source).parent, {}, prober_map)
        if problems or dies is None:
            raise CampaignError(problems or [Problem(("wafer", "dies"), None, "the prober reported no map")],
                                self.source)
        return dataclasses.replace(self, dies=dies,
                                   units=die_plan.expand(self.templates, self.campaign, len(dies)))


Lines = dict[tuple[Any, ...], int]

NON_FINITE = "must be a finite number"

#: Bounds on the size of a plan, checked arithmetically before anything is built, so that validating
#: any file takes bounded time and memory (docs/campaigns.md, "Bounds").
MAX_SWEEP_POINTS = 10_000  # parameter combinations of one step's [steps.sweep]
MAX_UNITS = 50_000  # units of work of the whole campaign (passes x steps x points x repeats x chunks)
MAX_CELL_CALLS = 1_000_000_000  # cells addressed, summed over every routine call of the campaign


def _non_finite(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], float]]:
    """Every NaN or infinite number in a parsed (and quantity-converted) TOML tree, with its path."""
    if isinstance(data, dict):
        return [hit for k, v in data.items() for hit in _non_finite(v, path + (k,))]
    if isinstance(data, list):
        return [hit for i, v in enumerate(data) for hit in _non_finite(v, path + (i,))]
    if isinstance(data, float) and not math.isfinite(data):
        return [(path, data)]
    return []


def _refused(problems: list[Problem], source: str) -> CampaignError:
    """The error listing `problems`: each once, in file order; a non-finite value named once, by the file
    scan, not again by the model that refused it."""
    scanned = {p.path for p in problems if p.message.startswith(NON_FINITE)}
    kept = [p for p in problems if p.path not in scanned or p.message.startswith(NON_FINITE)]
    return CampaignError(dedupe(kept), source)


def load_campaign(text: str, source: str = "campaign.toml") -> LoadedCampaign:
    """Parse and validate a campaign file; raise CampaignError listing every problem with its line."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CampaignError([Problem((), None, f"not valid TOML: {exc}")], source) from None
    lines = toml_lines.key_lines(text)
    data, converted = quantities.convert_quantities(raw)
    # TOML has nan and inf literals, and "nan V" converts: no limit or range holds such a value, and
    # a check that compares with it is false both ways. Refused wherever it stands.
    problems: list[Problem] = [problem(path, lines, f"{NON_FINITE}, got {value!r}")
                               for path, value in _non_finite(data)]
    expected_units: dict[tuple[Any, ...], str | None] = {}
    for name, field in Limits.model_fields.items():
        expected_units[("limits", name)] = quantities.unit_of_field(name, field)
    expected_units[("telemetry", "progress_interval")] = "s"
    for name, field in ContactCheck.model_fields.items():
        expected_units[("wafer", "contact_check", name)] = quantities.unit_of_field(name, field)
    expected_units[("wafer", "timeout")] = "s"

    try:
        campaign = Campaign.model_validate(data)
    except ValidationError as exc:
        problems += pydantic_problems(exc, data, lines)
        campaign = None
    if campaign is None:
        # Still check the steps' routines and parameters so one pass reports as much as possible.
        for i, s in enumerate(data.get("steps", []) if isinstance(data.get("steps"), list) else []):
            if isinstance(s, dict):
                problems += _check_step_params(i, s, Limits(), expected_units, lines)[0]
        problems += check_units(converted, expected_units, lines)
        raise _refused(problems, source)

    step_plans = []
    for i, s in enumerate(campaign.steps):
        step_problems, points = _check_step_params(i, s.model_dump(), campaign.limits, expected_units, lines)
        problems += step_problems
        cells = _resolve_cells(i, s, campaign, lines, problems)
        step_plans.append((s, points, cells))
    problems += check_units(converted, expected_units, lines)
    if not problems:
        problems += _size_problems(campaign, step_plans, lines)
    dies: list[tuple[int, int]] | None = None
    if campaign.wafer is not None:
        problems += die_plan.plan_problems(campaign, lines)
        if not problems:
            dies, die_problems = die_plan.resolve(campaign, Path(source).parent, lines)
            problems += die_problems
    if problems:
        raise _refused(problems, source)

    units: list[Unit] = []
    for p in range(campaign.campaign.repeat):
        for i, (s, points, (rows, cols)) in enumerate(step_plans):
            chunkable = registry.get(s.routine).chunkable
            chunk = s.chunk_cells if (chunkable and s.chunk_cells) else max(int(rows.size), 1)
            starts = list(range(0, rows.size, chunk))
            for k, (values, params) in enumerate(points):
                for r in range(s.repeat):
                    for c, start in enumerate(starts):
                        units.append(Unit(index=len(units), step_index=i, step_name=step_name(s, i),
                                          routine=s.routine, pass_index=p, repeat_index=r, sweep_index=k,
                                          sweep_values=values, chunk_index=c, n_chunks=len(starts),
                                          rows=rows[start:start + chunk], cols=cols[start:start + chunk],
                                          params=params))
    if campaign.wafer is None:
        return LoadedCampaign(campaign=campaign, text=text, source=source, units=units)
    templates = units
    units = die_plan.expand(templates, campaign, len(dies)) if dies is not None else []
    if len(units) > MAX_UNITS:
        raise CampaignError([problem(("wafer", "dies"), lines, f"{len(dies or []):,} dies x {len(templates):,} units "
                                                               f"each = {len(units):,} units of work; at most "
                                                               f"{MAX_UNITS:,} are accepted")], source)
    return LoadedCampaign(campaign=campaign, text=text, source=source, units=units, dies=dies, templates=templates)


def _size_problems(campaign: Campaign, step_plans: list[Any], lines: Lines) -> list[Problem]:
    """Refuse a plan beyond MAX_UNITS units or MAX_CELL_CALLS cell addresses, computed, not built."""
    passes = campaign.campaign.repeat
    n_units = n_cells = 0
    for s, points, (rows, _) in step_plans:
        chunkable = registry.get(s.routine).chunkable
        chunk = s.chunk_cells if (chunkable and s.chunk_cells) else max(int(rows.size), 1)
        n_units += len(points) * s.repeat * max(1, -(-int(rows.size) // chunk))
        n_cells += len(points) * s.repeat * int(rows.size)
    n_units *= passes
    n_cells *= passes
    problems = []
    if n_units > MAX_UNITS:
        problems.append(problem(("campaign", "repeat") if passes > 1 else ("steps",), lines,
                                f"the plan has {n_units:,} units of work (passes x steps x sweep points x "
                                f"repeats x chunks); at most {MAX_UNITS:,} are accepted"))
    if n_cells > MAX_CELL_CALLS:
        problems.append(problem(("campaign", "repeat") if passes > 1 else ("steps",), lines,
                                f"the plan addresses {n_cells:,} cells in all (cells x sweep points x repeats "
                                f"x passes); at most {MAX_CELL_CALLS:,} are accepted"))
    return problems


def _resolve_cells(i: int, s: Step, campaign: Campaign, lines: Lines,
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
            problems.append(problem(path, lines, f"no selection named {sel!r} (defined: {names})"))
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
    try:
        return selection.resolve(sel, campaign.backend.rows, campaign.backend.cols)
    except ValueError as exc:
        field, _, msg = str(exc).partition(": ")
        sub = path
        if field.partition("[")[0] in ("rows", "cols", "parity"):  # "rows" or "rows[2]"
            sub = path + (field.partition("[")[0],)
        elif field.startswith("cells["):  # "cells[3]": the fourth cell of a list
            sub = path + ("cells", int(field[6:-1]))
        problems.append(problem(sub, lines, f"{msg} (array is {campaign.backend.rows} x {campaign.backend.cols})"))
        return np.zeros(0, np.int64), np.zeros(0, np.int64)


def _check_step_params(i: int, step: dict[str, Any], limits: SafetyLimits,
                       expected_units: dict[tuple[Any, ...], str | None],
                       lines: Lines) -> tuple[list[Problem], list[tuple[dict[str, Any], BaseModel]]]:
    """Validate a step's parameters at every sweep point; returns problems and (sweep values, Params)."""
    problems: list[Problem] = []
    base: tuple[Any, ...] = ("steps", i)
    routine = step.get("routine")
    if not isinstance(routine, str):
        return problems, []
    if routine not in registry.routines():
        problems.append(problem(base + ("routine",), lines,
                                f"unknown routine {routine!r} (available: {', '.join(registry.routines())})"))
        return problems, []
    try:
        model = registry.get(routine).params
    except registry.RoutineLoadError as exc:  # a broken plugin: named, and the rest of the file still checked
        problems.append(problem(base + ("routine",), lines, str(exc)))
        return problems, []
    params = step.get("params") or {}
    sweep = step.get("sweep") or {}
    register_units(model, params, base + ("params",), expected_units)
    for name, values in sweep.items():
        unit = param_unit(model, name)
        for j in range(len(values) if isinstance(values, list) else 0):
            expected_units[base + ("sweep", name, j)] = unit
        if name not in model.model_fields:
            problems.append(problem(base + ("sweep", name), lines,
                                    f"{routine} has no parameter {name!r} to sweep (parameters: "
                                    f"{', '.join(model.model_fields)})"))
    if problems:
        return problems, []
    names = list(sweep)
    points: list[tuple[dict[str, Any], BaseModel]] = []
    n_points = math.prod(len(sweep[n]) if isinstance(sweep[n], list) else 1 for n in names)
    if n_points > MAX_SWEEP_POINTS:
        sizes = " x ".join(f"{len(sweep[n])} {n}" for n in names)
        problems.append(problem(base + ("sweep",), lines, f"{sizes} = {n_points:,} parameter combinations; "
                                                          f"at most {MAX_SWEEP_POINTS:,} per step are accepted"))
        return problems, []
    combos = itertools.product(*(range(len(sweep[n])) for n in names)) if names else iter([()])
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
                problems.append(problem(path, lines, msg))
            continue
        for name, msg in limit_problems(p, limits):
            path = where.get(name) or (base + ("params", name) if name in params else base + ("routine",))
            if path == base + ("routine",):
                msg = f"default {name} of {routine}: {msg}"
            problems.append(problem(path, lines, msg))
        points.append((values, p))
    return problems, points


def params_json(params: BaseModel) -> str:
    """Parameters as stored with each unit (JSON, SI)."""
    return json.dumps(params.model_dump(mode="json"), sort_keys=True)
