"""make_app(scheduler, tokens, in_flight) -> the daemon's Tornado Application, behind its fast path."""

from __future__ import annotations

import tornado.web

from hyperctl.daemon.auth import Tokens
from hyperctl.daemon.fastpath import JobViewFastPath
from hyperctl.daemon.handlers import (
    BatchHandler,
    BatchKillHandler,
    BatchRetryHandler,
    JobHandler,
    JobKillHandler,
    JobListHandler,
    JobLogHandler,
    JobViews,
    LoginLinkHandler,
    MachineListHandler,
    NotFoundHandler,
)
from hyperctl.daemon.hypernets import ROUTE_ANY, ROUTE_JOB, HypernetsJobHandler, HypernetsOtherHandler
from hyperctl.daemon.listener import InFlight
from hyperctl.daemon.resulthandlers import CompareHandler, JobMetricsHandler
from hyperctl.daemon.scheduler import Scheduler
from hyperctl.web.routes import web_routes
from hyperctl.web.site import Site

API = "/hyperctl/api"
_JOB = r"(?P<name>[^/]+)"


def make_app(scheduler: Scheduler, tokens: Tokens, in_flight: InFlight, site: Site | None = None) -> JobViewFastPath:
    """The API, and the dashboard's pages (web/) when a site is given."""
    views = JobViews(scheduler)
    state = {"scheduler": scheduler, "tokens": tokens, "in_flight": in_flight, "views": views}
    pages = web_routes(site) if site is not None else []
    app = tornado.web.Application(
        [
            *pages,
            (f"{API}/job", JobListHandler, state),
            (f"{API}/job/{_JOB}", JobHandler, state),
            (f"{API}/job/{_JOB}/kill", JobKillHandler, state),
            (f"{API}/job/{_JOB}/log", JobLogHandler, state),
            (f"{API}/job/{_JOB}/metrics", JobMetricsHandler, state),
            (f"{API}/compare", CompareHandler, state),
            (f"{API}/batch", BatchHandler, state),
            (f"{API}/batch/kill", BatchKillHandler, state),
            (f"{API}/batch/retry", BatchRetryHandler, state),
            (f"{API}/machine", MachineListHandler, state),
            (ROUTE_JOB, HypernetsJobHandler, state),  # a job's portal (daemon/portal.py)
            (f"{API}/login", LoginLinkHandler, {**state, "site": site}),
            (ROUTE_ANY, HypernetsOtherHandler, state),
        ],
        default_handler_class=NotFoundHandler,
        default_handler_args=state,
        log_function=lambda handler: None,  # no access log over the progress display
    )
    return JobViewFastPath(app, views, tokens)
