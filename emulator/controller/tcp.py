"""The chip controller on TCP: one Link per connection (asyncio streams)."""
from __future__ import annotations

import asyncio
import logging
import socket

from emulator.controller.core import ChipController

log = logging.getLogger(__name__)

#: Bytes read per call; a 2 MiB request arrives in a few reads.
READ_CHUNK = 1 << 18


async def serve_tcp(controller: ChipController, host: str = "127.0.0.1", port: int = 0) -> asyncio.Server:
    """Listen on host:port (0 picks a free port; see `server.sockets[0].getsockname()`).

    Connections that send garbage, stop mid-frame or vanish only ever affect themselves.
    """

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        name = f"tcp {peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "tcp"
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def send(data: bytes) -> None:
            if not writer.is_closing():
                writer.write(data)

        link = controller.new_link(name, send)
        log.debug("%s connected", name)
        try:
            while True:
                data = await reader.read(READ_CHUNK)
                if not data:
                    break
                link.feed(data)
                # Back-pressure: a host that does not read its replies must not grow our buffers.
                await writer.drain()
        except (ConnectionError, OSError) as exc:
            log.debug("%s: %s", name, exc)
        finally:
            link.lost()
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass
            log.debug("%s disconnected", name)

    return await asyncio.start_server(handle, host, port, limit=READ_CHUNK)


def tcp_address(server: asyncio.Server) -> str:
    """"tcp://HOST:PORT" of the first listening socket."""
    host, port = server.sockets[0].getsockname()[:2]
    return f"tcp://{host}:{port}"
