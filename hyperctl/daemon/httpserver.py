"""Tornado's HTTPServer with the limits a daemon on a shared machine needs: a request head over
MAX_HEAD gets a 431 (Tornado only drops the connection), and a client that is slow to send a
request's head or body, or a connection left idle, is closed after `timeout` seconds (Tornado
waits for ever by default: 64 slowloris connections would stay open for good).

Nothing here runs per request: the limits are Tornado's own, set once per connection.
"""

from __future__ import annotations

import contextlib
import json
import socket
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.iostream import IOStream, UnsatisfiableReadError

MAX_HEAD = 64 * 1024  # bytes of a request line and headers
_BODY = json.dumps({"error": f"request head over {MAX_HEAD // 1024} KiB", "status": 431}).encode()
_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: application/json\r\n"
    + f"Content-Length: {len(_BODY)}\r\nConnection: close\r\n\r\n".encode()
    + _BODY
)


def limited_server(app: Any, timeout: float) -> HTTPServer:
    """HTTPServer(app) with a head size limit that answers 431, and header/body/idle timeouts.
    Tornado's idle timeout is also its header timeout: the wait for each request's whole head."""
    return _LimitedHTTPServer(app, max_header_size=MAX_HEAD, idle_connection_timeout=timeout, body_timeout=timeout)


class _LimitedHTTPServer(HTTPServer):
    """Answers 431 to a head over the limit (HTTPServer is Configurable: its settings go to
    initialize(), through the constructor's arguments)."""

    def handle_stream(self, stream: IOStream, address: tuple[Any, ...]) -> None:
        close = stream.close

        def close_answering_431(exc_info: Any = False) -> None:
            # Tornado closes the stream as the head passes the limit; answer first, straight on the
            # socket (a short answer fits its empty send buffer).
            if isinstance(exc_info, UnsatisfiableReadError) and not stream.closed():
                _answer_and_drain(stream.socket)
            close(exc_info)

        stream.close = close_answering_431  # type: ignore[method-assign]
        super().handle_stream(stream, address)


def _answer_and_drain(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.send(_TOO_LARGE)
        # What the client still sends is read and dropped first: closing with unread data sends a
        # reset, which may destroy the answer before the client reads it.
        while sock.recv(65536):
            pass
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
