"""A sweep's results as a tidy table (one row per task: its axes and figures as columns), its exports, and
the plots its [[plot]] tables ask for."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from labctl.campaigns.export import atomic_output
from labctl.campaigns.store import Store
from labctl.sweeps.schema import Plot, Sweep

_TASK_COLUMNS = ("task_index", "seed", "status", "attempts", "worker", "elapsed_s", "run_id", "error")


def table(store: Store, sweep_id: str) -> Any:
    """pandas.DataFrame: one row per stored task; columns: the task's bookkeeping, then its axes (with
    `repeat`), then its figures (missing values NaN)."""
    import pandas as pd

    rows = []
    for t in store.sweep_tasks(sweep_id):
        rows.append({"task_index": t.task_index, "seed": t.seed, "status": t.status, "attempts": t.attempts,
                     "worker": t.worker, "elapsed_s": t.elapsed, "run_id": t.run_id, "error": t.error,
                     **{f"axis.{k}": v for k, v in t.axes.items()},
                     **{f"figure.{k}": (np.nan if v is None else v) for k, v in t.figures.items()}})
    return pd.DataFrame(rows, columns=None if rows else list(_TASK_COLUMNS))


def export_table(store: Store, sweep_id: str, out: str | os.PathLike[str], fmt: str) -> int:
    """Write the sweep's table as csv, parquet or netcdf (atomically); returns the number of tasks."""
    df = table(store, sweep_id)
    target = Path(out)
    if fmt == "csv":
        with atomic_output(target, "w", newline="") as f:
            df.to_csv(f, index=False)
    elif fmt == "parquet":
        with atomic_output(target, "wb") as f:
            df.to_parquet(f, index=False)
    elif fmt == "netcdf":
        ds = df.set_index("task_index").to_xarray()
        for name in ds.data_vars:  # netCDF has no object columns: text as fixed strings
            if ds[name].dtype == object:
                ds[name] = ds[name].astype(str)
        ds.attrs.update({"sweep_id": sweep_id, "title": f"labctl sweep {sweep_id}"})
        with atomic_output(target, "wb") as f:
            f.write(ds.to_netcdf(engine="h5netcdf"))
    else:
        raise ValueError(f"format: expected csv, parquet or netcdf, got {fmt!r}")
    return int(len(df))


def _plt() -> Any:
    from labctl.campaigns.experiment import pyplot

    return pyplot()


def plot_figure(df: Any, plot: Plot) -> Any:
    """The matplotlib Figure of one [[plot]]: each y figure's mean (or median) over the tasks at each x,
    with the spread (std) as error bars, one line per value of `group`."""
    plt = _plt()
    x, group = f"axis.{plot.x}", f"axis.{plot.group}" if plot.group else None
    fig, axes = plt.subplots(1, len(plot.y), figsize=(5.2 * len(plot.y), 3.8), squeeze=False)
    done = df[df["status"] == "done"] if len(df) else df
    for ax, y in zip(axes[0], plot.y):
        col = f"figure.{y}"
        if col not in done or x not in done:
            ax.text(0.5, 0.5, f"no data for {y} vs {plot.x}", ha="center", va="center", transform=ax.transAxes)
            continue
        import pandas as pd

        numeric = pd.api.types.is_numeric_dtype(done[x])
        order = list(dict.fromkeys(done[x]))  # a text axis (a point's label): in file order
        groups = [(None, done)] if group is None or group not in done else list(done.groupby(group, sort=True))
        for value, part in groups:
            stats = part.groupby(x, sort=numeric)[col].agg([plot.statistic, "std", "count"])
            xs = stats.index.to_numpy(dtype=float) if numeric else np.array([order.index(v) for v in stats.index])
            label = None if value is None else f"{plot.group} = {value:g}" if isinstance(value, float) \
                else f"{plot.group} = {value}"
            ax.errorbar(xs, stats[plot.statistic].to_numpy(dtype=float),
                        yerr=np.nan_to_num(stats["std"].to_numpy(dtype=float)), marker="o", capsize=3, label=label,
                        linestyle="-" if numeric else "none")
        if not numeric:
            ax.set_xticks(range(len(order)), [str(v) for v in order], rotation=20, ha="right", fontsize=8)
        elif plot.logx:  # the axis values themselves, not powers of ten (sizes 64, 128, ...)
            ticks = sorted({float(v) for v in done[x]})
            ax.set_xticks(ticks, [f"{v:g}" for v in ticks])
            ax.minorticks_off()
        ax.set_xlabel(plot.x)
        ax.set_ylabel(f"{y} ({plot.statistic} ± std over repeats)")
        if plot.logx:
            ax.set_xscale("log")
        if plot.logy:
            ax.set_yscale("log")
        if group is not None:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    import textwrap

    title = plot.title or f"{', '.join(plot.y)} vs {plot.x}"
    fig.suptitle("\n".join(textwrap.wrap(title, width=int(60 * len(plot.y)))), fontsize=10)
    fig.tight_layout()
    return fig


def write_report(store: Store, sweep_id: str, out: str | os.PathLike[str]) -> list[Path]:
    """Write the sweep's table (CSV), a JSON summary and one PNG per [[plot]] into `out`; returns the files."""
    rec = store.sweep(sweep_id)
    sweep = Sweep.model_validate(rec.sweep["sweep"])
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    df = table(store, sweep_id)
    files = [folder / "tasks.csv"]
    export_table(store, sweep_id, files[0], "csv")
    plt = _plt()
    for k, plot in enumerate(sweep.plot):
        fig = plot_figure(df, plot)
        path = folder / f"plot-{k}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        files.append(path)
    figures = [c for c in df.columns if str(c).startswith("figure.")]
    summary = {"sweep_id": sweep_id, "name": rec.name, "status": rec.status, "tasks": rec.n_tasks,
               "done": int((df["status"] == "done").sum()) if len(df) else 0,
               "failed": int((df["status"] == "failed").sum()) if len(df) else 0,
               "figures": {c[7:]: _stats(df[c]) for c in figures}}
    path = folder / "summary.json"
    with atomic_output(path, "w") as f:
        json.dump(summary, f, indent=2)
    files.append(path)
    return files


def _stats(col: Any) -> dict[str, float | None]:
    v = np.asarray(col.to_numpy(dtype=float, na_value=np.nan), dtype=float)
    v = v[np.isfinite(v)]
    if not v.size:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std()), "n": int(v.size), "min": float(v.min()),
            "max": float(v.max())}
