"""The prober drivers against the emulated probers over loopback TCP, and the emulated wafer itself."""
from __future__ import annotations

import asyncio
import socket

import numpy as np
import pytest

import emulator
from emulator.instruments import prober_server
from emulator.wafer import NO_VARIATION, ROOM_TEMPERATURE, Wafer, WaferVariation, die_seed
from labctl.instruments import PROBERS, DieIndex, ProberError
from labctl.instruments.thermal import ThermalError

COMMAND_SETS = ("velox", "sentio")


def _raw(port: int, lines: list[bytes]) -> list[str]:
    """Send raw lines to a server and read one reply line per line sent (blocking; bounded by a timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        f = s.makefile("rb")
        out = []
        for line in lines:
            s.sendall(line + b"\n")
            out.append(f.readline().decode().strip())
        return out


@pytest.mark.parametrize("command_set", COMMAND_SETS)
async def test_driver_steps_contacts_and_reads_the_map_over_tcp(command_set: str) -> None:
    wafer = Wafer(3, 2, 4, 4, seed=7)
    server = prober_server(wafer, command_set)
    await server.start()
    try:
        async with PROBERS[command_set](server.resource) as prober:
            route = [await prober.step_first_die()]
            while (die := await prober.step_next_die()) is not None:
                route.append(die)
            assert [(d.column, d.row) for d in route] == wafer.route()  # the prober's serpentine, to its end
            assert [(d.column, d.row) for d in await prober.die_map()] == wafer.route()
            assert await prober.step_to_die(DieIndex(2, 1)) == DieIndex(2, 1)
            assert await prober.position() == DieIndex(2, 1)
            assert await prober.step_to_index(1) == DieIndex(*wafer.route()[1])
            before = wafer.clock
            await prober.contact()
            assert wafer.contact and wafer.clock == pytest.approx(before + wafer.motion.z_time)
            assert wafer.probes.read([0], [0])[0] > 1e-10  # a pristine cell, not an open
            with pytest.raises(ProberError, match=r"die \(9, 9\) is not on the wafer") as info:
                await prober.step_to_die(DieIndex(9, 9))
            assert info.value.code != 0
            assert wafer.contact  # a refused step moved nothing
        assert not wafer.contact  # leaving `async with` separates the chuck
    finally:
        await server.stop()


@pytest.mark.parametrize("command_set", COMMAND_SETS)
async def test_thermal_chuck_is_a_thermal_controller_on_the_virtual_clock(command_set: str) -> None:
    wafer = Wafer(1, 1, 2, 2)
    server = prober_server(wafer, command_set)
    await server.start()
    try:
        async with PROBERS[command_set](server.resource) as prober:
            chuck = prober.chuck(sleep=lambda s: asyncio.to_thread(wafer.advance, s))
            await chuck.set_temperature(358.15)
            assert await chuck.set_point() == pytest.approx(358.15)
            assert await chuck.temperature() == pytest.approx(ROOM_TEMPERATURE, abs=1e-3)  # no time passed yet
            reading = await chuck.wait_settled(band=0.5, hold=30.0, poll=10.0, timeout=3600.0)
            assert abs(reading - 358.15) <= 0.5
            # First order: after t the gap is exp(-t/tau) of the step.
            assert 200 < wafer.clock < 600
            with pytest.raises(ThermalError, match="ramp"):
                await chuck.set_temperature(300.0, ramp_rate=0.1)
            with pytest.raises(ThermalError, match="outside"):
                await chuck.set_temperature(900.0)
            await chuck.safe()
            assert wafer.chuck.set_point == pytest.approx(ROOM_TEMPERATURE)
    finally:
        await server.stop()


@pytest.mark.parametrize("command_set", COMMAND_SETS)
async def test_malformed_input_is_answered_in_the_probers_error_format_and_serving_goes_on(command_set: str) -> None:
    wafer = Wafer(2, 2, 2, 2)
    server = prober_server(wafer, command_set)
    await server.start()
    try:
        good = b"StepFirstDie" if command_set == "velox" else b"map:step_first_die"
        lines = [b"frobnicate", b"\xff\xfe", b"x" * (1 << 20 + 1), b"StepNextDie 1" if command_set == "velox"
                 else b"map:step_die 1", good]
        replies = await asyncio.to_thread(_raw, server.port, lines)
        ok = "0: 0 0 0 0" if command_set == "velox" else "0,0,0, 0, 0"
        assert replies[-1] == ok
        for reply in replies[:-1]:
            code = int(reply.split(":" if command_set == "velox" else ",")[0]) & 1023
            assert code != 0, reply
        assert "frobnicate" in replies[0]
    finally:
        await server.stop()


def test_separated_probes_see_an_open_circuit() -> None:
    wafer = Wafer(2, 1, 4, 4, seed=3)
    wafer.step(0)
    g_open = wafer.probes.read(np.arange(4), np.arange(4))
    assert np.all(np.abs(g_open) < 1e-10)  # noise of ~5 pS, not a cell
    wafer.probes.pulse(np.arange(4), np.arange(4), 1.5, 1.4, 1e-6)  # nothing happens
    wafer.probes.sweep([0], [0], np.linspace(0, 3.6, 50), vg=1.2)
    wafer.move_contact()
    untouched = emulator.Array(4, 4, preset=wafer.die_preset(0), seed=die_seed(3, 0))
    untouched.advance(wafer.clock)
    assert np.array_equal(wafer.array(0).state_conductance(), untouched.state_conductance())
    assert not wafer.array(0).formed().any()
    with pytest.raises(ValueError, match="outside"):
        wafer.probes.read([9], [0])  # still checked as the array checks it


def test_each_die_has_its_own_seed_and_the_centre_die_without_variation_is_the_plain_array() -> None:
    wafer = Wafer(3, 3, 4, 4, seed=11, variation=NO_VARIATION)
    seeds = {die_seed(11, k) for k in range(9)}
    assert len(seeds) == 9
    assert wafer.die_preset(4) == emulator.presets.get_preset("cmo-hfox")
    plain = emulator.Array(4, 4, seed=die_seed(11, 4))
    assert np.array_equal(wafer.array(4).device_parameters()["v_form"], plain.device_parameters()["v_form"])


def test_wafer_variation_is_radial_and_seeded_per_wafer() -> None:
    variation = WaferVariation(v_form_edge=0.2, g_window_edge=-0.1, tilt_sigma=0.0, die_sigma=0.0)
    wafer = Wafer(5, 5, 2, 2, seed=1, variation=variation)
    centre, corner = wafer.index[(2, 2)], wafer.index[(0, 0)]
    assert wafer.die_preset(corner).v_form_mean == pytest.approx(wafer.preset.v_form_mean + 0.2)
    assert wafer.die_preset(centre).v_form_mean == pytest.approx(wafer.preset.v_form_mean)
    assert wafer.die_preset(corner).g_max_mean == pytest.approx(wafer.preset.g_max_mean * 0.9)
    tilted = [Wafer(5, 5, 2, 2, seed=s, variation=WaferVariation(0, 0, 0.05, 0.0)).die_preset(corner).v_form_mean
              for s in (1, 1, 2)]
    assert tilted[0] == tilted[1] != tilted[2]


def test_a_round_wafer_drops_the_grid_corners() -> None:
    wafer = Wafer(6, 6, 2, 2, round_wafer=True)
    assert len(wafer.dies) == 32
    assert {(0, 0), (5, 0), (0, 5), (5, 5)}.isdisjoint(wafer.dies) and (2, 0) in wafer.index
    assert sorted(wafer.route()) == sorted(wafer.dies)
