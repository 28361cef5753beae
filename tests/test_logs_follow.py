"""`job logs -f` follows a job to its final end: it waits for the job to start and goes on
through its retries."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import hyperctl, process_alive, read_stdout, wait_for, write_json
from tests.test_control import rows


def start(tmp_path: Path, jobs: list[dict[str, object]]) -> None:
    doc = {"name": "b", "jobs": jobs, "backend": {"conf": {"cpu": 1}}, "daemon": {"port": 0}}
    result = hyperctl("run", "--config", str(write_json(tmp_path / "b.json", doc)), "--detach")
    assert result.returncode == 0, result.stderr


def test_follow_waits_for_a_pending_job_and_goes_on_through_its_retries(tmp_path: Path, batches: Path) -> None:
    gate = tmp_path / "gate"
    # Each attempt prints, then waits for the test to have seen that line through `logs -f`.
    n = "$HYPERCTL_ATTEMPT"
    flaky = f'echo "attempt {n}"; while [ ! -e {gate}-{n} ]; do sleep 0.05; done; [ "{n}" = 3 ]'
    start(
        tmp_path,
        [
            {"name": "first", "execution": {"command": f"while [ ! -e {gate} ]; do sleep 0.05; done"}},
            {"name": "flaky", "execution": {"command": flaky}, "max_retries": 2},
        ],
    )
    follow = subprocess.Popen(
        [sys.executable, "-m", "hyperctl", "job", "logs", "b", "flaky", "-f"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert follow.stdout is not None
    try:
        time.sleep(1)  # `logs -f` finds the job pending (it waits rather than failing) ...
        assert follow.poll() is None
        gate.touch()  # ... and then running
        for n in (1, 2, 3):
            assert follow.stdout.readline() == f"attempt {n}\n"
            Path(f"{gate}-{n}").touch()
        out, err = follow.communicate(timeout=60)
    finally:
        follow.kill()
    assert follow.returncode == 0, err
    assert out == ""
    assert err.splitlines() == [
        "hyperctl: job flaky: attempt 1 ended (exit 1); attempt 2 follows",
        "hyperctl: job flaky: attempt 2 ended (exit 1); attempt 3 follows",
    ]


def test_follow_of_a_pending_job_with_no_daemon_says_how_to_start_one(tmp_path: Path, batches: Path) -> None:
    start(
        tmp_path,
        [{"name": "first", "execution": {"command": "sleep 30"}}, {"name": "second", "execution": {"command": "true"}}],
    )
    pid = int(wait_for(lambda: (batches / "b" / ".hyperctl" / "lock").read_text().strip(), "the daemon's pid"))
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: hyperctl("batch", "list").stdout.count("interrupted"), "the daemon to be gone")

    result = hyperctl("job", "logs", "b", "second", "-f", timeout=30)

    assert result.returncode == 2
    assert result.stderr == (
        "hyperctl: error: job 'second' is pending, and no daemon runs batch 'b' to start it "
        "(start one: hyperctl batch resume b)\n"
    )


def test_follow_of_a_job_lost_with_its_daemon_ends(tmp_path: Path, batches: Path) -> None:
    """Daemon and job killed: no one will record the job's end, and -f does not wait for one."""
    start(tmp_path, [{"name": "a", "execution": {"command": "echo 1; sleep 60"}}])
    pid = wait_for(lambda: job_pid(batches, "a"), "the job to start")
    wait_for(lambda: read_stdout(batches, "b", "a") == "1\n", "its first line")
    os.kill(int((batches / "b" / ".hyperctl" / "lock").read_text()), signal.SIGKILL)
    os.killpg(pid, signal.SIGKILL)
    wait_for(lambda: not process_alive(pid), "the job to be gone")

    result = hyperctl("job", "logs", "b", "a", "-f", timeout=30)

    assert result.returncode == 0, result.stderr
    assert result.stdout == "1\n"
    assert result.stderr.startswith("hyperctl: job a: lost: no daemon drives batch b")


def job_pid(batches: Path, job: str) -> int | None:
    found = rows(batches, f"SELECT pid FROM attempts WHERE job = '{job}'")
    return found[0][0] if found else None
