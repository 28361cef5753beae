"""Actions from the pages: kill a job, kill the batch, retry its failed jobs. A daemon's pages
only, for its own batch.

Each is a POST that PageHandler.prepare has checked already: the Host, the session cookie (401
without: a job's token, or the batch token, in an Authorization header opens no page) and the
CSRF header (403). They call what the API's handlers call (daemon/handlers.kill_job, retry_jobs,
Scheduler.request_stop): one way to act, whoever asks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import tornado.web

from hyperctl.spec import BatchStatus
from hyperctl.web.pagebase import API_PREFIX, PageHandler
from hyperctl.web.site import Site

if TYPE_CHECKING:
    from hyperctl.daemon.scheduler import Scheduler


class ActionHandler(PageHandler):
    """Base: the daemon's own batch, or why not."""

    def own(self, batch: str) -> Scheduler:
        scheduler = self.site.scheduler
        if self.site.read_only or scheduler is None:
            raise tornado.web.HTTPError(
                405,
                reason="these pages are read-only (hyperctl ui): kill from the batch's own daemon's pages "
                "(`hyperctl batch dashboard BATCH` prints a link) or with `hyperctl job kill` / `hyperctl batch kill`",
            )
        if batch != self.site.own_batch:
            why = f"this daemon runs batch '{self.site.own_batch}': act on '{batch}' from its own daemon's pages"
            raise tornado.web.HTTPError(403, reason=why)
        return scheduler


class JobKillActionHandler(ActionHandler):
    async def post(self, name: str, job: str) -> None:
        from hyperctl.daemon.handlers import kill_job

        status = await kill_job(self.own(name), job)
        self.send({"job": job, "status": status.value, "message": f"job {job}: {status.value}"})


class BatchKillActionHandler(ActionHandler):
    def post(self, name: str) -> None:
        self.own(name).request_stop(BatchStatus.KILLED)
        self.set_status(202)
        self.send(
            {
                "message": f"killing batch {name}: its running jobs get TERM, then KILL after their kill_grace; "
                "the daemon stops once they are gone",
            }
        )


class BatchRetryActionHandler(ActionHandler):
    def post(self, name: str) -> None:
        from hyperctl.daemon.handlers import retry_jobs

        self.send(retry_jobs(self.own(name), None))  # every job that did not succeed


def action_routes(site: Site, batch: str) -> list[Any]:
    state = {"site": site}
    return [
        (rf"{API_PREFIX}b/{batch}/kill", BatchKillActionHandler, state),
        (rf"{API_PREFIX}b/{batch}/retry", BatchRetryActionHandler, state),
        (rf"{API_PREFIX}b/{batch}/j/(?P<job>[^/]+)/kill", JobKillActionHandler, state),
    ]
