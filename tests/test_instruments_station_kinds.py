"""Routines on the new station kinds: 2602B + AFG31102 + 3706A and 2400 + AFG31102 + 3706A
(examples/station-2602b.toml, station-2400.toml), through StationBackend and the emulated
instruments, against the existing 707B station (station-emulated.toml) and the in-process emulator
with the same seed: forming, conditioning, closed-loop programming and reads give bit-identical
results, because the same physics sees the same operations."""
from __future__ import annotations

import tomllib
from contextlib import AsyncExitStack
from pathlib import Path

import emulator
import numpy as np
import pytest
from emulator.instruments import DEFAULT_PORTS_3706A, InstrumentBench
from labctl.backends import ArrayBackend, EmulatorBackend, open_backend
from labctl.backends.station import ArrayClock, StationBackend
from labctl.instruments import LimitError, StationConfig
from labctl.routines import (
    ClosedLoopParams,
    ConditionParams,
    FormingParams,
    ReadNoiseParams,
    RoutineContext,
    condition,
    form,
    program,
    read_noise,
)

pytestmark = pytest.mark.timeout(120)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
STATIONS = {"707b": "station-emulated.toml", "2602b": "station-2602b.toml", "2400": "station-2400.toml"}
SEED = 13
ROWS, COLS = 8, 4
R = np.array([5, 0, 2, 7])
C = np.array([1, 3, 0, 2])
SEQUENCE = [
    ("form", form, FormingParams(step=0.05)),
    ("condition", condition, ConditionParams(step=0.05)),
    ("program", program, ClosedLoopParams(levels=[20e-6, 60e-6], tolerance=0.04, max_iterations=15,
                                          sweep_step=0.05)),
    ("read_noise", read_noise, ReadNoiseParams(repeats=2, interval=0.5)),
]


async def run(backend: ArrayBackend) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, routine, params in SEQUENCE:
        result = await routine(backend, R, C, params, RoutineContext())
        out.update({f"{name}.{k}": v for k, v in result.arrays().items()})
    out["final"] = await backend.read_array()
    return out


async def test_routines_bit_identical_on_every_station_kind() -> None:
    results: dict[str, dict[str, np.ndarray]] = {}
    async with EmulatorBackend(ROWS, COLS, seed=SEED) as b:
        results["emulator"] = await run(b)
    for kind, file in STATIONS.items():
        async with AsyncExitStack() as stack:
            array = emulator.Array(ROWS, COLS, seed=SEED)
            bench = await stack.enter_async_context(InstrumentBench(array))
            backend = await stack.enter_async_context(
                StationBackend(EXAMPLES / file, resources=dict(bench.resources()), clock=ArrayClock(array)))
            results[kind] = await run(backend)
            identity = backend.info.identity
            if kind == "2602b":
                assert "2602B" in identity["smu_2602b"] and "3706A" in identity["switch_3706a"]
                assert "AFG31102" in identity["afg_31102"]
            if kind == "2400":
                assert "MODEL 2400" in identity["smu_2400"] and "MODEL 2400" in identity["gate_2400"]
            if kind != "707b":
                ops = {op for op, _ in bench.bench_3706a.operations}
                assert {"sweep", "pulse", "read_current"} <= ops
                assert len(bench.bench.operations) == 0
        # every output off and every crosspoint open once the backend is left
        assert bench.bench_3706a.closed == set() and bench.bench.closed == set()
        assert not any(s.on for s in bench.bench_3706a.dc.values())
    ref = results["emulator"]
    assert ref["program.converged"].any() and ref["form.formed"].all()
    for kind, arrays in results.items():
        assert arrays.keys() == ref.keys()
        for key, a in ref.items():
            assert np.array_equal(a, arrays[key], equal_nan=a.dtype.kind == "f"), f"{key}: {kind} differs"


def test_new_station_files_validate_and_use_the_3706a_ports() -> None:
    for file in ("station-2602b.toml", "station-2400.toml"):
        config = StationConfig.from_toml(EXAMPLES / file)
        assert config.wiring.matrix == "switch_3706a" and config.wiring.ground_row == "6"
        data = tomllib.loads((EXAMPLES / file).read_text())
        for name, spec in data["instruments"].items():
            assert spec["resource"] == f"TCPIP::127.0.0.1::{DEFAULT_PORTS_3706A[name]}::SOCKET"


async def test_wiring_that_the_matrix_cannot_close_is_refused_at_open(tmp_path: Path) -> None:
    text = (EXAMPLES / "station-2602b.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace('matrix_row = "2"', 'matrix_row = "7"'))  # a 3730 has rows 1-6
    async with InstrumentBench(emulator.Array(ROWS, COLS, seed=0)) as bench:
        backend = open_backend(f"station:{bad}", resources=dict(bench.resources()))
        before = len(bench["switch_3706a"].received)
        with pytest.raises(LimitError, match=r"terminals\.gate\.matrix_row .*'1701'"):
            async with backend:
                pass
        # identification and the safe state only: no crosspoint was ever closed
        assert not any("close(" in m and "exclusive" not in m and "open" not in m
                       for m in list(bench["switch_3706a"].received)[before:])
        assert bench.bench_3706a.closed == set()
