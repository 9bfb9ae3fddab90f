"""Robust code-offset fuzzy extractor (Dodis et al., "Fuzzy extractors", 2004; robustness as in Boyen
et al., "Secure remote authentication using biometric data", 2005): the helper record is authenticated
under a key derived from the secret it protects.

Generation, from the stable response bits w (first n of them, n = the code's response bits):
    s       = random secret (secret_bits)            -- from the operating system's CSPRNG
    h       = w XOR Enc(s)                           -- the public code offset (BCH x repetition)
    R       = the helper record without its tag      -- every field: version, array, cells, method,
                                                        mask, code parameters, offset, salt, design
    key|mk  = HKDF-SHA-256(s, salt, INFO || SHA-256(R), key_length + 32)   -- RFC 5869, `cryptography`
    tag     = HMAC-SHA-256(mk, AUTH_LABEL || R)
Reproduction, from a fresh read w' and a record R' with tag t':  s' = Dec(w' XOR h'); key'|mk' from s'
and R'; the key is returned only if HMAC(mk', R') equals t' (`hmac.compare_digest`).

Any change to R (two pairs of the cell list swapped, an offset bit flipped, other code parameters)
changes the HKDF info and the MACed bytes, so the tag fails whatever the response is: the attacker
gets the same error, with the same message, after the same operations (every block is decoded, the
KDF and the MAC always run; there is no early exit and no corrected-error count), and never a key.
The one failure also covers a response too far from enrollment: the two cannot be told apart, and
telling them apart (or counting corrections) is exactly the oracle that recovered keys (docs/puf.md).

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

KEY_INFO = b"labctl puf key v2"
AUTH_LABEL = b"labctl puf helper auth v2"
SALT_BYTES = 32
MAC_KEY_BYTES = 32

#: The one failure of reconstruction, whatever went wrong.
AUTHENTICATION_FAILED = ("key reconstruction failed: helper data failed authentication (the helper data was "
                         "altered or belongs to another array, or the response is too far from enrollment)")

RandomBytes = Callable[[int], bytes]
#: The record's authenticated bytes given the offset and the KDF salt generation chose.
RecordBytes = Callable[[NDArray[np.uint8], bytes], bytes]


class KeyReconstructionError(Exception):
    """No key: the helper record failed authentication (altered, another array's, or the response is
    too far from enrollment). Always the same message (AUTHENTICATION_FAILED)."""


def _keys(secret: bytes, salt: bytes, record: bytes, key_length: int) -> tuple[bytes, bytes]:
    """(key, MAC key): HKDF-SHA-256 of the secret, the record's digest in the info."""
    info = KEY_INFO + hashlib.sha256(record).digest()
    okm = HKDF(algorithm=hashes.SHA256(), length=key_length + MAC_KEY_BYTES, salt=salt, info=info).derive(secret)
    return okm[:key_length], okm[key_length:]


def _tag(mac_key: bytes, record: bytes) -> bytes:
    return hmac.new(mac_key, AUTH_LABEL + record, hashlib.sha256).digest()


@dataclass(frozen=True)
class Generated:
    """Output of generation. `key` stays in memory (repr hides it)."""

    offset: NDArray[np.uint8]
    kdf_salt: bytes
    tag: bytes
    key: bytes = field(repr=False)


def generate(response: NDArray[np.uint8], params: codes.CodeParams, record: RecordBytes, key_length: int = 32,
             random_bytes: RandomBytes = secrets.token_bytes) -> Generated:
    """Code offset, salt, tag and key from the first params.response_bits stable response bits.

    record(offset, kdf_salt) returns the authenticated bytes of the helper record that will hold them."""
    w = np.asarray(response, dtype=np.uint8)
    if w.size != params.response_bits:
        raise ValueError(f"response: expected {params.response_bits} bits, got {w.size}")
    secret = random_bytes(params.secret_bits // 8)
    kdf_salt = random_bytes(SALT_BYTES)
    offset = w ^ codes.encode(params, secret)
    bound = record(offset, kdf_salt)
    key, mac_key = _keys(secret, kdf_salt, bound, key_length)
    return Generated(offset=offset, kdf_salt=kdf_salt, tag=_tag(mac_key, bound), key=key)


@dataclass(frozen=True)
class Reproduced:
    """A reconstructed and authenticated key (nothing else: no count of corrected errors)."""

    key: bytes = field(repr=False)


def reproduce(response: NDArray[np.uint8], offset: NDArray[np.uint8], params: codes.CodeParams,
              kdf_salt: bytes, record: bytes, tag: bytes, key_length: int = 32) -> Reproduced:
    """The key from a fresh response and an authenticated record, or KeyReconstructionError with the
    one message AUTHENTICATION_FAILED (never a wrong key, never why)."""
    w = np.asarray(response, dtype=np.uint8)
    if w.size != offset.size:
        raise ValueError(f"response: expected {offset.size} bits, got {w.size}")
    secret, decoded = codes.decode(params, w ^ offset)
    key, mac_key = _keys(secret, kdf_salt, record, key_length)
    # Both checks always run and are combined without short-circuit: the failure path does the same work.
    ok = hmac.compare_digest(_tag(mac_key, record), tag) & decoded
    if not ok:
        raise KeyReconstructionError(AUTHENTICATION_FAILED)
    return Reproduced(key=key)
