"""The helper-data file: everything public that reconstruction needs, versioned JSON.

Format "labctl-puf-helper", version 1 (docs/puf.md describes every field). Bit strings are packed
most significant bit first (numpy.packbits) and base64-encoded with their bit count. The file holds
no response, secret or key: the mask and the code offset are public by design of the code-offset
fuzzy extractor, and the key check value is an HMAC of the key under its own salt.
"""
from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

FORMAT = "labctl-puf-helper"
VERSION = 1


class HelperDataError(ValueError):
    """A helper-data file that cannot be used (bad JSON, unknown version, a bad field)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PackedBits(_Strict):
    """A bit string: `bits` long, packed MSB first, base64."""

    bits: int = Field(ge=0)
    data: str

    @classmethod
    def from_array(cls, a: NDArray[Any]) -> PackedBits:
        a = np.asarray(a, dtype=np.uint8).ravel()
        return cls(bits=int(a.size), data=base64.b64encode(np.packbits(a).tobytes()).decode("ascii"))

    def to_array(self) -> NDArray[np.uint8]:
        raw = np.frombuffer(base64.b64decode(self.data, validate=True), dtype=np.uint8)
        if raw.size != (self.bits + 7) // 8:
            raise ValueError(f"data: {raw.size} bytes do not hold {self.bits} bits")
        return np.unpackbits(raw)[:self.bits]


class ArrayInfo(_Strict):
    rows: int = Field(ge=1)
    cols: int = Field(ge=1)
    backend: str
    identity: dict[str, str] = Field(default_factory=dict)


class ResponseInfo(_Strict):
    """How the response is read (SI units)."""

    method: Literal["pairs", "median", "forming"]
    cells: Literal["all"] | list[int]  # flat indices row * cols + col, in response order
    v_read: float = Field(gt=0, json_schema_extra={"unit": "V"})
    vg: float = Field(ge=0, json_schema_extra={"unit": "V"})
    g_formed: float = Field(gt=0, json_schema_extra={"unit": "S"})
    positions: int = Field(ge=1)
    enrollment_reads: int = Field(ge=1)
    min_margin: float = Field(ge=0)


class CodeInfo(_Strict):
    construction: Literal["code-offset"] = "code-offset"
    outer: Literal["BCH"] = "BCH"
    library: str
    bch_m: int = Field(ge=5, le=15)
    bch_t: int = Field(ge=1)
    data_bytes: int = Field(ge=1)
    blocks: int = Field(ge=1)
    inner: Literal["repetition"] = "repetition"
    repetition: int = Field(ge=1)


class KdfInfo(_Strict):
    algorithm: Literal["HKDF-SHA-256"] = "HKDF-SHA-256"
    salt: str = Field(pattern=r"^[0-9a-f]{64}$")
    info: str
    length: int = Field(ge=16, le=64)


class CheckInfo(_Strict):
    algorithm: Literal["HMAC-SHA-256"] = "HMAC-SHA-256"
    salt: str = Field(pattern=r"^[0-9a-f]{64}$")
    value: str = Field(pattern=r"^[0-9a-f]{64}$")


class DesignInfo(_Strict):
    """Public design figures of the enrollment (no response values)."""

    design_ber: float
    measured_raw_ber: float
    target_failure: float
    predicted_failure: float
    stable_positions: int
    used_positions: int


class HelperData(_Strict):
    format: Literal["labctl-puf-helper"] = FORMAT
    version: int
    created: str
    array: ArrayInfo
    response: ResponseInfo
    mask: PackedBits
    code: CodeInfo
    offset: PackedBits
    kdf: KdfInfo
    check: CheckInfo
    design: DesignInfo

    @field_validator("version")
    @classmethod
    def _known_version(cls, v: int) -> int:
        if v != VERSION:
            raise ValueError(f"helper-data version {v} is not supported (this labctl reads version {VERSION})")
        return v

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "helper data") -> HelperData:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise HelperDataError(f"{source}: not JSON ({exc})") from None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise HelperDataError(f"{source}: format: expected {FORMAT!r}, got "
                                  f"{raw.get('format') if isinstance(raw, dict) else type(raw).__name__!r}")
        try:
            helper = cls.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise HelperDataError(f"{source}: {where}: {first['msg']}") from None
        try:
            mask = helper.mask.to_array()
            helper.offset.to_array()
        except ValueError as exc:
            raise HelperDataError(f"{source}: mask/offset: {exc}") from None
        if mask.size != helper.response.positions:
            raise HelperDataError(f"{source}: mask.bits: {mask.size} != response.positions "
                                  f"{helper.response.positions}")
        return helper

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> HelperData:
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as exc:
            raise HelperDataError(f"{p}: cannot read helper data ({exc.strerror})") from None
        return cls.from_json(text, source=str(p))
