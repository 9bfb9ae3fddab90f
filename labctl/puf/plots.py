"""PNG histograms of a PUF evaluation (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from labctl.puf.helper import write_new_file  # noqa: E402

if TYPE_CHECKING:
    from labctl.puf.evaluate import Evaluation


#: The files write_plots writes in its folder.
PLOT_FILES = {"fhd_histogram": "puf_fhd_histogram.png", "bit_statistics": "puf_bit_statistics.png"}


def _save(fig: plt.Figure, path: Path, force: bool) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    write_new_file(path, buf.getvalue(), force=force)


def write_plots(ev: Evaluation, out: Path, force: bool = False) -> dict[str, Path]:
    """Hamming-distance histograms (inter vs intra per condition) and per-bit statistics; existing
    files are replaced only with `force`."""
    paths = {name: out / file for name, file in PLOT_FILES.items()}
    fig, ax = plt.subplots(figsize=(7, 4))
    bins = np.linspace(0, 0.6, 121)
    ax.hist(ev.inter_fhd, bins=bins, density=True, alpha=0.6, label="inter-device (uniqueness)")
    for label, values in ev.intra_fhd.items():
        ax.hist(values, bins=bins, density=True, histtype="step", linewidth=1.2, label=f"intra: {label}")
    ax.set_xlabel("fractional Hamming distance")
    ax.set_ylabel("density")
    ax.set_title(f"PUF distances, {ev.report['devices_enrolled']} devices, {ev.report['response_bits']} bits")
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, paths["fhd_histogram"], force)

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    axes[0].hist(ev.uniformity, bins=40)
    axes[0].set_xlabel("uniformity (fraction of ones per device)")
    axes[1].hist(ev.bit_aliasing, bins=40)
    axes[1].set_xlabel("bit-aliasing (fraction of ones per position)")
    axes[2].hist(ev.min_entropy, bins=40)
    axes[2].set_xlabel("min-entropy per bit position, bit")
    for a in axes:
        a.set_ylabel("count")
    fig.tight_layout()
    _save(fig, paths["bit_statistics"], force)
    return paths
