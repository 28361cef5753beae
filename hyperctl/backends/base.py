"""The executor interface: backends fill in spawn and signal; the control flow lives here once."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import os
import signal
import stat
import urllib.parse
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from hyperctl import privatefs
from hyperctl.attemptfiles import FileEnd, parse_exit_code
from hyperctl.errors import HyperctlError
from hyperctl.layout import BatchDir, Layout
from hyperctl.spec import Execution, Resource

# The job's outer shell (POSIX sh). It sends the job's output to files, writes the params
# file, runs the command in a subshell (so `exit` or `exec` in it cannot skip what follows;
# a subshell is a fork, cheaper than a second shell), then leaves the exit code on disk for
# whoever reads it later: the daemon, or a restarted daemon after a crash. It does this
# file work itself, so the daemon is not kept waiting for the disk. Last, it sends TERM to
# what the command left running in the background (its process group, which it leads,
# itself excepted): a job's processes end with the job, as under a cluster scheduler.
# Its own files are private (umask 077); the command runs with the user's umask.
# The params come in the environment ($_HC_PARAMS, unset before the command; absent when the
# file is written already), not as an argument: `ps` shows every user the arguments.
# $1 command, $2 attempt folder, $3 working dir, $4 params file, $5 the command's umask,
# $6 the shell that runs the command ("": this sh, in a subshell).
LAUNCHER = """\
_hc_cmd=$1 _hc_dir=$2 _hc_umask=$5 _hc_sh=$6
umask 077
exec >"$_hc_dir/stdout" 2>"$_hc_dir/stderr"
if [ -n "$_HC_PARAMS" ]; then printf '%s\\n' "$_HC_PARAMS" >"$4"; fi
unset _HC_PARAMS
cd -- "$3" || { echo 126 >"$_hc_dir/exitcode"; exit 126; }
set --
(umask "$_hc_umask"; if [ -n "$_hc_sh" ]; then exec "$_hc_sh" -c "$_hc_cmd"; fi; eval "$_hc_cmd")
_hc_code=$?
echo "$_hc_code" >"$_hc_dir/exitcode"
trap '' TERM
kill -TERM 0 2>/dev/null
exit "$_hc_code"
"""
PARAMS_ENV = "_HC_PARAMS"  # how the launcher gets the params it writes
# What tells one attempt's processes from any other's: set in every job's environment; a search
# of every process finds them by it. The batch by its key (layout.BatchDir.key), not its name:
# batches of one name in two data dirs run apart.
IDENTITY_ENV = ("HYPERCTL_BATCH_ID", "HYPERCTL_JOB_NAME", "HYPERCTL_ATTEMPT")
# What tells that a known pid (with its start time) is still the attempt's launcher, when a
# daemon adopts it again: the batch by name, which launchers of hyperctl 0.2.0 carry too.
LAUNCHER_ENV = ("HYPERCTL_BATCH_NAME", "HYPERCTL_JOB_NAME", "HYPERCTL_ATTEMPT")
# Params longer than this are written by the daemon, not passed to the launcher: a variable of
# the environment may not exceed 128 KiB.
MAX_PARAMS_ARG = 64 * 1024

# Only while a kill waits for a job's processes to finish their TERM handlers, or to die of KILL.
_GROUP_CHECK_INTERVAL = 0.05
_KILLED_WITHIN = 5.0  # seconds a kill waits for its KILLed processes to be gone


class MachineUnavailableError(HyperctlError):
    """A machine cannot take jobs now (unreachable, refused): its jobs should go elsewhere."""


def drop_loopback_portal(env: dict[str, str]) -> None:
    """For a job on another machine: no portal on the daemon's loopback, which is not that
    machine's (its params come from its params file; `daemon.host` gives it a portal)."""
    host = urllib.parse.urlsplit(env.get("HYPERCTL_SERVER_PORTAL", "")).hostname or ""
    if host == "localhost" or host.startswith("127.") or host == "::1":
        env.pop("HYPERCTL_SERVER_PORTAL", None)


class LaunchRefusedError(HyperctlError):
    """The backend refused the job as it is (a cluster that can never give what it asks): running
    it again would change nothing, so it is not retried."""


@dataclass(frozen=True)
class Machine:
    """A place jobs run, and what it offers them."""

    name: str
    cpu: float
    ram: int  # MB
    gpus: tuple[int, ...] = ()
    max_jobs: int | None = None  # at most this many attempts at once, whatever they ask
    known: bool = True  # False: its capacity is found only once it is reached (a remote host not yet answering)
    # True: a cluster's scheduler (Slurm) places each attempt on a node of its choosing, with its
    # GPUs; here only max_jobs counts, and what a job asks is the cluster's to grant or refuse.
    places: bool = False


@dataclass(frozen=True)
class Launch:
    """Everything an executor needs to start one attempt of a job."""

    job: str
    attempt: int
    command: str
    working_dir: str
    data_dir: str
    batch_dir: BatchDir  # where its records go (and, for a remote job, what it made comes home)
    layout: Layout  # where in the batch folder the attempt's records are
    params_json: str  # the job's params, for its params file
    env: dict[str, str]
    machine: Machine
    execution: Execution  # as the batch file gives it: remote backends read their paths, assets, download
    gpus: tuple[int, ...] = ()
    timeout: float | None = None
    kill_grace: float = 10.0
    resource: Resource = Resource()  # what the job asks: a cluster's scheduler is told (where it places jobs)

    @functools.cached_property
    def attempt_dir(self) -> Path:
        """The attempt's folder in the batch folder: stdout, stderr and exitcode."""
        return self.batch_dir.attempt_dir(self.job, self.attempt, self.layout)

    @functools.cached_property
    def params_file(self) -> Path:
        return self.batch_dir.params_file(self.job, self.layout)

    @property
    def home(self) -> Path:
        """The job's folder in the batch folder, where a remote job's data dir comes home."""
        return self.batch_dir.job_dir(self.job)


@dataclass(frozen=True)
class Exit:
    """How an attempt ended: an exit code, or the signal that ended it, and why we sent one."""

    exit_code: int | None
    signal: int | None = None
    reason: str | None = None  # "killed" or "timeout" when hyperctl ended it; "lost": no trace of its end
    ended: float | None = None  # when, if it ended while no daemon watched (its exitcode file's mtime); else now
    # The cluster runs the same job again as this attempt number (Slurm requeued it: preempted, its
    # node failed): this attempt is over (reason "requeued"), the job goes on under the same handle.
    again: int | None = None


@dataclass(eq=False)
class Handle:
    """A started attempt and a future that resolves with its Exit. It is a process group (pid)
    on a machine hyperctl placed it on, or a cluster scheduler's job (ref) that the scheduler
    places: then host, gpus and started are known once it runs (None before)."""

    launch: Launch
    pid: int | None
    pid_started: float | None
    done: asyncio.Future[Exit] = field(repr=False)
    ref: str | None = None  # the cluster scheduler's id of it (Slurm's `123`, `123_4`)
    host: str | None = None
    gpus: tuple[int, ...] | None = None
    started: float | None = None
    stop_reason: str | None = None  # set before the first signal, so the Exit carries it
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)
    kills: list[asyncio.Task[Exit]] = field(default_factory=list, repr=False)

    @property
    def group(self) -> int:
        """The process group it leads (its launcher's pid): for backends that start processes."""
        assert self.pid is not None, f"job {self.launch.job}: not a process of ours"
        return self.pid


class Executor(ABC):
    """Starts attempts on its machines and reports how each ends.

    Subclasses provide the primitives (_spawn, _signal) and call _exited() when an attempt
    ends; start(), kill() and timeouts are the same for every backend.
    """

    kind: ClassVar[str]
    # Whether an attempt's files are in the local batch folder while it runs (else they come
    # home when it ends, and follow() streams them meanwhile).
    files_here: ClassVar[bool] = True
    # Whether they are written on this machine, where inotify sees each write (not: another
    # machine writes them on shared storage, which must be looked at).
    written_here: ClassVar[bool] = True
    # Set by the scheduler: the attempt files it reads while attempts run (metrics, stdout). An
    # executor whose files are elsewhere brings their new bytes home as they grow.
    live_files: tuple[str, ...] = ("metrics",)
    # Set by the scheduler: told when a machine stops answering, so no job goes there for a while,
    # and when one answers (again, or at last), with its capacity as found.
    on_machine_down: Callable[[str, str], None] | None = None
    on_machine_up: Callable[[Machine], None] | None = None
    # Set by the scheduler: told when an attempt the backend placed starts to run (its host, gpus
    # and started are set then).
    on_placed: Callable[[Handle], None] | None = None

    @classmethod
    @abstractmethod
    def from_conf(cls, conf: dict[str, Any]) -> Executor:
        """Build from `backend.conf`; raises ConfigError naming the field."""

    @abstractmethod
    def machines(self) -> list[Machine]:
        """Every machine and its whole capacity."""

    def check_job(self, execution: Any) -> str | None:
        """Why a job's execution section cannot work on these machines (checked before any start)."""
        return None

    @abstractmethod
    async def _spawn(self, launch: Launch) -> Handle:
        """Start the launcher detached in its own session; return at once."""

    @abstractmethod
    async def _signal(self, handle: Handle, sig: int) -> None:
        """Send sig to the attempt's whole process group; no error if it is gone."""

    @abstractmethod
    async def _group_alive(self, handle: Handle) -> bool:
        """Whether any process of the attempt's process group is left."""

    @abstractmethod
    async def _reattach(self, launch: Launch, pid: int | None, pid_started: float | None) -> Handle | None:
        """Watch the attempt's launcher again if it still runs (found by pid, else by its
        environment); None when it is gone. The pid must be checked to be that launcher."""

    @abstractmethod
    async def _read_attempt_file(self, launch: Launch, name: str) -> str | None:
        """A file of the attempt's folder (exitcode, stdout), or None when it does not exist."""

    async def append_to_attempt(self, handle: Handle, name: str, data: bytes) -> None:
        """Append data to a file of the running attempt's folder where the attempt has it (its
        metrics, for a job that reports through the API); OSError when it cannot."""
        # Not blocking: a FIFO the job made there would hold the loop in open() until someone reads it.
        path = handle.launch.attempt_dir / name
        try:
            fd = privatefs.open_file(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK)
        except OSError as e:
            if e.errno != errno.ENXIO:  # ENXIO: a FIFO no one reads
                raise
            raise OSError(f"{path} is not a regular file") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(f"{path} is not a regular file")
            view = memoryview(data)
            while view:  # a local file takes it at once: no wait worth a thread
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)

    async def _attempt_end(self, launch: Launch) -> FileEnd | None:
        """What the attempt's exitcode file says, when it has ended (with when, where known)."""
        code = parse_exit_code(await self._read_attempt_file(launch, "exitcode"))
        return None if code is None else FileEnd(code, None)

    async def prepare(self) -> dict[str, str]:
        """Reach the machines before the first job (their capacity may be known only then); the
        ones not reachable yet, and why. Those still connecting report later, by the callbacks."""
        return {}

    async def probe(self, machine: str) -> str | None:
        """Whether a machine that was down can take jobs again: None, or why not."""
        return None

    def follow(
        self, handle: Handle, name: str, offset: int, lines: int | None = None, follow: bool = True
    ) -> AsyncGenerator[bytes, None]:
        """A running attempt's file (stdout or stderr) from byte `offset` (or its last `lines`
        lines), as it grows until the attempt ends (or as it is now, without follow). Only for
        backends whose files are elsewhere while the attempt runs."""
        raise HyperctlError(f"job {handle.launch.job}: its output is in the batch folder; read it there")

    def continued(self, handle: Handle, launch: Launch) -> Handle:
        """The handle of the attempt `launch` that goes on where `handle` ended with Exit.again."""
        raise HyperctlError(f"job {launch.job}: the {self.kind} backend runs no job again by itself")

    async def close(self) -> None:  # noqa: B027 - most backends hold nothing to release
        """Release connections; running jobs are not touched."""

    def _new_handle(self, launch: Launch, pid: int, pid_started: float | None) -> Handle:
        return Handle(launch, pid, pid_started, asyncio.get_running_loop().create_future())

    def _exited(self, handle: Handle, exit_code: int | None, sig: int | None, ended: float | None = None) -> None:
        if handle.timer is not None:
            handle.timer.cancel()
        if not handle.done.done():
            reason = handle.stop_reason
            if reason is None and exit_code is None and sig is None:
                reason = "lost"  # ended with no exit code and no signal we know of
            handle.done.set_result(Exit(exit_code, sig, reason, ended))

    async def start(self, launch: Launch) -> Handle:
        handle = await self._spawn(launch)
        self._arm_timeout(handle)
        return handle

    def _arm_timeout(self, handle: Handle, elapsed: float = 0.0) -> None:
        """Kill the attempt once it has run its timeout (of which `elapsed` is gone already)."""
        timeout = handle.launch.timeout
        if timeout is not None:
            left = max(0.0, timeout - elapsed)
            handle.timer = asyncio.get_running_loop().call_later(left, lambda: self.kill(handle, "timeout"))

    async def recover(
        self, launch: Launch, pid: int | None, pid_started: float | None, ref: str | None = None
    ) -> Handle | Exit | None:
        """What became of an attempt a previous daemon started: a Handle when it still runs
        (watched again from now on), its Exit when it ended, None when it never started.

        launch.timeout is what is left of the attempt's timeout. "Never started" is said only
        when nothing shows that it did: no pid in the store (saved once the spawn returned) and
        no stdout among its records (the launcher opens it first), which the job cannot reach.
        """
        handle = await self._reattach(launch, pid, pid_started)
        if handle is not None:
            self._arm_timeout(handle)
            return handle
        # Gone: it wrote its exit code before it ended, unless something killed its launcher.
        end = await self._attempt_end(launch)
        if end is not None:
            await self._fetch(launch)
            return Exit(end.exit_code, ended=end.ended)  # it ended then, not when we looked
        if pid is not None or await self._read_attempt_file(launch, "stdout") is not None:
            await self._fetch(launch)
            return Exit(None, reason="lost")  # it started, then vanished without an exit code
        return None

    async def _fetch(self, launch: Launch) -> None:  # noqa: B027 - local attempts are already home
        """Bring home what an attempt that ended while no daemon watched left on its machine."""

    def _exit_from_files(self, handle: Handle, end: FileEnd | None) -> None:
        """End a reattached attempt from its exitcode file (not our child: no wait status)."""
        if end is not None:
            self._exited(handle, end.exit_code, None, end.ended)
        else:
            self._exited(handle, None, None)

    async def wait(self, handle: Handle) -> Exit:
        """The attempt's end; after a kill, only once none of its processes is left."""
        exit = await handle.done
        while handle.kills:
            await handle.kills.pop()
        return exit

    def kill(self, handle: Handle, reason: str = "killed", grace: float | None = None) -> asyncio.Task[Exit]:
        """TERM the attempt's process group, KILL what is left after the grace period (now if 0)."""
        task = asyncio.ensure_future(self._kill(handle, reason, grace))
        handle.kills.append(task)
        return task

    async def _kill(self, handle: Handle, reason: str, grace: float | None) -> Exit:
        if handle.done.done() and not await self._group_alive(handle):
            return handle.done.result()
        handle.stop_reason = handle.stop_reason or reason
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (handle.launch.kill_grace if grace is None else grace)
        if loop.time() < deadline:
            await self._signal(handle, signal.SIGTERM)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(handle.done), deadline - loop.time())
            # The launcher may die at once while the job's own processes still clean up.
            while await self._group_alive(handle) and loop.time() < deadline:
                await asyncio.sleep(_GROUP_CHECK_INTERVAL)
        await self._signal(handle, signal.SIGKILL)
        # Sent is not yet done: the kill ends once none of its processes is left (or after a while,
        # for one stuck in the kernel, which no signal reaches sooner).
        deadline = loop.time() + _KILLED_WITHIN
        while await self._group_alive(handle) and loop.time() < deadline:
            await asyncio.sleep(_GROUP_CHECK_INTERVAL)
        return await handle.done
