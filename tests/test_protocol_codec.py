"""Property tests of the sans-I/O frame codec: no network, just bytes in and events out."""
from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labctl.protocols.codec import Frame, FrameDecoder, FramingError, FramingErrorKind, crc32
from labctl.protocols.codes import HEADER_SIZE, MAX_PAYLOAD, OVERHEAD, SYNC

frames = st.builds(
    Frame,
    command=st.integers(0, 255),
    request_id=st.integers(0, 2**32 - 1),
    payload=st.binary(max_size=300),
    status=st.integers(0, 255),
    flags=st.integers(0, 255),
)

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def decode_all(data: bytes, decoder: FrameDecoder | None = None) -> tuple[list[Frame], list[FramingError], FrameDecoder]:
    """Feed `data`, then let inter-byte timeouts expire until nothing is buffered."""
    decoder = decoder or FrameDecoder()
    events = decoder.feed(data)
    while decoder.buffered:
        events += decoder.discard_partial()
    return ([e for e in events if isinstance(e, Frame)],
            [e for e in events if isinstance(e, FramingError)], decoder)


def test_crc32_check_value() -> None:
    # CRC-32/ISO-HDLC check value from the CRC catalogue: docs/protocol.md quotes it.
    assert crc32(b"123456789") == 0xCBF43926


def test_frame_layout_matches_spec() -> None:
    wire = Frame(0x12, 0x01020304, b"\xaa\xbb", status=0x22, flags=0x01).encode()
    assert wire[:2] == SYNC
    assert wire[2] == 1 and wire[3] == 0x01
    assert wire[4:8] == bytes([4, 3, 2, 1])  # little-endian request id
    assert wire[8] == 0x12 and wire[9] == 0x22 and wire[10:12] == b"\0\0"
    assert struct.unpack_from("<I", wire, 12)[0] == 2
    assert struct.unpack_from("<I", wire, 16)[0] == crc32(wire[:16])
    assert wire[20:22] == b"\xaa\xbb"
    assert struct.unpack_from("<I", wire, 22)[0] == crc32(wire[:22])
    assert len(wire) == OVERHEAD + 2


def test_examples_in_the_specification() -> None:
    # docs/protocol.md, section 3: the INFO and PULSE examples, byte for byte.
    from labctl.protocols.cells import Cells
    from labctl.protocols.messages import PulseRequest

    assert Frame(0x02, 1).encode().hex(" ") == (
        "a5 5a 01 00 01 00 00 00 02 00 00 00 00 00 00 00 8a 33 39 70 1c df 44 21")
    pulse = Frame(0x11, 7, PulseRequest(Cells.single(2, 3), 1.35, 1.4, 2.5e-6, 1).pack()).encode()
    assert pulse[20:25] == bytes.fromhex("0102000300") and pulse[-4:] == bytes.fromhex("aee83b7e")


@FAST
@given(frames)
def test_round_trip(frame: Frame) -> None:
    got, errors, decoder = decode_all(frame.encode())
    assert got == [frame] and errors == [] and decoder.buffered == 0


@FAST
@given(st.lists(frames, min_size=1, max_size=5), st.data())
def test_any_chunking_gives_the_same_frames(batch: list[Frame], data: st.DataObject) -> None:
    wire = b"".join(f.encode() for f in batch)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=12)))
    decoder = FrameDecoder()
    events = []
    for a, b in zip([0, *cuts], [*cuts, len(wire)]):
        events += decoder.feed(wire[a:b])
    assert events == batch


@FAST
@given(st.binary(max_size=2000))
def test_random_bytes_never_raise_and_every_byte_is_accounted_for(data: bytes) -> None:
    decoder = FrameDecoder()
    events = decoder.feed(data)
    assert all(isinstance(e, (Frame, FramingError)) for e in events)
    used = sum(OVERHEAD + len(e.payload) if isinstance(e, Frame) else e.skipped for e in events)
    assert used + decoder.buffered == len(data)


@FAST
@given(st.binary(max_size=500), frames, st.binary(max_size=500), frames)
def test_resynchronizes_after_garbage(junk1: bytes, a: Frame, junk2: bytes, b: Frame) -> None:
    # Garbage may itself hold sync bytes; the header CRC keeps it from posing as a frame.
    got, _, _ = decode_all(junk1 + a.encode() + junk2 + b.encode())
    assert got[-2:] == [a, b]


@FAST
@given(frames, frames, st.data())
def test_truncated_frame_then_good_frame(a: Frame, b: Frame, data: st.DataObject) -> None:
    wire_a = a.encode()
    k = data.draw(st.integers(1, len(wire_a) - 1))
    got, errors, _ = decode_all(wire_a[:k] + b.encode())
    assert got[-1] == b
    assert a not in got[:-1] or a == b
    assert errors  # the truncation was reported


def test_good_frame_starting_inside_a_truncated_header_is_found() -> None:
    # Found by hypothesis: `a` cut one byte short of its header CRC, and `b` begins with exactly the
    # missing byte, so the header CRC matches; the frame CRC then fails and `b` must still be found.
    a = Frame(command=54, request_id=339, payload=bytes(5), status=25)
    b = Frame(command=0, request_id=0, payload=b"")
    wire_a, wire_b = a.encode(), b.encode()
    assert wire_a[HEADER_SIZE - 1] == wire_b[0]
    got, errors, _ = decode_all(wire_a[:HEADER_SIZE - 1] + wire_b)
    assert got == [b]
    assert errors[0].kind is FramingErrorKind.BAD_CRC


@FAST
@given(frames, frames, st.data())
def test_bit_flip_is_detected_and_next_frame_survives(a: Frame, b: Frame, data: st.DataObject) -> None:
    wire = bytearray(a.encode())
    bit = data.draw(st.integers(0, 8 * len(wire) - 1))
    wire[bit // 8] ^= 1 << (bit % 8)
    got, errors, _ = decode_all(bytes(wire) + b.encode())
    # CRC-32 detects every single-bit error: only b comes out, and the damage is reported.
    assert got == [b]
    assert errors


@FAST
@given(st.integers(0, 2**32 - 1), st.integers(1, 2**32 - 1 - MAX_PAYLOAD), frames)
def test_oversized_length_is_refused_without_waiting(rid: int, excess: int, b: Frame) -> None:
    length = MAX_PAYLOAD + excess
    head = struct.pack("<2sBBIBBHI", SYNC, 1, 0, rid, 0x11, 0, 0, length)
    head += struct.pack("<I", crc32(head))
    decoder = FrameDecoder()
    events = decoder.feed(head + b.encode())
    too_large = [e for e in events if isinstance(e, FramingError)]
    assert too_large[0].kind == FramingErrorKind.TOO_LARGE and too_large[0].request_id == rid
    assert events[-1] == b and decoder.buffered == 0


def test_smaller_receiver_limit_is_enforced() -> None:
    decoder = FrameDecoder(max_payload=16)
    events = decoder.feed(Frame(1, 2, b"x" * 17).encode() + Frame(1, 3, b"y" * 16).encode())
    assert isinstance(events[0], FramingError) and events[0].kind == FramingErrorKind.TOO_LARGE
    assert events[-1] == Frame(1, 3, b"y" * 16)


def test_unknown_frame_version_is_reported_with_its_request_id() -> None:
    head = struct.pack("<2sBBIBBHI", SYNC, 9, 0, 77, 0x02, 0, 0, 0)
    head += struct.pack("<I", crc32(head))
    wire = head + struct.pack("<I", crc32(head))
    events = FrameDecoder().feed(wire + Frame(2, 78).encode())
    assert isinstance(events[0], FramingError)
    assert events[0].kind == FramingErrorKind.UNSUPPORTED_VERSION and events[0].request_id == 77
    assert events[1] == Frame(2, 78)


def test_sync_byte_split_across_feeds() -> None:
    wire = Frame(3, 4, b"abc").encode()
    decoder = FrameDecoder()
    assert decoder.feed(b"\x00\x01" + wire[:1]) == [FramingError(FramingErrorKind.GARBAGE, 2, "skipped 2 B that start no frame")]
    assert decoder.feed(wire[1:]) == [Frame(3, 4, b"abc")]


def test_header_size_constant() -> None:
    assert HEADER_SIZE == 20 and OVERHEAD == 24
