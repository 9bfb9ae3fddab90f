"""Fixtures the test files share (plain helpers are in helpers.py)."""
from __future__ import annotations

import labctl  # noqa: F401  (before any test module loads numpy: the suite runs labctl's pinned OpenBLAS kernels)

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import settings

# CI runs the property tests on a fixed example stream (every random draw seeded); at a desk they
# explore new examples on every run, and a failure is replayed from the example database.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture
async def bench(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """The emulated instruments of examples/station-emulated.toml, serving on loopback, wired to an 8 x 4
    emulator.Array of the test module's BENCH_SEED: an emulator.instruments.InstrumentBench."""
    import emulator
    from emulator.instruments import InstrumentBench

    async with InstrumentBench(emulator.Array(8, 4, seed=request.module.BENCH_SEED)) as b:
        yield b
