"""Bad input raises ValueError naming the argument; nothing reaches the C core out of bounds."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import emulator


@pytest.fixture()
def arr() -> emulator.Array:
    return emulator.Array(4, 3, seed=0)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda a: a.pulse(4, 0, 1.0, 1.4, 1e-6), "rows"),
        (lambda a: a.pulse(0, -1, 1.0, 1.4, 1e-6), "cols"),
        (lambda a: a.pulse(0, 0.5, 1.0, 1.4, 1e-6), "cols"),
        (lambda a: a.pulse(0, 0, np.nan, 1.4, 1e-6), "v"),
        (lambda a: a.pulse(0, 0, 1.0, np.inf, 1e-6), "vg"),
        (lambda a: a.pulse(0, 0, 1.0, 1.4, -1e-6), "width"),
        (lambda a: a.pulse(0, 0, 9.0, 1.4, 1e-6), "v"),
        (lambda a: a.pulse([0, 1], [0, 1], [1.0, 1.0, 1.0], 1.4, 1e-6), "v"),
        (lambda a: a.pulse([0, 1, 2], [0, 1], 1.0, 1.4, 1e-6), "rows, cols"),
        (lambda a: a.read(0, 0, v_read=0.0), "v_read"),
        (lambda a: a.read(0, 0, v_read=np.nan), "v_read"),
        (lambda a: a.read([[0]], [[0]]), "rows"),
        (lambda a: a.sweep(0, 0, [], vg=1.2), "voltages"),
        (lambda a: a.sweep(0, 0, [[0.1, 0.2]], vg=1.2), "voltages"),
        (lambda a: a.sweep(0, 0, [0.1], vg=1.2, dwell=-1.0), "dwell"),
        (lambda a: a.advance(-1.0), "seconds"),
        (lambda a: a.advance(np.inf), "seconds"),
        (lambda a: a.mvm(np.zeros(3)), "v_rows"),
        (lambda a: a.mvm(np.zeros(4), r_wire=-1.0), "r_wire"),
        (lambda a: a.program(0, 0, -1e-6, v_set=1.35, v_reset=-1.3), "targets"),
        (lambda a: a.program(0, 0, 20e-6, tolerance=-0.1, v_set=1.35, v_reset=-1.3), "tolerance"),
        (lambda a: a.program(0, 0, 20e-6, max_iterations=0, v_set=1.35, v_reset=-1.3), "max_iterations"),
        (lambda a: a.program(0, 0, 20e-6, scheme="bogus", v_set=1.35, v_reset=-1.3), "scheme"),  # type: ignore[arg-type]
        (lambda a: a.program(0, 0, 20e-6, v_set=[1.35, 1.4], v_reset=-1.3), "v_set"),
        (lambda a: a.program(0, 0, 20e-6, v_set=1.35, v_reset=-1.3, scheme="incremental"), "v_step_set"),
        (lambda a: a.inject_fault(0, 0, "melted"), "kind"),  # type: ignore[arg-type]
        (lambda a: a.restore(b"short"), "snapshot"),
        (lambda a: emulator.Array(0, 3), "rows"),
        (lambda a: emulator.Array(3, 3, preset="unobtainium"), "preset"),
    ],
)
def test_bad_input_names_the_argument(arr: emulator.Array, call, name: str) -> None:  # type: ignore[no-untyped-def]
    before = arr.snapshot()
    with pytest.raises(ValueError, match=name):
        call(arr)
    assert arr.snapshot() == before  # nothing was applied


def test_snapshot_of_other_array_refused() -> None:
    a = emulator.Array(4, 3, seed=0)
    with pytest.raises(ValueError, match="snapshot"):
        a.restore(emulator.Array(4, 3, seed=1).snapshot())
    with pytest.raises(ValueError, match="snapshot"):
        a.restore(emulator.Array(3, 4, seed=0).snapshot())


finite_or_not = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10))
index = st.one_of(st.integers(-5, 8), st.lists(st.integers(-5, 8), max_size=5))


@settings(max_examples=300, deadline=None)
@given(rows=index, cols=index, v=finite_or_not, vg=finite_or_not, width=finite_or_not, seconds=finite_or_not)
def test_fuzzed_calls_raise_only_value_error(rows, cols, v, vg, width, seconds) -> None:  # type: ignore[no-untyped-def]
    """Whatever a caller passes, the array either acts or raises ValueError; it never crashes."""
    arr = emulator.Array(4, 3, seed=0)
    for call in (lambda: arr.pulse(rows, cols, v, vg, width), lambda: arr.read(rows, cols, v, vg),
                 lambda: arr.sweep(rows, cols, [v, v], vg=vg, dwell=width), lambda: arr.advance(seconds),
                 lambda: arr.program(rows, cols, 1e-5 if not isinstance(v, float) else v, 0.02, max_iterations=5,
                                     v_set=1.35, v_reset=-1.3)):
        try:
            call()
        except ValueError:
            pass
    assert arr.read_all(noisy=False).shape == (4, 3)
