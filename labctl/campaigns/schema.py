"""The campaign file's schema: one pydantic model per table (docs/campaigns.md). SI units throughout."""
from __future__ import annotations

import socket
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from labctl.campaigns import selection
from labctl.core.limits import SafetyLimits


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

    kind "emulator": the embedded emulator (rows, cols, seed, preset; `device` changes preset parameters).
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
    device: dict[str, float] = Field(default_factory=dict, description=(
        "emulator only: preset parameters changed for a study (emulator.presets.Preset field -> value, SI)"))

    @model_validator(mode="after")
    def _needs(self) -> BackendSpec:
        if self.device:
            if self.kind != "emulator":
                raise ValueError("device: preset parameters can be changed on the emulator only, not on a"
                                 f" {self.kind} backend")
            check_device(self.preset, self.device)
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


def check_device(preset: str, device: dict[str, float]) -> None:
    """Refuse changed preset parameters the model cannot take: unknown names, non-finite values, a sign other than the
    preset's own (a spread, a time or a conductance below zero; a negative slope made positive)."""
    import math

    from emulator.presets import Preset, get_preset  # the emulator's parameter names are the vocabulary here

    known = {f for f in Preset.__dataclass_fields__ if f != "name"}
    unknown = sorted(set(device) - known)
    if unknown:
        raise ValueError(f"device: unknown preset parameter(s) {', '.join(unknown)}; known: " + ", ".join(sorted(known)))
    base = get_preset(preset)
    for name, value in sorted(device.items()):
        ref = float(getattr(base, name))
        if not math.isfinite(value):
            raise ValueError(f"device.{name}: must be a finite number, got {value!r}")
        if (ref > 0 > value) or (ref < 0 < value):
            raise ValueError(f"device.{name}: {value!r} has the other sign than the preset's {ref!r}")


class Limits(SafetyLimits):
    """The campaign's [limits]: the one safety-limits type (labctl.core.limits.SafetyLimits), with the
    sanity bounds a campaign file may not exceed. Checked on every step's parameters before the run and
    on every backend call during it (SI units)."""

    max_abs_voltage: float = Field(3.6, gt=0, le=10.0, json_schema_extra={"unit": "V"})
    max_gate_voltage: float = Field(3.3, gt=0, le=5.0, json_schema_extra={"unit": "V"})
    max_pulse_width: float = Field(1e-3, gt=0, le=10.0, json_schema_extra={"unit": "s"})
    max_compliance: float = Field(1e-3, gt=0, le=0.1, json_schema_extra={"unit": "A"})
    # A read must not disturb the cell (REF reads at 0.2 V): reads are held to 1 V unless the file says more.
    max_read_voltage: float = Field(1.0, gt=0, le=10.0, json_schema_extra={"unit": "V"})
    # The chuck (temperature steps): the controller's own limits, tightened by these when given.
    min_temperature: float | None = Field(None, gt=0, le=1000.0, json_schema_extra={"unit": "K"})
    max_temperature: float | None = Field(None, gt=0, le=1000.0, json_schema_extra={"unit": "K"})
    max_ramp_rate: float | None = Field(None, gt=0, le=100.0, json_schema_extra={"unit": "K/s"})

    @model_validator(mode="after")
    def _temperature_range(self) -> Limits:
        lo, hi = self.min_temperature, self.max_temperature
        if lo is not None and hi is not None and lo >= hi:
            raise ValueError(f"min_temperature ({lo:g} K) must be below max_temperature ({hi:g} K)")
        return self


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
    # Pulse-and-measure stations only (docs/store.md, "Pulse traces"): the current during every pulse of
    # each cell is stored up to this many per unit, then every 2nd, 4th, ... (about half as many per
    # doubling); 2000 keeps every pulse of a REF closed-loop program (<= 500) and open-loop sequence (1300).
    pulse_traces: int = Field(2000, ge=0, le=10_000_000, description="pulse traces stored per cell and unit "
                                                                     "before decimation (0: none)")


class ContactCheck(_Strict):
    """The read before a die is measured that tells an open from a formed or pristine cell: `cells` cells
    spread over the die are read; the die is in contact if their median conductance reaches `threshold`
    (an open reads only the meter's noise, ~5 pS at 0.2 V; a pristine cell ~1 nS). A die that fails is
    touched down again `retries` times, then skipped and recorded."""

    cells: int = Field(8, ge=1, le=4096)
    v_read: float = Field(0.2, gt=0, le=1.0, json_schema_extra={"unit": "V"})
    vg_read: float = Field(3.3, gt=0, le=5.0, json_schema_extra={"unit": "V"})
    threshold: float = Field(30e-12, gt=0, le=1e-3, json_schema_extra={"unit": "S"})
    retries: int = Field(1, ge=0, le=5)


class EmulatedWaferSpec(_Strict):
    """The emulated wafer behind an emulated prober (docs/emulator.md, "Wafers"): a `columns` x `rows`
    grid of dies, each a [backend] rows x cols array seeded from [backend] seed and the die's index."""

    columns: int = Field(6, ge=1, le=100)
    rows: int = Field(6, ge=1, le=100)
    round: bool = Field(False, description="drop the grid corners outside the inscribed circle")
    variation: dict[str, float] = Field(default_factory=dict,
                                        description="emulator.wafer.WaferVariation fields (V, relative)")
    contact_faults: list[tuple[int, int, int]] = Field(
        default_factory=list, description="[column, row, n]: the die's first n touchdowns make no electrical "
                                          "contact (-1: none ever does)")


class WaferSpec(_Strict):
    """[wafer]: run the steps on every die of a wafer at a probe station (docs/campaigns.md, "Wafers")."""

    prober: Literal["velox", "sentio"]
    address: str = Field("emulated", description='the prober\'s VISA resource, or "emulated"')
    timeout: float = Field(30.0, gt=0, le=3600, json_schema_extra={"unit": "s"})
    dies: Literal["prober"] | list[tuple[int, int]] = Field(
        "prober", description='"prober": the prober\'s own map; or a list of [column, row]')
    die_file: str | None = Field(None, description="a file of 'column, row' lines (relative to the campaign file)")
    order: Literal["map", "rows", "columns", "serpentine"] = "map"
    steps: list[str] | None = Field(None, description="names of the steps run on each die (default: all)")
    contact_check: ContactCheck = Field(default_factory=ContactCheck)
    emulated: EmulatedWaferSpec = Field(default_factory=EmulatedWaferSpec)

    @property
    def is_emulated(self) -> bool:
        return self.address == "emulated"


class Campaign(_Strict):
    campaign: CampaignInfo
    metadata: Metadata = Field(default_factory=Metadata)
    backend: BackendSpec = Field(default_factory=BackendSpec)
    limits: Limits = Field(default_factory=Limits)
    selections: dict[str, selection.Selection] = Field(default_factory=dict)
    steps: list[Step] = Field(min_length=1)
    telemetry: TelemetrySpec | None = None
    wafer: WaferSpec | None = None


def step_name(step: Step, index: int) -> str:
    """The step's name in the store and on progress displays: its `name`, else "<routine>-<index>"."""
    return step.name or f"{step.routine}-{index}"
