"""The job-side API (what a job imports): its params and data dir. Stdlib only; also sent to SSH hosts."""

from __future__ import annotations

import json
import os
from typing import Any

from hyperctl.errors import HyperctlError, NotInJobError


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise NotInJobError(f"not inside a hyperctl job: {name} is not set (start the job with `hyperctl run`)")
    return value


def get_job_name() -> str:
    """The name of the running job."""
    return _env("HYPERCTL_JOB_NAME")


def get_job_data_dir() -> str:
    """The folder where the running job should keep what it makes."""
    get_job_name()
    return _env("HYPERCTL_JOB_DATA_DIR")


def get_job_params() -> dict[str, Any]:
    """The running job's params.

    Read from the params file hyperctl wrote for the job, so it works even where the daemon
    cannot be reached; without that file, asked of the daemon's API with the job's token.
    """
    name = get_job_name()
    path = os.environ.get("HYPERCTL_JOB_PARAMS_FILE")
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                params: dict[str, Any] = json.load(f)
            return params
        except (OSError, ValueError):
            pass  # fall back on the daemon
    return _params_from_daemon(name)


def _params_from_daemon(name: str) -> dict[str, Any]:
    import urllib.error
    import urllib.parse
    import urllib.request

    portal = os.environ.get("HYPERCTL_SERVER_PORTAL")
    if not portal:  # a job on another machine than its daemon, which listens on its own loopback
        raise HyperctlError(
            f"cannot read the params of job {name}: its params file is gone, and this machine cannot reach the "
            "daemon's API (it listens on its own loopback; set daemon.host to an address this machine can reach)"
        )
    # The portal carries the job's capability (daemon/portal.py): the same request as Hypernets' client.
    url = f"{portal}/hyperctl/api/job/{urllib.parse.quote(name)}"
    # The daemon is never behind a proxy, whatever http_proxy says in the job's environment.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=30) as response:
            params: dict[str, Any] = json.load(response)["data"]["params"]
            return params
    except urllib.error.HTTPError as e:
        reason = _refusal(e)
    except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError) as e:
        reason = str(e)
    api = urllib.parse.urlsplit(portal)  # not the whole portal: its path is the job's capability
    raise HyperctlError(
        f"cannot read the params of job {name}: no params file, and the daemon's API at "
        f"{api.scheme}://{api.netloc} answers: {reason}"
    )


def _refusal(error: Any) -> str:
    """The daemon's one-line reason for refusing (its JSON body's message), else the HTTP status."""
    try:
        return f"{error.code}: {json.load(error)['message']}"
    except (OSError, ValueError, KeyError, TypeError):
        return str(error)
