"""Where an attempt's stdout and stderr are, and why one is missing: for `hyperctl job logs` and the
Python API's job.logs(), read from the batch folder, or, for a running remote job, through the
batch's daemon (its files come home when it ends)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hyperctl.batches import NoDaemonError, runs_here
from hyperctl.errors import Conflict, HyperctlError
from hyperctl.layout import BatchDir
from hyperctl.spec import JobStatus
from hyperctl.store import Attempt, JobRecord, Store
from hyperctl.unwatched import Unwatched


@dataclass
class Output:
    """Attempt n's stdout or stderr."""

    path: Path
    folder: Path  # the attempt's records
    missing: str  # what to say when the file is not there once the attempt has ended
    elsewhere: bool  # it runs on another machine: read through the daemon until it ends


def attempt_of(batch_dir: BatchDir, job: str, n: int) -> Attempt:
    store = Store(batch_dir.db, readonly=True)
    try:
        return next(a for a in store.attempts(job) if a.n == n)
    finally:
        store.close()


def output_of(batch_dir: BatchDir, record: JobRecord, n: int, stream: str) -> Output:
    job = record.name
    attempt = attempt_of(batch_dir, job, n)
    folder = batch_dir.attempt_dir(job, n, attempt.layout)
    path = folder / stream
    elsewhere = (
        record.status == JobStatus.RUNNING and n == record.attempts and not runs_here(batch_dir) and not path.exists()
    )
    missing = f"job '{job}': attempt {n} left no {stream} ({path} is missing: deleted?)"
    if attempt.pid is None and attempt.reason and attempt.status.final:  # no process ever ran
        missing = f"job '{job}': attempt {n} has no {stream}: {attempt.reason}"
    elif attempt.status == JobStatus.LOST:  # e.g. its machine stopped answering before it came home
        missing = f"job '{job}': attempt {n} was lost, and no {stream} of it reached {path}"
    return Output(path, folder, missing, elsewhere)


def attempt_ended(batch_dir: BatchDir, job: str, n: int, folder: Path) -> bool:
    """Whether attempt n, whose records are in `folder`, has ended."""
    if (folder / "exitcode").exists():
        return True
    store = Store(batch_dir.db, readonly=True)
    try:
        attempt = next((a for a in store.attempts(job) if a.n == n), None)
        if attempt is None or attempt.status.final:
            return True
        # No daemon records its end: its process tells (a job lost with its daemon never ends).
        unwatched = Unwatched.of(batch_dir, store)
        return unwatched is not None and not unwatched.still_runs(job, attempt.status, attempt)
    finally:
        store.close()


def from_daemon(batch_dir: BatchDir, record: JobRecord, stream: str, tail: int | None, follow: bool) -> Iterator[bytes]:
    """A running remote job's output so far (and, with follow, as it grows, to its end), read on
    its machine by the batch's daemon; nothing once it has ended meanwhile (its output is home)."""
    from hyperctl.client import DaemonUnreachableError, live_client

    job = record.name
    host = record.last.host if record.last else "its machine"
    try:
        yield from live_client(batch_dir).job_output(job, stream, lines=tail, follow=follow)
    except (NoDaemonError, DaemonUnreachableError):
        batch = batch_dir.name
        raise HyperctlError(
            f"job '{job}' runs on {host}; its output comes home when it ends, and no daemon of batch '{batch}' "
            f"answers to read it there now (start one: hyperctl batch resume {batch})"
        ) from None
    except Conflict:  # it ended meanwhile, and its output is home
        return


def read_output(batch_dir: BatchDir, record: JobRecord, n: int, stream: str) -> bytes:
    """Attempt n's stdout or stderr as it is now (empty while it starts)."""
    output = output_of(batch_dir, record, n, stream)
    if output.elsewhere:
        data = b"".join(from_daemon(batch_dir, record, stream, None, follow=False))
        if data or not output.path.exists():
            return data
    try:
        return output.path.read_bytes()
    except FileNotFoundError:
        # Every attempt that ran leaves both files, empty ones too: one missing at its end was removed.
        if attempt_ended(batch_dir, record.name, n, output.folder):
            raise HyperctlError(output.missing) from None
        return b""  # starting: it has not opened its output yet
