"""labctl.core.schemes: the one range-lookup rule of the identical-pulse table."""
from __future__ import annotations

import numpy as np

from labctl.core.schemes import REFERENCE_PULSE_TABLE, PulseTable


def test_contiguous_table_lookup_equals_the_nearest_range_rule() -> None:
    # The reference table takes the binary-search path; the same ranges with a hair-wide gap take the
    # general nearest-range path: away from the gaps both must give the same amplitudes.
    t = np.concatenate([np.random.default_rng(0).uniform(0.0, 120e-6, 20_000),
                        [0.0, 10e-6, 29.9e-6, 90e-6, 1e-3]])
    gapped = PulseTable(g_low=(10e-6, 30e-6 + 1e-15, 60e-6 + 1e-15), g_high=(30e-6, 60e-6, 90e-6),
                        v_set=REFERENCE_PULSE_TABLE.v_set, v_reset=REFERENCE_PULSE_TABLE.v_reset)
    fast, general = REFERENCE_PULSE_TABLE.amplitudes(t), gapped.amplitudes(t)
    assert np.array_equal(fast[0], general[0]) and np.array_equal(fast[1], general[1])
    # A range holds its lower edge, not its upper one; outside the table, the nearest range.
    v_set, v_reset = REFERENCE_PULSE_TABLE.amplitudes([5e-6, 20e-6, 30e-6, 45e-6, 60e-6, 90e-6, 95e-6])
    assert v_set.tolist() == [1.35, 1.35, 1.35, 1.35, 1.5, 1.5, 1.5]
    assert v_reset.tolist() == [-1.5, -1.5, -1.3, -1.3, -1.3, -1.3, -1.3]
