"""The helper-data file: everything public that reconstruction needs, versioned JSON.

Format "labctl-puf-helper", version 2 (docs/puf.md describes every field). Bit strings are packed
most significant bit first (numpy.packbits) and base64-encoded with their bit count. The file holds
no response, secret or key: the mask and the code offset are public by design of the code-offset
fuzzy extractor. Every field is authenticated: `auth.tag` is an HMAC over the canonical encoding of
all other fields (`authenticated_bytes`) under a key derived from the reconstructed secret
(labctl.puf.extractor), so a changed record fails reconstruction and yields nothing.

Version 1 (no authentication: its helper data could be altered to learn the response) is refused
with a message that says to re-enroll.

Files are written atomically and never overwritten without `force` (`write_new_file`).
"""
from __future__ import annotations

import base64
import errno
import json
import os
import secrets
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

FORMAT = "labctl-puf-helper"
VERSION = 2
#: Largest helper file read, bytes (explicit cell lists of a few million cells; whole arrays are "all").
MAX_FILE_BYTES = 64 * 1024 * 1024
#: Versions that exist but are refused, with the reason and what to do.
RETIRED_VERSIONS = {
    1: "helper-data version 1 is not authenticated (altered helper data can reveal the key, see "
       "docs/puf.md); this labctl reads version 2 only: re-enroll the array (`labctl puf enroll ... --force`, "
       "which gives a new key) to get authenticated helper data",
}


class HelperDataError(ValueError):
    """A helper-data file that cannot be used (bad JSON, unknown version, a bad field)."""


class OutputFileError(ValueError):
    """An output file that may not be written (it exists, or is a symlink)."""


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
    """HKDF of the key and the MAC key; its info is `info` followed by SHA-256 of the record."""

    algorithm: Literal["HKDF-SHA-256"] = "HKDF-SHA-256"
    salt: str = Field(pattern=r"^[0-9a-f]{64}$")
    info: str
    length: int = Field(ge=16, le=64)


class AuthInfo(_Strict):
    """HMAC-SHA-256 over `authenticated_bytes` of the record (every field but this one)."""

    algorithm: Literal["HMAC-SHA-256"] = "HMAC-SHA-256"
    tag: str = Field(pattern=r"^[0-9a-f]{64}$")


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
    design: DesignInfo
    auth: AuthInfo

    @field_validator("version")
    @classmethod
    def _known_version(cls, v: int) -> int:
        if v in RETIRED_VERSIONS:
            raise ValueError(RETIRED_VERSIONS[v])
        if v != VERSION:
            raise ValueError(f"helper-data version {v} is not supported (this labctl reads version {VERSION})")
        return v

    def authenticated_bytes(self) -> bytes:
        """Canonical encoding of every field except `auth`: what the tag and the KDF info bind."""
        return authenticated_bytes(self.model_dump(mode="json", exclude={"auth"}))

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "helper data") -> HelperData:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise HelperDataError(f"{source}: not JSON ({exc})") from None
        if isinstance(raw, dict) and raw.get("format") == FORMAT and raw.get("version") in RETIRED_VERSIONS:
            raise HelperDataError(f"{source}: {RETIRED_VERSIONS[raw['version']]}")
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
            offset = helper.offset.to_array()
        except ValueError as exc:
            raise HelperDataError(f"{source}: mask/offset: {exc}") from None
        from labctl.puf import codes  # here, not at import: bchlib and scipy are not needed to write a file

        c = helper.code
        try:
            params = codes.CodeParams(repetition=c.repetition, bch_m=c.bch_m, bch_t=c.bch_t,
                                      data_bytes=c.data_bytes, blocks=c.blocks)
        except ValueError as exc:
            raise HelperDataError(f"{source}: code.{exc}") from None
        if offset.size != params.response_bits:
            raise HelperDataError(f"{source}: offset.bits: {offset.size}, the code takes {params.response_bits}")
        # Consistency of the public fields only (no response involved): a record that passes these
        # checks but was changed fails authentication at reconstruction, uniformly.
        r, a = helper.response, helper.array
        if mask.size != r.positions:
            raise HelperDataError(f"{source}: mask.bits: {mask.size} != response.positions {r.positions}")
        if int(mask.sum()) < offset.size:
            raise HelperDataError(f"{source}: mask: {int(mask.sum())} stable positions, offset.bits needs "
                                  f"{offset.size}")
        n_cells = a.rows * a.cols if r.cells == "all" else len(r.cells)
        if r.cells != "all":
            flat = np.asarray(r.cells, dtype=np.int64)
            if flat.size and (flat.min() < 0 or flat.max() >= a.rows * a.cols):
                raise HelperDataError(f"{source}: response.cells: a cell lies outside the {a.rows}x{a.cols} array")
            if np.unique(flat).size != flat.size:
                raise HelperDataError(f"{source}: response.cells: a cell is listed twice")
        expected = n_cells if r.method == "median" else n_cells // 2
        if expected != r.positions:
            raise HelperDataError(f"{source}: response.positions: {r.positions}, but {n_cells} cells give "
                                  f"{expected} with method {r.method!r}")
        return helper

    def save(self, path: str | Path, force: bool = False) -> None:
        """Write the file atomically (mode 0644); an existing file only with `force`."""
        write_new_file(path, self.to_json().encode(), mode=0o644, force=force)

    @classmethod
    def load(cls, path: str | Path) -> HelperData:
        p = Path(path)
        try:
            with p.open("rb") as f:
                raw = f.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise HelperDataError(f"{p}: cannot read helper data ({exc.strerror})") from None
        if len(raw) > MAX_FILE_BYTES:
            raise HelperDataError(f"{p}: larger than {MAX_FILE_BYTES} bytes; not helper data")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise HelperDataError(f"{p}: not helper data (not UTF-8 text at byte {exc.start})") from None
        return cls.from_json(text, source=str(p))


def authenticated_bytes(record: dict[str, Any]) -> bytes:
    """Canonical JSON (sorted keys, no spaces, ASCII) of a helper record without its `auth` field."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def check_writable(path: str | Path, force: bool = False) -> Path:
    """Refuse a path that is a symlink, or that exists unless `force`: OutputFileError naming it.
    Lets a command refuse before it measures anything; `write_new_file` checks again as it writes."""
    p = Path(path)
    if p.is_symlink():
        raise OutputFileError(f"{p}: is a symbolic link; refusing to write through it")
    if p.exists():
        if not force:
            raise OutputFileError(f"{p}: exists; not overwritten without --force")
        if not p.is_file():
            raise OutputFileError(f"{p}: exists and is not a regular file")
    return p


def write_new_file(path: str | Path, data: bytes, mode: int = 0o644, force: bool = False) -> None:
    """Write `data` to `path` atomically with exactly `mode` (0o600 for secrets).

    The data goes to a new temporary file in the same directory (O_CREAT|O_EXCL|O_NOFOLLOW, created
    with `mode`), is fsynced, and is then linked to `path` (fails if `path` appeared meanwhile) or,
    with `force`, renamed over it: the file is never half-written and never written through a
    symlink, and an existing file's mode (say 0644) does not carry over to a secret."""
    p = check_writable(path, force)
    tmp = p.parent / f".{p.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        try:
            os.fchmod(fd, mode)  # the umask may have removed bits; secrets stay exactly owner-only
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if force:
            os.replace(tmp, p)  # replaces the directory entry: never follows a symlink at p
        else:
            try:
                os.link(tmp, p)
            except FileExistsError:
                raise OutputFileError(f"{p}: exists; not overwritten without --force") from None
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV):
                    raise
                check_writable(p)  # no hard links on this file system: the checked rename instead
                os.replace(tmp, p)
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
    try:
        dfd = os.open(p.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)  # the new directory entry survives a crash too
    except OSError:
        pass
    finally:
        os.close(dfd)
