"""The daemon's run loop: run_batch() prepares the batch folder, binds, serves, runs the scheduler to the end."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from hyperctl import privatefs
from hyperctl.backends import create_executor
from hyperctl.backends.base import Executor
from hyperctl.batches import load_spec
from hyperctl.daemon.auth import Tokens, load_or_create_token
from hyperctl.daemon.launching import batch_env
from hyperctl.daemon.listener import InFlight, Listener, listen
from hyperctl.daemon.placement import check_fits
from hyperctl.daemon.scheduler import Event, Scheduler
from hyperctl.errors import BatchBusyError, ConfigError, HyperctlError
from hyperctl.layout import BatchDir
from hyperctl.metricstore import Best, best_job
from hyperctl.output import plural
from hyperctl.spec import BatchSpec, BatchStatus, JobStatus, Objective
from hyperctl.store import JobRecord, Store, save_spec
from hyperctl.storefaults import StoreError
from hyperctl.web.login import Logins, secret_of
from hyperctl.web.site import Site

_DRAIN_WITHIN = 5.0  # seconds the daemon waits, when it stops, for requests under way


class Observer(Protocol):
    """Who watches a run from the same process: the CLI's progress display."""

    def started(self, run: RunInfo) -> None: ...

    def event(self, event: Event) -> None: ...

    def interrupted(self, forced: bool) -> None: ...


@dataclass
class RunInfo:
    """What the daemon settled on at start."""

    batch_dir: BatchDir
    portal: str
    total: int
    skipped: list[str]  # succeeded before, with the same spec: not run again
    dropped: list[str]  # in the store, no longer in the batch: left out of it
    before: dict[str, int]  # counts by status at the start: what progress leaves out
    port_note: str | None
    scheduler: Scheduler
    dashboard: str  # a one-time login link to its pages


@dataclass
class RunResult:
    """How a run ended, for the summary and the exit code."""

    status: BatchStatus
    batch_dir: BatchDir
    counts: dict[str, int]
    skipped: list[str]
    elapsed: float
    dropped: list[str] = field(default_factory=list)
    not_succeeded: list[JobRecord] = field(default_factory=list)
    halted_after: int | None = None  # failures that stopped new starts (halt_on_failures)
    machines_down: dict[str, str] = field(default_factory=dict)  # when every machine was down: why
    fault: str | None = None  # why the store could not record the run (it stopped starting jobs)
    objective: Objective | None = None  # scheduler.objective, which names the best job
    best: Best | None = None  # the best job by it, if any reported its metric


class BatchLock:
    """An flock in the batch folder: two daemons never drive one batch."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file: IO[str] | None = None

    def acquire(self) -> None:
        # Private, never through a link: a lock planted by another user is refused, not written.
        try:
            f = os.fdopen(privatefs.open_file(self.path, os.O_RDWR | os.O_CREAT), "r+")
        except OSError as e:  # a folder in its place, a full disk, no permission
            raise HyperctlError(f"{self.path}: cannot open the batch's lock file: {e.strerror or e}") from None
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            f.close()
            raise BatchBusyError(
                f"batch '{self.path.parent.parent.name}' is already being run by pid {holder}"
            ) from None
        try:  # past the buffer: a full disk fails here, not again at close
            os.ftruncate(f.fileno(), 0)
            os.pwrite(f.fileno(), str(os.getpid()).encode(), 0)
        except OSError as e:
            f.close()
            raise HyperctlError(f"{self.path}: cannot write the batch's lock file: {e.strerror or e}") from None
        self.file = f

    def release(self) -> None:
        if self.file is not None:
            self.file.close()  # closing drops the flock
            self.file = None


def bind(host: str, port: int) -> tuple[list[socket.socket], str | None]:
    """Listening sockets on host:port, or on a free port if that one is taken (and a note)."""
    try:
        return listen(host, port), None
    except OSError as e:
        if e.errno == errno.EADDRINUSE and port != 0:
            sockets = listen(host, 0)
            taken = sockets[0].getsockname()[1]
            return sockets, f"port {port} is in use; the API listens on port {taken} instead"
        if e.errno in (errno.EADDRNOTAVAIL, errno.EACCES) or isinstance(e, socket.gaierror):
            raise HyperctlError(f"daemon: cannot listen on {host}:{port}: {e.strerror or e}") from None
        raise


def _make_app(scheduler: Scheduler, tokens: Tokens, in_flight: InFlight, site: Site) -> Any:
    from hyperctl.daemon.app import make_app  # Tornado: only once somebody connects

    return make_app(scheduler, tokens, in_flight, site)


def portal_url(host: str, port: int) -> str:
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"  # all interfaces: a job on this machine reaches it on loopback
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


@dataclass(frozen=True)
class RunOptions:
    """How to run a batch, besides its spec."""

    batches_dir: Path
    source: str | None = None  # the batch or template file, to tell two batches of one name apart
    same_batch: bool = False  # the user named the batch: continue it whatever file it came from
    rerun_ended: bool = True  # run again the jobs that failed or were killed (not for resume)


def run_batch(spec: BatchSpec, options: RunOptions, observer: Observer | None = None) -> RunResult:
    """Run a whole batch in this process (daemon, API and jobs) and return how it ended."""
    return asyncio.run(_run(spec, options, observer))


def check_spec(spec: BatchSpec) -> Executor:
    """Its executor, once everything that can be wrong with the config is found (ConfigError).
    Built once per process that runs the batch (`run --detach` checks in the foreground, then the
    daemon, another process, builds its own)."""
    executor = create_executor(spec.backend.type, spec.backend.conf)
    check_fits(spec, executor)
    _check_listen(spec.daemon.host)
    return executor


def _check_listen(host: str) -> None:
    """daemon.host names an address of this machine: found now, nothing is left behind (no batch
    folder, lock or store) when it does not."""
    try:
        for sock in listen(host, 0):
            sock.close()
    except OSError as e:
        raise ConfigError(f"daemon.host: cannot listen on {host}: {e.strerror or e}") from None


async def _run(spec: BatchSpec, options: RunOptions, observer: Observer | None) -> RunResult:
    executor = check_spec(spec)  # before anything is created
    batch_dir = BatchDir(options.batches_dir, spec.name)
    try:
        batch_dir.create()
    except OSError as e:
        raise HyperctlError(f"cannot make the batch folder {batch_dir.path}: {e.strerror}") from None
    lock = BatchLock(batch_dir.lock_file)
    lock.acquire()
    try:
        offered = executor.machines()
        down = await executor.prepare()
        if executor.machines() != offered:  # found on reaching them: a host's CPUs, RAM, `gpu: auto` GPUs
            check_fits(spec, executor)  # again: what a host has may be less than a job asks
        return await _serve(spec, batch_dir, executor, down, options, observer)
    finally:
        lock.release()
        await executor.close()


async def _serve(
    spec: BatchSpec,
    batch_dir: BatchDir,
    executor: Executor,
    down: dict[str, str],
    options: RunOptions,
    observer: Observer | None,
) -> RunResult:
    started = time.time()
    store = Store(batch_dir.db)
    try:
        _check_same_batch(store, batch_dir, options)
        _check_none_left_running(store, batch_dir, spec)
        sockets, port_note = bind(spec.daemon.host, spec.daemon.port)
        portal = portal_url(spec.daemon.host, sockets[0].getsockname()[1])
        # Jobs hyperctl 0.1.0 named by position keep their results under their new names: folder
        # first, then the store (after a crash between the two, the next run finds the folder moved).
        renamed = {
            old: new for old, new in store.renamed_since_0_1(spec.jobs).items() if batch_dir.rename_job(old, new)
        }
        synced = store.sync_jobs(spec.jobs, options.rerun_ended, renamed)
        save_spec(batch_dir, spec)
        try:
            tokens = Tokens(load_or_create_token(batch_dir))
        except OSError as e:  # a folder in its place, a full disk
            raise HyperctlError(f"{batch_dir.token_file}: cannot read the batch's token: {e.strerror or e}") from None
        store.set_meta(
            status=BatchStatus.RUNNING.value,
            started=started,
            ended=None,
            pid=os.getpid(),
            portal=portal,
            source=options.source,
            ready=None,
            fault=None,
        )
        env = {**batch_env(spec, batch_dir), "HYPERCTL_SERVER_PORTAL": portal}
        scheduler = Scheduler(spec, batch_dir, store, executor, env, tokens.for_job)
        in_flight = InFlight()
        site = Site(
            options.batches_dir,
            Logins(secret_of(tokens.batch_token)),
            host=spec.daemon.host,
            port=sockets[0].getsockname()[1],
            scheduler=scheduler,
        )
        server = Listener(sockets, lambda: _make_app(scheduler, tokens, in_flight, site), spec.daemon.request_timeout)
        if observer is not None:
            scheduler.listeners.append(observer.event)
            counts = store.counts()
            info = RunInfo(
                batch_dir,
                portal,
                len(spec.jobs),
                synced.kept,
                synced.dropped,
                counts,
                port_note,
                scheduler,
                site.login_url(),
            )
            observer.started(info)
        for machine, why in down.items():  # unreachable at start (said after the batch's header)
            scheduler.machine_down(machine, why)
        restore = _on_stop_signals(scheduler, observer)
        try:
            await scheduler.start()
            # Every job a dead daemon left is accounted for; a batch that ended already (every
            # machine down) says so in the same write, for `run --detach` to tell.
            ended = {"status": scheduler.done.result().value} if scheduler.done.done() else {}
            _set_meta(scheduler, ready=os.getpid(), **ended)
            status = await scheduler.done
            with contextlib.suppress(StoreError):  # if the store takes writes again: else resume finds them
                scheduler.record_unrecorded()
            _set_meta(scheduler, status=status.value, ended=time.time(), fault=scheduler.fault)
            if not spec.daemon.exit_on_finish and scheduler.stopping is None:
                await scheduler.stop_requested  # keep serving the API until told to stop
        finally:
            restore()
            server.stop()  # no new connections; answer the requests under way (a kill's answer)
            scheduler.wake_waiters()
            site.close()  # the pages' live streams end now
            await in_flight.drained(timeout=_DRAIN_WITHIN)
            # No request on a connection kept alive may reach the store once it is closed.
            await server.close_connections(timeout=_DRAIN_WITHIN)
        _set_meta(scheduler, pid=None, portal=None)
        return RunResult(
            status=status,
            batch_dir=batch_dir,
            counts=store.counts(),
            skipped=synced.kept,
            dropped=synced.dropped,
            elapsed=time.time() - started,
            not_succeeded=_not_succeeded(store),
            halted_after=scheduler.failures if scheduler.halted else None,
            machines_down=dict(scheduler.pool.down) if scheduler.all_down else {},
            fault=scheduler.fault,
            objective=spec.scheduler.objective,
            best=best_job(store.conn, spec.scheduler.objective) if spec.scheduler.objective else None,
        )
    finally:
        store.close()


def _set_meta(scheduler: Scheduler, **values: Any) -> None:
    """Record the batch's state; a store that cannot take it stops the batch (Scheduler.fault),
    and its readers see a batch whose daemon is gone."""
    try:
        scheduler.store.set_meta(**values)
    except StoreError as e:
        scheduler.store_failed(e)


def _not_succeeded(store: Store) -> list[JobRecord]:
    """The jobs that did not succeed, with their specs; the others' specs are not decoded (a
    100,000-job batch would hold them all at once at its end)."""
    records = (store.job(row.name) for row in store.job_rows() if row.status != JobStatus.SUCCEEDED)
    return [r for r in records if r is not None]


def kill_offline(batch_dir: BatchDir, jobs: set[str] | None = None) -> list[str]:
    """With no daemon: kill what a dead daemon left running (every job, or these), record it.

    Returns the names of the jobs that were still running and are now killed.
    """
    return asyncio.run(_kill_offline(batch_dir, jobs))


async def _kill_offline(batch_dir: BatchDir, jobs: set[str] | None) -> list[str]:
    spec = load_spec(batch_dir)
    executor = create_executor(spec.backend.type, spec.backend.conf)  # no fit to check: nothing starts
    lock = BatchLock(batch_dir.lock_file)
    lock.acquire()  # no daemon may start this batch meanwhile
    store = Store(batch_dir.db)
    try:
        env = batch_env(spec, batch_dir)
        scheduler = Scheduler(spec, batch_dir, store, executor, env, Tokens("").for_job)
        scheduler.paused = True  # reattach and record, start nothing
        await scheduler.start()
        targets = [name for name in scheduler.running if jobs is None or name in jobs]
        await asyncio.gather(*(scheduler.kill_job(name) for name in targets))
        if jobs is None and store.batch_status() in (BatchStatus.RUNNING, BatchStatus.INTERRUPTED, None):
            store.set_meta(status=BatchStatus.KILLED.value, ended=time.time(), pid=None, portal=None)
        return targets
    finally:
        store.close()
        lock.release()
        await executor.close()


def _check_none_left_running(store: Store, batch_dir: BatchDir, spec: BatchSpec) -> None:
    """A job a dead daemon left running that this batch file no longer has would run on unwatched,
    beside its successor (a job with other params is another job), and one this file changes would
    have its old attempt's end taken for the new one's: each is seen to its end first."""
    names = {job.name for job in spec.jobs}
    # Every row is decoded (not only the running ones): a damaged one stops the run before anything is written.
    running = [row.name for row in store.job_rows() if row.status == JobStatus.RUNNING]
    left = [name for name in running if name not in names]
    # A job changed since: watching its old attempt would record the old command's end as the new one's.
    digests = dict(store.job_digests()) if running else {}
    changed = [
        job.name
        for job in spec.jobs
        if job.name in digests and job.name in running and digests[job.name] != job.digest()
    ]
    name = batch_dir.name
    if changed:
        raise HyperctlError(
            f"batch '{name}': {plural(len(changed), 'job')} changed in this batch file while an attempt from "
            f"before may still run ({_few(changed)}): `hyperctl batch resume {name}` sees it to its end first "
            f"(or `hyperctl batch kill {name}` ends it); then run this file"
        )
    if left:
        raise HyperctlError(
            f"batch '{name}': {plural(len(left), 'job')} of an earlier run, not in this batch file, may still run "
            f"({_few(left)}): `hyperctl batch resume {name}` sees them to their end first, or "
            f"`hyperctl batch kill {name}` ends them"
        )


def _few(names: list[str]) -> str:
    return ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")


def _check_same_batch(store: Store, batch_dir: BatchDir, options: RunOptions) -> None:
    """Two files that give the same batch name must not merge into one batch unasked."""
    before = store.meta().get("source")
    if before and options.source and before != options.source and not options.same_batch:
        raise HyperctlError(
            f"a batch named '{batch_dir.name}' already exists in {batch_dir.path.parent}, run from {before}; "
            f"to keep both, give this one another name (--name or `name:`); --name {batch_dir.name} makes this file "
            "that batch's jobs in place of its own (those it no longer lists leave it; one that succeeded with the "
            "same spec is not run again)"
        )


def _on_stop_signals(scheduler: Scheduler, observer: Observer | None) -> Callable[[], None]:
    """SIGINT/SIGTERM: kill the running jobs (TERM, then KILL after their grace); again: KILL now."""
    loop = asyncio.get_running_loop()
    count = 0

    def handle() -> None:
        nonlocal count
        count += 1
        forced = count > 1
        if observer is not None:
            observer.interrupted(forced)
        if not scheduler.done.done() or scheduler.running:
            scheduler.request_stop(BatchStatus.INTERRUPTED, grace=0 if forced else None)
        elif not scheduler.stop_requested.done():  # ended, and kept up: it may go now
            scheduler.stop_requested.set_result(None)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, handle)

    def restore() -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

    return restore
