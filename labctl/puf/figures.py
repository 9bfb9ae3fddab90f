"""Run-report figures of the PUF steps (declared by PufEnrollResult / PufEvaluateResult.figures).

The response bits, the secret and the key are never stored (labctl.puf.enroll), so a run report draws
only what the store holds in public: the helper data's map of stable response positions (the mask, not
the response), the bit-error rates of the enrollment (measured raw BER, so steadiness = 1 − raw BER;
the design BER and the predicted key failure of the chosen code), and whether each evaluation
reconstructed the key. Uniformity and uniqueness across devices need many enrolled arrays:
`labctl puf evaluate` (docs/puf.md) computes them and writes their histograms.
"""
from __future__ import annotations

import json
import math

import numpy as np

from labctl.puf.helper import HelperData
from labctl.routines.figures import Figure, Item, Note, StepData, Table
from labctl.routines.figures.base import legend, pyplot, subplots


def enroll_figures(step: StepData) -> list[Item]:
    """The stable-position map and the bit-error rates of every finished enrollment."""
    out: list[Item] = []
    for g in step.groups:
        s = g.summary
        if not s or not s.get("helper_data"):
            continue
        helper = HelperData.from_json(s["helper_data"])
        mask = helper.mask.to_array().astype(float)
        width = int(math.ceil(math.sqrt(mask.size)))
        grid = np.full(width * int(math.ceil(mask.size / width)), np.nan)
        grid[:mask.size] = mask
        fig, axes = subplots(2, ncol=2)
        cmap = pyplot().get_cmap("Greys").with_extremes(bad="#f0d0d0")  # past the last position
        im = axes[0].imshow(np.ma.masked_invalid(grid.reshape(-1, width)), cmap=cmap, vmin=0, vmax=1,
                            interpolation="nearest")
        fig.colorbar(im, ax=axes[0]).set_label("stable (1) / masked (0)")
        axes[0].set_xlabel("response position mod width")
        axes[0].set_ylabel("response position / width")
        axes[0].set_title(f"{step.title(g)}: {int(mask.sum())} of {mask.size} positions stable", fontsize=9)
        rates = {"measured raw BER": helper.design.measured_raw_ber, "design BER": helper.design.design_ber,
                 "predicted key failure": helper.design.predicted_failure,
                 "target key failure": helper.design.target_failure}
        shown = {k: v for k, v in rates.items() if v > 0}
        axes[1].bar(range(len(shown)), list(shown.values()), color=["C0", "C1", "C2", "C3"][:len(shown)])
        axes[1].set_xticks(range(len(shown)), list(shown), rotation=20, fontsize=8)
        axes[1].set_yscale("log")
        axes[1].set_ylabel("probability")
        axes[1].set_title(f"steadiness 1 − raw BER = {1 - helper.design.measured_raw_ber:.4f}", fontsize=9)
        legend(axes[1])
        out.append(Figure("response_map", fig, f"PUF enrollment ({helper.response.method}, {helper.response.positions} "
                          f"positions, {helper.response.enrollment_reads} reads): the public helper-data mask of "
                          "stable response positions (the response bits themselves are never stored) and the "
                          f"bit-error rates: measured raw BER {helper.design.measured_raw_ber:.3g} (steadiness "
                          f"{1 - helper.design.measured_raw_ber:.4f}), design BER {helper.design.design_ber:.3g}, "
                          f"predicted key failure {helper.design.predicted_failure:.3g} with BCH(m={helper.code.bch_m}, "
                          f"t={helper.code.bch_t}) × repetition {helper.code.repetition}."))
        report = json.loads(s.get("report") or "{}")
        health = report.get("health_tests")
        if isinstance(health, dict):
            out.append(Table(f"{step.title(g)}: SP 800-90B health tests of the raw bits", ["test", "value"],
                             [[k, str(v)] for k, v in health.items()]))
    if not out:
        out.append(Note("No enrollment finished: no PUF figure."))
    out.append(Note("Uniformity and uniqueness compare many enrolled arrays: `labctl puf evaluate` computes them."))
    return out


def evaluate_figures(step: StepData) -> list[Item]:
    """Whether each evaluation reconstructed the key (the key error count is not recorded, by design)."""
    rows = [[g.label or step.name, "yes" if (g.summary or {}).get("reconstructed") else "no",
             str((g.summary or {}).get("message", "not finished"))] for g in step.groups]
    ok = sum(r[1] == "yes" for r in rows)
    return [Table(f"key reconstruction: {ok} of {len(rows)}", ["evaluation", "reconstructed", "message"], rows,
                  note="Only success is recorded: a count of corrected errors is what a helper-data "
                       "manipulation attack measures.")]
