"""Export a run's measurements to CSV or Parquet (one row per cell and quantity, SI units).

Columns: EXPORT_COLUMNS of labctl.campaigns.store. `value` holds scalar quantities; `trace` holds vector
quantities (a sweep's currents, ...): in Parquet a list<double>, in CSV space-separated numbers in
Python's round-trip repr, so that reading the file back gives the stored float64 values exactly.
"""
from __future__ import annotations

import contextlib
import csv
import itertools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from labctl.campaigns.store import EXPORT_COLUMNS, Store


#: Files SQLite keeps beside a store in WAL mode.
STORE_SIDE_FILES = ("", "-wal", "-shm", "-journal")


def check_output(out: str | os.PathLike[str], store_path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """The export file `out`, refused (ValueError naming it) if it is the store itself or one of its
    -wal/-shm/-journal files (by resolved path, or the same file through a link), or if it exists and
    `force` is not given."""
    target = Path(out)
    for suffix in STORE_SIDE_FILES:
        side = Path(str(store_path) + suffix)
        same = target.resolve() == side.resolve()
        with contextlib.suppress(OSError):
            same = same or (target.exists() and side.exists() and os.path.samefile(target, side))
        if same:
            raise ValueError(f"--out {out}: that is the run store {store_path}{' (' + suffix + ')' if suffix else ''}"
                             "; an export never writes over the store")
    if target.is_dir():
        raise ValueError(f"--out {out}: is a directory; give a file name")
    if target.exists() and not force:
        raise ValueError(f"--out {out}: the file exists; give --force to replace it")
    return target


def _usual_mode(path: str) -> None:
    """Give a finished temporary file the permissions a newly created file gets (mkstemp makes it 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], mode: str = "w", **kw: Any) -> Iterator[Any]:
    """Write `path` through a temporary file beside it, renamed over `path` only once complete: a failure
    leaves no half-written file (and an existing file untouched)."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with open(fd, mode, **kw) as f:
            yield f
        _usual_mode(tmp)
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename is None:  # a full disk, a file size limit: name the file
            raise OSError(exc.errno, f"cannot write ({exc.strerror or exc})", str(target)) from exc
        raise


def write_atomically(path: str | os.PathLike[str], data: bytes | memoryview) -> None:
    """Write a file built in memory (an HDF5 image: HDF5 must never meet a failed write itself, which
    can crash it) to `path` through atomic_output."""
    with atomic_output(path, "wb") as f:
        f.write(data)


def _trace_list(blob: bytes | None) -> list[float] | None:
    return None if blob is None else np.frombuffer(blob, "<f8").tolist()


def export_csv(store: Store, run_id: str, path: str | os.PathLike[str]) -> int:
    """Write the run's measurements as CSV (atomically: all or nothing); returns the number of rows."""
    n = 0
    with atomic_output(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["run_id", *EXPORT_COLUMNS])
        for row in store.measurement_rows(run_id):
            *head, value, trace = row
            w.writerow([run_id, *head, "" if value is None else repr(value),
                        "" if trace is None else " ".join(repr(x) for x in _trace_list(trace) or [])])
            n += 1
    return n


def read_csv(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read an exported CSV back: numbers as int/float, trace as a list of floats (None if empty)."""
    ints = {"unit_index", "step_index", "pass_index", "repeat_index", "sweep_index", "chunk_index", "attempt",
            "seq", "cell_row", "cell_col"}
    out = []
    with open(path, newline="") as f:
        for rec in csv.DictReader(f):
            d: dict[str, Any] = dict(rec)
            for k in ints:
                d[k] = int(d[k])
            d["t"] = float(d["t"])
            d["value"] = float(d["value"]) if d["value"] != "" else None
            d["trace"] = [float(x) for x in d["trace"].split()] if d["trace"] != "" else None
            out.append(d)
    return out


def export_parquet(store: Store, run_id: str, path: str | os.PathLike[str], batch_rows: int = 200_000) -> int:
    """Write the run's measurements as Parquet (pyarrow), streamed in row groups, atomically; returns the
    row count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("run_id", pa.string()), ("unit_index", pa.int64()), ("step_index", pa.int64()),
                        ("step_name", pa.string()), ("routine", pa.string()), ("pass_index", pa.int64()),
                        ("repeat_index", pa.int64()), ("sweep_index", pa.int64()), ("chunk_index", pa.int64()),
                        ("attempt", pa.int64()), ("seq", pa.int64()), ("kind", pa.string()), ("t", pa.float64()),
                        ("cell_row", pa.int64()), ("cell_col", pa.int64()), ("quantity", pa.string()),
                        ("value", pa.float64()), ("trace", pa.list_(pa.float64()))])
    n = 0
    rows_iter = store.measurement_rows(run_id)
    with atomic_output(path, "wb") as f, pq.ParquetWriter(f, schema) as writer:
        while True:
            rows = list(itertools.islice(rows_iter, batch_rows))
            if not rows:
                break
            cols = list(zip(*rows))
            data = [[run_id] * len(rows)] + [list(c) for c in cols[:-1]] + [[_trace_list(b) for b in cols[-1]]]
            writer.write_table(pa.Table.from_arrays([pa.array(d, type=f.type) for d, f in zip(data, schema)],
                                                    schema=schema))
            n += len(rows)
    return n
