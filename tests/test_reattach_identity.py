"""Resume takes a job's launcher for what it is: a job a dead daemon left running is watched
again, never called lost and run a second time beside itself."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.conftest import wait_for
from tests.test_control import held_job_left_by_a_dead_daemon, rows


def test_a_spawn_noted_late_still_names_the_running_job(tmp_path: Path, batches: Path) -> None:
    """On a loaded machine the daemon notes a job's spawn time when it gets the CPU back, which can
    be seconds after the job's process began. Resume must still know that process for the job's
    launcher: it waits for it, and the job runs once."""
    log, gate = held_job_left_by_a_dead_daemon(tmp_path, batches)
    # As a daemon that got the CPU back 3 s after the spawn would have noted it.
    with contextlib.closing(sqlite3.connect(batches / "b" / ".hyperctl" / "state.db")) as db, db:
        db.execute("UPDATE attempts SET pid_started = pid_started + 3")

    resumed = subprocess.Popen(
        [sys.executable, "-m", "hyperctl", "batch", "resume", "b"], stderr=subprocess.PIPE, text=True
    )
    ready = "SELECT value FROM meta WHERE key = 'ready'"
    wait_for(lambda: rows(batches, ready) == [(str(resumed.pid),)], "the resumed daemon to take the job over")
    gate.touch()
    _, err = resumed.communicate(timeout=30)

    assert resumed.returncode == 0, err
    assert log.read_text() == "ran\n", err
    assert rows(batches, "SELECT n, status FROM attempts") == [(1, "succeeded")]
