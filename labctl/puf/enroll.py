"""Enrollment and key reconstruction through any ArrayBackend.

    async with open_backend("emulator:32x32?seed=3") as backend:
        enrollment = await enroll(backend, EnrollParams(prepare="form_set"))
        enrollment.helper.save("chip3.puf.json")          # public
        key = enrollment.key                              # secret: keep it out of logs and files
        ...
        again = await reconstruct(backend, HelperData.load("chip3.puf.json"))
        assert again.key == key                           # or KeyReconstructionError

Enrollment: (optional preparation) -> `reads` reads -> mask of stable positions -> SP 800-90B health
tests on the raw bits of every read -> code chosen for the design bit error rate -> code-offset
helper data and key. Only counts, rates and the public helper data leave this module; the
responses, the secret and the key are never logged, emitted to a routine context or stored.
"""
from __future__ import annotations

import datetime as dt
import importlib.metadata
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from labctl.backends.base import ArrayBackend
from labctl.core import reference as ref
from labctl.puf import codes, extractor, health, prepare, responses
from labctl.puf.helper import (
    VERSION,
    ArrayInfo,
    AuthInfo,
    CodeInfo,
    DesignInfo,
    HelperData,
    KdfInfo,
    PackedBits,
    ResponseInfo,
)
from labctl.puf.responses import Cells, Stability
from labctl.routines.base import RoutineContext

log = logging.getLogger(__name__)

_RACE = prepare.FormingRaceSettings()  # the forming race's defaults, in one place


class EnrollParams(BaseModel):
    """Enrollment settings (SI units)."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["pairs", "median", "forming"] = "pairs"
    prepare: Literal["none", "form_set"] = Field(
        "none", description="form, reset and set the cells first (pairs, median); the forming method "
                            "always runs its forming race")
    v_read: float = Field(ref.V_READ, gt=0, le=1.0, json_schema_extra={"unit": "V"})
    vg: float = Field(ref.VG_READ, ge=0, le=5.0, json_schema_extra={"unit": "V"})
    reads: int = Field(5, ge=1, le=1000, description="enrollment reads that find unstable bits")
    min_margin: float = Field(0.05, ge=0, lt=10, description="least relative conductance margin of a kept bit")
    g_formed: float = Field(_RACE.g_formed, gt=0, json_schema_extra={"unit": "S"})
    secret_bits: int = Field(128, ge=64, le=4096, multiple_of=8)
    key_length: int = Field(32, ge=16, le=64, description="key bytes")
    target_failure: float = Field(1e-6, gt=0, lt=1, description="key-failure probability the code is designed for")
    design_ber: float | None = Field(None, gt=0, lt=0.5, description="design bit error rate; default: "
                                                                      "max(ber_floor, measured raw BER)")
    ber_floor: float = Field(0.01, gt=0, lt=0.5, description="least design bit error rate: covers relaxation "
                                                             "and read-bias changes the enrollment reads cannot see")
    claimed_entropy: float = Field(0.8, gt=0, le=1.0, description="min-entropy per raw bit claimed for the "
                                                                  "SP 800-90B health tests")
    health_tests: bool = True
    forming_v_start: float = Field(_RACE.v_start, gt=0, json_schema_extra={"unit": "V"})
    forming_v_stop: float = Field(_RACE.v_stop, gt=0, json_schema_extra={"unit": "V"})
    forming_v_step: float = Field(_RACE.v_step, gt=0, json_schema_extra={"unit": "V"})
    forming_vg: float = Field(_RACE.vg, gt=0, json_schema_extra={"unit": "V"})

    # campaign files check these against [limits] (labctl.campaigns.model)
    voltage_fields: ClassVar[tuple[str, ...]] = ("v_read", "forming_v_start", "forming_v_stop")
    gate_fields: ClassVar[tuple[str, ...]] = ("vg", "forming_vg")


@dataclass(frozen=True)
class Enrollment:
    """Public helper data and report; the key stays in memory (hidden from repr)."""

    helper: HelperData
    report: dict[str, Any]
    key: bytes = field(repr=False)


class EnrollmentError(ValueError):
    """The array cannot be enrolled as asked (too few stable bits, pristine cells, ...)."""


def _bchlib_version() -> str:
    try:
        return importlib.metadata.version("bchlib")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _cells(backend: ArrayBackend, rows: Any, cols: Any) -> Cells:
    if rows is None and cols is None:
        return Cells.whole_array(backend.rows, backend.cols)
    return Cells.from_lists(backend.rows, backend.cols, rows, cols)


async def read_responses(backend: ArrayBackend, cells: Cells, v_read: float, vg: float,
                         reads: int) -> NDArray[np.float64]:
    """`reads` reads of the PUF cells, shape (reads, n_cells), S."""
    return np.stack([await responses.read_cells(backend, cells, v_read, vg) for _ in range(reads)])


def residual_entropy_bound(used_bits: int, secret_bits: int, entropy_per_bit: float) -> float:
    """Lower bound on the secret's min-entropy given the helper data (code offset leaks at most
    n - k bits): max(0, min(k, n * H - (n - k))), bits."""
    return max(0.0, min(float(secret_bits), used_bits * entropy_per_bit - (used_bits - secret_bits)))


async def enroll_core(backend: ArrayBackend, params: EnrollParams, rows: Any = None, cols: Any = None,
                      ctx: RoutineContext | None = None,
                      random_bytes: extractor.RandomBytes = secrets.token_bytes) -> tuple[Enrollment, Stability]:
    """Enrollment, also returning the in-memory stability record (raw reference response and mask)
    for evaluation code; use `enroll` elsewhere."""
    t0 = dt.datetime.now(dt.timezone.utc)
    cells = _cells(backend, rows, cols)
    positions = responses.n_positions(params.method, cells.flat.size)
    if positions < 8:
        raise EnrollmentError(f"cells: {cells.flat.size} cells give {positions} response bits; need at least 8")
    report: dict[str, Any] = {"method": params.method, "cells": int(cells.flat.size), "positions": positions}
    if params.method == "forming":
        race = await prepare.form_pairs(
            backend, cells,
            prepare.FormingRaceSettings(v_start=params.forming_v_start, v_stop=params.forming_v_stop,
                                        v_step=params.forming_v_step, vg=params.forming_vg,
                                        v_read=params.v_read, vg_read=params.vg, g_formed=params.g_formed),
            ctx)
        report["forming_race"] = {**race.counts(), "steps": race.steps}
    elif params.prepare == "form_set":
        await prepare.form_and_set(backend, cells, ctx=ctx)
    g_reads = await read_responses(backend, cells, params.v_read, params.vg, params.reads)
    if ctx is not None:
        ctx.progress(params.reads, params.reads, "enrollment reads")
        await ctx.checkpoint()
    if params.method != "forming":
        g_median = float(np.median(g_reads))
        if g_median < params.g_formed:
            raise EnrollmentError(f"cells read as pristine (median conductance {g_median:.3g} S < g_formed "
                                  f"{params.g_formed:g} S): form them first (prepare = 'form_set')")
    stab = responses.stability(params.method, g_reads, params.min_margin, params.g_formed)
    stable_count = int(stab.stable.sum())
    report.update(reads=params.reads, stable_positions=stable_count, measured_raw_ber=stab.raw_ber)

    if params.health_tests:
        raw_bits, _, _ = responses.bits_and_margins(params.method, g_reads, params.g_formed)
        hr = health.run_health_tests(raw_bits.ravel(), params.claimed_entropy)
        report["health_tests"] = hr.to_dict()
        if not hr.passed:
            log.warning("PUF enrollment stopped: SP 800-90B health test failed (RCT run %d / cutoff %d, "
                        "APT count %d / cutoff %d)", hr.rct_longest_run, hr.rct_cutoff, hr.apt_max_count,
                        hr.apt_cutoff)
            raise health.HealthTestFailure(
                f"SP 800-90B health tests failed on the raw response bits: repetition count "
                f"{'passed' if hr.rct_passed else 'failed'} (longest run {hr.rct_longest_run}, cutoff "
                f"{hr.rct_cutoff}), adaptive proportion {'passed' if hr.apt_passed else 'failed'} "
                f"(largest count {hr.apt_max_count} in {hr.apt_window}, cutoff {hr.apt_cutoff}) at claimed "
                f"entropy {params.claimed_entropy} bit/bit")

    if params.design_ber is not None:
        design_ber, source = params.design_ber, "given"
    else:
        design_ber = max(params.ber_floor, stab.raw_ber)
        source = "measured raw BER" if stab.raw_ber > params.ber_floor else "ber_floor"
    try:
        code, design = codes.design_code(design_ber, stable_count, params.secret_bits, params.target_failure)
    except codes.DesignError as exc:
        raise EnrollmentError(str(exc)) from None
    design["design_ber_source"] = source
    report["code_design"] = design

    mask = stab.stable
    w = stab.reference[mask][:code.response_bits]
    residual = residual_entropy_bound(code.response_bits, code.secret_bits, params.claimed_entropy)
    report["residual_entropy_bound_bits"] = residual
    report["residual_entropy_formula"] = "max(0, min(k, n*H - (n - k))), n used response bits, k secret bits, " \
                                         "H claimed min-entropy per bit"
    predicted = code.failure(design_ber)["p_key"]
    draft: dict[str, HelperData] = {}

    def record(offset: NDArray[np.uint8], kdf_salt: bytes) -> bytes:
        # The whole record but its tag; the tag field holds a placeholder until the tag is known.
        draft["helper"] = HelperData(
            version=VERSION,
            created=t0.isoformat(timespec="seconds"),
            array=ArrayInfo(rows=backend.rows, cols=backend.cols, backend=backend.info.kind,
                            identity=dict(backend.info.identity)),
            response=ResponseInfo(method=params.method,
                                  cells="all" if cells.is_whole_array else [int(x) for x in cells.flat],
                                  v_read=params.v_read, vg=params.vg, g_formed=params.g_formed,
                                  positions=positions, enrollment_reads=params.reads,
                                  min_margin=params.min_margin),
            mask=PackedBits.from_array(mask),
            code=CodeInfo(library=f"bchlib {_bchlib_version()}", bch_m=code.bch_m,
                          bch_t=code.bch_t, data_bytes=code.data_bytes, blocks=code.blocks,
                          repetition=code.repetition),
            offset=PackedBits.from_array(offset),
            kdf=KdfInfo(salt=kdf_salt.hex(), info=extractor.KEY_INFO.decode(), length=params.key_length),
            design=DesignInfo(design_ber=design_ber, measured_raw_ber=stab.raw_ber,
                              target_failure=params.target_failure, predicted_failure=predicted,
                              stable_positions=stable_count, used_positions=code.response_bits),
            auth=AuthInfo(tag="0" * 64),
        )
        return draft["helper"].authenticated_bytes()

    gen = extractor.generate(w, code, record, params.key_length, random_bytes)
    helper = draft["helper"].model_copy(update={"auth": AuthInfo(tag=gen.tag.hex())})
    log.info("PUF enrolled: %s, %d/%d stable positions, %d used; BCH(m=%d, t=%d) x %d blocks, repetition %d; "
             "design BER %.3g, predicted key failure %.2g", params.method, stable_count, positions,
             code.response_bits, code.bch_m, code.bch_t, code.blocks, code.repetition, design_ber, predicted)
    return Enrollment(helper=helper, report=report, key=gen.key), stab


async def enroll(backend: ArrayBackend, params: EnrollParams | None = None, rows: Any = None, cols: Any = None,
                 ctx: RoutineContext | None = None,
                 random_bytes: extractor.RandomBytes = secrets.token_bytes) -> Enrollment:
    """Enroll the array (or the listed cells) as a PUF: helper data, public report and key."""
    enrollment, _ = await enroll_core(backend, params or EnrollParams(), rows, cols, ctx, random_bytes)
    return enrollment


def code_params(helper: HelperData) -> codes.CodeParams:
    c = helper.code
    return codes.CodeParams(repetition=c.repetition, bch_m=c.bch_m, bch_t=c.bch_t, data_bytes=c.data_bytes,
                            blocks=c.blocks)


def helper_cells(helper: HelperData) -> Cells:
    a, r = helper.array, helper.response
    if r.cells == "all":
        return Cells.whole_array(a.rows, a.cols)
    flat = np.asarray(r.cells, dtype=np.int64)
    return Cells.from_lists(a.rows, a.cols, *np.divmod(flat, a.cols))


def reconstruct_from_bits(bits: NDArray[np.uint8], helper: HelperData,
                          mask: NDArray[np.bool_] | None = None) -> extractor.Reproduced:
    """Authenticated key from response bits of every position (the helper's mask selects the used
    ones), or KeyReconstructionError with its one message."""
    if mask is None:
        mask = helper.mask.to_array().astype(bool)
    offset = helper.offset.to_array()
    bits = np.asarray(bits, dtype=np.uint8)
    if bits.size != mask.size:
        raise ValueError(f"bits: {bits.size} response bits, the helper data has {mask.size} positions")
    return extractor.reproduce(bits[mask][:offset.size], offset, code_params(helper), bytes.fromhex(helper.kdf.salt),
                               helper.authenticated_bytes(), bytes.fromhex(helper.auth.tag), helper.kdf.length)


async def reconstruct(backend: ArrayBackend, helper: HelperData, reads: int = 1,
                      v_read: float | None = None) -> extractor.Reproduced:
    """Regenerate the key from a fresh read (the mean of `reads` reads) of the enrolled cells.

    v_read: read bias, V (default: the enrollment's). Raises KeyReconstructionError (one message)
    when the helper data fails authentication -- altered, another array's, or the response too far
    from enrollment: never returns a wrong key, and never says how many errors were corrected."""
    if (backend.rows, backend.cols) != (helper.array.rows, helper.array.cols):
        raise ValueError(f"backend: a {backend.rows}x{backend.cols} array, the helper data was enrolled on "
                         f"{helper.array.rows}x{helper.array.cols}")
    if reads < 1:
        raise ValueError(f"reads: {reads} must be >= 1")
    r = helper.response
    cells = helper_cells(helper)
    g = (await read_responses(backend, cells, r.v_read if v_read is None else v_read, r.vg, reads)).mean(axis=0)
    bits, _, _ = responses.bits_and_margins(r.method, g, r.g_formed)
    try:
        out = reconstruct_from_bits(bits, helper)
    except extractor.KeyReconstructionError:
        log.warning("PUF key reconstruction failed (%s, %d used positions)", r.method, helper.design.used_positions)
        raise
    log.info("PUF key reconstructed")
    return out


