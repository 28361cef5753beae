"""`hyperctl ui`: the pages of every batch of a data dir, read-only, with no daemon needed (a
finished batch stays browsable), until Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path

import tornado.httpserver
import tornado.web

from hyperctl.daemon.runner import bind
from hyperctl.web.login import Logins
from hyperctl.web.pages import PageNotFoundHandler
from hyperctl.web.routes import web_routes
from hyperctl.web.site import Site

CLOSE_WITHIN = 2.0  # seconds for open pages' connections to close at the end


async def serve(batches_dir: Path, host: str, port: int, started: Callable[[Site, str | None], None]) -> int:
    """Serve until a stop signal: 0 on SIGTERM, 130 on SIGINT (Ctrl-C)."""
    sockets, port_note = bind(host, port)
    site = Site(batches_dir, Logins(), host=host, port=sockets[0].getsockname()[1])
    app = tornado.web.Application(
        web_routes(site),
        default_handler_class=PageNotFoundHandler,
        default_handler_args={"site": site},
        log_function=lambda handler: None,
    )
    server = tornado.httpserver.HTTPServer(app, xheaders=False)
    server.add_sockets(sockets)
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[int] = loop.create_future()

    def stopped(code: int) -> None:
        if not stop.done():
            stop.set_result(code)

    loop.add_signal_handler(signal.SIGINT, stopped, 130)
    loop.add_signal_handler(signal.SIGTERM, stopped, 0)
    started(site, port_note)
    try:
        return await stop
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        site.close()
        server.stop()
        try:
            await asyncio.wait_for(server.close_all_connections(), CLOSE_WITHIN)
        except asyncio.TimeoutError:
            pass
