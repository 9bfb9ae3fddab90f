"""What a worker runs: one task of a sweep, from its TaskSpec alone, to a TaskOutcome.

A task never opens the sweep's store. A campaign task runs its campaign with the one run engine
(labctl.campaigns.runner) on the in-process emulator into a store file of its own in a temporary folder
and returns that file's bytes, which the submitting side copies into the sweep's store. An evaluation
task (training, puf, mvm) returns only its figures. Every random draw of a task comes from its seed, so
a task gives the same figures on any worker, in any order, on any number of threads.

What a task may not do (docs/sweeps.md): use hardware (a station cannot be in two places, so campaign
tasks run on the emulator only), write files outside its temporary folder, or depend on another task.
"""
from __future__ import annotations

import asyncio
import math
import os
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from labctl.sweeps.plan import TaskSpec

YEAR = 365.25 * 86400.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class TaskOutcome:
    """How a task ended. `raised`: the task itself failed (an exception: retried); a campaign whose run
    failed is a result (`status` failed, its run stored, not retried: it would fail again)."""

    index: int
    status: str  # done | failed
    figures: dict[str, Any]
    error: str | None = None
    raised: bool = False
    run_id: str | None = None
    run_file: bytes | None = None  # campaign tasks: the worker's store file holding the run
    worker: str = ""
    elapsed: float = 0.0  # s
    attempt: int = 1


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"local:{socket.gethostname()}:{os.getpid()}"


def _scalar(value: Any) -> Any:
    """A figure as JSON: numbers, booleans, strings; NaN and infinities as None (JSON has none)."""
    if isinstance(value, (np.generic,)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def run_task(spec: TaskSpec, attempt: int = 1) -> TaskOutcome:
    """Run one task; never raises (an exception becomes a failed outcome with `raised`, so the submitting
    side decides about the retry and records the error)."""
    from labctl.campaigns.runner import error_chain

    t0 = time.perf_counter()
    worker = _worker_name()
    try:
        if spec.kind == "campaign":
            out = _campaign_task(spec)
        else:
            figures = EVALUATIONS[spec.kind].run(spec.settings, spec.seed)
            out = TaskOutcome(spec.index, "done", {k: _scalar(figures[k]) for k in spec.figures})
    except Exception as exc:  # the task's own failure: recorded with its error, retried by the submitter
        return TaskOutcome(spec.index, "failed", {}, error=error_chain(exc), raised=True, worker=worker,
                           elapsed=time.perf_counter() - t0, attempt=attempt)
    return TaskOutcome(out.index, out.status, out.figures, out.error, False, out.run_id, out.run_file, worker,
                       time.perf_counter() - t0, attempt)


# -- campaign tasks
def _campaign_task(spec: TaskSpec) -> TaskOutcome:
    from labctl.campaigns.plan import load_campaign
    from labctl.campaigns.runner import Runner, step_summaries
    from labctl.campaigns.store import Store

    assert spec.campaign_toml is not None and spec.run_id is not None
    loaded = load_campaign(spec.campaign_toml, spec.campaign_source or "campaign.toml")
    if loaded.campaign.backend.kind != "emulator":
        raise ValueError(f"backend.kind: a sweep's campaign runs on the emulator, not on a {loaded.campaign.backend.kind}"
                         " backend (a station cannot be in two places)")
    with tempfile.TemporaryDirectory(prefix="labctl-task-") as tmp:
        path = Path(tmp) / "task.sqlite"
        store = Store(path)
        try:
            runner = Runner(store, loaded, spec.run_id, resuming=False, campaign_path=spec.campaign_source,
                            save_states=False)
            result = asyncio.run(runner.run())
            summaries = step_summaries(store.units(spec.run_id))
        finally:
            store.close()
        data = path.read_bytes()
    errors = list(result.errors)
    figures: dict[str, Any] = {}
    for name in spec.figures:
        step, _, key = name.rpartition(".")
        if step not in summaries or key not in summaries[step]:
            if result.status == "complete":
                have = ", ".join(f"{s}.{k}" for s, v in summaries.items() for k in v
                                 if isinstance(v[k], (int, float)))
                errors.append(f"figure {name!r}: the run's step summaries have no such value (they have: {have})")
            figures[name] = None
        else:
            figures[name] = _scalar(summaries[step][key])
    status = "done" if result.status == "complete" and not errors else "failed"
    return TaskOutcome(spec.index, status, figures, "; ".join(errors) or None, run_id=spec.run_id, run_file=data)


# -- evaluation tasks
@dataclass(frozen=True)
class Evaluation:
    """An evaluation a sweep can run: its settings' model, the figures it reports, and the function."""

    settings: type[BaseModel]
    figures: tuple[str, ...]
    run: Callable[[dict[str, Any], int], dict[str, Any]]
    doc: str = ""


def _preset(device: dict[str, float], name: str = "cmo-hfox") -> Any:
    from labctl.campaigns.backend import device_preset

    return device_preset(name, device)


class TrainingSettings(_Strict):
    """Analog training on digits with devices fitted to an emulated array (labctl eval training)."""

    algorithm: Literal["fp", "sgd", "ttv2", "agad"] = "agad"
    devices: int = Field(8, ge=2, le=64, description="side of the emulated array the devices are fitted to")
    epochs: int | None = Field(None, ge=1, le=1000, description="default: the tuned setting")
    device: dict[str, float] = Field(default_factory=dict, description="emulator preset parameters changed")
    settings: dict[str, Any] = Field(default_factory=dict, description="TrainingConfig fields changed")
    mnist: str | None = Field(None, description="folder with the MNIST IDX files, on the worker (default: digits)")

    @field_validator("device")
    @classmethod
    def _device(cls, device: dict[str, float]) -> dict[str, float]:
        from labctl.campaigns.schema import check_device

        check_device("cmo-hfox", device)
        return device

    @field_validator("settings")
    @classmethod
    def _settings(cls, settings: dict[str, Any]) -> dict[str, Any]:
        from dataclasses import replace

        from labctl.evaluation.training import DIGITS_SETTINGS

        try:
            replace(DIGITS_SETTINGS, **settings)
        except TypeError as exc:
            raise ValueError(str(exc).replace("TrainingConfig.__init__() got an", "an")) from None
        return settings


def _training(settings: dict[str, Any], seed: int) -> dict[str, Any]:
    from dataclasses import replace

    from labctl.evaluation.cli import emulated_open_loop
    from labctl.evaluation.datasets import load_digits, load_mnist
    from labctl.evaluation.devicefit import DevicePopulation, fit_devices
    from labctl.evaluation.training import DIGITS_SETTINGS, DeviceSource, train

    s = TrainingSettings.model_validate(settings)
    seed = seed % 2**32  # the training's generators take 32-bit seeds
    cfg = replace(DIGITS_SETTINGS, algorithm=s.algorithm, seed=seed, **s.settings,
                  **({"epochs": s.epochs} if s.epochs else {}))
    data = load_mnist(s.mnist) if s.mnist else load_digits(seed=seed)
    fit: dict[str, Any] = {"n_states": None, "sp_skew": None, "c2c_sigma": None}
    source = None
    if s.algorithm != "fp":
        params = fit_devices(*asyncio.run(emulated_open_loop(s.devices, seed, _preset(s.device))))
        summary = params.summary()
        fit = {k: summary[k]["mean"] for k in fit}
        source = DeviceSource(population=DevicePopulation.from_devices(params))
    result = train(data, cfg, source)
    return {"accuracy": result.accuracy[-1], "best_accuracy": max(result.accuracy),
            "epoch_s": float(np.median(result.epoch_seconds)), **fit}


class _DeviceSettings(_Strict):
    device: dict[str, float] = Field(default_factory=dict, description="emulator preset parameters changed")

    @field_validator("device")
    @classmethod
    def _device(cls, device: dict[str, float]) -> dict[str, float]:
        from labctl.campaigns.schema import check_device

        check_device("cmo-hfox", device)
        return device


class PufSettings(_DeviceSettings):
    """PUF enrollment of one emulated die and key reconstruction under the re-read conditions."""

    rows: int = Field(32, ge=2, le=1024)
    cols: int = Field(32, ge=2, le=1024)
    enroll: dict[str, Any] = Field(default_factory=lambda: {"prepare": "form_set"},
                                   description="labctl.puf.enroll.EnrollParams fields")
    conditions: list[dict[str, Any]] | None = Field(None, description="re-reads (default: labctl puf evaluate's)")


def _puf(settings: dict[str, Any], seed: int) -> dict[str, Any]:
    from labctl.puf.enroll import EnrollParams
    from labctl.puf.evaluate import DEFAULT_CONDITIONS, Condition, evaluate_die

    s = PufSettings.model_validate(settings)
    conditions = [Condition.model_validate(c) for c in s.conditions] if s.conditions else list(DEFAULT_CONDITIONS)
    die = asyncio.run(evaluate_die(s.rows, s.cols, seed, _preset(s.device), EnrollParams.model_validate(s.enroll),
                                   conditions))
    if die.enroll_failure is not None:
        return {"enrolled": False, "enroll_failure": die.enroll_failure, "key_failures": None, "wrong_keys": None,
                "reconstructions": 0, "used_bits": None, "predicted_failure": None}
    return {"enrolled": True, "enroll_failure": None, "key_failures": sum(f for f, _ in die.outcomes.values()),
            "wrong_keys": sum(w for _, w in die.outcomes.values()), "reconstructions": len(die.outcomes),
            "used_bits": die.used_bits, "predicted_failure": die.predicted_failure}


class MvmSettings(_DeviceSettings):
    """Program random weights into an emulated size x size array, and the MVM error at 1 s and 10 years."""

    size: int = Field(64, ge=4, le=1024)
    tolerance: float = Field(0.02, gt=0, lt=1, description="acceptance range, relative")
    inputs: int = Field(64, ge=1, le=10_000, description="random input vectors")
    g_low: float = Field(10e-6, gt=0, json_schema_extra={"unit": "S"})
    g_high: float = Field(90e-6, gt=0, json_schema_extra={"unit": "S"})


def _mvm(settings: dict[str, Any], seed: int) -> dict[str, Any]:
    from labctl.backends import EmulatorBackend
    from labctl.backends.base import ProgramSettings
    from labctl.evaluation.mvm import mvm_rmse
    from labctl.evaluation.programming import prepare_cells, program_cells

    s = MvmSettings.model_validate(settings)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x3D]))
    targets = rng.uniform(s.g_low, s.g_high, (s.size, s.size))
    x = rng.uniform(0.0, 1.0, (s.inputs, s.size))  # inputs on the rows, ideal wires (docs/sweeps.md)
    y_target = x @ targets

    async def run() -> dict[str, Any]:
        async with EmulatorBackend(s.size, s.size, seed=seed, preset=_preset(s.device)) as b:
            r, c = np.divmod(np.arange(s.size * s.size, dtype=np.int64), s.size)
            await prepare_cells(b, r, c)
            out = await program_cells(b, r, c, targets.ravel(), ProgramSettings(tolerance=s.tolerance))
            t_done = await b.now()
            figures: dict[str, Any] = {"converged_fraction": float(np.mean(out.converged)),
                                       "pulses_mean": float(np.mean(out.iterations))}
            for label, after in (("1s", 1.0), ("10y", 10 * YEAR)):
                await b.wait(t_done + after - await b.now())
                g = await b.read_array()
                figures[f"rmse_{label}"] = mvm_rmse(x @ g, y_target)[1]
            return figures

    return asyncio.run(run())


EVALUATIONS: dict[str, Evaluation] = {
    "training": Evaluation(TrainingSettings, ("accuracy", "best_accuracy", "epoch_s", "n_states", "sp_skew",
                                              "c2c_sigma"), _training, TrainingSettings.__doc__ or ""),
    "puf": Evaluation(PufSettings, ("enrolled", "enroll_failure", "key_failures", "wrong_keys", "reconstructions", "used_bits",
                                    "predicted_failure"), _puf, PufSettings.__doc__ or ""),
    "mvm": Evaluation(MvmSettings, ("rmse_1s", "rmse_10y", "converged_fraction", "pulses_mean"), _mvm,
                      MvmSettings.__doc__ or ""),
}

