"""Sans-I/O codec of the chip protocol: frames to bytes, bytes to frames.

No sockets, no clock, no asyncio: the host client and the emulated controller both wrap the same
`FrameDecoder` and `Frame.encode` in a few lines of transport code. The decoder never raises; every
framing problem is returned as a `FramingError` value and the decoder carries on with the next byte,
so one corrupted frame costs at most that frame.
"""
from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass

from labctl.protocols.codes import (
    FRAME_VERSION,
    HEADER_SIZE,
    MAX_PAYLOAD,
    SYNC,
    TRAILER_SIZE,
    Flag,
)

# sync(2s) version(B) flags(B) request_id(I) command(B) status(B) reserved(H) payload_length(I)
_HEADER = struct.Struct("<2sBBIBBHI")
_CRC = struct.Struct("<I")
_HEADER_BODY = _HEADER.size  # 16 bytes covered by the header CRC
assert _HEADER_BODY + _CRC.size == HEADER_SIZE


def crc32(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    """CRC-32/ISO-HDLC (IEEE 802.3, zlib): reflected 0x04C11DB7, init and xorout 0xFFFFFFFF."""
    return zlib.crc32(data, value) & 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class Frame:
    """One protocol frame.

    Attributes:
        command: command code (`codes.Command`), echoed in the reply.
        request_id: 32-bit id chosen by the host; a reply carries the id of its request.
        payload: command-specific bytes (docs/protocol.md), at most `codes.MAX_PAYLOAD`.
        status: `codes.Status` in replies, 0 in requests.
        flags: `codes.Flag` bits.
        version: frame layout version; senders always use `codes.FRAME_VERSION`.
    """

    command: int
    request_id: int
    payload: bytes = b""
    status: int = 0
    flags: int = 0
    version: int = FRAME_VERSION

    @property
    def is_response(self) -> bool:
        """True for frames sent by the controller."""
        return bool(self.flags & Flag.RESPONSE)

    def encode(self) -> bytes:
        """Serialize to wire bytes: header, header CRC, payload, frame CRC (all little-endian).

        Raises:
            ValueError: a header field does not fit its width, or the payload is too long.
        """
        if not 0 <= self.request_id <= 0xFFFFFFFF:
            raise ValueError(f"request_id = {self.request_id} outside [0, 2**32 - 1]")
        for name, value in (("command", self.command), ("status", self.status),
                            ("flags", self.flags), ("version", self.version)):
            if not 0 <= value <= 0xFF:
                raise ValueError(f"{name} = {value} outside [0, 255]")
        if len(self.payload) > MAX_PAYLOAD:
            raise ValueError(f"payload length = {len(self.payload)} B above MAX_PAYLOAD = {MAX_PAYLOAD} B")
        head = _HEADER.pack(SYNC, self.version, self.flags, self.request_id, self.command,
                            self.status, 0, len(self.payload))
        head += _CRC.pack(crc32(head))
        body_crc = crc32(self.payload, crc32(head))
        return b"".join((head, self.payload, _CRC.pack(body_crc)))


class FramingErrorKind(enum.Enum):
    """What went wrong while delimiting frames."""

    #: Bytes before a sync pattern that could not start a frame.
    GARBAGE = "garbage"
    #: Sync found but the header CRC does not match: not a frame start, skipped one byte.
    HEADER_CRC = "header_crc"
    #: Header intact, payload_length above the receiver's maximum.
    TOO_LARGE = "too_large"
    #: Header intact, trailing CRC wrong (corruption or truncation).
    BAD_CRC = "bad_crc"
    #: Header and CRC intact, frame version unsupported.
    UNSUPPORTED_VERSION = "unsupported_version"
    #: An incomplete frame was dropped on request (inter-byte timeout, link reset).
    TRUNCATED = "truncated"


@dataclass(frozen=True, slots=True)
class FramingError:
    """A framing problem, reported as a value.

    Attributes:
        kind: what happened.
        skipped: bytes discarded because of it.
        request_id, command: from the header when the header CRC was valid, else None.
        detail: one line for logs.
    """

    kind: FramingErrorKind
    skipped: int
    detail: str
    request_id: int | None = None
    command: int | None = None


Event = Frame | FramingError


class FrameDecoder:
    """Incremental frame decoder: `feed(bytes)` returns the frames and framing errors completed.

    Resynchronization: the decoder scans for the sync bytes, then validates the 16-byte header with
    its CRC before trusting payload_length, so a corrupt length never makes it wait for bytes that
    will not come. When the trailing CRC fails it drops only the header and scans the rest, which
    recovers a good frame that started inside a truncated one.

    Args:
        max_payload: largest payload accepted, bytes (at most `codes.MAX_PAYLOAD`).
    """

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        if not 0 <= max_payload <= MAX_PAYLOAD:
            raise ValueError(f"max_payload = {max_payload} outside [0, {MAX_PAYLOAD}]")
        self.max_payload = max_payload
        self._buf = bytearray()
        # Frame length once a valid header is at the start of the buffer, else 0.
        self._need = 0

    @property
    def buffered(self) -> int:
        """Bytes held that do not yet form a complete frame."""
        return len(self._buf)

    def discard_partial(self) -> list[Event]:
        """Give up on the incomplete frame at the front (call after an inter-byte timeout).

        If a valid header is waiting for its payload, only that header is dropped and the bytes
        after it are scanned again, so a good frame that followed a truncated one is recovered.
        Otherwise the buffered bytes (a partial header) are dropped.
        """
        buf = self._buf
        if not buf:
            return []
        if self._need:
            self._need = 0
            del buf[:HEADER_SIZE]
            events: list[Event] = [FramingError(
                FramingErrorKind.TRUNCATED, HEADER_SIZE,
                "dropped the header of a frame whose payload did not arrive")]
            events += self.feed(b"")
            return events
        dropped = len(buf)
        buf.clear()
        return [FramingError(FramingErrorKind.TRUNCATED, dropped,
                             f"discarded {dropped} B of an incomplete frame header")]

    def feed(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Append received bytes; return every complete frame and framing error, in stream order."""
        buf = self._buf
        buf += data
        events: list[Event] = []
        pos = 0  # consumed prefix; deleted once at the end to keep feeding linear in bytes
        garbage = 0
        n = len(buf)
        while True:
            if self._need:
                if n - pos < self._need:
                    break
                pos = self._take_frame(pos, events)
                continue
            start = buf.find(SYNC, pos)
            if start < 0:
                # Keep a trailing first sync byte: the second may arrive in the next feed.
                keep = 1 if n > pos and buf[n - 1] == SYNC[0] else 0
                garbage += n - keep - pos
                pos = n - keep
                break
            garbage += start - pos
            pos = start
            if n - pos < HEADER_SIZE:
                break
            if garbage:
                events.append(_garbage(garbage))
                garbage = 0
            pos = self._check_header(pos, events)
        if garbage:
            events.append(_garbage(garbage))
        if pos:
            del buf[:pos]
        return events

    def _check_header(self, pos: int, events: list[Event]) -> int:
        """Validate the header at pos; set self._need or skip. Returns the new position."""
        buf = self._buf
        (header_crc,) = _CRC.unpack_from(buf, pos + _HEADER_BODY)
        with memoryview(buf) as view:
            header_ok = crc32(view[pos:pos + _HEADER_BODY]) == header_crc
        if not header_ok:
            events.append(FramingError(FramingErrorKind.HEADER_CRC, 1,
                                       "sync bytes followed by a header with a bad CRC"))
            return pos + 1
        _, _, _, request_id, command, _, _, length = _HEADER.unpack_from(buf, pos)
        if length > self.max_payload:
            events.append(FramingError(
                FramingErrorKind.TOO_LARGE, HEADER_SIZE,
                f"payload_length = {length} B above the maximum {self.max_payload} B",
                request_id, command))
            return pos + HEADER_SIZE
        self._need = HEADER_SIZE + length + TRAILER_SIZE
        return pos

    def _take_frame(self, pos: int, events: list[Event]) -> int:
        """Check the trailing CRC of the complete frame at pos and emit it. Returns new position."""
        buf = self._buf
        size = self._need
        self._need = 0
        view = memoryview(buf)
        try:
            body_end = pos + size - TRAILER_SIZE
            (frame_crc,) = _CRC.unpack_from(buf, body_end)
            _, version, flags, request_id, command, status, _, length = _HEADER.unpack_from(buf, pos)
            if crc32(view[pos:body_end]) != frame_crc:
                events.append(FramingError(
                    FramingErrorKind.BAD_CRC, 1,
                    f"frame CRC mismatch (request_id {request_id}, payload_length {length} B)",
                    request_id, command))
                # Only the first sync byte is dropped: a good frame may start anywhere inside a
                # truncated one, even inside its header when the next frame's first bytes happen
                # to complete the header CRC.
                return pos + 1
            if version != FRAME_VERSION:
                events.append(FramingError(
                    FramingErrorKind.UNSUPPORTED_VERSION, size,
                    f"frame version = {version}, supported: {FRAME_VERSION}", request_id, command))
                return pos + size
            payload = bytes(view[pos + HEADER_SIZE:body_end])
        finally:
            view.release()
        events.append(Frame(command, request_id, payload, status, flags, version))
        return pos + size


def _garbage(count: int) -> FramingError:
    return FramingError(FramingErrorKind.GARBAGE, count, f"skipped {count} B that start no frame")
