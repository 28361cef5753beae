"""What hyperctl's exit codes mean, and which one a batch's status gives."""

from __future__ import annotations

from enum import IntEnum

from hyperctl.spec import BatchStatus


class ExitStatus(IntEnum):
    """0 all went well, 1 some job did not succeed, 2 bad usage or config, 130 interrupted."""

    OK = 0
    JOBS_FAILED = 1
    USAGE = 2
    INTERRUPTED = 130


# A batch still running is no failure yet (`batch watch` may stop watching a live daemon).
_FOR_BATCH = {
    BatchStatus.FINISHED.value: ExitStatus.OK,
    BatchStatus.RUNNING.value: ExitStatus.OK,
    BatchStatus.INTERRUPTED.value: ExitStatus.INTERRUPTED,
}


def for_batch(status: BatchStatus | str) -> ExitStatus:
    """The exit code for a batch that ended (or is left) in this status: failed, killed and the
    statuses of a damaged folder are 1."""
    return _FOR_BATCH.get(status.value if isinstance(status, BatchStatus) else status, ExitStatus.JOBS_FAILED)
