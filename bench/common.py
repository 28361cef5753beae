"""What the benchmarks share: running hyperctl, reading a batch folder from outside, cleaning up."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil

from hyperctl.batches import daemon_pid as _daemon_pid
from hyperctl.layout import BatchDir

RUN_WITHIN = 120.0  # seconds any one hyperctl command may take
UP_WITHIN = 60.0  # seconds for jobs to be running, a daemon to re-adopt them, or processes to end


def as_installed() -> None:
    """Run hyperctl as an install runs it: with its bytecode compiled once and cached. A
    PYTHONDONTWRITEBYTECODE in the environment would compile every module at every start."""
    import compileall

    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    compileall.compile_dir(str(Path(__file__).resolve().parent.parent / "hyperctl"), quiet=1)


def settle(quiet: float = 0.1, within: float = 10.0) -> None:
    """Wait until the machine is idle (under `quiet` of its CPUs busy over 0.3 s), or `within`
    seconds: what one run leaves behind (exiting sessions, writeback) must not slow the next."""

    def busy() -> tuple[float, float]:
        with open("/proc/stat") as f:
            values = [float(v) for v in f.readline().split()[1:]]
        return sum(values) - values[3] - values[4], sum(values)

    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        work0, all0 = busy()
        time.sleep(0.3)
        work1, all1 = busy()
        if all1 > all0 and (work1 - work0) / (all1 - all0) < quiet:
            return


class BenchError(Exception):
    """A step did not do what it must; the message says which."""


def hyperctl(batches: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "hyperctl", *args, "--batches-data-dir", str(batches)]


def run_cli(cmd: list[str], timeout: float = RUN_WITHIN, shielded: bool = False) -> tuple[int, float, str]:
    """Exit code, wall seconds and stderr of a hyperctl command that returns by itself.

    shielded: in a session of its own, so a Ctrl-C at the terminal does not reach it (clean-up).
    """
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            timeout=timeout,
            start_new_session=shielded,
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"{' '.join(cmd[2:5])} ... did not return within {timeout:.0f} s") from None
    return proc.returncode, time.perf_counter() - start, proc.stderr.strip()


def live_group_members(pgids: set[int]) -> list[int]:
    """Live (not zombie) processes in any of these process groups: each job is a group led by its launcher."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(proc.pid) in pgids and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
    return found


def wait_for(
    what: str,
    ready: Callable[[], bool],
    within: float = UP_WITHIN,
    every: float = 0.05,
    detail: Callable[[], str] | None = None,
) -> float:
    """Seconds until ready() is true; BenchError after `within` seconds."""
    start = time.monotonic()
    while not ready():
        if time.monotonic() - start > within:
            raise BenchError(f"{what}: not within {within:.0f} s" + (f" ({detail()})" if detail else ""))
        time.sleep(every)
    return time.monotonic() - start


def alive(pid: int) -> bool:
    """Whether pid is a live process (not a zombie)."""
    with contextlib.suppress(psutil.Error):
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    return False


def ours(root: Path) -> tuple[list[int], list[int]]:
    """Processes this run started, found by the unique temp path in their command line or environment
    (only they can name it): (hyperctl processes, the rest: job launchers and what they run)."""
    needle, me = str(root).encode(), os.getpid()
    daemons: list[int] = []
    jobs: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                argv = f.read()
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if (needle in argv or needle in env) and alive(int(entry.name)):
            (daemons if b"\0-m\0hyperctl\0" in argv else jobs).append(int(entry.name))
    return daemons, jobs


def sweep(root: Path) -> None:
    """Last resort: SIGKILL whatever this run started and is still alive, hyperctl first (so that it starts
    nothing more), one pid at a time, until nothing is left (bounded)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        daemons, jobs = ours(root)
        if not daemons and not jobs:
            return
        for pid in daemons or jobs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Ctrl-C or TERM while cleaning up: finish the clean-up first, then stop (a handler, not SIG_IGN,
    so the commands started meanwhile do not inherit an ignored signal)."""
    got: list[int] = []
    sigs = (signal.SIGINT, signal.SIGTERM)
    old = {sig: signal.signal(sig, lambda sig, _frame: got.append(sig)) for sig in sigs}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        if got:
            raise KeyboardInterrupt


def terminate(sig: int, _frame: object) -> None:
    """SIGTERM ends the benchmark like Ctrl-C: through its clean-up."""
    raise SystemExit(128 + sig)


def standalone_tmp(name: str) -> Path:
    """What a benchmark run on its own starts with: Linux's /proc checked, SIGTERM ending it
    through its clean-up, and a fresh temporary folder (the caller removes it)."""
    if not os.path.isdir("/proc"):
        sys.exit("bench: needs /proc (Linux)")
    signal.signal(signal.SIGTERM, terminate)
    return Path(tempfile.mkdtemp(prefix=f"hyperctl-bench-{name}-"))


def run_detached(batches: Path, config: Path) -> float:
    """`hyperctl run --detach` of a batch file: the seconds it took to return; BenchError unless it started."""
    code, took, err = run_cli(hyperctl(batches, "run", "--config", str(config), "--detach"))
    if code != 0:
        raise BenchError(f"run --detach exited {code}: {err}")
    return took


class BatchFolder:
    """A batch folder read from outside: its SQLite store (read-only) and its lock."""

    def __init__(self, batches: Path, name: str) -> None:
        self.name = name
        self.folder = BatchDir(batches, name)
        self.internal = self.folder.internal
        self.db = self.folder.db
        self.spec_file = self.folder.spec_file

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if not self.db.exists():
            return []
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()

    def meta(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self.query("SELECT key, value FROM meta")}

    def counts(self) -> dict[str, int]:
        return dict(self.query("SELECT status, COUNT(*) FROM jobs GROUP BY status"))

    def daemon_pid(self) -> int | None:
        """The pid holding the batch's lock (a live daemon), or None."""
        return _daemon_pid(self.folder)

    def describe(self) -> str:
        """The store's job counts and daemon, for an error message."""
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.counts().items())) or "no jobs"
        unsaved = self.query(
            "SELECT COUNT(*) FROM jobs j JOIN attempts a ON a.job = j.name AND a.n = j.attempts"
            " WHERE j.status = 'running' AND a.pid IS NULL"
        )
        return f"store: {counts}; {unsaved[0][0] if unsaved else 0} running without a pid; daemon {self.daemon_pid()}"
