"""labctl's SP 800-90B non-IID assessment against NIST's reference tool, file by file.

/work/shared/reference/sp800-90b/ holds sample files and, in ea_non_iid-outputs/, the tool's own
printout (ea_non_iid -v -v -v) for each: every estimator's intermediate values and estimate, on the
literal samples and (for multi-bit samples) on their bit string, H_original, H_bitstring and the
assessed min-entropy. The printout is parsed here and every value must agree to 1e-9.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from labctl.puf import entropy

REFERENCE = Path("/work/shared/reference/sp800-90b")
# one 8-bit file of 10^6 samples is assessed on 8 * 10^6 bits as well: minutes on a shared machine
pytestmark = pytest.mark.timeout(1800)
FILES = sorted(p.stem for p in (REFERENCE / "ea_non_iid-outputs").glob("*.res"))

ESTIMATORS = {"Most Common Value": "most_common_value", "Collision": "collision", "Markov": "markov",
              "Compression": "compression", "t-Tuple": "t_tuple", "LRS": "lrs",
              "MultiMCW Prediction": "multi_mcw", "Lag Prediction": "lag",
              "MultiMMC Prediction": "multi_mmc", "LZ78Y Prediction": "lz78y"}
FIELDS = {"Mode count": "mode", "p-hat": None, "p_u": "p_u", "v": "v", "Sum t_i": "sum_t", "X-bar": "x_bar",
          "sigma-hat": "sigma_hat", "X-bar'": "x_bar_prime", "p": "p", "P_0": "p0", "P_1": "p1",
          "P_{0,0}": "p00", "P_{0,1}": "p01", "P_{1,0}": "p10", "P_{1,1}": "p11", "p-hat_max": None,
          "t": "t", "u": "u", "C": "C", "r": "r", "N": "N", "P_global": "p_global",
          "P_global'": "p_global_prime", "P_local": "p_local"}
# "p-hat" and "p-hat_max" name different intermediates in different estimators
P_HAT = {"most_common_value": "p_hat", "lrs": "p_hat", "markov": None, "t_tuple": None}
P_HAT_MAX = {"markov": "p_max", "t_tuple": "p_hat_max"}
LINE = re.compile(r"^(Literal|Bitstring) (.+?) Estimate: (.+?) = (\S+)$")


def parse(path: Path) -> dict:
    """The printout as {'width', 'alphabet', 'values': [(track, estimator, field, value)], 'no_local',
    'min_entropy': [(track, estimator, value)], 'h_original', 'h_bitstring', 'assessed'}."""
    out: dict = {"values": [], "no_local": [], "min_entropy": [], "h_bitstring": None}
    for line in path.read_text().splitlines():
        if m := re.match(r"Loaded (\d+) samples of (\d+) distinct (\d+)-bit-wide symbols", line):
            out["n"], out["alphabet"], out["width"] = (int(g) for g in m.groups())
        elif m := LINE.match(line):
            track, name, field, value = m.groups()
            est = ESTIMATORS[name]
            if field == "min entropy":
                out["min_entropy"].append((track, est, float(value)))
                continue
            key = FIELDS[field]
            if field == "p-hat":
                key = P_HAT[est]
            elif field == "p-hat_max":
                key = P_HAT_MAX[est]
            out["values"].append((track, est, key, float(value)))
        elif m := re.match(r"^(Literal|Bitstring) (.+?) Estimate: P_local can't change the result\.$", line):
            out["no_local"].append((m.group(1), ESTIMATORS[m.group(2)]))
        elif m := re.match(r"^H_bitstring = (\S+)$", line):
            out["h_bitstring"] = float(m.group(1))
        elif m := re.match(r"^H_original: (\S+)$", line):
            out["h_original"] = float(m.group(1))
        elif m := re.match(r"^Assessed min entropy: (\S+)$", line):
            out["assessed"] = float(m.group(1))
    return out


def close(ours: float, theirs: float) -> bool:
    return math.isclose(ours, theirs, rel_tol=1e-9, abs_tol=1e-9 * min(1.0, abs(theirs)))


@pytest.fixture(scope="module", params=FILES)
def case(request):
    name = request.param
    printout = parse(REFERENCE / "ea_non_iid-outputs" / f"{name}.res")
    samples = np.fromfile(REFERENCE / f"{name}.bin", dtype=np.uint8)
    return name, printout, entropy.assess_samples(samples, printout["width"])


def test_every_reference_file_is_covered():
    assert len(FILES) == 11 and all((REFERENCE / f"{f}.bin").exists() for f in FILES)


def test_every_printed_value_agrees(case):
    name, ref, a = case
    tracks = {"Literal": a.estimates, "Bitstring": a.bitstring}
    assert a.n_samples == ref["n"] and a.alphabet == ref["alphabet"] and a.bits_per_symbol == ref["width"]
    checked = 0
    for track, est, key, value in ref["values"]:
        got = tracks[track][est].details[key]
        assert got is not None and close(float(got), value), (name, track, est, key, got, value)
        checked += 1
    for track, est in ref["no_local"]:
        assert tracks[track][est].details["p_local"] is None, (name, track, est)
    for track, est, value in ref["min_entropy"]:
        assert close(tracks[track][est].min_entropy, value), (name, track, est)
    # every estimator the tool ran, and no other, ran here
    printed = {(t, e) for t, e, _ in ref["min_entropy"]}
    ran = {(t, e) for t, d in tracks.items() if d for e, x in d.items() if x.min_entropy is not None}
    assert printed == ran
    assert checked > 40


def test_final_assessment_agrees(case):
    name, ref, a = case
    assert close(a.h_original, ref["h_original"]), name
    if ref["h_bitstring"] is None:
        assert a.bitstring is None
    else:
        assert close(a.h_bitstring, ref["h_bitstring"]), name
    assert close(a.min_entropy, ref["assessed"]), name
