"""Code-offset fuzzy extractor (Dodis et al., "Fuzzy extractors", 2004) with an HKDF key.

Generation, from the stable response bits w (first n of them, n = the code's response bits):
    s   = random secret (secret_bits)            -- from the operating system's CSPRNG
    c   = Enc(s)                                 -- BCH x repetition (labctl.puf.codes)
    h   = w XOR c                                -- the public code offset
    key = HKDF-SHA-256(s, salt, info)            -- RFC 5869, `cryptography`'s implementation
    kcv = HMAC-SHA-256(key, "labctl puf key check v1" || check_salt)
Reproduction, from a fresh read w':  s' = Dec(w' XOR h); key' = HKDF(s'); key' is returned only if
its check value equals kcv, so a failure is an error and never a wrong key.

The secret is drawn from `secrets.token_bytes` and not from a seeded generator on purpose: a key
from a reproducible stream would not be secret. Tests may pass their own `random_bytes`.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from numpy.typing import NDArray

from labctl.puf import codes

KEY_INFO = b"labctl puf key v1"
CHECK_LABEL = b"labctl puf key check v1"
SALT_BYTES = 32

RandomBytes = Callable[[int], bytes]


class KeyReconstructionError(Exception):
    """The fresh response differs from enrollment by more than the code corrects."""


def derive_key(secret: bytes, salt: bytes, length: int = 32, info: bytes = KEY_INFO) -> bytes:
    """HKDF-SHA-256 (RFC 5869) of the secret."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(secret)


def key_check_value(key: bytes, check_salt: bytes) -> bytes:
    """HMAC-SHA-256 of a fixed label and the check salt under the key."""
    return hmac.new(key, CHECK_LABEL + check_salt, hashlib.sha256).digest()


@dataclass(frozen=True)
class Generated:
    """Output of generation. `key` stays in memory (repr hides it)."""

    offset: NDArray[np.uint8]
    kdf_salt: bytes
    check_salt: bytes
    check_value: bytes
    key: bytes = field(repr=False)


def generate(response: NDArray[np.uint8], params: codes.CodeParams, key_length: int = 32,
             random_bytes: RandomBytes = secrets.token_bytes) -> Generated:
    """Code offset and key from the first params.response_bits stable response bits."""
    w = np.asarray(response, dtype=np.uint8)
    if w.size != params.response_bits:
        raise ValueError(f"response: expected {params.response_bits} bits, got {w.size}")
    secret = random_bytes(params.secret_bits // 8)
    kdf_salt = random_bytes(SALT_BYTES)
    check_salt = random_bytes(SALT_BYTES)
    offset = w ^ codes.encode(params, secret)
    key = derive_key(secret, kdf_salt, key_length)
    return Generated(offset=offset, kdf_salt=kdf_salt, check_salt=check_salt,
                     check_value=key_check_value(key, check_salt), key=key)


@dataclass(frozen=True)
class Reproduced:
    """A reconstructed key and the number of response bit errors the code corrected."""

    corrected_bits: int
    key: bytes = field(repr=False)


def reproduce(response: NDArray[np.uint8], offset: NDArray[np.uint8], params: codes.CodeParams,
              kdf_salt: bytes, check_salt: bytes, check_value: bytes, key_length: int = 32) -> Reproduced:
    """The key from a fresh response, or KeyReconstructionError (never a wrong key)."""
    w = np.asarray(response, dtype=np.uint8)
    if w.size != offset.size:
        raise ValueError(f"response: expected {offset.size} bits, got {w.size}")
    decoded = codes.decode(params, w ^ offset)
    if decoded is None:
        raise KeyReconstructionError("key reconstruction failed: a BCH block has more errors than the "
                                     f"code corrects (t = {params.bch_t} per block after repetition "
                                     f"{params.repetition})")
    secret, corrected = decoded
    key = derive_key(secret, kdf_salt, key_length)
    if not hmac.compare_digest(key_check_value(key, check_salt), check_value):
        raise KeyReconstructionError("key reconstruction failed: the decoded key does not match the key "
                                     "check value (the response is too far from enrollment)")
    return Reproduced(corrected_bits=corrected, key=key)
