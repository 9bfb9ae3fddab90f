"""Emulated chip controller: serves the chip protocol (labctl.protocols codec) for an
emulator.Array over TCP and a pseudo-terminal."""
from emulator.controller.core import ChipController, Link
from emulator.controller.pty import PtyServer
from emulator.controller.tcp import serve_tcp, tcp_address

__all__ = ["ChipController", "Link", "PtyServer", "serve_tcp", "tcp_address"]
