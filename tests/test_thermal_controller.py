"""The Lake Shore 335/336 driver against the emulated controller over real sockets (pyvisa-py): set-point,
ramp, read-back, settling on the virtual clock, limits refused before anything is sent, the *ESR?
error model, malformed input answered and the controller still serving."""
from __future__ import annotations

import asyncio
import math

import pytest

import emulator
from emulator.instruments import InstrumentBench
from labctl.core.temperature import ROOM_TEMPERATURE, ZERO_CELSIUS
from labctl.instruments import InstrumentError, LakeShore336, LimitError, open_instrument
from labctl.instruments.thermal import ThermalError, ThermalLimits

pytestmark = pytest.mark.timeout(120)

BENCH_SEED = 21
HOT = ZERO_CELSIUS + 85.0


async def controller(bench: InstrumentBench) -> LakeShore336:
    """The driver on the bench's 336, waiting on the bench array's virtual clock."""
    inst = await open_instrument(bench["tc_336"].resource, name="chuck")
    assert isinstance(inst, LakeShore336)
    array = bench.array
    inst.use(clock=lambda seconds: asyncio.to_thread(array.advance, seconds),
             thermal_limits=ThermalLimits(ZERO_CELSIUS - 40.0, ZERO_CELSIUS + 150.0, 1.0))
    return inst


async def test_set_point_ramp_and_settling_on_the_virtual_clock(bench: InstrumentBench) -> None:
    ctrl = await controller(bench)
    try:
        assert ctrl.identity is not None and ctrl.identity.model == "MODEL336"
        assert await ctrl.temperature() == ROOM_TEMPERATURE
        await ctrl.set_temperature(HOT, ramp_rate=0.5)  # K/s = 30 K/min
        sent = list(bench["tc_336"].received)
        assert "RAMP 1,1,30.0" in sent and "SETP 1,358.15" in sent and "RANGE 1,3" in sent
        assert await ctrl.set_point() == HOT
        assert await ctrl.loop.ramping()
        reading = await ctrl.wait_settled(band=0.5, hold=30.0, timeout=3600.0, poll=5.0)
        assert abs(reading - HOT) <= 0.5
        # A 60 K ramp at 0.5 K/s takes 120 s, then the first-order lag (60 s) settles within 0.5 K.
        assert 120.0 + 30.0 < bench.array.time < 120.0 + 60.0 * math.log(60 / 0.5) + 60.0
        assert bench.array.temperature == await ctrl.temperature()  # the cells are at the chuck's temperature
        assert not await ctrl.loop.ramping() and 0.0 < await ctrl.loop.heater_output.get() <= 100.0
        assert await ctrl.loop.heater_status() == 0
        await ctrl.safe()
        assert await ctrl.set_point() == ROOM_TEMPERATURE
    finally:
        await ctrl.close()


async def test_settling_times_out_naming_the_temperatures(bench: InstrumentBench) -> None:
    ctrl = await controller(bench)
    try:
        await ctrl.set_temperature(HOT)
        with pytest.raises(ThermalError, match=r"did not settle at 358.15 K .* in 30(\.0)? s"):
            await ctrl.wait_settled(band=0.1, hold=10.0, timeout=30.0, poll=5.0)
        with pytest.raises(ThermalError, match="band"):
            await ctrl.wait_settled(band=-1.0)
    finally:
        await ctrl.close()


@pytest.mark.parametrize(("temperature", "ramp", "match"), [
    (ZERO_CELSIUS + 151.0, None, "outside the allowed"), (ZERO_CELSIUS - 41.0, None, "outside the allowed"),
    (math.nan, None, "outside the allowed"), (HOT, 2.0, "ramp rate"), (HOT, 1e-3, "ramp_rate")])
async def test_limits_are_refused_before_anything_is_sent(bench: InstrumentBench, temperature: float,
                                                          ramp: float | None, match: str) -> None:
    ctrl = await controller(bench)
    try:
        before = len(bench["tc_336"].received)
        with pytest.raises((ThermalError, LimitError), match=match):
            await ctrl.set_temperature(temperature, ramp)
        assert len(bench["tc_336"].received) == before  # not one byte went out
        assert await ctrl.set_point() == ROOM_TEMPERATURE
    finally:
        await ctrl.close()


async def test_the_controller_refuses_what_its_chuck_cannot_do(bench: InstrumentBench) -> None:
    ctrl = await controller(bench)
    ctrl.limits = ThermalLimits(1.0, 1400.0, 1.0)  # the host lets it through: the controller must refuse
    try:
        with pytest.raises(InstrumentError, match="execution error"):
            await ctrl.set_temperature(ZERO_CELSIUS + 400.0)
        assert await ctrl.set_point() == ROOM_TEMPERATURE  # the refused set-point left the old one
        assert await ctrl.temperature() == ROOM_TEMPERATURE
    finally:
        await ctrl.close()


async def test_tlimit_switches_the_heater_off(bench: InstrumentBench) -> None:
    ctrl = await controller(bench)
    try:
        await ctrl.configure("TLIMIT A,320")
        await ctrl.set_temperature(HOT)
        await ctrl.sleep(600.0)
        assert await ctrl.loop.heater_range.get() == 0  # beyond 320 K every output went off
        await ctrl.sleep(3600.0)
        assert abs(await ctrl.temperature() - ROOM_TEMPERATURE) < 1.0  # and the chuck cooled to ambient
        await ctrl.configure("TLIMIT A,0")  # limit off: the next set-point switches the heater on again
        await ctrl.set_temperature(HOT)
        assert await ctrl.loop.heater_range.get() == 3
    finally:
        await ctrl.close()


async def raw(bench: InstrumentBench, data: bytes, query: str) -> str:
    reader, writer = await asyncio.open_connection(bench["tc_336"].host, bench["tc_336"].port)
    try:
        writer.write(data + query.encode() + b"\n")
        await writer.drain()
        return (await asyncio.wait_for(reader.readline(), 5.0)).decode().strip()
    finally:
        writer.close()


@pytest.mark.parametrize(("message", "bits"), [
    (b"FOO 1\n", 32), (b"SETP 9,300\n", 16), (b"SETP 1,abc\n", 32), (b"RANGE 1,7\n", 16),
    (b"KRDG? Z\n", 16), (b"SETP 1\n", 32), (b"\xff\xfe SETP 1,300\n", 32), (b"RAMP 1,1,0.01\n", 16),
    (b"SETP 1,300,4\n", 32)])
async def test_malformed_input_is_answered_through_the_event_register(bench: InstrumentBench, message: bytes,
                                                                      bits: int) -> None:
    assert await raw(bench, message, "*ESR?") == str(bits)
    assert await raw(bench, b"", "*ESR?") == "0"  # reading cleared it
    assert (await raw(bench, b"", "*IDN?")).startswith("LSCI,MODEL336,")  # and it keeps serving
    assert float(await raw(bench, b"", "SETP? 1")) == ROOM_TEMPERATURE  # nothing malformed was applied
