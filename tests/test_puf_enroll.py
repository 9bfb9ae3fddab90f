"""Enrollment and reconstruction through the backend, the CLI, campaigns (store and telemetry on a
real mosquitto), and a small batch evaluation; nothing secret may reach logs, store or telemetry."""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import subprocess
import sys
import time

import numpy as np
import pytest

from labctl.backends.emulator import EmulatorBackend
from labctl.puf import codes, responses
from labctl.puf.enroll import EnrollmentError, EnrollParams, enroll, enroll_core, reconstruct
from labctl.puf.extractor import KeyReconstructionError
from labctl.puf.helper import HelperData

from mqtt_broker import Broker



@pytest.mark.parametrize("method", ["pairs", "median", "forming"])
async def test_key_comes_back_after_relaxation_and_at_another_read_bias(method):
    backend = EmulatorBackend(32, 32, seed=12)
    e = await enroll(backend, EnrollParams(method=method, prepare="form_set"))
    assert e.report["stable_positions"] >= e.helper.design.used_positions
    assert e.report["code_design"]["chosen"]["p_key"] <= 1e-6
    await backend.wait(86400.0)
    assert (await reconstruct(backend, e.helper)).key == e.key
    assert (await reconstruct(backend, e.helper, v_read=0.15)).key == e.key
    # another chip with the same helper data: an error, not a key
    other = EmulatorBackend(32, 32, seed=13)
    if method != "forming":
        await enroll(other, EnrollParams(method=method, prepare="form_set"))  # a prepared, different chip
    with pytest.raises(KeyReconstructionError):
        await reconstruct(other, e.helper)


async def test_enrollment_refuses_pristine_cells_and_masks_unstable_bits():
    with pytest.raises(EnrollmentError, match="pristine"):
        await enroll(EmulatorBackend(16, 16, seed=1))
    backend = EmulatorBackend(32, 32, seed=2)
    e, stab = await enroll_core(backend, EnrollParams(prepare="form_set", min_margin=0.2))
    mask = e.helper.mask.to_array().astype(bool)
    assert np.array_equal(mask, stab.stable) and 0 < mask.sum() < mask.size
    g = np.stack([await responses.read_cells(backend, responses.Cells.whole_array(32, 32), 0.2, 3.3)
                  for _ in range(20)])
    bits, margins, _ = responses.bits_and_margins("pairs", g)
    flips = np.any(bits != bits[0], axis=0)
    assert not flips[mask].any()  # kept positions are steady; the unsteady ones were masked
    assert np.all(margins.mean(axis=0)[mask] >= 0.2 * 0.9)


async def test_reconstruction_fails_cleanly_beyond_the_design_error_rate():
    backend = EmulatorBackend(32, 32, seed=8)
    e, stab = await enroll_core(backend, EnrollParams(prepare="form_set"))
    from labctl.puf.enroll import reconstruct_from_bits

    rng = np.random.default_rng(0)
    design = e.helper.design.design_ber
    ok = 0
    for _ in range(30):
        noisy = np.where(rng.random(stab.reference.size) < design, 1 - stab.reference, stab.reference)
        ok += reconstruct_from_bits(noisy.astype(np.uint8), e.helper).key == e.key
    assert ok == 30
    for _ in range(30):
        noisy = np.where(rng.random(stab.reference.size) < 0.2, 1 - stab.reference, stab.reference)
        with pytest.raises(KeyReconstructionError):
            reconstruct_from_bits(noisy.astype(np.uint8), e.helper)


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "labctl.cli", "puf", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def test_cli_enroll_then_reconstruct_and_failure_exit_code(tmp_path):
    be = "emulator:16x16?seed=21"
    r = cli("enroll", "--backend", be, "--state", "chip.bin", "--prepare", "form_set", "--helper", "h.json",
            "--secret-bits", "64", "--ber-floor", "0.005", "--key-out", "k1", "--report", "r.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "p_key" in r.stdout and "BCH(m=" in r.stdout
    key = (tmp_path / "k1").read_text().strip()
    assert key not in r.stdout + r.stderr and key not in (tmp_path / "h.json").read_text()
    assert (tmp_path / "k1").stat().st_mode & 0o077 == 0
    r = cli("reconstruct", "--backend", be, "--state", "chip.bin", "--helper", "h.json", "--wait", "3600",
            "--key-out", "k2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "k2").read_text().strip() == key
    r = cli("reconstruct", "--backend", "emulator:16x16?seed=22", "--helper", "h.json", cwd=tmp_path)
    assert r.returncode == 1 and "key reconstruction failed" in r.stderr
    r = cli("reconstruct", "--backend", "emulator:8x8", "--helper", "h.json", cwd=tmp_path)
    assert r.returncode == 2 and "16x16" in r.stderr




async def test_campaign_steps_keep_secrets_out_of_store_telemetry_and_logs(tmp_path, caplog):
    import aiomqtt

    from labctl.campaigns import Runner, Store
    from labctl.campaigns.backend import restore_state
    from labctl.campaigns.telemetry import TelemetryConfig
    from labctl.puf.enroll import code_params, helper_cells, reconstruct_from_bits

    caplog.set_level(logging.DEBUG)
    helper_file = tmp_path / "helper.json"  # relative to the campaign file, which is in tmp_path
    campaign = f"""\
[campaign]
name = "puf"

[backend]
rows = 16
cols = 16
seed = 31

[[steps]]
routine = "puf_enroll"
params = {{ prepare = "form_set", secret_bits = 64, ber_floor = 0.005, helper_file = "{helper_file.name}" }}

[[steps]]
routine = "puf_evaluate"
params = {{ helper_file = "{helper_file.name}" }}
"""
    broker = Broker(tmp_path).start()
    got: list[tuple[str, bytes]] = []
    ready, stop = asyncio.Event(), asyncio.Event()

    async def collect():
        async with aiomqtt.Client("127.0.0.1", broker.port, timeout=2) as client:
            await client.subscribe("#", qos=1)
            ready.set()
            async for msg in client.messages:
                got.append((str(msg.topic), bytes(msg.payload)))

    sub = asyncio.create_task(collect())
    try:
        await asyncio.wait_for(ready.wait(), 10)
        db = tmp_path / "runs.sqlite"
        config = TelemetryConfig(broker=f"mqtt://127.0.0.1:{broker.port}", station="s1", topic_prefix="lab",
                                 progress_interval=0.0)
        with Store(db) as store:
            result = await Runner.new(store, campaign, str(tmp_path / "puf.toml"), telemetry=config).run()
            assert result.status == "complete", result
            units = store.units(result.run_id)
            summaries = [u.summary for u in units]
            _, state = store.state(result.run_id)
        assert summaries[1]["reconstructed"] is True
        assert HelperData.from_json(summaries[0]["helper_data"]) == HelperData.load(helper_file)
        deadline = time.monotonic() + 10
        while not any(t.endswith("/steps/1/summary") for t, _ in got):
            assert time.monotonic() < deadline, [t for t, _ in got]
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        sub.cancel()
        broker.stop()
    # The secrets of this enrollment, recovered from the chip as the campaign left it
    helper = HelperData.load(helper_file)
    backend = EmulatorBackend(16, 16, seed=31)
    restore_state(backend, state)
    g = await responses.read_cells(backend, helper_cells(helper), 0.2, 3.3)
    bits, _, _ = responses.bits_and_margins("pairs", g)
    key = reconstruct_from_bits(bits, helper).key
    w = bits[helper.mask.to_array().astype(bool)][:helper.offset.bits]
    secret, _ = codes.decode(code_params(helper), w ^ helper.offset.to_array())
    response = np.packbits(bits).tobytes()
    needles = {"key": key, "secret": secret, "response": response}
    encodings = []
    for name, raw in needles.items():
        encodings += [(name, raw), (name, raw.hex().encode()), (name, base64.b64encode(raw)[:-4])]
    encodings.append(("response bits", "".join(map(str, bits[:96])).encode()))
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("runs.sqlite*"))
    telemetry = b"".join(t.encode() + p for t, p in got)
    logs = "\n".join(r.getMessage() for r in caplog.records).encode()
    assert got and logs
    for where, blob in (("store", stored), ("telemetry", telemetry), ("logs", logs),
                        ("helper file", helper_file.read_bytes())):
        for name, needle in encodings:
            assert needle not in blob, f"{name} found in the {where}"


async def test_batch_evaluation_report_and_plots(tmp_path):
    from labctl.puf.evaluate import Condition, EvaluationParams, evaluate_batch, write_outputs

    params = EvaluationParams(arrays=12, rows=16, cols=16,
                              enroll=EnrollParams(prepare="form_set", secret_bits=64, ber_floor=0.005),
                              conditions=[Condition(label="now", after=0.0),
                                          Condition(label="1 h at 0.25 V", after=3600.0, v_read=0.25)],
                              entropy_assessment=False)
    ev = await evaluate_batch(params)
    r = ev.report
    assert r["devices_enrolled"] == 12 and r["response_bits"] == 128
    assert 0.4 < r["uniqueness"]["mean"] < 0.6 and 0.4 < r["uniformity"]["mean"] < 0.6
    assert r["steadiness"]["now"]["mean"] > 0.97
    assert r["key_reconstruction"]["attempts"] == 24 and r["key_reconstruction"]["wrong_keys"] == 0
    assert r["key_reconstruction"]["failures"] == 0
    paths = write_outputs(ev, tmp_path)
    assert json.loads(paths["report"].read_text())["devices_enrolled"] == 12
    for name in ("fhd_histogram", "bit_statistics"):
        assert paths[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
