"""The API's hot request, answered below Tornado's RequestHandler.

A job reading its own view (`GET /hyperctl/api/job/{name}` with its token) is what every job
of a sweep may do as it starts. Tornado's routing and RequestHandler are half the cost of
such a request: a bare connection delegate answers 8,300 req/s on this 2-core machine, a bare
RequestHandler 4,200. So that request, when it is plain and allowed, is answered here from the
same cached view. Every other request, and any this one would refuse (no token, a bad one,
an unknown job, a name that needs decoding, a query, a body), goes on to the Application and
its handlers as before: errors and everything else are theirs alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from email.utils import formatdate

from tornado import httputil
from tornado.web import Application

from hyperctl.daemon.auth import EVERY_JOB, Tokens
from hyperctl.daemon.handlers import JobViews, store_error_body
from hyperctl.storefaults import StoreError

JOB_PATH = "/hyperctl/api/job/"
_OK = httputil.ResponseStartLine("HTTP/1.1", 200, "OK")
_UNAVAILABLE = httputil.ResponseStartLine("HTTP/1.1", 503, "Service Unavailable")
logger = logging.getLogger(__name__)


class JobViewFastPath(httputil.HTTPServerConnectionDelegate):
    """The Application, with plain reads of one job's view answered before it."""

    def __init__(self, app: Application, views: JobViews, tokens: Tokens) -> None:
        self.app = app
        self.views = views
        self.tokens = tokens
        self._date = (0, "")

    def start_request(self, server_conn: object, request_conn: httputil.HTTPConnection) -> httputil.HTTPMessageDelegate:
        return _Request(self, server_conn, request_conn)

    def on_close(self, server_conn: object) -> None:
        self.app.on_close(server_conn)

    def job_to_answer(self, start_line: httputil.RequestStartLine, headers: httputil.HTTPHeaders) -> str | None:
        """The job whose view this request plainly asks for, with a token that may read it; else None."""
        path = start_line.path
        if start_line.method != "GET" or not path.startswith(JOB_PATH):
            return None
        name = path[len(JOB_PATH) :]
        if not name or "/" in name or "%" in name or "?" in name or not self.views.has(name):
            return None
        if "Content-Length" in headers or "Transfer-Encoding" in headers:
            return None
        return name if self.tokens.reader(headers.get("Authorization", "")) in (EVERY_JOB, name) else None

    def answer(self, request_conn: httputil.HTTPConnection, name: str) -> None:
        start_line = _OK
        try:
            body = self.views.body(name)
        except StoreError as e:  # as the handlers answer it: 503, one line in the log
            logger.warning("GET %s%s: %s", JOB_PATH, name, e)
            start_line, body = _UNAVAILABLE, store_error_body(e)
        headers = httputil.HTTPHeaders(
            {"Content-Type": "application/json", "Content-Length": str(len(body)), "Date": self._http_date()}
        )
        request_conn.write_headers(start_line, headers, body)
        request_conn.finish()

    def _http_date(self) -> str:
        now = int(time.time())
        if self._date[0] != now:  # formatted once a second, not once a request
            self._date = (now, formatdate(now, usegmt=True))
        return self._date[1]


class _Request(httputil.HTTPMessageDelegate):
    """One request: answered here once whole, or handed to the Application from its headers on."""

    def __init__(self, fast: JobViewFastPath, server_conn: object, request_conn: httputil.HTTPConnection) -> None:
        self.fast = fast
        self.server_conn = server_conn
        self.request_conn = request_conn
        self.name: str | None = None
        self.inner: httputil.HTTPMessageDelegate | None = None

    def headers_received(
        self, start_line: httputil.RequestStartLine | httputil.ResponseStartLine, headers: httputil.HTTPHeaders
    ) -> Awaitable[None] | None:
        if isinstance(start_line, httputil.RequestStartLine):
            self.name = self.fast.job_to_answer(start_line, headers)
        if self.name is None:
            self.inner = self.fast.app.start_request(self.server_conn, self.request_conn)
            return self.inner.headers_received(start_line, headers)
        return None

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        return self.inner.data_received(chunk) if self.inner is not None else None

    def finish(self) -> None:
        if self.inner is not None:
            self.inner.finish()
        elif self.name is not None:
            self.fast.answer(self.request_conn, self.name)

    def on_connection_close(self) -> None:
        if self.inner is not None:
            self.inner.on_connection_close()
