"""Tokens: one per batch (a file only its owner reads), and one per job derived from it."""

from __future__ import annotations

import hmac
import os
import secrets
from hashlib import sha256
from pathlib import Path

JOB_TOKEN_PREFIX = "job."


def load_or_create_token(path: Path) -> str:
    """The batch token, created with mode 0600 the first time."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


class Tokens:
    """Checks bearer tokens: the batch token opens everything, a job token only its own job."""

    def __init__(self, batch_token: str) -> None:
        self.batch_token = batch_token

    def for_job(self, job: str) -> str:
        # Derived, not stored: nothing to keep in sync, and it survives a daemon restart.
        # The name is in it, so a token of another job can be told from a made-up one.
        mac = hmac.new(self.batch_token.encode(), job.encode(), sha256).hexdigest()
        return f"{JOB_TOKEN_PREFIX}{job}.{mac}"

    def is_batch(self, token: str) -> bool:
        return hmac.compare_digest(token, self.batch_token)

    def job_of(self, token: str) -> str | None:
        """The job a genuine job token belongs to, else None."""
        if not token.startswith(JOB_TOKEN_PREFIX) or "." not in token[len(JOB_TOKEN_PREFIX) :]:
            return None
        job = token[len(JOB_TOKEN_PREFIX) :].rsplit(".", 1)[0]
        return job if hmac.compare_digest(token, self.for_job(job)) else None
