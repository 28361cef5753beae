"""The pages: thin handlers that read (web/data.py) and render a template.

A page's live parts are blocks of its template (`data-part` in the HTML); `?part=NAME` renders
that block alone, which the page's script fetches when the server tells of a change (events.py):
one renderer for the first paint and for every update, and no HTML built in JavaScript.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import tornado.iostream
import tornado.web

from hyperctl.batches import find_batch
from hyperctl.comparegrammar import STATUSES
from hyperctl.errors import HyperctlError
from hyperctl.layout import BatchDir
from hyperctl.overview import overview
from hyperctl.web.data import TableQuery, batch_rows, export, job_table, status_bar
from hyperctl.web.events import KEEPALIVE
from hyperctl.web.login import COOKIE, SESSION_LIFE
from hyperctl.web.pagebase import TEMPLATES, PageHandler
from hyperctl.web.site import Site


class LoginHandler(PageHandler):
    """A one-time login link: swapped for the session cookie, and a redirect to a URL without it."""

    needs_session = False

    def get(self) -> None:
        token = self.get_query_argument("token", "")
        if not self.site.logins.redeem(token):
            raise tornado.web.HTTPError(401, reason="this login link was used already or has expired")
        self.set_cookie(
            COOKIE,
            self.site.logins.new_session(),
            httponly=True,
            samesite="Strict",
            path="/",
            expires_days=SESSION_LIFE / 86400,
        )
        self.redirect(_local(self.get_query_argument("next", "/")))


def _local(url: str) -> str:
    """A path of this server only: a login link never sends its user elsewhere."""
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or not url.startswith("/") or url[1:2] in ("/", "\\"):
        return "/"  # `//host` and `/\host` are another site to a browser
    return url


def render_block(template: str, part: str, values: dict[str, Any]) -> str:
    """One block of a page's template, alone (a 404 naming it if the page has none)."""
    compiled = TEMPLATES.get_template(template)
    if part not in compiled.blocks:
        raise tornado.web.HTTPError(404, reason=f"no part '{part}' of this page")
    return "".join(compiled.blocks[part](compiled.new_context(values)))


class PartHandler(PageHandler):
    """A page whose blocks can be rendered alone (?part=NAME)."""

    def render_page(self, template: str, **values: Any) -> None:
        part = self.get_query_argument("part", None)
        if part is None:
            super().render_page(template, **values)
            return
        self.render_part(template, part, **values)

    def render_part(self, template: str, part: str, **values: Any) -> None:
        """One block of a template: a live part of a page (served by its page, or by its own URL:
        `data-src`, for a part in a template of its own that the page includes)."""
        html = render_block(template, part, {"site": self.site, "csrf": "", **values})
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(html)

    def batch_dir(self, name: str) -> BatchDir:
        try:
            return find_batch(self.site.batches_dir, name)
        except HyperctlError as e:
            raise tornado.web.HTTPError(404, reason=str(e)) from None

    def table_query(self) -> TableQuery:
        """The job table's state as the URL gives it (a 400 naming what is wrong)."""
        arguments = {k: self.get_query_argument(k) for k in self.request.query_arguments}
        try:
            return TableQuery.of(arguments, self.get_query_arguments("where"))
        except HyperctlError as e:
            raise tornado.web.HTTPError(400, reason=str(e)) from None

    async def in_thread(self, fn: Any, *args: Any) -> Any:
        """A read of stores (a compare of 10,000 jobs) off the IOLoop, which serves the batch."""
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


class BatchListHandler(PartHandler):
    async def get(self) -> None:
        self.render_page("batches.html", rows=await self.in_thread(batch_rows, self.site.batches_dir))


class BatchPageHandler(PartHandler):
    async def get(self, name: str) -> None:
        batch_dir = self.batch_dir(name)
        query = self.table_query()
        part = self.get_query_argument("part", None)
        values: dict[str, Any] = {"batch": batch_dir.name, "query": query, "statuses": STATUSES}
        if part in (None, "summary"):  # a live part reads only what it shows
            view = await self.in_thread(overview, batch_dir)
            values.update(view=view, best=view.best_text(), parts=status_bar(view.summary.counts))
        if part in (None, "table"):
            try:
                values["table"], _ = await self.in_thread(job_table, batch_dir, query)
            except HyperctlError as e:  # a column or sort key that names nothing: said above the table
                values["error"] = str(e)
        self.render_page("batch.html", **values)


class ExportHandler(PartHandler):
    """Every row the table shows (all its pages), as CSV or JSON."""

    async def get(self, name: str, form: str) -> None:
        batch_dir = self.batch_dir(name)
        query = self.table_query()
        try:
            _, table = await self.in_thread(job_table, batch_dir, query)
        except HyperctlError as e:
            raise tornado.web.HTTPError(400, reason=str(e)) from None
        kind, body = export(table, form)
        self.set_header("Content-Type", kind)
        self.set_header("Content-Disposition", f'attachment; filename="{batch_dir.name}.{form}"')
        self.finish(body)


class EventsHandler(PageHandler):
    """Server-Sent Events: `change` with the data dir's new version, whenever it moves; a comment
    when idle, so that a dead connection is found. Ends at once when the browser goes or the
    server stops."""

    def initialize(self, site: Site) -> None:
        super().initialize(site)
        self._gone: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def get(self) -> None:
        changes = self.site.changes
        self.set_header("Content-Type", "text/event-stream")
        changes.listen()
        try:
            version = changes.version
            self.write("retry: 1000\n\n")
            await self.flush()
            while not changes.closed and not self._gone.done():
                waiting = asyncio.ensure_future(changes.wait(version, KEEPALIVE))
                gone: asyncio.Future[Any] = self._gone
                await asyncio.wait([waiting, gone], return_when=asyncio.FIRST_COMPLETED)
                if not waiting.done():
                    waiting.cancel()
                    break
                now = waiting.result()
                self.write(f"event: change\ndata: {now}\n\n" if now != version else ": idle\n\n")
                version = now
                await self.flush()
        except tornado.iostream.StreamClosedError:
            pass
        finally:
            changes.unlisten()
        if not self._gone.done():
            self.finish()

    def on_connection_close(self) -> None:
        if not self._gone.done():
            self._gone.set_result(None)


class PageNotFoundHandler(PageHandler):
    """Any path no page has."""

    def prepare(self) -> None:
        super().prepare()
        raise tornado.web.HTTPError(404, reason=f"no page at {self.request.path}")
