"""The API's listening sockets: bound at the start, served by Tornado from the first connection.

The port is bound at once (it is the jobs' portal and the batch's address), but Tornado, some
45 ms of imports, loads only when somebody connects: a sweep nobody asks about while it runs
starts that much sooner. A connection made meanwhile waits in the kernel's backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import Callable
from typing import Any

_BACKLOG = 128


def listen(host: str, port: int) -> list[socket.socket]:
    """Non-blocking listening sockets on every address host names, all on one port (port 0: a
    free one). OSError as from bind()."""
    sockets: list[socket.socket] = []
    seen = set()
    try:
        for family, kind, proto, _, address in socket.getaddrinfo(
            host or None, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
        ):
            if address in seen:
                continue
            seen.add(address)
            if port == 0 and sockets:  # the port the first socket got, for every family
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sock = socket.socket(family, kind, proto)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # the IPv4 one is its own
                sock.setblocking(False)
                sock.bind(address)
            except OSError as e:
                sock.close()
                if e.errno == errno.EADDRNOTAVAIL and family == socket.AF_INET6 and host == "localhost":
                    continue  # ::1 where IPv6 is off: 127.0.0.1 is enough
                raise
            sock.listen(_BACKLOG)
            sockets.append(sock)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class Listener:
    """Serves make_app() on the sockets once the first connection comes."""

    def __init__(self, sockets: list[socket.socket], make_app: Callable[[], Any], timeout: float) -> None:
        self.sockets = sockets
        self.make_app = make_app
        self.timeout = timeout  # for a request's head or body, and for an idle connection
        self.server: Any = None  # a tornado HTTPServer, once serving
        loop = asyncio.get_running_loop()
        for sock in sockets:
            loop.add_reader(sock.fileno(), self._serve)

    def _serve(self) -> None:
        from hyperctl.daemon.httpserver import limited_server

        self._unwatch()
        self.server = limited_server(self.make_app(), self.timeout)
        self.server.add_sockets(self.sockets)  # it accepts what waits in the backlog at once

    def _unwatch(self) -> None:
        loop = asyncio.get_running_loop()
        for sock in self.sockets:
            loop.remove_reader(sock.fileno())

    async def close_connections(self, timeout: float) -> None:
        """Close the connections left open (kept alive between requests), within timeout seconds."""
        if self.server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.server.close_all_connections(), timeout)

    def stop(self) -> None:
        """Take no new connections (the requests under way are still answered)."""
        if self.server is not None:
            self.server.stop()
            return
        self._unwatch()
        for sock in self.sockets:
            sock.close()


class InFlight:
    """Requests being answered, so that shutting down waits for them (a kill answers late)."""

    def __init__(self) -> None:
        self.count = 0
        self._idle: asyncio.Event | None = None

    def enter(self) -> None:
        self.count += 1

    def leave(self) -> None:
        self.count -= 1
        if self.count == 0 and self._idle is not None:
            self._idle.set()

    async def drained(self, timeout: float) -> None:
        if self.count == 0:
            return
        self._idle = asyncio.Event()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
