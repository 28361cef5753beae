"""A batch whose daemon died: what the jobs it left running became, as their own files tell.

The store says `running` until a daemon records an attempt's end. With no daemon, the views read
what `batch resume` will read (attemptfiles, backends' recover): the exit code the launcher left,
with the file's mtime as the end, or, with none, whether the launcher still lives. A remote job's
files are on its host, which the CLI does not reach: its end is unknown until a daemon asks.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from functools import cached_property
from typing import Any

from hyperctl.attemptfiles import read_end
from hyperctl.batches import daemon_pid, runs_here
from hyperctl.layout import BatchDir
from hyperctl.output import plural
from hyperctl.spec import BatchStatus, JobStatus
from hyperctl.store import Attempt, Store

UNKNOWN = "unknown"  # a remote job's state, with no daemon to ask its host


class Unwatched:
    """Sees the attempts a dead daemon left running, and says what it saw in one line."""

    def __init__(self, batch_dir: BatchDir, interrupted: bool) -> None:
        self.batch_dir = batch_dir
        self.interrupted = interrupted  # the store says the batch runs: its daemon died
        self.seen: Counter[str] = Counter()
        self._known: dict[tuple[str, int], tuple[str, Attempt]] = {}  # each attempt is looked at once

    @cached_property
    def here(self) -> bool:
        """Whether its jobs run on this machine: read once a running job is looked at (no job
        runs in a finished batch, and its spec need not be read)."""
        return runs_here(self.batch_dir)

    @classmethod
    def of(cls, batch_dir: BatchDir, store: Store) -> Unwatched | None:
        """For a batch no daemon drives; None while one does (it records every end itself)."""
        if daemon_pid(batch_dir) is not None:
            return None
        return cls(batch_dir, store.meta().get("status") == BatchStatus.RUNNING.value)

    def see(self, job: str, status: JobStatus, attempt: Attempt | None) -> tuple[str, Attempt | None]:
        """A job's status (a JobStatus value, or UNKNOWN) and last attempt as its files tell them,
        for a job the store says runs; any other job as the store has it."""
        if status != JobStatus.RUNNING or attempt is None or attempt.status != JobStatus.RUNNING:
            return status.value, attempt
        key = (job, attempt.n)
        if key not in self._known:
            self._known[key] = self._attempt(job, attempt)
            self.seen[self._known[key][0]] += 1
        return self._known[key]

    def still_runs(self, job: str, status: JobStatus, attempt: Attempt) -> bool:
        """Whether the job may still run: its process lives, or its host is not asked (remote)."""
        return self.see(job, status, attempt)[0] in (JobStatus.RUNNING.value, UNKNOWN)

    def _attempt(self, job: str, a: Attempt) -> tuple[str, Attempt]:
        if not self.here:
            return UNKNOWN, a
        end = read_end(self.batch_dir.attempt_dir(job, a.n, a.layout))
        if end is not None:
            from hyperctl.backends.base import Exit
            from hyperctl.daemon.outcome import final_status

            status = final_status(Exit(end.exit_code))  # as resume will record it
            return status.value, dataclasses.replace(a, status=status, exit_code=end.exit_code, ended=end.ended)
        if self._alive(job, a):
            return JobStatus.RUNNING.value, a
        if a.pid is None and not os.path.exists(self.batch_dir.attempt_dir(job, a.n, a.layout) / "stdout"):
            return JobStatus.PENDING.value, a  # it never started: resume runs it
        return JobStatus.LOST.value, dataclasses.replace(a, status=JobStatus.LOST, reason="lost")

    def _alive(self, job: str, a: Attempt) -> bool:
        from hyperctl.backends import procfs
        from hyperctl.backends.base import IDENTITY_ENV, LAUNCHER_ENV

        if not procfs.available():
            return True  # cannot tell: as the store says
        if a.pid is not None:
            launcher = dict(zip(LAUNCHER_ENV, (self.batch_dir.name, job, str(a.n))))
            return procfs.is_launcher(a.pid, launcher, a.pid_started)
        pid = procfs.find_launcher(dict(zip(IDENTITY_ENV, (self.batch_dir.key, job, str(a.n)))))
        return pid is not None

    def told(self, view: dict[str, Any], job: str, status: JobStatus, attempt: Attempt | None) -> dict[str, Any]:
        """A job's view (views.job_view), or its last attempt's, with what its files tell, and why."""
        shown, seen = self.see(job, status, attempt)
        if shown == status.value and seen is attempt:
            return view
        view = {**view, "status": shown, "note": self.job_note(shown)}
        if seen is not None:
            view.update(ended=seen.ended, exit_code=seen.exit_code, reason=seen.reason)
        return view

    def job_note(self, shown: str) -> str:
        name = self.batch_dir.name
        told = {
            UNKNOWN: "it runs on a remote host, which only a daemon asks",
            JobStatus.RUNNING.value: "its process still runs",
            JobStatus.LOST.value: "its process is gone and left no exit code",
            JobStatus.PENDING.value: "it never started",
        }.get(shown, "its exitcode file tells how and when it ended")
        return f"no daemon drives batch {name}: {told}; hyperctl batch resume {name} takes it over"

    def note(self) -> str | None:
        """One line for a person: that no daemon drives the batch, what its files told, and what to
        do; None when there is nothing to say (no job was left running, the batch had ended)."""
        if not self.seen and not self.interrupted:
            return None
        name = self.batch_dir.name
        told = [
            f"{n} ended" if JobStatus(s).final else f"{n} still running" if s == JobStatus.RUNNING.value else f"{n} {s}"
            for s, n in sorted(self.seen.items())
            if s != UNKNOWN
        ]
        if self.seen[UNKNOWN]:
            told.append(f"{self.seen[UNKNOWN]} on remote hosts unknown")
        if told:
            left = f"of the {plural(sum(self.seen.values()), 'job')} it left running, " + ", ".join(told)
            how = " (read from their files)" if self.here else ""
            return f"no daemon drives batch {name}; {left}{how}: hyperctl batch resume {name} records them and goes on"
        return f"no daemon drives batch {name} (it stopped before the end): hyperctl batch resume {name} goes on"
