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

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel

from labctl.campaigns import oneshot
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


def campaign_text(spec: ActionSpec, rows: np.ndarray, cols: np.ndarray, params: BaseModel,
                  backend: Mapping[str, Any], limits: Any) -> str:
    """The one-step campaign file of an action (labctl.campaigns.oneshot.campaign_text): run "tui: <key>",
    `backend` the [backend] table naming the array, `limits` the station's limits."""
    return oneshot.campaign_text(f"tui: {spec.key}", spec.routine, spec.key, rows, cols, params, backend, limits,
                                 metadata={"source": "labctl tui"},
                                 comment="Recorded by `labctl tui`: one manual action as the campaign that repeats it.")
