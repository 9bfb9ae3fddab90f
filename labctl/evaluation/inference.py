"""Inference accuracy over time: an MLP trained in floating point (optionally hardware-aware), mapped
onto tiles, programmed on a backend, and evaluated at times after programming through the MVM model.

Evaluation times default to 1 s, 1 h, 1 day, 1 month, 1 year and 10 years after programming.
Training, calibration and evaluation run with one BLAS thread (labctl.core.blas.single_blas): OpenBLAS
splits large products differently on more threads, which changes their last bits (and, through the
converters' rounding, can change an output); pinned, the same seed gives the same numbers on any core count.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from labctl.core.blas import single_blas
from labctl.evaluation.mapping import ConductanceRange, LayerMapping, Scheme, TileShape, map_layer
from labctl.evaluation.mvm import DriftingLayer, MVMConfig, ProgrammedLayer, mvm_rmse
from labctl.evaluation.relaxation import RelaxationLaw

DAY = 86_400.0
YEAR = 365.25 * DAY
EVALUATION_TIMES: tuple[float, ...] = (1.0, 3600.0, DAY, YEAR / 12, YEAR, 10 * YEAR)
TIME_LABELS: tuple[str, ...] = ("1 s", "1 h", "1 day", "1 month", "1 year", "10 years")


def relu(x: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.maximum(x, 0.0)


def softmax_cross_entropy_grad(logits: NDArray[np.float64], labels: NDArray[np.int64]) -> NDArray[np.float64]:
    """d(mean cross-entropy)/d(logits) for a batch: (softmax - one_hot) / batch."""
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(labels.size), labels] -= 1.0
    return p / labels.size


@dataclass
class MLP:
    """Fully connected ReLU network: weights[k] has shape (inputs, outputs), biases[k] (outputs,)."""

    weights: list[NDArray[np.float64]]
    biases: list[NDArray[np.float64]]

    @classmethod
    def init(cls, sizes: Sequence[int], seed: int = 0) -> MLP:
        """He-uniform initialization for layer sizes (inputs, hidden..., outputs)."""
        rng = np.random.default_rng(seed)
        ws, bs = [], []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            lim = np.sqrt(6.0 / n_in)
            ws.append(rng.uniform(-lim, lim, (n_in, n_out)))
            bs.append(np.zeros(n_out))
        return cls(ws, bs)

    @property
    def sizes(self) -> list[int]:
        return [self.weights[0].shape[0]] + [w.shape[1] for w in self.weights]

    def forward(self, x: ArrayLike, weights: Sequence[NDArray[np.float64]] | None = None) -> list[NDArray[np.float64]]:
        """Activations of every layer (input first, logits last)."""
        ws = self.weights if weights is None else weights
        acts = [np.atleast_2d(np.asarray(x, dtype=np.float64))]
        for k, (w, b) in enumerate(zip(ws, self.biases)):
            z = acts[-1] @ w + b
            acts.append(relu(z) if k < len(ws) - 1 else z)
        return acts

    def predict(self, x: ArrayLike) -> NDArray[np.int64]:
        return np.argmax(self.forward(x)[-1], axis=1)

    def accuracy(self, x: ArrayLike, y: ArrayLike) -> float:
        return float(np.mean(self.predict(x) == np.asarray(y)))

    def backward(self, acts: list[NDArray[np.float64]], labels: NDArray[np.int64],
                 weights: Sequence[NDArray[np.float64]] | None = None) -> list[NDArray[np.float64]]:
        """Output-side errors d_k = dL/dz_k of every layer (first layer first), mean cross-entropy loss."""
        ws = self.weights if weights is None else weights
        d = softmax_cross_entropy_grad(acts[-1], labels)
        errors = [d]
        for k in range(len(ws) - 1, 0, -1):
            d = (d @ ws[k].T) * (acts[k] > 0)
            errors.append(d)
        return errors[::-1]


@single_blas()
def train_mlp(x: ArrayLike, y: ArrayLike, sizes: Sequence[int], *, epochs: int = 30, lr: float = 0.1,
              batch: int = 10, seed: int = 0, weight_noise: float = 0.0) -> MLP:
    """Mini-batch SGD in floating point. weight_noise > 0: hardware-aware training — each forward and
    backward pass uses W + weight_noise * max|W_col| * xi (fresh Gaussian draws per mini-batch), the
    noise scaled like programming noise on the column's conductance range; the update goes to W."""
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.int64)
    net = MLP.init(sizes, seed)
    rng = np.random.default_rng(seed + 1)
    for _ in range(epochs):
        order = rng.permutation(xa.shape[0])
        for s in range(0, order.size, batch):
            idx = order[s:s + batch]
            ws = net.weights
            if weight_noise > 0:
                ws = [w + weight_noise * np.max(np.abs(w), axis=0) * rng.standard_normal(w.shape) for w in ws]
            acts = net.forward(xa[idx], ws)
            errs = net.backward(acts, ya[idx], ws)
            for k in range(len(net.weights)):
                net.weights[k] -= lr * acts[k].T @ errs[k]
                net.biases[k] -= lr * errs[k].sum(axis=0)
    return net


@dataclass
class AnalogNetwork:
    """An MLP whose layers are programmed tiles. input_scales[k]: layer k's inputs are divided by it
    before the DAC (calibrated on training data), and its outputs multiplied back."""

    mlp: MLP
    layers: list[ProgrammedLayer]
    input_scales: list[float]


@single_blas()
def calibrate_input_scales(mlp: MLP, x_train: ArrayLike, percentile: float = 99.9) -> list[float]:
    """Input range of every layer: the given percentile of its input magnitudes on training data."""
    acts = mlp.forward(x_train)
    return [float(max(np.percentile(np.abs(a), percentile), 1e-12)) for a in acts[:-1]]


def map_network(mlp: MLP, *, scheme: Scheme = "offset", g_range: ConductanceRange | None = None,
                tile_shape: TileShape | None = None) -> list[LayerMapping]:
    """One LayerMapping per layer (biases stay digital)."""
    return [map_layer(w, scheme=scheme, g_range=g_range, tile_shape=tile_shape) for w in mlp.weights]


@dataclass
class InferenceResult:
    """Accuracy and MVM error of an analog network at each evaluation time."""

    times: list[float]
    labels: list[str]
    accuracy: list[float]
    accuracy_fp: float
    rmse: list[list[float]]  # [time][layer], normalized output units
    relative_rmse: list[list[float]]  # [time][layer], RMSE / RMS of the floating-point outputs
    settings: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {"times_s": self.times, "labels": self.labels, "accuracy": self.accuracy,
                "accuracy_fp": self.accuracy_fp, "rmse": self.rmse, "relative_rmse": self.relative_rmse,
                "settings": self.settings}


@single_blas()
def inference_over_time(net: AnalogNetwork, x: ArrayLike, y: ArrayLike, *, times: Sequence[float] = EVALUATION_TIMES,
                        labels: Sequence[str] | None = None, cfg: MVMConfig | None = None,
                        law: RelaxationLaw | None = None, seed: int = 0) -> InferenceResult:
    """Test accuracy of `net` at each time after programming (s), with the MVM model `cfg` and the
    relaxation law `law` (default: the preset's)."""
    cfg = cfg or MVMConfig()
    law = law or RelaxationLaw.from_preset(cfg.preset)
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.int64)
    rng = np.random.default_rng(seed)
    drifting = [DriftingLayer(layer, times, law, cfg, rng) for layer in net.layers]
    n_layers = len(net.layers)
    accuracy, rmse, rel = [], [], []
    for k in range(len(times)):
        h = xa
        rm, rr = [], []
        for li, (layer, dl) in enumerate(zip(net.layers, drifting)):
            s_in = net.input_scales[li]
            h_norm = np.clip(h / s_in, -cfg.input_bound, cfg.input_bound)
            y_norm = dl.forward(h_norm, k)
            a, b = mvm_rmse(y_norm, h_norm @ layer.mapping.normalized)
            rm.append(a)
            rr.append(b)
            z = y_norm * layer.mapping.scales * s_in + net.mlp.biases[li]
            h = relu(z) if li < n_layers - 1 else z
        accuracy.append(float(np.mean(np.argmax(h, axis=1) == ya)))
        rmse.append(rm)
        rel.append(rr)
    lab = list(labels) if labels is not None else (
        list(TIME_LABELS) if tuple(times) == EVALUATION_TIMES else [f"{t:g} s" for t in times])
    return InferenceResult(times=[float(t) for t in times], labels=lab, accuracy=accuracy,
                           accuracy_fp=net.mlp.accuracy(xa, ya), rmse=rmse, relative_rmse=rel,
                           settings={"mvm": cfg.to_dict(), "relaxation": law.to_dict(), "seed": seed})
