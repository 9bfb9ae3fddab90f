"""Temperature in the emulator's physics against the reference (../shared/reference/cmo-hfox-1t1r.md):
hopping activation energies (LRS 65 meV, HRS 80 meV), Arrhenius-accelerated relaxation (72 h at
85 °C drifts less than 4 %), the chuck's first-order response, and room temperature changing nothing."""
from __future__ import annotations

import math

import numpy as np
import pytest

import emulator
from emulator.thermal import Chuck
from labctl.core.temperature import ROOM_TEMPERATURE, ZERO_CELSIUS
from labctl.emulated import prepared_array, reference_pulses

K_B = 8.617333262e-5  # eV/K
TEMPERATURES = np.array([273.15, 298.15, 323.15, 358.15, 398.15])


def all_cells(arr: emulator.Array) -> tuple[np.ndarray, np.ndarray]:
    return np.divmod(np.arange(arr.rows * arr.cols), arr.cols)


def activation_energy(arr: emulator.Array, mask: np.ndarray) -> np.ndarray:
    """Per cell of `mask`: −k_B × slope of ln G against 1/T (least squares over TEMPERATURES), eV."""
    ln_g = []
    for t in TEMPERATURES:
        arr.temperature = float(t)
        ln_g.append(np.log(arr.conductance_matrix()[mask]))
    arr.temperature = ROOM_TEMPERATURE
    x = 1.0 / TEMPERATURES
    slope = np.polyfit(x, np.array(ln_g), 1)[0]
    return -K_B * slope


def test_read_conductance_follows_the_reference_activation_energies() -> None:
    arr = prepared_array(8, 8, seed=3)
    r, c = all_cells(arr)
    g_lrs, g_hrs = arr.preset.g_lrs_ref, arr.preset.g_hrs_ref
    # Quasi-static reset (REF −1.5 V, VG 3.3 V) puts cells in the HRS, a gate-limited set (1.3 V, VG 1.1 V) in the LRS.
    arr.sweep(r, c, np.linspace(0.0, -1.5, 151), vg=3.3)
    hrs = arr.state_conductance() < 0.9 * g_hrs
    assert hrs.sum() >= 8
    ea_hrs = activation_energy(arr, hrs)
    arr.sweep(r, c, np.linspace(0.0, 1.3, 131), vg=1.1)
    lrs = arr.state_conductance() > 1.1 * g_lrs
    assert lrs.sum() >= 8
    ea_lrs = activation_energy(arr, lrs)
    # The selector's ~0.2 kΩ in series with a 10-250 kΩ cell changes the apparent slope by < 1 %.
    assert np.all(np.abs(ea_hrs - 0.080) < 1.5e-3), ea_hrs
    assert np.all(np.abs(ea_lrs - 0.065) < 1.5e-3), ea_lrs
    # In between, the activation energy falls with the state (interpolated in ln g), never outside.
    arr.program(r, c, np.full(r.size, 20e-6), 0.02, **reference_pulses(np.full(r.size, 20e-6)))
    mid = activation_energy(arr, np.ones(arr.shape, bool))
    assert np.all((mid > 0.066) & (mid < 0.079)), mid


def test_hotter_cells_conduct_more_and_the_sinh_flattens() -> None:
    arr = prepared_array(4, 4, seed=1)
    cold = arr.read_current(0, 0, 0.4, noisy=False)[0] / arr.read_current(0, 0, 0.2, noisy=False)[0]
    arr.temperature = ZERO_CELSIUS + 85.0
    hot = arr.read_current(0, 0, 0.4, noisy=False)[0] / arr.read_current(0, 0, 0.2, noisy=False)[0]
    assert arr.conductance_matrix()[0, 0] > 1.3 * arr.state_conductance()[0, 0]
    assert 2.0 < hot < cold  # non-linearity e·a·E/2kT: weaker when hotter, still super-linear


def drift_after(temperature: float, hours: float = 72.0, seed: int = 4) -> float:
    """Mean relative change of 64 cells programmed to 50 µS (REF level of the long-term study) after
    `hours` at `temperature` K, read back at 25 °C, against the conductance just programmed."""
    arr = prepared_array(8, 8, seed=seed)
    r, c = all_cells(arr)
    targets = np.full(r.size, 50e-6)
    arr.program(r, c, targets, 0.002, **reference_pulses(targets))
    g0 = arr.conductance_matrix()
    arr.temperature = temperature
    arr.advance(hours * 3600.0)
    arr.temperature = ROOM_TEMPERATURE
    return float(np.mean(arr.conductance_matrix() / g0 - 1.0))


def test_72_hours_at_85_C_drift_as_the_reference_says() -> None:
    hot = drift_after(ZERO_CELSIUS + 85.0)
    room = drift_after(ROOM_TEMPERATURE)
    assert -0.04 < hot < -0.01, hot  # REF "drifted less than 4 % in 72 h" (docs/emulator.md: 3.0 % chosen)
    assert hot < room - 0.005 < 0  # the bake accelerated the relaxation (at 25 °C: ~1.8 %)


def test_room_temperature_changes_nothing_bit_for_bit() -> None:
    a, b = prepared_array(6, 5, seed=9), prepared_array(6, 5, seed=9)
    b.temperature = ROOM_TEMPERATURE  # explicitly at t_ref
    b.attach_chuck()  # on a chuck that stays at room temperature
    assert a.temperature == b.temperature == 298.15
    for arr in (a, b):
        r, c = all_cells(arr)
        targets = np.linspace(10e-6, 90e-6, r.size)
        arr.program(r, c, targets, 0.02, **reference_pulses(targets))
        arr.advance(3600.0)
        arr.advance(0.5)
    assert np.array_equal(a.read_all(), b.read_all())
    assert np.array_equal(a.conductance_matrix(), b.conductance_matrix())
    assert a.snapshot() == b.snapshot()


def test_a_bake_on_the_chuck_heats_holds_and_cools_on_the_virtual_clock() -> None:
    arr = prepared_array(4, 4, seed=2)
    chuck = arr.attach_chuck()
    g_room = arr.conductance_matrix()
    chuck.command(ZERO_CELSIUS + 85.0, ramp_rate=10.0)  # K/min
    arr.advance(60.0)  # one minute of a 6-minute ramp: the working set-point is 10 K up, the chuck lags
    assert chuck.ramping and math.isclose(chuck.working_set_point, ROOM_TEMPERATURE + 10.0, rel_tol=1e-12)
    assert ROOM_TEMPERATURE < chuck.temperature < chuck.working_set_point
    assert arr.temperature == chuck.temperature
    arr.advance(6 * 3600.0)
    assert chuck.settled and chuck.temperature == arr.temperature == ZERO_CELSIUS + 85.0
    assert np.all(arr.conductance_matrix() > g_room)
    chuck.command(ROOM_TEMPERATURE)
    pieces = chuck.segments(600.0)
    assert math.isclose(sum(d for d, _ in pieces), 600.0, rel_tol=1e-12)
    assert all(b[1] <= a[1] for a, b in zip(pieces, pieces[1:]))  # cooling monotonically
    assert abs(chuck.temperature - ROOM_TEMPERATURE) < 0.01 * 60.0  # ~10 time constants: nearly there


def test_first_order_response_is_exact() -> None:
    chuck = Chuck(time_constant=60.0)
    chuck.command(ROOM_TEMPERATURE + 60.0)
    chuck.segments(60.0)
    assert math.isclose(chuck.temperature, ROOM_TEMPERATURE + 60.0 * (1 - math.exp(-1.0)), rel_tol=1e-12)
    chuck.heater_on = False  # drifts back to ambient
    chuck.segments(3600.0)
    assert chuck.temperature == chuck.ambient


@pytest.mark.parametrize("value", [math.nan, math.inf, 0.0, -5.0, 100.0, 1000.0])
def test_temperatures_outside_the_array_rating_are_refused(value: float) -> None:
    arr = emulator.Array(2, 2)
    with pytest.raises(ValueError, match="temperature"):
        arr.temperature = value
    assert arr.temperature == ROOM_TEMPERATURE
    with pytest.raises(ValueError, match="set_point"):
        Chuck().command(value)
