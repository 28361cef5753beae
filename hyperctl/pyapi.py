"""The Python API: drive batches from a script or a notebook, as the CLI does, by the same functions
(starting.py, steering.py, joblogs.py): `from hyperctl import Batch`.

    batch = Batch.run("sweep.json")              # as `hyperctl run`; detach=True: in the background
    batch.status, len(batch), batch["lr-0.1"].metrics()
    Batch("sweep").wait(timeout=600)             # an existing batch

Errors are HyperctlError subclasses (errors.py): ConfigError (its .problems name the fields),
NoSuchBatchError, NoSuchJobError, and the daemon's answers (NotFound, Conflict, ...).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hyperctl import steering
from hyperctl.batches import BatchSummary, find_batch, open_batch, resolve_batches_dir, summarize
from hyperctl.layout import BatchDir
from hyperctl.rows import Rows
from hyperctl.spec import BatchSpec

if TYPE_CHECKING:
    from hyperctl.daemon.runner import RunOptions
    from hyperctl.metricsfile import Summary
    from hyperctl.starting import Config
    from hyperctl.store import JobRecord


class Batch:
    """A batch in a batches data dir (default: $HYPERCTL_BATCHES_DATA_DIR, else
    ~/hyperctl-batches-data-dir), read from its folder, steered through its daemon."""

    def __init__(self, name: str, data_dir: str | os.PathLike[str] | None = None) -> None:
        """Open an existing batch (NoSuchBatchError when the data dir has none of that name)."""
        self._dir = find_batch(resolve_batches_dir(os.fspath(data_dir) if data_dir else None), name)
        self._daemon: subprocess.Popen[bytes] | None = None  # the daemon this object started, if any

    @classmethod
    def run(
        cls,
        config: Config,
        *,
        detach: bool = False,
        name: str | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        template: bool = False,
    ) -> Batch:
        """Run a batch as `hyperctl run` does: a batch file (JSON or YAML; with template=True, a
        template to expand), its document as a dict (relative paths from the current folder), or
        a BatchSpec. Validated first (ConfigError, nothing started); jobs that succeeded before
        with the same spec are skipped. Returns once the batch has ended, or, with detach, once
        its daemon runs it in the background. Ctrl-C while it waits interrupts the batch as in
        `hyperctl run` (its running jobs are killed and are pending again: `resume()`)."""
        from hyperctl.daemon.runner import RunOptions
        from hyperctl.starting import load_config

        spec, source = load_config(config, name=name, template=template)
        batches_dir = resolve_batches_dir(os.fspath(data_dir) if data_dir else None)
        options = RunOptions(batches_dir=batches_dir, source=source, same_batch=name is not None)
        return cls._start(spec, options, detach)

    @classmethod
    def _start(cls, spec: BatchSpec, options: RunOptions, detach: bool) -> Batch:
        from hyperctl.starting import start_daemon

        spawned: list[subprocess.Popen[bytes]] = []
        try:
            start_daemon(spec, options, on_spawn=spawned.append)
            batch = cls(spec.name, options.batches_dir)
            batch._daemon = spawned[0]
            if not detach:
                batch.wait()
        except KeyboardInterrupt:
            # As Ctrl-C in `hyperctl run`: the daemon, in a session of its own, is told.
            if spawned and spawned[0].poll() is None:
                os.kill(spawned[0].pid, signal.SIGINT)
                steering.wait_daemon_gone(BatchDir(options.batches_dir, spec.name), steering.KILL_WITHIN, fail=False)
            raise
        return batch

    # -- what it is ------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._dir.name

    @property
    def path(self) -> Path:
        """The batch folder."""
        return self._dir.path

    @property
    def status(self) -> str:
        """running, finished, failed, killed or interrupted (its daemon died: `resume()`)."""
        return self.summary.status

    @property
    def summary(self) -> BatchSummary:
        """Its status, counts by job status, times and daemon, as `batch list --json` shows them."""
        return summarize(self._dir)

    def __len__(self) -> int:
        with open_batch(self._dir.path.parent, self.name) as (_, store):
            return sum(store.counts().values())

    def __iter__(self) -> Iterator[Job]:
        with open_batch(self._dir.path.parent, self.name) as (_, store):
            names = [row.name for row in store.job_rows()]
        return (Job(self, name) for name in names)

    def __getitem__(self, job: str) -> Job:
        """A job by name (NoSuchJobError, a KeyError too, when the batch has none of that name)."""
        with open_batch(self._dir.path.parent, self.name) as (_, store):
            steering.job_record(store, self.name, job)
        return Job(self, job)

    def __contains__(self, job: object) -> bool:
        with open_batch(self._dir.path.parent, self.name) as (_, store):
            return isinstance(job, str) and store.job(job) is not None

    def __repr__(self) -> str:
        return f"Batch({self.name!r}, data_dir={str(self._dir.path.parent)!r})"

    # -- steering it -----------------------------------------------------------------------------
    def wait(self, timeout: float | None = None) -> str:
        """Wait until the batch no longer runs (told by its daemon as it ends, no polling) and
        return its status; TimeoutError after `timeout` seconds."""
        if timeout is not None and (type(timeout) not in (int, float) or not timeout >= 0):  # NaN too
            raise ValueError(f"timeout: must be seconds (a number, 0 or more) or None, not {timeout!r}")
        status = steering.wait_for_end(self._dir, timeout)
        if self._daemon is not None:
            self._daemon.poll()  # reap it once it has gone
        return status

    def kill(self) -> str:
        """Kill every running job (TERM, then KILL after its kill_grace) and stop the daemon, as
        `hyperctl batch kill`; returns the batch's status then (an ended batch is left as it is)."""
        if steering.kill_batch(self._dir).daemon:
            steering.wait_daemon_gone(self._dir, steering.KILL_WITHIN)
        return self.status

    def resume(self, *, detach: bool = False) -> Batch:
        """Go on after a crash or an interrupt, as `hyperctl batch resume`: pending jobs run,
        jobs left running are watched again, what succeeded never runs twice."""
        import warnings

        from hyperctl.starting import resume_run

        resumed = resume_run(self._dir.path.parent, self.name)
        if resumed.note:
            warnings.warn(resumed.note, stacklevel=2)
        started = Batch._start(resumed.spec, resumed.options, detach)
        self._daemon = started._daemon
        return self

    def retry(self, jobs: list[str] | None = None, *, failed: bool = False, detach: bool = False) -> list[str]:
        """Run the batch's jobs that did not succeed again, as `hyperctl batch retry`: these jobs,
        else every one (failed=True: not the killed ones). A running batch's daemon runs them at
        once; an ended batch is resumed (detach as resume() takes it). Returns the jobs retried
        (none: nothing was started)."""
        from hyperctl.steering import retry_jobs

        retried = retry_jobs(self._dir, jobs, failed)
        if retried.jobs and not retried.by_daemon:
            self.resume(detach=detach)
        return retried.jobs

    def compare(self, columns: str | list[str] | None = None, **options: Any) -> Rows:
        """One row per job: its params and metrics, as `hyperctl compare` shows them (columns in its
        grammar: "=lr", "loss", "min loss", ...; options: sort, where, top, all_params, attempt).
        columns, sort and where each take one string as the command's option does, or a list."""
        from hyperctl import comparison

        # A string is one expression (as -c, --sort, --where take it), never its characters.
        columns = [columns] if isinstance(columns, str) else columns
        options.update({k: [v] for k, v in options.items() if k in ("sort", "where") and isinstance(v, str)})
        table = comparison.compare([self._dir], columns, **options)
        return Rows(table.rows, table.columns)


class Job:
    """One job of a batch: read fresh from the batch folder at each call."""

    def __init__(self, batch: Batch, name: str) -> None:
        self.batch = batch
        self.name = name

    def _record(self) -> JobRecord:
        with open_batch(self.batch.path.parent, self.batch.name) as (_, store):
            return steering.job_record(store, self.batch.name, self.name)

    @property
    def status(self) -> str:
        """pending, running, succeeded, failed, killed, timeout or lost; with no daemon, a job it
        left running as its files tell (`unknown` on a remote host)."""
        from hyperctl.unwatched import Unwatched

        with open_batch(self.batch.path.parent, self.batch.name) as (batch_dir, store):
            record = steering.job_record(store, self.batch.name, self.name)
            unwatched = Unwatched.of(batch_dir, store)
            if unwatched is None:
                return record.status.value
            return unwatched.see(self.name, record.status, record.last)[0]

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._record().spec.params)

    @property
    def attempts(self) -> int:
        """How many times it has started."""
        return self._record().attempts

    def metrics(self, key: str | None = None, attempt: int | None = None) -> Rows:
        """Every point an attempt (default: the last) reported, in order: a row of step, t (its
        time) and each metric (only `key`'s points, with key)."""
        from hyperctl import metricstore

        with open_batch(self.batch.path.parent, self.batch.name) as (_, store):
            record = steering.job_record(store, self.batch.name, self.name)
            n = steering.attempt_number(record, attempt)
            points = metricstore.points_of(store.conn, self.name, n)
        if key is not None:
            points = metricstore.points_of_metric(points, key, self.name, n, steering.attempt_ended(record, n))
            rows = [{"step": p.step, "t": p.t, key: p.values[key]} for p in points]
            return Rows(rows, ["step", "t", key])
        keys = sorted({k for p in points for k in p.values})
        return Rows(({"step": p.step, "t": p.t, **p.values} for p in points), ["step", "t", *keys])

    def summary(self, attempt: int | None = None) -> dict[str, Summary]:
        """Each metric of an attempt (default: the last): last, min, max, their steps, count."""
        from hyperctl import metricstore

        with open_batch(self.batch.path.parent, self.batch.name) as (_, store):
            n = steering.attempt_number(steering.job_record(store, self.batch.name, self.name), attempt)
            return metricstore.summaries_of(store.conn, self.name, n)

    def logs(self, stderr: bool = False, attempt: int | None = None) -> str:
        """An attempt's stdout (or stderr) as it is now (default: the last attempt)."""
        from hyperctl.joblogs import read_output

        record = self._record()
        n = steering.attempt_number(record, attempt)
        data = read_output(self.batch._dir, record, n, "stderr" if stderr else "stdout")
        return data.decode(errors="replace")

    def kill(self) -> str:
        """Kill it (every process it started), as `hyperctl job kill`; returns its status then. A job
        that has ended is left as it is."""
        return steering.kill_job(self.batch._dir, self.name).status

    def __repr__(self) -> str:
        return f"Job({self.batch.name!r}, {self.name!r})"
