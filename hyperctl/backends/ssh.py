"""The remote backend: jobs on machines reached over SSH. The only module that imports paramiko.

One transport per machine carries every job of that machine as a channel. Each job runs
detached in a session of its own (`setsid -w`): the open channel reports its exit status, and
the job survives a dropped connection or a dead daemon, leaving its exit code on the host.
Paramiko calls that block go to threads; the channel's exit reaches the event loop through the
channel's file descriptor, so nothing polls.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import os
import shlex
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, TypeVar

import paramiko

from hyperctl.backends.base import (
    IDENTITY_ENV,
    LAUNCHER,
    Executor,
    Handle,
    Launch,
    Machine,
    MachineUnavailableError,
)
from hyperctl.errors import HyperctlError
from hyperctl.fields import Problems, Section, above, at_least, join

logger = logging.getLogger(__name__)
T = TypeVar("T")
HOST_KEY_POLICIES = ("reject", "accept-new")
_KEEPALIVE = 10  # seconds between SSH keepalives on an idle transport
_CONNECT_TIMEOUT = 15
_FILES = "stdout stderr exitcode"  # what comes home when an attempt ends
# Local paths in a job's environment that name its folders: rewritten to the host's.
_PATH_ENV = ("HYPERCTL_JOB_DATA_DIR", "HYPERCTL_JOB_WORKING_DIR", "HYPERCTL_JOB_PARAMS_FILE")


class HostUnreachableError(MachineUnavailableError):
    """A machine could not be reached, or its host key is unknown or changed."""


@dataclass
class RemoteMachine:
    """A machine of the conf: how to reach it, what it offers, and its live connection."""

    machine: Machine
    hostname: str
    port: int
    username: str
    key_file: str | None
    password: str | None = field(default=None, repr=False)
    environments: dict[str, str] = field(default_factory=dict)
    transport: paramiko.Transport | None = None
    home: str = ""


class _AcceptNew(paramiko.MissingHostKeyPolicy):
    """Trust a host seen for the first time and record its key; a changed key still fails."""

    def __init__(self, path: str) -> None:
        self.path = path

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        client.get_host_keys().add(hostname, key.get_name(), key)
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        with open(self.path, "a") as f:
            f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")


def _parse_machine(sec: Section) -> RemoteMachine | None:
    hostname = sec.get("hostname", "string")
    # ~/.ssh/config fills in what the machine entry leaves out, as for `ssh ALIAS`.
    ssh_conf = _ssh_config(hostname) if hostname else {}
    port = sec.get(
        "port", "integer", int(ssh_conf.get("port", 22)), check=lambda v: None if 0 < v < 65536 else "must be 1-65535"
    )
    username = sec.get("username", "string", ssh_conf.get("user") or getpass.getuser())
    key_file = (
        sec.get("ssh_rsa_file", "string", None)
        or sec.get("key_file", "string", None)
        or (ssh_conf.get("identityfile") or [None])[0]
    )
    password = sec.get("password", "string", None)
    password_env = sec.get("password_env", "string", None)
    if password_env is not None:
        password = os.environ.get(password_env)
        if password is None:
            sec.problems.add(sec.at("password_env"), f"${password_env} is not set")
    cpu = sec.get("cpu", "number", 1, check=above(0))
    ram = sec.get("ram", "integer", 0, check=at_least(0))
    from hyperctl.backends.local import parse_gpus
    from hyperctl.config import parse_env

    gpus = parse_gpus(sec)
    environments = parse_env(sec.section("environments"))
    sec.done()
    if hostname is None:
        return None
    name = hostname if port == 22 else f"{hostname}:{port}"
    return RemoteMachine(
        machine=Machine(name, cpu, ram, gpus),
        hostname=ssh_conf.get("hostname", hostname),
        port=port,
        username=username,
        key_file=os.path.expanduser(key_file) if key_file else None,
        password=password,
        environments=environments,
    )


def _first_line(transport: paramiko.Transport, command: str) -> tuple[paramiko.Channel, bytes]:
    """Run command on a new channel and read its first line, byte by byte: what follows belongs
    to whoever watches the channel next."""
    chan = transport.open_session(timeout=_CONNECT_TIMEOUT)
    chan.exec_command(command)
    line = b""
    while not line.endswith(b"\n"):
        chunk = chan.recv(1)
        if not chunk:
            break
        line += chunk
    return chan, line.strip()


def _ssh_config(host: str) -> dict[str, Any]:
    """What ~/.ssh/config says of host (HostName, Port, User, IdentityFile), or nothing."""
    path = os.path.expanduser("~/.ssh/config")
    if not os.path.exists(path):
        return {}
    try:
        found = paramiko.SSHConfig.from_path(path).lookup(host)
    except (OSError, paramiko.SSHException):
        return {}
    return {k: v for k, v in found.items() if k in ("hostname", "port", "user", "identityfile")}


class RemoteExecutor(Executor):
    """Runs attempts on SSH machines, one persistent transport per machine."""

    kind = "remote"

    def __init__(
        self,
        machines: list[RemoteMachine],
        policy: str,
        known_hosts: str | None,
        remote_root: str,
        liveness_interval: float = 10.0,
    ) -> None:
        self.remotes = {m.machine.name: m for m in machines}
        self.policy = policy
        self.known_hosts = known_hosts
        self.remote_root = remote_root
        # Paramiko blocks: its calls run here, enough threads for many jobs starting at once.
        self.threads = ThreadPoolExecutor(max_workers=32, thread_name_prefix="hyperctl-ssh")
        # A pulled cable or a partition raises no error: each machine with running jobs is asked
        # to answer every liveness_interval seconds, within as many; silence closes its connection.
        self.liveness_interval = liveness_interval
        self.running: dict[str, set[Handle]] = {name: set() for name in self.remotes}
        self.watchdog: asyncio.Task[None] | None = None

    @classmethod
    def from_conf(cls, conf: dict[str, Any]) -> RemoteExecutor:
        problems = Problems()
        sec = Section(conf, "backend.conf", problems)
        raw = sec.get("machines", "list", check=lambda v: None if v else "must list at least one machine")
        machines = [_parse_machine(Section(m, join(sec.at("machines"), i), problems)) for i, m in enumerate(raw or [])]
        policy = sec.get("host_key_policy", "string", "reject", check=_check_policy)
        known_hosts = sec.get("known_hosts", "string", None)
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
            policy,
            os.path.expanduser(known_hosts) if known_hosts else None,
            remote_root,
            float(liveness),
        )

    def machines(self) -> list[Machine]:
        return [r.machine for r in self.remotes.values()]

    # -- connections ---------------------------------------------------------
    async def _transport(self, remote: RemoteMachine) -> paramiko.Transport:
        if remote.transport is None or not remote.transport.is_active():
            remote.transport = await self._in_thread(self._connect, remote)
            remote.home = (await self._exec(remote, 'printf %s "$HOME"'))[1]
        return remote.transport

    def _connect(self, remote: RemoteMachine) -> paramiko.Transport:
        client = paramiko.SSHClient()
        client.load_system_host_keys()
        if self.known_hosts and os.path.exists(self.known_hosts):
            client.load_host_keys(self.known_hosts)
        record = self.known_hosts or os.path.expanduser("~/.ssh/known_hosts")
        client.set_missing_host_key_policy(
            _AcceptNew(record) if self.policy == "accept-new" else paramiko.RejectPolicy()
        )
        where = f"{remote.username}@{remote.hostname}:{remote.port}"
        try:
            sock = socket.create_connection((remote.hostname, remote.port), timeout=_CONNECT_TIMEOUT)
            # Without it every channel pays a ~40 ms Nagle / delayed-ACK stall.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client.connect(
                remote.hostname,
                port=remote.port,
                username=remote.username,
                key_filename=remote.key_file,
                password=remote.password,
                sock=sock,
                timeout=_CONNECT_TIMEOUT,
                allow_agent=remote.key_file is None and remote.password is None,
                look_for_keys=remote.key_file is None and remote.password is None,
            )
        except paramiko.BadHostKeyException:
            raise HostUnreachableError(
                f"{where}: its host key has CHANGED since it was recorded; refusing to connect "
                "(if the change is expected, remove its old line from known_hosts)"
            ) from None
        except paramiko.SSHException as e:
            if "not found in known_hosts" in str(e):
                raise HostUnreachableError(
                    f"{where}: unknown host key; trust it with `ssh -p {remote.port} {remote.hostname}` "
                    "(which records it in ~/.ssh/known_hosts), or set backend.conf.host_key_policy: accept-new"
                ) from None
            raise HostUnreachableError(f"{where}: {e}") from None
        except OSError as e:
            raise HostUnreachableError(f"{where}: cannot connect: {e}") from None
        transport = client.get_transport()
        assert transport is not None
        transport.set_keepalive(_KEEPALIVE)
        return transport

    async def _exec(self, remote: RemoteMachine, command: str) -> tuple[int, str]:
        """Run a short command on the machine: its exit status and stdout."""
        transport = await self._transport(remote) if remote.transport is None else remote.transport

        def run() -> tuple[int, str]:
            chan = transport.open_session(timeout=_CONNECT_TIMEOUT)
            chan.exec_command(command)
            out = chan.makefile("rb").read().decode(errors="replace")
            return chan.recv_exit_status(), out

        return await self._in_thread(run)

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.threads, fn, *args)

    async def close(self) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()
        for remote in self.remotes.values():
            if remote.transport is not None:
                remote.transport.close()
        self.threads.shutdown(wait=False)

    # -- primitives ------------------------------------------------------------
    def _remote_dir(self, remote: RemoteMachine, launch: Launch) -> PurePosixPath:
        root = self.remote_root.replace("~", remote.home, 1) if self.remote_root.startswith("~") else self.remote_root
        batch = launch.env["HYPERCTL_BATCH_NAME"]
        return PurePosixPath(root) / batch / launch.job

    async def _spawn(self, launch: Launch) -> Handle:
        remote = self.remotes[launch.machine.name]
        transport = await self._transport(remote)
        job_dir = self._remote_dir(remote, launch)
        attempt_dir = job_dir / f"attempt-{launch.attempt}"
        env = {**remote.environments, **launch.env}
        env["HYPERCTL_JOB_DATA_DIR"] = env["HYPERCTL_JOB_WORKING_DIR"] = str(job_dir)
        env["HYPERCTL_JOB_PARAMS_FILE"] = str(job_dir / "params.json")
        # `export` in the login shell, not `env`: one program fewer to start per job.
        assigns = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        launcher = " ".join(
            shlex.quote(str(a))
            for a in (
                LAUNCHER,
                "hyperctl-job",
                launch.command,
                attempt_dir,
                job_dir,
                launch.params_json,
                job_dir / "params.json",
            )
        )
        # The pid first, on the channel; then the job, in a session of its own that outlives us.
        command = (
            # An attempt folder already there is stale (a batch folder made anew): never mix them.
            f"rm -rf {shlex.quote(str(attempt_dir))} && mkdir -p {shlex.quote(str(attempt_dir))} && "
            f"export {assigns} && exec setsid -w /bin/sh -c 'echo $$; exec /bin/sh -c \"$@\"' sh {launcher} "
            "</dev/null"
        )

        chan, line = await self._in_thread(_first_line, transport, command)
        if not line.isdigit():
            raise OSError(f"{remote.machine.name}: the job did not start: {chan.recv_stderr(4096)!r}")
        pid = int(line)
        handle = self._new_handle(launch, pid, None)
        self._track(remote, handle)
        self._watch_channel(handle, chan)
        return handle

    def _watch_channel(self, handle: Handle, chan: paramiko.Channel, code_in_output: bool = False) -> None:
        """The channel's fd turns readable on output or close: its exit status ends the handle
        (or, for a reattached job, the exit code the watching script prints last)."""
        loop = asyncio.get_running_loop()
        fd = chan.fileno()
        output = bytearray()

        def on_readable() -> None:
            while chan.recv_ready():
                output.extend(chan.recv(65536))
            if chan.exit_status_ready() or chan.closed:
                loop.remove_reader(fd)
                status = chan.recv_exit_status() if chan.exit_status_ready() else -1
                chan.close()
                if code_in_output:
                    last = output.decode(errors="replace").split()[-1:]
                    status = int(last[0]) if status == 0 and last and last[0].isdigit() else -1
                # -1: the connection dropped and no status came: the job's end is unknown.
                asyncio.ensure_future(self._ended(handle, status if status >= 0 else None))

        loop.add_reader(fd, on_readable)

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

        def ping() -> None:
            chan = transport.open_session(timeout=self.liveness_interval)
            chan.exec_command("true")
            chan.recv_exit_status()
            chan.close()

        try:
            await asyncio.wait_for(self._in_thread(ping), self.liveness_interval)
        except (asyncio.TimeoutError, OSError, paramiko.SSHException, EOFError) as e:
            logger.warning(
                "machine %s does not answer (%s): its running jobs are lost", remote.machine.name, e or "timeout"
            )
            remote.transport = None
            if self.on_machine_down is not None:
                self.on_machine_down(remote.machine.name, f"does not answer: {e or 'timeout'}")
            transport.close()  # every channel on it closes: their jobs end as lost, and retry by policy

    async def _ended(self, handle: Handle, status: int | None) -> None:
        """Bring the attempt's output home, so that `hyperctl job logs` reads it as for a local job."""
        if status is not None:
            remote = self.remotes[handle.launch.machine.name]
            try:
                await self._in_thread(self._download, remote, handle.launch)
            except (OSError, paramiko.SSHException) as e:
                logger.warning("job %s: could not fetch its output from %s: %s", handle.launch.job, remote.hostname, e)
        self._exited(handle, status, None)

    def _download(self, remote: RemoteMachine, launch: Launch) -> None:
        """Copy the attempt's files home over one exec channel: their sizes, then their bytes."""
        assert remote.transport is not None
        source = self._remote_dir(remote, launch) / f"attempt-{launch.attempt}"
        launch.attempt_dir.mkdir(parents=True, exist_ok=True)
        chan = remote.transport.open_session(timeout=_CONNECT_TIMEOUT)
        chan.exec_command(f"cd {shlex.quote(str(source))} && stat -c %s {_FILES} && cat {_FILES}")
        stream = chan.makefile("rb")
        try:
            sizes = [int(stream.readline()) for _ in _FILES.split()]
            for name, size in zip(_FILES.split(), sizes):
                with open(launch.attempt_dir / name, "wb") as f:
                    while size > 0:
                        chunk = stream.read(min(size, 1 << 16))
                        if not chunk:
                            raise OSError(f"{name}: the copy ended early")
                        f.write(chunk)
                        size -= len(chunk)
        except ValueError:
            raise OSError(chan.makefile_stderr("rb").read().decode(errors="replace").strip()) from None
        finally:
            chan.close()

    def _signal(self, handle: Handle, sig: int) -> None:
        remote = self.remotes[handle.launch.machine.name]
        # "kill -N -PGID": the spelling that dash, bash and /bin/kill all take for a group.
        asyncio.ensure_future(self._exec(remote, f"kill -{int(sig)} -{int(handle.pid)} 2>/dev/null"))

    async def _group_alive(self, handle: Handle) -> bool:
        remote = self.remotes[handle.launch.machine.name]
        live = f"ps -e -o pgid=,stat= | awk '$1 == {int(handle.pid)} && $2 !~ /^Z/' | grep -q ."
        try:
            return (await self._exec(remote, live))[0] == 0
        except (HyperctlError, OSError, paramiko.SSHException):
            return False  # the machine is gone: so is the job, as far as anyone can tell

    async def _reattach(self, launch: Launch, pid: int | None, pid_started: float | None) -> Handle | None:
        """Watch a job a previous daemon started: a script on the host checks that the pid is still
        that job's launcher (its HYPERCTL_* environment, leading its group), then waits for it."""
        if pid is None:
            return None
        remote = self.remotes[launch.machine.name]
        transport = await self._transport(remote)
        attempt_dir = self._remote_dir(remote, launch) / f"attempt-{launch.attempt}"
        checks = " && ".join(
            f"tr '\\0' '\\n' < /proc/$p/environ | grep -qxF {shlex.quote(f'{k}={launch.env[k]}')}" for k in IDENTITY_ENV
        )
        script = (
            f"p={int(pid)}; if {checks} && [ \"$(ps -o pgid= -p $p | tr -d ' ')\" = $p ]; then echo adopted; "
            # once a second, on the host, and only for jobs found after a restart
            "while s=$(cut -d' ' -f3 /proc/$p/stat 2>/dev/null) && [ \"$s\" != Z ]; do sleep 1; done; "
            f"cat {shlex.quote(str(attempt_dir / 'exitcode'))} 2>/dev/null || echo none; else echo gone; fi"
        )

        chan, first = await self._in_thread(_first_line, transport, script)
        if first != b"adopted":
            chan.close()
            return None
        handle = self._new_handle(launch, pid, pid_started)
        self._track(remote, handle)
        self._watch_channel(handle, chan, code_in_output=True)
        return handle

    async def _read_attempt_file(self, launch: Launch, name: str) -> str | None:
        remote = self.remotes[launch.machine.name]
        path = self._remote_dir(remote, launch) / f"attempt-{launch.attempt}" / name
        status, out = await self._exec(remote, f"head -c 4096 {shlex.quote(str(path))} 2>/dev/null")
        return out if status == 0 else None


def _check_policy(value: str) -> str | None:
    return None if value in HOST_KEY_POLICIES else f"must be one of {', '.join(HOST_KEY_POLICIES)}"
