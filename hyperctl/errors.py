"""Errors a user can cause: the CLI prints them as one line and exits 2.

Stdlib only: this module is part of the job-side hyperctl (jobsidelib.py), sent to hosts
without hyperctl's dependencies.
"""

from __future__ import annotations


class HyperctlError(Exception):
    """Base of every error that is the user's to fix, not a bug."""


class ConfigError(HyperctlError):
    """A batch or template is invalid; carries one line per problem."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class NotInJobError(HyperctlError):
    """A job-side API was called outside a hyperctl job."""


class BatchBusyError(HyperctlError):
    """Another daemon already drives this batch."""


class NoSuchBatchError(HyperctlError):
    """The named batch is not in the data dir."""


class NoSuchJobError(HyperctlError, KeyError):
    """The named job is not in the batch (a KeyError too: `batch["nope"]`)."""

    __str__ = HyperctlError.__str__  # the message as written, not KeyError's repr of it


class ApiError(HyperctlError):
    """The daemon answered with an error status; a subclass for each status a client can act on."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


class BadRequest(ApiError):
    """400: a query the API does not take (a bad status, offset, stream)."""


class Unauthorized(ApiError):
    """401: no token, or not this batch's nor a job's."""


class Forbidden(ApiError):
    """403: a job's token, asking for another job."""


class NotFound(ApiError):
    """404: no such job, or no such endpoint."""


class Conflict(ApiError):
    """409: not in a state for it (a kill of a job that has ended, a local job's log stream)."""


_API_ERRORS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
}


def api_error(status: int, message: str) -> ApiError:
    """The typed error for a status the daemon answered (ApiError itself for the others: 405, 503)."""
    return _API_ERRORS.get(status, ApiError)(status, message)
