"""Problems of a campaign file, each with its line: `campaign.toml:14: steps[2].params.v_set: message`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from labctl.campaigns import toml_lines


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

    kind = "campaign"

    def __init__(self, problems: list[Problem], source: str) -> None:
        self.problems = problems
        self.source = source
        super().__init__(f"{source}: {len(problems)} problem(s) in the {self.kind} file\n"
                         + "\n".join("  " + p.format(source) for p in problems))


def format_path(path: tuple[Any, ...]) -> str:
    """("steps", 2, "params", "v_set") -> "steps[2].params.v_set"."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def problem(path: tuple[Any, ...], lines: dict[tuple[Any, ...], int], message: str) -> Problem:
    """A problem at `path`, on the line the file gives that key (or its table)."""
    return Problem(path, toml_lines.line_of(lines, path), message)


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


def pydantic_problems(exc: ValidationError, data: Any, lines: dict[tuple[Any, ...], int]) -> list[Problem]:
    """One Problem per error of validating the whole file `data`."""
    problems = []
    for err in exc.errors(include_url=False):
        path = _strip_loc(tuple(err["loc"]), data)
        msg = err["msg"]
        if err["type"] not in ("missing", "extra_forbidden") and "input" in err:
            msg += f" (got {err['input']!r})"
        if err["type"] == "extra_forbidden":
            msg = "unknown field (misspelt? see docs/campaigns.md)"
        problems.append(problem(path, lines, msg))
    return problems


def dedupe(problems: list[Problem]) -> list[Problem]:
    """Each (path, message) once, in file order."""
    seen, out = set(), []
    for p in problems:
        key = (p.path, p.message)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return sorted(out, key=lambda p: (p.line or 0))
