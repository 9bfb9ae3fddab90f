"""Remote watch: follow another station's runs through its MQTT telemetry (docs/telemetry.md).

Topics (labctl.campaigns.telemetry): <prefix>/<station>/status (retained, what the station runs),
<prefix>/<station>/runs/<run>/status (retained), .../progress, .../steps/<i>/summary. `watch`
subscribes to <prefix>/<station>/# (station "+" for every station) and yields one RemoteRun
snapshot per message that changed it; it reconnects with backoff and reports the link through
`on_link`.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from labctl.campaigns.telemetry import parse_broker


@dataclass(frozen=True)
class RemoteRun:
    """What the telemetry said last about one run."""

    station: str
    run_id: str
    status: str = "?"
    campaign: str = ""
    fraction: float | None = None
    step: str = ""
    measurements: int | None = None
    eta: float | None = None
    summaries: dict[str, Any] = field(default_factory=dict)


def apply_message(runs: dict[tuple[str, str], RemoteRun], topic: str, payload: dict[str, Any],
                  prefix: str = "labctl") -> RemoteRun | None:
    """Fold one telemetry message into `runs`; returns the run it changed (None if not about a run)."""
    parts = topic.split("/")
    base = prefix.split("/")
    if parts[:len(base)] != base:
        return None
    rest = parts[len(base):]
    if len(rest) < 4 or rest[1] != "runs":
        return None
    station, run_id, kind = rest[0], rest[2], rest[3:]
    key = (station, run_id)
    run = runs.get(key, RemoteRun(station, run_id))
    if kind == ["status"]:
        run = replace(run, status=str(payload.get("status", run.status)),
                      campaign=str(payload.get("campaign", run.campaign)),
                      measurements=payload.get("measurements", run.measurements))
    elif kind == ["progress"]:
        run = replace(run, fraction=payload.get("fraction", run.fraction), step=str(payload.get("step", run.step)),
                      measurements=payload.get("measurements", run.measurements), eta=payload.get("eta"),
                      status="running" if run.status in ("?", "lost") else run.status)
    elif len(kind) == 3 and kind[0] == "steps" and kind[2] == "summary":
        run = replace(run, summaries={**run.summaries, str(payload.get("step", kind[1])): payload.get("summary", {})})
    else:
        return None
    runs[key] = run
    return run


async def watch(broker: str, station: str = "+", prefix: str = "labctl",
                on_link: Callable[[str], None] = lambda s: None) -> AsyncIterator[RemoteRun]:
    """Yield run snapshots as the station's telemetry arrives, forever (cancel to stop)."""
    import aiomqtt

    address = parse_broker(broker)  # ValueError naming the URL
    runs: dict[tuple[str, str], RemoteRun] = {}
    delay = 0.2
    while True:
        try:
            async with aiomqtt.Client(address.host, address.port, timeout=2.0, keepalive=10,
                                      tls_params=aiomqtt.TLSParameters() if address.tls else None) as client:
                await client.subscribe(f"{prefix}/{station}/#", qos=1)
                on_link(f"watching {prefix}/{station}/# on {broker}")
                delay = 0.2
                async for message in client.messages:
                    try:
                        payload = json.loads(bytes(message.payload).decode())  # type: ignore[arg-type]
                    except (ValueError, TypeError):
                        continue
                    if not isinstance(payload, dict):
                        continue
                    run = apply_message(runs, str(message.topic), payload, prefix)
                    if run is not None:
                        yield run
        except aiomqtt.MqttError as exc:
            on_link(f"broker {broker}: {exc}; retrying in {delay:.1f} s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
