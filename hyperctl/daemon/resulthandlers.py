"""The API's results: a job's metrics, and the compare table (comparison.py, as `hyperctl compare`).

Both read the store in a thread of their own, with a read-only connection: a 100,000-job compare
takes about a second, which the IOLoop must not wait out (the daemon's writes go on meanwhile:
WAL). Their JSON is encoded there too; NaN and infinities are written as Python's json writes
them (NaN, Infinity), as `--json` does.
"""

from __future__ import annotations

import json
import time
from typing import Any

import tornado.web
from tornado.ioloop import IOLoop

from hyperctl.attemptmetrics import metrics_view
from hyperctl.comparegrammar import CompareError
from hyperctl.comparison import compare
from hyperctl.daemon.handlers import ApiHandler
from hyperctl.errors import HyperctlError
from hyperctl.layout import BatchDir
from hyperctl.metricsfile import lines_from_body
from hyperctl.store import Store
from hyperctl.storefaults import StoreError


def _job_metrics(batch_dir: BatchDir, name: str, attempt: int | None, key: str | None) -> bytes | None:
    store = Store(batch_dir.db, readonly=True)
    try:
        record = store.job(name)
        return None if record is None else json.dumps(metrics_view(store, record, attempt, key)).encode()
    finally:
        store.close()


def _compare(batch_dir: BatchDir, **asked: Any) -> bytes:
    return json.dumps(compare([batch_dir], **asked).to_dict()).encode()


class JobMetricsHandler(ApiHandler):
    """GET .../job/{name}/metrics[?attempt=K&key=NAME]: an attempt's points and summaries (the last
    attempt's by default); a job's own token reads its own. POST: the job reports (below)."""

    async def get(self, name: str) -> None:
        self.require_job_token(name)
        self.job_or_404(name)
        attempt, key = self.int_argument("attempt"), self.get_query_argument("key", None)
        loop = IOLoop.current()
        try:
            body = await loop.run_in_executor(None, _job_metrics, self.scheduler.batch_dir, name, attempt, key)
        except StoreError:
            raise  # 503, as every route answers it
        except HyperctlError as e:  # an attempt it does not have
            raise tornado.web.HTTPError(404, reason=str(e)) from None
        if body is None:  # gone from the store since the check
            raise tornado.web.HTTPError(404, reason=f"no job named '{name}' in this batch")
        self.send_json(body)

    # POST: a point or an array of them, as report() writes them, appended to the running
    # attempt's metrics file where the job has it (the file is the truth, read as every report
    # is). Only the job itself, with its own token: no one reports for another.
    async def post(self, name: str) -> None:
        if self.reader() != name:
            raise tornado.web.HTTPError(403, reason="only the job itself reports its metrics, with its own token")
        handle = self.scheduler.running.get(name)
        if handle is None:
            raise tornado.web.HTTPError(409, reason=f"job '{name}' is not running: only a running attempt reports")
        try:
            lines, count = lines_from_body(json.loads(self.request.body or b"null"), time.time())
        except ValueError as e:  # JSON's own errors too
            raise tornado.web.HTTPError(400, reason=str(e)) from None
        except RecursionError:  # the C decoder's answer to [[[[...]]]]
            raise tornado.web.HTTPError(400, reason="the body is nested too deep: a point is one JSON object") from None
        try:
            await self.scheduler.executor.append_to_attempt(handle, "metrics", lines)
        except (OSError, HyperctlError) as e:
            raise tornado.web.HTTPError(503, reason=f"the metrics file could not take them: {e}") from None
        self.scheduler.metrics.soon()
        self.send({"job": name, "attempt": handle.launch.attempt, "points": count})


class CompareHandler(ApiHandler):
    """GET .../compare[?columns=..&sort=..&where=..&top=N&all_params=1&attempt=K]: the compare
    table, {columns, rows}. columns and sort are comma-separated (or given again); where is
    given once per filter."""

    async def get(self) -> None:
        self.require_batch_token()
        asked: dict[str, Any] = {
            "columns": self._listed("columns") or None,
            "sort": self._listed("sort"),
            "where": self.get_query_arguments("where"),
            "top": self.int_argument("top"),
            "all_params": self.get_query_argument("all_params", "0") not in ("0", "", "false"),
            "attempt": self.get_query_argument("attempt", "last"),
        }
        loop = IOLoop.current()
        try:
            body = await loop.run_in_executor(None, lambda: _compare(self.scheduler.batch_dir, **asked))
        except CompareError as e:
            raise tornado.web.HTTPError(400, reason=str(e)) from None
        self.send_json(body)

    def _listed(self, name: str) -> list[str]:
        return [part for value in self.get_query_arguments(name) for part in value.split(",") if part.strip()]
