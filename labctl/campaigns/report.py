"""Run reports: one PNG per step of what it measured, and a JSON summary (`labctl report RUN`).

Per step, each measured quantity gets a panel: a quantity taken repeatedly over time (retention, read
noise) is drawn as mean and spread against the backend clock; a vector quantity (a sweep's currents)
as curves of a few cells against its voltages; any other scalar as a histogram. The step's main
conductance (or first scalar) is also drawn as a map over the array.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from labctl.campaigns.runner import combine_summaries
from labctl.campaigns.store import Store, UnitRecord

MAX_PANELS = 9
MAX_CURVES = 12

_Trace = tuple[int, int, int, np.ndarray]  # batch id, cell row, cell col, float64 (n_points,)


def _stats(a: np.ndarray) -> dict[str, float | int | None]:
    a = a[np.isfinite(a)]
    if a.size == 0:
        return {"count": 0, "mean": None, "std": None, "min": None, "max": None}
    return {"count": int(a.size), "mean": float(a.mean()), "std": float(a.std()), "min": float(a.min()),
            "max": float(a.max())}


def _step_data(store: Store, run_id: str, step_index: int) -> tuple[dict[tuple[str, str], dict[str, np.ndarray]],
                                                                     dict[tuple[str, str], list[_Trace]]]:
    """Scalars per (kind, quantity): arrays t (s), row, col, value (SI); traces per (kind, quantity): one
    (batch id, row, col, float64 trace) per cell, in the order taken."""
    scalars: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]] = {}
    traces: dict[tuple[str, str], list[_Trace]] = {}
    for b in store.batches(run_id, step_index=step_index, traces=True):
        for q, values in b.scalars.items():
            scalars.setdefault((b.kind, q), []).append((np.full(b.rows.size, b.t), b.rows, b.cols, values))
        cells = list(zip(b.rows.tolist(), b.cols.tolist()))
        for q, data in b.traces.items():
            traces.setdefault((b.kind, q), []).extend((b.batch_id, r, c, tr) for (r, c), tr in zip(cells, data))
    out = {key: {"t": np.concatenate([p[0] for p in parts]), "row": np.concatenate([p[1] for p in parts]),
                 "col": np.concatenate([p[2] for p in parts]), "value": np.concatenate([p[3] for p in parts])}
           for key, parts in scalars.items()}
    return out, traces


def _is_series(d: dict[str, np.ndarray]) -> bool:
    """A quantity measured on the same cells at several times."""
    return np.unique(d["t"]).size >= 3 and d["value"].size > np.unique(d["row"] * 100003 + d["col"]).size


def write_report(store: Store, run_id: str, out_dir: str | os.PathLike[str]) -> Path:
    """Write <out_dir>/summary.json and one step-NN-<name>.png per step; returns the summary path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rec = store.run(run_id)
    units = store.units(run_id)
    campaign = rec.campaign
    n_rows, n_cols = campaign["backend"]["rows"], campaign["backend"]["cols"]
    steps_out = []
    for step_index, step in enumerate(campaign["steps"]):
        su = [u for u in units if u.step_index == step_index]
        if not su:
            continue
        name = su[0].step_name
        groups: dict[tuple[int, int, int], list[UnitRecord]] = {}
        for u in su:
            groups.setdefault((u.pass_index, u.sweep_index, u.repeat_index), []).append(u)
        summaries = []
        for (p, s, r), g in groups.items():
            sums = [u.summary for u in g if u.summary is not None]
            summaries.append({"pass": p, "sweep_index": s, "repeat": r, "params": g[0].params,
                              "done": all(u.status == "done" for u in g),
                              "summary": combine_summaries(sums, [u.n_cells for u in g if u.summary is not None],
                                                          su[0].routine)
                              if sums else None})
        scalars, traces = _step_data(store, run_id, step_index)
        quantities = {f"{k}.{q}": _stats(d["value"]) for (k, q), d in scalars.items()}
        for (k, q), items in traces.items():
            allv = np.concatenate([tr for *_, tr in items]) if items else np.zeros(0)
            quantities[f"{k}.{q}"] = {**_stats(allv), "traces": len(items)}
        png = None
        panels = _panels(scalars, traces)
        if panels:
            png = f"step-{step_index:02d}-{name}.png".replace("/", "_")
            _plot_step(plt, out / png, f"{rec.name} / {name} ({step['routine']})", panels, scalars, traces,
                       n_rows, n_cols)
        steps_out.append({"index": step_index, "name": name, "routine": step["routine"],
                          "units": len(su), "units_done": sum(u.status == "done" for u in su),
                          "summaries": summaries, "quantities": quantities, "plot": png})
    summary = {
        "run_id": rec.run_id, "name": rec.name, "status": rec.shown_status, "created_at": rec.created_at,
        "started_at": rec.started_at, "stopped_at": rec.stopped_at, "package_version": rec.package_version,
        "seed": rec.seed, "backend": rec.backend_kind, "identity": rec.identity, "metadata": rec.metadata,
        "resumes": rec.resumes, "errors": rec.errors, "telemetry": rec.telemetry,
        "measurements": store.measurement_count(run_id), "steps": steps_out,
    }
    dies = store.dies(run_id)
    if dies:  # a wafer campaign: its wafer maps and dies (labctl.campaigns.wafermap)
        from labctl.campaigns.wafermap import die_table, wafer_map_figure

        wafer_map_figure(dies, title=rec.name).savefig(out / "wafer-map.png", dpi=90)
        summary["wafer"] = {"plot": "wafer-map.png", "dies": die_table(dies)}
    path = out / "summary.json"
    path.write_text(json.dumps(_clean(summary), indent=2, default=str, allow_nan=False))
    return path


def _clean(obj: Any) -> Any:
    """NaN and inf (not JSON) become null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


# Quantities that say where in a sequence a value was taken rather than what was measured.
INDEX_NAMES = ("pulse", "cycle", "iteration", "round", "repeat")
LABEL_NAMES = INDEX_NAMES + ("stage", "direction", "polarity", "target", "t_after")


def _panels(scalars: dict[tuple[str, str], dict[str, np.ndarray]],
            traces: dict[tuple[str, str], list[Any]]) -> list[tuple[str, tuple[str, str]]]:
    panels: list[tuple[str, tuple[str, str]]] = []
    for key, items in traces.items():
        if key[1] in ("v", "voltages") and any(k[0] == key[0] and k[1] not in ("v", "voltages") for k in traces):
            continue  # drawn as the x axis of its batch's other traces
        panels.append(("traces", key))
    for key, d in scalars.items():
        kind, q = key
        index = next((n for n in INDEX_NAMES if (kind, n) in scalars), None)
        if q in LABEL_NAMES and len([k for k in scalars if k[0] == kind]) > 1:
            continue  # labels of the kind's other values, not measurements
        if index is not None:
            panels.append((f"indexed:{index}", key))
        else:
            panels.append(("series" if _is_series(d) else "hist", key))
    main = next((k for k in scalars if k[1] in ("g", "g_final", "g_programmed")), next(iter(scalars), None))
    if main is not None:
        panels.append(("map", main))
    return panels[:MAX_PANELS]


def _plot_step(plt: Any, path: Path, title: str, panels: list[tuple[str, tuple[str, str]]],
               scalars: dict[tuple[str, str], dict[str, np.ndarray]], traces: dict[tuple[str, str], list[Any]],
               n_rows: int, n_cols: int) -> None:
    ncol = min(3, len(panels))
    nrow = math.ceil(len(panels) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.4 * nrow), squeeze=False)
    for ax in axes.ravel()[len(panels):]:
        ax.set_visible(False)
    for ax, (what, (kind, q)) in zip(axes.ravel(), panels):
        label = f"{kind}.{q}"
        if what == "traces":
            items = traces[(kind, q)][:MAX_CURVES]
            xs = {(b, r, c): tr for b, r, c, tr in traces.get((kind, "v"), [])}
            for b, r, c, y in items:
                x = xs.get((b, r, c))
                ax.plot(x if x is not None and x.size == y.size else np.arange(y.size), y, lw=0.8)
            ax.set_xlabel("v (V)" if xs else "point")
            ax.set_ylabel(q)
            ax.set_title(f"{label}: {min(len(traces[(kind, q)]), MAX_CURVES)} of {len(traces[(kind, q)])} cells",
                         fontsize=9)
        elif what == "series":
            d = scalars[(kind, q)]
            ts = np.unique(d["t"])
            mean = np.array([np.nanmean(d["value"][d["t"] == t]) for t in ts])
            std = np.array([np.nanstd(d["value"][d["t"] == t]) for t in ts])
            ax.plot(ts, mean, "o-", ms=3)
            ax.fill_between(ts, mean - std, mean + std, alpha=0.3)
            if ts.min() > 0 and ts.max() / ts.min() > 100:
                ax.set_xscale("log")
            ax.set_xlabel("backend time (s)")
            ax.set_ylabel(q)
            ax.set_title(f"{label}: mean ± std of {d['value'].size // ts.size} cells", fontsize=9)
        elif what.startswith("indexed:"):
            index = what.split(":", 1)[1]
            d = scalars[(kind, q)]
            x = scalars[(kind, index)]["value"]
            xs = np.unique(x)
            mean = np.array([np.nanmean(d["value"][x == k]) for k in xs])
            std = np.array([np.nanstd(d["value"][x == k]) for k in xs])
            ax.plot(xs, mean, lw=0.8)
            ax.fill_between(xs, mean - std, mean + std, alpha=0.3)
            ax.set_xlabel(index)
            ax.set_ylabel(q)
            ax.set_title(f"{label}: mean ± std over cells", fontsize=9)
        elif what == "hist":
            v = scalars[(kind, q)]["value"]
            v = v[np.isfinite(v)]
            if v.size:
                ax.hist(v, bins=min(50, max(5, int(np.sqrt(v.size)))))
            ax.set_xlabel(q)
            ax.set_ylabel("count")
            ax.set_title(f"{label}: {v.size} values", fontsize=9)
        else:  # map of the last value per cell
            d = scalars[(kind, q)]
            grid = np.full((n_rows, n_cols), np.nan)
            grid[d["row"], d["col"]] = d["value"]
            im = ax.imshow(grid, aspect="auto", interpolation="nearest")
            fig.colorbar(im, ax=ax, label=q)
            ax.set_xlabel("column")
            ax.set_ylabel("row")
            ax.set_title(f"{label}: last value per cell", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
