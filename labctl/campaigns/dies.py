"""The dies of a wafer campaign ([wafer], docs/campaigns.md "Wafers"): resolve the die list (inline, a
file, or the prober's own map), check it (dies outside the wafer, duplicates: each named), order it,
and expand the planned units of work so that the per-die steps run once on every die.

A die is a (column, row) pair of the prober's grid. Its place in the ordered list is its die index, the
number the store's `dies` table and `Unit.die` use.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from labctl.campaigns.problems import Problem, problem
from labctl.campaigns.schema import Campaign, WaferSpec, step_name

Die = tuple[int, int]
Lines = dict[tuple[Any, ...], int]

#: Most dies a campaign may name (a 300 mm wafer of 1 mm dies has ~70 000; the plan bound keeps it sane).
MAX_DIES = 10_000


def emulated_map(spec: WaferSpec, campaign: Campaign) -> list[Die]:
    """The emulated prober's die map in its route order (the emulator's serpentine)."""
    from emulator.wafer import Wafer  # the emulated station only; a real prober reports its own map

    e = spec.emulated
    wafer = Wafer(e.columns, e.rows, campaign.backend.rows, campaign.backend.cols, seed=campaign.backend.seed,
                  round_wafer=e.round)
    return wafer.route()


def read_die_file(path: Path) -> list[Die]:
    """Dies from a text file: one `column, row` (or `column row`) per line; blank lines and # comments
    skipped. ValueError naming the file and line otherwise."""
    dies: list[Die] = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        parts = text.replace(",", " ").split()
        try:
            if len(parts) != 2:
                raise ValueError
            dies.append((int(parts[0]), int(parts[1])))
        except ValueError:
            raise ValueError(f"{path}:{n}: expected 'column, row' (two integers), got {line.strip()!r}") from None
    return dies


def ordered(dies: list[Die], order: str) -> list[Die]:
    """`dies` in the campaign's order: "map" as given, "rows" row by row, "columns" column by column,
    "serpentine" row by row in alternating direction."""
    if order == "rows":
        return sorted(dies, key=lambda d: (d[1], d[0]))
    if order == "columns":
        return sorted(dies)
    if order == "serpentine":
        return sorted(dies, key=lambda d: (d[1], d[0] if d[1] % 2 == 0 else -d[0]))
    return list(dies)


def check_dies(dies: list[Die], wafer_map: list[Die] | None, where: tuple[Any, ...], lines: Lines,
               source: str) -> list[Problem]:
    """Problems of a die list: duplicates, and (if the wafer's map is known) dies not on it."""
    problems: list[Problem] = []
    seen: dict[Die, int] = {}
    known = set(wafer_map) if wafer_map is not None else None
    for i, die in enumerate(dies):
        path = where + (i,) if where[-1] == "dies" else where
        if die in seen:
            problems.append(problem(path, lines, f"die ({die[0]}, {die[1]}) is listed twice ({source} entries "
                                                 f"{seen[die]} and {i})"))
        seen.setdefault(die, i)
        if known is not None and die not in known:
            problems.append(problem(path, lines, f"die ({die[0]}, {die[1]}) is not on the wafer (its map has "
                                                 f"{len(known)} dies)"))
    if len(dies) > MAX_DIES:
        problems.append(problem(where, lines, f"{len(dies):,} dies; at most {MAX_DIES:,} are accepted"))
    if not dies:
        problems.append(problem(where, lines, "no dies to measure"))
    return problems


def resolve(campaign: Campaign, campaign_dir: Path, lines: Lines,
            prober_map: list[Die] | None = None) -> tuple[list[Die] | None, list[Problem]]:
    """The ordered die list of a wafer campaign and its problems. Returns None (and no problem) when the
    list is the map of a real prober not yet connected (`prober_map` None): the runner resolves it then."""
    spec = campaign.wafer
    assert spec is not None
    problems: list[Problem] = []
    wafer_map = emulated_map(spec, campaign) if spec.is_emulated else prober_map
    if spec.die_file is not None and spec.dies != "prober":
        return [], [problem(("wafer", "die_file"), lines, "give either dies (a list) or die_file, not both")]
    if spec.die_file is not None:
        path = (campaign_dir / spec.die_file).expanduser()
        try:
            dies = read_die_file(path)
        except OSError as exc:
            return [], [problem(("wafer", "die_file"), lines, f"cannot read {path}: {exc.strerror or exc}")]
        except ValueError as exc:
            return [], [problem(("wafer", "die_file"), lines, str(exc))]
        problems += check_dies(dies, wafer_map, ("wafer", "die_file"), lines, str(path))
    elif spec.dies == "prober":
        if wafer_map is None:
            return None, []
        dies = list(wafer_map)
    else:
        dies = [(int(c), int(r)) for c, r in spec.dies]
        problems += check_dies(dies, wafer_map, ("wafer", "dies"), lines, "wafer.dies")
    return ordered(dies, spec.order), problems


def plan_problems(campaign: Campaign, lines: Lines) -> list[Problem]:
    """Problems of the [wafer] table beyond its schema: backend, step names, emulated settings."""
    spec = campaign.wafer
    assert spec is not None
    problems: list[Problem] = []
    names = [step_name(s, i) for i, s in enumerate(campaign.steps)]
    if spec.is_emulated and campaign.backend.kind != "emulator":
        problems.append(problem(("wafer", "address"), lines, f"an emulated prober measures the emulated wafer: "
                                                             f"[backend] kind must be \"emulator\", not "
                                                             f"{campaign.backend.kind!r}"))
    if spec.steps is not None:
        for i, name in enumerate(spec.steps):
            if name not in names:
                problems.append(problem(("wafer", "steps", i), lines,
                                        f"no step named {name!r} (steps: {', '.join(names)})"))
        listed = [i for i, n in enumerate(names) if n in spec.steps]
        if not listed:
            problems.append(problem(("wafer", "steps"), lines, "names none of the campaign's steps"))
        else:
            for i in range(listed[0], listed[-1] + 1):
                if i not in listed:
                    problems.append(problem(("steps", i), lines,
                                            f"step {names[i]!r} lies between steps run on each die but is not "
                                            "listed in wafer.steps; list it or move it before or after them"))
    if spec.is_emulated:
        from emulator.wafer import WaferVariation

        fields = {f.name for f in dataclasses.fields(WaferVariation)}
        for key, value in spec.emulated.variation.items():
            if key not in fields:
                problems.append(problem(("wafer", "emulated", "variation", key), lines,
                                        f"unknown variation parameter (parameters: {', '.join(sorted(fields))})"))
        if not problems:
            try:
                WaferVariation(**spec.emulated.variation)
            except ValueError as exc:
                problems.append(problem(("wafer", "emulated", "variation"), lines, str(exc)))
        wafer_map = set(emulated_map(spec, campaign))
        for i, (c, r, _n) in enumerate(spec.emulated.contact_faults):
            if (c, r) not in wafer_map:
                problems.append(problem(("wafer", "emulated", "contact_faults", i), lines,
                                        f"die ({c}, {r}) is not on the emulated wafer"))
    return problems


def per_die_steps(campaign: Campaign) -> set[int]:
    """Indexes of the steps run on every die."""
    spec = campaign.wafer
    assert spec is not None
    names = [step_name(s, i) for i, s in enumerate(campaign.steps)]
    return {i for i, n in enumerate(names) if spec.steps is None or n in spec.steps}


def expand(templates: list[Any], campaign: Campaign, n_dies: int) -> list[Any]:
    """The units of a wafer campaign: the once-only units before the per-die steps, then the per-die
    units once for each die (in die order), then the rest; re-indexed. `templates` are the units planned
    for one die (plan.Unit)."""
    per_die = per_die_steps(campaign)
    first = min(per_die)
    before = [u for u in templates if u.step_index not in per_die and u.step_index < first]
    after = [u for u in templates if u.step_index not in per_die and u.step_index > first]
    each = [u for u in templates if u.step_index in per_die]
    units = before + [dataclasses.replace(u, die=k) for k in range(n_dies) for u in each] + after
    return [dataclasses.replace(u, index=i) for i, u in enumerate(units)]
