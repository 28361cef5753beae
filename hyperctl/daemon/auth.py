"""Tokens: one per batch (a file only its owner reads, out of the jobs' reach: layout.BatchDir.token_file),
and one per job derived from it; who a request's Authorization header speaks for, decided here alone."""

from __future__ import annotations

import hmac
import os
import secrets
from hashlib import sha256
from typing import TYPE_CHECKING

from hyperctl import privatefs
from hyperctl.errors import HyperctlError
from hyperctl.layout import token_folder

if TYPE_CHECKING:
    from hyperctl.layout import BatchDir

JOB_TOKEN_PREFIX = "job."
EVERY_JOB = ""  # what the batch token reads: the batch and every job (a job token reads its own job)
_REMEMBERED = 10_000  # genuine tokens whose reader is kept, so that a request costs no HMAC


def load_or_create_token(batch_dir: BatchDir) -> str:
    """The batch token, made (0600, in the user's private token folder) the first time. A batch of
    an older hyperctl keeps the token it has (its running jobs' tokens derive from it): it moves
    out of the batch folder."""
    token = read_token(batch_dir)
    if token is None:
        token = secrets.token_urlsafe(32)
    folder = token_folder()
    try:
        privatefs.make_dirs(folder, folder.parent.parent)
        if not privatefs.check_file(batch_dir.token_file):
            with os.fdopen(privatefs.open_file(batch_dir.token_file, os.O_WRONLY, exclusive=True), "w") as f:
                f.write(token + "\n")
    except OSError as e:  # a home that cannot be written (a service account, a read-only file system)
        raise HyperctlError(
            f"cannot keep the batch token in {folder}: {e.strerror or e}; set XDG_STATE_HOME to a folder of yours"
        ) from None
    if privatefs.check_file(batch_dir.legacy_token_file):
        os.unlink(batch_dir.legacy_token_file)
    return token


def read_token(batch_dir: BatchDir) -> str | None:
    """The batch token, where it is (an older hyperctl's daemon may still run the batch with its
    token in the batch folder); None when there is none. One that is not the user's is refused."""
    for path in (batch_dir.token_file, batch_dir.legacy_token_file):
        try:
            fd = privatefs.open_file(path, os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError):  # none there (a folder on the way is a file)
            continue
        with os.fdopen(fd) as f:
            return f.read().strip()
    return None


class Tokens:
    """Checks bearer tokens: the batch token opens everything, a job token only its own job."""

    def __init__(self, batch_token: str) -> None:
        self.batch_token = batch_token
        # Token -> what it reads. Looking a token up compares hashes first, so it tells a sender
        # nothing of a real token's bytes.
        self._readers: dict[str, str] = {}

    def reader(self, authorization: str) -> str | None:
        """What a request with this Authorization header may read: EVERY_JOB (the batch token), a
        job's name (that job's token), or None (no token, or not a genuine one)."""
        token = bearer(authorization)
        if token is None:
            return None
        reader = self._readers.get(token)
        if reader is None:
            reader = EVERY_JOB if self.is_batch(token) else self.job_of(token)
            if reader is None:
                return None  # not remembered: a bad token costs the sender, not our memory
            if len(self._readers) >= _REMEMBERED:
                self._readers.clear()
            self._readers[token] = reader
        return reader

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


def bearer(authorization: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; None when it has none."""
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    # Not ASCII: no token of ours (hmac.compare_digest refuses to compare such strings).
    return token if scheme.lower() == "bearer" and token and token.isascii() else None
