"""The routines' defaults are the reference procedure's values (labctl.core.reference) and the one set of
scheme defaults (labctl.core.schemes), not copies of them."""
from __future__ import annotations

import dataclasses

import numpy as np

from labctl.backends import ProgramSettings
from labctl.core import reference as ref
from labctl.core.schemes import IdenticalScheme, IncrementalScheme
from labctl.routines import (
    ClosedLoopParams,
    ConditionParams,
    FormingParams,
    IncrementalParams,
    IVParams,
    OpenLoopParams,
)


def test_incremental_params_map_one_to_one_onto_the_scheme() -> None:
    p = IncrementalParams(targets=50e-6)
    scheme = p.settings().scheme
    assert scheme == IncrementalScheme()  # the defaults are the scheme's, field for field
    custom = IncrementalParams(targets=50e-6, v_start_set=1.1, v_step_set=0.02, v_stop_set=1.7, v_start_reset=None,
                               v_step_reset=0.03, v_stop_reset=-1.6, max_per_polarity=7, max_flips=3)
    s = custom.settings().scheme
    for f in dataclasses.fields(IncrementalScheme):
        if f.name not in ("name", "table"):
            assert getattr(s, f.name) == getattr(custom, f.name), f.name


def test_identical_params_and_backend_settings_default_to_the_reference() -> None:
    p = ClosedLoopParams(targets=50e-6)
    s = p.settings()
    assert s.scheme == IdenticalScheme()
    assert s == ProgramSettings()  # one set of loop defaults: routine parameters and backend settings agree
    assert (s.tolerance, s.vg_set, s.vg_reset, s.width, s.v_read, s.vg_read) == (
        ref.TOLERANCE, ref.VG_SET, ref.VG_RESET, ref.PULSE_WIDTH, ref.V_READ, ref.VG_READ)
    assert (p.reset_v, p.reset_vg, p.sweep_step) == (ref.PROGRAM_RESET.v_stop, ref.PROGRAM_RESET.vg,
                                                    ref.PROGRAM_RESET_STEP)
    v_set, v_reset = s.scheme.start_amplitudes(np.array([20e-6, 45e-6, 70e-6]))
    assert v_set.tolist() == [1.35, 1.35, 1.5] and v_reset.tolist() == [-1.5, -1.3, -1.3]  # REF per-range table


def test_quasi_static_routines_default_to_the_reference_sweeps() -> None:
    f, c, iv = FormingParams(), ConditionParams(), IVParams()
    assert (f.v_stop, f.vg, f.step, f.dwell) == (ref.FORMING.v_stop, ref.FORMING.vg, ref.QS_STEP, ref.QS_DWELL)
    stages = ((c.v_negative, c.vg_negative), (c.v_reset, c.vg_reset), (c.v_set, c.vg_set))
    assert stages == tuple((s.v_stop, s.vg) for s in ref.CONDITIONING)
    assert (iv.cycles, iv.v_reset, iv.vg_reset, iv.v_set, iv.vg_set) == (
        ref.QS_CYCLES, ref.RESET.v_stop, ref.RESET.vg, ref.SET.v_stop, ref.SET.vg)


def test_open_loop_defaults_are_the_reference_pulses() -> None:
    p = OpenLoopParams()
    assert (p.v_set, p.vg_set, p.v_reset, p.vg_reset, p.width) == (
        ref.OPEN_LOOP_V_SET, ref.OPEN_LOOP_VG_SET, ref.OPEN_LOOP_V_RESET, ref.OPEN_LOOP_VG_RESET, ref.PULSE_WIDTH)
    assert (p.batch, p.pulses) == (ref.OPEN_LOOP_BATCH, ref.OPEN_LOOP_ALTERNATING)
