"""Batch evaluation of the PUF on emulated arrays: enrollment of many "chips" (emulator seeds),
re-reads under several conditions (time for relaxation, other read biases), ISO/IEC 20897-style
metrics, key-failure rates, and the SP 800-90B assessment of the responses.

Responses and keys live only in memory here; the report holds statistics, and the plots show
distributions of distances and rates, never response bits.
"""
from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from labctl.backends.emulator import EmulatorBackend
from labctl.puf import entropy, extractor, health, metrics, responses
from labctl.puf.enroll import EnrollmentError, EnrollParams, enroll_core, helper_cells, reconstruct_from_bits
from labctl.puf.helper import write_new_file


class Condition(BaseModel):
    """A re-read: `after` seconds after enrollment (virtual clock), at read bias `v_read` (V)."""

    model_config = ConfigDict(extra="forbid")
    label: str
    after: float = Field(0.0, ge=0, json_schema_extra={"unit": "s"})
    v_read: float = Field(0.2, gt=0, le=1.0, json_schema_extra={"unit": "V"})


DEFAULT_CONDITIONS = (
    Condition(label="re-read", after=0.0, v_read=0.2),
    Condition(label="1 h", after=3600.0, v_read=0.2),
    Condition(label="1 h at 0.15 V", after=3600.0, v_read=0.15),
    Condition(label="1 h at 0.25 V", after=3600.0, v_read=0.25),
    Condition(label="1 day", after=86400.0, v_read=0.2),
)


class EvaluationParams(BaseModel):
    """Which emulated arrays, how they are enrolled, and the re-read conditions."""

    model_config = ConfigDict(extra="forbid")
    arrays: int = Field(100, ge=2, le=100_000)
    first_seed: int = Field(0, ge=0)
    rows: int = Field(32, ge=1, le=4096)
    cols: int = Field(32, ge=1, le=4096)
    preset: str = "cmo-hfox"
    enroll: EnrollParams = Field(default_factory=lambda: EnrollParams(prepare="form_set"))
    conditions: list[Condition] = Field(default_factory=lambda: list(DEFAULT_CONDITIONS), min_length=1)
    entropy_assessment: bool = True


@dataclass
class Evaluation:
    """Report (JSON-ready) and the distributions the plots show."""

    report: dict[str, Any]
    inter_fhd: NDArray[np.float64]
    intra_fhd: dict[str, NDArray[np.float64]]
    uniformity: NDArray[np.float64]
    bit_aliasing: NDArray[np.float64]
    min_entropy: NDArray[np.float64]
    failures: dict[str, int] = field(default_factory=dict)


@dataclass
class DieResult:
    """One emulated die: enrolled (or why not), its reference and re-read responses, and per re-read
    condition whether the key failed to reconstruct and whether a wrong key came back."""

    seed: int
    enroll_failure: str | None = None  # the exception's kind when the die could not be enrolled
    reference: NDArray[np.uint8] | None = None
    rereads: NDArray[np.uint8] | None = None  # (conditions, positions)
    used_bits: int = 0
    stable_fraction: float = 0.0
    predicted_failure: float = 0.0
    design: str = ""
    outcomes: dict[str, tuple[bool, bool]] = field(default_factory=dict)  # label -> (failed, wrong key)


async def evaluate_die(rows: int, cols: int, seed: int, preset: Any, e: EnrollParams, conditions: list[Condition],
                       random_bytes: extractor.RandomBytes = secrets.token_bytes) -> DieResult:
    """Enroll the emulated die `seed` (rows x cols, `preset`: a name or an emulator.Preset) and re-read it
    under each condition (in order of `after`, on the virtual clock)."""
    backend = EmulatorBackend(rows, cols, seed=seed, preset=preset)
    try:
        enrollment, stab = await enroll_core(backend, e, random_bytes=random_bytes)
    except (EnrollmentError, health.HealthTestFailure) as exc:
        return DieResult(seed, enroll_failure=type(exc).__name__)
    helper = enrollment.helper
    mask = helper.mask.to_array().astype(bool)
    cells = helper_cells(helper)
    c = helper.code
    die = DieResult(seed, reference=stab.reference, used_bits=helper.design.used_positions,
                    stable_fraction=helper.design.stable_positions / helper.response.positions,
                    predicted_failure=helper.design.predicted_failure,
                    design=f"BCH(m={c.bch_m}, t={c.bch_t}, {c.data_bytes} B) x {c.blocks}, repetition {c.repetition}")
    elapsed = 0.0
    reads = []
    for cond in sorted(conditions, key=lambda k: k.after):
        await backend.wait(cond.after - elapsed)
        elapsed = cond.after
        g = await responses.read_cells(backend, cells, cond.v_read, e.vg)
        bits, _, _ = responses.bits_and_margins(e.method, g, e.g_formed)
        reads.append(bits)
        try:
            got = reconstruct_from_bits(bits, helper, mask)
        except extractor.KeyReconstructionError:
            die.outcomes[cond.label] = (True, False)
        else:
            die.outcomes[cond.label] = (False, got.key != enrollment.key)
    die.rereads = np.stack(reads)
    return die


Progress = Callable[[int, int], None]


async def evaluate_batch(params: EvaluationParams, progress: Progress | None = None,
                         random_bytes: extractor.RandomBytes = secrets.token_bytes) -> Evaluation:
    """Enroll `params.arrays` emulated arrays and re-read each under every condition."""
    t_start = time.perf_counter()
    conds = sorted(params.conditions, key=lambda c: c.after)
    references: list[NDArray[np.uint8]] = []
    rereads: list[NDArray[np.uint8]] = []
    outcome = {c.label: {"attempts": 0, "failures": 0, "wrong_keys": 0} for c in conds}
    enroll_failures: dict[str, int] = {}
    used_bits: list[int] = []
    stable_fraction: list[float] = []
    predicted: list[float] = []
    designs: dict[str, int] = {}
    e = params.enroll
    for i in range(params.arrays):
        die = await evaluate_die(params.rows, params.cols, params.first_seed + i, params.preset, e, conds,
                                 random_bytes)
        if die.enroll_failure is not None:
            enroll_failures[die.enroll_failure] = enroll_failures.get(die.enroll_failure, 0) + 1
            continue
        assert die.reference is not None and die.rereads is not None
        references.append(die.reference)
        used_bits.append(die.used_bits)
        stable_fraction.append(die.stable_fraction)
        predicted.append(die.predicted_failure)
        designs[die.design] = designs.get(die.design, 0) + 1
        for label, (failed, wrong) in die.outcomes.items():
            o = outcome[label]
            o["attempts"] += 1
            o["failures"] += int(failed)
            o["wrong_keys"] += int(wrong)
        rereads.append(die.rereads)
        if progress is not None:
            progress(i + 1, params.arrays)
    t_enroll_eval = time.perf_counter() - t_start
    if len(references) < 2:
        raise EnrollmentError(f"only {len(references)} of {params.arrays} arrays enrolled "
                              f"(failures: {enroll_failures}); the metrics need at least 2")
    ref = np.stack(references)
    rr = np.stack(rereads)
    inter = metrics.pairwise_fhd(ref)
    intra = metrics.intra_fhd(ref, rr)
    unif = metrics.uniformity(ref)
    alias = metrics.bit_aliasing(ref)
    h_bit = metrics.min_entropy_per_bit(ref)
    attempts = sum(o["attempts"] for o in outcome.values())
    fails = sum(o["failures"] for o in outcome.values())
    wrong = sum(o["wrong_keys"] for o in outcome.values())
    report: dict[str, Any] = {
        "params": params.model_dump(mode="json"),
        "devices_enrolled": int(ref.shape[0]),
        "enrollment_failures": enroll_failures,
        "response_bits": int(ref.shape[1]),
        "uniformity": metrics.summary(unif),
        "uniqueness": metrics.summary(inter),
        "bit_aliasing": metrics.summary(alias),
        "min_entropy_per_bit": {**metrics.summary(h_bit), "total_bits": float(h_bit.sum())},
        "steadiness": {cond.label: metrics.summary(1.0 - intra[:, j]) for j, cond in enumerate(conds)},
        "steadiness_overall": metrics.summary(metrics.steadiness(ref, rr)),
        "intra_fhd": {cond.label: metrics.summary(intra[:, j]) for j, cond in enumerate(conds)},
        "key_reconstruction": {
            "per_condition": {k: {**v, "failure_rate": v["failures"] / v["attempts"] if v["attempts"] else None}
                              for k, v in outcome.items()},
            "attempts": attempts, "failures": fails, "wrong_keys": wrong,
            "failure_rate": fails / attempts if attempts else None,
            "predicted_failure_per_attempt": metrics.summary(predicted),
        },
        "stable_fraction": metrics.summary(stable_fraction),
        "used_response_bits": metrics.summary(used_bits),
        "codes_chosen": designs,
        "enroll_eval_s": t_enroll_eval,
    }
    if params.entropy_assessment:
        t0 = time.perf_counter()
        assessment = entropy.assess(ref.ravel())
        report["sp800_90b"] = {**assessment.to_dict(), "data": "reference responses of all devices, "
                                                                "concatenated in device order",
                               "seconds": time.perf_counter() - t0}
    return Evaluation(report=report, inter_fhd=inter,
                      intra_fhd={cond.label: intra[:, j] for j, cond in enumerate(conds)},
                      uniformity=unif, bit_aliasing=alias, min_entropy=h_bit)


REPORT_FILE = "puf_report.json"


def output_paths(out_dir: str | Path) -> list[Path]:
    """The files write_outputs writes (to refuse existing ones before an evaluation starts)."""
    from labctl.puf import plots

    return [Path(out_dir) / name for name in (REPORT_FILE, *plots.PLOT_FILES.values())]


def write_outputs(evaluation: Evaluation, out_dir: str | Path, force: bool = False) -> dict[str, Path]:
    """Write puf_report.json and the PNG histograms into out_dir (atomically; existing files only with
    `force`); returns the paths."""
    from labctl.puf import plots

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"report": out / REPORT_FILE}
    write_new_file(paths["report"], (json.dumps(evaluation.report, indent=2) + "\n").encode(), force=force)
    paths.update(plots.write_plots(evaluation, out, force))
    return paths
