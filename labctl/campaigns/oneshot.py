"""One-step campaigns: one routine call written as the campaign file that repeats it, and run by the
Runner on a backend the caller already holds open (the TUI's actions, the reference scripts).

So everything that measures goes through the one run engine: stored as it is taken, with progress,
pause/abort and outputs off at the end, and `labctl run` on the stored campaign text does it again.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel

from labctl.campaigns.schema import Limits
from labctl.core.limits import SafetyLimits

#: The [limits] keys and the campaign file's bound on each (labctl.campaigns.schema.Limits).
LIMIT_BOUNDS: dict[str, float] = {
    name: next(m.le for m in Limits.model_fields[name].metadata if getattr(m, "le", None) is not None)
    for name in ("max_abs_voltage", "max_gate_voltage", "max_pulse_width", "max_compliance")}


def limits_table(limits: SafetyLimits) -> dict[str, float]:
    """The campaign [limits] equal to a backend's limits, so that the campaign refuses exactly what the
    backend refuses (limits beyond the file's bounds are written as the bound), SI."""
    return {k: float(min(getattr(limits, k), bound)) for k, bound in LIMIT_BOUNDS.items()}


def toml_value(v: Any) -> str:
    """A TOML literal for a JSON-like value (floats written so that they read back exactly)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items() if x is not None) + " }"
    raise TypeError(f"no TOML literal for {type(v).__name__}")


def cells_value(rows: Any, cols: Any) -> str:
    """The cells as a selection: "all" (None, None), a region when they are one (a row-major
    rectangle), else the list of cells in their order."""
    if rows is None and cols is None:
        return '"all"'
    r, c = np.atleast_1d(np.asarray(rows, dtype=np.int64)), np.atleast_1d(np.asarray(cols, dtype=np.int64))
    r0, r1, c0, c1 = int(r.min()), int(r.max()) + 1, int(c.min()), int(c.max()) + 1
    rr, cc = np.meshgrid(np.arange(r0, r1), np.arange(c0, c1), indexing="ij")
    if np.array_equal(rr.ravel(), r) and np.array_equal(cc.ravel(), c):
        return f'{{ kind = "region", rows = [{r0}, {r1}], cols = [{c0}, {c1}] }}'
    return '{ kind = "list", cells = [' + ", ".join(f"[{int(a)}, {int(b)}]" for a, b in zip(r, c)) + "] }"


def campaign_text(name: str, routine: str, step: str, rows: Any, cols: Any, params: BaseModel,
                  backend: Mapping[str, Any], limits: Any, metadata: Mapping[str, str] | None = None,
                  comment: str = "") -> str:
    """The one-step campaign file `name` running `routine` (registered name) as step `step` on the cells
    (None, None: all) with `params` (only what differs from the routine's defaults is written).
    `backend` is the [backend] table naming the array (kind, rows, cols; seed and preset of an emulator,
    a chip's address or a station file), `limits` the backend's limits, written as [limits]."""
    lines = [f"# {comment}"] if comment else []
    lines += ["[campaign]", f"name = {toml_value(name)}", ""]
    if metadata:
        lines += ["[metadata]"] + [f"{k} = {toml_value(v)}" for k, v in metadata.items()] + [""]
    lines += ["[backend]"] + [f"{k} = {toml_value(v)}" for k, v in backend.items() if v is not None]
    lines += ["", "[limits]"] + [f"{k} = {toml_value(v)}" for k, v in limits_table(limits).items()]
    lines += ["", "[[steps]]", f"routine = {toml_value(routine)}", f"name = {toml_value(step)}",
              f"cells = {cells_value(rows, cols)}", "", "[steps.params]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in params.model_dump(mode="json", exclude_defaults=True).items()
              if v is not None]
    return "\n".join(lines) + "\n"


def load_one_step(text: str, source: str, params: BaseModel) -> Any:
    """load_campaign of a one-step campaign text (CampaignError if the campaign refuses it, e.g. beyond
    its [limits]), checked to plan exactly one unit with exactly `params`: the stored text must repeat
    the call it records (ValueError otherwise)."""
    from labctl.campaigns.plan import load_campaign, params_json

    loaded = load_campaign(text, source)
    if len(loaded.units) != 1 or params_json(loaded.units[0].params) != params_json(params):
        raise ValueError(f"{source}: the campaign text does not repeat the call it records "
                         f"(planned {len(loaded.units)} unit(s); parameters {params_json(params)})")
    return loaded


@dataclass(frozen=True)
class OneStep:
    """How a one-step campaign ended: the RunResult, the routine's result (None unless it finished) and
    the exception that failed it (None unless status is "failed" by a routine or backend error)."""

    run: Any  # labctl.campaigns.runner.RunResult
    result: Any
    failure: BaseException | None


async def run_one_step(store: Any, loaded: Any, backend: Any, *, control: Any = None, view: Any = None,
                       on_batch: Callable[[Any], None] | None = None) -> OneStep:
    """Run a loaded one-step campaign (labctl.campaigns.plan.load_campaign of `campaign_text`) on the
    open `backend` into `store`."""
    from labctl.campaigns.runner import Runner, new_run_id

    runner = Runner(store, loaded, new_run_id(), resuming=False, control=control, view=view, backend=backend,
                    save_states=False, on_batch=on_batch, keep_results=True)
    run = await runner.run()
    return OneStep(run, (runner.results or [None])[-1], runner.failure)
