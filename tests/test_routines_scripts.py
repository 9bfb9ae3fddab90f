"""The reference experiment scripts run as they are (small arrays) and write what they measured."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

pytestmark = pytest.mark.timeout(120)

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"script_{name}", SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_weight_transfer(tmp_path: Path) -> None:
    load("weight_transfer").main(["--rows", "8", "--cols", "8", "--levels", "5", "--tolerances", "0.05", "0.01",
                                  "--max-iterations", "60", "--out", str(tmp_path), "--quiet"])
    data = json.loads((tmp_path / "weight_transfer.json").read_text())
    assert [r["tolerance"] for r in data["runs"]] == [0.05, 0.01]
    for run in data["runs"]:
        cells = run["cells"]
        assert len(cells["g_S"]) == 64 and sum(run["per_level"]["count"]) == sum(cells["converged"])
        assert max(cells["iterations"]) <= 59
    for png in ("iterations.png", "sigma_prog.png", "cdf.png"):
        assert (tmp_path / png).stat().st_size > 1000


def test_relaxation(tmp_path: Path) -> None:
    load("relaxation").main(["--backend", "emulator:8x8?seed=3", "--prepare", "yes", "--targets", "10",
                             "--g-step", "5e-6", "--follow", "1e4", "--points-per-decade", "1",
                             "--out", str(tmp_path), "--quiet"])
    data = json.loads((tmp_path / "relaxation.json").read_text())
    assert data["run"]["backend"] == "emulator:8x8?seed=3"
    assert data["part1"]["times_s"] == [1.0, 3600.0]
    assert len(data["part1"]["per_target"]["target_S"]) == 10
    assert np.allclose(data["part2"]["times_s"], np.geomspace(1, 1e4, 5))
    for png in ("relaxation_targets.png", "relaxation_error_hist.png", "relaxation_long_term.png"):
        assert (tmp_path / png).stat().st_size > 1000


def test_open_loop(tmp_path: Path) -> None:
    load("open_loop").main(["--rows", "4", "--cols", "4", "--batch", "40", "--cycles", "1", "--alternating", "40",
                            "--examples", "2", "--out", str(tmp_path), "--quiet"])
    data = json.loads((tmp_path / "open_loop.json").read_text())
    assert len(data["cells"]["n_states"]) == 16
    assert np.asarray(data["examples"]["swing_S"]).shape == (2, 80)
    for png in ("open_loop_distributions.png", "open_loop_traces.png"):
        assert (tmp_path / png).stat().st_size > 1000
