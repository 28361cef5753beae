"""Event-driven dispatch: start every job that fits, in order, the moment capacity frees.

No HTTP in here: the handlers and the CLI's progress read this object through its read methods
(has_job, job_view, batch_view, machines_view, counts_now, ...); tests drive it directly.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

from hyperctl.backends.base import Executor, Exit, Handle, Launch, LaunchRefusedError, Machine, MachineUnavailableError
from hyperctl.daemon import retrying
from hyperctl.daemon.launching import make_launch
from hyperctl.daemon.machines import Machines
from hyperctl.daemon.metricsreader import MetricsReader
from hyperctl.daemon.outcome import FAILURES, INTERRUPTED, REQUEUED, final_status, shell_code, should_retry
from hyperctl.daemon.placement import Pool, Slot
from hyperctl.daemon.schedulerreads import Reads
from hyperctl.errors import HyperctlError
from hyperctl.layout import CURRENT, BatchDir, Layout
from hyperctl.outputscalars import OutputScalars
from hyperctl.spec import BatchSpec, BatchStatus, JobSpec, JobStatus, Resource
from hyperctl.store import JobRecord, Store
from hyperctl.storefaults import StoreError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    """A job changed status; what progress displays and tests wait for."""

    job: str
    status: JobStatus
    retry_of: JobStatus | None = None  # pending again: how the attempt that will be retried ended


class Scheduler(Reads):
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
        self.metrics = MetricsReader(
            store.conn, lambda e: logger.warning("metrics not stored: %s", e), OutputScalars.of(spec.metrics.output)
        )
        self.executor = executor
        executor.live_files = self.metrics.files()
        self.env = env  # what every job sees: batch name, portal
        self.job_token = job_token
        self.pool = Pool(executor.machines())
        self.machines = Machines(self.pool, executor, store, self._machines_changed, lambda: self.done.done())
        executor.on_machine_down = self.machine_down
        executor.on_machine_up = self.machine_up
        executor.on_placed = self.placed
        self.specs: dict[str, JobSpec] = {j.name: j for j in spec.jobs}
        self.status: dict[str, JobStatus] = {}
        self.attempts: dict[str, int] = {}
        self.counts: Counter[JobStatus] = Counter()
        # Pending jobs queued by resource shape: the next start is found among a few queue
        # heads, not by scanning every pending job, so 100,000 jobs cost no more per event.
        self.queues: dict[Resource, deque[tuple[int, str]]] = {}
        self.position = {j.name: i for i, j in enumerate(spec.jobs)}
        self.running: dict[str, Handle] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.last_slot: dict[str, Slot] = {}  # where a job last ran: a retry prefers elsewhere
        self.kill_requested: set[str] = set()
        self.failures = 0
        self.halted = False  # halt_on_failures reached: no new job starts
        # Why the store cannot record the run (a full disk, a damaged file): no new job starts, the
        # running ones go on, and the batch ends with them; `batch resume` goes on once it is fixed.
        self.fault: str | None = None
        self.unrecorded: dict[str, tuple[int, Exit]] = {}  # job ends the store could not take yet
        self.recovering = False
        self.paused = False  # set by kill_offline: reattach and record, start nothing
        self.listeners: list[Callable[[Event], None]] = []
        self.stopping: BatchStatus | None = None
        # Resolved by the first stop (a signal, `batch kill`): a daemon kept up after the batch's
        # end (exit_on_finish: false) exits then.
        self.stop_requested: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.done: asyncio.Future[BatchStatus] = asyncio.get_running_loop().create_future()
        self.version = 0  # bumped on every change; watchers long-poll on it
        self._changed = asyncio.get_running_loop().create_future()

    # -- start and dispatch --------------------------------------------
    async def start(self) -> None:
        """Take over the store's jobs: reattach what a previous daemon left running, then dispatch."""
        if not self.paused:  # kill_offline reaches no machine: the daemon's view of them stays
            self.machines.save()
        recovering = []
        for row in self.store.job_rows():  # no specs decoded: this batch's are in memory already
            self.status[row.name] = row.status
            self.attempts[row.name] = row.attempts
            self.counts[row.status] += 1
            if row.status == JobStatus.PENDING:
                self._enqueue(row.name)
            elif row.status == JobStatus.RUNNING:
                record = self.store.job(row.name)
                assert record is not None
                recovering.append(self._recover(record))
        self.recovering = True  # every recovered job holds its slot before anything new starts
        try:
            await asyncio.gather(*recovering)
        finally:
            self.recovering = False
        self.dispatch()
        self._finish_if_done()

    def _enqueue(self, name: str) -> None:
        queue = self.queues.setdefault(self.specs[name].resource, deque())
        item = (self.position[name], name)
        if not queue or queue[-1] < item:
            queue.append(item)
        else:  # a retry goes back to its place, ahead of later jobs
            bisect.insort(queue, item)

    def dispatch(self) -> None:
        """Start pending jobs, in order, while any fits somewhere."""
        while self.stopping is None and not (self.halted or self.recovering or self.paused or self.fault):
            heads = sorted((q[0], shape) for shape, q in self.queues.items() if q)
            for (_, name), shape in heads:
                slot = self.pool.take(shape, avoid=self.last_slot.get(name))
                if slot is not None:
                    self.queues[shape].popleft()
                    self._set_status(name, JobStatus.RUNNING)
                    self.tasks[name] = asyncio.ensure_future(self._run_attempt(name, slot))
                    break
            else:
                return

    async def _run_attempt(self, name: str, slot: Slot) -> None:
        status, exit_code = JobStatus.PENDING, None  # stopped before it could start: stays pending
        retry = True
        try:
            if name in self.kill_requested:  # killed before its task began
                status = JobStatus.KILLED
                self.store.set_status(name, status)
            elif self.stopping is None:
                status, exit_code = await self._attempt(self.specs[name], slot)
        except StoreError as e:  # what the store misses, `batch resume` finds (the attempt's files)
            self.store_failed(e)
        except LaunchRefusedError as e:  # as the job is, it can never start: not retried
            status, retry = JobStatus.FAILED, False
            logger.error("job %s: could not start: %s", name, e)
        except Exception as e:  # a bug here must leave neither the job nor its attempt running for ever
            status, retry = JobStatus.FAILED, False  # not retried: it would fail the same way, at once
            self._internal_error(name, e)
        finally:
            self._release(name, slot)
        if exit_code is not None:
            self.machines.answered(slot.machine.name)  # it sent the job's end: it answers
        self._ended(name, status, exit_code, retry)

    def _internal_error(self, name: str, e: Exception) -> None:
        """One line, the traceback only at debug level; the job fails."""
        why = f"internal error: {type(e).__name__}: {e}"
        logger.error("job %s: %s", name, why)
        logger.debug("job %s: internal error", name, exc_info=True)
        try:
            self._record_failure(name, why)
        except StoreError as fault:
            self.store_failed(fault)

    def store_failed(self, e: StoreError) -> None:
        """The store cannot record the run: said once; no new job starts (see `fault`)."""
        if self.fault is None:
            self.fault = e.fault
            logger.error(
                "%s: no new job starts, running jobs go on; once that is fixed, `hyperctl batch resume %s` goes on",
                e.fault,
                self.spec.name,
            )
            self._bump()

    def _record_failure(self, name: str, reason: str) -> None:
        """The job failed: its attempt too, with why, if the store has one running."""
        record = self.store.job(name)
        last = record.last if record is not None else None
        if last is not None and last.status == JobStatus.RUNNING:
            self.store.end_attempt(name, last.n, JobStatus.FAILED, reason=reason)
        else:
            self.store.set_status(name, JobStatus.FAILED)

    def _release(self, name: str, slot: Slot) -> None:
        self.pool.give_back(slot)
        self.last_slot[name] = slot
        self.running.pop(name, None)
        self.tasks.pop(name, None)

    def _ended(self, name: str, status: JobStatus, exit_code: int | None, retry: bool = True) -> None:
        """An attempt ended with status: retry it, or record the job's end; then start what fits."""
        try:
            self.record_unrecorded()
            self._record_end(name, status, exit_code, retry)
        except StoreError as e:
            self.store_failed(e)
        self.dispatch()
        self._finish_if_done()

    def record_unrecorded(self) -> None:
        """Record the ends the store could not take when they came (a disk that was full); a
        daemon that exits first leaves them to `batch resume`, which reads the attempts' files."""
        for name, (n, exit) in list(self.unrecorded.items()):
            status = final_status(exit)
            self.store.end_attempt(name, n, status, exit.exit_code, exit.signal, exit.reason, exit.ended)
            del self.unrecorded[name]
            if exit.reason == INTERRUPTED:
                self.store.set_status(name, JobStatus.PENDING)
            else:
                self._set_status(name, status)

    def _record_end(self, name: str, status: JobStatus, exit_code: int | None, retry: bool) -> None:
        if status == JobStatus.PENDING:  # it did not start (stopping, or its machine was down)
            self._set_status(name, status)
            self._enqueue(name)
        elif retry and self.stopping is None and should_retry(self.specs[name], status, exit_code, self.attempts[name]):
            self.store.set_status(name, JobStatus.PENDING)
            self._set_status(name, JobStatus.PENDING, retry_of=status)
            self._enqueue(name)
        else:
            self._set_status(name, status)
            if status in FAILURES:
                self.failures += 1
                limit = self.spec.scheduler.halt_on_failures
                self.halted = self.halted or (limit is not None and self.failures >= limit)

    async def _attempt(self, job: JobSpec, slot: Slot) -> tuple[JobStatus, int | None]:
        n = self.store.begin_attempt(job.name, slot.machine.name, list(slot.gpus))
        self.attempts[job.name] = n
        self._bump()
        launch = self._launch(job, n, slot)
        try:
            handle = await self.executor.start(launch)
        except MachineUnavailableError as e:  # not the job's fault: it goes to another machine
            self.store.forget_attempt(job.name, n)
            self.attempts[job.name] = n - 1
            self.machine_down(slot.machine.name, str(e))
            return JobStatus.PENDING, None
        except LaunchRefusedError as e:
            self.store.end_attempt(job.name, n, JobStatus.FAILED, reason=f"could not start: {e}")
            raise
        except (OSError, HyperctlError) as e:  # a full disk, a working dir that is missing, ...
            self.store.end_attempt(job.name, n, JobStatus.FAILED, reason=f"could not start: {e}")
            return JobStatus.FAILED, None
        self.running[job.name] = handle
        try:
            self.store.set_handle(job.name, n, handle.pid, handle.pid_started, handle.ref)
        except StoreError as e:  # it runs all the same: watched to its end (resume finds it by its environment)
            self.store_failed(e)
        self._bump()  # the job's view shows its pid
        if job.name in self.kill_requested:  # killed while it was being started
            self.executor.kill(handle)
        return await self._watch(job.name, n, handle)

    async def _watch(self, name: str, n: int, handle: Handle, fresh: bool = True) -> tuple[JobStatus, int | None]:
        while True:
            executor = self.executor
            self.metrics.watch(
                name, n, handle.launch.attempt_dir, fresh, not executor.files_here, not executor.written_here
            )
            exit = await self.executor.wait(handle)
            self.metrics.done(name, n)  # its last points, before its end
            status = final_status(exit)
            try:
                self.store.end_attempt(name, n, status, exit.exit_code, exit.signal, exit.reason, exit.ended)
            except StoreError:
                self.unrecorded[name] = (n, exit)  # recorded once the store takes writes again
                raise
            if exit.again is None:
                break
            handle = self._continued(name, handle, exit.again)
            n, fresh = handle.launch.attempt, True
        if exit.reason == INTERRUPTED:  # not the job's end: it runs again on resume
            self.store.set_status(name, JobStatus.PENDING)
            return JobStatus.PENDING, None
        return status, shell_code(exit)

    def _continued(self, name: str, handle: Handle, again: int) -> Handle:
        """The cluster runs the job again itself (Slurm requeued it): the same job, attempt `again`,
        recorded and watched as any attempt (those it ran meanwhile unseen count as lost)."""
        machine = handle.launch.machine
        n = self.store.begin_attempt(name, machine.name, [])
        while n < again:
            self.store.end_attempt(name, n, JobStatus.LOST, reason=REQUEUED)
            n = self.store.begin_attempt(name, machine.name, [])
        self.attempts[name] = n
        launch = self._launch(self.specs[name], n, Slot(machine, self.specs[name].resource, ()))
        continued = self.executor.continued(handle, launch)
        self.running[name] = continued
        self.store.set_handle(name, n, None, None, continued.ref)
        self._bump()
        if name in self.kill_requested or self.stopping is not None:
            self.executor.kill(continued, INTERRUPTED if self.stopping == BatchStatus.INTERRUPTED else "killed")
        return continued

    def _launch(
        self, job: JobSpec, n: int, slot: Slot, timeout: float | None = None, layout: Layout = CURRENT
    ) -> Launch:
        return make_launch(self.batch_dir, self.env, self.job_token(job.name), job, n, slot, timeout, layout)

    def placed(self, handle: Handle) -> None:
        """An attempt the backend placed (a cluster's job) runs now: where, on which GPUs, since when."""
        launch = handle.launch
        if handle.host is None or handle.started is None:
            return
        try:
            self.store.set_placed(launch.job, launch.attempt, handle.host, list(handle.gpus or ()), handle.started)
        except StoreError as e:
            self.store_failed(e)
        self._bump()

    # -- machines that fail -------------------------------------------------
    def machine_down(self, machine: str, reason: str) -> None:
        """It takes no jobs for a while, then is asked again (Machines.down)."""
        if self.machines.down(machine, reason):
            self._bump()

    def machine_up(self, machine: Machine) -> None:
        """It answers (again, or at last): start what now fits there."""
        self.machines.up(machine)
        self._machines_changed()

    def _machines_changed(self) -> None:
        self._bump()
        self.dispatch()
        self._finish_if_done()

    @property
    def all_down(self) -> bool:
        return self.machines.all_down

    # -- after a crash ------------------------------------------------------
    async def _recover(self, record: JobRecord) -> None:
        """A job the store says runs: a previous daemon died. Watch it again, or record its end."""
        name, last = record.name, record.last
        job = self.specs.get(name, record.spec)
        if last is None:  # marked running, but no attempt began
            self._requeue_unstarted(name)
            return
        slot = self.pool.reserve(last.host or "", job.resource, tuple(last.gpus))
        timeout = None
        if job.execution.timeout is not None and last.started is not None:
            timeout = max(0.0, job.execution.timeout - (time.time() - last.started))
        launch = self._launch(job, last.n, slot, timeout, last.layout)
        try:
            found: Handle | Exit | None = await self.executor.recover(launch, last.pid, last.pid_started, last.ref)
        except (HyperctlError, OSError) as e:  # its machine cannot be asked: what became of it is unknown
            logger.warning("job %s: cannot find out what became of it: %s", name, e)
            found = Exit(None, reason="lost")
        if isinstance(found, Handle):
            if (found.pid, found.ref) != (last.pid, last.ref):  # found by its traces: saved now
                self.store.set_handle(name, last.n, found.pid, found.pid_started, found.ref)
            self.running[name] = found
            self.tasks[name] = asyncio.ensure_future(self._watch_recovered(name, last.n, found, slot))
            return
        self._release(name, slot)
        if found is None:  # it never started: as if it had never been launched
            self.store.forget_attempt(name, last.n)
            self.attempts[name] = last.n - 1
            self._requeue_unstarted(name)
            return
        status = final_status(found)
        self.metrics.watch(name, last.n, launch.attempt_dir)  # what it reported while no daemon read it
        self.metrics.done(name, last.n)
        self.store.end_attempt(name, last.n, status, found.exit_code, found.signal, found.reason, found.ended)
        self._ended(name, status, found.exit_code)

    async def _watch_recovered(self, name: str, n: int, handle: Handle, slot: Slot) -> None:
        status, exit_code, retry = JobStatus.PENDING, None, True
        try:
            status, exit_code = await self._watch(name, n, handle, fresh=False)
        except StoreError as e:
            self.store_failed(e)
        except Exception as e:  # as in _run_attempt: never a task that dies unseen
            status, retry = JobStatus.FAILED, False
            self._internal_error(name, e)
        finally:
            self._release(name, slot)
        self._ended(name, status, exit_code, retry)

    def _requeue_unstarted(self, name: str) -> None:
        self.store.set_status(name, JobStatus.PENDING)
        self._set_status(name, JobStatus.PENDING)
        self._enqueue(name)

    # -- status and the end ----------------------------------------------
    def _set_status(self, name: str, status: JobStatus, retry_of: JobStatus | None = None) -> None:
        old = self.status.get(name)
        if old is not None:
            self.counts[old] -= 1
        self.status[name] = status
        self.counts[status] += 1
        event = Event(name, status, retry_of)
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:  # a display that fails must not stop the batch
                logger.exception("a status listener failed")
        self._bump()

    def _bump(self) -> None:
        self.version += 1
        if not self._changed.done():
            self._changed.set_result(None)
        self._changed = asyncio.get_running_loop().create_future()

    def wake_waiters(self) -> None:
        """The daemon stops: every long poll answers now, with the batch as it ended, while the
        store is still open (not at its timeout, after the store has closed)."""
        self._bump()

    async def wait_change(self, after: int, timeout: float) -> None:
        """Return once the version passes `after`, or after timeout seconds."""
        if self.version > after:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._changed), timeout)
        except asyncio.TimeoutError:
            pass

    def _finish_if_done(self) -> None:
        if self.done.done() or self.running or self.tasks or self.recovering or self.paused:
            return
        if self.stopping is None and not self.halted and self.fault is None and any(self.queues.values()):
            if self.machines.asking:
                return  # a machine that just sent a job's end is being asked: it may take these
            if not self.all_down:
                if self.pool.down:
                    return  # jobs wait for machines that are down for now
                self._fail_unplaceable()  # every machine idle and up, and still nothing fits: never will
        if self.stopping is not None:
            result = self.stopping
        elif self.counts[JobStatus.SUCCEEDED] == len(self.status):
            result = BatchStatus.FINISHED
        else:
            result = BatchStatus.FAILED
        self.done.set_result(result)
        self._bump()

    def _fail_unplaceable(self) -> None:
        """Fail the pending jobs no machine can hold: capacity found when hosts answered (cpu, ram,
        `gpu: auto`) can turn out smaller than a job asks. Better said than waited on for ever."""
        for queue in self.queues.values():
            while queue:
                _, name = queue.popleft()
                why = self.pool.why_never_fits(self.specs[name].resource) or "no machine can hold it"
                logger.warning("job %s: %s", name, why)
                n = self.store.begin_attempt(name, "-", [])
                self.store.end_attempt(name, n, JobStatus.FAILED, reason=f"could not start: {why}")
                self.attempts[name] = n
                self._set_status(name, JobStatus.FAILED)
                self.failures += 1

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
            self.kill_requested.add(name)  # also no retry of this one
            handle = self.running.get(name)
            if handle is not None:
                await self.executor.kill(handle)
            await asyncio.shield(task)
        return self.status[name]

    def retry(self, jobs: list[str] | None = None, failed_only: bool = False) -> list[str]:
        """Run ended jobs that did not succeed again: these, else every one (retrying.chosen says
        which, or refuses: RetryRefusedError, NoSuchJobError). Each is pending again, in its place;
        its next attempt's number follows its last; if it fails again, that counts as any failure
        (halt_on_failures). Returns their names."""
        chosen = retrying.chosen(self, jobs, failed_only)
        if chosen:
            self.store.requeue(chosen)  # as `batch retry` does: their attempts and logs are kept
            for name in chosen:
                self.kill_requested.discard(name)  # killed before: this time it runs
                self._set_status(name, JobStatus.PENDING)
                self._enqueue(name)
            self.dispatch()
        return chosen

    def request_stop(self, status: BatchStatus, grace: float | None = None) -> None:
        """stop(), from a handler or a signal: returns at once."""
        asyncio.ensure_future(self.stop(status, grace))

    async def stop(self, status: BatchStatus, grace: float | None = None) -> None:
        """Start no more jobs; kill the running ones. Pending jobs stay pending for a later run."""
        if not self.stop_requested.done():
            self.stop_requested.set_result(None)
        self.stopping = self.stopping or status
        reason = INTERRUPTED if status == BatchStatus.INTERRUPTED else "killed"
        kills = [self.executor.kill(h, reason, grace) for h in list(self.running.values())]
        await asyncio.gather(*kills, *list(self.tasks.values()), return_exceptions=True)
        self._finish_if_done()
