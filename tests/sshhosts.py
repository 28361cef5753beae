"""Real OpenSSH hosts for tests: each in a network namespace of its own, with its own address.

Root and `ip netns` are needed (as on CI); without namespaces the hosts fall back to loopback
aliases (127.0.0.N). Every host runs its own sshd with its own host key; a dedicated user logs
in with a key made for the session; a known_hosts file lists every host's key.

Faults, as measured in the test-infrastructure notes: `crash()` (every process of the host dies),
`stop_sshd()` (no new connections; sessions go on), `partition()` (every packet in or out is
dropped; needs nftables); `start_sshd()` and `heal()` undo them.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

USER = "hyperctl-test"
PASSWORD = "hyperctl-test-password"  # of a throwaway user that only these test sshds let in
SSHD = "/usr/sbin/sshd"


@dataclass
class Host:
    """One test machine reachable over SSH."""

    name: str
    address: str
    port: int
    user: str
    key_file: Path
    known_hosts: Path
    namespace: str | None
    sshd_pid: int
    home: Path
    link: str | None = None  # the host's cable: `ip link set LINK down` pulls it
    sshd_argv: list[str] = field(default_factory=list)  # how its sshd starts: start_sshd() runs it again
    # Every sshd the fixture started, shared by its hosts: the fixture stops what is left of them.
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)

    def machine(self, **extra: object) -> dict[str, object]:
        """This host as a `backend.conf.machines[]` entry."""
        return {
            "hostname": self.address,
            "port": self.port,
            "username": self.user,
            "ssh_rsa_file": str(self.key_file),
            **extra,
        }

    def crash(self) -> None:
        """Kill every process of the host at once (its sshd, their sessions, the jobs), as a crash would."""
        assert self.namespace is not None, "a crash needs the host's network namespace"
        end = time.monotonic() + 10
        while pids := _run("ip", "netns", "pids", self.namespace, check=False).stdout.split():
            # Frozen first, then killed: no process of it sees another die and reacts (closes a connection).
            for sig in (signal.SIGSTOP, signal.SIGKILL):
                for pid in pids:
                    with suppress(ProcessLookupError):
                        os.kill(int(pid), sig)
            if time.monotonic() > end:
                raise RuntimeError(f"{self.name}: processes {pids} outlived SIGKILL")
            time.sleep(0.02)
        sshd = self._sshd()
        if sshd is not None:
            sshd.wait(timeout=10)

    def stop_sshd(self) -> None:
        """Stop the host's sshd, as `systemctl stop ssh` does: no new connections; sessions go on."""
        sshd = self._sshd()
        assert sshd is not None and sshd.poll() is None, f"{self.name}: its sshd is not running"
        sshd.terminate()
        sshd.wait(timeout=10)

    def sshd_running(self) -> bool:
        sshd = self._sshd()
        return sshd is not None and sshd.poll() is None

    def start_sshd(self) -> None:
        """Start the host's sshd again (after crash() or stop_sshd()), and wait until it listens."""
        assert self.sshd_argv, "this host's sshd was not started by ssh_hosts()"
        proc = subprocess.Popen(self.sshd_argv, start_new_session=True)
        self.procs.append(proc)
        self.sshd_pid = proc.pid
        _wait_listening(self)

    def partition(self) -> None:
        """Drop every packet into or out of the host (but its own loopback): silence, no error."""
        assert self.namespace is not None, "a partition needs the host's network namespace"
        rules = (
            f"table inet {_PARTITION} {{\n"
            "  chain input { type filter hook input priority 0; policy drop; iif lo accept; }\n"
            "  chain output { type filter hook output priority 0; policy drop; oif lo accept; }\n"
            "}\n"
        )
        subprocess.run(
            ["ip", "netns", "exec", self.namespace, "nft", "-f", "-"],
            input=rules,
            check=True,
            capture_output=True,
            text=True,
        )

    def heal(self) -> None:
        """Undo partition(); nothing happens if the host is not partitioned."""
        if self.namespace is not None and shutil.which("nft") is not None:
            _run("ip", "netns", "exec", self.namespace, "nft", "delete", "table", "inet", _PARTITION, check=False)

    def _sshd(self) -> subprocess.Popen[bytes] | None:
        return next((p for p in reversed(self.procs) if p.pid == self.sshd_pid), None)


_PARTITION = "hyperctl_partition"  # the nftables table of Host.partition()


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, capture_output=True, text=True)


def namespaces_work() -> bool:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    probe = f"hcprobe{os.getpid()}"
    if _run("ip", "netns", "add", probe, check=False).returncode != 0:
        return False
    _run("ip", "netns", "del", probe, check=False)
    return True


def ensure_user() -> Path:
    try:
        home = Path(pwd.getpwnam(USER).pw_dir)
    except KeyError:
        _run("useradd", "-m", "-s", "/bin/sh", USER)
        home = Path(pwd.getpwnam(USER).pw_dir)
    # A password (not a locked '!', which sshd refuses when UsePAM is off) for the password tests.
    subprocess.run(["chpasswd"], input=f"{USER}:{PASSWORD}\n", check=True, capture_output=True, text=True)
    return home


def _sshd_config(folder: Path, address: str, port: int, authorized: Path, max_sessions: int) -> Path:
    host_key = folder / "host_ed25519"
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key))
    config = folder / "sshd_config"
    config.write_text(
        f"ListenAddress {address}\nPort {port}\nHostKey {host_key}\nPidFile {folder / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {authorized}\nPasswordAuthentication yes\nUsePAM no\nStrictModes no\n"
        f"MaxSessions {max_sessions}\nMaxStartups 64:30:128\nUseDNS no\nAllowUsers {USER}\n"
    )
    _run(SSHD, "-t", "-f", str(config))
    return config


@contextmanager
def ssh_hosts(count: int, workdir: Path, max_sessions: int = 64) -> Iterator[list[Host]]:
    """Start `count` sshd hosts; stop them and remove every namespace and link on exit.

    max_sessions: sshd's MaxSessions, the channels one connection may hold at once (OpenSSH's
    default is 10).
    """
    if not os.path.exists(SSHD):
        raise RuntimeError(f"{SSHD} is missing: apt-get install -y openssh-server")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    home = ensure_user()
    key = workdir / "client_ed25519"
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key))
    authorized = workdir / "authorized_keys"
    shutil.copy(f"{key}.pub", authorized)
    os.chmod(workdir, 0o755)
    for path in (authorized, f"{key}.pub"):
        os.chmod(path, 0o644)
    tag = f"{os.getpid() % 100000}"
    # A subnet per test process: two test runs at once (CI and a developer) must not share one.
    subnet = f"10.{200 + os.getpid() % 50}.{os.getpid() // 50 % 250}"
    use_ns = namespaces_work()
    bridge = f"hcbr{tag}"
    made_namespaces: list[str] = []
    hosts: list[Host] = []
    procs: list[subprocess.Popen[bytes]] = []
    try:
        if use_ns:
            _run("ip", "link", "add", bridge, "type", "bridge")
            _run("ip", "addr", "add", f"{subnet}.1/24", "dev", bridge)
            _run("ip", "link", "set", bridge, "up")
        for n in range(1, count + 1):
            folder = workdir / f"host{n}"
            folder.mkdir()
            if use_ns:
                ns, address, port = f"hc{tag}h{n}", f"{subnet}.{10 + n}", 22
                outside, inside = f"hc{tag}v{n}", f"hc{tag}i{n}"
                _run("ip", "netns", "add", ns)
                made_namespaces.append(ns)
                _run("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
                _run("ip", "link", "set", inside, "netns", ns)
                _run("ip", "link", "set", outside, "master", bridge)
                _run("ip", "link", "set", outside, "up")
                _run("ip", "netns", "exec", ns, "ip", "addr", "add", f"{address}/24", "dev", inside)
                _run("ip", "netns", "exec", ns, "ip", "link", "set", inside, "up")
                _run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
                _run("ip", "netns", "exec", ns, "ip", "route", "add", "default", "via", f"{subnet}.1")
                config = _sshd_config(folder, address, port, authorized, max_sessions)
                argv = ["ip", "netns", "exec", ns, SSHD, "-D", "-f", str(config), "-E", str(folder / "sshd.log")]
            else:
                ns, address, port = None, f"127.0.{tag[-2:].lstrip('0') or '1'}.{10 + n}", 2200 + n
                config = _sshd_config(folder, address, port, authorized, max_sessions)
                argv = [SSHD, "-D", "-f", str(config), "-E", str(folder / "sshd.log")]
            proc = subprocess.Popen(argv, start_new_session=True)
            procs.append(proc)
            link = outside if use_ns else None
            hosts.append(
                Host(
                    f"host{n}", address, port, USER, key, workdir / "known_hosts", ns, proc.pid, home, link, argv, procs
                )
            )
        known = []
        for host in hosts:
            _wait_listening(host)
            public = (workdir / host.name / "host_ed25519.pub").read_text().split()
            where = host.address if host.port == 22 else f"[{host.address}]:{host.port}"
            known.append(f"{where} {public[0]} {public[1]}\n")
        (workdir / "known_hosts").write_text("".join(known))
        yield hosts
    finally:
        for proc in procs:
            if proc.returncode is None:  # not reaped yet: its pid is still its own
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for ns in made_namespaces:
            for pid in _run("ip", "netns", "pids", ns, check=False).stdout.split():
                with suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            _run("ip", "netns", "del", ns, check=False)
        if use_ns:
            _run("ip", "link", "del", bridge, check=False)


def _wait_listening(host: Host, within: float = 10) -> None:
    import socket

    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host.address, host.port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"sshd on {host.address}:{host.port} did not start")


@contextmanager
def hosts_for_module(count: int, remote_root: str) -> Iterator[list[Host]]:
    """`count` hosts for a test module, and their remote_root (under the test user's home) removed
    at the end, with everything the hosts left."""
    workdir = Path(tempfile.mkdtemp(prefix="hyperctl-ssh-"))
    try:
        with ssh_hosts(count, workdir) as found:
            try:
                yield found
            finally:
                shutil.rmtree(found[0].home / remote_root, ignore_errors=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
