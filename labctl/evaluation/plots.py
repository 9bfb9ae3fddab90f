"""PNG plots of evaluation results (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from labctl.evaluation.inference import InferenceResult
from labctl.evaluation.training import TrainingResult


def _plt():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_inference(result: InferenceResult, path: str | Path) -> Path:
    """MVM RMSE (per layer, relative to the floating-point outputs) and test accuracy versus time."""
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    t = np.asarray(result.times)
    rel = np.asarray(result.relative_rmse)
    for k in range(rel.shape[1]):
        ax1.semilogx(t, 100 * rel[:, k], "o-", label=f"layer {k + 1}")
    ax1.set_xlabel("time after programming (s)")
    ax1.set_ylabel("MVM RMSE / RMS of floating-point output (%)")
    ax1.legend()
    ax1.grid(True, which="both", alpha=0.3)
    ax2.semilogx(t, 100 * np.asarray(result.accuracy), "o-", label="analog")
    ax2.axhline(100 * result.accuracy_fp, color="k", ls="--", label="floating point")
    ax2.set_xlabel("time after programming (s)")
    ax2.set_ylabel("test accuracy (%)")
    ax2.legend()
    ax2.grid(True, which="both", alpha=0.3)
    for ax in (ax1, ax2):
        ax.set_xticks(t)
        ax.set_xticklabels(result.labels, rotation=30)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def plot_training(results: dict[str, TrainingResult], path: str | Path) -> Path:
    """Test accuracy versus epoch, one line per algorithm."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, res in results.items():
        ax.plot(np.arange(1, len(res.accuracy) + 1), 100 * np.asarray(res.accuracy), "o-", ms=3, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(next(iter(results.values())).dataset if results else "")
    ax.legend()
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
