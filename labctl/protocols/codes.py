"""Numeric constants of the chip command protocol (docs/protocol.md is the normative text).

Every value here appears on the wire; changing one breaks firmware compatibility, so each is
fixed by the specification and only ever extended.
"""
from __future__ import annotations

import enum

#: Two sync bytes that start every frame (docs/protocol.md, "Frame").
SYNC = b"\xa5\x5a"
#: Version of the frame layout carried in byte 2 of every header.
FRAME_VERSION = 1
#: Version of the command set negotiated by HELLO.
PROTOCOL_VERSION = 1
#: Fixed header: sync(2) version(1) flags(1) request_id(4) command(1) status(1) reserved(2)
#: payload_length(4) header_crc(4).
HEADER_SIZE = 20
#: Trailing CRC-32 over header and payload.
TRAILER_SIZE = 4
#: Frame overhead in bytes.
OVERHEAD = HEADER_SIZE + TRAILER_SIZE
#: Largest payload any conforming receiver must be prepared to reject without buffering, bytes.
#: 16 MiB holds a 1024 x 1024 float64 READ_ARRAY reply with room to spare.
MAX_PAYLOAD = 16 * 1024 * 1024
#: Largest error-message payload, bytes (UTF-8).
MAX_ERROR_MESSAGE = 1024
#: Receivers discard an incomplete frame after this many seconds without a byte (serial links).
INTER_BYTE_TIMEOUT = 0.5
#: Request id 0 is reserved for unsolicited error frames sent by the controller.
UNSOLICITED_ID = 0


class Flag(enum.IntFlag):
    """Header flags (byte 3)."""

    NONE = 0
    #: Set in every frame sent by the controller.
    RESPONSE = 0x01
    #: Set by the controller when the reply was served from its reply cache (a retransmission).
    CACHED = 0x02


class Command(enum.IntEnum):
    """Command codes (header byte 8). 0x01-0x7F standard, 0xE0-0xEF emulator only."""

    HELLO = 0x01
    INFO = 0x02
    STATUS = 0x03
    ABORT = 0x04
    RESET = 0x05
    BYE = 0x06
    VERIFY_LOOP_MAX = 0x07
    FORM = 0x10
    PULSE = 0x11
    READ = 0x12
    READ_ARRAY = 0x13
    SWEEP = 0x14
    SET_TARGET_G = 0x20
    VERIFY = 0x21
    EMU_ADVANCE = 0xE0
    EMU_INJECT_FAULT = 0xE1
    EMU_RESEED = 0xE2
    EMU_PULSE_COUNTS = 0xE3


#: Commands the controller answers at once, even while a long command is running.
IMMEDIATE_COMMANDS = frozenset({Command.STATUS, Command.ABORT, Command.RESET, Command.BYE})


class Status(enum.IntEnum):
    """Status codes (header byte 9 of a response). Non-zero statuses carry a UTF-8 message."""

    OK = 0x00
    #: Another link (TCP connection or serial line) owns the controller.
    BUSY = 0x01
    #: A long command is running; only STATUS, ABORT, RESET and BYE are accepted.
    IN_PROGRESS = 0x02
    #: The command was stopped by ABORT or RESET before it finished.
    ABORTED = 0x03
    #: A command other than HELLO arrived before a session was opened with HELLO.
    NO_SESSION = 0x04
    #: Generic framing error (undecodable bytes); sent with request id 0.
    BAD_FRAME = 0x10
    #: Header intact, trailing CRC-32 wrong.
    BAD_CRC = 0x11
    #: payload_length above the receiver's maximum.
    TOO_LARGE = 0x12
    #: Frame version or protocol version not supported.
    UNSUPPORTED_VERSION = 0x13
    #: Command code unknown to this controller.
    UNKNOWN_COMMAND = 0x20
    #: Payload too short, too long or internally inconsistent.
    BAD_PAYLOAD = 0x21
    #: A parameter is outside the controller's limits (reported by INFO).
    OUT_OF_RANGE = 0x22
    #: A cell address lies outside the array, or a cell list names a cell twice.
    BAD_CELLS = 0x23
    #: Internal controller failure; the command may have been partly executed.
    INTERNAL = 0x30


def name_of(kind: type[enum.IntEnum], code: int) -> str:
    """The name of `code` in `kind` (Status, Command, ...), or its hex value if it is not defined."""
    try:
        return kind(code).name
    except ValueError:
        return f"0x{code:02x}"


#: Statuses after which the host may retransmit the same frame unchanged.
RETRANSMIT_STATUSES = frozenset({Status.BAD_FRAME, Status.BAD_CRC})


# Small enumerations of payload fields (docs/protocol.md, sections 6 to 9), value by value.
#: First byte of a cell selector.
CellsKind = enum.IntEnum("CellsKind", {"ALL": 0, "SINGLE": 1, "LIST": 2, "REGION": 3})
#: SET_TARGET_G program-and-verify scheme.
Scheme = enum.IntEnum("Scheme", {"IDENTICAL": 0, "INCREMENTAL": 1})
#: FORM stimulus.
FormMode = enum.IntEnum("FormMode", {"SWEEP": 0, "PULSE_RAMP": 1})
#: EMU_INJECT_FAULT kinds (match emulator.Array.inject_fault names).
Fault = enum.IntEnum("Fault", {"NONE": 0, "STUCK_HRS": 1, "STUCK_LRS": 2, "NO_FORM": 3})
#: Element type of READ_ARRAY data.
DType = enum.IntEnum("DType", {"FLOAT64": 0, "FLOAT32": 1})
#: STATUS: what the controller is doing.
RunState = enum.IntEnum("RunState", {"IDLE": 0, "RUNNING": 1, "ABORTING": 2})
