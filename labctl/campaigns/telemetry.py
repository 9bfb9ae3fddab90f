"""MQTT telemetry of a run (topics and payloads in docs/telemetry.md).

The publisher runs aiomqtt in its own thread with its own event loop, so that neither a slow or absent
broker can stall the campaign nor a busy campaign (the in-process emulator rarely yields) starve the
connection. The campaign hands messages to a bounded buffer and never waits: when the buffer is full
the oldest message is dropped and counted. The thread reconnects with exponential backoff (0.2 s up to
5 s) and resends what is buffered. A last will marks the run `lost` if the process dies.
"""
from __future__ import annotations

import asyncio
import collections
import json
import os
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool


def parse_broker(url: str) -> BrokerAddress:
    """mqtt://host[:port] (default 1883) or mqtts://host[:port] (default 8883)."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        # Credentials in a URL end up in shell history, the store and every printout: refused, and not
        # repeated in the message.
        shown = f"{parts.scheme}://***@{parts.netloc.rpartition('@')[2]}"
        raise ValueError(f"telemetry.broker: {shown}: a broker URL may not hold a user name or password; "
                         "set [telemetry] username and password_env (the name of an environment variable "
                         "that holds the password) instead")
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(f"telemetry.broker: expected mqtt://host:port or mqtts://host:port, got {url!r}")
    tls = parts.scheme == "mqtts"
    return BrokerAddress(parts.hostname, parts.port or (8883 if tls else 1883), tls)


@dataclass(frozen=True)
class TelemetryConfig:
    broker: str
    station: str
    topic_prefix: str = "labctl"
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    tls_insecure: bool = False
    buffer: int = 1000
    progress_interval: float = 0.5  # s, least time between two progress messages


def telemetry_config(campaign: Any, mqtt: str | None = None, campaign_path: str | None = None
                     ) -> TelemetryConfig | None:
    """The telemetry of a run from the campaign's [telemetry] table (labctl.campaigns.schema.Campaign) and a
    --mqtt URL that overrides its broker; None if neither names a broker.

    The password comes from the environment variable named by password_env; relative ca/cert/key file
    paths are taken relative to the campaign file's folder. ValueError naming the field (before anything
    runs) for a bad URL, an unset variable or a missing file."""
    spec = campaign.telemetry
    broker = mqtt or (spec.broker if spec else None)
    if broker is None:
        return None
    parse_broker(broker)
    if spec is None:
        return TelemetryConfig(broker=broker, station=socket.gethostname())
    password = os.environ.get(spec.password_env) if spec.password_env else None
    if spec.password_env and password is None:
        raise ValueError(f"telemetry.password_env: environment variable {spec.password_env!r} is not set")
    base = Path(campaign_path).expanduser().parent if campaign_path else Path.cwd()
    files: dict[str, str | None] = {}
    for field in ("ca_file", "cert_file", "key_file"):
        name = getattr(spec, field)
        if name is None:
            files[field] = None
            continue
        path = base / Path(name).expanduser()
        if not path.is_file():
            raise ValueError(f"telemetry.{field}: no file {str(path)!r}")
        files[field] = str(path)
    return TelemetryConfig(broker=broker, station=spec.station, topic_prefix=spec.topic_prefix,
                           username=spec.username, password=password, tls_insecure=spec.tls_insecure,
                           buffer=spec.buffer, progress_interval=spec.progress_interval, **files)


class Telemetry:
    """Publishes a run's status, progress and step summaries; never blocks the caller."""

    def __init__(self, config: TelemetryConfig, run_id: str, kind: str = "runs") -> None:
        """kind: "runs" for a run (topics <prefix>/<station>/runs/<run>/...), "sweeps" for a sweep."""
        self.config = config
        self.address = parse_broker(config.broker)
        self.run_id = run_id
        self.base = f"{config.topic_prefix}/{config.station}"
        self.run_topic = f"{self.base}/{kind}/{run_id}"
        self._queue: collections.deque[tuple[str, bytes, bool]] = collections.deque()
        self._lock = threading.Lock()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._stopped = False  # set when close() gave up waiting: the thread ends at its next turn
        self._thread: threading.Thread | None = None
        self._last_progress = 0.0
        self.dropped = 0
        self.sent = 0
        self.connects = 0
        self.last_error: str | None = None

    # -- the campaign's side (any thread, never blocks)
    def publish(self, suffix: str, payload: dict[str, Any], *, retain: bool = False) -> None:
        """Queue one message for <prefix>/<station>/runs/<run>/<suffix> (JSON payload)."""
        self._put(f"{self.run_topic}/{suffix}", payload, retain)

    def publish_station(self, payload: dict[str, Any]) -> None:
        """The station's own retained status: what it runs now."""
        self._put(f"{self.base}/status", payload, True)

    def progress(self, payload: dict[str, Any], *, force: bool = False) -> None:
        """Queue a progress message, at most one per progress_interval unless forced."""
        now = time.monotonic()
        if force or now - self._last_progress >= self.config.progress_interval:
            self._last_progress = now
            self.publish("progress", payload)

    def _put(self, topic: str, payload: dict[str, Any], retain: bool) -> None:
        body = {**payload, "run_id": self.run_id, "station": self.config.station, "time": time.time()}
        data = json.dumps(body, default=str).encode()
        with self._lock:
            if len(self._queue) >= self.config.buffer:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append((topic, data, retain))
        if self._loop is not None and self._wake is not None:
            try:
                self._loop.call_soon_threadsafe(self._wake.set)
            except RuntimeError:  # the loop has closed
                pass

    def stats(self) -> dict[str, Any]:
        with self._lock:
            pending = len(self._queue)
        return {"broker": self.config.broker, "sent": self.sent, "dropped": self.dropped, "pending": pending,
                "connects": self.connects, "last_error": self.last_error}

    # -- lifecycle
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run_thread, name="labctl-telemetry", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 2.0) -> dict[str, Any]:
        """Try for up to `timeout` s to send what is buffered, then stop; unsent messages count as dropped."""
        self._closing = True
        if self._loop is not None and self._wake is not None:
            try:
                self._loop.call_soon_threadsafe(self._wake.set)
            except RuntimeError:
                pass
        if self._thread is not None:
            self._thread.join(timeout)
        self._stopped = True
        with self._lock:
            self.dropped += len(self._queue)
            self._queue.clear()
        return self.stats()

    def _run_thread(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._pump())
        finally:
            self._loop = None
            loop.close()

    def _tls_context(self) -> ssl.SSLContext | None:
        c = self.config
        if not self.address.tls:
            return None
        ctx = ssl.create_default_context(cafile=c.ca_file)
        if c.cert_file:
            ctx.load_cert_chain(c.cert_file, c.key_file)
        if c.tls_insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    async def _pump(self) -> None:
        import aiomqtt

        self._wake = asyncio.Event()
        backoff = 0.2
        will = aiomqtt.Will(topic=f"{self.run_topic}/status", payload=json.dumps(
            {"run_id": self.run_id, "station": self.config.station, "status": "lost"}).encode(), qos=1, retain=True)
        while not self._stopped:
            with self._lock:
                empty = not self._queue
            if self._closing and empty:
                return
            try:
                async with aiomqtt.Client(self.address.host, self.address.port, username=self.config.username,
                                          password=self.config.password, tls_context=self._tls_context(),
                                          tls_insecure=self.config.tls_insecure if self.address.tls else None,
                                          will=will, timeout=2.0, keepalive=10,
                                          identifier=f"labctl-{self.config.station}-{self.run_id}") as client:
                    self.connects += 1
                    backoff = 0.2
                    while True:
                        with self._lock:
                            item = self._queue[0] if self._queue else None
                        if item is None:
                            if self._closing:
                                return
                            self._wake.clear()
                            try:
                                await asyncio.wait_for(self._wake.wait(), 1.0)
                            except asyncio.TimeoutError:
                                pass
                            continue
                        topic, data, retain = item
                        await client.publish(topic, data, qos=1, retain=retain, timeout=2.0)
                        with self._lock:
                            # The deque may have dropped its head meanwhile; only pop what was sent.
                            if self._queue and self._queue[0] is item:
                                self._queue.popleft()
                        self.sent += 1
            except Exception as exc:  # broker gone, refused, TLS failure: keep the campaign going
                self.last_error = f"{type(exc).__name__}: {exc}"
            # Back off before reconnecting, but notice a close at once.
            delay = 0.1 if self._closing else backoff
            deadline = time.monotonic() + delay
            while time.monotonic() < deadline and not (self._closing and delay > 0.1):
                await asyncio.sleep(0.05)
            backoff = min(backoff * 2, 5.0)
