"""The base of every page handler: the Host check, the security headers, the session, CSRF on
POST, templates (Jinja2, autoescaped: names and params are user data) and errors."""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

import jinja2
import tornado.web

from hyperctl.output import format_duration, format_time
from hyperctl.storefaults import StoreError
from hyperctl.tablefit import show
from hyperctl.web.data import finite
from hyperctl.web.login import COOKIE, CSRF_HEADER
from hyperctl.web.site import Site

logger = logging.getLogger(__name__)

# Scripts and styles from our own files only (no inline script: a name that slipped past the
# escaping still runs nothing); no frames, no forms to elsewhere.
CSP = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
API_PREFIX = "/ui/api/"  # the pages' JSON: errors there are JSON too


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("hyperctl.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=lambda t: format_time(t) if t else "-",
        took=lambda s: format_duration(s) if s is not None else "-",
        cell=show,
        tojson_attr=lambda v: json.dumps(v),
    )
    return env


TEMPLATES = _environment()


class PageHandler(tornado.web.RequestHandler):
    """State injected (site); every request checked before anything else runs."""

    needs_session = True

    def initialize(self, site: Site) -> None:
        self.site = site

    def set_default_headers(self) -> None:
        self.set_header("Content-Security-Policy", CSP)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "no-referrer")  # a login link's token stays here
        self.set_header("Cache-Control", "no-store")

    def prepare(self) -> None:
        if not self.site.allowed_host(self.request.headers.get("Host", "")):
            # A page of another site whose name was made to point here (DNS rebinding).
            raise tornado.web.HTTPError(403, reason="this server answers to its own address only")
        if self.needs_session and self.session() is None:
            raise tornado.web.HTTPError(401, reason="log in with the link `hyperctl run` or `hyperctl ui` printed")
        if self.request.method not in ("GET", "HEAD"):
            session = self.session()
            if session is None or not self.site.logins.is_csrf(session, self.request.headers.get(CSRF_HEADER)):
                raise tornado.web.HTTPError(403, reason="missing or bad CSRF token: reload the page")

    def session(self) -> str | None:
        value = self.get_cookie(COOKIE)
        return value if self.site.logins.is_session(value) else None

    def render_page(self, template: str, **values: Any) -> None:
        session = self.session()
        page = TEMPLATES.get_template(template).render(
            site=self.site,
            csrf=self.site.logins.csrf_token(session) if session else "",
            **values,
        )
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(page)

    def send(self, body: Any) -> None:
        """JSON for a page's script (data.finite: NaN and infinities as null)."""
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(finite(body), allow_nan=False))

    def compute_etag(self) -> None:
        return None

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(error, StoreError):
            status_code, reason = 503, str(error)
            self.set_status(503)
        else:
            reason = getattr(error, "reason", None) or HTTPStatus(status_code).phrase
        if self.request.path.startswith(API_PREFIX):
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"error": reason, "status": status_code}))
            return
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(
            TEMPLATES.get_template("error.html").render(site=self.site, csrf="", status=status_code, reason=reason)
        )

    def log_exception(self, typ: Any, value: BaseException | None, tb: Any) -> None:
        if isinstance(value, (StoreError, tornado.web.HTTPError)):
            logger.debug("%s %s: %s", self.request.method, self.request.path, value)
        else:
            super().log_exception(typ, value, tb)
