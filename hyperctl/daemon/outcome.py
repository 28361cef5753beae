"""How an attempt's end becomes its job's status, and whether the job runs again."""

from __future__ import annotations

from hyperctl.backends.base import Exit
from hyperctl.spec import JobSpec, JobStatus

# Why hyperctl ended an attempt. "interrupted": the whole run was stopped (Ctrl-C, SIGTERM): the
# attempt counts as killed, and its job is pending again, for `batch resume` to run.
INTERRUPTED = "interrupted"
REQUEUED = "requeued"  # the cluster ended the attempt and runs the job again itself (Exit.again)
_REASON_STATUS = {
    REQUEUED: JobStatus.LOST,
    "timeout": JobStatus.TIMEOUT,
    "killed": JobStatus.KILLED,
    "lost": JobStatus.LOST,
    INTERRUPTED: JobStatus.KILLED,
}
FAILURES = (JobStatus.FAILED, JobStatus.TIMEOUT, JobStatus.LOST)  # what retries and halt_on_failures count
# Ended without success: what `batch retry` and the daemon's retry (daemon/retrying.py) run again.
RETRIED = (*FAILURES, JobStatus.KILLED)


def retried(failed_only: bool = False) -> tuple[JobStatus, ...]:
    """What a retry takes back by default: every end without success; failed_only (--failed): not kills."""
    return FAILURES if failed_only else RETRIED


def final_status(exit: Exit) -> JobStatus:
    """The status an attempt's end gives its job: hyperctl's reason for ending it, else its exit code."""
    if exit.reason in _REASON_STATUS:
        return _REASON_STATUS[exit.reason]
    return JobStatus.SUCCEEDED if exit.exit_code == 0 else JobStatus.FAILED


def shell_code(exit: Exit) -> int | None:
    """The exit code as a shell shows it ($?): a process ended by signal N is 128 + N, so that
    `retry_on: [137]` means killed by SIGKILL (an OOM kill) whether the job's whole process group
    was killed or a process in it."""
    if exit.exit_code is not None:
        return exit.exit_code
    return 128 + exit.signal if exit.signal else None


def should_retry(job: JobSpec, status: JobStatus, exit_code: int | None, attempts: int) -> bool:
    """Killed jobs never run again; failures do while retries are left, when `retry_on` names their end."""
    if status not in FAILURES or attempts > job.retry.max_retries:
        return False
    on = job.retry.on
    if status == JobStatus.FAILED:
        return "failed" in on or exit_code in on
    return status.value in on
