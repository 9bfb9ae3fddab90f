"""Evaluation: loading a stored run (real routines into a real SQLite store) and the `labctl eval` commands."""
from __future__ import annotations

import asyncio
import json

import numpy as np

from labctl.backends import EmulatorBackend
from labctl.campaigns.store import Store, UnitPlan
from labctl.cli import main
from labctl.evaluation.programming import prepare_cells
from labctl.evaluation.runs import load_run
from labctl.routines.base import RoutineContext
from labctl.routines.open_loop import OpenLoopParams, open_loop
from labctl.routines.retention import RelaxationParams, relaxation


def _store_run(path, seed: int = 0) -> str:  # type: ignore[no-untyped-def]
    """Run the real open-loop and relaxation routines on an emulated 2x4 array into a run store."""
    run_id = f"eval-test-{seed}"
    store = Store(path)
    store.create_run(run_id, name="eval test", campaign_toml="", campaign={}, backend_kind="emulator",
                     identity={}, metadata={},
                     units=[UnitPlan(unit_index=0, step_index=0, step_name="eval", routine="eval", pass_index=0,
                                     repeat_index=0, sweep_index=0, chunk_index=0, n_cells=8, params={})])
    seq = [0]

    def sink(m):  # type: ignore[no-untyped-def]
        store.append_batch(run_id, 0, 0, seq[0], m)
        seq[0] += 1

    async def go() -> None:
        async with EmulatorBackend(2, 4, seed=seed) as b:
            r, c = np.divmod(np.arange(8, dtype=np.int64), 4)
            await prepare_cells(b, r, c)
            ctx = RoutineContext(sink=sink)
            await open_loop(b, r, c, OpenLoopParams(batch=100, cycles=2, pulses=200), ctx)
            await relaxation(b, r, c, RelaxationParams(t_first=1.0, t_last=1e4, points_per_decade=2), ctx)

    asyncio.run(go())
    store.close()
    return run_id


def test_load_stored_run_and_evaluate_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "runs.sqlite"
    run_id = _store_run(path)
    run = load_run(path, "last")
    assert run.run_id == run_id
    assert run.has_open_loop and run.open_loop_g.shape == (8, 600)
    assert set(np.unique(run.open_loop_direction)) == {-1, 1}
    assert run.has_retention and run.retention_g.shape[0] == 8 and np.all(np.diff(run.retention_times) > 0)
    assert np.all(np.abs(run.retention_g_prog - 50e-6) < 0.05 * 50e-6)  # the routine's default target
    out = tmp_path / "inf"
    assert main(["eval", "inference", "--store", str(path), "--epochs", "5", "--out", str(out)]) == 0
    res = json.loads((out / "inference.json").read_text())
    assert res["source"] == f"run {run_id}" and res["settings"]["relaxation"]["source"] == "fit"
    assert len(res["accuracy"]) == 6 and (out / "inference.png").stat().st_size > 1000
    out2 = tmp_path / "tr"
    assert main(["eval", "training", "--store", str(path), "--epochs", "2", "--algorithms", "fp,agad",
                 "--out", str(out2)]) == 0
    tr = json.loads((out2 / "training.json").read_text())
    assert len(tr["digits"]["agad"]["accuracy"]) == 2 and tr["digits"]["fp"]["accuracy"][-1] > 0.8
    assert (out2 / "training-digits.png").stat().st_size > 1000


def test_eval_errors_name_the_field(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["eval", "inference", "--store", str(tmp_path / "none.sqlite"), "--out", str(tmp_path)]) == 2
    assert "store" in capsys.readouterr().err
