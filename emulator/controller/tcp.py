"""The chip controller on TCP: one Link per connection (asyncio streams)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

from emulator.controller.core import ChipController

log = logging.getLogger(__name__)

#: Bytes read per call; a 2 MiB request arrives in a few reads.
READ_CHUNK = 1 << 18
#: Hosts connected at once; a further one is closed at once (docs/protocol.md, "Bounds").
MAX_CONNECTIONS = 8


class TcpServer:
    """Listening socket plus its connections; `close()` ends them all and waits for them."""

    def __init__(self, controller: ChipController) -> None:
        self.controller = controller
        self.server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        assert self.server is not None
        return tuple(self.server.sockets)

    @property
    def address(self) -> str:
        """"tcp://HOST:PORT" of the first listening socket."""
        host, port = self.sockets[0].getsockname()[:2]
        return f"tcp://{host}:{port}"

    async def start(self, host: str, port: int) -> TcpServer:
        self.server = await asyncio.start_server(self._handle, host, port, limit=READ_CHUNK)
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._connections) >= MAX_CONNECTIONS:
            log.warning("refusing a connection beyond %d", MAX_CONNECTIONS)
            writer.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        peer = writer.get_extra_info("peername")
        name = f"tcp {peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "tcp"
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def send(data: bytes) -> None:
            if not writer.is_closing():
                writer.write(data)

        link = self.controller.new_link(name, send, writer.transport.get_write_buffer_size)
        log.debug("%s connected", name)
        try:
            while True:
                data = await reader.read(READ_CHUNK)
                if not data:
                    break
                link.feed(data)
                # Back-pressure: a host that does not read its replies is not read from either,
                # and its requests already received wait until their replies can go out.
                await writer.drain()
                while link.backlog:
                    while link.blocked:
                        await writer.drain()
                        if link.blocked:
                            await asyncio.sleep(0.01)  # drain() returns at the transport's mark
                    link.resume()
                    await writer.drain()
        except (ConnectionError, OSError) as exc:
            log.debug("%s: %s", name, exc)
        finally:
            self._connections.pop(task, None)
            link.lost()
            writer.close()
            log.debug("%s disconnected", name)

    async def close(self) -> None:
        """Stop listening, drop every connection and wait until their handlers have finished."""
        if self.server is not None:
            self.server.close()
        for writer in list(self._connections.values()):
            writer.transport.abort()  # the handler then sees EOF and ends on its own
        tasks = list(self._connections)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=1.0)
            for task in late:  # a handler stuck in drain(); cancelling is the last resort
                task.cancel()
            if late:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.gather(*late, return_exceptions=True)
        if self.server is not None:
            await self.server.wait_closed()


async def serve_tcp(controller: ChipController, host: str = "127.0.0.1", port: int = 0) -> TcpServer:
    """Listen on host:port (0 picks a free port; see `.address`).

    Connections that send garbage, stop mid-frame or vanish only ever affect themselves.
    """
    return await TcpServer(controller).start(host, port)


def tcp_address(server: TcpServer) -> str:
    """"tcp://HOST:PORT" of the server's first listening socket."""
    return server.address
