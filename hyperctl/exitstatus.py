"""What hyperctl's exit codes mean."""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """0 all went well, 1 some job did not succeed, 2 bad usage or config, 130 interrupted."""

    OK = 0
    JOBS_FAILED = 1
    USAGE = 2
    INTERRUPTED = 130
