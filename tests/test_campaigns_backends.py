"""A campaign runs unchanged on the chip backend: same measurements as on the embedded emulator."""
from __future__ import annotations

import numpy as np
import pytest

import emulator
from emulator.controller import ChipController, serve_tcp
from labctl.campaigns import Runner, Store
from labctl.campaigns.model import BackendSpec

STEPS = """
[[steps]]
routine = "forming"

[[steps]]
routine = "conditioning"

[[steps]]
routine = "program"
params = { levels = [20e-6, 50e-6, 80e-6], tolerance = 0.01 }
"""


def campaign(backend: str) -> str:
    return f'[campaign]\nname = "backends"\n\n[backend]\n{backend}\n{STEPS}'


async def run(path, text: str) -> list:
    with Store(path) as store:
        result = await Runner.new(store, text, "c.toml").run()
        assert result.status == "complete"
        return list(store.measurement_rows(result.run_id))


async def test_campaign_on_chip_backend_equals_embedded_emulator(tmp_path) -> None:
    embedded = await run(tmp_path / "a.sqlite", campaign("rows = 8\ncols = 4\nseed = 3"))
    controller = ChipController(emulator.Array(8, 4, seed=3))
    server = await serve_tcp(controller, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        chip = await run(tmp_path / "b.sqlite", campaign(f'kind = "chip"\naddress = "tcp://127.0.0.1:{port}"'))
    finally:
        await server.close()
    assert len(chip) == len(embedded) > 0
    assert chip == embedded


async def test_a_chip_of_another_size_than_planned_is_refused_before_anything_is_applied(tmp_path) -> None:
    array = emulator.Array(8, 4, seed=3)
    server = await serve_tcp(ChipController(array), "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        text = f'[campaign]\nname = "size"\n\n[backend]\nkind = "chip"\naddress = "tcp://127.0.0.1:{port}"\n' \
               f'rows = 16\ncols = 16\n{STEPS}'
        with Store(tmp_path / "c.sqlite") as store:
            result = await Runner.new(store, text, "c.toml").run()
    finally:
        await server.close()
    assert result.status == "failed" and result.measurements == 0
    assert "backend.rows/cols" in result.errors[0] and "16x16" in result.errors[0] and "8x4" in result.errors[0]
    assert not array.pulse_counts().any() and not array.formed().any()


@pytest.mark.parametrize(("table", "field"), [({"kind": "chip"}, "address"), ({"kind": "station"}, "station"),
                                               ({"kind": "chip", "address": "http://x"}, "address")])
def test_backend_table_names_what_is_missing(table: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        BackendSpec(**table)


def test_addresses() -> None:
    assert BackendSpec(kind="station", station="st.toml", clock="tcp://127.0.0.1:9").address_spec() == \
        "station:st.toml?clock=tcp://127.0.0.1:9"
    assert np.isfinite(BackendSpec().rows)
