"""Shared fixtures: real `hyperctl` processes, a batches folder per test, and no skips in CI."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from hyperctl.daemon.auth import read_token
from hyperctl.layout import BatchDir

# A real browser for the tests of web pages: fixtures `page`, `page_problems`, `browser` (tests/browser.py).
from tests.browser import _browser_session, browser, page, page_problems  # noqa: F401
from tests.slurmcluster import SlurmCluster, SlurmClusterError, slurm_cluster

REPO = Path(__file__).resolve().parent.parent
T = TypeVar("T")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where every test must run: {report.longrepr}"


@pytest.fixture
def batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh batches data dir, also set in the environment of every hyperctl started.

    Whatever a test leaves running there (a daemon, jobs in their own sessions) is killed at
    its end, pass or fail, so no test leaks processes into the next.
    """
    path = tmp_path / "batches"
    monkeypatch.setenv("HYPERCTL_BATCHES_DATA_DIR", str(path))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # batch tokens: none left in the user's home
    yield path
    kill_leftovers(path)


@pytest.fixture
def shared() -> Iterator[Path]:
    """A folder that the test and the SSH hosts' user can both write (the hosts share this filesystem)."""
    folder = Path(tempfile.mkdtemp(prefix="hyperctl-shared-"))
    os.chmod(folder, 0o777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def runs(batches: Path, tmp_path: Path) -> Iterator[Any]:
    """Real `hyperctl run` processes a test starts (tests/test_api.py's Runs), killed with their
    jobs at its end."""
    from tests.test_api import Runs  # it imports this module

    started = Runs(batches, tmp_path)
    try:
        yield started
    finally:
        started.close()


@contextlib.contextmanager
def slurm_cluster_or_fail(**options: int) -> Iterator[SlurmCluster]:
    """A Slurm test cluster (tests/slurmcluster.py), or the test fails with one line why (never a skip)."""
    reason = ""
    try:
        with slurm_cluster(**options) as cluster:
            yield cluster
    except (SlurmClusterError, RuntimeError) as error:
        reason = str(error)
    if reason:  # out of the except: no "during handling of the above exception"
        pytest.fail(reason, pytrace=False)


@pytest.fixture(scope="session")
def slurm() -> Iterator[SlurmCluster]:
    """A real 4-node Slurm cluster (tests/slurmcluster.py), started once for the session."""
    with slurm_cluster_or_fail() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def slurm_short_age() -> Iterator[SlurmCluster]:
    """Another cluster whose squeue forgets an ended job within seconds (MinJobAge=2)."""
    with slurm_cluster_or_fail(min_job_age=2) as cluster:
        yield cluster


def kill_leftovers(batches: Path) -> None:
    """SIGKILL every daemon holding a batch lock under `batches` and every job session its stores name."""
    pids: set[int] = set()
    for internal in batches.glob("*/.hyperctl"):
        lock = internal / "lock"
        if lock.exists() and lock.read_text().strip().isdigit():
            pids.add(int(lock.read_text().strip()))
        try:
            with sqlite3.connect(f"file:{internal / 'state.db'}?mode=ro", uri=True) as db:
                pids.update(pid for (pid,) in db.execute("SELECT pid FROM attempts WHERE pid IS NOT NULL"))
        except sqlite3.Error:
            pass
    for pid in pids:
        if not _is_hyperctl(pid, batches):
            continue  # gone, and its pid perhaps reused by another process: not ours to kill
        with contextlib.suppress(OSError):
            if os.getpgid(pid) == pid:  # a job's session, or a detached daemon's
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)


def _is_hyperctl(pid: int, batches: Path) -> bool:
    """Whether pid is a daemon or job of these batches: hyperctl's, and naming this batches folder
    (a pid stored here may since have gone to a process of another test run, or anyone's)."""
    where = str(batches).encode()
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        return b"hyperctl" in cmdline and (where in cmdline or where in Path(f"/proc/{pid}/environ").read_bytes())
    except OSError:
        return False


def hyperctl(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the real command line in a process of its own, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "hyperctl", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_hyperctl(*args: str, cwd: Path | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hyperctl", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_on_terminal(*args: str, timeout: float = 30) -> tuple[int, str]:
    """Run the real command line with a terminal as its stdout and stderr: its exit code, and
    everything the terminal received (escape sequences included)."""
    import pty

    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "hyperctl", *args], stdout=follower, stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the terminal's other side is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return proc.wait(timeout=timeout), b"".join(chunks).decode()


def write_json(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc))
    return path


def attempt_dir(batches: Path, batch: str, job: str, attempt: int = 1) -> Path:
    """Where an attempt's stdout, stderr and exitcode are, as README says: apart from the job's data."""
    return batches / batch / ".hyperctl" / "jobs" / job / f"attempt-{attempt}"


def read_stdout(batches: Path, batch: str, job: str, attempt: int = 1) -> str:
    return (attempt_dir(batches, batch, job, attempt) / "stdout").read_text()


def job_names(batches: Path, batch: str) -> list[str]:
    """The batch's jobs in the order of its file, as `job list` shows them."""
    with contextlib.closing(sqlite3.connect(batches / batch / ".hyperctl" / "state.db")) as conn:
        return [name for (name,) in conn.execute("SELECT name FROM jobs ORDER BY position")]


def wait_for_portal(proc: subprocess.Popen[str]) -> str:
    """The API address a running `hyperctl run` prints on stderr when it is ready."""
    assert proc.stderr is not None
    for line in proc.stderr:
        if "API at " in line:
            return line.split("API at ", 1)[1].strip()
    raise AssertionError(f"hyperctl run ended before serving (exit {proc.wait()})")


def wait_for(check: Callable[[], T], what: str, deadline: float = 30) -> T:
    """Poll check() until it returns something true; fail after `deadline` seconds."""
    end = time.monotonic() + deadline
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"gave up after {deadline:.0f} s waiting for {what}")
        time.sleep(0.02)


def process_alive(pid: int) -> bool:
    """Whether pid runs (a zombie waiting for its parent to reap it does not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:
        return False


def batch_token(batches: Path, batch: str) -> str:
    """The batch's token, where the CLI reads it (out of the batch folder: layout.BatchDir.token_file)."""
    token = read_token(BatchDir(batches, batch))
    assert token is not None, f"batch {batch} has no token"
    return token
