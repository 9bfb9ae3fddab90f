"""A TUI action is a one-step campaign: its stored campaign text runs again with `labctl run` and
measures the same thing."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from labctl.backends.emulator import EmulatorBackend
from labctl.campaigns.plan import load_campaign
from labctl.campaigns.store import Store
from labctl.tui.app import ProbeStationApp
from helpers import SIZE, connected, run_form

pytestmark = pytest.mark.timeout(120)
SEED = 5


class QuietMap(EmulatorBackend):
    """The emulator whose whole-array read (the map the TUI shows on connect) is noise-free, so it draws
    nothing from the generators: the first action then starts from the array a fresh seed gives."""

    async def read_array(self, v_read: float = 0.2, vg: float = 3.3) -> np.ndarray:
        return self.array.read_all(v_read, vg, noisy=False)


def _batches(store: Store, run_id: str) -> list:
    out, seq = [], 0
    while (m := store.load_batch(run_id, 0, 0, seq)) is not None:
        out.append(m)
        seq += 1
    return out


async def test_a_stored_action_reruns_from_its_campaign_text_with_the_same_results(tmp_path) -> None:
    app = ProbeStationApp(lambda: QuietMap(8, 8, seed=SEED), store_path=str(tmp_path / "tui.sqlite"),
                          backend_table={"kind": "emulator", "seed": SEED, "preset": "cmo-hfox"})
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot, app)
        await pilot.press("down", "right", "shift+down", "shift+right")
        for key, values in (("f", None), ("p", {"targets": "40 uS", "tolerance": "0.02"}),
                            ("u", {"v": "-1.3 V", "vg": "3.3 V", "count": "2"}), ("r", None),
                            ("i", {"cycles": "1"}), ("e", {"times": "1 s, 10 s"})):
            await run_form(pilot, app, key, values)
            assert app.last_error is None, app.last_error

    with Store(tmp_path / "tui.sqlite") as store:
        runs = sorted(store.runs(), key=lambda r: r.created_at)
        assert [r.name for r in runs] == ["tui: form", "tui: program", "tui: pulse", "tui: read", "tui: iv",
                                          "tui: retention"]
        # Every stored action is a campaign file that plans exactly the action: its routine, its cells,
        # its parameters.
        for r in runs:
            loaded = load_campaign(r.campaign_toml, r.name)
            (unit,) = loaded.units
            stored = store.units(r.run_id)[0]
            assert unit.routine == stored.routine and unit.step_name == r.name.removeprefix("tui: ")
            assert unit.params.model_dump(mode="json") == stored.params
            assert unit.rows.tolist() == [1, 1, 2, 2] and unit.cols.tolist() == [1, 2, 1, 2]
        first = runs[0]
        text, tui_batches = first.campaign_toml, _batches(store, first.run_id)

    path = tmp_path / "form.toml"
    path.write_text(text)
    proc = subprocess.run([sys.executable, "-m", "labctl.campaigns.cli", "run", str(path),
                           "--store", str(tmp_path / "rerun.sqlite"), "--no-report"],
                          capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr
    with Store(tmp_path / "rerun.sqlite") as store:
        (rerun,) = store.runs()
        assert rerun.status == "complete" and rerun.name == "tui: form"
        again = _batches(store, rerun.run_id)
    assert len(again) == len(tui_batches) > 0
    for a, b in zip(tui_batches, again):
        assert (a.kind, a.t) == (b.kind, b.t)
        assert np.array_equal(a.rows, b.rows) and np.array_equal(a.cols, b.cols)
        assert a.values.keys() == b.values.keys()
        for k in a.values:
            assert np.array_equal(a.values[k], b.values[k], equal_nan=True), k
    assert first.campaign["backend"]["seed"] == SEED
