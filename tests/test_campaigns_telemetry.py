"""Telemetry against a real mosquitto broker on loopback, including a broker restart mid-run."""
from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import time

import aiomqtt
import pytest

from labctl.campaigns import Runner, Store
from labctl.campaigns.telemetry import Telemetry, TelemetryConfig

from helpers import FORMING_STEP, campaign_text, host_loop_campaign
from mqtt_broker import Broker, free_port


SHORT = campaign_text("telemetry", 8, 8, 2, FORMING_STEP + """chunk_cells = 32

[[steps]]
routine = "program"
params = { levels = [20e-6, 60e-6] }
""")

LONG = host_loop_campaign("telemetry-long", size=16, seed=4, repeat=4, extra="""
[telemetry]
broker = "mqtt://127.0.0.1:1"
station = "probe-7"
progress_interval = 0.05
""")


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path, free_port())
    b.start()
    yield b
    b.stop()


async def collect(port: int, topic: str, into: list, stop: asyncio.Event, ready: asyncio.Event | None = None):
    """Subscribe with a real client and append (topic, payload) until `stop`; reconnects if the broker goes."""
    while not stop.is_set():
        try:
            async with aiomqtt.Client("127.0.0.1", port, timeout=2) as client:
                await client.subscribe(topic, qos=1)
                if ready is not None:
                    ready.set()
                async for msg in client.messages:
                    into.append((str(msg.topic), json.loads(msg.payload), time.monotonic()))
                    if stop.is_set():
                        return
        except aiomqtt.MqttError:
            await asyncio.sleep(0.1)


async def test_status_progress_and_step_summaries_reach_a_subscriber(tmp_path, broker):
    got: list = []
    stop, ready = asyncio.Event(), asyncio.Event()
    sub = asyncio.create_task(collect(broker.port, "lab/#", got, stop, ready))
    await asyncio.wait_for(ready.wait(), 10)
    config = TelemetryConfig(broker=f"mqtt://127.0.0.1:{broker.port}", station="bench-1", topic_prefix="lab",
                             progress_interval=0.0)
    with Store(tmp_path / "runs.sqlite") as store:
        runner = Runner.new(store, SHORT, "short.toml", telemetry=config)
        result = await runner.run()
        assert result.status == "complete"
        base = f"lab/bench-1/runs/{result.run_id}"
        deadline = time.monotonic() + 10
        while not any(t == f"{base}/status" and p["status"] == "complete" for t, p, _ in got):
            assert time.monotonic() < deadline, got
            await asyncio.sleep(0.05)
        stop.set()
        sub.cancel()
        statuses = [p["status"] for t, p, _ in got if t == f"{base}/status"]
        assert statuses[0] == "running" and statuses[-1] == "complete"
        assert any(t == "lab/bench-1/status" and p["run_id"] == result.run_id for t, p, _ in got)
        fractions = [p["fraction"] for t, p, _ in got if t == f"{base}/progress"]
        assert fractions and fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
        # One summary per step, equal to what the store recorded for the step's units.
        units = store.units(result.run_id)
        for step in (0, 1):
            msgs = [p for t, p, _ in got if t == f"{base}/steps/{step}/summary"]
            assert len(msgs) == 1
            stored = [u.summary for u in units if u.step_index == step]
            if len(stored) == 1:
                assert msgs[0]["summary"] == stored[0]
            else:  # forming ran in two chunks of 32 cells: counts add up
                assert msgs[0]["summary"]["cells"] == sum(s["cells"] for s in stored) == 64
        assert store.run(result.run_id).telemetry["dropped"] == 0
        assert result.telemetry["sent"] == len([1 for t, _, _ in got if t.startswith("lab/bench-1/")])


async def test_broker_restart_mid_run_does_not_fail_or_stall_the_campaign(tmp_path, broker):
    f = tmp_path / "long.toml"
    f.write_text(LONG)
    store = tmp_path / "runs.sqlite"
    got: list = []
    stop, ready = asyncio.Event(), asyncio.Event()
    sub = asyncio.create_task(collect(broker.port, "labctl/probe-7/#", got, stop, ready))
    await asyncio.wait_for(ready.wait(), 10)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "labctl.campaigns.cli", "run", str(f), "--store", str(store), "--no-report",
        "--mqtt", f"mqtt://127.0.0.1:{broker.port}", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not any(t.endswith("/progress") for t, _, _ in got):
        assert time.monotonic() < deadline and proc.returncode is None
        await asyncio.sleep(0.02)
    broker.stop()
    t_down = time.monotonic()
    await asyncio.sleep(0.6)
    running = proc.returncode is None
    broker.start()
    t_up = time.monotonic()
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert running, "the campaign ended before the broker came back; make it longer"
    assert proc.returncode == 0, out.decode() + err.decode()
    deadline = time.monotonic() + 15
    while not any(t.endswith("/status") and p["status"] == "complete" for t, p, _ in got):
        assert time.monotonic() < deadline, "the final status never reached the subscriber"
        await asyncio.sleep(0.05)
    stop.set()
    sub.cancel()
    assert any(t.endswith("/progress") and at > t_up for t, _, at in got)  # publishing resumed
    assert any(t.endswith("/progress") and at < t_down for t, _, at in got)
    db = sqlite3.connect(store)
    status, telemetry = db.execute("SELECT status, telemetry_json FROM runs").fetchone()
    db.close()
    stats = json.loads(telemetry)
    assert status == "complete"
    assert stats["connects"] >= 2  # it reconnected
    assert f"{stats['sent']} sent, {stats['dropped']} dropped" in out.decode()


def test_no_broker_never_stalls_and_counts_dropped_messages(tmp_path):
    f = tmp_path / "short.toml"
    f.write_text(SHORT)
    port = free_port()  # nothing listens there
    proc = subprocess.run([sys.executable, "-m", "labctl.campaigns.cli", "run", str(f), "--store", str(tmp_path / "r.sqlite"),
                           "--no-report", "--mqtt", f"mqtt://127.0.0.1:{port}"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "complete" in proc.stdout
    db = sqlite3.connect(tmp_path / "r.sqlite")
    stats = json.loads(db.execute("SELECT telemetry_json FROM runs").fetchone()[0])
    assert stats["sent"] == 0 and stats["dropped"] > 0 and stats["connects"] == 0
    assert f"0 sent, {stats['dropped']} dropped" in proc.stdout


def test_the_buffer_is_bounded_and_drops_the_oldest():
    t = Telemetry(TelemetryConfig(broker=f"mqtt://127.0.0.1:{free_port()}", station="s", buffer=10), "run-1")
    for k in range(100):
        t.publish("progress", {"k": k})
    assert t.dropped == 90
    assert [json.loads(d)["k"] for _, d, _ in t._queue] == list(range(90, 100))
    stats = t.close(timeout=0.1)  # never started: everything still buffered is dropped
    assert stats["dropped"] == 100 and stats["sent"] == 0
