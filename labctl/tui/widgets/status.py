"""StatusBar: backend, identities, limits, connection state (reconnects shown), what runs now;
EmergencyStopButton: the always-visible stop."""
from __future__ import annotations

from rich.text import Text
from textual.widgets import Button, Static

from labctl.tui.fields import format_quantity
from labctl.tui.session import CONNECTED, SessionState

_STATE_STYLE = {"connected": "bold green", "connecting": "bold yellow", "reconnecting": "bold yellow reverse",
                "failed": "bold red reverse", "closed": "dim"}


class StatusBar(Static):
    """Two lines: the link (backend, identity, state) and the limits plus the current activity."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__("", **kwargs)  # type: ignore[arg-type]
        self.session = SessionState("connecting")
        self.activity = "idle"
        self.station: dict[str, object] | None = None  # a wafer campaign's prober, die and chuck temperature

    def set_session(self, state: SessionState) -> None:
        self.session = state
        self._redraw()

    def set_activity(self, text: str) -> None:
        self.activity = text
        self._redraw()

    def set_station(self, station: dict[str, object] | None) -> None:
        """Show (or, with None, hide) the probe station: {"prober", "die": [column, row], "temperature_K"}."""
        self.station = station
        self._redraw()

    def _redraw(self) -> None:
        s = self.session
        line1 = Text()
        if s.info is not None:
            line1.append(f"{s.info.kind} {s.info.rows}×{s.info.cols}", "bold")
            ident = "; ".join(f"{k}: {v}" for k, v in s.info.identity.items())
            line1.append(f"  {ident}  ")
        state = s.state
        if state == "reconnecting":
            state = f"reconnecting (attempt {s.attempt})"
        line1.append(f" {state} ", _STATE_STYLE.get(s.state, ""))
        if s.reconnects:
            line1.append(f"  reconnected {s.reconnects}×", "yellow")
        if s.message and s.state != CONNECTED:
            line1.append(f"  {s.message}", "red")
        if self.station:
            line1.append(f"  prober {self.station.get('prober', '?')}", "bold magenta")
            die = self.station.get("die")
            if isinstance(die, (list, tuple)) and len(die) == 2:
                line1.append(f" · die ({die[0]}, {die[1]})", "magenta")
            kelvin = self.station.get("temperature_K")
            if isinstance(kelvin, (int, float)):
                line1.append(f" · chuck {kelvin - 273.15:.1f} °C", "magenta")
        line2 = Text()
        if s.limits is not None:
            lim = s.limits
            line2.append(f"limits |V| ≤ {lim.max_abs_voltage:g} V · VG ≤ {lim.max_gate_voltage:g} V · width "
                         f"{format_quantity(lim.min_pulse_width, 's')}–"
                         f"{format_quantity(lim.max_pulse_width, 's')} · "
                         f"I ≤ {format_quantity(lim.max_compliance, 'A')}", "cyan")
        line2.append(f"   {self.activity}")
        self.update(Text("\n").join([line1, line2]))


class EmergencyStopButton(Button):
    """The emergency stop, on screen at all times (ctrl+s or F12 from anywhere)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__("EMERGENCY STOP  ^S", variant="error", **kwargs)  # type: ignore[arg-type]
        self.can_focus = False
