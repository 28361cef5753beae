"""The job-side API (what a job imports): its params and data dir. Stdlib only; also sent to SSH hosts."""

from __future__ import annotations

import json
import os
from typing import Any

from hyperctl.errors import HyperctlError, NotInJobError

# What inject() set: a job script tried outside a batch. Process-wide by nature, as Hypernets'
# `hyperctl.inject` was; empty in a job that hyperctl runs (its own params win there).
_INJECTED: dict[str, Any] = {}


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
    if "data_dir" in _INJECTED and not os.environ.get("HYPERCTL_JOB_NAME"):
        return str(_INJECTED["data_dir"])
    get_job_name()
    return _env("HYPERCTL_JOB_DATA_DIR")


def get_job_params() -> dict[str, Any]:
    """The running job's params.

    Read from the params file hyperctl wrote for the job, so it works even where the daemon
    cannot be reached; without that file, asked of the daemon's API through the job's portal.
    Outside a batch, the params given to inject().
    """
    if "params" in _INJECTED and not os.environ.get("HYPERCTL_JOB_NAME"):
        params: dict[str, Any] = _INJECTED["params"]
        return params
    name = get_job_name()
    path = os.environ.get("HYPERCTL_JOB_PARAMS_FILE")
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                params = json.load(f)
            return params
        except (OSError, ValueError):
            pass  # fall back on the daemon
    return _params_from_daemon(name)


def inject(params: dict[str, Any], job_data_dir: str | None = None) -> None:
    """Try a job script outside a batch (as Hypernets' `hyperctl.inject`): from now on, in this
    process, get_job_params() returns `params` and get_job_data_dir() `job_data_dir` (default: a new
    temporary folder). In a job that hyperctl runs, the job's own params and data dir win, so a
    script that injects for a try runs in a batch unchanged."""
    if not isinstance(params, dict):
        raise TypeError(f"inject: params must be a dict, not {type(params).__name__}")
    if job_data_dir is None:
        import tempfile

        job_data_dir = tempfile.mkdtemp(prefix="hyperctl-")
    _INJECTED.clear()
    _INJECTED.update(params=params, data_dir=job_data_dir)


def reset_dev_params() -> None:
    """Undo inject()."""
    _INJECTED.clear()


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
