"""Which ended jobs a running batch's daemon takes back for a retry (the API's and the dashboard's
"retry failed jobs"), or why it takes none. Scheduler.retry makes them pending again.

A halted batch (halt_on_failures) refuses: it starts no job, so a retried one would only wait; a
batch that is being stopped, or whose store cannot record the run, refuses too. A batch that has
ended (its daemon kept up by exit_on_finish: false) is retried as any ended batch is: `hyperctl
batch retry NAME --failed`, which starts a daemon for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hyperctl.daemon.outcome import RETRIED, retried
from hyperctl.errors import HyperctlError, NoSuchJobError

if TYPE_CHECKING:
    from hyperctl.daemon.scheduler import Scheduler


class RetryRefusedError(HyperctlError):
    """The batch takes no job back now, or not the ones named: why, in one line (HTTP 409)."""


def why_not(scheduler: Scheduler) -> str | None:
    """Why this batch takes no job back now; None when it does."""
    name = scheduler.spec.name
    if scheduler.done.done():
        return (
            f"batch '{name}' has ended: stop its daemon (`hyperctl batch kill {name}`), then retry its jobs with "
            f"`hyperctl batch retry {name} --failed`"
        )
    if scheduler.stopping is not None:
        return f"batch '{name}' is being stopped ({scheduler.stopping.value}): no job starts again"
    if scheduler.halted:
        limit = scheduler.spec.scheduler.halt_on_failures
        return (
            f"batch '{name}' halted after {scheduler.failures} failures (halt_on_failures: {limit}) and starts no "
            f"job: once it has ended, `hyperctl batch retry {name} --failed`"
        )
    if scheduler.fault is not None:
        return (
            f"batch '{name}' cannot record its run ({scheduler.fault}): once that is fixed, "
            f"`hyperctl batch resume {name}`"
        )
    if scheduler.paused:
        return f"batch '{name}' starts no job now"
    return None


def chosen(scheduler: Scheduler, jobs: list[str] | None, failed_only: bool = False) -> list[str]:
    """The jobs to take back: these (each must have ended without success), else every one that
    did not succeed (failed, timeout, killed, lost; failed_only: not the killed ones), in the batch's
    order; as `hyperctl batch retry` chooses for an ended batch (starting.requeue)."""
    refusal = why_not(scheduler)
    if refusal is not None:
        raise RetryRefusedError(refusal)
    if not jobs:
        wanted = retried(failed_only)
        return [name for name, status in scheduler.status.items() if status in wanted]
    names = list(dict.fromkeys(jobs))
    for name in names:
        if not scheduler.has_job(name):
            raise NoSuchJobError(f"no job named '{name}' in this batch")
        status = scheduler.status_of(name)
        if status not in RETRIED:
            raise RetryRefusedError(
                f"job '{name}' is {status.value}: only jobs that ended without success (failed, timeout, killed, "
                "lost) are retried"
            )
    return names
