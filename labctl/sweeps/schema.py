"""The sweep file's schema (docs/sweeps.md): the task, its fixed settings, the axes it varies, what to collect.

A sweep names one task kind (a campaign file, or one of the evaluations of labctl.sweeps.tasks) and the
points to run it at: a grid of axes (every combination), a list of points, or seeded random samples. Each
point runs `repeats` times, each run with its own seed (a die, in the studies' words). Axis names are
dotted paths: into the campaign file for campaign tasks ("backend.rows", "backend.device.c2c_sigma",
"steps.transfer.params.tolerance"), or into the evaluation's settings otherwise ("size", "device.c2c_sigma").
"""
from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from labctl.campaigns.schema import TelemetrySpec

TASK_KINDS = ("campaign", "training", "puf", "mvm")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SweepInfo(_Strict):
    name: str = Field(min_length=1)
    description: str = ""
    task: Literal["campaign", "training", "puf", "mvm"]
    campaign: str | None = Field(None, description="campaign file (task = campaign), relative to the sweep file")
    seed: int = Field(0, ge=0, le=2**63 - 1, description="the sweep's seed: task i's seed derives from it and i only")
    seed_key: str = Field("backend.seed", description="campaign tasks: the key that receives the task's seed")
    repeats: int = Field(1, ge=1, le=1_000_000, description="runs of every point, each with its own seed")
    seeds: Literal["per_task", "per_repeat"] = Field("per_task", description=(
        "per_task: every task its own seed; per_repeat: repeat r has the same seed at every point (the same"
        " dies at every point, for paired comparisons)"))
    figures: list[str] = Field(default_factory=list, description=(
        "what each task reports: '<step>.<summary key>' for campaigns (e.g. 'transfer.sigma_rel'), names of"
        " the evaluation's figures otherwise (default: all of them)"))
    retries: int = Field(1, ge=0, le=5, description="times a task that raised is retried (on another worker)")

    @model_validator(mode="after")
    def _campaign(self) -> SweepInfo:
        if self.task == "campaign" and not self.campaign:
            raise ValueError("campaign: a campaign task needs the campaign file's path")
        if self.task != "campaign" and self.campaign:
            raise ValueError(f"campaign: only campaign tasks run a campaign file (task is {self.task!r})")
        return self


class Span(_Strict):
    """An axis given by its ends: integers `from`..`to` inclusive, or `linspace`/`logspace` [start, stop, count]."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: int | None = Field(None, alias="from")
    to: int | None = None
    linspace: tuple[float, float, int] | None = None
    logspace: tuple[float, float, int] | None = None

    @model_validator(mode="after")
    def _one(self) -> Span:
        given = [self.from_ is not None or self.to is not None, self.linspace is not None, self.logspace is not None]
        if sum(given) != 1:
            raise ValueError("give one of: from and to (integers), linspace = [start, stop, n], logspace = [a, b, n]")
        if given[0] and (self.from_ is None or self.to is None or self.to < self.from_):
            raise ValueError("from/to: both needed, with to >= from")
        for name in ("linspace", "logspace"):
            v = getattr(self, name)
            if v is not None and not 1 <= v[2] <= 100_000:
                raise ValueError(f"{name}: the count must be 1..100000, got {v[2]}")
            if name == "logspace" and v is not None and not (v[0] > 0 and v[1] > 0):
                raise ValueError("logspace: both ends must be > 0")
        return self

    def values(self) -> list[Any]:
        """The axis values."""
        if self.from_ is not None and self.to is not None:
            return list(range(self.from_, self.to + 1))
        if self.linspace is not None:
            a, b, n = self.linspace
            return [a + (b - a) * i / (n - 1) if n > 1 else a for i in range(n)]
        assert self.logspace is not None
        a, b, n = self.logspace
        return [math.exp(math.log(a) + (math.log(b) - math.log(a)) * i / (n - 1)) if n > 1 else a for i in range(n)]


class Distribution(_Strict):
    """A random axis: one of uniform [a, b], log_uniform [a, b], integers [a, b] (inclusive), choice [...]."""

    uniform: tuple[float, float] | None = None
    log_uniform: tuple[float, float] | None = None
    integers: tuple[int, int] | None = None
    choice: list[Any] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one(self) -> Distribution:
        given = [k for k in ("uniform", "log_uniform", "integers", "choice") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of: uniform, log_uniform, integers, choice")
        for k in ("uniform", "log_uniform", "integers"):
            v = getattr(self, k)
            if v is not None and not v[0] <= v[1]:
                raise ValueError(f"{k}: the lower end must not exceed the upper, got {list(v)}")
        if self.log_uniform is not None and not self.log_uniform[0] > 0:
            raise ValueError("log_uniform: the lower end must be > 0")
        return self


class RandomSpec(_Strict):
    samples: int = Field(ge=1, le=1_000_000)
    axes: dict[str, Distribution] = Field(min_length=1)


class Plot(_Strict):
    """A figure of the sweep's report: figures (y) against an axis (x), one line per value of `group`."""

    x: str
    y: list[str] = Field(min_length=1)
    group: str | None = None
    title: str = ""
    logx: bool = False
    logy: bool = False
    statistic: Literal["mean", "median"] = "mean"


class Sweep(_Strict):
    sweep: SweepInfo
    params: dict[str, Any] = Field(default_factory=dict, description="fixed settings (same dotted names as axes)")
    axes: dict[str, list[Any] | Span] = Field(default_factory=dict, description="grid: every combination")
    points: list[dict[str, Any]] = Field(default_factory=list, description="an explicit list of points")
    random: RandomSpec | None = None
    plot: list[Plot] = Field(default_factory=list)
    telemetry: TelemetrySpec | None = None

    @model_validator(mode="after")
    def _one_design(self) -> Sweep:
        given = [n for n, v in (("axes", self.axes), ("points", self.points), ("random", self.random)) if v]
        if len(given) > 1:
            raise ValueError(f"give one of [axes], [[points]] and [random], not {' and '.join(given)}")
        for name, values in self.axes.items():
            if isinstance(values, list) and not values:
                raise ValueError(f"axes.{name}: an axis needs at least one value")
        return self

    def axis_names(self) -> list[str]:
        """Every axis of the sweep, in file order."""
        if self.axes:
            return list(self.axes)
        if self.random is not None:
            return list(self.random.axes)
        names: list[str] = []
        for p in self.points:
            names += [k for k in p if k not in names]
        return names
