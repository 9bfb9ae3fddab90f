"""Station file validation and cell operations through switch matrix, SMUs and pulse generator,
compared with an in-process Array of the same seed driven with the same operations."""
from __future__ import annotations

import tomllib
from pathlib import Path

import emulator
import numpy as np
import pytest
from emulator.instruments import InstrumentBench
from labctl.instruments import Station, StationConfig
from labctl.instruments.smu import staircase

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "station-emulated.toml"
SEED = 11
BENCH_SEED = SEED  # the conftest bench's array


def write_variant(tmp_path: Path, old: str, new: str) -> Path:
    text = EXAMPLE.read_text()
    assert old in text
    path = tmp_path / "station.toml"
    path.write_text(text.replace(old, new, 1))
    return path


def test_example_station_file_is_valid() -> None:
    config = StationConfig.from_toml(EXAMPLE)
    assert config.array.rows == 8 and len(config.wiring.bit_lines) == 4
    gate = config.terminal_limits("gate")
    assert gate.max_abs_voltage == 3.3 and gate.max_pulse_energy == config.limits.max_pulse_energy
    # the file's max_current_limit is SafetyLimits.max_compliance; a terminal only tightens it
    assert config.limits.max_compliance == 1e-3 and gate.max_compliance == 1e-4
    assert config.terminal_limits("smu").max_compliance == 1e-3


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('max_abs_voltage = 3.6 ', "max_abs_voltage = 5.0 ", "terminals.smu.max_abs_voltage"),
        ('bit_lines = ["101", "102", "103", "104"]', 'bit_lines = ["101", "102", "103"]', "wiring.bit_lines"),
        ('bit_lines = ["101"', 'bit_lines = ["1013"', "wiring.bit_lines"),
        ('matrix_row = "C"', 'matrix_row = "A"', "terminals.gate.matrix_row"),
        ('[terminals.pulse]', '[terminals.pulser]', "terminals: missing ['pulse']"),
        ('timeout = 5.0', 'timeout = -1', "instruments.smu_2450.timeout"),
        ('max_current_limit = 1e-3 ', "max_current_limit = -1 ", "limits.max_current_limit"),
        ('max_current_limit = 1e-4', "max_current_limit = 1e-2", "terminals.gate.max_current_limit"),
        ('max_pulse_width = 1e-3 ', "max_pulse_widht = 1e-3 ", "limits: .*unknown keys ['max_pulse_widht']"),
        ('max_abs_voltage = 4.0 ', "# max_abs_voltage = 4.0 ", "limits: .*max_abs_voltage: required"),
    ],
)
def test_bad_station_files_name_the_field(tmp_path: Path, old: str, new: str, field: str) -> None:
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
        StationConfig.from_toml(write_variant(tmp_path, old, new))


def test_station_file_must_be_toml(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[array\nrows = 8")
    with pytest.raises(ValueError, match="not valid TOML"):
        StationConfig.from_toml(path)


async def test_forming_by_smu_sweep_with_compliance(bench: InstrumentBench) -> None:
    arr = bench.array
    async with Station.from_file(EXAMPLE, dict(bench.resources())) as station:
        # forming: a 0 -> 3.6 V staircase in 50 mV steps, the gate (selector) and the SMU limiting
        result = await station.sweep(5, 2, staircase(0.0, 3.6, 73), vg=1.2, current_limit=4e-4, delay=1e-3)
        assert arr.formed()[5, 2] and arr.formed().sum() == 1
        assert np.max(np.abs(result.currents)) == pytest.approx(4e-4)
        first_limited = int(np.argmax(np.abs(result.currents) >= 4e-4 * (1 - 1e-6)))
        assert result.voltages[first_limited] < 3.6
        g = await station.read(5, 2)
        assert 1e-6 < g < 2e-4
        other = await station.read(4, 2)  # a pristine neighbour barely conducts
        assert other < g / 100


async def test_set_pulse_matches_in_process_emulator(bench: InstrumentBench) -> None:
    """The same seed and the same operations give bit-identical conductances."""
    arr = bench.array
    ref = emulator.Array(8, 4, seed=SEED)
    for a in (arr, ref):  # identical preparation, directly on each array
        a.sweep(2, 1, np.linspace(0, 3.6, 73), vg=1.2)
        a.sweep(2, 1, np.linspace(0, -1.5, 31), vg=3.3)  # reset to HRS
    assert np.array_equal(arr.conductance_matrix(), ref.conductance_matrix())
    async with Station.from_file(EXAMPLE, dict(bench.resources())) as station:
        await station.smu.nplc.set(0.1)
        g_before = await station.read(2, 1)
        await station.pulse(2, 1, v=1.35, width=2.5e-6, vg=1.4, period=10e-6)
        g_after = await station.read(2, 1)
    # The instruments never move the virtual clock (only the host's wait does) and send readings
    # with 17 digits, so the same operations give bit-identical values.
    ref_before = ref.read_current(2, 1, 0.2, vg=3.3)[0] / 0.2
    ref.pulse(2, 1, 1.35, 1.4, 2.5e-6)
    ref_after = ref.read_current(2, 1, 0.2, vg=3.3)[0] / 0.2
    assert g_before == ref_before
    assert g_after == ref_after
    assert g_after > g_before  # the set pulse raised the conductance
    assert np.array_equal(arr.conductance_matrix(), ref.conductance_matrix())
    assert arr.time == ref.time == 0.0
    assert [op for op, _ in bench.bench.operations][-3:] == ["read_current", "pulse", "read_current"]


async def test_closed_loop_iterations_converge_towards_target(bench: InstrumentBench) -> None:
    arr = bench.array
    arr.sweep(0, 0, np.linspace(0, 3.6, 73), vg=1.2)
    arr.sweep(0, 0, np.linspace(0, -1.5, 31), vg=3.3)
    target, tolerance = 40e-6, 0.05
    async with Station.from_file(EXAMPLE, dict(bench.resources())) as station:
        await station.smu.nplc.set(0.01)
        for _ in range(60):
            g = await station.read(0, 0)
            if abs(g - target) <= tolerance * target:
                break
            if g < target:
                await station.pulse(0, 0, 1.35, 2.5e-6, vg=1.4)
            else:
                await station.pulse(0, 0, -1.3, 2.5e-6, vg=3.3)
    assert abs(g - target) <= tolerance * target
    assert arr.pulse_counts()[0, 0] > 0 and arr.pulse_counts().sum() == arr.pulse_counts()[0, 0]


def test_example_resources_match_default_emulator_ports() -> None:
    from emulator.instruments import DEFAULT_PORTS

    data = tomllib.loads(EXAMPLE.read_text())
    for name, port in DEFAULT_PORTS.items():
        assert data["instruments"][name]["resource"] == f"TCPIP::127.0.0.1::{port}::SOCKET"
