"""What the API, the dashboard and the progress display read of a running batch: the
Scheduler's read side, apart from its control flow (scheduler.py). Reads from memory where it can
(counts, progress), else from the store."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncGenerator
from typing import Any

from hyperctl import metricstore
from hyperctl.backends.base import Executor, Handle
from hyperctl.daemon.metricsreader import MetricsReader
from hyperctl.daemon.placement import Pool
from hyperctl.errors import HyperctlError
from hyperctl.layout import BatchDir
from hyperctl.spec import JobSpec, JobStatus
from hyperctl.store import Store
from hyperctl.views import batch_view, job_view, machine_record, machines_view, placed_by_daemon


class NotFollowableError(HyperctlError):
    """A job's output cannot be followed through the daemon: it is not running, or is local."""


class Reads:
    """The read methods of Scheduler, over the state it keeps."""

    specs: dict[str, JobSpec]
    status: dict[str, JobStatus]
    counts: Counter[JobStatus]
    running: dict[str, Handle]
    store: Store
    batch_dir: BatchDir
    metrics: MetricsReader
    executor: Executor
    pool: Pool
    version: int

    def has_job(self, name: str) -> bool:
        return name in self.specs

    def status_of(self, name: str) -> JobStatus:
        return self.status[name]

    def job_view(self, name: str) -> dict[str, Any]:
        """A job as the store has it now (views.job_view), with the progress its last attempt reported."""
        record = self.store.job(name)
        assert record is not None
        progress = metricstore.progress_of(self.store.conn, job=name).get(name)
        return job_view(record, self.batch_dir, progress)

    def job_views(self, status: JobStatus | None = None) -> list[dict[str, Any]]:
        progress = metricstore.progress_of(self.store.conn, status)
        return [job_view(record, self.batch_dir, progress.get(record.name)) for record in self.store.jobs(status)]

    def progress_now(self, name: str) -> float | None:
        """The progress a running job reported last (0..1), from memory: no query."""
        handle = self.running.get(name)
        return self.metrics.progress_of(name, handle.launch.attempt) if handle is not None else None

    def batch_view(self) -> dict[str, Any]:
        """The batch (views.batch_view) and its version, which a long poll waits to pass; with the
        running jobs' reported progress summed (the jobs' worth they have done), for an ETA that
        counts it."""
        view = {**batch_view(self.store, self.batch_dir), "version": self.version}
        return {**view, "running_progress": round(self.running_progress(), 6)}

    def running_progress(self) -> float:
        """The running jobs' reported progress summed: the jobs' worth they have done. From memory."""
        return sum(self.metrics.progress().values(), 0.0)

    def machines_view(self) -> list[dict[str, Any]]:
        """Every machine: up, or down and why; its running jobs and what they use."""
        machines = [machine_record(m) for m in self.pool.machines]
        return machines_view(machines, placed_by_daemon(self.running, self.specs), self.pool.down)

    def running_here(self) -> dict[str, int] | None:
        """Each running attempt's pid, which leads its session, when jobs run on this machine (the
        local backend): what the dashboard samples CPU and memory of. None when they run elsewhere."""
        if self.executor.kind != "local":
            return None
        return {name: handle.pid for name, handle in self.running.items() if handle.pid is not None}

    def running_on(self) -> dict[str, dict[str, int]]:
        """Each machine's running attempts: job -> pid, which leads the attempt's session there."""
        on: dict[str, dict[str, int]] = {}
        for name, handle in self.running.items():
            if handle.pid is not None:
                on.setdefault(handle.launch.machine.name, {})[name] = handle.pid
        return on

    def counts_now(self) -> dict[str, int]:
        """Jobs by status as they are now, from memory: no query."""
        return {status.value: n for status, n in self.counts.items()}

    def follow_output(
        self, name: str, stream: str, offset: int, lines: int | None, follow: bool
    ) -> AsyncGenerator[bytes, None]:
        """A running job's stdout or stderr where it runs (Executor.follow); NotFollowableError
        when it is not running, or its output is in the batch folder already."""
        handle = self.running.get(name)
        if handle is None:
            raise NotFollowableError(f"job '{name}' is not running")
        if self.executor.files_here:
            raise NotFollowableError(f"job '{name}' writes its output in the batch folder")
        return self.executor.follow(handle, stream, offset, lines, follow)
