"""The pages' URLs, mounted by the daemon's app (daemon/app.py) and by `hyperctl ui` (web/serve.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tornado.web

from hyperctl.web.actions import action_routes
from hyperctl.web.jobpages import job_routes
from hyperctl.web.login import LOGIN_PATH
from hyperctl.web.machines import machines_routes
from hyperctl.web.pages import (
    BatchListHandler,
    BatchPageHandler,
    EventsHandler,
    ExportHandler,
    LoginHandler,
)
from hyperctl.web.params import params_routes
from hyperctl.web.site import Site

STATIC = Path(__file__).with_name("static")
_BATCH = r"(?P<name>[^/]+)"


class StaticHandler(tornado.web.StaticFileHandler):
    """Our scripts, styles and icon: no session needed (the login page uses them), the Host check
    and the CSP as every page has."""

    def initialize(self, path: str, site: Site, default_filename: str | None = None) -> None:  # type: ignore[override]
        super().initialize(path, default_filename)
        self.site = site

    def prepare(self) -> None:
        if not self.site.allowed_host(self.request.headers.get("Host", "")):
            raise tornado.web.HTTPError(403)

    def set_default_headers(self) -> None:
        from hyperctl.web.pagebase import CSP

        self.set_header("Content-Security-Policy", CSP)
        self.set_header("X-Content-Type-Options", "nosniff")


def web_routes(site: Site) -> list[Any]:
    state = {"site": site}
    return [
        (LOGIN_PATH, LoginHandler, state),
        (r"/", BatchListHandler, state),
        (rf"/b/{_BATCH}", BatchPageHandler, state),
        (rf"/b/{_BATCH}/export\.(?P<form>csv|json)", ExportHandler, state),
        (r"/ui/events", EventsHandler, state),
        *params_routes(site, _BATCH),
        *job_routes(site),
        *machines_routes(site, _BATCH),
        *action_routes(site, _BATCH),
        (r"/static/(.*)", StaticHandler, {"path": str(STATIC), "site": site}),
        (r"/(favicon\.ico)", StaticHandler, {"path": str(STATIC), "site": site}),
    ]
