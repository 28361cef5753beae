"""A real multi-node Slurm cluster for tests: slurmctld and 4 slurmd nodes on this machine.

As measured in the Slurm notes (Debian's Slurm 22.05): slurmctld and the first node run in the
root network namespace, on a bridge of their own; every other node runs its slurmd in a network
namespace of its own (its own address and ports, so a normal build runs several on one machine).
munged runs as the munge user with a key and socket of its own. Every node sees the same file
system, so any path is "shared storage"; `shared` is a folder every user may write.
Each node has 2 fake GPUs (character devices with /dev/null's numbers, named in gres.conf).

Faults: `crash(node)` (every process of the node dies at once), `kill_slurmd(node)` (its jobs go
on, orphaned); `revive(node)` starts its slurmd again (it rejoins idle: ReturnToService=2).
With SlurmdTimeout=5 and MessageTimeout=2, Slurm marks a dead node down after about 10 s.

No accounting: slurmdbd with a MariaDB of its own would add 2-4 s to the start (and MariaDB to
what the tests install); sacct answers "accounting storage is disabled", squeue and scontrol show
ended jobs for MinJobAge (`min_job_age`; 2 in the `slurm_short_age` fixture), and jobcomp/filetxt
writes one line per ended run in `root/log/jobcomp.txt`.

Nothing in /etc, /run or /var is used; names, addresses and ports are this test process's own,
so two test runs (or this fixture and the SSH hosts' one) never meet. Stopping cancels every job
(when every node is up), kills every daemon by its pid, kills what is left in the cluster's namespaces and cgroups, and
removes the namespaces, the bridge, the cgroups and the folder.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

PROGRAMS = ("slurmctld", "slurmd", "munged", "sbatch", "squeue", "scancel", "sinfo", "scontrol", "nsenter", "ip")
INSTALL = "apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge (bash .ci/test does it)"
GPUS = 2  # fake GPUs per node
CPUS = 4  # declared per node (SlurmdParameters=config_overrides: more than this machine has is fine)
MEMORY_MB = 4000  # per node; DefMemPerCPU=100 lets jobs share a node (else each takes all of it)
_clusters = itertools.count()  # a letter per cluster of this process: two may run at once


class SlurmClusterError(RuntimeError):
    """The test cluster cannot run on this machine (not root, Slurm not installed) or did not start:
    one line why."""


@dataclass
class SlurmCluster:
    """A running test cluster. `env` is what sbatch, squeue, scancel, sacct, scontrol, sdiag need."""

    prefix: str  # of every name the cluster takes: nodes, namespaces, links, cgroups (slurm_<node>)
    root: Path  # everything of the cluster: config, state, logs, munge key, `shared`
    conf: Path
    nodes: list[str]  # nodes[0] shares the root namespace (its jobs reach 127.0.0.1); the others do not
    controller: str  # slurmctld's address, on the cluster's bridge (nodes reach this machine there)
    shared: Path  # a folder every node and user may write: jobs' output goes here
    min_job_age: int  # seconds an ended job stays in squeue / scontrol
    proctrack: str  # "cgroup" (every process of a job is tracked) or "linuxproc" (its process tree)
    _daemons: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)
    _felled: set[str] = field(default_factory=set, repr=False)  # nodes whose slurmd a test killed
    _namespaces: list[str] = field(default_factory=list, repr=False)  # made so far: stop removes them
    _slurmd_argv: dict[str, list[str]] = field(default_factory=dict, repr=False)

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def environ(self) -> dict[str, str]:
        """This process's environment plus `env`: for a subprocess that runs Slurm's commands."""
        return {**os.environ, "PATH": _path(), **self.env}

    def run(self, *argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a Slurm command (`sbatch`, `squeue`, ...) against this cluster."""
        return _run(*argv, check=check, env=self.environ(), timeout=timeout)

    def sbatch(self, *args: str) -> str:
        """Submit a job (sbatch's options and `--wrap CMD` or a script); its id."""
        return self.run("sbatch", "--parsable", *args).stdout.strip().split(";")[0]

    def job_state(self, job_id: str) -> str:
        """The job's state in squeue (`COMPLETED`, `RUNNING`, ...), '' once squeue forgot it (MinJobAge)."""
        done = self.run("squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T", check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    def job_field(self, job_id: str, name: str) -> str:
        """One field of `scontrol show job` (e.g. `Restarts`, `Reason`, `NodeList`)."""
        out = self.run("scontrol", "-o", "show", "job", job_id).stdout
        return next(word.split("=", 1)[1] for word in out.split() if word.startswith(f"{name}="))

    def node_state(self, node: str) -> str:
        """The node as sinfo shows it: `idle`, `mix`, `alloc`, `down*` (`*`: not responding) ..."""
        return self.run("sinfo", "-h", "-N", "-n", node, "-p", "debug", "-o", "%t").stdout.strip()

    def namespace(self, node: str) -> str | None:
        """The node's network namespace (None for nodes[0], which shares the root namespace)."""
        return None if node == self.nodes[0] else node

    def crash(self, node: str) -> None:
        """Kill every process of the node at once (its slurmd, slurmstepds, the jobs), as a crash would."""
        ns = self.namespace(node)
        assert ns is not None, f"{node} shares the root namespace: crash one of {self.nodes[1:]}"
        self._felled.add(node)
        _kill_namespace(ns)
        self._reap(f"slurmd-{node}")

    def kill_slurmd(self, node: str) -> None:
        """Kill only the node's slurmd: its jobs go on (orphaned) until a revived slurmd adopts them."""
        daemon = self._daemons[f"slurmd-{node}"]
        assert daemon.poll() is None, f"{node}: its slurmd is not running"
        self._felled.add(node)
        daemon.kill()
        daemon.wait(timeout=10)

    def revive(self, node: str, within: float = 30) -> None:
        """Start the node's slurmd again and wait until Slurm has it back (idle, or running jobs)."""
        assert self._daemons[f"slurmd-{node}"].poll() is not None, f"{node}: its slurmd still runs"
        self._spawn(f"slurmd-{node}", self._slurmd_argv[node])
        self._felled.discard(node)
        self.wait_node(node, "idle", "mix", "alloc", within=within)

    def wait_state(self, job_id: str, *states: str, within: float = 30) -> str:
        """Wait until the job is in one of `states` (as squeue shows them); that state."""
        return _wait_value(within, f"job {job_id} {'/'.join(states)}", lambda: self.job_state(job_id), states, self)

    def wait_node(self, node: str, *states: str, within: float = 30) -> str:
        """Wait until the node is in one of `states` (as sinfo shows them: `down*`, `idle`...); that state."""
        return _wait_value(within, f"{node} {'/'.join(states)}", lambda: self.node_state(node), states, self)

    def _spawn(self, name: str, argv: list[str]) -> None:
        with open(self.root / "log" / f"{name}.out", "ab") as log:  # the daemon keeps its own copy
            self._daemons[name] = subprocess.Popen(
                argv, env=self.environ(), stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )

    def _reap(self, name: str) -> None:
        daemon = self._daemons.get(name)
        if daemon is not None:
            daemon.wait(timeout=10)

    def _dead_daemon(self) -> str | None:
        """A one-line account of a daemon that exited unasked (not a slurmd a test killed)."""
        for name in ("munged", "slurmctld", *(f"slurmd-{n}" for n in self.nodes if n not in self._felled)):
            daemon = self._daemons.get(name)
            if daemon is not None and daemon.poll() is not None:
                return f"{name} exited ({daemon.returncode}): {_tail(self.root / 'log', name)}"
        return None


def _wait(within: float, what: str, check: Callable[[], bool], cluster: SlurmCluster | None = None) -> None:
    end = time.monotonic() + within
    while not check():
        dead = cluster._dead_daemon() if cluster is not None else None
        if dead is not None:
            raise RuntimeError(f"slurm test cluster: waiting for {what}: {dead}")
        if time.monotonic() > end:
            logs = f" ({_tail(cluster.root / 'log', 'slurmctld')})" if cluster is not None else ""
            raise RuntimeError(f"slurm test cluster: {what}: not after {within:.0f} s{logs}")
        time.sleep(0.1)  # each check is a Slurm command (an RPC to slurmctld): 10 a second at most


def _wait_value(
    within: float, what: str, value: Callable[[], str], wanted: tuple[str, ...], cluster: SlurmCluster
) -> str:
    seen = ""

    def check() -> bool:
        nonlocal seen
        seen = value()
        return seen in wanted

    _wait(within, what, check, cluster)
    return seen


def _tail(logs: Path, name: str) -> str:
    """The last lines a daemon wrote (its log file, else its output), as one line."""
    lines: list[str] = []
    for path in (logs / f"{name}.log", logs / f"{name}.out"):
        with suppress(OSError):
            lines += path.read_text(errors="replace").splitlines()[-3:]
    return " | ".join(line.strip() for line in lines) or "no log"


def _run(
    *argv: str, check: bool = True, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
    if check and done.returncode != 0:
        why = " ".join(done.stderr.split()) or f"exit {done.returncode}"
        raise RuntimeError(f"slurm test cluster: {' '.join(argv)}: {why}")
    return done


def _path() -> str:
    """PATH with the sbin folders, where Debian puts the daemons (a user's PATH may lack them)."""
    return os.pathsep.join([os.environ.get("PATH", os.defpath), "/usr/sbin", "/sbin"])


def check_machine() -> None:
    """Raise SlurmClusterError with one line why when this machine cannot run the test cluster."""
    if os.geteuid() != 0:
        raise SlurmClusterError("the Slurm test cluster needs root (network namespaces, munge, slurmd)")
    missing = [p for p in PROGRAMS if shutil.which(p, path=_path()) is None]
    if missing:
        raise SlurmClusterError(f"{', '.join(missing)} missing: {INSTALL}")


def _free_ports(count: int) -> list[int]:
    """Ports free on this machine now (slurmctld and the first node's slurmd listen on every address)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _cgroups_v1() -> bool:
    return os.access("/sys/fs/cgroup/freezer", os.W_OK) and os.path.isdir("/sys/fs/cgroup/memory")


def _write_config(cluster: SlurmCluster, ports: list[int], slurmd_timeout: int, message_timeout: int) -> None:
    root, nodes = cluster.root, cluster.nodes
    for sub in ("etc", "log", "state", "munge/run", "munge/lib", "gpu", *(f"spool/{n}" for n in nodes)):
        (root / sub).mkdir(parents=True)
    os.chmod(root, 0o755)  # munged (as munge) and jobs of other users pass through
    cluster.shared.mkdir(mode=0o777)
    os.chmod(cluster.shared, 0o1777)
    munge = root / "munge"
    (munge / "munge.key").write_bytes(os.urandom(1024))
    shutil.chown(munge / "munge.key", "munge", "munge")
    for path, mode in ((munge, 0o711), (munge / "run", 0o711), (munge / "lib", 0o700), (munge / "munge.key", 0o400)):
        shutil.chown(path, "munge", "munge")
        os.chmod(path, mode)
    # gres/gpu needs a device file per GPU: `Count=` alone leaves the node INVAL, a missing file makes
    # slurmd wait forever, a regular file is taken with an error line. /dev/null's numbers will do.
    for k in range(GPUS):
        os.mknod(root / "gpu" / f"nvidia{k}", 0o666 | 0o020000, os.makedev(1, 3))
    listed = f"{cluster.prefix}[0-{len(nodes) - 1}]"
    track = cluster.proctrack
    lines = [
        "ClusterName=hctest",
        f"SlurmctldHost={socket.gethostname().split('.')[0]}({cluster.controller})",  # must be this host's name
        f"SlurmctldPort={ports[0]}",
        f"SlurmdPort={ports[1]}",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={munge / 'run' / 'munge.socket.2'}",
        "SlurmUser=root",
        "SlurmdUser=root",
        f"StateSaveLocation={root / 'state'}",
        f"SlurmdSpoolDir={root / 'spool' / '%n'}",
        f"SlurmctldPidFile={root / 'state' / 'slurmctld.pid'}",
        f"SlurmdPidFile={root / 'spool' / '%n' / 'slurmd.pid'}",
        f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
        f"SlurmdLogFile={root / 'log' / 'slurmd-%n.log'}",
        f"ProctrackType=proctrack/{track}",
        f"TaskPlugin=task/{'cgroup' if track == 'cgroup' else 'none'}",
        "MpiDefault=none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        "DefMemPerCPU=100",
        "SchedulerType=sched/backfill",
        "SchedulerParameters=batch_sched_delay=0,sched_min_interval=0",
        "SlurmdParameters=config_overrides",
        "PreemptType=preempt/partition_prio",
        "PreemptMode=REQUEUE",
        "MailProg=/bin/true",
        "ReturnToService=2",  # a revived node comes back idle at once
        f"SlurmdTimeout={slurmd_timeout}",
        "SlurmctldTimeout=10",
        f"MessageTimeout={message_timeout}",
        "InactiveLimit=0",
        "KillWait=5",
        f"MinJobAge={cluster.min_job_age}",
        "MaxArraySize=1001",
        "MaxJobCount=20000",
        "AccountingStorageType=accounting_storage/none",
        "JobAcctGatherType=jobacct_gather/none",
        "JobCompType=jobcomp/filetxt",  # one line per ended run, with its state and exit code
        f"JobCompLoc={root / 'log' / 'jobcomp.txt'}",
        "GresTypes=gpu",
        f"NodeName=DEFAULT CPUs={CPUS} RealMemory={MEMORY_MB} Gres=gpu:{GPUS} State=UNKNOWN",
        *(f"NodeName={n} NodeAddr={_address(cluster, k)}" for k, n in enumerate(nodes)),
        f"PartitionName=debug Nodes={listed} Default=YES MaxTime=INFINITE State=UP PriorityTier=1",
        f"PartitionName=high Nodes={listed} MaxTime=INFINITE State=UP PriorityTier=10",
    ]
    cluster.conf.write_text("\n".join(lines) + "\n")
    # Memory only is constrained (--mem is enforced: OUT_OF_MEMORY); cores are not pinned.
    (root / "etc" / "cgroup.conf").write_text(
        "CgroupPlugin=cgroup/v1\nCgroupMountpoint=/sys/fs/cgroup\nCgroupAutomount=no\n"
        "ConstrainCores=no\nConstrainRAMSpace=yes\nConstrainSwapSpace=no\nConstrainDevices=no\n"
    )
    (root / "etc" / "gres.conf").write_text(f"NodeName={listed} Name=gpu File={root / 'gpu'}/nvidia[0-{GPUS - 1}]\n")


def _address(cluster: SlurmCluster, k: int) -> str:
    return cluster.controller if k == 0 else f"{cluster.controller.rsplit('.', 1)[0]}.{10 + k}"


def _kill_namespace(ns: str) -> None:
    """SIGKILL every process in the namespace, frozen first so that none sees another die."""
    end = time.monotonic() + 10
    while pids := _run("ip", "netns", "pids", ns, check=False).stdout.split():
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for pid in pids:
                with suppress(ProcessLookupError):
                    os.kill(int(pid), sig)
        if time.monotonic() > end:
            raise RuntimeError(f"{ns}: processes {pids} outlived SIGKILL")
        time.sleep(0.02)


def _cgroup_dirs(nodes: list[str]) -> list[Path]:
    """The cgroups the nodes' slurmds made (proctrack/cgroup names them slurm_<node>), every controller."""
    return [path for node in nodes for path in Path("/sys/fs/cgroup").glob(f"*/slurm_{node}")]


def _leftover_pids(cluster: SlurmCluster) -> set[int]:
    """Processes of the cluster still running in the root namespace once its daemons are gone:
    whatever is in its cgroups, whatever holds its SLURM_CONF or a file of it open, and every process
    of its slurmstepds' sessions (the jobs). A slurmstepd's own environment is overwritten by its
    title, but it keeps its slurmd's log open."""
    pids: set[int] = set()
    for top in _cgroup_dirs(cluster.nodes):
        for procs in top.rglob("cgroup.procs"):
            with suppress(OSError):
                pids.update(int(p) for p in procs.read_text().split())
    mark, inside = f"SLURM_CONF={cluster.conf}".encode(), f"{cluster.root}/"
    sessions: set[int] = set()
    for proc in Path("/proc").glob("[0-9]*"):
        with suppress(OSError):
            if mark in (proc / "environ").read_bytes().split(b"\0") or any(
                os.readlink(fd).startswith(inside) for fd in (proc / "fd").iterdir()
            ):
                pids.add(int(proc.name))
                if Path(os.readlink(proc / "exe")).name.startswith("slurmstepd"):
                    sessions.add(os.getsid(int(proc.name)))
    sessions -= {os.getsid(0), 0, 1}
    for proc in Path("/proc").glob("[0-9]*"):
        with suppress(OSError):
            if os.getsid(int(proc.name)) in sessions:
                pids.add(int(proc.name))
    pids.discard(os.getpid())
    return pids


def _stop(cluster: SlurmCluster) -> None:
    ctld = cluster._daemons.get("slurmctld")
    if ctld is not None and ctld.poll() is None and not cluster._felled:
        # Jobs first, while the slurmds run to end them (0.1-2 s). Not with a node down: its jobs stay
        # COMPLETING until Slurm finds it dead (10 s); they, and all else left, are killed below.
        with suppress(subprocess.SubprocessError, RuntimeError):
            if ids := cluster.run("squeue", "-h", "-o", "%A", check=False, timeout=10).stdout.split():
                cluster.run("scancel", *ids, check=False, timeout=10)
                _wait(3, "jobs cancelled", lambda: not cluster.run("squeue", "-h", "-t", "R,CG,S").stdout)
    # KILL, not TERM: on TERM a daemon takes up to 2 s to exit, and nothing it would save is kept.
    for daemon in cluster._daemons.values():
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    for k, ns in enumerate(cluster._namespaces, start=1):
        _kill_namespace(ns)
        # The veth first: a namespace's links go only once the kernel has freed it, which it does later.
        _run("ip", "link", "del", f"{cluster.prefix}v{k}", check=False)
        _run("ip", "netns", "del", ns, check=False)
    # Left in the root namespace (only when a job outlived its slurmd there): kill until none is left.
    for _ in range(50):
        pids = _leftover_pids(cluster)
        if not pids:
            break
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)
    _run("ip", "link", "del", f"{cluster.prefix}br", check=False)
    # Deepest first: a cgroup goes once its children and processes have.
    for top in _cgroup_dirs(cluster.nodes):
        for path in sorted(top.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if path.is_dir():
                with suppress(OSError):
                    path.rmdir()
        with suppress(OSError):
            top.rmdir()


@contextmanager
def slurm_cluster(
    nodes: int = 4, min_job_age: int = 300, slurmd_timeout: int = 5, message_timeout: int = 2
) -> Iterator[SlurmCluster]:
    """Start a cluster of `nodes` nodes and wait until every node is idle and a probe job has run;
    stop it and remove everything it made on exit (also when starting fails half-way).

    min_job_age: how long squeue and scontrol still show an ended job (Slurm's default is 300 s;
    2 makes them forget it within seconds). slurmd_timeout, message_timeout: a dead node is marked
    down about 10 s after it died with 5 and 2 (16 s with 5 and 5).
    """
    check_machine()
    index = next(_clusters)
    # Names of this process and cluster: `hcs` apart from the SSH hosts' `hc<pid>h<n>` namespaces.
    prefix = f"hcs{os.getpid() % 100000}{chr(ord('a') + index % 26)}"
    # 10.250-254: apart from the SSH hosts' 10.200-249; a subnet per process and cluster.
    serial = os.getpid() * 4 + index
    controller = f"10.{250 + serial % 5}.{serial // 5 % 250}.1"
    root = Path(tempfile.mkdtemp(prefix="hyperctl-slurm-"))
    cluster = SlurmCluster(
        prefix=prefix,
        root=root,
        conf=root / "etc" / "slurm.conf",
        nodes=[f"{prefix}{k}" for k in range(nodes)],
        controller=controller,
        shared=root / "shared",
        min_job_age=min_job_age,
        proctrack="cgroup" if _cgroups_v1() else "linuxproc",
    )
    try:
        try:
            _start(cluster, slurmd_timeout, message_timeout)
        except RuntimeError as error:
            raise SlurmClusterError(str(error)) from None
        yield cluster
    finally:
        try:
            _stop(cluster)
        finally:
            shutil.rmtree(root, ignore_errors=True)


def _start(cluster: SlurmCluster, slurmd_timeout: int, message_timeout: int) -> None:
    """Make the network, start the daemons, and wait until every node is idle and a probe job has run."""
    prefix, controller, root, nodes = cluster.prefix, cluster.controller, cluster.root, len(cluster.nodes)
    bridge = f"{prefix}br"
    _write_config(cluster, _free_ports(2), slurmd_timeout, message_timeout)
    _run("ip", "link", "add", bridge, "type", "bridge")
    _run("ip", "addr", "add", f"{controller}/24", "dev", bridge)
    _run("ip", "link", "set", bridge, "up")
    for k, node in enumerate(cluster.nodes[1:], start=1):
        outside, inside = f"{prefix}v{k}", f"{prefix}i{k}"
        _run("ip", "netns", "add", node)
        cluster._namespaces.append(node)
        _run("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
        _run("ip", "link", "set", inside, "netns", node)
        _run("ip", "link", "set", outside, "master", bridge, "up")
        _run("ip", "-n", node, "addr", "add", f"{_address(cluster, k)}/24", "dev", inside)
        _run("ip", "-n", node, "link", "set", inside, "up")
        _run("ip", "-n", node, "link", "set", "lo", "up")
        _run("ip", "-n", node, "route", "add", "default", "via", controller)
    munge = root / "munge"
    cluster._spawn(
        "munged",
        ["setpriv", "--reuid=munge", "--regid=munge", "--init-groups", "munged", "-F"]
        + [f"--socket={munge / 'run' / 'munge.socket.2'}", f"--key-file={munge / 'munge.key'}"]
        + [f"--pid-file={munge / 'run' / 'munged.pid'}", f"--log-file={root / 'log' / 'munged.log'}"]
        + [f"--seed-file={munge / 'lib' / 'munged.seed'}"],
    )
    _wait(10, "munged", (munge / "run" / "munge.socket.2").is_socket, cluster)
    cluster._spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", str(cluster.conf)])
    for node in cluster.nodes:
        # nsenter, not `ip netns exec`: that remounts /sys, hiding the cgroups from slurmd.
        enter = [] if cluster.namespace(node) is None else ["nsenter", f"--net=/run/netns/{node}"]
        cluster._slurmd_argv[node] = [*enter, "slurmd", "-D", "-f", str(cluster.conf), "-N", node]
        cluster._spawn(f"slurmd-{node}", cluster._slurmd_argv[node])

    def all_idle() -> bool:
        found = cluster.run("sinfo", "-h", "-N", "-p", "debug", "-o", "%t", check=False).stdout.split()
        return found == ["idle"] * nodes

    _wait(60, "every node idle", all_idle, cluster)
    # The main scheduler first runs ~3 s after slurmctld starts: a job submitted before waits for
    # it. A probe job that has run proves the whole path (munge, controller, a node, slurmstepd).
    probe = cluster.sbatch("--job-name=slurm-cluster-probe", "-o", "/dev/null", "--wrap", "true")
    cluster.wait_state(probe, "COMPLETED")
