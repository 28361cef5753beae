"""The remote backend: jobs on machines reached over SSH. With sshconn.py, the only code that uses paramiko.

One transport per machine carries every job of that machine as a channel. Each job runs
detached in a session of its own (`setsid -w`): it survives a dropped connection or a dead
daemon, leaving its exit code on the host. The same channel then brings the attempt home
(collect.py). Paramiko calls that block go to threads; a channel's output and end reach the
event loop through the channel's file descriptor, so nothing polls.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import io
import logging
import os
import shlex
import tarfile
import urllib.parse
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from hyperctl.backends.base import (
    IDENTITY_ENV,
    LAUNCHER,
    MAX_PARAMS_ARG,
    Executor,
    Handle,
    Launch,
    Machine,
)
from hyperctl.backends.collect import AttemptReader, collect_script, extract
from hyperctl.backends.sshconn import (
    CONNECT_TIMEOUT,
    DaemonThreads,
    HostKeys,
    HostUnreachableError,
    RemoteMachine,
    connect,
    first_line,
    open_exec,
    parse_machine,
    run,
)
from hyperctl.backends.sshlib import paramiko
from hyperctl.errors import HyperctlError
from hyperctl.validation import Problems, Section, above, join

logger = logging.getLogger(__name__)
T = TypeVar("T")
HOST_KEY_POLICIES = ("reject", "accept-new")
_PING = "true"
_START_WAIT = 3.0  # seconds the start waits for machines to answer; slower ones join when they do
# What a job imports (`import hyperctl`), sent to each host: jobs read their params even where
# hyperctl is not installed. extend_path: where it is installed, the rest of it stays importable.
_JOB_SIDE = ("__init__.py", "jobside.py", "errors.py")
_EXTEND = '\n__path__ = __import__("pkgutil").extend_path(__path__, __name__)\n'

__all__ = ["HostUnreachableError", "RemoteExecutor"]


@dataclass(frozen=True)
class RemotePaths:
    """An attempt's folders on its host."""

    job: PurePosixPath
    attempt: PurePosixPath
    data: PurePosixPath
    working: PurePosixPath

    @property
    def params_file(self) -> PurePosixPath:
        return self.job / "params.json"


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
        self.lib = _job_side_lib()

    @classmethod
    def from_conf(cls, conf: dict[str, Any]) -> RemoteExecutor:
        problems = Problems()
        sec = Section(conf, "backend.conf", problems)
        raw = sec.get("machines", "list", check=lambda v: None if v else "must list at least one machine")
        # A bare name is a machine as `ssh NAME` would reach it: ~/.ssh/config fills in the rest.
        entries = [{"hostname": m} if isinstance(m, str) else m for m in raw or []]
        machines = [parse_machine(Section(m, join(sec.at("machines"), i), problems)) for i, m in enumerate(entries)]
        policy = sec.get("host_key_policy", "string", "reject", check=_check_policy)
        known_hosts = sec.get("known_hosts", "string", None)
        if known_hosts and policy != "accept-new" and not os.path.exists(os.path.expanduser(known_hosts)):
            problems.add(sec.at("known_hosts"), f"no such file: {os.path.expanduser(known_hosts)}")
        remote_root = sec.get("remote_root", "string", "~/.hyperctl")
        liveness = sec.get("liveness_interval", "number", 10.0, check=above(0))
        sec.done()
        names = [m.machine.name for m in machines if m is not None]
        for i, name in enumerate(names):
            if name in names[:i]:
                problems.add(join(sec.at("machines"), i), f"{name} is listed twice")
        problems.raise_if_any()
        return cls(
            [m for m in machines if m is not None],
            HostKeys(policy, os.path.expanduser(known_hosts) if known_hosts else None),
            remote_root,
            float(liveness),
        )

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
        q = shlex.quote
        lib = f"{self._root_word()}/.lib/{self.lib[0]}/hyperctl"
        writes = " && ".join(f'printf %s {q(text)} > "$lib"/{name}' for name, text in self.lib[1].items())
        ask_gpus = "echo"
        if remote.gpu_auto:  # in the machine's environment: its PATH may be where nvidia-smi is
            smi = "nvidia-smi --query-gpu=index --format=csv,noheader"
            ask_gpus = f"({self._env_prefix(remote)}{smi} 2>/dev/null | tr '\\n' ' '); echo"
        command = (
            f'printf "%s\\n" "$HOME"; nproc 2>/dev/null || echo 1; '
            "awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo 2>/dev/null || echo 0; "
            f"{ask_gpus}; lib={lib}; "
            f'[ -f "$lib/.ready" ] || e=$( {{ mkdir -p "$lib" && {writes} && : > "$lib/.ready"; }} 2>&1) || '
            f'{{ echo remote_root {q(self.remote_root)}": cannot write there: $e" >&2; exit 3; }}'
        )
        status, out, err = await self._in_thread(run, transport, command)
        lines = out.decode(errors="replace").split("\n")
        if status != 0 or len(lines) < 4:
            why = " ".join(err.decode(errors="replace").split()) or f"setting up failed (exit {status})"
            raise HostUnreachableError(f"{remote.endpoint}: {why}")
        remote.home = lines[0]
        machine = remote.machine
        cpu = float(lines[1]) if remote.cpu_auto and lines[1].strip().isdigit() else machine.cpu
        ram = int(lines[2]) if remote.ram_auto and lines[2].strip().isdigit() else machine.ram
        gpus = tuple(int(w) for w in lines[3].split() if w.isdigit()) if remote.gpu_auto else machine.gpus
        if remote.gpu_auto and not gpus:
            logger.warning("machine %s: gpu: auto, but nvidia-smi there found no GPU", machine.name)
        remote.machine = replace(machine, cpu=cpu, ram=ram, gpus=gpus, known=True)

    def _root_word(self) -> str:
        """remote_root as a shell word on the host: ~ and relative paths are in its home."""
        root = self.remote_root
        if root == "~":
            return '"$HOME"'
        if root.startswith("/"):
            return shlex.quote(root)
        return '"$HOME"/' + shlex.quote(root[2:] if root.startswith("~/") else root)

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
        job = self._root(remote) / launch.env["HYPERCTL_BATCH_NAME"] / launch.job
        execution = launch.execution
        data = self._on_host(remote, execution.data_dir) if execution.data_dir else job
        working = self._on_host(remote, execution.working_dir) if execution.working_dir else data
        return RemotePaths(job, job / f"attempt-{launch.attempt}", data, working)

    def _collect(self, paths: RemotePaths, launch: Launch) -> str:
        """The shell that sends an ended attempt home; the data dir, less what never comes back."""
        exclude = []
        if paths.data == paths.job:
            exclude += ["attempt-*", "params.json"]
        if paths.data == paths.working:
            exclude += [os.path.basename(a.rstrip("/")) for a in launch.execution.assets]
        return collect_script(paths.attempt, paths.data, launch.execution.download, exclude)

    def _env_prefix(self, remote: RemoteMachine, env: dict[str, str] | None = None) -> str:
        env = {**remote.environments, **(env or {})}
        if not env:
            return ""
        # `export` in the login shell, not `env`: one program fewer to start per job.
        return "export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()) + " && "

    # -- primitives ------------------------------------------------------------
    async def _spawn(self, launch: Launch) -> Handle:
        remote = self.remotes[launch.machine.name]
        transport = await self._transport(remote)
        paths = self._paths(remote, launch)
        env = {
            **launch.env,
            "HYPERCTL_JOB_DATA_DIR": str(paths.data),
            "HYPERCTL_JOB_WORKING_DIR": str(paths.working),
            "HYPERCTL_JOB_PARAMS_FILE": str(paths.params_file),
        }
        # A secret, so not on the command line (which `ps` shows anyone on the host): on stdin.
        token = env.pop("HYPERCTL_JOB_TOKEN", "")
        if _on_loopback(env.get("HYPERCTL_SERVER_PORTAL", "")):
            del env["HYPERCTL_SERVER_PORTAL"]  # the daemon's loopback is not the host's
        q = shlex.quote
        dirs = " ".join(q(str(p)) for p in {paths.attempt, paths.data})
        params = launch.params_json if len(launch.params_json) <= MAX_PARAMS_ARG else ""
        if launch.execution.assets or not params:
            await self._in_thread(self._upload, transport, paths, launch)
        args = (launch.command, paths.attempt, paths.working, params, paths.params_file)
        lib = q(str(self._lib_dir(remote)))
        command = (
            "IFS= read -r HYPERCTL_JOB_TOKEN && export HYPERCTL_JOB_TOKEN && "
            # An exitcode left by an earlier batch of this name is emptied: never mistaken for this one's.
            f"mkdir -p {dirs} && : > {q(str(paths.attempt / 'exitcode'))} && {self._env_prefix(remote, env)}"
            f'export PYTHONPATH="${{PYTHONPATH:+$PYTHONPATH:}}"{lib} && '
            # The pid first, on the channel; then the job, in a session of its own that outlives us.
            f"setsid -w /bin/sh -c {q('echo $$; ' + LAUNCHER)} hyperctl-job {' '.join(q(str(a)) for a in args)} "
            f"</dev/null; s=$?; {self._collect(paths, launch)}; exit $s"
        )
        chan = await self._in_thread(open_exec, transport, command, (token + "\n").encode())
        watch = _Watch(self, launch, chan, spawned=True)
        line = await watch.first  # the pid, read on the event loop with what follows
        if not line.isdigit():
            raise OSError(f"{remote.machine.name}: the job did not start: {chan.recv_stderr(4096).decode().strip()}")
        handle = self._new_handle(launch, int(line), None)
        self._track(remote, handle)
        watch.attach(handle)
        return handle

    def _upload(self, transport: paramiko.Transport, paths: RemotePaths, launch: Launch) -> None:
        """Assets into the working dir, and params too long for an argument, over one channel."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for asset in launch.execution.assets:
                tar.add(asset, arcname="w/" + os.path.basename(asset.rstrip("/")))
            if len(launch.params_json) > MAX_PARAMS_ARG:
                data = (launch.params_json + "\n").encode()
                info = tarfile.TarInfo("j/params.json")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        q = shlex.quote
        command = (
            f't=$(mktemp -d) && tar -xf - -C "$t" && mkdir -p {q(str(paths.working))} {q(str(paths.job))} && '
            f'{{ [ ! -d "$t/w" ] || cp -R "$t/w/." {q(str(paths.working))}; }} && '
            f'{{ [ ! -d "$t/j" ] || cp "$t/j/params.json" {q(str(paths.params_file))}; }}; s=$?; rm -rf "$t"; exit $s'
        )
        status, _, err = run(transport, command, buffer.getvalue())
        if status != 0:
            raise OSError(f"could not upload the job's assets: {err.decode(errors='replace').strip()}")

    def _watch_channel(self, handle: Handle, chan: paramiko.Channel) -> None:
        """Watch a reattached job's channel, whose first line (the watching script's verdict) is read."""
        _Watch(self, handle.launch, chan, spawned=False).attach(handle)

    async def _channel_closed(self, handle: Handle, reader: AttemptReader, status: int | None) -> None:
        tar = reader.finish()
        if tar is not None:
            try:
                await self._in_thread(extract, tar, handle.launch.attempt_dir.parent)
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
                found, chan = await self._reattach_channel(remote, handle.launch, handle.pid)
                if found in (b"adopted", b"gone"):  # either way, what it left follows
                    self._watch_channel(handle, chan)
                    return
                chan.close()
            except (HyperctlError, OSError, paramiko.SSHException) as e:
                self.silent.add(name)
                if self.on_machine_down is not None:
                    self.on_machine_down(name, str(e))
        self._exited(handle, None, None)

    def _track(self, remote: RemoteMachine, handle: Handle) -> None:
        self.running[remote.machine.name].add(handle)
        handle.done.add_done_callback(lambda _: self.running[remote.machine.name].discard(handle))
        if self.watchdog is None:
            self.watchdog = asyncio.ensure_future(self._watch_liveness())

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
            await asyncio.wait_for(self._in_thread(run, transport, _PING), self.liveness_interval)
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
            # "kill -N -PGID": the spelling that dash, bash and /bin/kill all take for a group.
            await self._exec(remote, f"kill -{int(sig)} -{int(handle.pid)} 2>/dev/null")
        except (HyperctlError, OSError, paramiko.SSHException) as e:
            logger.warning("job %s: cannot signal it on %s: %s", handle.launch.job, remote.machine.name, e)

    async def _group_alive(self, handle: Handle) -> bool:
        remote = self.remotes[handle.launch.machine.name]
        live = f"ps -e -o pgid=,stat= | awk '$1 == {int(handle.pid)} && $2 !~ /^Z/' | grep -q ."
        try:
            return (await self._exec(remote, live))[0] == 0
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
        """A channel on which a script checks that pid is still the attempt's launcher (its
        HYPERCTL_* environment, leading its group) and says `adopted` and waits for it, or says
        `gone`; then it sends the attempt home."""
        transport = await self._transport(remote)
        paths = self._paths(remote, launch)
        checks = " && ".join(
            f"tr '\\0' '\\n' < /proc/$p/environ | grep -qxF {shlex.quote(f'{k}={launch.env[k]}')}" for k in IDENTITY_ENV
        )
        script = (
            f"p={int(pid)}; if {checks} && [ \"$(ps -o pgid= -p $p | tr -d ' ')\" = $p ]; then echo adopted; "
            # once a second, on the host, and only for jobs found after a restart or a drop
            "while s=$(cut -d' ' -f3 /proc/$p/stat 2>/dev/null) && [ \"$s\" != Z ]; do sleep 1; done; "
            f"else echo gone; fi; {self._collect(paths, launch)}"
        )
        chan, first = await self._in_thread(first_line, transport, script)
        return first, chan

    async def _fetch(self, launch: Launch) -> None:
        remote = self.remotes[launch.machine.name]
        transport = await self._transport(remote)
        reader = AttemptReader(launch.attempt_dir)
        command = self._collect(self._paths(remote, launch), launch)

        def receive() -> None:
            chan = transport.open_session(timeout=CONNECT_TIMEOUT)
            try:
                chan.exec_command(command)
                while data := chan.recv(1 << 16):
                    reader.feed(data)
            finally:
                chan.close()

        await self._in_thread(receive)
        tar = reader.finish()
        if tar is not None:
            await self._in_thread(extract, tar, launch.attempt_dir.parent)

    async def follow(
        self, handle: Handle, name: str, offset: int, lines: int | None = None, follow: bool = True
    ) -> AsyncGenerator[bytes, None]:
        remote = self.remotes[handle.launch.machine.name]
        transport = await self._transport(remote)
        path = self._paths(remote, handle.launch).attempt / name
        # tail wakes on writes (inotify) and ends once the launcher is gone, after the last bytes.
        start_at = f"-n {int(lines)}" if lines is not None else f"-c +{int(offset) + 1}"
        then = f"-s 0.5 --pid={int(handle.pid)} -F" if follow else ""
        command = f"exec tail {start_at} {then} {shlex.quote(str(path))} 2>/dev/null"

        def start() -> paramiko.Channel:
            chan = transport.open_session(timeout=CONNECT_TIMEOUT)
            chan.exec_command(command)
            return chan

        chan = await self._in_thread(start)
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[bytes] = asyncio.Queue()
        fd = chan.fileno()

        def on_readable() -> None:
            ended = _ended(chan)
            while chan.recv_ready():
                chunks.put_nowait(chan.recv(1 << 16))
            if ended:
                loop.remove_reader(fd)
                chunks.put_nowait(b"")
            elif chunks.qsize() > 64:  # a slow reader: let the channel's window hold the rest
                loop.remove_reader(fd)

        loop.add_reader(fd, on_readable)
        try:
            while chunk := await chunks.get():
                yield chunk
                if chunks.empty() and not chan.closed:
                    loop.add_reader(fd, on_readable)
                    on_readable()  # what arrived while nobody read
        finally:
            loop.remove_reader(fd)
            chan.close()

    async def _read_attempt_file(self, launch: Launch, name: str) -> str | None:
        remote = self.remotes[launch.machine.name]
        path = self._paths(remote, launch).attempt / name
        status, out = await self._exec(remote, f"head -c 4096 {shlex.quote(str(path))} 2>/dev/null")
        return out if status == 0 else None


class _Watch:
    """A job's channel, read on the event loop as it sends: first (for a new job) the pid line,
    then the attempt coming home; when the channel closes, the executor hears how it ended."""

    def __init__(self, executor: RemoteExecutor, launch: Launch, chan: paramiko.Channel, spawned: bool) -> None:
        self.executor = executor
        self.launch = launch
        self.chan = chan
        # A new job: its pid comes first, and the exit status is setsid's. Else a watching script
        # (whose first line was read already) and its status says nothing of the job.
        self.spawned = spawned
        self.first: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        if not spawned:
            self.first.set_result(b"")
        self.pending = bytearray()
        self.reader = AttemptReader(launch.attempt_dir)
        self.handle: Handle | None = None
        self.closed: tuple[int | None] | None = None  # the exit status, once the channel closed
        self.loop = asyncio.get_running_loop()
        self.fd = chan.fileno()
        self.loop.add_reader(self.fd, self._on_readable)

    def attach(self, handle: Handle) -> None:
        """The attempt's handle, once its pid is known: it ends when the channel closes."""
        self.handle = handle
        if self.closed is not None:
            self._ended()

    def _on_readable(self) -> None:
        chan = self.chan
        ended = _ended(chan)
        try:
            while chan.recv_ready():
                self._feed(chan.recv(1 << 16))
        except OSError as e:  # the local disk: the attempt is over for us, not for the job
            logger.warning("job %s: cannot save its output: %s", self.launch.job, e)
            chan.close()
            ended = True
        if ended:
            self.loop.remove_reader(self.fd)
            status = chan.recv_exit_status() if chan.exit_status_ready() else None
            chan.close()
            if not self.spawned and status is not None:
                status = 0  # a watching script's status says nothing of the job
            if not self.first.done():
                self.first.set_result(bytes(self.pending).strip())  # no pid: it did not start
                return
            self.closed = (status,)
            if self.handle is not None:
                self._ended()

    def _feed(self, data: bytes) -> None:
        if self.first.done():
            self.reader.feed(data)
            return
        self.pending.extend(data)
        line, newline, rest = bytes(self.pending).partition(b"\n")
        if newline:
            self.first.set_result(line.strip())
            if rest:
                self.reader.feed(rest)

    def _ended(self) -> None:
        assert self.handle is not None and self.closed is not None
        asyncio.ensure_future(self.executor._channel_closed(self.handle, self.reader, self.closed[0]))


def _on_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    return host == "localhost" or host.startswith("127.") or host == "::1"


def _ended(chan: paramiko.Channel) -> bool:
    """Whether the channel has sent all it will: closed, or its EOF and exit status are in.

    Checked before its buffer is read: every byte came before the EOF. The exit status alone
    may come before the last output (OpenSSH sends it when the command is reaped)."""
    return bool(chan.closed or (chan.eof_received and chan.exit_status_ready()))


def _job_side_lib() -> tuple[str, dict[str, str]]:
    """The job-side modules as text, and a name for this version of them."""
    package = Path(__file__).resolve().parent.parent
    files = {name: (package / name).read_text() for name in _JOB_SIDE}
    files["__init__.py"] += _EXTEND
    digest = hashlib.sha256("".join(files.values()).encode()).hexdigest()[:12]
    return digest, files


def _check_policy(value: str) -> str | None:
    return None if value in HOST_KEY_POLICIES else f"must be one of {', '.join(HOST_KEY_POLICIES)}"
