"""Analog training of an MLP with pulsed updates on soft-bounds devices (kernel in C: emulator.train).

Algorithms (conventions of ../shared/reference/standards-and-methods.md §Analog on-chip training):
  fp    floating-point mini-batch SGD (the baseline)
  sgd   analog SGD: the gradient is pulsed straight into the weight array with stochastic pulse trains
  ttv2  Tiki-Taka v2: the gradient is pulsed into a fast array A; every `transfer_every` mini-batches
        `transfer_columns` columns of A are read (relative to a reference at A's symmetry point, known
        to within `reference_error`), accumulated into a digital buffer H, and whole pulses of H are
        written into the weight array C
  agad  AGAD (Tiki-Taka v4): as ttv2 with a sign chopper per input on A's updates and reads (flipped
        at random or periodically), and a dynamic reference: the running mean of A's reads (momentum
        tail_weighting / chopper period) taken at the column's last chopper flip, so no symmetry-point
        reference is needed and A's drift towards its symmetry point cancels
Weights are W = omega * w (w in normalized device units, the conductance window mapped to about
[-1, 1] around the population's window centre); omega = weight_range * sqrt(6 / fan_in) per layer.
Biases are digital (updated in floating point in every algorithm). Forward and backward MVMs are ideal
here: the device model is the non-ideality under study.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from emulator.train import PulsedTile
from labctl.core.blas import single_blas
from labctl.evaluation.datasets import Dataset
from labctl.evaluation.devicefit import DeviceParameters, DevicePopulation
from labctl.evaluation.inference import MLP, relu, softmax_cross_entropy_grad

Algorithm = Literal["fp", "sgd", "ttv2", "agad"]
ALGORITHMS: tuple[str, ...] = ("fp", "sgd", "ttv2", "agad")


@dataclass(frozen=True)
class TrainingConfig:
    """Hyper-parameters of one training run (defaults: the tuned digits settings, docs/evaluation.md)."""

    algorithm: Algorithm = "agad"
    hidden: tuple[int, ...] = (32,)
    epochs: int = 20
    batch: int = 10
    lr: float = 0.1  # learning rate of W (fp, sgd) in weight units
    seed: int = 0
    weight_range: float = 3.0  # omega / sqrt(6 / fan_in)
    bl: int = 31  # pulse-train length
    update_management: bool = True
    # Tiki-Taka family
    fast_lr: float = 0.1  # learning rate of A, device units
    transfer_every: int = 1  # mini-batches between transfers
    transfer_columns: int = 64  # columns of A read per transfer (>= inputs: all)
    transfer_lr: float = 0.5  # H += transfer_lr * (A read) / dw_min(C): units of C pulses
    max_transfer_pulses: int = 1  # pulses per device per transfer
    chopper_probability: float = 0.1  # AGAD: chance a column's chopper flips after a read
    chopper_random: bool = True  # AGAD: random flips; False: every ceil(1 / chopper_probability) reads
    tail_weighting: float = 5.0  # AGAD: running mean of A's reads with momentum tail_weighting / period
    reference_error: float = 0.05  # TTv2: std of the symmetry-point reference, device units
    read_noise: float = 0.004  # std of a read of A, device units (REF read noise ~0.2 µS / ~40 µS)
    programming_noise: float = 0.012  # std of the initial weights programmed on C, device units
    lr_decay: float = 1.0  # lr and transfer_lr are multiplied by this after every epoch

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm: must be one of {ALGORITHMS}, got {self.algorithm!r}")
        for name in ("epochs", "batch", "transfer_every", "transfer_columns", "max_transfer_pulses"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)!r}")
        for name in ("lr", "fast_lr", "transfer_lr", "weight_range"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: must be > 0, got {getattr(self, name)!r}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay: must be in (0, 1], got {self.lr_decay!r}")
        if not self.tail_weighting > 0:
            raise ValueError(f"tail_weighting: must be > 0, got {self.tail_weighting!r}")
        if not 0 <= self.chopper_probability <= 1:
            raise ValueError(f"chopper_probability: must be in [0, 1], got {self.chopper_probability!r}")


def normalized_devices(params: DeviceParameters) -> dict[str, NDArray[np.float64]]:
    """Device parameters in normalized units: the population's mean window centre -> 0, mean half
    window -> 1 (the reference a weight is read against sits at the window centre)."""
    centre = float(np.mean(0.5 * (params.g_max + params.g_min)))
    half = float(np.mean(0.5 * (params.g_max - params.g_min)))
    return {"w_max": (params.g_max - centre) / half, "w_min": (params.g_min - centre) / half,
            "alpha_up": params.a_up, "alpha_down": params.a_down, "gamma_up": params.gamma_up,
            "gamma_down": params.gamma_down, "c2c_sigma": np.asarray(params.c2c_sigma, dtype=np.float64)}


def ideal_devices(n: int, n_states: float = 2000.0) -> DeviceParameters:
    """Nearly ideal devices: symmetric, constant steps (gamma -> 0), no noise, `n_states` steps in the window."""
    one = np.ones(n)
    return DeviceParameters(g_max=one * 1.0, g_min=-one, a_up=one / n_states, a_down=one / n_states,
                            gamma_up=one * 1e-3, gamma_down=one * 1e-3, c2c_sigma=0 * one)


class DeviceSource:
    """Draws devices for tiles: from a fitted population (with its device-to-device spread) or fixed parameters."""

    def __init__(self, population: DevicePopulation | None = None, fixed: DeviceParameters | None = None) -> None:
        if (population is None) == (fixed is None):
            raise ValueError("devices: give either a fitted population or fixed device parameters")
        self.population = population
        self.fixed = fixed

    def draw(self, shape: tuple[int, int], rng: np.random.Generator) -> DeviceParameters:
        n = shape[0] * shape[1]
        if self.population is not None:
            return self.population.sample(n, rng)
        assert self.fixed is not None
        return self.fixed.select(np.arange(n) % self.fixed.n)


def _tile(shape: tuple[int, int], devices: DeviceParameters, seed: int, stream: int) -> PulsedTile:
    nd = normalized_devices(devices)
    c2c = float(np.mean(nd.pop("c2c_sigma")))
    return PulsedTile(shape[0], shape[1], **{k: v.reshape(shape) for k, v in nd.items()}, c2c_sigma=c2c,
                      seed=seed, stream=stream)


@dataclass
class _Layer:
    omega: float
    bias: NDArray[np.float64]
    w_fp: NDArray[np.float64] | None = None  # (out, in), fp only
    c: PulsedTile | None = None  # weight array (sgd: the only array)
    a: PulsedTile | None = None  # fast array (ttv2, agad)
    a_ref: NDArray[np.float64] | None = None
    a_mean: NDArray[np.float64] | None = None  # AGAD: running mean of A's reads since the last flip
    reads: NDArray[np.int64] | None = None  # AGAD: reads of each column since its last flip
    h: NDArray[np.float64] | None = None
    chopper: NDArray[np.float64] | None = None
    dw_min_a: float = 1.0
    dw_min_c: float = 1.0
    next_col: int = 0

    def weights(self) -> NDArray[np.float64]:
        """(out, in) weights in weight units."""
        if self.w_fp is not None:
            return self.w_fp
        assert self.c is not None
        return self.omega * self.c.w


def _dw_min(tile: PulsedTile) -> float:
    """Mean step of one pulse at each device's symmetry point, device units."""
    saved = tile.w.copy()
    tile.w[...] = tile.symmetry_point()
    up, down = tile.expected_steps()
    tile.w[...] = saved
    return float(np.mean(0.5 * (up + down)))


@dataclass
class TrainingResult:
    """Test accuracy after every epoch, and what was run."""

    algorithm: str
    dataset: str
    accuracy: list[float]
    train_accuracy: list[float]
    epoch_seconds: list[float]
    pulses: int
    config: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class AnalogTrainer:
    """Trains an MLP with one algorithm; `epoch()` runs one pass over the training set."""

    def __init__(self, n_inputs: int, n_classes: int, cfg: TrainingConfig, devices: DeviceSource | None = None) -> None:
        self.cfg = cfg
        self.sizes = [n_inputs, *cfg.hidden, n_classes]
        self.rng = np.random.default_rng(cfg.seed)
        if cfg.algorithm != "fp" and devices is None:
            raise ValueError(f"devices: the {cfg.algorithm} algorithm needs a device model")
        init = MLP.init(self.sizes, cfg.seed)
        self.layers: list[_Layer] = []
        self.pulses = 0
        self.lr_factor = 1.0  # lr_decay ** epochs done
        # AGAD: a chopper period lasts about 1 / p reads; the running mean weights its last
        # period / tail_weighting reads (momentum 1: the read at the flip itself).
        p = cfg.chopper_probability
        self._period = max(int(np.ceil(1.0 / p - 1e-9)) if p > 0 else 2, 2)
        self._mean_momentum = min(cfg.tail_weighting / self._period, 1.0)
        for k, (w0, b0) in enumerate(zip(init.weights, init.biases)):
            shape = (w0.shape[1], w0.shape[0])  # (out, in)
            omega = cfg.weight_range * float(np.sqrt(6.0 / w0.shape[0]))
            layer = _Layer(omega=omega, bias=b0.copy())
            if cfg.algorithm == "fp":
                layer.w_fp = w0.T.copy()
            else:
                assert devices is not None
                layer.c = _tile(shape, devices.draw(shape, self.rng), cfg.seed, 2 * k)
                target = w0.T / omega + cfg.programming_noise * self.rng.standard_normal(shape)
                layer.c.set_weights(target)
                layer.dw_min_c = _dw_min(layer.c)
                if cfg.algorithm in ("ttv2", "agad"):
                    layer.a = _tile(shape, devices.draw(shape, self.rng), cfg.seed, 2 * k + 1)
                    sp = layer.a.symmetry_point()
                    layer.a.set_weights(sp)  # A starts where alternating pulses leave it
                    layer.dw_min_a = _dw_min(layer.a)
                    layer.h = np.zeros(shape)
                    if cfg.algorithm == "ttv2":
                        layer.a_ref = sp + cfg.reference_error * self.rng.standard_normal(shape)
                    else:
                        layer.a_ref = layer.a.w.copy()
                        layer.a_mean = layer.a.w.copy()
                        layer.chopper = np.ones(shape[1])
                        layer.reads = np.zeros(shape[1], dtype=np.int64)
            self.layers.append(layer)

    # ------------------------------------------------------------------ passes
    def forward(self, x: NDArray[np.float64]) -> list[NDArray[np.float64]]:
        acts = [x]
        n = len(self.layers)
        for k, layer in enumerate(self.layers):
            z = acts[-1] @ layer.weights().T + layer.bias
            acts.append(relu(z) if k < n - 1 else z)
        return acts

    def predict(self, x: NDArray[np.float64]) -> NDArray[np.int64]:
        return np.argmax(self.forward(np.asarray(x, dtype=np.float64))[-1], axis=1)

    def accuracy(self, x: NDArray[np.float64], y: NDArray[np.int64]) -> float:
        return float(np.mean(self.predict(x) == y))

    def _step(self, x: NDArray[np.float64], labels: NDArray[np.int64]) -> None:
        cfg = self.cfg
        acts = self.forward(x)
        d = softmax_cross_entropy_grad(acts[-1], labels) * labels.size  # per-sample errors
        errors = [d]
        for k in range(len(self.layers) - 1, 0, -1):
            d = (d @ self.layers[k].weights()) * (acts[k] > 0)
            errors.append(d)
        errors.reverse()
        scale = cfg.lr * self.lr_factor / labels.size
        for layer, a_in, err in zip(self.layers, acts[:-1], errors):
            layer.bias -= scale * err.sum(axis=0)
            if layer.w_fp is not None:
                layer.w_fp -= scale * err.T @ a_in
            elif layer.a is None:
                assert layer.c is not None
                # W = omega w: a weight step lr * d x is a device step lr / omega * d x.
                self.pulses += layer.c.update(a_in, err, scale / layer.omega,
                                              layer.dw_min_c, bl=cfg.bl, update_management=cfg.update_management)
            else:
                x_in = a_in * layer.chopper if layer.chopper is not None else a_in
                self.pulses += layer.a.update(x_in, err, cfg.fast_lr / labels.size, layer.dw_min_a, bl=cfg.bl,
                                              update_management=cfg.update_management)

    def _transfer(self, layer: _Layer) -> None:
        """Read `transfer_columns` columns of A, accumulate into H, write whole pulses into C."""
        cfg = self.cfg
        assert layer.a is not None and layer.c is not None and layer.h is not None and layer.a_ref is not None
        n_in = layer.a.cols
        n_cols = min(cfg.transfer_columns, n_in)
        cols = (layer.next_col + np.arange(n_cols)) % n_in
        layer.next_col = int((layer.next_col + n_cols) % n_in)
        read = layer.a.w[:, cols] + cfg.read_noise * self.rng.standard_normal((layer.a.rows, cols.size))
        signal = read - layer.a_ref[:, cols]
        if layer.chopper is not None:
            signal *= layer.chopper[cols]
        h = layer.h[:, cols] + cfg.transfer_lr * self.lr_factor * signal / layer.dw_min_c  # in units of one C pulse
        n = np.clip(np.trunc(h), -cfg.max_transfer_pulses, cfg.max_transfer_pulses)
        layer.h[:, cols] = h - n
        nz = np.nonzero(n)
        if nz[0].size:
            flat = nz[0] * n_in + cols[nz[1]]
            layer.c.pulse(flat, n[nz].astype(np.int32))
            self.pulses += int(np.abs(n[nz]).sum())
        if layer.chopper is not None:
            assert layer.a_mean is not None and layer.reads is not None
            layer.a_mean[:, cols] += self._mean_momentum * (read - layer.a_mean[:, cols])
            layer.reads[cols] += 1
            if cfg.chopper_random:
                flip = self.rng.random(cols.size) < cfg.chopper_probability
            else:
                flip = layer.reads[cols] >= self._period
            layer.reads[cols[flip]] = 0
            if np.any(flip):
                fc = cols[flip]
                layer.chopper[fc] *= -1.0
                layer.a_ref[:, fc] = layer.a_mean[:, fc]  # dynamic reference: A's mean over the period's tail

    def epoch(self, x: NDArray[np.float64], y: NDArray[np.int64]) -> None:
        cfg = self.cfg
        order = self.rng.permutation(x.shape[0])
        for b, s in enumerate(range(0, order.size, cfg.batch)):
            idx = order[s:s + cfg.batch]
            self._step(x[idx], y[idx])
            if cfg.algorithm in ("ttv2", "agad") and (b + 1) % cfg.transfer_every == 0:
                for layer in self.layers:
                    self._transfer(layer)
        self.lr_factor *= cfg.lr_decay


@single_blas()
def train(data: Dataset, cfg: TrainingConfig, devices: DeviceSource | None = None,
          progress: bool = False) -> TrainingResult:
    """Train on `data` with `cfg`; test accuracy after every epoch."""
    trainer = AnalogTrainer(data.n_inputs, data.n_classes, cfg, devices)
    acc, train_acc, secs = [], [], []
    for e in range(cfg.epochs):
        t0 = time.perf_counter()
        trainer.epoch(data.x_train, data.y_train)
        secs.append(time.perf_counter() - t0)
        acc.append(trainer.accuracy(data.x_test, data.y_test))
        train_acc.append(trainer.accuracy(data.x_train, data.y_train))
        if progress:
            print(f"{cfg.algorithm} epoch {e + 1}/{cfg.epochs}: test accuracy {acc[-1]:.4f}")
    cfg_dict = asdict(cfg)
    cfg_dict["hidden"] = list(cfg.hidden)
    return TrainingResult(algorithm=cfg.algorithm, dataset=data.name, accuracy=acc, train_accuracy=train_acc,
                          epoch_seconds=secs, pulses=trainer.pulses, config=cfg_dict)


def train_algorithms(data: Dataset, algorithms: Sequence[str], base: TrainingConfig,
                     devices: DeviceSource | None, overrides: dict[str, dict[str, object]] | None = None,
                     progress: bool = False) -> dict[str, TrainingResult]:
    """Run several algorithms with shared settings and per-algorithm overrides."""
    out: dict[str, TrainingResult] = {}
    for name in algorithms:
        changes = dict((overrides or {}).get(name, {}))
        cfg = TrainingConfig(**{**asdict(base), **changes, "algorithm": name})
        out[name] = train(data, cfg, None if name == "fp" else devices, progress)
    return out


# Tuned on digits with the device models fitted to emulated CMO/HfOx arrays (docs/evaluation.md, checked
# across seeds by scripts/agad_seeds.py), after the AGAD paper's and aihwkit's published settings: columns of A
# read one at a time in sequence, half a column per sample (transfer_columns 5 after every mini-batch of ten, so
# each column of the 64-input layer is read every 12.8 mini-batches), periodic choppers flipping after every
# tenth read of a column (chopper period 10) with the dynamic reference the running mean of A's reads over the
# period's tail (tail_weighting 5: momentum 1/2); A is pulsed hard (fast_lr 5: between two reads of a column A
# integrates the gradient of 128 samples, so the signal read grows against the fixed read and pulse noise; the
# pulse trains are 31 slots long); transfers are small (0.1 C pulse per unit of A signal over one C step, at most
# one pulse per device) and decay by 0.93 per epoch over 50 epochs so that C settles. The read rate and fast_lr
# were re-tuned for issue 18's kernel on fits 5-14 (never on seeds 0-4).
DIGITS_SETTINGS = TrainingConfig(algorithm="agad", hidden=(32,), epochs=50, batch=10, lr=0.1, weight_range=3.0,
                                 fast_lr=5.0, transfer_every=1, transfer_columns=5, transfer_lr=0.1,
                                 chopper_probability=0.1, chopper_random=False, tail_weighting=5.0,
                                 lr_decay=0.93)
