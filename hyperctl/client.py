"""An HTTP client of a batch's daemon, for the CLI: stdlib HTTP, typed errors; live_client() finds the daemon."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Union

from hyperctl.batches import NoDaemonError, daemon_pid
from hyperctl.errors import ApiError as ApiError  # its home before errors.py had it
from hyperctl.errors import HyperctlError, api_error

if TYPE_CHECKING:
    from hyperctl.layout import BatchDir


Query = Union[dict[str, Any], list[tuple[str, Any]]]  # a list names a key more than once (?job=a&job=b)


class DaemonUnreachableError(HyperctlError):
    """No daemon answered at the batch's address."""


class NoTokenError(HyperctlError):
    """A daemon runs the batch, but its token is not where this command looks (another XDG_STATE_HOME)."""

    def __init__(self, batch_dir: BatchDir) -> None:
        self.where = (
            f"batch '{batch_dir.name}': a daemon runs it, but its token is not at {batch_dir.token_file} "
            "(started with another XDG_STATE_HOME?)"
        )
        super().__init__(f"{self.where}; no command can reach that daemon without it")


class Client:
    """Talks to one daemon with the batch token."""

    def __init__(self, portal: str, token: str, timeout: float = 60) -> None:
        self.portal = portal.rstrip("/")
        self.token = token
        self.timeout = timeout
        # The daemon is never behind a proxy, whatever http_proxy says.
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def request(self, method: str, path: str, query: Query | None = None, timeout: float | None = None) -> Any:
        with self._open(method, path, query, timeout or self.timeout) as response:
            return json.load(response)

    def stream(self, path: str, query: dict[str, Any]) -> Iterator[bytes]:
        """A streamed answer, chunk by chunk as the daemon sends them."""
        # No read timeout: a job may write nothing for hours.
        with self._open("GET", path, query, timeout=None) as response:
            try:
                while chunk := response.read1(1 << 16):
                    yield chunk
            except (OSError, http.client.HTTPException) as e:
                raise DaemonUnreachableError(f"the daemon at {self.portal} stopped answering: {e}") from None

    def job_output(
        self, name: str, stream: str, offset: int = 0, lines: int | None = None, follow: bool = True
    ) -> Iterator[bytes]:
        """A running job's stdout or stderr from offset (or its last lines); with follow, as it
        grows, until the job ends."""
        query: dict[str, Any] = {"stream": stream, "offset": offset, "follow": int(follow)}
        if lines is not None:
            query["lines"] = lines
        return self.stream(f"job/{urllib.parse.quote(name)}/log", query)

    def _open(self, method: str, path: str, query: Query | None, timeout: float | None) -> Any:
        url = f"{self.portal}/hyperctl/api/{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        request = urllib.request.Request(
            url,
            method=method,
            data=b"" if method == "POST" else None,
            headers={"Authorization": f"Bearer {self.token}"},
        )
        try:
            return self.opener.open(request, timeout=timeout)
        except urllib.error.HTTPError as e:
            try:
                message = json.load(e)["error"]
            except (ValueError, KeyError):
                message = e.reason
            raise api_error(e.code, str(message)) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise DaemonUnreachableError(f"the daemon at {self.portal} does not answer: {reason}") from None

    def jobs(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "job")["jobs"])

    def job(self, name: str) -> dict[str, Any]:
        return dict(self.request("GET", f"job/{urllib.parse.quote(name)}"))

    def kill_job(self, name: str) -> dict[str, Any]:
        return dict(self.request("POST", f"job/{urllib.parse.quote(name)}/kill"))

    def batch(self, wait_after: int | None = None, timeout: float = 25) -> dict[str, Any]:
        """The batch view; with wait_after, once its version passes that (a long poll)."""
        if wait_after is None:
            return dict(self.request("GET", "batch"))
        query = {"wait_after": wait_after, "timeout": timeout}
        return dict(self.request("GET", "batch", query, timeout=timeout + 10))

    def machines(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "machine")["machines"])

    def kill_batch(self) -> dict[str, Any]:
        return dict(self.request("POST", "batch/kill"))

    def retry(self, jobs: list[str] | None = None, failed_only: bool = False) -> list[str]:
        """Jobs of the running batch that ended without success, pending again (POST batch/retry)."""
        query = [("job", j) for j in jobs or []] + ([("failed", "1")] if failed_only else [])
        return list(self.request("POST", "batch/retry", query)["retried"])

    def dashboard_link(self) -> str:
        """A new one-time login link to the daemon's pages."""
        return str(self.request("POST", "login")["url"])


def live_client(batch_dir: BatchDir) -> Client:
    """A client of the batch's live daemon; NoDaemonError when none runs it."""
    from hyperctl.store import Store

    if daemon_pid(batch_dir) is None:
        raise NoDaemonError(f"no daemon runs batch '{batch_dir.name}' (hyperctl batch resume {batch_dir.name})")
    store = Store(batch_dir.db, readonly=True)
    try:
        portal = store.meta().get("portal")
    finally:
        store.close()
    if not portal:
        raise NoDaemonError(f"batch '{batch_dir.name}': its daemon is starting or stopping; try again")
    from hyperctl.daemon.auth import read_token

    token = read_token(batch_dir)
    if token is None:
        raise NoTokenError(batch_dir)
    return Client(portal, token)
