"""Campaign steps `puf_enroll` and `puf_evaluate` (registered as entry points in pyproject.toml).

A campaign enrolls an array and writes the helper data to `helper_file`; the helper data (public)
is also part of the step summary, which the campaign store keeps. The key is not returned: keys
are for the application that later reconstructs them, never for the campaign store or telemetry.
`puf_evaluate` reconstructs the key from a fresh read and records only whether that succeeded and
how many bit errors the code corrected.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from labctl.backends.base import ArrayBackend
from labctl.puf.enroll import EnrollParams, enroll, reconstruct
from labctl.puf.extractor import KeyReconstructionError
from labctl.puf.helper import HelperData
from labctl.routines.base import RoutineContext
from labctl.routines.results import RoutineResult


class PufEnrollParams(EnrollParams):
    """Enrollment settings plus where the helper data goes."""

    helper_file: str = Field("puf_helper.json", min_length=1, description="helper-data JSON file (public)")
    chunkable: ClassVar[bool] = False  # the whole response is enrolled at once


@dataclass(frozen=True)
class PufEnrollResult(RoutineResult):
    """Public outcome of an enrollment step."""

    helper_json: str
    report_json: str

    def summary(self) -> dict[str, float | int | bool | str | None]:
        h = HelperData.from_json(self.helper_json)
        return {"method": h.response.method, "positions": h.response.positions,
                "stable_positions": h.design.stable_positions, "used_positions": h.design.used_positions,
                "design_ber": h.design.design_ber, "measured_raw_ber": h.design.measured_raw_ber,
                "predicted_key_failure": h.design.predicted_failure, "bch_m": h.code.bch_m, "bch_t": h.code.bch_t,
                "bch_blocks": h.code.blocks, "repetition": h.code.repetition,
                "helper_data": self.helper_json, "report": self.report_json}


async def puf_enroll(backend: ArrayBackend, rows: Any, cols: Any, params: PufEnrollParams,
                     ctx: RoutineContext | None = None) -> PufEnrollResult:
    """Enroll the listed cells (all of a selection, in its order) and write the helper data."""
    base = EnrollParams(**params.model_dump(exclude={"helper_file"}))
    r = None if rows is None else np.asarray(rows)
    c = None if cols is None else np.asarray(cols)
    enrollment = await enroll(backend, base, r, c, ctx)
    Path(params.helper_file).parent.mkdir(parents=True, exist_ok=True)
    enrollment.helper.save(params.helper_file)
    return PufEnrollResult(helper_json=enrollment.helper.to_json(), report_json=json.dumps(enrollment.report))


class PufEvaluateParams(BaseModel):
    """Key reconstruction check from a fresh read."""

    model_config = ConfigDict(extra="forbid")
    chunkable: ClassVar[bool] = False  # the key is reconstructed from every cell at once
    helper_file: str = Field("puf_helper.json", min_length=1)
    reads: int = Field(1, ge=1, le=1000, description="reads averaged before the bits are taken")
    v_read: float | None = Field(None, gt=0, le=1.0, json_schema_extra={"unit": "V"})


@dataclass(frozen=True)
class PufEvaluateResult(RoutineResult):
    reconstructed: bool
    corrected_bits: int
    message: str

    def summary(self) -> dict[str, float | int | bool | str | None]:
        return {"reconstructed": self.reconstructed, "corrected_bits": self.corrected_bits, "message": self.message}


async def puf_evaluate(backend: ArrayBackend, rows: Any, cols: Any, params: PufEvaluateParams,
                       ctx: RoutineContext | None = None) -> PufEvaluateResult:
    """Reconstruct the enrolled key from a fresh read; the result says whether it came back."""
    helper = HelperData.load(params.helper_file)
    try:
        out = await reconstruct(backend, helper, params.reads, params.v_read)
    except KeyReconstructionError as exc:
        return PufEvaluateResult(reconstructed=False, corrected_bits=-1, message=str(exc))
    return PufEvaluateResult(reconstructed=True, corrected_bits=out.corrected_bits, message="key reconstructed")
