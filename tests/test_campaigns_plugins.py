"""Routine plugins: a routine defined outside labctl, in a package of its own that declares it in the
`labctl.routines` entry-point group, runs as a campaign step and stores its measurements; broken and
duplicate plugins are refused naming the entry point; finding routines imports none of them."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from labctl.campaigns import CampaignError, Runner, Store, load_campaign
from labctl.routines import registry

ROOT = Path(__file__).resolve().parents[1]

PLUGIN = '''
"""A lab's own routine: alternating potentiation / depression pulse pairs (an STDP-like scheme)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import Field

from labctl.routines.base import RoutineContext
from labctl.routines.params import RoutineParams, cell_arrays
from labctl.routines.results import RoutineResult, nanstat


class PairParams(RoutineParams):
    """Pulse pairs: a set pulse, a read, a reset pulse, a read."""

    pairs: int = Field(3, ge=1, le=1000, description="pulse pairs per cell")
    v_set: float = Field(1.35, gt=0, description="set amplitude, V")
    v_reset: float = Field(-1.3, lt=0, description="reset amplitude, V")
    vg_set: float = Field(1.4, ge=0, description="gate during set, V")
    vg_reset: float = Field(3.3, ge=0, description="gate during reset, V")
    width: float = Field(2.5e-6, gt=0, description="pulse width, s")
    v_read: float = Field(0.2, description="read bias, V")

    voltage_fields = ("v_set", "v_reset", "v_read")
    gate_fields = ("vg_set", "vg_reset")
    width_fields = ("width",)


@dataclass(frozen=True)
class PairResult(RoutineResult):
    """Last read after a set and after a reset pulse, per cell, S."""

    g_up: np.ndarray
    g_down: np.ndarray

    def summary(self):
        return {"cells": int(self.g_up.size), "window_mean_S": nanstat(np.mean, self.g_up - self.g_down)}


async def pulse_pairs(backend, rows, cols, params: PairParams, ctx: RoutineContext) -> PairResult:
    """Set / reset pulse pairs on the listed cells, a read after every pulse."""
    params.check_limits(backend.limits)
    r, c = cell_arrays(backend, rows, cols)
    for k in range(params.pairs):
        await backend.pulse(r, c, params.v_set, params.vg_set, params.width)
        up = await backend.read(r, c, params.v_read, 3.3)
        await backend.pulse(r, c, params.v_reset, params.vg_reset, params.width)
        down = await backend.read(r, c, params.v_read, 3.3)
        await ctx.emit("pair_read", r, c, await backend.now(), g_up=up, g_down=down, pair=k)
        ctx.progress(k + 1, params.pairs, "pulse pairs")
        await ctx.checkpoint()
    return PairResult(up, down)
'''

CAMPAIGN = """
[campaign]
name = "lab plugin"

[backend]
kind = "emulator"
rows = 4
cols = 4
seed = 2

[[steps]]
routine = "forming"

[[steps]]
routine = "pulse_pairs"
cells = { kind = "region", rows = [0, 2], cols = [0, 4] }
params = { pairs = 3, width = "2.5 us" }
"""


def write_dist(root: Path, name: str, entry_points: str, modules: dict[str, str] | None = None) -> Path:
    """A distribution as an installer leaves it: modules plus NAME-0.1.dist-info with its entry points."""
    root.mkdir(parents=True, exist_ok=True)
    for mod, text in (modules or {}).items():
        (root / f"{mod}.py").write_text(textwrap.dedent(text))
    info = root / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    return root


@pytest.fixture
def on_path(monkeypatch):
    """Put a directory on sys.path and re-read the registry; the registry is re-read after the test."""
    def add(path: Path) -> None:
        monkeypatch.syspath_prepend(str(path))
        registry.routines(refresh=True)
    yield add
    monkeypatch.undo()
    registry.routines(refresh=True)


def refusal(routine: str) -> str:
    """The CampaignError text of a one-step campaign naming `routine` (its step is on line 5)."""
    with pytest.raises(CampaignError) as info:
        load_campaign(f'[campaign]\nname = "x"\n\n[[steps]]\nroutine = "{routine}"\n', "c.toml")
    return str(info.value)


@pytest.fixture
def lab_plugin(tmp_path) -> Path:
    return write_dist(tmp_path / "site", "lab-routines", "[labctl.routines]\npulse_pairs = lab_routines:pulse_pairs\n",
                      {"lab_routines": PLUGIN})


def test_built_in_routines_are_entry_points_of_labctl() -> None:
    names = set(registry.routines())
    assert {"forming", "program", "pulse_train", "read", "pulses", "retention", "puf_enroll"} <= names
    assert all("labctl" in spec.source for spec in registry.routines().values())


async def test_a_routine_from_another_package_runs_as_a_step_and_stores_its_measurements(
        tmp_path, lab_plugin, on_path) -> None:
    on_path(lab_plugin)
    spec = registry.get("pulse_pairs")
    assert "lab-routines 0.1" in spec.source and spec.params.__name__ == "PairParams"
    loaded = load_campaign(CAMPAIGN)
    assert [u.routine for u in loaded.units] == ["forming", "pulse_pairs"]
    with Store(tmp_path / "runs.sqlite") as store:
        result = await Runner.new(store, CAMPAIGN).run()
        assert result.status == "complete", result.errors
        pairs = [b for b in store.batches(result.run_id, kinds=["pair_read"])]
        assert len(pairs) == 3 and all(b.rows.size == 8 for b in pairs)
        (unit,) = [u for u in store.units(result.run_id) if u.routine == "pulse_pairs"]
        assert unit.status == "done" and "window_mean_S" in unit.summary

    # The same file through `labctl run`, the plugin found through PYTHONPATH.
    path = tmp_path / "c.toml"
    path.write_text(CAMPAIGN)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(lab_plugin), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "labctl.campaigns.cli", "run", str(path), "--store",
                           str(tmp_path / "cli.sqlite"), "--no-report"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    with Store(tmp_path / "cli.sqlite") as store:
        (run,) = store.runs()
        assert run.status == "complete"
        assert len(list(store.batches(run.run_id, kinds=["pair_read"]))) == 3


def test_a_plugin_that_does_not_import_is_named_in_the_campaign_error(tmp_path, on_path) -> None:
    on_path(write_dist(tmp_path / "site", "broken-lab", "[labctl.routines]\nseeker = broken_lab:seek\n",
                       {"broken_lab": "import numpy_that_is_not_installed\n"}))
    text = refusal("seeker")
    assert "c.toml:5: steps[0].routine: routine 'seeker'" in text
    assert "entry point 'seeker = broken_lab:seek' in group labctl.routines of broken-lab 0.1" in text
    assert "ModuleNotFoundError" in text


def test_a_plugin_that_is_not_a_routine_is_refused(tmp_path, on_path) -> None:
    on_path(write_dist(tmp_path / "site", "odd-lab", "[labctl.routines]\nsync = odd_lab:sync\nbare = odd_lab:bare\n",
                       {"odd_lab": "def sync(backend, rows, cols, params, ctx):\n    pass\n\n"
                                   "async def bare(backend, rows, cols, params, ctx):\n    pass\n"}))
    with pytest.raises(registry.RoutineLoadError, match=r"routine 'sync' \(entry point 'sync = odd_lab:sync'.*"
                                                        "not an async function"):
        registry.get("sync").function
    with pytest.raises(registry.RoutineLoadError, match="routine 'bare'.*must be annotated with a pydantic model"):
        registry.get("bare").params


def test_a_name_registered_twice_names_both_entry_points(tmp_path, on_path) -> None:
    on_path(write_dist(tmp_path / "site", "other-lab", "[labctl.routines]\nforming = other_lab:form\n"))
    text = refusal("forming")
    assert "c.toml:5: steps[0].routine: routine 'forming' is registered twice: " in text
    assert "entry point 'forming = labctl.routines.forming:form' in group labctl.routines of labctl" in text
    assert "entry point 'forming = other_lab:form' in group labctl.routines of other-lab 0.1" in text
    # The other routines are not affected.
    assert load_campaign('[campaign]\nname = "x"\n\n[[steps]]\nroutine = "read"\n').units


def test_finding_routines_imports_none_of_them_nor_the_c_core() -> None:
    code = ("import sys, labctl.routines, labctl.campaigns\n"
            "from labctl.routines import registry\n"
            "names = list(registry.routines())\n"
            "sys.argv = ['labctl', '--help']\n"
            "import labctl.cli\n"
            "try:\n    labctl.cli.main()\nexcept SystemExit:\n    pass\n"
            "loaded = sorted(m for m in sys.modules if m.startswith(('labctl.routines.', 'emulator', 'labctl.backends')))\n"
            "print(len(names), loaded, file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    count, _, loaded = proc.stderr.strip().partition(" ")
    assert int(count) >= 17 and loaded == "['labctl.routines.registry']"
