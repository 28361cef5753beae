"""A job's page (params, command, attempts, its live log, its curves), the curves page of several
jobs overlaid, and the JSON their charts fetch."""

from __future__ import annotations

import time
from typing import Any

import tornado.web

from hyperctl.errors import HyperctlError, NoSuchJobError
from hyperctl.pace import PROGRESS
from hyperctl.web.curvedata import X_AXES, CurveQuery, curves
from hyperctl.web.jobdata import job_page
from hyperctl.web.logstream import TAIL, LogHandler
from hyperctl.web.pagebase import API_PREFIX
from hyperctl.web.pages import PartHandler
from hyperctl.web.site import Site


class JobPageHandler(PartHandler):
    async def get(self, name: str, job: str) -> None:
        batch_dir = self.batch_dir(name)
        try:
            page = await self.in_thread(job_page, batch_dir, job, time.time())
        except NoSuchJobError as e:
            raise tornado.web.HTTPError(404, reason=str(e)) from None
        self.render_page("job.html", batch=batch_dir.name, page=page, tail=TAIL, axes=X_AXES)


class CurvesPageHandler(PartHandler):
    """Several jobs' curves overlaid (?jobs=a,b,c&metric=loss), and their statuses (a live part)."""

    async def get(self, name: str) -> None:
        batch_dir = self.batch_dir(name)
        jobs = [j for j in (s.strip() for s in self.get_query_argument("jobs", "").split(",")) if j]
        pages, missing = [], []
        for job in jobs:
            try:
                pages.append(await self.in_thread(job_page, batch_dir, job, time.time()))
            except NoSuchJobError as e:
                missing.append(str(e))
        metrics = sorted({m for page in pages for m in page.metrics}, key=lambda m: (m == PROGRESS, m))
        self.render_page(
            "curves.html",
            batch=batch_dir.name,
            pages=pages,
            missing=missing,
            metrics=metrics,
            metric=self.get_query_argument("metric", ""),
            axes=X_AXES,
        )


class CurvesApiHandler(PartHandler):
    """The series a chart draws (curvedata.curves), as JSON; errors as JSON too."""

    async def get(self, name: str) -> None:
        batch_dir = self.batch_dir(name)
        arguments = {k: self.get_query_argument(k) for k in self.request.query_arguments}
        try:
            query = CurveQuery.of(arguments)
            data = await self.in_thread(curves, batch_dir, query)
        except NoSuchJobError as e:
            raise tornado.web.HTTPError(404, reason=str(e)) from None
        except HyperctlError as e:
            raise tornado.web.HTTPError(400, reason=str(e)) from None
        data["limit"] = query.limit
        self.send(data)


_BATCH = r"(?P<name>[^/]+)"


def job_routes(site: Site) -> list[Any]:
    state = {"site": site}
    return [
        (rf"/b/{_BATCH}/j/(?P<job>[^/]+)", JobPageHandler, state),
        (rf"/b/{_BATCH}/curves", CurvesPageHandler, state),
        (rf"{API_PREFIX}b/{_BATCH}/curves", CurvesApiHandler, state),
        (r"/ui/log", LogHandler, state),
    ]
