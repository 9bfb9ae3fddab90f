"""Run a sweep's tasks on Dask (dask.distributed) and store each as it finishes (docs/sweeps.md).

One writer: this process, the one that submits. Workers run `labctl.sweeps.tasks.run_task` and return a
TaskOutcome; the outcome (and the run a campaign task made) is stored here, in one transaction per task,
in the order tasks finish. A task that raised is retried `retries` times, on another worker where there
is one, then stored as failed with its error; a worker that dies is replaced by Dask and its tasks run
elsewhere; a task that arrives twice is stored once. A resume submits only the tasks not stored yet.

`workers=0` runs the tasks one after another in this process, without Dask: the serial reference the
tests and the benchmark compare with.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from labctl.campaigns.store import Store, TaskRecord
from labctl.campaigns.telemetry import Telemetry, TelemetryConfig
from labctl.sweeps.plan import LoadedSweep, TaskSpec, load_sweep
from labctl.sweeps.tasks import TaskOutcome, run_task


class SweepView(Protocol):
    """What the engine tells a progress display."""

    def begin(self, sweep_id: str, total: int, done: int, dashboard: str | None) -> None: ...
    def task_done(self, outcome: TaskOutcome) -> None: ...
    def end(self) -> None: ...


class SilentSweepView:
    def begin(self, sweep_id: str, total: int, done: int, dashboard: str | None) -> None:
        return None

    def task_done(self, outcome: TaskOutcome) -> None:
        return None

    def end(self) -> None:
        return None


@dataclass(frozen=True)
class SweepResult:
    sweep_id: str
    status: str  # complete | failed | interrupted
    total: int
    done: int
    failed: int
    submitted: int  # tasks this call submitted
    elapsed: float  # s
    dashboard: str | None = None
    scheduler: str | None = None


def new_sweep_id() -> str:
    import secrets

    return "sw-" + time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def _with_run_id(spec: TaskSpec, sweep_id: str) -> TaskSpec:
    return replace(spec, run_id=f"{sweep_id}-{spec.index:06d}") if spec.kind == "campaign" else spec


class SweepRunner:
    """Runs (or continues) one sweep into one store. Create with `SweepRunner.new` or `.resume`."""

    def __init__(self, store: Store, loaded: LoadedSweep, sweep_id: str, *, resuming: bool, workers: int | None = None,
                 scheduler: str | None = None, view: SweepView | None = None,
                 telemetry: TelemetryConfig | None = None, retry_failed: bool = False,
                 sweep_path: str | None = None) -> None:
        if workers is not None and workers < 0:
            raise ValueError(f"workers: must be >= 0, got {workers}")
        if scheduler is not None and workers is not None:
            raise ValueError("give --workers (a local cluster) or --scheduler (an existing one), not both")
        self.store = store
        self.loaded = loaded
        self.sweep_id = sweep_id
        self.resuming = resuming
        self.workers = workers
        self.scheduler = scheduler
        self.view = view or SilentSweepView()
        self.telemetry_config = telemetry
        self.retry_failed = retry_failed
        self.sweep_path = sweep_path
        self.retries = loaded.sweep.sweep.retries

    @classmethod
    def new(cls, store: Store, text: str, source: str = "sweep.toml", **kw: Any) -> SweepRunner:
        """A fresh sweep of the sweep file `text` (validated and planned here: SweepError before anything runs)."""
        return cls(store, load_sweep(text, source), new_sweep_id(), resuming=False, sweep_path=source, **kw)

    @classmethod
    def resume(cls, store: Store, ref: str, **kw: Any) -> SweepRunner:
        """Continue a stored sweep: plan it again from the stored files and run the tasks not stored yet."""
        sweep_id = store.find_sweep(ref)
        rec = store.sweep(sweep_id)
        if rec.shown_status == "running" and rec.pid != os.getpid():
            raise ValueError(f"resume: sweep {sweep_id} is still running (pid {rec.pid} on {rec.host})")
        loaded = load_sweep(rec.sweep_toml, rec.sweep_path or "sweep.toml",
                            base=Path(rec.sweep_path).resolve().parent if rec.sweep_path else None,
                            campaign_text=rec.sweep.get("campaign_toml"))
        if len(loaded.tasks) != rec.n_tasks:
            raise ValueError(f"resume: sweep {sweep_id} was planned as {rec.n_tasks} tasks, it now plans"
                             f" {len(loaded.tasks)}")
        if not store.claim_sweep(sweep_id, rec.status, rec.pid):
            raise ValueError(f"resume: sweep {sweep_id} is being resumed by another process")
        return cls(store, loaded, sweep_id, resuming=True, sweep_path=rec.sweep_path, **kw)

    # -- which tasks
    def pending(self) -> list[TaskSpec]:
        """The tasks to submit: those not stored (and those stored as failed, with retry_failed)."""
        stored = {t.task_index: t.status for t in self.store.sweep_tasks(self.sweep_id)} if self.resuming else {}
        keep = ("done",) if self.retry_failed else ("done", "failed")
        return [_with_run_id(t, self.sweep_id) for t in self.loaded.tasks if stored.get(t.index) not in keep]

    # -- the sweep
    def run(self) -> SweepResult:
        """Run every pending task and store it; returns how the sweep ended. Ctrl-C ends it `interrupted`
        with every finished task stored (resume it with `labctl sweep --resume`)."""
        t0 = time.perf_counter()
        if not self.resuming:
            sw = self.loaded.sweep
            self.store.create_sweep(self.sweep_id, name=sw.sweep.name, sweep_toml=self.loaded.text,
                                    sweep={"sweep": sw.model_dump(mode="json", by_alias=True),
                                           "campaign_toml": self.loaded.campaign_text},
                                    seed=sw.sweep.seed, n_tasks=len(self.loaded.tasks), sweep_path=self.sweep_path)
        todo = self.pending()
        total = len(self.loaded.tasks)
        # Each task's stored status, read once and kept up to date as tasks are stored (not re-read per task).
        self._status = {t.task_index: t.status for t in self.store.sweep_tasks(self.sweep_id)}
        telemetry = self._start_telemetry()
        status = "interrupted"
        dashboard = scheduler = None
        try:
            with self._executor() as ex:
                dashboard, scheduler = ex.dashboard, ex.address
                if scheduler:
                    self.store.set_scheduler(self.sweep_id, scheduler)
                self.view.begin(self.sweep_id, total, total - len(todo), dashboard)
                for outcome in ex.run(todo, self.retries):
                    self._store(outcome)
                    self.view.task_done(outcome)
                    if telemetry is not None:
                        done, failed = self._counts()
                        telemetry.progress({"done": done, "failed": failed, "total": total})
            done, failed = self._counts()
            status = "complete" if done == total else ("failed" if done + failed == total else "interrupted")
        finally:
            self.view.end()
            self.store.finish_sweep(self.sweep_id, status)
            if telemetry is not None:
                done, failed = self._counts()
                telemetry.publish("status", {"status": status, "done": done, "failed": failed, "total": total},
                                  retain=True)
                telemetry.close()
        done, failed = self._counts()
        return SweepResult(self.sweep_id, status, total, done, failed, len(todo), time.perf_counter() - t0,
                           dashboard, scheduler)

    def _counts(self) -> tuple[int, int]:
        """(done, failed) tasks stored."""
        statuses = list(self._status.values())
        return statuses.count("done"), statuses.count("failed")

    def _start_telemetry(self) -> Telemetry | None:
        if self.telemetry_config is None:
            return None
        t = Telemetry(self.telemetry_config, self.sweep_id, kind="sweeps")
        t.start()
        t.publish("status", {"status": "running", "name": self.loaded.sweep.sweep.name,
                             "total": len(self.loaded.tasks)}, retain=True)
        return t

    def _store(self, outcome: TaskOutcome) -> None:
        """Store one outcome (and its run); a task stored as done already stays as it is."""
        spec = self.loaded.tasks[outcome.index]
        record = TaskRecord(task_index=outcome.index, seed=spec.seed, axes=spec.axes, status=outcome.status,
                            run_id=outcome.run_id, figures=outcome.figures, error=outcome.error,
                            attempts=outcome.attempt, worker=outcome.worker, elapsed=outcome.elapsed,
                            finished_at=time.time())
        if outcome.run_file is None:
            stored = self.store.record_task(self.sweep_id, record)
        else:
            with tempfile.TemporaryDirectory(prefix="labctl-sweep-") as tmp:
                path = Path(tmp) / "task.sqlite"
                path.write_bytes(outcome.run_file)
                stored = self.store.record_task(self.sweep_id, record, path)
        if stored:
            self._status[outcome.index] = outcome.status

    def _executor(self) -> contextlib.AbstractContextManager[_Executor]:
        if self.workers == 0:
            return contextlib.nullcontext(_SerialExecutor())
        return _DaskExecutor(self.workers, self.scheduler)


class _Executor(Protocol):
    dashboard: str | None
    address: str | None

    def run(self, tasks: list[TaskSpec], retries: int) -> Iterator[TaskOutcome]: ...


class _SerialExecutor:
    dashboard: str | None = None
    address: str | None = None

    def run(self, tasks: list[TaskSpec], retries: int) -> Iterator[TaskOutcome]:
        for spec in tasks:
            attempt = 1
            outcome = run_task(spec, attempt)
            while outcome.raised and attempt <= retries:
                attempt += 1
                outcome = run_task(spec, attempt)
            yield outcome


class _DaskExecutor:
    """A LocalCluster sized to the machine (or `workers` processes of one thread), or an existing scheduler."""

    def __init__(self, workers: int | None, scheduler: str | None) -> None:
        self.workers = workers
        self.scheduler = scheduler
        self.cluster: Any = None
        self.client: Any = None
        self.dashboard: str | None = None
        self.address: str | None = None

    def __enter__(self) -> _DaskExecutor:
        from distributed import Client, LocalCluster

        if self.scheduler is not None:
            try:
                self.client = Client(self.scheduler, timeout="5s")
            except (OSError, TimeoutError) as exc:
                raise ValueError(f"scheduler: cannot reach the Dask scheduler at {self.scheduler} ({exc})") from None
        else:
            n = self.workers or os.cpu_count() or 1
            # One thread per worker process: tasks are CPU-bound Python and C; Dask sets OMP/BLAS threads to 1.
            self.cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                        dashboard_address="127.0.0.1:0", silence_logs=40)
            self.client = Client(self.cluster)
        self.address = self.client.scheduler.address
        self.dashboard = self.client.dashboard_link
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.client.close(timeout=10)
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.close(timeout=10)

    def _submit(self, spec: TaskSpec, attempt: int, avoid: str | None) -> Any:
        kw: dict[str, Any] = {}
        if avoid:
            others = [w for w in self.client.scheduler_info()["workers"] if w != avoid]
            if others:
                kw = {"workers": others, "allow_other_workers": True}
        return self.client.submit(run_task, spec, attempt, key=f"labctl-task-{spec.index}-{attempt}", pure=False, **kw)

    def run(self, tasks: list[TaskSpec], retries: int) -> Iterator[TaskOutcome]:
        from distributed import as_completed

        specs = {t.index: t for t in tasks}
        futures = {self._submit(t, 1, None): (t.index, 1) for t in tasks}
        pending = as_completed(list(futures))
        for future in pending:
            index, attempt = futures.pop(future)
            try:
                outcome: TaskOutcome = future.result()
            except Exception as exc:  # the worker died running it more often than Dask allows, or similar
                from labctl.campaigns.runner import error_chain

                outcome = TaskOutcome(index, "failed", {}, error=f"worker lost: {error_chain(exc)}", raised=True,
                                      attempt=attempt)
            future.release()
            if outcome.raised and attempt <= retries:
                retry = self._submit(specs[index], attempt + 1, outcome.worker or None)
                futures[retry] = (index, attempt + 1)
                pending.add(retry)
                continue
            yield outcome
