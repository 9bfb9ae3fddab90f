"""ActionForm: the validated form of one action, showing the station limits next to every field.

Nothing is sent unless the form validates: the params model checks its own ranges and
`check_limits` holds every voltage, gate voltage, width and compliance to the backend's limits. A
refused value stays in the form with the reason under it.
"""
from __future__ import annotations

from pydantic import BaseModel
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from labctl.core.limits import SafetyLimits
from labctl.tui.actions import ActionSpec
from labctl.tui.fields import build_params, default_text, field_limit, field_unit


class ActionForm(ModalScreen[BaseModel | None]):
    """Returns the validated params model, or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, spec: ActionSpec, limits: SafetyLimits | None, n_cells: int, where: str) -> None:
        super().__init__()
        self.spec = spec
        self.limits = limits
        self.n_cells = n_cells
        self.where = where

    def compose(self) -> ComposeResult:
        spec, model = self.spec, self.spec.params_model
        with Vertical(id="form-box"):
            yield Label(f"[b]{spec.title}[/b] — {self.n_cells} cell(s) {self.where}", id="form-title")
            yield Static(spec.description, id="form-description")
            if self.limits is not None:
                lim = self.limits
                yield Static(f"station limits: |V| ≤ {lim.max_abs_voltage:g} V · VG 0–{lim.max_gate_voltage:g} V · "
                             f"width {lim.min_pulse_width:g}–{lim.max_pulse_width:g} s · "
                             f"compliance ≤ {lim.max_compliance:g} A",
                             id="form-limits")
            with Grid(id="form-grid"):
                for name in spec.fields:
                    unit = field_unit(model, name)
                    yield Label(f"{name}" + (f" ({unit})" if unit else ""), classes="form-label")
                    yield Input(default_text(model, name, spec.initial), id=f"field-{name}",
                                classes="form-input")
                    yield Label(field_limit(model, name, self.limits), classes="form-limit")
            yield Static("", id="form-errors")
            with Horizontal(id="form-buttons"):
                yield Button("Run  ⏎", id="form-run", variant="primary")
                yield Button("Cancel  Esc", id="form-cancel")

    def on_mount(self) -> None:
        first = self.query(Input).first()
        first.focus()

    def texts(self) -> dict[str, str]:
        return {name: self.query_one(f"#field-{name}", Input).value for name in self.spec.fields}

    def submit(self) -> None:
        params, errors = build_params(self.spec.params_model, self.texts(), self.limits, self.spec.initial)
        for inp in self.query(Input):
            inp.set_class(False, "-refused")
        if errors:
            for name in errors:
                if name:
                    self.query_one(f"#field-{name}", Input).set_class(True, "-refused")
            self.query_one("#form-errors", Static).update(
                "[b]refused:[/b] " + "\n".join(msg for msg in errors.values()))
            return
        self.dismiss(params)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "form-run":
            self.submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
