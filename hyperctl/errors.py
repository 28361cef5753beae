"""Errors a user can cause: the CLI prints them as one line and exits 2."""

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
