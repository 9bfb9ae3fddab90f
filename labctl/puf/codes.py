"""The error-correcting code of the fuzzy extractor: BCH (bchlib, the Linux kernel's BCH library)
concatenated with an inner repetition code, and the choice of its parameters.

Layout: the secret is cut into `blocks` pieces of `data_bytes` bytes; each piece is BCH-encoded
(binary BCH over GF(2^m) correcting t errors, shortened to 8*data_bytes + m*t bits: the data bits
then the m*t parity bits) and every codeword bit is repeated `repetition` times. Decoding takes the
majority of each repetition group, then BCH-decodes each block.

Failure probability at a bit error rate p (errors independent, as a binomial model assumes):
  inner:  p_rep   = P(Binomial(r, p) > (r - 1)/2)
  block:  p_block = P(Binomial(n_bch, p_rep) > t)
  key:    p_key   = 1 - (1 - p_block)^blocks
The design picks, among all (r, m, t, data_bytes) that yield at least `secret_bits` of secret and
p_key <= target, the one that uses the fewest response bits.
"""
from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from typing import Any

import bchlib
import numpy as np
from numpy.typing import NDArray
from scipy.stats import binom

REPETITIONS = (1, 3, 5, 7, 9, 11, 13, 15)
BCH_FIELD_ORDERS = (5, 6, 7, 8, 9, 10)  # n = 31 .. 1023


class DesignError(ValueError):
    """No code meets the target with the response bits available."""


@functools.lru_cache(maxsize=64)
def bch(m: int, t: int) -> bchlib.BCH:
    """The BCH codec over GF(2^m) correcting t errors (kernel default primitive polynomial).
    Cached; not for concurrent use from several threads (it keeps the last error locations)."""
    return bchlib.BCH(t, m=m)


@dataclass(frozen=True)
class CodeParams:
    """Concatenated code parameters (all stored in the helper data)."""

    repetition: int
    bch_m: int
    bch_t: int
    data_bytes: int
    blocks: int

    def __post_init__(self) -> None:
        if self.repetition < 1 or self.repetition % 2 == 0:
            raise ValueError(f"repetition: {self.repetition} must be an odd number >= 1")
        if not 5 <= self.bch_m <= 15:
            raise ValueError(f"bch_m: {self.bch_m} is outside the allowed range 5..15")
        if self.bch_t < 1:
            raise ValueError(f"bch_t: {self.bch_t} must be >= 1")
        if self.blocks < 1:
            raise ValueError(f"blocks: {self.blocks} must be >= 1")
        max_bytes = max_data_bytes(self.bch_m, self.bch_t)
        if not 1 <= self.data_bytes <= max_bytes:
            raise ValueError(f"data_bytes: {self.data_bytes} is outside the allowed range 1..{max_bytes} "
                             f"for BCH m={self.bch_m}, t={self.bch_t}")

    @property
    def parity_bits(self) -> int:
        return self.bch_m * self.bch_t

    @property
    def block_bits(self) -> int:
        """Bits of one (shortened) BCH codeword."""
        return 8 * self.data_bytes + self.parity_bits

    @property
    def secret_bits(self) -> int:
        return 8 * self.data_bytes * self.blocks

    @property
    def response_bits(self) -> int:
        """Response bits the code consumes."""
        return self.block_bits * self.repetition * self.blocks

    def failure(self, ber: float) -> dict[str, float]:
        """Inner, block and key failure probabilities at bit error rate `ber`."""
        r = self.repetition
        p_rep = float(binom.sf((r - 1) // 2, r, ber))
        p_block = float(binom.sf(self.bch_t, self.block_bits, p_rep))
        p_key = -math.expm1(self.blocks * math.log1p(-p_block)) if p_block < 1 else 1.0
        return {"p_inner": p_rep, "p_block": p_block, "p_key": p_key}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def max_data_bytes(m: int, t: int) -> int:
    """Largest whole number of data bytes in a BCH codeword of length 2^m - 1 with m*t parity bits."""
    return ((1 << m) - 1 - m * t) // 8


def design_code(ber: float, available_bits: int, secret_bits: int = 128,
                target_failure: float = 1e-6) -> tuple[CodeParams, dict[str, Any]]:
    """Choose the code for a design bit error rate.

    ber: design bit error rate of the stable response bits (0 < ber < 0.5).
    available_bits: stable response bits after masking.
    secret_bits: least number of secret bits (a multiple of 8).
    target_failure: largest acceptable key-failure probability.
    Returns the chosen parameters and a report of the search (candidates considered, the best one
    per repetition factor, the failure computation of the choice). DesignError when none fits.
    """
    if not (0.0 < ber < 0.5):
        raise ValueError(f"ber: {ber!r} is outside the allowed range (0, 0.5)")
    if not (0.0 < target_failure < 1.0):
        raise ValueError(f"target_failure: {target_failure!r} is outside the allowed range (0, 1)")
    if secret_bits < 8 or secret_bits % 8:
        raise ValueError(f"secret_bits: {secret_bits!r} must be a positive multiple of 8")
    secret_bytes = secret_bits // 8
    best: CodeParams | None = None
    best_fail = 1.0
    per_repetition: dict[int, dict[str, Any]] = {}
    considered = 0
    for r in REPETITIONS:
        p_rep = float(binom.sf((r - 1) // 2, r, ber))
        for m in BCH_FIELD_ORDERS:
            # every t of this field at once; the smallest feasible t is the cheapest for (r, m)
            t = np.arange(1, ((1 << m) - 9) // m + 1)
            full = ((1 << m) - 1 - m * t) // 8
            t, full = t[full >= 1], full[full >= 1]
            blocks = -(-secret_bytes // full)
            data_bytes = -(-secret_bytes // blocks)  # shorten evenly: fewer response bits
            n_bits = 8 * data_bytes + m * t
            fits = n_bits * r * blocks <= available_bits
            if not fits.any():
                continue
            t, blocks, data_bytes, n_bits = t[fits], blocks[fits], data_bytes[fits], n_bits[fits]
            considered += int(t.size)
            p_block = binom.sf(t, n_bits, p_rep)
            with np.errstate(divide="ignore"):
                p_key = -np.expm1(blocks * np.log1p(-np.minimum(p_block, 1.0)))
            ok = np.flatnonzero(p_key <= target_failure)
            if ok.size == 0:
                continue
            i = int(ok[0])
            cand = CodeParams(r, m, int(t[i]), int(data_bytes[i]), int(blocks[i]))
            fail = float(p_key[i])
            key = (cand.response_bits, fail)
            if best is None or key < (best.response_bits, best_fail):
                best, best_fail = cand, fail
            prev = per_repetition.get(r)
            if prev is None or key < (prev["response_bits"], prev["p_key"]):
                per_repetition[r] = {**cand.to_dict(), "response_bits": cand.response_bits, "p_key": fail}
    report: dict[str, Any] = {
        "design_ber": ber, "available_bits": available_bits, "secret_bits": secret_bits,
        "target_failure": target_failure, "candidates_considered": considered,
        "best_per_repetition": [per_repetition[r] for r in sorted(per_repetition)],
        "model": "p_inner = P(Bin(r, ber) > (r-1)/2); p_block = P(Bin(n_bch, p_inner) > t); "
                 "p_key = 1 - (1 - p_block)^blocks",
    }
    if best is None:
        raise DesignError(f"no BCH x repetition code gives {secret_bits} secret bits with key-failure "
                          f"probability <= {target_failure:g} at bit error rate {ber:g} from "
                          f"{available_bits} stable response bits; use a larger array, fewer secret "
                          "bits, a larger target or a lower design bit error rate")
    report["chosen"] = {**best.to_dict(), "block_bits": best.block_bits, "response_bits": best.response_bits,
                        "secret_bits": best.secret_bits, **best.failure(ber)}
    return best, report


def encode(params: CodeParams, secret: bytes) -> NDArray[np.uint8]:
    """Codeword bits (length params.response_bits) of a secret of params.secret_bits // 8 bytes."""
    if len(secret) != params.secret_bits // 8:
        raise ValueError(f"secret: expected {params.secret_bits // 8} bytes, got {len(secret)}")
    codec = bch(params.bch_m, params.bch_t)
    parts = []
    for b in range(params.blocks):
        data = secret[b * params.data_bytes:(b + 1) * params.data_bytes]
        ecc = codec.encode(data)
        parts.append(np.unpackbits(np.frombuffer(data, dtype=np.uint8)))
        parts.append(np.unpackbits(np.frombuffer(bytes(ecc), dtype=np.uint8))[:params.parity_bits])
    return np.repeat(np.concatenate(parts), params.repetition)


def decode(params: CodeParams, noisy: NDArray[np.uint8]) -> tuple[bytes, bool]:
    """(secret, every block decoded) from a noisy codeword.

    Every block is decoded even after one fails (that block's data bits are taken uncorrected), and
    no count of corrected errors is returned: the number of errors in a reading is what a helper-data
    manipulation attack measures (docs/puf.md), so it never leaves this function."""
    if noisy.size != params.response_bits:
        raise ValueError(f"noisy: expected {params.response_bits} bits, got {noisy.size}")
    r = params.repetition
    votes = noisy.reshape(-1, r).sum(axis=1, dtype=np.int64)
    majority = (votes * 2 > r).astype(np.uint8)
    codec = bch(params.bch_m, params.bch_t)
    ecc_bytes = codec.ecc_bytes
    secret = bytearray()
    ok = True
    n = params.block_bits
    k = 8 * params.data_bytes
    for b in range(params.blocks):
        word = majority[b * n:(b + 1) * n]
        data = bytearray(np.packbits(word[:k]).tobytes())
        parity = np.zeros(8 * ecc_bytes, dtype=np.uint8)
        parity[:params.parity_bits] = word[k:]
        ecc = bytearray(np.packbits(parity).tobytes())
        nerr = codec.decode(bytes(data), bytes(ecc))
        if nerr > 0:
            codec.correct(data, ecc)
        ok &= nerr >= 0
        secret += data
    return bytes(secret), ok
