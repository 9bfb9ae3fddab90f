"""`labctl runs export RUN --format netcdf`: a run as one NetCDF-4 file (xarray with h5netcdf).

One group per step and batch kind, `/<step index>-<step name>/<kind>`, holding the dataset
labctl.open_run gives for it (labelled dimensions, CF-style `units` attributes); the root carries the
run's record (id, name, status, campaign, backend, metadata as attributes). Every variable is compressed
(gzip level 4 with byte shuffle, the codecs every NetCDF-4 reader has); per-cell traces are written as
float32, the precision the store keeps them in (docs/store.md), everything else as float64.
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np

from labctl.campaigns.arrays import RunData
from labctl.campaigns.export import write_atomically

_COMPRESSION = {"zlib": True, "complevel": 4, "shuffle": True}


def group_name(step_index: int, step_name: str, kind: str) -> str:
    """The NetCDF group of one step's batches of one kind."""
    return f"{step_index}-{step_name.replace('/', '_')}/{kind}"


def export_netcdf(run: RunData, path: str | os.PathLike[str]) -> int:
    """Write the run as NetCDF-4 (atomically: all or nothing); returns the bytes of array data written
    (before compression)."""
    import xarray as xr

    record = run.record
    total = 0
    image = io.BytesIO()  # built in memory, written at the end (export.write_atomically says why)
    root = xr.Dataset(attrs={
        "Conventions": "CF-1.8", "title": record.name, "run_id": record.run_id, "status": record.shown_status,
        "backend_kind": record.backend_kind, "identity": json.dumps(record.identity),
        "metadata": json.dumps(record.metadata), "campaign_toml": record.campaign_toml,
        "labctl_version": record.package_version, "created_at": record.created_at,
        "source": "labctl run store"})
    root.to_netcdf(image, mode="w", engine="h5netcdf")
    for step in run.steps():
        for kind, (_, vectors) in step.kinds.items():
            ds = run.dataset(step.index, kind)
            encoding = {}
            for name, var in {**ds.data_vars, **ds.coords}.items():
                if var.dtype.kind != "f" or var.ndim == 0:
                    continue
                enc = dict(_COMPRESSION)
                if name in vectors and var.ndim > 1:
                    enc["dtype"] = np.float32  # exact: the store keeps per-cell traces as float32
                encoding[name] = enc
            total += int(sum(v.nbytes for v in ds.variables.values()))
            ds.to_netcdf(image, mode="a", group=group_name(step.index, step.name, kind), engine="h5netcdf",
                         encoding=encoding)
    write_atomically(path, image.getbuffer())
    return total


def read_netcdf_groups(path: str | os.PathLike[str]) -> list[str]:
    """The step/kind groups of an exported file, in file order."""
    import h5py

    with h5py.File(Path(path), "r") as f:
        return [f"{step}/{kind}" for step in f for kind in f[step] if isinstance(f[step][kind], h5py.Group)]
