"""Telemetry over TLS with username and password, against a real mosquitto that allows nothing else."""
from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import ssl
import subprocess
import sys
import time

import aiomqtt
import pytest

from labctl.campaigns.model import load_campaign
from labctl.campaigns.telemetry import telemetry_config

from helpers import FORMING_STEP, campaign_text
from mqtt_broker import Broker, free_port, make_tls_files

USER, PASSWORD = "probe-station-3", "s3cret-Telemetry-pw"

CAMPAIGN = campaign_text("tls telemetry", 8, 8, 5, FORMING_STEP + """
[telemetry]
broker = "mqtts://localhost:{port}"
station = "probe-3"
username = "{user}"
password_env = "LABCTL_TEST_MQTT_PASSWORD"
{ca}
""")


@pytest.fixture
def secure_broker(tmp_path):
    tls = make_tls_files(tmp_path)
    b = Broker(tmp_path, free_port(), tls=tls, users={USER: PASSWORD})
    b.start()
    yield b, tls
    b.stop()


def run_campaign(tmp_path, port: int, password: str, ca: str = 'ca_file = "ca.pem"') -> tuple[subprocess.CompletedProcess, dict]:
    """`labctl run` in a subprocess with the password in the environment; returns it and the stored stats."""
    f = tmp_path / "tls.toml"  # ca.pem is next to it: a relative ca_file is found from the campaign's folder
    f.write_text(CAMPAIGN.format(port=port, user=USER, ca=ca))
    store = tmp_path / "runs.sqlite"
    env = {**os.environ, "LABCTL_TEST_MQTT_PASSWORD": password}
    proc = subprocess.run([sys.executable, "-m", "labctl.campaigns.cli", "run", str(f), "--store", str(store),
                           "--no-report"], capture_output=True, text=True, timeout=120, env=env, cwd="/")
    db = sqlite3.connect(store)
    stats = json.loads(db.execute("SELECT telemetry_json FROM runs ORDER BY created_at DESC").fetchone()[0])
    db.close()
    return proc, stats


async def test_run_publishes_over_tls_with_credentials_and_stores_no_password(tmp_path, secure_broker):
    broker, tls = secure_broker
    got: list = []
    ready = asyncio.Event()

    async def subscribe() -> None:
        ctx = ssl.create_default_context(cafile=str(tls.ca))
        async with aiomqtt.Client("localhost", broker.port, username=USER, password=PASSWORD, tls_context=ctx,
                                  timeout=5) as client:
            await client.subscribe("labctl/probe-3/#", qos=1)
            ready.set()
            async for msg in client.messages:
                got.append((str(msg.topic), json.loads(msg.payload)))

    sub = asyncio.create_task(subscribe())
    await asyncio.wait_for(ready.wait(), 10)
    proc, stats = await asyncio.to_thread(run_campaign, tmp_path, broker.port, PASSWORD)
    assert proc.returncode == 0, proc.stderr
    assert stats["connects"] >= 1 and stats["dropped"] == 0 and stats["last_error"] is None and stats["sent"] > 0
    deadline = time.monotonic() + 15
    while len(got) < stats["sent"]:  # every message sent reaches the authenticated subscriber
        assert time.monotonic() < deadline, (stats, got)
        await asyncio.sleep(0.05)
    sub.cancel()
    assert len(got) == stats["sent"]
    assert [p["status"] for t, p in got if t.endswith("/status") and "/runs/" in t] == ["running", "complete"]
    assert any(t.endswith("/progress") for t, _ in got)
    # The password was only ever in the environment: not in the store, not in what was published.
    assert PASSWORD.encode() not in (tmp_path / "runs.sqlite").read_bytes()
    assert all(PASSWORD not in json.dumps(p) for _, p in got)


def test_a_wrong_password_is_reported_and_the_run_still_completes(tmp_path, secure_broker):
    broker, _ = secure_broker
    proc, stats = run_campaign(tmp_path, broker.port, "not-the-password")
    assert proc.returncode == 0 and "complete" in proc.stdout, proc.stderr
    assert stats["sent"] == 0 and stats["connects"] == 0 and stats["dropped"] > 0
    assert "authori" in stats["last_error"].lower()  # "Not authorized" (MQTT 5) / "Not authorised" (3.1.1)


def test_a_broker_certificate_from_an_unknown_ca_is_refused(tmp_path, secure_broker):
    broker, _ = secure_broker
    proc, stats = run_campaign(tmp_path, broker.port, PASSWORD, ca="")  # the system's CAs only
    assert proc.returncode == 0 and "complete" in proc.stdout, proc.stderr
    assert stats["sent"] == 0 and stats["connects"] == 0
    assert "certificate verify failed" in stats["last_error"].lower()


def test_telemetry_files_and_password_are_checked_before_anything_runs(tmp_path, monkeypatch):
    text = CAMPAIGN.format(port=8883, user=USER, ca='ca_file = "missing-ca.pem"')
    campaign = load_campaign(text, str(tmp_path / "c.toml")).campaign
    monkeypatch.delenv("LABCTL_TEST_MQTT_PASSWORD", raising=False)
    with pytest.raises(ValueError, match="telemetry.password_env: environment variable 'LABCTL_TEST_MQTT_PASSWORD'"):
        telemetry_config(campaign, None, str(tmp_path / "c.toml"))
    monkeypatch.setenv("LABCTL_TEST_MQTT_PASSWORD", "x")
    with pytest.raises(ValueError, match=r"telemetry.ca_file: no file '.*missing-ca\.pem'"):
        telemetry_config(campaign, None, str(tmp_path / "c.toml"))
    (tmp_path / "missing-ca.pem").write_text("")
    config = telemetry_config(campaign, "mqtts://other:9999", str(tmp_path / "c.toml"))
    assert config.broker == "mqtts://other:9999" and config.ca_file == str(tmp_path / "missing-ca.pem")
    assert config.username == USER and config.password == "x"
    assert telemetry_config(load_campaign(text.split("[telemetry]")[0], "x.toml").campaign) is None
