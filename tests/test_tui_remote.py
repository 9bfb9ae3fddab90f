"""Remote watch against a real mosquitto broker, and the status bar's visible reconnection to a real
chip controller (emulated, on loopback TCP) that goes away and comes back."""
from __future__ import annotations

import pytest

import emulator
from emulator.controller import ChipController, serve_tcp
from labctl.backends.chip import ChipBackend
from labctl.backends.emulator import EmulatorBackend
from labctl.campaigns.telemetry import Telemetry, TelemetryConfig
from labctl.tui.app import ProbeStationApp

from helpers import SIZE, until
from mqtt_broker import Broker

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path).start()
    yield b.url
    b.stop()


async def test_remote_watch_shows_another_stations_run_progress(tmp_path, broker) -> None:
    app = ProbeStationApp(lambda: EmulatorBackend(4, 4), store_path=str(tmp_path / "runs.sqlite"), mqtt=broker,
                          watch_station="probe-7")
    telemetry = Telemetry(TelemetryConfig(broker=broker, station="probe-7", progress_interval=0.0), "run-42")
    other = Telemetry(TelemetryConfig(broker=broker, station="probe-9", progress_interval=0.0), "run-99")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.map_updates >= 1)
        await pilot.press("2")  # Remote tab
        await pilot.click("#remote-watch")
        link = app.query_one("#remote-link")
        await until(pilot, lambda: "watching" in str(link.render()))
        telemetry.start()
        other.start()
        telemetry.publish("status", {"status": "running", "campaign": "weight transfer", "measurements": 10},
                          retain=True)
        telemetry.progress({"fraction": 0.25, "step": "program", "measurements": 120, "eta": 30.0}, force=True)
        other.progress({"fraction": 0.5, "step": "forming"}, force=True)  # another station: not shown
        table = app.query_one("#remote-runs")
        await until(pilot, lambda: table.row_count == 1 and "25 %" in table.get_row_at(0))
        row = table.get_row_at(0)
        assert row[:4] == ["probe-7", "run-42", "weight transfer", "running"]
        assert row[5:7] == ["program", "120"]
        telemetry.progress({"fraction": 1.0, "step": "program", "measurements": 480}, force=True)
        telemetry.publish("status", {"status": "complete", "campaign": "weight transfer"}, retain=True)
        await until(pilot, lambda: table.get_row_at(0)[3] == "complete" and table.get_row_at(0)[4] == "100 %")
        assert table.row_count == 1
    telemetry.close()
    other.close()


async def test_status_bar_shows_the_link_lost_and_reconnected(tmp_path) -> None:
    array = emulator.Array(4, 4, seed=0)
    controller = ChipController(array)
    server = await serve_tcp(controller, "127.0.0.1", 0)
    port = server.address[1] if isinstance(server.address, tuple) else int(str(server.address).rsplit(":", 1)[1])
    address = f"tcp://127.0.0.1:{port}"
    app = ProbeStationApp(lambda: ChipBackend(address, timeout=0.3, retries=1),
                          store_path=str(tmp_path / "runs.sqlite"))
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.map_updates >= 1)
            status = app.query_one("#status")
            assert "chip 4×4" in str(status.render()) and "connected" in str(status.render())
            await server.close()
            await pilot.press("a")  # a read on the dead link
            await until(pilot, lambda: app.session.state.state == "reconnecting")
            # the status bar follows the session state by message: wait for it to show, not just to happen
            await until(pilot, lambda: "reconnecting" in str(status.render()))
            server = await serve_tcp(controller, "127.0.0.1", port)
            await until(pilot, lambda: app.session.state.state == "connected" and app.session.state.reconnects == 1)
            await until(pilot, lambda: "reconnected 1×" in str(status.render()))
            await pilot.press("a")  # and the link works again
            await until(pilot, lambda: app.map_updates >= 2)
    finally:
        await server.close()
        await controller.aclose()
