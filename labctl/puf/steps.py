"""Campaign steps `puf_enroll` and `puf_evaluate` (registered as entry points in pyproject.toml).

A campaign enrolls an array and writes the helper data to `helper_file`; the helper data (public)
is also part of the step summary, which the campaign store keeps. The key is not returned: keys
are for the application that later reconstructs them, never for the campaign store or telemetry.
`puf_evaluate` reconstructs the key from a fresh read and records only whether that succeeded (no
count of corrected errors: that count is what a helper-data manipulation attack measures).

`helper_file` is a path inside the campaign file's directory: relative, resolved against that
directory (`RoutineContext.campaign_dir`), refused when it leaves it (`..`, an absolute path, a
symlink pointing out). `puf_enroll` never overwrites a file: an existing helper file is refused
before the step measures anything.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from labctl.backends.base import ArrayBackend
from labctl.puf.enroll import EnrollParams, enroll, reconstruct
from labctl.puf.extractor import KeyReconstructionError
from labctl.puf.helper import HelperData, check_writable
from labctl.routines.base import RoutineContext
from labctl.routines.results import RoutineResult


def inside_campaign_dir(value: str) -> str:
    """A path that stays inside the campaign file's directory (checked on the text, so that
    `labctl run --check` refuses it): relative, and no `..` leading out."""
    norm = os.path.normpath(value)
    if os.path.isabs(value) or norm == os.pardir or norm.startswith(os.pardir + os.sep):
        raise ValueError(f"{value!r} leaves the campaign file's directory; paths in a campaign file are "
                         "relative to it and stay inside it")
    return value


def campaign_path(name: str, ctx: RoutineContext | None) -> Path:
    """`name` resolved against the campaign directory; ValueError if it leads out of it (a symlink
    on the way). Outside a campaign (no ctx.campaign_dir) the path is taken as given."""
    if ctx is None or ctx.campaign_dir is None:
        return Path(name)
    base = ctx.campaign_dir.resolve()
    path = base / inside_campaign_dir(name)
    if not path.resolve().is_relative_to(base):
        raise ValueError(f"helper_file: {name!r} leads out of the campaign directory {base} (through a symlink)")
    return path


class PufEnrollParams(EnrollParams):
    """Enrollment settings plus where the helper data goes."""

    chunkable: ClassVar[bool] = False  # the whole response is enrolled at once
    helper_file: str = Field("puf_helper.json", min_length=1,
                             description="helper-data JSON file (public) to create, relative to the campaign "
                                         "file; an existing file is never overwritten")

    @field_validator("helper_file")
    @classmethod
    def _inside(cls, v: str) -> str:
        return inside_campaign_dir(v)

    def preflight(self, campaign_dir: Path) -> None:
        """Refuse, before anything runs (`labctl run --check` too), a helper file that exists already or
        leads out of the campaign directory: helper data is never overwritten."""
        check_writable(campaign_path(self.helper_file, RoutineContext(campaign_dir=campaign_dir)))


@dataclass(frozen=True)
class PufEnrollResult(RoutineResult):
    """Public outcome of an enrollment step."""

    figures: ClassVar[str | None] = "labctl.puf.figures:enroll_figures"

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
    """Enroll the listed cells (all of a selection, in its order) and write the helper data (a new
    file: an existing one is refused before anything is measured)."""
    path = campaign_path(params.helper_file, ctx)
    check_writable(path)
    base = EnrollParams(**params.model_dump(exclude={"helper_file"}))
    r = None if rows is None else np.asarray(rows)
    c = None if cols is None else np.asarray(cols)
    enrollment = await enroll(backend, base, r, c, ctx)
    path.parent.mkdir(parents=True, exist_ok=True)
    enrollment.helper.save(path)
    return PufEnrollResult(helper_json=enrollment.helper.to_json(), report_json=json.dumps(enrollment.report))


class PufEvaluateParams(BaseModel):
    """Key reconstruction check from a fresh read."""

    model_config = ConfigDict(extra="forbid")
    chunkable: ClassVar[bool] = False  # the key is reconstructed from every cell at once
    helper_file: str = Field("puf_helper.json", min_length=1, description="helper-data JSON file, relative to "
                                                                          "the campaign file")
    reads: int = Field(1, ge=1, le=1000, description="reads averaged before the bits are taken")
    v_read: float | None = Field(None, gt=0, le=1.0, json_schema_extra={"unit": "V"})

    @field_validator("helper_file")
    @classmethod
    def _inside(cls, v: str) -> str:
        return inside_campaign_dir(v)


@dataclass(frozen=True)
class PufEvaluateResult(RoutineResult):
    figures: ClassVar[str | None] = "labctl.puf.figures:evaluate_figures"

    reconstructed: bool
    message: str

    def summary(self) -> dict[str, float | int | bool | str | None]:
        return {"reconstructed": self.reconstructed, "message": self.message}


async def puf_evaluate(backend: ArrayBackend, rows: Any, cols: Any, params: PufEvaluateParams,
                       ctx: RoutineContext | None = None) -> PufEvaluateResult:
    """Reconstruct the enrolled key from a fresh read; the result says whether it came back."""
    helper = HelperData.load(campaign_path(params.helper_file, ctx))
    try:
        await reconstruct(backend, helper, params.reads, params.v_read)
    except KeyReconstructionError as exc:
        return PufEvaluateResult(reconstructed=False, message=str(exc))
    return PufEvaluateResult(reconstructed=True, message="key reconstructed and authenticated")
