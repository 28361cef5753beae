"""SSH machines: how the conf names them, how they are reached, and how their host keys are checked.

The connection side of the remote backend: blocking Paramiko calls only, which the runner
(ssh.py) runs in threads.
"""

from __future__ import annotations

import concurrent.futures
import functools
import getpass
import os
import queue
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from hyperctl.backends.base import Machine, MachineUnavailableError
from hyperctl.backends.sshlib import load_invoke, paramiko
from hyperctl.validation import Problems, Section, above, at_least, join

KEEPALIVE = 10  # seconds between SSH keepalives on an idle transport
CONNECT_TIMEOUT = 15
HOST_KEY_POLICIES = ("reject", "accept-new")


class HostUnreachableError(MachineUnavailableError):
    """A machine could not be reached, or its host key is unknown or changed."""


@dataclass(frozen=True)
class Endpoint:
    """Where to log in: a machine, or the jump host in front of it."""

    hostname: str
    port: int
    username: str
    key_file: str | None = None
    password: str | None = field(default=None, repr=False)
    passphrase: str | None = field(default=None, repr=False)  # of the key file

    def __str__(self) -> str:
        return f"{self.username}@{self.hostname}:{self.port}"


@dataclass
class RemoteMachine:
    """A machine of the conf: how to reach it, what it offers, and its live connection."""

    machine: Machine
    endpoint: Endpoint
    jump: Endpoint | None = None  # ProxyJump: the host the connection goes through
    # What the host is asked once connected: its CPUs and RAM unless the conf gives them,
    # its GPUs for `gpu: auto` (nvidia-smi there).
    cpu_auto: bool = False
    ram_auto: bool = False
    gpu_auto: bool = False
    environments: dict[str, str] = field(default_factory=dict)
    transport: paramiko.Transport | None = None
    clients: list[paramiko.SSHClient] = field(default_factory=list, repr=False)  # kept open with it
    home: str = ""
    umask: str = "022"  # the host's, for its jobs' commands (hyperctl's own files there are private)


class RemoteConf(NamedTuple):
    """The remote backend's `backend.conf`, validated."""

    machines: list[RemoteMachine]
    keys: HostKeys
    remote_root: str
    liveness_interval: float


def parse_conf(conf: dict[str, Any]) -> RemoteConf:
    """`backend.conf` of the remote backend; ConfigError naming each field that is wrong."""
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
    return RemoteConf(
        [m for m in machines if m is not None],
        HostKeys(policy, os.path.expanduser(known_hosts) if known_hosts else None),
        remote_root,
        float(liveness),
    )


def _check_policy(value: str) -> str | None:
    return None if value in HOST_KEY_POLICIES else f"must be one of {', '.join(HOST_KEY_POLICIES)}"


def parse_machine(sec: Section) -> RemoteMachine | None:
    """A `machines[]` entry; ~/.ssh/config fills in what it leaves out, as for `ssh ALIAS`."""
    from hyperctl.backends.local import parse_gpus
    from hyperctl.config import parse_env

    hostname = sec.get("hostname", "string")
    ssh_conf = ssh_config(hostname) if hostname else {}
    port = sec.get("port", "integer", int(ssh_conf.get("port", 22)), check=_port)
    username = sec.get("username", "string", ssh_conf.get("user") or getpass.getuser())
    named = sec.get("ssh_rsa_file", "string", None, check=_private_key)
    named = named or sec.get("key_file", "string", None, check=_private_key)
    key_file = named or (ssh_conf.get("identityfile") or [None])[0]
    password = _secret(sec, "password")
    passphrase = _secret(sec, "passphrase")
    proxy_jump = sec.get("proxy_jump", "string", ssh_conf.get("proxyjump"), check=_one_jump)
    cpu = sec.get("cpu", "number", None, check=above(0))
    ram = sec.get("ram", "integer", None, check=at_least(0))
    max_jobs = sec.get("max_jobs", "integer", None, check=at_least(1))
    gpu_auto = sec.data.get("gpu") == "auto" if isinstance(sec.data, dict) else False
    if gpu_auto:
        sec.ignore("gpu")
    gpus = () if gpu_auto else parse_gpus(sec)
    environments = parse_env(sec.section("environments"))
    sec.done()
    if hostname is None:
        return None
    key = os.path.expanduser(key_file) if key_file else None
    endpoint = Endpoint(ssh_conf.get("hostname", hostname), port, username, key, password, passphrase)
    name = hostname if port == 22 else f"{hostname}:{port}"
    return RemoteMachine(
        # Until it answers: one CPU, no RAM, its GPUs if listed (placement treats it as unknown).
        machine=Machine(name, cpu or 1, ram or 0, gpus, max_jobs=max_jobs, known=False),
        endpoint=endpoint,
        jump=_jump_endpoint(proxy_jump, endpoint) if proxy_jump and proxy_jump != "none" else None,
        cpu_auto=cpu is None,
        ram_auto=ram is None,
        gpu_auto=gpu_auto,
        environments=environments,
    )


def _secret(sec: Section, key: str) -> str | None:
    """A password or passphrase: written in the conf, or named by `KEY_env` (an environment variable)."""
    value = sec.get(key, "string", None)
    name = sec.get(f"{key}_env", "string", None)
    if name is not None:
        value = os.environ.get(name)
        if value is None:
            sec.problems.add(sec.at(f"{key}_env"), f"${name} is not set")
    return value


def _private_key(path: str) -> str | None:
    """Why path cannot be a private key file, found before anything starts."""
    full = os.path.expanduser(path)
    try:
        with open(full, "rb") as f:
            head = f.read(64)
    except FileNotFoundError:
        return f"no such file: {full}"
    except OSError as e:
        return f"cannot read {full}: {e.strerror}"
    if head.startswith((b"ssh-", b"ecdsa-", b"sk-")):
        return f"{full} is a public key: name the private key (the same name without .pub)"
    return None


def _port(value: int) -> str | None:
    return None if 0 < value < 65536 else "must be 1-65535"


def _one_jump(value: str) -> str | None:
    return "only one jump host is supported" if "," in value else None


def _jump_endpoint(spec: str, target: Endpoint) -> Endpoint:
    """`[user@]host[:port]`, or an alias of ~/.ssh/config; the target's key when none is named."""
    user, _, rest = spec.rpartition("@")
    host, _, port = rest.partition(":")
    conf = ssh_config(host)
    key = (conf.get("identityfile") or [None])[0]
    return Endpoint(
        hostname=conf.get("hostname", host),
        port=int(port or conf.get("port", 22)),
        username=user or conf.get("user") or target.username,
        key_file=os.path.expanduser(key) if key else target.key_file,
        password=None,
    )


def ssh_config(host: str) -> dict[str, Any]:
    """What ~/.ssh/config says of host (HostName, Port, User, IdentityFile, ProxyJump), or nothing."""
    path = os.path.expanduser("~/.ssh/config")
    if not os.path.exists(path):
        return {}
    try:
        config = paramiko.SSHConfig.from_path(path)
        try:
            found = config.lookup(host)
        except ImportError:  # a `Match exec` line: it needs invoke, loaded only now
            if not load_invoke():
                return {}
            found = config.lookup(host)
    except (OSError, paramiko.SSHException):
        return {}
    keys = ("hostname", "port", "user", "identityfile", "proxyjump")
    return {k: v for k, v in found.items() if k in keys}


class _AcceptNew(paramiko.MissingHostKeyPolicy):
    """Trust a host seen for the first time and record its key; a changed key still fails."""

    def __init__(self, path: str) -> None:
        self.path = path

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        client.get_host_keys().add(hostname, key.get_name(), key)
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        with open(self.path, "a") as f:
            f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")


@dataclass(frozen=True)
class HostKeys:
    """Where host keys are checked: ~/.ssh/known_hosts, the conf's file, and the policy."""

    policy: str
    known_hosts: str | None

    def client(self) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        client.load_system_host_keys()
        if self.known_hosts and os.path.exists(self.known_hosts):
            client.load_host_keys(self.known_hosts)
        record = self.known_hosts or os.path.expanduser("~/.ssh/known_hosts")
        client.set_missing_host_key_policy(
            _AcceptNew(record) if self.policy == "accept-new" else paramiko.RejectPolicy()
        )
        return client


def connect(remote: RemoteMachine, keys: HostKeys) -> paramiko.Transport:
    """A logged-in transport to the machine (through its jump host, if any). Blocks."""
    clients = []
    try:
        sock: Any = None
        if remote.jump is not None:
            jump = _login(remote.jump, keys, None, via="")
            clients.append(jump)
            transport = jump.get_transport()
            assert transport is not None
            try:
                target = (remote.endpoint.hostname, remote.endpoint.port)
                sock = transport.open_channel("direct-tcpip", target, ("127.0.0.1", 0), timeout=CONNECT_TIMEOUT)
            except (paramiko.SSHException, OSError) as e:
                raise HostUnreachableError(f"{remote.endpoint}: cannot connect through {remote.jump}: {e}") from None
        client = _login(remote.endpoint, keys, sock, via=f" (through {remote.jump})" if remote.jump else "")
        clients.append(client)
    except BaseException:
        for c in clients:
            c.close()
        raise
    for c in remote.clients:
        c.close()
    remote.clients = clients
    transport = client.get_transport()
    assert transport is not None
    transport.set_keepalive(KEEPALIVE)
    return transport


def _login(where: Endpoint, keys: HostKeys, sock: Any, via: str) -> paramiko.SSHClient:
    client = keys.client()
    try:
        if sock is None:
            sock = socket.create_connection((where.hostname, where.port), timeout=CONNECT_TIMEOUT)
            # Without it every channel pays a ~40 ms Nagle / delayed-ACK stall.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        bare = where.key_file is None and where.password is None
        client.connect(
            where.hostname,
            port=where.port,
            username=where.username,
            key_filename=where.key_file,
            password=where.password,
            passphrase=where.passphrase,
            sock=sock,
            timeout=CONNECT_TIMEOUT,
            allow_agent=bare,  # ssh-agent and ~/.ssh/id_* only when the conf names no key nor password
            look_for_keys=bare,
        )
    except paramiko.BadHostKeyException:
        client.close()
        raise HostUnreachableError(
            f"{where}{via}: its host key has CHANGED since it was recorded; refusing to connect "
            "(if the change is expected, remove its old line from known_hosts)"
        ) from None
    except paramiko.PasswordRequiredException:
        client.close()
        raise HostUnreachableError(
            f"{where}{via}: the key {where.key_file} is encrypted: give its passphrase (passphrase_env)"
        ) from None
    except paramiko.AuthenticationException:
        client.close()
        tried = (
            f"key {where.key_file}" if where.key_file else "password" if where.password else "ssh-agent and ~/.ssh/id_*"
        )
        raise HostUnreachableError(f"{where}{via}: authentication failed (tried {tried})") from None
    except paramiko.SSHException as e:
        client.close()
        if "not found in known_hosts" in str(e):
            raise HostUnreachableError(
                f"{where}{via}: unknown host key; trust it with `ssh -p {where.port} {where.hostname}` "
                "(which records it in ~/.ssh/known_hosts), or set backend.conf.host_key_policy: accept-new"
            ) from None
        raise HostUnreachableError(f"{where}{via}: {e}") from None
    except OSError as e:
        client.close()
        raise HostUnreachableError(f"{where}{via}: cannot connect: {e}") from None
    except EOFError:  # paramiko's word (with no text) for a peer that hung up: a host dying, an sshd restarting
        client.close()
        raise HostUnreachableError(f"{where}{via}: the connection closed during the SSH handshake") from None
    return client


class DaemonThreads(concurrent.futures.Executor):
    """Threads for Paramiko's blocking calls that never hold up the process's exit: a connect to a
    silent host may block for its whole timeout, and a ThreadPoolExecutor is joined at exit."""

    def __init__(self, max_workers: int) -> None:
        self.max_workers = max_workers
        self.work: queue.SimpleQueue[tuple[concurrent.futures.Future[Any], Callable[..., Any], tuple[Any, ...]]] = (
            queue.SimpleQueue()
        )
        self.threads = 0
        self.idle = 0
        self.lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self.work.put((future, functools.partial(fn, **kwargs) if kwargs else fn, args))
        with self.lock:
            if self.idle == 0 and self.threads < self.max_workers:
                self.threads += 1
                threading.Thread(target=self._serve, daemon=True, name=f"hyperctl-ssh-{self.threads}").start()
        return future

    def _serve(self) -> None:
        while True:
            with self.lock:
                self.idle += 1
            future, fn, args = self.work.get()
            with self.lock:
                self.idle -= 1
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as e:  # handed to whoever awaits it
                    future.set_exception(e)


def open_session(transport: paramiko.Transport) -> paramiko.Channel:
    """A new session channel. Blocks. sshd frees the session of a channel that just closed only on
    its next turn, so a job that just ended may still hold the last one MaxSessions allows: a
    refusal is asked again once, after a round trip shows sshd has read (and freed) what we closed."""
    try:
        return transport.open_session(timeout=CONNECT_TIMEOUT)
    except paramiko.ChannelException:
        transport.global_request("keepalive@openssh.com", wait=True)  # its answer: the round trip
        return transport.open_session(timeout=CONNECT_TIMEOUT)


def open_exec(transport: paramiko.Transport, command: str, stdin: bytes = b"") -> paramiko.Channel:
    """A new channel running command, given stdin (kept open: the command reads what it needs)."""
    chan = open_session(transport)
    chan.exec_command(command)
    if stdin:
        chan.sendall(stdin)
    return chan


def first_line(transport: paramiko.Transport, command: str) -> tuple[paramiko.Channel, bytes]:
    """Run command on a new channel and read its first line, byte by byte: what follows belongs
    to whoever watches the channel next."""
    chan = open_exec(transport, command)
    line = b""
    while not line.endswith(b"\n"):
        chunk = chan.recv(1)
        if not chunk:
            break
        line += chunk
    return chan, line.strip()


def run(transport: paramiko.Transport, command: str, stdin: bytes | None = None) -> tuple[int, bytes, bytes]:
    """Run a short command to its end: exit status, stdout, stderr."""
    chan = open_session(transport)
    try:
        chan.exec_command(command)
        if stdin is not None:
            chan.sendall(stdin)
            chan.shutdown_write()
        out = chan.makefile("rb").read()
        err = chan.makefile_stderr("rb").read()
        return chan.recv_exit_status(), out, err
    finally:
        chan.close()
