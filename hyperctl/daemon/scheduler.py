"""Event-driven dispatch: start every job that fits, in order, the moment capacity frees.

No HTTP in here: the handlers and the CLI's progress read this object; tests drive it directly.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

from hyperctl.backends.base import MAX_PARAMS_ARG, Executor, Exit, Handle, Launch
from hyperctl.daemon.placement import Pool, Slot
from hyperctl.errors import ConfigError
from hyperctl.spec import BatchSpec, BatchStatus, JobSpec, JobStatus, Resource
from hyperctl.store import BatchDir, Store

logger = logging.getLogger(__name__)
_STOP_STATUS = {"timeout": JobStatus.TIMEOUT, "killed": JobStatus.KILLED}


@dataclass(frozen=True)
class Event:
    """A job changed status; what progress displays and tests wait for."""

    job: str
    status: JobStatus


def check_fits(spec: BatchSpec, pool: Pool) -> None:
    """A job no machine can ever hold is a config error before anything starts."""
    problems = []
    for i, job in enumerate(spec.jobs):
        why = pool.why_never_fits(job.resource)
        if why:
            problems.append(f"jobs[{i}].resource: {why}")
    if problems:
        raise ConfigError(problems)


def final_status(exit: Exit) -> JobStatus:
    if exit.reason in _STOP_STATUS:
        return _STOP_STATUS[exit.reason]
    return JobStatus.SUCCEEDED if exit.exit_code == 0 else JobStatus.FAILED


class Scheduler:
    """Owns the batch's run: placement, launches, status changes (each saved), the end."""

    def __init__(
        self,
        spec: BatchSpec,
        batch_dir: BatchDir,
        store: Store,
        executor: Executor,
        env: dict[str, str],
        job_token: Callable[[str], str],
    ) -> None:
        self.spec = spec
        self.batch_dir = batch_dir
        self.store = store
        self.executor = executor
        self.env = env  # what every job sees: batch name, portal
        self.job_token = job_token
        self.pool = Pool(executor.machines())
        self.specs: dict[str, JobSpec] = {j.name: j for j in spec.jobs}
        self.status: dict[str, JobStatus] = {}
        self.counts: Counter[JobStatus] = Counter()
        # Pending jobs queued by resource shape: the next start is found among a few queue
        # heads, not by scanning every pending job, so 100,000 jobs cost no more per event.
        self.queues: dict[Resource, deque[tuple[int, str]]] = {}
        self.running: dict[str, Handle] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.kill_requested: set[str] = set()
        self.listeners: list[Callable[[Event], None]] = []
        self.stopping: BatchStatus | None = None
        self.done: asyncio.Future[BatchStatus] = asyncio.get_running_loop().create_future()

    # -- start and dispatch --------------------------------------------
    def start(self) -> None:
        for position, record in enumerate(self.store.jobs()):
            self.status[record.name] = record.status
            self.counts[record.status] += 1
            if record.status == JobStatus.PENDING:
                self.queues.setdefault(record.spec.resource, deque()).append((position, record.name))
        self.dispatch()
        self._finish_if_done()

    def dispatch(self) -> None:
        """Start pending jobs, in order, while any fits somewhere."""
        while self.stopping is None:
            heads = sorted((q[0], shape) for shape, q in self.queues.items() if q)
            for (_, name), shape in heads:
                slot = self.pool.take(shape)
                if slot is not None:
                    self.queues[shape].popleft()
                    self._set_status(name, JobStatus.RUNNING)
                    self.tasks[name] = asyncio.ensure_future(self._run_attempt(name, slot))
                    break
            else:
                return

    async def _run_attempt(self, name: str, slot: Slot) -> None:
        status = JobStatus.PENDING  # stopped before it could start: it stays pending
        try:
            if name in self.kill_requested:  # killed before its task began
                status = JobStatus.KILLED
                self.store.set_status(name, status)
            elif self.stopping is None:
                status = await self._attempt(self.specs[name], slot)
        except Exception:  # a bug here must not leave the job running for ever
            logger.exception("job %s: internal error", name)
            status = JobStatus.FAILED
            self.store.set_status(name, status)
        finally:
            self.pool.give_back(slot)
            self.running.pop(name, None)
            self.tasks.pop(name, None)
        self._set_status(name, status)
        self.dispatch()
        self._finish_if_done()

    async def _attempt(self, job: JobSpec, slot: Slot) -> JobStatus:
        n = self.store.begin_attempt(job.name, slot.machine.name, list(slot.gpus))
        try:
            handle = await self.executor.start(self._launch(job, n, slot))
        except OSError as e:
            self.store.end_attempt(job.name, n, JobStatus.FAILED, reason=f"could not start: {e}")
            return JobStatus.FAILED
        self.running[job.name] = handle
        self.store.set_pid(job.name, n, handle.pid, handle.pid_started)
        if job.name in self.kill_requested:  # killed while it was being started
            self.executor.kill(handle)
        exit = await self.executor.wait(handle)
        status = final_status(exit)
        self.store.end_attempt(job.name, n, status, exit.exit_code, exit.signal, exit.reason)
        return status

    def _launch(self, job: JobSpec, n: int, slot: Slot) -> Launch:
        attempt_dir = self.batch_dir.attempt_dir(job.name, n)
        os.makedirs(attempt_dir, exist_ok=True)  # and the job folder with it
        data_dir = job.execution.data_dir or str(self.batch_dir.job_dir(job.name))
        if job.execution.data_dir:
            os.makedirs(data_dir, exist_ok=True)
        working_dir = job.execution.working_dir or data_dir
        params_file = self.batch_dir.params_file(job.name)
        params_json = json.dumps(job.params)
        if len(params_json) > MAX_PARAMS_ARG:
            params_file.write_text(params_json)
            params_json = ""
        env = {
            **job.execution.env,
            **self.env,
            "HYPERCTL_JOB_NAME": job.name,
            "HYPERCTL_JOB_DATA_DIR": data_dir,
            "HYPERCTL_JOB_WORKING_DIR": working_dir,
            "HYPERCTL_JOB_PARAMS_FILE": str(params_file),
            "HYPERCTL_JOB_TOKEN": self.job_token(job.name),
            "HYPERCTL_ATTEMPT": str(n),
        }
        if slot.machine.gpus:  # a machine with GPUs: a job sees only its own, or none
            env["CUDA_VISIBLE_DEVICES"] = env["HYPERCTL_GPUS"] = ",".join(map(str, slot.gpus))
        return Launch(
            job=job.name,
            attempt=n,
            command=job.execution.command,
            working_dir=working_dir,
            attempt_dir=attempt_dir,
            params_file=params_file,
            params_json=params_json,
            env=env,
            machine=slot.machine,
            gpus=slot.gpus,
            timeout=job.execution.timeout,
            kill_grace=job.execution.kill_grace,
        )

    def _set_status(self, name: str, status: JobStatus) -> None:
        old = self.status.get(name)
        if old is not None:
            self.counts[old] -= 1
        self.status[name] = status
        self.counts[status] += 1
        event = Event(name, status)
        for listener in self.listeners:
            listener(event)

    def _finish_if_done(self) -> None:
        if self.done.done() or self.running or self.tasks:
            return
        if self.stopping is None and any(self.queues.values()):
            return  # jobs wait for capacity that a running job will free
        if self.stopping is not None:
            result = self.stopping
        elif self.counts[JobStatus.SUCCEEDED] == len(self.status):
            result = BatchStatus.FINISHED
        else:
            result = BatchStatus.FAILED
        self.done.set_result(result)

    # -- control --------------------------------------------------------
    async def kill_job(self, name: str) -> JobStatus:
        """Kill one job: a running one as a whole process group, a pending one before it starts."""
        status = self.status[name]
        if status == JobStatus.PENDING:
            queue = self.queues[self.specs[name].resource]
            queue.remove(next(item for item in queue if item[1] == name))
            self.store.set_status(name, JobStatus.KILLED)
            self._set_status(name, JobStatus.KILLED)
            self._finish_if_done()
        elif name in self.tasks:
            task = self.tasks[name]
            handle = self.running.get(name)
            if handle is not None:
                await self.executor.kill(handle)
            else:
                self.kill_requested.add(name)
            await asyncio.shield(task)
        return self.status[name]

    async def stop(self, status: BatchStatus, grace: float | None = None) -> None:
        """Start no more jobs; kill the running ones. Pending jobs stay pending for a later run."""
        self.stopping = self.stopping or status
        kills = [self.executor.kill(h, grace=grace) for h in list(self.running.values())]
        await asyncio.gather(*kills, *list(self.tasks.values()), return_exceptions=True)
        self._finish_if_done()
