"""Watching, waiting for, and killing a batch or a job: what `batch watch`, `batch kill`, `job kill`
and the Python API (pyapi.py) all do, by the daemon when one runs, else from the batch folder."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hyperctl.batches import NoDaemonError, daemon_pid, load_spec, open_batch, summarize
from hyperctl.errors import Conflict, HyperctlError, NoSuchJobError
from hyperctl.layout import BatchDir
from hyperctl.spec import BatchStatus, JobStatus
from hyperctl.store import JobRecord, Store

WATCH_POLL = 25  # seconds a long poll waits for a change before asking again
GONE_WITHIN = 2  # seconds for a daemon that stopped answering to let go of its lock
KILL_WITHIN = 120  # seconds for a killed batch's daemon to end


def job_record(store: Store, batch: str, name: str) -> JobRecord:
    record = store.job(name)
    if record is None:
        raise NoSuchJobError(f"batch '{batch}' has no job named '{name}'{_names_beginning(store, name)}")
    return record


def _names_beginning(store: Store, name: str) -> str:
    """The jobs whose names begin with `name`: a name typed without the digest that ends it
    (`lr-0.1_width-64` for `lr-0.1_width-64-bc17cb794696`)."""
    found = [
        row[0]
        for row in store.conn.execute(
            "SELECT name FROM jobs WHERE substr(name, 1, ?) = ? ORDER BY rowid LIMIT 4", (len(name), name)
        )
    ]
    if not name or not found:
        return ""
    if len(found) == 1:
        return f" (did you mean '{found[0]}'?)"
    return f" (jobs whose names begin so: {', '.join(found[:3])}{', ...' if len(found) > 3 else ''})"


def attempt_number(record: JobRecord, attempt: int | None) -> int:
    """Attempt `attempt` of the job (from 1; None: its last), checked to exist."""
    if attempt is not None and (type(attempt) is not int or attempt < 1):  # 0 is no attempt, not the last
        raise HyperctlError(f"attempt: must be a whole number from 1, not {attempt!r}")
    n = record.attempts if attempt is None else attempt
    if n < 1 or n > record.attempts:
        if record.attempts == 0:
            raise HyperctlError(f"job '{record.name}' has not started yet (status {record.status.value})")
        raise HyperctlError(f"job '{record.name}' has attempts 1 to {record.attempts}, not {n}")
    return n


def attempt_ended(record: JobRecord, n: int) -> bool:
    """Whether attempt n of the job has ended (an earlier one, or the last one in a final status)."""
    return n < record.attempts or record.last is None or record.last.status.final


def batch_views(batch_dir: BatchDir, deadline: float | None = None) -> Iterator[dict[str, Any]]:
    """The running batch's view from its daemon, each time it changes (the API's long poll), until
    it is no longer running; nothing when no daemon runs it. Past `deadline` (time.monotonic()),
    the views stop coming (the last one may still say running). Once the daemon stops answering,
    returns when it has let go of the batch."""
    from hyperctl.client import DaemonUnreachableError, live_client

    try:
        client = live_client(batch_dir)
        version = -1
        while True:
            poll = WATCH_POLL if deadline is None else min(WATCH_POLL, math.ceil(deadline - time.monotonic()))
            if poll <= 0:
                return
            view = client.batch(wait_after=version, timeout=poll)
            version = view["version"]
            yield view
            if view["status"] != BatchStatus.RUNNING.value:
                return
    except NoDaemonError:
        return  # it has ended (or was not running): the folder tells how
    except DaemonUnreachableError:
        # It died (or ends): its sockets may close before its lock is let go. The lock tells.
        wait_daemon_gone(batch_dir, GONE_WITHIN, fail=False)


def wait_daemon_gone(batch_dir: BatchDir, within: float, fail: bool = True) -> bool:
    """Wait until no daemon holds the batch (the lock dies with its process); past `within`
    seconds, a one-line error (or, without fail, False)."""
    deadline = time.monotonic() + within
    while daemon_pid(batch_dir) is not None:
        if time.monotonic() > deadline:
            if fail:
                raise HyperctlError(f"batch {batch_dir.name}: the daemon has not stopped after {within:g} s")
            return False
        time.sleep(0.05)  # only while a daemon stops
    return True


def wait_for_end(batch_dir: BatchDir, timeout: float | None = None) -> str:
    """Wait until the batch is no longer running and return its status; TimeoutError after
    `timeout` seconds. A daemon that ends with its batch has let go of it on return (a retry or
    another run may start at once)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        for _ in batch_views(batch_dir, deadline):
            pass
        summary = summarize(batch_dir)
        if summary.problem is not None:  # a store it cannot read: why, not "unknown"
            raise HyperctlError(f"batch '{summary.name}': {summary.problem}")
        if summary.status != BatchStatus.RUNNING.value:
            break
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"batch {summary.name} still runs after {timeout:g} s")
        # Its daemon runs, but stopped answering for a while (batch_views waited): ask again.
    if summary.daemon_pid is not None and load_spec(batch_dir).daemon.exit_on_finish:
        left = KILL_WITHIN if deadline is None else max(deadline - time.monotonic(), 0)
        if not wait_daemon_gone(batch_dir, left, fail=False):
            raise TimeoutError(f"batch {summary.name} ended, but its daemon still runs after {timeout:g} s")
    return summary.status


@dataclass
class BatchKill:
    """What a kill of a batch did: asked its daemon, or (none ran) killed what one left running."""

    daemon: bool
    before: str  # the batch's status before the kill
    killed: list[str]  # with no daemon: the jobs it found still running, now killed


def kill_batch(batch_dir: BatchDir) -> BatchKill:
    """Stop the batch: ask its daemon to kill every running job and stop (see wait_daemon_gone),
    or, with none, kill what a dead one left running."""
    from hyperctl.client import live_client
    from hyperctl.daemon.runner import kill_offline

    before = summarize(batch_dir).status
    if daemon_pid(batch_dir) is None:
        return BatchKill(False, before, kill_offline(batch_dir))
    live_client(batch_dir).kill_batch()
    return BatchKill(True, before, [])


# How a kill of a job went: the CLI says each its own way.
KILLED = "killed"  # its daemon killed it
ENDED = "ended"  # it had ended already: nothing to do
KILLED_OFFLINE = "killed offline"  # no daemon ran: found and killed
NOT_FOUND_OFFLINE = "not found offline"  # no daemon ran, and no process of it was found


@dataclass
class JobKill:
    how: str  # one of the above
    status: str  # the job's status after it


def kill_job(batch_dir: BatchDir, job: str) -> JobKill:
    """Kill a job: by its batch's daemon, or, when none runs, its process where a dead one left it."""
    from hyperctl.client import live_client
    from hyperctl.daemon.runner import kill_offline

    batches_dir, batch = batch_dir.path.parent, batch_dir.name
    record = _record(batch_dir, job)
    if record.status.final:
        return JobKill(ENDED, record.status.value)
    if daemon_pid(batch_dir) is None:
        if record.status != JobStatus.RUNNING:
            raise HyperctlError(f"job '{job}' is {record.status.value}, and no daemon runs batch '{batch}'")
        if kill_offline(batch_dir, {job}):
            return JobKill(KILLED_OFFLINE, _record(batch_dir, job).status.value)
        now = _record(batch_dir, job).status  # what kill_offline found: its end, recorded
        return JobKill(ENDED if now.final else NOT_FOUND_OFFLINE, now.value)
    try:
        view = live_client(batch_dir).kill_job(job)
    except Conflict:  # it ended meanwhile
        with open_batch(batches_dir, batch) as (_, store):
            return JobKill(ENDED, job_record(store, batch, job).status.value)
    return JobKill(KILLED, view["status"])


def _record(batch_dir: BatchDir, job: str) -> JobRecord:
    with open_batch(batch_dir.path.parent, batch_dir.name) as (_, store):
        return job_record(store, batch_dir.name, job)


@dataclass
class Retried:
    jobs: list[str]  # the jobs taken back
    by_daemon: bool  # its daemon runs them now; else they are pending in the folder: resume runs them


def retry_jobs(batch_dir: BatchDir, jobs: list[str] | None, failed_only: bool) -> Retried:
    """Take back ended jobs that did not succeed (these, else every one; failed_only: not the
    killed ones), as `batch retry` and the Python API's retry() do: a running batch's daemon runs
    them at once (POST batch/retry); a batch no daemon runs has them pending again, for a resume.
    A job that cannot be retried is a one-line error naming it."""
    if daemon_pid(batch_dir) is not None:
        from hyperctl.client import live_client

        return Retried(live_client(batch_dir).retry(jobs, failed_only), by_daemon=True)
    from hyperctl.starting import requeue

    return Retried(requeue(batch_dir, jobs, failed_only), by_daemon=False)
