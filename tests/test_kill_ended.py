"""`job kill` of a job that has already ended says so the same way whether or not a daemon runs
its batch, as `batch kill` of an ended batch does: one line, exit 0, nothing changed."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.conftest import attempt_dir, hyperctl, wait_for, write_json

ENDED = "hyperctl: job {} has already ended ({}); nothing was running\n"


def status(batches: Path, job: str) -> str | None:
    """The job's status in the store; None until the daemon has made it."""
    try:
        with contextlib.closing(
            sqlite3.connect(f"file:{batches / 'b' / '.hyperctl' / 'state.db'}?mode=ro", uri=True)
        ) as db:
            row = db.execute("SELECT status FROM jobs WHERE name = ?", (job,)).fetchone()
    except sqlite3.OperationalError:
        return None
    return row[0] if row else None


def test_job_kill_of_an_ended_job_with_a_live_daemon_and_with_a_dead_one(tmp_path: Path, batches: Path) -> None:
    gate = tmp_path / "gate"
    jobs = [
        {"name": "short", "execution": {"command": f"while [ ! -e {gate} ]; do sleep 0.02; done; exit 3"}},
        {"name": "a", "execution": {"command": "sleep 60"}},
    ]
    doc = {"name": "b", "jobs": jobs, "daemon": {"port": 0}, "backend": {"conf": {"cpu": 2}}}
    run = subprocess.Popen(
        [sys.executable, "-m", "hyperctl", "run", "--config", str(write_json(tmp_path / "b.json", doc))],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: status(batches, "a") == "running" and status(batches, "short") == "running", "both to run")
        assert hyperctl("job", "kill", "b", "a").returncode == 0
        wait_for(lambda: status(batches, "a") == "killed", "a killed")

        live = hyperctl("job", "kill", "b", "a")  # a live daemon: the store tells
        assert (live.returncode, live.stderr) == (0, ENDED.format("a", "killed"))

        os.kill(run.pid, signal.SIGKILL)  # the daemon dies; `short` ends while none watches
        run.wait()
        gate.touch()
        wait_for(lambda: (attempt_dir(batches, "b", "short") / "exitcode").exists(), "short to end")

        dead = hyperctl("job", "kill", "b", "short")  # no daemon: the job's files tell
        assert (dead.returncode, dead.stderr) == (0, ENDED.format("short", "failed"))
        assert status(batches, "short") == "failed"
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
