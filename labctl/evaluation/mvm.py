"""Analog MVM from measured conductances: DAC, crossbar with IR drop, read and output noise, ADC,
relaxation to a time after programming and global drift compensation.

One tile computes, for normalized inputs x (|x| <= input_bound):
    v = DAC(x) * v_read / input_bound                    row voltages, V
    I = crossbar(G(t) + read noise, v, r_wire)           column currents, A (exact IR drop)
    y = ADC(decode(I) + output_noise * xi)              normalized outputs (weights and inputs max 1)
    y <- y * alpha(t)                                    global drift compensation (digital)
decode() is the mapping's differential / offset-reference read-out (labctl.evaluation.mapping);
alpha(t) = mean|y_ref(0)| / mean|y_ref(t)| over a fixed, seeded set of reference inputs, with y_ref(0)
recorded from the conductances measured right after programming (conventions of the field's reference
simulator, ../shared/reference/standards-and-methods.md §Analog in-memory computing accuracy).

Encodings (emulator.crossbar): "pulse_width" (default) drives rows at ±v_read for a time ∝ |x|, so the
cells are linear at the read bias and I = v @ T(G) with the exact transfer matrix T of the crossbar
(built once per tile and conductance state, then a matmul); "amplitude" drives rows at x·v_read and
every cell conducts at its own voltage through the non-linear read I–V (Newton per vector; slow, for
studies of small batches). All matmuls run with one BLAS thread in fixed blocks: the same numbers on
any number of cores.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from emulator.crossbar import amplitude_mvm, crossbar_currents, transfer_matrices
from emulator.presets import Preset, get_preset
from labctl.evaluation.mapping import LayerMapping, Scheme, decode_currents
from labctl.evaluation.quantize import quantize
from labctl.evaluation.relaxation import RelaxationLaw


ENCODINGS: tuple[str, ...] = ("pulse_width", "amplitude")


@dataclass(frozen=True)
class MVMConfig:
    """Non-idealities of one analog MVM. SI units; outputs in normalized units (weights, inputs max 1).

    Defaults follow REF §Matrix-vector multiplication (6-bit inputs, 8-bit outputs, 0.35 ohm per wire
    segment, read at 0.2 V) and the field's default output bound of 12 normalized units.
    """

    v_read: float = 0.2  # V on a row for a full-scale input
    dac_bits: int | None = 6  # None: no input quantization
    input_bound: float = 1.0  # inputs clip at ± this
    adc_bits: int | None = 8  # None: no output quantization
    output_bound: float = 12.0  # outputs clip at ± this (normalized units)
    output_noise: float = 0.0  # std of additive output noise, normalized units
    read_noise: bool = True  # a low-frequency read-noise draw per device per evaluation time
    read_noise_sigma: float | None = None  # S; None: the preset's read-noise law sigma(G)
    r_wire: float = 0.35  # ohm per wire segment; 0: no IR drop
    drift_compensation: bool = True
    reference_inputs: int = 64  # vectors in the drift-compensation reference set
    preset: str = "cmo-hfox"
    encoding: str = "pulse_width"  # or "amplitude" (see the module docstring)

    def __post_init__(self) -> None:
        if self.encoding not in ENCODINGS:
            raise ValueError(f"encoding: must be one of {ENCODINGS}, got {self.encoding!r}")
        if not (self.v_read > 0 and np.isfinite(self.v_read)):
            raise ValueError(f"v_read: must be a positive voltage, got {self.v_read!r} V")
        if self.r_wire < 0 or not np.isfinite(self.r_wire):
            raise ValueError(f"r_wire: must be >= 0 ohm, got {self.r_wire!r}")
        if self.output_noise < 0:
            raise ValueError(f"output_noise: must be >= 0, got {self.output_noise!r}")
        if self.reference_inputs < 1:
            raise ValueError(f"reference_inputs: must be >= 1, got {self.reference_inputs!r}")

    @classmethod
    def ideal(cls) -> MVMConfig:
        """No quantization, noise or IR drop: the analog MVM equals G^T v exactly."""
        return cls(dac_bits=None, adc_bits=None, input_bound=1e9, output_bound=1e12, read_noise=False,
                   r_wire=0.0, drift_compensation=False)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def read_noise_sigma(g: NDArray[np.float64], cfg: MVMConfig) -> NDArray[np.float64]:
    """Std of one read of devices at conductance g (S): the preset's law sigma_abs * G / (G + G_knee)."""
    if cfg.read_noise_sigma is not None:
        return np.full_like(g, cfg.read_noise_sigma)
    p: Preset = get_preset(cfg.preset)
    return p.read_sigma_abs * g / (g + p.read_g_knee)


def tile_transfer(g: NDArray[np.float64], cfg: MVMConfig) -> NDArray[np.float64]:
    """Transfer matrix (S) of one tile's conductances g (S), or of a stack (n, rows, cols): I = v @ T.
    Without wire resistance T = g."""
    if cfg.r_wire == 0:
        return np.asarray(g, dtype=np.float64)
    return transfer_matrices(g, cfg.r_wire, cfg.r_wire)


def tile_mvm(g: NDArray[np.float64], x: ArrayLike, scheme: Scheme, mapping: LayerMapping, cfg: MVMConfig,
             rng: np.random.Generator | None = None, alpha: float = 1.0,
             transfer: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
    """Normalized outputs (batch, tile outputs) of one tile with conductances g (S) for inputs x (batch, rows).
    `transfer`: the tile's transfer matrix (tile_transfer(g, cfg)) when the caller has it already."""
    xq = quantize(np.atleast_2d(x), cfg.dac_bits, cfg.input_bound)
    v_fs = cfg.v_read / cfg.input_bound
    v = xq * v_fs
    if cfg.encoding == "amplitude":
        currents = amplitude_mvm(g, v, cfg.r_wire, cfg.r_wire, v_meas=cfg.v_read)
    else:
        currents = crossbar_currents(v, tile_transfer(g, cfg) if transfer is None else transfer)
    y = decode_currents(currents, scheme, mapping.g_range, v_fs)
    if cfg.output_noise > 0:
        if rng is None:
            raise ValueError("rng: output noise needs a seeded generator")
        y = y + cfg.output_noise * rng.standard_normal(y.shape)
    y = quantize(y, cfg.adc_bits, cfg.output_bound)
    return y * alpha


@dataclass
class ProgrammedLayer:
    """A mapped layer with the conductances measured on each tile after programming (S)."""

    mapping: LayerMapping
    measured: list[NDArray[np.float64]]
    iterations: list[NDArray[np.int32]] | None = None
    converged: list[NDArray[np.bool_]] | None = None

    def __post_init__(self) -> None:
        if len(self.measured) != len(self.mapping.tiles):
            raise ValueError(f"measured: expected {len(self.mapping.tiles)} tile matrices, got {len(self.measured)}")
        for tile, g in zip(self.mapping.tiles, self.measured):
            if np.shape(g) != tile.shape:
                raise ValueError(f"measured: tile at inputs {tile.in_start} expects shape {tile.shape}, "
                                 f"got {np.shape(g)}")

    def programming_error(self) -> NDArray[np.float64]:
        """Measured minus target conductance of every programmed cell, S (flattened)."""
        return np.concatenate([(g - t.targets).ravel() for g, t in zip(self.measured, self.mapping.tiles)])


class DriftingLayer:
    """A programmed layer evaluated at chosen times after programming.

    For each time, every tile's conductances are drawn once (relaxation from `law`, then a low-frequency
    read-noise draw), the drift-compensation factor is computed, and `forward` uses them.
    """

    def __init__(self, layer: ProgrammedLayer, times: ArrayLike, law: RelaxationLaw, cfg: MVMConfig,
                 rng: np.random.Generator) -> None:
        self.layer = layer
        self.cfg = cfg
        self.times = np.atleast_1d(np.asarray(times, dtype=np.float64))
        self.rng = rng
        mapping = layer.mapping
        n_tiles = len(mapping.tiles)
        self.g_t: list[NDArray[np.float64]] = []  # per tile: (n_times, rows, pcols)
        self.alpha: list[NDArray[np.float64]] = []  # per tile: (n_times,)
        # per tile: transfer matrices at programming (index 0) and at every time (pulse-width encoding)
        self.transfer: list[NDArray[np.float64] | None] = [None] * n_tiles
        x_ref: list[NDArray[np.float64] | None] = [None] * n_tiles
        # The draws keep the order of one tile after another (relaxation, read noise, reference inputs,
        # then the references' output noise), so the transfer matrices of all tiles can be built in one
        # batch only when the references draw nothing (no output noise, the default).
        # Without wire resistance T = G: nothing to build, tile_mvm uses g_t directly.
        build = cfg.encoding == "pulse_width" and cfg.r_wire > 0
        batched = build and cfg.output_noise == 0
        for k, (tile, g0) in enumerate(zip(mapping.tiles, layer.measured)):
            gt = law.sample(g0, self.times, rng)
            if cfg.read_noise:
                gt = np.maximum(gt + read_noise_sigma(gt, cfg) * rng.standard_normal(gt.shape), 0.0)
            self.g_t.append(gt)
            if cfg.drift_compensation:
                x_ref[k] = rng.uniform(-cfg.input_bound, cfg.input_bound, (cfg.reference_inputs, tile.shape[0]))
            if not batched:
                if build:
                    self.transfer[k] = tile_transfer(np.concatenate([g0[None], gt]), cfg)
                self.alpha.append(self._compensation(k, x_ref[k]))
        if batched:
            by_shape: dict[tuple[int, ...], list[int]] = {}
            for k, g0 in enumerate(layer.measured):
                by_shape.setdefault(np.shape(g0), []).append(k)
            for ks in by_shape.values():
                stack = np.concatenate([np.concatenate([layer.measured[k][None], self.g_t[k]]) for k in ks])
                t_all = tile_transfer(stack, cfg).reshape(len(ks), self.times.size + 1, *stack.shape[1:])
                for n, k in enumerate(ks):
                    self.transfer[k] = t_all[n]
            self.alpha = [self._compensation(k, x_ref[k]) for k in range(n_tiles)]

    def _compensation(self, k: int, x_ref: NDArray[np.float64] | None) -> NDArray[np.float64]:
        """Drift-compensation factors of tile k at every time (ones without compensation)."""
        alpha = np.ones(self.times.size)
        if x_ref is None:
            return alpha
        mapping, cfg, tr = self.layer.mapping, self.cfg, self.transfer[k]
        g0, gt = self.layer.measured[k], self.g_t[k]
        ref0 = np.mean(np.abs(tile_mvm(g0, x_ref, mapping.scheme, mapping, cfg, self.rng,
                                       transfer=None if tr is None else tr[0])))
        for t in range(self.times.size):
            ref_t = np.mean(np.abs(tile_mvm(gt[t], x_ref, mapping.scheme, mapping, cfg, self.rng,
                                            transfer=None if tr is None else tr[t + 1])))
            alpha[t] = ref0 / ref_t if ref_t > 0 else 1.0
        return alpha

    def forward(self, x_norm: ArrayLike, time_index: int) -> NDArray[np.float64]:
        """Normalized layer outputs (batch, outputs) for normalized inputs (batch, inputs) at times[time_index]."""
        x = np.atleast_2d(np.asarray(x_norm, dtype=np.float64))
        mapping = self.layer.mapping
        y = np.zeros((x.shape[0], mapping.n_outputs))
        for tile, gt, alpha, tr in zip(mapping.tiles, self.g_t, self.alpha, self.transfer):
            y[:, tile.out_start:tile.out_stop] += tile_mvm(
                gt[time_index], x[:, tile.in_start:tile.in_stop], mapping.scheme, mapping, self.cfg, self.rng,
                float(alpha[time_index]), transfer=None if tr is None else tr[time_index + 1])
        return y


def mvm_rmse(y_analog: ArrayLike, y_fp: ArrayLike) -> tuple[float, float]:
    """(RMSE, RMSE / RMS of the floating-point outputs) of analog against floating-point outputs."""
    ya = np.asarray(y_analog, dtype=np.float64)
    yf = np.asarray(y_fp, dtype=np.float64)
    rmse = float(np.sqrt(np.mean((ya - yf) ** 2)))
    rms = float(np.sqrt(np.mean(yf ** 2)))
    return rmse, rmse / rms if rms > 0 else float("nan")
