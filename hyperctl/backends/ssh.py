"""The remote backend's runner: jobs on machines reached over SSH.

One transport per machine carries every job of that machine as a channel. Each job runs
detached in a session of its own (`setsid -w`): it survives a dropped connection or a dead
daemon, leaving its exit code on the host. The same channel then brings the attempt home.
Paramiko calls that block go to threads; a channel's output and end reach the event loop
through the channel's file descriptor, so nothing polls.

Beside it: sshconn.py reaches the machines (with this module, the only users of paramiko),
sshscripts.py holds every shell program run on a host, sshchannel.py reads channels on the
event loop, and collect.py files the attempt that comes home.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import replace
from pathlib import PurePosixPath
from typing import Any, TypeVar

from hyperctl.attemptfiles import FileEnd, parse_exit_code
from hyperctl.backends import mirror, sshscripts
from hyperctl.backends.base import (
    IDENTITY_ENV,
    LAUNCHER_ENV,
    MAX_PARAMS_ARG,
    Executor,
    Handle,
    Launch,
    Machine,
    drop_loopback_portal,
)
from hyperctl.backends.collect import AttemptReader, extract
from hyperctl.backends.sshchannel import JobChannel, stream
from hyperctl.backends.sshconn import (
    DaemonThreads,
    HostKeys,
    HostUnreachableError,
    RemoteMachine,
    connect,
    first_line,
    open_exec,
    open_session,
    parse_conf,
    run,
)
from hyperctl.backends.sshlib import paramiko
from hyperctl.backends.sshscripts import RemotePaths
from hyperctl.errors import HyperctlError
from hyperctl.jobsidelib import job_side_lib
from hyperctl.reporting import METRICS_ENV

logger = logging.getLogger(__name__)
T = TypeVar("T")
_START_WAIT = 3.0  # seconds the start waits for machines to answer; slower ones join when they do

__all__ = ["HostUnreachableError", "RemoteExecutor"]


class RemoteExecutor(Executor):
    """Runs attempts on SSH machines, one persistent transport per machine."""

    kind = "remote"
    files_here = False

    def __init__(
        self, machines: list[RemoteMachine], keys: HostKeys, remote_root: str, liveness_interval: float = 10.0
    ) -> None:
        self.remotes = {m.machine.name: m for m in machines}
        self.keys = keys
        self.remote_root = remote_root
        # Paramiko blocks: its calls run here, enough threads for many jobs starting at once.
        self.threads = DaemonThreads(max_workers=32)
        # A pulled cable or a partition raises no error: each machine with running jobs is asked
        # to answer every liveness_interval seconds, within as many; silence closes its connection.
        self.liveness_interval = liveness_interval
        self.running: dict[str, set[Handle]] = {name: set() for name in self.remotes}
        self.silent: set[str] = set()  # machines found dead: their dropped channels are lost jobs
        self.watchdog: asyncio.Task[None] | None = None
        self.locks: dict[str, asyncio.Lock] = {}
        self.lib = job_side_lib()
        self.channels: dict[Handle, JobChannel] = {}  # each running attempt's channel
        self.mirrors: dict[str, asyncio.Task[None]] = {}  # by machine, while jobs run there
        self.mirror_idle: dict[str, asyncio.Event] = {}  # by machine: set while no mirror request is in flight
        self.opening: Counter[str] = Counter()  # by machine: starts opening sessions now
        self.sampling: dict[str, asyncio.Future[tuple[int, bytes, bytes]]] = {}  # by machine: its usage request

    @classmethod
    def from_conf(cls, conf: dict[str, Any]) -> RemoteExecutor:
        return cls(*parse_conf(conf))

    def machines(self) -> list[Machine]:
        return [r.machine for r in self.remotes.values()]

    # -- connections ---------------------------------------------------------
    async def prepare(self) -> dict[str, str]:
        """Connect to every machine at once. The ones that answer within a few seconds take jobs
        from the start; the others are down until they answer (they report by on_machine_up)."""
        tasks = {name: asyncio.ensure_future(self._reach(remote)) for name, remote in self.remotes.items()}
        await asyncio.wait(tasks.values(), timeout=_START_WAIT)
        down: dict[str, str] = {}
        for name, task in tasks.items():
            why = task.result() if task.done() else "no answer yet (connecting)"
            if not task.done():
                task.add_done_callback(functools.partial(self._reached_late, name))
            if why is not None:
                down[name] = why
        return down

    def _reached_late(self, name: str, task: asyncio.Future[str | None]) -> None:
        why = task.result()
        if why is None and self.on_machine_up is not None:
            self.on_machine_up(self.remotes[name].machine)
        elif why is not None and self.on_machine_down is not None:
            self.on_machine_down(name, why)

    async def probe(self, machine: str) -> str | None:
        return await self._reach(self.remotes[machine])

    async def _reach(self, remote: RemoteMachine) -> str | None:
        """None once the machine is connected (and its capacity known), else why not."""
        try:
            await self._transport(remote)
        except (HostUnreachableError, OSError, paramiko.SSHException) as e:
            return " ".join(str(e).split())  # one line
        return None

    async def _transport(self, remote: RemoteMachine) -> paramiko.Transport:
        lock = self.locks.setdefault(remote.machine.name, asyncio.Lock())
        async with lock:  # one connection per machine, however many jobs start at once
            if remote.transport is None or not remote.transport.is_active():
                transport = await self._in_thread(connect, remote, self.keys)
                try:
                    await self._set_up(remote, transport)
                except BaseException:
                    transport.close()
                    raise
                remote.transport = transport
                self.silent.discard(remote.machine.name)
            return remote.transport

    async def _set_up(self, remote: RemoteMachine, transport: paramiko.Transport) -> None:
        """One command on a new connection: the host's home and capacity, and the job-side
        hyperctl installed under remote_root (which proves that folder writable)."""
        command = sshscripts.set_up(self.remote_root, self.lib, remote.gpu_auto)
        stdin = (sshscripts.env_line(remote.environments) + "\n").encode() if remote.gpu_auto else None
        status, out, err = await self._in_thread(run, transport, command, stdin)
        lines = out.decode(errors="replace").split("\n")
        if status != 0 or len(lines) < 5:
            why = " ".join(err.decode(errors="replace").split()) or f"setting up failed (exit {status})"
            raise HostUnreachableError(f"{remote.endpoint}: {why}")
        remote.home = lines[0]
        remote.umask = lines[4].strip() if lines[4].strip().isdigit() else remote.umask
        machine = remote.machine
        cpu = float(lines[1]) if remote.cpu_auto and lines[1].strip().isdigit() else machine.cpu
        ram = int(lines[2]) if remote.ram_auto and lines[2].strip().isdigit() else machine.ram
        gpus = tuple(int(w) for w in lines[3].split() if w.isdigit()) if remote.gpu_auto else machine.gpus
        if remote.gpu_auto and not gpus:
            logger.warning("machine %s: gpu: auto, but nvidia-smi there found no GPU", machine.name)
        remote.machine = replace(machine, cpu=cpu, ram=ram, gpus=gpus, known=True)

    def _lib_dir(self, remote: RemoteMachine) -> PurePosixPath:
        return self._root(remote) / ".lib" / self.lib[0]

    async def _exec(self, remote: RemoteMachine, command: str, stdin: bytes | None = None) -> tuple[int, str]:
        """Run a short command on the machine: its exit status and stdout."""
        transport = remote.transport if remote.transport is not None else await self._transport(remote)
        status, out, _ = await self._in_thread(run, transport, command, stdin)
        return status, out.decode(errors="replace")

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.threads, fn, *args)

    async def close(self) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()
        for task in list(self.mirrors.values()):
            task.cancel()
        for remote in self.remotes.values():
            for client in remote.clients:
                client.close()
        self.threads.shutdown(wait=False)

    # -- paths -----------------------------------------------------------------
    def _root(self, remote: RemoteMachine) -> PurePosixPath:
        return self._on_host(remote, self.remote_root)

    def _on_host(self, remote: RemoteMachine, path: str) -> PurePosixPath:
        """A path as the host reads it: ~ is its home, and so is the start of a relative path."""
        if path == "~" or path.startswith("~/"):
            path = remote.home + path[1:]
        return PurePosixPath(remote.home) / path

    def _paths(self, remote: RemoteMachine, launch: Launch) -> RemotePaths:
        batch = self._root(remote) / launch.batch_dir.name
        job = batch / launch.job
        execution = launch.execution
        data = self._on_host(remote, execution.data_dir) if execution.data_dir else job
        working = self._on_host(remote, execution.working_dir) if execution.working_dir else data
        attempt = batch / launch.layout.attempt(launch.job, launch.attempt)
        return RemotePaths(job, attempt, batch / launch.layout.params(launch.job), data, working)

    def _send_home(self, paths: RemotePaths, launch: Launch) -> str:
        """The program that sends an ended attempt home (sshscripts.collect)."""
        return sshscripts.collect(paths, launch.execution.download, launch.execution.assets)

    # -- primitives ------------------------------------------------------------
    async def _spawn(self, launch: Launch) -> Handle:
        remote = self.remotes[launch.machine.name]
        try:
            return await self._start(remote, launch)
        except (paramiko.SSHException, EOFError) as e:  # the connection, not the job: it runs later or elsewhere
            raise HostUnreachableError(f"{remote.endpoint}: cannot start a job: {_refusal(e)}") from None

    async def _start(self, remote: RemoteMachine, launch: Launch) -> Handle:
        transport = await self._transport(remote)
        paths = self._paths(remote, launch)
        env = {
            **remote.environments,
            **launch.env,
            "HYPERCTL_JOB_DATA_DIR": str(paths.data),
            "HYPERCTL_JOB_WORKING_DIR": str(paths.working),
            "HYPERCTL_JOB_PARAMS_FILE": str(paths.params_file),
            METRICS_ENV: str(paths.attempt / "metrics"),  # on the host, beside its stdout
        }
        # Secrets, so not on the command line (which `ps` shows anyone on the host): on stdin, with
        # the portal, which carries the job's token (daemon/portal.py).
        token = env.pop("HYPERCTL_JOB_TOKEN", "")
        drop_loopback_portal(env)
        params = launch.params_json if len(launch.params_json) <= MAX_PARAMS_ARG else ""
        send_home = self._send_home(paths, launch)
        command = sshscripts.spawn(
            paths,
            launch.command,
            self._lib_dir(remote),
            send_home,
            remote.umask,
            _identity(launch),
            launch.execution.shell,
        )
        stdin = sshscripts.spawn_input(token, env, params)
        async with self._opening(remote.machine.name):
            if launch.execution.assets or not params:
                await self._in_thread(self._upload, transport, paths, launch)
            chan = await self._in_thread(open_exec, transport, command, stdin)
        channel = JobChannel(launch, chan, True, self._channel_closed)
        line = await channel.first  # the pid, read on the event loop with what follows
        if not line.isdigit():
            raise OSError(f"{remote.machine.name}: the job did not start: {chan.recv_stderr(4096).decode().strip()}")
        handle = self._new_handle(launch, int(line), None)
        self.channels[handle] = channel
        self._track(remote, handle)
        channel.attach(handle)
        return handle

    def _upload(self, transport: paramiko.Transport, paths: RemotePaths, launch: Launch) -> None:
        """Assets into the working dir, and params too long for an argument, over one channel."""
        params = launch.params_json if len(launch.params_json) > MAX_PARAMS_ARG else None
        payload = sshscripts.upload_payload(launch.execution.assets, params)
        status, _, err = run(transport, sshscripts.upload(paths), payload)
        if status != 0:
            raise OSError(f"could not upload the job's assets: {err.decode(errors='replace').strip()}")

    def _watch_channel(self, handle: Handle, chan: paramiko.Channel) -> None:
        """Watch a reattached job's channel, whose first line (the watching script's verdict) is read."""
        channel = self.channels[handle] = JobChannel(handle.launch, chan, False, self._channel_closed)
        channel.attach(handle)

    async def _channel_closed(self, handle: Handle, reader: AttemptReader, status: int | None) -> None:
        tar = reader.finish()
        if reader.complete:
            mirror.remove_live(handle.launch.attempt_dir, self.live_files)
        if tar is not None:
            try:
                await self._in_thread(extract, tar, handle.launch.home)
            except HyperctlError as e:
                logger.warning("job %s: %s", handle.launch.job, e)
        code = reader.exit_code()
        if code is not None:
            self._exited(handle, code, None)
        elif status is None or status < 0:  # the connection dropped: the job may still run
            await self._reconnect(handle)
        elif status > 0:  # setsid -w exits with the launcher's wait status: the signal that ended it
            self._exited(handle, None, status & 0x7F)
        else:
            self._exited(handle, None, None)

    async def _reconnect(self, handle: Handle) -> None:
        """A job's channel dropped: reach its host again and watch the job anew. When the host is
        dead (no answer to the liveness check, or no new connection), the attempt is lost."""
        remote = self.remotes[handle.launch.machine.name]
        name = remote.machine.name
        if name not in self.silent:
            try:
                found, chan = await self._reattach_channel(remote, handle.launch, handle.group)
                if found in (b"adopted", b"gone"):  # either way, what it left follows
                    self._watch_channel(handle, chan)
                    return
                chan.close()
            except (HyperctlError, OSError, paramiko.SSHException, EOFError) as e:  # EOF: its connection dropped
                self.silent.add(name)
                if self.on_machine_down is not None:
                    self.on_machine_down(name, _refusal(e))
        self._exited(handle, None, None)

    def _track(self, remote: RemoteMachine, handle: Handle) -> None:
        name = remote.machine.name
        self.running[name].add(handle)
        handle.done.add_done_callback(lambda _: self._untrack(name, handle))
        if self.watchdog is None:
            self.watchdog = asyncio.ensure_future(self._watch_liveness())
        if name not in self.mirrors and self.live_files:
            self.mirrors[name] = asyncio.ensure_future(self._mirror(remote))

    def _untrack(self, name: str, handle: Handle) -> None:
        self.running[name].discard(handle)
        self.channels.pop(handle, None)

    async def _mirror(self, remote: RemoteMachine) -> None:
        """While jobs run on the machine, bring their files' new bytes home (mirror.py)."""
        name = remote.machine.name
        try:
            while self.running[name]:
                await asyncio.sleep(mirror.MIRROR_EVERY)
                await self._mirror_once(remote)
        finally:
            self.mirrors.pop(name, None)  # no await since the loop's check: a new job starts a new one

    @contextlib.asynccontextmanager
    async def _opening(self, machine: str) -> AsyncIterator[None]:
        """A job's start opens its sessions: never while the machine's mirror request holds one
        (an sshd at MaxSessions would refuse the start), and no request begins meanwhile."""
        idle = self.mirror_idle.get(machine)
        if idle is not None:
            await idle.wait()
        self.opening[machine] += 1
        try:
            yield
        finally:
            self.opening[machine] -= 1

    def _mirrored(self, handle: Handle) -> bool:
        """Whether the attempt's files are still brought home as they grow: not once its end's
        collection (the whole files) has begun."""
        channel = self.channels.get(handle)
        return channel is not None and channel.reader.sizes is None and not handle.done.done()

    async def _mirror_once(self, remote: RemoteMachine) -> None:
        name = remote.machine.name
        files = [(h, file) for h in self.running[name] if self._mirrored(h) for file in self.live_files]
        for start in range(0, len(files), mirror.PER_REQUEST):  # a command line has a length limit
            part = files[start : start + mirror.PER_REQUEST]
            transport = remote.transport
            if transport is None or not transport.is_active() or self.opening[name]:
                return  # a start opens sessions now: the rest waits for the next time
            idle = self.mirror_idle.setdefault(name, asyncio.Event())
            idle.clear()
            try:  # one in flight per machine: a hung link is closed by the liveness check, which ends it
                await mirror.bring_home(
                    [(h.launch.attempt_dir, self._paths(remote, h.launch).attempt, file) for h, file in part],
                    functools.partial(self._in_thread, run, transport),
                    lambda i: self._mirrored(part[i][0]),  # noqa: B023 - used before the loop goes on
                )
            except (OSError, paramiko.SSHException, EOFError) as e:  # a refused session too: next time
                logger.debug("machine %s: running jobs' files not brought home now: %s", name, e)
                return
            finally:
                idle.set()

    async def usage(self, machine: str, sessions: list[int], timeout: float) -> str:
        """What the sessions' processes and the GPUs of a machine use (sshscripts.usage's output),
        asked over its connection, never a new one. One request in flight per machine: a host that
        hangs holds one thread, not one per page view. HostUnreachableError says why not."""
        remote = self.remotes[machine]
        transport = remote.transport
        if transport is None or not transport.is_active():
            raise HostUnreachableError("not connected")
        if self.opening[machine]:  # an sshd at MaxSessions would refuse the start a session
            raise HostUnreachableError("jobs are starting there now: sampled next time")
        pending = self.sampling.get(machine)
        if pending is None or pending.done():
            stdin = (sshscripts.env_line(remote.environments) + "\n").encode()
            pending = asyncio.ensure_future(self._in_thread(run, transport, sshscripts.usage(sessions), stdin))
            pending.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved: no warning
            self.sampling[machine] = pending
        try:
            status, out, err = await asyncio.wait_for(asyncio.shield(pending), timeout)
        except asyncio.TimeoutError:
            raise HostUnreachableError(f"did not answer within {timeout:g} s") from None
        except (OSError, paramiko.SSHException, EOFError) as e:
            raise HostUnreachableError(" ".join(str(e).split()) or type(e).__name__) from None
        if status != 0:
            said = " ".join(err.decode(errors="replace").split())[:200]
            raise HostUnreachableError(f"sampling failed (exit {status})" + (f": {said}" if said else ""))
        return out.decode(errors="replace")

    async def _watch_liveness(self) -> None:
        while True:
            await asyncio.sleep(self.liveness_interval)
            busy = [self.remotes[name] for name, handles in self.running.items() if handles]
            await asyncio.gather(*(self._check_alive(remote) for remote in busy))

    async def _check_alive(self, remote: RemoteMachine) -> None:
        transport = remote.transport
        if transport is None:
            return
        try:
            await asyncio.wait_for(self._in_thread(run, transport, sshscripts.ping()), self.liveness_interval)
        except paramiko.ChannelException:
            return  # a session refused (sshd's MaxSessions, every one held by jobs) is an answer: alive
        except (asyncio.TimeoutError, OSError, paramiko.SSHException, EOFError) as e:
            name = remote.machine.name
            why = str(e) or "no answer within the liveness interval"  # a timeout's own text is empty
            logger.warning("machine %s does not answer (%s): its running jobs are lost", name, why)
            self.silent.add(name)  # before the close: the channels that drop must not reconnect
            remote.transport = None
            if self.on_machine_down is not None:
                self.on_machine_down(name, f"does not answer: {why}")
            transport.close()  # every channel on it closes: their jobs end as lost, and retry by policy

    async def _signal(self, handle: Handle, sig: int) -> None:
        remote = self.remotes[handle.launch.machine.name]
        try:
            await self._exec(remote, sshscripts.kill(handle.group, sig, _identity(handle.launch)))
        except (HyperctlError, OSError, paramiko.SSHException) as e:
            logger.warning("job %s: cannot signal it on %s: %s", handle.launch.job, remote.machine.name, e)

    async def _group_alive(self, handle: Handle) -> bool:
        remote = self.remotes[handle.launch.machine.name]
        try:
            return (await self._exec(remote, sshscripts.group_alive(handle.group, _identity(handle.launch))))[0] == 0
        except (HyperctlError, OSError, paramiko.SSHException):
            return False  # the machine is gone: so is the job, as far as anyone can tell

    async def _reattach(self, launch: Launch, pid: int | None, pid_started: float | None) -> Handle | None:
        """Watch a job a previous daemon started, if its launcher still runs."""
        if pid is None:
            return None
        remote = self.remotes[launch.machine.name]
        found, chan = await self._reattach_channel(remote, launch, pid)
        if found != b"adopted":
            chan.close()  # gone: the caller reads what it left
            return None
        handle = self._new_handle(launch, pid, pid_started)
        self._track(remote, handle)
        self._watch_channel(handle, chan)
        return handle

    async def _reattach_channel(
        self, remote: RemoteMachine, launch: Launch, pid: int
    ) -> tuple[bytes, paramiko.Channel]:
        """A channel on which sshscripts.reattach() has said `adopted` (and waits for the job) or
        `gone`; what the attempt left follows on it."""
        transport = await self._transport(remote)
        launcher = {k: launch.env[k] for k in LAUNCHER_ENV}  # pid and its start time: as 0.2.0 started it too
        script = sshscripts.reattach(pid, launcher, self._send_home(self._paths(remote, launch), launch))
        chan, first = await self._in_thread(first_line, transport, script)
        return first, chan

    async def _fetch(self, launch: Launch) -> None:
        remote = self.remotes[launch.machine.name]
        transport = await self._transport(remote)
        reader = AttemptReader(launch.attempt_dir)
        command = self._send_home(self._paths(remote, launch), launch)

        def receive() -> None:
            chan = open_session(transport)
            try:
                chan.exec_command(command)
                while data := chan.recv(1 << 16):
                    reader.feed(data)
            finally:
                chan.close()

        await self._in_thread(receive)
        tar = reader.finish()
        if reader.complete:
            mirror.remove_live(launch.attempt_dir, self.live_files)
        if tar is not None:
            await self._in_thread(extract, tar, launch.home)

    async def follow(
        self, handle: Handle, name: str, offset: int, lines: int | None = None, follow: bool = True
    ) -> AsyncGenerator[bytes, None]:
        remote = self.remotes[handle.launch.machine.name]
        transport = await self._transport(remote)
        path = self._paths(remote, handle.launch).attempt / name
        chan = await self._in_thread(open_exec, transport, sshscripts.follow(path, handle.group, offset, lines, follow))
        chunks = stream(chan)
        try:
            async for chunk in chunks:
                yield chunk
        finally:  # at once, not when garbage is collected: a reader that leaves stops `tail` on the host
            await chunks.aclose()
            chan.close()

    async def append_to_attempt(self, handle: Handle, name: str, data: bytes) -> None:
        remote = self.remotes[handle.launch.machine.name]
        path = self._paths(remote, handle.launch).attempt / name
        status, out = await self._exec(remote, sshscripts.append(path), data)
        if status != 0:
            raise OSError(f"{handle.launch.machine.name}: {path}: {out.strip() or f'exit {status}'}")

    async def _read_attempt_file(self, launch: Launch, name: str) -> str | None:
        remote = self.remotes[launch.machine.name]
        status, out = await self._exec(remote, sshscripts.read_file(self._paths(remote, launch).attempt / name))
        return out if status == 0 else None

    async def _attempt_end(self, launch: Launch) -> FileEnd | None:
        """The exit code on the host, and when it was written there (the host's clock)."""
        remote = self.remotes[launch.machine.name]
        status, out = await self._exec(remote, sshscripts.read_end(self._paths(remote, launch).attempt / "exitcode"))
        mtime, _, text = out.partition("\n")
        code = parse_exit_code(text) if status == 0 else None
        if code is None:
            return None
        return FileEnd(code, float(mtime) if mtime.strip().isdigit() else None)


def _refusal(e: Exception) -> str:
    """Why the connection could not start a job (or reach its host again), in one line, never empty."""
    if isinstance(e, paramiko.ChannelException):  # sshd's MaxSessions (10 by default) caps channels per connection
        return f"it refused a new session ({e.text}): its sshd's MaxSessions may be below the jobs it is given"
    return " ".join(str(e).split()) or type(e).__name__


def _identity(launch: Launch) -> dict[str, str]:
    """What tells the attempt's processes from any other's on its host: IDENTITY_ENV's values."""
    return {k: launch.env[k] for k in IDENTITY_ENV}
