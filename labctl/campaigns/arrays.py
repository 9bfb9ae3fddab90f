"""Array-shaped access to a stored run: per step and batch kind an xarray.Dataset, or a tidy DataFrame.

`open_run(store, run)` reads nothing but the run's record; each `dataset(...)`/`frame(...)` reads only
the batches of the step and kind asked for, and only the quantities asked for. Each call opens the store
read-only for its own read, so a run still being written can be read from any thread or process: a
dataset holds what was committed when it was read (cells not measured yet are NaN).

Dimensions of a dataset (docs/store.md, "Arrays"), outermost first, each only if it has more than one
value (otherwise a scalar coordinate): `pass_index` (campaign repeat), `sweep_index` (with the swept
parameters as coordinates along it, e.g. `tolerance`), `repeat_index` (step repeat), then the cell's
n-th batch of this kind within those (`sample`, named after the routine's index quantity when that
labels it one-to-one: `iteration`, `repeat`, `pulse`, `cycle`, `t_after` (s), `elapsed` (s), `entry` (an imported ArC time series)), then
`row`, `col`, and for vector quantities `point`. `t` (the backend clock when the value was taken, s) is
a coordinate over every dimension but `point`; a vector quantity in seconds (`pulse_time` of the
"pulse_trace" kind) is the time axis of the others, a coordinate along `point`. Units are in each variable's `units` attribute (CF style;
"1" for a dimensionless number).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from labctl.routines.base import PULSE_TRACE_KIND
from labctl.campaigns.quantities import unit_of_field
from labctl.campaigns.store import RunRecord, Store, StoredBatch, UnitRecord

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

#: Quantities a routine emits to say which of a cell's repeated measurements a batch is (in the order
#: looked for); such a quantity names the `sample` dimension when it labels it one-to-one.
INDEX_QUANTITIES = ("iteration", "repeat", "pulse", "cycle", "t_after", "elapsed", "entry")
#: Units of stored quantities whose names the lab's naming rule (quantities.unit_of_field) does not cover.
_UNITS = {"elapsed": "s", "formed": "1", "converged": "1", "iterations": "1", "iteration": "1", "repeat": "1",
          "pulse": "1", "pulse_stride": "1", "cycle": "1", "entry": "1", "op_type": "1", "direction": "1", "polarity": "1", "state": "1"}
_GROUP_DIMS = ("pass_index", "sweep_index", "repeat_index")


def unit_of(quantity: str) -> str:
    """The SI unit of a stored quantity (CF style: "1" for a number without unit)."""
    return _UNITS.get(quantity) or unit_of_field(quantity) or "1"


@dataclass(frozen=True)
class StepInfo:
    """One step of a run and what it stored: kind -> (scalar quantities, vector quantities)."""

    index: int
    name: str
    routine: str
    kinds: dict[str, tuple[list[str], list[str]]]


class RunData:
    """A stored run, read on demand (see the module docstring)."""

    def __init__(self, store: str | os.PathLike[str], run: str = "last") -> None:
        self.store_path = os.fspath(store)
        with self._open() as s:
            self.run_id = s.find_run(run)

    def _open(self) -> Store:
        return Store(self.store_path, read_only=True)

    @property
    def record(self) -> RunRecord:
        """The run's record as stored now (status, metadata, ...)."""
        with self._open() as s:
            return s.run(self.run_id)

    def steps(self) -> list[StepInfo]:
        """The run's steps, with the kinds and quantities each has stored so far (no measurement read)."""
        with self._open() as s:
            units = s.units(self.run_id)
            kinds = s.step_kinds(self.run_id)
        seen: dict[int, StepInfo] = {}
        for u in units:
            if u.step_index not in seen:
                seen[u.step_index] = StepInfo(u.step_index, u.step_name, u.routine, kinds.get(u.step_index, {}))
        return list(seen.values())

    def step(self, step: int | str) -> StepInfo:
        """A step by index or name; KeyError naming the steps otherwise."""
        steps = self.steps()
        for info in steps:
            if step == info.index or step == info.name:
                return info
        raise KeyError(f"run {self.run_id}: no step {step!r} (steps: "
                       + ", ".join(f"{i.index} {i.name!r}" for i in steps) + ")")

    def _kind(self, info: StepInfo, kind: str | None) -> str:
        if kind is None:
            if info.routine in info.kinds:
                return info.routine
            if len(info.kinds) == 1:
                return next(iter(info.kinds))
        elif kind in info.kinds:
            return kind
        raise KeyError(f"run {self.run_id} step {info.name!r}: " + (f"no batches of kind {kind!r}; " if kind else
                       "give a kind; ") + f"it holds {', '.join(info.kinds) or 'nothing yet'}")

    def _read(self, step: int | str, kind: str | None, quantities: Sequence[str] | None,
              traces: bool) -> tuple[StepInfo, str, list[StoredBatch], dict[int, UnitRecord]]:
        info = self.step(step)
        kind = self._kind(info, kind)
        scalars, vectors = info.kinds[kind]
        if quantities is not None:
            unknown = [q for q in quantities if q not in scalars and q not in vectors]
            if unknown:
                raise KeyError(f"run {self.run_id} step {info.name!r} kind {kind!r}: no quantity "
                               f"{', '.join(map(repr, unknown))} (it has {', '.join(scalars + vectors)})")
        want = traces and (quantities is None or any(q in vectors for q in quantities))
        with self._open() as s:
            units = {u.unit_index: u for u in s.units(self.run_id)}
            batches = list(s.batches(self.run_id, [kind], step_index=info.index, traces=want,
                                     quantities=quantities))
        # A unit interrupted on hardware runs again as a new attempt: only its last attempt counts.
        last = {}
        for b in batches:
            last[b.unit_index] = max(last.get(b.unit_index, 0), b.attempt)
        return info, kind, [b for b in batches if b.attempt == last[b.unit_index]], units

    def dataset(self, step: int | str, kind: str | None = None, quantities: Sequence[str] | None = None,
                *, traces: bool = True) -> xr.Dataset:
        """The step's measurements of one batch kind (default: the kind named like the routine, or the
        only one) as an xarray.Dataset; only `quantities` if given; vector quantities unless traces=False."""
        import xarray as xr

        info, kind, batches, units = self._read(step, kind, quantities, traces)
        rows = np.unique(np.concatenate([b.rows for b in batches])) if batches else np.zeros(0, np.int64)
        cols = np.unique(np.concatenate([b.cols for b in batches])) if batches else np.zeros(0, np.int64)
        groups = sorted({_group(units[b.unit_index]) for b in batches})
        axes = [sorted({g[k] for g in groups}) for k in range(3)]
        # The n-th batch of this kind that holds a cell, per (pass, sweep, repeat): the `sample` index.
        seen: dict[tuple[int, int, int], np.ndarray] = {}
        placed = []
        for b in batches:
            g = _group(units[b.unit_index])
            ri, ci = np.searchsorted(rows, b.rows), np.searchsorted(cols, b.cols)
            count = seen.setdefault(g, np.zeros((rows.size, cols.size), np.int64))
            occurrence = count[ri, ci].copy()
            count[ri, ci] += 1
            placed.append((tuple(axes[k].index(g[k]) for k in range(3)), occurrence, ri, ci))
        n_samples = max((int(c.max()) for c in seen.values() if c.size), default=0)
        grid = tuple(len(a) for a in axes) + (n_samples, rows.size, cols.size)
        t = np.full(grid, np.nan)
        data: dict[str, np.ndarray] = {}
        points: dict[str, int] = {}
        for b in batches:
            for q, a in b.traces.items():
                points[q] = max(points.get(q, 0), a.shape[1])
        shared_traces = {q for q in points if _same_trace(batches, q)}
        for (gi, occ, ri, ci), b in zip(placed, batches):
            at = gi + (occ, ri, ci)
            t[at] = b.t
            for q, a in b.scalars.items():
                if q not in data:
                    data[q] = np.full(grid, np.nan)
                data[q][at] = a
            for q, a in b.traces.items():
                if q in shared_traces:
                    continue
                if q not in data:
                    data[q] = np.full(grid + (points[q],), np.nan)
                data[q][at + (slice(0, a.shape[1]),)] = a
        dims = list(_GROUP_DIMS) + ["sample", "row", "col"]
        coords: dict[str, Any] = {"row": ("row", rows, {"long_name": "word line (row) index"}),
                                  "col": ("col", cols, {"long_name": "bit line (column) index"})}
        for k, name in enumerate(_GROUP_DIMS):
            coords[name] = (name, np.asarray(axes[k], np.int64))
        coords["sample"] = ("sample", np.arange(n_samples))
        variables: dict[str, Any] = {}
        for q, a in data.items():
            d = dims + (["point"] if a.ndim == len(dims) + 1 else [])
            variables[q] = (d, a, {"units": unit_of(q)})
        for q in shared_traces:
            variables[q] = (["point"], batches[0].traces[q][0], {"units": unit_of(q), "comment": "the same for every cell"})
        coords["t"] = (dims, t, {"units": "s", "long_name": "backend clock when measured"})
        ds = xr.Dataset(variables, coords=coords)
        if points:
            ds = ds.assign_coords(point=np.arange(max(points.values())))
        ds = _label_samples(ds)
        ds = ds.set_coords([q for q in points if unit_of(q) == "s" and q in ds.data_vars])
        ds = _sweep_coordinates(ds, units, info.index)
        for name in _GROUP_DIMS + ("sample",):
            if name in ds.dims and ds.sizes[name] == 1:
                ds = ds.squeeze(name)
        record = self.record
        ds.attrs.update({"run_id": self.run_id, "run_name": record.name, "run_status": record.shown_status,
                         "step_index": info.index, "step_name": info.name, "routine": info.routine, "kind": kind,
                         "backend_kind": record.backend_kind, "conventions": "CF-1.8",
                         "source": f"labctl {record.package_version} run store {self.store_path}"})
        if kind == PULSE_TRACE_KIND:  # the bound the traces were stored under (docs/store.md, "Pulse traces")
            steps = record.campaign.get("steps") or []
            keep = steps[info.index].get("pulse_traces") if info.index < len(steps) else None
            if keep is not None:
                ds.attrs["pulse_traces"] = keep
                ds.attrs["decimation"] = (f"per unit and cell every pulse up to {keep}, then every 2nd up to "
                                          f"{2 * keep}, every 4th up to {4 * keep}, ...; pulse_stride: pulses "
                                          "each stored trace stands for")
        return ds

    def frame(self, step: int | str, kind: str | None = None, quantities: Sequence[str] | None = None,
              *, traces: bool = False) -> pd.DataFrame:
        """The step's measurements of one kind as a tidy pandas.DataFrame: one row per cell and batch
        (and per trace point if traces=True), columns unit_index, pass_index, sweep_index, repeat_index,
        attempt, seq, t (s), row, col, [point], then one column per quantity (SI; units in
        `frame.attrs["units"]`)."""
        import pandas as pd

        info, kind, batches, units = self._read(step, kind, quantities, traces)
        parts = []
        for b in batches:
            u = units[b.unit_index]
            n = b.rows.size
            cols: dict[str, Any] = {"unit_index": np.full(n, b.unit_index), "pass_index": np.full(n, u.pass_index),
                                    "sweep_index": np.full(n, u.sweep_index),
                                    "repeat_index": np.full(n, u.repeat_index), "attempt": np.full(n, b.attempt),
                                    "seq": np.full(n, b.seq), "t": np.full(n, b.t), "row": b.rows, "col": b.cols}
            cols.update(b.scalars)
            part = pd.DataFrame(cols)
            if traces and b.traces:
                k = max(a.shape[1] for a in b.traces.values())
                part = part.loc[part.index.repeat(k)].reset_index(drop=True)
                part["point"] = np.tile(np.arange(k), n)
                for q, a in b.traces.items():
                    part[q] = np.asarray(a, dtype=np.float64).reshape(-1)
            parts.append(part)
        out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
            columns=["unit_index", *_GROUP_DIMS, "attempt", "seq", "t", "row", "col"])
        out.attrs.update({"run_id": self.run_id, "step_name": info.name, "kind": kind,
                          "units": {c: unit_of(c) for c in out.columns if c not in ("row", "col", "seq", "attempt",
                                                                                     "unit_index", *_GROUP_DIMS)}})
        out.attrs["units"]["t"] = "s"
        return out


def open_run(store: str | os.PathLike[str] | Store, run: str = "last") -> RunData:
    """A stored run for array-shaped reading: `run` is an id, a unique prefix or 'last'; `store` the run
    store's path (or an open Store, whose path is used)."""
    return RunData(store.path if isinstance(store, Store) else store, run)


def _group(u: UnitRecord) -> tuple[int, int, int]:
    return (u.pass_index, u.sweep_index, u.repeat_index)


def _same_trace(batches: list[StoredBatch], q: str) -> bool:
    """Whether vector quantity q is one trace that every cell of every batch shares (a sweep's voltages)."""
    first = next(b.traces[q] for b in batches if q in b.traces)
    return all(q in b.traces and b.traces[q].strides[0] == 0 and b.traces[q].shape[1] == first.shape[1]
               and np.array_equal(b.traces[q][0], first[0]) for b in batches)


def _label_samples(ds: xr.Dataset) -> xr.Dataset:
    """Name the `sample` dimension after an index quantity that labels it one-to-one (its values the same
    for every cell and group at each sample, and all different), with that quantity's values."""
    for q in INDEX_QUANTITIES:
        if q not in ds.data_vars or ds[q].dims[-3:] != ("sample", "row", "col") or "point" in ds[q].dims:
            continue
        a = np.moveaxis(ds[q].values, 3, 0).reshape(ds.sizes["sample"], -1)
        with np.errstate(all="ignore"):
            lo, hi = np.nanmin(a, axis=1), np.nanmax(a, axis=1)
        if np.all(np.isfinite(lo)) and np.array_equal(lo, hi) and np.unique(lo).size == lo.size:
            labels = lo.astype(np.int64) if np.array_equal(lo, np.round(lo)) and unit_of(q) == "1" else lo
            ds = ds.drop_vars(q).rename({"sample": q}).assign_coords({q: (q, labels, {"units": unit_of(q)})})
            break
    return ds


def _sweep_coordinates(ds: xr.Dataset, units: dict[int, UnitRecord], step: int) -> xr.Dataset:
    """The parameters a step's sweep varies, as coordinates along `sweep_index` (SI, units attribute)."""
    by_sweep: dict[int, dict[str, Any]] = {}
    for u in units.values():
        if u.step_index == step:
            by_sweep.setdefault(u.sweep_index, u.params)
    present = [int(i) for i in np.atleast_1d(ds["sweep_index"].values)]
    if len(by_sweep) < 2 or "sweep_index" not in ds.dims:
        return ds
    for name in sorted({k for p in by_sweep.values() for k in p}):
        values = [by_sweep[i].get(name) for i in present]
        every = [by_sweep[i].get(name) for i in sorted(by_sweep)]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) and len(set(every)) > 1:
            ds = ds.assign_coords({name: ("sweep_index", np.asarray(values, np.float64), {"units": unit_of(name)})})
    return ds
