"""What a job's page shows, read from its batch's store as `job describe` reads it (Store.job,
Store.attempts, metricstore's summaries; with no daemon, Unwatched tells what the files say of
an attempt left running)."""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass

from hyperctl import metricstore
from hyperctl.batches import runs_here
from hyperctl.errors import HyperctlError
from hyperctl.layout import BatchDir
from hyperctl.pace import PROGRESS
from hyperctl.spec import JobStatus
from hyperctl.steering import job_record
from hyperctl.store import Attempt, JobRecord, Store
from hyperctl.unwatched import Unwatched


@dataclass
class AttemptRow:
    """A line of the attempts table."""

    attempt: Attempt
    status: str  # as shown: what its files tell when no daemon records its end
    duration: float | None
    end: str  # exit 3, signal 9 (SIGKILL), or -

    @property
    def n(self) -> int:
        return self.attempt.n


@dataclass
class JobPage:
    batch: str
    record: JobRecord
    status: str
    attempts: list[AttemptRow]
    note: str | None  # no daemon drives the batch: what that means for this job
    metrics: list[str]  # what any attempt reported, for the curves' picker
    here: bool  # its output is in the batch folder as it grows (a remote job's comes home at its end)

    @property
    def params(self) -> list[tuple[str, str]]:
        """Each param as a row: a number or a string as it is, anything else as JSON."""
        return [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in self.record.spec.params.items()]

    @property
    def last(self) -> AttemptRow | None:
        return self.attempts[-1] if self.attempts else None


def job_page(batch_dir: BatchDir, name: str, now: float) -> JobPage:
    """The job's page; a HyperctlError when the batch has no such job."""
    store = Store(batch_dir.db, readonly=True)
    try:
        record = job_record(store, batch_dir.name, name)
        attempts = store.attempts(name)
        unwatched = Unwatched.of(batch_dir, store)
        metrics: set[str] = set()
        for a in attempts:
            metrics.update(metricstore.summaries_of(store.conn, name, a.n))
    finally:
        store.close()
    status, note = record.status.value, None
    shown = {a.n: a.status.value for a in attempts}
    if unwatched is not None and record.last is not None:
        status, last = unwatched.see(name, record.status, record.last)
        if last is not None:
            attempts = [last if a.n == last.n else a for a in attempts]
            shown[last.n] = status
        if record.status == JobStatus.RUNNING:
            note = unwatched.job_note(status)
    rows = [AttemptRow(a, shown[a.n], a.duration(now), end_of(a)) for a in attempts]
    return JobPage(
        batch_dir.name,
        record,
        status,
        rows,
        note,
        sorted(metrics, key=lambda m: (m == PROGRESS, m)),
        runs_here(batch_dir),
    )


def end_of(a: Attempt) -> str:
    """How an attempt ended: its exit code, or the signal that ended it (by name too)."""
    if a.exit_code is not None:
        return f"exit {a.exit_code}"
    if a.signal is not None:
        try:
            return f"signal {a.signal} ({signal.Signals(a.signal).name})"
        except ValueError:
            return f"signal {a.signal}"
    return "-"


def attempt_number(page: JobPage, asked: str) -> int:
    """The attempt a log reader asks for (default: the last); a HyperctlError naming `attempt`."""
    if not page.attempts:
        raise HyperctlError(f"job {page.record.name} has not started yet")
    if not asked:
        return page.attempts[-1].n
    if not asked.isdigit() or not any(r.n == int(asked) for r in page.attempts):
        raise HyperctlError(f"attempt: job {page.record.name} has no attempt '{asked}'")
    return int(asked)
