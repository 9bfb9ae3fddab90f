"""ArC TWO data files: `labctl runs export RUN --format arc-hdf5` and `labctl runs import FILE.h5`.

The layout is the one ArC TWO's control software (arc2control, `H5DataStore`, file format 0.2) writes
and reads (docs/store.md, "ArC TWO files", says what maps and what does not):

- root attributes `H5DS_VERSION_MAJOR` 0, `H5DS_VERSION_MINOR` 2, `PYTABLES_FORMAT_VERSION` "2.1",
  `CLASS` "GROUP", `TITLE`, `words` (rows), `bits` (columns); groups `crossbar`, `crosspoints`,
  `synthetics`, `sequences`;
- `/crosspoints/W{word:02d}B{bit:02d}/timeseries`: the crosspoint's biasing history, a table of
  (`current` A, `voltage` V, `pulse_width` s, `read_voltage` V: float32; `op_type` uint32: 1 read,
  2 pulse, 3 pulse + read), attributes `NROWS` (rows in use), `TITLE`, `CLASS` "TABLE", `BASE_SIZE`;
- `/crossbar/current`, `/crossbar/voltage`: float32 (bits, words), each crosspoint's last entry;
- `/synthetics/<name>`: experiments over several crosspoints (attribute `crosspoints`, (n, 2) word/bit).
"""
from __future__ import annotations

import io
import json
import os
import re
import secrets
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labctl.campaigns.export import write_atomically
from labctl.campaigns.store import Store, UnitPlan
from labctl.core import reference as ref
from labctl.routines.base import PULSE_TRACE_KIND, Measurements

FORMAT_MAJOR, FORMAT_MINOR = 0, 2
READ, PULSE, PULSEREAD = 1, 2, 3  # arc2control OpType bits: 0b01 read, 0b10 pulse
TIMESERIES_DTYPE = np.dtype([("current", "<f4"), ("voltage", "<f4"), ("pulse_width", "<f4"),
                             ("read_voltage", "<f4"), ("op_type", "<u4")])
FIELD_UNITS = {"current": "A", "voltage": "V", "pulse_width": "s", "read_voltage": "V", "op_type": "1"}
_BASE_SIZE = 1000
_MAX_ATTRIBUTE = 60_000  # bytes; HDF5 refuses attributes over 64 KiB
_CROSSPOINT = re.compile(r"^W(\d+)B(\d+)$")
#: The kinds an import creates: one per ArC operation type.
IMPORT_KINDS = {READ: "read", PULSE: "pulse", PULSEREAD: "pulse_read"}


def crosspoint_name(word: int, bit: int) -> str:
    """arc2control's name of a crosspoint group (word = row, bit = column)."""
    return "W%02dB%02d" % (word, bit)


def _timeseries_rows(store: Store, run_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every stored conductance read of the run as ArC time-series rows, in the order taken: (rows, cols,
    structured TIMESERIES_DTYPE array)."""
    units = {u.unit_index: u for u in store.units(run_id)}
    rows, cols, entries = [], [], []
    for b in store.batches(run_id, quantities=["g", "direction", "pulse"]):
        if "g" not in b.scalars:
            continue
        params = units[b.unit_index].params
        v_read = float(params.get("v_read", ref.V_READ))
        e = np.zeros(b.rows.size, TIMESERIES_DTYPE)
        e["current"] = b.scalars["g"] * v_read
        e["read_voltage"] = v_read
        if "direction" in b.scalars and "pulse" in b.scalars and "v_set" in params and "width" in params:
            # an open-loop pulse and the read after it
            e["voltage"] = np.where(b.scalars["direction"] > 0, params["v_set"], params["v_reset"])
            e["pulse_width"] = params["width"]
            e["op_type"] = PULSEREAD
        else:
            e["voltage"] = v_read
            e["op_type"] = READ
        rows.append(b.rows)
        cols.append(b.cols)
        entries.append(e)
    if not entries:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, TIMESERIES_DTYPE)
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(entries)


def export_arc_hdf5(store: Store, run_id: str, path: str | os.PathLike[str]) -> int:
    """Write the run as an ArC TWO data file (atomically); returns the time-series rows written."""
    import h5py

    record = store.run(run_id)
    backend = record.campaign.get("backend", {})
    words, bits = int(backend.get("rows", 0)), int(backend.get("cols", 0))
    r, c, entries = _timeseries_rows(store, run_id)
    if words <= 0 or bits <= 0:
        words, bits = (int(r.max()) + 1, int(c.max()) + 1) if r.size else (1, 1)
    image = io.BytesIO()  # built in memory, written at the end (export.write_atomically says why)
    with h5py.File(image, "w") as f:
        f.attrs.update({"CLASS": "GROUP", "PYTABLES_FORMAT_VERSION": "2.1", "H5DS_VERSION_MAJOR": FORMAT_MAJOR,
                        "H5DS_VERSION_MINOR": FORMAT_MINOR, "TITLE": record.name, "words": words, "bits": bits,
                        "labctl_run_id": run_id, "labctl_metadata": json.dumps(record.metadata),
                        "labctl_timeseries_units": json.dumps(FIELD_UNITS)})
        for name in ("crossbar", "crosspoints", "synthetics", "sequences"):
            f.create_group(name).attrs["CLASS"] = "GROUP"
        f["crossbar"].attrs.update({"words": words, "bits": bits})
        current = np.zeros((bits, words), np.float32)
        voltage = np.zeros((bits, words), np.float32)
        order = np.lexsort((c, r))  # stable within a cell: its entries stay in the order taken
        cells = np.stack([r[order], c[order]], axis=1)
        starts = np.flatnonzero(np.r_[True, np.any(cells[1:] != cells[:-1], axis=1)]) if r.size else []
        ends = list(starts[1:]) + [r.size]
        xp = f["crosspoints"]
        for start, end in zip(starts, ends):
            word, bit = (int(x) for x in cells[start])
            rows = entries[order[start:end]]
            g = xp.create_group(crosspoint_name(word, bit))
            # as long as its entries (arc2control grows a full table itself; NROWS says how much is used)
            ts = g.create_dataset("timeseries", data=rows, maxshape=(None,), chunks=True)
            ts.attrs.update({"NROWS": rows.size, "TITLE": crosspoint_name(word, bit), "CLASS": "TABLE",
                             "BASE_SIZE": _BASE_SIZE})
            current[bit, word], voltage[bit, word] = rows[-1]["current"], rows[-1]["voltage"]
        f["crossbar"].create_dataset("current", data=current)
        f["crossbar"].create_dataset("voltage", data=voltage)
        _write_sweeps(store, run_id, f["synthetics"])
    write_atomically(path, image.getbuffer())
    return int(r.size)


def _write_sweeps(store: Store, run_id: str, synthetics: Any) -> None:
    """Each stored batch with vector quantities (a sweep: `v` V, `i` A) as a synthetic experiment over
    its crosspoints: datasets per quantity, float32, (n_cells, n_points), or (n_points) if shared."""
    step_of = {u.unit_index: u.step_name for u in store.units(run_id)}
    for b in store.batches(run_id, traces=True, quantities=_vector_quantities(store, run_id)):
        if not b.traces or b.kind == PULSE_TRACE_KIND:  # not mapped: ArC has no place for them
            continue
        g = synthetics.create_group(f"{b.kind}_{b.unit_index:04d}_{b.seq:04d}")
        g.attrs.update({"CLASS": "GROUP", "labctl_kind": b.kind, "labctl_step": step_of[b.unit_index],
                        "labctl_t": b.t})
        cells = np.stack([b.rows, b.cols], axis=1).astype("<i4")
        if cells.nbytes <= _MAX_ATTRIBUTE:
            g.attrs["crosspoints"] = cells  # as arc2control keeps them
        else:  # an HDF5 attribute holds at most 64 kB: a large batch's cells go into a dataset of that name
            g.create_dataset("crosspoints", data=cells, compression="gzip")
        for q, a in b.traces.items():
            shared = bool(a.strides[0] == 0)
            d = g.create_dataset(q, data=(a[0] if shared else a).astype(np.float32), compression="gzip",
                                 shuffle=True)
            d.attrs.update({"units": "V" if q.startswith("v") else "A" if q.startswith("i") else "1",
                            "shared": int(shared)})


def _vector_quantities(store: Store, run_id: str) -> list[str]:
    return sorted({q for kinds in store.step_kinds(run_id).values() for kind, (_, vectors) in kinds.items()
                   if kind != PULSE_TRACE_KIND for q in vectors})


# ----------------------------------------------------------------------------- import


class ArcFileError(ValueError):
    """An ArC TWO file that cannot be imported; the message names the file and the dataset."""


def _refuse(path: Path, where: str, why: str) -> ArcFileError:
    return ArcFileError(f"{path}: {where}: {why}")


def read_arc_hdf5(path: str | os.PathLike[str], *, timeseries_only: bool = False) -> dict[str, Any]:
    """Read and validate an ArC TWO data file: {"title", "words", "bits", "timeseries": {(word, bit):
    structured array}, "sweeps": [(name, kind, cells (n, 2), {quantity: float64 array}, shared set)]}.
    Refuses (ArcFileError naming the dataset) what it cannot map; with timeseries_only, experiments other
    than labctl's own sweeps are left out instead."""
    import h5py

    path = Path(path)
    if path.is_dir():
        raise ArcFileError(f"{path}: is a directory, not an ArC TWO data file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ArcFileError(f"{path}: not a readable HDF5 file ({exc})") from None
    with f:
        try:
            return _read(path, f, timeseries_only)
        except (KeyError, OSError, TypeError) as exc:  # a damaged object inside a readable file
            raise ArcFileError(f"{path}: damaged or not an ArC TWO data file ({type(exc).__name__}: {exc})") from None


def _read(path: Path, f: Any, timeseries_only: bool) -> dict[str, Any]:
    import h5py

    for key in ("H5DS_VERSION_MAJOR", "H5DS_VERSION_MINOR", "words", "bits"):
        if key not in f.attrs:
            raise _refuse(path, "/", f"no root attribute {key}: not an ArC TWO data file")
    if int(f.attrs["H5DS_VERSION_MAJOR"]) != FORMAT_MAJOR:
        raise _refuse(path, "/", f"file format {int(f.attrs['H5DS_VERSION_MAJOR'])}."
                      f"{int(f.attrs['H5DS_VERSION_MINOR'])}; labctl reads format {FORMAT_MAJOR}.x")
    words, bits = int(f.attrs["words"]), int(f.attrs["bits"])
    units = dict(FIELD_UNITS)
    if "labctl_timeseries_units" in f.attrs:  # labctl's exports state the time series' units once
        try:
            units = json.loads(f.attrs["labctl_timeseries_units"])
        except (TypeError, ValueError):
            raise _refuse(path, "/", "attribute labctl_timeseries_units is not JSON") from None
    if not (0 < words <= 4096 and 0 < bits <= 4096):
        raise _refuse(path, "/", f"crossbar of {words} words x {bits} bits; expected 1..4096 each")
    for name in ("crossbar", "crosspoints", "synthetics"):
        if not isinstance(f.get(name), h5py.Group):
            raise _refuse(path, f"/{name}", "missing (every ArC TWO file has it)")
    for name in ("current", "voltage"):
        d = f["crossbar"].get(name)
        if not isinstance(d, h5py.Dataset) or d.shape != (bits, words):
            shape = getattr(d, "shape", None)
            raise _refuse(path, f"/crossbar/{name}", f"shape {shape}, expected (bits, words) = ({bits}, {words})")
    series: dict[tuple[int, int], np.ndarray] = {}
    for name, group in f["crosspoints"].items():
        m = _CROSSPOINT.match(name)
        where = f"/crosspoints/{name}"
        if m is None or not isinstance(group, h5py.Group):
            raise _refuse(path, where, "not a crosspoint group W<word>B<bit>")
        word, bit = int(m.group(1)), int(m.group(2))
        if word >= words or bit >= bits:
            raise _refuse(path, where, f"outside the {words} x {bits} crossbar")
        for extra in group:
            if extra not in ("timeseries", "experiments"):
                raise _refuse(path, f"{where}/{extra}", "not a part of an ArC TWO crosspoint")
        if "experiments" in group and len(group["experiments"]) and not timeseries_only:
            first = next(iter(group["experiments"]))
            raise _refuse(path, f"{where}/experiments/{first}", "a module's experiment table, which labctl cannot "
                          "map to a measurement (give --timeseries-only to import the time series without it)")
        ts = group.get("timeseries")
        if not isinstance(ts, h5py.Dataset):
            raise _refuse(path, f"{where}/timeseries", "missing")
        series[(word, bit)] = _timeseries(path, f"{where}/timeseries", ts, units)
    sweeps = []
    for name, item in f["synthetics"].items():
        where = f"/synthetics/{name}"
        if isinstance(item, h5py.Group) and "labctl_kind" in item.attrs:
            sweeps.append(_sweep(path, where, item, words, bits))
        elif not timeseries_only:
            raise _refuse(path, where, "a multi-crosspoint experiment labctl did not write and cannot map"
                          " (give --timeseries-only to import the time series without it)")
    return {"title": str(f.attrs.get("TITLE", path.stem)), "words": words, "bits": bits, "timeseries": series,
            "sweeps": sweeps}


def _timeseries(path: Path, where: str, ts: Any, stated: dict[str, str]) -> np.ndarray:
    names = ts.dtype.names or ()
    missing = [k for k in TIMESERIES_DTYPE.names if k not in names]
    if ts.ndim != 1 or missing:
        raise _refuse(path, where, f"not an ArC TWO time series (shape {ts.shape}, fields {list(names)}; "
                      f"expected a 1-D table of {', '.join(TIMESERIES_DTYPE.names)})")
    n = int(ts.attrs.get("NROWS", ts.shape[0]))
    if not 0 <= n <= ts.shape[0]:
        raise _refuse(path, where, f"NROWS {n} outside 0..{ts.shape[0]}")
    for k, unit in FIELD_UNITS.items():
        given = ts.attrs.get(f"{k}_units", stated.get(k, unit))
        given = given.decode() if isinstance(given, bytes) else str(given)
        if given != unit:
            raise _refuse(path, f"{where} field {k}", f"unit {given!r}, expected {unit!r} (SI)")
    rows = np.asarray(ts[:n]).astype(TIMESERIES_DTYPE)
    bad = ~np.isin(rows["op_type"], list(IMPORT_KINDS))
    if bad.any():
        raise _refuse(path, f"{where} row {int(np.flatnonzero(bad)[0])}",
                      f"op_type {int(rows['op_type'][bad][0])}; expected 1 (read), 2 (pulse) or 3 (pulse + read)")
    return rows


def _sweep(path: Path, where: str, g: Any, words: int, bits: int) -> tuple[Any, ...]:
    cells = np.asarray(g["crosspoints"][()] if "crosspoints" in g else g.attrs.get("crosspoints", np.zeros((0, 2))),
                       dtype=np.int64)
    if cells.ndim != 2 or cells.shape[1] != 2 or cells.shape[0] == 0:
        raise _refuse(path, where, f"attribute crosspoints of shape {cells.shape}, expected (n, 2)")
    if (cells < 0).any() or (cells[:, 0] >= words).any() or (cells[:, 1] >= bits).any():
        raise _refuse(path, where, f"crosspoints outside the {words} x {bits} crossbar")
    values, shared = {}, set()
    for q, d in g.items():
        if q == "crosspoints":
            continue
        unit = d.attrs.get("units", "")
        unit = unit.decode() if isinstance(unit, bytes) else str(unit)
        expected = "V" if q.startswith("v") else "A" if q.startswith("i") else "1"
        if unit != expected:
            raise _refuse(path, f"{where}/{q}", f"unit {unit!r}, expected {expected!r}")
        a = np.asarray(d[()], dtype=np.float64)
        if int(d.attrs.get("shared", 0)):
            if a.ndim != 1:
                raise _refuse(path, f"{where}/{q}", f"shape {a.shape}, expected (points,) for a shared trace")
            shared.add(q)
        elif a.ndim != 2 or a.shape[0] != cells.shape[0]:
            raise _refuse(path, f"{where}/{q}", f"shape {a.shape}, expected ({cells.shape[0]}, points)")
        values[q] = a
    return (where, str(g.attrs["labctl_kind"]), cells, values, shared, float(g.attrs.get("labctl_t", 0.0)))


def import_arc_hdf5(store: Store, path: str | os.PathLike[str], *, timeseries_only: bool = False,
                    run_id: str | None = None, data: dict[str, Any] | None = None) -> str:
    """Bring an ArC TWO data file into the store as a complete run (validated first: nothing is written
    for a file that is refused). Batch k of kind read / pulse / pulse_read holds each crosspoint's k-th
    time-series entry of that operation type (current A, voltage V, pulse_width s, read_voltage V, and
    g = current / read_voltage S where the read voltage is not 0); labctl's own sweeps come back as
    their batches. `data`: the file as read_arc_hdf5 gave it, if already read. Returns the new run's id."""
    path = Path(path)
    if data is None:
        data = read_arc_hdf5(path, timeseries_only=timeseries_only)
    batches = list(_timeseries_batches(data["timeseries"]))
    sweeps = [Measurements(kind=kind, rows=cells[:, 0].copy(), cols=cells[:, 1].copy(), t=t,
                           values={q: np.broadcast_to(a, (cells.shape[0], a.size)) if q in shared else a
                                   for q, a in values.items()})
              for _, kind, cells, values, shared, t in data["sweeps"]]
    run_id = run_id or time.strftime("%Y%m%d-%H%M%S-", time.localtime()) + secrets.token_hex(2)
    name = f"[import] {data['title']}"
    campaign = {"campaign": {"name": name, "description": f"imported from the ArC TWO file {path.name}"},
                "backend": {"kind": "import", "rows": data["words"], "cols": data["bits"]}, "steps": []}
    units = [UnitPlan(unit_index=i, step_index=i, step_name=step, routine="arc_import", pass_index=0,
                      repeat_index=0, sweep_index=0, chunk_index=0, n_cells=len(data["timeseries"]), params={})
             for i, step in enumerate(["timeseries"] + (["sweeps"] if sweeps else []))]
    toml = f"# imported from the ArC TWO data file {path} by `labctl runs import`; not a campaign to run\n"
    store.create_run(run_id, name=name, campaign_toml=toml, campaign=campaign, backend_kind="import",
                     identity={"source": "ArC TWO data file", "file": str(path.resolve()), "title": data["title"]},
                     metadata={"imported_from": str(path.resolve())}, units=units, campaign_path=str(path))
    try:
        for unit, measured in ((0, batches), (1, sweeps)):
            for seq, m in enumerate(measured):
                store.append_batch(run_id, unit, 0, seq, m)
            if unit < len(units):
                store.finish_unit(run_id, unit, {"batches": len(measured)}, None)
    except BaseException as exc:
        store.finish_run(run_id, "failed", [f"import of {path}: {exc}"])
        raise
    store.finish_run(run_id, "complete")
    return run_id


def _timeseries_batches(series: dict[tuple[int, int], np.ndarray]) -> Sequence[Measurements]:
    """Batch k of each operation type: every crosspoint's k-th entry of that type, cells in (row, col) order."""
    if not series:
        return []
    cells = sorted(series)
    sizes = np.array([series[c].size for c in cells])
    rows = np.repeat(np.array([c[0] for c in cells], np.int64), sizes)
    cols = np.repeat(np.array([c[1] for c in cells], np.int64), sizes)
    entry = np.concatenate([np.arange(n) for n in sizes])
    e = np.concatenate([series[c] for c in cells])
    order = np.lexsort((cols, rows, e["op_type"], entry))
    rows, cols, entry, e = rows[order], cols[order], entry[order], e[order]
    key = np.stack([entry, e["op_type"].astype(np.int64)], axis=1)
    starts = np.flatnonzero(np.r_[True, np.any(key[1:] != key[:-1], axis=1)])
    out = []
    for a, b in zip(starts, list(starts[1:]) + [entry.size]):
        part = e[a:b]
        v_read = part["read_voltage"].astype(np.float64)
        current = part["current"].astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.where(v_read != 0, current / v_read, np.nan)
        out.append(Measurements(kind=IMPORT_KINDS[int(part["op_type"][0])], rows=rows[a:b], cols=cols[a:b],
                                t=float(entry[a]), values={
            "g": g, "current": current, "voltage": part["voltage"].astype(np.float64),
            "pulse_width": part["pulse_width"].astype(np.float64), "read_voltage": v_read,
            "entry": entry[a:b].astype(np.float64)}))
        if int(part["op_type"][0]) != READ:  # a pulse's polarity: what labctl's open-loop evaluation reads
            out[-1].values["direction"] = np.sign(out[-1].values["voltage"])
    return out
