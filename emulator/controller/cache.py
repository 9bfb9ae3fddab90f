"""Reply cache of one session: a retransmitted request is answered with the reply sent the first
time, so a lost reply never causes a command (and its pulses) to run twice."""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from labctl.protocols.codec import Frame, crc32
from labctl.protocols.codes import OVERHEAD


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What makes a retransmission identical to its original: same command and payload."""

    command: int
    length: int
    crc: int

    @classmethod
    def of(cls, command: int, payload: bytes) -> Fingerprint:
        return cls(command, len(payload), crc32(payload))


class ReplyCache:
    """The most recent replies by request id, bounded in entries and bytes (oldest evicted first;
    the newest reply is always kept, however large).

    Args:
        max_entries: replies kept (docs/protocol.md promises at least 16).
        max_bytes: total encoded reply bytes kept (frame overhead included).
    """

    def __init__(self, max_entries: int = 64, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[int, tuple[Fingerprint, Frame]] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, request_id: int, fingerprint: Fingerprint) -> Frame | None:
        """The cached reply to a byte-identical request with this id, else None.

        A request that reuses an id with different content is a new request: its stale entry is
        dropped so that it is executed.
        """
        entry = self._entries.get(request_id)
        if entry is None:
            return None
        if entry[0] != fingerprint:
            self._drop(request_id)
            return None
        return entry[1]

    def store(self, request_id: int, fingerprint: Fingerprint, reply: Frame) -> None:
        self._drop(request_id)
        self._entries[request_id] = (fingerprint, reply)
        self._bytes += OVERHEAD + len(reply.payload)
        while len(self._entries) > 1 and (len(self._entries) > self.max_entries
                                          or self._bytes > self.max_bytes):
            oldest = next(iter(self._entries))
            self._drop(oldest)

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def _drop(self, request_id: int) -> None:
        entry = self._entries.pop(request_id, None)
        if entry is not None:
            self._bytes -= OVERHEAD + len(entry[1].payload)
