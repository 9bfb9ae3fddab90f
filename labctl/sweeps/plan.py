"""Load a sweep file and plan its tasks: every point of the design, `repeats` times, each with its seed.

Everything a task needs is decided here, on the submitting side, before anything runs: its index, its seed
(from the sweep's seed and the index only), its axis values, and its whole input (the campaign text with
the axis values written in, or the evaluation's validated settings). A sweep file that cannot run is
refused with every problem and its line, as campaign files are; a campaign a point would produce is
validated too, naming the point.
"""
from __future__ import annotations

import itertools
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tomlkit
from pydantic import ValidationError

from labctl.campaigns import quantities, toml_lines
from labctl.campaigns.plan import load_campaign
from labctl.campaigns.problems import CampaignError, Problem, dedupe, problem, pydantic_problems
from labctl.sweeps.schema import Sweep

#: An axis that names a point (shown in tables and plots) without setting anything.
LABEL = "label"
#: Most tasks a sweep may plan (each is a row in the store and a future on the scheduler).
MAX_TASKS = 1_000_000


class SweepError(CampaignError):
    """A sweep file that cannot run; `problems` lists every field that is wrong, with its line."""

    kind = "sweep"


@dataclass(frozen=True)
class TaskSpec:
    """One task: what a worker needs to run it (picklable, self-contained) and where its result goes."""

    index: int
    seed: int
    axes: dict[str, Any]
    kind: str  # campaign | training | puf | mvm
    figures: tuple[str, ...]
    campaign_toml: str | None = None  # campaign tasks: the campaign file with the axis values written in
    campaign_source: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # evaluation tasks: validated settings, SI
    run_id: str | None = None  # campaign tasks: the run id the task's run is stored under


@dataclass(frozen=True)
class LoadedSweep:
    sweep: Sweep
    text: str
    source: str
    tasks: list[TaskSpec]
    campaign_text: str | None = None


def task_seed(sweep_seed: int, index: int) -> int:
    """The seed of task `index`: a function of the sweep's seed and the index only (63 bits)."""
    state = np.random.SeedSequence([sweep_seed, index]).generate_state(1, np.uint64)[0]
    return int(state >> np.uint64(1))


def _seed(sw: Sweep, index: int, repeat: int) -> int:
    return task_seed(sw.sweep.seed, repeat if sw.sweep.seeds == "per_repeat" else index)


def _points(sw: Sweep) -> list[dict[str, Any]]:
    """The design's points, in a fixed order: grid (last axis fastest), list, or seeded random samples."""
    if sw.axes:
        names = list(sw.axes)
        values = [v.values() if not isinstance(v, list) else v for v in sw.axes.values()]
        return [dict(zip(names, combo)) for combo in itertools.product(*values)]
    if sw.points:
        return [dict(p) for p in sw.points]
    if sw.random is not None:
        rng = np.random.default_rng(np.random.SeedSequence([sw.sweep.seed, 0x5EEB]))
        out = []
        for _ in range(sw.random.samples):
            point: dict[str, Any] = {}
            for name, d in sw.random.axes.items():
                if d.uniform is not None:
                    point[name] = float(rng.uniform(*d.uniform))
                elif d.log_uniform is not None:
                    lo, hi = d.log_uniform
                    point[name] = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
                elif d.integers is not None:
                    point[name] = int(rng.integers(d.integers[0], d.integers[1] + 1))
                else:
                    assert d.choice is not None
                    point[name] = d.choice[int(rng.integers(len(d.choice)))]
            out.append(point)
        return out
    return [{}]


def _count(sw: Sweep) -> int:
    if sw.axes:
        return math.prod(len(v) if isinstance(v, list) else len(v.values()) for v in sw.axes.values())
    if sw.points:
        return len(sw.points)
    return sw.random.samples if sw.random is not None else 1


def load_sweep(text: str, source: str = "sweep.toml", base: Path | None = None,
               campaign_text: str | None = None) -> LoadedSweep:
    """Parse and validate a sweep file and plan its tasks; SweepError lists every problem with its line.
    `base`: the folder relative paths (the campaign file) are taken from (default: the sweep file's);
    `campaign_text`: the campaign file's text as stored (a resume plans from what was submitted)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SweepError([Problem((), None, f"not valid TOML: {exc}")], source) from None
    lines = toml_lines.key_lines(text)
    try:
        sw = Sweep.model_validate(raw)
    except ValidationError as exc:
        raise SweepError(dedupe(pydantic_problems(exc, raw, lines)), source) from None
    n_points = _count(sw)
    n_tasks = n_points * sw.sweep.repeats
    if n_tasks > MAX_TASKS:
        raise SweepError([problem(("sweep", "repeats"), lines, f"plans {n_tasks:,} tasks ({n_points:,} points x "
                                  f"{sw.sweep.repeats} repeats); at most {MAX_TASKS:,}")], source)
    base = base if base is not None else Path(source).resolve().parent
    points = _points(sw)
    if sw.sweep.task == "campaign":
        return _plan_campaign(sw, text, source, base, points, lines, campaign_text)
    return _plan_evaluation(sw, text, source, points, lines)


def _axis_line(lines: dict[tuple[Any, ...], int], sw: Sweep, name: str) -> int | None:
    for path in (("axes", name), ("params", name), ("random", "axes", name)):
        line = toml_lines.line_of(lines, path)
        if line:
            return line
    return toml_lines.line_of(lines, ("points",))


def _plan_campaign(sw: Sweep, text: str, source: str, base: Path, points: list[dict[str, Any]],
                   lines: dict[tuple[Any, ...], int], campaign_text: str | None) -> LoadedSweep:
    assert sw.sweep.campaign is not None
    path = (base / sw.sweep.campaign)
    if campaign_text is None:
        if not path.is_file():
            raise SweepError([problem(("sweep", "campaign"), lines, f"no campaign file {str(path)!r}")], source)
        campaign_text = path.read_text()
    try:
        load_campaign(campaign_text, str(path))
    except CampaignError as exc:
        raise SweepError([problem(("sweep", "campaign"), lines, f"the campaign file does not load:\n{exc}")],
                         source) from None
    problems: list[Problem] = []
    texts: list[str] = []
    for k, point in enumerate(points):
        doc = tomlkit.parse(campaign_text)
        bad = False
        for name, value in _settings(sw, point).items():
            try:
                set_key(doc, name, value)
            except KeyError as exc:
                problems.append(Problem(("axes", name), _axis_line(lines, sw, name), str(exc.args[0])))
                bad = True
        out = tomlkit.dumps(doc)
        if not bad:
            try:  # the seed key is set per task: check it resolves and validate the point's campaign once
                set_key(doc, sw.sweep.seed_key, 0)
                load_campaign(tomlkit.dumps(doc), f"{path} at point {k} {point}")
            except KeyError as exc:
                problems.append(problem(("sweep", "seed_key"), lines, str(exc.args[0])))
            except CampaignError as exc:
                problems.append(Problem(("axes",), _axis_line(lines, sw, next(iter(point), "")),
                                        f"point {k} {point} makes a campaign that does not load:\n{exc}"))
        texts.append(out)
        if len(problems) >= 20:
            break
    if problems:
        raise SweepError(dedupe(problems), source)
    tasks = []
    figures = tuple(sw.sweep.figures)
    docs = [tomlkit.parse(t) for t in texts]  # one parse per point: a task only sets its seed in its point's doc
    for i in range(len(points) * sw.sweep.repeats):
        k, r = divmod(i, sw.sweep.repeats)
        seed = _seed(sw, i, r)
        doc = docs[k]
        set_key(doc, sw.sweep.seed_key, seed)
        tasks.append(TaskSpec(index=i, seed=seed, axes={**points[k], "repeat": r}, kind="campaign", figures=figures,
                              campaign_toml=tomlkit.dumps(doc), campaign_source=str(path)))
    return LoadedSweep(sw, text, source, tasks, campaign_text)


def _plan_evaluation(sw: Sweep, text: str, source: str, points: list[dict[str, Any]],
                     lines: dict[tuple[Any, ...], int]) -> LoadedSweep:
    from labctl.sweeps.tasks import EVALUATIONS

    model = EVALUATIONS[sw.sweep.task].settings
    problems: list[Problem] = []
    settings: list[dict[str, Any]] = []
    for k, point in enumerate(points):
        nested: dict[str, Any] = {}
        for name, value in _settings(sw, point).items():
            _set_nested(nested, name.split("."), value)
        nested, _ = quantities.convert_quantities(nested)
        try:
            settings.append(model.model_validate(nested).model_dump(mode="json"))
        except ValidationError as exc:
            given = {**sw.params, **point}
            for err in exc.errors(include_url=False):
                loc = ".".join(str(p) for p in err["loc"])
                # the axis or setting the error is about: the one named, or the first under that table
                name = next((n for n in given if n == loc or n.startswith(loc + ".")), loc)
                msg = "unknown setting (misspelt? see docs/sweeps.md)" if err["type"] == "extra_forbidden" \
                    else f"{err['msg']} (got {err.get('input')!r})"
                problems.append(Problem(("axes", name), _axis_line(lines, sw, name), f"point {k} {point}: {msg}"))
        if len(problems) >= 20:
            break
    known = EVALUATIONS[sw.sweep.task].figures
    problems += [problem(("sweep", "figures"), lines, f"{sw.sweep.task} tasks report no figure {f!r}; they report "
                         + ", ".join(known)) for f in sw.sweep.figures if f not in known]
    if problems:
        raise SweepError(dedupe(problems), source)
    figures = tuple(sw.sweep.figures) or tuple(known)
    tasks = []
    for i in range(len(points) * sw.sweep.repeats):
        k, r = divmod(i, sw.sweep.repeats)
        tasks.append(TaskSpec(index=i, seed=_seed(sw, i, r), axes={**points[k], "repeat": r},
                              kind=sw.sweep.task, figures=figures, settings=settings[k]))
    return LoadedSweep(sw, text, source, tasks)


def _settings(sw: Sweep, point: dict[str, Any]) -> dict[str, Any]:
    """The fixed settings and the point's axis values, but `label` (a name for the point, kept in its axes)."""
    return {k: v for k, v in {**sw.params, **point}.items() if k != LABEL}


def _set_nested(tree: dict[str, Any], parts: list[str], value: Any) -> None:
    for p in parts[:-1]:
        tree = tree.setdefault(p, {})
    tree[parts[-1]] = value


def set_key(doc: Any, name: str, value: Any) -> None:
    """Write `value` at the dotted `name` of a campaign document (tomlkit), creating missing tables.

    "steps.<step>.<...>" addresses the step named <step> (its `name`, else its routine when only one step
    runs that routine, else its index). KeyError naming the axis when the path cannot be written."""
    parts = name.split(".")
    node: Any = doc
    i = 0
    while i < len(parts) - 1:
        part = parts[i]
        if part == "steps" and i == 0:
            if i + 1 >= len(parts) - 1:
                raise KeyError(f"{name}: name a step and a key of it (steps.<step name>.params.<key>)")
            node = _step(doc, parts[i + 1], name)
            i += 2
            continue
        child = node.get(part) if hasattr(node, "get") else None
        if child is None:
            child = tomlkit.table()
            node[part] = child
        elif not hasattr(child, "get"):
            raise KeyError(f"{name}: {'.'.join(parts[:i + 1])} is a value, not a table")
        node = child
        i += 1
    node[parts[-1]] = value.item() if isinstance(value, np.generic) else value


def _step(doc: Any, ref: str, name: str) -> Any:
    steps = doc.get("steps") or []
    named = [s for s in steps if s.get("name") == ref]
    if len(named) == 1:
        return named[0]
    by_routine = [s for s in steps if s.get("routine") == ref and not s.get("name")]
    if len(by_routine) == 1:
        return by_routine[0]
    if ref.isdigit() and int(ref) < len(steps):
        return steps[int(ref)]
    known = ", ".join(str(s.get("name") or s.get("routine")) for s in steps)
    raise KeyError(f"{name}: the campaign has no step {ref!r} (its steps: {known})")
