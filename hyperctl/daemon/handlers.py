"""Thin HTTP handlers: check the token, ask the scheduler (its read methods, or a kill), answer JSON."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator
from http import HTTPStatus
from typing import Any

import tornado.httputil
import tornado.web

from hyperctl.daemon.auth import EVERY_JOB, Tokens, bearer
from hyperctl.daemon.listener import InFlight
from hyperctl.daemon.retrying import RetryRefusedError
from hyperctl.daemon.scheduler import Scheduler
from hyperctl.daemon.schedulerreads import NotFollowableError
from hyperctl.errors import NoSuchJobError
from hyperctl.output import plural
from hyperctl.spec import BatchStatus, JobStatus
from hyperctl.storefaults import StoreError
from hyperctl.web.site import Site

logger = logging.getLogger(__name__)


class JobViews:
    """Each job's view, encoded, kept until the batch changes (its version moves): the jobs that
    poll their own views, and people who watch, cost no query and no encoding while nothing moves."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.cache: dict[str, tuple[tuple[int, float | None], bytes]] = {}

    def has(self, name: str) -> bool:
        return self.scheduler.has_job(name)

    def body(self, name: str) -> bytes:
        # A running job's reported progress moves without a new version: it is part of the key.
        key = (self.scheduler.version, self.scheduler.progress_now(name))
        hit = self.cache.get(name)
        if hit is not None and hit[0] == key:
            return hit[1]
        body = json.dumps(self.scheduler.job_view(name)).encode()
        if len(self.cache) >= 10_000:  # a bound, for batches of 100,000 jobs
            self.cache.clear()
        self.cache[name] = (key, body)
        return body


class ApiHandler(tornado.web.RequestHandler):
    """Base: state injected by initialize(), JSON bodies for errors too."""

    def initialize(self, scheduler: Scheduler, tokens: Tokens, in_flight: InFlight, views: JobViews) -> None:
        self.scheduler = scheduler
        self.tokens = tokens
        self.in_flight = in_flight
        self.views = views
        self.in_flight.enter()
        self._left = False

    def on_finish(self) -> None:
        self._leave()

    def on_connection_close(self) -> None:
        self._leave()

    def _leave(self) -> None:
        if not self._left:
            self._left = True
            self.in_flight.leave()

    def reader(self) -> str:
        """What the request's token may read (auth.Tokens.reader); 401 without a genuine one."""
        header = self.request.headers.get("Authorization", "")
        reader = self.tokens.reader(header)
        if reader is None:
            if bearer(header) is None:
                raise tornado.web.HTTPError(401, reason="missing token: send 'Authorization: Bearer <token>'")
            raise tornado.web.HTTPError(401, reason="bad token")
        return reader

    def require_batch_token(self) -> None:
        if self.reader() != EVERY_JOB:
            raise tornado.web.HTTPError(401, reason="bad token")

    def require_job_token(self, job: str) -> None:
        if self.reader() not in (EVERY_JOB, job):
            raise tornado.web.HTTPError(403, reason="a job's token reads only that job")

    def job_or_404(self, name: str) -> None:
        if not self.scheduler.has_job(name):
            raise tornado.web.HTTPError(404, reason=f"no job named '{name}' in this batch")

    def int_argument(self, name: str) -> int | None:
        value = self.get_query_argument(name, None)
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            raise tornado.web.HTTPError(400, reason=f"{name}: must be a whole number, not '{value}'") from None

    def send(self, body: Any, status: int = 200) -> None:
        self.send_json(json.dumps(body).encode(), status)

    def send_json(self, body: bytes, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(body)

    def compute_etag(self) -> None:
        return None  # no client of this API revalidates: hashing every answer would be waste

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # The message we raised, as written (Tornado's reason phrase drops some characters).
        error = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(error, StoreError):  # not a bug of ours: the store cannot be read now
            self.send_json(store_error_body(error), 503)
            return
        reason = getattr(error, "reason", None) or HTTPStatus(status_code).phrase
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": reason, "status": status_code}))

    def log_exception(self, typ: Any, value: BaseException | None, tb: Any) -> None:
        if isinstance(value, StoreError):
            logger.warning("%s %s: %s", self.request.method, self.request.path, value)  # one line
        else:
            super().log_exception(typ, value, tb)


def store_error_body(error: StoreError) -> bytes:
    """A 503's JSON body: the store cannot answer (damaged, or unreadable for now)."""
    return json.dumps({"error": str(error), "status": 503}).encode()


class NotFoundHandler(ApiHandler):
    """Any path the API does not have."""

    def prepare(self) -> None:
        raise tornado.web.HTTPError(404, reason=f"no such endpoint: {self.request.path}")


class JobListHandler(ApiHandler):
    def get(self) -> None:
        self.require_batch_token()
        status = self.get_query_argument("status", None)
        if status is not None and status not in {s.value for s in JobStatus}:
            known = ", ".join(s.value for s in JobStatus)
            raise tornado.web.HTTPError(400, reason=f"status: must be one of {known}, not '{status}'")
        self.send({"jobs": self.scheduler.job_views(JobStatus(status) if status is not None else None)})


class JobHandler(ApiHandler):
    def get(self, name: str) -> None:
        self.require_job_token(name)  # before the lookup: no token, no hint of which names exist
        self.job_or_404(name)
        self.send_json(self.views.body(name))


class JobKillHandler(ApiHandler):
    async def post(self, name: str) -> None:
        self.require_batch_token()
        await kill_job(self.scheduler, name)
        self.send(self.scheduler.job_view(name))


async def kill_job(scheduler: Scheduler, name: str) -> JobStatus:
    """Kill a job as `job kill` asks (the API's and the dashboard's): 404 when the batch has no such
    job, 409 when it has ended; returns once it is killed."""
    if not scheduler.has_job(name):
        raise tornado.web.HTTPError(404, reason=f"no job named '{name}' in this batch")
    before = scheduler.status_of(name)
    if before.final:
        raise tornado.web.HTTPError(409, reason=f"job '{name}' already ended: {before.value}")
    return await scheduler.kill_job(name)


class BatchHandler(ApiHandler):
    async def get(self) -> None:
        """The batch; with ?wait_after=VERSION, once something changed since then (a long poll)."""
        self.require_batch_token()
        wait_after = self.int_argument("wait_after")
        if wait_after is not None:
            timeout = min(self.int_argument("timeout") or 25, 60)
            await self.scheduler.wait_change(wait_after, timeout)
        self.send(self.scheduler.batch_view())


class BatchKillHandler(ApiHandler):
    def post(self) -> None:
        """Stop starting jobs and kill the running ones; the daemon exits when they are gone."""
        self.require_batch_token()
        self.scheduler.request_stop(BatchStatus.KILLED)
        self.send(self.scheduler.batch_view(), 202)


class BatchRetryHandler(ApiHandler):
    def post(self) -> None:
        """Run ended jobs that did not succeed again: those named (a JSON body {"jobs": [...]}, or
        ?job=NAME, repeated), else every failed, timed-out, killed or lost one (?failed=1: not the
        killed ones, as `batch retry --failed`)."""
        self.require_batch_token()
        failed = self.get_query_argument("failed", "0")
        if failed not in ("0", "1"):
            raise tornado.web.HTTPError(400, reason=f"failed: must be 0 or 1, not '{failed}'")
        self.send(retry_jobs(self.scheduler, job_names(self.request), failed == "1"))


def job_names(request: tornado.httputil.HTTPServerRequest) -> list[str] | None:
    """The jobs a request names: ?job=NAME (repeated), or a JSON body {"jobs": ["NAME", ...]}; None
    when it names none. 400 when the body is not that."""
    named = [v.decode("utf-8", "replace") for v in request.query_arguments.get("job", [])]
    if not request.body.strip():
        return named or None
    try:
        body = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        raise tornado.web.HTTPError(400, reason='body: must be JSON, {"jobs": ["NAME", ...]}') from None
    if not isinstance(body, dict) or set(body) - {"jobs"}:
        raise tornado.web.HTTPError(400, reason='body: must be {"jobs": ["NAME", ...]}')
    jobs = body.get("jobs", [])
    if not isinstance(jobs, list) or not all(isinstance(j, str) for j in jobs):
        raise tornado.web.HTTPError(400, reason="jobs: must be a list of job names")
    return [*named, *jobs] or None


def retry_jobs(scheduler: Scheduler, jobs: list[str] | None, failed_only: bool = False) -> dict[str, Any]:
    """Retry as the API and the dashboard ask (Scheduler.retry): 404 for a job the batch does not
    have, 409 when the batch or a job named cannot be retried now; what was retried, and a line."""
    try:
        chosen = scheduler.retry(jobs, failed_only)
    except NoSuchJobError as e:
        raise tornado.web.HTTPError(404, reason=str(e)) from None
    except RetryRefusedError as e:
        raise tornado.web.HTTPError(409, reason=str(e)) from None
    shown = ", ".join(chosen[:5]) + (", ..." if len(chosen) > 5 else "")
    message = f"retrying {plural(len(chosen), 'job')}: {shown}" if chosen else "no job to retry"
    return {"retried": chosen, "message": message}


class JobLogHandler(ApiHandler):
    """A running job's stdout or stderr from ?offset=N (or its last ?lines=N), streamed as it
    grows until the job ends (or, with ?follow=0, as it is now); for backends whose files reach
    the batch folder only when the job ends (remote machines)."""

    streaming: asyncio.Task[None] | None = None

    async def get(self, name: str) -> None:
        self.require_batch_token()
        self.job_or_404(name)
        stream = self.get_query_argument("stream", "stdout")
        if stream not in ("stdout", "stderr"):
            raise tornado.web.HTTPError(400, reason=f"stream: must be stdout or stderr, not '{stream}'")
        offset = self.int_argument("offset") or 0
        lines = self.int_argument("lines")
        follow = self.int_argument("follow") != 0
        try:
            chunks = self.scheduler.follow_output(name, stream, offset, lines, follow)
        except NotFollowableError as e:
            raise tornado.web.HTTPError(409, reason=str(e)) from None
        self.set_header("Content-Type", "application/octet-stream")
        self.streaming = asyncio.ensure_future(self._stream(chunks))
        with contextlib.suppress(asyncio.CancelledError):
            await self.streaming
            self.finish()

    async def _stream(self, chunks: AsyncGenerator[bytes, None]) -> None:
        try:
            async for chunk in chunks:
                self.write(chunk)
                await self.flush()
        finally:
            await chunks.aclose()

    def on_connection_close(self) -> None:
        if self.streaming is not None:
            self.streaming.cancel()  # the reader left: stop following on the host
        super().on_connection_close()


class MachineListHandler(ApiHandler):
    def get(self) -> None:
        """Every machine: up, or down and why (backing off); its running jobs and what they use."""
        self.require_batch_token()
        self.send({"machines": self.scheduler.machines_view()})


class LoginLinkHandler(ApiHandler):
    """A new one-time login link to the dashboard (web/login.py), for the batch token only: what
    `hyperctl batch dashboard` prints."""

    def initialize(self, site: Site | None = None, **state: Any) -> None:  # type: ignore[override]
        super().initialize(**state)
        self.site = site

    def post(self) -> None:
        self.require_batch_token()
        if self.site is None:
            raise tornado.web.HTTPError(404, reason="this daemon serves no dashboard")
        self.send({"url": self.site.login_url()})
