"""Bad parameters are refused before anything reaches the array, with errors that name the field."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from labctl.backends import EmulatorBackend
from labctl.routines import (
    ROUTINES,
    ClosedLoopParams,
    ConditionParams,
    EnduranceParams,
    FormingParams,
    IncrementalParams,
    IVParams,
    OpenLoopParams,
    PulseTrainParams,
    ReadNoiseParams,
    RelaxationParams,
    RoutineResult,
    SymmetryPointParams,
    form,
    iv_cycles,
    open_loop,
    program,
    read_noise,
    relaxation,
    symmetry_point,
)


@pytest.mark.parametrize(("model", "kwargs", "field"), [
    (ClosedLoopParams, {"targets": 50e-6, "tolerance": -0.02}, "tolerance"),
    (ClosedLoopParams, {"targets": 50e-6, "tolerance": 1.5}, "tolerance"),
    (ClosedLoopParams, {"targets": 150e-6}, "targets"),
    (ClosedLoopParams, {"targets": [20e-6, 2e-6]}, "targets"),
    (ClosedLoopParams, {"levels": [10e-6, 95e-6]}, "levels"),
    (ClosedLoopParams, {"targets": 50e-6, "levels": [50e-6]}, "targets, levels"),
    (ClosedLoopParams, {}, "targets, levels"),
    (ClosedLoopParams, {"targets": 50e-6, "max_iterations": 0}, "max_iterations"),
    (ClosedLoopParams, {"targets": 50e-6, "v_set": -1.0}, "v_set"),
    (ClosedLoopParams, {"targets": 50e-6, "v_reset": 1.3}, "v_reset"),
    (ClosedLoopParams, {"targets": 50e-6, "v_read": 0.0}, "v_read"),
    (ClosedLoopParams, {"targets": 50e-6, "toleranse": 0.02}, "toleranse"),
    (IncrementalParams, {"targets": 50e-6, "v_start_set": 1.5, "v_stop_set": 1.2}, "v_stop_set"),
    (IncrementalParams, {"targets": 50e-6, "v_start_reset": -1.5, "v_stop_reset": -1.2}, "v_stop_reset"),
    (IncrementalParams, {"targets": 50e-6, "max_flips": -1}, "max_flips"),
    (FormingParams, {"step": -0.01}, "step"),
    (FormingParams, {"compliance": 0.0}, "compliance"),
    (IVParams, {"cycles": 0}, "cycles"),
    (OpenLoopParams, {"batch": 0}, "batch"),
    (SymmetryPointParams, {"pulses": 2}, "pulses"),
    (ReadNoiseParams, {"repeats": 1}, "repeats"),
    (ReadNoiseParams, {"interval": -1.0}, "interval"),
    (RelaxationParams, {"times": [10.0, 1.0]}, "times"),
    (RelaxationParams, {"t_first": 100.0, "t_last": 10.0}, "t_last"),
    (RelaxationParams, {"program": {"targets": 200e-6}}, "targets"),
    (EnduranceParams, {"min_ratio": 0.5}, "min_ratio"),
])
def test_model_refuses_with_the_field_named(model: type, kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError) as err:
        model(**kwargs)
    assert field in str(err.value)


@pytest.mark.parametrize("model", [IVParams, ConditionParams, ReadNoiseParams, EnduranceParams, PulseTrainParams,
                                   SymmetryPointParams, OpenLoopParams])
def test_a_zero_read_bias_is_refused_when_the_parameters_are_built(model: type) -> None:
    with pytest.raises(ValueError, match="v_read: must be a non-zero bias, got 0 V"):
        model(v_read=0.0)
    assert model(v_read=-0.2).v_read == -0.2  # a negative read bias is a bias


def test_window_can_be_widened_for_another_device() -> None:
    p = ClosedLoopParams(targets=120e-6, window=(1e-6, 150e-6))
    assert p.cell_targets(3).tolist() == [120e-6] * 3
    with pytest.raises(ValueError, match="window"):
        ClosedLoopParams(targets=50e-6, window=(90e-6, 10e-6))


def test_levels_are_assigned_in_turn_and_lists_must_match_the_cells() -> None:
    p = ClosedLoopParams(levels=[10e-6, 20e-6, 30e-6])
    assert p.cell_targets(7).tolist() == [10e-6, 20e-6, 30e-6, 10e-6, 20e-6, 30e-6, 10e-6]
    with pytest.raises(ValueError, match="targets: 2 values given for 3 cells"):
        ClosedLoopParams(targets=[20e-6, 30e-6]).cell_targets(3)


@pytest.mark.parametrize(("call", "field"), [
    (lambda b: program(b, None, None, ClosedLoopParams(targets=50e-6, v_set=5.0)), "v_set"),
    (lambda b: program(b, None, None, ClosedLoopParams(targets=50e-6, vg_set=4.0)), "vg_set"),
    (lambda b: program(b, None, None, ClosedLoopParams(targets=50e-6, width=5.0)), "width"),
    (lambda b: program(b, None, None, ClosedLoopParams(targets=50e-6, reset_v=-4.5)), "reset_v"),
    (lambda b: form(b, None, None, FormingParams(v_stop=4.5)), "v_stop"),
    (lambda b: form(b, None, None, FormingParams(compliance=0.5)), "compliance"),
    (lambda b: iv_cycles(b, None, None, IVParams(v_set=4.2)), "v_set"),
    (lambda b: open_loop(b, None, None, OpenLoopParams(v_reset=-4.1)), "v_reset"),
    (lambda b: read_noise(b, None, None, ReadNoiseParams(vg_read=3.7)), "vg_read"),
    (lambda b: relaxation(b, None, None, RelaxationParams(program=ClosedLoopParams(targets=50e-6, v_set=4.5))),
     "program.v_set"),
    (lambda b: symmetry_point(b, None, None, SymmetryPointParams(pulses=10, settle=9)), "settle"),
    (lambda b: program(b, np.array([0, 9]), np.array([0, 0]), ClosedLoopParams(targets=50e-6)), "rows"),
    (lambda b: program(b, None, None, ClosedLoopParams(targets=[50e-6] * 5)), "targets"),
])
async def test_routine_refuses_before_touching_the_array(call, field: str) -> None:  # type: ignore[no-untyped-def]
    b = EmulatorBackend(8, 4, seed=0)
    before = b.array.snapshot()
    with pytest.raises(ValueError) as err:
        await call(b)
    assert str(err.value).startswith(field) or f"{field}:" in str(err.value)
    assert b.array.snapshot() == before  # nothing was sent
    assert b.array.pulse_counts().sum() == 0


async def test_limit_error_names_the_limit() -> None:
    b = EmulatorBackend(8, 4, seed=0)
    with pytest.raises(ValueError, match=r"v_set: 5 V exceeds the backend limit \|V\| <= 4 V"):
        await program(b, None, None, ClosedLoopParams(targets=50e-6, v_set=5.0))


async def test_native_loop_demanded_of_a_host_only_backend() -> None:
    b = EmulatorBackend(8, 4, seed=0)
    b.info = dataclasses.replace(b.info, native_program=False)
    with pytest.raises(ValueError, match="loop: 'native'"):
        await program(b, None, None, ClosedLoopParams(targets=50e-6, loop="native"))


def test_registry_names_every_routine_with_its_models() -> None:
    for name, spec in ROUTINES.items():
        assert spec.doc, name
        assert spec.params.model_config.get("extra") == "forbid"
        assert spec.result.summary is not RoutineResult.summary, f"{name}: result has no summary()"
