"""What the TUI can do to selected cells: one ActionSpec per action, each a registered routine, and the
one-step campaign that runs it.

Every action is a campaign step (labctl.routines.registry): forming, closed-loop program-and-verify
(SET_TARGET_G on native backends, the host loop elsewhere), I–V cycling, and the probe station's quick
looks `read`, `pulses` (identical pulses, a read after each) and `retention` (reads at times after now).
The TUI writes the action as the campaign file that repeats it (`campaign_text`) and runs that campaign
through the campaign Runner on its own backend (labctl.tui.app), so it is stored, interrupted and
switched off like any campaign, and `labctl run` on its stored campaign text does it again.

Parameters are validated before anything is sent: by the params model and `check_limits` against the
station's limits in the form (labctl.tui.fields), then by the campaign's [limits] (the station's limits
again) when the campaign text is loaded; the backends check again on every call.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel

from labctl.routines import registry


@dataclass(frozen=True)
class ActionSpec:
    """One action of the TUI: the routine (its registered name) it runs and the fields its form shows."""

    key: str  # internal name, also the step name in the store
    title: str
    binding: str  # the key that opens its form
    routine: str  # the name campaign files use (labctl.routines entry point)
    fields: tuple[str, ...]  # shown in the form, in order; the rest keep their defaults
    initial: dict[str, Any] = field(default_factory=dict)  # values for fields without a default
    plot: str = ""  # live plot: "iv", "pulse", "retention" or ""
    description: str = ""

    @property
    def params_model(self) -> type[BaseModel]:
        """The routine's params model."""
        return registry.get(self.routine).params


def action_specs() -> dict[str, ActionSpec]:
    """Every action, keyed by its `key`."""
    specs = [
        ActionSpec("read", "Read", "r", "read", ("v_read", "vg_read"), description="one read of the selection"),
        ActionSpec("form", "Form", "f", "forming", ("v_stop", "step", "vg", "compliance"), plot="iv",
                   description="forming sweep with compliance (REF §Forming)"),
        ActionSpec("program", "Program to target G", "p", "program",
                   ("targets", "tolerance", "max_iterations", "loop", "reset_first"), initial={"targets": 50e-6},
                   plot="pulse", description="closed-loop program-and-verify (SET_TARGET_G where native)"),
        ActionSpec("pulse", "Pulses", "u", "pulses", ("v", "vg", "width", "count", "v_read"), plot="pulse",
                   description="single or repeated identical pulses, a read after each"),
        ActionSpec("iv", "I–V sweep", "i", "iv_cycles", ("cycles", "v_set", "vg_set", "v_reset", "vg_reset", "step"),
                   plot="iv", description="quasi-static set/reset cycles with HRS/LRS at 0.2 V"),
        ActionSpec("retention", "Retention follow-up", "e", "retention", ("times", "v_read", "vg_read"),
                   plot="retention", description="reads at times after now (virtual clock on the emulator)"),
    ]
    return {s.key: s for s in specs}


# ----------------------------------------------------------------------------- the one-step campaign

#: The campaign file's bounds on [limits] (labctl.campaigns.schema.Limits); station limits beyond them
#: are written as the bound.
_LIMIT_BOUNDS = {"max_abs_voltage": 10.0, "max_gate_voltage": 5.0, "max_pulse_width": 10.0, "max_compliance": 0.1}


def limits_table(limits: Any) -> dict[str, float]:
    """The campaign [limits] equal to a backend's limits (so the campaign refuses exactly what the
    station refuses), SI."""
    if hasattr(limits, "max_abs_voltage"):  # labctl.core.limits.SafetyLimits
        values = {k: getattr(limits, k) for k in _LIMIT_BOUNDS}
    else:  # labctl.backends.base.BackendLimits
        values = {"max_abs_voltage": limits.v_max, "max_gate_voltage": limits.vg_max,
                  "max_pulse_width": limits.width_max, "max_compliance": limits.compliance_max}
    return {k: float(min(v, _LIMIT_BOUNDS[k])) for k, v in values.items()}


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


def _cells(rows: np.ndarray, cols: np.ndarray) -> str:
    """The selection as a region when it is one (row-major rectangle), else the list of cells."""
    r0, r1, c0, c1 = int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1
    rr, cc = np.meshgrid(np.arange(r0, r1), np.arange(c0, c1), indexing="ij")
    if np.array_equal(rr.ravel(), rows) and np.array_equal(cc.ravel(), cols):
        return f'{{ kind = "region", rows = [{r0}, {r1}], cols = [{c0}, {c1}] }}'
    return '{ kind = "list", cells = [' + ", ".join(f"[{int(r)}, {int(c)}]" for r, c in zip(rows, cols)) + "] }"


def campaign_text(spec: ActionSpec, rows: np.ndarray, cols: np.ndarray, params: BaseModel,
                  backend: Mapping[str, Any], limits: Any) -> str:
    """The one-step campaign file of an action: `backend` is the [backend] table (kind, rows, cols and
    what else names the array: seed and preset of an emulator, a chip's address, a station file),
    `limits` the station's limits, written as [limits]."""
    lines = ["# Recorded by `labctl tui`: one manual action as the campaign that repeats it.",
             "[campaign]", f"name = {toml_value('tui: ' + spec.key)}", "",
             "[metadata]", 'source = "labctl tui"', "", "[backend]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in backend.items() if v is not None]
    lines += ["", "[limits]"] + [f"{k} = {toml_value(v)}" for k, v in limits_table(limits).items()]
    lines += ["", "[[steps]]", f"routine = {toml_value(spec.routine)}", f"name = {toml_value(spec.key)}",
              f"cells = {_cells(np.asarray(rows), np.asarray(cols))}", "", "[steps.params]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in params.model_dump(mode="json", exclude_defaults=True).items()
              if v is not None]
    return "\n".join(lines) + "\n"
