"""The measurement station: which instruments exist, how the switch matrix ties their terminals to
the array's lines, and the safety limits. Read from a TOML station file (see
docs/instruments.md and examples/station-emulated.toml), validated with pydantic.

:class:`Station` opens every instrument of the file and can route, pulse, sweep and read one cell
at a time; outputs go off and crosspoints open when it is left for any reason.
"""
from __future__ import annotations

import asyncio
import logging
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from labctl.core.limits import SafetyLimits
from labctl.core.temperature import ZERO_CELSIUS

from .base import Instrument
from .errors import InstrumentError, LimitError, SafeOffError
from .factory import open_instrument
from .pulse import PulseGeneratorChannel
from .pulse_measure import PulseMeasureChannel, PulseTrace
from .smu import SourceMeterChannel, SweepResult
from .thermal import ThermalController, ThermalLimits
from .switch import SwitchMatrix

log = logging.getLogger(__name__)

#: Matrix rows: A-H on a 707B, 1-6 on a 3706A matrix card; the matrix's driver checks its own.
ROW = r"^[A-H1-8]$"
#: <slot><column>, e.g. "105" = slot 1, column 05 (01-12 on a 707B card, 01-16 on a 3730).
COLUMN = re.compile(r"^[1-9](0[1-9]|1[0-6])$")
#: Terminals every station needs: the bit-line SMU, the word-line (gate) supply, the pulser.
REQUIRED_TERMINALS = ("smu", "gate", "pulse")
#: Optional: a second pulse-and-measure channel of the pulse unit that drives the word line in the
#: same executions as the pulses and reads (4225-PMU channel 2, the second WGFMU channel). It may
#: share the gate supply's matrix row when one remote module (4225-RPM, B1531A RSU) carries both.
PULSE_GATE = "pulse_gate"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ArraySpec(_Strict):
    rows: int = Field(ge=1, description="word lines / source lines")
    cols: int = Field(ge=1, description="bit lines")


#: The station file's limit keys and the `SafetyLimits` field each one sets. The file keeps its own
#: words (``max_current_limit`` is the SMU's "current limit"); everything after loading is SafetyLimits.
FILE_LIMIT_KEYS = {
    "max_abs_voltage": "max_abs_voltage",
    "max_current_limit": "max_compliance",
    "max_pulse_width": "max_pulse_width",
    "max_pulse_energy": "max_pulse_energy",
    "min_load_resistance": "min_load_resistance",
}
#: The keys a terminal may tighten (min_load_resistance is a property of the array, station-wide).
TERMINAL_LIMIT_KEYS = ("max_abs_voltage", "max_current_limit", "max_pulse_width", "max_pulse_energy")
_FIELD_KEYS = {field: key for key, field in FILE_LIMIT_KEYS.items()}


class InstrumentSpec(_Strict):
    resource: str = Field(min_length=1, description="VISA resource, e.g. TCPIP::host::5025::SOCKET")
    timeout: float = Field(default=5.0, gt=0, description="I/O timeout, s")


class TerminalSpec(_Strict):
    """One instrument output and the matrix row it is cabled to."""

    instrument: str
    channel: int = Field(default=1, ge=1)
    matrix_row: str = Field(pattern=ROW)
    max_abs_voltage: float | None = Field(default=None, gt=0, description="|V| of this terminal, V")
    max_current_limit: float | None = Field(default=None, gt=0, description="largest SMU compliance, A")
    max_pulse_width: float | None = Field(default=None, gt=0, description="longest pulse, s")
    max_pulse_energy: float | None = Field(default=None, gt=0, description="energy per pulse, J")


class WiringSpec(_Strict):
    """Matrix columns (``<slot><column>``, e.g. ``"105"``) of each array line, in index order."""

    matrix: str = Field(description="name of the switch-matrix instrument")
    ground_row: str = Field(pattern=ROW, description="matrix row tied to ground (instrument LO)")
    bit_lines: list[str]
    word_lines: list[str]
    source_lines: list[str]

    @field_validator("bit_lines", "word_lines", "source_lines")
    @classmethod
    def _columns(cls, value: list[str]) -> list[str]:
        for k, col in enumerate(value):
            if not COLUMN.match(col):
                raise ValueError(f"[{k}]={col!r}: expected <slot 1-9><column 01-16>, e.g. '105'")
        return value


class ThermalSpec(_Strict):
    """The chuck's stand-alone temperature controller (Lake Shore 335/336 class) and its limits, K and
    K/s (a campaign's [limits] may only tighten them)."""

    instrument: str = Field(description="name of the controller in [instruments]")
    output: int = Field(1, ge=1, le=4, description="heater output that heats the chuck")
    input: str = Field("A", pattern=r"^[A-D]$", description="sensor input on the chuck")
    heater_range: int = Field(3, ge=1, le=3, description="heater range while controlling: 1 low .. 3 high")
    min_temperature: float = Field(ZERO_CELSIUS - 60.0, gt=0, description="lowest set-point, K")
    max_temperature: float = Field(ZERO_CELSIUS + 200.0, gt=0, description="highest set-point, K")
    max_ramp_rate: float = Field(1.0, gt=0, description="fastest set-point ramp, K/s")

    @model_validator(mode="after")
    def _ordered(self) -> ThermalSpec:
        if self.min_temperature >= self.max_temperature:
            raise ValueError(f"min_temperature={self.min_temperature:g} K must be below "
                             f"max_temperature={self.max_temperature:g} K")
        return self

    def limits(self) -> ThermalLimits:
        return ThermalLimits(self.min_temperature, self.max_temperature, self.max_ramp_rate)


class StationConfig(_Strict):
    """A station file, validated."""

    array: ArraySpec
    limits: SafetyLimits = Field(description="station-wide; terminals may only tighten them")
    instruments: dict[str, InstrumentSpec]
    terminals: dict[str, TerminalSpec]
    wiring: WiringSpec
    thermal: ThermalSpec | None = Field(None, description="the chuck's temperature controller, if any")

    @field_validator("limits", mode="before")
    @classmethod
    def _limit_keys(cls, value: Any) -> Any:
        """The file's [limits] keys as SafetyLimits fields; |V| must be given (no silent default)."""
        if isinstance(value, SafetyLimits) or not isinstance(value, Mapping):
            return value
        unknown = sorted(set(value) - set(FILE_LIMIT_KEYS))
        if unknown:
            raise ValueError(f"unknown keys {unknown} (allowed: {', '.join(FILE_LIMIT_KEYS)})")
        if "max_abs_voltage" not in value:
            raise ValueError("max_abs_voltage: required (V, the largest |V| on any terminal)")
        return {FILE_LIMIT_KEYS[key]: v for key, v in value.items()}

    @model_validator(mode="after")
    def _consistent(self) -> StationConfig:
        w, a = self.wiring, self.array
        for field, lines, n in (("bit_lines", w.bit_lines, a.cols), ("word_lines", w.word_lines, a.rows),
                                ("source_lines", w.source_lines, a.rows)):
            if len(lines) != n:
                raise ValueError(f"wiring.{field}: {len(lines)} columns for {n} lines of the array")
        used = w.bit_lines + w.word_lines + w.source_lines
        dup = sorted({c for c in used if used.count(c) > 1})
        if dup:
            raise ValueError(f"wiring: matrix columns {dup} assigned to more than one line")
        if w.matrix not in self.instruments:
            raise ValueError(f"wiring.matrix={w.matrix!r}: not among instruments {sorted(self.instruments)}")
        if self.thermal is not None and self.thermal.instrument not in self.instruments:
            raise ValueError(f"thermal.instrument={self.thermal.instrument!r}: not among instruments "
                             f"{sorted(self.instruments)}")
        missing = [t for t in REQUIRED_TERMINALS if t not in self.terminals]
        if missing:
            raise ValueError(f"terminals: missing {missing} (required: {list(REQUIRED_TERMINALS)})")
        rows = {w.ground_row: "wiring.ground_row"}
        for name, t in self.terminals.items():
            if t.instrument not in self.instruments:
                raise ValueError(f"terminals.{name}.instrument={t.instrument!r}: not among {sorted(self.instruments)}")
            shared = name == PULSE_GATE and rows.get(t.matrix_row) == "terminals.gate" and \
                self.terminals["gate"].instrument == t.instrument  # one RPM / RSU output carries both
            if t.matrix_row in rows and not shared:
                raise ValueError(f"terminals.{name}.matrix_row={t.matrix_row!r}: already used by {rows[t.matrix_row]}")
            rows[t.matrix_row] = f"terminals.{name}"
            for key in TERMINAL_LIMIT_KEYS:
                mine, station = getattr(t, key), getattr(self.limits, FILE_LIMIT_KEYS[key])
                if mine is not None and station is not None and mine > station:
                    raise ValueError(f"terminals.{name}.{key}={mine:g} exceeds limits.{key}={station:g}")
        return self

    def with_array(self, rows: int, cols: int) -> StationConfig:
        """This station with its array resized to rows x cols, every line on the next matrix column
        in index order (line k on slot k // 12 + 1, column k % 12 + 1), as the emulated benches
        wire an array (emulator.instruments.bench.line_column)."""
        data = self.model_dump()
        data["limits"] = self.limits
        data["array"] = {"rows": rows, "cols": cols}
        columns = [f"{k // 12 + 1}{k % 12 + 1:02d}" for k in range(cols + 2 * rows)]
        data["wiring"].update(bit_lines=columns[:cols], word_lines=columns[cols:cols + rows],
                              source_lines=columns[cols + rows:])
        return StationConfig.model_validate(data)

    def terminal_limits(self, name: str) -> SafetyLimits:
        """The station's limits tightened by terminal ``name`` (what its driver checks)."""
        t = self.terminals[name]
        return self.limits.tightened(**{FILE_LIMIT_KEYS[key]: getattr(t, key) for key in TERMINAL_LIMIT_KEYS})

    @classmethod
    def from_toml(cls, path: str | Path) -> StationConfig:
        """Load and validate a station file; ValueError names the file and the bad field."""
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{p}: not valid TOML: {exc}") from None
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(f"{_file_location(e['loc']) or '(file)'}: {e['msg']}" for e in exc.errors())
            raise ValueError(f"{p}: {problems}") from None


def _file_location(loc: tuple[Any, ...]) -> str:
    """A pydantic error location in the station file's words (limits.max_compliance is the file's
    limits.max_current_limit)."""
    parts = [str(x) for x in loc]
    if len(parts) >= 2 and parts[0] == "limits":
        parts[1] = _FIELD_KEYS.get(parts[1], parts[1])
    return ".".join(parts)


class Station:
    """Every instrument of a station file, opened; cell-level route / pulse / sweep / read.

    ``resources`` overrides instrument resources by name (e.g. the ports an emulator picked).
    """

    def __init__(self, config: StationConfig, resources: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.resources = {n: (resources or {}).get(n, spec.resource) for n, spec in config.instruments.items()}
        self.instruments: dict[str, Instrument] = {}
        self._route: tuple[int, int, str, str] | None = None

    @classmethod
    def from_file(cls, path: str | Path, resources: Mapping[str, str] | None = None) -> Station:
        return cls(StationConfig.from_toml(path), resources)

    # -- session ----------------------------------------------------------------------------------
    async def open(self) -> None:
        """Open and identify every instrument (concurrently), then put all in the safe state."""
        per_instrument: dict[str, dict[int, SafetyLimits]] = {n: {} for n in self.config.instruments}
        for name, t in self.config.terminals.items():
            per_instrument[t.instrument][t.channel] = self.config.terminal_limits(name)
        station = self.config.limits  # outputs no terminal names are held to the station's limits

        async def one(name: str) -> Instrument:
            limits = {**{n: station for n in range(1, 9)}, **per_instrument[name]}
            return await open_instrument(self.resources[name], name=name, limits=limits,
                                         timeout=self.config.instruments[name].timeout)

        names = list(self.config.instruments)
        results = await asyncio.gather(*(one(n) for n in names), return_exceptions=True)
        for name, result in zip(names, results):
            if isinstance(result, Instrument):
                self.instruments[name] = result
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            await self.close()
            raise failures[0]
        try:
            self._check_kinds()
        except BaseException:
            await self.close()  # the instruments are open: leave them in the safe state, closed
            raise
        await self.safe_off()

    def _check_kinds(self) -> None:
        matrix = self.instruments[self.config.wiring.matrix]
        if not isinstance(matrix, SwitchMatrix):
            raise InstrumentError(self.config.wiring.matrix, "*IDN?", "wiring.matrix is not a switch matrix")
        self._check_wiring(matrix)
        for name, kinds in (("smu", (SourceMeterChannel,)), ("gate", (SourceMeterChannel,)),
                            ("pulse", (PulseGeneratorChannel, PulseMeasureChannel))):
            ch = self.channel(name)
            if not isinstance(ch, kinds):
                wanted = " or ".join(k.__name__ for k in kinds)
                raise InstrumentError(ch.label, "*IDN?", f"terminal {name!r} needs a {wanted}")
        if PULSE_GATE in self.config.terminals:
            gate, pulser = self.channel(PULSE_GATE), self.pulser
            if not isinstance(pulser, PulseMeasureChannel):
                raise InstrumentError(pulser.label, "*IDN?", "terminal 'pulse_gate' needs a pulse-and-measure "
                                      "'pulse' terminal")
            pulser.check_gate_channel(gate)
        spec = self.config.thermal
        if spec is not None and not isinstance(self.instruments[spec.instrument], ThermalController):
            raise InstrumentError(self.instruments[spec.instrument].label, "*IDN?",
                                  "thermal.instrument is not a temperature controller")

    def thermal(self, clock: Any = None) -> ThermalController | None:
        """The chuck's controller the file's [thermal] names, set up with its output, input, heater
        range and limits, waiting on `clock` (an async function of seconds; None: real time); None
        when the file names none."""
        spec = self.config.thermal
        if spec is None:
            return None
        controller = self.instruments[spec.instrument]
        controller.use(output=spec.output,  # type: ignore[attr-defined] input=spec.input, heater_range=spec.heater_range,
            thermal_limits=spec.limits(), clock=clock)
        return controller  # type: ignore[return-value]

    def _check_wiring(self, matrix: SwitchMatrix) -> None:
        """Every crosspoint the wiring can close is a channel of this matrix model (file errors
        found at open, not at the first route)."""
        w = self.config.wiring
        rows = {f"terminals.{n}.matrix_row": t.matrix_row for n, t in self.config.terminals.items()}
        rows["wiring.ground_row"] = w.ground_row
        for field, row in rows.items():
            for kind, columns in (("bit_lines", w.bit_lines), ("word_lines", w.word_lines),
                                  ("source_lines", w.source_lines)):
                for column in columns:
                    name = matrix.channel_name(column[0], row, column[1:])
                    if not matrix.channel_pattern.match(name):
                        raise LimitError(f"{field} / wiring.{kind}", name,
                                         f"a channel of {matrix.label}: {matrix.channel_notation}")

    @property
    def pulse_and_measure(self) -> bool:
        """True when the pulse terminal also measures (4225-PMU, WGFMU): reads then go through it,
        on the same route as the pulses, so nothing is switched between a pulse and its verify."""
        return isinstance(self.channel("pulse"), PulseMeasureChannel)

    async def safe_off(self) -> None:
        """Every output off, every crosspoint open; tries all instruments even if some fail."""
        self._route = None
        failures: list[tuple[str, BaseException]] = []
        for inst in self.instruments.values():
            try:
                await inst.safe_off()
            except Exception as exc:  # noqa: BLE001 - keep switching the others off
                log.error("%s: safe_off failed: %s", inst.label, exc)
                failures.append((inst.label, exc))
        if len(failures) == 1:
            raise failures[0][1]
        if failures:
            raise SafeOffError(failures, len(self.instruments)) from failures[0][1]

    async def close(self) -> None:
        try:
            await self.safe_off()
        finally:
            for inst in self.instruments.values():
                await inst.close()

    async def __aenter__(self) -> Station:
        await self.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        try:
            await self.close()
        except Exception as off_error:
            if exc is None:
                raise
            log.error("station: outputs could not all be switched off after %r: %s", exc, off_error)

    # -- terminals and routing --------------------------------------------------------------------
    def channel(self, terminal: str) -> Any:
        t = self.config.terminals[terminal]
        return self.instruments[t.instrument][t.channel]

    @property
    def smu(self) -> SourceMeterChannel:
        return self.channel("smu")  # type: ignore[no-any-return]

    @property
    def gate(self) -> SourceMeterChannel:
        return self.channel("gate")  # type: ignore[no-any-return]

    @property
    def pulse_gate(self) -> PulseMeasureChannel | None:
        """The word line's pulse channel (terminals.pulse_gate), or None: the gate supply drives it."""
        return self.channel(PULSE_GATE) if PULSE_GATE in self.config.terminals else None  # type: ignore[no-any-return]

    @property
    def pulser(self) -> Any:
        """The pulse terminal's channel: a PulseGeneratorChannel or a PulseMeasureChannel."""
        return self.channel("pulse")

    @property
    def matrix(self) -> SwitchMatrix:
        return self.instruments[self.config.wiring.matrix]  # type: ignore[return-value]

    def crosspoints(self, row: int, col: int, terminal: str, gate: str = "gate") -> list[str]:
        """Channels connecting cell (row, col): its bit line to ``terminal``, word line to the
        ``gate`` terminal (the gate supply, or the pulse gate), source line to ground."""
        a, w = self.config.array, self.config.wiring
        if not 0 <= row < a.rows:
            raise LimitError("row", row, f"0..{a.rows - 1}")
        if not 0 <= col < a.cols:
            raise LimitError("col", col, f"0..{a.cols - 1}")

        def ch(column: str, matrix_row: str) -> str:
            return self.matrix.channel_name(column[0], matrix_row, column[1:])

        return [
            ch(w.bit_lines[col], self.config.terminals[terminal].matrix_row),
            ch(w.word_lines[row], self.config.terminals[gate].matrix_row),
            ch(w.source_lines[row], w.ground_row),
        ]

    async def route(self, row: int, col: int, terminal: str, gate: str = "gate") -> None:
        """Exclusive route of one cell to ``terminal``, its word line to ``gate`` (break before
        make on the matrix)."""
        channels = self.crosspoints(row, col, terminal, gate)
        if self._route == (row, col, terminal, gate):
            return
        self._route = None  # unknown until the matrix confirms
        await self.matrix.exclusive_close(channels)
        self._route = (row, col, terminal, gate)

    async def set_gate(self, vg: float, current_limit: float = 1e-4) -> None:
        """Word-line (gate) supply at ``vg`` V, output on. The gate draws only leakage, so a
        small current limit (A) protects the selector's gate oxide. A pulse gate that shares the
        supply's output (RPM / RSU) gives it back first."""
        gate = self.gate
        gate.guard("vg", "voltage", vg)
        pulse_gate = self.pulse_gate
        if pulse_gate is not None:
            await pulse_gate.release()  # nothing is sent when it is released already
        await gate.current_limit.ensure(current_limit)
        await gate.source_voltage.ensure(vg)
        await gate.output.ensure(True)

    # -- cell operations --------------------------------------------------------------------------
    async def read(self, row: int, col: int, v_read: float = 0.2, vg: float = 3.3,
                   current_limit: float = 1e-4) -> float:
        """Conductance of cell (row, col) at ``v_read`` V with the gate at ``vg`` V, S."""
        if v_read == 0:
            raise LimitError("v_read", v_read, "a non-zero voltage")
        if self.pulse_and_measure:
            pm: PulseMeasureChannel = self.pulser
            pm.check_read(v_read)
            pulse_gate = await self._route_pulse_unit(row, col, vg=vg)
            return await pm.read(v_read, gate=pulse_gate, vg=vg) / v_read
        self.smu.guard("v_read", "voltage", v_read)
        self.smu.guard("current_limit", "compliance", current_limit)
        self.gate.guard("vg", "voltage", vg)
        self.crosspoints(row, col, "smu")
        await self.route(row, col, "smu")
        await self.set_gate(vg)
        smu = self.smu
        await smu.current_limit.ensure(current_limit)
        await smu.source_voltage.ensure(v_read)
        await smu.output.set(True)
        try:
            current = await smu.measure_current()
        finally:
            await smu.output.set(False)
        return current / v_read

    async def pulse(self, row: int, col: int, v: float, width: float, vg: float,
                    count: int = 1, period: float | None = None) -> PulseTrace | None:
        """``count`` pulses of ``v`` V (either sign), ``width`` s, gate at ``vg`` V, on one cell.
        ``period`` defaults to twice the width. On a pulse-and-measure terminal each pulse is
        measured; the current during the last one is returned (None from a pulse generator)."""
        pulser = self.pulser
        if isinstance(pulser, PulseMeasureChannel):
            pulser.check_pulse(v, width)
            if not (isinstance(count, int) and 1 <= count <= 1_000_000):
                raise LimitError("count", count, "an integer in [1, 1000000]")
            pulse_gate = await self._route_pulse_unit(row, col, vg=vg)
            trace = None
            for _ in range(count):
                trace = await pulser.pulse(v, width, gate=pulse_gate, vg=vg)
            return trace
        period = period if period is not None else 2 * width
        pulser.guard("v", "level", v)
        pulser.check_pulse(v, width, period, count)
        self.gate.guard("vg", "voltage", vg)
        self.crosspoints(row, col, "pulse")  # validates row and col
        await self.route(row, col, "pulse")
        await self.set_gate(vg)
        await pulser.setup_pulse(v, width, period, count)
        await pulser.output.ensure(True)
        await pulser.trigger()
        return None

    async def pulse_and_read(self, row: int, col: int, v: float, width: float, vg: float, v_read: float = 0.2,
                             vg_read: float = 3.3, current_limit: float = 1e-4) -> tuple[PulseTrace | None, float]:
        """One pulse of ``v`` V, ``width`` s, gate ``vg`` V, then the cell's conductance at ``v_read``
        V, gate ``vg_read`` V (S): one execution where the pulse unit also drives the word line
        (terminals.pulse_gate) or the gate does not change; else a pulse, then a read. Returns
        (the current during the pulse, or None from a pulse generator; the conductance in S)."""
        pulser = self.pulser
        pulse_gate = self.pulse_gate
        if not isinstance(pulser, PulseMeasureChannel) or (pulse_gate is None and vg != vg_read):
            trace = await self.pulse(row, col, v, width, vg)
            return trace, await self.read(row, col, v_read, vg_read, current_limit)
        pulser.check_pulse(v, width)
        pulser.check_read(v_read)
        await self._route_pulse_unit(row, col, vg=vg, vg_read=vg_read)
        trace, current = await pulser.pulse_and_read(v, width, v_read, gate=pulse_gate, vg=vg, vg_read=vg_read)
        return trace, current / v_read

    async def _route_pulse_unit(self, row: int, col: int, **levels: float) -> PulseMeasureChannel | None:
        """Check the gate levels (V, by argument name) against whatever drives the word line, then
        route cell (row, col) to the pulse terminal. With a pulse gate (returned) the word line goes
        to it, and it takes the output it may share with the gate supply at its next run; else the
        word line goes to the gate supply, set to the first level (the caller's levels are equal)."""
        pulse_gate = self.pulse_gate
        for name, level in levels.items():
            if pulse_gate is not None:
                pulse_gate.check_gate(name, level)
            else:
                self.gate.guard(name, "voltage", level)
        gate = "gate" if pulse_gate is None else PULSE_GATE
        self.crosspoints(row, col, "pulse", gate)  # validates row and col before anything is sent
        await self.route(row, col, "pulse", gate)
        if pulse_gate is None:
            await self.set_gate(next(iter(levels.values())))
        return pulse_gate

    async def sweep(self, row: int, col: int, voltages: Sequence[float], vg: float,
                    current_limit: float, delay: float = 0.0) -> SweepResult:
        """Quasi-static sweep of cell (row, col) by the SMU with its compliance; output off after."""
        smu = self.smu
        for k, v in enumerate(voltages):
            smu.guard(f"voltages[{k}]", "voltage", v)
        smu.guard("current_limit", "compliance", current_limit)
        self.gate.guard("vg", "voltage", vg)
        if not 0 <= delay <= 1e4:
            raise LimitError("delay", delay, "[0, 10000] s")
        self.crosspoints(row, col, "smu")
        await self.route(row, col, "smu")
        await self.set_gate(vg)
        await smu.current_limit.ensure(current_limit)
        return await smu.sweep(voltages, delay)
