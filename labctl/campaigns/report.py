"""Run reports (`labctl report RUN`): the field's figures of every step, drawn from the stored run, on
one self-contained HTML page (report.html, images embedded), next to the PNG files and a JSON summary.

Per step the units are grouped by pass, sweep point and repeat (labctl.routines.figures.StepGroup:
"separated by sweep value and repeat"); the step's routine draws its figures from them (its result type
declares which: RoutineResult.figures, labctl.routines.figures.figures_for). A figure without data is
left out with a note saying so; a figure function that fails becomes a note too, so one bad figure never
costs the rest of the report. Only the store's public reading API is used (Store.run, units, batches,
events, measurement_count).
"""
from __future__ import annotations

import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labctl.campaigns.runner import combine_summaries
from labctl.campaigns.store import RunRecord, Store, UnitRecord
from labctl.routines.figures import Figure, Item, KindData, Note, StepData, StepGroup, Table, TraceBatch, figures_for
from labctl.routines.figures.pulses import pulse_trace_figures

#: Resolution of the saved PNG figures, dots per inch.
DPI = 100
REPORT_FILE = "report.html"
SUMMARY_FILE = "summary.json"


@dataclass
class StepReport:
    """One step on the report page: what ran, its per-group summaries, and its figures, tables and notes."""

    index: int
    name: str
    routine: str
    units: int
    units_done: int
    summaries: list[dict[str, Any]]
    items: list[Item]
    files: dict[int, str] = field(default_factory=dict)  # id(Figure) -> PNG file name
    images: dict[int, bytes] = field(default_factory=dict)  # id(Figure) -> PNG bytes


def _stats(a: np.ndarray) -> dict[str, float | int | None]:
    a = a[np.isfinite(a)]
    if a.size == 0:
        return {"count": 0, "mean": None, "std": None, "min": None, "max": None}
    return {"count": int(a.size), "mean": float(a.mean()), "std": float(a.std()), "min": float(a.min()),
            "max": float(a.max())}


def _group_label(campaign: dict[str, Any], step: dict[str, Any], u: UnitRecord) -> str:
    """What tells the group apart: its sweep values, repeat and pass ("" when the step has one group)."""
    parts = []
    for key in (step.get("sweep") or {}):
        value: Any = u.params
        for k in key.split("."):
            value = value.get(k) if isinstance(value, dict) else None
        parts.append(f"{key} = {value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool)
                     else f"{key} = {value}")
    if int(step.get("repeat") or 1) > 1:
        parts.append(f"repeat {u.repeat_index + 1}")
    if int((campaign.get("campaign") or {}).get("repeat") or 1) > 1:
        parts.append(f"pass {u.pass_index + 1}")
    return ", ".join(parts)


def load_step(store: Store, rec: RunRecord, step_index: int, units: list[UnitRecord]) -> StepData:
    """One step of a stored run as the figure functions see it: groups of units (pass, sweep point,
    repeat) with their scalar measurements by kind (each unit's latest attempt only: an earlier attempt
    of a resumed hardware run measured cells the latest one measured again); vector quantities are
    read only when a figure asks for them."""
    campaign = rec.campaign
    step = campaign["steps"][step_index]
    su = [u for u in units if u.step_index == step_index]
    attempt = {u.unit_index: u.attempt for u in su}
    keys: dict[int, tuple[int, int, int]] = {u.unit_index: (u.pass_index, u.sweep_index, u.repeat_index) for u in su}
    members: dict[tuple[int, int, int], list[UnitRecord]] = {}
    for u in su:
        members.setdefault(keys[u.unit_index], []).append(u)
    parts: dict[tuple[int, int, int], dict[str, list[Any]]] = {k: {} for k in members}
    for b in store.batches(rec.run_id, step_index=step_index):
        if b.unit_index not in keys or b.attempt != attempt[b.unit_index]:
            continue
        parts[keys[b.unit_index]].setdefault(b.kind, []).append(b)
    groups = []
    for key, us in members.items():
        kinds = {}
        for kind, batches in parts[key].items():
            names = list(dict.fromkeys(q for b in batches for q in b.scalars))
            kinds[kind] = KindData(
                rows=np.concatenate([b.rows for b in batches]).astype(np.int64),
                cols=np.concatenate([b.cols for b in batches]).astype(np.int64),
                t=np.concatenate([np.full(b.rows.size, b.t) for b in batches]),
                batch=np.concatenate([np.full(b.rows.size, k) for k, b in enumerate(batches)]),
                values={q: np.concatenate([b.scalars.get(q, np.full(b.rows.size, np.nan)) for b in batches])
                        for q in names})
        done = [u for u in us if u.summary is not None]
        summary = combine_summaries([u.summary for u in done], [u.n_cells for u in done], us[0].routine) \
            if done else None
        groups.append(StepGroup(label=_group_label(campaign, step, us[0]), params=us[0].params, summary=summary,
                                complete=all(u.status == "done" for u in us), kinds=kinds, key=key,
                                trace_loader=_trace_loader(store, rec.run_id, step_index, {u.unit_index for u in us},
                                                           attempt)))
    return StepData(name=su[0].step_name if su else step.get("name") or f"step {step_index}",
                    routine=step["routine"], n_rows=int(campaign["backend"]["rows"]),
                    n_cols=int(campaign["backend"]["cols"]), groups=groups)


def _trace_loader(store: Store, run_id: str, step_index: int, unit_ids: set[int], attempt: dict[int, int]) -> Any:
    cache: dict[tuple[str, int | None], list[TraceBatch]] = {}

    def load(kind: str, max_batches: int | None) -> list[TraceBatch]:
        if (kind, max_batches) not in cache:
            out: list[TraceBatch] = []
            for b in store.batches(run_id, [kind], step_index=step_index, traces=True):
                if b.unit_index in unit_ids and b.attempt == attempt[b.unit_index] and b.traces:
                    out.append(TraceBatch(rows=b.rows, cols=b.cols, values=dict(b.traces), scalars=dict(b.scalars)))
                    if max_batches is not None and len(out) >= max_batches:
                        break  # the generator reads no further blobs
            cache[(kind, max_batches)] = out
        return cache[(kind, max_batches)]

    return load


def _result_type(routine: str) -> type | None:
    from labctl.routines import registry

    spec = registry.routines().get(routine)
    try:
        return spec.result if spec is not None else None
    except Exception:  # noqa: BLE001 -- a plugin that no longer loads: its steps get the generic figures
        return None


def step_figures(data: StepData) -> list[Item]:
    """The items the step's routine declares, drawn (figures not yet saved), then the current during
    its pulses where a pulse-and-measure station measured it; a figure function that raises becomes
    a note naming the error."""
    try:
        function = figures_for(data.routine, _result_type(data.routine))
        items = list(function(data))
    except Exception as exc:  # noqa: BLE001 -- one broken figure function must not cost the report
        items = [Note(f"The figures of {data.routine} could not be drawn: {type(exc).__name__}: {exc}")]
    try:
        items += pulse_trace_figures(data)
    except Exception as exc:  # noqa: BLE001 -- nor the pulse traces' figure
        items.append(Note(f"The pulse currents of {data.name} could not be drawn: {type(exc).__name__}: {exc}"))
    return items


def build_steps(store: Store, rec: RunRecord, out: Path | None = None) -> list[StepReport]:
    """Every step of the run that has units, with its summaries and drawn items; with `out`, each
    step's figures are saved there (and closed) as soon as they are drawn."""
    units = store.units(rec.run_id)
    reports = []
    for step_index, step in enumerate(rec.campaign["steps"]):
        su = [u for u in units if u.step_index == step_index]
        if not su:
            continue
        data = load_step(store, rec, step_index, units)
        summaries = []
        for g in data.groups:
            summaries.append({"pass": g.key[0], "sweep_index": g.key[1], "repeat": g.key[2],
                              "label": g.label, "params": g.params, "done": g.complete, "summary": g.summary,
                              "quantities": {f"{k}.{q}": _stats(v) for k, d in g.kinds.items()
                                             for q, v in d.values.items()}})
        done = sum(u.status == "done" for u in su)
        if any(g.kinds or g.summary for g in data.groups):
            items = step_figures(data)
        elif any(u.status != "pending" for u in su):
            items = [Note("Nothing was stored in this step: the run stopped in it before its first measurement.")]
        else:
            items = [Note("Nothing was measured in this step: the run stopped before it.")]
        report = StepReport(step_index, data.name, step["routine"], len(su), done, summaries, items)
        if out is not None:
            _save(report, out)
        reports.append(report)
    return reports


def _save(s: StepReport, out: Path) -> None:
    """Each figure of a step as step-NN-<step>-<figure>.png (bytes kept for the page); figures are closed."""
    import matplotlib.pyplot as plt

    try:
        for item in s.items:
            if not isinstance(item, Figure):
                continue
            stem = f"step-{s.index:02d}-{s.name}-{item.name}".replace("/", "_").replace(" ", "_")
            name, n = f"{stem}.png", 1
            while name in s.files.values():  # two groups' figures of the same name
                n += 1
                name = f"{stem}-{n}.png"
            buf = io.BytesIO()
            item.figure.savefig(buf, format="png", dpi=DPI)
            (out / name).write_bytes(buf.getvalue())
            s.files[id(item)] = name
            s.images[id(item)] = buf.getvalue()
    finally:
        for item in s.items:
            if isinstance(item, Figure):
                plt.close(item.figure)


def write_report(store: Store, run_id: str, out_dir: str | os.PathLike[str]) -> Path:
    """Write <out_dir>/report.html (self-contained: every image embedded), the figures as PNG files
    and summary.json; returns the page's path. OSError if the folder cannot be written."""
    from labctl.campaigns.report_html import render

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rec = store.run(run_id)
    steps = build_steps(store, rec, out)
    events = store.events(run_id)
    summary = {
        "run_id": rec.run_id, "name": rec.name, "status": rec.shown_status, "created_at": rec.created_at,
        "started_at": rec.started_at, "stopped_at": rec.stopped_at, "package_version": rec.package_version,
        "seed": rec.seed, "backend": rec.backend_kind, "identity": rec.identity, "metadata": rec.metadata,
        "limits": rec.campaign.get("limits"), "resumes": rec.resumes, "errors": rec.errors,
        "telemetry": rec.telemetry, "measurements": store.measurement_count(run_id),
        "steps": [{"index": s.index, "name": s.name, "routine": s.routine, "units": s.units,
                   "units_done": s.units_done, "summaries": s.summaries,
                   "quantities": _merged_quantities(s.summaries),
                   "plot": next(iter(s.files.values()), None),
                   "figures": [{"file": s.files[id(i)], "caption": i.caption} for i in s.items if isinstance(i, Figure)],
                   "notes": [i.text for i in s.items if isinstance(i, Note)]} for s in steps],
    }
    dies = store.dies(run_id)
    if dies:  # a wafer campaign: its wafer maps and dies (labctl.campaigns.wafermap), on the page as a step
        from labctl.campaigns.wafermap import die_table, wafer_map_figure

        wafer = StepReport(len(rec.campaign["steps"]), "wafer", "wafer", len(dies),
                           sum(d.status == "done" for d in dies), [], [
                               Figure("wafer-map", wafer_map_figure(dies, title=rec.name),
                                      f"Wafer maps of {len(dies)} dies (status and per-die summaries)."),
                               Table("Dies", ["die", "column", "row", "status", "touchdowns", "contact (S)", "message"],
                                     [[str(d.die_index), str(d.column), str(d.row), d.status, str(d.touchdowns),
                                       "-" if d.contact_g is None else f"{d.contact_g:.3g}", d.message or ""]
                                      for d in dies])])
        _save(wafer, out)
        for key, name in list(wafer.files.items()):  # the one wafer map keeps its plain name
            (out / name).replace(out / "wafer-map.png")
            wafer.files[key] = "wafer-map.png"
        steps.append(wafer)
        summary["wafer"] = {"plot": next(iter(wafer.files.values())), "dies": die_table(dies)}
    (out / SUMMARY_FILE).write_text(json.dumps(_clean(summary), indent=2, default=str, allow_nan=False))
    page = out / REPORT_FILE
    page.write_text(render(rec, summary, steps, events, generated=time.time()), encoding="utf-8")
    return page


def _merged_quantities(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """Statistics per kind.quantity of the step: those of the first group that measured it."""
    out: dict[str, Any] = {}
    for s in summaries:
        for k, v in s["quantities"].items():
            out.setdefault(k, v)
    return out


def _clean(obj: Any) -> Any:
    """NaN and inf (not JSON) become null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj
