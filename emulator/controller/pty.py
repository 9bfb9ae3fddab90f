"""The chip controller on a pseudo-terminal: hosts open the slave path like a serial port.

The master side is read with the event loop. When no process has the slave open, reading the
master fails with EIO (Linux): that is how the controller notices a serial host hanging up
(it then releases ownership and forgets the session) and, by polling, when a new one opens it.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import os
import termios
import tty

from emulator.controller.core import ChipController, Link

log = logging.getLogger(__name__)

#: While nobody has the slave open, look for a new opener this often, s.
HANGUP_POLL = 0.05
READ_CHUNK = 1 << 16


class PtyServer:
    """Serves `controller` on a new pseudo-terminal; `path` is the slave device to open."""

    def __init__(self, controller: ChipController) -> None:
        self.controller = controller
        self._master, slave = os.openpty()
        self.path = os.ttyname(slave)
        # Raw mode: no echo, no CR/LF translation, no flow-control or signal characters; the
        # frames are binary. Settings stay with the pty after we close our slave descriptor.
        tty.setraw(slave, termios.TCSANOW)
        os.close(slave)
        os.set_blocking(self._master, False)
        self._loop = asyncio.get_running_loop()
        self._pending_out = bytearray()
        self._writing = False
        self._closed = False
        self._connected = False
        self._poll: asyncio.TimerHandle | None = None
        self._paused = False  # not reading: the host has not read its replies (back-pressure)
        self._resuming = False
        self.link: Link = controller.new_link(f"pty {self.path}", self._send,
                                              lambda: len(self._pending_out))
        self._watch()

    # ------------------------------------------------------------------ reading

    def _watch(self) -> None:
        if not self._closed:
            self._loop.add_reader(self._master, self._on_readable)

    def _on_readable(self) -> None:
        try:
            data = os.read(self._master, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.EIO:
                log.warning("pty %s: read failed: %s", self.path, exc)
            self._hung_up()
            return
        if not data:
            self._hung_up()
            return
        self._connected = True
        self.link.feed(data)
        self._pause_if_backlogged()

    def _pause_if_backlogged(self) -> None:
        """Stop reading while requests wait for the host to read its replies."""
        if self.link.backlog and not self._paused:
            self._paused = True
            self._loop.remove_reader(self._master)

    def _hung_up(self) -> None:
        """No process has the slave open: drop the session, poll for the next opener."""
        self._loop.remove_reader(self._master)
        if self._connected:
            log.debug("pty %s: host hung up", self.path)
            self._connected = False
            self.link.lost()
        self._pending_out.clear()
        self._paused = False
        if not self._closed:
            self._poll = self._loop.call_later(HANGUP_POLL, self._probe)

    def _probe(self) -> None:
        self._poll = None
        try:
            data = os.read(self._master, READ_CHUNK)
        except BlockingIOError:
            self._watch()  # slave open, nothing sent yet
            return
        except OSError:
            self._poll = self._loop.call_later(HANGUP_POLL, self._probe)
            return
        self._watch()
        if data:
            self._connected = True
            self.link.feed(data)
            self._pause_if_backlogged()

    # ------------------------------------------------------------------ writing

    def _send(self, data: bytes) -> None:
        self._pending_out += data
        self._flush()

    def _flush(self) -> None:
        while self._pending_out and not self._closed:
            try:
                written = os.write(self._master, self._pending_out[:READ_CHUNK])
            except BlockingIOError:
                break  # the pty buffer is full until the host reads
            except OSError as exc:
                log.debug("pty %s: write failed: %s", self.path, exc)
                self._pending_out.clear()
                break
            del self._pending_out[:written]
        if self._pending_out and not self._writing and not self._closed:
            self._writing = True
            self._loop.add_writer(self._master, self._on_writable)
        elif not self._pending_out and self._writing:
            self._writing = False
            self._loop.remove_writer(self._master)
        if self._paused and not self._resuming and not self.link.blocked and not self._closed:
            self._resuming = True  # resume() sends, which re-enters _flush
            try:
                self.link.resume()
            finally:
                self._resuming = False
            if not self.link.backlog and self._paused:
                self._paused = False
                self._watch()

    def _on_writable(self) -> None:
        self._flush()

    # ------------------------------------------------------------------ closing

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._poll is not None:
            self._poll.cancel()
        self._loop.remove_reader(self._master)
        self._loop.remove_writer(self._master)
        self.link.lost()
        os.close(self._master)
